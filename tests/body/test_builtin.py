"""Built-in template (mannequin-x 'wooden' as an SMPL-format model) vs mannequin-x itself."""

import os

import jax
import mannequin
import numpy as np
import pytest

from fmgs_jax import body
from fmgs_jax.body import builtin


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  old = os.environ.get("FMGS_JAX_CACHE")
  os.environ["FMGS_JAX_CACHE"] = str(tmp_path_factory.mktemp("fmgs_cache"))
  yield builtin.builtin_path()
  if old is None:
    del os.environ["FMGS_JAX_CACHE"]
  else:
    os.environ["FMGS_JAX_CACHE"] = old


@pytest.fixture(scope="module")
def model(cache):  # pylint: disable=unused-argument
  return body.builtin_body_model()


def test_converted_model_is_smpl_format(model, cache):
  assert cache.exists()
  assert model.v_template.shape == (24256, 3) and model.weights.shape == (24256, 24)
  assert model.shapedirs.shape == (24256, 3, 10) and model.posedirs.shape == (24256, 3, 0)
  np.testing.assert_allclose(model.weights.sum(axis=1), 1.0, atol=1e-5)
  np.testing.assert_array_equal(model.parents[:4], [-1, 0, 0, 0])
  assert len(model.part_names) == 16 and "head" in model.part_names
  assert np.bincount(model.part_ids, minlength=16).min() > 0
  assert model.joint_names == body.SMPL_JOINT_NAMES


def test_loaded_through_the_smpl_file_path(model, cache):
  again = body.load_body_model(cache)
  mtime = cache.stat().st_mtime_ns
  cached = body.builtin_body_model()
  assert cache.stat().st_mtime_ns == mtime  # not rebuilt
  for a, b, c in zip(jax.tree.leaves(model), jax.tree.leaves(again), jax.tree.leaves(cached)):
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
  assert again.part_names == model.part_names


def test_regressor_reproduces_mannequin_joints(model):
  ref = mannequin.Mannequin("wooden")
  joints = ref.joint_transforms(ref.rest_pose())[:24, :3, 3]
  err = np.linalg.norm(model.J_regressor @ model.v_template - joints, axis=1)
  assert err.max() < 1e-3, err.max()


def test_zero_pose_is_mannequin_rest(model):
  ref = mannequin.Mannequin("wooden")
  out = body.forward(model, np.zeros(10, np.float32), np.zeros((24, 3), np.float32), np.zeros(3, np.float32))
  np.testing.assert_allclose(out.vertices, ref.vertices(ref.rest_pose()), atol=1e-5)


def _mannequin_vertices(ref, betas, pose, transl):
  ref.reshape(betas)
  params = ref.rest_pose()
  params.update(body_pose=pose[1:22], pelvis_rotation=pose[0], global_translation=transl)
  return ref.vertices(params)


def test_posed_vertices_match_mannequin(model):
  """Random moderate poses (0.3 rad per axis), mannequin's own skinning as reference."""
  ref = mannequin.Mannequin("wooden")
  rng = np.random.default_rng(0)
  forward = jax.jit(body.forward)
  worst = 0.0
  for _ in range(3):
    pose = np.zeros((24, 3), np.float32)
    pose[:22] = rng.normal(scale=0.3, size=(22, 3))  # mannequin cannot rotate SMPL's hand joints 22, 23
    transl = rng.normal(scale=0.5, size=3).astype(np.float32)
    betas = np.zeros(10, np.float32)
    err = np.linalg.norm(forward(model, betas, pose, transl).vertices
                         - _mannequin_vertices(ref, betas, pose, transl), axis=1)
    worst = max(worst, float(err.max()))
  print(f"builtin vs mannequin-x, zero betas: max vertex error {worst:.2e} m")
  assert worst < 1e-5


def test_shaped_posed_vertices_match_mannequin_within_shape_fit(model, cache):
  """With betas the shape space is a linear fit of mannequin's (mildly nonlinear) reshaping."""
  ref = mannequin.Mannequin("wooden")
  rng = np.random.default_rng(1)
  betas = rng.normal(size=10).astype(np.float32)
  pose = np.zeros((24, 3), np.float32)
  pose[:22] = rng.normal(scale=0.3, size=(22, 3))
  transl = np.zeros(3, np.float32)
  err = np.linalg.norm(body.forward(model, betas, pose, transl).vertices
                       - _mannequin_vertices(ref, betas, pose, transl), axis=1)
  print(f"builtin vs mannequin-x, betas ~ N(0, 1): max vertex error {err.max():.2e} m, mean {err.mean():.2e} m; "
        f"stored shape-fit error {float(np.load(cache)['shape_fit_max_error_m']):.2e} m")
  assert err.max() < 0.01 and err.mean() < 0.003
