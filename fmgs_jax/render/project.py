"""Per-surfel 2DGS projection: splat-to-pixel homography, packed rows, screen extent and culling.

Follows 2DGS (Huang et al. 2024; hbb1/diff-surfel-rasterization `preprocessCUDA`, gsplat
`_fully_fused_projection_2dgs`): the splat-to-pixel homography of a surfel is
`T = K [s_u u_c, s_v v_c, p_c]` (3x3; rows Tu, Tv, Tw), where p_c is the camera-space centre and
u_c, v_c the camera-space tangents. The camera-space normal is flipped to face the camera
(`cos = -p_c . n_c`, 2DGS `multiplier`). Culled (never composited): centre nearer than `near`
(2DGS `in_frustum`), `cos == 0` (exactly edge-on through the centre), non-positive or non-finite
scales, opacity below alpha_min, and screen extent outside the image.

Screen extent (`tile_bbox`): where alpha can reach alpha_min, i.e. `rho <= rho_c = 2 log(opacity /
alpha_min)`. Since rho = min(rho3d, rho2d) this is the union of (a) the image of the splat-plane disk
`u^2 + v^2 <= rho_c`, bounded exactly through the dual conic `T diag(rho_c, rho_c, -1) T^T` (2DGS
`compute_aabb`), unbounded (whole image) when the disk reaches the camera plane, and (b) the filter
disk of radius sqrt(rho_c / 2) px around the projected centre. With alpha_min = 0 every surfel covers
the whole image, so the tiled result is the exact dense function.

3D Gaussians have their own projection (`project_3dgs.py`) into the same `Projected`.

Stable API: `Projected`, `project_surfels`, `pack_rows`, `tile_range`.
"""

import flax.struct
import jax
import jax.numpy as jnp

from fmgs_jax.render import composite
from fmgs_jax.render.camera import Camera
from fmgs_jax.render.surfels import Surfels

# Pixels added around the exact extent so that float round-off never drops a valid pair.
_EXTENT_PAD = 0.05


@flax.struct.dataclass
class Projected:
  """Camera-dependent per-surfel quantities.

  Attributes:
    rows: (N, F) float32 packed rows (layout in composite.py), differentiable in the surfels.
    depth: (N,) float32 camera z of the centres, metres (the sort key).
    visible: (N,) bool, not culled.
    tile_bbox: (N, 4) int32 (tx0, ty0, tx1, ty1), inclusive tile range; meaningless where not visible.
  """
  rows: jnp.ndarray
  depth: jnp.ndarray
  visible: jnp.ndarray
  tile_bbox: jnp.ndarray


def homography(surfels: Surfels, camera: Camera):
  """Splat-to-pixel homography T (N, 3, 3) (rows Tu, Tv, Tw), camera centres (N, 3), normals (N, 3).

  The normals are camera-space, flipped to face the camera; also returns cos = -p_c . n_c (N,).
  """
  w2c = camera.world_to_camera
  rot = w2c[:3, :3]
  p_c = surfels.means @ rot.T + w2c[:3, 3]
  r_c = jnp.einsum("ij,njk->nik", rot, surfels.rotations)
  cols = jnp.stack([r_c[:, :, 0] * surfels.scales[:, :1], r_c[:, :, 1] * surfels.scales[:, 1:2], p_c],
                   axis=-1)  # (N, 3, 3), columns: s_u u_c, s_v v_c, p_c
  t = jnp.einsum("ij,njk->nik", camera.K, cols)
  n_c = r_c[:, :, 2]
  cos = -jnp.sum(p_c * n_c, axis=-1)
  normal = n_c * jnp.where(cos > 0, 1.0, -1.0)[:, None]
  return t, p_c, normal, cos


def pack_rows(t, normal, opacities, features):
  """Packed rows (N, F) from the homography T (N, 3, 3) (see composite.py for the layout)."""
  tu, tv, tw = t[:, 0], t[:, 1], t[:, 2]
  a = jnp.cross(tv, tw)  # p = px a + py b + c, with p = cross(px Tw - Tu, py Tw - Tv)
  b = jnp.cross(tw, tu)
  c = jnp.cross(tu, tv)
  coef = jnp.stack([a, b, c], axis=-1).reshape(-1, 9)  # (a0, b0, c0, a1, b1, c1, a2, b2, c2)
  det = jnp.sum(tu * a, axis=-1)
  zc = tw[:, 2]
  safe_zc = jnp.where(zc != 0, zc, 1.0)
  center = jnp.stack([tu[:, 2] / safe_zc, tv[:, 2] / safe_zc], axis=-1)
  return jnp.concatenate([coef, det[:, None], center, zc[:, None], opacities[:, None], normal,
                          features], axis=-1)


def _extent(t, center, opacities, alpha_min, width, height, filter_inv_square=composite.FILTER_INV_SQUARE):
  """Inclusive pixel-space box (x0, y0, x1, y1) (N, 4) where alpha may reach alpha_min."""
  big = jnp.float32(4.0 * max(width, height) + 1e4)
  whole = jnp.stack([jnp.full_like(opacities, -big), jnp.full_like(opacities, -big),
                     jnp.full_like(opacities, big), jnp.full_like(opacities, big)], -1)
  if alpha_min <= 0:
    return whole
  rho_c = 2.0 * jnp.log(jnp.maximum(opacities, 1e-30) / alpha_min)
  rho_c = jnp.maximum(rho_c, 0.0)
  tu, tv, tw = t[:, 0], t[:, 1], t[:, 2]

  def dual(x, y):  # entry of T diag(rho_c, rho_c, -1) T^T
    return rho_c * (x[:, 0] * y[:, 0] + x[:, 1] * y[:, 1]) - x[:, 2] * y[:, 2]

  d22 = dual(tw, tw)
  bounded = d22 < 0
  safe = jnp.where(bounded, d22, -1.0)
  cx = dual(tu, tw) / safe
  cy = dual(tv, tw) / safe
  hx = jnp.sqrt(jnp.maximum(cx * cx - dual(tu, tu) / safe, 0.0))
  hy = jnp.sqrt(jnp.maximum(cy * cy - dual(tv, tv) / safe, 0.0))
  conic = jnp.stack([cx - hx, cy - hy, cx + hx, cy + hy], -1)
  conic = jnp.where(bounded[:, None] & jnp.all(jnp.isfinite(conic), -1, keepdims=True), conic, whole)
  r = jnp.sqrt(rho_c / filter_inv_square)
  disk = jnp.stack([center[:, 0] - r, center[:, 1] - r, center[:, 0] + r, center[:, 1] + r], -1)
  return jnp.concatenate([jnp.minimum(conic[:, :2], disk[:, :2]),
                          jnp.maximum(conic[:, 2:], disk[:, 2:])], -1)


def tile_range(box, tile_size: int, tiles_x: int, tiles_y: int):
  """Inclusive tile boxes (N, 4) int32 and on-screen flags (N,) from pixel boxes (N, 4) float32.

  Pixel boxes are (x0, y0, x1, y1); they are padded by `_EXTENT_PAD` px so that float round-off
  never drops a valid pair.
  """
  box = box + jnp.array([-_EXTENT_PAD, -_EXTENT_PAD, _EXTENT_PAD, _EXTENT_PAD])
  # Clip in float first so huge/inf boxes cast safely.
  lo = jnp.floor(box[:, :2] / tile_size)
  hi = jnp.floor(box[:, 2:] / tile_size)
  tmax = jnp.array([tiles_x - 1, tiles_y - 1], jnp.float32)
  on_screen = jnp.all((hi >= 0) & (lo <= tmax), -1)
  lo = jnp.clip(lo, 0, tmax).astype(jnp.int32)
  hi = jnp.clip(hi, 0, tmax).astype(jnp.int32)
  return jnp.concatenate([lo, hi], -1), on_screen


def project_surfels(surfels: Surfels, camera: Camera, alpha_min: float, tile_size: int,
                    filter_inv_square: float = composite.FILTER_INV_SQUARE) -> Projected:
  """Projects surfels into `camera`, packs their rows and finds their tile ranges.

  Args:
    surfels: N world-space surfels.
    camera: the camera (K's last row must be (0, 0, 1)).
    alpha_min: the compositing's alpha floor; sets the screen extent (0 = whole image).
    tile_size: tile side, pixels.
    filter_inv_square: 1 / r^2 of the compositing's low-pass filter (its extent bounds the screen box).

  Returns:
    Projected; `rows` is differentiable in every Surfels field, the rest carries no gradient.
  """
  t, p_c, normal, cos = homography(surfels, camera)
  rows = pack_rows(t, normal, surfels.opacities, surfels.features)
  tiles_x = -(-camera.width // tile_size)
  tiles_y = -(-camera.height // tile_size)
  t_ng = jax.lax.stop_gradient(t)
  rows_ng = jax.lax.stop_gradient(rows)
  center = rows_ng[:, composite.CENTER:composite.CENTER + 2]
  box = _extent(t_ng, center, jax.lax.stop_gradient(surfels.opacities), alpha_min, camera.width,
                camera.height, filter_inv_square)
  tile_bbox, on_screen = tile_range(box, tile_size, tiles_x, tiles_y)
  scales = jax.lax.stop_gradient(surfels.scales)
  depth = jax.lax.stop_gradient(p_c[:, 2])
  visible = ((depth > camera.near) & (jax.lax.stop_gradient(cos) != 0)
             & jnp.all((scales > 0) & jnp.isfinite(scales), -1)
             & jnp.all(jnp.isfinite(rows_ng), -1)
             & (jax.lax.stop_gradient(surfels.opacities) >= alpha_min) & on_screen)
  return Projected(rows=rows, depth=depth, visible=visible, tile_bbox=tile_bbox)
