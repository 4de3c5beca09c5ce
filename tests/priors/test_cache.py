"""Cache round trip, resume bookkeeping, invalidation, loader conventions; crop/paste; label tables."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.ndimage

from configs import default
from fmgs_jax.data import Frame
from fmgs_jax.priors import cache as cache_lib
from fmgs_jax.priors import crop as crop_lib
from fmgs_jax.priors import extract
from fmgs_jax.priors import labels


def _arrays(seed, hw=(6, 5)):
  rng = np.random.default_rng(seed)
  n = rng.normal(size=hw + (3,)).astype(np.float32)
  return {"normal": n / np.linalg.norm(n, axis=-1, keepdims=True), "depth": rng.uniform(1, 2, hw).astype(np.float32),
          "parts": rng.integers(-1, 28, hw).astype(np.int16), "valid": rng.uniform(size=hw) > 0.3}


def test_cache_roundtrip_resume_and_invalidation(tmp_path):
  d = str(tmp_path)
  ident = {"backend": "x", "outputs": {"depth": {"kind": "inverse_depth"}}}
  c = cache_lib.PriorCache(d, ident)
  a = {k: _arrays(i) for i, k in enumerate(["s/0", "s/1"])}
  for k, v in a.items():
    c.write(k, v)
  c2 = cache_lib.PriorCache(d, ident)  # same identity: frames kept
  assert c2.is_done("s/0") and c2.is_done("s/1") and not c2.invalidated
  with open(c2.path("s/1"), "r+b") as f:  # a truncated / corrupted file is not done
    f.truncate(10)
  assert not c2.is_done("s/1")
  got = cache_lib.load_priors(d, "s/0")
  np.testing.assert_array_equal(got["normal"], a["s/0"]["normal"])
  np.testing.assert_array_equal(got["depth"], -a["s/0"]["depth"])  # inverse depth -> larger = farther
  np.testing.assert_array_equal(got["parts"], a["s/0"]["parts"])
  assert got["parts"].dtype == np.int32
  with pytest.raises(KeyError, match="not in the cache"):
    cache_lib.load_priors(d, "s/9")
  c3 = cache_lib.PriorCache(d, {**ident, "backend": "y"})  # another model: everything goes
  assert c3.invalidated and not c3.is_done("s/0") and os.listdir(os.path.join(d, "frames")) == []
  with open(os.path.join(d, "manifest.json")) as f:
    m = json.load(f)
  assert m["identity"]["backend"] == "y" and m["frames"] == {}


def test_attach_priors_to_data_frame():
  z = np.zeros(3, np.float32)
  f = Frame(image=np.zeros((6, 5, 3), np.float32), mask=np.ones((6, 5), np.float32), K=np.eye(3), world_to_camera=np.eye(4),
            betas=np.zeros(10), pose=np.zeros((24, 3)), transl=z, frame_index=np.int32(0),
            camera_index=np.int32(0), sample_index=np.int32(0))
  p = _arrays(0)
  g = cache_lib.attach_priors(f, p)
  assert g.prior_normal is p["normal"] and g.prior_depth is p["depth"] and g.prior_parts is p["parts"]
  with pytest.raises(TypeError, match="prior_normal"):
    cache_lib.attach_priors(object(), p)


def test_dataset_frames_adapter_keys_and_part_names(tmp_path):
  class _Meta:
    part_names = labels.TEMPLATE_PARTS

  class _DS:
    meta = _Meta()

    def __len__(self):
      return 2

    def image_path(self, i):
      return str(tmp_path / "cam01" / f"{i:06d}.png")

  src = extract.DatasetFrames(_DS(), "train", str(tmp_path))
  assert [src.key(i) for i in range(2)] == ["cam01/000000", "cam01/000001"]
  assert src.part_names == labels.TEMPLATE_PARTS


def test_importing_cache_does_not_import_torch():
  code = ("import sys; import fmgs_jax.priors, fmgs_jax.priors.cache, fmgs_jax.priors.extract, "
          "fmgs_jax.priors.synthetic; assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
  subprocess.run([sys.executable, "-c", code], check=True)


def test_crop_matches_map_coordinates_and_paste_inverts():
  rng = np.random.default_rng(0)
  img = scipy.ndimage.gaussian_filter(rng.uniform(size=(60, 50, 3)), (3, 3, 0)).astype(np.float32)
  box = crop_lib.Box(10.3, 5.7, 24.0, 32.0)  # inside the image; out 32 x 24 = no resampling blur
  out = crop_lib.crop(img, box, (32, 24))
  ys = box.y0 + np.arange(32) + 0.5 - 0.5
  xs = box.x0 + np.arange(24) + 0.5 - 0.5
  yy, xx = np.meshgrid(ys, xs, indexing="ij")
  ref = np.stack([scipy.ndimage.map_coordinates(img[..., c], [yy, xx], order=1) for c in range(3)], -1)
  np.testing.assert_allclose(out, ref, atol=1e-5)
  back, inside = crop_lib.paste(out, box, img.shape[:2])
  core = np.zeros_like(inside)
  core[8:35, 12:32] = True  # away from the box edge
  assert inside[core].all() and not inside[0, 0]
  np.testing.assert_allclose(back[core], img[core], atol=5e-3)  # two bilinear resamplings of a smooth image


def test_person_box_aspect_and_cover():
  mask = np.zeros((100, 200), bool)
  mask[20:60, 30:150] = True  # a wide person: the box grows in height to reach 3:4
  b = crop_lib.person_box(mask, (1024, 768), 1.25)
  np.testing.assert_allclose(b.width / b.height, 0.75)
  np.testing.assert_allclose(b.width, 120 * 1.25)
  assert b.x0 <= 30 and b.x0 + b.width >= 150 and b.y0 <= 20 and b.y0 + b.height >= 60
  np.testing.assert_allclose([b.x0 + b.width / 2, b.y0 + b.height / 2], [90, 40])


def test_label_tables():
  assert len(labels.SAPIENS_CLASSES) == 28 and len(set(labels.SAPIENS_CLASSES)) == 28
  assert len(labels.TEMPLATE_PARTS) == 16
  idx = labels.SAPIENS_CLASSES.index
  t = labels.mapping_table(labels.TEMPLATE_PARTS)
  assert t[labels.TEMPLATE_PARTS.index("left_upper_arm")] == idx("Left_Upper_Arm") == 10
  assert (t >= 0).all()
  assert labels.mapping_table(["Left Upper Arm", "L_Elbow", "right-foot"]).tolist() == [
      10, idx("Left_Lower_Arm"), idx("Right_Foot")]
  t2 = labels.mapping_table(labels.SAPIENS2_CLASSES)
  assert t2[2] == idx("Face_Neck") and t2[3] == idx("Face_Neck") and t2[22] == idx("Torso")
  assert labels.mapping_table(labels.SAPIENS_CLASSES).tolist() == list(range(28))
  with pytest.raises(KeyError, match="sky"):
    labels.mapping_table(["sky"])
  assert labels.mapping_table(["sky", "Face"], strict=False).tolist() == [-1, idx("Face_Neck")]
  scores = np.array([[0.1, 0.2, 0.3, 0.4]])  # Background, Apparel, Eyeglass, Face_Neck (Sapiens2 order)
  m = labels.remap_scores(np.pad(scores, ((0, 0), (0, 25))), t2)
  np.testing.assert_allclose(m[0, idx("Face_Neck")], 0.7)
  assert labels.labels_from_scores(m)[0] == idx("Face_Neck")
  lip = labels.mapping_table(labels.LIP_CLASSES)
  assert lip[labels.LIP_CLASSES.index("Left-arm")] == labels.IGNORE


def test_default_cache_dir(tmp_path):
  c = default.get_config()
  c.data.root = str(tmp_path)
  assert extract.default_cache_dir(c, "/w") == os.path.join(str(tmp_path), "priors", "synthetic")
  c.data.root = ""
  assert extract.default_cache_dir(c, "/w") == "/w/data/priors/synthetic"
