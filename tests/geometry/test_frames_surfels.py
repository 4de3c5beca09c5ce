"""Face frames and surfels on faces: orthonormal frames, posed normals = face normals, bounds, no NaN."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial.transform import Rotation

from fmgs_jax.geometry import frames, surfels


def _random_mesh(seed=0, n=40):
  rng = np.random.default_rng(seed)
  v = rng.normal(size=(n, 3)).astype(np.float32)
  f = np.stack([rng.permutation(n)[:3] for _ in range(60)]).astype(np.int32)
  return v, f


def test_frames_are_orthonormal_and_match_numpy():
  v, f = _random_mesh()
  fr = frames.face_frames(jnp.asarray(v), jnp.asarray(f))
  r = np.asarray(fr.rotation)
  np.testing.assert_allclose(np.einsum("fji,fjk->fik", r, r), np.broadcast_to(np.eye(3), r.shape), atol=1e-5)
  np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-5)
  a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
  cross = np.cross(b - a, c - a)
  np.testing.assert_allclose(fr.normal, cross / np.linalg.norm(cross, axis=1, keepdims=True), atol=1e-5)
  np.testing.assert_allclose(fr.area, 0.5 * np.linalg.norm(cross, axis=1), rtol=1e-5)
  np.testing.assert_allclose(fr.centre, (a + b + c) / 3, atol=1e-6)
  np.testing.assert_allclose(fr.size, np.sqrt(0.5 * np.linalg.norm(cross, axis=1) / np.pi), rtol=1e-5)


def test_degenerate_faces_are_finite_with_finite_gradients():
  v = jnp.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 0, 0]], jnp.float32)
  f = jnp.array([[0, 1, 2], [0, 3, 1], [0, 0, 0]], jnp.int32)  # collinear, repeated vertex, a point
  fr = frames.face_frames(v, f)
  for leaf in jax.tree.leaves(fr):
    assert np.all(np.isfinite(leaf))
  g = jax.grad(lambda x: jnp.sum(frames.face_frames(x, f).rotation ** 2) + jnp.sum(frames.face_frames(x, f).size))(v)
  assert np.all(np.isfinite(g))


def test_posed_surfel_normals_equal_posed_face_normals():
  v, f = _random_mesh(1)
  rot = Rotation.from_rotvec([0.3, -1.1, 0.7]).as_matrix().astype(np.float32)
  posed = v @ rot.T + np.array([0.1, 2.0, -0.5], np.float32)
  n = len(f)
  zero = jnp.zeros((n,))
  s_c = surfels.place_surfels(frames.face_frames(jnp.asarray(v), jnp.asarray(f)), zero + 0.2,
                              jnp.zeros((n, 2)), jnp.zeros((n, 3)))
  s_p = surfels.place_surfels(frames.face_frames(jnp.asarray(posed), jnp.asarray(f)), zero + 0.2,
                              jnp.zeros((n, 2)), jnp.zeros((n, 3)))
  # A rigid motion of the mesh moves the surfels rigidly: means, frames and scales follow exactly.
  np.testing.assert_allclose(s_p.means, np.asarray(s_c.means) @ rot.T + [0.1, 2.0, -0.5], atol=1e-4)
  np.testing.assert_allclose(s_p.rotations, np.einsum("ij,fjk->fik", rot, s_c.rotations), atol=1e-4)
  np.testing.assert_allclose(s_p.scales, s_c.scales, rtol=1e-4)
  a, b, c = posed[f[:, 0]], posed[f[:, 1]], posed[f[:, 2]]
  cross = np.cross(b - a, c - a)
  np.testing.assert_allclose(np.asarray(s_p.rotations)[:, :, 2], cross / np.linalg.norm(cross, axis=1, keepdims=True),
                             atol=1e-5)


def test_centres_stay_in_face_slab_for_extreme_parameters():
  v, f = _random_mesh(2)
  fr = frames.face_frames(jnp.asarray(v), jnp.asarray(f))
  n = len(f)
  max_offset, max_rot = 0.05, 0.35  # metres, radians
  for raw in (1e6, -1e6, 0.0):
    off, ls, rot = surfels.bound_residuals(jnp.full((n,), raw), jnp.full((n, 2), raw), jnp.full((n, 3), raw),
                                           max_offset, 1.0, max_rot)
    s = surfels.place_surfels(fr, off, ls, rot)
    d = np.asarray(s.means - fr.centre)
    along = np.sum(d * np.asarray(fr.normal), 1)
    assert np.all(np.abs(along) <= max_offset * (1 + 1e-5))
    if raw != 0.0:
      np.testing.assert_allclose(np.abs(along), max_offset, rtol=1e-4)  # the bound is reached, in metres
    np.testing.assert_allclose(d - along[:, None] * np.asarray(fr.normal), 0.0, atol=1e-5)  # only along n
    tilt = np.degrees(np.arccos(np.clip(np.sum(np.asarray(s.rotations)[:, :, 2] * np.asarray(fr.normal), 1), -1, 1)))
    assert np.all(tilt <= np.degrees(max_rot) + 1e-3)
    assert np.all(np.isfinite(np.asarray(s.scales)))
