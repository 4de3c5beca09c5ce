"""Camera conventions of the datasets, converted to fmgs-jax's.

fmgs-jax: OpenCV axes, world metres, pixel centres at integer + 0.5.
The datasets store OpenCV calibrations whose pixel centres are at integers,
ZJU-MoCap stores translations in millimetres, and ZJU-MoCap / HumanNeRF pose
the body with an extra global rotation and translation (`Rh`, `Th`) outside
the body model. These functions convert all of that exactly.
"""

import cv2
import numpy as np
from scipy.spatial.transform import Rotation


def axis_angle_to_matrix(r: np.ndarray) -> np.ndarray:
  """Rotation matrices of axis-angle vectors (scipy's `Rotation.from_rotvec`).

  Args:
    r: (..., 3) axis-angle, radians.

  Returns:
    (..., 3, 3) float64 rotation matrices.
  """
  r = np.asarray(r, np.float64)
  return Rotation.from_rotvec(r.reshape(-1, 3)).as_matrix().reshape(r.shape[:-1] + (3, 3))


def fold_global_transform(world_to_camera: np.ndarray, Rh: np.ndarray, Th: np.ndarray) -> np.ndarray:
  """Folds a global body transform applied outside the body model into the camera.

  ZJU-MoCap (EasyMocap) and HumanNeRF place the body in the world as
  x_world = R(Rh) @ x_body + Th, where x_body = body_model(poses, shapes) with
  zero translation. Then x_cam = E @ [R(Rh) | Th] @ x_body: with the returned
  camera the body model is posed with `poses` and transl = 0, exactly.

  Args:
    world_to_camera: (4, 4) world -> camera, metres.
    Rh: (3,) axis-angle of the global rotation (radians).
    Th: (3,) global translation, metres.

  Returns:
    (4, 4) float64 body-frame -> camera transform.
  """
  G = np.eye(4)
  G[:3, :3] = axis_angle_to_matrix(np.asarray(Rh, np.float64).reshape(3))
  G[:3, 3] = np.asarray(Th, np.float64).reshape(3)
  return np.asarray(world_to_camera, np.float64) @ G


def opencv_to_pixel_centre_intrinsics(K: np.ndarray, shift: float = 0.5) -> np.ndarray:
  """Moves the principal point by `shift` pixels.

  An OpenCV calibration maps the centre of pixel (i, j) to (j, i); fmgs-jax
  maps it to (j + 0.5, i + 0.5). Adding 0.5 to (cx, cy) converts the former to
  the latter.

  Args:
    K: (3, 3) intrinsics.
    shift: pixels added to cx and cy.

  Returns:
    (3, 3) float64 intrinsics.
  """
  K = np.array(K, np.float64)
  K[0, 2] += shift
  K[1, 2] += shift
  return K


def scale_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
  """Intrinsics of the image resized by (sx, sy), pixel centres at integer + 0.5.

  In continuous pixel coordinates with pixel (i, j) covering [j, j + 1), a
  resize maps u -> sx u and v -> sy v exactly, so rows 0 and 1 of K scale.
  """
  K = np.array(K, np.float64)
  K[0] *= sx
  K[1] *= sy
  return K


def undistort(image: np.ndarray, K: np.ndarray, D: np.ndarray, interpolation: int) -> np.ndarray:
  """Removes lens distortion, keeping the camera matrix K (OpenCV convention).

  Args:
    image: (H, W) or (H, W, C) float32.
    K: (3, 3) OpenCV intrinsics (integer pixel centres).
    D: (k1, k2, p1, p2[, k3...]) OpenCV distortion coefficients.
    interpolation: a cv2.INTER_* flag.

  Returns:
    The undistorted image, same shape and dtype.
  """
  h, w = image.shape[:2]
  D = np.asarray(D, np.float64).reshape(-1)
  map1, map2 = cv2.initUndistortRectifyMap(np.asarray(K, np.float64), D, None,
                                           np.asarray(K, np.float64), (w, h), cv2.CV_32FC1)
  return cv2.remap(image, map1, map2, interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
