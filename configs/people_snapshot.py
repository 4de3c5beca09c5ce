"""PeopleSnapshot (preprocessed layout shared by InstantAvatar / 3DGS-Avatar / GaussianAvatar).

Select the subject with `--config=configs/people_snapshot.py:male-3-casual` (the default); its standard
train / validation / test frame ranges (InstantAvatar's, as used by 3DGS-Avatar) are set below.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root: load from any cwd
from configs import default  # pylint: disable=g-import-not-at-top

# (start, stop, step) over the sorted images; the test range holds the novel poses.
FRAMES = {
    "male-3-casual": dict(train=(0, 456, 4), val=(456, 457, 1), test=(456, 676, 4)),
    "male-4-casual": dict(train=(0, 660, 6), val=(660, 661, 1), test=(660, 873, 6)),
    "female-3-casual": dict(train=(0, 446, 4), val=(446, 447, 1), test=(446, 648, 4)),
    "female-4-casual": dict(train=(0, 336, 4), val=(335, 336, 1), test=(335, 524, 4)),
}


def get_config(subject="male-3-casual"):
  c = default.get_config()
  c.body.convention = "smpl"  # PeopleSnapshot's poses, trans and betas belong to SMPL: the built-in template sits at SMPL's rest root
  c.data.name = "people_snapshot"
  c.data.root = ""  # e.g. /data/people_snapshot/male-3-casual
  c.data.subject = subject
  if subject in FRAMES:
    for split, frames in FRAMES[subject].items():
      c.data.frames[split] = frames
  c.data.frames.novel_pose = c.data.frames.test  # novel poses = the held-out test frames (one camera)
  c.eval.lpips_net = "alex"  # the LPIPS backbone PeopleSnapshot papers report
  return c
