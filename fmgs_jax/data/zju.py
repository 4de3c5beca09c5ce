"""ZJU-MoCap (subjects 377, 386, 387, 392, 393, 394) in the raw release layout.

Supported files (one CoreView_<id> folder):

    annots.npy          dict: cams: {K: [C x (3, 3)], R: [C x (3, 3)], T: [C x (3, 1)] millimetres,
                        D: [C x (5, 1)]}; ims: [N x {ims: [C relative image paths]}]
    Camera_B1/000000.jpg ...   images, as listed in annots.npy (any sub-folder naming)
    mask_cihp/Camera_B1/000000.png or mask/Camera_B1/000000.png   masks (non-zero = foreground)
    new_params/{i}.npy  dict: poses (1, 72), Rh (1, 3), Th (1, 3), shapes (1, 10); i = image number

The body is x_world = R(Rh) body_model(poses, shapes) + Th (EasyMocap); the
reader folds [R(Rh) | Th] into each camera (`cameras.fold_global_transform`)
so frames carry pose = poses, transl = 0. Images and masks are undistorted
with D when loaded. Monocular protocol: `train` is `data.train_camera` over
`data.frames.train`; `novel_view` is `data.novel_view_cameras` (default:
all others) over `data.frames.novel_view`; `novel_pose` is
`data.novel_pose_cameras` over `data.frames.novel_pose`. Not supported: the
one-based `params/` numbering of subjects 313 and 315.
"""

import os
from typing import Any

import numpy as np

from fmgs_jax.data import cameras
from fmgs_jax.data import dataset as dataset_lib
from fmgs_jax.data import validation


def _load_annots(problems: validation.Problems, path: str):
  if not validation.check_file(problems, path, "annots"):
    return None
  try:
    annots = np.load(path, allow_pickle=True).item()
    cams = annots["cams"]
    ims = annots["ims"]
    _ = (cams["K"], cams["R"], cams["T"])
  except Exception as e:  # pickle / KeyError / AttributeError on a wrong file
    problems.error(path, f"expected a dict with cams {{K, R, T, D}} and ims ({e!r})")
    return None
  return annots


def _mask_dir(root: str, choice: str) -> str:
  if choice == "auto":
    return "mask_cihp" if os.path.isdir(os.path.join(root, "mask_cihp")) else "mask"
  return choice


def load(data_config: Any, split: str, root: str) -> dataset_lib.Dataset:
  """Loads one split of a ZJU-MoCap subject folder (see module docstring)."""
  problems = validation.Problems(dataset=root)
  if split not in ("train", "novel_view", "novel_pose"):
    raise validation.DatasetError(f"Dataset {root}: ZJU-MoCap defines the splits train, novel_view "
                                  f"and novel_pose, not '{split}'")
  if not os.path.isdir(root):
    raise validation.DatasetError(f"{root}: dataset folder not found; set --config.data.root")
  annots_path = os.path.join(root, "annots.npy")
  annots = _load_annots(problems, annots_path)
  if annots is None:
    problems.raise_if_any(0, 1.0)
  cams, ims = annots["cams"], annots["ims"]
  num_cams = len(cams["K"])
  for key in ("R", "T"):
    if len(cams[key]) != num_cams:
      problems.error(annots_path, f"cams.{key}: {len(cams[key])} cameras but cams.K has {num_cams}")
  if split == "train":
    cam_ids = [int(data_config.train_camera)]
    field = "data.train_camera"
  elif split == "novel_view":
    cam_ids = [int(c) for c in data_config.novel_view_cameras] or [
        c for c in range(num_cams) if c != int(data_config.train_camera)]
    field = "data.novel_view_cameras"
  else:
    cam_ids = [int(c) for c in data_config.novel_pose_cameras]
    field = "data.novel_pose_cameras"
  for c in cam_ids:
    if not 0 <= c < num_cams:
      problems.error("config", f"{field}: camera {c} out of range; {annots_path} has {num_cams} cameras")
  selected = dataset_lib.select_frames(len(ims), data_config.frames[split], f"data.frames.{split}",
                                       problems)
  problems.raise_if_any(0, 1.0)

  mask_dir = _mask_dir(root, data_config.zju_mask_dir)
  D_all = cams.get("D")
  records = []
  params_cache = {}
  for c in cam_ids:
    K = np.asarray(cams["K"][c], np.float64)
    E = np.eye(4)
    E[:3, :3] = np.asarray(cams["R"][c], np.float64)
    E[:3, 3] = np.asarray(cams["T"][c], np.float64).reshape(3) / 1000.0  # millimetres -> metres
    D = None if D_all is None else np.asarray(D_all[c], np.float64).reshape(-1)
    for i in selected:
      frame_ims = ims[i]["ims"]
      if c >= len(frame_ims):
        problems.error(annots_path, f"ims[{i}].ims: {len(frame_ims)} images, no camera {c}")
        continue
      rel = str(frame_ims[c])
      image_path = os.path.join(root, rel)
      mask_path = os.path.join(root, mask_dir, os.path.splitext(rel)[0] + ".png")
      frame_id = int(os.path.splitext(os.path.basename(rel))[0])
      params_path = os.path.join(root, "new_params", f"{frame_id}.npy")
      if params_path not in params_cache:
        params_cache[params_path] = _load_params(problems, params_path)
      params = params_cache[params_path]
      if params is None:
        continue
      records.append(dataset_lib.FrameRecord(
          image_path=image_path, mask_path=mask_path, mask_nonzero=True, K=K, D=D,
          world_to_camera=cameras.fold_global_transform(E, params["Rh"], params["Th"]),
          betas=params["shapes"], pose=params["poses"].reshape(24, 3), transl=np.zeros(3),
          frame_index=frame_id, camera_index=c, pose_source=params_path,
          camera_source=f"{annots_path} cams[K|R|T][{c}]"))
  return dataset_lib.make_dataset("zju", split, root, records, data_config, problems)


def _load_params(problems: validation.Problems, path: str):
  """poses (72,), Rh (3,), Th (3,), shapes (S,) float64 from a new_params file, or None."""
  if not validation.check_file(problems, path, "SMPL parameters"):
    return None
  try:
    p = np.load(path, allow_pickle=True).item()
  except Exception as e:
    problems.error(path, f"unreadable SMPL parameters ({e!r})")
    return None
  out = {}
  for key, size in (("poses", 72), ("Rh", 3), ("Th", 3), ("shapes", None)):
    if key not in p:
      problems.error(path, f"{key}: missing field (has {sorted(p)})")
      return None
    a = np.asarray(p[key], np.float64).reshape(-1)
    if size is not None and a.size != size:
      problems.error(path, f"{key}: {a.size} values, expected {size}")
      return None
    out[key] = a
  return out
