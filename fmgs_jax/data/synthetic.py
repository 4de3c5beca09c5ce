"""The built-in synthetic capture: a clothed-looking subject, rendered with ground truth, no download.

The subject is the built-in body template (`fmgs_jax.body.builtin_body_model()`,
mannequin-x `wooden` in SMPL format) with a random body shape from its shape
space, a smooth "clothing" displacement of up to a few centimetres along the
posed surface normals plus millimetre wrinkles (functions of the canonical surface
point, so the clothing moves with the body but is not the template), and a procedural colour
texture with high-frequency detail (a function of the canonical surface point,
so it is continuous across triangles and consistent across frames).

Motions: `turntable` (A-pose turning once around the vertical axis with a
slight sway, like PeopleSnapshot) or `varied` (ZJU-like procedural joint-angle
trajectories within plausible limits). Held-out poses are always `varied`
trajectories drawn with other phases and frequencies.

Splits, each a folder in the PeopleSnapshot layout plus ground-truth extras
(see `people_snapshot.py`), under DATA_ROOT/synthetic/:

    train/        the training motion, one camera (camera 0)
    novel_view/   `num_novel_view_frames` training frames from each held-out camera (1..C)
    novel_pose/   held-out poses from the training camera

Rendering is ray casting through trimesh + Embree against the ground-truth
triangle mesh (never the project's own rasterizer), one ray per pixel centre
for mask, depth, normals and part ids, `supersample`^2 rays per pixel for the
colour. Generation is deterministic from `c.data.synthetic` and cached: it is
redone only when the folder is missing or `generation.json` records another
configuration.

Layering exception: the data layer imports nothing above it, except that
`generate` imports `fmgs_jax.body` (lazily, inside `builtin_body`) to pose the
template. Reading a generated capture does not import the body package.
"""

import dataclasses
import json
import os
import shutil
import time
from typing import Any, Callable, Optional

import imageio.v3 as iio
import numpy as np
import tqdm
import trimesh
from trimesh.ray import ray_pyembree

from fmgs_jax.body.model import SMPL_JOINT_NAMES
from fmgs_jax.data import cameras
from fmgs_jax.data import dataset as dataset_lib
from fmgs_jax.data import people_snapshot
from fmgs_jax.data import validation

FORMAT_VERSION = 1
SPLITS = ("train", "novel_view", "novel_pose")


@dataclasses.dataclass(frozen=True)
class Body:
  """What the generator needs from a body model.

  Attributes:
    faces: (F, 3) int triangle indices.
    vertex_parts: (V,) int part id of each vertex (argmax skinning weight).
    part_names: names of the part ids.
    num_betas: number of shape coefficients.
    pose: (betas (S,), pose (24, 3), transl (3,)) -> (V, 3) posed vertices, metres.
    joints: (betas, pose, transl) -> (24, 3) posed joints, metres (None: no keypoints).
    truth: what the capture records about its subject in meta.json ("subject"), JSON-ready.
  """
  faces: np.ndarray
  vertex_parts: np.ndarray
  part_names: tuple[str, ...]
  num_betas: int
  pose: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
  joints: Optional[Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = None
  truth: Optional[dict] = None


def _pair_factors(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
  """(24,) bone-length factors in [low, high], the same on a left/right pair (bodies are near symmetric)."""
  f = rng.uniform(low, high, size=24)
  for j, name in enumerate(SMPL_JOINT_NAMES):
    if name.startswith("right_"):
      f[j] = f[SMPL_JOINT_NAMES.index("left_" + name[len("right_"):])]
  f[0] = 1.0
  return f


def builtin_body(cfg: Any = None, betas: Optional[np.ndarray] = None) -> Body:
  """The capture's subject, through `fmgs_jax.body` (the one upward import of the data layer).

  The built-in template placed in `cfg.convention`'s frame (fmgs_jax/body/convention.py), shaped by
  `betas`, then made into a subject who is not the template: its own skeleton (each bone's length
  times a factor within +-`bone_factor_range`, the same on a left/right pair; the root moved by
  `root_offset` x U(0.5, 1) metres in a random direction relative to the mesh, as SMPL's pelvis sits
  elsewhere in the body than another model's; the mesh retargeted onto the bones),
  shape baked in. Poses are then stored for that skeleton, as a real dataset stores SMPL poses for its
  subject's. With cfg None, or convention smplx and both perturbations 0, the subject is the template
  itself, posed with `betas` (the capture made before subjects existed).
  """
  from fmgs_jax import body  # pylint: disable=g-import-not-at-top
  model = body.builtin_body_model()
  weights = np.asarray(model.weights)
  # Part ids are the joints in SMPL order (the body contract), named as the texture expects.
  names = SMPL_JOINT_NAMES if weights.shape[1] == 24 else tuple(f"joint_{j}" for j in range(weights.shape[1]))
  common = dict(faces=np.asarray(model.faces, np.int64), vertex_parts=np.argmax(weights, axis=1),
                part_names=names, num_betas=int(np.asarray(model.shapedirs).shape[-1]))
  perturbed = cfg is not None and (cfg.convention != "smplx" or cfg.bone_factor_range > 0 or cfg.root_offset > 0)
  truth = None
  if perturbed:
    placed = body.place_template(model, cfg.convention)
    betas = np.zeros(common["num_betas"]) if betas is None else np.asarray(betas)
    shaped = np.asarray(body.rest_vertices(placed, np.asarray(betas, np.float32)), np.float64)
    baked = placed.replace(v_template=shaped.astype(np.float32),
                           shapedirs=np.zeros((shaped.shape[0], 3, 0), np.float32))
    joints = body.rest_joints(baked)
    rng = np.random.default_rng([int(cfg.seed), 2])  # its own stream: the other draws stay as they were
    r = float(cfg.bone_factor_range)
    factors = _pair_factors(rng, 1.0 - r, 1.0 + r)
    direction = rng.normal(size=3)
    offset = float(cfg.root_offset) * rng.uniform(0.5, 1.0) * direction / np.linalg.norm(direction)
    targets = body.bone_targets(joints, np.asarray(placed.parents), factors, joints[0] + offset)
    model = body.retarget(baked, targets, root_shift=offset)
    truth = dict(convention=cfg.convention, rest_joints=np.asarray(targets).tolist(),
                 bone_factors=factors.tolist(), root_offset=offset.tolist(),
                 template_rest_joints=body.rest_joints(placed).tolist())

  def run(b, theta, transl):
    return body.forward(model, betas=np.zeros(0, np.float32) if perturbed else np.asarray(b, np.float32),
                        pose=np.asarray(theta, np.float32), transl=np.asarray(transl, np.float32))

  return Body(pose=lambda b, t, x: np.asarray(run(b, t, x).vertices, np.float64),
              joints=lambda b, t, x: np.asarray(run(b, t, x).joints, np.float64), truth=truth, **common)


# ----------------------------------------------------------------------------- motions

def _joint(name: str) -> int:
  return SMPL_JOINT_NAMES.index(name)


# (joint, axis, low, high) radians: plausible ranges of the SMPL degrees of freedom that move (axes in
# the T-pose frame: x flexes legs, y bends elbows, z raises arms).
_LIMITS = (
    ("left_hip", 0, -1.1, 0.3), ("right_hip", 0, -1.1, 0.3),
    ("left_hip", 2, -0.1, 0.35), ("right_hip", 2, -0.35, 0.1),
    ("left_knee", 0, 0.0, 1.5), ("right_knee", 0, 0.0, 1.5),
    ("left_ankle", 0, -0.3, 0.4), ("right_ankle", 0, -0.3, 0.4),
    ("spine1", 0, -0.15, 0.35), ("spine2", 1, -0.3, 0.3), ("spine3", 2, -0.15, 0.15),
    ("neck", 0, -0.3, 0.3), ("head", 1, -0.5, 0.5),
    ("left_shoulder", 2, -1.2, 0.3), ("right_shoulder", 2, -0.3, 1.2),
    ("left_shoulder", 1, -0.7, 0.7), ("right_shoulder", 1, -0.7, 0.7),
    ("left_elbow", 1, -1.6, 0.0), ("right_elbow", 1, 0.0, 1.6),
    ("left_wrist", 0, -0.4, 0.4), ("right_wrist", 0, -0.4, 0.4),
)


def a_pose() -> np.ndarray:
  """(24, 3) A-pose: arms lowered about 50 degrees from the T-pose."""
  pose = np.zeros((24, 3))
  pose[_joint("left_shoulder"), 2] = -0.9
  pose[_joint("right_shoulder"), 2] = 0.9
  return pose


def turntable_motion(n: int, rng: np.random.Generator) -> np.ndarray:
  """(n, 24, 3) one turn around the vertical (y) axis in A-pose, with a slight sway."""
  t = np.arange(n) / n
  poses = np.repeat(a_pose()[None], n, axis=0)
  poses[:, 0, 1] = 2 * np.pi * t
  phase = rng.uniform(0, 2 * np.pi, size=4)
  poses[:, _joint("left_shoulder"), 2] += 0.08 * np.sin(2 * np.pi * 3 * t + phase[0])
  poses[:, _joint("right_shoulder"), 2] += 0.08 * np.sin(2 * np.pi * 3 * t + phase[1])
  poses[:, _joint("spine2"), 1] += 0.05 * np.sin(2 * np.pi * 2 * t + phase[2])
  poses[:, _joint("head"), 1] += 0.1 * np.sin(2 * np.pi * 2 * t + phase[3])
  return poses


def varied_motion(n: int, rng: np.random.Generator) -> np.ndarray:
  """(n, 24, 3) ZJU-like motion: every moving degree of freedom follows two random sinusoids.

  Values stay inside `_LIMITS`; the body also turns slowly (+-70 degrees) so
  the camera sees it from changing sides.
  """
  t = np.arange(n) / max(n, 1)
  poses = np.zeros((n, 24, 3))
  for name, axis, lo, hi in _LIMITS:
    f = rng.uniform(0.5, 2.0, size=2)
    ph = rng.uniform(0, 2 * np.pi, size=2)
    s = 0.6 * np.sin(2 * np.pi * f[0] * t + ph[0]) + 0.4 * np.sin(2 * np.pi * f[1] * t + ph[1])
    poses[:, _joint(name), axis] = lo + (hi - lo) * (0.5 + 0.5 * s)
  poses[:, 0, 1] = 1.2 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t + rng.uniform(0, 2 * np.pi))
  return poses


# ----------------------------------------------------------------------------- appearance

@dataclasses.dataclass(frozen=True)
class Appearance:
  """Procedural subject: clothing displacement and colour, functions of the canonical surface point."""
  clothing_w: np.ndarray  # (K, 3) cycles per metre
  clothing_phase: np.ndarray  # (K,)
  amplitude: float
  palette: np.ndarray  # (4, 3) shirt, trousers, skin, shoes
  texture_w: np.ndarray  # (K, 3) cycles per metre
  texture_phase: np.ndarray  # (K,)
  stripe_frequency: float
  wrinkle_w: np.ndarray  # (K, 3) cycles per metre
  wrinkle_phase: np.ndarray  # (K,)
  wrinkle_amplitude: float


_SKIN = ("head", "neck", "left_wrist", "right_wrist", "left_hand", "right_hand", "left_elbow", "right_elbow")
_TROUSERS = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee")
_SHOES = ("left_ankle", "right_ankle", "left_foot", "right_foot")


def make_appearance(cfg: Any, rng: np.random.Generator) -> Appearance:
  """The subject drawn from `rng`; the wrinkles from a generator of their own, so that a capture
  without them (wrinkle_amplitude 0) is the one made before they existed."""
  k = 6
  dirs = rng.normal(size=(k, 3))
  dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
  tdirs = rng.normal(size=(12, 3))
  tdirs /= np.linalg.norm(tdirs, axis=1, keepdims=True)
  tfreq = cfg.texture_frequency * rng.uniform(0.3, 1.0, size=(12, 1))
  palette = np.stack([rng.uniform(0.15, 0.9, 3), rng.uniform(0.1, 0.6, 3),
                      np.array([0.85, 0.65, 0.5]) * rng.uniform(0.8, 1.1), rng.uniform(0.05, 0.3, 3)])
  return Appearance(
      clothing_w=dirs * cfg.clothing_frequency * rng.uniform(0.5, 1.0, size=(k, 1)),
      clothing_phase=rng.uniform(0, 2 * np.pi, size=k), amplitude=float(cfg.clothing_amplitude),
      palette=np.clip(palette, 0, 1), texture_w=tdirs * tfreq,
      texture_phase=rng.uniform(0, 2 * np.pi, size=12),
      stripe_frequency=float(cfg.texture_frequency) * 0.25,
      **_wrinkles(cfg, np.random.default_rng([int(cfg.seed), 1])))


def _wrinkles(cfg: Any, rng: np.random.Generator, k: int = 8) -> dict[str, Any]:
  dirs = rng.normal(size=(k, 3))
  dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
  return dict(wrinkle_w=dirs * cfg.wrinkle_frequency * rng.uniform(0.7, 1.0, size=(k, 1)),
              wrinkle_phase=rng.uniform(0, 2 * np.pi, size=k), wrinkle_amplitude=float(cfg.wrinkle_amplitude))


def _sines(canonical: np.ndarray, w: np.ndarray, phase: np.ndarray) -> np.ndarray:
  """(N, K) sin(2 pi w_k . x + phase_k) of canonical points (N, 3), waves w (K, 3) in cycles per metre."""
  return np.sin(2 * np.pi * canonical @ w.T + phase)


def clothing_offset(app: Appearance, canonical: np.ndarray) -> np.ndarray:
  """(V,) displacement along the normal, metres, of canonical points (V, 3): clothing plus wrinkles.

  Clothing: in [0, amplitude], smooth (a few cycles per metre), seen mostly in the silhouettes.
  Wrinkles: zero-mean, RMS `wrinkle_amplitude`, at `wrinkle_frequency`; at the defaults they tilt the
  surface normal by ~10 deg RMS while moving the surface by less than a pixel, so they show in the
  normals (and faintly in the shading) far more than in masks or depth.
  """
  clothing = app.amplitude * np.clip(0.5 + _sines(canonical, app.clothing_w, app.clothing_phase).mean(axis=1),
                                     0.0, 1.0)
  k = len(app.wrinkle_phase)
  wrinkles = _sines(canonical, app.wrinkle_w, app.wrinkle_phase).sum(axis=1) * np.sqrt(2.0 / k)  # RMS 1
  return clothing + app.wrinkle_amplitude * wrinkles


def albedo(app: Appearance, canonical: np.ndarray, parts: np.ndarray, part_names: tuple[str, ...]) -> np.ndarray:
  """(N, 3) colour in [0, 1] of canonical points (N, 3) with part ids (N,)."""
  names = np.array(part_names + ("",))
  name = names[np.where(parts >= 0, parts, len(part_names))]
  region = np.zeros(len(parts), np.int64)  # 0 shirt
  region[np.isin(name, _TROUSERS)] = 1
  region[np.isin(name, _SKIN)] = 2
  region[np.isin(name, _SHOES)] = 3
  base = app.palette[region]
  detail = _sines(canonical, app.texture_w, app.texture_phase).mean(axis=1)
  stripes = np.sin(2 * np.pi * app.stripe_frequency * canonical[:, 1])
  checks = np.sign(np.sin(2 * np.pi * app.stripe_frequency * canonical[:, 0]) *
                   np.sin(2 * np.pi * app.stripe_frequency * canonical[:, 1]))
  shade = 1.0 + 0.35 * detail
  shade += np.where(region == 0, 0.25 * stripes, 0.0) + np.where(region == 1, 0.12 * checks, 0.0)
  return np.clip(base * shade[:, None], 0.0, 1.0)


# ----------------------------------------------------------------------------- cameras and rendering

def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0)) -> np.ndarray:
  """(4, 4) OpenCV world->camera for a camera at `eye` looking at `target` with world `up` up in the image."""
  z = target - eye
  z /= np.linalg.norm(z)
  x = np.cross(z, up)
  x /= np.linalg.norm(x)
  y = np.cross(z, x)
  E = np.eye(4)
  E[:3, :3] = np.stack([x, y, z])
  E[:3, 3] = -E[:3, :3] @ eye
  return E


def pixel_rays(K: np.ndarray, E: np.ndarray, height: int, width: int, ss: int = 1):
  """World rays through sub-pixel centres (pixel centres at integer + 0.5).

  Returns:
    origins (H*W*ss*ss, 3), directions (same) unit-free world directions with
    camera z component 1, ordered row-major over (H, ss, W, ss).
  """
  offs = (np.arange(ss) + 0.5) / ss
  v = (np.arange(height)[:, None] + offs[None]).reshape(-1)
  u = (np.arange(width)[:, None] + offs[None]).reshape(-1)
  uu, vv = np.meshgrid(u, v)
  pix = np.stack([uu.ravel(), vv.ravel(), np.ones(uu.size)], -1)
  d_cam = pix @ np.linalg.inv(K).T
  R, t = E[:3, :3], E[:3, 3]
  eye = -R.T @ t
  return np.broadcast_to(eye, d_cam.shape).copy(), d_cam @ R


@dataclasses.dataclass
class Render:
  image: np.ndarray  # (H, W, 3) float32
  mask: np.ndarray  # (H, W) bool
  depth: np.ndarray  # (H, W) float32
  normal: np.ndarray  # (H, W, 3) float32
  parts: np.ndarray  # (H, W) int32


def render(mesh: trimesh.Trimesh, canonical: np.ndarray, vertex_parts: np.ndarray, part_names, app,
           K: np.ndarray, E: np.ndarray, height: int, width: int, cfg: Any) -> Render:
  """Ray-casts the posed mesh (world metres) from camera (K, E); see `Frame` for the GT conventions."""
  intersector = ray_pyembree.RayMeshIntersector(mesh)
  R, t = E[:3, :3], E[:3, 3]
  face_normals = mesh.face_normals

  def cast(ss):
    o, d = pixel_rays(K, E, height, width, ss)
    tri, ray, loc = intersector.intersects_id(o, d, multiple_hits=False, return_locations=True)
    return d, tri, ray, loc

  def surface(tri, loc):
    bary = trimesh.triangles.points_to_barycentric(mesh.triangles[tri], loc)
    corners = mesh.faces[tri]
    canon = np.einsum("nk,nkd->nd", bary, canonical[corners])
    parts = vertex_parts[corners[np.arange(len(tri)), np.argmax(bary, axis=1)]]
    return canon, parts

  # Ground truth from the pixel-centre rays.
  d, tri, ray, loc = cast(1)
  n = height * width
  depth = np.zeros(n, np.float32)
  normal = np.zeros((n, 3), np.float32)
  parts = np.full(n, -1, np.int32)
  depth[ray] = loc @ R[2] + t[2]
  n_cam = face_normals[tri] @ R.T
  d_cam = d[ray] @ R.T
  n_cam *= -np.sign(np.sum(n_cam * d_cam, axis=1, keepdims=True) + 1e-30)
  normal[ray] = n_cam
  _, parts[ray] = surface(tri, loc)

  # Colour from ss x ss rays per pixel, averaged (anti-aliased edges over the background).
  ss = int(cfg.supersample)
  d, tri, ray, loc = cast(ss)
  colour = np.broadcast_to(np.asarray(cfg.background, np.float64), (n * ss * ss, 3)).copy()
  canon, hit_parts = surface(tri, loc)
  c = albedo(app, canon, hit_parts, part_names)
  if cfg.shading > 0:
    n_cam = face_normals[tri] @ R.T
    d_cam = d[ray] @ R.T
    cos = np.abs(np.sum(n_cam * d_cam, axis=1)) / np.linalg.norm(d_cam, axis=1)
    c = c * (1.0 - cfg.shading + cfg.shading * cos)[:, None]
  colour[ray] = c
  image = colour.reshape(height, ss, width, ss, 3).mean(axis=(1, 3))
  return Render(image=image.astype(np.float32), mask=(depth > 0).reshape(height, width),
                depth=depth.reshape(height, width), normal=normal.reshape(height, width, 3),
                parts=parts.reshape(height, width))


# ----------------------------------------------------------------------------- the capture

def _config_dict(cfg: Any) -> dict:
  d = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
  d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
  d["format_version"] = FORMAT_VERSION
  return d


def capture_dir(root: str) -> str:
  return os.path.join(root, "synthetic")


def is_current(root: str, cfg: Any) -> bool:
  """Whether DATA_ROOT/synthetic holds a complete capture generated with `cfg`."""
  path = os.path.join(capture_dir(root), "generation.json")
  if not os.path.isfile(path):
    return False
  with open(path) as f:
    return json.load(f) == _config_dict(cfg)


def _write_split(folder: str, renders, Ks, Es, poses, betas, frame_ids, camera_ids, faces, gt_meshes):
  for sub in ("images", "masks", "depth", "normals", "parts"):
    os.makedirs(os.path.join(folder, sub), exist_ok=True)
  for k, r in enumerate(renders):
    iio.imwrite(os.path.join(folder, "images", f"image_{k:04d}.png"),
                np.round(np.clip(r.image, 0, 1) * 255).astype(np.uint8))
    np.save(os.path.join(folder, "masks", f"mask_{k:04d}.npy"), r.mask)
    np.save(os.path.join(folder, "depth", f"depth_{k:04d}.npy"), r.depth)
    np.save(os.path.join(folder, "normals", f"normal_{k:04d}.npy"), r.normal.astype(np.float16))
    np.save(os.path.join(folder, "parts", f"parts_{k:04d}.npy"), r.parts.astype(np.int16))
  h, w = renders[0].mask.shape
  # Files hold OpenCV intrinsics (integer pixel centres), like every other dataset.
  Kcv = np.stack([cameras.opencv_to_pixel_centre_intrinsics(K, -0.5) for K in Ks])
  np.savez(os.path.join(folder, "cameras.npz"), intrinsic=Kcv.astype(np.float32),
           extrinsic=np.stack(Es).astype(np.float32), height=h, width=w,
           camera_ids=np.asarray(camera_ids, np.int32))
  np.savez(os.path.join(folder, "poses.npz"), betas=betas.astype(np.float32),
           thetas=np.stack(poses).reshape(-1, 72).astype(np.float32),
           transl=np.zeros((len(poses), 3), np.float32), frame_ids=np.asarray(frame_ids, np.int32))
  ids = sorted(gt_meshes)
  np.savez(os.path.join(folder, "gt_mesh.npz"), faces=faces.astype(np.int32),
           vertices=np.stack([gt_meshes[i] for i in ids]).astype(np.float32),
           frame_ids=np.asarray(ids, np.int32))


def generate(cfg: Any, root: str, body: Optional[Body] = None) -> float:
  """Generates the capture into DATA_ROOT/synthetic (replacing an outdated one); returns seconds taken.

  Args:
    cfg: `c.data.synthetic`.
    root: DATA_ROOT.
    body: the body model; default `builtin_body(cfg, betas)`, the subject of the drawn shape.
  """
  start = time.time()
  rng = np.random.default_rng(cfg.seed)
  num_betas = (body or builtin_body()).num_betas
  betas = np.clip(rng.normal(size=num_betas) * cfg.shape_std, -2.0 * max(cfg.shape_std, 1e-9),
                  2.0 * max(cfg.shape_std, 1e-9))
  body = body or builtin_body(cfg, betas)
  app = make_appearance(cfg, rng)
  if cfg.motion == "turntable":
    train_poses = turntable_motion(cfg.num_train_frames, rng)
  elif cfg.motion == "varied":
    train_poses = varied_motion(cfg.num_train_frames, rng)
  else:
    raise validation.DatasetError(f"config data.synthetic.motion: '{cfg.motion}', expected turntable or varied")
  novel_poses = varied_motion(cfg.num_novel_pose_frames, rng)
  faces = body.faces
  canonical_rest = body.pose(betas, np.zeros((24, 3)), np.zeros(3))
  rest_mesh = trimesh.Trimesh(canonical_rest, faces, process=False)
  offset = clothing_offset(app, canonical_rest)
  canonical = canonical_rest + offset[:, None] * rest_mesh.vertex_normals

  def posed_mesh(theta):
    v = body.pose(betas, theta, np.zeros(3))
    normals = trimesh.Trimesh(v, faces, process=False).vertex_normals
    return v + offset[:, None] * normals

  # Cameras: aimed at the middle of the first training frame's body, on a circle around it.
  first = posed_mesh(train_poses[0])
  target = 0.5 * (first.min(axis=0) + first.max(axis=0))
  h, w = int(cfg.height), int(cfg.width)
  K = np.array([[cfg.focal, 0, w / 2], [0, cfg.focal, h / 2], [0, 0, 1.0]])

  def camera(azimuth):
    eye = target + np.array([cfg.camera_distance * np.sin(azimuth), cfg.camera_height,
                             cfg.camera_distance * np.cos(azimuth)])
    return look_at(eye, target)

  num_views = int(cfg.num_novel_view_cameras)
  view_E = [camera(2 * np.pi * (c + 1) / (num_views + 1)) for c in range(num_views)]
  nv_frames = np.linspace(0, cfg.num_train_frames, cfg.num_novel_view_frames, endpoint=False).astype(int)
  jobs = {"train": [(k, 0, train_poses[k], camera(0.0)) for k in range(cfg.num_train_frames)],
          "novel_view": [(int(k), c + 1, train_poses[k], view_E[c]) for c in range(num_views) for k in nv_frames],
          "novel_pose": [(cfg.num_train_frames + k, 0, novel_poses[k], camera(0.0))
                         for k in range(cfg.num_novel_pose_frames)]}
  out = capture_dir(root)
  tmp = out + f".tmp{os.getpid()}"
  shutil.rmtree(tmp, ignore_errors=True)
  meshes = {}
  detect_rng = np.random.default_rng([int(cfg.seed), 3])
  with tqdm.tqdm(total=sum(len(j) for j in jobs.values()), desc="synthetic capture", unit="frame") as bar:
    for split, split_jobs in jobs.items():
      renders, gt = [], {}
      for frame_id, _, theta, E in split_jobs:
        if frame_id not in meshes:
          meshes[frame_id] = posed_mesh(theta)
        gt[frame_id] = meshes[frame_id]
        mesh = trimesh.Trimesh(meshes[frame_id], faces, process=False)
        renders.append(render(mesh, canonical, body.vertex_parts, body.part_names, app, K, E, h, w, cfg))
        bar.update(1)
      _write_split(os.path.join(tmp, split), renders, [K] * len(split_jobs), [j[3] for j in split_jobs],
                   [j[2] for j in split_jobs], betas, [j[0] for j in split_jobs],
                   [j[1] for j in split_jobs], faces, gt)
      if body.joints is not None:
        kp = [detections(body.joints(betas, theta, np.zeros(3)), K, E, detect_rng, cfg.keypoint_noise_px,
                         cfg.keypoint_drop) for _, _, theta, E in split_jobs]
        np.savez(os.path.join(tmp, split, "keypoints.npz"), keypoints=np.stack(kp).astype(np.float32),
                 frame_ids=np.asarray([j[0] for j in split_jobs], np.int32))
  meta = {"part_names": list(body.part_names), "betas": betas.tolist()}
  if body.truth is not None:
    meta["subject"] = body.truth
  with open(os.path.join(tmp, "meta.json"), "w") as f:
    json.dump(meta, f)
  # generation.json last: its presence marks a complete capture.
  with open(os.path.join(tmp, "generation.json"), "w") as f:
    json.dump(_config_dict(cfg), f, indent=1)
  shutil.rmtree(out, ignore_errors=True)
  os.replace(tmp, out)
  return time.time() - start


def detections(joints: np.ndarray, K: np.ndarray, E: np.ndarray, rng: np.random.Generator, noise_px: float,
               drop: float) -> np.ndarray:
  """(24, 3) 2D keypoints of world joints (24, 3) as a detector reports them: (x, y, confidence).

  Pixel coordinates in the files' OpenCV convention (integer pixel centres), Gaussian noise of
  `noise_px` pixels, a fraction `drop` missed (confidence 0, position 0), the rest confidence 1.
  """
  cam = joints @ E[:3, :3].T + E[:3, 3]
  uv = cam @ K.T
  xy = uv[:, :2] / uv[:, 2:3] - 0.5 + rng.normal(size=(len(joints), 2)) * noise_px
  conf = (rng.uniform(size=len(joints)) >= drop).astype(np.float64)
  return np.concatenate([xy * conf[:, None], conf[:, None]], axis=1)


def subject_truth(root: str) -> Optional[dict]:
  """The capture's subject as meta.json records it (rest joints, bone factors, root offset), or None."""
  path = os.path.join(capture_dir(root), "meta.json")
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f).get("subject")


def _gt_mesh_fn(folder: str):
  cache = {}

  def fn(record: dataset_lib.FrameRecord) -> trimesh.Trimesh:
    if not cache:
      with np.load(os.path.join(folder, "gt_mesh.npz")) as z:
        cache.update(faces=z["faces"], vertices=z["vertices"], ids=list(z["frame_ids"]))
    row = cache["ids"].index(record.frame_index)
    return trimesh.Trimesh(cache["vertices"][row], cache["faces"], process=False)

  return fn


def load(data_config: Any, split: str, root: str, body: Optional[Body] = None) -> dataset_lib.Dataset:
  """Loads one split of the synthetic capture, generating it first when missing or outdated."""
  if split not in SPLITS:
    raise validation.DatasetError(f"config: the synthetic capture has the splits {SPLITS}, not '{split}'")
  if not is_current(root, data_config.synthetic):
    generate(data_config.synthetic, root, body)
  folder = os.path.join(capture_dir(root), split)
  with open(os.path.join(capture_dir(root), "meta.json")) as f:
    part_names = tuple(json.load(f)["part_names"])
  problems = validation.Problems(dataset=folder)
  records = people_snapshot.read_folder(folder, split, data_config.frames[split], f"data.frames.{split}",
                                        data_config, problems)
  kp_path = os.path.join(folder, "keypoints.npz")
  if os.path.isfile(kp_path):
    with np.load(kp_path) as z:
      table = dict(zip(z["frame_ids"].tolist(), z["keypoints"]))
    records = [dataclasses.replace(r, keypoints=table.get(r.frame_index)) for r in records]
  return dataset_lib.make_dataset("synthetic", split, folder, records, data_config, problems,
                                  part_names=part_names, gt_mesh_fn=_gt_mesh_fn(folder))
