"""ZJU-MoCap, monocular protocol (train on one camera; novel views on the others, novel poses on held-out frames)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root: load from any cwd
from configs import default  # pylint: disable=g-import-not-at-top


def get_config():
  c = default.get_config()
  c.data.name = "zju"
  c.data.root = ""  # e.g. /data/zju_mocap/CoreView_377
  return c
