"""Tests of the Pallas compositing kernels (interpret mode on CPU)."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmgs_jax.render import pallas_composite as pc

TH = pc.Thresholds(alpha_min=1 / 255, alpha_max=0.99, transmittance_min=1e-4, near=0.01, far=100.0)
FX, FY, CX, CY = 40.0, 44.0, 15.0, 17.0


@contextlib.contextmanager
def _x64():
  old = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  try:
    yield
  finally:
    jax.config.update("jax_enable_x64", old)


def _random_surfels(rng, n, num_channels, size=1.0):
  """Camera-space surfels: centres (n,3), tangent frames (n,3,3), scales (n,2), opacities, features."""
  centres = np.stack([rng.uniform(-0.5, 0.5, n), rng.uniform(-0.5, 0.5, n), rng.uniform(1.0, 3.0, n)], -1)
  q, _ = np.linalg.qr(rng.normal(size=(n, 3, 3)))
  scales = size * rng.uniform(0.03, 0.3, (n, 2))
  opacities = rng.uniform(0.3, 1.0, n)
  features = rng.uniform(0.0, 1.0, (n, num_channels))
  return centres, q, scales, opacities, features


def _pack(centres, frames, scales, opacities, features):
  """Rows of the documented packed layout for camera-space surfels, sorted by centre depth."""
  k = np.array([[FX, 0, CX], [0, FY, CY], [0, 0, 1.0]])
  rows = []
  for p, r, s, o, f in zip(centres, frames, scales, opacities, features):
    h = np.stack([r[:, 0] * s[0], r[:, 1] * s[1], p], -1)
    m = k @ h
    normal = r[:, 2] if r[:, 2] @ p < 0 else -r[:, 2]
    rows.append(np.concatenate([m[0], m[1], m[2], m[:2, 2] / m[2, 2], [o], normal, f]))
  rows = np.array(rows)
  return rows[np.argsort(rows[:, pc.TW + 2], kind="stable")]


def _brute_force(rows, px, py, th, background_free=True):
  """Per-pixel 2DGS compositing in float64 numpy, from the ray-plane intersection (not the homography)."""
  kinv = np.linalg.inv(np.array([[FX, 0, CX], [0, FY, CY], [0, 0, 1.0]]))
  num_channels = rows.shape[1] - pc.NUM_GEOMETRY_COLUMNS
  out = []
  for x, y in zip(px, py):
    d = kinv @ np.array([x, y, 1.0])
    t_acc, dist, m1, m2, depth_acc, median = 1.0, 0.0, 0.0, 0.0, 0.0, 0.0
    normal, color = np.zeros(3), np.zeros(num_channels)
    for row in rows:
      m = np.stack([row[pc.TU:pc.TU + 3], row[pc.TV:pc.TV + 3], row[pc.TW:pc.TW + 3]])
      h = kinv @ m  # columns: su*u, sv*v, centre (camera space)
      a, b, t = np.linalg.solve(np.stack([h[:, 0], h[:, 1], -d], -1), -h[:, 2])
      rho3d = a * a + b * b
      rho2d = 2.0 * ((row[pc.CENTER] - x) ** 2 + (row[pc.CENTER + 1] - y) ** 2)
      rho, z = (rho3d, t) if rho3d <= rho2d else (rho2d, m[2, 2])
      alpha = min(th.alpha_max, row[pc.OPACITY] * np.exp(-0.5 * rho))
      if z < th.near or alpha < th.alpha_min:
        continue
      if t_acc * (1 - alpha) < th.transmittance_min:
        break
      w = alpha * t_acc
      mm = th.far / (th.far - th.near) * (1 - th.near / z)
      dist += (mm * mm * (1 - t_acc) + m2 - 2 * mm * m1) * w
      m1 += mm * w
      m2 += mm * mm * w
      depth_acc += z * w
      if t_acc > 0.5:
        median = z
      normal += row[pc.NORMAL:pc.NORMAL + 3] * w
      color += row[pc.FEATURES:] * w
      t_acc *= 1 - alpha
    out.append(np.concatenate([[t_acc, depth_acc, m1, m2, dist, median], normal, color]))
  return np.array(out)


def _tiles(rng, num_surfels, num_channels, counts, size=1.0):
  """(n_tiles, K, F) table where every tile holds the first counts[t] rows of one sorted scene, NaN after."""
  rows = _pack(*_random_surfels(rng, num_surfels, num_channels, size))
  table = np.full((len(counts), num_surfels, rows.shape[1]), np.nan)
  for t, n in enumerate(counts):
    table[t, :n] = rows[:n]
  return table, np.asarray(counts, np.int32)


def _tile_pixels(t, tile_size, tiles_x):
  p = np.arange(tile_size * tile_size)
  px = (t % tiles_x) * tile_size + p % tile_size + 0.5
  py = (t // tiles_x) * tile_size + p // tile_size + 0.5
  return px, py


@pytest.mark.parametrize("opacity_scale,size,counts", [(1.0, 1.0, (12, 5, 0, 12)), (8.0, 6.0, (12, 12, 7, 1))])
def test_forward_matches_brute_force(opacity_scale, size, counts):
  """Thresholds active; the second scene is dense enough that most pixels stop early."""
  rng = np.random.default_rng(0)
  table, count = _tiles(rng, 12, 3, counts, size)
  table[..., pc.OPACITY] = np.minimum(table[..., pc.OPACITY] * opacity_scale, 1.0)
  s = pc._Static(16, 2, 3, TH, True)
  state, last = pc._composite(s, jnp.asarray(count), jnp.asarray(table, jnp.float32))
  for t, n in enumerate(counts):
    want = _brute_force(table[t, :n], *_tile_pixels(t, 16, 2), TH)
    np.testing.assert_allclose(np.asarray(state[t]), want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("opacity_scale,size", [(1.0, 1.0), (8.0, 6.0)])
def test_vjp_matches_finite_differences(opacity_scale, size):
  """Float64 central differences of a random projection of the per-pixel state w.r.t. every table entry."""
  with _x64():
    rng = np.random.default_rng(1)
    table, count = _tiles(rng, 6, 2, (6, 4), size)
    table[..., pc.OPACITY] = np.minimum(table[..., pc.OPACITY] * opacity_scale, 1.0)
    table = np.nan_to_num(table)
    s = pc._Static(8, 2, 2, TH, True)
    weights = jnp.asarray(rng.normal(size=(2, 64, pc._num_state(2))))
    f = jax.jit(lambda x: jnp.sum(pc._composite(s, jnp.asarray(count), x)[0] * weights))
    grad = np.asarray(jax.grad(f)(jnp.asarray(table)))
    eps = 1e-6
    numeric = np.zeros_like(table)
    for idx in np.ndindex(table.shape):
      d = np.zeros_like(table)
      d[idx] = eps
      numeric[idx] = (f(jnp.asarray(table + d)) - f(jnp.asarray(table - d))) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6 * np.abs(numeric).max())


def test_kernels_lower_to_triton_ir():
  """Both kernels lower (Pallas -> Triton IR) for a CUDA target; compiling that IR needs a GPU."""
  s = pc._Static(16, 2, 3, TH, interpret=False)
  count = jax.ShapeDtypeStruct((4,), jnp.int32)
  table = jax.ShapeDtypeStruct((4, 32, pc.NUM_GEOMETRY_COLUMNS + 3), jnp.float32)
  loss = lambda c, t: jnp.sum(pc._composite(s, c, t)[0])
  lowered = jax.jit(jax.grad(loss, argnums=1)).trace(count, table).lower(lowering_platforms=("cuda",))
  text = lowered.as_text()
  assert text.count("__gpu$xla.gpu.triton") == 2
  assert "fmgs_composite_forward" in text and "fmgs_composite_backward" in text
