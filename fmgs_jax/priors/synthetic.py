"""The `synthetic` backend: priors from the synthetic capture's ground truth, corrupted (corrupt.py).

Reads per frame `mask`, `gt_normal` ((H, W, 3) unit, camera frame, OpenCV axes), `gt_depth` ((H, W)
camera z, metres) and `gt_parts` ((H, W) int ids into the source's part names, e.g. the template's 16
parts, mapped with labels.mapping_table; without names the ids are taken as Sapiens ids). Randomness:
the normal bias rotation is drawn once per sequence from `seed`; everything else per frame from
(seed, CRC32 of the frame key), so a frame's prior does not depend on which other frames were extracted.
"""

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from fmgs_jax.priors import corrupt
from fmgs_jax.priors import labels as labels_lib

DEPTH_KIND = "affine_depth"
_FIELDS = ("seed", "normal_noise_deg", "normal_bias_deg", "normal_blur_px", "thin_radius_px",
           "depth_scale_range", "depth_shift_range", "depth_noise", "depth_blur_px", "seg_confusion",
           "seg_border_px")


def identity(cfg: Any, part_names: tuple[str, ...] | None) -> dict[str, Any]:
  """Manifest description: every corruption level (a change regenerates the cache)."""
  out = {"kind": "synthetic", **{f: (list(getattr(cfg, f)) if isinstance(getattr(cfg, f), (tuple, list))
                                     else getattr(cfg, f)) for f in _FIELDS}}
  out["source_part_names"] = list(part_names) if part_names is not None else "sapiens"
  return out


def _need(frame: Mapping[str, Any], name: str, key: str) -> np.ndarray:
  v = frame.get(name)
  if v is None:
    raise ValueError(f"frame {key!r}: field {name!r} is missing; the synthetic prior backend needs the "
                     "ground truth of the built-in synthetic capture (c.data.name = 'synthetic')")
  return np.asarray(v)


def synthetic_priors(frame: Mapping[str, Any], key: str, cfg: Any, part_table: np.ndarray | None,
                     tasks: tuple[str, ...] = ("normal", "depth", "parts")
                     ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
  """Corrupted ground-truth priors for one frame.

  Args:
    frame: mapping with `mask` and the needed `gt_*` fields (shapes above).
    key: the frame key (seeds the frame's randomness).
    cfg: c.priors.synthetic.
    part_table: labels.mapping_table of the source part names, or None for Sapiens ids.
    tasks: which priors to produce.
  Returns:
    arrays for the cache (normal, depth, parts, valid) and stats (drawn depth scale/shift, thin pixels).
  """
  mask = _need(frame, "mask", key) > 0.5
  rng = np.random.default_rng([int(cfg.seed), zlib.crc32(key.encode())])
  thin = corrupt.thin_parts(mask, float(cfg.thin_radius_px))
  valid = mask & ~thin
  out: dict[str, np.ndarray] = {"valid": valid}
  stats = {"thin_pixels": float(thin.sum())}
  if "normal" in tasks:
    bias = corrupt.bias_rotation(np.random.default_rng(int(cfg.seed)), float(cfg.normal_bias_deg))
    n = corrupt.corrupt_normals(_need(frame, "gt_normal", key), mask, rng, blur_px=float(cfg.normal_blur_px),
                                bias=bias, noise_deg=float(cfg.normal_noise_deg))
    out["normal"] = np.where(valid[..., None], n, 0.0).astype(np.float32)
  if "depth" in tasks:
    d, (a, b) = corrupt.corrupt_depth(_need(frame, "gt_depth", key), mask, rng,
                                      blur_px=float(cfg.depth_blur_px), noise=float(cfg.depth_noise),
                                      scale_range=tuple(cfg.depth_scale_range),
                                      shift_range=tuple(cfg.depth_shift_range))
    out["depth"] = np.where(valid, d, 0.0).astype(np.float32)
    stats.update(depth_scale=a, depth_shift=b)
  if "parts" in tasks:
    gt = _need(frame, "gt_parts", key).astype(np.int64)
    parts = labels_lib.remap_labels(gt, part_table) if part_table is not None else gt.astype(np.int16)
    parts = np.where(mask, parts, 0).astype(np.int16)
    parts = corrupt.confuse_parts(parts, mask, rng, prob=float(cfg.seg_confusion),
                                  radius_px=float(cfg.seg_border_px))
    out["parts"] = np.where(valid, parts, 0).astype(np.int16)  # missed thin parts read as background
  return out, stats
