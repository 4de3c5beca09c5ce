"""viser's client camera -> our pinhole `Camera` (OpenCV axes, fmgs_jax/render/camera.py).

viser reports, per browser client, `wxyz` (the rotation R with P_world = R p_camera + t, camera axes
OpenCV: x right, y down, z forward), `position` (t, the camera centre in world units), `fov` (the
vertical field of view, radians) and `aspect` (canvas width / height). Our camera wants the inverse
transform and intrinsics in pixels: world_to_camera = [R^T | -R^T t], fy = (H / 2) / tan(fov / 2),
square pixels (fx = fy) and the principal point at the image centre, as a browser canvas has.
"""

import math

import numpy as np

from fmgs_jax.geometry import rotations as rotations_lib
from fmgs_jax.render.camera import Camera


def image_size(aspect: float, height: int, size_step: int = 1) -> tuple[int, int]:
  """(width, height) pixels for a canvas of `aspect` (width / height) rendered `height` pixels tall;
  the width is rounded to a multiple of `size_step` (at least one step), so that only a few image
  sizes (each a compiled program) occur as the browser window is resized."""
  if not (aspect > 0 and math.isfinite(aspect)):
    raise ValueError(f"viewer camera: aspect must be a positive number, got {aspect}")
  step = max(int(size_step), 1)
  width = max(step, int(round(aspect * height / step)) * step)
  return width, int(height)


def viser_to_camera(wxyz, position, fov: float, width: int, height: int, near: float = 0.01,
                    far: float = 100.0) -> Camera:
  """Our `Camera` for a viser client camera, rendering a `width` x `height` image.

  Args:
    wxyz: (4,) quaternion (w, x, y, z) of the camera-to-world rotation (any norm).
    position: (3,) camera centre, world metres.
    fov: vertical field of view, radians, in (0, pi).
    width, height: image size in pixels (`image_size` gives it from viser's aspect).
    near, far: as `Camera` (metres).

  Returns:
    Camera with K = [[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], f = (H / 2) / tan(fov / 2), and the
    world_to_camera inverse of [R(wxyz) | position]; float32.
  """
  if not 0.0 < fov < math.pi:
    raise ValueError(f"viewer camera: fov must be in (0, pi) radians, got {fov}")
  rot = np.asarray(rotations_lib.quaternion_to_matrix(np.asarray(wxyz, np.float32)), np.float64)
  t = np.asarray(position, np.float64).reshape(3)
  w2c = np.eye(4)
  w2c[:3, :3] = rot.T
  w2c[:3, 3] = -rot.T @ t
  f = 0.5 * height / math.tan(0.5 * fov)
  K = np.array([[f, 0.0, 0.5 * width], [0.0, f, 0.5 * height], [0.0, 0.0, 1.0]])
  return Camera(K=K.astype(np.float32), world_to_camera=w2c.astype(np.float32), width=int(width),
                height=int(height), near=float(near), far=float(far))


def initial_view(K, world_to_camera, height: int) -> dict:
  """Where viser's client camera starts: a training camera's centre {"position" (3,)}, its up direction
  {"up" (3,), minus the image y axis, world} and vertical field of view {"fov" radians, from fy}."""
  w2c = np.asarray(world_to_camera, np.float64)
  position = -w2c[:3, :3].T @ w2c[:3, 3]
  fov = 2.0 * math.atan(0.5 * height / float(np.asarray(K)[1, 1]))
  return {"position": position, "up": -w2c[1, :3], "fov": fov}
