"""Template -> subject: shape, bone lengths and a global offset fitted to a video's masks and joints.

The dataset's poses are SMPL-format poses of the subject's own skeleton; posed on the template's
skeleton they put the body off wherever the two differ. Here the template's rest body is changed,
never the poses: shape coefficients beta (the template's shape space), one length factor per bone
(the kinematic chain rescaled from the root, the mesh moved with its bones: body/skeleton.py) and an
offset of the skeleton within the mesh (where the root sits in the body; posing shows it). The objective, over a subset of training frames:

  silhouette  mean over pixels of (alpha - mask)^2, alpha the posed template rendered through the
              rasterizer (fit/silhouette.py), at most `max_size` pixels a side
  keypoints   Geman-McClure rho(r) = r^2 / (r^2 + sigma^2) of the projected joints' pixel error,
              confidence-weighted, where the dataset has 2D joints
  priors      factor_weight |log f|^2, symmetry_weight |log f_left - log f_right|^2, shape_weight |beta|^2

with Adam; the first `offset_steps` move only the offset (coarse to fine). When the dataset carries
the subject's rest joints (HumanNeRF's canonical_joints.pkl), the skeleton is not fitted but set:
the template is retargeted onto those joints and only the shape is fitted around them.
The result is a baked SMPL-format model (shape in v_template, joints exact) for the avatar.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Optional

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from fmgs_jax import body as body_lib
from fmgs_jax.body import skeleton as skeleton
from fmgs_jax.data import dataset as dataset_lib
from fmgs_jax.fit import silhouette
from fmgs_jax.geometry import subdivide
from fmgs_jax.render import Camera


@dataclasses.dataclass(frozen=True)
class FitFrames:
  """The frames a fit looks at, stacked (N frames, images at most max_size a side).

  Attributes:
    mask: (N, H, W) float32 in [0, 1].
    K: (N, 3, 3) intrinsics at that size; world_to_camera: (N, 4, 4).
    pose: (N, 24, 3) axis-angle; transl: (N, 3) metres.
    keypoints: (N, 24, 3) (x, y, confidence) pixels at that size (confidence 0 where absent).
    indices: (N,) sample indices in the dataset.
  """
  mask: np.ndarray
  K: np.ndarray
  world_to_camera: np.ndarray
  pose: np.ndarray
  transl: np.ndarray
  keypoints: np.ndarray
  indices: np.ndarray


def load_frames(ds, num_frames: int, max_size: int) -> FitFrames:
  """`num_frames` training samples spread evenly over the dataset, downscaled to `max_size`."""
  n = len(ds)
  idx = np.unique(np.linspace(0, n - 1, min(int(num_frames), n)).round().astype(int))
  h, w = ds.meta.height, ds.meta.width
  s = min(1.0, float(max_size) / max(h, w))
  hs, ws = max(1, int(round(h * s))), max(1, int(round(w * s)))
  out = {k: [] for k in ("mask", "K", "world_to_camera", "pose", "transl", "keypoints")}
  for i in idx:
    rec = ds.records[i]
    mask = dataset_lib.read_mask(rec.mask_path, rec.mask_nonzero)
    mask = cv2.resize(mask, (ws, hs), interpolation=cv2.INTER_AREA) if mask.shape != (hs, ws) else mask
    K, E = ds.camera(i)
    K = K.copy()
    K[0] *= ws / w
    K[1] *= hs / h
    kp = ds.keypoints(i)
    kp = np.zeros((24, 3), np.float32) if kp is None else kp.copy()
    kp[:, 0] *= ws / w
    kp[:, 1] *= hs / h
    out["mask"].append(mask)
    out["K"].append(K)
    out["world_to_camera"].append(E)
    out["pose"].append(np.asarray(rec.pose, np.float32).reshape(24, 3))
    out["transl"].append(np.asarray(rec.transl, np.float32).reshape(3))
    out["keypoints"].append(kp)
  return FitFrames(indices=idx, **{k: np.stack(v).astype(np.float32) for k, v in out.items()})


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
  """The template's linear pieces at the fit's resolution (NumPy, closed over).

  v0 (V', 3), shape (V', 3, S), bones (V', J), weights (V', J): the decimated rest mesh, its shape
  response, bone operator and skinning weights (barycentric transfer from the full mesh); faces (F', 3);
  j0 (J, 3), j_shape (J, 3, S): rest joints and their shape response; parents (J,).
  """
  v0: np.ndarray
  shape: np.ndarray
  bones: np.ndarray
  weights: np.ndarray
  faces: np.ndarray
  j0: np.ndarray
  j_shape: np.ndarray
  parents: np.ndarray


def make_problem(model: body_lib.BodyModel, num_faces: int) -> Problem:
  v = np.asarray(model.v_template, np.float32)
  faces = np.asarray(model.faces, np.int32)
  r = subdivide.resample(v, faces, int(num_faces))
  dec = lambda a: subdivide.transfer(np.asarray(a, np.float32), faces, r).astype(np.float32)
  reg = np.asarray(model.J_regressor, np.float64)
  shapedirs = np.asarray(model.shapedirs, np.float64)
  return Problem(v0=dec(v), shape=dec(shapedirs), bones=dec(skeleton.bone_operator(model)),
                 weights=dec(model.weights), faces=r.faces, j0=(reg @ v).astype(np.float32),
                 j_shape=np.einsum("jv,vcs->jcs", reg, shapedirs).astype(np.float32),
                 parents=np.asarray(model.parents))


def init_params(num_betas: int, num_joints: int) -> dict:
  return {"betas": jnp.zeros((num_betas,)), "factors": jnp.zeros((num_joints,)), "offset": jnp.zeros((3,))}


def factors_of(raw: jnp.ndarray, max_stretch: float) -> jnp.ndarray:
  """Bone-length factors in [1 / max_stretch, max_stretch] from unbounded parameters (0 -> 1)."""
  return jnp.exp(np.log(max_stretch) * jnp.tanh(raw))


def rest_body(problem: Problem, params: dict, max_stretch: float, fixed_joints: Optional[np.ndarray] = None):
  """(vertices (V', 3), joints (J, 3)) of the subject's rest body for `params`."""
  joints = jnp.asarray(problem.j0) + jnp.einsum("jcs,s->jc", jnp.asarray(problem.j_shape), params["betas"])
  v = jnp.asarray(problem.v0) + jnp.einsum("vcs,s->vc", jnp.asarray(problem.shape), params["betas"])
  if fixed_joints is not None:
    targets = jnp.asarray(fixed_joints, jnp.float32)
    return skeleton.retarget_vertices(v, jnp.asarray(problem.bones), joints, targets), targets
  targets = skeleton.bone_targets(joints, problem.parents, factors_of(params["factors"], max_stretch),
                                  joints[0] + params["offset"])
  # The offset moves the skeleton within the mesh (a translation of both would be a world translation,
  # which the data's transl already fixes): the mesh follows the bones' lengths, not the offset.
  return skeleton.retarget_vertices(v, jnp.asarray(problem.bones), joints, targets - params["offset"]), targets


def pose_body(problem: Problem, vertices, joints, pose, transl):
  """Posed (vertices (V', 3), joints (J, 3)) by SMPL kinematics on rest `joints` and LBS."""
  rotations = body_lib.axis_angle_to_matrix(pose)
  world = body_lib.lbs.global_transforms(problem.parents, rotations, joints)
  rot = world[:, :3, :3]
  trans = world[:, :3, 3] - jnp.einsum("jab,jb->ja", rot, joints) + transl
  transforms = world.at[:, :3, 3].set(trans)
  posed = body_lib.skin_points(vertices, jnp.asarray(problem.weights), transforms)
  return posed, world[:, :3, 3] + transl


def project(points, K, world_to_camera):
  """(P, 2) pixel positions of world points (P, 3)."""
  cam = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
  uv = cam @ K.T
  return uv[:, :2] / jnp.maximum(uv[:, 2:3], 1e-6)


def make_evaluate(problem: Problem, fit_config: Any, height: int, width: int, fixed_joints=None):
  """jitted (params, frame arrays) -> dict of per-frame silhouette loss, keypoint loss and error, IoU."""
  max_stretch = float(fit_config.max_stretch)

  def one(params, mask, K, E, pose, transl, kp):
    v, j = rest_body(problem, params, max_stretch, fixed_joints)
    posed_v, posed_j = pose_body(problem, v, j, pose, transl)
    cam = Camera(K=K, world_to_camera=E, width=width, height=height)
    alpha = silhouette.render_alpha(posed_v, problem.faces, cam, tile_capacity=int(fit_config.tile_capacity))
    sil = jnp.mean((alpha - mask) ** 2)
    err = jnp.linalg.norm(project(posed_j, K, E) - kp[:, :2], axis=-1)
    conf = kp[:, 2]
    sigma2 = float(fit_config.keypoint_sigma_px) ** 2
    kp_loss = jnp.sum(conf * err ** 2 / (err ** 2 + sigma2)) / jnp.maximum(jnp.sum(conf), 1.0)
    kp_err = jnp.sum(conf * err) / jnp.maximum(jnp.sum(conf), 1e-6)
    return dict(silhouette=sil, keypoints=kp_loss, keypoint_error_px=kp_err, iou=silhouette.iou(alpha, mask),
                has_keypoints=jnp.sum(conf) > 0)

  return jax.jit(jax.vmap(one, in_axes=(None, 0, 0, 0, 0, 0, 0)))


def _regularizer(params, fit_config, problem: Problem):
  logf = np.log(float(fit_config.max_stretch)) * jnp.tanh(params["factors"])
  names = body_lib.SMPL_JOINT_NAMES
  left = [j for j, n in enumerate(names) if n.startswith("left_")]
  right = [names.index("right_" + names[j][len("left_"):]) for j in left]
  return (float(fit_config.factor_weight) * jnp.sum(logf[1:] ** 2)
          + float(fit_config.symmetry_weight) * jnp.sum((logf[np.asarray(left)] - logf[np.asarray(right)]) ** 2)
          + float(fit_config.shape_weight) * jnp.sum(params["betas"] ** 2))


@dataclasses.dataclass(frozen=True)
class FitResult:
  """model: the fitted, baked body model; params: the fitted parameters; before / after: per-frame
  metrics (iou, keypoint_error_px, ...) of the template and the fit; seconds: wall time."""
  model: body_lib.BodyModel
  params: dict
  before: dict
  after: dict
  seconds: float
  losses: list


def fit_subject(template: body_lib.BodyModel, frames: FitFrames, fit_config: Any,
                rest_joints: Optional[np.ndarray] = None, progress: bool = True) -> FitResult:
  """Fits shape, bone factors and offset (or, with `rest_joints` (J, 3), shape around those joints).

  Args:
    template: the body model in the data's convention (body.model_from_config).
    frames: `load_frames` of the training split.
    fit_config: `config.fit`.
    rest_joints: the subject's known rest joints, or None.
  """
  start = time.time()
  problem = make_problem(template, fit_config.num_faces)
  n, height, width = frames.mask.shape
  evaluate = make_evaluate(problem, fit_config, height, width, rest_joints)
  arrays = tuple(jnp.asarray(a) for a in (frames.mask, frames.K, frames.world_to_camera, frames.pose,
                                          frames.transl, frames.keypoints))
  params = init_params(problem.shape.shape[2], problem.j0.shape[0])
  before = jax.device_get(evaluate(params, *arrays))
  opt = optax.multi_transform(
      {k: optax.adam(float(fit_config.lr[k])) for k in ("betas", "factors", "offset")},
      {"betas": "betas", "factors": "factors", "offset": "offset"})
  state = opt.init(params)
  batch = min(int(fit_config.batch_size), n)
  sil_w, kp_w = float(fit_config.silhouette_weight), float(fit_config.keypoint_weight)

  def loss_fn(p, *batch_arrays):
    m = evaluate(p, *batch_arrays)
    return (sil_w * jnp.mean(m["silhouette"]) + kp_w * jnp.mean(m["keypoints"])
            + _regularizer(p, fit_config, problem))

  @jax.jit
  def step(p, s, i, idx):
    loss, g = jax.value_and_grad(loss_fn)(p, *(a[idx] for a in arrays))
    coarse = i < int(fit_config.offset_steps)
    g = {k: jnp.where(coarse & (k != "offset"), 0.0, v) for k, v in g.items()}
    updates, s = opt.update(g, s, p)
    return optax.apply_updates(p, updates), s, loss

  rng = np.random.default_rng(int(fit_config.seed))
  losses = []
  for i in tqdm.trange(int(fit_config.steps), desc="subject fit", unit="step", disable=not progress,
                       dynamic_ncols=True):
    idx = jnp.asarray(rng.choice(n, size=batch, replace=False))
    params, state, loss = step(params, state, i, idx)
    losses.append(float(loss))
    if not np.isfinite(losses[-1]):
      raise FloatingPointError(f"subject fit: the loss became {losses[-1]} at step {i}")
  after = jax.device_get(evaluate(params, *arrays))
  return FitResult(model=bake(template, params, fit_config, rest_joints), params=jax.device_get(params),
                   before=before, after=after, seconds=time.time() - start, losses=losses)


def bake(template: body_lib.BodyModel, params: dict, fit_config: Any,
         rest_joints: Optional[np.ndarray] = None) -> body_lib.BodyModel:
  """The full-resolution model of the fitted subject: shape baked into v_template (no shape space left),
  mesh moved with its bones, regressor exact on the fitted joints."""
  v = np.asarray(body_lib.rest_vertices(template, jnp.asarray(params["betas"])), np.float64)
  reg = np.asarray(template.J_regressor, np.float64)
  joints = reg @ v
  shift = np.zeros(3)
  if rest_joints is not None:
    targets = np.asarray(rest_joints, np.float64)
  else:
    shift = np.asarray(params["offset"], np.float64)
    f = np.asarray(factors_of(jnp.asarray(params["factors"]), float(fit_config.max_stretch)), np.float64)
    targets = skeleton.bone_targets(joints, np.asarray(template.parents), f,
                                        joints[0] + np.asarray(params["offset"], np.float64))
  new = skeleton.retarget_vertices(v, np.asarray(skeleton.bone_operator(template), np.float64), joints,
                                       np.asarray(targets) - shift)
  return template.replace(v_template=new.astype(np.float32),
                          shapedirs=np.zeros((new.shape[0], 3, 0), np.float32),
                          J_regressor=skeleton.exact_regressor(reg, new, np.asarray(targets)).astype(np.float32))
