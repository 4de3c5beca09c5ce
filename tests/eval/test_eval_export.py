"""Exporters round-trip: meshes through trimesh, surfel PLYs through a hand-written PLY parser."""

import numpy as np
import pytest
import trimesh

from fmgs_jax.eval import export


def _mesh():
  m = trimesh.creation.icosphere(subdivisions=1, radius=0.5)
  rng = np.random.default_rng(0)
  colors = rng.random((len(m.vertices), 3))
  labels = (m.vertices[:, 2] > 0).astype(np.int64) * 3 + (m.vertices[:, 0] > 0)
  return np.asarray(m.vertices), np.asarray(m.faces), colors, labels


def test_mesh_ply_round_trip(tmp_path):
  v, f, c, lab = _mesh()
  path = export.export_mesh(tmp_path / "mesh.ply", v, f, c, lab)
  back = trimesh.load(path, process=False)
  np.testing.assert_allclose(back.vertices, v, atol=1e-6)
  np.testing.assert_array_equal(back.faces, f)
  np.testing.assert_array_equal(back.visual.vertex_colors[:, :3], np.round(c * 255).astype(np.uint8))
  raw = back.metadata["_ply_raw"]["vertex"]["data"]
  np.testing.assert_array_equal(raw["part"], lab)


def test_mesh_obj_round_trip_with_part_groups(tmp_path):
  v, f, c, lab = _mesh()
  path = export.export_mesh(tmp_path / "mesh.obj", v, f, c, lab)
  back = trimesh.load(path, process=False, maintain_order=True, group_material=False)
  if isinstance(back, trimesh.Scene):
    back = trimesh.util.concatenate(list(back.geometry.values()))
  np.testing.assert_allclose(back.vertices, v, atol=1e-6)
  np.testing.assert_allclose(back.visual.vertex_colors[:, :3], np.round(c * 255), atol=1)
  # Parse the groups by hand: every face sits in the group of its majority vertex label.
  group = None
  seen = []
  for line in path.read_text().splitlines():
    if line.startswith("g "):
      group = int(line.split("_")[1])
    elif line.startswith("f "):
      idx = [int(t) - 1 for t in line.split()[1:]]
      seen.append(idx)
      fl = lab[idx]
      vals, counts = np.unique(fl, return_counts=True)
      expect = vals[counts.argmax()] if counts.max() > 1 else fl.min()
      assert group == expect
  assert sorted(map(tuple, seen)) == sorted(map(tuple, f.tolist()))


def test_mesh_export_errors(tmp_path):
  v, f, c, lab = _mesh()
  with pytest.raises(ValueError, match="colors must be"):
    export.export_mesh(tmp_path / "m.ply", v, f, c[:-1])
  with pytest.raises(ValueError, match="unknown mesh format"):
    export.export_mesh(tmp_path / "m.stl", v, f)


def _read_ply(path):
  """Minimal binary-little-endian PLY reader for float properties (independent of the writer)."""
  data = path.read_bytes()
  end = data.index(b"end_header\n") + len(b"end_header\n")
  names, n = [], None
  for line in data[:end].decode().splitlines():
    parts = line.split()
    if parts[:2] == ["element", "vertex"]:
      n = int(parts[2])
    elif parts[:2] == ["property", "float"]:
      names.append(parts[2])
  arr = np.frombuffer(data[end:], dtype="<f4").reshape(n, len(names))
  return {k: arr[:, i] for i, k in enumerate(names)}


def _quat_wxyz_to_matrix(q):
  w, x, y, z = q.T
  return np.stack([
      np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
      np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
      np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
  ], -2)


def _random_rotations(n, rng):
  q, _ = np.linalg.qr(rng.standard_normal((n, 3, 3)))
  return q * np.sign(np.linalg.det(q))[:, None, None]  # proper rotations


@pytest.mark.parametrize("thickness", [1e-3, None])
def test_surfel_ply_round_trip(tmp_path, thickness):
  rng = np.random.default_rng(1)
  n = 50
  means = rng.standard_normal((n, 3))
  rot = _random_rotations(n, rng)
  scales = rng.uniform(0.001, 0.05, (n, 2))
  op = rng.uniform(0.05, 0.95, n)
  rgb = rng.random((n, 3))
  path = export.export_surfels_ply(tmp_path / "s.ply", means, None, scales, rot, op, rgb,
                                   thickness=thickness, num_rest_sh=45 if thickness else 0)
  p = _read_ply(path)
  np.testing.assert_allclose(np.stack([p["x"], p["y"], p["z"]], -1), means, atol=1e-6)
  np.testing.assert_allclose(np.stack([p["nx"], p["ny"], p["nz"]], -1), rot[:, :, 2], atol=1e-6)
  # Viewers: rgb = 0.5 + C0 * f_dc, opacity = sigmoid, scale = exp.
  dc = np.stack([p[f"f_dc_{i}"] for i in range(3)], -1)
  np.testing.assert_allclose(0.5 + 0.28209479177387814 * dc, rgb, atol=1e-6)
  np.testing.assert_allclose(1 / (1 + np.exp(-p["opacity"])), op, atol=1e-6)
  np.testing.assert_allclose(np.exp(np.stack([p["scale_0"], p["scale_1"]], -1)), scales, rtol=1e-5)
  if thickness is None:
    assert "scale_2" not in p and not any(k.startswith("f_rest") for k in p)
  else:
    np.testing.assert_allclose(np.exp(p["scale_2"]), 1e-3 * scales.min(1), rtol=1e-5)
    assert sum(k.startswith("f_rest") for k in p) == 45 and all(p[f"f_rest_{i}"].max() == 0 for i in range(45))
  q = np.stack([p[f"rot_{i}"] for i in range(4)], -1)
  np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1, atol=1e-6)
  np.testing.assert_allclose(_quat_wxyz_to_matrix(q.astype(np.float64)), rot, atol=1e-6)
  # trimesh parses the same file as a point cloud with the same properties.
  raw = trimesh.load(path).metadata["_ply_raw"]["vertex"]["data"]
  np.testing.assert_array_equal(raw["rot_0"], p["rot_0"])


def test_3d_gaussians_write_their_own_three_scales(tmp_path):
  rng = np.random.default_rng(3)
  n = 7
  scales = rng.uniform(0.001, 0.05, (n, 3))
  path = export.export_surfels_ply(tmp_path / "g.ply", rng.standard_normal((n, 3)), None, scales,
                                   _random_rotations(n, rng), np.full(n, 0.5), rng.random((n, 3)))
  p = _read_ply(path)
  np.testing.assert_allclose(np.exp(np.stack([p[f"scale_{i}"] for i in range(3)], -1)), scales, rtol=1e-5)


def test_surfel_reflected_frame_keeps_u_and_normal():
  rng = np.random.default_rng(2)
  rot = _random_rotations(5, rng)
  refl = rot.copy()
  refl[:, :, 1] *= -1  # det = -1
  m = _quat_wxyz_to_matrix(export.rotations_to_quaternions(refl))
  np.testing.assert_allclose(m, rot, atol=1e-9)


def test_surfel_export_errors(tmp_path):
  with pytest.raises(ValueError, match="scales must have shape"):
    export.export_surfels_ply(tmp_path / "s.ply", np.zeros((2, 3)), None, np.ones((2, 4)),
                              np.tile(np.eye(3), (2, 1, 1)), np.ones(2), np.ones((2, 3)))
  assert not (tmp_path / "s.ply").exists()


def _offset_sphere(offset: float, subdivisions: int = 4):
  """An icosphere of radius 1 and its surfel centres moved `offset` along the face normals."""
  s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
  v, f = np.asarray(s.vertices), np.asarray(s.faces)
  n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
  n /= np.linalg.norm(n, axis=1, keepdims=True)
  return v, f, v[f].mean(1) + offset * n


@pytest.mark.parametrize("offset", [0.0, 0.03, -0.02])
def test_surfel_surface_moves_a_sphere_by_the_offset(offset):
  v, f, means = _offset_sphere(offset)
  surface = export.surfel_surface(v, f, means)
  # An icosphere's area-weighted vertex normals are radial up to faceting; a constant offset moves every
  # vertex by it: radius 1 + offset.
  np.testing.assert_allclose(np.linalg.norm(surface, axis=1), 1.0 + offset, atol=2e-4)


def test_surfel_surface_follows_varying_offsets():
  v, f, _ = _offset_sphere(0.0)
  centre = v[f].mean(1)
  n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
  n /= np.linalg.norm(n, axis=1, keepdims=True)
  smooth = 0.02 * centre[:, 2]  # a slowly varying offset: 0.02 z
  surface = export.surfel_surface(v, f, centre + smooth[:, None] * n)
  radial = np.linalg.norm(surface, axis=1) - 1.0
  np.testing.assert_allclose(radial, 0.02 * v[:, 2], atol=2e-3)


def test_surfel_surface_needs_one_surfel_per_face():
  v, f, means = _offset_sphere(0.0, subdivisions=1)
  with pytest.raises(ValueError, match=r"one surfel per face"):
    export.surfel_surface(v, f, means[:-1])
