"""look_at against hand-worked projections: the image is upright and not mirrored."""

import numpy as np

from fmgs_jax.render import look_at


def _pixel(camera, point):
  p = np.asarray(camera.world_to_camera) @ np.append(point, 1.0)
  uvw = np.asarray(camera.K) @ p[:3]
  return uvw[:2] / uvw[2], p[2]


def test_look_at_is_an_upright_right_handed_opencv_camera():
  # Eye on -z looking at the origin with +y up: +y lands above the centre, and (right-handed world,
  # looking along +z) -x is to the viewer's right.
  cam = look_at(eye=(0.0, 0.0, -3.0), target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), fx=100.0, fy=100.0,
                width=64, height=48)
  centre, depth = _pixel(cam, np.zeros(3))
  np.testing.assert_allclose(centre, [32.0, 24.0], atol=1e-5)
  assert abs(depth - 3.0) < 1e-5
  (u, v), _ = _pixel(cam, np.array([0.0, 0.3, 0.0]))
  np.testing.assert_allclose([u, v], [32.0, 24.0 - 100.0 * 0.3 / 3.0], atol=1e-4)  # up -> smaller row
  (u, v), _ = _pixel(cam, np.array([-0.3, 0.0, 0.0]))
  np.testing.assert_allclose([u, v], [32.0 + 100.0 * 0.3 / 3.0, 24.0], atol=1e-4)
  rot = np.asarray(cam.world_to_camera)[:3, :3]
  np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-6)
  assert np.linalg.det(rot) > 0.999


def test_look_at_from_the_side_keeps_up_up():
  cam = look_at(eye=(2.0, 1.0, 0.0), target=(0.0, 1.0, 0.0), up=(0.0, 1.0, 0.0), fx=50.0, fy=50.0,
                width=32, height=32)
  (_, v_head), _ = _pixel(cam, np.array([0.0, 1.8, 0.0]))
  (_, v_feet), _ = _pixel(cam, np.array([0.0, 0.0, 0.0]))
  assert v_head < 16.0 < v_feet
