"""Posed 2D Gaussian surfels, the rasterizer's input."""

import flax.struct
import jax.numpy as jnp


@flax.struct.dataclass
class Surfels:
  """N planar Gaussian disks (2DGS), world frame.

  Attributes:
    means: (N, 3) float32 centres, world metres.
    rotations: (N, 3, 3) float32; columns are the tangent u, the tangent v and the normal, world frame.
    scales: (N, 2) float32 standard deviations along u and v, metres (> 0; others are culled).
    opacities: (N,) float32 in [0, 1].
    features: (N, C) float32, any channel count (colour, semantics, ...), composited like colour.
  """
  means: jnp.ndarray
  rotations: jnp.ndarray
  scales: jnp.ndarray
  opacities: jnp.ndarray
  features: jnp.ndarray

  @property
  def num(self) -> int:
    return self.means.shape[0]


def check_surfels(s: Surfels) -> None:
  """Raises ValueError naming the field whose shape is wrong (trace-time check of static shapes)."""
  n = s.means.shape[0] if s.means.ndim == 2 else -1
  want = {"means": (n, 3), "rotations": (n, 3, 3), "scales": (n, 2), "opacities": (n,)}
  for name, shape in want.items():
    got = getattr(s, name).shape
    if n < 0 or tuple(got) != shape:
      raise ValueError(f"Surfels.{name}: expected shape {shape} (N = means.shape[0]), got {tuple(got)}")
  if s.features.ndim != 2 or s.features.shape[0] != n:
    raise ValueError(f"Surfels.features: expected shape ({n}, C), got {tuple(s.features.shape)}")
