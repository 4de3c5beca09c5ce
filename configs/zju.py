"""ZJU-MoCap, monocular protocol (train on one camera; novel views on the others, novel poses on held-out frames).

Frame ranges follow 3DGS-Avatar's monocular ZJU-MoCap setting: train on camera 1 (index 0), frames
0..569; novel views on cameras 2..23 every 30th of those frames; novel poses on the frames after 570.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root: load from any cwd
from configs import default  # pylint: disable=g-import-not-at-top


def get_config():
  c = default.get_config()
  c.body.convention = "smpl"  # ZJU-MoCap's Rh/Th and shapes belong to SMPL: the built-in template sits at SMPL's rest root
  c.data.name = "zju"
  c.data.root = ""  # e.g. /data/zju_mocap/CoreView_377
  c.data.image_scale = 0.5  # 1024x1024 -> 512x512, as 3DGS-Avatar
  c.data.train_camera = 0
  c.data.novel_view_cameras = ()  # every other camera
  c.data.novel_pose_cameras = (0,)
  c.data.frames.train = (0, 570, 1)
  c.data.frames.novel_view = (0, 570, 30)
  c.data.frames.novel_pose = (570, -1, 30)
  c.eval.lpips_net = "vgg"  # the LPIPS backbone ZJU-MoCap papers report
  return c
