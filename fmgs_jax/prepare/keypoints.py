"""COCO-17 2D keypoints with confidences from a VitPose checkpoint (transformers), one box per frame.

`config.prepare.pose_model` is a local `save_pretrained` folder of `VitPoseForPoseEstimation` with its
image processor (preprocessor_config.json: VitPose's input size, normalisation and box padding). The
person's box is the tight box of its mask (the processor pads it by its own factor, 1.25); VitPose's
heatmaps are decoded by the processor's `post_process_pose_estimation` (DARK sub-pixel refinement) back
into frame pixels. Those use OpenCV's integer pixel centres; `detect` returns fmgs-jax's (+ 0.5).
Confidences are the heatmap peaks, clipped to [0, 1].
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import tqdm

from fmgs_jax import errors

NUM_KEYPOINTS = 17  # COCO


def mask_box(mask: np.ndarray) -> np.ndarray:
  """(4,) float32 COCO box (x, y, width, height) around the mask's pixels, in pixel indices (the
  leftmost column x, width = columns spanned); the whole image for an empty mask."""
  mask = np.asarray(mask, bool)
  if not mask.any():
    return np.array([0, 0, mask.shape[1], mask.shape[0]], np.float32)
  rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
  return np.array([cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1], np.float32)


class VitPoseDetector:
  """A VitPose checkpoint folder: `detect(images, masks)`."""

  def __init__(self, folder: str, device: str):
    import transformers  # pylint: disable=g-import-not-at-top
    if not folder:
      raise errors.ConfigError("config prepare.pose_model is empty: give a VitPose checkpoint folder; see "
                               "third_party/README.md")
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
      raise errors.MissingInputError(f"{folder!r} (config prepare.pose_model) has no config.json: not a "
                                     "VitPose save_pretrained folder; see third_party/README.md")
    if not os.path.isfile(os.path.join(folder, "preprocessor_config.json")):
      raise errors.MissingInputError(f"{os.path.join(folder, 'preprocessor_config.json')} is missing (config "
                                     "prepare.pose_model): save VitPose's image processor next to the model")
    try:
      self.model = transformers.VitPoseForPoseEstimation.from_pretrained(folder, local_files_only=True).to(device).eval()
      self.processor = transformers.AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    except (ValueError, OSError, TypeError) as e:
      raise errors.InputError(f"{config_path}: not a VitPoseForPoseEstimation checkpoint, as config "
                              f"prepare.pose_model requires ({errors.one_line(e)[:200]})") from None
    if self.model.config.num_labels != NUM_KEYPOINTS:
      raise errors.InputError(f"{config_path}: {self.model.config.num_labels} keypoints; config "
                              f"prepare.pose_model needs a COCO-17 VitPose model")
    self.device = device

  def detect(self, images: np.ndarray, masks: np.ndarray, batch_size: int = 8, progress: bool = True) -> np.ndarray:
    """(N, 17, 3) float32 (x, y, confidence): COCO-17 keypoints in frame pixels (pixel centres at
    integer + 0.5) of (N, H, W, 3) uint8 frames, the person boxed by its (N, H, W) mask."""
    import torch  # pylint: disable=g-import-not-at-top
    out = np.zeros((len(images), NUM_KEYPOINTS, 3), np.float32)
    for s in tqdm.trange(0, len(images), batch_size, desc="keypoints", unit="batch", disable=not progress,
                         dynamic_ncols=True):
      imgs = [np.asarray(im) for im in images[s:s + batch_size]]
      boxes = [[mask_box(m).tolist()] for m in masks[s:s + batch_size]]
      inputs = self.processor(images=imgs, boxes=boxes, return_tensors="pt")
      with torch.no_grad():
        o = self.model(pixel_values=inputs["pixel_values"].to(self.device))
      results = self.processor.post_process_pose_estimation(o, boxes=boxes)
      for k, res in enumerate(results):
        out[s + k, :, :2] = np.asarray(res[0]["keypoints"], np.float32) + 0.5
        out[s + k, :, 2] = np.clip(np.asarray(res[0]["scores"], np.float32), 0.0, 1.0)
    return out


def make_detector(config: Any) -> VitPoseDetector:
  from fmgs_jax.priors import inference  # pylint: disable=g-import-not-at-top
  return VitPoseDetector(config.prepare.pose_model, inference.resolve_device(config.prepare.device))
