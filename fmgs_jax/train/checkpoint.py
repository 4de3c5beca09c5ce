"""Checkpoints: orbax, atomic, keeping the last few, exact resume.

A checkpoint holds the whole training state pytree (parameters, optimiser state, step, random key and
the data-order state), so resuming reproduces the uninterrupted run: same parameters, same optimiser
moments and the same frames in the same order. Orbax writes each step to a temporary folder and renames
it when complete, so an interrupted save never looks like a finished checkpoint.

A checkpoint damaged later (unreadable or truncated files, or a tree of another config) is passed over:
`restore_latest` warns with its folder and the reason and restores the newest one that can be restored,
and is an error only when none can.
"""

import gc
import logging
import os
import re
import sys
import tempfile
import time
from typing import Any

from absl import logging as absl_logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from fmgs_jax.errors import UserError


class CheckpointError(UserError, RuntimeError):
  """A checkpoint exists but cannot be restored (corrupt, or from a different model/config)."""


def _arrays(tree: Any) -> Any:
  """Orbax stores arrays, not NumPy scalars (e.g. a data-order position): wrap those as 0-d arrays."""
  return jax.tree.map(lambda x: np.asarray(x) if isinstance(x, (np.generic, int, float)) else x, tree)


def manager(workdir: str, max_to_keep: int = 3, process_local: bool = False) -> ocp.CheckpointManager:
  """Opens (creating if needed) WORKDIR/checkpoints. Saves are synchronous so a kill never loses a save.

  In a multi-process run every process must call `save` (orbax writes each array once, from process 0,
  and synchronises the processes); `process_local=True` gives a manager for one process alone (process
  0 reading the newest checkpoint for evaluation while the others wait).
  """
  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  multiprocessing, create = ocp.options.MultiprocessingOptions(), True
  if process_local and jax.process_count() > 1:  # orbax cannot create the folder for a subset of processes
    me = jax.process_index()
    multiprocessing = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me},
                                                         barrier_sync_key_prefix=f"local{me}")
    create = False
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=create, enable_async_checkpointing=False,
      multiprocessing_options=multiprocessing)
  return ocp.CheckpointManager(directory, options=options)


def save(mngr: ocp.CheckpointManager, step: int, state: Any) -> None:
  """Writes `state` (any pytree of arrays and scalars) as checkpoint `step`."""
  mngr.save(step, args=ocp.args.StandardSave(_arrays(state)))
  mngr.wait_until_finished()


def _reason(e: Exception, limit: int = 300) -> str:
  """`Type: first line of the message`, cut to `limit` characters (orbax appends long tensorstore specs)."""
  text = (str(e).strip().splitlines() or [""])[0].split(" [tensorstore_spec=")[0]
  text = text if len(text) <= limit else text[:limit] + "..."
  return f"{type(e).__name__}: {text}" if text else type(e).__name__


class _DropUnretrievedTasks(logging.Filter):
  """Drops asyncio's 'Task exception was never retrieved' for the reads of a failed restore (already
  reported, with the reason, by `restore_latest`)."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Task exception was never retrieved")


def _try_restore(mngr: ocp.CheckpointManager, step: int, abstract: Any) -> tuple[Any, str | None]:
  """(state, None), or (None, the reason) when checkpoint `step` cannot be restored into `abstract`.

  A failed restore leaves tensorstore reads whose callbacks find orbax's event loop closed and print
  `RuntimeError: Event loop is closed` tracebacks straight to file descriptor 2. Standard error is
  captured meanwhile; after a failure only its log lines are passed on (the reason is reported instead).
  """
  quiet = _DropUnretrievedTasks()
  logging.getLogger("asyncio").addFilter(quiet)
  sys.stderr.flush()
  saved, capture = os.dup(2), tempfile.TemporaryFile()
  os.dup2(capture.fileno(), 2)
  reason = None
  try:
    return mngr.restore(step, args=ocp.args.StandardRestore(abstract)), None
  except Exception as e:  # pylint: disable=broad-except  (orbax raises many types for unreadable trees)
    reason = _reason(e)
    time.sleep(0.5)  # let the failed reads finish while standard error is captured
    return None, reason
  finally:
    gc.collect()  # the failed reads' tasks go now, while their log records are dropped
    logging.getLogger("asyncio").removeFilter(quiet)
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    capture.seek(0)
    text = capture.read().decode(errors="replace")
    capture.close()
    if reason is not None:
      text = "".join(l for l in text.splitlines(keepends=True) if re.match(r"[IWEF]\d{4} ", l))
    sys.stderr.write(text)
    sys.stderr.flush()


def step_path(mngr: ocp.CheckpointManager, step: int) -> str:
  """The folder of checkpoint `step`."""
  return os.path.join(str(mngr.directory), str(step))


def restore_latest(mngr: ocp.CheckpointManager, template: Any) -> tuple[int, Any] | None:
  """Restores the newest checkpoint that can be restored into the structure, shapes and dtypes of `template`.

  A checkpoint that cannot be read (unreadable or truncated files) or does not match `template` is
  passed over with a warning naming its folder and the reason, and the one before it is tried: a damaged
  newest checkpoint costs one checkpoint interval, not the run. The steps passed over are those of
  `mngr.all_steps()` above the returned step.

  Returns (step, state), or None when there is no checkpoint. Raises CheckpointError naming every
  checkpoint and why it failed when none can be restored (corrupt, or written by a different config).
  """
  steps = sorted(mngr.all_steps(), reverse=True)
  if not steps:
    return None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _arrays(template))
  failed = []
  for step in steps:
    state, reason = _try_restore(mngr, step, abstract)
    if reason is None:
      return step, state
    failed.append(f"{step_path(mngr, step)} ({reason})")
    absl_logging.warning("checkpoint %s cannot be restored: %s; %s", step_path(mngr, step), reason,
                         "trying the one before it" if step != steps[-1] else "it was the oldest")
  raise CheckpointError(
      f"no checkpoint in {mngr.directory} can be restored: {'; '.join(failed)}. They are corrupt or were "
      "written by a different config (model size, surfel count): use a new --workdir, or move "
      f"{mngr.directory} away to train from scratch.")


def set_aside(mngr: ocp.CheckpointManager, step: int) -> str:
  """Moves checkpoint `step` out of the checkpoint folder, to WORKDIR/checkpoints_unreadable/STEP (a
  suffix where that exists), so that training can write that step again; returns the new folder.

  Call it on one process, then `mngr.reload()` on every process.
  """
  src = step_path(mngr, step)
  root = os.path.join(os.path.dirname(str(mngr.directory)), "checkpoints_unreadable")
  os.makedirs(root, exist_ok=True)
  dst, n = os.path.join(root, str(step)), 1
  while os.path.exists(dst):
    dst, n = os.path.join(root, f"{step}.{n}"), n + 1
  os.rename(src, dst)
  return dst
