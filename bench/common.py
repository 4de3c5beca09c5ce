"""Pieces the bench scripts share: the ground-truth mask's regions and markdown table printing."""

from collections.abc import Mapping, Sequence


def mask_regions(mask):
  """(foreground, inside, boundary) bool masks of an (H, W) mask: inside = eroded by one pixel (3 x 3),
  boundary = the foreground pixels erosion removes."""
  import cv2  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  fg = np.asarray(mask) > 0.5
  inside = cv2.erode(fg.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
  return fg, inside, fg & ~inside


def print_markdown(first: str, columns: Sequence[tuple[str, str, str]], rows: Mapping[str, Mapping[str, float]]) -> None:
  """Prints a markdown table: the row name under `first`, then one (header, key, format) column each."""
  print("| " + " | ".join([first] + [h for h, _, _ in columns]) + " |")
  print("| --- |" + " ---: |" * len(columns))
  for name, r in rows.items():
    print("| " + " | ".join([name] + [format(r[k], f) for _, k, f in columns]) + " |")
