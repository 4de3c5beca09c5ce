"""Generic transformers checkpoints: any local depth-estimation or semantic-segmentation model.

For users without Sapiens weights: DPT, Depth Anything (`AutoModelForDepthEstimation`) for depth and any
`AutoModelForSemanticSegmentation` (SegFormer, UperNet, ... human-parsing checkpoints) for parts. The
folder is a `save_pretrained` layout read with `local_files_only=True`; the preprocessor_config.json
next to it gives input size, mean and std (`c.priors.transformers.input_height/width` > 0 override the
size, e.g. to feed a portrait crop to a model trained on squares).

Depth: relative depth models in transformers (DPT, Depth Anything relative) predict inverse depth
(disparity, up to scale and shift); `c.priors.transformers.depth_kind` records it (set `relative_depth`
for a model that predicts depth). Parts: class names come from the config's id2label and are mapped into
the Sapiens classes with labels.mapping_table; names with no counterpart (a scene-parsing 'sky') are
recorded in the manifest and become the ignore label.
"""

import json
import os
from typing import Any

from absl import logging
import numpy as np

from fmgs_jax import errors
from fmgs_jax.priors import cache as cache_lib
from fmgs_jax.priors import inference
from fmgs_jax.priors import labels as labels_lib


def processor_settings(folder: str, cfg: Any, field: str) -> tuple[tuple[int, int], tuple, tuple, float]:
  """(input (height, width), mean, std, value_scale) from a checkpoint folder's preprocessor_config.json
  (`cfg.input_height/width` > 0 override the size), as `inference.to_input` takes them; `field` names the
  config field of the folder in errors."""
  proc_path = os.path.join(folder, "preprocessor_config.json")
  if not os.path.isfile(proc_path):
    raise errors.MissingInputError(f"{proc_path} is missing ({field}): save the model's image processor next "
                                   "to it (processor.save_pretrained(folder))")
  with open(proc_path) as f:
    proc = json.load(f)
  size = dict(proc.get("size") or {})
  h = int(cfg.input_height) or int(size.get("height", 0))
  w = int(cfg.input_width) or int(size.get("width", 0))
  if not (h and w):
    raise errors.InputError(f"{proc_path}: field size={size} has no height/width; set "
                            "c.priors.transformers.input_height and input_width")
  normalize = proc.get("do_normalize", True)
  mean = tuple(proc.get("image_mean", (0.0, 0.0, 0.0)) if normalize else (0, 0, 0))
  std = tuple(proc.get("image_std", (1.0, 1.0, 1.0)) if normalize else (1, 1, 1))
  value_scale = 255.0 * float(proc.get("rescale_factor", 1 / 255)) if proc.get("do_rescale", True) else 255.0
  return (h, w), mean, std, value_scale


class TransformersPredictor:
  """A transformers depth-estimation or semantic-segmentation checkpoint folder for one task."""

  def __init__(self, folder: str, task: str, cfg: Any, device: str):
    import transformers  # pylint: disable=g-import-not-at-top
    if task not in ("depth", "parts"):
      raise errors.ConfigError(f"c.priors.{task}_model: the transformers backend provides depth and parts only")
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
      raise errors.MissingInputError(f"{folder!r} (c.priors.{task}_model) has no config.json: not a "
                                     "save_pretrained folder")
    self.task, self.device = task, device
    auto = (transformers.AutoModelForDepthEstimation if task == "depth"
            else transformers.AutoModelForSemanticSegmentation)
    try:
      self.model = auto.from_pretrained(folder, local_files_only=True).to(device).eval()
    except ValueError as e:
      raise errors.InputError(f"{config_path}: not a {auto.__name__} checkpoint, as c.priors.{task}_model "
                              f"requires ({e})") from e
    self.input_hw, self.mean, self.std, self.value_scale = processor_settings(folder, cfg, f"c.priors.{task}_model")
    self.depth_kind = None
    extra = {}
    if task == "depth":
      if cfg.depth_kind not in cache_lib.DEPTH_KINDS:
        raise errors.ConfigError(f"c.priors.transformers.depth_kind={cfg.depth_kind!r}: expected one of "
                                 f"{sorted(cache_lib.DEPTH_KINDS)}")
      self.depth_kind = cfg.depth_kind
      extra["depth_kind"] = self.depth_kind
    else:
      id2label = self.model.config.id2label
      names = [id2label[i] for i in range(self.model.config.num_labels)]
      self.table = labels_lib.mapping_table(names, strict=False)
      unmapped = [n for n, t in zip(names, self.table) if t < 0]
      if unmapped:
        logging.warning("%s: classes without a Sapiens counterpart become the ignore label: %s",
                        config_path, unmapped)
      extra.update(source_classes=names, mapping=[int(t) for t in self.table], unmapped=unmapped)
    self.identity = {"kind": "transformers", "architecture": (self.model.config.architectures or [""])[0],
                     "path": os.path.abspath(folder), "files": inference.fingerprint_path(folder),
                     "input_hw": list(self.input_hw),
                     "preprocessing": {"mean": list(self.mean), "std": list(self.std),
                                       "value_scale": self.value_scale, "channels": "RGB"}, **extra}

  def predict(self, crops: np.ndarray) -> np.ndarray:
    import torch  # pylint: disable=g-import-not-at-top
    x = inference.to_input(crops, self.mean, self.std, self.value_scale, self.device)
    with torch.no_grad():
      o = self.model(pixel_values=x)
    if self.task == "depth":
      return inference.to_output(o.predicted_depth, self.input_hw)
    out = inference.to_output(o.logits, self.input_hw)
    return labels_lib.remap_scores(inference.softmax_np(out), self.table)
