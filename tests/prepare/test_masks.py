"""Mask and box helpers of the preparation against brute-force references written here."""

import numpy as np
import pytest

from fmgs_jax import errors
from fmgs_jax.prepare import camera, keypoints, masks


def flood_fill_largest(mask):
  """Largest 8-connected component by breadth-first search over pixels."""
  h, w = mask.shape
  seen = np.zeros_like(mask, bool)
  best = []
  for r in range(h):
    for c in range(w):
      if mask[r, c] and not seen[r, c]:
        comp, todo = [], [(r, c)]
        seen[r, c] = True
        while todo:
          y, x = todo.pop()
          comp.append((y, x))
          for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
              yy, xx = y + dy, x + dx
              if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not seen[yy, xx]:
                seen[yy, xx] = True
                todo.append((yy, xx))
        if len(comp) > len(best):
          best = comp
  out = np.zeros_like(mask, bool)
  for y, x in best:
    out[y, x] = True
  return out


@pytest.mark.parametrize("seed", range(6))
def test_largest_component_matches_a_flood_fill(seed):
  rng = np.random.default_rng(seed)
  m = rng.random((23, 17)) < 0.35
  got, ref = masks.largest_component(m), flood_fill_largest(m)
  if got.sum() == ref.sum() and not np.array_equal(got, ref):  # a tie: both are largest components
    assert (got & m).sum() == got.sum()
  else:
    np.testing.assert_array_equal(got, ref)


def test_largest_component_of_an_empty_mask_is_empty():
  assert not masks.largest_component(np.zeros((5, 4), bool)).any()


def test_mask_box_is_the_tight_box_in_pixel_indices():
  m = np.zeros((10, 12), bool)
  m[3, 4] = m[7, 9] = True
  np.testing.assert_array_equal(keypoints.mask_box(m), [4, 3, 6, 5])
  np.testing.assert_array_equal(keypoints.mask_box(np.zeros((10, 12), bool)), [0, 0, 12, 10])


def test_focal_from_fov_is_the_pinhole_closed_form():
  # 90 degrees across a side: the edge ray is at 45 degrees, so f = side / 2.
  assert camera.focal_from_fov(90.0, 640) == pytest.approx(320.0)
  K = camera.intrinsics(480, 640, fov_deg=60.0)
  edge = np.array([np.tan(np.radians(30.0)), 0.0, 1.0])  # a ray at half the field of view
  u = (K @ edge)[0] / (K @ edge)[2]
  assert u == pytest.approx(640.0) and K[1, 2] == 240.0 and K[0, 0] == K[1, 1]
  np.testing.assert_allclose(camera.intrinsics(480, 640, focal_px=500.0)[0, 0], 500.0)
  np.testing.assert_allclose(camera.to_opencv(K)[:2, 2], [319.5, 239.5])
  with pytest.raises(errors.ConfigError, match="prepare.fov_deg"):
    camera.intrinsics(480, 640, fov_deg=180.0)


def test_person_classes_by_name_or_human_parsing_label_set():
  np.testing.assert_array_equal(masks.person_classes(["wall", "Person", "sky"], "x"), [0, 1, 0])
  lip = ["Background", "Hat", "Face", "Left-arm", "Pants"]
  np.testing.assert_array_equal(masks.person_classes(lip, "x"), [0, 1, 1, 1, 1])
  with pytest.raises(errors.InputError, match="cfg.json: no person class"):
    masks.person_classes(["wall", "sky", "car"], "cfg.json")
