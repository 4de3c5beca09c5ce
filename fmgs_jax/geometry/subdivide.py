"""Template resampling to a target face count, with attribute transfer by barycentric interpolation.

Every vertex of the resampled mesh is stored as a point on the ORIGINAL mesh: a source face and its
barycentric coordinates. Positions, skinning weights, blend shapes, pose correctives and part labels
then all transfer the same way (`transfer`), so the resampled template lies on the original surface
and is skinned consistently with it.

- Upsampling: midpoint (1-to-4) subdivision, `levels` times; new vertices are edge midpoints, exactly
  on the original faces.
- Downsampling (the CPU demo uses fewer surfels than the paper's ~60k faces): quadric decimation
  (`fast-simplification`), then every vertex is projected onto its closest point of the original
  mesh, so it also lies exactly on the original surface.
`resample` picks the smallest number of subdivision levels reaching the target, then decimates to it.
"""

import dataclasses

import numpy as np
from scipy import spatial

from fmgs_jax import errors


@dataclasses.dataclass(frozen=True)
class Resampled:
  """A resampled mesh expressed on the original one.

  Attributes:
    vertices: (V', 3) float32 positions (on the original surface).
    faces: (F', 3) int32.
    source_face: (V',) int32 face of the original mesh each vertex lies on.
    barycentric: (V', 3) float32 barycentric coordinates in that face (non-negative, sum 1).
  """
  vertices: np.ndarray
  faces: np.ndarray
  source_face: np.ndarray
  barycentric: np.ndarray


def transfer(attribute: np.ndarray, faces: np.ndarray, resampled: Resampled) -> np.ndarray:
  """Per-vertex attribute (V, ...) of the original mesh -> (V', ...) by barycentric interpolation."""
  attribute = np.asarray(attribute)
  corners = attribute[faces[resampled.source_face]]  # (V', 3, ...)
  bary = resampled.barycentric.reshape(resampled.barycentric.shape + (1,) * (attribute.ndim - 1))
  return np.sum(corners * bary, axis=1).astype(attribute.dtype)


def transfer_labels(labels: np.ndarray, faces: np.ndarray, resampled: Resampled) -> np.ndarray:
  """Integer per-vertex labels -> the label of the nearest corner (largest barycentric)."""
  corner = np.argmax(resampled.barycentric, axis=1)
  return np.asarray(labels)[faces[resampled.source_face, corner]]


def _identity(vertices, faces) -> Resampled:
  n = len(vertices)
  src = np.zeros(n, np.int64)
  bary = np.zeros((n, 3), np.float32)
  for k in range(3):  # any face containing the vertex
    src[faces[:, k]] = np.arange(len(faces))
    bary[faces[:, k]] = np.eye(3, dtype=np.float32)[k]
  return Resampled(np.asarray(vertices, np.float32), np.asarray(faces, np.int32), src.astype(np.int32), bary)


def subdivide(vertices: np.ndarray, faces: np.ndarray, levels: int) -> Resampled:
  """Midpoint subdivision, `levels` times (F -> F * 4^levels faces)."""
  faces = np.asarray(faces, np.int64)
  n0 = len(vertices)
  # Each face of the current mesh lies in one original face; corner_bary holds its corners there.
  origin = np.arange(len(faces))
  corner_bary = np.broadcast_to(np.eye(3, dtype=np.float64), (len(faces), 3, 3)).copy()
  cur = faces.copy()
  num_vertices = n0
  for _ in range(levels):
    edges = np.sort(np.stack([cur[:, [0, 1]], cur[:, [1, 2]], cur[:, [2, 0]]], 1).reshape(-1, 2), axis=1)
    uniq, inverse = np.unique(edges, axis=0, return_inverse=True)
    mid = (num_vertices + inverse.reshape(-1, 3))  # (F, 3) ids of midpoints of edges 01, 12, 20
    num_vertices += len(uniq)
    c0, c1, c2 = cur[:, 0], cur[:, 1], cur[:, 2]
    m01, m12, m20 = mid[:, 0], mid[:, 1], mid[:, 2]
    b0, b1, b2 = corner_bary[:, 0], corner_bary[:, 1], corner_bary[:, 2]
    b01, b12, b20 = (b0 + b1) / 2, (b1 + b2) / 2, (b2 + b0) / 2
    cur = np.concatenate([np.stack(f, 1) for f in ((c0, m01, m20), (c1, m12, m01), (c2, m20, m12),
                                                   (m01, m12, m20))])
    corner_bary = np.concatenate([np.stack(b, 1) for b in ((b0, b01, b20), (b1, b12, b01), (b2, b20, b12),
                                                           (b01, b12, b20))])
    origin = np.tile(origin, 4)
  src = np.zeros(num_vertices, np.int64)
  bary = np.zeros((num_vertices, 3))
  for k in range(3):
    src[cur[:, k]] = origin
    bary[cur[:, k]] = corner_bary[:, k]
  positions = np.einsum("vk,vkd->vd", bary, np.asarray(vertices, np.float64)[faces[src]])
  return Resampled(positions.astype(np.float32), cur.astype(np.int32), src.astype(np.int32),
                   bary.astype(np.float32))


def closest_points_on_mesh(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                           candidates: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Closest point of the mesh to each point, searched among the faces with the nearest centres.

  Returns (closest (P, 3), face (P,), barycentric (P, 3)).
  """
  v = np.asarray(vertices, np.float64)
  tri = v[faces]  # (F, 3, 3)
  k = min(candidates, len(faces))
  _, cand = spatial.cKDTree(tri.mean(1)).query(points, k=k)
  cand = cand.reshape(len(points), k)
  a, b, c = (tri[cand, i] for i in range(3))  # (P, k, 3)
  bary = _closest_barycentric(np.asarray(points, np.float64)[:, None], a, b, c)
  closest = bary[..., :1] * a + bary[..., 1:2] * b + bary[..., 2:] * c
  d = np.sum((closest - np.asarray(points)[:, None]) ** 2, -1)
  best = np.argmin(d, axis=1)
  rows = np.arange(len(points))
  return closest[rows, best], cand[rows, best], bary[rows, best]


def _closest_barycentric(p, a, b, c):
  """Barycentric coordinates of the closest point of triangle abc to p (Ericson, Real-Time Collision
  Detection 5.1.5), vectorised over leading axes."""
  dot = lambda x, y: np.sum(x * y, -1)
  ab, ac, ap = b - a, c - a, p - a
  d1, d2 = dot(ab, ap), dot(ac, ap)
  bp = p - b
  d3, d4 = dot(ab, bp), dot(ac, bp)
  cp = p - c
  d5, d6 = dot(ab, cp), dot(ac, cp)
  va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
  denom = va + vb + vc
  safe = np.where(np.abs(denom) > 1e-30, denom, 1.0)
  v_in, w_in = vb / safe, vc / safe
  out = np.stack([1 - v_in - w_in, v_in, w_in], -1)  # interior

  def setb(cond, bary):
    nonlocal out
    out = np.where(cond[..., None], bary, out)

  z = np.zeros_like(d1)
  one = np.ones_like(d1)
  # Edge regions (applied before vertex regions, which take precedence).
  t_ab = np.clip(d1 / np.where(np.abs(d1 - d3) > 1e-30, d1 - d3, 1.0), 0, 1)
  setb((vc <= 0) & (d1 >= 0) & (d3 <= 0), np.stack([1 - t_ab, t_ab, z], -1))
  t_ac = np.clip(d2 / np.where(np.abs(d2 - d6) > 1e-30, d2 - d6, 1.0), 0, 1)
  setb((vb <= 0) & (d2 >= 0) & (d6 <= 0), np.stack([1 - t_ac, z, t_ac], -1))
  den_bc = (d4 - d3) + (d5 - d6)
  t_bc = np.clip((d4 - d3) / np.where(np.abs(den_bc) > 1e-30, den_bc, 1.0), 0, 1)
  setb((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), np.stack([z, 1 - t_bc, t_bc], -1))
  setb((d1 <= 0) & (d2 <= 0), np.stack([one, z, z], -1))
  setb((d3 >= 0) & (d4 <= d3), np.stack([z, one, z], -1))
  setb((d6 >= 0) & (d5 <= d6), np.stack([z, z, one], -1))
  return out


def decimate(vertices: np.ndarray, faces: np.ndarray, num_faces: int, reference: Resampled | None = None,
             reference_faces: np.ndarray | None = None, reference_vertices: np.ndarray | None = None) -> Resampled:
  """Quadric decimation to about `num_faces`, vertices projected back onto the original surface.

  `reference*` describe the original mesh when (vertices, faces) is itself a resampling of it.
  """
  import fast_simplification  # pylint: disable=g-import-not-at-top
  reduction = 1.0 - num_faces / len(faces)
  v, f = fast_simplification.simplify(np.asarray(vertices, np.float32), np.asarray(faces, np.int64),
                                      target_reduction=float(np.clip(reduction, 0.0, 0.99)))
  ref_v = vertices if reference_vertices is None else reference_vertices
  ref_f = faces if reference_faces is None else reference_faces
  closest, face, bary = closest_points_on_mesh(v, ref_v, ref_f)
  return Resampled(closest.astype(np.float32), np.asarray(f, np.int32), face.astype(np.int32),
                   np.clip(bary, 0.0, 1.0).astype(np.float32))


def resample(vertices: np.ndarray, faces: np.ndarray, num_faces: int, tolerance: float = 0.05) -> Resampled:
  """The mesh with about `num_faces` faces (within `tolerance`), every vertex on the original surface.

  Args:
    vertices: (V, 3) float32; faces: (F, 3) int32 — the original (template) mesh.
    num_faces: target face count (one surfel per face).
    tolerance: relative slack before decimating (a count already within it is kept).
  """
  faces = np.asarray(faces)
  if num_faces <= 0:
    raise errors.ConfigError(f"config body.num_faces must be positive, got {num_faces}")
  levels = 0
  while len(faces) * 4 ** levels < num_faces * (1 - tolerance):
    levels += 1
  sub = subdivide(vertices, faces, levels) if levels else _identity(vertices, faces)
  if len(sub.faces) <= num_faces * (1 + tolerance):
    return sub
  dec = decimate(sub.vertices, sub.faces, num_faces, reference_vertices=vertices, reference_faces=faces)
  return dec
