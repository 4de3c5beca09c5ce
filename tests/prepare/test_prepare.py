"""--mode=prepare end to end on a short clip of the synthetic capture, with tiny local models: the
HumanNeRF reader loads the result unchanged and training runs on it; bad inputs end in errors naming
the file.

References independent of the code under test: the masks against a brightness threshold of the frames
(the capture's background is black), the stored Rh / Th against the fitted bodies posed directly
(forward(pose, transl), not through the HumanNeRF fold), the reader's intrinsics against the pinhole
closed form of the field of view.
"""

import json
import os
import pickle

import numpy as np
import pytest

from configs import synthetic, video
from fmgs_jax import errors
import tiny_models as models

N_FRAMES, SIZE, FOV = 5, 48, 60.0


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
  from fmgs_jax.data import load_dataset
  tmp = tmp_path_factory.mktemp("prepare")
  c = synthetic.get_config("tiny")
  c.data.synthetic.num_train_frames = N_FRAMES
  c.data.root = str(tmp / "capture")
  ds = load_dataset(c.data, "train")
  frames = np.stack([np.round(ds[i].image * 255).astype(np.uint8) for i in range(len(ds))])
  return {
      "frames": frames,
      "clip": models.write_clip(str(tmp / "clip.mp4"), frames),
      "seg": models.brightness_segmenter(str(tmp / "seg.pt2")),
      "segformer": models.constant_segformer(str(tmp / "segformer"), person=True),
      "nobody": models.constant_segformer(str(tmp / "nobody"), person=False),
      "pose": models.random_vitpose(str(tmp / "vitpose")),
      "tmp": tmp,
  }


def video_config(assets, clip=None, seg=None):
  c = video.get_config()
  synthetic._make_tiny(c)  # pylint: disable=protected-access  # tiny avatar, 0 steps, no subject fit
  c.data.video = clip or assets["clip"]
  c.prepare.seg_model = seg or assets["seg"]
  c.prepare.pose_model = assets["pose"]
  c.prepare.device = "cpu"
  c.prepare.size = 0  # the clip's 48 x 48
  c.prepare.fov_deg = FOV
  c.priors.sapiens.input_height, c.priors.sapiens.input_width = 64, 48  # the test segmenter takes any size
  c.prepare.fit.steps, c.prepare.fit.global_steps, c.prepare.fit.num_faces = 4, 2, 300
  c.prepare.fit.yaw_candidates = 2
  c.train.steps, c.train.log_every, c.train.image_every, c.train.checkpoint_every = 2, 1, 1000, 1000
  c.loss.depth.num_pairs = 64
  c.eval.lpips_net = ""
  c.isolation.enabled = False  # one summed gradient compiles in a fraction of the time (train/ tests isolation)
  return c


def test_prepare_writes_a_dataset_the_reader_loads_and_training_runs_on(assets, tmp_path):
  from fmgs_jax import body as body_lib
  from fmgs_jax import main
  from fmgs_jax.data import load_dataset
  from fmgs_jax.prepare import run
  from fmgs_jax.train import loop
  c, workdir = video_config(assets), str(tmp_path / "run")
  assert run.needs_prepare(c, workdir)
  main.run_mode(c, workdir, "prepare")
  assert not run.needs_prepare(c, workdir)
  with open(os.path.join(workdir, "prepare_report.json")) as f:
    rep = json.load(f)
  assert rep["frames_decoded"] == N_FRAMES and rep["frames_kept"] == N_FRAMES and rep["frames_dropped"] == []
  assert len(rep["iou_per_frame"]) == len(rep["keypoint_error_px_per_frame"]) == N_FRAMES
  assert os.path.isfile(os.path.join(workdir, "overlay.mp4"))
  for f in ("masks.npz", "keypoints.npz"):
    assert os.path.isfile(os.path.join(workdir, "prepare", f)), f

  ds = load_dataset(c.data, "train", default_root=os.path.join(workdir, "data"))  # the reader, unchanged
  assert len(ds) == N_FRAMES and (ds.meta.height, ds.meta.width) == (SIZE, SIZE)
  f_ref = 0.5 * SIZE / np.tan(np.radians(FOV) / 2)
  np.testing.assert_allclose(ds[0].K, [[f_ref, 0, SIZE / 2], [0, f_ref, SIZE / 2], [0, 0, 1]], rtol=1e-6)
  with open(os.path.join(workdir, "data", "mesh_infos.pkl"), "rb") as f:
    infos = pickle.load(f)
  template = body_lib.model_from_config(c.body)
  for i in range(N_FRAMES):
    fr = ds[i]
    truth = assets["frames"][i].mean(-1) > 12  # the lit person on the black background
    iou = (truth & (fr.mask > 0.5)).sum() / (truth | (fr.mask > 0.5)).sum()
    assert iou > 0.97, (i, iou)
    np.testing.assert_allclose(fr.image, assets["frames"][i] / 255.0, atol=6 / 255)
    # The reader's body (poses, transl 0, Rh / Th folded into the camera) is the fit's body, posed directly.
    posed = np.asarray(body_lib.forward(template, fr.betas, fr.pose, fr.transl).joints, np.float64)
    E = np.asarray(fr.world_to_camera, np.float64)
    cam = posed @ E[:3, :3].T + E[:3, 3]
    name = f"frame_{i:06d}"
    np.testing.assert_allclose(cam, infos[name]["joints"], atol=2e-4)
    assert np.all(np.abs(infos[name]["poses"][:3]) == 0)  # HumanNeRF's layout: the root turn is in Rh

  assert loop.train(c, workdir)["train_steps"] == 2


def test_train_prepares_a_video_only_where_its_dataset_is_missing(assets, tmp_path, monkeypatch):
  from fmgs_jax import main
  from fmgs_jax.prepare import run
  from fmgs_jax.train import loop
  calls = []
  monkeypatch.setattr(run, "prepare", lambda config, workdir: calls.append("prepare") or
                      open(os.path.join(run.data_root(config, workdir), "cameras.pkl"), "wb").close())
  monkeypatch.setattr(loop, "train_and_evaluate", lambda config, workdir: calls.append("train"))
  c, workdir = video_config(assets), str(tmp_path / "run")
  os.makedirs(os.path.join(workdir, "data"))
  main.run_mode(c, workdir, "train")
  main.run_mode(c, workdir, "train")
  assert calls == ["prepare", "train", "train"]


def test_the_transformers_segmenter_finds_the_person_class(assets):
  from fmgs_jax.prepare import masks
  c = video_config(assets, seg=assets["segformer"])
  seg = masks.make_segmenter(c.prepare.seg_model, c)
  np.testing.assert_array_equal(seg.person, [0, 1, 0])
  m = masks.person_masks(assets["frames"][:2], seg, progress=False)
  assert m.shape == (2, SIZE, SIZE) and m.all()  # the bias makes every pixel the person's


def test_missing_video_is_named(assets, tmp_path):
  from fmgs_jax.prepare import run
  path = str(tmp_path / "nope.mp4")
  with pytest.raises(errors.MissingInputError, match="nope.mp4"):
    run.prepare(video_config(assets, clip=path), str(tmp_path / "run"), progress=False)


def test_undecodable_video_is_named(assets, tmp_path):
  from fmgs_jax.prepare import run
  path = tmp_path / "broken.mp4"
  path.write_bytes(b"\x00not a video" * 64)
  with pytest.raises(errors.InputError, match="broken.mp4.*not a video"):
    run.prepare(video_config(assets, clip=str(path)), str(tmp_path / "run"), progress=False)


def test_a_clip_without_a_person_is_named(assets, tmp_path):
  from fmgs_jax.prepare import run
  with pytest.raises(errors.InputError, match="clip.mp4: no person found in any of its 5 frames"):
    run.prepare(video_config(assets, seg=assets["nobody"]), str(tmp_path / "run"), progress=False)


def test_a_single_frame_is_named(assets, tmp_path):
  from fmgs_jax.prepare import frames
  path = models.write_clip(str(tmp_path / "one.mp4"), assets["frames"][:1])
  with pytest.raises(errors.InputError, match="one.mp4: only 1 frame"):
    frames.read_frames(path, progress=False)


def test_image_folder_of_mixed_sizes_is_named(tmp_path):
  import imageio.v3 as iio
  from fmgs_jax.prepare import frames
  iio.imwrite(tmp_path / "a.png", np.zeros((8, 6, 3), np.uint8))
  iio.imwrite(tmp_path / "b.png", np.zeros((8, 7, 3), np.uint8))
  with pytest.raises(errors.InputError, match="b.png: frame of 7x8 pixels after frames of 6x8"):
    frames.read_frames(str(tmp_path), progress=False)


def test_subsampling_keeps_the_source_index(assets):
  from fmgs_jax.prepare import frames
  fr = frames.read_frames(assets["clip"], every=2, max_frames=2, size=24, progress=False)
  np.testing.assert_array_equal(fr.source_index, [0, 2])
  assert fr.images.shape == (2, 24, 24, 3) and fr.source_hw == (SIZE, SIZE)
