"""Data parallelism over devices and hosts with JAX's own runtime (`jax.sharding`, `jax.distributed`).

One mesh axis, `data`. The global batch (`config.train.batch_size` frames, whatever the number of
devices) is split along it; the TrainState (parameters, Adam moments, step, key) is replicated on every
device, and XLA's SPMD partitioner inserts the all-reduce that averages the gradients (the losses are
batch means, so the sharded step computes the same function as the single-device one). The step
function itself (train/step.py) knows nothing of devices: `jit_step` only adds in/out shardings.

Why replicate the state instead of sharding it: the default avatar (60k surfels, four hash grids of
16 x 2^16 x 2 floats, small MLPs) has ~6.8 M float32 parameters, 26 MB, ~80 MB with the Adam moments.
That fits every accelerator many times over, and sharding it (FSDP / ZeRO) would add an all-gather of
every grid table per step to a step whose cost is the rasterizer, for no memory we need.

Several processes (hosts, or one process per GPU): `maybe_initialize_distributed` joins them through
`jax.distributed.initialize`; every process builds the same mesh over all devices, runs the same steps,
and stacks and transfers only its own rows of each global batch (`shard_batch`). Which frames a step
uses stays a pure function of (seed, step) (train/schedule.py), so a run on 1 device, 4 devices or 2
hosts trains on the same batches and agrees to float round-off; a checkpoint from one layout resumes on
another. Only process 0 writes files (`is_main_process`); checkpoint saves are collective (orbax).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

from absl import logging
import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np

from fmgs_jax import errors

DATA_AXIS = "data"
DISTRIBUTED_MODES = ("auto", "on", "off")


def cluster_process_count(environ: Mapping[str, str] | None = None) -> tuple[int, str]:
  """(processes the launcher started, which variables say so); (1, "") when none is set.

  Read: JAX_NUM_PROCESSES (with JAX_COORDINATOR_ADDRESS and JAX_PROCESS_ID, our explicit convention),
  SLURM_NTASKS inside a job step (srun), OMPI_COMM_WORLD_SIZE (mpirun). A single-task SLURM job (e.g.
  one element of a job array) counts as 1: it must not start a coordinator.
  """
  env = os.environ if environ is None else environ
  if env.get("JAX_NUM_PROCESSES", "") != "":
    return int(env["JAX_NUM_PROCESSES"]), "JAX_NUM_PROCESSES"
  slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
  if all(v in env for v in slurm):
    return int(env["SLURM_NTASKS"]), "SLURM_NTASKS"
  if "OMPI_COMM_WORLD_SIZE" in env:
    return int(env["OMPI_COMM_WORLD_SIZE"]), "OMPI_COMM_WORLD_SIZE"
  return 1, ""


def local_device_ids(spec: str, environ: Mapping[str, str] | None = None) -> list[int] | None:
  """`config.parallel.local_device_ids` as jax.distributed.initialize takes it.

  "" -> None (JAX's default: JAX_LOCAL_DEVICE_IDS, else under SLURM the GPU numbered SLURM_LOCALID,
  else all); "all" -> every GPU listed in CUDA_VISIBLE_DEVICES (one process driving a whole node:
  JAX's SLURM detection alone would give it one GPU); "0,2" -> [0, 2].
  """
  env = os.environ if environ is None else environ
  spec = str(spec).strip()
  if not spec:
    return None
  if spec == "all":
    visible = env.get("CUDA_VISIBLE_DEVICES", "").strip()
    if not visible:
      raise errors.ConfigError(
          "config parallel.local_device_ids = 'all' counts the GPUs in CUDA_VISIBLE_DEVICES, which "
          "is not set: list the ids instead, e.g. --config.parallel.local_device_ids=0,1,2,3")
    return list(range(len(visible.split(","))))
  try:
    ids = [int(x) for x in spec.split(",")]
  except ValueError:
    raise errors.ConfigError(
        f"config parallel.local_device_ids: {spec!r}, expected '', 'all' or ids like 0,1,2,3") from None
  if any(i < 0 for i in ids) or len(set(ids)) != len(ids):
    raise errors.ConfigError(f"config parallel.local_device_ids: {spec!r}, expected distinct non-negative ids")
  return ids


def maybe_initialize_distributed(parallel_cfg: Any, environ: Mapping[str, str] | None = None) -> bool:
  """Joins the processes of a multi-process run (`jax.distributed.initialize`); once, before any device use.

  Args:
    parallel_cfg: `config.parallel`: distributed "off" (never), "on" (always; what the config leaves
      unset comes from the environment: JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID,
      else SLURM or Open MPI through JAX's cluster detection), "auto" (when the config or
      JAX_COORDINATOR_ADDRESS names a coordinator, or the config or the launcher asks for more than one
      process, see `cluster_process_count`);
      coordinator_address ("host:port" of process 0), num_processes (0 = environment), process_id
      (-1 = environment), local_device_ids (see `local_device_ids`).
    environ: the environment (default os.environ; for tests).

  Returns:
    True when this process is part of an initialized multi-process run.

  Raises:
    ValueError: unknown mode, or explicit settings that cannot describe a run (named as config fields).
  """
  env = os.environ if environ is None else environ
  mode = parallel_cfg.distributed
  if mode not in DISTRIBUTED_MODES:
    raise errors.ConfigError(f"config parallel.distributed: {mode!r}, expected one of {DISTRIBUTED_MODES}")
  if jax.distributed.is_initialized():
    return True
  if mode == "off":
    return False
  address = parallel_cfg.coordinator_address or env.get("JAX_COORDINATOR_ADDRESS") or None
  num = int(parallel_cfg.num_processes) or int(env.get("JAX_NUM_PROCESSES", "0") or 0) or None
  pid = int(parallel_cfg.process_id)
  if pid < 0 and env.get("JAX_PROCESS_ID", "") != "":
    pid = int(env["JAX_PROCESS_ID"])
  pid = None if pid < 0 else pid
  if mode == "auto":
    launched, _ = cluster_process_count(env)
    if not (address or (num or 0) > 1 or launched > 1):
      return False
  if address is not None and ":" not in address:
    raise errors.ConfigError(f"config parallel.coordinator_address: {address!r}, expected host:port of process 0")
  if num is not None and pid is not None and not 0 <= pid < num:
    raise errors.ConfigError(f"config parallel.process_id = {pid} is not in [0, parallel.num_processes = {num})")
  local = local_device_ids(parallel_cfg.local_device_ids, env)
  logging.info("jax.distributed.initialize(coordinator_address=%s, num_processes=%s, process_id=%s, "
               "local_device_ids=%s)", address, num, pid, local)
  jax.distributed.initialize(coordinator_address=address, num_processes=num, process_id=pid,
                             local_device_ids=local)
  logging.info("process %d of %d; %d local of %d devices", jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())
  return True


def is_main_process() -> bool:
  """True on process 0, the one that writes logs, renders, configs and summaries."""
  return jax.process_index() == 0


def make_mesh(num_devices: int = 0) -> Mesh:
  """A 1-D mesh with axis `data` over `num_devices` devices (0 = every device of every process).

  With several processes each contributes the same number of its own devices (num_devices must then be
  a multiple of the process count), ordered by process so that a process's rows of the batch are
  contiguous.
  """
  procs = jax.process_count()
  total = jax.device_count()
  n = int(num_devices) or total
  if n < 0 or n > total:
    raise errors.ConfigError(f"config parallel.num_devices = {num_devices}: {total} devices are visible "
                             "(0 = all)")
  if n % procs:
    raise errors.ConfigError(f"config parallel.num_devices = {n} is not a multiple of the {procs} processes: each "
                             "process must hold the same number of devices")
  per = n // procs
  by_process = {}
  for d in jax.devices():
    by_process.setdefault(d.process_index, []).append(d)
  devices = [d for p in sorted(by_process) for d in sorted(by_process[p], key=lambda d: d.id)[:per]]
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over `data`, the rest of each array whole."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """A whole copy on every device of the mesh."""
  return NamedSharding(mesh, PartitionSpec())


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  """Raises ValueError unless the global batch splits evenly over the mesh's devices."""
  n = mesh.devices.size
  if batch_size < 1 or batch_size % n:
    ok = ", ".join(str(n * k) for k in range(1, 4))
    raise errors.ConfigError(
        f"config train.batch_size = {batch_size} (the global batch) must be a positive multiple of "
        f"the {n} devices on the data axis (e.g. {ok}), or set --config.parallel.num_devices")


def local_rows(mesh: Mesh, batch_size: int) -> np.ndarray:
  """(R,) int64 sorted rows of the global batch held by this process's devices."""
  index_map = batch_sharding(mesh).addressable_devices_indices_map((batch_size,))
  rows = set()
  for index in index_map.values():
    rows.update(range(batch_size)[index[0]])
  return np.asarray(sorted(rows), np.int64)


def shard_batch(local_batch: Any, mesh: Mesh, batch_size: int) -> Any:
  """The global batch as arrays split over `data`, from this process's rows only.

  Args:
    local_batch: pytree whose leaves have leading axis R = len(local_rows(mesh, batch_size)): rows
      `local_rows(...)` of the global batch, in that order (host or device arrays).
    mesh: from `make_mesh`.
    batch_size: the global batch B.

  Returns:
    The same pytree with (B, ...) global arrays sharded by `batch_sharding(mesh)`.
  """
  sharding = batch_sharding(mesh)
  rows = local_rows(mesh, batch_size)
  devices = sharding.addressable_devices_indices_map((batch_size,))

  def one(leaf):
    leaf = np.asarray(leaf)
    if leaf.shape[0] != len(rows):
      raise ValueError(f"shard_batch: a leaf has {leaf.shape[0]} rows, this process holds {len(rows)} of "
                       f"the global batch of {batch_size}")
    shards = [jax.device_put(leaf[np.searchsorted(rows, np.arange(batch_size)[index[0]])], d)
              for d, index in devices.items()]
    return jax.make_array_from_single_device_arrays((batch_size,) + leaf.shape[1:], sharding, shards)

  return jax.tree.map(one, local_batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Every leaf as a global array replicated over the mesh (the same values must be given on every
  process, e.g. parameters initialised from the config's seed)."""
  sharding = replicated(mesh)

  def one(leaf):
    value = np.asarray(jax.device_get(leaf))
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

  return jax.tree.map(one, tree)


def local_copy(tree: Any) -> Any:
  """Replicated global arrays -> this process's own copy (on its first device): for process-local
  work (image summaries) that must not involve the other processes."""
  return jax.tree.map(lambda x: x.addressable_shards[0].data if isinstance(x, jax.Array) else x, tree)


def jit_step(step: Callable[[Any, Any], tuple[Any, Any]], mesh: Mesh, donate: bool = True) -> Callable:
  """`jax.jit(step)` with the state replicated, the batch split over `data`, outputs replicated.

  step: (state, batch) -> (state, metrics), e.g. train/step.py's `make_train_step(...)`.
  """
  rep = replicated(mesh)
  return jax.jit(step, in_shardings=(rep, batch_sharding(mesh)), out_shardings=(rep, rep),
                 donate_argnums=0 if donate else ())


def barrier(name: str) -> None:
  """Waits until every process gets here (no-op with one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)
