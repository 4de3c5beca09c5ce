"""A single-camera video prepared in HumanNeRF's folder layout (images/, masks/, cameras.pkl, mesh_infos.pkl)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root: load from any cwd
from configs import default  # pylint: disable=g-import-not-at-top


def get_config():
  c = default.get_config()
  c.body.convention = "smpl"  # HumanNeRF's poses, Rh/Th and tpose_joints belong to SMPL: the built-in template sits at SMPL's rest root
  c.data.name = "humannerf"
  c.data.root = ""  # e.g. /data/my_video (holds images/, masks/, cameras.pkl, mesh_infos.pkl)
  c.data.frames.train = (0, -1, 1)
  c.data.frames.novel_pose = (0, 0, 1)  # none by default: hold out a range, e.g. (400, -1, 10)
  c.eval.lpips_net = "vgg"  # scored like ZJU-MoCap (bbox protocol), with the backbone its papers report
  return c
