"""Defaults shared by every dataset config. Dataset configs start from here and override a few fields.

Every experiment and ablation is a `--config.x.y=v` override of these fields; code has no other knobs.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  # Data (fmgs_jax/data).
  c.data = ml_collections.ConfigDict()
  c.data.name = "synthetic"  # synthetic | zju | people_snapshot | humannerf
  c.data.root = ""  # dataset folder; for `synthetic`, where the generated capture is cached ("" = WORKDIR/data)
  c.data.image_scale = 1.0  # resize factor applied to images, masks and intrinsics

  # Body model (fmgs_jax/body) and template upsampling (fmgs_jax/geometry).
  c.body = ml_collections.ConfigDict()
  c.body.model_path = ""  # "" = built-in mannequin-x template; else an SMPL/SMPL-X .pkl/.npz the user has
  c.body.num_faces = 60000  # faces after subdivision (~30k vertices, the paper's density); one surfel per face

  # Surfels bound to faces (fmgs_jax/geometry/surfels.py): bounds of the learned residuals.
  c.surfels = ml_collections.ConfigDict()
  c.surfels.max_offset = 0.5  # |offset along normal| <= max_offset * face size
  c.surfels.max_log_scale = 1.0  # scale factor in [exp(-m), exp(m)] times the face size
  c.surfels.init_scale = 1.0  # initial scale relative to face size

  # Rasterizer (fmgs_jax/render).
  c.render = ml_collections.ConfigDict()
  c.render.backend = "xla"  # xla | pallas | reference
  c.render.tile_size = 16
  c.render.tile_capacity = 256  # surfels kept per tile (nearest first); overflow is counted, never silent
  c.render.alpha_min = 1.0 / 255.0
  c.render.alpha_max = 0.99
  c.render.transmittance_min = 1e-4
  c.render.near = 0.01
  c.render.far = 100.0

  # Training (fmgs_jax/train).
  c.train = ml_collections.ConfigDict()
  c.train.steps = 2000
  c.train.batch_size = 1
  c.train.log_every = 50
  c.train.checkpoint_every = 500

  # Evaluation (fmgs_jax/eval).
  c.eval = ml_collections.ConfigDict()
  c.eval.lpips_weights = ""  # local LPIPS weights; "" reports lpips as null

  return c
