"""Per-tile front-to-back compositing of 2DGS surfels, with a recomputing custom VJP (xla backend).

This module holds two layers:

1. Small pure per-surfel-per-pixel functions (`splat_eval`, `composite_step`, `forward_step`,
   `composite_inverse`, `init_state`). They use only elementwise `jnp` ops (no gathers, no dynamic
   shapes), so the Pallas kernel (`pallas_composite.py`) calls them inside its kernel body. `row` is
   any sequence of `NUM_GEOMETRY_COLUMNS + C` values indexed by the column constants below (a tuple of
   scalars loaded from a ref, or of (B, 1) arrays); `px`, `py` are pixel-centre arrays that the row
   values broadcast against; `state` is a tuple of `NUM_STATE + C` such arrays.
2. `composite_tiles(packed, count, *, tile_size, tiles_x, params, tiles_per_chunk)`: the XLA backend.
   `fmgs_jax.render.pallas_composite.composite_tiles_pallas` takes the same arguments (it may ignore
   `tiles_per_chunk`) and returns the same array.

Formulas follow the CUDA forward of hbb1/diff-surfel-rasterization (`renderCUDA` in forward.cu; gsplat
`_torch_impl_2dgs.py` is the same): ray-splat intersection, `rho = min(rho3d, rho2d)` with the
screen-space low-pass filter `FilterInvSquare = 2` (radius sqrt(2)/2 px), depth of the intersection
(or of the centre when the filter wins), `alpha = min(alpha_max, opacity exp(-rho / 2))`, skip when
`depth < near` or `alpha < alpha_min`, stop (without compositing) when `T (1 - alpha) <
transmittance_min`, median depth = depth of the last composited surfel with T > 0.5 before it, and
the depth distortion `sum w (m^2 A + M2 - 2 m M1)` with `m = far / (far - near) (1 - near / depth)`.
One deliberate rewrite: 2DGS forms `p = cross(px Tw - Tu, py Tw - Tv)` from the rows Tu, Tv, Tw of the
splat-to-pixel homography; since `Tw x Tw = 0`, `p` is affine in the pixel, `p = px (Tv x Tw) + py
(Tw x Tu) + Tu x Tv`, and the intersection depth is `Tw . (sx, sy, 1) = det(T) / p.z`. The packed row
stores those nine affine coefficients and det(T) (see `project.py`), which saves most of the per-pair
flops and is the same function up to float round-off.

Packed row layout (float32, F = NUM_GEOMETRY_COLUMNS + C columns):
  COEF + 0..2   (a0, b0, c0): p.x = a0 px + b0 py + c0
  COEF + 3..5   (a1, b1, c1): p.y likewise
  COEF + 6..8   (a2, b2, c2): p.z likewise; (sx, sy) = (p.x, p.y) / p.z are the intersection's splat
                coordinates in units of the scales, so rho3d = sx^2 + sy^2
  DET           det(T): intersection depth = det / p.z (camera z, metres)
  CENTER + 0..1 projected centre, pixels
  CENTER_DEPTH  camera z of the centre, metres (depth used where the low-pass filter wins)
  OPACITY       opacity in [0, 1] (0 on padding rows)
  NORMAL + 0..2 camera-space unit normal, flipped to face the camera
  FEATURES + c  feature channel c

3D Gaussians (3DGS, `project_3dgs.py`) use the same rows: with a whitening matrix L of the projected
2D covariance (L^T L = Sigma2D^-1, the 3DGS dilation included), p.xy = L (pixel - centre) (affine in
the pixel), p.z = 1 (a2 = b2 = 0, c2 = 1) and DET = the centre's camera z, so rho3d = d^T Sigma2D^-1 d
and the depth is the centre's (as 3DGS renders it). They are composited with
`CompositeParams.low_pass_filter = False` (the dilation replaces the 2DGS filter); everything else,
including both backends and their VJPs, is shared.

Pixel state layout (tuple of NUM_STATE + C arrays, one value per pixel):
  T (transmittance), D (sum w depth), M1 (sum w m), M2 (sum w m^2), DIST (distortion), MEDIAN
  (median depth), N + 0..2 (sum w normal), C + c (sum w feature c); w = alpha T.

Per-tile inputs: `packed` (n_tiles, K, F) float32, each tile's surfels front to back (centre depth),
rows >= count[t] are padding; `count` (n_tiles,) int32. Tile t covers pixels
[tx * tile_size, (tx + 1) * tile_size) x [ty * tile_size, ...), tx = t % tiles_x, ty = t // tiles_x,
and its P = tile_size^2 pixels are listed row-major. Output: (n_tiles, P, NUM_STATE + C) float32,
the final pixel state.

Stable API (the Pallas backend builds on it): the column and state constants, `CompositeParams`,
`init_state`, `splat_eval`, `composite_step`, `forward_step`, `composite_inverse`,
`tile_pixel_centers`, `composite_tiles`.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import custom_batching

# Packed row columns.
COEF = 0
DET = 9
CENTER = 10
CENTER_DEPTH = 12
OPACITY = 13
NORMAL = 14
FEATURES = 17
NUM_GEOMETRY_COLUMNS = 17

# Pixel state components.
T = 0
D = 1
M1 = 2
M2 = 3
DIST = 4
MEDIAN = 5
N = 6
C = 9
NUM_STATE = 9

# 2DGS screen-space low-pass filter: FilterSize = sqrt(2)/2 px, FilterInvSquare = 1 / FilterSize^2 (the
# default; `CompositeParams.filter_inv_square` / `rasterize(low_pass_radius=...)` change it).
LOW_PASS_RADIUS = 0.5 ** 0.5
FILTER_INV_SQUARE = 1.0 / LOW_PASS_RADIUS ** 2
# rho3d is treated as infinite (alpha exactly 0 in float32) when it would exceed this: keeps every
# intermediate and its derivative finite for rays (nearly) parallel to the splat plane.
_RHO3D_MAX = 1e12


class CompositeParams(NamedTuple):
  """Static thresholds of the compositing (Python floats, hashable)."""
  alpha_min: float  # skip contributions with alpha below this (2DGS: 1/255)
  alpha_max: float  # clamp alpha (2DGS: 0.99)
  transmittance_min: float  # stop a pixel before T would drop below this (2DGS: 1e-4)
  near: float  # skip intersections nearer than this, metres
  far: float  # far plane of the distortion's depth normalisation, metres
  # 2DGS: rho = min(rho3d, rho2d) with the screen-space low-pass filter. False (3D Gaussians, whose
  # rows already carry the 3DGS dilation): rho = rho3d and depth = det / p.z everywhere.
  low_pass_filter: bool = True
  # 1 / r^2 of the low-pass filter of radius r pixels (2DGS: r = sqrt(2)/2, i.e. 2).
  filter_inv_square: float = FILTER_INV_SQUARE


def num_channels(num_columns: int) -> int:
  return num_columns - NUM_GEOMETRY_COLUMNS


def init_state(shape, num_features: int, dtype=jnp.float32):
  """Empty pixel state: T = 1, everything else 0; tuple of NUM_STATE + num_features arrays."""
  zeros = jnp.zeros(shape, dtype)
  return (jnp.ones(shape, dtype),) + (zeros,) * (NUM_STATE - 1 + num_features)


def splat_eval(px, py, row, params: CompositeParams):
  """Alpha of one packed row at pixel centres (px, py): 2DGS ray-splat hit, or a 3D Gaussian's 2D one.

  Returns (alpha, depth, valid): alpha = min(alpha_max, opacity exp(-rho/2)); depth, metres, of the
  ray-plane intersection (of the centre where the low-pass filter wins; with
  `params.low_pass_filter` False, rho = rho3d and depth = det / p.z, as 3D Gaussian rows need);
  valid = the pair is composited unless the transmittance stop says otherwise (depth >= near,
  alpha >= alpha_min, alpha > 0).
  """
  p0 = row[COEF + 0] * px + row[COEF + 1] * py + row[COEF + 2]
  p1 = row[COEF + 3] * px + row[COEF + 4] * py + row[COEF + 5]
  p2 = row[COEF + 6] * px + row[COEF + 7] * py + row[COEF + 8]
  num = p0 * p0 + p1 * p1
  ok = p2 * p2 * _RHO3D_MAX > num
  inv = 1.0 / jnp.where(ok, p2, 1.0)
  rho3d = jnp.where(ok, num * inv * inv, _RHO3D_MAX)
  if params.low_pass_filter:
    dx = row[CENTER + 0] - px
    dy = row[CENTER + 1] - py
    rho2d = params.filter_inv_square * (dx * dx + dy * dy)
    use3d = rho3d <= rho2d
    rho = jnp.minimum(rho3d, rho2d)
    depth = jnp.where(use3d, row[DET] * inv, row[CENTER_DEPTH])
  else:
    rho = rho3d
    depth = row[DET] * inv
  alpha = jnp.minimum(params.alpha_max, row[OPACITY] * jnp.exp(-0.5 * rho))
  # alpha == 0 never counts (not even for the median), also when alpha_min = 0.
  valid = (depth >= params.near) & (alpha >= params.alpha_min) & (alpha > 0)
  return alpha, depth, valid


def _apply(state, row, alpha, depth, params: CompositeParams):
  """Composites one surfel with effective alpha `alpha` (0 = identity) into `state`."""
  t = state[T]
  w = alpha * t
  # Depth only reaches m through `valid` pairs (depth >= near > 0); elsewhere w = 0 and any finite m.
  safe_depth = jnp.where(alpha > 0, depth, 1.0)
  m = params.far / (params.far - params.near) * (1.0 - params.near / safe_depth)
  new = list(state)
  new[T] = t * (1.0 - alpha)
  new[D] = state[D] + depth * w
  new[M1] = state[M1] + m * w
  new[M2] = state[M2] + m * m * w
  new[DIST] = state[DIST] + (m * m * (1.0 - t) + state[M2] - 2.0 * m * state[M1]) * w
  new[MEDIAN] = jnp.where((alpha > 0) & (t > 0.5), depth, state[MEDIAN])
  for i in range(3):
    new[N + i] = state[N + i] + row[NORMAL + i] * w
  for i in range(len(state) - NUM_STATE):
    new[C + i] = state[C + i] + row[FEATURES + i] * w
  return tuple(new)


def composite_step(state, row, px, py, active, params: CompositeParams):
  """Composites one surfel front to back where `active` and the pair is valid; no stop test.

  `active` (bool, broadcastable to px) marks pixels that still take this surfel. This is the
  function the backward differentiates; with active = (k < last) it replays the forward exactly.
  """
  alpha, depth, valid = splat_eval(px, py, row, params)
  a = jnp.where(active & valid, alpha, 0.0)
  return _apply(state, row, a, depth, params)


def forward_step(state, row, px, py, alive, params: CompositeParams):
  """Forward step with the 2DGS stop: returns (state, alive).

  A pixel stops, without compositing this surfel, when T (1 - alpha) < transmittance_min.
  """
  alpha, depth, valid = splat_eval(px, py, row, params)
  take = alive & valid
  stop = take & (state[T] * (1.0 - alpha) < params.transmittance_min)
  a = jnp.where(take & ~stop, alpha, 0.0)
  return _apply(state, row, a, depth, params), alive & ~stop


def composite_inverse(state, row, px, py, active, params: CompositeParams):
  """Pixel state before `composite_step(., row, px, py, active)` from the state after it.

  T_before = T_after / (1 - alpha); the sums invert by subtraction (M2 and M1 before DIST, which
  reads them). MEDIAN is returned unchanged: the backward differentiates through its `where`, which
  does not read the old value.
  """
  alpha, depth, valid = splat_eval(px, py, row, params)
  a = jnp.where(active & valid, alpha, 0.0)
  t = state[T] / (1.0 - a)
  w = a * t
  safe_depth = jnp.where(a > 0, depth, 1.0)
  m = params.far / (params.far - params.near) * (1.0 - params.near / safe_depth)
  old = list(state)
  old[T] = t
  old[D] = state[D] - depth * w
  old[M1] = state[M1] - m * w
  old[M2] = state[M2] - m * m * w
  old[DIST] = state[DIST] - (m * m * (1.0 - t) + old[M2] - 2.0 * m * old[M1]) * w
  for i in range(3):
    old[N + i] = state[N + i] - row[NORMAL + i] * w
  for i in range(len(state) - NUM_STATE):
    old[C + i] = state[C + i] - row[FEATURES + i] * w
  return tuple(old)


def tile_pixel_centers(tiles, tile_size: int, tiles_x: int, dtype=jnp.float32):
  """Pixel centres of tiles: `tiles` (...,) int32 -> (px, py), each (..., tile_size^2), row-major."""
  p = jnp.arange(tile_size * tile_size, dtype=jnp.int32)
  tiles = jnp.asarray(tiles)[..., None]
  px = (tiles % tiles_x) * tile_size + p % tile_size
  py = (tiles // tiles_x) * tile_size + p // tile_size
  return px.astype(dtype) + 0.5, py.astype(dtype) + 0.5


def _columns(rows):
  """(B, F) -> tuple of F (B, 1) arrays, the `row` of the elementwise functions."""
  return tuple(rows[:, c:c + 1] for c in range(rows.shape[1]))


def _chunking(count, tiles_per_chunk):
  """Tiles sorted by decreasing count, padded to whole chunks: (order, num_busy_chunks)."""
  n_tiles = count.shape[0]
  n_pad = -n_tiles % tiles_per_chunk
  order = jnp.argsort(-count, stable=True).astype(jnp.int32)
  order = jnp.concatenate([order, jnp.full((n_pad,), n_tiles, jnp.int32)])
  busy = jnp.sum(count > 0)
  return order, (busy + tiles_per_chunk - 1) // tiles_per_chunk


def _forward_impl(packed, count, tile_size, tiles_x, params, tiles_per_chunk):
  n_tiles, _, num_cols = packed.shape
  nc = num_channels(num_cols)
  num_pixels = tile_size * tile_size
  b = tiles_per_chunk
  order, num_chunks = _chunking(count, b)
  n_slots = order.shape[0]
  count_p = jnp.concatenate([count, jnp.zeros((1,), count.dtype)])
  packed_p = jnp.concatenate([packed, jnp.zeros((1,) + packed.shape[1:], packed.dtype)])

  def chunk_body(ci, carry):
    out_state, out_last = carry
    tiles = jax.lax.dynamic_slice_in_dim(order, ci * b, b)
    rows = packed_p[tiles]  # (B, K, F)
    cnt = count_p[tiles][:, None]  # (B, 1)
    px, py = tile_pixel_centers(tiles, tile_size, tiles_x, packed.dtype)
    kmax = jnp.max(cnt)

    def cond(c):
      k, _, alive, _ = c
      return (k < kmax) & jnp.any(alive)

    def body(c):
      k, state, alive, last = c
      row = _columns(jax.lax.dynamic_index_in_dim(rows, k, axis=1, keepdims=False))
      alive_k = alive & (k < cnt)
      state, alive_new = forward_step(state, row, px, py, alive_k, params)
      # last = number of rows this pixel consumed: the stop row and padding rows are not consumed.
      last = jnp.where(alive_k, k + 1, last)
      last = jnp.where(alive_k & ~alive_new, k, last)
      return k + 1, state, alive_new & (k + 1 < cnt), last

    state0 = init_state((b, num_pixels), nc, packed.dtype)
    alive0 = jnp.broadcast_to(cnt > 0, (b, num_pixels))
    last0 = jnp.zeros((b, num_pixels), jnp.int32)
    _, state, _, last = jax.lax.while_loop(cond, body, (jnp.int32(0), state0, alive0, last0))
    out_state = jax.lax.dynamic_update_slice_in_dim(out_state, jnp.stack(state, -1), ci * b, 0)
    out_last = jax.lax.dynamic_update_slice_in_dim(out_last, last, ci * b, 0)
    return out_state, out_last

  empty = jnp.stack(init_state((n_slots, num_pixels), nc, packed.dtype), -1)
  last = jnp.zeros((n_slots, num_pixels), jnp.int32)
  out_state, out_last = jax.lax.fori_loop(0, num_chunks, chunk_body, (empty, last))
  # Undo the sort: slot s holds tile order[s].
  inverse = jnp.zeros((n_tiles + 1,), jnp.int32).at[order].set(jnp.arange(n_slots, dtype=jnp.int32))
  inverse = inverse[:n_tiles]
  return out_state[inverse], out_last[inverse]


def _step_pullback(t, m1, m2, g, g_lin, row_geom, row_lin, px, py, active, params: CompositeParams):
  """One row's backward for R cotangents: the recompute once, the linear pull-back per cotangent.

  `composite_step`'s VJP written out (`test_multi_cotangent.py` and the rasterizer's gradient tests
  check it against autodiff, the dense reference and finite differences), so that the channels are
  contracted as two einsums instead of one small op per channel.

  Args:
    t, m1, m2: (B, P) T, M1, M2 after the row.
    g: dict of (R, B, P) cotangents of the state after the row: T, M1, M2, MEDIAN (these change
      from row to row) and D, DIST (constant).
    g_lin: (R, B, P, L) cotangents of the L = 3 + C normal and feature sums (constant).
    row_geom: NORMAL (B, 1) columns COEF .. OPACITY; row_lin: (B, L) columns NORMAL .. end.

  Returns:
    ((t, m1, m2) before the row, g before it, drow (R, B, F)).
  """
  (alpha, depth), pull, valid = jax.vjp(lambda r: _alpha_depth(px, py, r, params), row_geom, has_aux=True)
  take = active & valid
  a = jnp.where(take, alpha, 0.0)
  # The state before the row, as `composite_inverse` reconstructs it.
  t_b = t / (1.0 - a)
  w = a * t_b
  safe_depth = jnp.where(a > 0, depth, 1.0)
  scale = params.far / (params.far - params.near)
  m = scale * (1.0 - params.near / safe_depth)
  m1_b = m1 - m * w
  m2_b = m2 - m * m * w
  median = (a > 0) & (t_b > 0.5)
  # d(everything w multiplies)/dw, per cotangent.
  g_w = (g["D"] * depth + g["M1"] * m + g["M2"] * (m * m)
         + g["DIST"] * (m * m * (1.0 - t_b) + m2_b - 2.0 * m * m1_b)
         + jnp.einsum("rbpl,bl->rbp", g_lin, row_lin))
  g_before = dict(g)
  g_before["T"] = g["T"] * (1.0 - a) + g_w * a - g["DIST"] * (w * m * m)
  g_before["M1"] = g["M1"] - g["DIST"] * (2.0 * m * w)
  g_before["M2"] = g["M2"] + g["DIST"] * w
  g_before["MEDIAN"] = jnp.where(median, 0.0, g["MEDIAN"])
  d_a = t_b * (g_w - g["T"])
  d_m = w * (g["M1"] + 2.0 * m * g["M2"] + g["DIST"] * (2.0 * m * (1.0 - t_b) - 2.0 * m1_b))
  d_depth = (g["D"] * w + jnp.where(a > 0, d_m * (scale * params.near / (safe_depth * safe_depth)), 0.0)
             + jnp.where(median, g["MEDIAN"], 0.0))
  d_geom = jax.vmap(pull)((jnp.where(take, d_a, 0.0), d_depth))[0]
  d_lin = jnp.einsum("rbpl,bp->rbl", g_lin, w)
  drow = jnp.concatenate(list(d_geom) + [d_lin], axis=-1)
  return (t_b, m1_b, m2_b), g_before, drow


def _alpha_depth(px, py, row_geom, params):
  alpha, depth, valid = splat_eval(px, py, row_geom, params)
  return (alpha, depth), valid


def _backward_impl(packed, count, state, last, dstates, tile_size, tiles_x, params, tiles_per_chunk,
                   tiles_per_image):
  """R cotangents at once: dstates (R, n_tiles, P, S) -> (R, n_tiles, K, F).

  One recompute per tile and row (the intersection, alpha, the state before the row and the
  derivatives of the step, none of which depends on the cotangent); only the contraction with the
  cotangents runs R times (`_step_pullback`). Tile t's pixels are those of tile t % tiles_per_image
  (frames folded into the tile axis).
  """
  n_tiles, capacity, num_cols = packed.shape
  num_r = dstates.shape[0]
  b = tiles_per_chunk
  order, num_chunks = _chunking(count, b)
  n_slots = order.shape[0]
  pad = lambda x, axis=0: jnp.concatenate(
      [x, jnp.zeros(x.shape[:axis] + (1,) + x.shape[axis + 1:], x.dtype)], axis)
  packed_p, state_p, last_p, dstates_p = pad(packed), pad(state), pad(last), pad(dstates, 1)

  def chunk_body(ci, dpacked):
    tiles = jax.lax.dynamic_slice_in_dim(order, ci * b, b)
    rows = packed_p[tiles]  # (B, K, F)
    px, py = tile_pixel_centers(tiles % tiles_per_image, tile_size, tiles_x, packed.dtype)
    lst = last_p[tiles]  # (B, P)
    st = state_p[tiles]
    dst = dstates_p[:, tiles]  # (R, B, P, S)
    kmax = jnp.max(lst)
    # Only T, M1, M2 are read by the step's derivative; the other sums need not be reconstructed.
    carried = (st[..., T], st[..., M1], st[..., M2])
    g0 = {"T": dst[..., T], "M1": dst[..., M1], "M2": dst[..., M2], "MEDIAN": dst[..., MEDIAN],
          "D": dst[..., D], "DIST": dst[..., DIST]}
    g_lin = dst[..., N:]  # normal and feature sums: their cotangents pass every row unchanged

    def body(i, c):
      (t, m1, m2), g, drows = c
      k = kmax - 1 - i
      row = jax.lax.dynamic_index_in_dim(rows, k, axis=1, keepdims=False)  # (B, F)
      carried, g, drow = _step_pullback(t, m1, m2, g, g_lin, _columns(row[:, :NORMAL]),
                                        row[:, NORMAL:], px, py, k < lst, params)
      drows = jax.lax.dynamic_update_index_in_dim(drows, drow, k, axis=2)
      return carried, g, drows

    drows0 = jnp.zeros((num_r, b, capacity, num_cols), packed.dtype)
    _, _, drows = jax.lax.fori_loop(0, kmax, body, (carried, g0, drows0))
    return jax.lax.dynamic_update_slice_in_dim(dpacked, drows, ci * b, 1)

  dpacked = jnp.zeros((num_r, n_slots, capacity, num_cols), packed.dtype)
  dpacked = jax.lax.fori_loop(0, num_chunks, chunk_body, dpacked)
  inverse = jnp.zeros((n_tiles + 1,), jnp.int32).at[order].set(jnp.arange(n_slots, dtype=jnp.int32))
  return dpacked[:, inverse[:n_tiles]]


def fold_cotangent_batch(fn, axis_size, in_batched, packed, count, state, last, dstates):
  """vmap rule of a multi-cotangent backward fn(packed, count, state, last, dstates (R, ...)).

  Batched only in the cotangents (vmap over cotangents, as `train/isolation.py` does): the batch
  joins the R axis, so the per-tile recompute is shared. Anything else batched (a vmap over frames):
  the frames join the tile axis (tiles are independent; fn locates pixels by tile % tiles per
  image). Returns (out, True) with the batch leading, for `jax.custom_batching.custom_vmap`.
  """
  if in_batched[4] and not any(in_batched[:4]):
    a, r = dstates.shape[:2]
    out = fn(packed, count, state, last, dstates.reshape((a * r,) + dstates.shape[2:]))
    return out.reshape((a, r) + out.shape[1:]), True
  args = [x if bat else jnp.broadcast_to(x, (axis_size,) + x.shape)
          for x, bat in zip((packed, count, state, last, dstates), in_batched)]
  packed, count, state, last, dstates = args
  n, r = packed.shape[1], dstates.shape[1]
  flat = lambda x: x.reshape((axis_size * n,) + x.shape[2:])
  ds = jnp.swapaxes(dstates, 0, 1)  # (R, A, n, P, S)
  out = fn(flat(packed), flat(count), flat(state), flat(last),
           ds.reshape((r, axis_size * n) + ds.shape[3:]))
  return jnp.swapaxes(out.reshape((r, axis_size, n) + out.shape[2:]), 0, 1), True


@functools.lru_cache(maxsize=None)
def _multi_backward(tile_size, tiles_x, params, tiles_per_chunk, tiles_per_image):
  """The backward over R cotangents, with `fold_cotangent_batch` as its vmap rule."""

  @custom_batching.custom_vmap
  def backward(packed, count, state, last, dstates):
    return _backward_impl(packed, count, state, last, dstates, tile_size, tiles_x, params,
                          tiles_per_chunk, tiles_per_image)

  backward.def_vmap(functools.partial(fold_cotangent_batch, backward))
  return backward


def composite_tiles_backward(packed, count, state, last, dstates, *, tile_size: int, tiles_x: int,
                             params: CompositeParams, tiles_per_chunk: int = 16):
  """Gradients of R cotangents of `composite_tiles` at once (one recompute per tile, R pull-backs).

  Args:
    packed, count: as `composite_tiles`.
    state: (n_tiles, P, S) its final pixel state; last: (n_tiles, P) int32 rows consumed per pixel
      (`composite_tiles_forward`).
    dstates: (R, n_tiles, P, S) float32 cotangents of the state.

  Returns:
    (R, n_tiles, K, F) float32: dstates[r] pulled back to `packed`, as R calls of the VJP would.
    Under `jax.vmap` over dstates the batch joins R (this is how the custom VJP's backward is
    shared by a vmapped VJP).
  """
  count = jnp.minimum(count.astype(jnp.int32), packed.shape[1])
  return _multi_backward(tile_size, tiles_x, params, tiles_per_chunk, packed.shape[0])(
      packed, count, state, last, dstates)


def composite_tiles_forward(packed, count, *, tile_size: int, tiles_x: int, params: CompositeParams,
                            tiles_per_chunk: int = 16):
  """(final state (n_tiles, P, S), rows consumed per pixel (n_tiles, P) int32): what the backward
  reads."""
  count = jnp.minimum(count.astype(jnp.int32), packed.shape[1])
  return _forward_impl(packed, count, tile_size, tiles_x, params, tiles_per_chunk)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _composite(packed, count, tile_size, tiles_x, params, tiles_per_chunk):
  return _forward_impl(packed, count, tile_size, tiles_x, params, tiles_per_chunk)[0]


def _composite_fwd(packed, count, tile_size, tiles_x, params, tiles_per_chunk):
  state, last = _forward_impl(packed, count, tile_size, tiles_x, params, tiles_per_chunk)
  return state, (packed, count, state, last)


def _composite_bwd(tile_size, tiles_x, params, tiles_per_chunk, res, dstate):
  packed, count, state, last = res
  dpacked = _multi_backward(tile_size, tiles_x, params, tiles_per_chunk, packed.shape[0])(
      packed, count, state, last, dstate[None])[0]
  return dpacked, None


_composite.defvjp(_composite_fwd, _composite_bwd)


def composite_tiles(packed, count, *, tile_size: int, tiles_x: int, params: CompositeParams,
                    tiles_per_chunk: int = 16):
  """Composites every tile front to back (XLA backend), differentiable in `packed`.

  Args:
    packed: (n_tiles, K, F) float32 surfel rows per tile, front to back (layout in the module doc).
    count: (n_tiles,) int32 rows in use per tile.
    tile_size: tile side, pixels.
    tiles_x: tiles per image row.
    params: thresholds.
    tiles_per_chunk: tiles composited together in one loop; tiles are sorted by count and each chunk
      loops over its own longest tile and stops when all its pixels are done (early termination).

  Returns:
    (n_tiles, tile_size^2, NUM_STATE + C) float32 final pixel state. The custom VJP recomputes the
    per-surfel steps back to front from the final state (T / (1 - alpha), sums by subtraction), so
    memory is O(pixels + n_tiles K F), never pixels x K.
  """
  count = jnp.minimum(count.astype(jnp.int32), packed.shape[1])
  return _composite(packed, count, tile_size, tiles_x, params, tiles_per_chunk)
