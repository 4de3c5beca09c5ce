"""Readers on tiny fixtures written in each dataset's exact layout; expectations computed from the files."""

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import data_layouts
from fmgs_jax.data import DatasetError, load_dataset, stack_frames


def _project(K, E, x):
  """Pixel of world point x with intrinsics K and world->camera E (whatever K's pixel convention)."""
  xc = E[:3, :3] @ x + E[:3, 3]
  uvw = K @ xc
  return uvw[:2] / uvw[2]


def test_people_snapshot_train_split(tmp_path, data_config):
  truth = data_layouts.write_people_snapshot(str(tmp_path), n=6)
  data_config.name = "people_snapshot"
  data_config.root = str(tmp_path)
  data_config.frames.train = (1, -1, 2)
  ds = load_dataset(data_config, "train")
  assert len(ds) == 3 and ds.meta.frame_ids == (1, 3, 5)
  assert (ds.meta.height, ds.meta.width) == (12, 16)
  for i, k in enumerate((1, 3, 5)):
    f = ds[i]
    np.testing.assert_allclose(f.image, truth["images"][k] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(f.mask, truth["masks"][k].astype(np.float32))
    np.testing.assert_allclose(f.pose, truth["thetas"][k].reshape(24, 3), atol=1e-6)
    np.testing.assert_allclose(f.transl, truth["transl"][k], atol=1e-6)
    np.testing.assert_allclose(f.betas, truth["betas"], atol=1e-6)
    np.testing.assert_allclose(f.world_to_camera, truth["E"], atol=1e-6)
    assert int(f.frame_index) == k and int(f.sample_index) == i and int(f.camera_index) == 0
    assert f.gt_depth is None and f.prior_normal is None
  # OpenCV pixel centres at integers -> fmgs-jax's at +0.5.
  x = np.array([0.2, 0.1, 0.5])
  np.testing.assert_allclose(_project(ds[0].K, truth["E"], x), _project(truth["K"], truth["E"], x) + 0.5,
                             atol=1e-4)
  batch = stack_frames([ds[0], ds[1]])
  assert batch.image.shape == (2, 12, 16, 3) and batch.pose.shape == (2, 24, 3)
  assert batch.frame_index.shape == (2,) and batch.gt_depth is None


def test_people_snapshot_image_scale_matches_block_average(tmp_path, data_config):
  truth = data_layouts.write_people_snapshot(str(tmp_path), n=2, h=12, w=16)
  data_config.update(dict(name="people_snapshot", root=str(tmp_path), image_scale=0.5))
  ds = load_dataset(data_config, "train")
  f = ds[1]
  assert f.image.shape == (6, 8, 3) and f.mask.shape == (6, 8)
  blocks = truth["images"][1].reshape(6, 2, 8, 2, 3).mean(axis=(1, 3)) / 255.0
  np.testing.assert_allclose(f.image, blocks, atol=1e-5)
  np.testing.assert_allclose(f.mask, truth["masks"][1].reshape(6, 2, 8, 2).mean(axis=(1, 3)), atol=1e-6)
  # A point's continuous pixel position (centres at +0.5) halves with the image.
  x = np.array([-0.3, 0.2, 0.4])
  expected = (_project(truth["K"], truth["E"], x) + 0.5) * 0.5
  np.testing.assert_allclose(_project(f.K, truth["E"], x), expected, atol=1e-4)
  K, E = ds.camera(1)
  np.testing.assert_allclose(K, f.K)
  np.testing.assert_allclose(E, f.world_to_camera)


def test_people_snapshot_refined_poses_and_splits(tmp_path, data_config):
  truth = data_layouts.write_people_snapshot(str(tmp_path), n=6, refined={"test": [4, 5]})
  data_config.update(dict(name="people_snapshot", root=str(tmp_path)))
  data_config.frames.test = (4, 6, 1)
  data_config.frames.novel_pose = (4, 6, 1)
  for split in ("test", "novel_pose"):
    ds = load_dataset(data_config, split)
    ref = truth["refined_test"]
    np.testing.assert_allclose(ds[1].pose, ref["thetas"][1].reshape(24, 3), atol=1e-6)
    np.testing.assert_allclose(ds[1].transl, ref["transl"][1], atol=1e-6)
    np.testing.assert_allclose(ds[1].betas, ref["betas"], atol=1e-6)
  data_config.refined_poses = False
  ds = load_dataset(data_config, "test")
  np.testing.assert_allclose(ds[1].pose, truth["thetas"][5].reshape(24, 3), atol=1e-6)
  with pytest.raises(DatasetError, match="single camera"):
    load_dataset(data_config, "novel_view")


def test_zju_folds_rh_th_into_camera_and_undistorts(tmp_path, data_config):
  truth = data_layouts.write_zju(str(tmp_path), n_frames=4, n_cams=3)
  data_config.update(dict(name="zju", root=str(tmp_path), train_camera=1, principal_point_shift=0.0))
  data_config.frames.train = (0, 4, 2)
  ds = load_dataset(data_config, "train")
  assert len(ds) == 2 and ds.meta.frame_ids == (0, 2) and ds.meta.camera_ids == (1, 1)
  f = ds[1]
  p = truth["params"][2]
  np.testing.assert_allclose(f.pose, p["poses"].reshape(24, 3), atol=1e-6)
  np.testing.assert_allclose(f.transl, 0.0)
  np.testing.assert_allclose(f.betas, p["shapes"][0], atol=1e-6)
  # Hand-computed: a body-model point goes to the world by R(Rh) x + Th, then through [R | T / 1000].
  x_body = np.array([0.3, -0.4, 0.2])
  x_world = Rotation.from_rotvec(p["Rh"][0]).as_matrix() @ x_body + p["Th"][0]
  x_cam = truth["R"][1] @ x_world + truth["T"][1][:, 0] / 1000.0
  np.testing.assert_allclose(f.world_to_camera[:3, :3] @ x_body + f.world_to_camera[:3, 3], x_cam,
                             atol=1e-5)
  # Undistortion with D against cv2.undistort (whose fixed-point 1/32-pixel maps differ slightly on
  # these noise images; test_data_cameras checks the geometry exactly); masks: part ids != 0 -> 1.
  img, msk = truth["images"][(2, 1)]
  K, D = truth["K"][1], truth["D"][1]
  expected = cv2.undistort(img.astype(np.float32) / 255.0, K, D)
  inner = np.s_[2:-2, 2:-2]
  assert np.abs(f.image[inner] - expected[inner]).max() < 0.04
  assert np.abs(f.image[inner] - expected[inner]).mean() < 4e-3
  expected_mask = cv2.undistort((msk != 0).astype(np.float32), K, D)
  assert np.abs(f.mask[inner] - expected_mask[inner]).mean() < 1e-2
  np.testing.assert_allclose(f.K, K, atol=1e-6)

  data_config.frames.novel_view = (0, 4, 3)
  nv = load_dataset(data_config, "novel_view")
  assert nv.meta.camera_ids == (0, 0, 2, 2) and nv.meta.frame_ids == (0, 3, 0, 3)


def test_humannerf_folder(tmp_path, data_config):
  truth = data_layouts.write_humannerf(str(tmp_path), n=4)
  data_config.update(dict(name="humannerf", root=str(tmp_path), principal_point_shift=0.0))
  data_config.frames.train = (0, 3, 1)
  data_config.frames.novel_pose = (3, -1, 1)
  ds = load_dataset(data_config, "train")
  assert len(ds) == 3
  name = "frame_000001"
  f = ds[1]
  img, msk = truth["images"][name]
  np.testing.assert_allclose(f.image, img / 255.0, atol=1e-6)
  np.testing.assert_allclose(f.mask, msk / 255.0, atol=1e-6)
  info, cam = truth["infos"][name], truth["cams"][name]
  x_body = np.array([0.1, 0.5, -0.2])
  x_cam = cam["extrinsics"][:3, :3] @ (Rotation.from_rotvec(info["Rh"]).as_matrix() @ x_body + info["Th"])
  x_cam += cam["extrinsics"][:3, 3]
  np.testing.assert_allclose(f.world_to_camera[:3, :3] @ x_body + f.world_to_camera[:3, 3], x_cam, atol=1e-5)
  np.testing.assert_allclose(f.betas, info["betas"], atol=1e-6)
  assert len(load_dataset(data_config, "novel_pose")) == 1
  assert ds.rest_joints is None  # neither canonical_joints.pkl nor tpose_joints


def test_humannerf_rest_joints_from_canonical_joints_or_tpose_joints(tmp_path, data_config):
  rng = np.random.default_rng(3)
  canonical, tpose = rng.normal(size=(24, 3)), rng.normal(size=(24, 3))
  data_config.update(dict(name="humannerf", principal_point_shift=0.0))
  data_config.frames.train = (0, 3, 1)
  for sub, kw, want in (("both", dict(rest_joints=canonical, tpose_joints=tpose), canonical),
                        ("tpose", dict(tpose_joints=tpose), tpose)):
    data_layouts.write_humannerf(str(tmp_path / sub), n=3, **kw)
    data_config.root = str(tmp_path / sub)
    np.testing.assert_array_equal(load_dataset(data_config, "train").rest_joints, want)
  data_layouts.write_humannerf(str(tmp_path / "bad"), n=3, rest_joints=np.zeros((23, 3)))
  data_config.root = str(tmp_path / "bad")
  with pytest.raises(DatasetError, match=r"canonical_joints.pkl \['joints'\].*\(23, 3\)"):
    load_dataset(data_config, "train")
