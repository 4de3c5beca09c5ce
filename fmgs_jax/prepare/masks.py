"""Person masks from a segmentation model: the person's pixels, largest connected component kept.

Models (`config.prepare.seg_model`, a local path; nothing is downloaded):

* a Sapiens (v1) segmentation TorchScript file or a Sapiens2 segmentation folder (priors/sapiens.py):
  person = every class but Background;
* any transformers `AutoModelForSemanticSegmentation` folder (SegFormer, UperNet, ...): person = the
  classes named like a person (`person`, `people`, `human`, `pedestrian`: ADE20K, COCO-stuff, Cityscapes
  label sets), else, for a human-parsing label set (every class in priors/labels.py's tables, e.g. LIP),
  every class but Background.

The whole frame is fed letterboxed at the model's input aspect (priors/crop.py) and the person
probability pasted back; a pixel is the person's where it exceeds `threshold`. Only the largest
8-connected component is kept (a monocular avatar has one subject; the others are false positives or
bystanders). A frame whose component covers less than `min_fraction` of the image shows no person.
"""

from __future__ import annotations

import json
import os
from typing import Any

import cv2
import numpy as np
import tqdm

from fmgs_jax import errors
from fmgs_jax.priors import crop as crop_lib
from fmgs_jax.priors import labels as labels_lib

PERSON_NAMES = ("person", "people", "human", "pedestrian")  # after labels.normalize_name


def largest_component(mask: np.ndarray) -> np.ndarray:
  """(H, W) bool: the largest 8-connected component of `mask` (all False when it is empty); ties go
  to the component OpenCV labels first."""
  mask = np.asarray(mask, bool)
  n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
  if n <= 1:
    return np.zeros_like(mask)
  return lab == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def person_classes(names: list[str], where: str) -> np.ndarray:
  """(C,) float32 0/1: which of a segmentation model's classes are the person (see module docstring).

  Raises:
    InputError naming `where` when no class is.
  """
  norm = [labels_lib.normalize_name(n) for n in names]
  person = np.array([n in PERSON_NAMES for n in norm], np.float32)
  if person.any():
    return person
  try:
    mapped = [labels_lib.sapiens_name(n) for n in names]
  except KeyError:
    mapped = None
  if mapped is not None and "background" in norm:
    return np.array([m != "Background" for m in mapped], np.float32)
  raise errors.InputError(f"{where}: no person class among id2label {names[:12]}{'...' if len(names) > 12 else ''}; "
                          "config prepare.seg_model needs a model with a 'person' class or a human-parsing "
                          "label set with 'background'")


class SapiensSegmenter:
  """Person probability from a Sapiens / Sapiens2 part-segmentation checkpoint (1 - P(Background))."""

  def __init__(self, path: str, sapiens_cfg: Any, device: str):
    from fmgs_jax.priors import sapiens  # pylint: disable=g-import-not-at-top
    self.predictor = sapiens.make_predictor(path, "parts", sapiens_cfg, device)
    self.input_hw = self.predictor.input_hw

  def predict(self, crops: np.ndarray) -> np.ndarray:
    """(B, h, w, 3) float32 RGB [0, 1] at input_hw -> (B, h, w) float32 person probability."""
    scores = self.predictor.predict(crops)
    return 1.0 - scores[..., labels_lib.SAPIENS_CLASSES.index("Background")]


class TransformersSegmenter:
  """Person probability from a transformers semantic-segmentation checkpoint folder."""

  def __init__(self, folder: str, transformers_cfg: Any, device: str):
    import transformers  # pylint: disable=g-import-not-at-top
    from fmgs_jax.priors import hf  # pylint: disable=g-import-not-at-top
    config_path = os.path.join(folder, "config.json")
    try:
      self.model = transformers.AutoModelForSemanticSegmentation.from_pretrained(
          folder, local_files_only=True).to(device).eval()
    except (ValueError, OSError) as e:
      raise errors.InputError(f"{config_path}: not an AutoModelForSemanticSegmentation checkpoint, as config "
                              f"prepare.seg_model requires ({errors.one_line(e)[:200]})") from None
    self.device = device
    self.input_hw, self.mean, self.std, self.value_scale = hf.processor_settings(
        folder, transformers_cfg, "config prepare.seg_model")
    id2label = self.model.config.id2label
    self.person = person_classes([id2label[i] for i in range(self.model.config.num_labels)], config_path)

  def predict(self, crops: np.ndarray) -> np.ndarray:
    import torch  # pylint: disable=g-import-not-at-top
    from fmgs_jax.priors import inference  # pylint: disable=g-import-not-at-top
    x = inference.to_input(crops, self.mean, self.std, self.value_scale, self.device)
    with torch.no_grad():
      logits = self.model(pixel_values=x).logits
    probs = inference.softmax_np(inference.to_output(logits, self.input_hw))
    return probs @ self.person


def make_segmenter(path: str, config: Any):
  """The person segmenter for `config.prepare.seg_model` (see module docstring)."""
  from fmgs_jax.priors import inference  # pylint: disable=g-import-not-at-top
  if not path:
    raise errors.ConfigError("config prepare.seg_model is empty: give a segmentation checkpoint (a Sapiens "
                             ".pt2 file, a Sapiens2 or transformers folder); see third_party/README.md")
  if not os.path.exists(path):
    raise errors.MissingInputError(f"{path}: no such segmentation checkpoint (config prepare.seg_model); "
                                   "see third_party/README.md")
  device = inference.resolve_device(config.prepare.device)
  if os.path.isfile(path):
    return SapiensSegmenter(path, config.priors.sapiens, device)
  config_path = os.path.join(path, "config.json")
  if not os.path.isfile(config_path):
    raise errors.MissingInputError(f"{path!r} (config prepare.seg_model) has no config.json: not a "
                                   "save_pretrained folder")
  with open(config_path) as f:
    arch = (json.load(f).get("architectures") or [""])[0]
  if arch.startswith("Sapiens2"):
    return SapiensSegmenter(path, config.priors.sapiens, device)
  return TransformersSegmenter(path, config.priors.transformers, device)


def person_masks(images: np.ndarray, segmenter: Any, batch_size: int = 4, threshold: float = 0.5,
                 progress: bool = True) -> np.ndarray:
  """(N, H, W) bool person masks (largest component) of (N, H, W, 3) uint8 RGB frames."""
  n, h, w = images.shape[:3]
  box = crop_lib.person_box(np.zeros((h, w), bool), segmenter.input_hw, 1.0)  # the whole frame
  out = np.zeros((n, h, w), bool)
  for s in tqdm.trange(0, n, batch_size, desc="person masks", unit="batch", disable=not progress,
                       dynamic_ncols=True):
    crops = np.stack([crop_lib.crop(img.astype(np.float32) / 255.0, box, segmenter.input_hw)
                      for img in images[s:s + batch_size]])
    probs = segmenter.predict(crops)
    for k, p in enumerate(probs):
      full, _ = crop_lib.paste(p[..., None], box, (h, w))
      out[s + k] = largest_component(full[..., 0] > threshold)
  return out
