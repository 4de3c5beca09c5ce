"""Pallas backend of the per-tile 2DGS compositing (draft; layout to be aligned with composite.py)."""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

# Column layout of one packed surfel row (F = 15 + C columns, float32).
TU = 0  # 3 columns: first row of the 2DGS ray-splat transform (camera -> pixel homography)
TV = 3  # 3 columns: second row
TW = 6  # 3 columns: third row (Tw.z is the centre depth)
CENTER = 9  # 2 columns: projected centre, pixels
OPACITY = 11
NORMAL = 12  # 3 columns: camera-space normal facing the camera
FEATURES = 15  # C columns
NUM_GEOMETRY_COLUMNS = 15

# 2DGS screen-space low-pass filter: radius sqrt(2)/2 pixel, so 1/sigma^2 = 2.
_FILTER_INV_SQUARE = 2.0


class Thresholds(NamedTuple):
  alpha_min: float
  alpha_max: float
  transmittance_min: float
  near: float
  far: float


class _Static(NamedTuple):
  tile_size: int
  tiles_x: int
  num_channels: int
  thresholds: Thresholds
  interpret: bool
  num_warps: int = 4


def _compiler_params(s: _Static):
  # Explicit Triton parameters: without them this JAX lowers GPU kernels with Mosaic GPU, whose
  # layout inference rejects the per-pixel iota this kernel is built on.
  return None if s.interpret else pltriton.CompilerParams(num_warps=s.num_warps, num_stages=1)


# State of one pixel: tuple of (P,) arrays.
_T, _D, _M1, _M2, _DIST, _MEDIAN, _N = 0, 1, 2, 3, 4, 5, 6
_C = 9


def _num_state(num_channels):
  return _C + num_channels


def _splat_eval(px, py, row, th):
  tu = row[TU:TU + 3]
  tv = row[TV:TV + 3]
  tw = row[TW:TW + 3]
  kx, ky, kz = (px * tw[i] - tu[i] for i in range(3))
  lx, ly, lz = (py * tw[i] - tv[i] for i in range(3))
  p0 = ky * lz - kz * ly
  p1 = kz * lx - kx * lz
  p2 = kx * ly - ky * lx
  ok = p2 != 0
  p2s = jnp.where(ok, p2, 1.0)
  sx = p0 / p2s
  sy = p1 / p2s
  rho3d = sx * sx + sy * sy
  dx = row[CENTER] - px
  dy = row[CENTER + 1] - py
  rho2d = _FILTER_INV_SQUARE * (dx * dx + dy * dy)
  use3d = rho3d <= rho2d
  rho = jnp.where(use3d, rho3d, rho2d)
  depth = jnp.where(use3d, sx * tw[0] + sy * tw[1] + tw[2], tw[2])
  alpha = jnp.minimum(th.alpha_max, row[OPACITY] * jnp.exp(-0.5 * rho))
  valid = ok & (depth >= th.near) & (alpha >= th.alpha_min)
  return alpha, depth, valid


def _apply(state, row, px, py, th, valid_only=False):
  """One front-to-back step without the termination test; returns (state, alpha, valid)."""
  alpha, depth, valid = _splat_eval(px, py, row, th)
  t = state[_T]
  w = alpha * t
  m = th.far / (th.far - th.near) * (1.0 - th.near / jnp.where(valid, depth, 1.0))
  a = 1.0 - t
  new = list(state)
  new[_DIST] = state[_DIST] + (m * m * a + state[_M2] - 2.0 * m * state[_M1]) * w
  new[_D] = state[_D] + depth * w
  new[_M1] = state[_M1] + m * w
  new[_M2] = state[_M2] + m * m * w
  new[_MEDIAN] = jnp.where(t > 0.5, depth, state[_MEDIAN])
  for i in range(3):
    new[_N + i] = state[_N + i] + row[NORMAL + i] * w
  for i in range(len(state) - _C):
    new[_C + i] = state[_C + i] + row[FEATURES + i] * w
  new[_T] = t * (1.0 - alpha)
  new = tuple(jnp.where(valid, n, o) for n, o in zip(new, state))
  return new, alpha, valid


def _step(state, row, px, py, th):
  """Forward step with the termination test; returns (state, stop)."""
  new, alpha, valid = _apply(state, row, px, py, th)
  stop = valid & (state[_T] * (1.0 - alpha) < th.transmittance_min)
  new = tuple(jnp.where(stop, o, n) for n, o in zip(new, state))
  return new, stop


def _inverse(state, row, px, py, th):
  """State before `_apply` of `row`, reconstructed from the state after it (median left as is)."""
  alpha, depth, valid = _splat_eval(px, py, row, th)
  t = state[_T] / (1.0 - alpha)
  w = alpha * t
  m = th.far / (th.far - th.near) * (1.0 - th.near / jnp.where(valid, depth, 1.0))
  old = list(state)
  old[_T] = t
  old[_D] = state[_D] - depth * w
  old[_M1] = state[_M1] - m * w
  old[_M2] = state[_M2] - m * m * w
  old[_DIST] = state[_DIST] - (m * m * (1.0 - t) + old[_M2] - 2.0 * m * old[_M1]) * w
  for i in range(3):
    old[_N + i] = state[_N + i] - row[NORMAL + i] * w
  for i in range(len(state) - _C):
    old[_C + i] = state[_C + i] - row[FEATURES + i] * w
  return tuple(jnp.where(valid, o, s) for o, s in zip(old, state))


def _pixels(tile, s: _Static, dtype):
  """Pixel centres (P,) of tile `tile`, row-major within the tile."""
  p = jax.lax.broadcasted_iota(jnp.int32, (s.tile_size * s.tile_size,), 0)
  tx = tile % s.tiles_x
  ty = tile // s.tiles_x
  px = (tx * s.tile_size + p % s.tile_size).astype(dtype) + 0.5
  py = (ty * s.tile_size + p // s.tile_size).astype(dtype) + 0.5
  return px, py


def _load_row(ref, k, num_cols):
  # Scalar loads: the Triton lowering has no slicing of in-register vectors.
  return tuple(ref[k, c] for c in range(num_cols))


def _init_state(num_pixels, num_channels, dtype):
  state = [jnp.zeros((num_pixels,), dtype) for _ in range(_num_state(num_channels))]
  state[_T] = jnp.ones((num_pixels,), dtype)
  return tuple(state)


def _forward_kernel(s: _Static, count_ref, table_ref, state_ref, last_ref):
  dtype = table_ref.dtype
  px, py = _pixels(pl.program_id(0), s, dtype)
  num_pixels = s.tile_size * s.tile_size
  num_cols = NUM_GEOMETRY_COLUMNS + s.num_channels
  n = count_ref[0]
  alive_mark = jnp.int32(2**30)

  def cond(carry):
    k, _, last = carry
    # Any pixel still alive: `last` holds the mark until the pixel stops.
    return (k < n) & (jnp.max(last) == alive_mark)

  def body(carry):
    k, state, last = carry
    row = _load_row(table_ref, k, num_cols)
    new, stop = _step(state, row, px, py, s.thresholds)
    alive = last == alive_mark
    stop = stop & alive
    state = tuple(jnp.where(alive, a, b) for a, b in zip(new, state))
    last = jnp.where(stop, k, last)
    return k + 1, state, last

  state0 = _init_state(num_pixels, s.num_channels, dtype)
  last0 = jnp.full((num_pixels,), alive_mark, jnp.int32)
  _, state, last = jax.lax.while_loop(cond, body, (jnp.int32(0), state0, last0))
  for i, a in enumerate(state):
    state_ref[:, i] = a
  last_ref[...] = jnp.minimum(last, n)


def _backward_kernel(s: _Static, table_ref, state_ref, last_ref, dstate_ref, dtable_ref):
  dtype = table_ref.dtype
  px, py = _pixels(pl.program_id(0), s, dtype)
  num_cols = NUM_GEOMETRY_COLUMNS + s.num_channels
  num_rows = table_ref.shape[0]
  last = last_ref[...]
  kmax = jnp.max(last)
  th = s.thresholds

  def zero_row(k, carry):
    for c in range(num_cols):
      dtable_ref[k, c] = jnp.zeros((), dtype)
    return carry

  jax.lax.fori_loop(kmax, num_rows, zero_row, 0)

  def body(i, carry):
    state, dstate = carry
    k = kmax - 1 - i
    row = _load_row(table_ref, k, num_cols)
    active = k < last
    before = _inverse(state, row, px, py, th)
    before = tuple(jnp.where(active, b, a) for b, a in zip(before, state))
    _, vjp = jax.vjp(lambda st, r: _apply(st, r, px, py, th)[0], before, row)
    masked = tuple(jnp.where(active, d, 0.0) for d in dstate)
    dbefore, drow = vjp(masked)
    dstate = tuple(jnp.where(active, db, d) for db, d in zip(dbefore, dstate))
    for c in range(num_cols):
      dtable_ref[k, c] = drow[c]
    return before, dstate

  state = tuple(state_ref[:, i] for i in range(_num_state(s.num_channels)))
  dstate = tuple(dstate_ref[:, i] for i in range(_num_state(s.num_channels)))
  jax.lax.fori_loop(0, kmax, body, (state, dstate))


def _forward_call(s: _Static, count, table):
  num_tiles, num_rows, num_cols = table.shape
  num_pixels = s.tile_size * s.tile_size
  num_state = _num_state(s.num_channels)
  return pl.pallas_call(
      functools.partial(_forward_kernel, s),
      out_shape=(jax.ShapeDtypeStruct((num_tiles, num_pixels, num_state), table.dtype),
                 jax.ShapeDtypeStruct((num_tiles, num_pixels), jnp.int32)),
      grid=(num_tiles,),
      in_specs=[pl.BlockSpec((None, 1), lambda t: (t, 0)),
                pl.BlockSpec((None, num_rows, num_cols), lambda t: (t, 0, 0))],
      out_specs=(pl.BlockSpec((None, num_pixels, num_state), lambda t: (t, 0, 0)),
                 pl.BlockSpec((None, num_pixels), lambda t: (t, 0))),
      interpret=s.interpret,
      compiler_params=_compiler_params(s),
      name="fmgs_composite_forward",
  )(count.reshape(num_tiles, 1), table)


def _backward_call(s: _Static, table, state, last, dstate):
  num_tiles, num_rows, num_cols = table.shape
  num_pixels = s.tile_size * s.tile_size
  num_state = _num_state(s.num_channels)
  return pl.pallas_call(
      functools.partial(_backward_kernel, s),
      out_shape=jax.ShapeDtypeStruct(table.shape, table.dtype),
      grid=(num_tiles,),
      in_specs=[pl.BlockSpec((None, num_rows, num_cols), lambda t: (t, 0, 0)),
                pl.BlockSpec((None, num_pixels, num_state), lambda t: (t, 0, 0)),
                pl.BlockSpec((None, num_pixels), lambda t: (t, 0)),
                pl.BlockSpec((None, num_pixels, num_state), lambda t: (t, 0, 0))],
      out_specs=pl.BlockSpec((None, num_rows, num_cols), lambda t: (t, 0, 0)),
      interpret=s.interpret,
      compiler_params=_compiler_params(s),
      name="fmgs_composite_backward",
  )(table, state, last, dstate)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _composite(s: _Static, count, table):
  return _forward_call(s, count, table)


def _composite_fwd(s, count, table):
  state, last = _forward_call(s, count, table)
  return (state, last), (table, state, last)


def _composite_bwd(s, res, cotangents):
  table, state, last = res
  dstate, _ = cotangents
  return None, _backward_call(s, table, state, last, dstate)


_composite.defvjp(_composite_fwd, _composite_bwd)
