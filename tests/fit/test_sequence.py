"""The sequence fitter on the synthetic capture: ground-truth masks, ground-truth 2D joints corrupted as
a detector would (3 px noise, 10% dropped, confidence 0.3-1), scored against the capture's true poses."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from configs import synthetic as synthetic_config
from fmgs_jax import body as body_lib
from fmgs_jax.data import load_dataset, synthetic
from fmgs_jax.fit import sequence, subject


def detector_keypoints(joints, K, E, rng):
  """(N, 24, 3) of world joints (N, 24, 3): 3 px noise, 10% dropped, confidence U(0.3, 1)."""
  out = []
  for j, k, e in zip(joints, K, E):
    cam = j @ e[:3, :3].T + e[:3, 3]
    uv = cam @ k.T
    xy = uv[:, :2] / uv[:, 2:3] + rng.normal(size=(24, 2)) * 3.0
    conf = rng.uniform(0.3, 1.0, 24) * (rng.uniform(size=24) >= 0.1)
    out.append(np.concatenate([xy, conf[:, None]], 1))
  return np.asarray(out, np.float32)


def capture(tmp_path_factory, n, size):
  c = synthetic_config.get_config()
  s = c.data.synthetic
  s.height, s.width, s.focal = size, size, size * 1.65
  s.num_train_frames, s.num_novel_pose_frames, s.num_novel_view_cameras, s.num_novel_view_frames = n, 1, 1, 1
  s.supersample = 1
  c.data.root = str(tmp_path_factory.mktemp("capture"))
  ds = load_dataset(c.data, "train")
  frames = subject.load_frames(ds, n, size)
  betas = np.asarray(ds.records[0].betas)
  truth_body = synthetic.builtin_body(s, betas)
  joints = np.stack([truth_body.joints(betas, p, t) for p, t in zip(frames.pose, frames.transl)])
  return c, frames, joints


def evaluate(fit, template, frames, joints):
  posed = [np.asarray(body_lib.forward(template, np.zeros(template.num_betas, np.float32) if fit.betas.size == 0
                                       else fit.betas, p, t).joints) for p, t in zip(fit.pose, fit.transl)]
  posed = np.asarray(posed)
  mpjpe = np.linalg.norm((posed - posed[:, :1]) - (joints - joints[:, :1]), axis=-1).mean() * 1000
  rot = [np.degrees((Rotation.from_rotvec(a).inv() * Rotation.from_rotvec(b)).magnitude())
         for a, b in zip(fit.pose[:, 0], frames.pose[:, 0])]
  return mpjpe, float(np.mean(rot)), float(np.mean(fit.iou))


def test_coco_mapping_puts_limbs_on_smpl_joints():
  coco = np.arange(17 * 3, dtype=np.float32).reshape(17, 3)
  out = sequence.coco17_to_smpl24(coco)
  names = body_lib.SMPL_JOINT_NAMES
  assert names[sequence.COCO_TO_SMPL[13]] == "left_knee" and names[sequence.COCO_TO_SMPL[10]] == "right_wrist"
  np.testing.assert_array_equal(out[names.index("left_ankle")], coco[15])
  assert out[names.index("spine1"), 2] == 0  # no COCO counterpart: confidence 0


def test_fit_improves_on_its_initialisation(tmp_path_factory):
  """Orientation given (the yaw search alone mixes up +-yaw of a near-planar rest skeleton): the fit
  brings the joints and silhouettes closer than the rest pose it starts from. The issue's targets
  (MPJPE <= 40 mm, IoU >= 0.90, orientation <= 10 deg) are not met yet: bench/sequence_fit.py."""
  c, frames, joints = capture(tmp_path_factory, 4, 96)
  kp = detector_keypoints(joints, frames.K, frames.world_to_camera, np.random.default_rng(0))
  template = body_lib.model_from_config(c.body)
  init = np.zeros((4, 24, 3), np.float32)
  init[:, 0] = frames.pose[:, 0]
  cfg = sequence.default_config()
  cfg.steps, cfg.global_steps, cfg.num_faces = 0, 0, 1000
  run = lambda: sequence.fit_sequence(template, kp, frames.mask, frames.K, frames.world_to_camera, cfg,
                                      progress=False, init_pose=init)
  before = run()
  cfg.steps, cfg.global_steps = 150, 40
  fit = run()
  m0, m1 = evaluate(before, template, frames, joints), evaluate(fit, template, frames, joints)
  print(f"MPJPE {m0[0]:.1f} -> {m1[0]:.1f} mm, orientation {m1[1]:.1f} deg, IoU {m0[2]:.3f} -> {m1[2]:.3f}, "
        f"keypoints {before.keypoint_error_px.mean():.1f} -> {fit.keypoint_error_px.mean():.1f} px, {fit.seconds:.1f} s")
  assert fit.losses[-1] < fit.losses[0]
  assert fit.keypoint_error_px.mean() < 0.7 * before.keypoint_error_px.mean()
  assert m1[2] > m0[2] and m1[0] < m0[0]
