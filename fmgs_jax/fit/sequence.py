"""Per-frame pose and one shape for a sequence, fitted to 2D keypoints and person masks (JAX, jitted).

Unknowns: per frame the global orientation (3), translation (3) and body pose (23 x 3, axis-angle);
one shape beta for the sequence. The objective, over all frames at once (or batches of them):

  keypoints   Geman-McClure rho(r) = r^2 / (r^2 + sigma^2) of the projected joints' pixel error,
              confidence-weighted (a detector's dropped joints have confidence 0)
  silhouette  mean over pixels of (alpha - mask)^2, alpha the posed template through the rasterizer
              (fit/silhouette.py)
  smoothness  squared second differences over time of pose and translation (frames in order)
  prior       pose_weight |body pose|^2 (a pull towards the rest pose), shape_weight |beta|^2

Coarse to fine: the first `global_steps` move only orientation and translation. Initialisation:
translation from each mask's box and the focal length (depth = focal x body height / box height),
orientation facing the camera, body pose at rest.

Detector keypoints map onto the template's 24 SMPL joints by `coco17_to_smpl24` (COCO_TO_SMPL).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm
from scipy.spatial.transform import Rotation

from fmgs_jax import body as body_lib
from fmgs_jax.fit import silhouette, subject
from fmgs_jax.render import Camera

# COCO-17 index -> SMPL joint index. COCO's hips, shoulders, elbows, wrists, knees and ankles are the
# same anatomical joints as SMPL's (COCO's hips sit a few cm lower and wider than SMPL's hip joints);
# the nose stands in for SMPL's head joint (15). Eyes and ears have no SMPL joint and are unused.
COCO_TO_SMPL = {0: 15, 5: 16, 6: 17, 7: 18, 8: 19, 9: 20, 10: 21, 11: 1, 12: 2, 13: 4, 14: 5, 15: 7, 16: 8}


def coco17_to_smpl24(keypoints: np.ndarray) -> np.ndarray:
  """(..., 24, 3) (x, y, confidence) SMPL-order keypoints from (..., 17, 3) COCO-17 ones (confidence 0
  for SMPL joints without a COCO counterpart)."""
  keypoints = np.asarray(keypoints, np.float32)
  out = np.zeros(keypoints.shape[:-2] + (24, 3), np.float32)
  for c, s in COCO_TO_SMPL.items():
    out[..., s, :] = keypoints[..., c, :]
  return out


def default_config():
  """The fitter's settings (`config.prepare.fit` mirrors these)."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  c = ml_collections.ConfigDict()
  c.steps = 300  # Adam steps
  c.global_steps = 60  # first steps move only global orientation and translation
  c.num_faces = 1500  # faces of the mesh rendered for the silhouettes
  c.tile_capacity = 128  # surfels per 8-pixel tile in the silhouette renders
  c.batch_size = 0  # frames per step (0 = all)
  c.keypoint_weight = 1.0  # robust reprojection term
  c.keypoint_sigma_px = 8.0  # pixels at which a joint's error stops counting fully
  c.silhouette_weight = 20.0  # mean squared (alpha - mask)
  c.smooth_weight = 10.0  # squared second differences of pose and translation over time
  c.pose_weight = 1e-2  # pull of the body pose to rest
  c.shape_weight = 1e-3  # pull of the shape to the mean
  c.lr = 0.01  # Adam step for orientation, pose and shape
  c.lr_transl = 0.01  # Adam step for translation, metres
  c.body_height_m = 1.7  # assumed standing height for the initial depth
  c.yaw_candidates = 8  # turns about the vertical axis tried per frame for the initial orientation
  return c


def initial_translation(mask: np.ndarray, K: np.ndarray, world_to_camera: np.ndarray, body_height_m: float,
                        root_offset: np.ndarray) -> np.ndarray:
  """(3,) world translation putting the root at the mask box's centre, at the depth where a body of
  `body_height_m` spans the box's height (`root_offset`: rest root position the translation adds to)."""
  ys, xs = np.nonzero(mask > 0.5)
  if ys.size == 0:
    ys, xs = np.array([0, mask.shape[0] - 1]), np.array([0, mask.shape[1] - 1])
  h = max(ys.max() - ys.min() + 1, 1)
  z = float(K[1, 1]) * body_height_m / h
  u, v = (xs.min() + xs.max()) / 2.0, (ys.min() + ys.max()) / 2.0
  cam = np.array([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z])
  inv = np.linalg.inv(world_to_camera)
  world = inv[:3, :3] @ cam + inv[:3, 3]
  return (world - root_offset).astype(np.float32)


def facing_orientation(world_to_camera: np.ndarray) -> np.ndarray:
  """(3,) axis-angle turning the template (y up, z forward) upright and facing the camera (y down)."""
  r_cam = np.diag([1.0, -1.0, -1.0])
  return Rotation.from_matrix(world_to_camera[:3, :3].T @ r_cam).as_rotvec().astype(np.float32)


def best_yaw(problem, orientation: np.ndarray, transl: np.ndarray, keypoints: np.ndarray, K: np.ndarray,
             E: np.ndarray, candidates: int) -> np.ndarray:
  """(N, 3) per-frame orientation: `orientation` turned about the body's vertical axis by the one of
  `candidates` evenly spaced angles whose rest-pose joints best match the keypoints (a person seen from
  behind is not a local step away from one seen from the front)."""
  if candidates <= 1:
    return orientation
  joints = jnp.asarray(problem.j0)
  angles = np.arange(candidates) * 2 * np.pi / candidates
  best = []
  for i in range(len(orientation)):
    r0 = Rotation.from_rotvec(orientation[i])
    costs, rots = [], []
    for a in angles:
      r = r0 * Rotation.from_rotvec([0.0, a, 0.0])
      posed = (joints - joints[0]) @ jnp.asarray(r.as_matrix(), jnp.float32).T + joints[0] + transl[i]
      err = np.linalg.norm(np.asarray(subject.project(posed, K[i], E[i])) - keypoints[i, :, :2], axis=-1)
      # Rest pose: only the torso and legs (arms move the most) decide.
      conf = keypoints[i, :, 2] * np.isin(np.arange(24), (1, 2, 4, 5, 7, 8, 15, 16, 17))
      costs.append(np.sum(conf * np.minimum(err, 50.0)))
      rots.append(r.as_rotvec())
    best.append(rots[int(np.argmin(costs))])
  return np.asarray(best, np.float32)


@dataclasses.dataclass(frozen=True)
class SequenceFit:
  """pose (N, 24, 3), transl (N, 3), betas (S,): the fit; iou, keypoint_error_px (N,): per frame;
  losses: per step; seconds: wall time."""
  pose: np.ndarray
  transl: np.ndarray
  betas: np.ndarray
  iou: np.ndarray
  keypoint_error_px: np.ndarray
  losses: list
  seconds: float


def fit_sequence(template: body_lib.BodyModel, keypoints: np.ndarray, masks: np.ndarray, K: np.ndarray,
                 world_to_camera: np.ndarray, cfg: Any = None, progress: bool = True,
                 init_pose: Optional[np.ndarray] = None) -> SequenceFit:
  """Fits the sequence (frames in temporal order).

  Args:
    template: the body model (SMPL convention).
    keypoints: (N, 24, 3) SMPL-order (x, y, confidence) pixels.
    masks: (N, H, W) person masks in [0, 1] at the keypoints' resolution.
    K: (N, 3, 3) or (3, 3); world_to_camera: (N, 4, 4) or (4, 4).
    cfg: `default_config()`-style settings.
    init_pose: optional (N, 24, 3) starting poses (else rest, facing the camera).
  """
  start = time.time()
  cfg = cfg or default_config()
  masks = np.asarray(masks, np.float32)
  n, height, width = masks.shape
  K = np.broadcast_to(np.asarray(K, np.float32), (n, 3, 3)).copy()
  E = np.broadcast_to(np.asarray(world_to_camera, np.float32), (n, 4, 4)).copy()
  problem = subject.make_problem(template, cfg.num_faces)
  root = problem.j0[0]
  transl0 = np.stack([initial_translation(masks[i], K[i], E[i], float(cfg.body_height_m), root)
                      for i in range(n)])
  pose0 = np.zeros((n, 24, 3), np.float32)
  pose0[:, 0] = np.stack([facing_orientation(E[i]) for i in range(n)])
  if init_pose is not None:
    pose0 = np.asarray(init_pose, np.float32)
  else:
    pose0[:, 0] = best_yaw(problem, pose0[:, 0], transl0, np.asarray(keypoints, np.float32), K, E,
                           int(cfg.yaw_candidates))
  params = {"glob": jnp.asarray(pose0[:, 0]), "body": jnp.asarray(pose0[:, 1:]), "transl": jnp.asarray(transl0),
            "betas": jnp.zeros((problem.shape.shape[2],))}
  sigma2 = float(cfg.keypoint_sigma_px) ** 2
  tile_capacity = int(cfg.tile_capacity)

  def frame(p_glob, p_body, transl, betas, mask, k, e, kp):
    v = jnp.asarray(problem.v0) + jnp.einsum("vcs,s->vc", jnp.asarray(problem.shape), betas)
    j = jnp.asarray(problem.j0) + jnp.einsum("jcs,s->jc", jnp.asarray(problem.j_shape), betas)
    pose = jnp.concatenate([p_glob[None], p_body], 0)
    posed_v, posed_j = subject.pose_body(problem, v, j, pose, transl)
    cam = Camera(K=k, world_to_camera=e, width=width, height=height)
    alpha = silhouette.render_alpha(posed_v, problem.faces, cam, tile_capacity=tile_capacity)
    err = jnp.linalg.norm(subject.project(posed_j, k, e) - kp[:, :2], axis=-1)
    conf = kp[:, 2]
    kp_loss = jnp.sum(conf * err ** 2 / (err ** 2 + sigma2)) / jnp.maximum(jnp.sum(conf), 1.0)
    kp_err = jnp.sum(conf * err) / jnp.maximum(jnp.sum(conf), 1e-6)
    return dict(sil=jnp.mean((alpha - mask) ** 2), kp=kp_loss, kp_err=kp_err, iou=silhouette.iou(alpha, mask))

  frames = jax.vmap(frame, in_axes=(0, 0, 0, None, 0, 0, 0, 0))
  arrays = tuple(jnp.asarray(a) for a in (masks, K, E, np.asarray(keypoints, np.float32)))

  def loss_fn(p):
    m = frames(p["glob"], p["body"], p["transl"], p["betas"], *arrays)
    smooth = 0.0
    if n >= 3:
      for x in (p["glob"], p["body"], p["transl"]):
        smooth = smooth + jnp.mean((x[2:] - 2 * x[1:-1] + x[:-2]) ** 2)
    return (float(cfg.keypoint_weight) * jnp.mean(m["kp"]) + float(cfg.silhouette_weight) * jnp.mean(m["sil"])
            + float(cfg.smooth_weight) * smooth + float(cfg.pose_weight) * jnp.mean(jnp.sum(p["body"] ** 2, (1, 2)))
            + float(cfg.shape_weight) * jnp.sum(p["betas"] ** 2))

  labels = {"glob": "rot", "body": "rot", "betas": "rot", "transl": "transl"}
  opt = optax.multi_transform({"rot": optax.adam(float(cfg.lr)), "transl": optax.adam(float(cfg.lr_transl))}, labels)
  state = opt.init(params)

  @jax.jit
  def step(p, s, coarse):
    loss, g = jax.value_and_grad(loss_fn)(p)
    g = {k: jnp.where(coarse & (k in ("body", "betas")), 0.0, v) for k, v in g.items()}
    updates, s = opt.update(g, s, p)
    return optax.apply_updates(p, updates), s, loss

  losses = []
  for i in tqdm.trange(int(cfg.steps), desc="sequence fit", unit="step", disable=not progress, dynamic_ncols=True):
    params, state, loss = step(params, state, jnp.asarray(i < int(cfg.global_steps)))
    losses.append(float(loss))
    if not np.isfinite(losses[-1]):
      raise FloatingPointError(f"sequence fit: the loss became {losses[-1]} at step {i}")
  m = jax.device_get(jax.jit(frames)(params["glob"], params["body"], params["transl"], params["betas"], *arrays))
  p = jax.device_get(params)
  pose = np.concatenate([np.asarray(p["glob"])[:, None], np.asarray(p["body"])], 1)
  return SequenceFit(pose=pose, transl=np.asarray(p["transl"]), betas=np.asarray(p["betas"]), iou=np.asarray(m["iou"]),
                     keypoint_error_px=np.asarray(m["kp_err"]), losses=losses, seconds=time.time() - start)
