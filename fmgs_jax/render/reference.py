"""Dense reference rasterizer (2DGS and 3DGS): every pixel against every primitive, no tiles or loops.

The oracle of the tests (the role of gsplat's `_torch_impl_2dgs.py`), written independently of the
tiled path: the ray-splat intersection is the geometric ray-plane intersection in camera space (not
the 2DGS homography): per pair, Cramer's rule on `t d = p + a s_u u + b s_v v` (ray z = 1 direction d,
camera-space centre p and tangents u, v; the tangents need not be orthonormal, so gradients agree with
the tiled path off the rotation manifold too), and compositing is closed-form over the depth-sorted
surfels with cumulative products and sums instead of a front-to-back recurrence:

  T_k = prod_{j<k} (1 - a_j),  w_k = a_k T_k,  included_k = valid_k and prod_{j<=k} (1 - a_j) >= T_min
  (the 2DGS stop: T only decreases, so the first pair that would cross T_min and all later ones drop)
  median = depth of the last included k with T_k > 0.5;  distortion = sum_k w_k (m_k^2 (1 - T_k) +
  sum_{j<k} w_j m_j^2 - 2 m_k sum_{j<k} w_j m_j).

3D Gaussians (`primitive="3dgs"`) are evaluated from their 3D covariance directly (EWA projection with
the 3DGS Jacobian clamp and dilation, matrix inverse of the 2D covariance), not through the packed rows
of `project_3dgs.py`, and composited by the same closed form with the centre's depth.

Cost and memory are O(pixels x surfels); use it on small scenes only.
"""

import jax
import jax.numpy as jnp

from fmgs_jax.render import composite, project_3dgs
from fmgs_jax.render.camera import Camera
from fmgs_jax.render.surfels import Surfels


def _pixel_rays(camera: Camera):
  """Pixel centres (H*W,) x2 and camera-space ray directions (H*W, 3) with z = 1, row-major."""
  ys, xs = jnp.meshgrid(jnp.arange(camera.height), jnp.arange(camera.width), indexing="ij")
  px = xs.reshape(-1).astype(camera.K.dtype) + 0.5
  py = ys.reshape(-1).astype(camera.K.dtype) + 0.5
  pix = jnp.stack([px, py, jnp.ones_like(px)], -1)
  return px, py, pix @ jnp.linalg.inv(camera.K).T


def _surfel_splats(surfels: Surfels, camera: Camera, params: composite.CompositeParams):
  """2DGS surfels sorted by centre depth: (splat, normal (N, 3), features (N, C)).

  `splat(qx, qy, d)` maps pixel centres (P,) x2 and rays (P, 3) to (alpha, depth, valid), each (P, N).
  """
  w2c = camera.world_to_camera
  rot = w2c[:3, :3]
  p_c = surfels.means @ rot.T + w2c[:3, 3]
  r_c = jnp.einsum("ij,njk->nik", rot, surfels.rotations)
  u_c, v_c, n_c = r_c[:, :, 0], r_c[:, :, 1], r_c[:, :, 2]
  su_c = u_c * surfels.scales[:, :1]
  sv_c = v_c * surfels.scales[:, 1:2]
  cos = -jnp.sum(p_c * n_c, -1)
  normal = n_c * jnp.where(cos > 0, 1.0, -1.0)[:, None]
  visible = ((p_c[:, 2] > camera.near) & (cos != 0)
             & jnp.all((surfels.scales > 0) & jnp.isfinite(surfels.scales), -1))
  order = jnp.argsort(jnp.where(visible, p_c[:, 2], jnp.inf), stable=True)
  p_c, su_c, sv_c, normal = p_c[order], su_c[order], sv_c[order], normal[order]
  opac, feat = surfels.opacities[order], surfels.features[order]
  visible = visible[order]
  proj = p_c @ camera.K.T
  center = proj[:, :2] / jnp.where(visible, proj[:, 2], 1.0)[:, None]

  def splat(qx, qy, d):
    # Cramer's rule for (a, b, t) in a A + b B - t d = -p, A = s_u u, B = s_v v:
    # det = -d.(A x B), t = p.(A x B) / d.(A x B), a = -d.(p x B) / d.(A x B), b = -d.(A x p) / ...
    nd = d @ jnp.cross(su_c, sv_c).T  # (P, N)
    hit = nd != 0
    inv = 1.0 / jnp.where(hit, nd, 1.0)
    t = jnp.sum(p_c * jnp.cross(su_c, sv_c), -1) * inv  # camera z of the intersection (d.z = 1)
    su = -(d @ jnp.cross(p_c, sv_c).T) * inv
    sv = -(d @ jnp.cross(su_c, p_c).T) * inv
    rho3d = jnp.where(hit, su * su + sv * sv, jnp.inf)
    rho2d = params.filter_inv_square * ((center[:, 0] - qx[:, None]) ** 2
                                        + (center[:, 1] - qy[:, None]) ** 2)
    use3d = rho3d <= rho2d
    depth = jnp.where(use3d, t, p_c[:, 2])
    alpha = jnp.minimum(params.alpha_max, opac * jnp.exp(-0.5 * jnp.minimum(rho3d, rho2d)))
    valid = visible & (depth >= params.near) & (alpha >= params.alpha_min) & (alpha > 0)
    return alpha, depth, valid

  return splat, normal, feat


def _gaussian_splats(surfels: Surfels, camera: Camera, params: composite.CompositeParams):
  """3D Gaussians sorted by centre depth: (splat, normal (N, 3), features (N, C)), as `_surfel_splats`.

  Straight from the 3D covariance (not the packed rows): Sigma_c = (W R) diag(s^2) (W R)^T, the 3DGS
  Jacobian at the centre (x/z, y/z clamped to FOV_CLAMP half fields of view), Sigma2D = J Sigma_c J^T
  + DILATION I, its matrix inverse, rho = d^T Sigma2D^-1 d, depth = the centre's z; normal = the axis
  of the smallest scale (the last one among equal scales), facing the camera.
  """
  w2c = camera.world_to_camera
  rot = w2c[:3, :3]
  p_c = surfels.means @ rot.T + w2c[:3, 3]
  r_c = jnp.einsum("ij,njk->nik", rot, surfels.rotations)
  cov3 = jnp.einsum("nij,nj,nkj->nik", r_c, surfels.scales ** 2, r_c)
  visible = ((p_c[:, 2] > camera.near)
             & jnp.all((surfels.scales > 0) & jnp.isfinite(surfels.scales), -1))
  z = jnp.where(visible, p_c[:, 2], 1.0)
  k = camera.K
  fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
  tan_x, tan_y = 0.5 * camera.width / fx, 0.5 * camera.height / fy  # half field of view
  extra = project_3dgs.FOV_CLAMP - 1.0
  x = jnp.clip(p_c[:, 0] / z, -cx / fx - extra * tan_x, (camera.width - cx) / fx + extra * tan_x) * z
  y = jnp.clip(p_c[:, 1] / z, -cy / fy - extra * tan_y, (camera.height - cy) / fy + extra * tan_y) * z
  zeros = jnp.zeros_like(z)
  jac = jnp.stack([
      jnp.stack([k[0, 0] / z, k[0, 1] / z, -(k[0, 0] * x + k[0, 1] * y) / z ** 2], -1),
      jnp.stack([k[1, 0] / z + zeros, k[1, 1] / z, -(k[1, 0] * x + k[1, 1] * y) / z ** 2], -1)], 1)
  cov2 = jac @ cov3 @ jnp.swapaxes(jac, 1, 2) + project_3dgs.DILATION * jnp.eye(2, dtype=z.dtype)
  conic = jnp.linalg.inv(cov2)
  proj = p_c @ k.T
  center = proj[:, :2] / z[:, None]
  is_min = surfels.scales == jnp.min(surfels.scales, -1, keepdims=True)
  axis = jnp.max(jnp.where(is_min, jnp.arange(3), -1), -1)
  n_c = jnp.einsum("nij,nj->ni", r_c, jax.nn.one_hot(axis, 3, dtype=r_c.dtype))
  normal = n_c * jnp.where(jnp.sum(p_c * n_c, -1) < 0, 1.0, -1.0)[:, None]
  order = jnp.argsort(jnp.where(visible, p_c[:, 2], jnp.inf), stable=True)
  center, conic, normal, depth = center[order], conic[order], normal[order], p_c[order, 2]
  opac, feat, visible = surfels.opacities[order], surfels.features[order], visible[order]

  def splat(qx, qy, d):
    del d
    dx = qx[:, None] - center[:, 0]
    dy = qy[:, None] - center[:, 1]
    rho = (conic[:, 0, 0] * dx * dx + (conic[:, 0, 1] + conic[:, 1, 0]) * dx * dy
           + conic[:, 1, 1] * dy * dy)
    alpha = jnp.minimum(params.alpha_max, opac * jnp.exp(-0.5 * rho))
    depth_pn = jnp.broadcast_to(depth, alpha.shape)
    valid = visible & (depth_pn >= params.near) & (alpha >= params.alpha_min) & (alpha > 0)
    return alpha, depth_pn, valid

  return splat, normal, feat


def render_state(surfels: Surfels, camera: Camera, params: composite.CompositeParams,
                 pixel_chunk: int = 2048, primitive: str = "2dgs"):
  """Final pixel state (H*W, NUM_STATE + C), same layout as composite.py, by dense evaluation.

  `primitive` is "2dgs" (surfels, scales (N, 2)) or "3dgs" (3D Gaussians, scales (N, 3); `params`'
  low_pass_filter is not read: 3DGS has the dilation instead). Pixels are processed in chunks of
  `pixel_chunk` under `jax.checkpoint`, so the backward's memory is one chunk's pixels x surfels.
  """
  if primitive == "3dgs":
    splat, normal, feat = _gaussian_splats(surfels, camera, params)
  else:
    splat, normal, feat = _surfel_splats(surfels, camera, params)
  px, py, rays = _pixel_rays(camera)
  num_pixels = px.shape[0]
  pad = -num_pixels % pixel_chunk if num_pixels > pixel_chunk else 0
  chunk = min(pixel_chunk, num_pixels)
  px, py = jnp.pad(px, (0, pad)), jnp.pad(py, (0, pad))
  rays = jnp.pad(rays, ((0, pad), (0, 0)))
  far, near = params.far, params.near

  @jax.checkpoint
  def chunk_state(args):
    qx, qy, d = args  # (P,), (P,), (P, 3)
    alpha, depth, valid = splat(qx, qy, d)
    a = jnp.where(valid, alpha, 0.0)
    included = valid & (jnp.cumprod(1.0 - a, axis=1) >= params.transmittance_min)
    a = jnp.where(included, alpha, 0.0)
    one_minus = jnp.concatenate([jnp.ones_like(a[:, :1]), 1.0 - a[:, :-1]], 1)
    t_before = jnp.cumprod(one_minus, axis=1)
    w = a * t_before
    m = far / (far - near) * (1.0 - near / jnp.where(included, depth, 1.0))
    wm, wm2 = w * m, w * m * m
    m1_before = jnp.cumsum(wm, 1) - wm
    m2_before = jnp.cumsum(wm2, 1) - wm2
    dist = jnp.sum(w * (m * m * (1.0 - t_before) + m2_before - 2.0 * m * m1_before), 1)
    k = jnp.arange(a.shape[1])
    last = jnp.max(jnp.where(included & (t_before > 0.5), k, -1), axis=1)
    median = jnp.where(last >= 0, jnp.take_along_axis(depth, jnp.maximum(last, 0)[:, None], 1)[:, 0],
                       0.0)
    t_final = jnp.prod(1.0 - a, axis=1)
    parts = [t_final, jnp.sum(w * jnp.where(included, depth, 0.0), 1), jnp.sum(wm, 1),
             jnp.sum(wm2, 1), dist, median]
    return jnp.concatenate([jnp.stack(parts, -1), w @ normal, w @ feat], -1)

  n_chunks = px.shape[0] // chunk
  state = jax.lax.map(chunk_state, (px.reshape(n_chunks, chunk), py.reshape(n_chunks, chunk),
                                    rays.reshape(n_chunks, chunk, 3)))
  return state.reshape(-1, state.shape[-1])[:num_pixels]
