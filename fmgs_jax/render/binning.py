"""Tile binning: surfel-tile pairs, depth order within each tile, per-tile capacity with overflow count.

As in 3DGS/2DGS (`duplicateWithKeys` + radix sort + `identifyTileRanges`) but with static shapes:

1. Visible surfels are sorted by centre depth (stable, so equal depths keep index order; the
   reference backend uses the same order).
2. Surfel i covers the tiles of its inclusive box; its n_i pairs occupy slots [start_i, start_i + n_i)
   of a buffer of `pair_capacity` slots, filled in depth order (owner of a slot = cumulative count of
   starts at or before it). Pairs past the buffer (the farthest ones) are dropped and counted.
3. A stable sort by tile id groups the pairs per tile, still front to back.
4. Each tile keeps its first `capacity` pairs (the nearest surfels); the rest are counted.

Stable API: `Bins`, `bin_surfels`, `gather_rows`.
"""

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class Bins:
  """Per-tile surfel lists.

  Attributes:
    index: (n_tiles, K) int32 surfel indices, front to back; N (one past the last surfel) on padding.
    count: (n_tiles,) int32 entries in use per tile (<= K).
    overflow: () int32 surfel-tile pairs dropped (tile capacity or pair buffer exceeded); 0 means the
      tiles hold every surfel that can reach alpha_min in them.
  """
  index: jnp.ndarray
  count: jnp.ndarray
  overflow: jnp.ndarray


def bin_surfels(tile_bbox, depth, visible, tiles_x: int, tiles_y: int, capacity: int,
                pair_capacity: int) -> Bins:
  """Assigns surfels to tiles, nearest first.

  Args:
    tile_bbox: (N, 4) int32 inclusive tile box (tx0, ty0, tx1, ty1) per surfel.
    depth: (N,) float32 centre depth, metres (sort key).
    visible: (N,) bool; invisible surfels get no tiles.
    tiles_x, tiles_y: tile grid.
    capacity: K, surfels kept per tile.
    pair_capacity: static size of the surfel-tile pair buffer.

  Returns:
    Bins.
  """
  n = depth.shape[0]
  n_tiles = tiles_x * tiles_y
  order = jnp.argsort(jnp.where(visible, depth, jnp.inf), stable=True).astype(jnp.int32)
  box = tile_bbox[order]
  w = box[:, 2] - box[:, 0] + 1
  h = box[:, 3] - box[:, 1] + 1
  num = jnp.where(visible[order], w * h, 0).astype(jnp.int32)
  ends = jnp.cumsum(num)
  starts = ends - num
  total = ends[-1] if n else jnp.int32(0)
  # Owner (position in `order`) of every slot: starts are non-decreasing, so the number of starts at
  # or before slot p, minus one, is the last surfel starting there, which owns p (it has n > 0).
  marks = jnp.zeros((pair_capacity,), jnp.int32).at[starts].add(1, mode="drop")
  owner = jnp.clip(jnp.cumsum(marks) - 1, 0, max(n - 1, 0))
  slot = jnp.arange(pair_capacity, dtype=jnp.int32)
  local = slot - starts[owner]
  ob = box[owner]
  ow = w[owner]
  tx = ob[:, 0] + local % jnp.maximum(ow, 1)
  ty = ob[:, 1] + local // jnp.maximum(ow, 1)
  key = jnp.where(slot < total, ty * tiles_x + tx, n_tiles).astype(jnp.int32)
  key, surfel = jax.lax.sort((key, order[owner]), num_keys=1, is_stable=True)
  bounds = jnp.searchsorted(key, jnp.arange(n_tiles + 1, dtype=jnp.int32), side="left")
  bounds = bounds.astype(jnp.int32)
  raw = bounds[1:] - bounds[:-1]
  count = jnp.minimum(raw, capacity)
  k = jnp.arange(capacity, dtype=jnp.int32)
  idx = jnp.clip(bounds[:-1, None] + k, 0, pair_capacity - 1)
  index = jnp.where(k < count[:, None], surfel[idx], n)
  overflow = jnp.sum(raw - count) + jnp.maximum(total - pair_capacity, 0)
  return Bins(index=index.astype(jnp.int32), count=count.astype(jnp.int32),
              overflow=overflow.astype(jnp.int32))


def gather_rows(rows, index):
  """Packed per-tile table (n_tiles, K, F) from surfel rows (N, F) and Bins.index (padding -> zeros)."""
  padded = jnp.concatenate([rows, jnp.zeros((1, rows.shape[1]), rows.dtype)], axis=0)
  return padded[index]
