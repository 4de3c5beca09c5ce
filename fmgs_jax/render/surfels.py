"""Posed primitives, the rasterizer's input: 2D Gaussian surfels (2DGS) or 3D Gaussians (3DGS)."""

import flax.struct
import jax.numpy as jnp


@flax.struct.dataclass
class Surfels:
  """N planar Gaussian disks (2DGS) or N 3D Gaussians (3DGS), world frame.

  The same container serves both primitives (`rasterize(..., primitive=...)`); only `scales` differs.

  Attributes:
    means: (N, 3) float32 centres, world metres.
    rotations: (N, 3, 3) float32; columns are the tangent u, the tangent v and the normal, world frame.
    scales: standard deviations, metres (> 0; others are culled): (N, 2) along u and v for "2dgs";
      (N, 3) along u, v and the normal (the rotation's third column) for "3dgs".
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


# Primitive name -> number of scales per primitive.
PRIMITIVES = {"2dgs": 2, "3dgs": 3}


def check_surfels(s: Surfels, primitive: str = "2dgs") -> None:
  """Raises ValueError naming the field whose shape is wrong (trace-time check of static shapes).

  Args:
    s: the primitives.
    primitive: "2dgs" (scales (N, 2)) or "3dgs" (scales (N, 3)).
  """
  if primitive not in PRIMITIVES:
    raise ValueError(f"primitive must be one of {tuple(PRIMITIVES)}, got {primitive!r}")
  n = s.means.shape[0] if s.means.ndim == 2 else -1
  want = {"means": (n, 3), "rotations": (n, 3, 3), "scales": (n, PRIMITIVES[primitive]),
          "opacities": (n,)}
  for name, shape in want.items():
    got = getattr(s, name).shape
    if n < 0 or tuple(got) != shape:
      hint = f" for primitive={primitive!r}" if name == "scales" else ""
      raise ValueError(f"Surfels.{name}: expected shape {shape}{hint} (N = means.shape[0]), got "
                       f"{tuple(got)}")
  if s.features.ndim != 2 or s.features.shape[0] != n:
    raise ValueError(f"Surfels.features: expected shape ({n}, C), got {tuple(s.features.shape)}")
