"""Per-tile 2DGS compositing as Pallas kernels (the `pallas` backend), with a recomputing custom VJP.

Same function, arguments and result as `composite.composite_tiles` (packed-row and pixel-state layouts
are documented in `composite.py`); the per-pair math is `composite.py`'s elementwise functions,
called inside the kernel bodies, so the two backends cannot drift apart.

Kernels (grid = one program per tile, P = tile_size^2 pixels held as (P,) vectors):
  forward   loads the tile's rows one at a time (scalar loads, row k < count), composites them into
            the pixel state with `composite.forward_step` and stops when every pixel has stopped
            (the 2DGS transmittance cut-off) or the rows run out. Writes the final state (P, S) and,
            per pixel, `last` = rows consumed (the stop row is not consumed).
  backward  walks rows last-1 .. 0 back to front, reconstructing T, M1, M2 before each row with
            `composite.composite_inverse` (T / (1 - alpha), sums by subtraction; the other state
            components are never read by the step's derivative) and applying the VJP of
            `composite.composite_step` (jax.vjp traced inside the kernel). Each row's cotangent is
            the pixel sum of the per-pixel cotangents. Memory: O(pixels + rows), never pixels x rows.
`jax.custom_vjp` ties them together (pallas_call has no transpose rule of its own).

Written for the Triton lowering of Pallas (`jax.experimental.pallas.triton`): every load or store is
a scalar or a (P,) vector (P a power of two: tile_size 4, 8, 16 or 32), no gathers, no slicing of
in-register vectors (rows are loaded column by column), loops are scf.for / scf.while with
scalar-int carries, reductions are max / sum over (P,). The kernels are given Triton compiler
parameters explicitly because this JAX (0.10.x) lowers GPU Pallas calls with Mosaic GPU by default,
whose layout inference does not accept this kernel's free-form iota/vectors.

What has been run (CPU only, no GPU was available):
  * interpret mode (`interpret=True`, the default off GPU): forward and VJP, tested against the xla
    backend, a float64 brute-force ray-plane compositor and float64 finite differences
    (tests/render/test_pallas_composite.py), and end to end through `rasterize(backend="pallas")`;
  * lowering Pallas -> Triton IR for a CUDA target, on CPU (`jax.jit(...).lower(lowering_platforms=
    ("cuda",))`), for forward and backward (a test); once, by hand, the MLIR verifier on both Triton
    modules (passes; every tensor is (256,) or scalar at tile_size 16).
What has NOT been run: Triton IR -> PTX compilation and execution on a GPU, hence GPU numerics,
speed, register pressure (the state is NUM_STATE + C vectors of P floats per program; with
tile_size 16 and 4 warps that is 2 pixels per thread) and the num_warps choice.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import custom_batching
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from fmgs_jax.render import composite
from fmgs_jax.render.composite import CompositeParams


class _Static(NamedTuple):
  """Hashable kernel configuration (custom_vjp non-differentiable argument)."""
  tile_size: int
  tiles_x: int
  params: CompositeParams
  interpret: bool
  num_warps: int


def _compiler_params(s: _Static):
  return None if s.interpret else pltriton.CompilerParams(num_warps=s.num_warps, num_stages=1)


def _pixels(s: _Static, dtype):
  px, py = composite.tile_pixel_centers(pl.program_id(0), s.tile_size, s.tiles_x, dtype)
  return px, py


def _load_row(ref, k, num_cols):
  # Column by column: Triton has no slicing of an in-register (F,) vector, and F need not be 2^n.
  return tuple(ref[k, c] for c in range(num_cols))


def _forward_kernel(s: _Static, count_ref, table_ref, state_ref, last_ref):
  dtype = table_ref.dtype
  num_cols = table_ref.shape[1]
  num_pixels = s.tile_size * s.tile_size
  px, py = _pixels(s, dtype)
  n = count_ref[0]

  def cond(carry):
    k, _, alive, _ = carry
    return (k < n) & (jnp.max(alive.astype(jnp.int32)) > 0)

  def body(carry):
    k, state, alive, last = carry
    row = _load_row(table_ref, k, num_cols)
    state, alive_new = composite.forward_step(state, row, px, py, alive, s.params)
    # last = rows consumed: k + 1 while alive, k for the row that stops the pixel.
    last = jnp.where(alive, jnp.where(alive_new, k + 1, k), last)
    return k + 1, state, alive_new, last

  state0 = composite.init_state((num_pixels,), num_cols - composite.NUM_GEOMETRY_COLUMNS, dtype)
  alive0 = jnp.full((num_pixels,), True) & (n > 0)
  last0 = jnp.zeros((num_pixels,), jnp.int32)
  _, state, _, last = jax.lax.while_loop(cond, body, (jnp.int32(0), state0, alive0, last0))
  for i, a in enumerate(state):
    state_ref[:, i] = a
  last_ref[...] = last


def _backward_kernel(s: _Static, tiles_per_image, table_ref, state_ref, last_ref, dstate_ref,
                     dtable_ref):
  dtype = table_ref.dtype
  num_rows, num_cols = table_ref.shape
  num_state = state_ref.shape[1]
  num_r = dstate_ref.shape[0]
  # Frames folded into the grid (a vmap over frames): program t renders tile t % tiles_per_image.
  px, py = composite.tile_pixel_centers(pl.program_id(0) % tiles_per_image, s.tile_size, s.tiles_x,
                                        dtype)
  last = last_ref[...]
  kmax = jnp.max(last)

  def zero_row(k, carry):
    for r in range(num_r):
      for c in range(num_cols):
        dtable_ref[r, k, c] = jnp.zeros((), dtype)
    return carry

  jax.lax.fori_loop(kmax, num_rows, zero_row, 0)

  def body(i, carry):
    (t, m1, m2), dstates = carry
    k = kmax - 1 - i
    row = _load_row(table_ref, k, num_cols)
    active = k < last
    zeros = jnp.zeros_like(t)
    after = [zeros] * num_state
    after[composite.T], after[composite.M1], after[composite.M2] = t, m1, m2
    before = composite.composite_inverse(tuple(after), row, px, py, active, s.params)
    # Only T, M1, M2 are read by the step's derivative; the rest stays zero (fewer live registers).
    before = tuple(before[j] if j in (composite.T, composite.M1, composite.M2) else zeros
                   for j in range(num_state))
    # One linearisation per row; each of the R cotangents runs only its linear pull-back.
    _, vjp = jax.vjp(lambda st, r: composite.composite_step(st, r, px, py, active, s.params),
                     before, row)
    new_dstates = []
    for r, dstate in enumerate(dstates):
      dbefore, drow = vjp(dstate)
      for c in range(num_cols):
        dtable_ref[r, k, c] = drow[c]  # scalar: the row broadcasts over pixels, its cotangent is summed
      new_dstates.append(dbefore)
    return (before[composite.T], before[composite.M1], before[composite.M2]), tuple(new_dstates)

  carried = tuple(state_ref[:, j] for j in (composite.T, composite.M1, composite.M2))
  dstates = tuple(tuple(dstate_ref[r, :, j] for j in range(num_state)) for r in range(num_r))
  jax.lax.fori_loop(0, kmax, body, (carried, dstates))


def _forward_call(s: _Static, packed, count):
  num_tiles, num_rows, num_cols = packed.shape
  num_pixels = s.tile_size * s.tile_size
  num_state = composite.NUM_STATE + composite.num_channels(num_cols)
  return pl.pallas_call(
      functools.partial(_forward_kernel, s),
      out_shape=(jax.ShapeDtypeStruct((num_tiles, num_pixels, num_state), packed.dtype),
                 jax.ShapeDtypeStruct((num_tiles, num_pixels), jnp.int32)),
      grid=(num_tiles,),
      in_specs=[pl.BlockSpec((None, 1), lambda t: (t, 0)),
                pl.BlockSpec((None, num_rows, num_cols), lambda t: (t, 0, 0))],
      out_specs=(pl.BlockSpec((None, num_pixels, num_state), lambda t: (t, 0, 0)),
                 pl.BlockSpec((None, num_pixels), lambda t: (t, 0))),
      interpret=s.interpret,
      compiler_params=_compiler_params(s),
      name="fmgs_composite_forward",
  )(count.reshape(num_tiles, 1), packed)


def _backward_call(s: _Static, tiles_per_image, packed, state, last, dstates):
  """(R, n_tiles, K, F) gradients of the R cotangents dstates (R, n_tiles, P, S), one program per tile."""
  num_tiles, num_rows, num_cols = packed.shape
  num_r = dstates.shape[0]
  num_pixels = s.tile_size * s.tile_size
  num_state = state.shape[-1]
  return pl.pallas_call(
      functools.partial(_backward_kernel, s, tiles_per_image),
      out_shape=jax.ShapeDtypeStruct((num_r,) + packed.shape, packed.dtype),
      grid=(num_tiles,),
      in_specs=[pl.BlockSpec((None, num_rows, num_cols), lambda t: (t, 0, 0)),
                pl.BlockSpec((None, num_pixels, num_state), lambda t: (t, 0, 0)),
                pl.BlockSpec((None, num_pixels), lambda t: (t, 0)),
                pl.BlockSpec((num_r, None, num_pixels, num_state), lambda t: (0, t, 0, 0))],
      out_specs=pl.BlockSpec((num_r, None, num_rows, num_cols), lambda t: (0, t, 0, 0)),
      interpret=s.interpret,
      compiler_params=_compiler_params(s),
      name="fmgs_composite_backward",
  )(packed, state, last, dstates)


@functools.lru_cache(maxsize=None)
def _multi_backward(s: _Static, tiles_per_image: int):
  """The backward over R cotangents; vmapped cotangents join R, vmapped frames join the grid."""

  @custom_batching.custom_vmap
  def backward(packed, count, state, last, dstates):
    del count  # `last` bounds every pixel's rows
    return _backward_call(s, tiles_per_image, packed, state, last, dstates)

  backward.def_vmap(functools.partial(composite.fold_cotangent_batch, backward))
  return backward


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _composite(s: _Static, packed, count):
  return _forward_call(s, packed, count)[0]


def _composite_fwd(s, packed, count):
  state, last = _forward_call(s, packed, count)
  return state, (packed, count, state, last)


def _composite_bwd(s, res, dstate):
  packed, count, state, last = res
  return _multi_backward(s, packed.shape[0])(packed, count, state, last, dstate[None])[0], None


_composite.defvjp(_composite_fwd, _composite_bwd)


def composite_tiles_pallas(packed, count, *, tile_size: int, tiles_x: int, params: CompositeParams,
                           tiles_per_chunk: int = 16, interpret: bool | None = None,
                           num_warps: int = 4):
  """Composites every tile front to back with Pallas kernels, differentiable in `packed`.

  Args:
    packed: (n_tiles, K, F) float32 surfel rows per tile, front to back (layout: composite.py).
    count: (n_tiles,) int32 rows in use per tile; rows >= count are never read.
    tile_size: tile side, pixels; tile_size^2 must be a power of two for the GPU (Triton) lowering.
    tiles_x: tiles per image row.
    params: thresholds.
    tiles_per_chunk: accepted for signature parity with `composite.composite_tiles`; unused (each
      Pallas program is one tile and stops on its own).
    interpret: run the kernels in the Pallas interpreter; default: True unless the default JAX
      backend is a GPU.
    num_warps: Triton warps per program (GPU only).

  Returns:
    (n_tiles, tile_size^2, NUM_STATE + C) final pixel state, as `composite.composite_tiles`.
  """
  del tiles_per_chunk
  num_pixels = tile_size * tile_size
  if interpret is None:
    interpret = jax.default_backend() != "gpu"
  if not interpret and num_pixels & (num_pixels - 1):
    raise ValueError(f"pallas backend on GPU: tile_size^2 = {num_pixels} is not a power of two "
                     "(Triton blocks); use tile_size 4, 8, 16 or 32.")
  count = jnp.minimum(count.astype(jnp.int32), packed.shape[1])
  s = _Static(tile_size, tiles_x, params, bool(interpret), num_warps)
  return _composite(s, packed, count)


def _static(tile_size, tiles_x, params, interpret, num_warps):
  if interpret is None:
    interpret = jax.default_backend() != "gpu"
  return _Static(tile_size, tiles_x, params, bool(interpret), num_warps)


def composite_tiles_pallas_forward(packed, count, *, tile_size: int, tiles_x: int,
                                   params: CompositeParams, interpret: bool | None = None,
                                   num_warps: int = 4):
  """(final state (n_tiles, P, S), rows consumed per pixel (n_tiles, P) int32), as
  `composite.composite_tiles_forward`: what `composite_tiles_pallas_backward` reads."""
  count = jnp.minimum(count.astype(jnp.int32), packed.shape[1])
  return _forward_call(_static(tile_size, tiles_x, params, interpret, num_warps), packed, count)


def composite_tiles_pallas_backward(packed, count, state, last, dstates, *, tile_size: int,
                                    tiles_x: int, params: CompositeParams,
                                    interpret: bool | None = None, num_warps: int = 4):
  """R cotangents at once, as `composite.composite_tiles_backward`: dstates (R, n_tiles, P, S) ->
  (R, n_tiles, K, F); one kernel program per tile recomputes each row once for all R."""
  count = jnp.minimum(count.astype(jnp.int32), packed.shape[1])
  s = _static(tile_size, tiles_x, params, interpret, num_warps)
  return _multi_backward(s, packed.shape[0])(packed, count, state, last, dstates)
