"""--mode=view (fmgs_jax/view): viser's camera -> ours against a closed form and scipy, the render
callback against `rasterize` called directly, the server's page over HTTP, and the page in a real
headless Chromium showing the avatar."""

import math
import urllib.request

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from fmgs_jax.view import camera as camera_lib

def test_missing_extra_is_named(monkeypatch):
  import sys
  from fmgs_jax.view import server
  monkeypatch.setitem(sys.modules, "viser", None)  # as if not installed
  with pytest.raises(ImportError, match=r'pip install -e "\.\[view\]"'):
    server.import_viser()


def test_bad_view_config_names_the_field():
  from configs import default
  from fmgs_jax.view import server
  c = default.get_config()
  server.check_view_config(c.view)
  c.view.port = 70000
  with pytest.raises(ValueError, match="view.port"):
    server.check_view_config(c.view)


def test_viser_camera_closed_form():
  # A camera at (0, 0, 3) looking down -z at the origin, world y up: its OpenCV axes in the world are
  # x = (1, 0, 0), y (down) = (0, -1, 0), z (forward) = (0, 0, -1): R = diag(1, -1, -1), a half turn
  # about x, quaternion (0, 1, 0, 0).
  fov, w, h = math.radians(60.0), 160, 120
  cam = camera_lib.viser_to_camera((0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 3.0), fov, w, h)
  f = 60.0 / math.tan(math.radians(30.0))  # (H / 2) / tan(fov / 2)
  np.testing.assert_allclose(cam.K, [[f, 0, 80], [0, f, 60], [0, 0, 1]], rtol=1e-6)
  point = np.array([0.5, 0.25, 1.0, 1.0])  # 2 m in front of the camera, right and up of its axis
  x, y, z = (cam.world_to_camera @ point)[:3]
  np.testing.assert_allclose([x, y, z], [0.5, -0.25, 2.0], atol=1e-6)
  uv = (np.asarray(cam.K) @ [x, y, z])[:2] / z
  np.testing.assert_allclose(uv, [80 + f * 0.25, 60 - f * 0.125], rtol=1e-6)
  # The top edge of the image is fov / 2 above the axis.
  top = np.array([0.0, 2.0 * math.tan(fov / 2), 1.0, 1.0])
  xyz = (cam.world_to_camera @ top)[:3]
  assert abs((np.asarray(cam.K) @ xyz)[1] / xyz[2]) < 1e-4


def test_viser_camera_matches_scipy_for_random_poses():
  rng = np.random.default_rng(0)
  for _ in range(5):
    rot = Rotation.random(random_state=rng)
    q = rot.as_quat(scalar_first=True) * rng.uniform(0.5, 2.0)  # any norm
    t = rng.normal(size=3)
    cam = camera_lib.viser_to_camera(q, t, 0.8, 64, 48)
    p = rng.normal(size=3)
    np.testing.assert_allclose((cam.world_to_camera @ np.append(p, 1.0))[:3], rot.inv().apply(p - t), atol=1e-5)
  assert camera_lib.image_size(16 / 9, 512, 16) == (912, 512)
  with pytest.raises(ValueError, match="fov"):
    camera_lib.viser_to_camera((1, 0, 0, 0), (0, 0, 0), 0.0, 8, 8)


def _viser_view_of_training_camera(K, w2c, height):
  """(wxyz, position, fov) that viser would report for a training camera (scipy, not our code)."""
  rot = np.asarray(w2c, np.float64)[:3, :3].T
  position = -rot @ np.asarray(w2c, np.float64)[:3, 3]
  return Rotation.from_matrix(rot).as_quat(scalar_first=True), position, 2 * math.atan(0.5 * height / K[1, 1])


def test_render_callback_equals_rasterize(tiny_run):
  import jax
  import jax.numpy as jnp
  from fmgs_jax import avatar as avatar_lib
  from fmgs_jax.data import load_dataset
  from fmgs_jax.eval import visualize
  from fmgs_jax.render import Camera, Surfels, rasterize
  from fmgs_jax.train import loop
  from fmgs_jax.view import poses, render_fn
  c, workdir = tiny_run
  av, params, _ = loop.restore_params(c, workdir)
  ds = load_dataset(c.data, "train")
  K, w2c = ds.camera(1)
  h, w = ds.meta.height, ds.meta.width
  q, t, fov = _viser_view_of_training_camera(K, w2c, h)
  cam = camera_lib.viser_to_camera(q, t, fov, w, h, c.render.near, c.render.far)
  pose = poses.training_poses(ds, True, av.betas)[1]
  render = render_fn.make_view_renderer(av, c)
  bg = (0.2, 0.4, 0.6)
  got = render(params, pose, cam, "colour", 1.3, bg)
  alpha = render(params, pose, cam, "alpha", 1.3, bg)
  assert list(render.programs) == [(w, h)]  # one program for both quantities

  # Directly: the avatar posed for training frame 1 and rasterized into the dataset's own camera.
  r = ds.records[1]
  posed = jax.jit(lambda p, *a: avatar_lib.frame_quantities(av, p, *a))  # eager dispatch is slow on CPU
  fq = posed(params, jnp.asarray(av.betas), jnp.asarray(r.pose).reshape(24, 3), jnp.asarray(r.transl), jnp.int32(1),
             jnp.asarray(w2c))
  s = Surfels(means=fq["means"], rotations=fq["rotations"], scales=fq["scales"] * 1.3, opacities=fq["opacities"],
              features=jnp.concatenate([fq["colors"], fq["semantics"]], -1))
  ref = rasterize(s, Camera(K=jnp.asarray(K), world_to_camera=jnp.asarray(w2c), width=w, height=h,
                            near=c.render.near, far=c.render.far),
                  jnp.concatenate([jnp.asarray(bg), jnp.zeros(av.num_classes)]), tile_size=c.render.tile_size,
                  low_pass_radius=c.render.low_pass_radius)
  want = visualize.to_uint8(np.clip(np.asarray(ref.color[..., :3]), 0, 1))
  assert got.shape == (h, w, 3) and got.dtype == np.uint8
  assert np.mean(np.asarray(ref.alpha) > 0.5) > 0.05  # the body is in view
  assert np.max(np.abs(got.astype(int) - want.astype(int))) <= 1
  np.testing.assert_allclose(alpha[..., 0] / 255.0, np.asarray(ref.alpha), atol=1 / 255 + 1e-6)
  assert np.all(got[np.asarray(ref.alpha) < 1e-3] == visualize.to_uint8(np.array(bg)[None, None])[0, 0])


@pytest.fixture(scope="module")
def viewer(tiny_run):
  pytest.importorskip("viser", reason="the viewer needs the `view` extra: pip install -e \".[view]\"")
  import browser  # tests/view, on sys.path under pytest
  from fmgs_jax.view import server
  c, workdir = tiny_run
  c = c.copy_and_resolve_references()
  c.view.port = browser.free_port()
  c.view.background = (0.0, 0.0, 0.0)
  v = server.start_viewer(c, workdir, verbose=False)
  yield v
  v.stop()


def test_server_serves_the_viser_page(viewer):
  assert len(viewer.sequence) == 3 and len(viewer.train_poses) == 2  # the pose file and the training split
  with urllib.request.urlopen(viewer.url, timeout=10) as r:
    assert r.status == 200
    page = r.read().decode("utf-8", "replace")
  assert "<html" in page.lower() and "viser" in page.lower()


def test_headless_chromium_shows_the_avatar(viewer, tmp_path):
  import browser  # tests/view, on sys.path under pytest
  if not browser.available():
    pytest.skip(f"no {browser.CHROMIUM}: apt-get install -y chromium")

  def centre(img):  # the middle of the canvas, clear of viser's panel (right) and notices (top left)
    hh, ww = img.shape[:2]
    return img[hh // 4:3 * hh // 4, ww // 5:ww // 2].astype(int)

  def shows_avatar(img):
    c = centre(img)
    black = np.all(c < 20, -1).mean()  # the rendered background (c.view.background = black)
    body = np.any(c > 40, -1).mean()  # the avatar's colours on it
    return black > 0.3 and body > 0.002

  img, good = browser.screenshot_until(viewer.url, shows_avatar, timeout=90)
  import cv2
  cv2.imwrite(str(tmp_path / "view.png"), img[..., ::-1])
  assert good, f"no avatar in the page (screenshot {tmp_path / 'view.png'})"
  assert viewer.frames_drawn, "the server sent no frame"
