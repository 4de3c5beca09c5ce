"""A single-camera video prepared in HumanNeRF's folder layout.

Supported files (one folder):

    images/{frame_name}.png     colour frames (frame names sorted)
    masks/{frame_name}.png      masks, 0..255 (scaled to [0, 1])
    cameras.pkl                 {frame_name: {intrinsics (3, 3), extrinsics (4, 4) world->camera metres,
                                 distortions (5,) optional}}
    mesh_infos.pkl              {frame_name: {poses (72,), Rh (3,), Th (3,), betas (10,) optional,
                                 tpose_joints (24, 3) optional, ...}}
    canonical_joints.pkl        {joints (24, 3)} optional: the subject's SMPL rest joints (else the
                                 first frame's `tpose_joints`); the subject fit retargets onto them

As for ZJU-MoCap, the body is x_world = R(Rh) body_model(poses) + Th and
[R(Rh) | Th] is folded into the camera (pose = poses, transl = 0).
Not supported: HumanNeRF's own preparation scripts store no shape
coefficients (only `canonical_joints.pkl`, from which betas cannot be read
back without the SMPL model); when `mesh_infos.pkl` has no `betas`, zeros are
used and a warning says so. Splits: `train` and `novel_pose` select frames
with `data.frames.*`; there is one camera, so no `novel_view`.
"""

import os
import pickle
from typing import Any

from absl import logging
import numpy as np

from fmgs_jax.data import cameras
from fmgs_jax.data import dataset as dataset_lib
from fmgs_jax.data import validation


def _pickle(problems: validation.Problems, path: str):
  if not validation.check_file(problems, path, "file"):
    return None
  try:
    with open(path, "rb") as f:
      return pickle.load(f)
  except Exception as e:  # pickle raises many types
    problems.error(path, f"unreadable pickle ({e!r})")
    return None


def load(data_config: Any, split: str, root: str) -> dataset_lib.Dataset:
  """Loads one split of a HumanNeRF-layout folder (see module docstring)."""
  if split not in ("train", "novel_pose"):
    raise validation.DatasetError(f"Dataset {root}: a HumanNeRF-style folder has one camera and the "
                                  f"splits train and novel_pose, not '{split}'")
  if not os.path.isdir(root):
    raise validation.DatasetError(f"{root}: dataset folder not found; set --config.data.root")
  problems = validation.Problems(dataset=root)
  cam_path = os.path.join(root, "cameras.pkl")
  mesh_path = os.path.join(root, "mesh_infos.pkl")
  cams = _pickle(problems, cam_path)
  infos = _pickle(problems, mesh_path)
  image_dir = os.path.join(root, "images")
  names = sorted(os.path.splitext(f)[0] for f in os.listdir(image_dir)
                 if f.endswith(".png")) if os.path.isdir(image_dir) else []
  if not names:
    problems.error(image_dir, "images: no *.png files found")
  problems.raise_if_any(0, 1.0)
  for what, table, path in (("cameras", cams, cam_path), ("mesh infos", infos, mesh_path)):
    missing = [n for n in names if n not in table]
    if missing:
      problems.error(path, f"{len(missing)} of {len(names)} frames have no {what} "
                     f"(first: '{missing[0]}'); the frame counts must agree")
  masks = [f for f in os.listdir(os.path.join(root, "masks"))] if os.path.isdir(
      os.path.join(root, "masks")) else []
  if len(masks) != len(names):
    problems.error(os.path.join(root, "masks"), f"{len(masks)} masks but {len(names)} images; the "
                   "frame counts must agree")
  selected = dataset_lib.select_frames(len(names), data_config.frames[split], f"data.frames.{split}",
                                       problems)
  problems.raise_if_any(0, 1.0)
  no_betas = 0
  records = []
  for k in selected:
    name = names[k]
    cam, info = cams[name], infos[name]
    where = f"{mesh_path} ['{name}']"
    try:
      K = np.asarray(cam["intrinsics"], np.float64)
      E = np.asarray(cam["extrinsics"], np.float64)
      poses = np.asarray(info["poses"], np.float64).reshape(72)
      Rh = np.asarray(info["Rh"], np.float64).reshape(3)
      Th = np.asarray(info["Th"], np.float64).reshape(3)
    except (KeyError, ValueError) as e:
      problems.error(f"{cam_path} / {where}", f"missing or malformed field ({e!r})")
      continue
    if E.shape != (4, 4):
      problems.error(f"{cam_path} ['{name}']", f"extrinsics: shape {E.shape}, expected (4, 4)")
      continue
    if "betas" in info:
      betas = np.asarray(info["betas"], np.float64).reshape(-1)
    else:
      betas = np.zeros(10)
      no_betas += 1
    D = cam.get("distortions")
    records.append(dataset_lib.FrameRecord(
        image_path=os.path.join(image_dir, f"{name}.png"),
        mask_path=os.path.join(root, "masks", f"{name}.png"), mask_nonzero=False, K=K,
        D=None if D is None else np.asarray(D, np.float64).reshape(-1),
        world_to_camera=cameras.fold_global_transform(E, Rh, Th), betas=betas,
        pose=poses.reshape(24, 3), transl=np.zeros(3), frame_index=k, camera_index=0,
        pose_source=where, camera_source=f"{cam_path} ['{name}']"))
  if no_betas:
    logging.warning("%s: %d frames have no 'betas'; using zero shape coefficients.", mesh_path, no_betas)
  rest = _rest_joints(problems, root, infos, names)
  ds = dataset_lib.make_dataset("humannerf", split, root, records, data_config, problems)
  ds.rest_joints = rest
  return ds


def _rest_joints(problems: validation.Problems, root: str, infos: dict, names: list[str]):
  """(24, 3) SMPL rest joints from canonical_joints.pkl, else the first frame's `tpose_joints`, else None."""
  path = os.path.join(root, "canonical_joints.pkl")
  if os.path.isfile(path):
    table = _pickle(problems, path)
    where, value = f"{path} ['joints']", None if not isinstance(table, dict) else table.get("joints")
  elif names and isinstance(infos.get(names[0]), dict) and "tpose_joints" in infos[names[0]]:
    where, value = f"{os.path.join(root, 'mesh_infos.pkl')} ['{names[0]}']['tpose_joints']", infos[names[0]]["tpose_joints"]
  else:
    return None
  try:
    joints = np.asarray(value, np.float64)
  except (TypeError, ValueError):
    joints = np.zeros(0)
  if joints.shape != (24, 3) or not np.all(np.isfinite(joints)):
    problems.error(where, f"rest joints: expected (24, 3) finite metres, got shape {joints.shape}")
    problems.raise_if_any(0, 1.0)
  return joints
