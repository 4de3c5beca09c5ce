"""Resampling: vertices lie on the original surface, attributes transfer by barycentrics, counts."""

import numpy as np
import pytest
import trimesh

from fmgs_jax.geometry import subdivide


@pytest.fixture(scope="module")
def mesh():
  m = trimesh.creation.icosphere(subdivisions=2)  # 320 faces; vertices on the unit sphere
  return np.asarray(m.vertices, np.float32), np.asarray(m.faces, np.int32)


def _on_surface(points, vertices, faces):
  closest, _, _ = subdivide.closest_points_on_mesh(points, vertices, faces, candidates=32)
  return np.abs(np.linalg.norm(closest - points, axis=1)).max()


def test_subdivision_counts_and_on_surface(mesh):
  v, f = mesh
  r = subdivide.subdivide(v, f, 2)
  assert r.faces.shape == (len(f) * 16, 3)
  # Euler: a closed genus-0 mesh keeps V - E + F = 2.
  edges = np.unique(np.sort(np.concatenate([r.faces[:, [0, 1]], r.faces[:, [1, 2]], r.faces[:, [2, 0]]]), 1), axis=0)
  assert len(r.vertices) - len(edges) + len(r.faces) == 2
  assert _on_surface(r.vertices, v, f) < 1e-6
  np.testing.assert_allclose(r.barycentric.sum(1), 1.0, atol=1e-6)
  assert r.barycentric.min() >= 0.0


def test_transfer_reproduces_positions_and_linear_fields(mesh):
  v, f = mesh
  for target in (4000, 150):  # subdivision, decimation
    r = subdivide.resample(v, f, target)
    assert abs(len(r.faces) - target) <= 0.06 * target
    np.testing.assert_allclose(subdivide.transfer(v, f, r), r.vertices, atol=1e-5)
    assert _on_surface(r.vertices, v, f) < 1e-5
    # A linear function of position is interpolated exactly by barycentrics.
    coeff = np.array([0.3, -1.2, 2.0], np.float32)
    np.testing.assert_allclose(subdivide.transfer(v @ coeff, f, r), r.vertices @ coeff, atol=1e-5)


def test_skinning_weights_still_sum_to_one(mesh):
  v, f = mesh
  rng = np.random.default_rng(0)
  w = rng.random((len(v), 5)).astype(np.float32)
  w /= w.sum(1, keepdims=True)
  r = subdivide.resample(v, f, 2000)
  np.testing.assert_allclose(subdivide.transfer(w, f, r).sum(1), 1.0, atol=1e-5)
  labels = rng.integers(0, 4, len(v))
  out = subdivide.transfer_labels(labels, f, r)
  # Vertices that coincide with original vertices keep their label exactly.
  same = np.isclose(r.barycentric.max(1), 1.0)
  src = f[r.source_face[same], np.argmax(r.barycentric[same], 1)]
  np.testing.assert_array_equal(out[same], labels[src])


def test_closest_point_matches_brute_force():
  rng = np.random.default_rng(1)
  v = rng.normal(size=(30, 3))
  f = rng.integers(0, 30, size=(40, 3))
  f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
  p = rng.normal(size=(50, 3)) * 1.5
  closest, _, _ = subdivide.closest_points_on_mesh(p, v, f, candidates=len(f))
  # Brute force: dense barycentric sampling of every triangle.
  s = np.linspace(0, 1, 101)
  uu, vv = np.meshgrid(s, s)
  keep = uu + vv <= 1
  bary = np.stack([1 - uu[keep] - vv[keep], uu[keep], vv[keep]], 1)
  samples = np.einsum("sk,fkd->fsd", bary, v[f]).reshape(-1, 3)
  brute = np.min(np.linalg.norm(p[:, None] - samples[None], axis=-1), axis=1)
  ours = np.linalg.norm(p - closest, axis=1)
  assert np.all(ours <= brute + 1e-9)
  np.testing.assert_allclose(ours, brute, atol=0.02)
