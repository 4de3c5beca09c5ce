"""Checkpoints: orbax, atomic, keeping the last few, exact resume.

A checkpoint holds the whole training state pytree (parameters, optimiser state, step, random key and
the data-order state), so resuming reproduces the uninterrupted run: same parameters, same optimiser
moments and the same frames in the same order. Orbax writes each step to a temporary folder and renames
it when complete, so an interrupted save never looks like a finished checkpoint.
"""

import os
from typing import Any

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


def restore_latest(mngr: ocp.CheckpointManager, template: Any) -> tuple[int, Any] | None:
  """Restores the newest checkpoint into the structure, shapes and dtypes of `template`.

  Returns (step, state), or None when there is no checkpoint. Raises CheckpointError naming the folder
  when the newest checkpoint cannot be read or does not match `template` (a different config).
  """
  step = mngr.latest_step()
  if step is None:
    return None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _arrays(template))
  path = os.path.join(str(mngr.directory), str(step))
  try:
    state = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
  except Exception as e:  # orbax raises many types for unreadable or mismatched trees
    raise CheckpointError(
        f"Cannot restore checkpoint {path}: {type(e).__name__}: {e}. It is corrupt or was written by a "
        "different config (model size, surfel count). Delete it to fall back to an older one, or use a "
        "new --workdir.") from None
  return step, state
