"""What a user sees when something is wrong: one line and exit status 2 for each kind of user error
(config, dataset, checkpoint, input file), run as `python -m fmgs_jax.main` in a subprocess; a mistyped
override names the key; a damaged newest checkpoint costs one checkpoint, not the run.

The references: an uninterrupted run's parameters (the fallback must reproduce them exactly), and the
files each message must name. One tiny trained workdir is shared by the module.
"""

import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import synthetic
from fmgs_jax.train import loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "synthetic.py")
PREFIX = "fmgs_jax.main: error: "

# The tiny run, as `--config.x=v` overrides (the subprocesses) and applied to a ConfigDict (in-process).
TINY = {
    "fit.enabled": False,  # the subject fit has its own tests (tests/fit)
    "data.synthetic.height": 32, "data.synthetic.width": 32, "data.synthetic.focal": 53.0,
    "data.synthetic.num_train_frames": 2, "data.synthetic.num_novel_pose_frames": 1,
    "data.synthetic.num_novel_view_cameras": 1, "data.synthetic.num_novel_view_frames": 1,
    "data.synthetic.supersample": 1,
    "body.num_faces": 1000,
    "model.grid.num_levels": 4, "model.grid.log2_table_size": 10, "model.grid.max_resolution": 64,
    "model.skinning_grid.num_levels": 2, "model.skinning_grid.log2_table_size": 8,
    "model.geometry_hidden": (16,), "model.tilt_hidden": (16,), "model.skinning_hidden": (16,),
    "loss.depth.num_pairs": 64,
    "train.steps": 4, "train.checkpoint_every": 2, "train.log_every": 1, "train.image_every": 1000,
}


def tiny_config(data_root: str):
  c = synthetic.get_config()
  for key, value in TINY.items():
    *parents, leaf = key.split(".")
    node = c
    for p in parents:
      node = node[p]
    node[leaf] = value
  c.data.root = data_root
  return c


def run_main(workdir: str, *args: str, data_root: str = "") -> subprocess.CompletedProcess:
  """`python -m fmgs_jax.main` on the tiny config in a subprocess; stdout and stderr captured."""
  overrides = [f"--config.{k}={v}" for k, v in TINY.items()]
  if data_root:
    overrides.append(f"--config.data.root={data_root}")
  cmd = [sys.executable, "-m", "fmgs_jax.main", f"--config={CONFIG}", f"--workdir={workdir}", *overrides, *args]
  env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
  return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
  """The run ended on one user-error line naming every needle, status 2, no traceback; returns the line."""
  err = proc.stderr
  assert proc.returncode == 2, (proc.returncode, err[-3000:])
  assert "Traceback" not in err and "Event loop is closed" not in err, err[-3000:]
  last = err.rstrip("\n").split("\n")[-1]
  assert last.startswith(PREFIX), err[-3000:]
  assert err.count(PREFIX) == 1
  for n in needles:
    assert n in last, (n, last)
  return last


def corrupt(step_dir: str) -> None:
  """Overwrites every array file of a checkpoint folder (orbax's d/ data files) with garbage."""
  n = 0
  for root, _, files in os.walk(step_dir):
    for f in files:
      if os.sep + "d" + os.sep in os.path.join(root, f) + os.sep or os.path.basename(root) == "d":
        with open(os.path.join(root, f), "wb") as fh:
          fh.write(b"not an array")
        n += 1
  assert n, f"no array file under {step_dir}"


def params_of(workdir: str, config):
  _, params, info = loop.restore_params(config, workdir)
  return jax.tree.map(np.asarray, params), info


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """(config, data root, workdir with checkpoints 2 and 4, its step-2 and step-4 params): a tiny run."""
  base = tmp_path_factory.mktemp("errors")
  data_root = str(base / "data")
  c = tiny_config(data_root)
  workdir = str(base / "run")
  loop.train(c, workdir)
  assert sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit()) == [2, 4]
  at4, info = params_of(workdir, c)
  assert info["train_steps"] == 4
  early = str(base / "early")  # the same run stopped at step 2: the reference of a fallback to step 2
  shutil.copytree(workdir, early)
  shutil.rmtree(os.path.join(early, "checkpoints", "4"))
  at2, _ = params_of(early, c)
  return c, data_root, workdir, at2, at4


def _copy_run(trained, tmp_path, name="run"):
  _, _, workdir, _, _ = trained
  dst = str(tmp_path / name)
  shutil.copytree(workdir, dst)
  return dst


def _assert_same(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)
