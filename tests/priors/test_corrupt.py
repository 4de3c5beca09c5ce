"""Synthetic-prior corruption statistics against closed forms and independent estimates."""

import numpy as np
import scipy.integrate

from configs import default
from fmgs_jax.priors import corrupt
from fmgs_jax.priors import extract
from fmgs_jax.priors import labels
from fmgs_jax.priors import cache as cache_lib


def _unit(v):
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _angles_deg(a, b):
  return np.degrees(np.arccos(np.clip(np.sum(a * b, -1), -1, 1)))


def test_angular_noise_rms_matches_rayleigh_integral():
  rng = np.random.default_rng(0)
  n = _unit(rng.normal(size=(200_000, 3)))
  for deg in (3.0, 10.0):
    ang = np.radians(_angles_deg(corrupt.angular_noise(n, rng, deg), n))
    s = np.tan(np.radians(deg)) / np.sqrt(2)  # |t| ~ Rayleigh(s), angle = atan|t|
    ref = scipy.integrate.quad(lambda r: np.arctan(r) ** 2 * r / s**2 * np.exp(-r**2 / (2 * s**2)), 0, 50 * s)[0]
    np.testing.assert_allclose(np.sqrt(np.mean(ang**2)), np.sqrt(ref), rtol=0.01)
    np.testing.assert_allclose(np.linalg.norm(corrupt.angular_noise(n[:10], rng, deg), axis=-1), 1, atol=1e-6)


def test_bias_rotation_recovered_by_kabsch():
  rng = np.random.default_rng(1)
  n = _unit(rng.normal(size=(5000, 3)))
  for deg in (2.0, 7.0):
    r = corrupt.bias_rotation(np.random.default_rng(3), deg)
    out = n @ r.T
    u, _, vt = np.linalg.svd(out.T @ n)  # Kabsch: rotation best mapping n -> out
    est = u @ np.diag([1, 1, np.linalg.det(u @ vt)]) @ vt
    angle = np.degrees(np.arccos((np.trace(est) - 1) / 2))
    np.testing.assert_allclose(angle, deg, rtol=1e-6)


def test_border_confusion_matches_disk_fraction():
  H, W, b, r, p = 400, 40, 20, 3.0, 0.6  # two parts split by the vertical line x = b
  parts = np.where(np.arange(W)[None, :] < b, 10, 19).repeat(H, 0).astype(np.int16)
  mask = np.ones((H, W), bool)
  out = corrupt.confuse_parts(parts, mask, np.random.default_rng(0), prob=p, radius_px=r)
  for c in range(b - 5, b):
    t = b - (c + 0.5)  # distance of the pixel centre to the border
    ref = p * (r * r * np.arccos(min(t / r, 1)) - t * np.sqrt(max(r * r - t * t, 0))) / (np.pi * r * r)
    frac = (out[:, c] != parts[:, c]).mean()
    assert abs(frac - ref) < 4 * np.sqrt(ref * (1 - ref) / H) + 1e-9, (c, frac, ref)
  assert (out[:, : b - 4] == 10).all()  # farther than r from the border: never confused


def test_thin_parts_dropped_thick_kept():
  mask = np.zeros((40, 60), bool)
  mask[5:35, 5:25] = True  # a thick body
  mask[18:20, 25:55] = True  # a 2-pixel-wide limb
  thin = corrupt.thin_parts(mask, 1.5)
  assert thin[18:20, 27:55].all()
  assert not thin[7:33, 7:23].any()


def test_depth_known_up_to_scale_and_shift():
  rng = np.random.default_rng(0)
  depth = rng.uniform(2.0, 4.0, size=(64, 64)).astype(np.float32)
  mask = np.ones_like(depth, bool)
  d, (a, b) = corrupt.corrupt_depth(depth, mask, rng, blur_px=0.0, noise=0.02, scale_range=(0.5, 2.0),
                                    shift_range=(-1.0, 1.0))
  assert 0.5 <= a <= 2.0 and -1.0 <= b <= 1.0
  A = np.stack([depth.ravel(), np.ones(depth.size)], 1)
  (fa, fb), *_ = np.linalg.lstsq(A, d.ravel(), rcond=None)
  np.testing.assert_allclose([fa, fb], [a, b], atol=0.03 * a + 1e-3)
  rel = (d - (a * depth + b)) / (a * depth)
  np.testing.assert_allclose(rel.std(), 0.02, rtol=0.05)


def _sphere_frame(hw=(48, 48)):
  H, W = hw
  yy, xx = np.mgrid[0:H, 0:W] + 0.5
  u, v = (xx - W / 2) / (W / 2.5), (yy - H / 2) / (H / 2.5)
  mask = u**2 + v**2 < 1
  z = np.sqrt(np.clip(1 - u**2 - v**2, 0, 1))
  normal = np.where(mask[..., None], np.stack([u, v, -z], -1), 0).astype(np.float32)  # faces the camera
  parts = np.where(u < 0, labels.TEMPLATE_PARTS.index("left_upper_arm"),
                   labels.TEMPLATE_PARTS.index("right_lower_arm"))
  return {"image": np.zeros(hw + (3,), np.float32), "mask": mask.astype(np.float32), "gt_normal": normal,
          "gt_depth": (3.0 - z).astype(np.float32), "gt_parts": parts}


def test_synthetic_backend_levels_and_cache(tmp_path):
  pcfg = default.get_config().priors
  s = pcfg.synthetic
  s.normal_blur_px, s.normal_bias_deg, s.thin_radius_px, s.seg_confusion, s.depth_blur_px = 0.0, 0.0, 0.0, 0.0, 0.0
  s.normal_noise_deg = 6.0
  frames = [_sphere_frame() for _ in range(3)]
  keys = ["a", "b", "c"]
  src = extract.ListFrames(frames, keys, part_names=labels.TEMPLATE_PARTS)
  summary = extract.extract(src, str(tmp_path), pcfg, progress=False)
  assert summary["extracted"] == 3
  reader = cache_lib.PriorReader(str(tmp_path))
  ang = []
  for k, f in zip(keys, frames):
    p = reader.load(k)
    m = f["mask"] > 0
    ang.append(_angles_deg(p["normal"][m], f["gt_normal"][m]))
    left = labels.SAPIENS_CLASSES.index("Left_Upper_Arm")
    right = labels.SAPIENS_CLASSES.index("Right_Lower_Arm")
    np.testing.assert_array_equal(p["parts"], np.where(m, np.where(f["gt_parts"] == labels.TEMPLATE_PARTS.index("left_upper_arm"), left, right), 0))
    assert p["depth"][m].std() > 0
  rms = np.sqrt(np.mean(np.concatenate(ang) ** 2))
  assert 5.0 < rms < 7.0
  assert reader.manifest["identity"]["outputs"]["normal"]["normal_noise_deg"] == 6.0
  assert reader.depth_kind == "affine_depth"
  # A changed corruption level invalidates the cache.
  s.normal_noise_deg = 12.0
  assert extract.extract(src, str(tmp_path), pcfg, progress=False)["invalidated"]
