"""Checkpoint round trip, keeping the last few, the fallback past a damaged newest checkpoint, and an
error naming every checkpoint when none can be restored."""

import logging
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fmgs_jax.train import checkpoint


def _state(seed):
  params = {"a": jax.random.normal(jax.random.key(seed), (4, 3)), "b": {"c": jnp.arange(5.0)}}
  opt = optax.adam(1e-3)
  return {"params": params, "opt": opt.init(params), "step": jnp.int32(seed),
          "key": jax.random.key_data(jax.random.key(seed + 1)), "data": {"epoch": np.int32(2), "pos": np.int32(7)}}


def test_round_trip_and_latest(tmp_path):
  m = checkpoint.manager(str(tmp_path), max_to_keep=2)
  assert checkpoint.restore_latest(m, _state(0)) is None
  for step in (1, 2, 3):
    checkpoint.save(m, step, _state(step))
  assert sorted(m.all_steps()) == [2, 3]  # the oldest was dropped
  step, restored = checkpoint.restore_latest(checkpoint.manager(str(tmp_path)), _state(0))
  assert step == 3
  want = _state(3)
  for got_leaf, want_leaf in zip(jax.tree.leaves(restored), jax.tree.leaves(want)):
    np.testing.assert_array_equal(np.asarray(got_leaf), np.asarray(want_leaf))


def _overwrite(folder, what=b"garbage", only_arrays=False):
  """Overwrites the files of a checkpoint folder (only its d/ array files with `only_arrays`)."""
  for root, _, files in os.walk(folder):
    for f in files:
      if not only_arrays or os.path.basename(root) == "d":
        with open(os.path.join(root, f), "wb") as fh:
          fh.write(what)


def _truncate(folder):
  for root, _, files in os.walk(folder):
    for f in files:
      if os.path.basename(root) == "d":
        p = os.path.join(root, f)
        os.truncate(p, os.path.getsize(p) // 2)


@pytest.mark.parametrize("damage", ["every file", "array files", "truncated arrays", "another tree"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path, damage, caplog):
  m = checkpoint.manager(str(tmp_path))
  for step in (1, 2, 3):
    checkpoint.save(m, step, _state(step))
  m.close()
  newest = str(tmp_path / "checkpoints" / "3")
  if damage == "every file":
    _overwrite(newest)
  elif damage == "array files":
    _overwrite(newest, only_arrays=True)
  elif damage == "truncated arrays":
    _truncate(newest)
  else:  # a checkpoint of another model: same names, other shapes
    shutil.rmtree(newest)
    m = checkpoint.manager(str(tmp_path))
    other = _state(3)
    other["params"]["a"] = jnp.zeros((7, 3))
    checkpoint.save(m, 3, other)
    m.close()
  with caplog.at_level(logging.WARNING):
    step, restored = checkpoint.restore_latest(checkpoint.manager(str(tmp_path)), _state(0))
  assert step == 2
  for got_leaf, want_leaf in zip(jax.tree.leaves(restored), jax.tree.leaves(_state(2))):
    np.testing.assert_array_equal(np.asarray(got_leaf), np.asarray(want_leaf))
  warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert any(newest in w and "cannot be restored" in w for w in warned), warned
  assert not any("Task exception was never retrieved" in r.getMessage() for r in caplog.records)


def test_every_checkpoint_corrupt_names_each(tmp_path):
  m = checkpoint.manager(str(tmp_path))
  for step in (4, 5):
    checkpoint.save(m, step, _state(step))
  m.close()
  for step in (4, 5):
    _overwrite(tmp_path / "checkpoints" / str(step))
  with pytest.raises(checkpoint.CheckpointError) as e:
    checkpoint.restore_latest(checkpoint.manager(str(tmp_path)), _state(0))
  for step in (4, 5):
    assert f"checkpoints/{step} (" in str(e.value)


def test_set_aside_lets_the_step_be_written_again(tmp_path):
  m = checkpoint.manager(str(tmp_path))
  for step in (1, 2):
    checkpoint.save(m, step, _state(step))
  moved = checkpoint.set_aside(m, 2)
  assert moved == str(tmp_path / "checkpoints_unreadable" / "2") and os.path.isdir(moved)
  m.reload()
  assert m.all_steps() == [1]
  checkpoint.save(m, 2, _state(7))  # orbax skips a step at or below the newest one: it must be gone
  step, restored = checkpoint.restore_latest(m, _state(0))
  assert step == 2 and int(restored["step"]) == 7
  m.close()
