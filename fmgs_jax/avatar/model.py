"""The canonical avatar: template surfels + learned fields; `quantities` poses them for one frame.

Data flow for a frame (pose theta, shape beta, translation t, camera):

  canonical template (upsampled body mesh, shaped, rest pose): vertices V_c, faces, weights W_0
  mu        = face barycentres of V_c                       (one surfel per face; fixed count)
  Z_p       = PoseEncoder(theta)
  residual  = GeometryDecoder(f_g(mu), Z_p)                 (offset along n, log-scales, z_g)
              + TiltDecoder(f_g(mu), Z_p)                   (tilt; own MLP, see fields/decoders.py)
  W         = SkinningDecoder(hash(V_c), W_0)               (learned skinning field at the vertices,
                                                             starting from the template weights W_0,
                                                             pulled to W_0 by L_skin)
  V_p       = LBS(V_c, W, body transforms(theta + per-frame refinement, beta, t))
  surfels   = face frames of the posed mesh V_p, with the bounded residuals applied in that frame:
              mean = barycentre_p + n_p * offset, R = [t_u, t_v, n]_p exp([delta_r]_x),
              scales = size_p * init_scale * exp(log_scale)
  colour    = AppearanceDecoder(f_c(mu), z_g, Z_p, view direction rotated into the canonical frame)
  semantics = softmax(SemanticDecoder(f_s(mu)))             (28 Sapiens classes)

Ablations (config.model): `primitive = "3dgs"` gives every face a 3D Gaussian instead of a surfel:
a third scale along the normal, size_p * init_scale * exp(s_n) with a free per-face s_n
(params surfels/scale_normal, starting isotropic, 3DGS's initialisation). `mesh_guided = False` frees
the Gaussians from the mesh (3DGS-Avatar style): free canonical centres, quaternions and log-scales
per Gaussian (params surfels/{means, rotations, scales}) initialised from the template's faces, the
same pose-dependent residuals applied in each Gaussian's own frame, the skinning field evaluated at
each deformed centre mu' (the paper's W(mu')) and the blended LBS transform applied to centre and
frame (re-orthonormalised).

The surfels are recomputed from the posed mesh in every frame, so they follow the body exactly
("mesh-guided"); the skinning field is evaluated at the template's vertices rather than at each
surfel's deformed centre mu' (the paper's W(mu')), because the mesh, not the surfel, is what is
skinned: a documented deviation that keeps every surfel on its face. Pose correctives (SMPL posedirs)
are not applied: the pose-dependent geometry residual takes their role, as in 3DGS-Avatar.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fmgs_jax import errors
from fmgs_jax import body as body_lib
from fmgs_jax.avatar import template as template_lib
from fmgs_jax.fields.model import Fields, fields_from_config
from fmgs_jax.geometry import frames as frames_lib
from fmgs_jax.geometry import rotations as rotations_lib
from fmgs_jax.geometry import surfels as surfels_lib

PRIMITIVES = ("2dgs", "3dgs")


@dataclasses.dataclass(frozen=True, eq=False)
class Avatar:
  """Static parts of the avatar (closed over by jitted functions, never traced).

  Attributes:
    body: the body model (kinematics: joints and per-joint transforms).
    template: the upsampled canonical template (avatar/template.py).
    fields: the Flax `Fields` module.
    init_scale: surfel scale at initialisation, in face sizes (config.surfels.init_scale).
    init_opacity: initial opacity of every surfel.
    num_frames: training frames with a learned pose refinement (0 = no refinement).
    num_classes: semantic classes.
    primitive: "2dgs" (surfels, two scales) or "3dgs" (3D Gaussians, three scales).
    mesh_guided: surfels bound to the posed mesh's faces (True) or free Gaussians (False).
    betas: (S,) float32 the subject's shape in `body`'s shape space, used for every frame (a dataset's
      per-frame betas belong to its own body model, not necessarily this one; see fit/stage.py).
  """
  body: Any
  template: template_lib.Template
  fields: Fields
  init_scale: float
  init_opacity: float
  num_frames: int
  num_classes: int
  primitive: str = "2dgs"
  mesh_guided: bool = True
  betas: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))

  @property
  def num_surfels(self) -> int:
    return int(self.template.faces.shape[0])


def build(config: Any, body_model: Any, betas: np.ndarray, num_frames: int) -> Avatar:
  """The avatar for a subject of shape `betas` (S,) from the config (body, surfels, model sections)."""
  tmpl = template_lib.build_template(body_model, betas, config.body.num_faces)
  lo, hi = tmpl.vertices.min(0) - config.model.bbox_padding, tmpl.vertices.max(0) + config.model.bbox_padding
  fields = fields_from_config(config, tmpl.weights.shape[1], lo, hi)
  if config.model.primitive not in PRIMITIVES:
    raise errors.ConfigError(f"config.model.primitive must be one of {PRIMITIVES}, got {config.model.primitive!r}")
  return Avatar(body=body_model, template=tmpl, fields=fields, init_scale=float(config.surfels.init_scale),
                init_opacity=float(config.surfels.init_opacity), num_frames=int(num_frames),
                num_classes=int(config.model.num_classes), primitive=str(config.model.primitive),
                mesh_guided=bool(config.model.mesh_guided), betas=np.asarray(betas, np.float32))


def init_params(avatar: Avatar, key: jax.Array) -> dict:
  """Parameters: {"fields": Flax variables, "surfels": {"opacities": (N,) logits, and per primitive /
  guidance the free per-surfel parameters named in the module doc}, "pose_refine": (num_frames, J, 3)
  axis-angle corrections (zeros)}."""
  t = avatar.template
  mu = jnp.asarray(t.face_centres)
  j = t.weights.shape[1]
  # Jitted: eager Flax init dispatches every hash-grid / MLP op one by one (~4x slower on CPU).
  fields = jax.jit(avatar.fields.init)(key, mu[:8], jnp.zeros((j, 3)), jnp.zeros((8, 3)))
  logit = float(np.log(avatar.init_opacity / (1.0 - avatar.init_opacity)))
  n = avatar.num_surfels
  surfels = {"opacities": jnp.full((n,), logit, jnp.float32)}
  if not avatar.mesh_guided:
    canon = jax.device_get(frames_lib.face_frames(jnp.asarray(t.vertices), jnp.asarray(t.faces)))
    log_size = np.log(np.maximum(canon.size, 1e-6) * avatar.init_scale).astype(np.float32)
    surfels["means"] = jnp.asarray(t.face_centres, jnp.float32)
    surfels["rotations"] = jnp.asarray(rotations_lib.matrix_to_quaternion(canon.rotation), jnp.float32)
    surfels["scales"] = jnp.asarray(np.repeat(log_size[:, None], 3 if avatar.primitive == "3dgs" else 2, 1))
  elif avatar.primitive == "3dgs":
    surfels["scale_normal"] = jnp.zeros((n,), jnp.float32)
  return {"fields": fields, "surfels": surfels,
          "pose_refine": jnp.zeros((max(avatar.num_frames, 1), j, 3), jnp.float32)}


def camera_centre(world_to_camera: jnp.ndarray) -> jnp.ndarray:
  """(3,) camera centre in world coordinates from a (4, 4) world-to-camera transform."""
  r, t = world_to_camera[:3, :3], world_to_camera[:3, 3]
  return -r.T @ t


def frame_quantities(avatar: Avatar, params: dict, betas, pose, transl, frame_index,
                     world_to_camera) -> dict[str, jnp.ndarray]:
  """Posed surfel quantities of one frame.

  Args:
    betas: (S,) shape; pose: (J, 3) axis-angle, SMPL order; transl: (3,) metres;
    frame_index: () int32 index into the pose refinement (clipped; eval frames use none);
    world_to_camera: (4, 4), for view directions.

  Returns:
    dict of float32 arrays: means (N,3) world metres, rotations (N,3,3) columns (t_u, t_v, n),
    scales (N,2) metres ((N,3) for 3dgs), opacities (N,), colors (N,3) in [0,1], semantics (N,C) probabilities,
    semantic_features (N,F), skinning_weights (V,J), canonical_means (N,3) (mu' = canonical centre
    moved by the offset; L_iso compares posed neighbour distances with these), vertices (V,3) the posed
    template mesh.
  """
  t = avatar.template
  refine = params["pose_refine"][jnp.clip(frame_index, 0, params["pose_refine"].shape[0] - 1)]
  use_refine = (frame_index >= 0) & (avatar.num_frames > 0)
  pose = pose + jnp.where(use_refine, refine, 0.0)
  transforms = body_lib.forward(avatar.body, betas=betas, pose=pose, transl=transl).transforms
  vc = jnp.asarray(t.vertices)
  faces = jnp.asarray(t.faces)
  mu = jnp.asarray(t.face_centres)
  canon = frames_lib.face_frames(vc, faces)
  eye = camera_centre(world_to_camera)

  free = params["surfels"]
  t_weights = jnp.asarray(t.weights)

  def fields_fn(f: Fields):
    z_p = f.encode_pose(pose)
    vertex_weights = f.skinning(vc, t_weights)
    posed_v = body_lib.skin_points(vc, vertex_weights, transforms)
    if avatar.mesh_guided:
      res = f.geometry(mu, z_p)
      posed = frames_lib.face_frames(posed_v, faces)
      s = surfels_lib.place_surfels(posed, res.offset, res.log_scale, res.rotation, avatar.init_scale)
      means, rot_p, scales = s.means, s.rotations, s.scales
      view_from, view_to = canon.rotation, posed.rotation
      canonical_means = mu + canon.normal * res.offset[:, None]
      if avatar.primitive == "3dgs":
        normal_scale = posed.size * avatar.init_scale * jnp.exp(free["scale_normal"])
        scales = jnp.concatenate([scales, normal_scale[:, None]], -1)
      grid_points = mu
    else:
      grid_points = free["means"]
      res = f.geometry(grid_points, z_p)
      rot_free = rotations_lib.quaternion_to_matrix(free["rotations"])
      rot_c = rot_free @ rotations_lib.axis_angle_to_matrix(res.rotation)
      canonical_means = grid_points + rot_free[:, :, 2] * res.offset[:, None]
      log_scales = free["scales"] + jnp.pad(res.log_scale, ((0, 0), (0, free["scales"].shape[1] - 2)))
      scales = jnp.exp(log_scales)
      face_weights = jnp.mean(t_weights[faces], axis=1)  # each Gaussian's template face
      blended = jnp.einsum("nj,jab->nab", f.skinning(canonical_means, face_weights), transforms[:, :3, :])
      means = jnp.einsum("nab,nb->na", blended[:, :, :3], canonical_means) + blended[:, :, 3]
      rot_p = rotations_lib.orthonormalize(blended[:, :, :3] @ rot_c)
      view_from, view_to = rot_c, rot_p
    view_world = means - eye
    view_world = view_world / (jnp.linalg.norm(view_world, axis=-1, keepdims=True) + 1e-9)
    # posed frame -> canonical frame, applied to the view direction.
    view_canon = jnp.einsum("nij,nkj,nk->ni", view_from, view_to, view_world)
    rgb = f.appearance(grid_points, res.latent, z_p, view_canon)
    logits, f_s = f.semantics(grid_points)
    return dict(means=means, rotations=rot_p, scales=scales, colors=rgb,
                semantics=jax.nn.softmax(logits, axis=-1), semantic_features=f_s,
                skinning_weights=vertex_weights, canonical_means=canonical_means, vertices=posed_v)

  q = avatar.fields.apply(params["fields"], method=fields_fn)
  q["opacities"] = jax.nn.sigmoid(free["opacities"])
  return q


def quantities(avatar: Avatar, params: dict, batch) -> dict[str, jnp.ndarray]:
  """`frame_quantities` for a batch (leading B axis on every field of `batch`, a train.step.Batch), with
  the avatar's own shape (`Avatar.betas`; the batch's betas are the dataset's)."""
  betas = jnp.asarray(avatar.betas)
  fn = lambda p, tr, i, w: frame_quantities(avatar, params, betas, p, tr, i, w)
  return jax.vmap(fn)(batch.pose, batch.transl, batch.frame_index, batch.world_to_camera)
