"""Datasets: ZJU-MoCap, PeopleSnapshot, HumanNeRF-style folders and the built-in synthetic capture.

The data layer is the lowest layer: it imports nothing from fmgs_jax except
itself, with one exception: the synthetic capture's *generator*
(`fmgs_jax.data.synthetic.generate`) poses the built-in body model and
imports `fmgs_jax.body` lazily inside the generator. Reading a generated
capture does not.

Contract
--------
    from fmgs_jax.data import load_dataset, stack_frames, Frame, DatasetError

    ds = load_dataset(config.data, "train")       # or "novel_view", "novel_pose", "val", "test"
    len(ds); ds.meta                               # DatasetMeta: name, split, height, width,
                                                   #   num_frames, part_names, frame_ids, camera_ids
    frame = ds[i]                                  # Frame of numpy arrays, read lazily from disk
    ds.image_path(i)                               # the image file (priors cache key)
    ds.camera(i)                                   # (K, world_to_camera) without reading pixels
    ds.gt_mesh(i)                                  # synthetic only: posed ground-truth trimesh, world metres
    batch = stack_frames([ds[i], ds[j]])           # same Frame, leaves gain a leading B axis

`Frame` fields (see `frame.py` for the full conventions): image (H,W,3) and
mask (H,W) float32 in [0,1]; K (3,3) and world_to_camera (4,4) float32,
OpenCV axes, metres, pixel centres at integer + 0.5; betas (S,), pose (24,3)
SMPL axis-angle (pose[0] global orientation), transl (3,), all float32,
such that `fmgs_jax.body.forward(model, betas, pose, transl)` gives the body
in the world frame of `world_to_camera`; frame_index, camera_index,
sample_index int32 scalars; optional synthetic ground truth gt_depth (H,W)
camera z metres (0 background), gt_normal (H,W,3) camera-space unit normals
facing the camera, gt_parts (H,W) int32 (-1 background, names in
meta.part_names); prior_normal / prior_depth / prior_parts are None here
(filled by fmgs_jax.priors).

Global transforms stored outside the body model (ZJU-MoCap / HumanNeRF
`Rh`, `Th`: x_world = R(Rh) x_body + Th) are folded into the camera:
world_to_camera' = world_to_camera @ [R(Rh) | Th], and the body is posed
with the file's `poses` and transl = 0 (`cameras.fold_global_transform`).

Every problem found while validating a split (before any pixel is decoded)
is reported in one `DatasetError` naming the file and field; frames that can
be dropped (unreadable image or mask, mask of the wrong size, NaN or absurd
pose) are skipped with a warning and counted in `meta.num_skipped`, up to
`data.max_skipped_fraction` of the split. The supported files are listed in
README.md next to this file.
"""

from typing import Any

from fmgs_jax.data.dataset import Dataset, DatasetMeta, FrameRecord
from fmgs_jax.data.frame import Frame, stack_frames
from fmgs_jax.data.validation import DatasetError

SPLITS = ("train", "novel_view", "novel_pose", "val", "test")


def load_dataset(data_config: Any, split: str, default_root: str = "") -> Dataset:
  """Loads one split of the dataset named by `data_config.name`.

  Args:
    data_config: the `c.data` section of the config (configs/default.py).
    split: "train", "novel_view", "novel_pose", or "val" / "test" where the
      dataset defines them.
    default_root: folder used when `data_config.root` is "" (main passes
      WORKDIR/data so the synthetic capture is cached in the run folder).

  Returns:
    A validated `Dataset`. For "synthetic", the capture is generated first
    if missing or generated with a different configuration.

  Raises:
    DatasetError: unknown dataset or split, or problems with the files.
  """
  if split not in SPLITS:
    raise DatasetError(f"config: unknown split '{split}'; expected one of {SPLITS}")
  root = data_config.root or default_root
  name = data_config.name
  if not root:
    raise DatasetError(f"config data.root: empty; give the {name} dataset folder with "
                       "--config.data.root=PATH")
  if name == "synthetic":
    from fmgs_jax.data import synthetic  # pylint: disable=g-import-not-at-top
    return synthetic.load(data_config, split, root)
  if name == "people_snapshot":
    from fmgs_jax.data import people_snapshot  # pylint: disable=g-import-not-at-top
    return people_snapshot.load(data_config, split, root)
  if name == "zju":
    from fmgs_jax.data import zju  # pylint: disable=g-import-not-at-top
    return zju.load(data_config, split, root)
  if name == "humannerf":
    from fmgs_jax.data import humannerf  # pylint: disable=g-import-not-at-top
    return humannerf.load(data_config, split, root)
  raise DatasetError(f"config data.name: unknown dataset '{name}'; expected synthetic, zju, "
                     "people_snapshot or humannerf")


__all__ = ["Dataset", "DatasetError", "DatasetMeta", "Frame", "FrameRecord", "SPLITS",
           "load_dataset", "stack_frames"]
