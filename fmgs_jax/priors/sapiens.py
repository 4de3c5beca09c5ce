"""Sapiens priors: the original TorchScript checkpoints and the `sapiens2` family in transformers.

Two kinds of checkpoint, both read from a local path the user downloaded (third_party/README.md):

* Sapiens (v1) `sapiens-{normal,depth,seg}-*` files (`*_torchscript.pt2`, or `.pt`): a TorchScript (or
  `torch.export`) module taking (B, 3, 1024, 768) float32 RGB normalised with mean (123.5, 116.5, 103.5)
  and std (58.5, 57.0, 57.5) on 0-255 values, returning (B, C, h, w): C = 3 normals, 1 relative depth,
  28 part logits (any h, w: resized to the input size as Sapiens' demos do).
* Sapiens2 folders (`save_pretrained` layout: config.json, model.safetensors, preprocessor_config.json)
  loaded with `from_pretrained(folder, local_files_only=True)`: `Sapiens2ForNormalEstimation` (normals),
  `Sapiens2ForSemanticSegmentation` (29 classes, see labels.SAPIENS2_CLASSES),
  `Sapiens2ForPointmapEstimation` (camera-space XYZ; its z is our depth, kind `pointmap_z`). Input size,
  mean and std come from the folder's preprocessor_config.json (Sapiens2ImageProcessor defaults: 1024 x
  768, ImageNet mean/std on [0, 1] values, when the file is absent).

Normal sign convention. Sapiens normals are "camera coordinates, per pixel XYZ" (maintainer, sapiens
issues #50/#201; Sapiens2 docs/NORMAL.md), without axes spelled out. What we can verify:
  1. channel 0 runs along the image's horizontal axis: Sapiens2's training flip (NormalRandomFlip)
     mirrors the image and negates channel 0 only;
  2. visible surfaces face the camera, so the sign of z over a person is observable on any prediction;
     Sapiens' own colour coding ((n + 1) / 2 as RGB) renders a person facing the camera in the blue
     / violet tones of z > 0, i.e. z points towards the camera, and users comparing with Metric3D (an
     OpenCV-frame model) report Sapiens' y and z reversed relative to it (sapiens issue #50);
  3. a right-handed frame with x right and z towards the viewer has y up.
So Sapiens normals are in OpenGL camera axes (x right, y up, z towards the camera) and we convert to
OpenCV with (x, -y, -z) (`c.priors.sapiens.normal_axes = "opengl"`). Item 2 is checked on every run:
the fraction of person pixels whose converted normal faces the camera is stored per frame in the
manifest (`stats.facing`), and a warning is logged when it falls below one half, the sign of a wrong
convention (set `normal_axes = "opencv"` then).
"""

import json
import os
from typing import Any

from absl import logging
import numpy as np

from fmgs_jax import errors
from fmgs_jax.priors import inference
from fmgs_jax.priors import labels as labels_lib

SAPIENS_INPUT_HW = (1024, 768)
SAPIENS_MEAN = (123.5, 116.5, 103.5)  # on 0-255 values, RGB
SAPIENS_STD = (58.5, 57.0, 57.5)
NORMAL_AXES = {"opengl": (1.0, -1.0, -1.0), "opencv": (1.0, 1.0, 1.0)}  # per-axis sign to OpenCV
_SAPIENS2_TASK = {
    "Sapiens2ForNormalEstimation": "normal",
    "Sapiens2ForSemanticSegmentation": "parts",
    "Sapiens2ForPointmapEstimation": "depth",
}


def _seg_table(num_classes: int, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
  if num_classes == len(labels_lib.SAPIENS_CLASSES):
    names = labels_lib.SAPIENS_CLASSES
  elif num_classes == len(labels_lib.SAPIENS2_CLASSES):
    names = labels_lib.SAPIENS2_CLASSES
  else:
    raise ValueError(f"{where}: {num_classes} segmentation classes; Sapiens has 28 (v1) or 29 (Sapiens2)")
  return labels_lib.mapping_table(names), names


def _normal_signs(axes: str) -> np.ndarray:
  if axes not in NORMAL_AXES:
    raise errors.ConfigError(f"c.priors.sapiens.normal_axes={axes!r}: expected one of {sorted(NORMAL_AXES)}")
  return np.asarray(NORMAL_AXES[axes], np.float32)


class TorchScriptPredictor:
  """A Sapiens (v1) TorchScript / torch.export checkpoint for one task."""

  def __init__(self, path: str, task: str, cfg: Any, device: str):
    import torch  # pylint: disable=g-import-not-at-top
    if not os.path.isfile(path):
      raise errors.MissingInputError(f"Sapiens checkpoint {path!r} (c.priors.{task}_model) does not exist; see "
                                     "third_party/README.md for where to download it")
    self.task, self.device = task, device
    self.input_hw = (int(cfg.input_height), int(cfg.input_width))
    try:
      self.model = torch.jit.load(path, map_location=device)
    except RuntimeError:
      try:  # Sapiens also ships torch.export archives (`*_bfloat16.pt2`)
        self.model = torch.export.load(path).module().to(device)
      except Exception as e:  # pylint: disable=broad-except
        raise errors.InputError(f"{path}: neither a TorchScript nor a torch.export archive ({e})") from e
    self.model.eval()
    self.mean, self.std = tuple(cfg.mean), tuple(cfg.std)
    self.signs = _normal_signs(cfg.normal_axes)
    self.depth_kind = "relative_depth" if task == "depth" else None
    self.table = None
    self.identity = {"kind": "sapiens_torchscript", "path": os.path.abspath(path),
                     "files": inference.fingerprint_path(path), "input_hw": list(self.input_hw),
                     "preprocessing": {"mean": list(self.mean), "std": list(self.std), "value_scale": 255.0,
                                       "channels": "RGB"},
                     **({"normal_axes": cfg.normal_axes} if task == "normal" else {}),
                     **({"depth_kind": self.depth_kind} if task == "depth" else {})}

  def predict(self, crops: np.ndarray) -> np.ndarray:
    import torch  # pylint: disable=g-import-not-at-top
    x = inference.to_input(crops, self.mean, self.std, 255.0, self.device)
    with torch.no_grad():
      y = self.model(x)
    if isinstance(y, (tuple, list)):
      y = y[0]
    out = inference.to_output(y, self.input_hw)
    return _finish(self, out, "Sapiens TorchScript")


class Sapiens2Predictor:
  """A Sapiens2 transformers checkpoint folder (normal, segmentation or point-map head)."""

  def __init__(self, folder: str, task: str, cfg: Any, device: str):
    import transformers  # pylint: disable=g-import-not-at-top
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
      raise errors.MissingInputError(f"{folder!r} (c.priors.{task}_model) has no config.json: not a "
                                     "save_pretrained folder; see third_party/README.md")
    config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    arch = (config.architectures or [None])[0]
    if arch not in _SAPIENS2_TASK:
      raise errors.InputError(f"{config_path}: field architectures={config.architectures}; expected one of "
                              f"{sorted(_SAPIENS2_TASK)}")
    if _SAPIENS2_TASK[arch] != task:
      raise errors.InputError(f"{config_path}: a {arch} gives {_SAPIENS2_TASK[arch]!r}, but it is configured as "
                              f"c.priors.{task}_model")
    self.task, self.device = task, device
    self.model = getattr(transformers, arch).from_pretrained(folder, local_files_only=True).to(device).eval()
    proc = _read_processor(folder)
    size = proc.get("size") or {"height": SAPIENS_INPUT_HW[0], "width": SAPIENS_INPUT_HW[1]}
    if "height" not in size or "width" not in size:
      raise errors.InputError(f"{folder}/preprocessor_config.json: field size={size}; expected height and width")
    self.input_hw = (int(size["height"]), int(size["width"]))
    from transformers.utils import constants  # pylint: disable=g-import-not-at-top
    self.mean = tuple(proc.get("image_mean", constants.IMAGENET_DEFAULT_MEAN))
    self.std = tuple(proc.get("image_std", constants.IMAGENET_DEFAULT_STD))
    self.value_scale = 255.0 * float(proc.get("rescale_factor", 1 / 255)) if proc.get("do_rescale", True) \
        else 255.0
    if not proc.get("do_normalize", True):
      self.mean, self.std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    self.signs = _normal_signs(cfg.normal_axes)
    self.depth_kind = "pointmap_z" if task == "depth" else None
    self.table = None
    if task == "parts":
      self.table, names = _seg_table(config.num_labels, config_path)
    self.identity = {"kind": "sapiens2", "architecture": arch, "path": os.path.abspath(folder),
                     "files": inference.fingerprint_path(folder), "input_hw": list(self.input_hw),
                     "preprocessing": {"mean": list(self.mean), "std": list(self.std),
                                       "value_scale": self.value_scale, "channels": "RGB"},
                     **({"normal_axes": cfg.normal_axes} if task == "normal" else {}),
                     **({"depth_kind": self.depth_kind} if task == "depth" else {}),
                     **({"source_classes": list(names)} if task == "parts" else {})}

  def predict(self, crops: np.ndarray) -> np.ndarray:
    import torch  # pylint: disable=g-import-not-at-top
    x = inference.to_input(crops, self.mean, self.std, self.value_scale, self.device)
    with torch.no_grad():
      o = self.model(pixel_values=x)
    if self.task == "normal":
      y = o.normals
    elif self.task == "parts":
      y = o.logits
    else:
      y = o.pointmaps
      if o.scales is not None:  # canonical -> actual focal length, as the processor's post-processing
        y = y / o.scales[:, :, None, None]
      y = y[:, 2:3]
    out = inference.to_output(y, self.input_hw)
    return _finish(self, out, "Sapiens2")


def _finish(p, out: np.ndarray, what: str) -> np.ndarray:
  """Task-specific conversion of resized raw outputs into the predictor contract."""
  if p.task == "normal":
    if out.shape[-1] != 3:
      raise ValueError(f"{what} normal model returned {out.shape[-1]} channels, expected 3")
    return out * p.signs
  if p.task == "depth":
    if out.shape[-1] != 1:
      raise ValueError(f"{what} depth model returned {out.shape[-1]} channels, expected 1")
    return out
  if p.table is None:
    p.table, names = _seg_table(out.shape[-1], what)
    p.identity["source_classes"] = list(names)
  return labels_lib.remap_scores(inference.softmax_np(out), p.table)


def _read_processor(folder: str) -> dict[str, Any]:
  path = os.path.join(folder, "preprocessor_config.json")
  if not os.path.isfile(path):
    logging.info("%s: no preprocessor_config.json; using the processor defaults", folder)
    return {}
  with open(path) as f:
    return json.load(f)


def make_predictor(path: str, task: str, cfg: Any, device: str):
  """A folder is a Sapiens2 checkpoint, a file a Sapiens (v1) TorchScript checkpoint."""
  if os.path.isdir(path):
    return Sapiens2Predictor(path, task, cfg, device)
  return TorchScriptPredictor(path, task, cfg, device)
