"""Hash grid tests: against closed forms (linear reproduction, trilinear weights) and a NumPy hash."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmgs_jax.fields import hashgrid

PRIMES = (1, 2654435761, 805459861)


def _np_row(corner, resolution, table_size):
  """Brute-force Instant-NGP row of one integer corner, with Python's unbounded ints."""
  i, j, k = (int(v) for v in corner)
  if (resolution + 1) ** 3 <= table_size:
    return (i + j * (resolution + 1) + k * (resolution + 1) ** 2) % table_size
  return ((i * PRIMES[0]) ^ (j * PRIMES[1]) ^ (k * PRIMES[2])) % (2 ** 32) % table_size


def test_level_resolutions_geometric():
  res = hashgrid.level_resolutions(16, 2048, 16)
  assert res[0] == 16 and res[-1] == 2048
  growth = np.exp(np.log(2048 / 16) / 15)
  np.testing.assert_array_equal(res, np.floor(16 * growth ** np.arange(16) + 1e-6))
  assert np.all(np.diff(res) > 0)


def test_hash_matches_numpy_bruteforce():
  rng = np.random.default_rng(0)
  table_size = 2 ** 16
  for resolution in (2048, 700):  # hashed levels
    corners = rng.integers(0, resolution + 1, size=(500, 3)).astype(np.int32)
    got = np.asarray(hashgrid.corner_index(jnp.asarray(corners), resolution, False, table_size))
    want = np.array([_np_row(c, resolution, table_size) for c in corners])
    np.testing.assert_array_equal(got, want)
  resolution = 20  # dense level: 21^3 = 9261 <= 2^16
  corners = rng.integers(0, resolution + 1, size=(500, 3)).astype(np.int32)
  got = np.asarray(hashgrid.corner_index(jnp.asarray(corners), resolution, True, table_size))
  np.testing.assert_array_equal(got, [_np_row(c, resolution, table_size) for c in corners])


def test_dense_flags():
  np.testing.assert_array_equal(hashgrid.level_is_dense(np.array([16, 39, 40, 2048]), 2 ** 16),
                                [True, True, False, False])  # 40^3 = 64000 fits, 41^3 does not


def test_trilinear_reproduces_linear_function():
  lo, hi = np.array([-1.0, -0.5, 0.0]), np.array([1.0, 1.5, 3.0])
  grid = hashgrid.HashGrid(bbox_min=tuple(lo), bbox_max=tuple(hi), num_levels=3, features_per_level=2,
                           log2_table_size=10, base_resolution=2, max_resolution=8)
  res = hashgrid.level_resolutions(2, 8, 3)
  assert np.all(hashgrid.level_is_dense(res, 2 ** 10))
  a = np.array([[0.3, -1.2, 2.0], [1.0, 0.5, -0.7]])  # per-feature linear map of unit-cube coordinates
  b = np.array([0.25, -0.1])
  table = np.zeros((3, 2 ** 10, 2), np.float32)
  for level, n in enumerate(res):
    for i in range(n + 1):
      for j in range(n + 1):
        for k in range(n + 1):
          table[level, _np_row((i, j, k), n, 2 ** 10)] = a @ (np.array([i, j, k]) / n) + b
  points = np.random.default_rng(1).uniform(lo, hi, size=(64, 3)).astype(np.float32)
  points[0] = hi  # the far corner lands in the last cell
  out = np.asarray(grid.apply({"params": {"table": jnp.asarray(table)}}, jnp.asarray(points)))
  want = ((points - lo) / (hi - lo)) @ a.T + b  # same for every level
  assert out.shape == (64, 6)
  for level in range(3):
    np.testing.assert_allclose(out[:, 2 * level:2 * level + 2], want, atol=2e-5)


def test_gradient_wrt_table_is_trilinear_weights():
  table_size = 2 ** 8
  res = hashgrid.level_resolutions(3, 30, 2)  # level 0 dense (4^3 = 64), level 1 hashed
  assert list(hashgrid.level_is_dense(res, table_size)) == [True, False]
  x01 = np.array([[0.37, 0.81, 0.05]], np.float32)
  table = jnp.zeros((2, table_size, 3))
  cot = np.random.default_rng(2).normal(size=(1, 6)).astype(np.float32)
  grad = np.asarray(jax.grad(lambda t: jnp.sum(hashgrid.encode(t, jnp.asarray(x01), res) * cot))(table))
  want = np.zeros((2, table_size, 3))
  for level, n in enumerate(res):
    p = x01[0].astype(np.float64) * n
    cell = np.floor(p).astype(int)
    f = p - cell
    for dx in (0, 1):
      for dy in (0, 1):
        for dz in (0, 1):
          w = (f[0] if dx else 1 - f[0]) * (f[1] if dy else 1 - f[1]) * (f[2] if dz else 1 - f[2])
          row = _np_row(cell + (dx, dy, dz), n, table_size)
          want[level, row] += w * cot[0, 3 * level:3 * level + 3]
  np.testing.assert_allclose(grad, want, atol=1e-6)


def test_module_shapes_and_init_range():
  grid = hashgrid.HashGrid(bbox_min=(-1, -1, -1), bbox_max=(1, 1, 1), log2_table_size=12)
  params = grid.init(jax.random.PRNGKey(0), jnp.zeros((2, 5, 3)))
  assert params["params"]["table"].shape == (16, 2 ** 12, 2)
  assert float(jnp.max(jnp.abs(params["params"]["table"]))) <= 1e-4
  out = grid.apply(params, jnp.full((2, 5, 3), 7.0))  # outside the box: clamped, finite
  assert out.shape == (2, 5, 32) and bool(jnp.all(jnp.isfinite(out)))


def test_bad_bbox_raises():
  grid = hashgrid.HashGrid(bbox_min=(0, 0, 0), bbox_max=(1, 0, 1))
  with pytest.raises(ValueError, match="bbox_max"):
    grid.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
