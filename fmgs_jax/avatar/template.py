"""The canonical template: the subject's shaped body mesh in rest pose, resampled to the surfel count.

One surfel per face. Skinning weights and part labels come from the body model by barycentric
transfer (geometry/subdivide.py), so the resampled template is skinned consistently with the body.
"""

import dataclasses

import numpy as np

from fmgs_jax import body as body_lib
from fmgs_jax.geometry import subdivide


@dataclasses.dataclass(frozen=True, eq=False)
class Template:
  """Static canonical template (NumPy; closed over, never traced).

  Attributes:
    vertices: (V, 3) float32 rest-pose vertices with the subject's shape, metres.
    faces: (F, 3) int32; one surfel per face.
    weights: (V, J) float32 template skinning weights (rows sum to 1).
    parts: (V,) int32 body-part ids; part_names: their names.
    face_centres: (F, 3) float32 barycentres (the canonical surfel centres mu).
    face_parts: (F,) int32 part id per face (majority of its corners).
    edges: (E, 2) int32 pairs of faces sharing an edge (neighbouring surfels, for L_iso).
  """
  vertices: np.ndarray
  faces: np.ndarray
  weights: np.ndarray
  parts: np.ndarray
  part_names: tuple[str, ...]
  face_centres: np.ndarray
  face_parts: np.ndarray
  edges: np.ndarray


def face_adjacency(faces: np.ndarray) -> np.ndarray:
  """(E, 2) int32 pairs of faces that share an edge (each pair once)."""
  f = len(faces)
  e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
  owner = np.tile(np.arange(f), 3)
  order = np.lexsort((e[:, 1], e[:, 0]))
  e, owner = e[order], owner[order]
  same = np.all(e[1:] == e[:-1], axis=1)
  return np.stack([owner[:-1][same], owner[1:][same]], 1).astype(np.int32)


def build_template(body_model, betas: np.ndarray, num_faces: int) -> Template:
  """Resamples the shaped rest-pose body mesh to about `num_faces` faces.

  Args:
    body_model: a fmgs_jax.body model (SMPL file or the built-in template).
    betas: (S,) subject shape.
    num_faces: target surfel count (config body.num_faces).
  """
  rest = np.asarray(body_lib.rest_vertices(body_model, np.asarray(betas, np.float32)), np.float32)
  faces = np.asarray(body_model.faces, np.int32)
  r = subdivide.resample(rest, faces, int(num_faces))
  weights = subdivide.transfer(np.asarray(body_model.weights, np.float32), faces, r)
  weights = weights / np.maximum(weights.sum(1, keepdims=True), 1e-8)
  parts = subdivide.transfer_labels(np.asarray(body_model.part_ids), faces, r).astype(np.int32)
  corner_parts = parts[r.faces]
  # Majority of the three corners (the first corner on a three-way tie).
  face_parts = np.where(corner_parts[:, 1] == corner_parts[:, 2], corner_parts[:, 1], corner_parts[:, 0])
  return Template(vertices=r.vertices, faces=r.faces, weights=weights.astype(np.float32), parts=parts,
                  part_names=tuple(body_model.part_names),
                  face_centres=r.vertices[r.faces].mean(1).astype(np.float32),
                  face_parts=face_parts.astype(np.int32), edges=face_adjacency(r.faces))
