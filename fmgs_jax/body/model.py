"""SMPL-format body model: the frozen pytree and its file loader.

A `BodyModel` holds, in SMPL's own names, everything forward kinematics and
linear blend skinning need, plus per-vertex part labels. It is read from an
official SMPL / SMPL-X `.pkl` or `.npz` file (or the built-in template, which
is written in the same format) through the `body-models` library's reader,
which loads legacy chumpy pickles without chumpy and densifies the
scipy-sparse joint regressor.

Units and frames: metres, the model's own canonical frame (SMPL: y up, z
forward), rest pose = SMPL's zero pose (T-pose).
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import flax.struct
import jax.numpy as jnp
import numpy as np
from body_models._common.chumpy_fix import load_model_dict

from fmgs_jax import errors

# SMPL's 24 joints, in SMPL order.
SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand")

# Keys every SMPL-format file must have (the official names).
REQUIRED_KEYS = ("v_template", "f", "weights", "kintree_table", "J_regressor")


@flax.struct.dataclass
class BodyModel:
  """An SMPL-format skinned body model (a frozen pytree; arrays are leaves).

  Attributes:
    v_template: (V, 3) float32, rest-pose template vertices, metres.
    faces: (F, 3) int32, triangle vertex indices (counter-clockwise = outward).
    weights: (V, J) float32, skinning weights, rows sum to 1.
    shapedirs: (V, 3, S) float32, linear shape blend shapes (S may be 0).
    posedirs: (V, 3, P) float32, pose-corrective blend shapes over the
      (J - 1) * 9 entries of (R_j - I), j >= 1 (P may be 0: no correctives).
    parents: (J,) int32, parent joint of each joint, parents[0] = -1,
      parents[j] < j.
    J_regressor: (J, V) float32, dense; rest joints = J_regressor @ vertices.
    part_ids: (V,) int32, index into `part_names` of each vertex's body part.
    part_names: static tuple of str, the part names.
    joint_names: static tuple of str, one name per joint.
  """
  v_template: jnp.ndarray
  faces: jnp.ndarray
  weights: jnp.ndarray
  shapedirs: jnp.ndarray
  posedirs: jnp.ndarray
  parents: jnp.ndarray
  J_regressor: jnp.ndarray  # pylint: disable=invalid-name
  part_ids: jnp.ndarray
  part_names: tuple[str, ...] = flax.struct.field(pytree_node=False, default=())
  joint_names: tuple[str, ...] = flax.struct.field(pytree_node=False, default=())

  @property
  def num_joints(self) -> int:
    return int(self.weights.shape[1])

  @property
  def num_betas(self) -> int:
    return int(self.shapedirs.shape[2])


def _default_joint_names(num_joints: int) -> tuple[str, ...]:
  if num_joints == len(SMPL_JOINT_NAMES):
    return SMPL_JOINT_NAMES
  return tuple(f"joint_{j}" for j in range(num_joints))


def _read(path: Path) -> dict:
  """Reads the file's dictionary with body-models' reader; errors name the file."""
  if not path.exists():
    raise errors.MissingInputError(
        f"Body model file not found: {path}. SMPL / SMPL-X files are licensed and never downloaded; "
        "see third_party/README.md (section 'SMPL model files') for where to obtain them, or leave "
        "config body.model_path empty to use the built-in template.")
  if path.is_dir():
    raise errors.InputError(f"Body model path {path} is a directory; expected an SMPL .pkl or .npz file.")
  if path.suffix not in (".pkl", ".npz"):
    raise errors.InputError(f"Body model file {path}: unsupported format '{path.suffix}'; expected an SMPL-format "
                            ".pkl or .npz file.")
  try:
    data = load_model_dict(path)
  except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError, AttributeError,
          ImportError, TypeError) as e:
    raise errors.InputError(f"Body model file {path} is not a readable SMPL-format {path.suffix} file: {e}") from e
  if not isinstance(data, dict):
    raise errors.InputError(f"Body model file {path} does not hold a dictionary of SMPL arrays.")
  return data


def _array(data: dict, key: str, path: Path, dtype, ndim: int) -> np.ndarray:
  try:
    a = np.asarray(data[key], dtype=dtype)
  except (TypeError, ValueError) as e:
    raise errors.InputError(f"Body model file {path}: key '{key}' is not a numeric array: {e}") from e
  if a.ndim != ndim:
    raise errors.InputError(f"Body model file {path}: key '{key}' has shape {a.shape}, expected {ndim} dimensions.")
  return a


def load_body_model(path: str | Path) -> BodyModel:
  """Loads an official SMPL / SMPL-X model file (or the built-in cache) as a `BodyModel`.

  Reads with `body_models`' loader (chumpy-free pickles, sparse regressors
  densified). Required keys: v_template (V,3), f (F,3), weights (V,J),
  kintree_table (2,J), J_regressor (J,V). Optional: shapedirs (V,3,S),
  posedirs (V,3,P) (zero-size when absent), part_ids (V,) and part_names (K,)
  (else each vertex's part is its most-weighted joint, named after it).

  Args:
    path: a `.pkl` or `.npz` file.

  Returns:
    The model, float32 / int32 numpy leaves.

  Raises:
    FileNotFoundError: the file does not exist (the message says where to get one).
    ValueError: wrong format, unreadable file, a missing key (named) or a key of the wrong shape.
  """
  path = Path(path)
  data = _read(path)
  for key in REQUIRED_KEYS:
    if key not in data:
      raise errors.InputError(f"Body model file {path} lacks the required key '{key}' (has: {sorted(data)}); "
                              "is it an SMPL-format model file?")
  v_template = _array(data, "v_template", path, np.float32, 2)
  num_verts = v_template.shape[0]
  faces = _array(data, "f", path, np.int64, 2)
  weights = _array(data, "weights", path, np.float32, 2)
  kintree = _array(data, "kintree_table", path, np.int64, 2)
  regressor = _array(data, "J_regressor", path, np.float32, 2)
  num_joints = weights.shape[1]
  if v_template.shape[1] != 3 or faces.shape[1] != 3:
    raise errors.InputError(f"Body model file {path}: 'v_template' {v_template.shape} and 'f' {faces.shape} must be "
                            "(V, 3) and (F, 3).")
  if faces.size and (faces.min() < 0 or faces.max() >= num_verts):
    raise errors.InputError(f"Body model file {path}: 'f' indexes vertices outside [0, {num_verts}).")
  if weights.shape[0] != num_verts:
    raise errors.InputError(f"Body model file {path}: 'weights' has shape {weights.shape}, expected ({num_verts}, J).")
  if regressor.shape != (num_joints, num_verts):
    raise errors.InputError(f"Body model file {path}: 'J_regressor' has shape {regressor.shape}, expected "
                            f"({num_joints}, {num_verts}).")
  if kintree.shape != (2, num_joints):
    raise errors.InputError(f"Body model file {path}: 'kintree_table' has shape {kintree.shape}, expected "
                            f"(2, {num_joints}).")
  parents = kintree[0].astype(np.int32)
  parents[0] = -1  # SMPL files store 2**32 - 1 (or anything) for the root.
  if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, num_joints)):
    raise errors.InputError(f"Body model file {path}: 'kintree_table' row 0 must list parents with "
                            f"parents[j] < j, got {parents.tolist()}.")

  if "shapedirs" in data:
    shapedirs = _array(data, "shapedirs", path, np.float32, 3)
  else:
    shapedirs = np.zeros((num_verts, 3, 0), np.float32)
  if "posedirs" in data:
    posedirs = _array(data, "posedirs", path, np.float32, 3)
  else:
    posedirs = np.zeros((num_verts, 3, 0), np.float32)
  if shapedirs.shape[:2] != (num_verts, 3):
    raise errors.InputError(f"Body model file {path}: 'shapedirs' has shape {shapedirs.shape}, expected "
                            f"({num_verts}, 3, S).")
  if posedirs.shape[:2] != (num_verts, 3) or posedirs.shape[2] not in (0, 9 * (num_joints - 1)):
    raise errors.InputError(f"Body model file {path}: 'posedirs' has shape {posedirs.shape}, expected "
                            f"({num_verts}, 3, {9 * (num_joints - 1)}) or (V, 3, 0).")

  joint_names = _default_joint_names(num_joints)
  if "part_ids" in data:
    part_ids = _array(data, "part_ids", path, np.int32, 1)
    part_names = tuple(str(n) for n in np.asarray(data.get("part_names", [])).tolist())
    if part_ids.shape != (num_verts,) or not part_names or part_ids.min() < 0 or \
        part_ids.max() >= len(part_names):
      raise errors.InputError(f"Body model file {path}: 'part_ids' must be ({num_verts},) indices into 'part_names'.")
  else:
    part_ids = np.argmax(weights, axis=1).astype(np.int32)
    part_names = joint_names

  return BodyModel(v_template=v_template, faces=faces.astype(np.int32), weights=weights, shapedirs=shapedirs,
                   posedirs=posedirs, parents=parents, J_regressor=regressor, part_ids=part_ids,
                   part_names=part_names, joint_names=joint_names)


def save_body_model(model: BodyModel, path: str | Path, **extra) -> Path:
  """Writes `model` as an SMPL-format .npz that `load_body_model` reads back (atomically).

  Args:
    model: the body model.
    path: destination .npz.
    **extra: further arrays stored beside the model's (e.g. the fit's report).
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  parents = np.asarray(model.parents, np.int64)
  with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as f:
    np.savez(f, v_template=np.asarray(model.v_template, np.float32), f=np.asarray(model.faces, np.int32),
             weights=np.asarray(model.weights, np.float32), shapedirs=np.asarray(model.shapedirs, np.float32),
             posedirs=np.asarray(model.posedirs, np.float32),
             kintree_table=np.stack([parents, np.arange(parents.size)]),
             J_regressor=np.asarray(model.J_regressor, np.float32), part_ids=np.asarray(model.part_ids),
             part_names=np.asarray(model.part_names), **extra)
  os.replace(f.name, path)
  return path
