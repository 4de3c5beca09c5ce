"""End-to-end training on a tiny synthetic capture: the loss falls, resume is exact, NaN steps are skipped."""

import json
import os

import jax
import numpy as np
import pytest

from configs import synthetic
from fmgs_jax.train import loop
from fmgs_jax.train import step as step_lib


def tiny_config(steps=6):
  c = synthetic.get_config()
  c.fit.enabled = False  # the subject fit has its own tests (tests/fit)
  s = c.data.synthetic
  s.height, s.width, s.focal = 48, 48, 80.0
  s.num_train_frames, s.num_novel_pose_frames, s.num_novel_view_cameras, s.num_novel_view_frames = 4, 2, 1, 1
  s.supersample = 1
  c.body.num_faces = 1500
  c.model.grid.num_levels, c.model.grid.log2_table_size, c.model.grid.max_resolution = 4, 10, 64
  c.model.skinning_grid.num_levels, c.model.skinning_grid.log2_table_size = 2, 8
  c.model.geometry_hidden, c.model.tilt_hidden, c.model.skinning_hidden = (16,), (16,), (16,)
  c.loss.depth.num_pairs = 64
  c.train.steps, c.train.log_every, c.train.checkpoint_every, c.train.image_every = steps, 1, 2, 1000
  for g in c.optim.groups.values():  # schedules independent of train.steps: runs of any length compile the
    g.decay_steps = 6                # same step program (the session's XLA cache then compiles it once)
  c.eval.orbit_frames, c.eval.chamfer_samples = 2, 2000
  return c


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
  return str(tmp_path_factory.mktemp("synthetic_data"))


def _params(workdir, config):
  _, params, _ = loop.restore_params(config, workdir)
  return params


def test_loss_decreases_and_resume_is_exact(tmp_path, data_root):
  c = tiny_config(steps=6)
  c.data.root = data_root
  c.optim.groups.appearance.lr = 1e-2  # move fast enough to see the loss fall in a few steps
  full = str(tmp_path / "full")
  loop.train(c, full)
  # Resume: 3 steps, then the same command with steps=6 continues from the checkpoint at step 3.
  half = str(tmp_path / "half")
  c3 = tiny_config(steps=3)
  c3.data.root = data_root
  c3.optim.groups.appearance.lr = 1e-2
  loop.train(c3, half)
  # The schedule depends on the total step count (learning-rate decay): resume with the full config.
  loop.train(c, half)
  a, b = _params(full, c), _params(half, c)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-7)
  info = json.load(open(os.path.join(half, loop.TRAIN_INFO)))
  assert info["train_steps"] == 6 and info["skipped_steps"] == 0


def _tiny_step(workdir, data_root, only_losses=(), preset="paper"):
  """(initial state, jitted step, one-frame batch, avatar) of the tiny avatar, every group at lr 1e-2;
  `only_losses` keeps just those loss terms (their config weights), all others at 0."""
  c = tiny_config(steps=1)
  c.data.root = data_root
  c.isolation.preset = preset
  if only_losses:
    for name in c.loss:
      if name not in only_losses:
        c.loss[name].weight = 0.0
  _, frames = loop.load_training_frames(c, workdir)
  av = loop.build_avatar(c, frames, workdir)
  from fmgs_jax import avatar as avatar_lib  # pylint: disable=g-import-not-at-top
  from fmgs_jax.data import stack_frames  # pylint: disable=g-import-not-at-top
  from fmgs_jax.train import optim  # pylint: disable=g-import-not-at-top
  params = avatar_lib.init_params(av, jax.random.key(0))
  for g in c.optim.groups.values():
    g.lr = 1e-2
    g.lr_final = 0.0
  opt = optim.make_optimizer(c.optim, params, 30)
  h, w = frames[0].mask.shape
  fn = jax.jit(step_lib.make_train_step(lambda p, b: avatar_lib.quantities(av, p, b), c, opt,
                                        optim.param_labels(params, c.optim.groups), w, h, av.num_classes,
                                        av.template.weights, av.template.edges))
  return step_lib.init_state(params, opt, 0), fn, step_lib.batch_from_frames(stack_frames(frames[:1])), av


@pytest.fixture(scope="module")
def tiny_step(tmp_path_factory, data_root):
  return _tiny_step(str(tmp_path_factory.mktemp("step")), data_root)[:3]


def test_few_steps_decrease_the_photometric_loss(tiny_step):
  state, fn, batch = tiny_step
  losses = []
  for _ in range(15):
    state, m = fn(state, batch)
    losses.append(float(m["loss/rgb"]))
  assert losses[-1] < 0.8 * losses[0], losses


def test_non_finite_step_is_skipped(tiny_step):
  state, fn, batch = tiny_step
  bad = batch.replace(image=batch.image.at[0, 0, 0, 0].set(np.nan))
  new, m = fn(state, bad)
  assert not bool(m["finite"]) and int(new.skipped) == 1 and int(new.step) == 1
  for x, y in zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  good, m = fn(new, batch)
  assert bool(m["finite"]) and int(good.skipped) == 1


NORMALS = ("normal_prior", "normal_depth", "normal_tv")


@pytest.mark.parametrize("losses, preset, frozen, movable", [
    # Paper: normals block position, so neither means nor anything that moves them (geometry field,
    # skinning, pose refinement) changes; rotations (tilt) and opacities may.
    (NORMALS, "paper", ("means", "vertices", "scales", "colors", "semantics"), ("tilt_", "opacities")),
    # Paper: semantics block position and rotation: the semantic field and opacities only.
    (("semantic",), "paper", ("means", "vertices", "rotations", "scales", "colors"), ("semantic_", "opacities")),
    # Strict: the normal terms reach the tilt field alone.
    (NORMALS, "strict", ("means", "vertices", "scales", "opacities", "colors", "semantics"), ("tilt_",)),
])
def test_blocked_losses_move_only_what_their_row_allows(tmp_path, data_root, losses, preset, frozen, movable):
  """The isolation table at the parameter level, on the real avatar: steps on one row's losses alone
  leave the blocked quantities of the posed surfels exactly as they were (also through shared weights)
  and change only the parameter groups the row allows."""
  from fmgs_jax import avatar as avatar_lib  # pylint: disable=g-import-not-at-top
  state, fn, batch, av = _tiny_step(str(tmp_path), data_root, only_losses=losses, preset=preset)
  before = avatar_lib.quantities(av, state.params, batch)
  new = state
  for _ in range(3):
    new, m = fn(new, batch)
    assert bool(m["finite"]) and float(m[f"loss/{losses[0]}"]) > 0
  after = avatar_lib.quantities(av, new.params, batch)
  for name in frozen:
    np.testing.assert_array_equal(np.asarray(after[name]), np.asarray(before[name]), err_msg=name)
  moved = "semantics" if losses == ("semantic",) else "rotations"
  assert float(np.max(np.abs(np.asarray(after[moved]) - np.asarray(before[moved])))) > 1e-5
  changed = {jax.tree_util.keystr(p) for (p, x), y in zip(jax.tree_util.tree_leaves_with_path(new.params),
                                                          jax.tree.leaves(state.params))
             if not np.array_equal(np.asarray(x), np.asarray(y))}
  assert changed and all(any(k in p for k in movable) for p in changed), changed
  assert any(movable[0] in p for p in changed), changed
