"""The avatar's posing in its three variants: mesh-guided surfels, mesh-guided 3D Gaussians, free Gaussians.

References are geometric facts, not earlier outputs: at the rest pose every skinning transform is the
identity, so free Gaussians initialised on the template coincide with the mesh-guided surfels; a pure
global rotation + translation moves every variant rigidly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from configs import synthetic
from fmgs_jax import avatar as avatar_lib
from fmgs_jax import body as body_lib
from fmgs_jax.train import optim


def _config(primitive="2dgs", mesh_guided=True):
  c = synthetic.get_config()
  c.body.num_faces = 600
  c.model.grid.num_levels, c.model.grid.log2_table_size, c.model.grid.max_resolution = 2, 8, 32
  c.model.skinning_grid.num_levels, c.model.skinning_grid.log2_table_size = 2, 8
  c.model.geometry_hidden, c.model.tilt_hidden, c.model.skinning_hidden = (8,), (8,), (8,)
  c.model.primitive, c.model.mesh_guided = primitive, mesh_guided
  return c


@pytest.fixture(scope="module")
def body_model():
  return body_lib.builtin_body_model()


def _avatar(body_model, **kw):
  c = _config(**kw)
  betas = np.zeros((body_model.num_betas,), np.float32)
  av = avatar_lib.build(c, body_model, betas, num_frames=0)
  return c, av, avatar_lib.init_params(av, jax.random.key(1)), betas


def _pose(av, params, betas, pose, transl):
  w2c = jnp.eye(4).at[2, 3].set(3.0)
  return avatar_lib.frame_quantities(av, params, jnp.asarray(betas), jnp.asarray(pose, jnp.float32),
                                     jnp.asarray(transl, jnp.float32), jnp.int32(-1), w2c)


def _same_frame(a, b, atol):
  """Frames agree up to the sign of the in-plane axes' order-preserving flips (u, v -> -u, -v)."""
  a, b = np.asarray(a), np.asarray(b)
  np.testing.assert_allclose(a[:, :, 2], b[:, :, 2], atol=atol)  # normals
  cos = np.abs(np.sum(a[:, :, 0] * b[:, :, 0], -1))
  np.testing.assert_allclose(cos, 1.0, atol=atol)


@pytest.mark.parametrize("primitive", ["2dgs", "3dgs"])
def test_free_gaussians_start_on_the_mesh_guided_surfels_at_rest(body_model, primitive):
  j = body_model.num_joints
  zero = np.zeros((j, 3))
  _, guided, p_guided, betas = _avatar(body_model, primitive=primitive)
  _, free, p_free, _ = _avatar(body_model, primitive=primitive, mesh_guided=False)
  assert set(p_free["surfels"]) == {"opacities", "means", "rotations", "scales"}
  qg = _pose(guided, p_guided, betas, zero, np.zeros(3))
  qf = _pose(free, p_free, betas, zero, np.zeros(3))
  # Same face centres (the geometry residuals start at zero), frames and sizes.
  np.testing.assert_allclose(qf["means"], qg["means"], atol=2e-5)
  _same_frame(qf["rotations"], qg["rotations"], atol=2e-4)
  want_cols = 3 if primitive == "3dgs" else 2
  assert qg["scales"].shape == qf["scales"].shape == (guided.num_surfels, want_cols)
  np.testing.assert_allclose(qf["scales"], qg["scales"], rtol=1e-4, atol=1e-7)
  if primitive == "3dgs":  # 3D Gaussians start isotropic: the normal scale equals the in-plane ones
    np.testing.assert_allclose(qg["scales"][:, 2], qg["scales"][:, 0], rtol=1e-5)


@pytest.mark.parametrize("mesh_guided", [True, False])
def test_global_rotation_and_translation_move_every_variant_rigidly(body_model, mesh_guided):
  j = body_model.num_joints
  _, av, params, betas = _avatar(body_model, mesh_guided=mesh_guided)
  rotvec = np.array([0.4, -0.9, 0.3])
  transl = np.array([0.2, -0.1, 0.5])
  pose = np.zeros((j, 3))
  pose[0] = rotvec
  rest = _pose(av, params, betas, np.zeros((j, 3)), np.zeros(3))
  moved = _pose(av, params, betas, pose, transl)
  r = Rotation.from_rotvec(rotvec).as_matrix()
  root = np.asarray(body_lib.forward(body_model, jnp.asarray(betas), jnp.zeros((j, 3)), jnp.zeros(3)).joints)[0]
  want = (np.asarray(rest["means"]) - root) @ r.T + root + transl
  np.testing.assert_allclose(moved["means"], want, atol=5e-5)
  np.testing.assert_allclose(np.asarray(moved["rotations"]), r[None] @ np.asarray(rest["rotations"]), atol=2e-4)
  np.testing.assert_allclose(moved["scales"], rest["scales"], rtol=1e-4)


def test_free_gaussians_follow_a_bent_joint_and_stay_orthonormal(body_model):
  j = body_model.num_joints
  _, av, params, betas = _avatar(body_model, mesh_guided=False)
  pose = np.zeros((j, 3))
  pose[18] = [0.0, 0.0, -1.2]  # left elbow (SMPL order)
  q = _pose(av, params, betas, pose, np.zeros(3))
  rot = np.asarray(q["rotations"])
  np.testing.assert_allclose(np.swapaxes(rot, 1, 2) @ rot, np.broadcast_to(np.eye(3), rot.shape), atol=1e-5)
  np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-5)
  rest = _pose(av, params, betas, np.zeros((j, 3)), np.zeros(3))
  moved = np.linalg.norm(np.asarray(q["means"]) - np.asarray(rest["means"]), axis=1)
  assert moved.max() > 0.05 and np.median(moved) < 1e-3  # the forearm moves, most of the body does not


@pytest.mark.parametrize("primitive,mesh_guided", [("3dgs", True), ("2dgs", False), ("3dgs", False)])
def test_every_parameter_has_one_optimizer_group(body_model, primitive, mesh_guided):
  c, _, params, _ = _avatar(body_model, primitive=primitive, mesh_guided=mesh_guided)
  labels = optim.param_labels(params, c.optim.groups)
  assert labels["surfels"]["opacities"] == "opacity"
  if not mesh_guided:
    assert (labels["surfels"]["means"], labels["surfels"]["rotations"], labels["surfels"]["scales"]) == (
        "position", "rotation", "scaling")
  else:
    assert labels["surfels"]["scale_normal"] == "scaling"
