"""Person crop at a model's native aspect ratio, and pasting the model's outputs back into the frame.

Foundation models for humans (Sapiens: 1024 x 768, height x width) expect a person filling a portrait
crop. We take the bounding box of the person mask, grow it by `scale` (Sapiens2's own person-crop
padding is 1.25), widen or heighten it to the model's aspect ratio, and resample. The box may extend
past the image; those pixels are zero (as the Sapiens processors pad). Outputs are resampled back with
the inverse of the same axis-aligned map.

Pixel convention (as everywhere in fmgs-jax): pixel (row r, column c) has its centre at (c + 0.5, r + 0.5).
A box is (x0, y0, width, height) in those continuous pixel coordinates.
"""

from typing import NamedTuple

import numpy as np
import scipy.ndimage


class Box(NamedTuple):
  """Axis-aligned crop box in continuous image pixel coordinates (x right, y down)."""
  x0: float
  y0: float
  width: float
  height: float


def person_box(mask: np.ndarray, out_hw: tuple[int, int], scale: float = 1.25) -> Box:
  """Box around the mask, grown by `scale`, at the aspect ratio of `out_hw`.

  Args:
    mask: (H, W) person mask (nonzero = person).
    out_hw: (height, width) of the model input.
    scale: side-length factor applied to the tight box (1.0 = tight).
  Returns:
    Box centred on the mask's tight box. An empty mask gives the whole image (letterboxed).
  """
  mask = np.asarray(mask) > 0
  h_img, w_img = mask.shape
  if mask.any():
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    x0, x1 = float(cols[0]), float(cols[-1] + 1)
    y0, y1 = float(rows[0]), float(rows[-1] + 1)
    bw, bh = (x1 - x0) * scale, (y1 - y0) * scale
  else:
    x0, x1, y0, y1 = 0.0, float(w_img), 0.0, float(h_img)
    bw, bh = float(w_img), float(h_img)
  aspect = out_hw[1] / out_hw[0]  # width / height
  if bw / bh > aspect:
    bh = bw / aspect
  else:
    bw = bh * aspect
  cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
  return Box(cx - 0.5 * bw, cy - 0.5 * bh, bw, bh)


def _resample_axis(a: np.ndarray, coords: np.ndarray, axis: int, fill: float | None) -> np.ndarray:
  """Linear interpolation of `a` along `axis` at array coordinates `coords` (0 = first sample centre).

  Samples outside [0, n-1] are `fill` if given (beyond half a pixel past the edge), else clamped.
  """
  n = a.shape[axis]
  c = np.clip(coords, 0.0, n - 1.0)
  i0 = np.floor(c).astype(np.int64)
  i1 = np.minimum(i0 + 1, n - 1)
  f = (c - i0).astype(np.float32)
  shape = [1] * a.ndim
  shape[axis] = len(coords)
  f = f.reshape(shape)
  out = np.take(a, i0, axis=axis) * (1.0 - f) + np.take(a, i1, axis=axis) * f
  if fill is not None:
    outside = ((coords < -0.5) | (coords > n - 0.5)).reshape(shape)
    out = np.where(outside, np.float32(fill), out)
  return out


def crop(image: np.ndarray, box: Box, out_hw: tuple[int, int]) -> np.ndarray:
  """Resample the box of an image to the model input size.

  Bilinear, with a Gaussian pre-filter when shrinking (sigma = 0.5 x the shrink factor) so that a
  high-resolution frame does not alias.

  Args:
    image: (H, W, C) float32.
    box: crop box.
    out_hw: (h, w) output size.
  Returns:
    (h, w, C) float32; zero where the box leaves the image.
  """
  h, w = out_hw
  image = np.asarray(image, np.float32)
  sy, sx = box.height / h, box.width / w  # image pixels per output pixel
  if max(sy, sx) > 1.0:
    sigma = (0.5 * sy if sy > 1.0 else 0.0, 0.5 * sx if sx > 1.0 else 0.0, 0.0)
    image = scipy.ndimage.gaussian_filter(image, sigma=sigma, mode="nearest")
  ys = box.y0 + (np.arange(h) + 0.5) * sy - 0.5
  xs = box.x0 + (np.arange(w) + 0.5) * sx - 0.5
  out = _resample_axis(image, ys, 0, fill=0.0)
  return _resample_axis(out, xs, 1, fill=0.0)


def paste(maps: np.ndarray, box: Box, image_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
  """Resample model outputs over a box back onto the full frame.

  Args:
    maps: (h, w, C) float outputs over the crop.
    box: the crop box used for the input.
    image_hw: (H, W) of the frame.
  Returns:
    (H, W, C) float32 outputs (zero outside the box) and (H, W) bool: inside the box.
  """
  h, w = maps.shape[:2]
  H, W = image_hw
  ys = (np.arange(H) + 0.5 - box.y0) * h / box.height - 0.5
  xs = (np.arange(W) + 0.5 - box.x0) * w / box.width - 0.5
  rows = (ys >= -0.5) & (ys <= h - 0.5)
  cols = (xs >= -0.5) & (xs <= w - 0.5)
  out = np.zeros((H, W, maps.shape[2]), np.float32)
  if rows.any() and cols.any():
    part = _resample_axis(np.asarray(maps, np.float32), ys[rows], 0, fill=None)
    part = _resample_axis(part, xs[cols], 1, fill=None)
    out[np.ix_(rows, cols)] = part
  return out, rows[:, None] & cols[None, :]
