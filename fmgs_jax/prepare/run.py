"""`--mode=prepare`: a video -> WORKDIR/data (HumanNeRF layout), WORKDIR/prepare_report.json, WORKDIR/overlay.mp4.

`prepare(config, workdir)` runs the package's steps in order (fmgs_jax/prepare/__init__.py). Masks and
keypoints are cached in WORKDIR/prepare/{masks,keypoints}.npz under a key of the video file (path, size,
modification time), the frame settings and the model files, so re-running after a change of the fit's
settings does not run the models again. `needs_prepare` says when `--mode=train` must run it first.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from absl import logging
import cv2
import numpy as np

from fmgs_jax import errors
from fmgs_jax.prepare import camera as camera_lib
from fmgs_jax.prepare import frames as frames_lib

CACHE_DIR = "prepare"
REPORT = "prepare_report.json"
OVERLAY = "overlay.mp4"


def data_root(config: Any, workdir: str) -> str:
  """Where the dataset is written: config.data.root, else WORKDIR/data (the reader's default)."""
  return config.data.root or os.path.join(workdir, "data")


def needs_prepare(config: Any, workdir: str) -> bool:
  """True when config.data.video is set and the dataset folder has no cameras.pkl yet."""
  return bool(config.data.get("video")) and not os.path.isfile(os.path.join(data_root(config, workdir), "cameras.pkl"))


def _check_config(config: Any) -> None:
  if "prepare" not in config:
    raise errors.ConfigError("config has no `prepare` section: --mode=prepare needs configs/video.py "
                             "(--config=configs/video.py --config.data.video=clip.mp4)")
  if config.data.name != "humannerf":
    raise errors.ConfigError(f"config data.name = {config.data.name!r}: a prepared video is read as 'humannerf' "
                             "(configs/video.py sets it)")
  for field in ("seg_model", "pose_model"):
    path = config.prepare[field]
    if not path:
      raise errors.ConfigError(f"config prepare.{field} is empty: give a local checkpoint; see third_party/README.md")
    if not os.path.exists(path):
      raise errors.MissingInputError(f"{path}: no such checkpoint (config prepare.{field}); see third_party/README.md")


def _fingerprint(path: str) -> dict:
  from fmgs_jax.priors import inference  # pylint: disable=g-import-not-at-top
  return inference.fingerprint_path(path)


def _key(config: Any, what: dict) -> str:
  video = os.path.abspath(config.data.video)
  st = os.stat(video)
  p = config.prepare
  d = {"video": video, "bytes": st.st_size, "mtime": st.st_mtime, "every": p.every, "max_frames": p.max_frames,
       "size": p.size, **what}
  return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cached(path: str, key: str):
  if not os.path.isfile(path):
    return None
  with np.load(path) as z:
    return {k: z[k] for k in z.files} if str(z["key"]) == key else None


def person_masks(config: Any, workdir: str, fr: frames_lib.Frames) -> np.ndarray:
  """(N, H, W) bool person masks of every decoded frame, from the cache when current."""
  from fmgs_jax.prepare import masks as masks_lib  # pylint: disable=g-import-not-at-top
  p = config.prepare
  key = _key(config, {"seg_model": _fingerprint(p.seg_model), "threshold": p.mask_threshold})
  path = os.path.join(workdir, CACHE_DIR, "masks.npz")
  hit = _cached(path, key)
  if hit is not None:
    logging.info("prepare: person masks from %s", path)
    return hit["masks"]
  seg = masks_lib.make_segmenter(p.seg_model, config)
  masks = masks_lib.person_masks(fr.images, seg, int(p.batch_size), float(p.mask_threshold))
  os.makedirs(os.path.dirname(path), exist_ok=True)
  np.savez_compressed(path, key=key, masks=masks, source_index=fr.source_index)
  return masks


def keypoints(config: Any, workdir: str, images: np.ndarray, masks: np.ndarray, mask_key: str) -> np.ndarray:
  """(N, 17, 3) COCO-17 keypoints of the kept frames, from the cache when current."""
  from fmgs_jax.prepare import keypoints as kp_lib  # pylint: disable=g-import-not-at-top
  p = config.prepare
  key = _key(config, {"pose_model": _fingerprint(p.pose_model), "masks": mask_key})
  path = os.path.join(workdir, CACHE_DIR, "keypoints.npz")
  hit = _cached(path, key)
  if hit is not None:
    logging.info("prepare: keypoints from %s", path)
    return hit["keypoints"]
  kp = kp_lib.make_detector(config).detect(images, masks, int(p.batch_size))
  np.savez_compressed(path, key=key, keypoints=kp)
  return kp


def drop_frames(masks: np.ndarray, min_fraction: float, max_skipped_fraction: float, where: str) -> np.ndarray:
  """(N,) bool: frames whose person covers at least `min_fraction` of the image.

  Raises:
    InputError naming `where`: no frame shows a person, fewer than two do, or more than
      `max_skipped_fraction` of the frames do not.
  """
  n = len(masks)
  kept = masks.reshape(n, -1).mean(1) >= min_fraction
  dropped = int(n - kept.sum())
  if not kept.any():
    raise errors.InputError(f"{where}: no person found in any of its {n} frames (config prepare.seg_model); "
                            "check that the person is visible, or lower prepare.min_person_fraction")
  if dropped > max_skipped_fraction * n or kept.sum() < 2:
    raise errors.InputError(f"{where}: {dropped} of {n} frames show no person (more than data.max_skipped_fraction = "
                            f"{max_skipped_fraction}); trim the clip or raise --config.data.max_skipped_fraction")
  return kept


def _fit_inputs(masks: np.ndarray, kp24: np.ndarray, K: np.ndarray, max_size: int):
  """Masks, keypoints and K at most `max_size` pixels a side (the fit's resolution), and the scale."""
  n, h, w = masks.shape
  s = min(1.0, float(max_size) / max(h, w)) if max_size > 0 else 1.0
  if s == 1.0:
    return masks.astype(np.float32), kp24, K, 1.0
  hw = (max(1, round(h * s)), max(1, round(w * s)))
  sy, sx = hw[0] / h, hw[1] / w
  small = np.stack([cv2.resize(m.astype(np.float32), (hw[1], hw[0]), interpolation=cv2.INTER_AREA) for m in masks])
  kp = kp24.copy()
  kp[..., 0] *= sx
  kp[..., 1] *= sy
  Ks = np.array(K, np.float64)
  Ks[0] *= sx
  Ks[1] *= sy
  return small, kp, Ks, float(np.sqrt(sx * sy))


def prepare(config: Any, workdir: str, progress: bool = True) -> dict:
  """Prepares config.data.video into the dataset folder; returns the report (also WORKDIR/prepare_report.json)."""
  from fmgs_jax import body as body_lib  # pylint: disable=g-import-not-at-top
  from fmgs_jax.eval import visualize  # pylint: disable=g-import-not-at-top
  from fmgs_jax.fit import sequence  # pylint: disable=g-import-not-at-top
  from fmgs_jax.prepare import output, overlay  # pylint: disable=g-import-not-at-top
  _check_config(config)
  p = config.prepare
  template = body_lib.model_from_config(config.body)
  fr = frames_lib.read_frames(config.data.video, int(p.every), int(p.max_frames), int(p.size), progress)
  n_all, (h, w) = len(fr.images), fr.images.shape[1:3]
  K = camera_lib.intrinsics(h, w, float(p.focal_px), float(p.fov_deg))
  masks_all = person_masks(config, workdir, fr)
  kept = drop_frames(masks_all, float(p.min_person_fraction), float(config.data.max_skipped_fraction), fr.source)
  dropped = [int(i) for i in fr.source_index[~kept]]
  if dropped:
    logging.warning("prepare: %d of %d frames show no person and are dropped (first: frame %d of %s)",
                    len(dropped), n_all, dropped[0], fr.source)
  images, masks, index = fr.images[kept], masks_all[kept], fr.source_index[kept]
  mask_key = hashlib.sha256(np.packbits(masks).tobytes()).hexdigest()[:16]
  kp17 = keypoints(config, workdir, images, masks, mask_key)

  fit_cfg = sequence.default_config()
  fit_cfg.update(p.fit.to_dict())
  small, kp_fit, K_fit, s = _fit_inputs(masks, sequence.coco17_to_smpl24(kp17), K, int(p.fit_max_size))
  logging.info("prepare: fitting %d frames at %dx%d", len(small), small.shape[2], small.shape[1])
  try:
    fit = sequence.fit_sequence(template, kp_fit, small, K_fit, np.eye(4), fit_cfg, progress=progress)
  except FloatingPointError as e:
    raise errors.InputError(f"{fr.source}: the body fit diverged ({e}); lower config.prepare.fit.lr or check "
                            f"the masks in {os.path.join(workdir, CACHE_DIR)}") from None

  root = data_root(config, workdir)
  names = output.write_dataset(root, images, masks, index, K, template, fit.betas, fit.pose, fit.transl,
                               float(config.data.principal_point_shift))
  alphas = overlay.template_alphas(template, fit.betas, fit.pose, fit.transl, K, h, w, int(fit_cfg.num_faces),
                                   int(fit_cfg.tile_capacity))
  frames_out = (overlay.compose(images[i], a, masks[i], kp17[i]) for i, a in enumerate(alphas))
  video = visualize.write_video(os.path.join(workdir, OVERLAY), frames_out, fps=fr.fps or 30.0 / max(int(p.every), 1),
                                progress=progress)
  report = {
      "video": os.path.abspath(fr.source), "data": os.path.abspath(root), "overlay": str(video),
      "frames_decoded": n_all, "frames_kept": int(kept.sum()), "frames_dropped": dropped,
      "source_frames": [int(i) for i in index], "names": names, "image_size": [int(h), int(w)],
      "source_size": list(fr.source_hw), "intrinsics": np.round(K, 4).tolist(),
      "fit_scale": round(s, 6), "fit_seconds": round(fit.seconds, 1),
      "keypoint_error_px": float(np.mean(fit.keypoint_error_px) / s),
      "keypoint_error_px_per_frame": [round(float(v) / s, 3) for v in fit.keypoint_error_px],
      "iou": float(np.mean(fit.iou)), "iou_min": float(np.min(fit.iou)),
      "iou_per_frame": [round(float(v), 4) for v in fit.iou],
      "keypoint_confidence_mean": float(np.mean(kp17[..., 2])),
      "betas": np.round(fit.betas, 4).tolist(),
  }
  with open(os.path.join(workdir, REPORT), "w") as f:
    json.dump(report, f, indent=2)
  msg = (f"prepare: {report['frames_kept']} of {n_all} frames kept ({len(dropped)} without a person), "
         f"fit IoU {report['iou']:.3f} (min {report['iou_min']:.3f}), keypoint error "
         f"{report['keypoint_error_px']:.1f} px; dataset {root}, overlay {video}")
  logging.info(msg)
  print(msg)
  return report
