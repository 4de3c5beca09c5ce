"""LPIPS against an independent NumPy forward pass written from torchvision's layer lists."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from fmgs_jax.eval import perceptual as lp

# torchvision `features` layer lists ("C" conv (k, stride, pad), "R" ReLU, "P" max-pool (k, stride)) and
# the lpips package's slice boundaries (feature indices where each stage ends, exclusive).
ALEX = [("C", 11, 4, 2), "R", ("P", 3, 2), ("C", 5, 1, 2), "R", ("P", 3, 2), ("C", 3, 1, 1), "R",
        ("C", 3, 1, 1), "R", ("C", 3, 1, 1), "R"]
ALEX_SLICES = [2, 5, 8, 10, 12]
VGG = ([("C", 3, 1, 1), "R"] * 2 + [("P", 2, 2)] + [("C", 3, 1, 1), "R"] * 2 + [("P", 2, 2)]
       + [("C", 3, 1, 1), "R"] * 3 + [("P", 2, 2)] + [("C", 3, 1, 1), "R"] * 3 + [("P", 2, 2)]
       + [("C", 3, 1, 1), "R"] * 3)
VGG_SLICES = [4, 9, 16, 23, 30]


def _make_state_dict(layers, slices, channels, rng):
  sd, c_in, ci = {}, 3, 0
  stage_channels = []
  for idx, layer in enumerate(layers):
    if layer != "R" and layer[0] == "C":
      k = layer[1]
      c_out = channels[ci]
      ci += 1
      stage = next(s for s, end in enumerate(slices) if idx < end) + 1
      sd[f"net.slice{stage}.{idx}.weight"] = rng.standard_normal((c_out, c_in, k, k)) * np.sqrt(2 / (c_in * k * k))
      sd[f"net.slice{stage}.{idx}.bias"] = 0.1 * rng.standard_normal(c_out)
      c_in = c_out
    if idx + 1 in slices:
      stage_channels.append(c_in)
  for s, c in enumerate(stage_channels):
    sd[f"lin{s}.model.1.weight"] = rng.random((1, c, 1, 1))
  sd["scaling_layer.shift"] = np.array([-0.030, -0.088, -0.188]).reshape(1, 3, 1, 1)
  sd["scaling_layer.scale"] = np.array([0.458, 0.448, 0.450]).reshape(1, 3, 1, 1)
  return {k: np.asarray(v, np.float32) for k, v in sd.items()}


def _reference(sd, layers, slices, a, b):
  """Brute-force LPIPS in float64: explicit windows for conv and pool, the lpips package's formula."""
  def features(x):
    x = ((2 * x - 1) - sd["scaling_layer.shift"].reshape(3)) / sd["scaling_layer.scale"].reshape(3)
    out = []
    for idx, layer in enumerate(layers):
      if layer == "R":
        x = np.maximum(x, 0)
      elif layer[0] == "P":
        _, k, s = layer
        x = sliding_window_view(x, (k, k), axis=(0, 1))[::s, ::s].max(axis=(-2, -1))
      else:
        _, k, s, p = layer
        w, bias = next((sd[key], sd[key[:-6] + "bias"]) for key in sd if key.endswith(f".{idx}.weight"))
        xp = np.pad(x, ((p, p), (p, p), (0, 0)))
        win = sliding_window_view(xp, (k, k), axis=(0, 1))[::s, ::s]  # (h, w, C, k, k)
        x = np.einsum("hwcij,ocij->hwo", win, w.astype(np.float64)) + bias
      if idx + 1 in slices:
        out.append(x)
    return out
  total = 0.0
  for s, (f0, f1) in enumerate(zip(features(a.astype(np.float64)), features(b.astype(np.float64)))):
    f0 = f0 / (np.sqrt((f0**2).sum(-1, keepdims=True)) + 1e-10)
    f1 = f1 / (np.sqrt((f1**2).sum(-1, keepdims=True)) + 1e-10)
    total += np.mean(((f0 - f1) ** 2) @ sd[f"lin{s}.model.1.weight"].reshape(-1).astype(np.float64))
  return total


@pytest.mark.parametrize("net,layers,slices,channels,size", [
    ("alex", ALEX, ALEX_SLICES, [16, 24, 32, 24, 24], 67),
    ("vgg", VGG, VGG_SLICES, [8, 8, 12, 12, 16, 16, 16, 16, 16, 16, 16, 16, 16], 36),
])
def test_lpips_matches_numpy_reference(tmp_path, net, layers, slices, channels, size):
  rng = np.random.default_rng(0)
  sd = _make_state_dict(layers, slices, channels, rng)
  path = tmp_path / f"lpips_{net}.npz"
  np.savez(path, **sd)
  params = lp.load_lpips_weights(path)
  assert params["net"] == net
  a = rng.random((size, size + 5, 3)).astype(np.float32)
  b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
  ref = _reference(sd, layers, slices, a, b)
  assert ref > 1e-3
  np.testing.assert_allclose(float(lp.lpips_distance(params, a, b)), ref, rtol=1e-4)
  np.testing.assert_allclose(lp.lpips(a, b, path), ref, rtol=1e-4)
  batch = np.asarray(lp.lpips_distance(params, np.stack([a, a]), np.stack([b, a])))
  np.testing.assert_allclose(batch, [ref, 0.0], rtol=1e-4, atol=1e-7)


def test_lpips_without_weights_is_none_and_bad_files_are_named(tmp_path):
  img = np.zeros((32, 32, 3), np.float32)
  assert lp.lpips(img, img, "") is None and lp.lpips(img, img, None) is None
  with pytest.raises(FileNotFoundError, match="missing.npz"):
    lp.lpips(img, img, tmp_path / "missing.npz")
  bad = tmp_path / "bad.npz"
  np.savez(bad, foo=np.zeros(3))
  with pytest.raises(ValueError, match="bad.npz.*expected 5"):
    lp.load_lpips_weights(bad)
