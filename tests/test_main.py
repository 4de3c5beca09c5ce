"""fmgs_jax.main: the training config stays the run's record whatever mode runs later."""

import json
import os

import ml_collections

from fmgs_jax import main


def test_a_workdir_without_training_still_gets_config_json(tmp_path):
  c = ml_collections.ConfigDict(dict(train=dict(steps=3)))
  path = main.write_config(c, str(tmp_path), "eval")
  assert os.path.basename(path) == "config.json"
  assert json.load(open(path))["train"]["steps"] == 3


def test_eval_and_render_do_not_overwrite_the_training_config(tmp_path):
  trained = ml_collections.ConfigDict(dict(train=dict(steps=500)))
  path = main.write_config(trained, str(tmp_path), "train")
  assert os.path.basename(path) == "config.json"
  later = ml_collections.ConfigDict(dict(train=dict(steps=7)))
  for mode in ("eval", "render"):
    other = main.write_config(later, str(tmp_path), mode)
    assert os.path.basename(other) == f"config_{mode}.json"
    assert json.load(open(other))["train"]["steps"] == 7
  assert json.load(open(path))["train"]["steps"] == 500
