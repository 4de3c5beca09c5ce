"""Ground truth corrupted the way foundation-model priors err, for honest experiments on priors.

A prior derived from the synthetic capture's ground truth would be perfect, and an avatar trained on it
would say nothing about training on Sapiens. These functions degrade it along the axes real models fail:

* normals: blur (over-smoothed detail), a global bias rotation (a consistent tilt of the predicted frame),
  per-pixel angular noise;
* depth: known only up to an unknown positive scale and shift per frame, with relative noise and blur;
* thin parts (fingers, thin limbs at a distance) missed entirely: they become background;
* part labels confused near part borders: a pixel takes the label of a nearby pixel.

All functions are NumPy, deterministic given the `numpy.random.Generator` they are handed.
"""

import numpy as np
import scipy.ndimage


def masked_blur(x: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
  """Gaussian blur of (H, W[, C]) values using only pixels inside the mask (normalised convolution)."""
  if sigma <= 0:
    return np.asarray(x, np.float32)
  m = np.asarray(mask, np.float32)
  sig = (sigma, sigma) + (0,) * (x.ndim - 2)
  mx = m.reshape(m.shape + (1,) * (x.ndim - 2))
  num = scipy.ndimage.gaussian_filter(np.asarray(x, np.float32) * mx, sig, mode="constant")
  den = scipy.ndimage.gaussian_filter(m, sigma, mode="constant").reshape(mx.shape)
  return np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)


def rotation_about(axis: np.ndarray, angle_rad: float) -> np.ndarray:
  """(3, 3) rotation by `angle_rad` about the unit `axis` (Rodrigues)."""
  a = np.asarray(axis, np.float64) / np.linalg.norm(axis)
  k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
  return np.eye(3) + np.sin(angle_rad) * k + (1 - np.cos(angle_rad)) * k @ k


def bias_rotation(rng: np.random.Generator, bias_deg: float) -> np.ndarray:
  """(3, 3) rotation by `bias_deg` about a uniformly random axis: the normal prior's systematic tilt."""
  return rotation_about(rng.normal(size=3), np.deg2rad(bias_deg))


def angular_noise(normal: np.ndarray, rng: np.random.Generator, noise_deg: float) -> np.ndarray:
  """Adds isotropic tangent-plane noise to unit normals.

  n' = normalize(n + t), t ~ N(0, s^2 I) in the plane orthogonal to n with s = tan(noise_deg) / sqrt(2),
  so |t| is Rayleigh with E|t|^2 = tan(noise_deg)^2 and the angle is atan(|t|).

  Args:
    normal: (..., 3) unit vectors.
  Returns:
    (..., 3) float32 unit vectors.
  """
  n = np.asarray(normal, np.float64)
  if noise_deg <= 0:
    return n.astype(np.float32)
  s = np.tan(np.deg2rad(noise_deg)) / np.sqrt(2.0)
  g = rng.normal(size=n.shape) * s
  t = g - np.sum(g * n, axis=-1, keepdims=True) * n  # project to the tangent plane
  # A 3D Gaussian projected onto a plane is an isotropic 2D Gaussian with the same per-axis std.
  out = n + t
  return (out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def corrupt_normals(normal: np.ndarray, mask: np.ndarray, rng: np.random.Generator, *, blur_px: float,
                    bias: np.ndarray, noise_deg: float) -> np.ndarray:
  """Blur -> bias rotation -> noise, on (H, W, 3) unit camera-space normals; zero outside the mask."""
  mask = np.asarray(mask, bool)
  n = masked_blur(normal, mask, blur_px)
  n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
  n = n @ np.asarray(bias, np.float64).T
  n = angular_noise(n, rng, noise_deg)
  return np.where(mask[..., None], n, 0.0).astype(np.float32)


def corrupt_depth(depth: np.ndarray, mask: np.ndarray, rng: np.random.Generator, *, blur_px: float,
                  noise: float, scale_range: tuple[float, float],
                  shift_range: tuple[float, float]) -> tuple[np.ndarray, tuple[float, float]]:
  """Depth known only up to scale and shift: a * blur(d) * (1 + noise * eps) + b, zero outside the mask.

  Args:
    depth: (H, W) camera z in metres (larger = farther).
    scale_range: log-uniform range of the unknown scale a > 0 (keeps larger = farther).
    shift_range: uniform range of the unknown shift b.
  Returns:
    (H, W) float32 affine-invariant depth and the (a, b) drawn.
  """
  mask = np.asarray(mask, bool)
  d = masked_blur(depth, mask, blur_px).astype(np.float64)
  d = d * (1.0 + noise * rng.normal(size=d.shape))
  a = float(np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1]))))
  b = float(rng.uniform(*shift_range))
  return np.where(mask, a * d + b, 0.0).astype(np.float32), (a, b)


def thin_parts(mask: np.ndarray, radius_px: float) -> np.ndarray:
  """(H, W) bool: mask pixels a disk of `radius_px` cannot reach from inside (mask minus its opening)."""
  mask = np.asarray(mask, bool)
  if radius_px <= 0:
    return np.zeros_like(mask)
  r = int(np.ceil(radius_px))
  yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
  disk = xx ** 2 + yy ** 2 <= radius_px ** 2
  return mask & ~scipy.ndimage.binary_opening(mask, structure=disk)


def confuse_parts(parts: np.ndarray, mask: np.ndarray, rng: np.random.Generator, *, prob: float,
                  radius_px: float) -> np.ndarray:
  """Border confusion: with probability `prob` a pixel takes the label found at a random nearby point.

  The offset is uniform in a disk of `radius_px`; the label is read at the pixel containing
  (centre + offset). Inside a part nothing changes; within `radius_px` of a border a pixel at distance t
  switches with probability prob * (r^2 acos(t/r) - t sqrt(r^2 - t^2)) / (pi r^2) for a straight border.
  Offsets that land outside the image or the mask keep the pixel's own label.

  Args:
    parts: (H, W) int labels.
    mask: (H, W) person mask.
  Returns:
    (H, W) labels, same dtype.
  """
  parts = np.asarray(parts)
  mask = np.asarray(mask, bool)
  if prob <= 0 or radius_px <= 0:
    return parts.copy()
  H, W = parts.shape
  rho = radius_px * np.sqrt(rng.uniform(size=(H, W)))
  phi = rng.uniform(0.0, 2 * np.pi, size=(H, W))
  yy, xx = np.mgrid[0:H, 0:W]
  ny = np.floor(yy + 0.5 + rho * np.sin(phi)).astype(np.int64)
  nx = np.floor(xx + 0.5 + rho * np.cos(phi)).astype(np.int64)
  inside = (ny >= 0) & (ny < H) & (nx >= 0) & (nx < W)
  nyc, nxc = np.clip(ny, 0, H - 1), np.clip(nx, 0, W - 1)
  take = (rng.uniform(size=(H, W)) < prob) & inside & mask & mask[nyc, nxc]
  out = parts.copy()
  out[take] = parts[nyc[take], nxc[take]]
  return out
