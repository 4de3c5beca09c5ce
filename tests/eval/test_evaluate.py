"""--mode=eval end to end (fmgs_jax/eval/evaluate.py) on a tiny checkpoint: metrics.json's contract,
the renders it writes, and the held-out frames' template-vs-mask IoU against the body model's posed
triangles filled by OpenCV (independent of the surfels and the rasterizer)."""

import json
import os

import cv2
import numpy as np

from configs import synthetic

H = W = 48


def _tiny_config(data_root):
  c = synthetic.get_config("tiny")
  s = c.data.synthetic
  s.num_novel_pose_frames, s.num_novel_view_frames = 2, 2  # two frames a split: the means are means
  c.data.root = data_root
  c.eval.orbit_frames = 2
  return c


def _filled_silhouette(model, betas, frame):
  """(H, W) bool: the posed body model's triangles filled with OpenCV (pixel centres at +0.5)."""
  from fmgs_jax import body as body_lib
  v = np.asarray(body_lib.forward(model, betas=betas, pose=frame.pose, transl=frame.transl).vertices, np.float64)
  w2c, K = np.asarray(frame.world_to_camera, np.float64), np.asarray(frame.K, np.float64)
  uv = (K @ ((w2c[:3, :3] @ v.T).T + w2c[:3, 3]).T).T
  uv = uv[:, :2] / uv[:, 2:3] - 0.5
  mask = np.zeros((H, W), np.uint8)
  cv2.fillPoly(mask, list(np.round(uv[np.asarray(model.faces)] * 16).astype(np.int32)), 1, cv2.LINE_8, shift=4)
  return mask > 0


def test_evaluate_writes_the_contract_and_the_held_out_template_iou(tmp_path):
  from fmgs_jax.data import load_dataset
  from fmgs_jax.eval import evaluate
  from fmgs_jax.train import loop
  c, workdir = _tiny_config(str(tmp_path / "data")), str(tmp_path / "run")
  loop.train(c, workdir)
  evaluate.evaluate(c, workdir)
  with open(os.path.join(workdir, "metrics.json")) as f:
    rep = json.load(f)
  for key in ("psnr", "ssim", "lpips", "normal_error_deg", "chamfer_mm", "train_steps", "train_seconds"):
    assert key in rep, key
  assert set(rep["splits"]) == {"novel_view", "novel_pose"}
  for name in ("novel_view.mp4", "orbit.mp4", "avatar_posed.ply", "surfels.ply", "novel_pose/0000.png"):
    assert os.path.isfile(os.path.join(workdir, "renders", name)), name

  av, _, _ = loop.restore_params(c, workdir)
  for split, got in rep["splits"].items():
    ds = load_dataset(c.data, split)
    ref = []
    for i in range(len(ds)):
      fr = ds[i]
      a, m = _filled_silhouette(av.body, np.asarray(av.betas), fr), fr.mask > 0.5
      ref.append((a & m).sum() / max((a | m).sum(), 1))
    print(f"{split}: template IoU {got['template_iou']:.3f}, filled triangles {np.mean(ref):.3f}")
    assert abs(got["template_iou"] - np.mean(ref)) < 0.08, (split, got["template_iou"], ref)
