"""metrics.json assembly: required keys, frame-weighted means, nulls, atomic write."""

import json

import numpy as np
import pytest

from fmgs_jax.eval import metrics_report, write_metrics_json


def test_report_means_nulls_and_splits(tmp_path):
  frames = {
      "novel_view": [{"psnr": 30.0, "ssim": 0.9, "lpips": None, "normal_error_deg": 10.0},
                     {"psnr": 32.0, "ssim": 0.95, "lpips": None, "normal_error_deg": 12.0}],
      "novel_pose": [{"psnr": 27.0, "ssim": 0.8, "lpips": None, "normal_error_deg": float("nan"),
                      "part_miou": 0.5}],
  }
  r = metrics_report(frames, train_steps=100, train_seconds=12.5)
  np.testing.assert_allclose(r["psnr"], (30 + 32 + 27) / 3)  # frame-weighted over all splits
  np.testing.assert_allclose(r["splits"]["novel_view"]["ssim"], 0.925)
  np.testing.assert_allclose(r["normal_error_deg"], 11.0)  # NaN frames are left out
  assert r["lpips"] is None and r["chamfer_mm"] is None
  assert r["part_miou"] == 0.5 and r["splits"]["novel_view"]["part_miou"] is None
  assert r["num_frames"] == 3 and r["splits"]["novel_pose"]["num_frames"] == 1
  assert r["train_steps"] == 100 and r["train_seconds"] == 12.5

  path = tmp_path / "metrics.json"
  write_metrics_json(path, r)
  back = json.loads(path.read_text())
  for k in ("psnr", "ssim", "lpips", "normal_error_deg", "chamfer_mm", "train_steps", "train_seconds"):
    assert k in back
  assert back["lpips"] is None and back["splits"]["novel_pose"]["normal_error_deg"] is None
  assert not (tmp_path / "metrics.json.tmp").exists()


def test_report_rejects_empty_and_incomplete(tmp_path):
  with pytest.raises(ValueError, match="no evaluated frame"):
    metrics_report({"test": []}, 1, 1.0)
  with pytest.raises(ValueError, match="missing required keys"):
    write_metrics_json(tmp_path / "m.json", {"psnr": 1.0})
  assert not (tmp_path / "m.json").exists()
