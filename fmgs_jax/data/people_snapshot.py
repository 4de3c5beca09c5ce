"""PeopleSnapshot in the preprocessed layout of InstantAvatar / 3DGS-Avatar / GaussianAvatar.

Supported files (one subject folder, one camera):

    cameras.npz        intrinsic (3, 3), extrinsic (4, 4) world->camera (metres), height, width
    images/image_%04d.png   (any *.png / *.jpg, sorted by name)
    masks/mask_%04d.npy     (H, W) bool / float in [0, 1] / uint8 0..255 (sorted by name)
    poses.npz          betas (10,) or (1, 10); thetas (N, 72) or global_orient (N, 3) + body_pose (N, 69);
                       transl (N, 3)
    poses/anim_nerf_{train,val,test}.npz   optional refined poses of exactly that split's frames
                       (betas, global_orient, body_pose, transl), used when data.refined_poses is set

fmgs-jax extensions, written by the synthetic generator and read only when present:

    cameras.npz        intrinsic (N, 3, 3), extrinsic (N, 4, 4) per image, camera_ids (N,)
    poses.npz          frame_ids (N,): the frame id of each image (default: its index)
    depth/depth_%04d.npy, normals/normal_%04d.npy, parts/parts_%04d.npy   ground truth (see Frame)
    gt_mesh.npz        faces (F, 3), vertices (M, V, 3) world metres, frame_ids (M,)

Frames are the sorted images; splits select them with `c.data.frames.<split>`
(the standard per-subject ranges are in configs/people_snapshot.py). There is
one camera, so there is no novel-view split; novel poses are the test frames.
"""

import glob
import os
from typing import Any, Optional

import numpy as np

from fmgs_jax.data import dataset as dataset_lib
from fmgs_jax.data import validation

_SPLIT_FILES = {"train": "train", "val": "val", "test": "test", "novel_pose": "test"}


def _sorted_files(folder: str, patterns: tuple[str, ...]) -> list[str]:
  files = []
  for p in patterns:
    files += glob.glob(os.path.join(folder, p))
  return sorted(files)


def _npz(problems: validation.Problems, path: str) -> Optional[dict[str, np.ndarray]]:
  if not validation.check_file(problems, path, "file"):
    return None
  try:
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in z.files}
  except Exception as e:  # zipfile / ValueError on corrupt archives
    problems.error(path, f"unreadable npz ({e})")
    return None


def _field(problems: validation.Problems, path: str, z: dict[str, np.ndarray], key: str,
           shape: tuple[Optional[int], ...]) -> Optional[np.ndarray]:
  """z[key] as float64 with the given shape (None = any size); records a problem otherwise."""
  if key not in z:
    problems.error(path, f"{key}: missing field (has {sorted(z)})")
    return None
  a = np.asarray(z[key], np.float64)
  if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
    problems.error(path, f"{key}: shape {a.shape}, expected {tuple('N' if s is None else s for s in shape)}")
    return None
  return a


def _read_poses(problems: validation.Problems, path: str) -> Optional[dict[str, np.ndarray]]:
  """betas (S,), pose (N, 24, 3), transl (N, 3) and optional frame_ids from a poses file."""
  z = _npz(problems, path)
  if z is None:
    return None
  if "betas" not in z:
    problems.error(path, f"betas: missing field (has {sorted(z)})")
    return None
  betas = np.asarray(z["betas"], np.float64)
  betas = betas.reshape(-1) if betas.ndim == 1 or betas.shape[0] == 1 else betas[0]
  if "thetas" in z:
    thetas = _field(problems, path, z, "thetas", (None, 72))
  else:
    go = _field(problems, path, z, "global_orient", (None, 3))
    bp = _field(problems, path, z, "body_pose", (None, 69))
    thetas = None if go is None or bp is None else np.concatenate([go, bp], axis=1)
    if go is not None and bp is not None and len(go) != len(bp):
      problems.error(path, f"global_orient has {len(go)} frames but body_pose {len(bp)}")
      return None
  transl = _field(problems, path, z, "transl", (None, 3))
  if thetas is None or transl is None:
    return None
  if len(thetas) != len(transl):
    problems.error(path, f"pose fields have {len(thetas)} frames but transl {len(transl)}")
    return None
  out = dict(betas=betas, pose=thetas.reshape(-1, 24, 3), transl=transl)
  if "frame_ids" in z:
    out["frame_ids"] = np.asarray(z["frame_ids"]).astype(np.int64).reshape(-1)
  return out


def read_folder(root: str, split: str, frames: Any, frames_field: str, data_config: Any,
                problems: validation.Problems, refined_split: Optional[str] = None
                ) -> list[dataset_lib.FrameRecord]:
  """Frame records of a PeopleSnapshot-layout folder.

  Args:
    root: the folder (cameras.npz, images/, masks/, poses.npz, ...).
    split: split name, for messages.
    frames: (start, stop, step) over the sorted images.
    frames_field: config field name of `frames`, for messages.
    data_config: `c.data`.
    problems: where problems are recorded.
    refined_split: read poses/anim_nerf_{refined_split}.npz when it exists.
  """
  del split
  cam_path = os.path.join(root, "cameras.npz")
  pose_path = os.path.join(root, "poses.npz")
  images = _sorted_files(os.path.join(root, "images"), ("*.png", "*.jpg", "*.jpeg"))
  masks = _sorted_files(os.path.join(root, "masks"), ("*.npy",))
  if not os.path.isdir(root):
    problems.error(root, "dataset folder not found; set --config.data.root")
    return []
  if not images:
    problems.error(os.path.join(root, "images"), "images: no *.png / *.jpg files found")
  if not masks:
    problems.error(os.path.join(root, "masks"), "masks: no *.npy files found")
  cams = _npz(problems, cam_path)
  poses = _read_poses(problems, pose_path)
  if cams is None or poses is None or not images or not masks:
    return []
  n = len(images)
  if len(masks) != n:
    problems.error(os.path.join(root, "masks"), f"{len(masks)} masks but {n} images in "
                   f"{os.path.join(root, 'images')}; the frame counts must agree")
  if len(poses["pose"]) != n:
    problems.error(pose_path, f"thetas/transl: {len(poses['pose'])} frames but {n} images in "
                   f"{os.path.join(root, 'images')}; the frame counts must agree")
  K = cams.get("intrinsic")
  E = cams.get("extrinsic")
  for key, arr, shape in (("intrinsic", K, (3, 3)), ("extrinsic", E, (4, 4))):
    if arr is None:
      problems.error(cam_path, f"{key}: missing field (has {sorted(cams)})")
    elif arr.shape != shape and arr.shape != (n,) + shape:
      problems.error(cam_path, f"{key}: shape {arr.shape}, expected {shape} or ({n}, *{shape})")
  if problems.errors:
    return []
  per_image = np.ndim(K) == 3 or np.ndim(E) == 3
  K = np.broadcast_to(np.asarray(K, np.float64), (n, 3, 3))
  E = np.broadcast_to(np.asarray(E, np.float64), (n, 4, 4))
  camera_ids = np.asarray(cams.get("camera_ids", np.zeros(n)), np.int64).reshape(-1)
  for key in ("height", "width"):
    if key in cams:
      expected = int(np.asarray(cams[key]).reshape(-1)[0])
      try:
        size = validation.image_size(images[0])
      except Exception:  # unreadable first image: reported per frame later
        size = None
      if size is not None and size[0 if key == "height" else 1] != expected:
        problems.error(cam_path, f"{key}: {expected} but {images[0]} is {size[1]}x{size[0]} (WxH)")
  frame_ids = poses.get("frame_ids", np.arange(n))
  selected = dataset_lib.select_frames(n, frames, frames_field, problems)
  pose_src = {k: (pose_path, poses["pose"][k], poses["transl"][k]) for k in selected}
  betas = poses["betas"]
  refined_path = os.path.join(root, "poses", f"anim_nerf_{refined_split}.npz") if refined_split else ""
  if refined_path and data_config.refined_poses and os.path.isfile(refined_path):
    refined = _read_poses(problems, refined_path)
    if refined is not None:
      if len(refined["pose"]) != len(selected):
        problems.error(refined_path, f"{len(refined['pose'])} refined poses but the split selects "
                       f"{len(selected)} frames with {frames_field}={tuple(frames)}")
      else:
        betas = refined["betas"]
        pose_src = {k: (refined_path, refined["pose"][j], refined["transl"][j])
                    for j, k in enumerate(selected)}
  if problems.errors:
    return []

  def gt(sub: str, stem: str, k: int) -> Optional[str]:
    path = os.path.join(root, sub, f"{stem}_{k:04d}.npy")
    return path if os.path.isdir(os.path.join(root, sub)) else None

  records = []
  for k in selected:
    src, pose, transl = pose_src[k]
    records.append(dataset_lib.FrameRecord(
        image_path=images[k], mask_path=masks[k], mask_nonzero=False, K=K[k], D=None,
        world_to_camera=E[k], betas=betas, pose=pose, transl=transl,
        frame_index=int(frame_ids[k]), camera_index=int(camera_ids[k]),
        pose_source=f"{src} (frame {k})",
        camera_source=f"{cam_path} (image {k})" if per_image else cam_path,
        gt_depth_path=gt("depth", "depth", k), gt_normal_path=gt("normals", "normal", k),
        gt_parts_path=gt("parts", "parts", k)))
  return records


def load(data_config: Any, split: str, root: str) -> dataset_lib.Dataset:
  """Loads one split of a PeopleSnapshot subject folder (see module docstring)."""
  problems = validation.Problems(dataset=root)
  if split == "novel_view":
    raise validation.DatasetError(
        f"Dataset {root}: PeopleSnapshot has a single camera, so there is no 'novel_view' split; "
        "use 'novel_pose' (the test frames), 'val' or 'test'.")
  records = read_folder(root, split, data_config.frames[split], f"data.frames.{split}", data_config,
                        problems, refined_split=_SPLIT_FILES.get(split))
  return dataset_lib.make_dataset("people_snapshot", split, root, records, data_config, problems)
