"""2DGS rasterizer: xla backend vs the dense reference, closed forms, hand-computed compositing,
finite differences (float64), and overflow reporting."""

import contextlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmgs_jax.render import rasterize
from render_scenes import camera, facing_surfels, random_scene

FIELDS = ("color", "alpha", "depth", "median_depth", "normal", "distortion")


@contextlib.contextmanager
def x64():
  old = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  try:
    yield
  finally:
    jax.config.update("jax_enable_x64", old)


def _assert_close(a, b, atol):
  for f in FIELDS:
    x, y = np.asarray(getattr(a, f)), np.asarray(getattr(b, f))
    chex.assert_equal_shape([x, y])
    if f == "depth":  # normalised by alpha: compare alpha-weighted
      x, y = x * np.asarray(a.alpha), y * np.asarray(b.alpha)
    np.testing.assert_allclose(x, y, atol=atol, rtol=0, err_msg=f)


@pytest.mark.parametrize("seed,n,width,height", [(0, 40, 37, 29), (1, 160, 64, 48), (2, 400, 80, 72)])
@pytest.mark.parametrize("thresholds", ["default", "zero"])
def test_xla_matches_reference(seed, n, width, height, thresholds):
  s, cam, bg = random_scene(seed, n, width, height)
  kw = {} if thresholds == "default" else dict(alpha_min=0.0, transmittance_min=0.0)
  ref = rasterize(s, cam, bg, backend="reference", **kw)
  out = rasterize(s, cam, bg, backend="xla", tile_capacity=n, pair_capacity=n * 30, **kw)
  assert int(out.overflow) == 0
  chex.assert_shape(out.color, (height, width, 3))
  chex.assert_shape(out.normal, (height, width, 3))
  _assert_close(out, ref, atol=1e-4)
  assert float(jnp.max(out.alpha)) > 0.9  # the scene is not empty


def test_gradients_match_reference():
  s, cam, bg = random_scene(3, 80, 40, 36)
  w = jax.random.normal(jax.random.PRNGKey(0), (36, 40, 12))

  def loss(s, backend):
    o = rasterize(s, cam, bg, backend=backend)
    maps = jnp.concatenate([o.color, o.alpha[..., None], o.depth[..., None], o.median_depth[..., None],
                            o.normal, 100 * o.distortion[..., None]], -1)
    return jnp.sum(maps * w[..., :maps.shape[-1]])

  g_ref = jax.grad(loss)(s, "reference")
  g_xla = jax.grad(loss)(s, "xla")
  for f in ("means", "rotations", "scales", "opacities", "features"):
    a, b = np.asarray(getattr(g_ref, f)), np.asarray(getattr(g_xla, f))
    assert np.all(np.isfinite(b)), f
    np.testing.assert_allclose(b, a, atol=2e-3 * np.abs(a).max(), err_msg=f)


@pytest.mark.parametrize("backend", ["reference", "xla"])
def test_gradients_match_finite_differences_float64(backend):
  with x64():
    s, cam, bg = random_scene(4, 12, 20, 18, dtype=jnp.float64, hard=False)
    w = jax.random.normal(jax.random.PRNGKey(1), (18, 20, 12), jnp.float64)

    def loss(s):
      o = rasterize(s, cam, bg, backend=backend)
      maps = jnp.concatenate([o.color, o.alpha[..., None], o.depth[..., None],
                              o.median_depth[..., None], o.normal, 100 * o.distortion[..., None]], -1)
      return jnp.sum(maps * w[..., :maps.shape[-1]])

    grad = jax.grad(loss)(s)
    rng = np.random.default_rng(0)
    h = 1e-6
    for f in ("means", "rotations", "scales", "opacities", "features"):
      x = getattr(s, f)
      d = jnp.asarray(rng.normal(size=x.shape))
      plus = loss(s.replace(**{f: x + h * d}))
      minus = loss(s.replace(**{f: x - h * d}))
      fd = (plus - minus) / (2 * h)
      an = jnp.sum(getattr(grad, f) * d)
      assert abs(float(fd - an)) <= 1e-5 * max(1.0, abs(float(fd))), (f, float(fd), float(an))


@pytest.mark.parametrize("backend", ["reference", "xla"])
@pytest.mark.parametrize("scale,radius", [(0.05, 0.5 ** 0.5), (0.002, 0.5 ** 0.5), (0.002, 0.35), (0.002, 1.5)])
def test_single_facing_surfel_is_the_analytic_gaussian(backend, scale, radius):
  """2DGS closed form: rho3d from the ray-plane hit, rho2d from the filter of radius r px
  (rho2d = d^2 / r^2), alpha = min(.99, o e^-rho/2)."""
  width, height, z, o = 33, 31, 2.0, 0.9
  cam = camera(width, height)
  K = np.asarray(cam.K, np.float64)
  centre = np.array([0.03, -0.02, z])
  s = facing_surfels([centre], [[scale, 1.5 * scale]], [o], [[1.0, 0.5, 0.25]])
  bg = jnp.array([0.1, 0.2, 0.3])
  out = rasterize(s, cam, bg, backend=backend, low_pass_radius=radius)
  py, px = np.mgrid[:height, :width] + 0.5
  hit_x = (px - K[0, 2]) / K[0, 0] * z - centre[0]
  hit_y = (py - K[1, 2]) / K[1, 1] * z - centre[1]
  rho3d = (hit_x / scale) ** 2 + (hit_y / (1.5 * scale)) ** 2
  cx, cy = K[0, 0] * centre[0] / z + K[0, 2], K[1, 1] * centre[1] / z + K[1, 2]
  rho2d = ((px - cx) ** 2 + (py - cy) ** 2) / radius ** 2
  alpha = np.minimum(0.99, o * np.exp(-0.5 * np.minimum(rho3d, rho2d)))
  alpha = np.where(alpha >= 1 / 255, alpha, 0.0)
  np.testing.assert_allclose(out.alpha, alpha, atol=2e-6)
  np.testing.assert_allclose(out.color, alpha[..., None] * [1.0, 0.5, 0.25]
                             + (1 - alpha[..., None]) * np.asarray(bg), atol=2e-6)
  np.testing.assert_allclose(out.depth, np.where(alpha > 0, z, 0.0), atol=5e-5)  # D / alpha, float32
  np.testing.assert_allclose(out.normal, alpha[..., None] * [0, 0, -1.0], atol=2e-6)
  np.testing.assert_allclose(out.distortion, 0.0, atol=1e-7)  # one surfel: no spread
  assert np.sum(rho3d < rho2d) > 0 if scale == 0.05 else np.all(rho2d[alpha > 0] < rho3d[alpha > 0])
  assert np.sum(alpha > 0) > 1  # the filter's disk covers more than one pixel centre


def test_low_pass_radius_must_be_positive():
  cam = camera(8, 8)
  s = facing_surfels([[0.0, 0.0, 2.0]], [[0.01, 0.01]], [0.5], [[1.0, 1.0, 1.0]])
  with pytest.raises(ValueError, match="low_pass_radius"):
    rasterize(s, cam, jnp.zeros(3), low_pass_radius=0.0)


def _three(order, opacities=(0.5, 0.6, 0.7), depths=(1.0, 2.0, 3.0)):
  """Three large camera-facing surfels on the axis through a pixel centre, listed in `order`."""
  width = height = 32
  cam = camera(width, height)
  K = np.asarray(cam.K)
  # Centre on the ray of pixel (16, 16) so that rho = 0 and alpha = opacity there.
  ray = np.array([(16.5 - K[0, 2]) / K[0, 0], (16.5 - K[1, 2]) / K[1, 1], 1.0])
  cols = np.eye(3)
  idx = list(order)
  s = facing_surfels([ray * depths[i] for i in idx], [[1.0, 1.0]] * 3,
                     [opacities[i] for i in idx], [cols[i] for i in idx])
  return s, cam


@pytest.mark.parametrize("backend", ["reference", "xla"])
@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0)])
def test_front_to_back_by_hand(backend, order):
  s, cam = _three(order)
  bg = jnp.array([0.2, 0.2, 0.2])
  out = rasterize(s, cam, bg, backend=backend)
  near, far = cam.near, cam.far
  a = np.array([0.5, 0.6, 0.7])
  t = np.array([1.0, 0.5, 0.2])  # transmittance before each, near to far
  w = a * t
  d = np.array([1.0, 2.0, 3.0])
  np.testing.assert_allclose(out.color[16, 16], w + 0.06 * 0.2, atol=1e-6)
  np.testing.assert_allclose(out.alpha[16, 16], 0.94, atol=1e-6)
  np.testing.assert_allclose(out.depth[16, 16], np.sum(w * d) / 0.94, rtol=1e-6)
  np.testing.assert_allclose(out.median_depth[16, 16], 1.0, rtol=1e-6)  # T > 0.5 only before the first
  m = far / (far - near) * (1 - near / d)
  dist = sum(w[i] * w[j] * (m[i] - m[j]) ** 2 for i in range(3) for j in range(i))  # 2DGS pair form
  np.testing.assert_allclose(out.distortion[16, 16], dist, rtol=1e-4, atol=1e-7)  # float32 cancellation


@pytest.mark.parametrize("backend", ["reference", "xla"])
def test_transmittance_stop_excludes_the_crossing_surfel(backend):
  # T: 1 -> 0.02 -> 4e-4; the third (alpha 0.9) would give 4e-5 < 1e-4: it and all later are skipped.
  s, cam = _three((0, 1, 2), opacities=(0.98, 0.98, 0.9))
  bg = jnp.array([0.0, 0.0, 0.0])
  out = rasterize(s, cam, bg, backend=backend)
  np.testing.assert_allclose(out.color[16, 16], [0.98, 0.02 * 0.98, 0.0], atol=1e-6)
  np.testing.assert_allclose(out.alpha[16, 16], 1 - 0.02 * 0.02, atol=1e-6)
  full = rasterize(s, cam, bg, backend=backend, transmittance_min=0.0)
  np.testing.assert_allclose(full.color[16, 16, 2], 4e-4 * 0.9, rtol=1e-4)


def test_overflow_is_reported_and_keeps_the_nearest():
  n = 20
  rng = np.random.default_rng(5)
  cam = camera(16, 16)
  z = rng.uniform(1.0, 3.0, n)
  s = facing_surfels(np.stack([np.zeros(n), np.zeros(n), z], 1), np.full((n, 2), 0.05),
                     np.full(n, 0.3), rng.uniform(0, 1, (n, 3)))
  bg = jnp.zeros(3)
  out = rasterize(s, cam, bg, backend="xla", tile_capacity=8)
  assert int(out.overflow) == n - 8
  nearest = np.argsort(z)[:8]
  ref = rasterize(jax.tree_util.tree_map(lambda x: x[nearest], s), cam, bg, backend="reference")
  _assert_close(out, ref, atol=1e-5)
  assert int(rasterize(s, cam, bg, backend="xla", tile_capacity=n).overflow) == 0
  assert int(rasterize(s, cam, bg, backend="xla", tile_capacity=n, pair_capacity=12).overflow) == 8


def test_bad_input_names_the_field():
  s, cam, bg = random_scene(0, 8, 16, 16)
  with pytest.raises(ValueError, match="Surfels.scales"):
    rasterize(s.replace(scales=s.scales[:, :1]), cam, bg)
  with pytest.raises(ValueError, match="background"):
    rasterize(s, cam, jnp.zeros(4))
  with pytest.raises(ValueError, match="backend"):
    rasterize(s, cam, bg, backend="cuda")
