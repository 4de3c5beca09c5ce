"""The static camera of a user's video: pinhole intrinsics from a focal length or a field of view.

World = camera frame (identity extrinsics): the video has one camera, and the body's placement is
fitted in its frame. No lens distortion is modelled (phone videos come undistorted by the phone).
"""

from __future__ import annotations

import numpy as np

from fmgs_jax import errors


def focal_from_fov(fov_deg: float, side_px: float) -> float:
  """Focal length, pixels, of a pinhole camera whose image side of `side_px` pixels spans `fov_deg`."""
  return 0.5 * side_px / np.tan(np.radians(fov_deg) / 2.0)


def intrinsics(height: int, width: int, focal_px: float = 0.0, fov_deg: float = 60.0) -> np.ndarray:
  """(3, 3) float64 K, fmgs-jax convention (pixel centres at integer + 0.5): principal point at the image
  centre (width / 2, height / 2), square pixels, focal `focal_px` when > 0, else from `fov_deg` across
  the longer image side.

  Raises:
    ConfigError: a field of view outside (0, 180) degrees or a negative focal length.
  """
  if focal_px < 0:
    raise errors.ConfigError(f"config prepare.focal_px = {focal_px}: must be > 0 (or 0 = from prepare.fov_deg)")
  if focal_px == 0 and not 0.0 < fov_deg < 180.0:
    raise errors.ConfigError(f"config prepare.fov_deg = {fov_deg}: must be in (0, 180) degrees")
  f = float(focal_px) if focal_px > 0 else focal_from_fov(fov_deg, max(height, width))
  return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def to_opencv(K: np.ndarray, shift: float = 0.5) -> np.ndarray:
  """K with OpenCV's integer pixel centres (what HumanNeRF's cameras.pkl stores): (cx, cy) - `shift`, the
  inverse of the reader's `data.principal_point_shift`."""
  K = np.array(K, np.float64)
  K[0, 2] -= shift
  K[1, 2] -= shift
  return K
