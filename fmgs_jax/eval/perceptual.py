"""LPIPS (Zhang et al., 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric").

The metric needs trained weights: an ImageNet backbone (AlexNet or VGG16) and
the LPIPS v0.1 linear heads. Nothing is downloaded here; the user converts the
official weights once, where PyTorch and the `lpips` package are available,
into one ``.npz`` holding the `lpips.LPIPS` state dict::

  import lpips, numpy as np
  m = lpips.LPIPS(net="alex")  # or net="vgg"; loads torchvision's backbone and the v0.1 heads
  np.savez("lpips_alex.npz", **{k: v.cpu().numpy() for k, v in m.state_dict().items()})

and points ``--config.eval.lpips_weights=lpips_alex.npz`` at it. Without a
file, `lpips` returns None and metrics.json reports ``"lpips": null`` — never
a made-up value.

The forward pass is the package's: inputs in [0, 1] are mapped to [-1, 1],
shifted and scaled by the ScalingLayer constants, run through the backbone
(torchvision layer layout, ReLU outputs of the five stages: AlexNet relu1-5,
VGG16 relu1_2, 2_2, 3_3, 4_3, 5_3), each feature map is unit-normalised over
channels (eps 1e-10), squared differences are weighted by the non-negative
1x1 linear head, averaged over space and summed over the five stages.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# ScalingLayer constants of the lpips package (used when the file has no scaling_layer buffers).
_SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
_SCALE = np.array([0.458, 0.448, 0.450], np.float32)
# (kernel size) -> (stride, padding) of the torchvision AlexNet / VGG16 convolutions.
_CONV_GEOMETRY = {11: (4, 2), 5: (1, 2), 3: (1, 1)}
# Max-pool (window, stride) per backbone; torchvision uses floor mode and no padding.
_POOL = {"alex": (3, 2), "vgg": (2, 2)}
_KEY = re.compile(r"^net\.slice([1-5])\.(\d+)\.(weight|bias)$")


def load_lpips_weights(path: str | os.PathLike) -> dict[str, Any]:
  """Read an LPIPS ``.npz`` (the `lpips.LPIPS` state dict) into the parameter pytree `lpips_distance` takes.

  Returns:
    {"net": "alex" | "vgg", "convs": [(weight (O, I, k, k), bias (O,), stride, padding, pool_before, stage)],
     "lins": [(C_s,) x 5], "shift": (3,), "scale": (3,)}; every array float32.

  Raises:
    FileNotFoundError / ValueError naming the file and the missing or malformed entry.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"LPIPS weights {path!r} not found: convert the official weights as described "
                            "in fmgs_jax/eval/perceptual.py, or leave config field eval.lpips_weights empty")
  with np.load(path) as data:
    arrays = {k: np.asarray(data[k], np.float32) for k in data.files}
  layers: dict[int, dict[str, Any]] = {}
  for key, value in arrays.items():
    m = _KEY.match(key)
    if m:
      layers.setdefault(int(m.group(2)), {"stage": int(m.group(1))})[m.group(3)] = value
  order = sorted(layers)
  net = {5: "alex", 13: "vgg"}.get(len(order))
  if net is None:
    raise ValueError(f"{path}: found {len(order)} backbone convolutions (net.sliceN.I.weight); "
                     "expected 5 (AlexNet) or 13 (VGG16)")
  convs = []
  for i, idx in enumerate(order):
    layer = layers[idx]
    if "weight" not in layer or "bias" not in layer:
      raise ValueError(f"{path}: backbone layer {idx} lacks its weight or bias")
    k = layer["weight"].shape[-1]
    if k not in _CONV_GEOMETRY:
      raise ValueError(f"{path}: backbone layer {idx} has an unexpected {k}x{k} kernel")
    stride, pad = _CONV_GEOMETRY[k]
    # In torchvision's `features`, conv, ReLU, [MaxPool,] conv: an index gap of 3 means a pool in between.
    pool_before = i > 0 and idx - order[i - 1] == 3
    convs.append((layer["weight"], layer["bias"], stride, pad, pool_before, layer["stage"]))
  lins = []
  for s in range(5):
    key = f"lin{s}.model.1.weight"
    if key not in arrays:
      raise ValueError(f"{path}: missing LPIPS linear head {key!r}")
    lins.append(arrays[key].reshape(-1))
  shift = arrays.get("scaling_layer.shift", _SHIFT).reshape(3)
  scale = arrays.get("scaling_layer.scale", _SCALE).reshape(3)
  return {"net": net, "convs": convs, "lins": lins, "shift": shift, "scale": scale}


def _features(arch, weights, x):
  """x: (B, H, W, 3) scaled input -> list of the five stage outputs, each (B, h, w, C_s)."""
  net, layers = arch
  window, stride = _POOL[net]
  feats = []
  for i, ((s, p, pool_before, stage), (w, b)) in enumerate(zip(layers, weights)):
    if pool_before:
      x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, window, window, 1), (1, stride, stride, 1), "VALID")
    x = jax.lax.conv_general_dilated(x, w, (s, s), ((p, p), (p, p)), dimension_numbers=("NHWC", "OIHW", "NHWC"),
                                     precision=jax.lax.Precision.HIGHEST)
    x = jax.nn.relu(x + b)
    if i + 1 == len(layers) or layers[i + 1][3] != stage:
      feats.append(x)
  return feats


@functools.partial(jax.jit, static_argnames=("arch",))
def _distance(arch, weights, lins, shift, scale, a, b):
  n = a.shape[0]
  x = ((2.0 * jnp.concatenate([a, b], axis=0) - 1.0) - shift) / scale
  total = jnp.zeros((n,), jnp.float32)
  for f, lin in zip(_features(arch, weights, x), lins):
    f = f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + 1e-10)
    d = (f[:n] - f[n:]) ** 2
    total = total + jnp.mean(jnp.einsum("bhwc,c->bhw", d, lin, precision="highest"), axis=(1, 2))
  return total


def lpips_distance(params: dict[str, Any], a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  """LPIPS between two images (or batches) with loaded weights (jitted; compiled once per shape).

  Args:
    params: from `load_lpips_weights`.
    a, b: (H, W, 3) or (B, H, W, 3) float images in [0, 1]; H, W large enough for the backbone's
      strides (>= 32 for AlexNet, >= 16 for VGG16).

  Returns:
    () or (B,) float32 distance (lower is more similar; 0 for identical images).
  """
  a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  if a.shape != b.shape or a.shape[-1] != 3 or a.ndim not in (3, 4):
    raise ValueError(f"lpips: expected two (H, W, 3) or (B, H, W, 3) images of equal shape, got {a.shape}, {b.shape}")
  single = a.ndim == 3
  if single:
    a, b = a[None], b[None]
  arch = (params["net"], tuple((s, p, bool(pool), stage) for _, _, s, p, pool, stage in params["convs"]))
  weights = [(jnp.asarray(w), jnp.asarray(bias)) for w, bias, *_ in params["convs"]]
  out = _distance(arch, weights, [jnp.asarray(l) for l in params["lins"]], jnp.asarray(params["shift"]),
                  jnp.asarray(params["scale"]), a, b)
  return out[0] if single else out


def lpips(a: jnp.ndarray, b: jnp.ndarray, weights_path: str | os.PathLike | None) -> float | None:
  """LPIPS of two (H, W, 3) images in [0, 1], or None when no weights file is given.

  Args:
    a, b: (H, W, 3) float images in [0, 1].
    weights_path: ``.npz`` converted from the official weights (module docstring); "" or None -> None.

  Returns:
    The distance as a Python float, or None (reported as null) without weights.
  """
  if not weights_path:
    return None
  return float(lpips_distance(load_lpips_weights(weights_path), a, b))
