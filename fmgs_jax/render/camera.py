"""Pinhole camera in the OpenCV convention (x right, y down, z forward; pixel centres at integer + 0.5)."""

import flax.struct
import jax.numpy as jnp


@flax.struct.dataclass
class Camera:
  """A pinhole camera.

  Attributes:
    K: (3, 3) float32 intrinsics, pixels. The last row must be (0, 0, 1). A camera-space point
      (x, y, z) lands at the continuous pixel position (K @ (x, y, z))[:2] / z, where pixel (i, j)
      (column i, row j) covers [i, i + 1) x [j, j + 1) and has its centre at (i + 0.5, j + 0.5).
    world_to_camera: (4, 4) float32 rigid transform, world metres -> camera metres.
    width: image width in pixels (static).
    height: image height in pixels (static).
    near: near plane, metres (static). Surfels whose centre is nearer are culled and ray-surfel
      intersections nearer than this are skipped (2DGS `near_n`).
    far: far plane, metres (static); only used to normalise depth in the distortion term (2DGS `far_n`).
  """
  K: jnp.ndarray
  world_to_camera: jnp.ndarray
  width: int = flax.struct.field(pytree_node=False, default=0)
  height: int = flax.struct.field(pytree_node=False, default=0)
  near: float = flax.struct.field(pytree_node=False, default=0.01)
  far: float = flax.struct.field(pytree_node=False, default=100.0)


def look_at(eye, target, up, fx, fy, width, height, near=0.01, far=100.0) -> Camera:
  """Camera at `eye` (3,) looking at `target` (3,), image `up` (3,) direction, world metres.

  The principal point is the image centre. Returns a Camera whose y axis points against `up`
  (OpenCV: y down).
  """
  eye = jnp.asarray(eye, jnp.float32)
  z = jnp.asarray(target, jnp.float32) - eye
  z = z / jnp.linalg.norm(z)
  x = jnp.cross(z, jnp.asarray(up, jnp.float32))  # OpenCV: x = y cross z with y = -up
  x = x / jnp.linalg.norm(x)
  y = jnp.cross(z, x)
  rot = jnp.stack([x, y, z])  # rows: camera axes in world coordinates
  w2c = jnp.eye(4, dtype=jnp.float32).at[:3, :3].set(rot).at[:3, 3].set(-rot @ eye)
  K = jnp.array([[fx, 0.0, width / 2.0], [0.0, fy, height / 2.0], [0.0, 0.0, 1.0]], jnp.float32)
  return Camera(K=K, world_to_camera=w2c, width=int(width), height=int(height), near=near, far=far)
