"""Per-Gaussian 3DGS projection: EWA 2D covariance, packed rows, screen extent and culling.

Follows 3DGS (Kerbl et al. 2023; graphdeco-inria/diff-gaussian-rasterization `preprocessCUDA`,
gsplat `_fully_fused_projection`), EWA splatting (Zwicker et al. 2002):

  Sigma3D = R diag(s)^2 R^T (world),  W = the camera rotation,  p_c = the camera-space centre,
  J = d pixel / d p_c at p_c (2 x 3, perspective Jacobian of `camera.K`),
  Sigma2D = J W Sigma3D W^T J^T + DILATION I   (pixels^2; 3DGS's 0.3 px^2 low-pass dilation, no
                                                opacity compensation),
  alpha = min(alpha_max, opacity exp(-d^T Sigma2D^-1 d / 2)),  d = pixel centre - projected centre.

As in 3DGS, J is evaluated at the centre with x/z and y/z clamped to 1.3 times the half field of view
(gsplat's form for an off-centre principal point: [-cx / fx - 0.15 W / fx, (W - cx) / fx + 0.15 W /
fx], likewise in y), which keeps the footprint of centres far outside the image bounded; the centre
itself is not clamped. The rendered depth of a Gaussian is its centre's camera z (3DGS).

Packed rows (layout in composite.py): with the upper-triangular whitening matrix
L = [[sqrt(S11 / det), -S01 / sqrt(S11 det)], [0, 1 / sqrt(S11)]] (S = Sigma2D, L^T L = S^-1),
p.xy = L (pixel - centre) is affine in the pixel, p.z = 1 (a2 = b2 = 0, c2 = 1) and DET = the centre's
z, so the compositor's rho3d = |p.xy|^2 = d^T S^-1 d and its depth = DET / p.z = z. The rows are
composited with `CompositeParams.low_pass_filter = False` (the dilation replaces 2DGS's filter).
det(S) is formed as |m0 x m1|^2 + DILATION (|m0|^2 + |m1|^2) + DILATION^2 from the rows m0, m1 of
M = J W R diag(s) (Cauchy-Binet), which has no cancellation for thin Gaussians.

Normal: the camera-space axis of the smallest scale (the rotation column it belongs to; ties go to the
higher index, so an isotropic Gaussian takes the third column, the surfel normal), flipped to face the
camera like 2DGS's (`-p_c . n_c > 0`); the usual choice of 3DGS-based normal methods (e.g.
GaussianShader). It is differentiable in the rotations; the choice of axis carries no
gradient.

Screen extent (`tile_bbox`): the exact bounding box of the ellipse d^T S^-1 d <= rho_c =
2 log(opacity / alpha_min), where alpha can reach alpha_min: half-widths sqrt(rho_c S00) and
sqrt(rho_c S11) around the projected centre. (3DGS uses the square of radius 3 sqrt(lambda_max(S)),
which cuts off pixels with alpha >= alpha_min when opacity > e^4.5 alpha_min; this box never does, so
the tiled result is the dense function.) With alpha_min = 0 every Gaussian covers the whole image.
Culled (never composited): centre nearer than `near`, non-positive or non-finite scales, opacity
below alpha_min, non-finite rows, screen extent outside the image.

Stable API: `DILATION`, `FOV_CLAMP`, `covariance_2d`, `normals`, `pack_rows`, `project_gaussians`.
"""

import jax
import jax.numpy as jnp

from fmgs_jax.render import project
from fmgs_jax.render.camera import Camera
from fmgs_jax.render.surfels import Surfels

# 3DGS adds this to the diagonal of every projected 2D covariance (pixels^2): a low-pass filter that
# keeps each Gaussian at least ~one pixel wide.
DILATION = 0.3
# 3DGS clamps the centre's x/z, y/z to this factor times the half field of view when forming J.
FOV_CLAMP = 1.3


def covariance_2d(surfels: Surfels, camera: Camera):
  """EWA projection of 3D Gaussians.

  Args:
    surfels: N Gaussians, scales (N, 3).
    camera: the camera.

  Returns:
    (cov, det, center, p_c, r_c): cov (N, 2, 2) Sigma2D in pixels^2 (dilation included), det (N,) its
    determinant, center (N, 2) projected centres in pixels, p_c (N, 3) camera-space centres (metres),
    r_c (N, 3, 3) camera-space rotations. Centres nearer than `camera.near` are replaced by z = 1
    before any division (they are culled), so nothing here is non-finite for them, nor their gradient.
  """
  w2c = camera.world_to_camera
  rot = w2c[:3, :3]
  p_c = surfels.means @ rot.T + w2c[:3, 3]
  r_c = jnp.einsum("ij,njk->nik", rot, surfels.rotations)
  k = camera.K
  z = p_c[:, 2]
  z = jnp.where(z > camera.near, z, 1.0)
  fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
  margin = 0.5 * (FOV_CLAMP - 1.0)
  lim_x = (cx / fx + margin * camera.width / fx, (camera.width - cx) / fx + margin * camera.width / fx)
  lim_y = (cy / fy + margin * camera.height / fy,
           (camera.height - cy) / fy + margin * camera.height / fy)
  xz = jnp.clip(p_c[:, 0] / z, -lim_x[0], lim_x[1])
  yz = jnp.clip(p_c[:, 1] / z, -lim_y[0], lim_y[1])
  # d (K q)[:2] / q_z = (K[:2] - (K q)[:2] / q_z e_z^T) / q_z at q = (xz, yz, 1) z.
  uv = xz[:, None] * k[None, :2, 0] + yz[:, None] * k[None, :2, 1] + k[None, :2, 2]  # (N, 2)
  jac = jnp.broadcast_to(k[:2], (z.shape[0], 2, 3)).at[:, :, 2].add(-uv) / z[:, None, None]
  m = jnp.einsum("nij,njk->nik", jac, r_c * surfels.scales[:, None, :])  # J W R diag(s), (N, 2, 3)
  m0, m1 = m[:, 0], m[:, 1]
  a00 = jnp.sum(m0 * m0, -1)
  a11 = jnp.sum(m1 * m1, -1)
  s00, s01, s11 = a00 + DILATION, jnp.sum(m0 * m1, -1), a11 + DILATION
  cross = jnp.cross(m0, m1)
  det = jnp.sum(cross * cross, -1) + DILATION * (a00 + a11) + DILATION ** 2
  cov = jnp.stack([jnp.stack([s00, s01], -1), jnp.stack([s01, s11], -1)], -2)
  proj = p_c @ k.T
  center = proj[:, :2] / z[:, None]
  return cov, det, center, p_c, r_c


def normals(r_c, p_c, scales):
  """Camera-space normals (N, 3): the smallest-scale axis of r_c (N, 3, 3), flipped to face the camera.

  Ties go to the higher axis index (an isotropic Gaussian takes the third column).
  """
  axis = 2 - jnp.argmin(jax.lax.stop_gradient(scales)[:, ::-1], axis=-1)
  n_c = jnp.take_along_axis(r_c, axis[:, None, None], axis=2)[:, :, 0]
  cos = -jnp.sum(p_c * n_c, axis=-1)
  return n_c * jnp.where(cos > 0, 1.0, -1.0)[:, None]


def pack_rows(cov, det, center, depth, normal, opacities, features):
  """Packed rows (N, F) of 3D Gaussians (layout in composite.py; see the module doc)."""
  s01, s11 = cov[:, 0, 1], cov[:, 1, 1]
  r11 = jax.lax.rsqrt(s11)
  rdet = jax.lax.rsqrt(det)
  l00 = s11 * r11 * rdet  # sqrt(S11 / det)
  l01 = -s01 * r11 * rdet
  l11 = r11
  u, v = center[:, 0], center[:, 1]
  zeros, ones = jnp.zeros_like(u), jnp.ones_like(u)
  coef = jnp.stack([l00, l01, -(l00 * u + l01 * v), zeros, l11, -l11 * v, zeros, zeros, ones], -1)
  return jnp.concatenate([coef, depth[:, None], center, depth[:, None], opacities[:, None], normal,
                          features], axis=-1)


def _extent(cov, center, opacities, alpha_min, width, height):
  """Inclusive pixel-space box (x0, y0, x1, y1) (N, 4) where alpha may reach alpha_min."""
  if alpha_min <= 0:
    big = jnp.float32(4.0 * max(width, height) + 1e4)
    return jnp.broadcast_to(jnp.array([-big, -big, big, big], jnp.float32), center.shape[:1] + (4,))
  rho_c = jnp.maximum(2.0 * jnp.log(jnp.maximum(opacities, 1e-30) / alpha_min), 0.0)
  half = jnp.sqrt(rho_c[:, None] * jnp.stack([cov[:, 0, 0], cov[:, 1, 1]], -1))
  return jnp.concatenate([center - half, center + half], -1)


def project_gaussians(surfels: Surfels, camera: Camera, alpha_min: float,
                      tile_size: int) -> project.Projected:
  """Projects 3D Gaussians into `camera`, packs their rows and finds their tile ranges.

  Args:
    surfels: N world-space Gaussians, scales (N, 3) (u, v, normal axes: the rotation's columns).
    camera: the camera (K's last row must be (0, 0, 1)).
    alpha_min: the compositing's alpha floor; sets the screen extent (0 = whole image).
    tile_size: tile side, pixels.

  Returns:
    project.Projected; `rows` is differentiable in every Surfels field, the rest carries no gradient.
    Composite the rows with `CompositeParams.low_pass_filter = False`.
  """
  cov, det, center, p_c, r_c = covariance_2d(surfels, camera)
  depth = p_c[:, 2]
  normal = normals(r_c, p_c, surfels.scales)
  rows = pack_rows(cov, det, center, depth, normal, surfels.opacities, surfels.features)
  tiles_x = -(-camera.width // tile_size)
  tiles_y = -(-camera.height // tile_size)
  rows_ng = jax.lax.stop_gradient(rows)
  box = _extent(jax.lax.stop_gradient(cov), jax.lax.stop_gradient(center),
                jax.lax.stop_gradient(surfels.opacities), alpha_min, camera.width, camera.height)
  tile_bbox, on_screen = project.tile_range(box, tile_size, tiles_x, tiles_y)
  scales = jax.lax.stop_gradient(surfels.scales)
  depth = jax.lax.stop_gradient(depth)
  visible = ((depth > camera.near) & jnp.all((scales > 0) & jnp.isfinite(scales), -1)
             & jnp.all(jnp.isfinite(rows_ng), -1)
             & (jax.lax.stop_gradient(surfels.opacities) >= alpha_min) & on_screen)
  return project.Projected(rows=rows, depth=depth, visible=visible, tile_bbox=tile_bbox)
