"""Built-in body template: mannequin-x's 'wooden' mannequin converted to an SMPL-format file.

mannequin-x (PyPI `mannequin-x`, Apache-2.0) ships a skinned, human-shaped
mesh (24,256 vertices, 16 named parts) on a 54-joint SMPL-X-like skeleton
whose first 24 joints follow SMPL's order, driven by SMPL-X pose and shape
parameters. The conversion (`convert_mannequin`) writes what an SMPL file
holds, and `builtin_body_model` then reads it with `load_body_model`, the same
code path as a real SMPL file:

* v_template: the mannequin's own rest pose (`Mannequin.vertices` of its rest
  parameters). Its rest pose is a T-pose with identity joint rotations, i.e.
  SMPL's zero pose, except the fingers, which mannequin poses with SMPL-X's
  relaxed hand mean; that finger pose is baked into v_template (the fingers
  have no joints of their own here), so our zero pose equals mannequin's.
* joints: the first 24 (SMPL order). Mannequin's L_Hand / R_Hand joints sit at
  the wrists (SMPL-X has no hand joint) and mannequin never rotates them; here
  pose[22], pose[23] rotate them like SMPL's.
* weights: the skinning mannequin's runtime uses (its 4 strongest of the 8
  stored influences, renormalised, and rigid parts bound with weight 1 to one
  joint), with every finger joint's weight merged into its SMPL ancestor (the
  hand joint). Fingers follow the hand rigidly in both, so this is exact.
* shapedirs: mannequin reshapes with the ten SMPL-X betas; its rest joints are
  exactly linear in them and its vertices nearly so. We take the linear
  response by central differences (+-1) at betas = 0; the largest vertex
  error of that linear model against mannequin's own reshaping is measured on
  random betas ~ N(0, 1) and stored in the file (`shape_fit_max_error_m`: under
  1 mm at the worst vertex for betas ~ N(0, 1), up to ~5 mm past 1.5 sd).
* J_regressor: per joint, affine weights on its 128 nearest rest vertices that
  reproduce the rest joint exactly (float round-off) and, in the least-squares
  sense, its linear shape response. Mannequin keeps the torso shell rigid (a
  similarity) under reshaping while SMPL-X's spine joints move otherwise, so
  shaped joints differ from mannequin's by up to ~6 mm (spine) for betas ~ N(0, 1).
* posedirs: none (mannequin has no pose correctives).
* part_ids / part_names: mannequin's 16 named skin parts.

The converted file is cached under $FMGS_JAX_CACHE (default ~/.cache/fmgs_jax).
"""

from __future__ import annotations

import os
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from fmgs_jax.body.model import BodyModel, load_body_model

NUM_JOINTS = 24
NUM_BETAS = 10
REGRESSOR_NEIGHBOURS = 128
EXACT_SCALE = 1e3  # weight of the exact rest-joint rows in the regressor fit
SMOOTHNESS = 1e-3  # weight of the pull towards uniform neighbour weights
FORMAT_VERSION = 1  # bump when the conversion changes, so stale caches are rebuilt


def cache_dir() -> Path:
  """Directory of cached converted models: $FMGS_JAX_CACHE or ~/.cache/fmgs_jax."""
  return Path(os.environ.get("FMGS_JAX_CACHE") or Path.home() / ".cache" / "fmgs_jax")


def builtin_path() -> Path:
  version = metadata.version("mannequin-x")
  return cache_dir() / f"mannequin_wooden_smpl_v{FORMAT_VERSION}_mannequin-x-{version}.npz"


def _rest(mannequin_model, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mannequin's rest vertices (V, 3) and all rest joints (54, 3), float64, for shape `betas`."""
  mannequin_model.reshape(np.asarray(betas, np.float32))
  vertices = mannequin_model.vertices(mannequin_model.rest_pose()).astype(np.float64)
  joints = np.asarray(mannequin_model._identity["skin_bind_positions"], np.float64)  # pylint: disable=protected-access
  return vertices, joints


def _regressor(v_template: np.ndarray, shapedirs: np.ndarray, joints: np.ndarray,
               joint_dirs: np.ndarray) -> np.ndarray:
  """(J, V) regressor exactly reproducing `joints` and their shape response `joint_dirs` (J, 3, S)."""
  num_verts = v_template.shape[0]
  regressor = np.zeros((joints.shape[0], num_verts), np.float64)
  for j in range(joints.shape[0]):
    near = np.argsort(np.linalg.norm(v_template - joints[j], axis=1))[:REGRESSOR_NEIGHBOURS]
    # Weights w (k,): sum w = 1 and w @ V = J (hard, scaled up), w @ D_s = dJ_s for each beta s (soft:
    # the nearest vertices need not span every joint's shape response), and a small pull towards the
    # mean of the neighbours that keeps the weights bounded.
    exact = np.concatenate([np.ones((1, near.size)), v_template[near].T], axis=0)
    soft = shapedirs[near].transpose(1, 2, 0).reshape(-1, near.size)
    a = np.concatenate([EXACT_SCALE * exact, soft, SMOOTHNESS * np.eye(near.size)], axis=0)
    w0 = np.full(near.size, 1.0 / near.size)
    b = np.concatenate([EXACT_SCALE * np.concatenate([[1.0], joints[j]]), joint_dirs[j].reshape(-1),
                        SMOOTHNESS * w0])
    regressor[j, near] = np.linalg.lstsq(a, b, rcond=None)[0]
  return regressor


def convert_mannequin(path: Path, seed: int = 0) -> Path:
  """Converts mannequin-x 'wooden' into an SMPL-format .npz at `path` (see the module docstring)."""
  import mannequin  # pylint: disable=g-import-not-at-top

  model = mannequin.Mannequin("wooden")
  source = model._weights  # pylint: disable=protected-access
  parents_all = np.asarray(model.parents)
  if not np.array_equal(parents_all[:NUM_JOINTS], [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14,
                                                   16, 17, 18, 19, 20, 21]):
    raise ValueError(f"mannequin-x {metadata.version('mannequin-x')}: the first 24 joints no longer follow "
                     f"SMPL's kinematic tree (parents {parents_all[:NUM_JOINTS].tolist()}).")

  v_template, joints_all = _rest(model, np.zeros(NUM_BETAS))
  dirs, joint_dirs = [], []
  for s in range(NUM_BETAS):
    e = np.zeros(NUM_BETAS)
    e[s] = 1.0
    v_plus, j_plus = _rest(model, e)
    v_minus, j_minus = _rest(model, -e)
    dirs.append((v_plus - v_minus) / 2.0)
    joint_dirs.append((j_plus - j_minus) / 2.0)
  shapedirs = np.stack(dirs, axis=-1)
  joint_dirs = np.stack(joint_dirs, axis=-1)[:NUM_JOINTS]
  rng = np.random.default_rng(seed)
  fit_error = 0.0
  for _ in range(4):
    betas = rng.normal(size=NUM_BETAS)
    vertices, _ = _rest(model, betas)
    fit_error = max(fit_error, float(np.linalg.norm(vertices - v_template - shapedirs @ betas, axis=1).max()))

  # Dense weights over all 54 joints, as mannequin's runtime skins, then fingers merged into the hands.
  indices = np.asarray(model._skin_joint_indices)  # pylint: disable=protected-access
  values = np.asarray(model._skin_weights, np.float64)  # pylint: disable=protected-access
  ancestor = np.arange(parents_all.size)
  for j in range(NUM_JOINTS, parents_all.size):
    ancestor[j] = ancestor[parents_all[j]]
  weights = np.zeros((v_template.shape[0], NUM_JOINTS), np.float64)
  np.add.at(weights, (np.repeat(np.arange(indices.shape[0]), indices.shape[1]), ancestor[indices].reshape(-1)),
            values.reshape(-1))
  weights /= weights.sum(axis=1, keepdims=True)

  regressor = _regressor(v_template, shapedirs, joints_all[:NUM_JOINTS], joint_dirs)

  part_ids = np.zeros(v_template.shape[0], np.int32)
  for k, (start, count) in enumerate(zip(source.skin_part_vertex_starts, source.skin_part_vertex_counts)):
    part_ids[start:start + count] = k

  path.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as f:
    np.savez(f, v_template=v_template.astype(np.float32), f=np.asarray(model.faces, np.int32),
             weights=weights.astype(np.float32), shapedirs=shapedirs.astype(np.float32),
             posedirs=np.zeros((v_template.shape[0], 3, 0), np.float32),
             kintree_table=np.stack([parents_all[:NUM_JOINTS], np.arange(NUM_JOINTS)]).astype(np.int64),
             J_regressor=regressor.astype(np.float32), part_ids=part_ids,
             part_names=np.asarray(source.skin_part_names), shape_fit_max_error_m=np.float32(fit_error),
             source=np.asarray(f"mannequin-x {metadata.version('mannequin-x')} wooden"))
  os.replace(f.name, path)  # atomic: a crash never leaves a half-written cache behind
  return path


def builtin_body_model() -> BodyModel:
  """The built-in template (mannequin-x 'wooden' as an SMPL-format model, 24 joints, 10 betas).

  Converted on first use and cached as an .npz under $FMGS_JAX_CACHE or
  ~/.cache/fmgs_jax, then read by `load_body_model` like any SMPL file.
  """
  path = builtin_path()
  if not path.exists():
    try:
      convert_mannequin(path)
    except OSError as e:
      raise OSError(f"Cannot write the built-in body model cache {path}: {e}. Set FMGS_JAX_CACHE to a "
                    "writable directory.") from e
  return load_body_model(path)
