"""Every failure class gets a message naming the file and field; skippable frames are skipped and counted."""

import os
import pickle

import numpy as np
import pytest

import data_layouts
from fmgs_jax.data import DatasetError, load_dataset


@pytest.fixture
def ps(tmp_path, data_config):
  data_layouts.write_people_snapshot(str(tmp_path), n=6)
  data_config.update(dict(name="people_snapshot", root=str(tmp_path), max_skipped_fraction=0.34))
  return tmp_path, data_config


def _error(config, split="train"):
  with pytest.raises(DatasetError) as e:
    load_dataset(config, split)
  return str(e.value)


def test_missing_files(ps):
  root, c = ps
  os.remove(root / "cameras.npz")
  msg = _error(c)
  assert str(root / "cameras.npz") in msg and "file not found" in msg
  c.root = str(root / "nope")
  assert "not found" in _error(c)
  c.root = ""
  assert "data.root" in _error(c)


def test_frame_counts_disagree(ps):
  root, c = ps
  os.remove(root / "masks" / "mask_0005.npy")
  z = dict(np.load(root / "poses.npz"))
  np.savez(root / "poses.npz", betas=z["betas"], thetas=z["thetas"][:4], transl=z["transl"][:4])
  msg = _error(c)
  assert "5 masks but 6 images" in msg
  assert str(root / "poses.npz") in msg and "4 frames but 6 images" in msg


def test_image_mask_size_mismatch_is_skipped_then_fatal(ps):
  root, c = ps
  np.save(root / "masks" / "mask_0002.npy", np.zeros((5, 5), bool))
  ds = load_dataset(c, "train")
  assert len(ds) == 5 and ds.meta.num_skipped == 1 and 2 not in ds.meta.frame_ids
  for k in (0, 1, 3):
    np.save(root / "masks" / f"mask_{k:04d}.npy", np.zeros((5, 5), bool))
  msg = _error(c)
  assert "4 of 6 frames are unusable" in msg and "mask: size 5x5 differs from image" in msg


def test_nan_and_absurd_poses_are_skipped(ps, caplog):
  root, c = ps
  z = dict(np.load(root / "poses.npz"))
  z["thetas"][1, 7] = np.nan
  z["thetas"][4, 30] = 40.0
  np.savez(root / "poses.npz", **z)
  ds = load_dataset(c, "train")
  assert ds.meta.frame_ids == (0, 2, 3, 5) and ds.meta.num_skipped == 2
  c.max_skipped_fraction = 0.2
  msg = _error(c)
  assert f"{root / 'poses.npz'} (frame 1): pose: pose has NaN or inf values" in msg


def test_non_positive_focal_length(ps):
  root, c = ps
  z = dict(np.load(root / "cameras.npz"))
  z["intrinsic"][1, 1] = -3.0
  np.savez(root / "cameras.npz", **z)
  msg = _error(c)
  assert f"{root / 'cameras.npz'}: intrinsics: non-positive focal length" in msg


def test_unreadable_image_is_skipped_and_named(ps):
  root, c = ps
  (root / "images" / "image_0003.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
  ds = load_dataset(c, "train")
  assert ds.meta.num_skipped == 1 and 3 not in ds.meta.frame_ids
  for k in (0, 1):
    (root / "images" / f"image_{k:04d}.png").write_bytes(b"garbage")
  msg = _error(c)
  assert f"{root / 'images' / 'image_0000.png'}: image: unreadable" in msg


def test_bad_frame_range_names_the_config_field(ps):
  _, c = ps
  c.frames.train = (0, 50, 1)
  assert "data.frames.train" in _error(c)


def test_zju_missing_params_and_bad_camera(tmp_path, data_config):
  data_layouts.write_zju(str(tmp_path), n_frames=3, n_cams=2)
  data_config.update(dict(name="zju", root=str(tmp_path)))
  os.remove(tmp_path / "new_params" / "1.npy")
  annots = np.load(tmp_path / "annots.npy", allow_pickle=True).item()
  annots["cams"]["K"][0][0, 0] = 0.0
  np.save(tmp_path / "annots.npy", annots, allow_pickle=True)
  msg = _error(data_config)
  assert str(tmp_path / "new_params" / "1.npy") in msg and "SMPL parameters: file not found" in msg
  assert "annots.npy cams[K|R|T][0]: intrinsics: non-positive focal length" in msg
  data_config.train_camera = 5
  assert "data.train_camera: camera 5 out of range" in _error(data_config)


def test_humannerf_frames_without_cameras(tmp_path, data_config):
  data_layouts.write_humannerf(str(tmp_path), n=3)
  with open(tmp_path / "cameras.pkl", "rb") as f:
    cams = pickle.load(f)
  del cams["frame_000002"]
  with open(tmp_path / "cameras.pkl", "wb") as f:
    pickle.dump(cams, f)
  data_config.update(dict(name="humannerf", root=str(tmp_path)))
  msg = _error(data_config)
  assert str(tmp_path / "cameras.pkl") in msg and "1 of 3 frames have no cameras" in msg
