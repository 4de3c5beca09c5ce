"""The template in SMPL's frame, retargeting, and the subject fit on a capture whose subject is not the
template (its own skeleton, root and shape): checked against the capture's truth."""

import os

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from configs import synthetic as synthetic_config
from fmgs_jax import body as body_lib
from fmgs_jax.body import convention, skeleton
from fmgs_jax.data import cameras, load_dataset, synthetic
from fmgs_jax.fit import stage, subject


@pytest.fixture(scope="module")
def template():
  return body_lib.place_template(body_lib.builtin_body_model(), "smpl")


def test_template_root_is_smpl_pelvis_and_smpl_style_data_place_it(template):
  native = body_lib.builtin_body_model()
  assert np.linalg.norm(body_lib.rest_joints(native)[0] - convention.SMPL_REST_ROOT) > 0.1  # 13 cm off before
  # ZJU / HumanNeRF data: x_world = R(Rh) x_body + Th, x_body from SMPL with pose[0] = 0; SMPL's root is
  # its rest pelvis, so the data put the root at R(Rh) @ pelvis + Th.
  rng = np.random.default_rng(0)
  rh, th = rng.normal(size=3), rng.normal(size=3)
  pose = np.zeros((24, 3), np.float32)
  pose[1:] = rng.normal(size=(23, 3)) * 0.3
  out = body_lib.forward(template, jnp.zeros(10), jnp.asarray(pose), jnp.zeros(3))
  expected = Rotation.from_rotvec(rh).as_matrix() @ convention.SMPL_REST_ROOT + th
  # The pipeline folds Rh/Th into the camera (world_to_camera' = world_to_camera @ [R(Rh) | Th]); the
  # world point is what that transform maps the body-frame root to.
  fold = cameras.fold_global_transform(np.eye(4), rh, th)
  root_world = fold[:3, :3] @ np.asarray(out.joints[0], np.float64) + fold[:3, 3]
  np.testing.assert_allclose(root_world, expected, atol=1e-5)
  # Global orientation turns the body about that root (SMPL): the root does not move.
  pose[0] = rng.normal(size=3)
  out = body_lib.forward(template, jnp.zeros(10), jnp.asarray(pose), jnp.asarray(th, jnp.float32))
  np.testing.assert_allclose(np.asarray(out.joints[0]), convention.SMPL_REST_ROOT + th, atol=1e-5)


def test_axes_check_names_a_mirrored_model(template):
  mirrored = template.replace(v_template=np.asarray(template.v_template) * np.array([1, 1, -1], np.float32))
  with pytest.raises(ValueError, match="z must be forward"):
    body_lib.check_axes(mirrored, "mirrored.npz")


def test_retarget_lands_joints_and_keeps_topology(template):
  rng = np.random.default_rng(1)
  joints = body_lib.rest_joints(template)
  targets = skeleton.bone_targets(joints, np.asarray(template.parents), rng.uniform(0.8, 1.2, 24),
                                  joints[0] + rng.normal(size=3) * 0.05)
  out = body_lib.retarget(template, targets)
  np.testing.assert_allclose(body_lib.rest_joints(out), targets, atol=1e-5)
  for name in ("faces", "weights", "part_ids", "parents", "shapedirs"):
    np.testing.assert_array_equal(np.asarray(getattr(out, name)), np.asarray(getattr(template, name)))
  # Joints moved by one translation: the mesh moves by exactly that translation.
  t = np.array([0.03, -0.02, 0.01])
  moved = body_lib.retarget(template, joints + t)
  np.testing.assert_allclose(np.asarray(moved.v_template), np.asarray(template.v_template) + t, atol=1e-5)
  # A leg 20% longer: the ankle-to-knee distance of the mesh's shin grows by about that much.
  f = np.ones(24)
  knee, ankle = 4, 7
  f[ankle] = 1.2
  longer = body_lib.retarget(template, skeleton.bone_targets(joints, np.asarray(template.parents), f, joints[0]))
  shin = np.asarray(template.weights)[:, knee] > 0.9
  lo = lambda m: np.asarray(m.v_template)[shin, 1].min()
  span = joints[knee, 1] - lo(template)
  assert 1.1 < (joints[knee, 1] - lo(longer)) / span < 1.3


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
  c = synthetic_config.get_config()
  s = c.data.synthetic
  s.height, s.width, s.focal = 96, 96, 158.0
  s.num_train_frames, s.num_novel_pose_frames, s.num_novel_view_cameras, s.num_novel_view_frames = 8, 1, 1, 1
  s.supersample = 1
  c.data.root = str(tmp_path_factory.mktemp("capture"))
  c.fit.num_frames, c.fit.steps, c.fit.offset_steps, c.fit.num_faces = 8, 120, 30, 2000
  workdir = str(tmp_path_factory.mktemp("fit"))
  report = stage.run_fit(c, workdir)
  return c, workdir, report


def test_fit_recovers_the_subjects_skeleton_and_silhouette(fitted):
  c, workdir, report = fitted
  truth = np.asarray(synthetic.subject_truth(c.data.root)["rest_joints"])
  model, betas = stage.subject_body(c, workdir, np.zeros(10))
  err = np.linalg.norm(body_lib.rest_joints(model) - truth, axis=1) * 1000
  print(f"rest joints {report['rest_joint_error_mm_before']:.1f} -> {err.mean():.1f} mm, IoU "
        f"{report['iou_before']:.3f} -> {report['iou_after']:.3f}")
  assert report["rest_joint_error_mm_before"] > 30  # the capture's subject is not the template
  assert err.mean() <= 15 and abs(err.mean() - report["rest_joint_error_mm_after"]) < 1e-3
  assert report["iou_before"] < 0.85 and report["iou_after"] >= 0.90
  assert report["keypoint_error_px_after"] < report["keypoint_error_px_before"]
  assert betas.shape == (0,) and os.path.isfile(os.path.join(workdir, "fit", "overlay.png"))


def test_fitted_mesh_overlaps_the_masks_better_by_ray_casting(fitted):
  """Independent of the fit's renderer (splats spill past a mesh's outline): ray-cast the template and
  the fitted mesh (trimesh + Embree) and score both against the masks."""
  from trimesh.ray import ray_pyembree  # pylint: disable=g-import-not-at-top
  import trimesh  # pylint: disable=g-import-not-at-top
  c, workdir, report = fitted
  fitted_model, _ = stage.subject_body(c, workdir, np.zeros(10))
  template = body_lib.model_from_config(c.body)
  ds = load_dataset(c.data, "train")

  def iou(model, betas, f):
    posed = body_lib.forward(model, jnp.asarray(betas), jnp.asarray(f.pose), jnp.asarray(f.transl))
    mesh = trimesh.Trimesh(np.asarray(posed.vertices), np.asarray(model.faces), process=False)
    h, w = f.mask.shape
    o, d = synthetic.pixel_rays(np.asarray(f.K, np.float64), np.asarray(f.world_to_camera, np.float64), h, w)
    hit = (ray_pyembree.RayMeshIntersector(mesh).intersects_first(o, d) >= 0).reshape(h, w)
    m = f.mask > 0.5
    return (hit & m).sum() / (hit | m).sum()

  before = np.mean([iou(template, np.zeros(10), ds[k]) for k in report["frames"][::2]])
  after = np.mean([iou(fitted_model, np.zeros(0), ds[k]) for k in report["frames"][::2]])
  print(f"ray-cast IoU {before:.3f} -> {after:.3f}")
  assert after > before + 0.1


def test_fit_without_masks_is_an_error_naming_the_frames(fitted, tmp_path):
  c, _, _ = fitted
  frames = subject.FitFrames(mask=np.zeros((2, 8, 8), np.float32), K=np.zeros((2, 3, 3)), world_to_camera=np.zeros((2, 4, 4)),
                             pose=np.zeros((2, 24, 3)), transl=np.zeros((2, 3)), keypoints=np.zeros((2, 24, 3)),
                             indices=np.array([0, 1]))
  ds = load_dataset(c.data, "train")
  with pytest.raises(stage.FitError, match="2 of 2 training masks are empty"):
    stage._check_frames(frames, ds)  # pylint: disable=protected-access
  c2 = c.copy_and_resolve_references()
  c2.fit.enabled = True
  with pytest.raises(stage.FitError, match="no subject fit in this workdir"):
    stage.subject_body(c2, str(tmp_path), np.zeros(10))


def test_fit_with_the_datasets_rest_joints_lands_on_them(fitted):
  """A layout that stores the subject's SMPL rest joints (HumanNeRF's canonical_joints.pkl): the fitted
  model's joints are those joints exactly (retargeted, not fitted), its topology and weights kept."""
  c, _, _ = fitted
  truth = np.asarray(synthetic.subject_truth(c.data.root)["rest_joints"])
  template = body_lib.model_from_config(c.body)
  frames = subject.load_frames(load_dataset(c.data, "train"), 4, 64)
  fc = c.fit.copy_and_resolve_references()
  fc.steps, fc.offset_steps = 10, 0
  res = subject.fit_subject(template, frames, fc, rest_joints=truth, progress=False)
  np.testing.assert_allclose(body_lib.rest_joints(res.model), truth, atol=1e-5)
  np.testing.assert_array_equal(np.asarray(res.model.faces), np.asarray(template.faces))
  np.testing.assert_array_equal(np.asarray(res.model.weights), np.asarray(template.weights))
