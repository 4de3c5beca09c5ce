"""Deterministic frame order: which frames step k trains on is a pure function of (seed, k).

Each epoch is a fresh permutation of the training frames drawn from `fold_in(seed, epoch)`, and a
batch is a window of the concatenated epochs. Because nothing but the step number is needed to know
where the data stands, resuming from a checkpoint at step k continues with exactly the frames the
uninterrupted run would have used.
"""

import numpy as np


def epoch_permutation(seed: int, epoch: int, num_frames: int) -> np.ndarray:
  """(num_frames,) int64 permutation used for `epoch`."""
  rng = np.random.default_rng([seed, epoch])
  return rng.permutation(num_frames)


def batch_indices(seed: int, step: int, num_frames: int, batch_size: int) -> np.ndarray:
  """(batch_size,) frame indices for training step `step` (0-based)."""
  if num_frames <= 0:
    raise ValueError("no training frames")
  out = np.empty(batch_size, dtype=np.int64)
  for i in range(batch_size):
    flat = step * batch_size + i
    epoch, pos = divmod(flat, num_frames)
    out[i] = epoch_permutation(seed, epoch, num_frames)[pos]
  return out
