"""Real extraction on tiny randomly initialised models saved to a temporary folder (no downloads)."""

import json
import os

import ml_collections
import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the `priors` extra
transformers = pytest.importorskip("transformers")

from configs import default  # pylint: disable=g-import-not-at-top,wrong-import-position
from fmgs_jax.priors import cache as cache_lib  # pylint: disable=wrong-import-position
from fmgs_jax.priors import extract  # pylint: disable=wrong-import-position
from fmgs_jax.priors import labels  # pylint: disable=wrong-import-position

IN_HW = (32, 24)  # tiny stand-in for Sapiens' 1024 x 768 (same 4:3 portrait aspect)


def _frames(n=3, hw=(40, 56), seed=0):
  rng = np.random.default_rng(seed)
  frames = []
  for i in range(n):
    mask = np.zeros(hw, np.float32)
    mask[8 + i:34, 20:36 + i] = 1.0
    frames.append({"image": rng.uniform(size=hw + (3,)).astype(np.float32), "mask": mask})
  return frames, [f"cam0/{i:04d}" for i in range(n)]


def _sapiens2(tmp_path, arch, num_labels, seed):
  torch.manual_seed(seed)
  cfg = transformers.Sapiens2Config(
      hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
      num_key_value_attention_heads=2, image_size=list(IN_HW), patch_size=8, num_register_tokens=0,
      num_labels=num_labels, head_config=dict(upsample_out_channels=[8], conv_out_channels=[8],
                                              use_pixel_shuffle=True))
  model = getattr(transformers, arch)(cfg).eval()
  folder = str(tmp_path / f"{arch}_{seed}")
  model.save_pretrained(folder)
  with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:  # what Sapiens2ImageProcessor saves
    json.dump({"image_processor_type": "Sapiens2ImageProcessor", "size": {"height": IN_HW[0], "width": IN_HW[1]},
               "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
               "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True}, f)
  return folder


class _SapiensContract(torch.nn.Module):
  """Sapiens TorchScript contract: (B, 3, H, W) normalised RGB -> (B, C, H/2, W/2)."""

  def __init__(self, channels: int):
    super().__init__()
    self.conv = torch.nn.Conv2d(3, channels, 3, stride=2, padding=1)

  def forward(self, x):
    return self.conv(x)


def _torchscript(tmp_path, channels, name):
  torch.manual_seed(channels)
  path = str(tmp_path / f"sapiens_tiny_{name}_torchscript.pt2")
  torch.jit.script(_SapiensContract(channels)).save(path)
  return path


def _pcfg(backend, **models):
  c = default.get_config().priors
  c.backend = backend
  c.batch_size = 2
  c.device = "cpu"
  c.sapiens.input_height, c.sapiens.input_width = IN_HW
  for k, v in models.items():
    setattr(c, k, v)
  return c


def _check_cache(cache_dir, keys, frames, outputs):
  reader = cache_lib.PriorReader(cache_dir)
  assert reader.keys() == sorted(keys)
  assert reader.manifest["class_names"] == list(labels.SAPIENS_CLASSES)
  for k, f in zip(keys, frames):
    entry = reader.manifest["frames"][k]
    assert entry["sha256"] == cache_lib.file_sha256(os.path.join(cache_dir, "frames", entry["file"]))
    p = reader.load(k, verify=True)
    hw = f["mask"].shape
    valid = p["valid"]
    assert valid.shape == hw and np.array_equal(valid, f["mask"] > 0.5)  # the crop covers the whole mask
    if "normal" in outputs:
      assert p["normal"].shape == hw + (3,) and p["normal"].dtype == np.float32
      np.testing.assert_allclose(np.linalg.norm(p["normal"][valid], axis=-1), 1.0, atol=1e-5)
      assert not p["normal"][~valid].any()
    if "depth" in outputs:
      assert p["depth"].shape == hw and np.isfinite(p["depth"]).all() and not p["depth"][~valid].any()
    if "parts" in outputs:
      assert p["parts"].shape == hw
      assert p["parts"].min() >= labels.IGNORE and p["parts"].max() < labels.NUM_CLASSES
      assert (p["parts"][~valid] == 0).all()
  return reader


def test_sapiens2_normal_seg_and_torchscript_depth(tmp_path):
  frames, keys = _frames()
  normal = _sapiens2(tmp_path, "Sapiens2ForNormalEstimation", 3, seed=0)
  seg = _sapiens2(tmp_path, "Sapiens2ForSemanticSegmentation", 29, seed=1)
  depth = _torchscript(tmp_path, 1, "depth")
  pcfg = _pcfg("sapiens", normal_model=normal, seg_model=seg, depth_model=depth)
  cache_dir = str(tmp_path / "cache")
  src = extract.ListFrames(frames, keys)
  s = extract.extract(src, cache_dir, pcfg, progress=False)
  assert (s["extracted"], s["skipped"]) == (3, 0)
  reader = _check_cache(cache_dir, keys, frames, ("normal", "depth", "parts"))
  ident = reader.manifest["identity"]["outputs"]
  assert ident["normal"]["architecture"] == "Sapiens2ForNormalEstimation"
  assert ident["normal"]["input_hw"] == list(IN_HW) and ident["normal"]["normal_axes"] == "opengl"
  assert ident["parts"]["source_classes"] == list(labels.SAPIENS2_CLASSES)
  assert ident["depth"]["kind"] == "relative_depth"
  assert ident["depth"]["preprocessing"]["mean"] == [123.5, 116.5, 103.5]
  before = {k: reader.load(k) for k in keys}

  # Resume: delete one frame's file; only that frame is redone, and the same up to batch-size round-off.
  os.remove(os.path.join(cache_dir, "frames", reader.manifest["frames"][keys[1]]["file"]))
  s = extract.extract(src, cache_dir, pcfg, progress=False)
  assert (s["extracted"], s["skipped"], s["invalidated"]) == (1, 2, False)
  after = cache_lib.PriorReader(cache_dir).load(keys[1])
  for name in ("normal", "depth"):
    np.testing.assert_allclose(after[name], before[keys[1]][name], atol=1e-4)
  assert (after["parts"] == before[keys[1]]["parts"]).mean() > 0.99

  # A different model (other weights) invalidates every frame.
  pcfg.normal_model = _sapiens2(tmp_path, "Sapiens2ForNormalEstimation", 3, seed=5)
  s = extract.extract(src, cache_dir, pcfg, progress=False)
  assert (s["extracted"], s["skipped"], s["invalidated"]) == (3, 0, True)
  assert not np.allclose(cache_lib.PriorReader(cache_dir).load(keys[0])["normal"], before[keys[0]]["normal"])


def test_torchscript_normal_axes_and_seg(tmp_path):
  """The OpenGL -> OpenCV conversion is (x, -y, -z) of the model's own unit output."""
  frames, keys = _frames(n=2)
  path = _torchscript(tmp_path, 3, "normal")
  seg = _torchscript(tmp_path, 28, "seg")
  out = {}
  for axes in ("opengl", "opencv"):
    pcfg = _pcfg("sapiens", normal_model=path, seg_model=seg)
    pcfg.sapiens.normal_axes = axes
    d = str(tmp_path / axes)
    extract.extract(extract.ListFrames(frames, keys), d, pcfg, progress=False)
    out[axes] = _check_cache(d, keys, frames, ("normal", "parts")).load(keys[0])
  np.testing.assert_allclose(out["opengl"]["normal"], out["opencv"]["normal"] * np.array([1, -1, -1]), atol=1e-6)
  np.testing.assert_array_equal(out["opengl"]["parts"], out["opencv"]["parts"])


def test_transformers_dpt_depth(tmp_path):
  frames, keys = _frames(n=2)
  torch.manual_seed(0)
  cfg = transformers.DPTConfig(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
                               image_size=32, patch_size=8, backbone_out_indices=[0, 1, 2, 3],
                               neck_hidden_sizes=[8, 8, 8, 8], fusion_hidden_size=8, reassemble_factors=[4, 2, 1, 0.5])
  folder = str(tmp_path / "dpt")
  transformers.DPTForDepthEstimation(cfg).eval().save_pretrained(folder)
  transformers.DPTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
  pcfg = _pcfg("transformers", depth_model=folder)
  d = str(tmp_path / "cache")
  extract.extract(extract.ListFrames(frames, keys), d, pcfg, progress=False)
  reader = _check_cache(d, keys, frames, ("depth",))
  assert reader.manifest["identity"]["outputs"]["depth"]["kind"] == "inverse_depth"
  raw = np.load(os.path.join(d, "frames", reader.manifest["frames"][keys[0]]["file"]))["depth"]
  np.testing.assert_array_equal(reader.load(keys[0])["depth"], -raw)  # larger = farther for the loss


def test_bad_model_path_names_the_field(tmp_path):
  pcfg = _pcfg("sapiens", normal_model=str(tmp_path / "missing.pt2"))
  with pytest.raises(FileNotFoundError, match="normal_model"):
    extract.build_predictors(pcfg)
