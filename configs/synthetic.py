"""The built-in synthetic capture: no download, ground-truth geometry for scoring. The quickstart default."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root: load from any cwd
from configs import default  # pylint: disable=g-import-not-at-top


def get_config():
  c = default.get_config()
  c.data.name = "synthetic"
  return c
