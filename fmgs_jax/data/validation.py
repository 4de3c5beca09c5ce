"""Dataset problems: collected before any compute, reported with file and field.

Readers call `Problems.error` for problems that make the dataset unusable
(missing files, disagreeing frame counts, bad cameras) and `Problems.skip` for
per-frame problems that can be dropped (an unreadable image, a mask of the
wrong size, a NaN pose in one frame). `Problems.raise_if_any` then stops with
one `DatasetError` listing every problem, or logs one warning per skipped
frame and returns the set of skipped frames. Too many skipped frames
(more than `max_skipped_fraction`) is itself an error: a dataset that loses
most of its frames is a wrong dataset, not a noisy one.
"""

import dataclasses
import os
from typing import Any

from absl import logging
import numpy as np
from PIL import Image

from fmgs_jax.errors import UserError


class DatasetError(UserError):
  """A dataset cannot be used; the message names every file and field at fault."""


@dataclasses.dataclass
class Problems:
  """Accumulates dataset problems for one split.

  Attributes:
    dataset: human-readable dataset name used in messages (e.g. the root path).
    errors: fatal problems, each "file: field: what is wrong [: what to do]".
    skipped: per-frame skippable problems, sample key -> message.
  """
  dataset: str
  errors: list[str] = dataclasses.field(default_factory=list)
  skipped: dict[Any, str] = dataclasses.field(default_factory=dict)

  def error(self, where: str, message: str) -> None:
    line = f"{where}: {message}"
    if line not in self.errors:  # one camera shared by many frames is reported once
      self.errors.append(line)

  def skip(self, key: Any, where: str, message: str) -> None:
    self.skipped.setdefault(key, f"{where}: {message}")

  def raise_if_any(self, num_samples: int, max_skipped_fraction: float) -> set[Any]:
    """Raises `DatasetError` on fatal problems; warns about and returns skipped samples.

    Args:
      num_samples: samples in the split before skipping.
      max_skipped_fraction: largest tolerated fraction of skipped samples.

    Returns:
      The keys of the samples to skip.
    """
    errors = list(self.errors)
    if num_samples and len(self.skipped) > max_skipped_fraction * num_samples:
      errors.append(
          f"{len(self.skipped)} of {num_samples} frames are unusable (more than "
          f"data.max_skipped_fraction={max_skipped_fraction}); first: {next(iter(self.skipped.values()))}")
    if errors:
      lines = "\n  ".join(errors)
      raise DatasetError(f"Dataset {self.dataset} has {len(errors)} problem(s):\n  {lines}")
    for message in self.skipped.values():
      logging.warning("Skipping frame: %s", message)
    if self.skipped:
      logging.warning("Skipped %d of %d frames of %s.", len(self.skipped), num_samples, self.dataset)
    return set(self.skipped)


def check_file(problems: Problems, path: str, field: str) -> bool:
  """Records a fatal problem if `path` is missing; returns whether it exists."""
  if not os.path.isfile(path):
    problems.error(path, f"{field}: file not found")
    return False
  return True


def image_size(path: str) -> tuple[int, int]:
  """Returns (height, width) of an image file after checking it decodes.

  PIL reads the header and `verify()` checks the stream's integrity (chunk
  CRCs for PNG) without decoding pixels, so validating a long video is cheap.

  Raises:
    OSError / ValueError (from PIL) when the file is unreadable.
  """
  with Image.open(path) as im:
    width, height = im.size
    im.verify()
  return height, width


def check_pose(problems: Problems, key: Any, where: str, field: str, pose: np.ndarray,
               max_angle: float) -> None:
  """Skips a frame whose axis-angle pose is non-finite or has an absurd angle.

  Args:
    pose: (24, 3) axis-angle radians.
    max_angle: largest plausible rotation angle of any joint, radians.
  """
  if not np.all(np.isfinite(pose)):
    problems.skip(key, where, f"{field}: pose has NaN or inf values")
    return
  angle = np.linalg.norm(pose.reshape(-1, 3), axis=-1)
  if np.any(angle > max_angle):
    joint = int(np.argmax(angle))
    problems.skip(key, where, f"{field}: joint {joint} rotates {angle[joint]:.2f} rad "
                  f"(> data.max_pose_angle={max_angle}); the pose is corrupt or not axis-angle")


def check_intrinsics(problems: Problems, where: str, field: str, K: np.ndarray) -> None:
  """Fatal problem when K is not a (3, 3) finite matrix with positive focal lengths."""
  K = np.asarray(K)
  if K.shape != (3, 3):
    problems.error(where, f"{field}: intrinsics must be 3x3, got shape {K.shape}")
  elif not np.all(np.isfinite(K)):
    problems.error(where, f"{field}: intrinsics have NaN or inf values")
  elif K[0, 0] <= 0 or K[1, 1] <= 0:
    problems.error(where, f"{field}: non-positive focal length (fx={K[0, 0]}, fy={K[1, 1]})")


def check_extrinsics(problems: Problems, where: str, field: str, T: np.ndarray) -> None:
  """Fatal problem when T is not a finite rigid (4, 4) transform."""
  T = np.asarray(T, np.float64)
  if T.shape != (4, 4):
    problems.error(where, f"{field}: extrinsics must be 4x4, got shape {T.shape}")
  elif not np.all(np.isfinite(T)):
    problems.error(where, f"{field}: extrinsics have NaN or inf values")
  elif not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-3) or not np.allclose(
      T[3], [0, 0, 0, 1], atol=1e-6):
    problems.error(where, f"{field}: extrinsics are not a rigid transform [R t; 0 0 0 1]")
