"""Metrics against scikit-image, closed forms and shapes with known distances."""

import numpy as np
import pytest
import trimesh
from scipy.special import erfcx
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from fmgs_jax.eval import metrics


def _pair(h=40, w=33, c=3, noise=0.1, seed=0):
  rng = np.random.default_rng(seed)
  # A smooth image plus noise, so SSIM is neither ~0 nor ~1.
  yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
  a = np.stack([np.sin(3 * xx + k) * np.cos(2 * yy) * 0.4 + 0.5 for k in range(c)], -1)
  b = np.clip(a + noise * rng.standard_normal(a.shape), 0, 1)
  return a.astype(np.float32), b.astype(np.float32)


@pytest.mark.parametrize("noise", [0.02, 0.1, 0.3])
def test_ssim_matches_scikit_image(noise):
  a, b = _pair(noise=noise, seed=int(noise * 100))
  ref = structural_similarity(a.astype(np.float64), b.astype(np.float64), gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, data_range=1, channel_axis=-1)
  np.testing.assert_allclose(float(metrics.ssim(a, b)), ref, atol=2e-5)


def test_ssim_identical_is_one_and_small_image_rejected():
  a, _ = _pair()
  np.testing.assert_allclose(float(metrics.ssim(a, a)), 1.0, atol=1e-6)
  with pytest.raises(ValueError, match="at least 11"):
    metrics.ssim(a[:10], a[:10])


def test_psnr_closed_form_and_scikit_image():
  a = np.zeros((8, 9, 3), np.float32)
  b = a + 0.1  # mse = 0.01 -> 20 dB
  np.testing.assert_allclose(float(metrics.psnr(a, b)), 20.0, rtol=1e-5)
  a, b = _pair()
  np.testing.assert_allclose(float(metrics.psnr(a, b)), peak_signal_noise_ratio(a, b, data_range=1), rtol=1e-5)


def test_masked_psnr_uses_only_mask():
  a = np.zeros((10, 10, 3))
  b = np.zeros((10, 10, 3))
  b[:5] = 0.1  # error only in the top half
  mask = np.zeros((10, 10), bool)
  mask[:5] = True
  np.testing.assert_allclose(metrics.masked_psnr(a, b, mask), 20.0)
  assert metrics.masked_psnr(a, b, ~mask) == float("inf")


def test_bbox_protocol_crops_to_mask_box():
  a, b = _pair(60, 70)
  mask = np.zeros((60, 70), bool)
  mask[10:41, 20:51] = True
  mask[12, 55] = True  # an isolated pixel extends the box to x = 55
  assert metrics.mask_bbox(mask) == (10, 41, 20, 56)
  assert metrics.mask_bbox(mask, pad=15) == (0, 56, 5, 70)
  out = metrics.image_metrics(a, b, mask, protocol="bbox")
  ca, cb = a[10:41, 20:56], b[10:41, 20:56]
  ref = structural_similarity(ca, cb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                              data_range=1, channel_axis=-1)
  np.testing.assert_allclose(out["ssim"], ref, atol=2e-5)
  np.testing.assert_allclose(out["psnr"], peak_signal_noise_ratio(ca, cb, data_range=1), rtol=1e-5)
  full = metrics.image_metrics(a, b, protocol="full")
  np.testing.assert_allclose(full["psnr"], peak_signal_noise_ratio(a, b, data_range=1), rtol=1e-5)
  with pytest.raises(ValueError, match="mask"):
    metrics.image_metrics(a, b, None, protocol="bbox")


def test_normal_angular_error_closed_form():
  n = np.zeros((4, 5, 3))
  n[..., 2] = 1.0
  g = n.copy()
  # Rotate the left half by 30 degrees about x; scale to check normalisation.
  t = np.radians(30)
  g[:, :2] = 3.0 * np.array([0.0, np.sin(t), np.cos(t)])
  mask = np.ones((4, 5), bool)
  np.testing.assert_allclose(metrics.normal_angular_error(n, g, mask), 30 * 2 / 5, rtol=1e-9)
  mask[:, 2:] = False
  np.testing.assert_allclose(metrics.normal_angular_error(n, g, mask), 30.0, rtol=1e-9)
  np.testing.assert_allclose(metrics.normal_angular_error(n, -n), 180.0)


def test_depth_errors_and_alignment():
  rng = np.random.default_rng(0)
  gt = rng.uniform(1.0, 3.0, (6, 7))
  gt[0, 0] = 0.0  # missing ground truth is ignored
  pred = gt * 1.1
  e = metrics.depth_errors(pred, gt)
  np.testing.assert_allclose(e["depth_abs_rel"], 0.1, rtol=1e-9)
  v = gt > 0
  np.testing.assert_allclose(e["depth_rmse"], np.sqrt(np.mean((0.1 * gt[v]) ** 2)))
  # Relative depth: an affine function of the truth aligns exactly with scale-shift, and with scale for s only.
  rel = 0.25 * gt - 0.4
  np.testing.assert_allclose(metrics.depth_errors(rel, gt, align="scale_shift")["depth_rmse"], 0, atol=1e-9)
  np.testing.assert_allclose(metrics.depth_errors(0.25 * gt, gt, align="scale")["depth_abs_rel"], 0, atol=1e-12)
  assert metrics.depth_errors(rel, gt, align="scale")["depth_rmse"] > 0.01


def test_chamfer_point_sets_closed_form():
  # Grid on z=0 and the same grid shifted by 3 mm along z: every nearest neighbour is 3 mm away.
  g = np.stack(np.meshgrid(np.arange(20) * 0.01, np.arange(20) * 0.01, [0.0], indexing="ij"), -1).reshape(-1, 3)
  p = g + np.array([0, 0, 0.003])
  out = metrics.chamfer_fscore(p, g, threshold=0.005)
  np.testing.assert_allclose(out["chamfer_mm"], 3.0, rtol=1e-9)
  assert out["fscore"] == 1.0
  assert metrics.chamfer_fscore(p, g, threshold=0.002)["fscore"] == 0.0
  # Precision/recall asymmetry: extra far-away predicted points hurt precision only.
  p2 = np.concatenate([g, g[:100] + np.array([0, 0, 1.0])])
  out = metrics.chamfer_fscore(p2, g, threshold=0.005)
  np.testing.assert_allclose([out["precision"], out["recall"]], [400 / 500, 1.0])
  np.testing.assert_allclose(out["fscore"], 2 * 0.8 / 1.8)
  np.testing.assert_allclose(out["pred_to_gt_mm"], 1000 * 100 / 500)
  np.testing.assert_allclose(out["gt_to_pred_mm"], 0.0, atol=1e-12)


def test_chamfer_concentric_spheres():
  inner = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
  outer = trimesh.creation.icosphere(subdivisions=5, radius=1.02)
  out = metrics.mesh_chamfer_fscore(inner.vertices, inner.faces, outer.vertices, outer.faces,
                                    num_samples=40_000, threshold=0.05)
  # The surfaces are 20 mm apart everywhere, but the nearest *sample* is not the foot point. For Poisson
  # samples of density rho at height h, P(D > t) = exp(-rho pi (t^2 - h^2)) for t > h, so
  # E[D] = h + sqrt(pi / a) / 2 * erfcx(h sqrt(a)) with a = rho pi.
  def expected(n, area, h=0.02):
    a = np.pi * n / area
    return h + np.sqrt(np.pi / a) / 2 * erfcx(h * np.sqrt(a))
  ref_mm = 500 * (expected(40_000, 4 * np.pi * 1.02**2) + expected(40_000, 4 * np.pi))
  assert out["chamfer_mm"] >= 20.0
  np.testing.assert_allclose(out["chamfer_mm"], ref_mm, rtol=0.01)
  assert out["fscore"] == 1.0
  out = metrics.mesh_chamfer_fscore(inner.vertices, inner.faces, outer.vertices, outer.faces,
                                    num_samples=40_000, threshold=0.015)
  assert out["fscore"] == 0.0


def test_part_miou_against_brute_force():
  rng = np.random.default_rng(1)
  k = 6
  gt = rng.integers(0, k - 1, size=500)  # class k-1 never appears in gt
  pred = np.where(rng.random(500) < 0.7, gt, rng.integers(0, k, size=500))
  out = metrics.part_miou(pred, gt, k)
  ious = []
  for c in range(k - 1):
    inter = np.sum((pred == c) & (gt == c))
    union = np.sum((pred == c) | (gt == c))
    ious.append(inter / union)
  np.testing.assert_allclose(out["part_miou"], np.mean(ious))
  assert np.isnan(out["per_class_iou"][k - 1])
  gt_ign = gt.copy()
  gt_ign[:50] = 255
  cm = metrics.confusion_matrix(pred, gt_ign, k, ignore_index=255)
  assert cm.sum() == 450
  with pytest.raises(ValueError, match="labels must be in"):
    metrics.confusion_matrix(pred, gt_ign, k)


def test_protocol_for_dataset():
  assert metrics.protocol_for_dataset("zju") == "bbox"
  assert metrics.protocol_for_dataset("people_snapshot") == "full"
  assert metrics.protocol_for_dataset("zju", "full") == "full"
  with pytest.raises(ValueError, match="eval.image_protocol"):
    metrics.protocol_for_dataset("zju", "crop")


def test_ssim_flat_background_matches_scikit_image():
  # Avatar renders are mostly constant background, where variances are ~0 and round-off matters.
  rng = np.random.default_rng(3)
  a = np.zeros((48, 56, 3))
  a[15:35, 20:45] = 0.7
  b = a.copy()
  b[18:38, 24:50] += 0.2 * rng.random((20, 26, 3))
  b = np.clip(b, 0, 1)
  for x, y in [(a, b), (np.ones_like(a), np.full_like(a, 0.9)), (a, np.zeros_like(a))]:
    ref = structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=1, channel_axis=-1)
    np.testing.assert_allclose(float(metrics.ssim(x.astype(np.float32), y.astype(np.float32))), ref, atol=2e-5)


def _geometry_case(offset: float, mesh_guided: bool = True):
  import types  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  from fmgs_jax.eval import evaluate  # pylint: disable=g-import-not-at-top
  s = trimesh.creation.icosphere(subdivisions=3, radius=0.5)  # 1280 faces, ~20 mm apart
  v, f = np.asarray(s.vertices), np.asarray(s.faces)
  n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
  n /= np.linalg.norm(n, axis=1, keepdims=True)
  q = {"vertices": v, "means": v[f].mean(1) + offset * n}
  av = types.SimpleNamespace(mesh_guided=mesh_guided, template=types.SimpleNamespace(faces=f))
  config = ml_collections.ConfigDict({"eval": {"chamfer_samples": 50_000, "fscore_threshold": 0.01}})
  return evaluate.geometry_metrics(q, av, _GT_SPHERE, config)


_GT_SPHERE = trimesh.creation.icosphere(subdivisions=6, radius=0.52)  # 20 mm outside the template


def test_geometry_metrics_compare_surfaces_not_surfel_samples():
  on = _geometry_case(0.02)  # surfels moved onto the ground truth
  off = _geometry_case(0.0)  # surfels left on the template, 20 mm inside
  # The floor: the ground truth against itself, each sampled with 50k points (~4 mm on this sphere).
  floor = metrics.mesh_chamfer_fscore(_GT_SPHERE.vertices, _GT_SPHERE.faces, _GT_SPHERE.vertices,
                                      _GT_SPHERE.faces, 50_000)["chamfer_mm"]
  # The surface of the moved surfels scores the floor (plus the template's faceting), far below the
  # centre-based score, which the spacing of the 1280 surfels dominates.
  assert on["chamfer_mm"] < floor + 1.0
  assert on["chamfer_centres_mm"] > 2 * on["chamfer_mm"]
  # Left 20 mm inside: both directions are ~20 mm (a closed-form offset, plus the 5 mm chord sag of the
  # coarse template's faces).
  assert 17.0 < off["chamfer_mm"] < 25.0
  assert off["fscore"] < 0.05 < on["fscore"]


def test_geometry_metrics_of_free_gaussians_use_their_centres():
  free = _geometry_case(0.02, mesh_guided=False)
  assert free["chamfer_mm"] == free["chamfer_centres_mm"]
