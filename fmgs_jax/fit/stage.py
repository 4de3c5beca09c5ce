"""The `fit` stage: the template fitted to the subject once per workdir, before training.

`run_fit` fits (fit/subject.py) and writes WORKDIR/fit/:
  body.npz       the fitted body model (SMPL format, shape baked; read with body.load_body_model)
  fit.json       the report: template-vs-mask IoU and 2D joint error per frame before / after, the fitted
                 factors, offset and shape, rest-joint error where the truth is known, and the cache key
  overlay.png    a few fitted frames: mask (grey), template before (red outline), after (green)
`--mode=fit` runs it; `train` runs it when its result is missing or was made with other settings;
`subject_body` hands train, eval and render the model to build the avatar from.

On by default for the built-in template (`fit.enabled=None`), off for a user's SMPL file, whose
shape the dataset's betas already give.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Optional

from absl import logging
import cv2
import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np

from fmgs_jax import body as body_lib
from fmgs_jax.errors import UserError
from fmgs_jax.data import load_dataset, synthetic
from fmgs_jax.fit import silhouette, subject
from fmgs_jax.render import Camera

FIT_DIR = "fit"


class FitError(UserError, ValueError):
  """The fit cannot run or failed on this input (no masks, a diverging fit, a missing result)."""


def enabled(config: Any) -> bool:
  if config.fit.enabled is None:
    return not config.body.model_path
  return bool(config.fit.enabled)


def data_root(config: Any, workdir: str) -> str:
  """The dataset folder: config.data.root, else WORKDIR/data (where the synthetic capture is made)."""
  return config.data.root or os.path.join(workdir, "data")


def _key(config: Any) -> str:
  d = {"fit": config.fit.to_dict(), "body": config.body.to_dict(), "data": config.data.to_dict()}
  return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _paths(workdir: str) -> tuple[str, str]:
  folder = os.path.join(workdir, FIT_DIR)
  return os.path.join(folder, "body.npz"), os.path.join(folder, "fit.json")


def is_current(config: Any, workdir: str) -> bool:
  model_path, report_path = _paths(workdir)
  if not (os.path.isfile(model_path) and os.path.isfile(report_path)):
    return False
  with open(report_path) as f:
    return json.load(f).get("key") == _key(config)


def load_report(workdir: str) -> Optional[dict]:
  path = _paths(workdir)[1]
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


def _check_frames(frames: subject.FitFrames, ds) -> None:
  empty = [ds.image_path(int(i)) for i, m in zip(frames.indices, frames.mask) if m.max() < 0.5]
  if empty:
    raise FitError(f"subject fit: {len(empty)} of {len(frames.indices)} training masks are empty (first: "
                   f"{empty[0]}); the fit needs the person's mask in every frame")


def _summary(res: subject.FitResult, frames: subject.FitFrames, ds, truth: Optional[np.ndarray],
             template: body_lib.BodyModel, config: Any) -> dict:
  mean = lambda m, k: float(np.mean(m[k]))
  has_kp = bool(np.any(res.before["has_keypoints"]))
  out = {
      "frames": [int(i) for i in frames.indices],
      "iou_before": mean(res.before, "iou"), "iou_after": mean(res.after, "iou"),
      "iou_after_min": float(np.min(res.after["iou"])),
      "iou_per_frame_before": [float(v) for v in res.before["iou"]],
      "iou_per_frame_after": [float(v) for v in res.after["iou"]],
      "keypoint_error_px_before": mean(res.before, "keypoint_error_px") if has_kp else None,
      "keypoint_error_px_after": mean(res.after, "keypoint_error_px") if has_kp else None,
      "bone_factors": dict(zip(body_lib.SMPL_JOINT_NAMES[1:], np.asarray(subject.factors_of(
          np.asarray(res.params["factors"]), float(config.fit.max_stretch)))[1:].round(4).tolist())),
      "root_offset_m": np.asarray(res.params["offset"]).round(5).tolist(),
      "betas": np.asarray(res.params["betas"]).round(4).tolist(),
      "seconds": round(res.seconds, 1), "steps": int(config.fit.steps),
      "image_size": list(frames.mask.shape[1:]),
  }
  if truth is not None:
    err = lambda m: np.linalg.norm(body_lib.rest_joints(m) - truth, axis=1) * 1000.0
    out["rest_joint_error_mm_before"] = float(err(template).mean())
    out["rest_joint_error_mm_after"] = float(err(res.model).mean())
    out["rest_joint_error_mm_after_max"] = float(err(res.model).max())
  return out


def _overlay(path: str, res: subject.FitResult, frames: subject.FitFrames, template, config) -> None:
  """Mask (grey) with the template's silhouette before (red) and after (green) for up to 4 frames."""
  problem = subject.make_problem(template, config.fit.num_faces)
  n, h, w = frames.mask.shape

  @jax.jit
  def alpha(params, K, E, pose, transl):
    v, j = subject.rest_body(problem, params, float(config.fit.max_stretch))
    pv, _ = subject.pose_body(problem, v, j, pose, transl)
    return silhouette.render_alpha(pv, problem.faces, Camera(K=K, world_to_camera=E, width=w, height=h),
                                   tile_capacity=int(config.fit.tile_capacity))

  tiles = []
  for k in np.linspace(0, n - 1, min(4, n)).round().astype(int):
    args = [jnp.asarray(a[k]) for a in (frames.K, frames.world_to_camera, frames.pose, frames.transl)]
    img = np.repeat(frames.mask[k][..., None], 3, -1) * 0.5
    for params, colour in ((subject.init_params(problem.shape.shape[2], problem.j0.shape[0]), (1, 0, 0)),
                           (res.params, (0, 1, 0))):
      a = (np.asarray(alpha(params, *args)) > 0.5).astype(np.uint8)
      edge = cv2.morphologyEx(a, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
      img[edge] = colour
    tiles.append(img)
  iio.imwrite(path, np.round(np.concatenate(tiles, axis=1) * 255).astype(np.uint8))


def run_fit(config: Any, workdir: str, force: bool = False) -> dict:
  """Fits the template to the training split (unless a current result exists); returns the report."""
  if is_current(config, workdir) and not force:
    report = load_report(workdir)
    logging.info("subject fit: using %s (IoU %.3f -> %.3f)", _paths(workdir)[0], report["iou_before"],
                 report["iou_after"])
    return report
  template = body_lib.model_from_config(config.body)
  ds = load_dataset(config.data, "train", default_root=data_root(config, workdir))
  frames = subject.load_frames(ds, config.fit.num_frames, config.fit.max_size)
  _check_frames(frames, ds)
  truth = None
  if config.data.name == "synthetic":
    t = synthetic.subject_truth(data_root(config, workdir))
    truth = None if t is None else np.asarray(t["rest_joints"])
  rest_joints = getattr(ds, "rest_joints", None)
  logging.info("subject fit: %d frames at %dx%d, %d steps%s", len(frames.indices), frames.mask.shape[2],
               frames.mask.shape[1], config.fit.steps, ", rest joints from the dataset" if rest_joints is not None else "")
  try:
    res = subject.fit_subject(template, frames, config.fit, rest_joints=rest_joints)
  except FloatingPointError as e:
    raise FitError(f"subject fit on {ds.meta.root}: {e}; lower config.fit.lr or check the masks and poses") from e
  report = _summary(res, frames, ds, truth, template, config)
  report["key"] = _key(config)
  model_path, report_path = _paths(workdir)
  body_lib.save_body_model(res.model, model_path)
  _overlay(os.path.join(workdir, FIT_DIR, "overlay.png"), res, frames, template, config)
  with open(report_path, "w") as f:
    json.dump(report, f, indent=2)
  msg = (f"subject fit: template-vs-mask IoU {report['iou_before']:.3f} -> {report['iou_after']:.3f} "
         f"(min {report['iou_after_min']:.3f}) in {report['seconds']:.0f} s")
  if report["keypoint_error_px_before"] is not None:
    msg += f", 2D joints {report['keypoint_error_px_before']:.2f} -> {report['keypoint_error_px_after']:.2f} px"
  if "rest_joint_error_mm_after" in report:
    msg += (f", rest joints {report['rest_joint_error_mm_before']:.1f} -> "
            f"{report['rest_joint_error_mm_after']:.1f} mm")
  logging.info(msg)
  print(msg)
  fell = [ds.image_path(int(i)) for i, b, a in zip(frames.indices, res.before["iou"], res.after["iou"]) if a < b - 0.01]
  low = [ds.image_path(int(i)) for i, a in zip(frames.indices, res.after["iou"]) if a < config.fit.min_iou]
  if fell:
    logging.warning("subject fit: the IoU fell on %d frames (first: %s); check their masks and poses", len(fell), fell[0])
  if low:
    logging.warning("subject fit: IoU below %.2f on %d frames (first: %s)", config.fit.min_iou, len(low), low[0])
  return report


def subject_body(config: Any, workdir: str, dataset_betas: np.ndarray) -> tuple[body_lib.BodyModel, np.ndarray]:
  """(body model, betas) the avatar is built from.

  Fitted: WORKDIR/fit/body.npz with no shape coefficients left. A user's SMPL file without the fit:
  the dataset's betas (they are that model's). The built-in template without the fit: its mean shape
  (a dataset's betas belong to SMPL, not to the template's shape space).
  """
  if enabled(config):
    path = _paths(workdir)[0]
    if not os.path.isfile(path):
      raise FitError(f"{path}: no subject fit in this workdir; run --mode=fit (or --mode=train, which runs "
                     "it), or pass --config.fit.enabled=False")
    return body_lib.load_body_model(path), np.zeros(0, np.float32)
  model = body_lib.model_from_config(config.body)
  if config.body.model_path:
    return model, np.asarray(dataset_betas, np.float32)
  return model, np.zeros(model.num_betas, np.float32)
