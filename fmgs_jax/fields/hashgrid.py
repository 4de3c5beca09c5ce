"""Multi-resolution hash grid encoding (Instant-NGP, Mueller et al. 2022) over a 3D bounding box.

Level l has resolution N_l = floor(N_min * b^l) with b = exp((ln N_max - ln N_min) / (L - 1)), so the
resolutions grow geometrically from `base_resolution` to `max_resolution`. A point x in the box is
scaled to [0, N_l]^3 at level l; the 8 integer corners of its cell index a table of `2^log2_table_size`
feature vectors:

* dense index  i + j (N_l + 1) + k (N_l + 1)^2   when the level's (N_l + 1)^3 corners fit in the table,
* spatial hash (i * 1) xor (j * 2654435761) xor (k * 805459861) mod T   otherwise (uint32 arithmetic),

and the corner features are blended trilinearly. The levels' features are concatenated level-major:
output[..., l * F + f] is feature f of level l.

All levels share one (L, T, F) parameter array; a dense level with fewer corners than T leaves the
tail of its row unused (it gets zero gradient).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Instant-NGP's spatial-hash primes, one per axis (the first is 1 for cache coherence along x).
HASH_PRIMES = (1, 2654435761, 805459861)


def level_resolutions(base_resolution: int, max_resolution: int, num_levels: int) -> np.ndarray:
  """Per-level grid resolutions N_l = floor(N_min * b^l), geometric from base to max.

  Returns:
    (num_levels,) int64, N_0 = base_resolution and N_{L-1} = max_resolution.
  """
  if num_levels < 1 or base_resolution < 1 or max_resolution < base_resolution:
    raise ValueError(f"hash grid: need num_levels >= 1 and 1 <= base_resolution <= max_resolution, got "
                     f"num_levels={num_levels}, base_resolution={base_resolution}, "
                     f"max_resolution={max_resolution}")
  if num_levels == 1:
    return np.array([base_resolution], np.int64)
  growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / (num_levels - 1))
  # The small epsilon keeps N_{L-1} == max_resolution despite round-off in growth ** (L - 1).
  return np.floor(base_resolution * growth ** np.arange(num_levels) + 1e-6).astype(np.int64)


def level_is_dense(resolutions: np.ndarray, table_size: int) -> np.ndarray:
  """(L,) bool: True where all (N_l + 1)^3 corners of a level fit in the table (no hashing)."""
  return (np.asarray(resolutions, np.float64) + 1) ** 3 <= table_size


def corner_index(corners: jnp.ndarray, resolution: jnp.ndarray, dense: jnp.ndarray,
                 table_size: int) -> jnp.ndarray:
  """Table row of integer grid corners: dense indexing or the spatial hash.

  Args:
    corners: (..., 3) int32 corner coordinates in [0, resolution].
    resolution: int, broadcastable to corners[..., 0]; the level's N_l.
    dense: bool, broadcastable to corners[..., 0]; whether the level is indexed densely.
    table_size: T, a power of two.

  Returns:
    (...) int32 row indices in [0, T).
  """
  c = corners.astype(jnp.uint32)
  side = jnp.asarray(resolution).astype(jnp.uint32) + 1
  dense_idx = c[..., 0] + side * (c[..., 1] + side * c[..., 2])
  # uint32 products wrap modulo 2^32, exactly as in Instant-NGP's CUDA code.
  hashed = (c[..., 0] * jnp.uint32(HASH_PRIMES[0])) ^ (c[..., 1] * jnp.uint32(HASH_PRIMES[1])) ^ (
      c[..., 2] * jnp.uint32(HASH_PRIMES[2]))
  idx = jnp.where(dense, dense_idx, hashed) & jnp.uint32(table_size - 1)
  return idx.astype(jnp.int32)


# The 8 corner offsets of a cell, bit b of the corner number selecting +1 along axis b.
_CORNER_OFFSETS = np.array([[(c >> a) & 1 for a in range(3)] for c in range(8)], np.int32)


def encode(table: jnp.ndarray, x01: jnp.ndarray, resolutions: np.ndarray) -> jnp.ndarray:
  """Trilinearly interpolated multi-level features of points in the unit cube.

  Args:
    table: (L, T, F) float32 feature table, T a power of two.
    x01: (N, 3) float32 points in [0, 1]^3 (clipped into it).
    resolutions: (L,) ints N_l (static).

  Returns:
    (N, L * F) float32, level-major.
  """
  num_levels, table_size, num_features = table.shape
  if table_size & (table_size - 1):
    raise ValueError(f"hash grid: table size must be a power of two, got {table_size}")
  res_np = np.asarray(resolutions)
  if res_np.shape != (num_levels,):
    raise ValueError(f"hash grid: {num_levels} table levels but {res_np.shape} resolutions")
  res = jnp.asarray(res_np, jnp.float32)
  dense = jnp.asarray(level_is_dense(res_np, table_size))
  x = jnp.clip(x01, 0.0, 1.0)[:, None, :] * res[None, :, None]  # (N, L, 3)
  # Clamping the cell to [0, N_l - 1] puts x == 1 in the last cell with weight 1 on its far corner.
  cell = jnp.clip(jnp.floor(x), 0.0, res[None, :, None] - 1.0)
  frac = x - cell  # (N, L, 3) in [0, 1]
  corners = cell.astype(jnp.int32)[:, :, None, :] + _CORNER_OFFSETS[None, None]  # (N, L, 8, 3)
  offs = jnp.asarray(_CORNER_OFFSETS, jnp.float32)
  weights = jnp.prod(jnp.where(offs[None, None] > 0, frac[:, :, None, :], 1.0 - frac[:, :, None, :]),
                     axis=-1)  # (N, L, 8)
  rows = corner_index(corners, res_np.astype(np.int32)[None, :, None], dense[None, :, None], table_size)
  feats = table[jnp.arange(num_levels)[None, :, None], rows]  # (N, L, 8, F)
  out = jnp.sum(weights[..., None] * feats, axis=2)  # (N, L, F)
  return out.reshape(out.shape[0], num_levels * num_features)


class HashGrid(nn.Module):
  """Instant-NGP multi-resolution hash encoding of points in an axis-aligned box.

  Attributes:
    bbox_min: (3,) box corner, in the frame of the input points (canonical space, metres).
    bbox_max: (3,) opposite corner; points outside the box are clamped onto it.
    num_levels: L.
    features_per_level: F.
    log2_table_size: log2 of the rows T per level.
    base_resolution: coarsest resolution N_min.
    max_resolution: finest resolution N_max.
    init_scale: table entries start uniform in [-init_scale, init_scale] (Instant-NGP: 1e-4).
  """
  bbox_min: tuple[float, float, float]
  bbox_max: tuple[float, float, float]
  num_levels: int = 16
  features_per_level: int = 2
  log2_table_size: int = 16
  base_resolution: int = 16
  max_resolution: int = 2048
  init_scale: float = 1e-4

  @property
  def num_outputs(self) -> int:
    return self.num_levels * self.features_per_level

  @nn.compact
  def __call__(self, points: jnp.ndarray) -> jnp.ndarray:
    """Encodes points.

    Args:
      points: (..., 3) float32 positions in the box's frame.

    Returns:
      (..., num_levels * features_per_level) float32 features, level-major.
    """
    lo = np.asarray(self.bbox_min, np.float32)
    hi = np.asarray(self.bbox_max, np.float32)
    if lo.shape != (3,) or hi.shape != (3,) or np.any(hi <= lo):
      raise ValueError(f"HashGrid: bbox_max must exceed bbox_min on every axis, got {lo} and {hi}")
    resolutions = level_resolutions(self.base_resolution, self.max_resolution, self.num_levels)

    def init(key, shape, dtype=jnp.float32):
      return jax.random.uniform(key, shape, dtype, -self.init_scale, self.init_scale)

    table = self.param("table", init, (self.num_levels, 2 ** self.log2_table_size, self.features_per_level))
    batch_shape = points.shape[:-1]
    x01 = (points.reshape(-1, 3) - lo) / (hi - lo)
    return encode(table, x01, resolutions).reshape(*batch_shape, self.num_outputs)
