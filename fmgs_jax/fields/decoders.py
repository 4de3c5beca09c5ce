"""Small MLP decoders of the avatar's fields (Flax).

* `PoseEncoder`      body pose (J, 3) axis-angle -> pose latent Z_p (D_p,)
* `GeometryDecoder`  (f_g, Z_p) -> bounded residuals (delta_d, delta_s) and latent z_g
* `TiltDecoder`      (f_g, Z_p) -> bounded rotation residual delta_r (its own MLP, see below)
* `AppearanceDecoder` (f_c, z_g, Z_p, canonical view direction) -> RGB in [0, 1]
* `SemanticDecoder`  f_s -> body-part logits (28 Sapiens classes by default)
* `SkinningDecoder`  hash features of the deformed centre mu' -> LBS weights (softmax over joints)

Every decoder is per surfel: inputs (N, .) -> outputs (N, .); the pose latent (D_p,) is shared by all
surfels of a frame and broadcast here.
"""

from typing import Sequence

import flax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from fmgs_jax.geometry.rotations import axis_angle_to_matrix  # re-exported for the fields' users
from fmgs_jax.geometry.surfels import bound_rotation


class MLP(nn.Module):
  """ReLU hidden layers then a linear output layer.

  Attributes:
    hidden: widths of the hidden layers (may be empty).
    out: output width.
    zero_init_output: start the output layer at zero (the decoded quantity starts at its neutral value).
  """
  hidden: Sequence[int]
  out: int
  zero_init_output: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    for i, width in enumerate(self.hidden):
      x = nn.relu(nn.Dense(width, name=f"hidden_{i}")(x))
    init = nn.initializers.zeros if self.zero_init_output else nn.linear.default_kernel_init
    return nn.Dense(self.out, kernel_init=init, name="output")(x)


def _broadcast_rows(z: jnp.ndarray, n: int) -> jnp.ndarray:
  """(D,) or (N, D) -> (N, D)."""
  return jnp.broadcast_to(z, (n, z.shape[-1]))


class PoseEncoder(nn.Module):
  """Body pose -> pose latent Z_p.

  Documented choice (the paper's encoder is hierarchical per joint; any small encoder is allowed):
  every non-root joint's rotation is turned into a continuous 6D feature, the first two columns of
  R - I (zero at the rest pose, no wrap-around unlike raw axis-angle, as 3DGS-Avatar's
  `dim_per_joint: 6`), and an MLP maps the concatenation to Z_p. The root (global orientation) is
  left out so the canonical residuals do not depend on where the body faces.

  Attributes:
    latent_dim: D_p.
    hidden: hidden widths of the MLP.
  """
  latent_dim: int = 16
  hidden: Sequence[int] = (128,)

  @nn.compact
  def __call__(self, pose: jnp.ndarray) -> jnp.ndarray:
    """Args: pose (J, 3) float32 axis-angle, SMPL joint order, pose[0] = global orientation.

    Returns: (latent_dim,) float32.
    """
    rel = axis_angle_to_matrix(pose[1:]) - jnp.eye(3)  # (J-1, 3, 3)
    feats = rel[..., :2].reshape(-1)  # (6 (J-1),)
    return MLP(self.hidden, self.latent_dim, name="mlp")(feats)


@flax.struct.dataclass
class GeometryResidual:
  """Bounded pose-dependent residuals of one frame's surfels.

  Attributes:
    offset: (N,) float32 delta_d, movement along the face normal in metres, |offset| <= max_offset;
      the avatar sets mu' = mu + n * offset.
    log_scale: (N, 2) float32 delta_s, |.| <= max_log_scale; s' = s * exp(delta_s).
    rotation: (N, 3) float32 delta_r, an axis-angle vector in the surfel's local frame (t_u, t_v, n),
      ||delta_r|| <= max_rotation radians; R' = R exp([delta_r]_x), so the normal tilts at most
      max_rotation away from the face normal.
    latent: (N, D_g) float32 z_g, geometry latent passed to the appearance decoder.
  """
  offset: jnp.ndarray
  log_scale: jnp.ndarray
  rotation: jnp.ndarray
  latent: jnp.ndarray


class GeometryDecoder(nn.Module):
  """(f_g, Z_p) -> (delta_d, delta_s, z_g); residuals are bounded by tanh and start at zero.

  Attributes:
    hidden: hidden widths (3DGS-Avatar's non-rigid MLP: 3 x 128).
    latent_dim: D_g (3DGS-Avatar's non_rigid_dim: 16).
    max_offset: bound of |delta_d|, metres.
    max_log_scale: bound of |delta_s|.
  """
  hidden: Sequence[int] = (128, 128, 128)
  latent_dim: int = 16
  max_offset: float = 0.05
  max_log_scale: float = 1.0

  @nn.compact
  def __call__(self, f_g: jnp.ndarray, z_p: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Args: f_g (N, F_g) float32 geometry features; z_p (D_p,) or (N, D_p) pose latent.

    Returns: offset (N,), log_scale (N, 2), latent (N, D_g), as in GeometryResidual.
    """
    x = jnp.concatenate([f_g, _broadcast_rows(z_p, f_g.shape[0])], axis=-1)
    h = x
    for i, width in enumerate(self.hidden):
      h = nn.relu(nn.Dense(width, name=f"hidden_{i}")(h))
    raw = nn.Dense(3, kernel_init=nn.initializers.zeros, name="residual")(h)
    latent = nn.Dense(self.latent_dim, name="latent")(h)
    return self.max_offset * jnp.tanh(raw[:, 0]), self.max_log_scale * jnp.tanh(raw[:, 1:3]), latent


class TiltDecoder(nn.Module):
  """(f_t, Z_p) -> delta_r, the surfel's tilt in its face frame, ||delta_r|| <= max_rotation, starts at 0.

  Its own MLP on its own grid's features f_t, not a head on the geometry MLP's trunk, so that the
  normal losses, which may update only the `tilt` parameter group, change rotations and nothing
  else (why, and why its own grid: fields/model.py).

  Attributes:
    hidden: hidden widths.
    max_rotation: bound of ||delta_r|| in radians.
  """
  hidden: Sequence[int] = (128, 128)
  max_rotation: float = 0.5

  @nn.compact
  def __call__(self, f_t: jnp.ndarray, z_p: jnp.ndarray) -> jnp.ndarray:
    """Args: f_t (N, F_t), z_p (D_p,) or (N, D_p). Returns: (N, 3) float32 axis-angle delta_r."""
    x = jnp.concatenate([f_t, _broadcast_rows(z_p, f_t.shape[0])], axis=-1)
    return bound_rotation(MLP(self.hidden, 3, zero_init_output=True, name="mlp")(x), self.max_rotation)


def frequency_encoding(x: jnp.ndarray, num_frequencies: int) -> jnp.ndarray:
  """NeRF positional encoding [x, sin(2^k pi x), cos(2^k pi x)]_{k < num_frequencies}.

  Args:
    x: (..., D) float32.

  Returns:
    (..., D (1 + 2 num_frequencies)) float32.
  """
  scales = jnp.asarray(2.0 ** np.arange(num_frequencies) * np.pi, x.dtype)
  xs = (x[..., None, :] * scales[:, None]).reshape(*x.shape[:-1], -1)
  return jnp.concatenate([x, jnp.sin(xs), jnp.cos(xs)], axis=-1)


class AppearanceDecoder(nn.Module):
  """(f_c, z_g, Z_p, encoded canonical view direction) -> RGB, one hidden layer, no spherical harmonics.

  Attributes:
    hidden: width of the single hidden layer (paper: 64).
    view_frequencies: frequencies of the view-direction encoding (documented choice).
  """
  hidden: int = 64
  view_frequencies: int = 4

  @nn.compact
  def __call__(self, f_c: jnp.ndarray, z_g: jnp.ndarray, z_p: jnp.ndarray,
               view_dirs: jnp.ndarray) -> jnp.ndarray:
    """Args:
      f_c: (N, F_c) appearance features.
      z_g: (N, D_g) geometry latent.
      z_p: (D_p,) or (N, D_p) pose latent.
      view_dirs: (N, 3) unit directions from the camera to the surfel, rotated into canonical space
        (by the inverse of the surfel's LBS rotation).

    Returns:
      (N, 3) float32 RGB in [0, 1].
    """
    n = f_c.shape[0]
    x = jnp.concatenate([f_c, z_g, _broadcast_rows(z_p, n),
                         frequency_encoding(view_dirs, self.view_frequencies)], axis=-1)
    return nn.sigmoid(MLP((self.hidden,), 3, name="mlp")(x))


class SemanticDecoder(nn.Module):
  """f_s -> body-part logits.

  Attributes:
    num_classes: 28 (Sapiens body-part classes).
    hidden: hidden widths.
  """
  num_classes: int = 28
  hidden: Sequence[int] = (64,)

  @nn.compact
  def __call__(self, f_s: jnp.ndarray) -> jnp.ndarray:
    """Args: f_s (N, F_s) semantic features. Returns: (N, num_classes) float32 logits."""
    return MLP(self.hidden, self.num_classes, name="mlp")(f_s)


class SkinningDecoder(nn.Module):
  """Hash features of mu' -> LBS weights W = softmax(log(W_0 + eps) + MLP(.)) (3DGS-Avatar: 4 x 128).

  W_0 are the template's weights at the points when the caller has them (the avatar always does: its
  template's vertex weights, or a free Gaussian's face weights); the MLP's output layer starts at zero,
  so the field starts as the template's skinning and learns a correction in logit space (our choice:
  a randomly initialised field would pose the body with near-uniform weights until L_skin pulled it
  back). Without W_0 the field starts uniform.

  Attributes:
    num_joints: J, one output per joint.
    hidden: hidden widths.
    eps: floor of W_0 inside the log (a joint with no template weight starts at ~eps).
  """
  num_joints: int
  hidden: Sequence[int] = (128, 128, 128, 128)
  eps: float = 1e-4

  @nn.compact
  def __call__(self, features: jnp.ndarray, base_weights: jnp.ndarray | None = None) -> jnp.ndarray:
    """Args: features (N, F) hash features at the deformed centres; base_weights (N, J) template
    weights there, or None. Returns: (N, J) weights, rows sum to 1."""
    logits = MLP(self.hidden, self.num_joints, zero_init_output=True, name="mlp")(features)
    if base_weights is not None:
      logits = logits + jnp.log(base_weights + self.eps)
    return nn.softmax(logits, axis=-1)
