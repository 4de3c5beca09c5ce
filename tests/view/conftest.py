"""A tiny avatar checkpoint written by the training loop (as tests/eval/test_animate.py makes one),
shared by the viewer tests, and a pose file for its animation."""

import numpy as np
import pytest

from configs import synthetic

H = W = 48


def tiny_config(data_root: str):
  c = synthetic.get_config("tiny")  # 0 steps: the tests are about cameras and serving
  c.data.root = data_root
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
