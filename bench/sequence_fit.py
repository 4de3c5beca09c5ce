"""Sequence fitter on the synthetic capture (96 px, turntable): GT masks, GT joints corrupted as a
detector would (3 px, 10% dropped, confidence 0.3-1). Prints a table (or --json) of the fit from the
yaw search (and, with --gt_orientation, from the true orientations): MPJPE after aligning the root
(of the fitted skeleton; "tmpl": the fitted poses on the template with the fitted shape, no bone
factors), orientation error, silhouette IoU, keypoint error and seconds. History: docs/fitting.md.

  PYTHONPATH=$PWD python bench/sequence_fit.py --frames=48
"""

import argparse
import json
import pathlib
import tempfile

import numpy as np

from fmgs_jax import body as body_lib
from fmgs_jax.fit import sequence
from tests.fit import test_sequence as T


class _Tmp:
  def mktemp(self, name):
    return pathlib.Path(tempfile.mkdtemp(prefix=name))


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--frames", type=int, default=48)
  ap.add_argument("--steps", type=int, default=0, help="Adam steps (0: the config's)")
  ap.add_argument("--size", type=int, default=96)
  ap.add_argument("--gt_orientation", action="store_true", help="also fit from the true orientations")
  ap.add_argument("--json", action="store_true")
  a = ap.parse_args()
  c, frames, joints = T.capture(_Tmp(), a.frames, a.size)
  kp = T.detector_keypoints(joints, frames.K, frames.world_to_camera, np.random.default_rng(0))
  template = body_lib.model_from_config(c.body)
  gt = np.zeros((a.frames, 24, 3), np.float32)
  gt[:, 0] = frames.pose[:, 0]
  rows = []
  if not a.json:
    print(f"{'init':<16}{'MPJPE mm':>10}{'tmpl mm':>9}{'orient deg':>12}{'IoU':>8}{'kp px':>8}{'seconds':>9}")
  for name, init in (("yaw search", None), ("GT orientation", gt))[:2 if a.gt_orientation else 1]:
    cfg = sequence.default_config()
    if a.steps:
      cfg.steps = a.steps
    fit = sequence.fit_sequence(template, kp, frames.mask, frames.K, frames.world_to_camera, cfg,
                                progress=False, init_pose=init)
    m = T.evaluate(fit, template, frames, joints)
    row = dict(init=name, frames=a.frames, size=a.size, steps=int(cfg.steps), mpjpe_mm=m["mpjpe_mm"],
               mpjpe_template_mm=m["mpjpe_template_mm"], orientation_deg=m["orientation_deg"], iou=m["iou"],
               keypoint_px=float(fit.keypoint_error_px.mean()), seconds=fit.seconds)
    rows.append(row)
    if not a.json:
      print(f"{name:<16}{row['mpjpe_mm']:>10.1f}{row['mpjpe_template_mm']:>9.1f}{row['orientation_deg']:>12.1f}"
            f"{row['iou']:>8.3f}{row['keypoint_px']:>8.1f}{row['seconds']:>9.1f}", flush=True)
  if a.json:
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
  main()
