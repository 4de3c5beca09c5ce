"""fmgs_jax.body loader and forward vs a NumPy SMPL, the body-models library, closed forms and finite differences."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from fmgs_jax import body
from tests.body import tiny_smpl


@pytest.fixture(scope="module")
def arrays():
  return tiny_smpl.make_arrays()


@pytest.fixture(scope="module")
def files(arrays, tmp_path_factory):
  d = tmp_path_factory.mktemp("tiny_smpl")
  return tiny_smpl.write_npz(d / "tiny.npz", arrays), tiny_smpl.write_pkl(d / "tiny.pkl", arrays)


@pytest.fixture(scope="module")
def model(files):
  return body.load_body_model(files[0])


def _no_posedirs(m):
  return m.replace(posedirs=np.zeros(m.posedirs.shape[:2] + (0,), np.float32))


def _random_params(seed, scale=0.5, num_betas=10):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=num_betas).astype(np.float32), rng.normal(scale=scale, size=(24, 3)).astype(np.float32),
          rng.normal(scale=0.3, size=3).astype(np.float32))


@pytest.mark.parametrize("which", [0, 1], ids=["npz", "pkl_sparse_regressor"])
def test_loaded_file_matches_numpy_smpl(arrays, files, which):
  m = body.load_body_model(files[which])
  chex.assert_shape(m.J_regressor, (24, 72))
  assert m.parents.dtype == np.int32 and m.parents[0] == -1 and m.faces.dtype == np.int32
  np.testing.assert_array_equal(m.parents, tiny_smpl.SMPL_PARENTS)
  for seed in range(2):
    betas, pose, transl = _random_params(seed)
    out = body.forward(m, betas, pose, transl)
    ref_v, ref_j = tiny_smpl.numpy_smpl({k: np.float64(v) for k, v in arrays.items()}, np.float64(betas),
                                        np.float64(pose), np.float64(transl))
    chex.assert_shape(out.vertices, (72, 3))
    chex.assert_shape(out.transforms, (24, 4, 4))
    np.testing.assert_allclose(out.vertices, ref_v, atol=2e-5)
    np.testing.assert_allclose(out.joints, ref_j, atol=2e-5)


def test_matches_body_models_jax_smpl(files):
  """Independent implementation: body-models' own JAX SMPL on the same file."""
  from body_models.smpl.jax import SMPL  # pylint: disable=g-import-not-at-top
  lib = SMPL(model_path=files[1])
  m = body.load_body_model(files[1])
  betas, pose, transl = _random_params(3)
  ref = lib.forward_vertices(jnp.asarray(pose[1:]), pelvis_rotation=jnp.asarray(pose[0]), shape=jnp.asarray(betas),
                             global_translation=jnp.asarray(transl))
  out = body.forward(m, betas, pose, transl)
  np.testing.assert_allclose(out.vertices, ref, atol=2e-5)
  skeleton = lib.forward_skeleton(jnp.asarray(pose[1:]), pelvis_rotation=jnp.asarray(pose[0]),
                                  shape=jnp.asarray(betas), global_translation=jnp.asarray(transl))
  np.testing.assert_allclose(out.joints, skeleton[:, :3, 3], atol=2e-5)


def test_zero_pose_returns_shaped_template(arrays, model):
  betas = np.random.default_rng(0).normal(size=4).astype(np.float32)
  transl = np.array([0.1, -0.2, 0.3], np.float32)
  out = body.forward(model, betas, np.zeros((24, 3), np.float32), transl)
  shaped = arrays["v_template"] + arrays["shapedirs"][:, :, :4] @ betas
  np.testing.assert_allclose(out.vertices, shaped + transl, atol=1e-5)
  np.testing.assert_allclose(body.rest_vertices(model, betas), shaped, atol=1e-6)
  np.testing.assert_allclose(out.joints, arrays["J_regressor"] @ shaped + transl, atol=1e-5)
  np.testing.assert_allclose(out.transforms[:, :3, :3], np.broadcast_to(np.eye(3), (24, 3, 3)), atol=1e-6)


def test_global_rotation_is_rigid_about_root(arrays, model):
  betas, _, transl = _random_params(1)
  rotvec = np.array([0.4, -1.1, 0.7], np.float32)
  pose = np.zeros((24, 3), np.float32)
  pose[0] = rotvec
  out = body.forward(model, betas, pose, transl)
  shaped = arrays["v_template"] + arrays["shapedirs"] @ betas
  root = (arrays["J_regressor"] @ shaped)[0]
  expected = (shaped - root) @ Rotation.from_rotvec(rotvec).as_matrix().T + root + transl
  # The global rotation also drives pose correctives only through joints >= 1, which stay at rest.
  np.testing.assert_allclose(out.vertices, expected, atol=1e-5)


def test_one_joint_moves_only_its_subtree(model):
  joint = 18  # left elbow: its subtree is the elbow, wrist and hand
  subtree = {joint}
  for j in range(24):
    if tiny_smpl.SMPL_PARENTS[j] in subtree:
      subtree.add(j)
  assert subtree == {18, 20, 22}
  m = _no_posedirs(model)
  pose = np.zeros((24, 3), np.float32)
  pose[joint] = [0.3, 0.9, -0.5]
  betas = np.zeros(10, np.float32)
  rest = np.asarray(body.forward(m, betas, np.zeros((24, 3), np.float32), np.zeros(3)).vertices)
  posed = np.asarray(body.forward(m, betas, pose, np.zeros(3)).vertices)
  influence = np.asarray(m.weights)[:, sorted(subtree)].sum(axis=1)
  moved = np.linalg.norm(posed - rest, axis=1) > 1e-6
  assert moved.any()
  np.testing.assert_array_equal(moved, influence > 0)
  # A vertex fully on the subtree rotates rigidly about the joint.
  joint_pos = np.asarray(m.J_regressor) @ rest
  full = influence > 1 - 1e-6
  rot = Rotation.from_rotvec(pose[joint]).as_matrix()
  np.testing.assert_allclose(posed[full], (rest[full] - joint_pos[joint]) @ rot.T + joint_pos[joint], atol=1e-5)


def test_skin_points_reproduces_forward_without_posedirs(model):
  m = _no_posedirs(model)
  betas, pose, transl = _random_params(4, scale=0.8)
  out = body.forward(m, betas, pose, transl)
  skinned = body.skin_points(body.rest_vertices(m, betas), m.weights, out.transforms)
  np.testing.assert_allclose(skinned, out.vertices, atol=1e-5)
  # Any canonical point carried with any weights follows the same transforms (rigid per joint).
  x = np.array([[0.1, 0.2, 0.3]], np.float32)
  w = np.zeros((1, 24), np.float32)
  w[0, 5] = 1.0
  t = np.asarray(out.transforms[5])
  np.testing.assert_allclose(body.skin_points(x, w, out.transforms), x @ t[:3, :3].T + t[:3, 3], atol=1e-6)


@pytest.fixture
def x64():
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", False)


def test_gradients_match_finite_differences(model, x64):  # pylint: disable=unused-argument
  m = jax.tree.map(lambda a: np.asarray(a, np.float64) if np.issubdtype(np.asarray(a).dtype, np.floating) else a,
                   model)
  betas, pose, transl = (np.float64(a) for a in _random_params(5))
  pose[3] = 0.0  # a joint exactly at zero rotation: Rodrigues must stay differentiable there
  probe = np.random.default_rng(6).normal(size=(72, 3))

  @jax.jit
  def loss(b, p, t):
    out = body.forward(m, b, p, t)
    return jnp.sum(out.vertices * probe) + jnp.sum(out.transforms[:, :3, :] ** 2)

  grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(betas, pose, transl)
  args = [betas, pose, transl]
  rng = np.random.default_rng(7)
  for i, g in enumerate(grads):
    assert np.all(np.isfinite(g))
    for _ in range(4):
      idx = tuple(rng.integers(0, s) for s in args[i].shape)
      if i == 1 and _ == 0:
        idx = (3, 1)
      eps = 1e-6
      plus = [a.copy() for a in args]
      minus = [a.copy() for a in args]
      plus[i][idx] += eps
      minus[i][idx] -= eps
      fd = (loss(*plus) - loss(*minus)) / (2 * eps)
      np.testing.assert_allclose(g[idx], fd, rtol=1e-5, atol=1e-6)


def test_jit_and_vmap_over_frames(model):
  frames = [_random_params(s) for s in range(3)]
  betas = frames[0][0]
  poses = np.stack([f[1] for f in frames])
  transls = np.stack([f[2] for f in frames])
  batched = jax.jit(jax.vmap(body.forward, in_axes=(None, None, 0, 0)))(model, betas, poses, transls)
  chex.assert_shape(batched.vertices, (3, 72, 3))
  jitted = jax.jit(body.forward)
  for k in range(3):
    single = body.forward(model, betas, poses[k], transls[k])
    np.testing.assert_allclose(batched.vertices[k], single.vertices, atol=1e-6)
    np.testing.assert_allclose(jitted(model, betas, poses[k].reshape(-1), transls[k]).transforms,
                               single.transforms, atol=1e-6)


def test_model_is_a_pytree_with_static_names(model):
  leaves = jax.tree.leaves(model)
  assert len(leaves) == 8
  assert isinstance(model.part_names, tuple) and len(model.part_names) == 24
  assert dataclasses.is_dataclass(model)


def test_errors_name_file_and_key(arrays, tmp_path):
  missing = tmp_path / "SMPL_NEUTRAL.pkl"
  with pytest.raises(FileNotFoundError, match="SMPL_NEUTRAL.pkl"):
    body.load_body_model(missing)
  wrong_suffix = tmp_path / "model.obj"
  wrong_suffix.write_text("v 0 0 0\n")
  with pytest.raises(ValueError, match=r"model\.obj.*format"):
    body.load_body_model(wrong_suffix)
  garbage = tmp_path / "garbage.npz"
  garbage.write_bytes(b"not a zip file")
  with pytest.raises(ValueError, match="garbage.npz"):
    body.load_body_model(garbage)
  garbage_pkl = tmp_path / "garbage.pkl"
  garbage_pkl.write_bytes(b"not a pickle")
  with pytest.raises(ValueError, match="garbage.pkl"):
    body.load_body_model(garbage_pkl)
  partial = {k: v for k, v in arrays.items() if k != "J_regressor"}
  path = tiny_smpl.write_npz(tmp_path / "no_regressor.npz", partial)
  with pytest.raises(ValueError, match=r"no_regressor\.npz.*'J_regressor'"):
    body.load_body_model(path)
  bad = dict(arrays, weights=arrays["weights"][:10])
  path = tiny_smpl.write_npz(tmp_path / "bad_weights.npz", bad)
  with pytest.raises(ValueError, match=r"bad_weights\.npz.*'weights'"):
    body.load_body_model(path)


def test_bad_arguments_are_rejected(model):
  with pytest.raises(ValueError, match="pose"):
    body.forward(model, np.zeros(10, np.float32), np.zeros((23, 3), np.float32), np.zeros(3))
  with pytest.raises(ValueError, match="betas"):
    body.forward(model, np.zeros(11, np.float32), np.zeros((24, 3), np.float32), np.zeros(3))
