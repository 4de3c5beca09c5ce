"""A split of a dataset: validated frame records, loaded lazily into `Frame`s.

Readers (`zju.py`, `people_snapshot.py`, `humannerf.py`, `synthetic.py`)
turn a dataset folder into a list of `FrameRecord`s (paths and parameters,
in the files' own conventions) and call `make_dataset`, which validates
every record before any pixel is decoded and returns a `Dataset`.
`Dataset[i]` reads, undistorts and resizes frame i from disk and converts
its camera to fmgs-jax's conventions.
"""

import dataclasses
from typing import Any, Callable, Optional

import cv2
import imageio.v3 as iio
import numpy as np

from fmgs_jax.data import cameras
from fmgs_jax.data import validation
from fmgs_jax.data.frame import Frame
from fmgs_jax.data.validation import DatasetError


@dataclasses.dataclass(frozen=True)
class FrameRecord:
  """Where one frame lives on disk and its parameters, as the files store them.

  Attributes:
    image_path: colour image (png/jpg).
    mask_path: mask as .npy (float or bool, or uint8 0..255) or an image file.
    mask_nonzero: True: every non-zero mask value is foreground (ZJU's part-id
      masks); False: values are scaled to [0, 1] by the dtype's maximum.
    K: (3, 3) intrinsics of the image file, OpenCV convention (integer pixel centres).
    D: (k,) OpenCV distortion coefficients, or None when the image is undistorted.
    world_to_camera: (4, 4) world (body-model frame) -> camera, metres.
    betas: (S,) shape coefficients.
    pose: (24, 3) axis-angle, pose[0] global orientation.
    transl: (3,) body-model translation, metres.
    frame_index: frame id in the original sequence.
    camera_index: camera id, 0-based.
    pose_source: names the file (and entry) the pose was read from, for messages.
    camera_source: names the file (and entry) the camera was read from, for messages.
    gt_depth_path, gt_normal_path, gt_parts_path: optional .npy ground truth
      at the image file's resolution (see `Frame`).
    keypoints: optional (24, 3) detected 2D joints in SMPL order, (x, y, confidence), image-file
      pixels in the OpenCV convention; confidence 0 = not detected.
  """
  image_path: str
  mask_path: str
  mask_nonzero: bool
  K: np.ndarray
  D: Optional[np.ndarray]
  world_to_camera: np.ndarray
  betas: np.ndarray
  pose: np.ndarray
  transl: np.ndarray
  frame_index: int
  camera_index: int
  pose_source: str = ""
  camera_source: str = ""
  gt_depth_path: Optional[str] = None
  gt_normal_path: Optional[str] = None
  gt_parts_path: Optional[str] = None
  keypoints: Optional[np.ndarray] = None


@dataclasses.dataclass(frozen=True)
class DatasetMeta:
  """What a consumer needs to know about a split without loading frames.

  Attributes:
    name: dataset kind ("synthetic", "zju", "people_snapshot", "humannerf").
    split: "train", "novel_view", "novel_pose", "val" or "test".
    root: dataset folder.
    height, width: image size after `image_scale`, pixels.
    num_frames: number of samples (after skipping unusable frames).
    num_skipped: frames dropped by validation.
    part_names: names of the ground-truth part ids (synthetic), else ().
    frame_ids: (num_frames,) frame id of each sample in the original sequence.
    camera_ids: (num_frames,) camera id of each sample.
  """
  name: str
  split: str
  root: str
  height: int
  width: int
  num_frames: int
  num_skipped: int
  part_names: tuple[str, ...]
  frame_ids: tuple[int, ...]
  camera_ids: tuple[int, ...]


def read_image(path: str) -> np.ndarray:
  """Reads an image file as (H, W, 3) float32 in [0, 1] (alpha dropped, grey repeated)."""
  try:
    im = iio.imread(path)
  except Exception as e:  # imageio raises many types for corrupt files
    raise DatasetError(f"{path}: image: unreadable ({e})") from e
  im = _to_unit_float(im)
  if im.ndim == 2:
    im = np.repeat(im[..., None], 3, axis=-1)
  return np.ascontiguousarray(im[..., :3])


def read_mask(path: str, nonzero: bool) -> np.ndarray:
  """Reads a mask (.npy or image) as (H, W) float32 in [0, 1]."""
  try:
    m = np.load(path) if path.endswith(".npy") else iio.imread(path)
  except Exception as e:
    raise DatasetError(f"{path}: mask: unreadable ({e})") from e
  m = np.asarray(m)
  if m.ndim == 3:
    m = m[..., 0]
  if nonzero:
    return (m != 0).astype(np.float32)
  return np.clip(_to_unit_float(m), 0.0, 1.0)


def _to_unit_float(a: np.ndarray) -> np.ndarray:
  if a.dtype == np.bool_:
    return a.astype(np.float32)
  if np.issubdtype(a.dtype, np.integer):
    return a.astype(np.float32) / float(np.iinfo(a.dtype).max)
  return a.astype(np.float32)


def _file_size(path: str) -> tuple[int, int]:
  """(H, W) of an image or .npy file, reading only its header."""
  if path.endswith(".npy"):
    return tuple(np.load(path, mmap_mode="r").shape[:2])
  return validation.image_size(path)


class Dataset:
  """One split of a dataset; frames are read from disk on `__getitem__`.

  Attributes:
    meta: `DatasetMeta`.
    records: the validated `FrameRecord`s, one per sample.
    rest_joints: (24, 3) float64 the subject's SMPL rest-pose joints, body-model metres, where the
      layout stores them (HumanNeRF's canonical_joints.pkl / `tpose_joints`), else None. The subject
      fit retargets the template onto them (fmgs_jax/fit/subject.py).
  """

  def __init__(self, meta: DatasetMeta, records: list[FrameRecord], file_sizes: list[tuple[int, int]],
               image_scale: float, principal_point_shift: float,
               gt_mesh_fn: Optional[Callable[[FrameRecord], Any]] = None):
    self.meta = meta
    self.records = records
    self._file_sizes = file_sizes
    self._scale = image_scale
    self._shift = principal_point_shift
    self._gt_mesh_fn = gt_mesh_fn
    self.rest_joints: Optional[np.ndarray] = None

  def __len__(self) -> int:
    return len(self.records)

  def image_path(self, i: int) -> str:
    """Path of sample i's image file (the priors cache keys on it)."""
    return self.records[i].image_path

  def camera(self, i: int) -> tuple[np.ndarray, np.ndarray]:
    """(K (3, 3), world_to_camera (4, 4)) float32 of sample i, fmgs-jax conventions, no disk access."""
    r = self.records[i]
    h0, w0 = self._file_sizes[i]
    K = cameras.opencv_to_pixel_centre_intrinsics(r.K, self._shift)
    K = cameras.scale_intrinsics(K, self.meta.width / w0, self.meta.height / h0)
    return K.astype(np.float32), np.asarray(r.world_to_camera, np.float32)

  def keypoints(self, i: int) -> Optional[np.ndarray]:
    """(24, 3) float32 detected joints of sample i, (x, y, confidence) in this dataset's pixels
    (fmgs-jax convention: pixel centres at integer + 0.5, after `image_scale`), or None."""
    kp = self.records[i].keypoints
    if kp is None:
      return None
    h0, w0 = self._file_sizes[i]
    kp = np.asarray(kp, np.float32).copy()
    scale = np.array([self.meta.width / w0, self.meta.height / h0], np.float32)
    kp[:, :2] = (kp[:, :2] + self._shift) * scale
    return kp

  def _resize(self, a: np.ndarray, interpolation: int) -> np.ndarray:
    if a.shape[:2] == (self.meta.height, self.meta.width):
      return a
    return cv2.resize(a, (self.meta.width, self.meta.height), interpolation=interpolation)

  def __getitem__(self, i: int) -> Frame:
    if not 0 <= i < len(self.records):
      raise IndexError(f"sample {i} out of range for {len(self.records)} samples")
    r = self.records[i]
    image = read_image(r.image_path)
    mask = read_mask(r.mask_path, r.mask_nonzero)
    h0, w0 = image.shape[:2]
    if r.D is not None and np.any(np.asarray(r.D) != 0):
      image = cameras.undistort(image, r.K, r.D, cv2.INTER_LINEAR)
      mask = cameras.undistort(mask, r.K, r.D, cv2.INTER_LINEAR)
    image = np.clip(self._resize(image, cv2.INTER_AREA), 0.0, 1.0)
    mask = np.clip(self._resize(mask, cv2.INTER_AREA), 0.0, 1.0)
    K = cameras.opencv_to_pixel_centre_intrinsics(r.K, self._shift)
    K = cameras.scale_intrinsics(K, self.meta.width / w0, self.meta.height / h0)
    gt = {}
    if r.gt_depth_path:
      gt["gt_depth"] = self._resize(np.load(r.gt_depth_path).astype(np.float32), cv2.INTER_NEAREST)
    if r.gt_normal_path:
      gt["gt_normal"] = self._resize(np.load(r.gt_normal_path).astype(np.float32), cv2.INTER_NEAREST)
    if r.gt_parts_path:
      parts = np.load(r.gt_parts_path).astype(np.int32)
      gt["gt_parts"] = self._resize(parts, cv2.INTER_NEAREST)
    return Frame(
        image=image.astype(np.float32),
        mask=mask.astype(np.float32),
        K=K.astype(np.float32),
        world_to_camera=np.asarray(r.world_to_camera, np.float32),
        betas=np.asarray(r.betas, np.float32),
        pose=np.asarray(r.pose, np.float32).reshape(-1, 3),
        transl=np.asarray(r.transl, np.float32).reshape(3),
        frame_index=np.int32(r.frame_index),
        camera_index=np.int32(r.camera_index),
        sample_index=np.int32(i),
        **gt)

  def gt_mesh(self, i: int):
    """The posed ground-truth mesh of sample i as a `trimesh.Trimesh` in world metres (synthetic only)."""
    if self._gt_mesh_fn is None:
      raise DatasetError(f"{self.meta.root}: dataset '{self.meta.name}' has no ground-truth meshes.")
    return self._gt_mesh_fn(self.records[i])


def make_dataset(name: str, split: str, root: str, records: list[FrameRecord], data_config: Any,
                 problems: validation.Problems, part_names: tuple[str, ...] = (),
                 gt_mesh_fn: Optional[Callable[[FrameRecord], Any]] = None) -> Dataset:
  """Validates records (files, sizes, cameras, poses), drops skippable frames, builds the Dataset.

  Args:
    name, split, root: for `DatasetMeta` and messages.
    records: candidate frames.
    data_config: the `c.data` ConfigDict (image_scale, max_skipped_fraction,
      max_pose_angle, principal_point_shift).
    problems: fatal problems the reader already found (e.g. count mismatches).
    part_names: ground-truth part names (synthetic).
    gt_mesh_fn: record -> posed ground-truth trimesh (synthetic).

  Raises:
    DatasetError: listing every fatal problem, or too many skipped frames.
  """
  if not records and not problems.errors:
    problems.error(root, f"split '{split}': no frames selected; check the frame range and camera "
                   "settings in the data config")
  sizes = {}
  for k, r in enumerate(records):
    ok = validation.check_file(problems, r.image_path, "image")
    ok &= validation.check_file(problems, r.mask_path, "mask")
    validation.check_intrinsics(problems, r.camera_source or r.image_path, "intrinsics", r.K)
    validation.check_extrinsics(problems, r.camera_source or r.image_path, "extrinsics",
                                r.world_to_camera)
    for gt_path in (r.gt_depth_path, r.gt_normal_path, r.gt_parts_path):
      if gt_path:
        ok &= validation.check_file(problems, gt_path, "ground truth")
    if not ok:
      continue
    validation.check_pose(problems, k, r.pose_source or r.image_path, "pose",
                          np.asarray(r.pose, np.float64), data_config.max_pose_angle)
    if not np.all(np.isfinite(r.transl)) or not np.all(np.isfinite(r.betas)):
      problems.skip(k, r.pose_source or r.image_path, "transl/betas: NaN or inf values")
    try:
      image_hw = validation.image_size(r.image_path)
    except Exception as e:  # PIL raises several types on corrupt files
      problems.skip(k, r.image_path, f"image: unreadable ({e})")
      continue
    try:
      mask_hw = _file_size(r.mask_path)
    except Exception as e:
      problems.skip(k, r.mask_path, f"mask: unreadable ({e})")
      continue
    if mask_hw != image_hw:
      problems.skip(k, r.mask_path, f"mask: size {mask_hw[1]}x{mask_hw[0]} differs from image "
                    f"{r.image_path} size {image_hw[1]}x{image_hw[0]}")
      continue
    sizes[k] = image_hw
  skipped = problems.raise_if_any(len(records), data_config.max_skipped_fraction)
  kept = [r for k, r in enumerate(records) if k not in skipped]
  if not kept:
    raise DatasetError(f"Dataset {root}, split '{split}': every frame was skipped as unusable.")
  distinct = sorted({sizes[k] for k in range(len(records)) if k not in skipped})
  if len(distinct) > 1:
    raise DatasetError(f"Dataset {root}, split '{split}': images differ in size ({distinct}); "
                       "one split must have one image size.")
  h0, w0 = distinct[0]
  s = float(data_config.image_scale)
  if s <= 0:
    raise DatasetError(f"config data.image_scale must be positive, got {s}")
  meta = DatasetMeta(
      name=name, split=split, root=root, height=max(1, int(round(h0 * s))),
      width=max(1, int(round(w0 * s))), num_frames=len(kept), num_skipped=len(skipped),
      part_names=tuple(part_names), frame_ids=tuple(r.frame_index for r in kept),
      camera_ids=tuple(r.camera_index for r in kept))
  file_sizes = [sizes[k] for k in range(len(records)) if k not in skipped]
  return Dataset(meta, kept, file_sizes, s, float(data_config.principal_point_shift), gt_mesh_fn)


def select_frames(num: int, frames: Any, field: str, problems: validation.Problems) -> list[int]:
  """Indices chosen by a (start, stop, step) config triple over `num` frames; stop -1 = to the end.

  Args:
    num: frames available.
    frames: (start, stop, step) from `c.data.frames.<split>`.
    field: the config field name, for messages.
    problems: where an invalid triple is reported.
  """
  try:
    start, stop, step = (int(v) for v in frames)
  except (TypeError, ValueError):
    problems.error("config", f"{field}: expected (start, stop, step), got {frames!r}")
    return []
  if step <= 0 or start < 0:
    problems.error("config", f"{field}: start must be >= 0 and step > 0, got {frames!r}")
    return []
  stop = num if stop < 0 else stop
  if stop > num:
    problems.error("config", f"{field}: range {tuple(frames)} reaches frame {stop - 1} but the "
                   f"dataset has {num} frames")
    return []
  return list(range(start, stop, step))
