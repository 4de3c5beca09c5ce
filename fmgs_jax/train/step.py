"""The jitted train step: render a batch of frames, the paper's losses, isolated gradients, update.

One forward pass per step (fmgs_jax/train/isolation.py pulls the per-loss cotangents back through it).
A step whose loss or gradient is not finite changes nothing (parameters and optimiser state are kept,
`skipped` counts it), so one bad frame cannot poison a long run.
"""

from typing import Any, Callable, Mapping

import flax.struct
import jax
import jax.numpy as jnp
import optax

from fmgs_jax import errors
from fmgs_jax.render import Camera, rasterize
from fmgs_jax.train import isolation
from fmgs_jax.train import losses

PRIOR_TERMS = {"depth": "prior_depth", "normal_prior": "prior_normal", "semantic": "prior_parts"}


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training (and is checkpointed).

  Attributes:
    step: () int32 steps taken.
    params: the avatar's parameter pytree.
    opt_state: optax state.
    key: (2,) uint32 raw PRNG key data (per-step keys are fold_in(key, step)).
    skipped: () int32 steps skipped by the non-finite guard.
  """
  step: jnp.ndarray
  params: Any
  opt_state: Any
  key: jnp.ndarray
  skipped: jnp.ndarray


def init_state(params: Any, optimizer: optax.GradientTransformation, seed: int) -> TrainState:
  return TrainState(step=jnp.int32(0), params=params, opt_state=optimizer.init(params),
                    key=jax.random.key_data(jax.random.key(seed)), skipped=jnp.int32(0))


@flax.struct.dataclass
class Batch:
  """What the step reads from a stack of B frames (fmgs_jax.data.Frame + priors), as arrays.

  image (B,H,W,3), mask (B,H,W), K (B,3,3), world_to_camera (B,4,4), betas (B,S), pose (B,24,3),
  transl (B,3), frame_index (B,) int32 position in the training split (the pose-refinement row; -1 =
  none, for evaluation frames); priors (zeros when absent, then their loss weight must be 0):
  prior_normal (B,H,W,3) camera-space unit normals, prior_depth (B,H,W) larger = farther,
  prior_parts (B,H,W) int32 Sapiens classes (-1 = ignore).
  """
  image: jnp.ndarray
  mask: jnp.ndarray
  K: jnp.ndarray
  world_to_camera: jnp.ndarray
  betas: jnp.ndarray
  pose: jnp.ndarray
  transl: jnp.ndarray
  frame_index: jnp.ndarray
  prior_normal: jnp.ndarray
  prior_depth: jnp.ndarray
  prior_parts: jnp.ndarray


def batch_from_frames(frames) -> Batch:
  """A `Batch` from a stacked `Frame` (leading B axis); absent priors become zeros / -1."""
  b, h, w = frames.mask.shape
  zeros = jnp.zeros
  return Batch(
      image=jnp.asarray(frames.image, jnp.float32), mask=jnp.asarray(frames.mask, jnp.float32),
      K=jnp.asarray(frames.K, jnp.float32), world_to_camera=jnp.asarray(frames.world_to_camera, jnp.float32),
      betas=jnp.asarray(frames.betas, jnp.float32), pose=jnp.asarray(frames.pose, jnp.float32),
      transl=jnp.asarray(frames.transl, jnp.float32), frame_index=jnp.asarray(frames.sample_index, jnp.int32),
      prior_normal=(zeros((b, h, w, 3)) if frames.prior_normal is None
                    else jnp.asarray(frames.prior_normal, jnp.float32)),
      prior_depth=(zeros((b, h, w)) if frames.prior_depth is None
                   else jnp.asarray(frames.prior_depth, jnp.float32)),
      prior_parts=(jnp.full((b, h, w), -1, jnp.int32) if frames.prior_parts is None
                   else jnp.asarray(frames.prior_parts, jnp.int32)))


def check_priors(weights: Mapping[str, float], frames) -> None:
  """A prior loss with a non-zero weight needs that prior on every frame: say which, before compute."""
  for term, field in PRIOR_TERMS.items():
    if weights.get(term, 0.0) and getattr(frames, field) is None:
      raise errors.ConfigError(f"config loss.{term}.weight = {weights[term]} but the frames have no {field}: "
                               f"run --mode=priors first (or set --config.loss.{term}.weight=0)")


def make_loss_fns(loss_cfg: Any, batch: Batch, key: jax.Array, background_rgb: jnp.ndarray,
                  num_classes: int, template_weights: jnp.ndarray, edges: jnp.ndarray) -> dict[str, Callable[[Any, Mapping[str, Any]], jnp.ndarray]]:
  """{term: fn(rendered, quantities) -> () float32}, each averaged over the batch.

  `rendered` is a RenderOutput with a leading B axis whose colour channels are [rgb | part probs];
  `quantities` is the avatar's dict (leading B axis) of surfel quantities; template_weights (V, J)
  and edges (E, 2) int32 (neighbouring surfels) are the template's, for L_skin and L_iso. The photometric target is
  the image with its background replaced by the render's, through the mask.
  """
  num_rgb = background_rgb.shape[0]
  b = batch.mask.shape[0]
  keys = jax.random.split(key, b)
  mask = batch.mask

  def mean_over(fn, *args):
    return jnp.mean(jax.vmap(fn)(*args))

  def rgb(r, q):
    m = mask[..., None]
    target = batch.image * m + background_rgb * (1.0 - m)
    return mean_over(lambda x, y: losses.photometric_loss(x, y, loss_cfg.rgb.ssim_weight),
                     r.color[..., :num_rgb], target)

  def mask_loss(r, q):
    return mean_over(losses.mask_bce, r.alpha, mask)

  def depth(r, q):
    fn = lambda d, p, m, k: losses.ordinal_depth_loss(d, p, m, k, loss_cfg.depth.num_pairs, loss_cfg.depth.alpha)
    return mean_over(fn, r.depth, batch.prior_depth, mask * (batch.prior_depth > 0), keys)

  def normal_depth(r, q):
    form = loss_cfg.normal_depth.get("form", "l1")
    return mean_over(lambda n, d, k, m: losses.normal_consistency_loss(n, d, k, m, form), r.normal, r.depth,
                     batch.K, mask)

  def normal_prior(r, q):
    valid = mask * (jnp.sum(batch.prior_normal ** 2, -1) > 0.5)
    return mean_over(losses.normal_prior_loss, r.normal, batch.prior_normal, valid)

  def normal_tv(r, q):
    return mean_over(losses.total_variation, r.normal, mask)

  def semantic(r, q):
    probs = r.color[..., num_rgb:num_rgb + num_classes]
    fn = lambda p, l: losses.semantic_cross_entropy(p, l, None, from_probabilities=True)
    return mean_over(fn, probs, batch.prior_parts)

  def semantic_reg(r, q):
    labels = jax.lax.stop_gradient(jnp.argmax(q["semantics"], axis=-1))
    return mean_over(lambda f, l: losses.semantic_feature_reg(f, l, num_classes), q["semantic_features"], labels)

  def skin(r, q):
    return mean_over(lambda w: losses.skinning_loss(w, template_weights), q["skinning_weights"])

  def iso(r, q):
    # Posed neighbours keep their canonical distances (3DGS-Avatar's as-isometric-as-possible term): it
    # regularises what the pose does to the surfels (skinning, pose-dependent residuals), not the
    # canonical offsets themselves, which must reach clothing centimetres off the template.
    return mean_over(lambda x, r: losses.isometry_loss(x, r, edges), q["means"], q["canonical_means"])

  return {"rgb": rgb, "mask": mask_loss, "depth": depth, "normal_depth": normal_depth,
          "normal_prior": normal_prior, "normal_tv": normal_tv, "semantic": semantic,
          "semantic_reg": semantic_reg, "skin": skin, "iso": iso}


def render_batch(quantities: Mapping[str, Any], batch: Batch, width: int, height: int,
                 background: jnp.ndarray, render_cfg: Any):
  """Rasterizes B frames of surfels (vmapped). Colour channels: [colors | semantics].

  Three scales per primitive (model.primitive="3dgs") render as 3D Gaussians, two as 2DGS surfels.
  """
  from fmgs_jax.render import Surfels  # pylint: disable=g-import-not-at-top
  primitive = "3dgs" if quantities["scales"].shape[-1] == 3 else "2dgs"

  def one(q, K, w2c):
    surfels = Surfels(means=q["means"], rotations=q["rotations"], scales=q["scales"],
                      opacities=q["opacities"], features=jnp.concatenate([q["colors"], q["semantics"]], -1))
    cam = Camera(K=K, world_to_camera=w2c, width=width, height=height, near=render_cfg.near, far=render_cfg.far)
    return rasterize(surfels, cam, background, backend=render_cfg.backend, alpha_min=render_cfg.alpha_min,
                     alpha_max=render_cfg.alpha_max, transmittance_min=render_cfg.transmittance_min,
                     tile_size=render_cfg.tile_size, tile_capacity=render_cfg.tile_capacity,
                     pair_capacity=render_cfg.get("pair_capacity", 0) or None,
                     tiles_per_chunk=render_cfg.get("tiles_per_chunk", 16), primitive=primitive,
                     low_pass_radius=render_cfg.get("low_pass_radius", 0.5 ** 0.5))

  render_q = {k: quantities[k] for k in ("means", "rotations", "scales", "opacities", "colors", "semantics")}
  return jax.vmap(one)(render_q, batch.K, batch.world_to_camera)


def _without_overflow(out):
  """(rendered float pytree, overflow count as aux): the gradient machinery takes float leaves only."""
  return out.replace(overflow=jnp.zeros((), jnp.float32)), out.overflow


def make_train_step(build_fn: Callable[[Any, Batch], Mapping[str, Any]], config: Any,
                    optimizer: optax.GradientTransformation, group_labels: Any, width: int, height: int,
                    num_classes: int, template_weights: jnp.ndarray, edges: jnp.ndarray) -> Callable[[TrainState, Batch], tuple[TrainState, dict]]:
  """Returns the (unjitted) step(state, batch) -> (state, metrics).

  Args:
    build_fn: (params, batch) -> dict of surfel quantities with a leading B axis (the avatar).
    config: the full config (loss, isolation, render, train sections).
    optimizer: from `optim.make_optimizer`; group_labels: `optim.param_labels(params, ...)`.
    width, height: image size (static).
    num_classes: semantic classes rendered after the 3 colour channels.
    template_weights: (V, J) template skinning weights (L_skin); edges: (E, 2) int32 neighbouring
      surfels (L_iso).
  """
  weights = losses.active_weights(config.loss)
  table = isolation.table_from_config(config.isolation, list(weights), list(config.optim.groups))
  background_rgb = jnp.asarray(config.train.background, jnp.float32)
  background = jnp.concatenate([background_rgb, jnp.zeros((num_classes,))])

  def step(state: TrainState, batch: Batch):
    key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
    loss_fns = {k: v for k, v in make_loss_fns(config.loss, batch, key, background_rgb, num_classes,
                                           template_weights, edges).items() if k in weights}
    total, values, grads, aux = isolation.isolated_value_and_grad(
        state.params, lambda p: (build_fn(p, batch), None),
        lambda q: _without_overflow(render_batch(q, batch, width, height, background, config.render)),
        loss_fns, weights, table, group_labels=group_labels, has_aux=True,
        vectorize=bool(config.isolation.vectorize))
    overflow = jnp.sum(aux[1])
    finite = jnp.isfinite(total) & jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    grads = jax.tree.map(lambda g: jnp.where(finite, g, 0.0), grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
    new_state = TrainState(step=state.step + 1, params=keep(params, state.params),
                           opt_state=keep(opt_state, state.opt_state), key=state.key,
                           skipped=state.skipped + (1 - finite.astype(jnp.int32)))
    metrics = {"loss": total, "finite": finite, "overflow": overflow, **{f"loss/{k}": v for k, v in values.items()}}
    return new_state, metrics

  return step
