"""Forward kinematics and linear blend skinning for a `BodyModel` (SMPL's equations).

SMPL (Loper et al. 2015): with shape betas and axis-angle pose theta,
  v_shaped = v_template + shapedirs @ betas,     J = J_regressor @ v_shaped,
  v_posed  = v_shaped + posedirs @ vec(R_j(theta) - I, j >= 1),
  G_j = G_parent(j) @ [R_j | J_j - J_parent(j)],  G_0 = [R_0 | J_0],
  A_j = G_j @ [I | -J_j]  (+ transl),             v = sum_j w_j A_j [v_posed, 1].
This module is that, written as pure jnp functions of the model pytree: jittable,
vmappable over frames (vmap the pose / transl with the model unbatched) and
differentiable in betas, pose and transl. `tests/body` checks it against the
`body-models` library's JAX SMPL and against a NumPy SMPL in the test.
"""

from __future__ import annotations

import flax.struct
import jax.numpy as jnp

from fmgs_jax.body.model import BodyModel
from fmgs_jax.geometry.rotations import axis_angle_to_matrix  # re-exported by fmgs_jax.body


@flax.struct.dataclass
class BodyOutput:
  """Posed body for one frame (world frame = model frame + transl, metres).

  Attributes:
    vertices: (V, 3) posed vertices.
    joints: (J, 3) posed joint positions.
    transforms: (J, 4, 4) skinning transforms: a rest-shaped canonical point x
      (zero pose, shape applied) with weights w goes to
      sum_j w_j * (transforms[j] @ [x, 1]); includes the rest-joint offset
      and transl.
  """
  vertices: jnp.ndarray
  joints: jnp.ndarray
  transforms: jnp.ndarray


def _check_betas(model: BodyModel, betas: jnp.ndarray) -> None:
  if betas.ndim != 1 or betas.shape[0] > model.shapedirs.shape[2]:
    raise ValueError(f"betas has shape {betas.shape}; this body model takes at most "
                     f"{model.shapedirs.shape[2]} shape coefficients (a 1-D array).")


def rest_vertices(model: BodyModel, betas: jnp.ndarray) -> jnp.ndarray:
  """Shaped template in the zero pose, without pose correctives.

  Args:
    model: the body model.
    betas: (S',) shape coefficients, S' <= model's S (missing ones are 0).

  Returns:
    (V, 3) float32 vertices, model frame, metres.
  """
  betas = jnp.asarray(betas)
  _check_betas(model, betas)
  dirs = jnp.asarray(model.shapedirs)[:, :, :betas.shape[0]]
  return jnp.asarray(model.v_template) + jnp.einsum("vcs,s->vc", dirs, betas.astype(dirs.dtype))


def global_transforms(parents: jnp.ndarray, rotations: jnp.ndarray, joints: jnp.ndarray) -> jnp.ndarray:
  """World transforms G_j of each joint by chaining local [R_j | J_j - J_p] along parents.

  Args:
    parents: (J,) int32, parents[0] = -1, parents[j] < j (may be traced).
    rotations: (J, 3, 3) local joint rotations.
    joints: (J, 3) rest joint positions.

  Returns:
    (J, 4, 4) world transforms of the joint frames (rotation, joint position).
  """
  num_joints = rotations.shape[0]
  parents = jnp.asarray(parents)
  offsets = joints - jnp.where((parents >= 0)[:, None], joints[jnp.maximum(parents, 0)], 0.0)
  bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0], rotations.dtype), (num_joints, 1, 4))
  local = jnp.concatenate([jnp.concatenate([rotations, offsets[:, :, None]], axis=2), bottom], axis=1)
  world = local
  for j in range(1, num_joints):  # J is small (24 for SMPL); parents[j] < j so the parent is final
    world = world.at[j].set(world[parents[j]] @ local[j])
  return world


def forward(model: BodyModel, betas: jnp.ndarray, pose: jnp.ndarray, transl: jnp.ndarray) -> BodyOutput:
  """Poses the body: SMPL forward kinematics and linear blend skinning.

  Args:
    model: the body model (not batched; vmap the other arguments over frames).
    betas: (S',) float32 shape coefficients, S' <= model.num_betas.
    pose: (J, 3) float32 axis-angle per joint, radians, SMPL joint order;
      pose[0] is the global orientation about the root joint. (J*3,) is
      accepted too (e.g. SMPL's 72 numbers).
    transl: (3,) float32 global translation, metres, added to everything.

  Returns:
    BodyOutput with vertices (V, 3), joints (J, 3), transforms (J, 4, 4).
  """
  num_joints = model.weights.shape[1]
  pose = jnp.asarray(pose)
  if pose.shape not in ((num_joints, 3), (num_joints * 3,)):
    raise ValueError(f"pose has shape {pose.shape}; this body model expects ({num_joints}, 3) axis-angle.")
  pose = pose.reshape(num_joints, 3).astype(jnp.asarray(model.v_template).dtype)
  transl = jnp.asarray(transl, pose.dtype)
  if transl.shape != (3,):
    raise ValueError(f"transl has shape {transl.shape}; expected (3,).")

  v_shaped = rest_vertices(model, betas)
  joints = jnp.asarray(model.J_regressor) @ v_shaped
  rotations = axis_angle_to_matrix(pose)
  posedirs = jnp.asarray(model.posedirs)
  if posedirs.shape[2]:
    pose_feature = (rotations[1:] - jnp.eye(3, dtype=pose.dtype)).reshape(-1)
    v_shaped = v_shaped + jnp.einsum("vcp,p->vc", posedirs, pose_feature)

  world = global_transforms(model.parents, rotations, joints)
  rot = world[:, :3, :3]
  trans = world[:, :3, 3] - jnp.einsum("jab,jb->ja", rot, joints) + transl
  transforms = world.at[:, :3, 3].set(trans)
  vertices = skin_points(v_shaped, jnp.asarray(model.weights), transforms)
  return BodyOutput(vertices=vertices, joints=world[:, :3, 3] + transl, transforms=transforms)


def skin_points(points: jnp.ndarray, weights: jnp.ndarray, transforms: jnp.ndarray) -> jnp.ndarray:
  """Linear blend skinning of canonical points.

  Args:
    points: (P, 3) rest-shaped canonical points (zero pose, shape applied;
      add pose correctives first if the points have them), metres.
    weights: (P, J) skinning weights (rows sum to 1).
    transforms: (J, 4, 4) `forward(...).transforms`.

  Returns:
    (P, 3) posed points, world frame: sum_j w_j (transforms[j] @ [x, 1]).
  """
  blended = jnp.einsum("pj,jab->pab", weights, transforms[:, :3, :])
  return jnp.einsum("pab,pb->pa", blended[:, :, :3], points) + blended[:, :, 3]
