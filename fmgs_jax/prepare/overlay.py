"""WORKDIR/overlay.mp4: the fitted template over the video, to judge the preparation by eye.

Each frame: the fitted template's silhouette (fit/silhouette.py, the fitter's own render) tinted green
at half opacity, the person mask's outline in white, and the detected keypoints with confidence above
`min_confidence` as red dots. A good preparation shows the green body on the person, its edge on the
white outline, its limbs on the person's limbs, in every frame.
"""

from __future__ import annotations

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from fmgs_jax import body as body_lib
from fmgs_jax.fit import silhouette, subject
from fmgs_jax.render import Camera

TINT = np.array([0.0, 1.0, 0.0], np.float32)


def template_alphas(model: body_lib.BodyModel, betas: np.ndarray, pose: np.ndarray, transl: np.ndarray,
                    K: np.ndarray, height: int, width: int, num_faces: int, tile_capacity: int):
  """Yields (H, W) float32 alphas of the fitted template per frame (pose (N, 24, 3), transl (N, 3),
  K (3, 3), world = camera frame)."""
  problem = subject.make_problem(model, num_faces)
  b = jnp.asarray(betas, jnp.float32)
  v = jnp.asarray(problem.v0) + jnp.einsum("vcs,s->vc", jnp.asarray(problem.shape), b)
  j = jnp.asarray(problem.j0) + jnp.einsum("jcs,s->jc", jnp.asarray(problem.j_shape), b)
  cam = Camera(K=jnp.asarray(K, jnp.float32), world_to_camera=jnp.eye(4), width=width, height=height)

  @jax.jit
  def alpha(p, t):
    pv, _ = subject.pose_body(problem, v, j, p, t)
    return silhouette.render_alpha(pv, problem.faces, cam, tile_capacity=tile_capacity)

  for p, t in zip(pose, transl):
    yield np.asarray(alpha(jnp.asarray(p, jnp.float32), jnp.asarray(t, jnp.float32)))


def compose(image: np.ndarray, alpha: np.ndarray, mask: np.ndarray, keypoints: np.ndarray,
            min_confidence: float = 0.3) -> np.ndarray:
  """(H, W, 3) uint8 overlay of one frame (module docstring); keypoints (K, 3) (x, y, conf) pixels."""
  out = image.astype(np.float32) / 255.0
  a = 0.5 * np.clip(alpha, 0.0, 1.0)[..., None]
  out = out * (1.0 - a) + TINT * a
  edge = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
  out[edge] = 1.0
  out = np.round(out * 255).astype(np.uint8)
  r = max(1, round(max(image.shape[:2]) / 200))
  for x, y, c in keypoints:
    if c > min_confidence:
      cv2.circle(out, (int(x), int(y)), r, (255, 0, 0), -1)
  return out
