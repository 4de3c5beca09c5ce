"""`Fields`: the avatar's learned fields, hash grids plus the decoders, as one Flax module.

Parameter tree (top-level names are what the optimiser groups match on, see train/optim.py):

  geometry_grid/table     (L, T, F)  hash grid f_g, sampled at canonical surfel centres mu
  appearance_grid/table   (L, T, F)  hash grid f_c, sampled at mu
  semantic_grid/table     (L, T, F)  hash grid f_s, sampled at mu
  tilt_grid/table         (L, T, F)  hash grid f_t of the tilt, sampled at mu
  skinning_grid/table     (L', T', F') hash grid of the skinning field, sampled at deformed centres mu'
  pose_encoder/...        body pose -> Z_p
  geometry_mlp/...        (f_g, Z_p) -> (delta_d, delta_s, z_g)
  tilt_mlp/...            (f_t, Z_p) -> delta_r
  appearance_mlp/...      (f_c, z_g, Z_p, view dir) -> RGB
  semantic_mlp/...        f_s -> 28 logits
  skinning_mlp/...        hash(mu') -> LBS weights over J joints

The skinning field has its own grid (a documented choice): it must be smooth where the geometry and
appearance grids must be detailed, so it defaults to fewer, coarser levels.

The tilt delta_r (the paper: one more output of the geometry MLP on f_g) is a field of its own, grid
and MLP (our choice). The paper's normal losses may update rotation only, so `config.isolation.groups`
lets them reach only the tilt's parameters. Sharing the geometry MLP, their updates moved offsets and
colours through the shared weights; sharing only the geometry grid, the tilt could vary in space only
as finely as the other losses had shaped f_g, so it could not follow normal detail (wrinkles) that
only the normal prior shows.

The methods are separate so the avatar can interleave its own geometry between them inside ONE
`apply` (mu' depends on the geometry residual; the canonical view direction depends on LBS):

  def posed(fields, mu, normals, face_size, pose, ...):
    z_p = fields.encode_pose(pose)
    res = fields.geometry(mu, z_p)
    mu_prime = mu + normals * res.offset[:, None]  # metres
    weights = fields.skinning(mu_prime)
    ...  # LBS, camera -> canonical view directions
    rgb = fields.appearance(mu, res.latent, z_p, view_dirs)
    logits, f_s = fields.semantics(mu)
  out = Fields(...).apply(params, mu, normals, face_size, pose, ..., method=posed)

`__call__` runs every field at given points (used by `init` and tests).
"""

import dataclasses
from typing import Any

import flax
import flax.linen as nn
import jax.numpy as jnp

from fmgs_jax.fields.decoders import (AppearanceDecoder, GeometryDecoder, GeometryResidual, PoseEncoder,
                                      SemanticDecoder, SkinningDecoder, TiltDecoder)
from fmgs_jax.fields.hashgrid import HashGrid


@dataclasses.dataclass(frozen=True)
class GridSpec:
  """Hash-grid size (see fields/hashgrid.py): L levels x F features, 2^log2_table_size rows, N_min..N_max."""
  num_levels: int = 16
  features_per_level: int = 2
  log2_table_size: int = 16
  base_resolution: int = 16
  max_resolution: int = 2048


@flax.struct.dataclass
class FieldOutputs:
  """Everything the fields give for N surfels of one frame.

  Attributes:
    pose_latent: (D_p,) Z_p.
    geometry: GeometryResidual with (N,), (N, 2), (N, 3), (N, D_g) arrays.
    rgb: (N, 3) colour in [0, 1].
    semantic_logits: (N, C) part logits.
    semantic_features: (N, F_s) f_s (what L_reg pulls towards its class mean).
    skinning_weights: (N, J) rows summing to 1.
  """
  pose_latent: jnp.ndarray
  geometry: GeometryResidual
  rgb: jnp.ndarray
  semantic_logits: jnp.ndarray
  semantic_features: jnp.ndarray
  skinning_weights: jnp.ndarray


class Fields(nn.Module):
  """The avatar's learned fields over canonical space.

  Attributes:
    num_joints: J of the body model (skinning outputs).
    bbox_min, bbox_max: (3,) canonical box the grids cover (metres), e.g. the template's box + margin.
    grid_spec: size of the geometry, appearance, semantic and tilt grids (paper: 32-dim features = 16 x 2).
    skinning_grid_spec: size of the skinning field's grid.
    pose_latent_dim, pose_hidden: PoseEncoder.
    geometry_hidden, geometry_latent_dim, max_offset, max_log_scale: GeometryDecoder.
    tilt_hidden, max_rotation: TiltDecoder.
    appearance_hidden, view_frequencies: AppearanceDecoder.
    num_classes, semantic_hidden: SemanticDecoder.
    skinning_hidden: SkinningDecoder.
  """
  num_joints: int
  bbox_min: tuple[float, float, float]
  bbox_max: tuple[float, float, float]
  grid_spec: GridSpec = GridSpec()
  skinning_grid_spec: GridSpec = GridSpec(num_levels=8, log2_table_size=14, base_resolution=8,
                                          max_resolution=128)
  pose_latent_dim: int = 16
  pose_hidden: tuple[int, ...] = (128,)
  geometry_hidden: tuple[int, ...] = (128, 128, 128)
  geometry_latent_dim: int = 16
  max_offset: float = 0.05
  max_log_scale: float = 1.0
  tilt_hidden: tuple[int, ...] = (128, 128)
  max_rotation: float = 0.5
  appearance_hidden: int = 64
  view_frequencies: int = 4
  num_classes: int = 28
  semantic_hidden: tuple[int, ...] = (64,)
  skinning_hidden: tuple[int, ...] = (128, 128, 128, 128)

  def setup(self):
    def grid(spec):
      return HashGrid(bbox_min=tuple(self.bbox_min), bbox_max=tuple(self.bbox_max),
                      **dataclasses.asdict(spec))

    self.geometry_grid = grid(self.grid_spec)
    self.appearance_grid = grid(self.grid_spec)
    self.semantic_grid = grid(self.grid_spec)
    self.tilt_grid = grid(self.grid_spec)
    self.skinning_grid = grid(self.skinning_grid_spec)
    self.pose_encoder = PoseEncoder(self.pose_latent_dim, tuple(self.pose_hidden))
    self.geometry_mlp = GeometryDecoder(tuple(self.geometry_hidden), self.geometry_latent_dim,
                                        self.max_offset, self.max_log_scale)
    self.tilt_mlp = TiltDecoder(tuple(self.tilt_hidden), self.max_rotation)
    self.appearance_mlp = AppearanceDecoder(self.appearance_hidden, self.view_frequencies)
    self.semantic_mlp = SemanticDecoder(self.num_classes, tuple(self.semantic_hidden))
    self.skinning_mlp = SkinningDecoder(self.num_joints, tuple(self.skinning_hidden))

  def encode_pose(self, pose: jnp.ndarray) -> jnp.ndarray:
    """(J, 3) axis-angle body pose -> (D_p,) pose latent."""
    return self.pose_encoder(pose)

  def geometry(self, mu: jnp.ndarray, z_p: jnp.ndarray) -> GeometryResidual:
    """(N, 3) canonical centres, (D_p,) pose latent -> bounded residuals and z_g."""
    f_g = self.geometry_grid(mu)
    offset, log_scale, latent = self.geometry_mlp(f_g, z_p)
    tilt = self.tilt_mlp(self.tilt_grid(mu), z_p)
    return GeometryResidual(offset=offset, log_scale=log_scale, rotation=tilt, latent=latent)

  def skinning(self, mu_prime: jnp.ndarray, base_weights: jnp.ndarray | None = None) -> jnp.ndarray:
    """(N, 3) deformed canonical centres (and (N, J) template weights there) -> (N, J) LBS weights."""
    return self.skinning_mlp(self.skinning_grid(mu_prime), base_weights)

  def appearance(self, mu: jnp.ndarray, z_g: jnp.ndarray, z_p: jnp.ndarray,
                 view_dirs: jnp.ndarray) -> jnp.ndarray:
    """(N, 3) centres, (N, D_g), (D_p,), (N, 3) canonical unit view directions -> (N, 3) RGB."""
    return self.appearance_mlp(self.appearance_grid(mu), z_g, z_p, view_dirs)

  def semantics(self, mu: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(N, 3) centres -> ((N, C) logits, (N, F_s) semantic features f_s)."""
    f_s = self.semantic_grid(mu)
    return self.semantic_mlp(f_s), f_s

  def __call__(self, mu: jnp.ndarray, pose: jnp.ndarray, view_dirs: jnp.ndarray,
               skin_points: jnp.ndarray | None = None) -> FieldOutputs:
    """Runs every field; skinning at `skin_points` (N, 3) (default: mu). Shapes as in FieldOutputs."""
    z_p = self.encode_pose(pose)
    res = self.geometry(mu, z_p)
    logits, f_s = self.semantics(mu)
    return FieldOutputs(pose_latent=z_p, geometry=res, rgb=self.appearance(mu, res.latent, z_p, view_dirs),
                        semantic_logits=logits, semantic_features=f_s,
                        skinning_weights=self.skinning(mu if skin_points is None else skin_points))


def fields_from_config(config: Any, num_joints: int, bbox_min, bbox_max) -> Fields:
  """Builds `Fields` from the shared config (`config.model`, bounds from `config.surfels`).

  Args:
    config: the full ml_collections config.
    num_joints: J of the body model.
    bbox_min, bbox_max: (3,) canonical box (metres), e.g. the template's box padded by
      config.model.bbox_padding.
  """
  m = config.model

  def spec(g):
    return GridSpec(num_levels=g.num_levels, features_per_level=g.features_per_level,
                    log2_table_size=g.log2_table_size, base_resolution=g.base_resolution,
                    max_resolution=g.max_resolution)

  return Fields(
      num_joints=int(num_joints), bbox_min=tuple(float(v) for v in bbox_min),
      bbox_max=tuple(float(v) for v in bbox_max), grid_spec=spec(m.grid),
      skinning_grid_spec=spec(m.skinning_grid),
      pose_latent_dim=m.pose_latent_dim, pose_hidden=tuple(m.pose_hidden),
      geometry_hidden=tuple(m.geometry_hidden), geometry_latent_dim=m.geometry_latent_dim,
      max_offset=config.surfels.max_offset, max_log_scale=config.surfels.max_log_scale,
      tilt_hidden=tuple(m.tilt_hidden), max_rotation=m.max_rotation, appearance_hidden=m.appearance_hidden,
      view_frequencies=m.view_frequencies, num_classes=m.num_classes,
      semantic_hidden=tuple(m.semantic_hidden), skinning_hidden=tuple(m.skinning_hidden))
