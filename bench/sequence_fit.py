"""Sequence fitter on the synthetic capture (96 px, turntable): GT masks, GT joints corrupted as a
detector would (3 px, 10% dropped, confidence 0.3-1). Prints a table: init, yaw-search init, GT-orientation init.

  PYTHONPATH=$PWD python bench/sequence_fit.py --frames=48 --steps=200
"""

import argparse
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
  ap.add_argument("--steps", type=int, default=200)
  ap.add_argument("--size", type=int, default=96)
  a = ap.parse_args()
  c, frames, joints = T.capture(_Tmp(), a.frames, a.size)
  kp = T.detector_keypoints(joints, frames.K, frames.world_to_camera, np.random.default_rng(0))
  template = body_lib.model_from_config(c.body)
  gt = np.zeros((a.frames, 24, 3), np.float32)
  gt[:, 0] = frames.pose[:, 0]
  print(f"{'init':<16}{'MPJPE mm':>10}{'orient deg':>12}{'IoU':>8}{'kp px':>8}{'seconds':>9}")
  for name, init in (("yaw search", None), ("GT orientation", gt)):
    cfg = sequence.default_config()
    cfg.steps = a.steps
    fit = sequence.fit_sequence(template, kp, frames.mask, frames.K, frames.world_to_camera, cfg,
                                progress=False, init_pose=init)
    m = T.evaluate(fit, template, frames, joints)
    print(f"{name:<16}{m[0]:>10.1f}{m[1]:>12.1f}{m[2]:>8.3f}{fit.keypoint_error_px.mean():>8.1f}{fit.seconds:>9.1f}",
          flush=True)


if __name__ == "__main__":
  main()
