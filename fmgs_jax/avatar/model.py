"""The canonical avatar: template surfels + learned fields; `quantities` poses them for one frame.

Data flow for a frame (pose theta, shape beta, translation t, camera):

  canonical template (upsampled body mesh, shaped, rest pose): vertices V_c, faces, weights W_0
  mu        = face barycentres of V_c                       (one surfel per face; fixed count)
  Z_p       = PoseEncoder(theta)
  residual  = GeometryDecoder(f_g(mu), Z_p)                 (offset along n, log-scales, tilt, z_g)
  W         = SkinningDecoder(hash(V_c))                    (learned skinning field at the vertices,
                                                             pulled to W_0 by L_skin)
  V_p       = LBS(V_c, W, body transforms(theta + per-frame refinement, beta, t))
  surfels   = face frames of the posed mesh V_p, with the bounded residuals applied in that frame:
              mean = barycentre_p + n_p * offset * size_p, R = [t_u, t_v, n]_p exp([delta_r]_x),
              scales = size_p * init_scale * exp(log_scale)
  colour    = AppearanceDecoder(f_c(mu), z_g, Z_p, view direction rotated into the canonical frame)
  semantics = softmax(SemanticDecoder(f_s(mu)))             (28 Sapiens classes)

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

from fmgs_jax import body as body_lib
from fmgs_jax.avatar import template as template_lib
from fmgs_jax.fields.model import Fields, fields_from_config
from fmgs_jax.geometry import frames as frames_lib
from fmgs_jax.geometry import surfels as surfels_lib


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
  """
  body: Any
  template: template_lib.Template
  fields: Fields
  init_scale: float
  init_opacity: float
  num_frames: int
  num_classes: int

  @property
  def num_surfels(self) -> int:
    return int(self.template.faces.shape[0])


def build(config: Any, body_model: Any, betas: np.ndarray, num_frames: int) -> Avatar:
  """The avatar for a subject of shape `betas` (S,) from the config (body, surfels, model sections)."""
  tmpl = template_lib.build_template(body_model, betas, config.body.num_faces)
  lo, hi = tmpl.vertices.min(0) - config.model.bbox_padding, tmpl.vertices.max(0) + config.model.bbox_padding
  fields = fields_from_config(config, tmpl.weights.shape[1], lo, hi)
  return Avatar(body=body_model, template=tmpl, fields=fields, init_scale=float(config.surfels.init_scale),
                init_opacity=float(config.surfels.init_opacity), num_frames=int(num_frames),
                num_classes=int(config.model.num_classes))


def init_params(avatar: Avatar, key: jax.Array) -> dict:
  """Parameters: {"fields": Flax variables, "surfels": {"opacities": (N,) logits},
  "pose_refine": (num_frames, J, 3) axis-angle corrections (zeros)}."""
  t = avatar.template
  mu = jnp.asarray(t.face_centres)
  j = t.weights.shape[1]
  fields = avatar.fields.init(key, mu[:8], jnp.zeros((j, 3)), jnp.zeros((8, 3)))
  logit = float(np.log(avatar.init_opacity / (1.0 - avatar.init_opacity)))
  return {"fields": fields,
          "surfels": {"opacities": jnp.full((avatar.num_surfels,), logit, jnp.float32)},
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
    scales (N,2) metres, opacities (N,), colors (N,3) in [0,1], semantics (N,C) probabilities,
    semantic_features (N,F), skinning_weights (V,J), canonical_means (N,3) (mu' = canonical centre
    moved by the offset) and rest_means (N,3) (L_iso), vertices (V,3) the posed template mesh.
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

  def fields_fn(f: Fields):
    z_p = f.encode_pose(pose)
    res = f.geometry(mu, z_p)
    weights = f.skinning(vc)
    posed_v = body_lib.skin_points(vc, weights, transforms)
    posed = frames_lib.face_frames(posed_v, faces)
    s = surfels_lib.place_surfels(posed, res.offset, res.log_scale, res.rotation, avatar.init_scale)
    view_world = s.means - eye
    view_world = view_world / (jnp.linalg.norm(view_world, axis=-1, keepdims=True) + 1e-9)
    # posed face frame -> canonical face frame, applied to the view direction.
    view_canon = jnp.einsum("nij,nkj,nk->ni", canon.rotation, posed.rotation, view_world)
    rgb = f.appearance(mu, res.latent, z_p, view_canon)
    logits, f_s = f.semantics(mu)
    return dict(means=s.means, rotations=s.rotations, scales=s.scales, colors=rgb,
                semantics=jax.nn.softmax(logits, axis=-1), semantic_features=f_s, skinning_weights=weights,
                canonical_means=mu + canon.normal * (res.offset * canon.size)[:, None], vertices=posed_v)

  q = avatar.fields.apply(params["fields"], method=fields_fn)
  q["opacities"] = jax.nn.sigmoid(params["surfels"]["opacities"])
  q["rest_means"] = mu
  return q


def quantities(avatar: Avatar, params: dict, batch) -> dict[str, jnp.ndarray]:
  """`frame_quantities` for a batch (leading B axis on every field of `batch`, a train.step.Batch)."""
  fn = lambda b, p, tr, i, w: frame_quantities(avatar, params, b, p, tr, i, w)
  return jax.vmap(fn)(batch.betas, batch.pose, batch.transl, batch.frame_index, batch.world_to_camera)
