"""The R-cotangent compositing backward (one recompute per tile, R pull-backs) against R separate VJPs.

Reference: R calls of the single-cotangent VJP, one cotangent each (whose own correctness the
rasterizer tests check against the dense reference and finite differences). Checked for the xla
backend and the Pallas kernels (interpret mode), through `rasterize` with cotangents on every output
(colour and semantic channels, alpha, depth, median depth, normal, distortion), vmapped over
cotangents alone and over frames too, and through `composite_tiles_backward` called directly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmgs_jax.render import composite, pallas_composite, rasterize
from render_scenes import random_scene

OUTPUTS = ("color", "alpha", "depth", "median_depth", "normal", "distortion")
FIELDS = ("means", "rotations", "scales", "opacities", "features")
R = 3  # not a power of two: nothing may assume one


def _render(backend, camera, background):
  def render(s):
    out = rasterize(s, camera, background, backend=backend, tile_size=8)
    return {k: getattr(out, k) for k in OUTPUTS}
  return render


def _cotangents(out, rng, num):
  return [jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), x.dtype), out) for _ in range(num)]


def _assert_rows_equal(got, want_rows):
  for r, want in enumerate(want_rows):
    for field in FIELDS:
      g, w = np.asarray(getattr(got, field)[r]), np.asarray(getattr(want, field))
      scale = np.abs(w).max()
      assert scale > 0, field
      np.testing.assert_allclose(g, w, rtol=0, atol=2e-6 * scale, err_msg=f"{field}, cotangent {r}")


@pytest.mark.parametrize("backend", ["xla", "pallas"])
@pytest.mark.parametrize("frames", [0, 2])
def test_vmapped_vjp_equals_separate_vjps(backend, frames):
  """frames = 0: one image; 2: a vmap over two frames (moved surfels) inside the VJP."""
  surfels, camera, background = random_scene(7, 24, 16, 16, channels=5)
  render = _render(backend, camera, background)
  if frames:
    shifts = jnp.linspace(0.0, 0.15, frames)[:, None]
    fn = lambda s: jax.vmap(lambda d: render(s.replace(means=s.means + d)))(shifts)
  else:
    fn = render
  out, vjp = jax.vjp(fn, surfels)
  assert float(jnp.max(out["alpha"])) > 0.5
  cts = _cotangents(out, np.random.default_rng(1), R)
  got = jax.jit(jax.vmap(lambda ct: vjp(ct)[0]))(jax.tree.map(lambda *x: jnp.stack(x), *cts))
  one = jax.jit(lambda ct: vjp(ct)[0])
  _assert_rows_equal(got, [one(ct) for ct in cts])


@pytest.mark.parametrize("backend", ["xla", "pallas"])
def test_direct_backward_equals_separate_vjps(backend):
  """`composite_tiles_backward` (explicit R axis) on a random tile table, padding rows included."""
  rng = np.random.default_rng(3)
  tiles_x, tile_size, capacity = 2, 8, 24
  surfels, cam, _ = random_scene(5, 30, 16, 16, channels=2, hard=False)
  from fmgs_jax.render import binning, project  # pylint: disable=g-import-not-at-top
  params = composite.CompositeParams(1 / 255, 0.99, 1e-4, cam.near, cam.far)
  proj = project.project_surfels(surfels, cam, params.alpha_min, tile_size, params.filter_inv_square)
  bins = binning.bin_surfels(proj.tile_bbox, proj.depth, proj.visible, tiles_x, 2, capacity, 4 * 30)
  packed = binning.gather_rows(proj.rows, bins.index)
  assert int(jnp.max(bins.count)) > 3 and int(jnp.min(bins.count)) < capacity
  kwargs = dict(tile_size=tile_size, tiles_x=tiles_x, params=params)
  if backend == "xla":
    fn = lambda p: composite.composite_tiles(p, bins.count, tiles_per_chunk=2, **kwargs)
  else:
    fn = lambda p: pallas_composite.composite_tiles_pallas(p, bins.count, **kwargs)
  state, vjp = jax.vjp(fn, packed)
  dstates = jnp.asarray(rng.normal(size=(R,) + state.shape), jnp.float32)
  if backend == "xla":
    state2, last = composite.composite_tiles_forward(packed, bins.count, tiles_per_chunk=2, **kwargs)
    got = composite.composite_tiles_backward(packed, bins.count, state2, last, dstates,
                                             tiles_per_chunk=2, **kwargs)
  else:
    state2, last = pallas_composite.composite_tiles_pallas_forward(packed, bins.count, **kwargs)
    got = pallas_composite.composite_tiles_pallas_backward(packed, bins.count, state2, last, dstates,
                                                           **kwargs)
  np.testing.assert_array_equal(np.asarray(state2), np.asarray(state))
  for r in range(R):
    want = np.asarray(vjp(dstates[r])[0])
    np.testing.assert_allclose(np.asarray(got[r]), want, rtol=0, atol=2e-6 * np.abs(want).max(),
                               err_msg=f"cotangent {r}")


def test_vmapped_pallas_backward_lowers_to_one_triton_kernel():
  """R vmapped cotangents lower (Pallas -> Triton IR, CUDA target) to one backward kernel call."""
  table = jax.ShapeDtypeStruct((4, 32, composite.NUM_GEOMETRY_COLUMNS + 3), jnp.float32)
  count = jax.ShapeDtypeStruct((4,), jnp.int32)
  params = composite.CompositeParams(1 / 255, 0.99, 1e-4, 0.01, 100.0)

  def pulled(x, c, cts):
    f = lambda y: pallas_composite.composite_tiles_pallas(y, c, tile_size=16, tiles_x=2, params=params,
                                                           interpret=False)
    _, vjp = jax.vjp(f, x)
    return jax.vmap(lambda ct: vjp(ct)[0])(cts)

  cts = jax.ShapeDtypeStruct((R, 4, 256, composite.NUM_STATE + 3), jnp.float32)
  text = jax.jit(pulled).trace(table, count, cts).lower(lowering_platforms=("cuda",)).as_text()
  assert text.count("__gpu$xla.gpu.triton") == 2
  assert "fmgs_composite_backward" in text
