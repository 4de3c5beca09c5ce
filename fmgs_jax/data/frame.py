"""One training/evaluation frame as a frozen pytree, and batching by stacking.

A `Frame` is what every consumer above the data layer reads: the image and
mask, the camera, the body-model parameters and, for the synthetic capture,
ground truth. Batches are the same dataclass with a leading B axis on every
leaf (`stack_frames`), so a batch feeds a jitted step directly.
"""

from typing import Any, Optional, Sequence

import flax.struct
import jax
import numpy as np

Array = Any  # np.ndarray or jax.Array


@flax.struct.dataclass
class Frame:
  """One frame (or, after `stack_frames`, a batch with a leading B axis).

  Conventions (docs/design.md): OpenCV camera (x right, y down, z forward), world
  metres, pixel centres at integer + 0.5 (so `K` maps a camera point to
  continuous pixel coordinates in which pixel (i, j) covers [j, j+1] x [i, i+1]).

  The body is posed by the body model with (`betas`, `pose`, `transl`) in
  world coordinates: `fmgs_jax.body.forward(model, betas, pose, transl)`.
  Any extra global rigid transform a dataset stores outside the body model
  (ZJU-MoCap / HumanNeRF `Rh`, `Th`) has already been folded into
  `world_to_camera` by the reader, so no consumer ever sees it.

  Attributes:
    image: (H, W, 3) float32 in [0, 1], the stored sRGB values (no linearisation).
    mask: (H, W) float32 in [0, 1], foreground probability (soft at edges
      after resizing).
    K: (3, 3) float32 intrinsics in pixels of this (possibly resized) image.
    world_to_camera: (4, 4) float32 rigid transform, world metres -> camera metres.
    betas: (S,) float32 body shape coefficients (S = 10 for SMPL files).
    pose: (24, 3) float32 SMPL axis-angle, pose[0] the global orientation.
    transl: (3,) float32 world translation of the body model, metres.
    frame_index: () int32 frame id in the original sequence (e.g. the ZJU
      image number); identifies the body pose.
    camera_index: () int32 camera id in the dataset (0-based).
    sample_index: () int32 position of this frame inside its split,
      0 .. len(dataset) - 1 (per-frame learned quantities index by it).
    gt_depth: (H, W) float32 camera z in metres, 0 on background (synthetic only).
    gt_normal: (H, W, 3) float32 camera-space unit normals (OpenCV axes,
      facing the camera, n . view_ray < 0), 0 on background (synthetic only).
    gt_parts: (H, W) int32 template part ids, -1 on background; names in
      `Dataset.meta.part_names` (synthetic only).
    prior_normal, prior_depth, prior_parts: foundation-model priors; always
      None from the data layer, filled by `fmgs_jax.priors` from its cache.
  """
  image: Array
  mask: Array
  K: Array
  world_to_camera: Array
  betas: Array
  pose: Array
  transl: Array
  frame_index: Array
  camera_index: Array
  sample_index: Array
  gt_depth: Optional[Array] = None
  gt_normal: Optional[Array] = None
  gt_parts: Optional[Array] = None
  prior_normal: Optional[Array] = None
  prior_depth: Optional[Array] = None
  prior_parts: Optional[Array] = None

  @property
  def height(self) -> int:
    return int(self.image.shape[-3])

  @property
  def width(self) -> int:
    return int(self.image.shape[-2])


def stack_frames(frames: Sequence[Frame]) -> Frame:
  """Stacks frames into a batch: every leaf gains a leading B axis.

  Args:
    frames: B >= 1 frames of the same image size whose optional fields are
      either all present or all None.

  Returns:
    A `Frame` whose leaves are numpy arrays of shape (B, ...).

  Raises:
    ValueError: if the list is empty or the frames disagree in structure or shape.
  """
  if not frames:
    raise ValueError("stack_frames needs at least one frame.")
  structures = {jax.tree_util.tree_structure(f) for f in frames}
  if len(structures) != 1:
    raise ValueError("stack_frames: frames differ in which optional fields (gt_*, prior_*) are present.")
  try:
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *frames)
  except ValueError as e:
    raise ValueError(f"stack_frames: frames differ in shape ({e}); resize them to one size first.") from e
