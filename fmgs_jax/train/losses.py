"""The training losses of FMGS-Avatar, each a pure function of rendered images or surfel quantities.

Image conventions: (H, W, C) float32, [0, 1]; depth (H, W) camera z in metres; normals (H, W, 3) in
the OpenCV camera frame (x right, y down, z forward) facing the camera; masks (H, W) in {0, 1}.
Every loss returns a () float32 scalar without its weight: the weights live in `config.loss.<term>
.weight` (`active_weights`), and a term with weight 0 is not computed at all.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fmgs_jax import errors

_EPS = 1e-8


def _weighted_mean(values: jnp.ndarray, weight: jnp.ndarray | None) -> jnp.ndarray:
  """Mean of `values`, weighted by `weight` (same shape) when given; 0 when all weights are 0."""
  if weight is None:
    return jnp.mean(values)
  weight = jnp.broadcast_to(weight, values.shape).astype(values.dtype)
  return jnp.sum(weight * values) / jnp.maximum(jnp.sum(weight), _EPS)


# --- photometric --------------------------------------------------------------------------------


def _gaussian_kernel(window: int, sigma: float) -> np.ndarray:
  x = np.arange(window, dtype=np.float64) - (window - 1) / 2
  k = np.exp(-0.5 * (x / sigma) ** 2)
  return (k / k.sum()).astype(np.float32)


def _blur_valid(x: jnp.ndarray, kernel: np.ndarray) -> jnp.ndarray:
  """Separable 'valid' Gaussian filter of (H, W, C) per channel -> (H - k + 1, W - k + 1, C)."""
  c = x.shape[-1]
  k = jnp.asarray(kernel)
  ky = jnp.tile(k[:, None, None, None], (1, 1, 1, c))  # (k, 1, 1, C) HWIO, depthwise
  kx = jnp.tile(k[None, :, None, None], (1, 1, 1, c))
  dn = ("NHWC", "HWIO", "NHWC")
  y = jax.lax.conv_general_dilated(x[None], ky, (1, 1), "VALID", dimension_numbers=dn,
                                   feature_group_count=c, precision=jax.lax.Precision.HIGHEST)
  y = jax.lax.conv_general_dilated(y, kx, (1, 1), "VALID", dimension_numbers=dn,
                                   feature_group_count=c, precision=jax.lax.Precision.HIGHEST)
  return y[0]


def ssim(a: jnp.ndarray, b: jnp.ndarray, *, window: int = 11, sigma: float = 1.5, k1: float = 0.01,
         k2: float = 0.03, data_range: float = 1.0) -> jnp.ndarray:
  """Differentiable Gaussian-window SSIM averaged over the valid region and the channels.

  Equals scikit-image's `structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=-1)` (scipy truncates the Gaussian at
  3.5 sigma: an 11-tap window for sigma 1.5). No clipping of the local variances, so the gradient is
  the plain derivative of the formula everywhere.

  Args:
    a, b: (H, W, C) float32 images, H, W >= window.

  Returns:
    () float32 in [-1, 1].
  """
  if a.shape != b.shape or a.ndim != 3 or min(a.shape[:2]) < window:
    raise ValueError(f"ssim: need two (H, W, C) images of equal shape, H, W >= {window}; got "
                     f"{a.shape} and {b.shape}")
  kernel = _gaussian_kernel(window, sigma)
  mu_a, mu_b = _blur_valid(a, kernel), _blur_valid(b, kernel)
  var_a = _blur_valid(a * a, kernel) - mu_a * mu_a
  var_b = _blur_valid(b * b, kernel) - mu_b * mu_b
  cov = _blur_valid(a * b, kernel) - mu_a * mu_b
  c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
  s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
  return jnp.mean(s)


def photometric_loss(rgb: jnp.ndarray, target: jnp.ndarray, ssim_weight: float = 0.2) -> jnp.ndarray:
  """(1 - w) * L1 + w * (1 - SSIM) (paper: w = 0.2).

  Args:
    rgb: (H, W, 3) rendered colour; target: (H, W, 3) ground truth on the same background.
  """
  l1 = jnp.mean(jnp.abs(rgb - target))
  if ssim_weight == 0.0:
    return l1
  return (1.0 - ssim_weight) * l1 + ssim_weight * (1.0 - ssim(rgb, target))


def mask_bce(alpha: jnp.ndarray, mask: jnp.ndarray, eps: float = 1e-6) -> jnp.ndarray:
  """Mean binary cross-entropy of the rendered opacity against the foreground mask.

  Args:
    alpha: (H, W) rendered opacity in [0, 1] (clipped to [eps, 1 - eps]).
    mask: (H, W) float or bool foreground mask.
  """
  p = jnp.clip(alpha, eps, 1.0 - eps)
  m = mask.astype(p.dtype)
  return -jnp.mean(m * jnp.log(p) + (1.0 - m) * jnp.log1p(-p))


# --- depth prior --------------------------------------------------------------------------------


def sample_pixel_pairs(key: jax.Array, mask: jnp.ndarray, num_pairs: int) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Draws `num_pairs` random pixel pairs uniformly among the mask's pixels (with replacement).

  Args:
    key: PRNG key.
    mask: (H, W) bool or {0, 1} foreground mask.
    num_pairs: P (static).

  Returns:
    pairs: (2, P) int32 flat pixel indices (row * W + col), both inside the mask.
    valid: () float32, 1 when the mask has a pixel, else 0 (then `pairs` are meaningless).
  """
  # Inverse-CDF sampling over the mask: O(H W + P log(H W)) memory and time (a categorical draw would
  # materialise P x H x W Gumbel noise). The float32 cumsum of 0/1 is exact below 2^24 pixels.
  cdf = jnp.cumsum((mask.reshape(-1) > 0).astype(jnp.float32))
  total = cdf[-1]
  # cdf holds integers: any u in [total - 1, total) picks the last masked pixel; the cap guards u * total
  # rounding up to total.
  u = jnp.minimum(jax.random.uniform(key, (2, num_pairs)) * total, total - 0.5)
  pairs = jnp.searchsorted(cdf, u, side="right")  # first pixel whose cdf exceeds u: a masked one
  return jnp.minimum(pairs, cdf.shape[0] - 1).astype(jnp.int32), (total > 0).astype(jnp.float32)


def depth_ranking_loss(depth: jnp.ndarray, prior_depth: jnp.ndarray, pairs: jnp.ndarray,
                       alpha: float = 10.0) -> jnp.ndarray:
  """Ordinal depth loss mean_k |tanh(alpha (D_i - D_j)) - sign(Dbar_i - Dbar_j)| over pixel pairs.

  Only the order of the prior matters, so its unknown scale and shift do not.

  Args:
    depth: (H, W) rendered depth D (metres).
    prior_depth: (H, W) prior depth Dbar; larger = farther (convert disparity-like priors first).
    pairs: (2, P) int32 flat pixel indices (`sample_pixel_pairs`).
    alpha: tanh sharpness (paper: 10).
  """
  d, dbar = depth.reshape(-1), prior_depth.reshape(-1)
  i, j = pairs[0], pairs[1]
  return jnp.mean(jnp.abs(jnp.tanh(alpha * (d[i] - d[j])) - jnp.sign(dbar[i] - dbar[j])))


def ordinal_depth_loss(depth: jnp.ndarray, prior_depth: jnp.ndarray, mask: jnp.ndarray, key: jax.Array,
                       num_pairs: int, alpha: float = 10.0) -> jnp.ndarray:
  """`depth_ranking_loss` over `num_pairs` pairs drawn inside `mask` with `key`; 0 for an empty mask."""
  pairs, valid = sample_pixel_pairs(key, mask, num_pairs)
  return valid * depth_ranking_loss(depth, prior_depth, pairs, alpha)


# --- normals ------------------------------------------------------------------------------------


def depth_to_points(depth: jnp.ndarray, K: jnp.ndarray) -> jnp.ndarray:
  """Back-projects a z-depth map to camera-space points X = z K^-1 (u + 0.5, v + 0.5, 1).

  Args:
    depth: (H, W) camera z (metres). K: (3, 3) intrinsics.

  Returns:
    (H, W, 3) float32 OpenCV camera-frame points.
  """
  h, w = depth.shape
  u, v = jnp.meshgrid(jnp.arange(w, dtype=jnp.float32) + 0.5, jnp.arange(h, dtype=jnp.float32) + 0.5)
  pix = jnp.stack([u, v, jnp.ones_like(u)], axis=-1)
  rays = pix @ jnp.linalg.inv(K).T  # (H, W, 3) with z = 1
  return depth[..., None] * rays


def depth_to_normal(depth: jnp.ndarray, K: jnp.ndarray) -> jnp.ndarray:
  """Surface normals of a depth map: back-projection, then central differences of the points.

  n = normalise(dX/dv x dX/du), which faces the camera for a visible surface. The border uses
  one-sided differences (edge padding); pixels next to the silhouette mix foreground and background
  and should be down-weighted by the caller (e.g. by the rendered opacity or the mask).

  Args:
    depth: (H, W) camera z (metres). K: (3, 3) intrinsics.

  Returns:
    (H, W, 3) float32 unit normals, OpenCV camera frame.
  """
  p = jnp.pad(depth_to_points(depth, K), ((1, 1), (1, 1), (0, 0)), mode="edge")
  du = p[1:-1, 2:] - p[1:-1, :-2]
  dv = p[2:, 1:-1] - p[:-2, 1:-1]
  n = jnp.cross(dv, du)
  return n / jnp.sqrt(jnp.sum(n * n, axis=-1, keepdims=True) + 1e-20)


def cosine_loss(a: jnp.ndarray, b: jnp.ndarray, weight: jnp.ndarray | None = None) -> jnp.ndarray:
  """Weighted mean of 1 - cos(a, b) over pixels.

  Args:
    a, b: (H, W, 3) normal maps (need not be unit: the rendered normal is alpha-weighted).
    weight: (H, W) per-pixel weight (e.g. the mask); None = uniform.
  """
  dot = jnp.sum(a * b, axis=-1)
  norm = jnp.sqrt(jnp.sum(a * a, axis=-1) * jnp.sum(b * b, axis=-1) + 1e-20)
  return _weighted_mean(1.0 - dot / norm, weight)


def l1_normal_loss(a: jnp.ndarray, b: jnp.ndarray, weight: jnp.ndarray | None = None) -> jnp.ndarray:
  """Weighted mean over pixels of ||a - b||_1 (summed over the 3 components).

  Args:
    a, b: (H, W, 3) normal maps, compared as they are (the rendered normal is alpha-weighted, so a
      pixel the surfels do not cover fully also pays for its missing opacity).
    weight: (H, W) per-pixel weight; None = uniform.
  """
  return _weighted_mean(jnp.sum(jnp.abs(a - b), axis=-1), weight)


NORMAL_FORMS = {"l1": l1_normal_loss, "cosine": cosine_loss}


def normal_consistency_loss(normal: jnp.ndarray, depth: jnp.ndarray, K: jnp.ndarray,
                            weight: jnp.ndarray | None = None, form: str = "l1") -> jnp.ndarray:
  """L_sn between the rendered normal N and the normal N^ of the rendered depth.

  form "l1": the paper's ||N - N^||_1; "cosine": 1 - cos(N, N^), 2DGS's normal consistency.

  Args:
    normal: (H, W, 3) rendered camera-space normal. depth: (H, W) rendered depth. K: (3, 3).
    weight: (H, W), e.g. the mask.
  """
  if form not in NORMAL_FORMS:
    raise errors.ConfigError(f"config.loss.normal_depth.form = {form!r}: expected one of {sorted(NORMAL_FORMS)}")
  return NORMAL_FORMS[form](normal, depth_to_normal(depth, K), weight)


def normal_prior_loss(normal: jnp.ndarray, prior_normal: jnp.ndarray,
                      weight: jnp.ndarray | None = None) -> jnp.ndarray:
  """L_n: 1 - cos between the rendered normal and the prior normal (both OpenCV camera frame)."""
  return cosine_loss(normal, prior_normal, weight)


def total_variation(image: jnp.ndarray, weight: jnp.ndarray | None = None) -> jnp.ndarray:
  """L_tv: mean |I(y, x+1) - I(y, x)|_1 + mean |I(y+1, x) - I(y, x)|_1 (anisotropic, L1 over channels).

  Args:
    image: (H, W, C), e.g. the rendered normal map.
    weight: (H, W); a neighbour pair counts with the product of its two pixels' weights.
  """
  dx = jnp.sum(jnp.abs(image[:, 1:] - image[:, :-1]), axis=-1)
  dy = jnp.sum(jnp.abs(image[1:] - image[:-1]), axis=-1)
  if weight is None:
    return jnp.mean(dx) + jnp.mean(dy)
  return (_weighted_mean(dx, weight[:, 1:] * weight[:, :-1]) +
          _weighted_mean(dy, weight[1:] * weight[:-1]))


# --- semantics ----------------------------------------------------------------------------------


def semantic_cross_entropy(scores: jnp.ndarray, labels: jnp.ndarray, weight: jnp.ndarray | None = None,
                           from_probabilities: bool = False) -> jnp.ndarray:
  """Pixel cross-entropy of the rendered part scores against the prior part map.

  Args:
    scores: (H, W, C) rendered logits, or probabilities when `from_probabilities`.
    labels: (H, W) int prior part labels in [0, C); negative labels are ignored.
    weight: (H, W) extra per-pixel weight (e.g. the mask); None = uniform.
  """
  if from_probabilities:
    logp = jnp.log(jnp.clip(scores, 1e-6, None) / jnp.sum(jnp.clip(scores, 1e-6, None), -1, keepdims=True))
  else:
    logp = jax.nn.log_softmax(scores, axis=-1)
  valid = labels >= 0
  nll = -jnp.take_along_axis(logp, jnp.where(valid, labels, 0)[..., None], axis=-1)[..., 0]
  w = valid.astype(scores.dtype) if weight is None else valid * weight
  return _weighted_mean(nll, w)


def semantic_feature_reg(features: jnp.ndarray, labels: jnp.ndarray, num_classes: int) -> jnp.ndarray:
  """L_reg: mean over surfels of ||f_i - mean of f over surfels with label l_i||^2.

  Args:
    features: (N, F) per-surfel semantic features f_s.
    labels: (N,) int class of each surfel in [0, num_classes) (e.g. the argmax of its logits).
  """
  sums = jax.ops.segment_sum(features, labels, num_segments=num_classes)
  counts = jax.ops.segment_sum(jnp.ones_like(labels, features.dtype), labels, num_segments=num_classes)
  means = sums / jnp.maximum(counts, 1.0)[:, None]
  return jnp.mean(jnp.sum((features - means[labels]) ** 2, axis=-1))


# --- regularisers on surfels --------------------------------------------------------------------


def skinning_loss(weights: jnp.ndarray, template_weights: jnp.ndarray) -> jnp.ndarray:
  """L_skin: mean over surfels of sum_j (w_ij - w̄_ij)^2, learned vs template LBS weights, both (N, J)."""
  return jnp.mean(jnp.sum((weights - template_weights) ** 2, axis=-1))


def isometry_loss(points: jnp.ndarray, reference: jnp.ndarray, edges: jnp.ndarray) -> jnp.ndarray:
  """L_iso: mean over edges (i, j) of | ||x_i - x_j|| - ||r_i - r_j|| |.

  Args:
    points: (N, 3) current surfel centres (e.g. posed). reference: (N, 3) canonical centres.
    edges: (E, 2) int neighbour pairs (e.g. faces sharing an edge, or k nearest canonical neighbours).
  """
  def lengths(x):
    d = x[edges[:, 0]] - x[edges[:, 1]]
    return jnp.sqrt(jnp.sum(d * d, axis=-1) + 1e-20)

  return jnp.mean(jnp.abs(lengths(points) - lengths(reference)))


def active_weights(loss_config: Any) -> dict[str, float]:
  """{term: weight} for every `config.loss.<term>.weight` > 0; negative weights are an error."""
  weights = {}
  for name in loss_config:
    w = float(loss_config[name].weight)
    if w < 0:
      raise errors.ConfigError(f"config.loss.{name}.weight must be >= 0, got {w}")
    if w > 0:
      weights[name] = w
  return weights

