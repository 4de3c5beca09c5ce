"""Rotation helpers shared by the geometry, the fields and the avatar."""

import jax.numpy as jnp
import numpy as np
from scipy.spatial.transform import Rotation


def axis_angle_to_matrix(axis_angle: jnp.ndarray) -> jnp.ndarray:
  """Rodrigues' formula, with Taylor series near zero so values and gradients stay finite.

  Args:
    axis_angle: (..., 3) float32 rotation vectors (radians).

  Returns:
    (..., 3, 3) float32 rotation matrices.
  """
  theta2 = jnp.sum(axis_angle * axis_angle, axis=-1)[..., None, None]
  small = theta2 < 1e-8
  theta = jnp.sqrt(jnp.where(small, 1.0, theta2))
  a = jnp.where(small, 1.0 - theta2 / 6.0, jnp.sin(theta) / theta)
  b = jnp.where(small, 0.5 - theta2 / 24.0, (1.0 - jnp.cos(theta)) / jnp.where(small, 1.0, theta2))
  x, y, z = axis_angle[..., 0], axis_angle[..., 1], axis_angle[..., 2]
  zero = jnp.zeros_like(x)
  k = jnp.stack([jnp.stack([zero, -z, y], -1), jnp.stack([z, zero, -x], -1),
                 jnp.stack([-y, x, zero], -1)], -2)
  return jnp.eye(3, dtype=axis_angle.dtype) + a * k + b * (k @ k)


def quaternion_to_matrix(q: jnp.ndarray) -> jnp.ndarray:
  """(..., 4) quaternions (w, x, y, z), any norm (normalised here) -> (..., 3, 3) rotation matrices."""
  q = q / jnp.sqrt(jnp.sum(q * q, axis=-1, keepdims=True) + 1e-12)
  w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
  return jnp.stack([
      jnp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
      jnp.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
      jnp.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], -2)


def matrix_to_quaternion(rotations) -> np.ndarray:
  """(N, 3, 3) frames (columns u, v, n; NumPy) -> (N, 4) unit quaternions (w, x, y, z), w >= 0.

  A reflection (det < 0) is made proper by negating the v column: a Gaussian is symmetric about its
  tangent axes, so the splat is unchanged. Near-orthonormal input is projected to the nearest
  rotation (scipy).
  """
  r = np.array(rotations, np.float64)
  if r.ndim != 3 or r.shape[1:] != (3, 3):
    raise ValueError(f"rotations must be (N, 3, 3), got {r.shape}")
  flip = np.linalg.det(r) < 0
  r[flip, :, 1] *= -1.0
  q = Rotation.from_matrix(r).as_quat(scalar_first=True)
  return q * np.where(q[:, :1] < 0, -1.0, 1.0)


def orthonormalize(m: jnp.ndarray) -> jnp.ndarray:
  """(..., 3, 3) near-rotations (e.g. linearly blended skinning rotations times a frame) -> the
  rotation with the same first column direction and first-two-column plane (Gram-Schmidt)."""
  a, b = m[..., :, 0], m[..., :, 1]
  u = a / jnp.sqrt(jnp.sum(a * a, -1, keepdims=True) + 1e-12)
  b = b - jnp.sum(u * b, -1, keepdims=True) * u
  v = b / jnp.sqrt(jnp.sum(b * b, -1, keepdims=True) + 1e-12)
  return jnp.stack([u, v, jnp.cross(u, v)], -1)
