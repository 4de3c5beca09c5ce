"""3D Gaussians (`rasterize(..., primitive="3dgs")`): xla backend vs the dense reference, a brute-force
NumPy 3DGS renderer written here from the textbook formulas, the closed form of one isotropic
Gaussian, float64 finite differences, the pallas backend (interpret mode) vs xla, and bad input."""

import contextlib
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmgs_jax.render import Surfels, rasterize
from render_scenes import camera, random_rotations

FIELDS = ("color", "alpha", "depth", "median_depth", "normal", "distortion")
GRAD_FIELDS = ("means", "rotations", "scales", "opacities", "features")


@contextlib.contextmanager
def x64():
  old = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  try:
    yield
  finally:
    jax.config.update("jax_enable_x64", old)


def clamped_index(n):
  """Index of the first of the two Gaussians `random_gaussians(..., n, hard=True)` puts beyond the
  Jacobian clamp."""
  return 4 * (n // 8)


def random_gaussians(seed, n, width, height, channels=3, dtype=jnp.float32, hard=True):
  """Random 3D Gaussians in front of a posed `camera(width, height)` (random world-to-camera).

  `hard` adds flat (surfel-like) and isotropic Gaussians (normal = the last of equal scales), pairs
  sharing their centre (equal depths: index order), Gaussians whose centre lies beyond the 3DGS Jacobian clamp but whose footprint
  reaches into the image, a large one near the camera, and centres behind the camera or nearer than
  `near` (culled). Finite differences use hard=False (no ties, no clamp kinks).
  """
  rng = np.random.default_rng(seed)
  z = rng.uniform(1.0, 4.0, n)
  xy = rng.uniform(-0.6, 0.6, (n, 2)) * z[:, None]
  means = np.concatenate([xy, z[:, None]], 1)  # camera frame
  rot = random_rotations(rng, n)
  scales = rng.uniform(0.02, 0.2, (n, 3))
  if hard:
    k = n // 8
    scales[:k, 2] = 1e-3  # flat, like a surfel
    scales[k:2 * k] = scales[k:2 * k, :1]  # isotropic
    # Equal depths: identical centres (so the tie survives the world transform in any precision).
    means[2 * k:3 * k] = means[3 * k:4 * k]
    j = clamped_index(n)
    # Beyond the clamp (x/z = 0.85 and y/z = -0.85 vs limits ~0.72): large enough to reach the image.
    means[j:j + 2] = [[1.7, 0.1, 2.0], [0.0, -1.7, 2.0]]
    scales[j:j + 2] = 0.3
    means[j + 2], scales[j + 2] = [0.1, 0.05, 0.4], 0.3  # large, near the camera
    means[j + 3, 2] = -0.5  # behind the camera
    means[j + 4, 2] = 0.03  # nearer than near = 0.05
  cam = camera(width, height, dtype=dtype)
  w2c = np.eye(4)
  w2c[:3, :3] = random_rotations(rng, 1)[0]
  w2c[:3, 3] = rng.normal(size=3)
  # Camera-frame x = R world + t, so world = R^T (x - t); frames rotate with it.
  means = (means - w2c[:3, 3]) @ w2c[:3, :3]
  rot = np.einsum("ji,njk->nik", w2c[:3, :3], rot)
  s = Surfels(means=jnp.asarray(means, dtype), rotations=jnp.asarray(rot, dtype),
              scales=jnp.asarray(scales, dtype), opacities=jnp.asarray(rng.uniform(0.1, 1, n), dtype),
              features=jnp.asarray(rng.uniform(0, 1, (n, channels)), dtype))
  return (s, cam.replace(world_to_camera=jnp.asarray(w2c, dtype)),
          jnp.asarray(rng.uniform(0, 1, channels), dtype))


def clamped_index(n):
  """First of the two Gaussians that `random_gaussians(.., n, .., hard=True)` puts beyond the clamp."""
  return 4 * (n // 8)


def _maps(o):
  return jnp.concatenate([o.color, o.alpha[..., None], o.depth[..., None], o.median_depth[..., None],
                          o.normal, 100 * o.distortion[..., None]], -1)


def _assert_close(a, b, atol, rtol=0.0):
  for f in FIELDS:
    x, y = np.asarray(getattr(a, f)), np.asarray(getattr(b, f))
    chex.assert_equal_shape([x, y])
    if f == "depth":  # normalised by alpha: compare alpha-weighted
      x, y = x * np.asarray(a.alpha), y * np.asarray(b.alpha)
    np.testing.assert_allclose(x, y, atol=atol, rtol=rtol, err_msg=f)


# (seed, n, width, height): 3x2 tiles of 16, the last ones partly outside the image. The tests share
# its jitted renders (compilation dominates their time).
SCENE = (0, 96, 44, 30)


@functools.cache
def scene_render(backend, thresholds="default"):
  """(RenderOutput, Surfels of gradients of a random projection of every map) for SCENE.

  thresholds "zero" (alpha_min = transmittance_min = 0) renders forward only (gradients None).
  """
  s, cam, bg = random_gaussians(*SCENE)
  if thresholds == "zero":
    return rasterize(s, cam, bg, backend=backend, primitive="3dgs", alpha_min=0.0,
                     transmittance_min=0.0, pair_capacity=SCENE[1] * 6), None
  wts = jax.random.normal(jax.random.PRNGKey(0), (SCENE[3], SCENE[2], 10))

  def loss(s):
    o = rasterize(s, cam, bg, backend=backend, primitive="3dgs")
    return jnp.sum(_maps(o) * wts), o

  (_, out), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(s)
  return out, grad


def brute_force_3dgs(s, cam, bg, alpha_min=1 / 255, alpha_max=0.99, t_min=1e-4, clamp=1.3):
  """Float64 NumPy 3DGS renderer from the textbook formulas: dict of the RenderOutput maps.

  EWA splatting: Sigma' = J W Sigma W^T J^T + 0.3 I with the perspective Jacobian J at the centre
  (x/z, y/z clamped to 1.3 tan(fov/2) about the principal point, as 3DGS / gsplat), alpha =
  min(0.99, o exp(-d^T Sigma'^-1 d / 2)), skipped below 1/255; front to back by centre depth; stop
  before T would drop below 1e-4. Depth = the centre's z; normal = the smallest-scale axis (the last
  of equal ones) facing the camera; median and distortion as 2DGS defines them.
  """
  means, rots, scales, opac, feat = (np.asarray(x, np.float64) for x in
                                     (s.means, s.rotations, s.scales, s.opacities, s.features))
  k = np.asarray(cam.K, np.float64)
  w2c = np.asarray(cam.world_to_camera, np.float64)
  fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
  w, h, near, far = cam.width, cam.height, cam.near, cam.far
  tan_x, tan_y = w / (2 * fx), h / (2 * fy)
  splats = []
  for i in range(len(means)):
    t = w2c[:3, :3] @ means[i] + w2c[:3, 3]
    if t[2] <= near or np.any(scales[i] <= 0):
      continue
    e = clamp - 1.0  # 3DGS: |x/z| <= 1.3 tan(fov_x / 2) for a centred principal point
    tx = np.clip(t[0] / t[2], -cx / fx - e * tan_x, (w - cx) / fx + e * tan_x) * t[2]
    ty = np.clip(t[1] / t[2], -cy / fy - e * tan_y, (h - cy) / fy + e * tan_y) * t[2]
    jac = np.array([[fx / t[2], 0.0, -fx * tx / t[2] ** 2], [0.0, fy / t[2], -fy * ty / t[2] ** 2]])
    sigma = rots[i] @ np.diag(scales[i] ** 2) @ rots[i].T
    cov = jac @ w2c[:3, :3] @ sigma @ w2c[:3, :3].T @ jac.T + 0.3 * np.eye(2)
    axis = max(a for a in range(3) if scales[i, a] == scales[i].min())
    n = w2c[:3, :3] @ rots[i][:, axis]
    n = n if n @ t < 0 else -n
    splats.append((t[2], np.linalg.inv(cov), [fx * t[0] / t[2] + cx, fy * t[1] / t[2] + cy], n,
                   opac[i], feat[i]))
  splats.sort(key=lambda x: x[0])  # stable: equal depths keep index order
  py, px = np.mgrid[:h, :w] + 0.5
  tr, done = np.ones((h, w)), np.zeros((h, w), bool)
  dsum, m1, m2, dist, median = (np.zeros((h, w)) for _ in range(5))
  nsum, csum = np.zeros((h, w, 3)), np.zeros((h, w, feat.shape[1]))
  for z, conic, mean, n, o, f in splats:
    dx, dy = px - mean[0], py - mean[1]
    power = -0.5 * (conic[0, 0] * dx * dx + 2 * conic[0, 1] * dx * dy + conic[1, 1] * dy * dy)
    alpha = np.minimum(alpha_max, o * np.exp(power))
    take = ~done & (alpha >= alpha_min) & (alpha > 0)
    stop = take & (tr * (1 - alpha) < t_min)
    done |= stop
    take &= ~stop
    wt = np.where(take, alpha * tr, 0.0)
    m = far / (far - near) * (1 - near / z)
    dist += (m * m * (1 - tr) + m2 - 2 * m * m1) * wt
    m1 += m * wt
    m2 += m * m * wt
    dsum += z * wt
    median = np.where(take & (tr > 0.5), z, median)
    nsum += wt[..., None] * n
    csum += wt[..., None] * f
    tr = np.where(take, tr * (1 - alpha), tr)
  alpha = 1 - tr
  return dict(color=csum + tr[..., None] * np.asarray(bg), alpha=alpha,
              depth=np.where(alpha > 1e-10, dsum / np.maximum(alpha, 1e-10), 0.0),
              median_depth=median, normal=nsum, distortion=dist)


@pytest.mark.parametrize("thresholds", ["default", "zero"])
def test_xla_matches_reference(thresholds):
  ref, _ = scene_render("reference", thresholds)
  out, _ = scene_render("xla", thresholds)
  assert int(out.overflow) == 0
  chex.assert_shape(out.color, (SCENE[3], SCENE[2], 3))
  chex.assert_shape(out.normal, (SCENE[3], SCENE[2], 3))
  _assert_close(out, ref, atol=1e-4)
  assert float(jnp.max(out.alpha)) > 0.9  # the scene is not empty


def test_brute_force_numpy_renderer():
  s, cam, bg = random_gaussians(*SCENE)
  want = brute_force_3dgs(s, cam, bg)
  assert want["alpha"].max() > 0.9
  for backend in ("reference", "xla"):
    got, _ = scene_render(backend)
    for f in FIELDS:
      x, y = np.asarray(getattr(got, f)), want[f]
      if f == "depth":
        x, y = x * want["alpha"], y * want["alpha"]
      np.testing.assert_allclose(x, y, atol=3e-5, rtol=1e-4, err_msg=f"{backend} {f}")
  # The Gaussians beyond the Jacobian clamp reach the image, and the clamp matters there.
  j = clamped_index(SCENE[1])
  beyond = jax.tree_util.tree_map(lambda x: x[j:j + 2], s)
  alone = brute_force_3dgs(beyond, cam, bg)["alpha"]
  unclamped = brute_force_3dgs(beyond, cam, bg, clamp=np.inf)["alpha"]
  assert alone.max() > 0.05 and np.abs(alone - unclamped).max() > 0.01


def test_gradients_match_reference():
  s, _, _ = random_gaussians(*SCENE)
  _, g_ref = scene_render("reference")
  _, g_xla = scene_render("xla")
  for f in GRAD_FIELDS:
    a, b = np.asarray(getattr(g_ref, f)), np.asarray(getattr(g_xla, f))
    chex.assert_shape(b, getattr(s, f).shape)
    assert np.all(np.isfinite(b)), f
    assert np.abs(a).max() > 0, f
    np.testing.assert_allclose(b, a, atol=2e-3 * np.abs(a).max(), err_msg=f)


def test_pallas_matches_xla():
  """Interpret mode on CPU: outputs and gradients on SCENE."""
  got, g_got = scene_render("pallas")
  want, g_want = scene_render("xla")
  _assert_close(got, want, atol=1e-5, rtol=1e-5)
  for f in GRAD_FIELDS:
    a, b = np.asarray(getattr(g_want, f)), np.asarray(getattr(g_got, f))
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * np.abs(a).max(), err_msg=f)


def test_gradients_match_finite_differences_float64():
  with x64():
    s, cam, bg = random_gaussians(4, 8, 20, 18, dtype=jnp.float64, hard=False)
    wts = jax.random.normal(jax.random.PRNGKey(1), (18, 20, 10), jnp.float64)
    # One compiled function for the gradient and the finite differences' values.
    value_and_grad = jax.jit(jax.value_and_grad(
        lambda s: jnp.sum(_maps(rasterize(s, cam, bg, primitive="3dgs")) * wts)))
    loss = lambda s: value_and_grad(s)[0]
    grad = value_and_grad(s)[1]
    rng = np.random.default_rng(0)
    h = 1e-6
    for f in GRAD_FIELDS:
      x = getattr(s, f)
      d = jnp.asarray(rng.normal(size=x.shape))
      fd = (loss(s.replace(**{f: x + h * d})) - loss(s.replace(**{f: x - h * d}))) / (2 * h)
      an = jnp.sum(getattr(grad, f) * d)
      assert abs(float(an)) > 1e-3, f
      assert abs(float(fd - an)) <= 1e-5 * max(1.0, abs(float(fd))), (f, float(fd), float(an))


@pytest.mark.parametrize("scale", [0.05, 5e-4])
def test_single_isotropic_gaussian_is_the_closed_form(scale):
  """On the optical axis, Sigma2D = (f^2 s^2 / z^2 + 0.3) I: alpha = o exp(-|d|^2 / (2 sigma^2)).

  Zero thresholds (no alpha floor); the Gaussian is padded to SCENE's shapes with Gaussians behind
  the camera, which must contribute nothing (and reuse SCENE's compiled renders).
  """
  _, n, width, height = SCENE
  z, o = 2.0, 0.9
  cam = camera(width, height)
  f = float(cam.K[0, 0])
  assert f == float(cam.K[1, 1])
  means = np.tile([[0.0, 0.0, -1.0]], (n, 1))
  means[5] = [0.0, 0.0, z]
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  s = Surfels(means=f32(means), rotations=f32(np.tile(np.eye(3), (n, 1, 1))),
              scales=f32(np.full((n, 3), scale)), opacities=f32(np.full(n, o)),
              features=f32(np.tile([1.0, 0.5, 0.25], (n, 1))))
  bg = f32([0.1, 0.2, 0.3])
  py, px = np.mgrid[:height, :width] + 0.5
  d2 = (px - float(cam.K[0, 2])) ** 2 + (py - float(cam.K[1, 2])) ** 2
  alpha = np.minimum(0.99, o * np.exp(-d2 / (2 * (f * f * scale * scale / (z * z) + 0.3))))
  assert alpha.min() < 1e-3 and alpha.max() > 0.5
  for backend in ("reference", "xla"):
    out = rasterize(s, cam, bg, backend=backend, primitive="3dgs", alpha_min=0.0,
                    transmittance_min=0.0, pair_capacity=SCENE[1] * 6)
    np.testing.assert_allclose(out.alpha, alpha, atol=2e-6, err_msg=backend)
    np.testing.assert_allclose(out.color, alpha[..., None] * [1.0, 0.5, 0.25]
                               + (1 - alpha[..., None]) * np.asarray(bg), atol=2e-6)
    np.testing.assert_allclose(out.depth * alpha, z * alpha, rtol=1e-5, atol=1e-7)  # D / alpha
    # Equal scales: the normal is the third column, facing the camera.
    np.testing.assert_allclose(out.normal, alpha[..., None] * [0, 0, -1.0], atol=2e-6)
    np.testing.assert_allclose(out.distortion, 0.0, atol=1e-7)


def test_bad_input_names_the_field():
  s, cam, bg = random_gaussians(0, 16, 16, 16)
  with pytest.raises(ValueError, match=r"Surfels.scales: expected shape \(16, 3\) for primitive='3dgs'"):
    rasterize(s.replace(scales=s.scales[:, :2]), cam, bg, primitive="3dgs")
  with pytest.raises(ValueError, match=r"Surfels.scales: expected shape \(16, 2\) for primitive='2dgs'"):
    rasterize(s, cam, bg)  # (N, 3) scales need primitive="3dgs"
  with pytest.raises(ValueError, match="primitive"):
    rasterize(s, cam, bg, primitive="4dgs")
