"""Rotation helpers shared by the geometry, the fields and the avatar."""

import jax.numpy as jnp


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
