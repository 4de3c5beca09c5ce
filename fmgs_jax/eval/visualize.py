"""Visual outputs: colour maps, labelled side-by-side grids (PNG) and videos (mp4, PNG frames fallback).

All colour maps return (H, W, 3) uint8 RGB. Inputs follow the project
conventions: images HWC float in [0, 1], depth in metres along the camera z
axis, normals in camera space with OpenCV axes (x right, y down, z forward).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import cv2
import imageio.v2 as imageio
import numpy as np
from tqdm import tqdm

from fmgs_jax.priors.labels import SAPIENS_CLASSES  # pylint: disable=unused-import (re-exported)

# The palette Sapiens' own visualisations use for its 28 classes (priors/labels.py), so our renders
# read like the priors they are compared to.
SAPIENS_PALETTE = np.array([
    [50, 50, 50], [255, 218, 0], [128, 200, 255], [255, 0, 109], [189, 0, 204], [255, 0, 218],
    [0, 160, 204], [0, 255, 145], [204, 0, 131], [182, 0, 255], [255, 109, 0], [0, 255, 255],
    [72, 0, 255], [204, 131, 0], [255, 0, 0], [72, 255, 0], [189, 204, 0], [182, 255, 0],
    [102, 0, 204], [32, 72, 204], [0, 145, 255], [14, 204, 0], [0, 128, 72], [235, 205, 119],
    [115, 227, 112], [157, 113, 143], [132, 93, 50], [82, 21, 114],
], np.uint8)  # (28, 3) RGB, row k = class k


def to_uint8(image: np.ndarray) -> np.ndarray:
  """(H, W) or (H, W, C) float in [0, 1] (or already uint8) -> (H, W, 3) uint8 RGB."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    image = np.round(np.clip(np.nan_to_num(image.astype(np.float64)), 0.0, 1.0) * 255.0).astype(np.uint8)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
    raise ValueError(f"to_uint8: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}")
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  return image[..., :3]


def _foreground(mask, shape):
  """(H, W) bool foreground from an optional mask (alpha or bool)."""
  if mask is None:
    return np.ones(shape, bool)
  mask = np.asarray(mask)
  if mask.shape != shape:
    raise ValueError(f"mask must be (H, W) = {shape}, got {mask.shape}")
  return mask > 0.5


def colorize_depth(depth: np.ndarray, mask: np.ndarray | None = None,
                   percentiles: tuple[float, float] = (1.0, 99.0),
                   background: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
  """Depth map -> turbo colour map, near = warm (red), far = cool (blue).

  The range is robust: the given percentiles of the depth inside the mask (so
  a few outliers do not flatten the colours); values outside are clipped.
  Pixels outside the mask (or with non-finite depth) get `background`.

  Args:
    depth: (H, W) float depth, metres along the camera z axis.
    mask: (H, W) bool / [0, 1] foreground (e.g. rendered alpha > 0.5); None = all pixels.
    percentiles: (low, high) percentiles in [0, 100] mapped to the ends of the colour map.
    background: RGB in [0, 1] for pixels outside the mask.

  Returns:
    (H, W, 3) uint8 RGB.
  """
  depth = np.asarray(depth, np.float64)
  if depth.ndim != 2:
    raise ValueError(f"colorize_depth: depth must be (H, W), got {depth.shape}")
  fg = _foreground(mask, depth.shape) & np.isfinite(depth)
  out = np.empty(depth.shape + (3,), np.uint8)
  out[:] = to_uint8(np.asarray(background, np.float64)[None, None])[0, 0]
  if not fg.any():
    return out
  lo, hi = np.percentile(depth[fg], percentiles)
  t = np.clip((depth - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
  # cv2's turbo: 0 -> blue, 255 -> red; near (t = 0) should be red.
  idx = np.round((1.0 - np.where(fg, t, 0.0)) * 255.0).astype(np.uint8)
  rgb = cv2.applyColorMap(idx, cv2.COLORMAP_TURBO)[..., ::-1]
  out[fg] = rgb[fg]
  return out


def colorize_normals(normals: np.ndarray, mask: np.ndarray | None = None,
                     convention: Literal["opencv", "opengl"] = "opencv",
                     background: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
  """Camera-space normals -> RGB = n * 0.5 + 0.5 after normalising.

  With ``"opencv"`` the axes are the renderer's camera axes (x right, y down,
  z forward): red grows to the right, green downwards, and a surface facing
  the camera (n = (0, 0, -1)) is (0.5, 0.5, 0), olive. ``"opengl"`` flips y
  and z first (x right, y up, z towards the viewer), the look most papers
  show: a camera-facing surface is light blue-violet (0.5, 0.5, 1).

  Args:
    normals: (H, W, 3) float camera-space normals (any length; zero = no surface).
    mask: (H, W) foreground; None = pixels with non-zero normals.
    convention: colour axes, see above.
    background: RGB in [0, 1] outside the mask.

  Returns:
    (H, W, 3) uint8 RGB.
  """
  n = np.asarray(normals, np.float64)
  if n.ndim != 3 or n.shape[-1] != 3:
    raise ValueError(f"colorize_normals: normals must be (H, W, 3), got {n.shape}")
  if convention == "opengl":
    n = n * np.array([1.0, -1.0, -1.0])
  elif convention != "opencv":
    raise ValueError(f"colorize_normals: unknown convention {convention!r}; expected 'opencv' or 'opengl'")
  length = np.linalg.norm(n, axis=-1)
  fg = _foreground(mask, n.shape[:2]) & (length > 1e-8)
  rgb = n / np.maximum(length, 1e-8)[..., None] * 0.5 + 0.5
  rgb[~fg] = np.asarray(background, np.float64)
  return to_uint8(rgb)


def colorize_semantics(labels: np.ndarray, mask: np.ndarray | None = None,
                       palette: np.ndarray = SAPIENS_PALETTE,
                       background: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
  """Part labels (or per-class scores) -> palette colours.

  Args:
    labels: (H, W) int labels in [0, len(palette)), or (H, W, K) float scores /
      probabilities (argmax over K is taken; K <= len(palette)).
    mask: (H, W) foreground; None = all pixels.
    palette: (num_classes, 3) uint8 RGB; default the 28-class Sapiens palette.
    background: RGB in [0, 1] outside the mask.

  Returns:
    (H, W, 3) uint8 RGB.
  """
  labels = np.asarray(labels)
  if labels.ndim == 3:
    labels = labels.argmax(-1)
  if labels.ndim != 2:
    raise ValueError(f"colorize_semantics: labels must be (H, W) or (H, W, K), got {labels.shape}")
  labels = labels.astype(np.int64)
  if labels.min() < 0 or labels.max() >= len(palette):
    raise ValueError(f"colorize_semantics: labels in [{labels.min()}, {labels.max()}] outside the "
                     f"{len(palette)}-colour palette")
  out = np.asarray(palette, np.uint8)[labels]
  out[~_foreground(mask, labels.shape)] = to_uint8(np.asarray(background, np.float64)[None, None])[0, 0]
  return out


def image_grid(panels: Sequence[np.ndarray], labels: Sequence[str] | None = None, label_height: int = 24,
               gap: int = 4, fill: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
  """Panels side by side with a text label above each.

  Args:
    panels: images of equal height, each (H, W_i), (H, W_i, 3) float in [0, 1] or uint8.
    labels: one caption per panel (drawn in black on a `fill` strip), or None for no strip.
    label_height: height in pixels of the caption strip.
    gap: pixels between panels.
    fill: RGB in [0, 1] of the strip and the gaps.

  Returns:
    (label_height + H, sum W_i + gap * (len - 1), 3) uint8 RGB (no strip without labels).
  """
  if not panels:
    raise ValueError("image_grid: no panel")
  panels = [to_uint8(p) for p in panels]
  h = panels[0].shape[0]
  if any(p.shape[0] != h for p in panels):
    raise ValueError(f"image_grid: panels must share a height, got {[p.shape[0] for p in panels]}")
  if labels is not None and len(labels) != len(panels):
    raise ValueError(f"image_grid: {len(labels)} labels for {len(panels)} panels")
  fill_u8 = to_uint8(np.asarray(fill, np.float64)[None, None])[0, 0]
  strip = label_height if labels is not None else 0
  width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
  grid = np.empty((strip + h, width, 3), np.uint8)
  grid[:] = fill_u8
  x = 0
  for i, p in enumerate(panels):
    grid[strip:, x:x + p.shape[1]] = p
    if labels is not None:
      scale = 0.4 * label_height / 24.0
      text_w = cv2.getTextSize(str(labels[i]), cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
      scale *= min(1.0, (p.shape[1] - 4) / max(text_w, 1))  # shrink captions wider than their panel
      cv2.putText(grid, str(labels[i]), (x + 3, int(label_height * 0.72)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                  (0, 0, 0), 1, cv2.LINE_AA)
    x += p.shape[1] + gap
  return grid


def comparison_grid(gt: np.ndarray, render: np.ndarray, normals: np.ndarray | None = None,
                    depth: np.ndarray | None = None, semantics: np.ndarray | None = None,
                    alpha: np.ndarray | None = None, depth_percentiles: tuple[float, float] = (1.0, 99.0),
                    label_height: int = 24) -> np.ndarray:
  """The evaluation grid: ground truth | render | normals | depth | semantics (those given).

  Args:
    gt, render: (H, W, 3) float images in [0, 1].
    normals: (H, W, 3) rendered camera-space normals (OpenCV axes), or None.
    depth: (H, W) rendered depth in metres, or None.
    semantics: (H, W) labels or (H, W, K) rendered part scores, or None.
    alpha: (H, W) rendered opacity; pixels with alpha <= 0.5 show as background in the
      normal / depth / semantics panels. None = every pixel.
    depth_percentiles: robust range of the depth colour map.
    label_height: caption strip height in pixels.

  Returns:
    (label_height + H, W_total, 3) uint8 RGB.
  """
  panels, labels = [gt, render], ["ground truth", "render"]
  if normals is not None:
    panels.append(colorize_normals(normals, alpha))
    labels.append("normals")
  if depth is not None:
    panels.append(colorize_depth(depth, alpha, depth_percentiles))
    labels.append("depth")
  if semantics is not None:
    panels.append(colorize_semantics(semantics, alpha))
    labels.append("semantics")
  return image_grid(panels, labels, label_height)


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
  """Write an (H, W), (H, W, 3) float [0, 1] or uint8 image as an RGB PNG; returns the path."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  imageio.imwrite(path, to_uint8(image), format="PNG")
  return path


def ffmpeg_available() -> bool:
  """True when imageio-ffmpeg finds an ffmpeg executable (its bundled one or $IMAGEIO_FFMPEG_EXE)."""
  try:
    import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
    return os.path.isfile(imageio_ffmpeg.get_ffmpeg_exe())
  except (ImportError, RuntimeError):
    return False


def _pad_even(frame: np.ndarray) -> np.ndarray:
  # H.264 with yuv420p needs even sizes; pad by edge replication rather than let ffmpeg rescale.
  h, w = frame.shape[:2]
  return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 30.0,
                quality: float = 8.0, use_ffmpeg: bool | None = None, progress: bool = True) -> Path:
  """Write frames as an H.264 mp4 (imageio-ffmpeg), or as numbered PNGs when ffmpeg is unavailable.

  Odd frame sizes are padded by one edge row / column for the codec. The mp4
  is written to a temporary name and renamed when complete. The fallback
  writes ``<path without suffix>_frames/00000.png, 00001.png, ...``.

  Args:
    path: output ``.mp4`` path.
    frames: iterable of (H, W, 3) float [0, 1] or uint8 images, all the same size.
    fps: frames per second.
    quality: imageio-ffmpeg quality, 0 (worst) to 10 (best).
    use_ffmpeg: force (True) or skip (False) ffmpeg; None = use it when available.
    progress: show a tqdm bar.

  Returns:
    The mp4 path, or the frames folder of the fallback.
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  if use_ffmpeg is None:
    use_ffmpeg = ffmpeg_available()
  frames = tqdm(frames, desc=f"writing {path.name}", unit="frame", disable=not progress)
  size = None

  def checked(frame):
    nonlocal size
    frame = to_uint8(frame)
    if size is None:
      size = frame.shape
    elif frame.shape != size:
      raise ValueError(f"write_video: {path}: frame of shape {frame.shape} after frames of shape {size}")
    return frame

  if use_ffmpeg:
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    count = 0
    writer = imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", quality=quality,
                                pixelformat="yuv420p", macro_block_size=1)
    try:
      for frame in frames:
        writer.append_data(_pad_even(checked(frame)))
        count += 1
    except BaseException:
      # imageio's context manager skips close() on errors and ffmpeg would finish the file later;
      # close now, then remove it, so no truncated video is left behind.
      try:
        writer.close()
      finally:
        tmp.unlink(missing_ok=True)
      raise
    writer.close()
    if count == 0:
      tmp.unlink(missing_ok=True)
      raise ValueError(f"write_video: {path}: no frame to write")
    os.replace(tmp, path)
    return path

  folder = path.with_name(path.stem + "_frames")
  if folder.exists():
    shutil.rmtree(folder)
  folder.mkdir(parents=True)
  count = 0
  for i, frame in enumerate(frames):
    imageio.imwrite(folder / f"{i:05d}.png", checked(frame), format="PNG")
    count += 1
  if count == 0:
    raise ValueError(f"write_video: {path}: no frame to write")
  return folder
