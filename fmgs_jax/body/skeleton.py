"""Retargeting: the template's rest mesh moved so that its joints land on another skeleton's.

Bone by bone along the kinematic chain: each joint j moves by d_j = J*_j - J_j, and a vertex skinned
to joint j moves with the bone from j to its child c, interpolating the two ends by where the vertex
projects onto the bone (s in [0, 1]: (1 - s) d_j + s d_c); joints with no single child (pelvis, upper
spine, leaves) carry their vertices rigidly. The skinning weights blend the bones: v' = v + M d with
M[v, j] = sum over bones of w (1 - s) and M[v, c] = w s, a (V, J) matrix of rows summing to 1 fixed
by the rest geometry (so a pure translation of every joint translates the mesh exactly).

Joints are then exact: the regressor gets the minimum-norm change on each joint's support that makes
J_regressor' @ v' = J* (rows still summing to 1). The built-in template needs it because some of its
joints regress to places no vertex moves independently (spine2 skins no vertex; the hand joints sit at
the wrists). Faces, weights, parts and blend shapes are kept.

`bone_targets` builds J* from per-bone length factors along the chain (each joint at its parent's new
position plus its rest bone vector scaled), for the subject fit and the synthetic capture's subject.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from fmgs_jax.body.model import BodyModel


def bone_operator(model: BodyModel, vertices: np.ndarray | None = None) -> np.ndarray:
  """(V, J) float32 M: vertex displacements M @ d from joint displacements d (J, 3).

  Args:
    model: the body model (weights, parents, regressor).
    vertices: (V, 3) rest vertices the bone parameters are measured on (default v_template).
  """
  v = np.asarray(model.v_template if vertices is None else vertices, np.float64)
  w = np.asarray(model.weights, np.float64)
  parents = np.asarray(model.parents)
  joints = np.asarray(model.J_regressor, np.float64) @ v
  num = w.shape[1]
  m = np.zeros_like(w)
  for j in range(num):
    children = [c for c in range(num) if parents[c] == j]
    if len(children) != 1:
      m[:, j] += w[:, j]
      continue
    c = children[0]
    bone = joints[c] - joints[j]
    s = np.clip((v - joints[j]) @ bone / max(bone @ bone, 1e-12), 0.0, 1.0)
    m[:, j] += w[:, j] * (1.0 - s)
    m[:, c] += w[:, j] * s
  return m.astype(np.float32)


def retarget_vertices(vertices, operator, joints, targets):
  """Rest vertices (V, 3) moved with the bones from `joints` (J, 3) to `targets` (J, 3); jnp.

  Args:
    vertices: (V, 3) rest vertices (shaped), metres.
    operator: (V, J) `bone_operator`.
    joints: (J, 3) the vertices' rest joints.
    targets: (J, 3) target rest joints, metres.
  """
  return vertices + operator @ (targets - joints)


def bone_targets(joints, parents: np.ndarray, factors, root):
  """(J, 3) joints with bone j scaled by factors[j] along the chain; joint 0 placed at `root`.

  Args:
    joints: (J, 3) rest joints.
    parents: (J,) static parent indices (parents[0] = -1, parents[j] < j).
    factors: (J,) bone-length factors (factors[0] unused).
    root: (3,) new root position.
  """
  xp = np if all(isinstance(a, np.ndarray) for a in (joints, factors, root)) else jnp
  out = [root + 0.0 * joints[0]]
  for j in range(1, joints.shape[0]):
    p = int(parents[j])
    out.append(out[p] + factors[j] * (joints[j] - joints[p]))
  return xp.stack(out)


def exact_regressor(regressor: np.ndarray, vertices: np.ndarray, targets: np.ndarray) -> np.ndarray:
  """(J, V) regressor R' with R' @ vertices = targets and rows summing as before.

  Minimum-norm change of each row on its support (its non-zero entries, or its 16 nearest vertices
  when it has fewer than 4).
  """
  r = np.asarray(regressor, np.float64).copy()
  v = np.asarray(vertices, np.float64)
  for j in range(r.shape[0]):
    support = np.flatnonzero(r[j])
    if support.size < 4:
      support = np.argsort(np.linalg.norm(v - targets[j], axis=1))[:16]
    a = np.concatenate([np.ones((1, support.size)), v[support].T])
    b = np.concatenate([[0.0], targets[j] - r[j] @ v])
    r[j, support] += np.linalg.lstsq(a, b, rcond=None)[0]
  return r


def retarget(model: BodyModel, targets: np.ndarray, root_shift=None) -> BodyModel:
  """The model with its rest mesh moved so that its (mean-shape) rest joints are `targets` (J, 3).

  `root_shift` (3,): the skeleton sits that much off the mesh: the mesh is moved onto
  targets - root_shift, the joints are `targets` (a root placed elsewhere in the body, as SMPL's pelvis
  sits elsewhere than another model's; unlike a translation of everything, posing shows it).
  """
  targets = np.asarray(targets, np.float64)
  if targets.shape != (model.num_joints, 3) or not np.all(np.isfinite(targets)):
    raise ValueError(f"retarget: target joints must be a finite ({model.num_joints}, 3) array, got "
                     f"shape {targets.shape}")
  v = np.asarray(model.v_template, np.float64)
  joints = np.asarray(model.J_regressor, np.float64) @ v
  shift = np.zeros(3) if root_shift is None else np.asarray(root_shift, np.float64)
  new = retarget_vertices(v, np.asarray(bone_operator(model), np.float64), joints, targets - shift)
  return model.replace(v_template=np.asarray(new, np.float32),
                       J_regressor=exact_regressor(model.J_regressor, new, targets).astype(np.float32))
