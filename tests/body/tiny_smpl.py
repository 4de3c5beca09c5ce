"""A tiny random SMPL-format model written to disk, and a straightforward NumPy SMPL to check against."""

import pickle

import numpy as np
import scipy.sparse
from scipy.spatial.transform import Rotation

# SMPL's kinematic tree (24 joints).
SMPL_PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21])


def make_arrays(seed=0, num_verts=72, num_betas=10):
  """Random SMPL-format arrays (official key names): 24 joints, 3 vertices per joint neighbourhood."""
  rng = np.random.default_rng(seed)
  num_joints = SMPL_PARENTS.size
  # Joints spread like a small body; vertices scattered around them.
  joints = np.cumsum(rng.normal(scale=0.15, size=(num_joints, 3)), axis=0) * 0.5
  for j in range(1, num_joints):
    joints[j] = joints[SMPL_PARENTS[j]] + rng.normal(scale=0.15, size=3)
  owner = np.arange(num_verts) % num_joints
  v_template = joints[owner] + rng.normal(scale=0.05, size=(num_verts, 3))
  weights = np.zeros((num_verts, num_joints))
  weights[np.arange(num_verts), owner] = 1.0 + rng.random(num_verts)
  parent_of_owner = np.maximum(SMPL_PARENTS[owner], 0)
  weights[np.arange(num_verts), parent_of_owner] += rng.random(num_verts)
  weights /= weights.sum(axis=1, keepdims=True)
  regressor = np.zeros((num_joints, num_verts))
  for j in range(num_joints):
    mine = np.flatnonzero(owner == j)
    regressor[j, mine] = rng.random(mine.size) + 0.1
  regressor /= regressor.sum(axis=1, keepdims=True)
  faces = np.stack([np.arange(num_verts - 2), np.arange(1, num_verts - 1), np.arange(2, num_verts)], axis=1)
  kintree = np.stack([SMPL_PARENTS, np.arange(num_joints)]).astype(np.int64)
  kintree[0, 0] = 4294967295  # what official SMPL files store for the root
  return {
      "v_template": v_template.astype(np.float32),
      "f": faces.astype(np.uint32),
      "weights": weights.astype(np.float32),
      "shapedirs": (rng.normal(scale=0.02, size=(num_verts, 3, num_betas))).astype(np.float32),
      "posedirs": (rng.normal(scale=0.01, size=(num_verts, 3, 9 * (num_joints - 1)))).astype(np.float32),
      "kintree_table": kintree,
      "J_regressor": regressor.astype(np.float32),
  }


def write_npz(path, arrays):
  np.savez(path, **arrays)
  return path


def write_pkl(path, arrays):
  """As official SMPL .pkl files: a latin-1 pickle with a scipy-sparse (csc) J_regressor."""
  data = dict(arrays)
  data["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"].astype(np.float64))
  with open(path, "wb") as f:
    pickle.dump(data, f, protocol=2)
  return path


def numpy_smpl(arrays, betas, pose, transl):
  """SMPL as in the paper, in float64 NumPy with loops; pose (24, 3) axis-angle, pose[0] global."""
  parents = SMPL_PARENTS
  v_shaped = arrays["v_template"] + arrays["shapedirs"][:, :, :len(betas)] @ betas
  joints = arrays["J_regressor"] @ v_shaped
  rots = Rotation.from_rotvec(pose).as_matrix()
  feature = np.concatenate([(rots[j] - np.eye(3)).ravel() for j in range(1, len(parents))])
  v_posed = v_shaped + arrays["posedirs"] @ feature
  world = []
  for j in range(len(parents)):
    local = np.eye(4)
    local[:3, :3] = rots[j]
    local[:3, 3] = joints[j] - (joints[parents[j]] if j else 0.0)
    world.append(local if j == 0 else world[parents[j]] @ local)
  vertices = np.zeros_like(v_posed)
  for i in range(len(v_posed)):
    for j in range(len(parents)):
      w = arrays["weights"][i, j]
      if w:
        rel = np.append(v_posed[i] - joints[j], 1.0)
        vertices[i] += w * (world[j] @ rel)[:3]
  posed_joints = np.stack([g[:3, 3] for g in world])
  return vertices + transl, posed_joints + transl
