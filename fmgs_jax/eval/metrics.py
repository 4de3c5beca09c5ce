"""Image, geometry and segmentation metrics used by the evaluation protocols.

Image metrics (`psnr`, `ssim`) are pure `jax.numpy` functions (jittable) on
(H, W, C) float images in [0, 1]. Everything that depends on data-dependent
shapes (masks, bounding-box crops, point clouds, confusion matrices) is plain
NumPy / SciPy and returns Python floats, ready for `metrics.json`.

Dataset protocols (`image_metrics`):

* ``"bbox"`` (ZJU-MoCap, following Neural Body / HumanNeRF / GauHuman): the
  prediction and the ground truth (both composited on the same background) are
  cropped to the axis-aligned bounding box of the ground-truth foreground mask
  (optionally padded), and PSNR and SSIM are computed on that crop. This keeps
  the large empty background from inflating the scores.
* ``"full"`` (PeopleSnapshot, following Anim-NeRF / InstantAvatar): PSNR and
  SSIM over the full image.

Geometry metrics take metres and report millimetres where the key says so
(``chamfer_mm``).
"""

from __future__ import annotations

from typing import Literal

import dm_pix
import jax.numpy as jnp
import numpy as np
import trimesh
from scipy.spatial import cKDTree

from fmgs_jax import errors

# SSIM constants fixed by the protocol (scikit-image's
# structural_similarity(gaussian_weights=True, sigma=1.5,
# use_sample_covariance=False, data_range=1)): an 11-tap Gaussian window
# (scipy truncates at 3.5 sigma -> radius 5) and the usual K1, K2.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_images(a, b, name: str):
  if a.ndim != 3 or a.shape != b.shape:
    raise ValueError(f"{name}: expected two (H, W, C) images of equal shape, got {a.shape} and {b.shape}")


def psnr(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  """Peak signal-to-noise ratio in dB for images with peak value 1.

  Args:
    a: (H, W, C) float image in [0, 1].
    b: (H, W, C) float image in [0, 1].

  Returns:
    () float32, -10 log10(mean((a - b)^2)); +inf for identical images.
  """
  _check_images(a, b, "psnr")
  mse = jnp.mean((jnp.asarray(a, jnp.float32) - jnp.asarray(b, jnp.float32)) ** 2)
  return -10.0 * jnp.log10(mse)


def ssim(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  """Structural similarity with an 11x11 Gaussian window (sigma 1.5), mean over the valid region.

  Equal to scikit-image's ``structural_similarity(a, b, gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1)``:
  local statistics are taken only where the whole window fits in the image
  (a 5-pixel border is dropped) and the SSIM map is averaged over pixels and
  channels. Computed by dm-pix.

  Args:
    a: (H, W, C) float image in [0, 1], H and W >= 11.
    b: (H, W, C) float image in [0, 1].

  Returns:
    () float32 SSIM in [-1, 1].
  """
  _check_images(a, b, "ssim")
  if min(a.shape[0], a.shape[1]) < SSIM_WINDOW:
    raise ValueError(f"ssim: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {a.shape[:2]}")
  return dm_pix.ssim(
      jnp.asarray(a, jnp.float32),
      jnp.asarray(b, jnp.float32),
      max_val=1.0,
      filter_size=SSIM_WINDOW,
      filter_sigma=SSIM_SIGMA,
      k1=SSIM_K1,
      k2=SSIM_K2,
  )


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
  """PSNR (dB, peak 1) over the pixels where `mask` is true.

  Args:
    a, b: (H, W, C) float images in [0, 1].
    mask: (H, W) bool (or {0, 1}) pixels to include; must not be empty.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  _check_images(a, b, "masked_psnr")
  mask = np.asarray(mask) > 0.5
  if mask.shape != a.shape[:2] or not mask.any():
    raise ValueError(f"masked_psnr: mask must be a non-empty (H, W) = {a.shape[:2]} array, got {mask.shape}")
  mse = np.mean((a[mask] - b[mask]) ** 2)
  return float(-10.0 * np.log10(mse)) if mse > 0 else float("inf")


def mask_bbox(mask: np.ndarray, pad: int = 0) -> tuple[int, int, int, int]:
  """Axis-aligned bounding box of a foreground mask, padded and clipped to the image.

  Args:
    mask: (H, W) bool or {0, 1} foreground mask.
    pad: pixels added on every side before clipping.

  Returns:
    (y0, y1, x0, x1) integer pixel bounds, half-open: image[y0:y1, x0:x1].
  """
  mask = np.asarray(mask) > 0.5
  if mask.ndim != 2 or not mask.any():
    raise ValueError(f"mask_bbox: expected a non-empty (H, W) mask, got shape {mask.shape} with {mask.sum()} pixels")
  ys, xs = np.nonzero(mask)
  h, w = mask.shape
  return (max(int(ys.min()) - pad, 0), min(int(ys.max()) + 1 + pad, h),
          max(int(xs.min()) - pad, 0), min(int(xs.max()) + 1 + pad, w))


def crop_to_bbox(image: np.ndarray, bbox: tuple[int, int, int, int]) -> np.ndarray:
  """image[y0:y1, x0:x1] for an (H, W, ...) array and a `mask_bbox` box."""
  y0, y1, x0, x1 = bbox
  return np.asarray(image)[y0:y1, x0:x1]


# Image protocol of each dataset (module docstring); datasets not listed use the full image.
DATASET_PROTOCOLS = {"zju": "bbox", "people_snapshot": "full", "synthetic": "full", "humannerf": "bbox"}


def protocol_for_dataset(dataset: str, protocol: str = "auto") -> str:
  """`protocol` unless it is ``"auto"``, then the dataset's (c.data.name) usual image protocol."""
  if protocol == "auto":
    return DATASET_PROTOCOLS.get(dataset, "full")
  if protocol not in ("bbox", "full"):
    raise errors.ConfigError(f"config field eval.image_protocol: {protocol!r}; expected 'auto', 'bbox' or 'full'")
  return protocol


def image_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None,
                  protocol: Literal["bbox", "full"] = "full", bbox_pad: int = 0) -> dict[str, float]:
  """PSNR and SSIM of one rendered frame under a dataset's protocol.

  Args:
    pred: (H, W, C) rendered image in [0, 1], composited on the evaluation background.
    gt: (H, W, C) ground-truth image in [0, 1] on the same background.
    mask: (H, W) ground-truth foreground mask; required by ``"bbox"``.
    protocol: ``"bbox"`` crops both images to the mask's bounding box (ZJU-MoCap);
      ``"full"`` uses the whole image (PeopleSnapshot). See the module docstring.
    bbox_pad: pixels of padding around the bounding box (``"bbox"`` only).

  Returns:
    {"psnr": dB, "ssim": [-1, 1]} as Python floats.
  """
  pred, gt = np.asarray(pred, np.float32), np.asarray(gt, np.float32)
  _check_images(pred, gt, "image_metrics")
  if protocol == "bbox":
    if mask is None:
      raise ValueError("image_metrics: protocol 'bbox' needs the ground-truth foreground mask")
    box = mask_bbox(mask, bbox_pad)
    pred, gt = crop_to_bbox(pred, box), crop_to_bbox(gt, box)
    if min(pred.shape[:2]) < SSIM_WINDOW:
      raise ValueError(f"image_metrics: mask bounding box {pred.shape[:2]} is smaller than the SSIM window; "
                       "increase bbox_pad")
  elif protocol != "full":
    raise ValueError(f"image_metrics: unknown protocol {protocol!r}; expected 'bbox' or 'full'")
  return {"psnr": float(psnr(pred, gt)), "ssim": float(ssim(pred, gt))}


def normal_angular_error(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
  """Mean angle in degrees between predicted and ground-truth normals over a mask.

  Both normal maps must be in the same frame (e.g. camera space); they are
  normalised here, so unnormalised (alpha-weighted) renders are fine. Pixels
  where either normal has zero length are excluded.

  Args:
    pred: (H, W, 3) or (N, 3) normals.
    gt: same shape as `pred`.
    mask: (H, W) or (N,) bool pixels to include; None = all.

  Returns:
    Mean angular error in degrees, in [0, 180].
  """
  pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
  if pred.shape != gt.shape or pred.shape[-1] != 3:
    raise ValueError(f"normal_angular_error: expected equal (..., 3) normals, got {pred.shape} and {gt.shape}")
  pn, gn = np.linalg.norm(pred, axis=-1), np.linalg.norm(gt, axis=-1)
  valid = (pn > 1e-8) & (gn > 1e-8)
  if mask is not None:
    valid &= np.asarray(mask) > 0.5
  if not valid.any():
    raise ValueError("normal_angular_error: no valid pixel (mask empty or normals zero)")
  cos = np.sum(pred[valid] * gt[valid], axis=-1) / (pn[valid] * gn[valid])
  return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).mean())


def align_depth(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray,
                mode: Literal["none", "scale", "scale_shift"]) -> np.ndarray:
  """Least-squares alignment of a (relative) depth map to ground truth on valid pixels.

  ``"scale"`` finds s minimising sum (s d - g)^2; ``"scale_shift"`` finds s, t
  minimising sum (s d + t - g)^2 (the usual protocol for relative / affine-
  invariant depth); ``"none"`` returns `pred` unchanged.

  Args:
    pred, gt: (H, W) depth maps; gt in metres along the camera z axis.
    valid: (H, W) bool pixels used for the fit.

  Returns:
    (H, W) float64 aligned prediction.
  """
  pred = np.asarray(pred, np.float64)
  d, g = pred[valid], np.asarray(gt, np.float64)[valid]
  if mode == "none":
    return pred
  if mode == "scale":
    return pred * (np.dot(d, g) / max(np.dot(d, d), 1e-30))
  if mode == "scale_shift":
    a = np.stack([d, np.ones_like(d)], axis=-1)
    (s, t), *_ = np.linalg.lstsq(a, g, rcond=None)
    return s * pred + t
  raise ValueError(f"align_depth: unknown mode {mode!r}; expected 'none', 'scale' or 'scale_shift'")


def depth_errors(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None,
                 align: Literal["none", "scale", "scale_shift"] = "none") -> dict[str, float]:
  """Depth error against ground truth where it exists.

  Valid pixels are those inside `mask` with finite, positive ground truth.

  Args:
    pred: (H, W) predicted depth (metres, or relative depth with `align`).
    gt: (H, W) ground-truth depth in metres; <= 0 or non-finite means missing.
    mask: (H, W) bool pixels to include; None = all.
    align: alignment applied to `pred` first (see `align_depth`).

  Returns:
    {"depth_abs_rel": mean |p - g| / g, "depth_rmse": sqrt(mean (p - g)^2) in metres}.
  """
  pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
  if pred.shape != gt.shape or pred.ndim != 2:
    raise ValueError(f"depth_errors: expected equal (H, W) depth maps, got {pred.shape} and {gt.shape}")
  valid = np.isfinite(gt) & (gt > 0) & np.isfinite(pred)
  if mask is not None:
    valid &= np.asarray(mask) > 0.5
  if not valid.any():
    raise ValueError("depth_errors: no pixel with valid ground-truth depth inside the mask")
  p = align_depth(pred, gt, valid, align)[valid]
  g = gt[valid]
  return {"depth_abs_rel": float(np.mean(np.abs(p - g) / g)),
          "depth_rmse": float(np.sqrt(np.mean((p - g) ** 2)))}


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
  """Area-uniform random points on a triangle mesh (trimesh).

  Args:
    vertices: (V, 3) float, metres.  faces: (F, 3) int.
    count: number of samples.  seed: RNG seed (deterministic).

  Returns:
    (count, 3) float64 points in metres.
  """
  mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), process=False)
  points, _ = trimesh.sample.sample_surface(mesh, count, seed=seed)
  return np.asarray(points, np.float64)


def _nn_dist(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
  dist, _ = cKDTree(dst).query(src, k=1)
  return dist


def chamfer_fscore(pred_points: np.ndarray, gt_points: np.ndarray, threshold: float = 0.01) -> dict[str, float]:
  """Chamfer distance and F-score between two point sets (nearest neighbours by cKDTree).

  Chamfer is the symmetric L1 Chamfer distance: the mean of the two directed
  mean nearest-neighbour distances, 0.5 (mean_p d(p, G) + mean_g d(g, P)).
  Precision is the fraction of predicted points within `threshold` of the
  ground truth, recall the fraction of ground-truth points within `threshold`
  of the prediction, and F = 2 P R / (P + R) (0 when both are 0).

  Args:
    pred_points: (N, 3) metres.  gt_points: (M, 3) metres.
    threshold: F-score distance threshold in metres.

  Returns:
    {"chamfer_mm", "pred_to_gt_mm", "gt_to_pred_mm", "fscore", "precision", "recall"}.
  """
  p, g = np.asarray(pred_points, np.float64), np.asarray(gt_points, np.float64)
  if p.ndim != 2 or g.ndim != 2 or p.shape[1] != 3 or g.shape[1] != 3 or not len(p) or not len(g):
    raise ValueError(f"chamfer_fscore: expected non-empty (N, 3) point sets, got {p.shape} and {g.shape}")
  d_pg, d_gp = _nn_dist(p, g), _nn_dist(g, p)
  precision, recall = float(np.mean(d_pg < threshold)), float(np.mean(d_gp < threshold))
  f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
  return {"chamfer_mm": float(500.0 * (d_pg.mean() + d_gp.mean())),
          "pred_to_gt_mm": float(1000.0 * d_pg.mean()),
          "gt_to_pred_mm": float(1000.0 * d_gp.mean()),
          "fscore": float(f), "precision": precision, "recall": recall}


def mesh_chamfer_fscore(pred_vertices: np.ndarray, pred_faces: np.ndarray, gt_vertices: np.ndarray,
                        gt_faces: np.ndarray, num_samples: int = 100_000, threshold: float = 0.01,
                        seed: int = 0) -> dict[str, float]:
  """`chamfer_fscore` between two meshes, each sampled with `num_samples` surface points.

  Args:
    pred_vertices, gt_vertices: (V, 3) metres, same world frame.
    pred_faces, gt_faces: (F, 3) int.
    num_samples: points sampled per mesh (area-uniform).
    threshold: F-score threshold in metres.
    seed: sampling seed (the ground truth uses seed + 1).
  """
  return chamfer_fscore(sample_surface(pred_vertices, pred_faces, num_samples, seed),
                        sample_surface(gt_vertices, gt_faces, num_samples, seed + 1), threshold)


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int,
                     ignore_index: int | None = None) -> np.ndarray:
  """(num_classes, num_classes) int64 counts, rows = ground truth, columns = prediction.

  Args:
    pred, gt: integer labels of equal shape (pixels or vertices), in [0, num_classes).
    ignore_index: ground-truth label whose entries are skipped (e.g. 255 = unlabelled).
  """
  pred, gt = np.asarray(pred).reshape(-1), np.asarray(gt).reshape(-1)
  if pred.shape != gt.shape:
    raise ValueError(f"confusion_matrix: label arrays differ in size: {pred.size} vs {gt.size}")
  keep = np.ones_like(gt, bool) if ignore_index is None else gt != ignore_index
  pred, gt = pred[keep].astype(np.int64), gt[keep].astype(np.int64)
  for name, x in (("pred", pred), ("gt", gt)):
    if x.size and (x.min() < 0 or x.max() >= num_classes):
      raise ValueError(f"confusion_matrix: {name} labels must be in [0, {num_classes}), got [{x.min()}, {x.max()}]")
  return np.bincount(gt * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def part_miou(pred: np.ndarray, gt: np.ndarray, num_classes: int,
              ignore_index: int | None = None) -> dict[str, object]:
  """Mean intersection-over-union of part labels.

  IoU_c = TP / (TP + FP + FN) from the confusion matrix. Classes absent from
  the ground truth are ignored (IoU NaN, not averaged), so a test frame that
  shows no hands is not penalised for "hand"; a class predicted but absent
  from the ground truth therefore costs only through the FP of the classes
  it should have been.

  Returns:
    {"part_miou": mean IoU over classes present in gt, "per_class_iou": (num_classes,) float64 with NaN}.
  """
  cm = confusion_matrix(pred, gt, num_classes, ignore_index).astype(np.float64)
  tp = np.diag(cm)
  gt_count, pred_count = cm.sum(1), cm.sum(0)
  union = gt_count + pred_count - tp
  iou = np.where(gt_count > 0, tp / np.maximum(union, 1), np.nan)
  if not (gt_count > 0).any():
    raise ValueError("part_miou: the ground truth has no labelled entry")
  return {"part_miou": float(np.nanmean(iou)), "per_class_iou": iou}
