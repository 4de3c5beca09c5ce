"""One 2D Gaussian surfel per face, placed by barycentric coordinates and bounded residuals.

For face f with frame (t, s, n), centre c, size r (geometry/frames.py):

  mean     = c + n * offset                 offset in [-max_offset, max_offset] metres
  rotation = [t, s, n] @ exp([delta_r]_x)   ||delta_r|| <= max_rotation: the normal tilts at most that
  scales   = r * init_scale * exp(log_scale), log_scale in [-max_log_scale, max_log_scale]^2

The residuals arrive already bounded (fields/decoders.py squashes them with tanh); `bound_residuals`
does the same for free parameters. Because everything is a function of the face's vertices, surfels
computed from a posed mesh follow it exactly, in any pose.
"""

import flax.struct
import jax.numpy as jnp

from fmgs_jax.geometry.frames import FaceFrames
from fmgs_jax.geometry.rotations import axis_angle_to_matrix


@flax.struct.dataclass
class FaceSurfels:
  """Surfel geometry of F faces: means (F, 3), rotations (F, 3, 3) columns (t_u, t_v, n), scales (F, 2)."""
  means: jnp.ndarray
  rotations: jnp.ndarray
  scales: jnp.ndarray


def bound_residuals(raw_offset, raw_log_scale, raw_rotation, max_offset: float, max_log_scale: float,
                    max_rotation: float):
  """Squashes unbounded residuals into their bounds (tanh), for free per-surfel parameters.

  Args: raw_offset (F,), raw_log_scale (F, 2), raw_rotation (F, 3).
  Returns: (offset, log_scale, rotation) with |offset| <= max_offset, |log_scale| <= max_log_scale,
    ||rotation|| <= max_rotation.
  """
  return (max_offset * jnp.tanh(raw_offset), max_log_scale * jnp.tanh(raw_log_scale),
          bound_rotation(raw_rotation, max_rotation))


def bound_rotation(raw_rotation: jnp.ndarray, max_rotation: float) -> jnp.ndarray:
  """(..., 3) axis-angle -> same direction, norm max_rotation * tanh(norm): the norm is bounded, not
  each component, so the normal of R exp([.]_x) tilts at most max_rotation radians."""
  norm = jnp.sqrt(jnp.sum(raw_rotation * raw_rotation, axis=-1, keepdims=True) + 1e-12)
  return raw_rotation * (max_rotation * jnp.tanh(norm) / norm)


def place_surfels(frames: FaceFrames, offset: jnp.ndarray, log_scale: jnp.ndarray, rotation: jnp.ndarray,
                  init_scale: float = 1.0) -> FaceSurfels:
  """Surfels on faces from bounded residuals.

  Args:
    frames: FaceFrames of F faces (e.g. of the posed mesh).
    offset: (F,) offset along the normal, metres.
    log_scale: (F, 2) log scale factors.
    rotation: (F, 3) axis-angle tilt in the face frame.
    init_scale: scale in face sizes when log_scale = 0.

  Returns:
    FaceSurfels.
  """
  means = frames.centre + frames.normal * offset[:, None]
  rotations = frames.rotation @ axis_angle_to_matrix(rotation)
  scales = (frames.size * init_scale)[:, None] * jnp.exp(log_scale)
  return FaceSurfels(means=means, rotations=rotations, scales=scales)
