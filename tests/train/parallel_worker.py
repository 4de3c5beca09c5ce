"""Subprocess side of tests/train/test_parallel.py (XLA_FLAGS and jax.distributed must be set before JAX
starts, so these runs cannot live in the pytest process).

    python tests/train/parallel_worker.py devices N OUT DATA_ROOT  # XLA_FLAGS=--xla_force_host_platform_device_count=4
    python tests/train/parallel_worker.py process 0 OUT DATA_ROOT  # the same, + JAX_COORDINATOR_ADDRESS,
                                                                   #   JAX_NUM_PROCESSES=2, JAX_PROCESS_ID

`devices N`: `loop.train` of the tiny problem on an N-device mesh (parallel.num_devices = N) into
OUT/devices_N (N = 4 first checks that a global batch of 6 is refused); the trained parameters, read
back by `loop.restore_params`, into OUT/devices_N_params.npz (N = 1: the initial ones too); OUT/devices_N.json.
`process`: joins the other process through `parallel.maybe_initialize_distributed` (environment
variables), trains on a 4-device mesh (2 devices of each process) into the shared OUT/procs (resuming
from whatever checkpoint the test put there), then
process 0 alone reads the newest checkpoint with `loop.restore_params` (as evaluation does) into
OUT/procs_restored.npz; writes OUT/process_<i>.json.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

STEPS = 3
BATCH = 4


def tiny_config(data_root: str, num_devices: int = 0):
  """A tiny avatar and capture, the two image losses, and an optimiser whose update is ~linear in the
  gradient (Adam with eps = 0.1: sign-like Adam would turn round-off in near-zero gradients into
  +-lr differences), so sharded vs single-device differences show as round-off."""
  from configs import synthetic  # pylint: disable=g-import-not-at-top
  c = synthetic.get_config()
  c.fit.enabled = False  # the subject fit has its own tests (tests/fit)
  s = c.data.synthetic
  s.height, s.width, s.focal = 32, 32, 55.0
  s.num_train_frames, s.num_novel_pose_frames, s.num_novel_view_cameras, s.num_novel_view_frames = 4, 1, 1, 1
  s.supersample = 1
  c.data.root = data_root
  c.body.num_faces = 600
  c.model.grid.num_levels, c.model.grid.log2_table_size, c.model.grid.max_resolution = 4, 10, 64
  c.model.skinning_grid.num_levels, c.model.skinning_grid.log2_table_size = 2, 8
  c.model.geometry_hidden, c.model.tilt_hidden, c.model.skinning_hidden = (16,), (16,), (16,)
  for term in ("depth", "normal_depth", "normal_prior", "normal_tv", "semantic", "semantic_reg", "skin", "iso"):
    c.loss[term].weight = 0.0  # no priors to extract; iso/skin are ~1e-7 differences of near-equal numbers at init
  c.isolation.enabled = False
  c.render.tile_capacity = 64
  c.optim.eps = 0.1
  for g in c.optim.groups.values():
    g.lr, g.lr_final = 0.1, 0.0
  c.train.steps, c.train.batch_size = STEPS, BATCH
  c.train.log_every, c.train.checkpoint_every, c.train.image_every = 1, 1, 1000
  c.parallel.num_devices = num_devices
  return c


def _save_params(path: str, params) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  np.savez(path, **{jax.tree_util.keystr(p): np.asarray(x) for p, x in leaves})


def devices(num: int, out: str, data_root: str) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  from fmgs_jax import avatar as avatar_lib  # pylint: disable=g-import-not-at-top
  from fmgs_jax.train import loop  # pylint: disable=g-import-not-at-top
  from fmgs_jax.train import parallel  # pylint: disable=g-import-not-at-top
  report = {"device_count": jax.device_count(), "mesh_size": int(parallel.make_mesh(num).devices.size)}
  if num == 4:
    bad = tiny_config(data_root, 4)
    bad.train.batch_size = 6
    try:
      loop.train(bad, os.path.join(out, "bad"))
    except ValueError as e:
      report["batch_error"] = str(e)
    report["bad_workdir_made"] = os.path.exists(os.path.join(out, "bad"))
  config = tiny_config(data_root, num)
  workdir = os.path.join(out, f"devices_{num}")
  report["info"] = loop.train(config, workdir)
  av, params, _ = loop.restore_params(config, workdir)  # a plain single-device read of the checkpoint
  _save_params(os.path.join(out, f"devices_{num}_params.npz"), params)
  if num == 1:
    _save_params(os.path.join(out, "init_params.npz"), avatar_lib.init_params(av, jax.random.key(config.seed)))
  with open(os.path.join(out, f"devices_{num}.json"), "w") as f:
    json.dump(report, f)


def process(_, out: str, data_root: str) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  from fmgs_jax.train import loop  # pylint: disable=g-import-not-at-top
  from fmgs_jax.train import parallel  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.INFO)  # the test reads "resumed from step k" in the log
  config = tiny_config(data_root, 4)
  joined = parallel.maybe_initialize_distributed(config.parallel)
  workdir = os.path.join(out, "procs")
  info = loop.train(config, workdir)
  me = jax.process_index()
  report = {"joined": joined, "process_index": me, "process_count": jax.process_count(),
            "local_devices": jax.local_device_count(), "devices": jax.device_count(), "info": info,
            "rows": parallel.local_rows(parallel.make_mesh(4), BATCH).tolist(),
            "mesh_devices": [d.id for d in parallel.make_mesh(4).devices.flat if d.process_index == me],
            "local_ids": sorted(d.id for d in jax.local_devices())}
  if me == 0:
    _, params, report["restored_info"] = loop.restore_params(config, workdir)
    _save_params(os.path.join(out, "procs_restored.npz"), params)
  parallel.barrier("test done")
  with open(os.path.join(out, f"process_{me}.json"), "w") as f:
    json.dump(report, f)


if __name__ == "__main__":
  {"devices": devices, "process": process}[sys.argv[1]](int(sys.argv[2]), sys.argv[3], sys.argv[4])
