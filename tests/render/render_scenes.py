"""Random and hand-made surfel scenes shared by the render tests."""

import numpy as np
import jax.numpy as jnp

from fmgs_jax.render import Camera, Surfels


def random_rotations(rng, n):
  q = rng.normal(size=(n, 4))
  q /= np.linalg.norm(q, axis=1, keepdims=True)
  w, x, y, z = q.T
  return np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
                   np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
                   np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)],
                  1)


def camera(width, height, f=None, dtype=jnp.float32, near=0.05, far=20.0):
  """Camera at the origin looking down +z (identity extrinsics)."""
  f = f or 0.9 * width
  K = np.array([[f, 0, width / 2 + 0.13], [0, f, height / 2 - 0.21], [0, 0, 1]])
  return Camera(K=jnp.asarray(K, dtype), world_to_camera=jnp.eye(4, dtype=dtype), width=width,
                height=height, near=near, far=far)


def random_scene(seed, n, width, height, channels=3, dtype=jnp.float32, hard=True):
  """Random scene; `hard` adds edge-on surfels, equal depths, surfels reaching behind the camera and
  centres behind it (culled). Edge-on normals flip under tiny perturbations, so finite differences
  use hard=False."""
  rng = np.random.default_rng(seed)
  z = rng.uniform(1.0, 4.0, n)
  xy = rng.uniform(-0.6, 0.6, (n, 2)) * z[:, None]
  means = np.concatenate([xy, z[:, None]], 1)
  rot = random_rotations(rng, n)
  scales = rng.uniform(0.02, 0.25, (n, 2))
  k = n // 8 if hard else 0
  # Edge-on: normal perpendicular to the ray through the centre.
  ray = means[:k] / np.linalg.norm(means[:k], axis=1, keepdims=True)
  u = np.cross(ray, rng.normal(size=(k, 3)))
  u /= np.linalg.norm(u, axis=1, keepdims=True)
  rot[:k] = np.stack([u, ray, np.cross(u, ray)], -1)
  # Equal depths: pairs sharing the centre depth and overlapping.
  means[k:2 * k, 2] = means[2 * k:3 * k, 2]
  means[k:2 * k, :2] = means[2 * k:3 * k, :2] + 0.05
  # Large surfels near the camera that reach behind it, and some centres behind it (culled).
  if hard:
    means[3 * k:3 * k + 2] = [[0.1, 0.05, 0.3], [-0.2, 0.1, 0.2]]
    scales[3 * k:3 * k + 2] = 0.5
    means[3 * k + 2, 2] = -0.5
  s = Surfels(means=jnp.asarray(means, dtype), rotations=jnp.asarray(rot, dtype),
              scales=jnp.asarray(scales, dtype), opacities=jnp.asarray(rng.uniform(0.1, 1, n), dtype),
              features=jnp.asarray(rng.uniform(0, 1, (n, channels)), dtype))
  return s, camera(width, height, dtype=dtype), jnp.asarray(rng.uniform(0, 1, channels), dtype)


def facing_surfels(centers, scales, opacities, features, dtype=jnp.float32):
  """Camera-facing surfels (u = x, v = y, normal = -z) at `centers` (N, 3)."""
  n = len(centers)
  rot = np.tile(np.diag([1.0, 1.0, 1.0])[None], (n, 1, 1))
  return Surfels(means=jnp.asarray(centers, dtype), rotations=jnp.asarray(rot, dtype),
                 scales=jnp.asarray(scales, dtype), opacities=jnp.asarray(opacities, dtype),
                 features=jnp.asarray(features, dtype))
