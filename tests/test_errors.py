"""What a user sees when something is wrong: one line and exit status 2 for each kind of user error
(config, dataset, checkpoint, input file), run as `python -m fmgs_jax.main` in a subprocess; a mistyped
override names the key; a damaged newest checkpoint costs one checkpoint, not the run.

The references: an uninterrupted run's parameters (the fallback must reproduce them exactly), and the
files each message must name. One tiny trained workdir is shared by the module.
"""

import logging
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

# The tiny run: configs/synthetic.py:tiny with these `--config.x=v` overrides (the subprocesses), or
# applied to its ConfigDict (in-process).
TINY = {
    "data.synthetic.height": 32, "data.synthetic.width": 32, "data.synthetic.focal": 53.0,
    "loss.depth.num_pairs": 64,
    "train.steps": 4, "train.checkpoint_every": 2, "train.log_every": 1, "train.image_every": 1000,
}


def tiny_config(data_root: str):
  c = synthetic.get_config("tiny")
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
  cmd = [sys.executable, "-m", "fmgs_jax.main", f"--config={CONFIG}:tiny", f"--workdir={workdir}", *overrides, *args]
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


def test_every_user_error_class_derives_from_user_error():
  from fmgs_jax import errors
  from fmgs_jax.data import DatasetError
  from fmgs_jax.eval.animate import PoseFileError
  from fmgs_jax.fit.stage import FitError
  from fmgs_jax.train.checkpoint import CheckpointError
  from launch.ablations import LaunchError
  for cls in (DatasetError, PoseFileError, FitError, CheckpointError, LaunchError, errors.ConfigError,
              errors.InputError, errors.MissingInputError, errors.MissingPackageError):
    assert issubclass(cls, errors.UserError), cls
  # A bug is not a user error, even of a built-in type a user error also derives from.
  assert not issubclass(ValueError, errors.UserError)


def test_a_mistyped_override_names_that_key_and_the_closest_field(tmp_path):
  proc = run_main(str(tmp_path / "w"), "--config.train.stepz=3")
  line = assert_user_error(proc)
  assert line == PREFIX + "--config.train.stepz: no such field; did you mean train.steps?"
  proc = run_main(str(tmp_path / "w"), "--config.optim.groups.apearance.lr=1")
  assert assert_user_error(proc).endswith("did you mean optim.groups.appearance.lr?")
  cmd = [sys.executable, "-m", "fmgs_jax.main", "--config=configs/synthetc.py", f"--workdir={tmp_path}"]
  proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True,
                        check=False)
  assert assert_user_error(proc) == PREFIX + "--config=configs/synthetc.py: no such file"


def test_config_error_is_one_line(tmp_path, trained):
  _, data_root, _, _, _ = trained
  proc = run_main(str(tmp_path / "w"), "--config.optim.groups.appearance.lr=-0.5", data_root=data_root)
  assert_user_error(proc, "config.optim.groups.appearance.lr must be >= 0", "-0.5")


def test_dataset_error_is_one_line_and_debug_shows_its_traceback(tmp_path):
  missing = str(tmp_path / "no_such_capture")
  args = ("--config.data.name=zju", f"--config.data.root={missing}")
  assert_user_error(run_main(str(tmp_path / "w"), *args), missing, "dataset folder not found")
  proc = run_main(str(tmp_path / "w"), *args, "--debug")
  assert proc.returncode == 1 and "Traceback" in proc.stderr and "DatasetError" in proc.stderr


def test_missing_checkpoint_and_bad_pose_file_are_one_line(tmp_path, trained):
  _, data_root, _, _, _ = trained
  workdir = str(tmp_path / "untrained")
  assert_user_error(run_main(workdir, "--mode=eval", data_root=data_root),
                    f"no checkpoint in {workdir}/checkpoints", "--mode=train")
  poses = str(tmp_path / "motion.npz")
  np.savez(poses, trans=np.zeros((3, 3)))  # no pose array
  assert_user_error(run_main(workdir, "--mode=render", f"--config.render.poses={poses}", data_root=data_root),
                    poses)


def test_every_checkpoint_corrupt_is_one_error_naming_each(tmp_path, trained):
  workdir = _copy_run(trained, tmp_path)
  for step in (2, 4):
    corrupt(os.path.join(workdir, "checkpoints", str(step)))
  proc = run_main(workdir, "--mode=eval", data_root=trained[1])
  line = assert_user_error(proc, "can be restored")
  for step in (2, 4):
    path = os.path.join(workdir, "checkpoints", str(step))
    assert f"{path} (" in line
    assert f"checkpoint {path} cannot be restored" in proc.stderr  # the warning of each


def test_training_falls_back_past_a_corrupt_newest_checkpoint_to_the_uninterrupted_result(tmp_path, trained,
                                                                                         caplog):
  c, _, _, _, at4 = trained
  workdir = _copy_run(trained, tmp_path)
  newest = os.path.join(workdir, "checkpoints", "4")
  corrupt(newest)
  with caplog.at_level(logging.WARNING):
    info = loop.train(c, workdir)
  warned = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
  assert f"checkpoint {newest} cannot be restored" in warned
  moved = os.path.join(workdir, "checkpoints_unreadable", "4")
  assert f"moved the unreadable checkpoint {newest} to {moved}" in warned and os.path.isdir(moved)
  assert info["train_steps"] == 4
  params, restored = params_of(workdir, c)  # the step-4 checkpoint written again, from step 2 on
  assert restored["train_steps"] == 4
  _assert_same(params, at4)


def test_eval_falls_back_past_a_corrupt_newest_checkpoint(tmp_path, trained, caplog):
  c, _, _, at2, _ = trained
  workdir = _copy_run(trained, tmp_path)
  newest = os.path.join(workdir, "checkpoints", "4")
  corrupt(newest)
  with caplog.at_level(logging.WARNING):
    params, info = params_of(workdir, c)  # what --mode=eval, render and view restore
  assert info["train_steps"] == 2
  _assert_same(params, at2)
  assert any(f"checkpoint {newest} cannot be restored" in r.getMessage() for r in caplog.records)
  assert os.path.isdir(newest)  # evaluation moves nothing
