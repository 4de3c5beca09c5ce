"""Where a training step's time goes: each stage of the jitted step timed on its own.

  python bench/train_step.py --config=configs/synthetic.py --workdir=/tmp/bench_step [--config.x=y ...]
  python bench/train_step.py --config=configs/synthetic.py --workdir=/tmp/bench_step --json

Stages (batch from the configured training split; times are medians of --repeats calls after a
compile call, whose time is reported separately):
  avatar_forward         template + fields + LBS -> posed surfel quantities
  avatar_forward_backward  ... and the VJP of their sum back to the parameters
  render_forward         rasterize the posed surfels (colour + part channels)
  render_forward_backward  ... and the VJP of the rendered maps back to the quantities
  losses_forward_backward  every active loss and its gradient w.r.t. the rendered maps
  step_isolated          the whole train step with the configured isolation table
  step_isolated_vmapped  ... with the per-row renderer VJPs vmapped into one (isolation.vectorize)
  step_plain             the whole train step with isolation off (one plain value_and_grad)
"""

import json
import os
import statistics
import sys
import time

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/*.py")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/fmgs_bench_step", "where the synthetic capture is cached")
_REPEATS = flags.DEFINE_integer("repeats", 3, "timed calls per stage")
_JSON = flags.DEFINE_bool("json", False, "also print the rows as one JSON line")
flags.mark_flags_as_required(["config"])


def _time(fn, *args, repeats):
  import jax  # pylint: disable=g-import-not-at-top
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return compile_s, statistics.median(times)


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from fmgs_jax import avatar as avatar_lib  # pylint: disable=g-import-not-at-top
  from fmgs_jax.data import stack_frames  # pylint: disable=g-import-not-at-top
  from fmgs_jax.train import losses, loop, optim  # pylint: disable=g-import-not-at-top
  from fmgs_jax.train import step as step_lib  # pylint: disable=g-import-not-at-top

  config = _CONFIG.value
  _, frames = loop.load_training_frames(config, _WORKDIR.value)
  av = loop.build_avatar(config, frames, _WORKDIR.value)
  h, w = frames[0].mask.shape
  params = avatar_lib.init_params(av, jax.random.key(0))
  batch = step_lib.batch_from_frames(stack_frames(frames[:config.train.batch_size]))
  build = lambda p: avatar_lib.quantities(av, p, batch)
  background = jnp.concatenate([jnp.asarray(config.train.background, jnp.float32), jnp.zeros((av.num_classes,))])
  render = lambda q: step_lib._without_overflow(  # pylint: disable=protected-access
      step_lib.render_batch(q, batch, w, h, background, config.render))[0]
  q = jax.jit(build)(params)
  rendered = jax.jit(render)(q)
  weights = losses.active_weights(config.loss)
  loss_fns = step_lib.make_loss_fns(config.loss, batch, jax.random.key(0), background[:3], av.num_classes,
                                    jnp.asarray(av.template.weights), jnp.asarray(av.template.edges))

  def total_loss(r, qq):
    return sum(weights[k] * loss_fns[k](r, qq) for k in weights)

  def vjp_sum(fn):
    def go(x):
      y, pull = jax.vjp(fn, x)
      return pull(jax.tree.map(jnp.ones_like, y))
    return go

  def step_fn(isolation_enabled, vectorize=False):
    c = config.copy_and_resolve_references()
    c.isolation.enabled = isolation_enabled
    c.isolation.vectorize = vectorize
    opt = optim.make_optimizer(c.optim, params, int(c.train.steps))
    fn = step_lib.make_train_step(lambda p, b: avatar_lib.quantities(av, p, b), c, opt,
                                  optim.param_labels(params, c.optim.groups), w, h, av.num_classes,
                                  jnp.asarray(av.template.weights), jnp.asarray(av.template.edges))
    state = step_lib.init_state(params, opt, 0)
    return jax.jit(fn), state

  stages = [
      ("avatar_forward", jax.jit(build), (params,)),
      ("avatar_forward_backward", jax.jit(vjp_sum(build)), (params,)),
      ("render_forward", jax.jit(render), (q,)),
      ("render_forward_backward", jax.jit(vjp_sum(render)), (q,)),
      ("losses_forward_backward", jax.jit(jax.grad(total_loss, argnums=(0, 1))), (rendered, q)),
  ]
  for name, enabled, vectorize in (("step_isolated", True, False), ("step_isolated_vmapped", True, True),
                                   ("step_plain", False, False)):
    fn, state = step_fn(enabled, vectorize)
    stages.append((name, fn, (state, batch)))

  rows = []
  for name, fn, args in stages:
    compile_s, run_s = _time(fn, *args, repeats=_REPEATS.value)
    rows.append(dict(stage=name, seconds=round(run_s, 4), compile_seconds=round(compile_s, 2)))
  info = dict(surfels=av.num_surfels, width=w, height=h, batch=int(config.train.batch_size),
              terms=sorted(weights), backend=config.render.backend, devices=str(jax.devices()))
  print(f"surfels={info['surfels']} image={w}x{h} batch={info['batch']} backend={info['backend']}")
  print(f"{'stage':<26}{'seconds':>10}{'compile_s':>12}")
  for r in rows:
    print(f"{r['stage']:<26}{r['seconds']:>10.4f}{r['compile_seconds']:>12.2f}")
  if _JSON.value:
    print(json.dumps(dict(info, rows=rows)))


if __name__ == "__main__":
  app.run(main)
