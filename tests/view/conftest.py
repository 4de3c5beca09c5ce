"""A tiny avatar checkpoint written by the training loop (as tests/eval/test_animate.py makes one),
shared by the viewer tests, and a pose file for its animation."""

import numpy as np
import pytest

from configs import synthetic

H = W = 48


def tiny_config(data_root: str):
  c = synthetic.get_config()
  c.fit.enabled = False  # the subject fit has its own tests (tests/fit)
  s = c.data.synthetic
  s.height, s.width, s.focal = H, W, 80.0
  s.num_train_frames, s.num_novel_pose_frames, s.num_novel_view_cameras, s.num_novel_view_frames = 2, 1, 1, 1
  s.supersample = 1
  c.data.root = data_root
  c.body.num_faces = 1000
  c.model.grid.num_levels, c.model.grid.log2_table_size, c.model.grid.max_resolution = 4, 10, 64
  c.model.skinning_grid.num_levels, c.model.skinning_grid.log2_table_size = 2, 8
  c.model.geometry_hidden, c.model.tilt_hidden, c.model.skinning_hidden = (16,), (16,), (16,)
  c.train.steps = 0  # a checkpoint of the initial avatar: the tests are about cameras and serving
  c.view.height = c.view.moving_height = 64  # one image size: one compile per test session
  return c


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """(config, workdir) of a checkpointed tiny avatar, with a 3-frame pose file as c.render.poses."""
  from fmgs_jax.data import load_dataset
  from fmgs_jax.train import loop
  base = tmp_path_factory.mktemp("view_run")
  c = tiny_config(str(base / "data"))
  workdir = str(base / "run")
  loop.train(c, workdir)
  rec = load_dataset(c.data, "train").records[0]
  poses = np.tile(np.asarray(rec.pose, np.float64).reshape(1, 72), (3, 1))
  poses[1, 16 * 3 + 2], poses[2, 17 * 3 + 2] = 1.2, -1.2  # raise one arm, then the other
  np.savez(base / "motion.npz", poses=poses)
  c.render.poses = str(base / "motion.npz")
  return c, workdir
