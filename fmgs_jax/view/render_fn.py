"""The viewer's render callback: (params, pose, camera, quantity, surfel scale, background) -> an
(H, W, 3) uint8 image, one jitted program per image size.

The avatar is posed and rasterized as in training and evaluation (avatar.quantities, then
train.step.render_batch with `c.render`'s rasterizer settings); only the surfel scales are multiplied
by the viewer's scale factor, and the background is an argument rather than `c.train.background`.
Colour maps are eval/visualize.py's (the normal map follows `c.eval.normal_convention`, depth
`c.eval.depth_percentiles`).
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from fmgs_jax import avatar as avatar_lib
from fmgs_jax.eval import visualize
from fmgs_jax.render import Camera
from fmgs_jax.train import step as step_lib
from fmgs_jax.view.poses import ViewPose

QUANTITIES = ("colour", "normals", "depth", "semantics", "alpha")


def view_batch(p: ViewPose, camera: Camera) -> step_lib.Batch:
  """A one-frame `Batch` for the avatar: `p`'s pose seen by `camera` (its world_to_camera composed with
  the pose's placement). The target fields (image, mask, priors) are 1 x 1 placeholders: rendering reads
  none of them."""
  w2c = np.asarray(camera.world_to_camera, np.float32) @ np.asarray(p.placement, np.float32)
  one = lambda a, dtype=jnp.float32: jnp.asarray(a, dtype)[None]
  return step_lib.Batch(
      image=jnp.zeros((1, 1, 1, 3)), mask=jnp.zeros((1, 1, 1)), K=one(camera.K), world_to_camera=one(w2c),
      betas=one(p.betas), pose=one(p.pose), transl=one(p.transl), frame_index=one(p.frame_index, jnp.int32),
      prior_normal=jnp.zeros((1, 1, 1, 3)), prior_depth=jnp.zeros((1, 1, 1)),
      prior_parts=jnp.full((1, 1, 1), -1, jnp.int32))


def colourize(out, quantity: str, background, config: Any) -> np.ndarray:
  """(H, W, 3) uint8 picture of one quantity of a RenderOutput (numpy, no batch axis; colour channels
  [rgb | part probabilities]). `background`: (3,) RGB in [0, 1] where nothing is rendered (the colour
  image has it composited under it; the other maps put it where alpha <= 0.5); alpha is shown as grey
  levels (black = empty, white = opaque)."""
  alpha = np.asarray(out.alpha)
  bg = tuple(float(v) for v in background)
  if quantity == "colour":
    return visualize.to_uint8(np.clip(np.asarray(out.color[..., :3]), 0.0, 1.0))
  if quantity == "normals":
    return visualize.colorize_normals(np.asarray(out.normal), alpha, convention=config.eval.normal_convention,
                                      background=bg)
  if quantity == "depth":
    return visualize.colorize_depth(np.asarray(out.depth), alpha, tuple(config.eval.depth_percentiles), bg)
  if quantity == "semantics":
    return visualize.colorize_semantics(np.asarray(out.color[..., 3:]), alpha, background=bg)
  if quantity == "alpha":
    return visualize.to_uint8(alpha)
  raise ValueError(f"viewer: quantity must be one of {QUANTITIES}, got {quantity!r}")


def make_view_renderer(avatar, config: Any) -> Callable[..., np.ndarray]:
  """Returns render(params, pose, camera, quantity="colour", scale=1.0, background=(1, 1, 1)) -> (H, W, 3)
  uint8 with H, W = camera.height, camera.width.

  Args of render: params, the avatar's parameters (loop.restore_params); pose, a `ViewPose`; camera, our
  `Camera` (view.camera.viser_to_camera); quantity, one of QUANTITIES; scale, factor on every surfel
  scale (> 0; 1 = as trained); background, (3,) RGB in [0, 1].

  Each image size is compiled once (the first render at that size) and kept; pose, camera, scale and
  background are traced arguments, so changing them never recompiles.
  """
  programs = {}

  def program(width: int, height: int):
    if (width, height) not in programs:
      @jax.jit
      def run(params, batch, background, scale):
        q = avatar_lib.quantities(avatar, params, batch)
        q = dict(q, scales=q["scales"] * scale)
        return step_lib.render_batch(q, batch, width, height, background, config.render)
      programs[(width, height)] = run
    return programs[(width, height)]

  def render(params, pose: ViewPose, camera: Camera, quantity: str = "colour", scale: float = 1.0,
             background=(1.0, 1.0, 1.0)) -> np.ndarray:
    if quantity not in QUANTITIES:
      raise ValueError(f"viewer: quantity must be one of {QUANTITIES}, got {quantity!r}")
    if not scale > 0:
      raise ValueError(f"viewer: surfel scale must be > 0, got {scale}")
    bg = jnp.concatenate([jnp.asarray(background, jnp.float32).reshape(3), jnp.zeros((avatar.num_classes,))])
    out = program(camera.width, camera.height)(params, view_batch(pose, camera), bg, jnp.float32(scale))
    out = jax.tree.map(lambda x: np.asarray(x)[0], jax.device_get(out))
    return colourize(out, quantity, background, config)

  render.programs = programs  # image sizes compiled so far (for tests and the frame-time label)
  return render
