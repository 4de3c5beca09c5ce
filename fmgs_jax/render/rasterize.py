"""Public entry of the rasterizer (2DGS surfels or 3D Gaussians): projection, binning, compositing
backend, image assembly."""

import functools

import flax.struct
import jax
import jax.numpy as jnp

from fmgs_jax.render import binning, composite, project, project_3dgs, reference
from fmgs_jax.render.camera import Camera
from fmgs_jax.render.surfels import PRIMITIVES, Surfels, check_surfels

BACKENDS = ("xla", "pallas", "reference")


@flax.struct.dataclass
class RenderOutput:
  """Rendered maps, camera frame.

  Attributes:
    color: (H, W, C) float32 composited features with the background under them.
    alpha: (H, W) float32 opacity, 1 - final transmittance.
    depth: (H, W) float32 expected depth, metres: alpha-weighted intersection depth (2DGS) or centre
      depth (3DGS) / alpha (0 where alpha = 0).
    median_depth: (H, W) float32 metres: depth of the last surfel with T > 0.5 before it (0 if none).
    normal: (H, W, 3) float32 alpha-weighted camera-space normals facing the camera (not normalised).
    distortion: (H, W) float32 2DGS depth-distortion term (of the same per-primitive depths).
    overflow: () int32 surfel-tile pairs dropped by the tile capacity (0 for `reference`).
  """
  color: jnp.ndarray
  alpha: jnp.ndarray
  depth: jnp.ndarray
  median_depth: jnp.ndarray
  normal: jnp.ndarray
  distortion: jnp.ndarray
  overflow: jnp.ndarray


def finalize(state, background) -> tuple:
  """Per-pixel maps from the final pixel state (..., NUM_STATE + C) and background (C,)."""
  t = state[..., composite.T]
  alpha = 1.0 - t
  covered = alpha > 1e-10
  depth = jnp.where(covered, state[..., composite.D] / jnp.where(covered, alpha, 1.0), 0.0)
  color = state[..., composite.C:] + t[..., None] * background
  return (color, alpha, depth, state[..., composite.MEDIAN],
          state[..., composite.N:composite.N + 3], state[..., composite.DIST])


def default_pair_capacity(num_surfels: int, num_tiles: int, tile_capacity: int) -> int:
  return min(num_tiles * tile_capacity, max(4 * num_surfels, 32 * num_tiles))


def untile(state, tiles_x: int, tiles_y: int, tile_size: int, width: int, height: int):
  """(n_tiles, tile_size^2, S) -> (height, width, S)."""
  s = state.reshape(tiles_y, tiles_x, tile_size, tile_size, -1).transpose(0, 2, 1, 3, 4)
  return s.reshape(tiles_y * tile_size, tiles_x * tile_size, -1)[:height, :width]


@functools.partial(jax.jit, static_argnames=("backend", "params", "tile_size", "tile_capacity",
                                             "pair_capacity", "tiles_per_chunk", "primitive"))
def _rasterize(surfels, camera, background, backend, params, tile_size, tile_capacity,
               pair_capacity, tiles_per_chunk, primitive):
  if backend == "reference":
    state = reference.render_state(surfels, camera, params, primitive=primitive)
    state = state.reshape(camera.height, camera.width, -1)
    overflow = jnp.int32(0)
  else:
    tiles_x = -(-camera.width // tile_size)
    tiles_y = -(-camera.height // tile_size)
    if primitive == "3dgs":
      proj = project_3dgs.project_gaussians(surfels, camera, params.alpha_min, tile_size)
    else:
      proj = project.project_surfels(surfels, camera, params.alpha_min, tile_size, params.filter_inv_square)
    bins = binning.bin_surfels(proj.tile_bbox, proj.depth, proj.visible, tiles_x, tiles_y,
                               tile_capacity, pair_capacity or default_pair_capacity(
                                   surfels.means.shape[0], tiles_x * tiles_y, tile_capacity))
    packed = binning.gather_rows(proj.rows, bins.index)
    kwargs = dict(tile_size=tile_size, tiles_x=tiles_x, params=params)
    if backend == "pallas":
      from fmgs_jax.render import pallas_composite  # pylint: disable=g-import-not-at-top
      tiles = pallas_composite.composite_tiles_pallas(packed, bins.count, **kwargs)
    else:
      tiles = composite.composite_tiles(packed, bins.count, tiles_per_chunk=tiles_per_chunk,
                                        **kwargs)
    state = untile(tiles, tiles_x, tiles_y, tile_size, camera.width, camera.height)
    overflow = bins.overflow
  color, alpha, depth, median, normal, dist = finalize(state, background)
  return RenderOutput(color=color, alpha=alpha, depth=depth, median_depth=median, normal=normal,
                      distortion=dist, overflow=overflow)


def rasterize(surfels: Surfels, camera: Camera, background, backend: str = "xla",
              alpha_min: float = 1.0 / 255.0, alpha_max: float = 0.99,
              transmittance_min: float = 1e-4, tile_size: int = 16, tile_capacity: int = 1024,
              pair_capacity: int | None = None, tiles_per_chunk: int = 16,
              primitive: str = "2dgs", low_pass_radius: float = composite.LOW_PASS_RADIUS) -> RenderOutput:
  """Renders 2DGS surfels or 3D Gaussians into `camera`; differentiable in every Surfels field.

  "2dgs" (Huang et al. 2024): ray-splat intersection with the screen-space low-pass filter, depth of
  the intersection. "3dgs" (Kerbl et al. 2023): EWA-projected 2D Gaussians with the 0.3 px^2 dilation
  (no opacity compensation, no low-pass filter), depth of the centre, normal = the smallest-scale
  axis facing the camera (project_3dgs.py). Both share binning, compositing (front to back, alpha
  floor and clamp, transmittance stop, median depth, distortion) and every backend.

  Args:
    surfels: N world-space primitives (features (N, C)); scales (N, 2) for "2dgs", (N, 3) for "3dgs"
      (the third along the rotation's third column).
    camera: pinhole camera; camera.near / camera.far set the near cut and the distortion's depth range.
    background: (C,) float32 composited under the result (color only).
    backend: "xla" (tiled, default on CPU), "pallas" (fused kernel; interpret mode on CPU) or
      "reference" (dense, small scenes only).
    alpha_min: contributions with alpha below this are skipped (also sets each surfel's extent).
    alpha_max: alpha is clamped to this.
    transmittance_min: a pixel stops before its transmittance would drop below this.
    tile_size: tile side, pixels.
    tile_capacity: surfels kept per tile, nearest first; more are dropped and counted in `overflow`.
    pair_capacity: surfel-tile pair buffer; None = min(n_tiles * tile_capacity, max(4 N,
      32 n_tiles)) (a body-like scene has ~2 pairs per surfel); excess is counted in `overflow`.
    tiles_per_chunk: tiles composited together by the xla backend (a speed knob only).
    primitive: "2dgs" (surfels, the default) or "3dgs" (3D Gaussians).
    low_pass_radius: "2dgs" only: radius, pixels, of the screen-space low-pass filter (2DGS: sqrt(2)/2).
      Every surfel covers at least this disk; where surfels are smaller than pixels a smaller radius keeps
      the filter from widening silhouettes.

  Returns:
    RenderOutput. With alpha_min = transmittance_min = 0 and no overflow every backend computes the
    exact dense function.
  """
  if backend not in BACKENDS:
    raise ValueError(f"rasterize: backend must be one of {BACKENDS}, got {backend!r}")
  if primitive not in PRIMITIVES:
    raise ValueError(f"rasterize: primitive must be one of {tuple(PRIMITIVES)}, got {primitive!r}")
  check_surfels(surfels, primitive)
  if not low_pass_radius > 0:
    raise ValueError(f"rasterize: low_pass_radius must be > 0 pixels, got {low_pass_radius}")
  if camera.width <= 0 or camera.height <= 0:
    raise ValueError(f"Camera.width/height must be positive, got {camera.width}x{camera.height}")
  if tuple(jnp.shape(background)) != (surfels.features.shape[1],):
    raise ValueError(f"rasterize: background must have shape ({surfels.features.shape[1]},) like "
                     f"Surfels.features' channels, got {tuple(jnp.shape(background))}")
  params = composite.CompositeParams(float(alpha_min), float(alpha_max), float(transmittance_min),
                                     float(camera.near), float(camera.far),
                                     low_pass_filter=primitive == "2dgs",
                                     filter_inv_square=1.0 / float(low_pass_radius) ** 2)
  return _rasterize(surfels, camera, jnp.asarray(background, surfels.features.dtype), backend,
                    params, int(tile_size), int(tile_capacity),
                    None if pair_capacity is None else int(pair_capacity), int(tiles_per_chunk),
                    primitive)
