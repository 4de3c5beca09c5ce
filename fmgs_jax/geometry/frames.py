"""Per-face frames of a triangle mesh: centre, unit normal, tangent, bitangent, area, size.

The frame of face (a, b, c) is t = (b - a)/|b - a|, n = (b - a) x (c - a)/|.|, s = n x t, stacked as
the columns of `rotation` = [t, s, n] (the surfel convention of docs/design.md: tangent u, tangent v,
normal). It is a function of the three vertices alone, so it rotates rigidly with its face under any
deformation that moves the face rigidly. Degenerate faces (zero area or a zero-length first edge)
get a finite frame (a fixed fallback direction) and finite gradients instead of NaN.
"""

import flax.struct
import jax.numpy as jnp

_EPS = 1e-12


@flax.struct.dataclass
class FaceFrames:
  """Frames of F faces (float32).

  Attributes:
    centre: (F, 3) barycentres, same units as the vertices.
    normal: (F, 3) unit normals (right-hand rule over the face's vertex order).
    tangent: (F, 3) unit tangents along the first edge.
    bitangent: (F, 3) unit normal x tangent.
    rotation: (F, 3, 3) columns (tangent, bitangent, normal).
    area: (F,) face areas.
    size: (F,) characteristic size sqrt(area / pi): the radius of the disk of the same area.
  """
  centre: jnp.ndarray
  normal: jnp.ndarray
  tangent: jnp.ndarray
  bitangent: jnp.ndarray
  rotation: jnp.ndarray
  area: jnp.ndarray
  size: jnp.ndarray


def _safe_unit(v: jnp.ndarray, fallback: jnp.ndarray) -> jnp.ndarray:
  """v / |v|, or `fallback` where |v| is ~0, with gradients that stay finite in both branches."""
  sq = jnp.sum(v * v, axis=-1, keepdims=True)
  ok = sq > _EPS * _EPS
  unit = v / jnp.sqrt(jnp.where(ok, sq, 1.0))
  return jnp.where(ok, unit, fallback)


def face_frames(vertices: jnp.ndarray, faces: jnp.ndarray) -> FaceFrames:
  """Frames of every face.

  Args:
    vertices: (V, 3) float32 positions (any frame, any units).
    faces: (F, 3) int32 vertex indices.

  Returns:
    FaceFrames of F faces.
  """
  a, b, c = (vertices[faces[:, k]] for k in range(3))
  e1, e2 = b - a, c - a
  cross = jnp.cross(e1, e2)
  normal = _safe_unit(cross, jnp.array([0.0, 0.0, 1.0], vertices.dtype))
  # Tangent: the first edge with its normal component removed (exactly in-plane even when the
  # normal came from the fallback), then re-normalised; fallback: any direction orthogonal to n.
  helper = jnp.where(jnp.abs(normal[:, :1]) < 0.9, jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0]))
  t_raw = e1 - jnp.sum(e1 * normal, -1, keepdims=True) * normal
  t_fallback = _safe_unit(jnp.cross(helper, normal), helper)
  tangent = _safe_unit(t_raw, t_fallback)
  bitangent = jnp.cross(normal, tangent)
  area = 0.5 * jnp.sqrt(jnp.sum(cross * cross, -1) + _EPS * _EPS)
  return FaceFrames(centre=(a + b + c) / 3.0, normal=normal, tangent=tangent, bitangent=bitangent,
                    rotation=jnp.stack([tangent, bitangent, normal], axis=-1), area=area,
                    size=jnp.sqrt(area / jnp.pi))
