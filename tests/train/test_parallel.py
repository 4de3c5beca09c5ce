"""Data parallelism (fmgs_jax/train/parallel.py): the launcher-environment rules, batch sharding on the
pytest process's one device, and, in subprocesses (XLA_FLAGS and jax.distributed must be set before JAX
starts; tests/train/parallel_worker.py), the tiny avatar trained by `loop.train` for 3 steps with a global
batch of 4 on 1 device and on 4 devices of one process, and resumed from the 1-device step-1 checkpoint
for 2 steps on 2 processes x 2 devices (a 4-device mesh over 2 x 4 visible ones) joined by
jax.distributed on loopback (gloo CPU collectives): the parameter updates agree to float round-off.
"""

import fcntl
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from fmgs_jax.train import parallel

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "parallel_worker.py")
TIMEOUT_S = 900


def _worker_module():
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location("parallel_worker", WORKER)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _cfg(**kw):
  import ml_collections  # pylint: disable=g-import-not-at-top
  base = dict(num_devices=0, distributed="auto", coordinator_address="", num_processes=0, process_id=-1,
              local_device_ids="")
  return ml_collections.ConfigDict({**base, **kw})


SLURM_STEP = {"SLURM_JOB_ID": "77", "SLURM_STEP_NODELIST": "node[01-02]", "SLURM_PROCID": "1",
              "SLURM_LOCALID": "0"}


def test_cluster_process_count_reads_the_launchers():
  assert parallel.cluster_process_count({}) == (1, "")
  assert parallel.cluster_process_count({**SLURM_STEP, "SLURM_NTASKS": "8"}) == (8, "SLURM_NTASKS")
  # A single-task job (one element of a job array) is one process: no coordinator is started.
  assert parallel.cluster_process_count({**SLURM_STEP, "SLURM_NTASKS": "1"}) == (1, "SLURM_NTASKS")
  assert parallel.cluster_process_count({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "4"}) == (1, "")  # sbatch, no srun
  assert parallel.cluster_process_count({"OMPI_COMM_WORLD_SIZE": "3"}) == (3, "OMPI_COMM_WORLD_SIZE")
  env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
  assert parallel.cluster_process_count(env) == (2, "JAX_NUM_PROCESSES")
  assert parallel.cluster_process_count({"JAX_COORDINATOR_ADDRESS": "h:1", **SLURM_STEP, "SLURM_NTASKS": "4"}) == (
      4, "SLURM_NTASKS")  # the rest from SLURM


def test_single_process_settings_do_not_initialize():
  for cfg, env in [(_cfg(distributed="off"), {**SLURM_STEP, "SLURM_NTASKS": "8"}),
                   (_cfg(), {}),
                   (_cfg(), {**SLURM_STEP, "SLURM_NTASKS": "1"}),
                   (_cfg(num_processes=1), {})]:
    assert parallel.maybe_initialize_distributed(cfg, env) is False
  assert not jax.distributed.is_initialized()


def test_bad_settings_name_the_config_field_before_initializing():
  with pytest.raises(ValueError, match="parallel.distributed"):
    parallel.maybe_initialize_distributed(_cfg(distributed="yes"), {})
  with pytest.raises(ValueError, match="parallel.coordinator_address"):
    parallel.maybe_initialize_distributed(_cfg(coordinator_address="node01", num_processes=2, process_id=0), {})
  with pytest.raises(ValueError, match=r"parallel.process_id = 2 is not in \[0, parallel.num_processes = 2\)"):
    parallel.maybe_initialize_distributed(_cfg(coordinator_address="127.0.0.1:9", num_processes=2, process_id=2), {})
  with pytest.raises(ValueError, match="parallel.process_id = 5"):  # id from the environment, count from config
    parallel.maybe_initialize_distributed(
        _cfg(num_processes=2), {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:9", "JAX_PROCESS_ID": "5"})
  with pytest.raises(ValueError, match="coordinator_address: 'node01'"):  # auto: a coordinator in the env
    parallel.maybe_initialize_distributed(_cfg(), {"JAX_COORDINATOR_ADDRESS": "node01"})
  assert not jax.distributed.is_initialized()


def test_local_device_ids():
  assert parallel.local_device_ids("", {"CUDA_VISIBLE_DEVICES": "0,1"}) is None  # JAX decides
  assert parallel.local_device_ids("all", {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}) == [0, 1, 2, 3]  # ordinals
  assert parallel.local_device_ids(" 0,2 ", {}) == [0, 2]
  with pytest.raises(ValueError, match="CUDA_VISIBLE_DEVICES, which is not set"):
    parallel.local_device_ids("all", {})
  for bad in ("gpu0", "1,1", "-1"):
    with pytest.raises(ValueError, match="parallel.local_device_ids"):
      parallel.local_device_ids(bad, {})
  with pytest.raises(ValueError, match="parallel.local_device_ids"):  # checked before initialising
    parallel.maybe_initialize_distributed(_cfg(distributed="on", local_device_ids="all"),
                                          {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:9", "JAX_NUM_PROCESSES": "2",
                                           "JAX_PROCESS_ID": "0"})
  assert not jax.distributed.is_initialized()


def test_mesh_rows_and_batch_sharding_on_one_device():
  mesh = parallel.make_mesh(0)
  assert mesh.axis_names == (parallel.DATA_AXIS,) and mesh.devices.size == jax.device_count()
  with pytest.raises(ValueError, match="parallel.num_devices = 99"):
    parallel.make_mesh(99)
  for bad in (0, -2):
    with pytest.raises(ValueError, match="train.batch_size"):
      parallel.check_batch_size(bad, mesh)
  np.testing.assert_array_equal(parallel.local_rows(mesh, 3), [0, 1, 2])
  host = {"image": np.arange(3 * 2 * 5, dtype=np.float32).reshape(3, 2, 5), "index": np.array([7, 1, 4])}
  batch = parallel.shard_batch(host, mesh, 3)
  for k, v in host.items():
    assert batch[k].shape == v.shape and batch[k].sharding == parallel.batch_sharding(mesh)
    np.testing.assert_array_equal(np.asarray(batch[k]), v)
  with pytest.raises(ValueError, match="holds 3 of the global batch of 3"):
    parallel.shard_batch({"x": np.zeros((2, 1))}, mesh, 3)
  state = parallel.replicate({"w": np.ones((2, 3), np.float32), "step": np.int32(4)}, mesh)
  assert state["w"].sharding == parallel.replicated(mesh) and int(state["step"]) == 4
  local = parallel.local_copy(state)
  np.testing.assert_array_equal(np.asarray(local["w"]), np.ones((2, 3)))


# --- subprocess runs -------------------------------------------------------------------------------


def _env(**extra):
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("SLURM_", "OMPI_", "JAX_COORDINATOR", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"))}
  env.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", **extra)
  return env


def _run_all(jobs, out):
  """Starts every (name, group, argv, env) at once and waits; a failed job stops the rest of its group (a
  lone process of a distributed run would otherwise wait for its peer until the coordination service
  times out). Returns {name: failure message} for the jobs that failed."""
  procs = {}
  for name, group, argv, env in jobs:
    log = open(os.path.join(out, f"{name}.log"), "w")
    procs[name] = (group, subprocess.Popen([sys.executable, WORKER, *argv], env=env, stdout=log,
                                           stderr=subprocess.STDOUT), log)
  deadline = time.time() + TIMEOUT_S
  while time.time() < deadline and any(p.poll() is None for _, p, _ in procs.values()):
    for group, p, _ in procs.values():
      if p.poll() not in (None, 0):
        for g, q, _ in procs.values():
          if g == group and q.poll() is None:
            q.kill()
    time.sleep(0.5)
  failures = {}
  for name, (_, p, log) in procs.items():
    if p.poll() is None:
      p.kill()
    p.wait()
    log.close()
    if p.returncode != 0:
      tail = open(os.path.join(out, f"{name}.log"), errors="replace").read()[-4000:]
      failures[name] = f"worker {name} failed (exit {p.returncode}); its log ends:\n{tail}"
  return failures


def _launch_runs(out):
  """The 1-device reference (devices_1) first; then, side by side, devices_4 and the two processes (procs)
  resuming from the reference's step-1 checkpoint (a checkpoint resumes on another layout). Returns
  {job: failure message}."""
  data_root = os.path.join(out, "data")
  from fmgs_jax.data import load_dataset  # pylint: disable=g-import-not-at-top
  load_dataset(_worker_module().tiny_config(data_root).data, "train")  # the capture, before the workers share it
  # Every worker sees 4 CPU devices (the XLA flags are part of the compilation-cache key) and shares one
  # persistent cache, so the later runs find the small eager programs and the image render the reference
  # compiled. No LLVM optimisation: it halves the compile time that dominates these runs (the runs
  # compare with each other, all compiled alike).
  cache = os.environ.get("FMGS_TEST_XLA_CACHE") or os.path.join(out, "xla_cache")
  flags = ("--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0 "
           "--xla_llvm_disable_expensive_passes=true")
  env = _env(XLA_FLAGS=flags, JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  failures = _run_all([("devices_1", "devices_1", ["devices", "1", out, data_root], env)], out)
  if failures:
    return {name: failures["devices_1"] for name in ("devices_4", "process_0", "process_1")}
  shutil.copytree(os.path.join(out, "devices_1", "checkpoints", "1"), os.path.join(out, "procs", "checkpoints", "1"))
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  jobs = [("devices_4", "devices_4", ["devices", "4", out, data_root], env)]
  jobs += [(f"process_{i}", "procs", ["process", "0", out, data_root],
            {**env, "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2",
             "JAX_PROCESS_ID": str(i)}) for i in range(2)]
  return _run_all(jobs, out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """(OUT, failures) of `_launch_runs`, once per test session even when xdist spreads the tests over
  workers (they share the base temp folder's parent; a lock makes the others wait for the first)."""
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent
  out, done = root / "parallel_runs", root / "parallel_runs.json"
  with open(root / "parallel_runs.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not done.exists():
      shutil.rmtree(out, ignore_errors=True)
      out.mkdir()
      done.write_text(json.dumps(_launch_runs(str(out))))
  return str(out), json.loads(done.read_text())


def _load(path):
  with np.load(path) as z:
    return {k: z[k] for k in z.files}


def _assert_same_updates(init, ref, other, rtol=1e-3):
  """Per parameter: max |(other - init) - (ref - init)| <= rtol * max |ref - init| (+ a float32 floor).

  Measured: <= 4e-4 of the update after 3 steps (the worst: small zero-initialised biases), float32
  round-off of gradients summed in another order; a sharding mistake (a gradient not all-reduced, or
  averaged over the wrong count) would be off by O(1) of the update.
  """
  assert set(ref) == set(other) == set(init)
  moved = 0
  for k in ref:
    d_ref, d_other = ref[k] - init[k], other[k] - init[k]
    scale = float(np.max(np.abs(d_ref), initial=0.0))
    err = float(np.max(np.abs(d_other - d_ref), initial=0.0))
    assert err <= rtol * scale + 1e-9, f"{k}: update differs by {err:.3g}, update size {scale:.3g}"
    moved += scale > 1e-5
  assert moved >= len(ref) // 2, f"only {moved} of {len(ref)} parameters moved: the steps did not train"


def test_sharded_step_over_4_devices_equals_one_device(runs):
  out, failures = runs
  if "devices_4" in failures:
    pytest.fail(failures["devices_4"])
  one, four = (json.load(open(os.path.join(out, f"devices_{n}.json"))) for n in (1, 4))
  assert one["device_count"] == four["device_count"] == 4 and one["mesh_size"] == 1 and four["mesh_size"] == 4
  assert "train.batch_size = 6" in four["batch_error"] and "the 4 devices" in four["batch_error"]
  assert not four["bad_workdir_made"]  # refused before any file was written
  for r in (one, four):
    assert r["info"]["train_steps"] == 3 and r["info"]["skipped_steps"] == 0
  init = _load(os.path.join(out, "init_params.npz"))
  _assert_same_updates(init, _load(os.path.join(out, "devices_1_params.npz")),
                       _load(os.path.join(out, "devices_4_params.npz")))


def test_two_processes_with_jax_distributed_agree_with_one(runs):
  out, failures = runs
  for name in ("process_0", "process_1"):
    if name in failures:
      pytest.fail(failures[name])
  reports = [json.load(open(os.path.join(out, f"process_{i}.json"))) for i in range(2)]
  for i, r in enumerate(reports):
    assert r["joined"] and r["process_index"] == i and r["process_count"] == 2
    assert r["local_devices"] == 4 and r["devices"] == 8 and r["mesh_devices"] == r["local_ids"][:2]
    assert r["info"]["train_steps"] == 3 and r["info"]["skipped_steps"] == 0
  assert "resumed from step 1" in open(os.path.join(out, "process_0.log")).read()
  assert reports[0]["rows"] == [0, 1] and reports[1]["rows"] == [2, 3]  # each process holds only its rows
  assert reports[0]["restored_info"]["train_steps"] == 3  # process 0 alone read the checkpoint back
  procs = os.path.join(out, "procs")
  assert len(glob.glob(os.path.join(procs, "tensorboard", "events.*"))) == 1  # one writer: process 0's
  assert json.load(open(os.path.join(procs, "train_info.json")))["train_steps"] == 3
  bar = re.compile(r"train:\s+\d+%")  # the progress bar: process 0 only
  assert bar.search(open(os.path.join(out, "process_0.log")).read())
  assert not bar.search(open(os.path.join(out, "process_1.log")).read())
  _assert_same_updates(_load(os.path.join(out, "init_params.npz")), _load(os.path.join(out, "devices_1_params.npz")),
                       _load(os.path.join(out, "procs_restored.npz")))
