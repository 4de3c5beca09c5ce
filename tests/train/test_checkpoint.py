"""Checkpoint round trip, keeping the last few, and a clear error for a corrupt checkpoint."""

import os

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


def test_corrupt_checkpoint_names_the_folder(tmp_path):
  m = checkpoint.manager(str(tmp_path))
  checkpoint.save(m, 5, _state(5))
  for root, _, files in os.walk(tmp_path / "checkpoints" / "5"):
    for f in files:
      with open(os.path.join(root, f), "wb") as fh:
        fh.write(b"garbage")
  with pytest.raises(checkpoint.CheckpointError, match=r"checkpoints/5"):
    checkpoint.restore_latest(checkpoint.manager(str(tmp_path)), _state(0))
