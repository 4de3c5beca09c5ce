"""Frame order: every epoch visits each frame once, and the order depends only on (seed, step)."""

import numpy as np

from fmgs_jax.train import schedule


def test_each_epoch_visits_every_frame_once():
  n, b = 7, 3
  seen = np.concatenate([schedule.batch_indices(0, s, n, b) for s in range(7)])  # 21 = 3 epochs
  for e in range(3):
    assert sorted(seen[e * n:(e + 1) * n]) == list(range(n))


def test_order_is_a_function_of_seed_and_step():
  a = [schedule.batch_indices(4, s, 10, 2) for s in range(12)]
  b = [schedule.batch_indices(4, s, 10, 2) for s in reversed(range(12))][::-1]
  np.testing.assert_array_equal(np.stack(a), np.stack(b))
  c = [schedule.batch_indices(5, s, 10, 2) for s in range(12)]
  assert not np.array_equal(np.stack(a), np.stack(c))
