"""--mode=render (fmgs_jax/eval/animate.py): pose-file formats and errors, placement and orbit cameras
against closed forms, and an end-to-end render from a checkpoint whose silhouettes match the body
model's own posed mesh projected independently."""

import os
import pickle

import cv2
import imageio.v2 as imageio
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from configs import synthetic
from fmgs_jax import body as body_lib
from fmgs_jax.eval import animate
from fmgs_jax.eval.animate import PoseFileError


def _rand_pose(rng, n, width=72):
  return rng.normal(0.0, 0.3, (n, width))


# ---------------------------------------------------------------------------------------------------
# Formats.


def test_npz_poses_flat_and_per_joint_with_transl(tmp_path):
  rng = np.random.default_rng(0)
  poses, transl = _rand_pose(rng, 5), rng.normal(size=(5, 3))
  flat, joints = tmp_path / "flat.npz", tmp_path / "joints.npz"
  np.savez(flat, poses=poses, transl=transl, betas=np.zeros(10))
  np.savez(joints, poses=poses.reshape(5, 24, 3), trans=transl)
  for path in (flat, joints):
    seq = animate.load_pose_file(str(path))
    assert seq.pose.shape == (5, 24, 3) and seq.pose.dtype == np.float32
    np.testing.assert_allclose(seq.pose.reshape(5, 72), poses, rtol=1e-6)
    np.testing.assert_allclose(seq.transl, transl, rtol=1e-6)
    assert seq.global_rot is None and seq.world_to_camera is None


def test_people_snapshot_thetas_and_anim_nerf_fields(tmp_path):
  rng = np.random.default_rng(1)
  thetas, transl = _rand_pose(rng, 4), rng.normal(size=(4, 3))
  np.savez(tmp_path / "poses.npz", thetas=thetas, betas=np.ones((1, 10)), transl=transl)
  seq = animate.load_pose_file(str(tmp_path / "poses.npz"))
  np.testing.assert_allclose(seq.pose.reshape(4, 72), thetas, rtol=1e-6)
  np.savez(tmp_path / "anim_nerf_test.npz", global_orient=thetas[:, :3], body_pose=thetas[:, 3:],
           transl=transl, betas=np.ones((1, 10)))
  seq = animate.load_pose_file(str(tmp_path / "anim_nerf_test.npz"))
  np.testing.assert_allclose(seq.pose.reshape(4, 72), thetas, rtol=1e-6)
  np.testing.assert_allclose(seq.transl, transl, rtol=1e-6)


@pytest.mark.parametrize("width", [156, 165])
def test_amass_smplh_and_smplx_keep_body_joints_and_zero_smpl_hands(tmp_path, width):
  rng = np.random.default_rng(2)
  poses, trans = _rand_pose(rng, 3, width), rng.normal(size=(3, 3))
  path = tmp_path / "amass.npz"
  np.savez(path, poses=poses, trans=trans, betas=np.zeros(16), gender="neutral", mocap_framerate=120.0,
           dmpls=np.zeros((3, 8)))
  seq = animate.load_pose_file(str(path))
  assert seq.pose.shape == (3, 24, 3)
  np.testing.assert_allclose(seq.pose[:, :22].reshape(3, 66), poses[:, :66], rtol=1e-6)
  np.testing.assert_array_equal(seq.pose[:, 22:], 0.0)
  np.testing.assert_allclose(seq.transl, trans, rtol=1e-6)


def test_npy_array_single_frame_and_pickle_dict(tmp_path):
  rng = np.random.default_rng(3)
  poses = _rand_pose(rng, 6)
  np.save(tmp_path / "p.npy", poses)
  np.save(tmp_path / "one.npy", poses[0])
  with open(tmp_path / "p.pkl", "wb") as f:
    pickle.dump({"poses": poses, "transl": np.zeros((6, 3))}, f)
  np.testing.assert_allclose(animate.load_pose_file(str(tmp_path / "p.npy")).pose.reshape(6, 72), poses, rtol=1e-6)
  one = animate.load_pose_file(str(tmp_path / "one.npy"))
  assert one.pose.shape == (1, 24, 3) and one.transl is None
  seq = animate.load_pose_file(str(tmp_path / "p.pkl"))
  assert seq.pose.shape == (6, 24, 3) and seq.transl.shape == (6, 3)


def _zju_folder(root, rng, n=12):
  folder = root / "CoreView_999" / "new_params"
  folder.mkdir(parents=True)
  poses, rh, th = _rand_pose(rng, n), rng.normal(0, 0.5, (n, 3)), rng.normal(0, 1.0, (n, 3))
  for i in range(n):
    np.save(folder / f"{i}.npy", {"poses": poses[i:i + 1], "Rh": rh[i:i + 1], "Th": th[i:i + 1],
                                  "shapes": np.zeros((1, 10))}, allow_pickle=True)
  return folder, poses, rh, th


def test_zju_params_folder_in_numeric_order(tmp_path):
  folder, poses, rh, th = _zju_folder(tmp_path, np.random.default_rng(4))
  for path in (folder, folder.parent):  # the params folder itself, or the subject folder
    seq = animate.load_pose_file(str(path))
    # 0, 1, 2, ..., 10, 11: a lexical sort would put 10 and 11 after 1.
    np.testing.assert_allclose(seq.pose.reshape(-1, 72), poses, rtol=1e-6)
    np.testing.assert_allclose(seq.global_rot, rh)
    np.testing.assert_allclose(seq.global_transl, th)
    assert seq.transl is None
  single = animate.load_pose_file(str(folder / "3.npy"))  # one ZJU dict as a .npy file
  np.testing.assert_allclose(single.pose.reshape(72), poses[3], rtol=1e-6)


def test_select_frames():
  seq = animate.PoseSequence(pose=np.arange(7 * 72, dtype=np.float32).reshape(7, 24, 3),
                             transl=np.arange(21, dtype=np.float32).reshape(7, 3), source="x")
  sub = animate.select_frames(seq, (1, -1, 2))
  np.testing.assert_array_equal(sub.pose, seq.pose[[1, 3, 5]])
  np.testing.assert_array_equal(sub.transl, seq.transl[[1, 3, 5]])
  with pytest.raises(PoseFileError, match="selects none"):
    animate.select_frames(seq, (7, -1, 1))
  with pytest.raises(PoseFileError, match="render.frames"):
    animate.select_frames(seq, (0, -1, 0))


# ---------------------------------------------------------------------------------------------------
# Errors: each names the file and the field.


def _bad_files(tmp_path):
  rng = np.random.default_rng(5)
  p = _rand_pose(rng, 4)
  nan_pose = p.copy()
  nan_pose[2, 7] = np.nan
  nan_transl = np.zeros((4, 3))
  nan_transl[3, 1] = np.inf
  cases = {
      "typo.npz": (dict(pose=p), "no pose field"),
      "both.npz": (dict(poses=p, thetas=p), "ambiguous pose fields"),
      "shape.npz": (dict(poses=p[:, :70]), "poses: shape (4, 70)"),
      "thetas_shape.npz": (dict(thetas=_rand_pose(rng, 4, 156)), "thetas: shape (4, 156)"),
      "count.npz": (dict(poses=p, transl=np.zeros((3, 3))), "transl has 3 frames but poses 4"),
      "transl_shape.npz": (dict(poses=p, transl=np.zeros((4, 2))), "transl: shape (4, 2)"),
      "nan.npz": (dict(poses=nan_pose), "poses: non-finite value (NaN or inf) in frame 2"),
      "nan_transl.npz": (dict(poses=p, trans=nan_transl), "trans: non-finite value (NaN or inf) in frame 3"),
      "orphan.npz": (dict(body_pose=p[:, 3:]), "body_pose without global_orient"),
      "go_count.npz": (dict(global_orient=p[:3, :3], body_pose=p[:, 3:]), "global_orient has 3 frames"),
      "two_transl.npz": (dict(poses=p, transl=np.zeros((4, 3)), Th=np.zeros((4, 3))), "both transl and Rh/Th"),
      "empty.npz": (dict(poses=np.zeros((0, 72))), "poses: no frame"),
      "text.npz": (dict(poses=np.array(["a", "b"])), "poses: not a numeric array"),
  }
  for name, (fields, _) in cases.items():
    np.savez(tmp_path / name, **fields)
  return {str(tmp_path / k): (v[1], k) for k, v in cases.items()}


def test_field_errors_name_file_and_field(tmp_path):
  for path, (message, _) in _bad_files(tmp_path).items():
    with pytest.raises(PoseFileError) as e:
      animate.load_pose_file(path)
    assert path in str(e.value) and message in str(e.value), (path, str(e.value))


def test_file_errors(tmp_path):
  missing = str(tmp_path / "nope.npz")
  with pytest.raises(PoseFileError, match="not found"):
    animate.load_pose_file(missing)
  (tmp_path / "corrupt.npz").write_bytes(b"not a zip")
  with pytest.raises(PoseFileError, match=r"corrupt\.npz: unreadable \.npz"):
    animate.load_pose_file(str(tmp_path / "corrupt.npz"))
  (tmp_path / "motion.bvh").write_text("HIERARCHY")
  with pytest.raises(PoseFileError, match=r"motion\.bvh: unsupported pose file type '\.bvh'"):
    animate.load_pose_file(str(tmp_path / "motion.bvh"))
  np.save(tmp_path / "bad_npy.npy", np.zeros((3, 71)))
  with pytest.raises(PoseFileError, match=r"bad_npy\.npy: poses: shape \(3, 71\)"):
    animate.load_pose_file(str(tmp_path / "bad_npy.npy"))
  with open(tmp_path / "list.pkl", "wb") as f:
    pickle.dump([1, 2, 3], f)
  with pytest.raises(PoseFileError, match=r"list\.pkl: expected a dict of arrays"):
    animate.load_pose_file(str(tmp_path / "list.pkl"))
  (tmp_path / "empty_dir").mkdir()
  with pytest.raises(PoseFileError, match="without ZJU-MoCap parameter files"):
    animate.load_pose_file(str(tmp_path / "empty_dir"))
  (tmp_path / "named").mkdir()
  np.save(tmp_path / "named" / "frame_a.npy", np.zeros(72))
  with pytest.raises(PoseFileError, match=r"frame_a\.npy: ZJU-MoCap parameter files are named"):
    animate.load_pose_file(str(tmp_path / "named"))


# ---------------------------------------------------------------------------------------------------
# Placement and cameras (closed forms).


def test_rh_th_motion_is_applied_relative_to_the_first_frame():
  rng = np.random.default_rng(6)
  n = 4
  rh, th = rng.normal(0, 0.7, (n, 3)), rng.normal(0, 1.0, (n, 3))
  t0 = rng.normal(size=3)
  seq = animate.PoseSequence(pose=np.zeros((n, 24, 3), np.float32), global_rot=rh, global_transl=th, source="x")
  m = animate.placements(seq, t0)
  b = rng.normal(size=(50, 3))  # body-model points (zero translation)
  r = Rotation.from_rotvec(rh)
  for k in range(n):
    # The source world: x_k = R(Rh_k) b + Th_k. Expected: t0 + the motion from frame 0 to k in frame 0's body
    # coordinates, R(Rh_0)^T (x_k - Th_0).
    expected = t0 + r[0].inv().apply(r[k].apply(b) + th[k] - th[0])
    got = (m[k] @ np.concatenate([b + t0, np.ones((50, 1))], 1).T).T[:, :3]
    np.testing.assert_allclose(got, expected, atol=1e-9)
  np.testing.assert_allclose(m[0], np.eye(4), atol=1e-12)


def _opencv_look_at(eye, target, up):
  """world->camera with z towards target, y = -up projected (image down), x = y cross z (right)."""
  z = (target - eye) / np.linalg.norm(target - eye)
  y = -(up - np.dot(up, z) * z)
  y /= np.linalg.norm(y)
  x = np.cross(y, z)
  r = np.stack([x, y, z])
  w2c = np.eye(4)
  w2c[:3, :3], w2c[:3, 3] = r, -r @ eye
  return w2c


def test_orbit_cameras_turn_once_around_the_moving_centre():
  up = np.array([0.0, -1.0, 0.0])  # world y down, as the synthetic capture's OpenCV-style world
  centres = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.05], [0.2, -0.1, 0.1], [0.3, 0.0, 0.15]])
  eye0 = np.array([0.0, -0.3, -3.0])
  w2c = _opencv_look_at(eye0, centres[0], up)
  out = animate.orbit_world_to_camera(w2c, centres)
  np.testing.assert_allclose(out[0], w2c, atol=1e-9)  # frame 0 is the starting camera
  offset = eye0 - centres[0]
  axis = -w2c[1, :3]  # the camera's up (the camera is pitched: not the world's up)
  for k in range(4):
    r = out[k, :3, :3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(r) > 0.999
    eye = -r.T @ out[k, :3, 3]
    # Rotation by 2 pi k / 4 about the camera's up axis: quarter turns of the offset, height kept.
    expected = centres[k] + Rotation.from_rotvec(axis * 2 * np.pi * k / 4).apply(offset)
    np.testing.assert_allclose(eye, expected, atol=1e-9)
    c = out[k] @ np.append(centres[k], 1.0)
    np.testing.assert_allclose(c[:2], 0.0, atol=1e-9)  # the centre is on the optical axis, in front
    assert c[2] > 0
    # No roll: a point above the centre stays above it in the image (smaller image y).
    above = out[k] @ np.append(centres[k] + 0.3 * up, 1.0)
    assert above[1] / above[2] < 0


def test_plan_shots_dataset_split_keeps_each_frames_camera_and_default_transl():
  rng = np.random.default_rng(7)
  e = np.stack([_opencv_look_at(rng.normal(size=3) + [0, 0, -3], np.zeros(3), np.array([0.0, -1, 0]))
                for _ in range(3)])
  k = np.tile(np.diag([50.0, 50.0, 1.0]), (3, 1, 1))
  split = animate.PoseSequence(pose=np.zeros((3, 24, 3), np.float32), transl=np.ones((3, 3), np.float32),
                               K=k, world_to_camera=e, size=(20, 10), source="split")
  shot = animate.plan_shots(split, "train", np.eye(3), np.eye(4), np.zeros(3), 20, 10)
  np.testing.assert_allclose(shot.world_to_camera, e, atol=1e-5)
  np.testing.assert_allclose(shot.transl, 1.0)
  pose_file = animate.PoseSequence(pose=np.zeros((2, 24, 3), np.float32), source="file")
  t0 = np.array([0.1, 0.2, 0.3], np.float32)
  shot = animate.plan_shots(pose_file, "train", k[0], e[1], t0, 20, 10)
  np.testing.assert_allclose(shot.transl, np.stack([t0, t0]))
  np.testing.assert_allclose(shot.world_to_camera, np.stack([e[1], e[1]]), atol=1e-6)
  with pytest.raises(ValueError, match="render.camera"):
    animate.plan_shots(pose_file, "dolly", k[0], e[1], t0, 20, 10)


# ---------------------------------------------------------------------------------------------------
# End to end: a checkpoint written by the training loop, rendered with a 3-frame pose file.

H = W = 48


def _tiny_config(data_root):
  c = synthetic.get_config("tiny")  # 0 steps: the test is about posing and cameras
  c.data.root = data_root
  return c


def _mesh_silhouette(model, betas, pose, transl, K, w2c):
  """(H, W) bool: the body model's posed triangles (full resolution) filled with OpenCV, independent of
  the avatar, its surfels and the rasterizer."""
  from fmgs_jax import body as body_lib
  v = np.asarray(body_lib.forward(model, betas=betas, pose=pose, transl=transl).vertices, np.float64)
  cam = (w2c[:3, :3] @ v.T).T + w2c[:3, 3]
  uv = (K @ cam.T).T
  uv = uv[:, :2] / uv[:, 2:3] - 0.5  # fmgs pixel centres at +0.5; cv2 at integers
  tris = np.round(uv[np.asarray(model.faces)] * 16).astype(np.int32)
  mask = np.zeros((H, W), np.uint8)
  cv2.fillPoly(mask, list(tris), 1, lineType=cv2.LINE_8, shift=4)
  return mask > 0


def _iou(a, b):
  return float((a & b).sum() / max((a | b).sum(), 1))


def test_render_poses_end_to_end(tmp_path):
  from fmgs_jax.data import load_dataset
  from fmgs_jax.train import loop
  workdir = str(tmp_path / "run")
  c = _tiny_config(str(tmp_path / "data"))
  loop.train(c, workdir)
  train = load_dataset(c.data, "train")
  rec = train.records[0]
  K, w2c = train.camera(0)
  pose0 = np.asarray(rec.pose, np.float64).reshape(24, 3)
  raised = pose0.copy()
  raised[16] = [0.0, 0.0, 1.2]  # left shoulder: the arm goes up
  raised[17] = [0.0, 0.0, -1.2]  # right shoulder
  cam_x = w2c[0, :3]  # the camera's x axis in the world: move sideways by 0.3 m
  transl = np.stack([rec.transl, rec.transl, rec.transl + 0.3 * cam_x])
  poses = np.stack([pose0, raised, pose0])
  np.savez(tmp_path / "motion.npz", poses=poses.reshape(3, 72), transl=transl)
  c.render.poses = str(tmp_path / "motion.npz")
  c.render.output = str(tmp_path / "frames")  # a folder: lossless PNG frames
  out = animate.render_poses(c, workdir)
  assert out == c.render.output
  files = sorted(os.listdir(out))
  assert files == ["00000.png", "00001.png", "00002.png"]
  grids = [imageio.imread(os.path.join(out, f)) for f in files]
  assert all(g.shape == (24 + H, 3 * W + 2 * 4, 3) for g in grids)

  model = body_lib.model_from_config(c.body)
  fg, ref = [], []
  for k, g in enumerate(grids):
    normals = g[24:, W + 4:2 * W + 4].astype(int)  # the middle panel; white where alpha <= 0.5
    fg.append(np.any(normals != 255, axis=-1))
    ref.append(_mesh_silhouette(model, np.zeros(model.num_betas), poses[k], transl[k], K, w2c))
    # Rendered normals face the camera (OpenCV colours: blue = n_z * 0.5 + 0.5 < 0.5).
    assert np.mean(normals[fg[-1]][:, 2] < 128) > 0.9
    # Colour panel shows the training background (black) away from the body.
    colour = g[24:, :W]
    assert np.all(colour[~np.asarray(cv2.dilate(fg[-1].astype(np.uint8), np.ones((5, 5))), bool)] < 8)
  iou = np.array([[_iou(fg[i], ref[j]) for j in range(3)] for i in range(3)])
  # Each frame's silhouette matches its own pose and translation, and not the others'.
  assert np.all(np.diag(iou) > 0.75), iou  # measured 0.84-0.86 (1000 surfels, 48 x 48)
  for i in range(3):
    for j in range(3):
      if i != j:
        assert iou[i, i] > iou[i, j] + 0.05, iou
