"""Loss tests against scikit-image, NumPy brute force and closed forms."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from fmgs_jax.train import losses


def _default_config():
  path = pathlib.Path(__file__).resolve().parents[2] / "configs" / "default.py"
  spec = importlib.util.spec_from_file_location("fmgs_default_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def test_ssim_matches_scikit_image():
  rng = np.random.default_rng(0)
  a = rng.uniform(size=(24, 30, 3)).astype(np.float32)
  b = np.clip(a + 0.2 * rng.normal(size=a.shape), 0, 1).astype(np.float32)
  want = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                               data_range=1.0, channel_axis=-1)
  np.testing.assert_allclose(float(losses.ssim(jnp.asarray(a), jnp.asarray(b))), want, atol=1e-5)
  g = jax.grad(lambda x: losses.ssim(x, jnp.asarray(b)))(jnp.asarray(a))
  assert bool(jnp.all(jnp.isfinite(g)))


def test_photometric_closed_forms():
  rng = np.random.default_rng(1)
  a = jnp.asarray(rng.uniform(size=(16, 16, 3)), jnp.float32)
  b = jnp.asarray(rng.uniform(size=(16, 16, 3)), jnp.float32)
  assert float(losses.photometric_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
  np.testing.assert_allclose(float(losses.photometric_loss(a, b, ssim_weight=0.0)),
                             np.mean(np.abs(np.asarray(a) - np.asarray(b))), rtol=1e-6)
  want = 0.8 * np.mean(np.abs(np.asarray(a - b))) + 0.2 * (1 - float(losses.ssim(a, b)))
  np.testing.assert_allclose(float(losses.photometric_loss(a, b)), want, rtol=1e-6)


def test_mask_bce_bruteforce():
  rng = np.random.default_rng(2)
  alpha = rng.uniform(0.01, 0.99, size=(5, 7))
  mask = rng.uniform(size=(5, 7)) > 0.5
  want = np.mean([-np.log(p) if m else -np.log(1 - p) for p, m in zip(alpha.ravel(), mask.ravel())])
  np.testing.assert_allclose(float(losses.mask_bce(jnp.asarray(alpha, jnp.float32), jnp.asarray(mask))),
                             want, rtol=1e-5)


def test_pixel_pairs_inside_mask_and_keyed():
  mask = np.zeros((12, 10), bool)
  mask[3:7, 2:5] = True
  mask[9, 9] = True
  pairs, valid = losses.sample_pixel_pairs(jax.random.PRNGKey(0), jnp.asarray(mask), 500)
  pairs = np.asarray(pairs)
  assert pairs.shape == (2, 500) and float(valid) == 1.0
  assert mask.ravel()[pairs].all()
  assert len(np.unique(pairs)) == mask.sum()  # every masked pixel is drawn with 1000 draws of 13
  again, _ = losses.sample_pixel_pairs(jax.random.PRNGKey(0), jnp.asarray(mask), 500)
  other, _ = losses.sample_pixel_pairs(jax.random.PRNGKey(1), jnp.asarray(mask), 500)
  np.testing.assert_array_equal(pairs, np.asarray(again))
  assert np.any(pairs != np.asarray(other))
  # Uniform over the masked pixels: the last masked pixel (flat index 99) gets its 1/13 share.
  many, _ = losses.sample_pixel_pairs(jax.random.PRNGKey(2), jnp.asarray(mask), 20000)
  counts = np.bincount(np.asarray(many).ravel(), minlength=mask.size)[mask.ravel()]
  np.testing.assert_allclose(counts / counts.sum(), 1 / 13, atol=0.01)
  _, valid = losses.sample_pixel_pairs(jax.random.PRNGKey(0), jnp.zeros((4, 4), bool), 8)
  assert float(valid) == 0.0
  assert float(losses.ordinal_depth_loss(jnp.ones((4, 4)), jnp.ones((4, 4)), jnp.zeros((4, 4), bool),
                                         jax.random.PRNGKey(0), 8)) == 0.0


def test_depth_ranking_bruteforce():
  rng = np.random.default_rng(3)
  depth = rng.uniform(1, 3, size=(6, 5)).astype(np.float32)
  prior = rng.uniform(size=(6, 5)).astype(np.float32)
  prior[0, 0] = prior[0, 1]  # a tie: the loss pulls the rendered depths together
  pairs = rng.integers(0, 30, size=(2, 64)).astype(np.int32)
  pairs[:, 0] = (0, 1)
  d, p = depth.ravel(), prior.ravel()
  want = np.mean([abs(np.tanh(10 * (d[i] - d[j])) - np.sign(p[i] - p[j])) for i, j in pairs.T])
  got = losses.depth_ranking_loss(jnp.asarray(depth), jnp.asarray(prior), jnp.asarray(pairs), alpha=10.0)
  np.testing.assert_allclose(float(got), want, rtol=1e-5)


def _camera():
  return jnp.array([[40.0, 0.0, 17.0], [0.0, 45.0, 11.0], [0.0, 0.0, 1.0]])


def test_depth_to_normal_recovers_plane_normal():
  h, w = 22, 34
  k = np.asarray(_camera(), np.float64)
  n = np.array([0.3, -0.2, -1.0])
  n /= np.linalg.norm(n)
  dist = -2.0  # plane n . X = dist, seen from its front (n points towards the camera)
  u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
  rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(k).T
  depth = dist / (rays @ n)
  assert np.all(depth > 0)
  normals = np.asarray(losses.depth_to_normal(jnp.asarray(depth, jnp.float32), _camera()))
  np.testing.assert_allclose(normals, np.broadcast_to(n, normals.shape), atol=1e-4)
  points = np.asarray(losses.depth_to_points(jnp.asarray(depth, jnp.float32), _camera()))
  np.testing.assert_allclose(points @ n, dist, atol=1e-5)
  rendered = jnp.broadcast_to(jnp.asarray(0.7 * n, jnp.float32), (h, w, 3))  # not unit: alpha-weighted
  d = jnp.asarray(depth, jnp.float32)
  assert float(losses.normal_consistency_loss(rendered, d, _camera(), form="cosine")) < 1e-6
  # The paper's L1 form compares the vectors themselves: a 0.7-opacity pixel pays 0.3 |n|_1.
  np.testing.assert_allclose(float(losses.normal_consistency_loss(rendered, d, _camera(), form="l1")),
                             0.3 * np.abs(n).sum(), rtol=1e-3)
  assert float(losses.normal_consistency_loss(jnp.broadcast_to(jnp.asarray(n, jnp.float32), (h, w, 3)), d,
                                              _camera())) < 1e-3
  with pytest.raises(ValueError, match="normal_depth.form"):
    losses.normal_consistency_loss(rendered, d, _camera(), form="l2")


def test_cosine_and_prior_normal_closed_forms():
  a = jnp.tile(jnp.array([0.0, 0.0, -2.0]), (3, 4, 1))
  b = jnp.tile(jnp.array([1.0, 0.0, 0.0]), (3, 4, 1)).at[0].set(jnp.array([0.0, 0.0, -1.0]))
  # rows 1-2 are orthogonal (1 - cos = 1), row 0 parallel (0).
  np.testing.assert_allclose(float(losses.normal_prior_loss(a, b)), 2 / 3, rtol=1e-6)
  weight = jnp.zeros((3, 4)).at[0].set(1.0).at[1, 0].set(1.0)
  np.testing.assert_allclose(float(losses.cosine_loss(a, b, weight)), 1 / 5, rtol=1e-6)


def test_total_variation_closed_form_and_weighted_bruteforce():
  h, w = 7, 9
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  gx, gy = np.array([0.1, -0.3, 0.2]), np.array([0.05, 0.4, -0.1])
  img = xx[..., None] * gx + yy[..., None] * gy
  np.testing.assert_allclose(float(losses.total_variation(jnp.asarray(img, jnp.float32))),
                             np.abs(gx).sum() + np.abs(gy).sum(), rtol=1e-5)
  rng = np.random.default_rng(4)
  img = rng.normal(size=(h, w, 3))
  wt = (rng.uniform(size=(h, w)) > 0.3).astype(float)
  num_x = den_x = num_y = den_y = 0.0
  for y in range(h):
    for x in range(w):
      if x + 1 < w:
        num_x += wt[y, x] * wt[y, x + 1] * np.abs(img[y, x + 1] - img[y, x]).sum()
        den_x += wt[y, x] * wt[y, x + 1]
      if y + 1 < h:
        num_y += wt[y, x] * wt[y + 1, x] * np.abs(img[y + 1, x] - img[y, x]).sum()
        den_y += wt[y, x] * wt[y + 1, x]
  got = losses.total_variation(jnp.asarray(img, jnp.float32), jnp.asarray(wt, jnp.float32))
  np.testing.assert_allclose(float(got), num_x / den_x + num_y / den_y, rtol=1e-5)


def test_semantic_cross_entropy_bruteforce():
  rng = np.random.default_rng(5)
  logits = rng.normal(size=(4, 5, 28)).astype(np.float32)
  labels = rng.integers(-1, 28, size=(4, 5))
  total, count = 0.0, 0
  for y in range(4):
    for x in range(5):
      if labels[y, x] >= 0:
        z = logits[y, x].astype(np.float64)
        total += np.log(np.sum(np.exp(z))) - z[labels[y, x]]
        count += 1
  got = losses.semantic_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
  np.testing.assert_allclose(float(got), total / count, rtol=1e-5)
  probs = jax.nn.softmax(jnp.asarray(logits), -1)
  np.testing.assert_allclose(float(losses.semantic_cross_entropy(probs, jnp.asarray(labels),
                                                                 from_probabilities=True)),
                             total / count, rtol=1e-4)


def test_semantic_feature_reg_bruteforce():
  rng = np.random.default_rng(6)
  f = rng.normal(size=(40, 5))
  labels = rng.integers(0, 6, size=40)
  labels[labels == 3] = 4  # an empty class is fine
  want = np.mean([np.sum((f[i] - f[labels == labels[i]].mean(0)) ** 2) for i in range(40)])
  got = losses.semantic_feature_reg(jnp.asarray(f, jnp.float32), jnp.asarray(labels), 6)
  np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_skinning_and_isometry():
  rng = np.random.default_rng(7)
  w = rng.dirichlet(np.ones(24), size=10)
  t = rng.dirichlet(np.ones(24), size=10)
  np.testing.assert_allclose(float(losses.skinning_loss(jnp.asarray(w), jnp.asarray(t))),
                             np.mean(np.sum((w - t) ** 2, -1)), rtol=1e-5)
  ref = rng.normal(size=(12, 3))
  edges = rng.integers(0, 12, size=(30, 2))
  edges = edges[edges[:, 0] != edges[:, 1]]
  x = ref * 1.1 + rng.normal(size=ref.shape) * 0.05
  want = np.mean([abs(np.linalg.norm(x[i] - x[j]) - np.linalg.norm(ref[i] - ref[j])) for i, j in edges])
  got = losses.isometry_loss(jnp.asarray(x, jnp.float32), jnp.asarray(ref, jnp.float32), jnp.asarray(edges))
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
  rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]  # rigid motions keep every distance
  rigid = jnp.asarray(ref @ rot.T + 1.0, jnp.float32)
  assert float(losses.isometry_loss(rigid, jnp.asarray(ref, jnp.float32), jnp.asarray(edges))) < 1e-5


def test_train_step_isometry_compares_posed_with_canonical_neighbours():
  """L_iso in the step: clothing offsets in canonical space cost nothing; stretching by the pose does."""
  from fmgs_jax.train import step as step_lib  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(3)
  rest = rng.normal(size=(12, 3))
  edges = np.array([[i, (i + 1) % 12] for i in range(12)], np.int32)
  offset = rest + 0.03 * rng.normal(size=rest.shape)  # canonical centres moved off the template
  rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
  b = 1
  batch = step_lib.Batch(
      image=jnp.zeros((b, 4, 4, 3)), mask=jnp.ones((b, 4, 4)), K=jnp.eye(3)[None], world_to_camera=jnp.eye(4)[None],
      betas=jnp.zeros((b, 1)), pose=jnp.zeros((b, 24, 3)), transl=jnp.zeros((b, 3)),
      frame_index=jnp.zeros((b,), jnp.int32), prior_normal=jnp.zeros((b, 4, 4, 3)),
      prior_depth=jnp.zeros((b, 4, 4)), prior_parts=jnp.zeros((b, 4, 4), jnp.int32))
  fns = step_lib.make_loss_fns(_default_config().loss, batch, jax.random.key(0), jnp.zeros(3), 2,
                               jnp.ones((12, 1)), jnp.asarray(edges))
  def iso(posed, canonical):
    q = {"means": jnp.asarray(posed, jnp.float32)[None], "canonical_means": jnp.asarray(canonical, jnp.float32)[None]}
    return float(fns["iso"](None, q))
  assert iso(offset @ rot.T + 0.5, offset) < 1e-5  # a rigidly posed, offset avatar
  stretched = offset * np.array([1.2, 1.0, 1.0])
  want = np.mean([abs(np.linalg.norm(stretched[i] - stretched[j]) - np.linalg.norm(offset[i] - offset[j]))
                  for i, j in edges])
  np.testing.assert_allclose(iso(stretched, offset), want, rtol=1e-4)


def test_active_weights_from_config():
  c = _default_config()
  weights = losses.active_weights(c.loss)
  assert set(weights) == set(c.loss.keys()) and weights["rgb"] == 1.0
  c.loss.depth.weight = 0.0
  assert "depth" not in losses.active_weights(c.loss)
  c.loss.mask.weight = -1.0
  with pytest.raises(ValueError, match="config.loss.mask.weight"):
    losses.active_weights(c.loss)
