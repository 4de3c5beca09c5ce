"""Exports: the avatar surface as a mesh (PLY / OBJ) and the surfels as a Gaussian-splatting PLY.

`surfel_surface` turns mesh-guided surfels back into a mesh (the template moved by the learned offsets).

Mesh files carry per-vertex colour and per-vertex part labels:

* PLY (binary little-endian, written by trimesh): ``x y z`` float,
  ``red green blue alpha`` uchar, ``part`` int (the label), faces as
  ``vertex_indices`` lists. Any PLY reader exposes the extra ``part`` property.
* OBJ (text): ``v x y z r g b`` with colour in [0, 1] (the common vertex-colour
  extension read by MeshLab, Blender and trimesh). OBJ has no per-vertex
  attributes, so part labels become face groups ``g part_<label>``; a face
  belongs to the label most of its three vertices carry (the smallest label
  on a three-way tie).

Surfel PLY (`export_surfels_ply`) follows the layout the reference 3DGS / 2DGS
code and common splat viewers read, one ``vertex`` element per surfel, all
float32:

* ``x y z`` centre (world metres), ``nx ny nz`` the surfel normal,
* ``f_dc_0..2`` colour as degree-0 spherical harmonics, (rgb - 0.5) / C0 with
  C0 = 0.28209479177387814 (viewers add 0.5 back after multiplying by C0),
  and optionally ``f_rest_*`` zeros for loaders that insist on higher degrees,
* ``opacity`` as a logit (viewers apply a sigmoid),
* ``scale_0 scale_1`` the log of the in-plane standard deviations along the
  tangents u and v; ``scale_2`` (optional, on by default) a tiny log-scale
  along the normal so 3D Gaussian viewers show a flat disc. 2DGS's own
  loader reads exactly two scales: pass ``thickness=None`` for it.
* ``rot_0..3`` the unit quaternion (w, x, y, z) of the rotation whose columns
  are (tangent u, tangent v, normal).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import trimesh

from fmgs_jax.geometry import rotations as rotations_lib

SH_C0 = 0.28209479177387814  # degree-0 real spherical harmonic, 1 / (2 sqrt(pi))


def _rgb_to_uint8(colors: np.ndarray) -> np.ndarray:
  return np.round(np.clip(np.asarray(colors, np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def _check_mesh(vertices, faces, colors, labels, path):
  v, f = np.asarray(vertices), np.asarray(faces)
  if v.ndim != 2 or v.shape[1] != 3:
    raise ValueError(f"{path}: vertices must be (V, 3), got {v.shape}")
  if f.ndim != 2 or f.shape[1] != 3 or (f.size and (f.min() < 0 or f.max() >= len(v))):
    raise ValueError(f"{path}: faces must be (F, 3) indices into {len(v)} vertices, got shape {f.shape}")
  if colors is not None and np.shape(colors) != (len(v), 3):
    raise ValueError(f"{path}: colors must be (V, 3) = ({len(v)}, 3) RGB in [0, 1], got {np.shape(colors)}")
  if labels is not None and np.shape(labels) != (len(v),):
    raise ValueError(f"{path}: labels must be (V,) = ({len(v)},) integers, got {np.shape(labels)}")


def surfel_surface(vertices: np.ndarray, faces: np.ndarray, means: np.ndarray) -> np.ndarray:
  """The avatar's surface as a mesh: the posed template moved by its surfels' learned offsets.

  A mesh-guided surfel sits at its face's centre moved along the face normal by a learned offset
  (geometry/surfels.py); the offset is read back as (mean - centre) . n. Each vertex moves along its
  area-weighted normal by the area-weighted mean offset of its faces, so a constant offset d moves a
  smooth surface by d and the mesh passes through the surfels wherever the offsets vary slowly.

  Args:
    vertices: (V, 3) posed template vertices, metres.  faces: (F, 3) int.
    means: (F, 3) posed surfel centres, one per face.

  Returns:
    (V, 3) float64 vertices of the displaced mesh (same faces).
  """
  v, f = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
  means = np.asarray(means, np.float64)
  if means.shape != (len(f), 3):
    raise ValueError(f"surfel_surface: expected one surfel per face, (F, 3) = ({len(f)}, 3), got {means.shape}")
  cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])  # length = 2 * area
  area = np.linalg.norm(cross, axis=1)
  offset = np.einsum("fi,fi->f", means - v[f].mean(1), cross / np.maximum(area, 1e-20)[:, None])
  vertex_normal = np.zeros_like(v)
  np.add.at(vertex_normal, f.reshape(-1), np.repeat(cross, 3, axis=0))
  vertex_normal /= np.maximum(np.linalg.norm(vertex_normal, axis=1, keepdims=True), 1e-20)
  total, weight = np.zeros(len(v)), np.zeros(len(v))
  np.add.at(total, f.reshape(-1), np.repeat(offset * area, 3))
  np.add.at(weight, f.reshape(-1), np.repeat(area, 3))
  return v + vertex_normal * (total / np.maximum(weight, 1e-20))[:, None]


def export_mesh(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray,
                colors: np.ndarray | None = None, labels: np.ndarray | None = None) -> Path:
  """Write a triangle mesh with optional per-vertex colour and part labels; format from the suffix.

  Args:
    path: output file ending in ``.ply`` or ``.obj`` (see the module docstring for the layouts).
    vertices: (V, 3) float positions, metres (world or canonical frame).
    faces: (F, 3) int vertex indices, counter-clockwise seen from outside.
    colors: (V, 3) float RGB in [0, 1] (stored as uint8 in PLY), or None.
    labels: (V,) int part labels, or None.

  Returns:
    The path written.
  """
  path = Path(path)
  _check_mesh(vertices, faces, colors, labels, path)
  suffix = path.suffix.lower()
  if suffix == ".ply":
    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), process=False)
    if colors is not None:
      rgba = np.concatenate([_rgb_to_uint8(colors), np.full((len(mesh.vertices), 1), 255, np.uint8)], -1)
      mesh.visual.vertex_colors = rgba
    if labels is not None:
      mesh.vertex_attributes["part"] = np.asarray(labels, np.int32)
    data = mesh.export(file_type="ply", encoding="binary")
    path.write_bytes(data)
  elif suffix == ".obj":
    _write_obj(path, np.asarray(vertices, np.float64), np.asarray(faces, np.int64), colors, labels)
  else:
    raise ValueError(f"export_mesh: {path}: unknown mesh format {suffix!r}; use .ply or .obj")
  return path


def _face_labels(faces: np.ndarray, labels: np.ndarray) -> np.ndarray:
  fl = np.asarray(labels, np.int64)[faces]  # (F, 3)
  a, b, c = fl[:, 0], fl[:, 1], fl[:, 2]
  # Majority of three; with three different labels take the smallest.
  return np.where((a == b) | (a == c), a, np.where(b == c, b, fl.min(axis=1)))


def _write_obj(path: Path, vertices, faces, colors, labels) -> None:
  lines = ["# fmgs-jax mesh export"]
  if colors is not None:
    # Colours written at 8-bit precision, like the PLY.
    rgb = _rgb_to_uint8(colors) / 255.0
    lines += [f"v {x:.7g} {y:.7g} {z:.7g} {r:.6g} {g:.6g} {b:.6g}"
              for (x, y, z), (r, g, b) in zip(vertices, rgb)]
  else:
    lines += [f"v {x:.7g} {y:.7g} {z:.7g}" for x, y, z in vertices]
  f1 = faces + 1  # OBJ indices are 1-based
  if labels is None:
    lines += [f"f {a} {b} {c}" for a, b, c in f1]
  else:
    fl = _face_labels(faces, labels)
    for lab in np.unique(fl):
      lines.append(f"g part_{lab}")
      lines += [f"f {a} {b} {c}" for a, b, c in f1[fl == lab]]
  path.write_text("\n".join(lines) + "\n")


rotations_to_quaternions = rotations_lib.matrix_to_quaternion  # (N, 3, 3) -> (N, 4) (w, x, y, z)


def export_surfels_ply(path: str | os.PathLike, means: np.ndarray, normals: np.ndarray | None,
                       scales: np.ndarray, rotations: np.ndarray, opacities: np.ndarray,
                       colors: np.ndarray, thickness: float | None = 1e-3,
                       num_rest_sh: int = 0, opacity_eps: float = 1e-6) -> Path:
  """Write surfels as a Gaussian-splatting PLY (layout in the module docstring).

  Args:
    path: output ``.ply`` file.
    means: (N, 3) float centres, world metres.
    normals: (N, 3) float unit normals, or None to use rotations[:, :, 2].
    scales: (N, 2) float in-plane standard deviations (metres, > 0) along u, v; or (N, 3) for 3D
      Gaussians (model.primitive=3dgs), the third along the normal, written as they are.
    rotations: (N, 3, 3) float frames, columns (tangent u, tangent v, normal).
    opacities: (N,) float in [0, 1]; stored as logit(clip(o, eps, 1 - eps)).
    colors: (N, 3) float RGB in [0, 1]; stored as degree-0 SH (rgb - 0.5) / C0.
    thickness: for (N, 2) scales, scale_2 = log(thickness * min(scale_0, scale_1)) for 3D Gaussian
      viewers; None writes only scale_0, scale_1 (2DGS's loader). Unused for (N, 3) scales.
    num_rest_sh: number of zero ``f_rest_*`` properties (45 for loaders that expect SH degree 3).
    opacity_eps: clipping of opacities before the logit.

  Returns:
    The path written.
  """
  path = Path(path)
  means = np.asarray(means, np.float64)
  n = len(means)
  num_scales = 3 if np.ndim(scales) == 2 and np.shape(scales)[1] == 3 else 2
  shapes = {"means": (means, (n, 3)), "scales": (scales, (n, num_scales)), "rotations": (rotations, (n, 3, 3)),
            "opacities": (opacities, (n,)), "colors": (colors, (n, 3))}
  if normals is not None:
    shapes["normals"] = (normals, (n, 3))
  for name, (arr, shape) in shapes.items():
    if np.shape(arr) != shape:
      raise ValueError(f"export_surfels_ply: {path}: {name} must have shape {shape}, got {np.shape(arr)}")
  scales = np.asarray(scales, np.float64)
  if not np.all(scales > 0):
    raise ValueError(f"export_surfels_ply: {path}: scales must be positive (standard deviations in metres)")
  rotations = np.asarray(rotations, np.float64)
  if normals is None:
    normals = rotations[:, :, 2]
  op = np.clip(np.asarray(opacities, np.float64), opacity_eps, 1.0 - opacity_eps)

  fields: list[tuple[str, np.ndarray]] = []
  fields += [(k, means[:, i]) for i, k in enumerate("xyz")]
  fields += [(k, np.asarray(normals, np.float64)[:, i]) for i, k in enumerate(("nx", "ny", "nz"))]
  f_dc = (np.asarray(colors, np.float64) - 0.5) / SH_C0
  fields += [(f"f_dc_{i}", f_dc[:, i]) for i in range(3)]
  fields += [(f"f_rest_{i}", np.zeros(n)) for i in range(num_rest_sh)]
  fields.append(("opacity", np.log(op) - np.log1p(-op)))
  log_s = np.log(scales)
  fields += [("scale_0", log_s[:, 0]), ("scale_1", log_s[:, 1])]
  if num_scales == 3:
    fields.append(("scale_2", log_s[:, 2]))
  elif thickness is not None:
    fields.append(("scale_2", np.log(thickness) + log_s.min(axis=1)))
  quat = rotations_to_quaternions(rotations)
  fields += [(f"rot_{i}", quat[:, i]) for i in range(4)]

  data = np.empty(n, dtype=[(k, "<f4") for k, _ in fields])
  for k, v in fields:
    data[k] = v
  header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
  header += [f"property float {k}" for k, _ in fields]
  header.append("end_header")
  with open(path, "wb") as f:
    f.write(("\n".join(header) + "\n").encode("ascii"))
    f.write(data.tobytes())
  return path
