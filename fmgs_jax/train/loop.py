"""Training loop: data and priors, the avatar, one jitted step, checkpoints, summaries, then evaluation.

Resuming: the state (parameters, optimiser moments, step, key) is checkpointed with orbax, and which
frames a step uses is a pure function of (seed, step) (train/schedule.py), so a run interrupted at any
point and restarted with the same command continues exactly as if it had not stopped. Ctrl-C saves a
checkpoint before exiting.

Devices and hosts: the same `train` runs on one device, on every device of a machine, and on every
process of a multi-host run (train/parallel.py): the global batch (train.batch_size) is split over the
mesh's `data` axis, the state is replicated, and the frames of each step are the same whatever the
layout. Only process 0 writes summaries, images and train_info.json; checkpoint saves are collective.
"""

import contextlib
import json
import os
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from fmgs_jax import errors
from fmgs_jax import avatar as avatar_lib
from fmgs_jax.data import Frame, load_dataset, stack_frames
from fmgs_jax.fit import stage as fit_stage
from fmgs_jax.train import checkpoint
from fmgs_jax.train import losses
from fmgs_jax.train import optim
from fmgs_jax.train import parallel
from fmgs_jax.train import schedule
from fmgs_jax.train import step as step_lib

TRAIN_INFO = "train_info.json"


data_root = fit_stage.data_root


def load_training_frames(config: Any, workdir: str) -> tuple[Any, list[Frame]]:
  """The training split in memory, with the priors its active losses need (derived first for the
  synthetic backend; for model backends `--mode=priors` must have run)."""
  root = data_root(config, workdir)
  ds = load_dataset(config.data, "train", default_root=root)
  frames = [ds[i] for i in range(len(ds))]
  weights = losses.active_weights(config.loss)
  if not any(weights.get(t) for t in step_lib.PRIOR_TERMS):
    return ds, frames
  from fmgs_jax.priors import cache as prior_cache  # pylint: disable=g-import-not-at-top
  from fmgs_jax.priors import extract as prior_extract  # pylint: disable=g-import-not-at-top
  cache_dir = prior_extract.default_cache_dir(config, workdir)
  if config.priors.backend == "synthetic":
    prior_extract.extract_priors(config, workdir)  # cheap, skips frames already cached
  out = []
  for i, f in enumerate(frames):
    key = prior_extract.frame_key(ds, i, "train", root)
    try:
      priors = prior_cache.load_priors(cache_dir, key)
    except (FileNotFoundError, OSError, ValueError) as e:
      raise errors.MissingInputError(
          f"priors for frame {ds.image_path(i)} are missing from {cache_dir} ({e}); run "
          "`python -m fmgs_jax.main --mode=priors` with this config first") from None
    out.append(prior_cache.attach_priors(f, priors))
  return ds, out


def build_avatar(config: Any, frames: list[Frame], workdir: str):
  """The avatar for the subject of `frames`: the fitted body of WORKDIR/fit when the fit is on, else the
  configured model (fit/stage.py `subject_body`)."""
  num = len(frames) if config.train.pose_refine else 0
  model, betas = fit_stage.subject_body(config, workdir, np.asarray(frames[0].betas))
  return avatar_lib.build(config, model, betas, num)


def make_render_fn(avatar, config: Any, width: int, height: int):
  """jitted (params, Batch) -> RenderOutput with a leading batch axis (colour: rgb | part probs)."""
  background = jnp.concatenate([jnp.asarray(config.train.background, jnp.float32),
                                jnp.zeros((avatar.num_classes,))])

  @jax.jit
  def render(params, batch):
    q = avatar_lib.quantities(avatar, params, batch)
    return step_lib.render_batch(q, batch, width, height, background, config.render)

  return render


def _log_images(writer, render_fn, params, batch, step: int, workdir: str, config: Any) -> None:
  from fmgs_jax.eval import visualize  # pylint: disable=g-import-not-at-top
  out = jax.device_get(render_fn(params, batch))
  grid = visualize.comparison_grid(
      np.asarray(batch.image[0]), np.clip(out.color[0, ..., :3], 0, 1), normals=out.normal[0], depth=out.depth[0],
      semantics=out.color[0, ..., 3:], alpha=out.alpha[0], depth_percentiles=tuple(config.eval.depth_percentiles))
  visualize.write_png(os.path.join(workdir, "train_renders", f"step_{step:06d}.png"), grid)
  if writer is not None:
    writer.add_image("train/render_gt_normal_depth_semantics", grid, step, dataformats="HWC")


def _load_in_turn(config: Any, workdir: str) -> tuple[Any, list[Frame]]:
  """`load_training_frames`, process 0 first: it may generate the synthetic capture and its priors into
  folders the other processes share."""
  main = parallel.is_main_process()
  out = load_training_frames(config, workdir) if main else None
  parallel.barrier("training frames")
  return out if main else load_training_frames(config, workdir)


def train(config: Any, workdir: str) -> dict:
  """Trains the avatar; returns {"train_steps", "train_seconds"} (also in WORKDIR/train_info.json).

  Call it on every process of a multi-process run (after `parallel.maybe_initialize_distributed`).
  """
  mesh = parallel.make_mesh(config.parallel.num_devices)
  batch_size = int(config.train.batch_size)
  parallel.check_batch_size(batch_size, mesh)
  main = parallel.is_main_process()
  ds, frames = _load_in_turn(config, workdir)
  weights = losses.active_weights(config.loss)
  step_lib.check_priors(weights, stack_frames(frames[:1]))
  if fit_stage.enabled(config):  # the subject fit, where its result is missing or outdated
    if main:
      fit_stage.run_fit(config, workdir)
    parallel.barrier("subject fit")
  av = build_avatar(config, frames, workdir)
  height, width = frames[0].mask.shape
  logging.info("avatar: %d surfels, %d training frames of %dx%d; global batch %d over %d devices, %d processes",
               av.num_surfels, len(frames), width, height, batch_size, mesh.devices.size, jax.process_count())

  params = avatar_lib.init_params(av, jax.random.key(config.seed))
  total_steps = int(config.train.steps)
  optimizer = optim.make_optimizer(config.optim, params, total_steps)
  labels = optim.param_labels(params, config.optim.groups)
  state = parallel.replicate(step_lib.init_state(params, optimizer, config.seed), mesh)
  # Closed on every way out (return, error, Ctrl-C), so no orbax thread outlives the run.
  with contextlib.closing(checkpoint.manager(workdir, config.train.keep_checkpoints)) as mngr:
    state, elapsed = _resume(mngr, state, main)
    start = int(state.step)

    train_step = parallel.jit_step(step_lib.make_train_step(
        lambda p, b: avatar_lib.quantities(av, p, b), config, optimizer, labels, width, height, av.num_classes,
        jnp.asarray(av.template.weights), jnp.asarray(av.template.edges)), mesh)
    render_fn = make_render_fn(av, config, width, height)
    rows = parallel.local_rows(mesh, batch_size)

    def batch_at(step: int, only=None):
      """The global batch of `step`, or only its rows `only` (this process's share)."""
      idx = schedule.batch_indices(config.seed, step, len(frames), batch_size)
      idx = idx if only is None else idx[only]
      return step_lib.batch_from_frames(stack_frames([frames[i] for i in idx]))

    writer = None
    if main:
      try:
        import tensorboardX  # pylint: disable=g-import-not-at-top
        writer = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"))
      except ImportError:
        logging.warning("tensorboardX is not installed: no TensorBoard summaries")

    def save(step):
      checkpoint.save(mngr, step, {"state": state, "elapsed": np.float64(elapsed)})

    bar = tqdm.tqdm(total=total_steps, initial=start, desc="train", unit="step", dynamic_ncols=True,
                    disable=not main)
    step = start
    t_last = time.perf_counter()
    try:
      while step < total_steps:
        batch = parallel.shard_batch(batch_at(step, rows), mesh, batch_size)
        t0 = time.perf_counter()
        state, metrics = train_step(state, batch)
        step += 1
        if step % config.train.log_every == 0 or step == total_steps or step == start + 1:
          m = jax.device_get(metrics)
          now = time.perf_counter()
          if not bool(m["finite"]):
            logging.warning("step %d: non-finite loss or gradient; the update was skipped", step)
          bar.set_postfix(loss=f"{float(m['loss']):.4f}", skipped=int(state.skipped))
          if writer is not None:
            for k, v in m.items():
              writer.add_scalar(f"train/{k}", float(v), step)
            for k, v in optim.learning_rates(config.optim, total_steps, step).items():
              writer.add_scalar(f"lr/{k}", float(v), step)
            writer.add_scalar("train/step_seconds", now - t0, step)
        elapsed += time.perf_counter() - t_last
        t_last = time.perf_counter()
        bar.update(1)
        if main and (step % config.train.image_every == 0 or step == total_steps):
          _log_images(writer, render_fn, parallel.local_copy(state.params), batch_at(0), step, workdir, config)
        if step % config.train.checkpoint_every == 0 and step < total_steps:
          save(step)
    except KeyboardInterrupt:
      logging.warning("interrupted at step %d: saving a checkpoint to resume from", step)
      save(step)
      raise
    finally:
      bar.close()
      if writer is not None:
        writer.close()
    if mngr.latest_step() != step:
      save(step)
    info = {"train_steps": int(step), "train_seconds": float(elapsed), "skipped_steps": int(state.skipped)}
    fit_report = fit_stage.load_report(workdir) if fit_stage.enabled(config) else None
    if fit_report is not None:
      info["subject_fit"] = {k: v for k, v in fit_report.items() if "per_frame" not in k and k != "key"}
    if main:
      with open(os.path.join(workdir, TRAIN_INFO), "w") as f:
        json.dump(info, f, indent=2)
    return info


def _resume(mngr, state, main: bool) -> tuple[Any, np.float64]:
  """(state, elapsed seconds) of the newest checkpoint that can be restored, or the given state and 0.

  Newer checkpoints that cannot be restored are moved to WORKDIR/checkpoints_unreadable, so the run
  writes those steps again; the resumed run is the uninterrupted one from the restored step on.
  """
  elapsed = np.float64(0.0)
  restored = checkpoint.restore_latest(mngr, {"state": state, "elapsed": elapsed})
  if restored is None:
    return state, elapsed
  start, tree = restored
  newer = [s for s in mngr.all_steps() if s > start]
  if newer:
    if main:
      for s in newer:
        logging.warning("moved the unreadable checkpoint %s to %s", checkpoint.step_path(mngr, s),
                        checkpoint.set_aside(mngr, s))
    parallel.barrier("unreadable checkpoints moved")
    mngr.reload()
  logging.info("resumed from step %d", start)
  return tree["state"], np.float64(tree["elapsed"])


def restore_params(config: Any, workdir: str, frames: list[Frame] | None = None):
  """(avatar, params, train_info) of the newest checkpoint in WORKDIR that can be restored, for evaluation
  and rendering (a damaged newer one is passed over with a warning: checkpoint.restore_latest).

  `frames`: the training frames when the caller has them (`load_training_frames`), else loaded here.
  Process-local: in a multi-process run only the calling process reads (process 0 evaluates alone).
  """
  with contextlib.closing(checkpoint.manager(workdir, config.train.keep_checkpoints, process_local=True)) as mngr:
    if not mngr.all_steps():  # before any compute
      raise errors.MissingInputError(f"no checkpoint in {mngr.directory}: train first (--mode=train) with this "
                                     "--workdir")
    if frames is None:
      _, frames = load_training_frames(config, workdir)
    av = build_avatar(config, frames, workdir)
    params = avatar_lib.init_params(av, jax.random.key(config.seed))
    optimizer = optim.make_optimizer(config.optim, params, int(config.train.steps))
    template = {"state": step_lib.init_state(params, optimizer, config.seed), "elapsed": np.float64(0.0)}
    step, tree = checkpoint.restore_latest(mngr, template)  # the newest that can be restored
  return av, tree["state"].params, {"train_steps": int(step), "train_seconds": float(tree["elapsed"])}


def train_and_evaluate(config: Any, workdir: str) -> None:
  """`--mode=train`: train (on every process), then evaluate on the held-out views and poses (process 0)."""
  train(config, workdir)
  from fmgs_jax.eval import evaluate  # pylint: disable=g-import-not-at-top
  if parallel.is_main_process():
    evaluate.evaluate(config, workdir)
  # The others wait, alive (the coordination service would take a silent exit for a crash).
  parallel.barrier("evaluation")
