"""The prepared video written in HumanNeRF's layout (read by fmgs_jax/data/humannerf.py unchanged).

    images/frame_{k:06d}.png   frames (k = the frame's index in the input video)
    masks/frame_{k:06d}.png    person masks, 0 / 255
    cameras.pkl                {name: {intrinsics (3, 3) OpenCV pixel centres, extrinsics (4, 4) identity,
                                distortions (5,) zeros}}
    mesh_infos.pkl             {name: {poses (72,) (root zero), Rh (3,), Th (3,), betas (S,), joints (24, 3)
                                posed, tpose_joints (24, 3)}}
    canonical_joints.pkl       {joints (24, 3)}: the fitted body's rest joints

As HumanNeRF stores them, the global orientation is in `Rh` (poses[:3] = 0) and
x_world = R(Rh) x_body + Th with x_body posed about the rest root j0; a fit posed as
forward(pose, transl) (root rotation about j0, then + transl) is the same body with
Rh = pose[0], Th = j0 - R(Rh) j0 + transl. `betas` are the built-in template's shape coefficients.
"""

from __future__ import annotations

import os
import pickle
import shutil

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np

from fmgs_jax import body as body_lib
from fmgs_jax.data import cameras as cameras_lib
from fmgs_jax.prepare import camera as camera_lib


def frame_name(source_index: int) -> str:
  return f"frame_{int(source_index):06d}"


def humannerf_params(model: body_lib.BodyModel, betas: np.ndarray, pose: np.ndarray,
                     transl: np.ndarray) -> dict:
  """HumanNeRF's per-frame fields of bodies posed as forward(model, betas, pose[i], transl[i]).

  Args:
    pose: (N, 24, 3) axis-angle, pose[:, 0] the global orientation; transl: (N, 3) metres.
  Returns:
    dict of (N, ...) float32: poses (72,), Rh, Th (3,), joints (24, 3) posed (world metres),
    and tpose_joints (24, 3) (the rest joints of `betas`).
  """
  betas = jnp.asarray(betas, jnp.float32)
  rest_j = jnp.asarray(model.J_regressor) @ body_lib.rest_vertices(model, betas)
  rest = np.asarray(rest_j, np.float64)
  # Joints only (the kinematic chain, no skinning of the mesh): forward(...).joints without its cost.
  posed = jax.jit(jax.vmap(lambda p, t: body_lib.lbs.global_transforms(
      np.asarray(model.parents), body_lib.axis_angle_to_matrix(p), rest_j)[:, :3, 3] + t))(
          jnp.asarray(pose, jnp.float32), jnp.asarray(transl, jnp.float32))
  R = cameras_lib.axis_angle_to_matrix(np.asarray(pose[:, 0], np.float64))
  j0 = rest[0]
  Th = j0[None] - np.einsum("nab,b->na", R, j0) + np.asarray(transl, np.float64)
  poses = np.array(pose, np.float32).reshape(len(pose), 72)
  poses[:, :3] = 0.0
  return {"poses": poses, "Rh": np.asarray(pose[:, 0], np.float32), "Th": Th.astype(np.float32),
          "joints": np.asarray(posed, np.float32), "tpose_joints": rest.astype(np.float32)}


def write_dataset(root: str, images: np.ndarray, masks: np.ndarray, source_index: np.ndarray, K: np.ndarray,
                  model: body_lib.BodyModel, betas: np.ndarray, pose: np.ndarray, transl: np.ndarray,
                  principal_point_shift: float = 0.5) -> list[str]:
  """Writes the dataset (module docstring) into `root`, replacing its images/ and masks/; returns the names.

  Args:
    images: (N, H, W, 3) uint8; masks: (N, H, W) bool; source_index: (N,) int.
    K: (3, 3) intrinsics, fmgs-jax convention (stored with OpenCV's centres: minus the shift the
      reader adds back, `data.principal_point_shift`).
    model, betas, pose (N, 24, 3), transl (N, 3): the fitted bodies (world = camera frame).
  """
  for sub in ("images", "masks"):
    shutil.rmtree(os.path.join(root, sub), ignore_errors=True)
    os.makedirs(os.path.join(root, sub))
  names = [frame_name(k) for k in source_index]
  params = humannerf_params(model, betas, pose, transl)
  K_file = camera_lib.to_opencv(K, principal_point_shift)
  cams, infos = {}, {}
  for i, name in enumerate(names):
    iio.imwrite(os.path.join(root, "images", name + ".png"), images[i])
    iio.imwrite(os.path.join(root, "masks", name + ".png"), (masks[i] > 0).astype(np.uint8) * 255)
    cams[name] = {"intrinsics": K_file, "extrinsics": np.eye(4), "distortions": np.zeros(5)}
    infos[name] = {"poses": params["poses"][i], "Rh": params["Rh"][i], "Th": params["Th"][i],
                   "betas": np.asarray(betas, np.float32), "joints": params["joints"][i],
                   "tpose_joints": params["tpose_joints"]}
  for file, table in (("cameras.pkl", cams), ("mesh_infos.pkl", infos),
                      ("canonical_joints.pkl", {"joints": params["tpose_joints"]})):
    with open(os.path.join(root, file), "wb") as f:
      pickle.dump(table, f)
  return names
