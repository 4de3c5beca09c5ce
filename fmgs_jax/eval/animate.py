"""`--mode=render`: animate a trained avatar with any SMPL pose sequence.

    python -m fmgs_jax.main --config=configs/synthetic.py --workdir=runs/demo --mode=render \
        --config.render.poses=motion.npz [--config.render.camera=orbit] [--config.render.output=out.mp4]

Each frame is rendered without learned pose refinement (as held-out frames are) and written as
colour | normals | semantics side by side (normals and semantics where the rendered alpha > 0.5).

Pose sequences (`c.render.poses`)
---------------------------------
"" (default): the dataset's novel-pose split (`load_dataset(config.data, "novel_pose")`), each frame
with its own pose, translation and camera (for the synthetic capture, PeopleSnapshot and ZJU-MoCap's
default `novel_pose_cameras` that is the training camera).

`.npz` (or a pickled dict, `.pkl`), N frames, SMPL axis-angle in radians, joint 0 the global orientation:
  one pose field:
    poses          (N, 72) or (N, 24, 3) SMPL; AMASS / SMPL-H (N, 156) or (N, 52, 3) and SMPL-X
                   (N, 165) or (N, 55, 3): the 22 body joints are used and SMPL's two hand joints are
                   set to zero (those columns are finger / jaw / eye joints there, not SMPL's hands)
    thetas         (N, 72) (PeopleSnapshot poses.npz)
    global_orient  (N, 3) with body_pose (N, 69) or (N, 23, 3) (PeopleSnapshot anim_nerf_*.npz),
                   or body_pose (N, 63) / (N, 21, 3) (SMPL-X body joints; hands zero)
  optional placement (at most one of):
    transl / trans (N, 3) metres, the body model's translation in the training capture's world frame,
                   used as given. Without it every frame keeps the first training frame's translation,
                   so the avatar stays in view.
    Rh, Th         (N, 3) EasyMocap / ZJU-MoCap global rotation (axis-angle) and translation applied
                   outside the body model (x = R(Rh) body(poses) + Th). Their motion relative to the
                   sequence's first frame, (G_0^-1 G_k) with G = [R(Rh) | Th], is applied to the avatar
                   at the first training frame's translation: the sequence starts where the avatar
                   was trained and moves and turns as in its source. Either of the two may be absent (0).
  ignored: betas, shapes (the avatar keeps the trained subject's shape), gender, mocap_framerate,
    dmpls, frame_ids, ...; other keys are ignored with a warning.
  A single frame may be given without the N axis ((72,), (3,)).
`.npy`: an (N, 72), (N, 24, 3) or (72,) pose array, or one ZJU-MoCap params dict (as `.npz`).
A folder: ZJU-MoCap `new_params/` or `params/` (or the subject folder holding one of them): one
  `<i>.npy` dict {poses (1, 72), Rh (1, 3), Th (1, 3), shapes} per frame, in numeric order of i.

Pickled files (`.pkl`, dict `.npy`) can run code when loaded: only read files you trust.
Every field is checked (presence, shape, frame count, finite values) before any compute; a problem is
a `PoseFileError` naming the file and field.

Cameras (`c.render.camera`)
---------------------------
train: the camera of the first training frame (intrinsics, extrinsics, image size); with the
  novel-pose split, each frame's own camera.
orbit: that camera turned about its up axis (minus its image y axis) around the body's root joint,
  one full turn over the sequence, 2 pi k / N at frame k; the orbit centre follows the root joint,
  so the camera keeps the subject centred while it moves.

`c.render.frames` = (start, stop, step) selects frames of the sequence (stop -1 = to the end), e.g.
(0, -1, 4) renders 120 fps AMASS motion at 30 fps. `c.render.output`: an `.mp4` path (H.264 through
imageio-ffmpeg, numbered PNGs in `<name>_frames/` when ffmpeg is unavailable) or any other path, a
folder that receives 00000.png, 00001.png, ... ("" = WORKDIR/renders/animation.mp4). Frame rate and
quality: `c.eval.video_fps`, `c.eval.video_quality`; normal colours: `c.eval.normal_convention`.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pickle
from typing import Any, Iterator, Optional

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from fmgs_jax import errors
from fmgs_jax import body as body_lib
from fmgs_jax.data import cameras as cameras_lib
from fmgs_jax.data import load_dataset
from fmgs_jax.eval import visualize

CAMERAS = ("train", "orbit")
NUM_JOINTS = 24  # SMPL
POSE_FIELDS = ("poses", "thetas", "global_orient")  # global_orient comes with body_pose
IGNORED_KEYS = frozenset({
    "betas", "shapes", "gender", "mocap_framerate", "mocap_frame_rate", "dmpls", "frame_ids", "num_betas",
    "surface_model_type", "root_orient", "pose_body", "pose_hand", "pose_jaw", "pose_eye", "markers_latent",
    "latent_labels", "markers_latent_vids", "expression", "jaw_pose", "leye_pose", "reye_pose",
    "left_hand_pose", "right_hand_pose"})
PANEL_LABELS = ("colour", "normals", "semantics")


class PoseFileError(errors.UserError, ValueError):
  """A pose-sequence file that cannot be used; the message names the file and the field."""


@dataclasses.dataclass(frozen=True)
class PoseSequence:
  """A body-pose sequence to render, as read from a file or a dataset split.

  Attributes:
    pose: (N, 24, 3) float32 SMPL axis-angle, radians.
    transl: (N, 3) float32 body-model translation in world metres, or None (= the training frame's).
    global_rot: (N, 3) float64 Rh axis-angle applied outside the body model, or None.
    global_transl: (N, 3) float64 Th metres applied outside the body model, or None.
    K: (N, 3, 3) float32 per-frame intrinsics (dataset splits), or None (= the training camera's).
    world_to_camera: (N, 4, 4) float32 per-frame extrinsics (dataset splits), or None.
    size: (width, height) of the per-frame cameras' images (dataset splits), or None.
    source: where the sequence came from, for messages.
  """
  pose: np.ndarray
  transl: Optional[np.ndarray] = None
  global_rot: Optional[np.ndarray] = None
  global_transl: Optional[np.ndarray] = None
  K: Optional[np.ndarray] = None
  world_to_camera: Optional[np.ndarray] = None
  size: Optional[tuple[int, int]] = None
  source: str = ""

  def __len__(self) -> int:
    return int(self.pose.shape[0])


# ----------------------------------------------------------------------------------------------------
# Reading pose files.


def _numeric(path: str, key: str, value: Any) -> np.ndarray:
  try:
    a = np.asarray(value, dtype=np.float64)
  except (TypeError, ValueError) as e:
    raise PoseFileError(f"{path}: {key}: not a numeric array ({type(value).__name__}: {e})") from None
  return a


def _per_frame(path: str, key: str, a: np.ndarray, widths: dict[tuple[int, ...], int]) -> np.ndarray:
  """Reshapes `a` to (N, J, 3) given accepted trailing shapes -> joint count J; a single frame may
  omit the N axis."""
  for trailing, joints in widths.items():
    if a.shape == trailing:
      a = a[None]
    if a.ndim == len(trailing) + 1 and a.shape[1:] == trailing:
      return a.reshape(a.shape[0], joints, 3)
  accepted = ", ".join(str(("N",) + t) for t in widths)
  raise PoseFileError(f"{path}: {key}: shape {a.shape}, expected one of {accepted}")


def _to_smpl(pose: np.ndarray) -> np.ndarray:
  """(N, J, 3) with J in (21, 22, 23, 24, 52, 55) joints -> (N, 24, 3) SMPL (hand joints zero when absent)."""
  if pose.shape[1] == NUM_JOINTS:
    return pose
  body = pose[:, :22]  # the 22 body joints SMPL, SMPL-H and SMPL-X share
  return np.concatenate([body, np.zeros((pose.shape[0], NUM_JOINTS - body.shape[1], 3))], axis=1)


def _check_finite(path: str, key: str, a: np.ndarray) -> None:
  bad = ~np.isfinite(a)
  if bad.any():
    frame = int(np.argwhere(bad)[0][0])
    raise PoseFileError(f"{path}: {key}: non-finite value (NaN or inf) in frame {frame}")


def sequence_from_dict(fields: dict[str, Any], path: str) -> PoseSequence:
  """Parses a dict of arrays (npz / pkl / ZJU params) into a `PoseSequence`; see the module docstring.

  Args:
    fields: key -> array-like.
    path: the file the dict came from, for messages.

  Raises:
    PoseFileError: no or several pose fields, wrong shapes, frame counts that disagree, non-finite values.
  """
  keys = set(fields)
  present = [k for k in POSE_FIELDS if k in keys]
  if "body_pose" in keys and "global_orient" not in keys:
    raise PoseFileError(f"{path}: body_pose without global_orient; give both (or poses / thetas)")
  if not present:
    raise PoseFileError(f"{path}: no pose field: expected poses, thetas or global_orient + body_pose "
                        f"(the file has {sorted(keys)})")
  if len(present) > 1:
    raise PoseFileError(f"{path}: ambiguous pose fields {present}: keep one")
  key = present[0]
  if key == "poses":
    pose = _per_frame(path, "poses", _numeric(path, key, fields[key]),
                      {(72,): 24, (24, 3): 24, (156,): 52, (52, 3): 52, (165,): 55, (55, 3): 55})
  elif key == "thetas":
    pose = _per_frame(path, "thetas", _numeric(path, key, fields[key]), {(72,): 24, (24, 3): 24})
  else:
    if "body_pose" not in keys:
      raise PoseFileError(f"{path}: global_orient without body_pose (the file has {sorted(keys)})")
    go = _per_frame(path, "global_orient", _numeric(path, "global_orient", fields["global_orient"]),
                    {(3,): 1, (1, 3): 1})
    bp = _per_frame(path, "body_pose", _numeric(path, "body_pose", fields["body_pose"]),
                    {(69,): 23, (23, 3): 23, (63,): 21, (21, 3): 21})
    if len(go) != len(bp):
      raise PoseFileError(f"{path}: global_orient has {len(go)} frames but body_pose {len(bp)}")
    pose = np.concatenate([go, bp], axis=1)
  pose = _to_smpl(pose)
  n = len(pose)
  if n == 0:
    raise PoseFileError(f"{path}: {key}: no frame")
  _check_finite(path, key, pose)

  def vec3(name: str) -> Optional[np.ndarray]:
    if name not in keys:
      return None
    a = _numeric(path, name, fields[name])
    if a.shape == (3,):
      a = a[None]
    if a.ndim != 2 or a.shape[1] != 3:
      raise PoseFileError(f"{path}: {name}: shape {a.shape}, expected (N, 3) with N = {n}")
    if len(a) != n:
      raise PoseFileError(f"{path}: {name} has {len(a)} frames but {key} {n}")
    _check_finite(path, name, a)
    return a

  transl_keys = [k for k in ("transl", "trans") if k in keys]
  if len(transl_keys) > 1:
    raise PoseFileError(f"{path}: ambiguous translation fields {transl_keys}: keep one")
  if transl_keys and ("Rh" in keys or "Th" in keys):
    raise PoseFileError(f"{path}: both {transl_keys[0]} and Rh/Th: give the translation one way")
  transl = vec3(transl_keys[0]) if transl_keys else None
  rh, th = vec3("Rh"), vec3("Th")
  if rh is not None or th is not None:
    rh = np.zeros((n, 3)) if rh is None else rh
    th = np.zeros((n, 3)) if th is None else th
  unknown = keys - set(POSE_FIELDS) - {"body_pose", "transl", "trans", "Rh", "Th"} - IGNORED_KEYS
  if unknown:
    logging.warning("%s: ignoring unknown fields %s", path, sorted(unknown))
  return PoseSequence(pose=pose.astype(np.float32), transl=None if transl is None else transl.astype(np.float32),
                      global_rot=rh, global_transl=th, source=path)


def _load_pickle(path: str) -> Any:
  try:
    with open(path, "rb") as f:
      return pickle.load(f, encoding="latin1")
  except Exception as e:  # pickle raises many types on foreign or corrupt files
    raise PoseFileError(f"{path}: unreadable pickle ({type(e).__name__}: {e})") from None


def _as_dict(path: str, obj: Any) -> dict[str, Any]:
  if isinstance(obj, np.ndarray) and obj.dtype == object and obj.size == 1:
    obj = obj.item()
  if not isinstance(obj, dict):
    raise PoseFileError(f"{path}: expected a dict of arrays (poses, ...), got {type(obj).__name__}")
  return obj


def _load_npy(path: str) -> PoseSequence:
  try:
    a = np.load(path, allow_pickle=False)
  except ValueError:  # object array: a pickled dict (ZJU-MoCap params)
    try:
      obj = np.load(path, allow_pickle=True)
    except Exception as e:
      raise PoseFileError(f"{path}: unreadable .npy ({type(e).__name__}: {e})") from None
    return sequence_from_dict(_as_dict(path, obj), path)
  except Exception as e:
    raise PoseFileError(f"{path}: unreadable .npy ({type(e).__name__}: {e})") from None
  return sequence_from_dict({"poses": a}, path)


def _numeric_stem(path: str) -> int:
  stem = os.path.splitext(os.path.basename(path))[0]
  try:
    return int(stem)
  except ValueError:
    raise PoseFileError(f"{path}: ZJU-MoCap parameter files are named <frame number>.npy") from None


def _load_folder(path: str) -> PoseSequence:
  folder = path
  files = glob.glob(os.path.join(folder, "*.npy"))
  for sub in ("new_params", "params"):
    if files:
      break
    folder = os.path.join(path, sub)
    files = glob.glob(os.path.join(folder, "*.npy"))
  if not files:
    raise PoseFileError(f"{path}: folder without ZJU-MoCap parameter files (<i>.npy here, in new_params/ "
                        "or in params/)")
  files = sorted(files, key=_numeric_stem)
  parts = [_load_npy(f) for f in files]
  kinds = {(p.transl is None, p.global_rot is None) for p in parts}
  if len(kinds) > 1:
    raise PoseFileError(f"{folder}: the files disagree on their translation fields (transl vs Rh/Th)")

  def cat(field):
    values = [getattr(p, field) for p in parts]
    return None if values[0] is None else np.concatenate(values)

  return PoseSequence(pose=cat("pose"), transl=cat("transl"), global_rot=cat("global_rot"),
                      global_transl=cat("global_transl"), source=folder)


def load_pose_file(path: str) -> PoseSequence:
  """Reads a pose-sequence file or ZJU-MoCap parameter folder (see the module docstring).

  Args:
    path: .npz, .npy, .pkl file or folder.

  Returns:
    A validated `PoseSequence` (N >= 1 frames, finite values).

  Raises:
    PoseFileError: a missing or unreadable file, or any field problem, naming the file and field.
  """
  if not os.path.exists(path):
    raise PoseFileError(f"{path}: pose file not found (config render.poses)")
  if os.path.isdir(path):
    return _load_folder(path)
  ext = os.path.splitext(path)[1].lower()
  if ext == ".npz":
    try:
      with np.load(path, allow_pickle=False) as z:
        fields = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile / ValueError on corrupt archives or object arrays
      raise PoseFileError(f"{path}: unreadable .npz ({type(e).__name__}: {e})") from None
    return sequence_from_dict(fields, path)
  if ext == ".npy":
    return _load_npy(path)
  if ext in (".pkl", ".pickle"):
    return sequence_from_dict(_as_dict(path, _load_pickle(path)), path)
  raise PoseFileError(f"{path}: unsupported pose file type '{ext}'; expected .npz, .npy, .pkl or a "
                      "ZJU-MoCap params folder")


def select_frames(seq: PoseSequence, frames: Any) -> PoseSequence:
  """The frames (start, stop, step) of `seq` (stop -1 = to the end), as `c.render.frames`."""
  try:
    start, stop, step = (int(v) for v in frames)
  except (TypeError, ValueError):
    raise PoseFileError(f"config render.frames: {frames!r}, expected (start, stop, step)") from None
  if step <= 0 or start < 0:
    raise PoseFileError(f"config render.frames: {tuple(frames)}: need start >= 0 and step >= 1")
  stop = len(seq) if stop == -1 else stop
  idx = np.arange(len(seq))[start:stop:step]
  if idx.size == 0:
    raise PoseFileError(f"{seq.source}: config render.frames={tuple(frames)} selects none of its "
                        f"{len(seq)} frames")
  take = lambda a: None if a is None else a[idx]
  return dataclasses.replace(seq, pose=seq.pose[idx], transl=take(seq.transl), global_rot=take(seq.global_rot),
                             global_transl=take(seq.global_transl), K=take(seq.K),
                             world_to_camera=take(seq.world_to_camera))


def sequence_from_dataset(ds) -> PoseSequence:
  """The poses, translations and cameras of a dataset split (no pixel is read)."""
  cams = [ds.camera(i) for i in range(len(ds))]
  return PoseSequence(
      pose=np.stack([np.asarray(r.pose, np.float32).reshape(NUM_JOINTS, 3) for r in ds.records]),
      transl=np.stack([np.asarray(r.transl, np.float32).reshape(3) for r in ds.records]),
      K=np.stack([c[0] for c in cams]), world_to_camera=np.stack([c[1] for c in cams]),
      size=(int(ds.meta.width), int(ds.meta.height)), source=f"{ds.meta.root} ({ds.meta.split} split)")


# ----------------------------------------------------------------------------------------------------
# Placement and cameras.


def _rigid(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
  g = np.tile(np.eye(4), rotation.shape[:-2] + (1, 1))
  g[..., :3, :3] = rotation
  g[..., :3, 3] = translation
  return g


def placements(seq: PoseSequence, transl0: np.ndarray) -> np.ndarray:
  """(N, 4, 4) float64 rigid world transforms applied to the posed body (identity without Rh/Th).

  With Rh/Th, M_k = T(t0) G_0^-1 G_k T(-t0), G_k = [R(Rh_k) | Th_k]: a body posed with translation t0
  (the first training frame's) moves as the source body moved relative to its first frame, and
  M_0 = identity. With a dataset split's per-frame cameras, M_k = E_0^-1 E_k puts every frame in the
  first frame's camera world, so one camera (orbit) can view them all.
  """
  n = len(seq)
  if seq.world_to_camera is not None:
    e = np.asarray(seq.world_to_camera, np.float64)
    return np.linalg.inv(e[0]) @ e
  if seq.global_rot is None:
    return np.tile(np.eye(4), (n, 1, 1))
  g = _rigid(cameras_lib.axis_angle_to_matrix(seq.global_rot), seq.global_transl)
  t0 = np.asarray(transl0, np.float64).reshape(3)
  return _rigid(np.eye(3), t0) @ np.linalg.inv(g[0]) @ g @ _rigid(np.eye(3), -t0)


def orbit_world_to_camera(world_to_camera: np.ndarray, centres: np.ndarray) -> np.ndarray:
  """One turn of a camera around moving centres.

  Frame k's camera is `world_to_camera` turned by 2 pi k / N about the camera's up axis (minus its
  image y axis), through centres[k], keeping the offset it has from centres[0], and looking at centres[k].

  Args:
    world_to_camera: (4, 4) the starting camera, world metres.
    centres: (N, 3) orbit centres (the body's root joint per frame), world metres.

  Returns:
    (N, 4, 4) float64 world-to-camera transforms (OpenCV axes).
  """
  w2c = np.asarray(world_to_camera, np.float64)
  centres = np.asarray(centres, np.float64)
  eye0 = -w2c[:3, :3].T @ w2c[:3, 3]
  up = -w2c[1, :3] / np.linalg.norm(w2c[1, :3])
  offset = eye0 - centres[0]
  n = len(centres)
  out = np.zeros((n, 4, 4))
  for k in range(n):
    rot = cameras_lib.axis_angle_to_matrix(up * (2.0 * np.pi * k / n))
    eye = centres[k] + rot @ offset
    z = centres[k] - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)  # OpenCV: x = y cross z with y = -up
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    r = np.stack([x, y, z])
    out[k] = _rigid(r, -r @ eye)
  return out


@dataclasses.dataclass(frozen=True)
class Shot:
  """What one rendered frame needs, all frames stacked.

  pose (N, 24, 3), transl (N, 3), K (N, 3, 3), world_to_camera (N, 4, 4) (with the body placement
  folded in: camera @ M_k), float32; width, height in pixels.
  """
  pose: np.ndarray
  transl: np.ndarray
  K: np.ndarray
  world_to_camera: np.ndarray
  width: int
  height: int


def plan_shots(seq: PoseSequence, camera: str, train_K: np.ndarray, train_w2c: np.ndarray,
               train_transl: np.ndarray, width: int, height: int, root_fn=None) -> Shot:
  """Per-frame pose, translation and camera.

  Args:
    seq: the sequence.
    camera: "train" | "orbit".
    train_K, train_w2c: (3, 3), (4, 4) the first training frame's camera (used unless `seq` has cameras).
    train_transl: (3,) the first training frame's translation (used unless `seq` has translations).
    width, height: image size.
    root_fn: (pose (N, 24, 3), transl (N, 3)) -> (N, 3) root-joint positions of the posed body
      (required for "orbit").

  Returns:
    A `Shot`.
  """
  n = len(seq)
  transl = (np.tile(np.asarray(train_transl, np.float32).reshape(1, 3), (n, 1)) if seq.transl is None
            else np.asarray(seq.transl, np.float32))
  m = placements(seq, train_transl)
  if seq.world_to_camera is not None:  # a dataset split: frame k seen by E_0 @ M_k = E_k
    base_K = np.asarray(seq.K, np.float64)
    base = np.tile(np.asarray(seq.world_to_camera[0], np.float64), (n, 1, 1))
  else:
    base_K = np.tile(np.asarray(train_K, np.float64), (n, 1, 1))
    base = np.tile(np.asarray(train_w2c, np.float64), (n, 1, 1))
  if camera == "orbit":
    roots = np.asarray(root_fn(seq.pose, transl), np.float64)
    roots = np.einsum("nij,nj->ni", m[:, :3, :3], roots) + m[:, :3, 3]
    base = orbit_world_to_camera(base[0], roots)
    base_K = np.tile(base_K[0], (n, 1, 1))
  elif camera != "train":
    raise errors.ConfigError(f"config render.camera: '{camera}', expected one of {CAMERAS}")
  return Shot(pose=np.asarray(seq.pose, np.float32), transl=transl, K=base_K.astype(np.float32),
              world_to_camera=(base @ m).astype(np.float32), width=int(width), height=int(height))


# ----------------------------------------------------------------------------------------------------
# Rendering.


def frame_panels(out, config: Any) -> np.ndarray:
  """colour | normals | semantics of one RenderOutput (no batch axis) as an (24 + H, 3 W + 8, 3) uint8 grid."""
  alpha = np.asarray(out.alpha)
  colour = np.clip(np.asarray(out.color[..., :3]), 0.0, 1.0)
  normals = visualize.colorize_normals(np.asarray(out.normal), alpha, convention=config.eval.normal_convention)
  semantics = visualize.colorize_semantics(np.asarray(out.color[..., 3:]), alpha)
  return visualize.image_grid([colour, normals, semantics], list(PANEL_LABELS))


def render_shots(avatar, params, shot: Shot, betas: np.ndarray, config: Any, progress: bool = True) -> Iterator[Any]:
  """Yields each frame's RenderOutput (numpy, no batch axis; colour channels [rgb | part probabilities])."""
  from fmgs_jax.train import loop  # pylint: disable=g-import-not-at-top
  from fmgs_jax.train import step as step_lib  # pylint: disable=g-import-not-at-top
  render = loop.make_render_fn(avatar, config, shot.width, shot.height)
  h, w = shot.height, shot.width
  betas = jnp.asarray(betas, jnp.float32)[None]
  for k in tqdm.trange(len(shot.pose), desc="render poses", unit="frame", disable=not progress):
    batch = step_lib.Batch(
        image=jnp.zeros((1, h, w, 3)), mask=jnp.zeros((1, h, w)), K=jnp.asarray(shot.K[k:k + 1]),
        world_to_camera=jnp.asarray(shot.world_to_camera[k:k + 1]), betas=betas,
        pose=jnp.asarray(shot.pose[k:k + 1]), transl=jnp.asarray(shot.transl[k:k + 1]),
        frame_index=jnp.full((1,), -1, jnp.int32), prior_normal=jnp.zeros((1, h, w, 3)),
        prior_depth=jnp.zeros((1, h, w)), prior_parts=jnp.full((1, h, w), -1, jnp.int32))
    out = jax.device_get(render(params, batch))
    yield jax.tree.map(lambda x: np.asarray(x)[0], out)


def output_path(config: Any, workdir: str) -> str:
  return config.render.output or os.path.join(workdir, "renders", "animation.mp4")


def load_sequence(config: Any, workdir: str) -> PoseSequence:
  """The configured sequence (file or the novel-pose split) after `c.render.frames`, validated."""
  if config.render.poses:
    seq = load_pose_file(config.render.poses)
  else:
    from fmgs_jax.train import loop  # pylint: disable=g-import-not-at-top
    ds = load_dataset(config.data, "novel_pose", default_root=loop.data_root(config, workdir))
    seq = sequence_from_dataset(ds)
  return select_frames(seq, config.render.frames)


def _clear_frames(folder: str) -> None:
  """Removes the numbered frames of an earlier render from `folder` (and nothing else)."""
  for f in glob.glob(os.path.join(folder, "[0-9][0-9][0-9][0-9][0-9].png")):
    os.remove(f)


def render_poses(config: Any, workdir: str) -> str:
  """`--mode=render`: renders the newest checkpoint in WORKDIR driven by `c.render.poses`.

  Returns:
    The written .mp4 path, or the folder of PNG frames (an output path that is not .mp4, or the
    fallback when ffmpeg is unavailable).
  """
  from fmgs_jax.train import loop  # pylint: disable=g-import-not-at-top
  camera = config.render.camera
  if camera not in CAMERAS:
    raise errors.ConfigError(f"config render.camera: '{camera}', expected one of {CAMERAS}")
  out_path = output_path(config, workdir)
  if os.path.isfile(out_path) and not out_path.lower().endswith(".mp4"):
    raise errors.ConfigError(f"config render.output: {out_path} is a file but not .mp4; give an .mp4 path or a folder")
  seq = load_sequence(config, workdir)
  num_joints = int(body_lib.model_from_config(config.body).weights.shape[1])
  if num_joints != NUM_JOINTS:
    raise errors.ConfigError(f"config body.model_path: the body model has {num_joints} joints; pose sequences are "
                             f"SMPL ({NUM_JOINTS} joints)")
  root = loop.data_root(config, workdir)
  train_ds = load_dataset(config.data, "train", default_root=root)
  train_K, train_w2c = train_ds.camera(0)
  rec = train_ds.records[0]
  width, height = seq.size or (train_ds.meta.width, train_ds.meta.height)

  av, params, info = loop.restore_params(config, workdir)
  betas = np.asarray(av.betas, np.float32)

  @jax.jit
  def roots(pose, transl):
    fn = lambda p, t: body_lib.forward(av.body, betas=betas, pose=p, transl=t).joints[0]
    return jax.vmap(fn)(pose, transl)

  shot = plan_shots(seq, camera, train_K, train_w2c, np.asarray(rec.transl, np.float32), width, height,
                    root_fn=lambda p, t: np.asarray(roots(jnp.asarray(p), jnp.asarray(t))))
  logging.info("rendering %d frames of %s (checkpoint step %d, camera %s) to %s", len(seq), seq.source,
               info["train_steps"], camera, out_path)
  grids = (frame_panels(o, config) for o in render_shots(av, params, shot, betas, config))
  if out_path.lower().endswith(".mp4"):
    written = visualize.write_video(out_path, grids, fps=config.eval.video_fps, quality=config.eval.video_quality,
                                    progress=False)
  else:
    _clear_frames(out_path)
    for i, grid in enumerate(grids):
      visualize.write_png(os.path.join(out_path, f"{i:05d}.png"), grid)
    written = out_path
  print(f"render: {len(seq)} frames -> {written}")
  return str(written)
