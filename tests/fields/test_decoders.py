"""Decoder and Fields tests: bounds, shapes, closed forms, and SciPy for rotations."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial.transform import Rotation

from fmgs_jax import fields
from fmgs_jax.fields import decoders


def _default_config():
  path = pathlib.Path(__file__).resolve().parents[2] / "configs" / "default.py"
  spec = importlib.util.spec_from_file_location("fmgs_default_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def test_axis_angle_to_matrix_matches_scipy_and_is_smooth_at_zero():
  rv = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
  rv[0] = 0.0
  rv[1] = 1e-6
  got = np.asarray(decoders.axis_angle_to_matrix(jnp.asarray(rv)))
  np.testing.assert_allclose(got, Rotation.from_rotvec(rv.astype(np.float64)).as_matrix(), atol=1e-6)
  g = jax.jacobian(lambda v: decoders.axis_angle_to_matrix(v))(jnp.zeros(3))
  assert bool(jnp.all(jnp.isfinite(g)))
  # d R / d v at 0 is the skew matrix generator: dR/dv_x = [e_x]_x.
  np.testing.assert_allclose(np.asarray(g[..., 0]), [[0, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-6)


def test_frequency_encoding_closed_form():
  x = jnp.array([[0.1, -0.4, 0.7]])
  enc = np.asarray(decoders.frequency_encoding(x, 2))
  xs = np.array([0.1, -0.4, 0.7])
  want = np.concatenate([xs, np.sin(np.pi * xs), np.sin(2 * np.pi * xs), np.cos(np.pi * xs),
                         np.cos(2 * np.pi * xs)])
  np.testing.assert_allclose(enc[0], want, atol=1e-6)


def test_geometry_residuals_bounded_and_start_at_zero():
  dec = decoders.GeometryDecoder(hidden=(16,), latent_dim=4, max_offset=0.3, max_log_scale=0.7)
  f_g = jax.random.normal(jax.random.PRNGKey(0), (50, 8))
  z_p = jnp.ones((5,))
  params = dec.init(jax.random.PRNGKey(1), f_g, z_p)
  offset, log_scale, latent = dec.apply(params, f_g, z_p)
  assert float(jnp.max(jnp.abs(offset))) == 0.0 and float(jnp.max(jnp.abs(log_scale))) == 0.0
  assert offset.shape == (50,) and latent.shape == (50, 4) and log_scale.shape == (50, 2)
  # Huge output weights saturate the tanh bounds.
  big = jax.tree_util.tree_map_with_path(
      lambda p, x: 1e3 * jax.random.normal(jax.random.PRNGKey(2), x.shape) if "residual" in str(p) else x,
      params)
  offset, log_scale, _ = dec.apply(big, f_g, z_p)
  assert 0.29 < float(jnp.max(jnp.abs(offset))) <= 0.3 + 1e-6
  assert float(jnp.max(jnp.abs(log_scale))) <= 0.7 + 1e-6


def test_tilt_bounded_and_starts_at_zero():
  dec = decoders.TiltDecoder(hidden=(16,), max_rotation=0.2)
  f_g = jax.random.normal(jax.random.PRNGKey(0), (50, 8))
  z_p = jnp.ones((5,))
  params = dec.init(jax.random.PRNGKey(1), f_g, z_p)
  assert float(jnp.max(jnp.abs(dec.apply(params, f_g, z_p)))) == 0.0
  big = jax.tree_util.tree_map_with_path(
      lambda p, x: 1e3 * jax.random.normal(jax.random.PRNGKey(2), x.shape) if "output" in str(p) else x,
      params)
  rotation = dec.apply(big, f_g, z_p)
  norms = np.linalg.norm(np.asarray(rotation), axis=-1)
  assert rotation.shape == (50, 3) and 0.19 < norms.max() <= 0.2 + 1e-6
  # The normal of R exp([delta_r]_x) stays within max_rotation of the face normal (R = I here).
  tilt = np.arccos(np.clip(np.asarray(decoders.axis_angle_to_matrix(rotation))[:, 2, 2], -1, 1))
  assert tilt.max() <= 0.2 + 1e-4


def test_appearance_semantic_skinning_shapes_and_ranges():
  n = 30
  app = decoders.AppearanceDecoder(hidden=64, view_frequencies=2)
  args = (jnp.ones((n, 8)), jnp.ones((n, 4)), jnp.ones((6,)), jnp.tile(jnp.array([[0.0, 0.0, 1.0]]), (n, 1)))
  p = app.init(jax.random.PRNGKey(0), *args)
  kernels = [x.shape for path, x in jax.tree_util.tree_leaves_with_path(p) if "kernel" in str(path)]
  assert kernels == [(8 + 4 + 6 + 3 * 5, 64), (64, 3)]  # exactly one hidden layer of 64
  rgb = app.apply(p, *args)
  assert rgb.shape == (n, 3) and bool(jnp.all((rgb >= 0) & (rgb <= 1)))
  sem = decoders.SemanticDecoder()
  f_s = jax.random.normal(jax.random.PRNGKey(1), (n, 32))
  assert sem.apply(sem.init(jax.random.PRNGKey(0), f_s), f_s).shape == (n, 28)
  skin = decoders.SkinningDecoder(num_joints=24)
  w = skin.apply(skin.init(jax.random.PRNGKey(0), f_s), f_s)
  assert w.shape == (n, 24) and bool(jnp.all(w >= 0))
  np.testing.assert_allclose(np.asarray(jnp.sum(w, -1)), 1.0, atol=1e-6)
  skin_kernels = [x.shape for path, x in jax.tree_util.tree_leaves_with_path(
      skin.init(jax.random.PRNGKey(0), f_s)) if "kernel" in str(path)]
  assert skin_kernels == [(32, 128), (128, 128), (128, 128), (128, 128), (128, 24)]


def test_pose_encoder_ignores_global_orientation():
  enc = decoders.PoseEncoder(latent_dim=8)
  pose = 0.3 * jax.random.normal(jax.random.PRNGKey(0), (24, 3))
  p = enc.init(jax.random.PRNGKey(1), pose)
  z = enc.apply(p, pose)
  z_rot = enc.apply(p, pose.at[0].set(jnp.array([1.0, -2.0, 0.5])))
  assert z.shape == (8,)
  np.testing.assert_allclose(np.asarray(z), np.asarray(z_rot), atol=1e-6)
  assert float(jnp.max(jnp.abs(enc.apply(p, pose.at[5].add(0.2)) - z))) > 0


def _small_config():
  c = _default_config()
  for g in (c.model.grid, c.model.skinning_grid):
    g.num_levels, g.log2_table_size, g.base_resolution, g.max_resolution = 4, 10, 4, 32
  c.model.geometry_hidden = c.model.tilt_hidden = (32,)
  c.model.skinning_hidden = (32, 32)
  return c


def test_fields_container_tree_and_interleaved_apply():
  c = _small_config()
  model = fields.fields_from_config(c, num_joints=24, bbox_min=(-1, -1, -1), bbox_max=(1, 1, 1))
  n = 40
  mu = jax.random.uniform(jax.random.PRNGKey(0), (n, 3), minval=-1, maxval=1)
  pose = jnp.zeros((24, 3))
  view = jnp.tile(jnp.array([[0.0, 0.0, 1.0]]), (n, 1))
  params = model.init(jax.random.PRNGKey(1), mu, pose, view)
  assert set(params["params"]) == {"geometry_grid", "appearance_grid", "semantic_grid", "tilt_grid",
                                   "skinning_grid", "pose_encoder", "geometry_mlp", "tilt_mlp", "appearance_mlp", "semantic_mlp",
                                   "skinning_mlp"}
  assert params["params"]["geometry_grid"]["table"].shape == (4, 2 ** 10, 2)
  out = model.apply(params, mu, pose, view)
  assert out.rgb.shape == (n, 3) and out.semantic_logits.shape == (n, 28)
  assert out.semantic_features.shape == (n, 8) and out.skinning_weights.shape == (n, 24)
  assert out.geometry.offset.shape == (n,) and out.pose_latent.shape == (16,)
  # The avatar's pattern: geometry, then the skinning field at mu', all in one apply.
  normals = jnp.tile(jnp.array([[0.0, 0.0, 1.0]]), (n, 1))

  def posed(f, mu, normals, pose):
    z_p = f.encode_pose(pose)
    res = f.geometry(mu, z_p)
    return f.skinning(mu + normals * res.offset[:, None])

  w = model.apply(params, mu, normals, pose, method=posed)
  np.testing.assert_allclose(np.asarray(w), np.asarray(out.skinning_weights), atol=1e-6)  # offset starts 0
