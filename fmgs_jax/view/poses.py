"""The body poses the viewer shows: the training frames and a pose sequence (`c.render.poses`, read
and placed by fmgs_jax/eval/animate.py), and the template's skeleton in a pose."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fmgs_jax import body as body_lib
from fmgs_jax.eval import animate


@dataclasses.dataclass(frozen=True)
class ViewPose:
  """One body pose to render.

  Attributes:
    pose: (24, 3) float32 SMPL axis-angle, radians.
    transl: (3,) float32 body-model translation, world metres.
    betas: (S,) float32 the avatar's own shape (`Avatar.betas`, in its body model's shape space; a
      dataset's betas may belong to another body model).
    frame_index: training-frame index whose learned pose refinement applies, or -1 (none).
    placement: (4, 4) float32 rigid transform applied to the posed body (world metres; identity for
      training frames, animate.placements for a sequence): the body is rendered as seen by a camera
      `world_to_camera @ placement`.
  """
  pose: np.ndarray
  transl: np.ndarray
  betas: np.ndarray
  frame_index: int = -1
  placement: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(4, dtype=np.float32))


def training_poses(ds, pose_refine: bool, betas: np.ndarray) -> list[ViewPose]:
  """One `ViewPose` per training frame of the dataset split `ds` (no pixel is read), of shape `betas`
  (the avatar's); with `pose_refine` (c.train.pose_refine) each frame keeps its learned pose correction."""
  return [ViewPose(pose=np.asarray(r.pose, np.float32).reshape(animate.NUM_JOINTS, 3),
                   transl=np.asarray(r.transl, np.float32).reshape(3), betas=np.asarray(betas, np.float32),
                   frame_index=i if pose_refine else -1)
          for i, r in enumerate(ds.records)]


def sequence_poses(seq: animate.PoseSequence, transl0: np.ndarray, betas: np.ndarray) -> list[ViewPose]:
  """A pose sequence placed as --mode=render places it (frames without a translation keep `transl0`,
  (3,) the first training frame's; Rh/Th and dataset cameras become per-frame placements)."""
  m = animate.placements(seq, transl0).astype(np.float32)
  transl = (np.tile(np.asarray(transl0, np.float32).reshape(1, 3), (len(seq), 1)) if seq.transl is None
            else np.asarray(seq.transl, np.float32))
  return [ViewPose(pose=np.asarray(seq.pose[k], np.float32), transl=transl[k], betas=np.asarray(betas, np.float32),
                   placement=m[k]) for k in range(len(seq))]


def make_skeleton_fn(body):
  """Returns skeleton(view_pose) -> (J - 1, 2, 3) float32 world-metre segments (parent joint, joint) of
  the body model's skeleton in that pose and placement (jitted once)."""
  parents = np.asarray(body.parents).astype(np.int64)
  children = np.nonzero(parents >= 0)[0]

  @jax.jit
  def joints(betas, pose, transl):
    return body_lib.forward(body, betas=betas, pose=pose, transl=transl).joints

  def skeleton(p: ViewPose) -> np.ndarray:
    j = np.asarray(joints(jnp.asarray(p.betas), jnp.asarray(p.pose), jnp.asarray(p.transl)), np.float64)
    m = np.asarray(p.placement, np.float64)
    j = j @ m[:3, :3].T + m[:3, 3]
    return np.stack([j[parents[children]], j[children]], axis=1).astype(np.float32)

  return skeleton
