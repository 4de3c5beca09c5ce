"""Per-frame pose and one body for a sequence, fitted to 2D keypoints and person masks (JAX, jitted).

Unknowns: per frame the global orientation (3), translation (3) and body pose (23 x 3, axis-angle);
for the sequence one shape beta and one length factor per bone (a person's proportions are not the
template's; without them the fit tilts too-long legs in depth to match their image length). The
objective, over all frames at once:

  keypoints   Geman-McClure rho(r) = r^2 / (r^2 + sigma^2) of the projected joints' pixel error,
              confidence-weighted (a detector's dropped joints have confidence 0)
  silhouette  mean over pixels of (alpha - mask)^2, alpha the posed body through the rasterizer
              (fit/silhouette.py); only in the last `silhouette_steps`, at a smaller step
  smoothness  squared second differences over time of orientation (as matrices), pose and
              translation; squared first differences of the body pose (velocity: a pose seen from
              several angles in neighbouring frames is seen in depth)
  priors      a pull of the body pose to rest, hinges (knees and elbows bend one way about one
              axis), upright (the body's vertical axis near the camera's), shape and bone factors
              near the template's, left and right bones alike

Coarse to fine: the first `global_steps` move only orientation and translation, pulled by the
joints the rest pose fits (torso, legs, head); then the body fits keypoints alone (cheap: no
rendering); the silhouettes come last. Initialisation: translation from each mask's box and the
focal length (depth = focal x body height / box height); orientation upright, turned about the
vertical by a yaw search over the whole sequence (`best_yaw`: a mirrored yaw fits one frame's
keypoints about as well, the sequence's frames together do not); body pose at rest.

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
from fmgs_jax.body import skeleton
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
  c.steps = 600  # Adam steps in all
  c.global_steps = 60  # first steps move only global orientation and translation
  c.silhouette_steps = 40  # last steps add the silhouette term (the rasterizer); the others fit keypoints only
  c.num_faces = 1500  # faces of the mesh rendered for the silhouettes
  c.tile_capacity = 128  # surfels per 8-pixel tile in the silhouette renders
  c.batch_size = 0  # frames rendered per silhouette step (0 = all)
  c.seed = 0  # draws the silhouette steps' frames
  c.keypoint_weight = 1.0  # robust reprojection term
  c.keypoint_sigma_px = 8.0  # pixels at which a joint's error stops counting fully
  c.silhouette_weight = 20.0  # mean squared (alpha - mask)
  c.smooth_weight = 10.0  # squared second differences of orientation, pose and translation over time
  c.velocity_weight = 300.0  # squared first differences of the body pose over time (frames seen from other angles agree)
  c.pose_weight = 1e-2  # pull of the body pose to rest
  c.hinge_weight = 1.0  # knees and elbows bend one way, about one axis
  c.upright_weight = 1.0  # pull of the body's vertical axis to the camera's (people mostly stand)
  c.shape_weight = 1e-3  # pull of the shape to the mean
  c.max_stretch = 1.3  # bone-length factors stay in [1 / this, this] (a person's proportions are not the template's)
  c.factor_weight = 1e-2  # pull of log bone factors to 0 (the template's proportions)
  c.symmetry_weight = 1.0  # pull of left and right bone factors together
  c.lr = 0.03  # Adam step for orientation, pose, shape and bone factors
  c.lr_transl = 0.01  # Adam step for translation, metres
  c.silhouette_lr_scale = 0.3  # both steps times this in the silhouette phase (its gradients are noisier)
  c.body_height_m = 1.7  # assumed standing height for the initial depth
  c.yaw_candidates = 36  # turns about the vertical axis tried per frame for the initial orientation
  c.yaw_turn_weight = 0.5  # cost of turning between neighbouring frames in the yaw search, x (1 - cos)
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


# Joints whose rest-pose positions decide the yaw search and the first steps: torso, shoulders, legs,
# feet and head (elbows and wrists move the most).
YAW_JOINTS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17)

# Hinge joints: (SMPL joint, bending axis, sign of the bend a body can make). Knees flex one way about
# x, elbows one way about y (mirrored left/right); the other two axes of a hinge barely move.
HINGES = (("left_knee", 0, 1.0), ("right_knee", 0, 1.0), ("left_elbow", 1, -1.0), ("right_elbow", 1, 1.0))


def yaw_costs(rest_joints: np.ndarray, orientation: np.ndarray, keypoints: np.ndarray, K: np.ndarray,
              E: np.ndarray, transl: np.ndarray, angles: np.ndarray, sigma_px: float) -> np.ndarray:
  """(N, A) robust keypoint cost of the rigid rest skeleton turned by each of `angles` (radians) about
  the body's vertical axis from `orientation` (N, 3), each frame's image offset removed (the box
  centre is not the root). rest_joints (J, 3); keypoints (N, J, 3); K (N, 3, 3); E (N, 4, 4); transl (N, 3)."""
  rel = rest_joints - rest_joints[0]
  turns = Rotation.from_rotvec(np.outer(angles, [0.0, 1.0, 0.0])).as_matrix()  # (A, 3, 3)
  base = Rotation.from_rotvec(orientation).as_matrix()  # (N, 3, 3)
  rot = np.einsum("nab,kbc->nkac", base, turns)
  world = np.einsum("nkac,jc->nkja", rot, rel) + (rest_joints[0] + transl)[:, None, None]
  cam = np.einsum("nab,nkjb->nkja", E[:, :3, :3], world) + E[:, None, None, :3, 3]
  uv = np.einsum("nab,nkjb->nkja", K, cam)
  err = uv[..., :2] / np.maximum(uv[..., 2:3], 1e-6) - keypoints[:, None, :, :2]
  w = keypoints[:, None, :, 2] * np.isin(np.arange(len(rest_joints)), YAW_JOINTS)
  wsum = np.maximum(w.sum(-1, keepdims=True), 1e-6)
  err = err - np.sum(w[..., None] * err, -2, keepdims=True) / wsum[..., None]
  r2 = np.sum(err ** 2, -1)
  return np.sum(w * r2 / (r2 + sigma_px ** 2), -1) / wsum[..., 0]


def unwrap_yaw(costs: np.ndarray, angles: np.ndarray, turn_weight: float) -> np.ndarray:
  """(N,) indices into `angles`: the path through frames minimising the sum of `costs` (N, A) plus
  turn_weight x (1 - cos) of each frame-to-frame turn (Viterbi). A mirrored yaw (+theta for -theta)
  fits the keypoints of one frame almost as well; over a path the evidence of all frames adds up, and
  a path cannot flip between the two without paying for the turn."""
  step = turn_weight * (1.0 - np.cos(angles[:, None] - angles[None, :]))  # (from, to)
  total = costs[0].copy()
  back = np.zeros(costs.shape, np.int64)
  for i in range(1, len(costs)):
    cand = total[:, None] + step
    back[i] = np.argmin(cand, 0)
    total = cand[back[i], np.arange(len(angles))] + costs[i]
  path = np.zeros(len(costs), np.int64)
  path[-1] = int(np.argmin(total))
  for i in range(len(costs) - 1, 0, -1):
    path[i - 1] = back[i, path[i]]
  return path


def best_yaw(problem, orientation: np.ndarray, transl: np.ndarray, keypoints: np.ndarray, K: np.ndarray,
             E: np.ndarray, candidates: int, sigma_px: float = 8.0, turn_weight: float = 0.5) -> np.ndarray:
  """(N, 3) per-frame orientation: `orientation` turned about the body's vertical axis by one of
  `candidates` evenly spaced angles, chosen jointly over the frames (`yaw_costs`, `unwrap_yaw`): a
  person seen from behind is not a local step away from one seen from the front."""
  if candidates <= 1:
    return orientation
  angles = np.arange(candidates) * 2 * np.pi / candidates
  costs = yaw_costs(np.asarray(problem.j0, np.float64), orientation, keypoints, K, E, transl, angles, sigma_px)
  path = unwrap_yaw(costs, angles, turn_weight)
  turns = Rotation.from_rotvec(np.outer(angles[path], [0.0, 1.0, 0.0]))
  return (Rotation.from_rotvec(orientation) * turns).as_rotvec().astype(np.float32)


def hinge_penalty(body_pose: jnp.ndarray) -> jnp.ndarray:
  """(...) sum of squared bends against a hinge's direction plus its off-axis rotation, body_pose
  (..., 23, 3) axis-angle (SMPL joints 1..23)."""
  total = 0.0
  for name, axis, sign in HINGES:
    r = body_pose[..., body_lib.SMPL_JOINT_NAMES.index(name) - 1, :]
    total = total + jax.nn.relu(-sign * r[..., axis]) ** 2
    total = total + jnp.sum(r ** 2, -1) - r[..., axis] ** 2
  return total


@dataclasses.dataclass(frozen=True)
class SequenceFit:
  """pose (N, 24, 3), transl (N, 3), betas (S,): the fit; iou, keypoint_error_px (N,): per frame;
  losses: per step; seconds: wall time; bone_factors (24,): the fitted bone-length factors
  (body/skeleton.py's `bone_targets`); joints (N, 24, 3) world metres: the posed joints of the
  fitted skeleton (shape and bone factors), what the keypoints were fitted with."""
  pose: np.ndarray
  transl: np.ndarray
  betas: np.ndarray
  iou: np.ndarray
  keypoint_error_px: np.ndarray
  losses: list
  seconds: float
  bone_factors: Optional[np.ndarray] = None
  joints: Optional[np.ndarray] = None


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
    init_pose: optional (N, 24, 3) starting poses (else rest, turned by the yaw search).
  """
  start = time.time()
  cfg = cfg or default_config()
  masks = np.asarray(masks, np.float32)
  keypoints = np.asarray(keypoints, np.float32)
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
    pose0[:, 0] = best_yaw(problem, pose0[:, 0], transl0, keypoints, K, E, int(cfg.yaw_candidates),
                           float(cfg.keypoint_sigma_px), float(cfg.yaw_turn_weight))
  params = {"glob": jnp.asarray(pose0[:, 0]), "body": jnp.asarray(pose0[:, 1:]), "transl": jnp.asarray(transl0),
            "betas": jnp.zeros((problem.shape.shape[2],)), "factors": jnp.zeros((24,))}
  sigma2 = float(cfg.keypoint_sigma_px) ** 2
  tile_capacity = int(cfg.tile_capacity)
  v0, vs = jnp.asarray(problem.v0), jnp.asarray(problem.shape)
  j0, js = jnp.asarray(problem.j0), jnp.asarray(problem.j_shape)

  max_stretch = float(cfg.max_stretch)
  bones = jnp.asarray(problem.bones)
  names = body_lib.SMPL_JOINT_NAMES
  left = np.asarray([j for j, nm in enumerate(names) if nm.startswith("left_")])
  right = np.asarray([names.index("right_" + names[j][len("left_"):]) for j in left])

  def rest_joints(betas, factors):
    """(J, 3) rest joints of shape `betas` with the bones scaled by `factors` (unbounded)."""
    j = j0 + jnp.einsum("jcs,s->jc", js, betas)
    return skeleton.bone_targets(j, problem.parents, subject.factors_of(factors, max_stretch), j[0])

  def posed_joints(p_glob, p_body, transl, betas, factors):
    j = rest_joints(betas, factors)
    rotations = body_lib.axis_angle_to_matrix(jnp.concatenate([p_glob[None], p_body], 0))
    return body_lib.lbs.global_transforms(problem.parents, rotations, j)[:, :3, 3] + transl

  def keypoint_terms(p_glob, p_body, transl, betas, factors, k, e, kp, joint_weight):
    err = jnp.linalg.norm(subject.project(posed_joints(p_glob, p_body, transl, betas, factors), k, e) - kp[:, :2],
                          axis=-1)
    conf = kp[:, 2] * joint_weight
    loss = jnp.sum(conf * err ** 2 / (err ** 2 + sigma2)) / jnp.maximum(jnp.sum(conf), 1.0)
    return loss, jnp.sum(conf * err) / jnp.maximum(jnp.sum(conf), 1e-6)

  def alpha_of(p_glob, p_body, transl, betas, factors, k, e):
    j = j0 + jnp.einsum("jcs,s->jc", js, betas)
    targets = rest_joints(betas, factors)
    v = skeleton.retarget_vertices(v0 + jnp.einsum("vcs,s->vc", vs, betas), bones, j, targets)
    posed_v, _ = subject.pose_body(problem, v, targets, jnp.concatenate([p_glob[None], p_body], 0), transl)
    cam = Camera(K=k, world_to_camera=e, width=width, height=height)
    return silhouette.render_alpha(posed_v, problem.faces, cam, tile_capacity=tile_capacity)

  kp_frames = jax.vmap(keypoint_terms, in_axes=(0, 0, 0, None, None, 0, 0, 0, None))
  alpha_frames = jax.vmap(alpha_of, in_axes=(0, 0, 0, None, None, 0, 0))
  masks_j, K_j, E_j, kp_j = (jnp.asarray(a) for a in (masks, K, E, keypoints))
  # While the body is held at rest, only the joints rest fits (torso, legs, head) pull the orientation:
  # rest arms against posed arms' keypoints would tilt the whole body.
  rigid = jnp.asarray(np.isin(np.arange(24), YAW_JOINTS), jnp.float32)
  up = jnp.asarray(Rotation.from_rotvec(np.stack([facing_orientation(e) for e in E])).as_matrix()[:, :, 1],
                   jnp.float32)

  max_stretch_log = float(np.log(max_stretch))

  def second_difference(x):
    return jnp.mean((x[2:] - 2 * x[1:-1] + x[:-2]) ** 2) if n >= 3 else 0.0

  def loss_fn(p, coarse, idx, with_silhouette):
    kp_loss, _ = kp_frames(p["glob"], p["body"], p["transl"], p["betas"], p["factors"], K_j, E_j, kp_j,
                           jnp.where(coarse, rigid, 1.0))
    r_glob = body_lib.axis_angle_to_matrix(p["glob"])
    # Orientation smoothness on matrices: axis-angle wraps at 180 degrees, a turning body passes it.
    smooth = second_difference(r_glob) + second_difference(p["body"]) + second_difference(p["transl"])
    velocity = jnp.mean((p["body"][1:] - p["body"][:-1]) ** 2) if n >= 2 else 0.0
    loss = (float(cfg.keypoint_weight) * jnp.mean(kp_loss) + float(cfg.smooth_weight) * smooth
            + float(cfg.velocity_weight) * velocity
            + float(cfg.pose_weight) * jnp.mean(jnp.sum(p["body"] ** 2, (1, 2)))
            + float(cfg.hinge_weight) * jnp.mean(hinge_penalty(p["body"]))
            + float(cfg.upright_weight) * jnp.mean(jnp.sum((r_glob[:, :, 1] - up) ** 2, -1))
            + float(cfg.shape_weight) * jnp.sum(p["betas"] ** 2))
    logf = max_stretch_log * jnp.tanh(p["factors"])
    loss = loss + (float(cfg.factor_weight) * jnp.sum(logf[1:] ** 2)
                   + float(cfg.symmetry_weight) * jnp.sum((logf[left] - logf[right]) ** 2))
    if with_silhouette:
      alpha = alpha_frames(p["glob"][idx], p["body"][idx], p["transl"][idx], p["betas"], p["factors"], K_j[idx], E_j[idx])
      loss = loss + float(cfg.silhouette_weight) * jnp.mean((alpha - masks_j[idx]) ** 2)
    return loss

  labels = {"glob": "rot", "body": "rot", "betas": "rot", "factors": "rot", "transl": "transl"}
  steps, sil_steps = int(cfg.steps), min(int(cfg.silhouette_steps), int(cfg.steps))
  scale = {steps - sil_steps: float(cfg.silhouette_lr_scale)}
  opt = optax.multi_transform(
      {"rot": optax.adam(optax.piecewise_constant_schedule(float(cfg.lr), scale)),
       "transl": optax.adam(optax.piecewise_constant_schedule(float(cfg.lr_transl), scale))}, labels)
  state = opt.init(params)

  def step(p, s, coarse, idx, with_silhouette):
    loss, g = jax.value_and_grad(loss_fn)(p, coarse, idx, with_silhouette)
    g = {k: jnp.where(coarse & (k in ("body", "betas", "factors")), 0.0, v) for k, v in g.items()}
    updates, s = opt.update(g, s, p)
    return optax.apply_updates(p, updates), s, loss

  step = jax.jit(step, static_argnums=4)
  batch = n if int(cfg.batch_size) <= 0 else min(int(cfg.batch_size), n)
  rng = np.random.default_rng(int(cfg.seed))
  all_frames = jnp.arange(n)
  losses = []
  for i in tqdm.trange(steps, desc="sequence fit", unit="step", disable=not progress, dynamic_ncols=True):
    with_silhouette = i >= steps - sil_steps
    idx = jnp.asarray(np.sort(rng.choice(n, batch, replace=False))) if with_silhouette and batch < n else all_frames
    params, state, loss = step(params, state, jnp.asarray(i < int(cfg.global_steps)), idx, with_silhouette)
    losses.append(float(loss))
    if not np.isfinite(losses[-1]):
      raise FloatingPointError(f"sequence fit: the loss became {losses[-1]} at step {i}")

  @jax.jit
  def report(p):
    _, kp_err = kp_frames(p["glob"], p["body"], p["transl"], p["betas"], p["factors"], K_j, E_j, kp_j, 1.0)
    alpha = alpha_frames(p["glob"], p["body"], p["transl"], p["betas"], p["factors"], K_j, E_j)
    joints = jax.vmap(posed_joints, in_axes=(0, 0, 0, None, None))(p["glob"], p["body"], p["transl"], p["betas"],
                                                                    p["factors"])
    return kp_err, jax.vmap(silhouette.iou)(alpha, masks_j), joints, subject.factors_of(p["factors"], max_stretch)

  kp_err, iou, joints, factors = jax.device_get(report(params))
  p = jax.device_get(params)
  pose = np.concatenate([np.asarray(p["glob"])[:, None], np.asarray(p["body"])], 1)
  return SequenceFit(pose=pose, transl=np.asarray(p["transl"]), betas=np.asarray(p["betas"]), iou=np.asarray(iou),
                     keypoint_error_px=np.asarray(kp_err), losses=losses, seconds=time.time() - start,
                     bone_factors=np.asarray(factors), joints=np.asarray(joints))
