"""Pallas compositing backend (interpret mode on CPU) against the xla backend and independent oracles.

Oracles: a float64 numpy per-pixel loop that intersects rays with the surfel planes geometrically (not
through the packed homography coefficients), float64 central finite differences, the xla backend's
`composite_tiles` and its VJP, and, end to end, `rasterize(backend="xla")` and the dense reference.
"""

import contextlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmgs_jax.render import Surfels, composite, look_at, pallas_composite, project, rasterize

PARAMS = composite.CompositeParams(alpha_min=1 / 255, alpha_max=0.99, transmittance_min=1e-4,
                                   near=0.01, far=100.0)
K = np.array([[40.0, 0.0, 15.0], [0.0, 44.0, 17.0], [0.0, 0.0, 1.0]])


@contextlib.contextmanager
def _x64():
  old = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  try:
    yield
  finally:
    jax.config.update("jax_enable_x64", old)


def _camera_surfels(rng, n, num_channels, size=1.0, opacity_scale=1.0):
  """Camera-space surfels sorted by centre depth: centres, frames (columns u, v, n), scales, ..."""
  centres = np.stack([rng.uniform(-0.5, 0.5, n), rng.uniform(-0.5, 0.5, n),
                      rng.uniform(1.0, 3.0, n)], -1)
  frames, _ = np.linalg.qr(rng.normal(size=(n, 3, 3)))
  scales = size * rng.uniform(0.03, 0.3, (n, 2))
  opacities = np.minimum(opacity_scale * rng.uniform(0.3, 1.0, n), 1.0)
  features = rng.uniform(0.0, 1.0, (n, num_channels))
  order = np.argsort(centres[:, 2])
  return tuple(x[order] for x in (centres, frames, scales, opacities, features))


def _rows(centres, frames, scales, opacities, features):
  """Packed rows (n, F) in composite.py's layout, via project.pack_rows."""
  t = K @ np.stack([frames[:, :, 0] * scales[:, :1], frames[:, :, 1] * scales[:, 1:], centres], -1)
  facing = np.sum(frames[:, :, 2] * centres, -1) < 0
  normal = frames[:, :, 2] * np.where(facing, 1.0, -1.0)[:, None]
  return np.asarray(project.pack_rows(jnp.asarray(t), jnp.asarray(normal), jnp.asarray(opacities),
                                      jnp.asarray(features)))


def _brute_force(surfels, px, py, params):
  """Final pixel states (P, NUM_STATE + C), float64, one ray at a time; stops like 2DGS."""
  centres, frames, scales, opacities, features = surfels
  kinv = np.linalg.inv(K)
  out = []
  for x, y in zip(px, py):
    d = kinv @ np.array([x, y, 1.0])
    t_acc, dist, m1, m2, depth_sum, median = 1.0, 0.0, 0.0, 0.0, 0.0, 0.0
    normal_sum, color = np.zeros(3), np.zeros(features.shape[1])
    for p, r, s, o, f in zip(centres, frames, scales, opacities, features):
      # p + a s_u u + b s_v v = t d
      a, b, t = np.linalg.solve(np.stack([s[0] * r[:, 0], s[1] * r[:, 1], -d], -1), -p)
      center = K @ p
      rho3d = a * a + b * b
      rho2d = 2.0 * ((center[0] / center[2] - x) ** 2 + (center[1] / center[2] - y) ** 2)
      rho, z = (rho3d, t) if rho3d <= rho2d else (rho2d, p[2])
      alpha = min(params.alpha_max, o * np.exp(-0.5 * rho))
      if z < params.near or alpha < params.alpha_min or alpha <= 0:
        continue
      if t_acc * (1 - alpha) < params.transmittance_min:
        break
      w = alpha * t_acc
      m = params.far / (params.far - params.near) * (1 - params.near / z)
      dist += (m * m * (1 - t_acc) + m2 - 2 * m * m1) * w
      m1 += m * w
      m2 += m * m * w
      depth_sum += z * w
      if t_acc > 0.5:
        median = z
      normal_sum += (r[:, 2] if r[:, 2] @ p < 0 else -r[:, 2]) * w
      color += f * w
      t_acc *= 1 - alpha
    out.append(np.concatenate([[t_acc, depth_sum, m1, m2, dist, median], normal_sum, color]))
  return np.array(out)


def _tiles(rows, counts, pad_value):
  """(n_tiles, K, F): tile t holds the first counts[t] rows (front to back), pad_value after."""
  table = np.full((len(counts),) + rows.shape, pad_value, rows.dtype)
  for t, n in enumerate(counts):
    table[t, :n] = rows[:n]
  return table, np.asarray(counts, np.int32)


def _pallas(table, count, tile_size, tiles_x, params=PARAMS):
  return pallas_composite.composite_tiles_pallas(jnp.asarray(table), jnp.asarray(count),
                                                 tile_size=tile_size, tiles_x=tiles_x, params=params)


def _xla(table, count, tile_size, tiles_x, params=PARAMS):
  return composite.composite_tiles(jnp.asarray(table), jnp.asarray(count), tile_size=tile_size,
                                   tiles_x=tiles_x, params=params, tiles_per_chunk=2)


# Dense enough (large, opaque surfels) that most pixels of the second scene stop early.
SCENES = [dict(size=1.0, opacity_scale=1.0, counts=(12, 5, 0, 12)),
          dict(size=6.0, opacity_scale=8.0, counts=(12, 12, 7, 1))]


@pytest.mark.parametrize("scene", SCENES)
def test_forward_matches_brute_force_and_xla(scene):
  rng = np.random.default_rng(0)
  surfels = _camera_surfels(rng, 12, 3, scene["size"], scene["opacity_scale"])
  rows = _rows(*surfels).astype(np.float32)
  # NaN padding: the kernel must never read rows >= count.
  got = np.asarray(_pallas(*_tiles(rows, scene["counts"], np.nan), 16, 2))
  chex.assert_shape(got, (4, 256, composite.NUM_STATE + 3))
  want_xla = np.asarray(_xla(*_tiles(rows, scene["counts"], 0.0), 16, 2))
  np.testing.assert_allclose(got, want_xla, rtol=1e-5, atol=1e-6)
  for t, n in enumerate(scene["counts"]):
    px, py = (np.asarray(a) for a in composite.tile_pixel_centers(t, 16, 2))
    want = _brute_force([x[:n] for x in surfels], px, py, PARAMS)
    np.testing.assert_allclose(got[t], want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("scene", SCENES)
def test_vjp_matches_xla(scene):
  rng = np.random.default_rng(2)
  rows = _rows(*_camera_surfels(rng, 12, 3, scene["size"], scene["opacity_scale"]))
  table, count = _tiles(rows.astype(np.float32), scene["counts"], 0.0)
  cot = jnp.asarray(rng.normal(size=(4, 256, composite.NUM_STATE + 3)), jnp.float32)
  got = jax.vjp(lambda x: _pallas(x, count, 16, 2), jnp.asarray(table))[1](cot)[0]
  want = jax.vjp(lambda x: _xla(x, count, 16, 2), jnp.asarray(table))[1](cot)[0]
  scale = np.abs(np.asarray(want)).max(axis=(0, 1), keepdims=True) + 1e-6
  np.testing.assert_allclose(np.asarray(got) / scale, np.asarray(want) / scale, atol=2e-5)


@pytest.mark.parametrize("scene", SCENES)
def test_vjp_matches_finite_differences(scene):
  """Float64: central differences of a random projection of the state w.r.t. every table entry."""
  with _x64():
    rng = np.random.default_rng(1)
    rows = _rows(*_camera_surfels(rng, 6, 2, scene["size"], scene["opacity_scale"]))
    table, count = _tiles(rows, scene["counts"][:2], 0.0)
    count = np.minimum(count, 6)
    weights = jnp.asarray(rng.normal(size=(2, 64, composite.NUM_STATE + 2)))
    f = jax.jit(lambda x: jnp.sum(_pallas(x, count, 8, 2) * weights))
    grad = np.asarray(jax.grad(f)(jnp.asarray(table)))
    eps = 1e-6
    numeric = np.zeros_like(table)
    for idx in np.ndindex(table.shape):
      d = np.zeros_like(table)
      d[idx] = eps
      numeric[idx] = (f(jnp.asarray(table + d)) - f(jnp.asarray(table - d))) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6 * np.abs(numeric).max())


def test_kernels_lower_to_triton_ir():
  """Forward and backward lower (Pallas -> Triton IR) for a CUDA target; running them needs a GPU."""
  count = jax.ShapeDtypeStruct((4,), jnp.int32)
  table = jax.ShapeDtypeStruct((4, 32, composite.NUM_GEOMETRY_COLUMNS + 3), jnp.float32)

  def loss(x, c):
    return jnp.sum(pallas_composite.composite_tiles_pallas(x, c, tile_size=16, tiles_x=2,
                                                           params=PARAMS, interpret=False))

  lowered = jax.jit(jax.grad(loss)).trace(table, count).lower(lowering_platforms=("cuda",))
  text = lowered.as_text()
  assert text.count("__gpu$xla.gpu.triton") == 2
  assert "fmgs_composite_forward" in text and "fmgs_composite_backward" in text


def test_rasterize_pallas_matches_xla_and_gradients():
  """End to end on 40x24 (3x2 tiles of 16, partly outside the image): outputs and gradients."""
  rng = np.random.default_rng(3)
  n, num_channels = 24, 4
  frames, _ = np.linalg.qr(rng.normal(size=(n, 3, 3)))
  surfels = Surfels(means=jnp.asarray(rng.uniform(-0.6, 0.6, (n, 3)), jnp.float32),
                    rotations=jnp.asarray(frames, jnp.float32),
                    scales=jnp.asarray(rng.uniform(0.05, 0.3, (n, 2)), jnp.float32),
                    opacities=jnp.asarray(rng.uniform(0.3, 1.0, n), jnp.float32),
                    features=jnp.asarray(rng.uniform(0.0, 1.0, (n, num_channels)), jnp.float32))
  camera = look_at(eye=(0.3, -0.2, -2.5), target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), fx=30.0,
                   fy=30.0, width=40, height=24)
  background = jnp.asarray([0.1, 0.2, 0.3, 0.4], jnp.float32)
  shapes = dict(color=(24, 40, num_channels), alpha=(24, 40), depth=(24, 40), median_depth=(24, 40),
                normal=(24, 40, 3), distortion=(24, 40))
  outputs = tuple(shapes)
  weights = {k: jnp.asarray(rng.normal(size=shape), jnp.float32) for k, shape in shapes.items()}

  def loss(s, backend):
    out = rasterize(s, camera, background, backend=backend)
    return sum(jnp.sum(getattr(out, k) * weights[k]) for k in outputs), out

  (_, got), grad_got = jax.value_and_grad(loss, has_aux=True)(surfels, "pallas")
  (_, want), grad_want = jax.value_and_grad(loss, has_aux=True)(surfels, "xla")
  dense = rasterize(surfels, camera, background, backend="reference")
  assert float(jnp.max(got.alpha)) > 0.5  # the scene covers the image
  for k in outputs:
    np.testing.assert_allclose(getattr(got, k), getattr(want, k), rtol=1e-5, atol=1e-5, err_msg=k)
    np.testing.assert_allclose(getattr(got, k), getattr(dense, k), rtol=1e-4, atol=1e-4, err_msg=k)
  for field in ("means", "rotations", "scales", "opacities", "features"):
    g, w = np.asarray(getattr(grad_got, field)), np.asarray(getattr(grad_want, field))
    assert np.abs(w).max() > 0, field
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * np.abs(w).max(), err_msg=field)


def test_count_beyond_capacity_is_clamped_and_bad_gpu_tile_size_is_rejected():
  rng = np.random.default_rng(4)
  rows = _rows(*_camera_surfels(rng, 5, 1)).astype(np.float32)
  table, count = _tiles(rows, (5, 5), 0.0)
  np.testing.assert_array_equal(_pallas(table, np.array([99, 5], np.int32), 8, 2),
                                _pallas(table, count, 8, 2))
  with pytest.raises(ValueError, match="tile_size"):
    pallas_composite.composite_tiles_pallas(jnp.asarray(table), jnp.asarray(count), tile_size=12,
                                            tiles_x=2, params=PARAMS, interpret=False)
