"""Camera conventions: Rodrigues vs scipy, Rh/Th folding by hand, undistortion vs cv2.projectPoints."""

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from fmgs_jax.data import cameras


def test_axis_angle_matches_scipy():
  r = np.random.default_rng(0).normal(size=(50, 3)) * 2
  r[0] = 0.0
  np.testing.assert_allclose(cameras.axis_angle_to_matrix(r), Rotation.from_rotvec(r).as_matrix(), atol=1e-12)


def test_fold_global_transform_hand_case():
  # Rh = 90 degrees about z, Th = (1, 2, 3); camera translated by (0, 0, 5).
  E = np.eye(4)
  E[2, 3] = 5.0
  G = cameras.fold_global_transform(E, [0, 0, np.pi / 2], [1, 2, 3])
  # x_body = (1, 0, 0) -> R x = (0, 1, 0) -> + Th = (1, 3, 3) -> camera (1, 3, 8).
  np.testing.assert_allclose(G @ [1, 0, 0, 1], [1, 3, 8, 1], atol=1e-12)


def test_undistort_moves_points_to_ideal_projection():
  K = np.array([[80.0, 0, 40.0], [0, 80.0, 30.0], [0, 0, 1]])
  D = np.array([0.2, -0.05, 0.001, -0.002, 0.0])
  pts = np.array([[0.2, 0.15, 1.0], [-0.25, 0.1, 1.0], [0.1, -0.2, 1.0]])
  distorted, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), K, D)
  ideal = (K @ pts.T).T
  ideal = ideal[:, :2] / ideal[:, 2:]
  yy, xx = np.mgrid[0:60, 0:80].astype(np.float64)
  for d, target in zip(distorted[:, 0], ideal):
    blob = np.exp(-((xx - d[0]) ** 2 + (yy - d[1]) ** 2) / (2 * 1.5 ** 2)).astype(np.float32)
    out = cameras.undistort(blob, K, D, cv2.INTER_LINEAR)
    centroid = np.array([(out * xx).sum(), (out * yy).sum()]) / out.sum()
    np.testing.assert_allclose(centroid, target, atol=0.1)


def test_scale_intrinsics_pixel_centres():
  # Pixel (row 0, col 0) of a 2x-downsampled image covers [0, 2)^2 of the original: its centre (1, 1)
  # in original continuous coordinates must map to (0.5, 0.5).
  K = cameras.scale_intrinsics(np.array([[10.0, 0, 3.0], [0, 10.0, 4.0], [0, 0, 1]]), 0.5, 0.5)
  x = np.array([(1 - 3.0) / 10.0, (1 - 4.0) / 10.0, 1.0])
  np.testing.assert_allclose((K @ x)[:2], [0.5, 0.5])
