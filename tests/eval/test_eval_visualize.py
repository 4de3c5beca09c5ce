"""Colour maps, grids and video writers: values at known inputs, files of the right size."""

import imageio.v2 as imageio
import numpy as np
import pytest

from fmgs_jax.eval import visualize as vis


def test_depth_colormap_near_warm_far_cool_and_robust_range():
  depth = np.tile(np.linspace(1.0, 3.0, 20), (10, 1))
  depth[0, 0] = 1000.0  # an outlier must not flatten the map
  mask = np.ones_like(depth, bool)
  mask[:, -2:] = False
  rgb = vis.colorize_depth(depth, mask, percentiles=(2, 98))
  assert rgb.shape == (10, 20, 3) and rgb.dtype == np.uint8
  near, far = rgb[5, 0].astype(int), rgb[5, 17].astype(int)
  assert near[0] > near[2] and far[2] > far[0]  # near red, far blue
  np.testing.assert_array_equal(rgb[:, -2:], 255)  # background white
  assert len({tuple(c) for c in rgb[5, :18]}) > 10  # colours vary across the gradient despite the outlier


def test_normal_colormap_conventions():
  n = np.zeros((2, 3, 3))
  n[..., 2] = -2.0  # facing an OpenCV camera, unnormalised
  n[1, 2] = 0.0  # no surface
  rgb = vis.colorize_normals(n)
  np.testing.assert_array_equal(rgb[0, 0], [128, 128, 0])
  np.testing.assert_array_equal(rgb[1, 2], [255, 255, 255])
  np.testing.assert_array_equal(vis.colorize_normals(n, convention="opengl")[0, 0], [128, 128, 255])
  right = np.zeros((1, 1, 3))
  right[..., 0] = 1.0
  np.testing.assert_array_equal(vis.colorize_normals(right)[0, 0], [255, 128, 128])


def test_semantic_palette_and_scores():
  assert vis.SAPIENS_PALETTE.shape == (28, 3) and len(vis.SAPIENS_CLASSES) == 28
  assert len({tuple(c) for c in vis.SAPIENS_PALETTE}) == 28  # distinct colours
  labels = np.arange(28).reshape(4, 7)
  np.testing.assert_array_equal(vis.colorize_semantics(labels), vis.SAPIENS_PALETTE[labels])
  scores = np.eye(28)[labels] * 3.0
  np.testing.assert_array_equal(vis.colorize_semantics(scores), vis.SAPIENS_PALETTE[labels])
  with pytest.raises(ValueError, match="palette"):
    vis.colorize_semantics(labels + 1)


def test_comparison_grid_png_size(tmp_path):
  h, w = 16, 12
  rng = np.random.default_rng(0)
  gt, render = rng.random((h, w, 3)), rng.random((h, w, 3))
  normals = rng.standard_normal((h, w, 3))
  depth = rng.uniform(1, 2, (h, w))
  sem = rng.integers(0, 28, (h, w))
  grid = vis.comparison_grid(gt, render, normals, depth, sem, alpha=np.ones((h, w)), label_height=20)
  assert grid.shape == (20 + h, 5 * w + 4 * 4, 3)
  np.testing.assert_array_equal(grid[20:, :w], vis.to_uint8(gt))  # first panel is the ground truth
  path = vis.write_png(tmp_path / "renders" / "grid.png", grid)
  back = imageio.imread(path)
  np.testing.assert_array_equal(back, grid)
  assert vis.comparison_grid(gt, render).shape == (24 + h, 2 * w + 4, 3)


def _frames(n, h, w):
  return [np.full((h, w, 3), i / max(n - 1, 1)) for i in range(n)]


def test_video_mp4_frame_count_and_size(tmp_path):
  assert vis.ffmpeg_available()
  path = vis.write_video(tmp_path / "orbit.mp4", _frames(5, 33, 47), fps=10, progress=False)
  assert path.suffix == ".mp4" and path.exists()
  reader = imageio.get_reader(path, format="FFMPEG")
  frames = [f for f in reader]
  reader.close()
  assert len(frames) == 5
  assert frames[0].shape == (34, 48, 3)  # padded to even sizes for H.264
  assert frames[0].mean() < 10 and frames[-1].mean() > 245  # black to white survives the codec
  assert not list(tmp_path.glob("*.tmp*"))
  with pytest.raises(ValueError, match="frame of shape"):
    vis.write_video(tmp_path / "bad.mp4", _frames(2, 8, 8) + [np.zeros((6, 6, 3))], progress=False)
  assert not list(tmp_path.glob("bad*"))


def test_video_png_fallback(tmp_path):
  folder = vis.write_video(tmp_path / "pose.mp4", _frames(4, 9, 11), use_ffmpeg=False, progress=False)
  files = sorted(folder.glob("*.png"))
  assert folder.name == "pose_frames" and len(files) == 4
  assert imageio.imread(files[-1]).shape == (9, 11, 3)
  with pytest.raises(ValueError, match="frame of shape"):
    vis.write_video(tmp_path / "bad.mp4", _frames(2, 9, 11) + [np.zeros((8, 8, 3))], use_ffmpeg=False,
                    progress=False)
