"""The synthetic capture's ground truth is self-consistent, checked with trimesh proximity queries.

The generator is exercised with the mannequin-x `wooden` mannequin posed directly (a body that is
independent of fmgs_jax.body), on a tiny configuration.
"""

import os

import mannequin
import numpy as np
import pytest
from scipy.spatial import cKDTree
import trimesh

from configs import default
from fmgs_jax.data import load_dataset, stack_frames, synthetic


def mannequin_body():
  m = mannequin.Mannequin("wooden")
  w = m._weights  # pylint: disable=protected-access
  joint = np.asarray(w.skin_joint_indices)[np.arange(len(w.skin_weights)), np.argmax(w.skin_weights, axis=1)]
  parts = np.where(joint < 24, joint, synthetic.SMPL_JOINT_NAMES.index("left_wrist"))

  def pose(betas, theta, transl):
    m.reshape(np.asarray(betas, np.float32)[:10])
    p = m.rest_pose()
    p["body_pose"] = np.asarray(theta[1:22], np.float32)
    p["global_rotation"] = np.asarray(theta[0], np.float32)
    p["global_translation"] = np.asarray(transl, np.float32)
    return np.asarray(m.vertices(p), np.float64)

  return synthetic.Body(faces=np.asarray(m.faces), vertex_parts=parts,
                        part_names=synthetic.SMPL_JOINT_NAMES, num_betas=10, pose=pose)


def tiny_config(root):
  c = default.get_config().data
  c.root = str(root)
  s = c.synthetic
  s.update(dict(height=40, width=32, focal=60.0, num_train_frames=2, num_novel_pose_frames=1,
                num_novel_view_cameras=1, num_novel_view_frames=1, supersample=1))
  return c


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
  root = tmp_path_factory.mktemp("synthetic")
  c = tiny_config(root)
  body = mannequin_body()
  synthetic.generate(c.synthetic, c.root, body)
  return c, body


def closest_point(mesh, points, k=32):
  """Closest points on the mesh (exact point-triangle distances over the k triangles with the nearest
  centroids), their distances and triangle ids; trimesh.proximity would need rtree."""
  _, cand = cKDTree(mesh.triangles_center).query(points, k=k)
  tris = mesh.triangles[cand.reshape(-1)]
  q = trimesh.triangles.closest_point(tris, np.repeat(points, k, axis=0)).reshape(len(points), k, 3)
  d = np.linalg.norm(q - points[:, None], axis=-1)
  best = np.argmin(d, axis=1)
  rows = np.arange(len(points))
  return q[rows, best], d[rows, best], cand[rows, best]


def _backproject(frame):
  """World points (N, 3) of the masked pixels from gt_depth, and their pixel indices."""
  ii, jj = np.nonzero(frame.gt_depth > 0)
  z = frame.gt_depth[ii, jj]
  pix = np.stack([jj + 0.5, ii + 0.5, np.ones_like(z)], -1)
  x_cam = (pix @ np.linalg.inv(frame.K).T) * z[:, None]
  E = np.linalg.inv(frame.world_to_camera.astype(np.float64))
  return x_cam @ E[:3, :3].T + E[:3, 3], ii, jj


def test_depth_normals_mask_parts_match_the_mesh(capture):
  c, body = capture
  ds = load_dataset(c, "train")
  assert len(ds) == 2 and ds.meta.part_names == synthetic.SMPL_JOINT_NAMES
  for i in range(len(ds)):
    f = ds[i]
    mesh = ds.gt_mesh(i)
    np.testing.assert_array_equal(f.mask, (f.gt_depth > 0).astype(np.float32))
    np.testing.assert_array_equal(f.gt_parts >= 0, f.gt_depth > 0)
    assert f.mask.sum() > 100
    points, ii, jj = _backproject(f)
    closest, dist, tri = closest_point(mesh, points)
    assert np.max(dist) < 2e-4
    n = mesh.face_normals[tri] @ f.world_to_camera[:3, :3].T.astype(np.float64)
    cos = np.abs(np.sum(n * f.gt_normal[ii, jj], axis=1))
    assert np.mean(cos > 0.999) > 0.97  # closest-triangle ties on edges may pick a neighbour
    ray = np.stack([jj + 0.5, ii + 0.5, np.ones_like(jj, dtype=np.float64)], -1) @ np.linalg.inv(f.K).T
    assert np.all(np.sum(f.gt_normal[ii, jj] * ray, axis=1) < 0)  # facing the camera
    np.testing.assert_allclose(np.linalg.norm(f.gt_normal[ii, jj], axis=1), 1.0, atol=2e-3)
    nearest = mesh.faces[tri][np.arange(len(tri)), np.argmax(
        trimesh.triangles.points_to_barycentric(mesh.triangles[tri], closest), axis=1)]
    assert np.mean(body.vertex_parts[nearest] == f.gt_parts[ii, jj]) > 0.97


def test_held_out_cameras_and_poses_see_the_same_subject(capture):
  c, _ = capture
  train = load_dataset(c, "train")
  nv = load_dataset(c, "novel_view")
  npose = load_dataset(c, "novel_pose")
  assert nv.meta.camera_ids == (1,) and npose.meta.camera_ids == (0,)
  f = nv[0]
  k = int(f.frame_index)
  mesh = train.gt_mesh(list(train.meta.frame_ids).index(k))
  np.testing.assert_allclose(nv.gt_mesh(0).vertices, mesh.vertices)
  np.testing.assert_allclose(f.pose, train[k].pose)
  assert not np.allclose(f.world_to_camera, train[k].world_to_camera, atol=1e-2)
  points, _, _ = _backproject(f)
  assert np.max(closest_point(mesh, points)[1]) < 2e-4
  # Every surface point projects inside the silhouette (one-pixel tolerance at its border).
  x = mesh.vertices @ f.world_to_camera[:3, :3].T + f.world_to_camera[:3, 3]
  uv = x @ f.K.T
  uv = uv[:, :2] / uv[:, 2:]
  assert np.all((uv >= 0) & (uv < [f.width, f.height]))
  grown = np.pad(f.mask, 1)
  grown = np.max([grown[a:a + f.height, b:b + f.width] for a in range(3) for b in range(3)], axis=0)
  assert np.mean(grown[uv[:, 1].astype(int), uv[:, 0].astype(int)] > 0) > 0.999
  # Held-out poses differ from every training pose.
  for i in range(len(train)):
    assert not np.allclose(npose[0].pose, train[i].pose, atol=1e-2)
  batch = stack_frames([train[0], npose[0]])
  assert batch.gt_normal.shape == (2, 40, 32, 3) and batch.gt_parts.dtype == np.int32


def test_generation_is_cached_and_deterministic(capture, tmp_path):
  c, body = capture
  stamp = os.path.getmtime(os.path.join(c.root, "synthetic", "generation.json"))
  load_dataset(c, "novel_pose")  # current: not regenerated
  assert os.path.getmtime(os.path.join(c.root, "synthetic", "generation.json")) == stamp
  c2 = tiny_config(tmp_path)
  assert not synthetic.is_current(str(tmp_path), c2.synthetic)
  synthetic.generate(c2.synthetic, c2.root, body)
  assert synthetic.is_current(str(tmp_path), c2.synthetic)
  for name in ("images/image_0001.png", "depth/depth_0001.npy", "poses.npz", "cameras.npz"):
    a = open(os.path.join(c.root, "synthetic", "train", name), "rb").read()
    b = open(os.path.join(c2.root, "synthetic", "train", name), "rb").read()
    assert a == b, name
  c2.synthetic.seed = 1
  assert not synthetic.is_current(str(tmp_path), c2.synthetic)


def test_varied_motion_stays_within_limits():
  poses = synthetic.varied_motion(200, np.random.default_rng(3))
  for name, axis, lo, hi in synthetic._LIMITS:  # pylint: disable=protected-access
    v = poses[:, synthetic.SMPL_JOINT_NAMES.index(name), axis]
    assert lo - 1e-9 <= v.min() and v.max() <= hi + 1e-9, name
  assert np.ptp(poses[:, synthetic.SMPL_JOINT_NAMES.index("left_knee"), 0]) > 0.5


def test_clothing_in_range_and_wrinkles_zero_mean_with_the_configured_rms(data_config):
  s = data_config.synthetic
  points = np.random.default_rng(0).uniform(-1.0, 1.0, size=(200_000, 3))  # canonical points, metres
  s.wrinkle_amplitude = 0.0
  clothing = synthetic.clothing_offset(synthetic.make_appearance(s, np.random.default_rng(5)), points)
  assert clothing.min() >= 0.0 and clothing.max() <= s.clothing_amplitude
  s.wrinkle_amplitude = 0.004
  wrinkled = synthetic.clothing_offset(synthetic.make_appearance(s, np.random.default_rng(5)), points)
  wrinkles = wrinkled - clothing  # the same subject: the wrinkles have their own generator
  # sqrt(2 / k) * sum of k sines with independent phases: mean 0, RMS 1 over space.
  assert abs(wrinkles.mean()) < 0.05 * s.wrinkle_amplitude
  np.testing.assert_allclose(np.sqrt(np.mean(wrinkles ** 2)), s.wrinkle_amplitude, rtol=0.1)
  freq = np.linalg.norm(synthetic.make_appearance(s, np.random.default_rng(5)).wrinkle_w, axis=1)
  assert np.all((freq >= 0.7 * s.wrinkle_frequency - 1e-9) & (freq <= s.wrinkle_frequency + 1e-9))
