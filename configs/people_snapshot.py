"""PeopleSnapshot (preprocessed layout shared by InstantAvatar / 3DGS-Avatar / GaussianAvatar)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root: load from any cwd
from configs import default  # pylint: disable=g-import-not-at-top


def get_config():
  c = default.get_config()
  c.data.name = "people_snapshot"
  c.data.root = ""  # e.g. /data/people_snapshot/male-3-casual
  return c
