"""The sequence fitter on the synthetic capture: ground-truth masks, ground-truth 2D joints corrupted as
a detector would (3 px noise, 10% dropped, confidence 0.3-1), scored against the capture's true poses."""

import dataclasses
import itertools

import jax.numpy as jnp
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
  """dict: mpjpe_mm (root aligned, the fit's skeleton: its `joints`), mpjpe_template_mm (the fitted poses
  on the template with the fitted shape), orientation_deg, iou (means over frames)."""
  posed = np.asarray([np.asarray(body_lib.forward(template, np.zeros(template.num_betas, np.float32)
                                                  if fit.betas.size == 0 else fit.betas, p, t).joints)
                      for p, t in zip(fit.pose, fit.transl)])
  rel = lambda x: x - x[:, :1]
  fitted = posed if fit.joints is None else fit.joints
  rot = [np.degrees((Rotation.from_rotvec(a).inv() * Rotation.from_rotvec(b)).magnitude())
         for a, b in zip(fit.pose[:, 0], frames.pose[:, 0])]
  return dict(mpjpe_mm=float(np.linalg.norm(rel(fitted) - rel(joints), axis=-1).mean() * 1000),
              mpjpe_template_mm=float(np.linalg.norm(rel(posed) - rel(joints), axis=-1).mean() * 1000),
              orientation_deg=float(np.mean(rot)), iou=float(np.mean(fit.iou)))


def test_coco_mapping_puts_limbs_on_smpl_joints():
  coco = np.arange(17 * 3, dtype=np.float32).reshape(17, 3)
  out = sequence.coco17_to_smpl24(coco)
  names = body_lib.SMPL_JOINT_NAMES
  assert names[sequence.COCO_TO_SMPL[13]] == "left_knee" and names[sequence.COCO_TO_SMPL[10]] == "right_wrist"
  np.testing.assert_array_equal(out[names.index("left_ankle")], coco[15])
  assert out[names.index("spine1"), 2] == 0  # no COCO counterpart: confidence 0


def test_unwrap_yaw_is_the_cheapest_path():
  """Against every path through 5 frames x 6 angles, costs of frames plus turns summed by brute force."""
  rng = np.random.default_rng(1)
  costs = rng.uniform(size=(5, 6))
  angles = np.arange(6) * 2 * np.pi / 6
  best, best_cost = None, np.inf
  for path in itertools.product(range(6), repeat=5):
    c = sum(costs[i, k] for i, k in enumerate(path))
    c += sum(0.7 * (1 - np.cos(angles[a] - angles[b])) for a, b in zip(path[:-1], path[1:]))
    if c < best_cost:
      best, best_cost = path, c
  np.testing.assert_array_equal(sequence.unwrap_yaw(costs, angles, 0.7), best)


def test_yaw_costs_tell_a_turn_from_its_mirror():
  """Noise-free projections of the template's rest joints turned by +50 degrees: zero cost there, more at
  -50 (the feet point the other way) and at 180 - 50 (left and right swapped)."""
  template = body_lib.model_from_config(synthetic_config.get_config().body)
  joints = np.asarray(body_lib.rest_joints(template), np.float64)
  E = np.eye(4)
  E[:3, :3] = np.diag([1.0, -1.0, -1.0])
  E[2, 3] = 3.0
  K = np.array([[200.0, 0, 64], [0, 200.0, 64], [0, 0, 1]])
  face = sequence.facing_orientation(E)
  turn = np.radians(50.0)
  r = (Rotation.from_rotvec(face) * Rotation.from_rotvec([0, turn, 0])).as_matrix()
  world = (joints - joints[0]) @ r.T + joints[0]
  kp = np.concatenate([np.asarray(subject.project(world, K, E)), np.ones((24, 1))], 1)[None]
  angles = np.radians([50.0, -50.0, 130.0])
  c = sequence.yaw_costs(joints, face[None], kp, K[None], E[None], np.zeros((1, 3)), angles, 8.0)[0]
  assert c[0] < 1e-6 and c[1] > 1e-3 and c[2] > 0.1


def test_hinge_penalty_lets_a_knee_bend_forward_only():
  names = body_lib.SMPL_JOINT_NAMES
  pose = np.zeros((23, 3), np.float32)
  knee = names.index("left_knee") - 1
  pose[knee, 0] = 1.0
  assert float(sequence.hinge_penalty(jnp.asarray(pose))) == 0.0
  pose[knee, 0] = -0.5
  np.testing.assert_allclose(float(sequence.hinge_penalty(jnp.asarray(pose))), 0.25, rtol=1e-6)
  pose[knee] = [0.3, 0.2, 0.0]  # twisting a hinge costs its square
  np.testing.assert_allclose(float(sequence.hinge_penalty(jnp.asarray(pose))), 0.04, rtol=1e-5)
  elbow = names.index("right_elbow") - 1
  pose[:] = 0
  pose[elbow, 1] = -0.4  # the right elbow bends about +y
  np.testing.assert_allclose(float(sequence.hinge_penalty(jnp.asarray(pose))), 0.16, rtol=1e-5)


def test_fit_from_the_yaw_search_on_a_short_capture(tmp_path_factory):
  """The first 16 frames (a third of a turn, from facing the camera to past side-on) of the 48-frame
  turntable at 64 px, from the yaw search (no orientation given), scored against the capture's own poses
  and joints. Measured: 69 mm, 11.1 deg, IoU 0.86 (the first frames face the camera at the sequence's
  start, where nothing before them fixes the yaw; the arms follow); bounds with a margin, which the
  fitter before the sequence-wide yaw search (95 deg, 230 mm on 48 frames) fails. The issue's targets
  are measured on the full capture by bench/sequence_fit.py (docs/fitting.md)."""
  c, frames, joints = capture(tmp_path_factory, 48, 64)
  frames = dataclasses.replace(frames, **{f.name: getattr(frames, f.name)[:16] for f in dataclasses.fields(frames)})
  joints = joints[:16]
  kp = detector_keypoints(joints, frames.K, frames.world_to_camera, np.random.default_rng(0))
  template = body_lib.model_from_config(c.body)
  cfg = sequence.default_config()
  cfg.steps, cfg.silhouette_steps, cfg.num_faces = 400, 20, 1000
  fit = sequence.fit_sequence(template, kp, frames.mask, frames.K, frames.world_to_camera, cfg, progress=False)
  m = evaluate(fit, template, frames, joints)
  print(m, f"keypoints {fit.keypoint_error_px.mean():.1f} px, {fit.seconds:.1f} s")
  assert fit.keypoint_error_px.mean() < 6.0  # 3 px noise
  assert m["orientation_deg"] < 20.0
  assert m["mpjpe_mm"] < 100.0
  assert m["iou"] > 0.80
