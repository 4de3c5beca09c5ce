"""Your own video: `--mode=prepare` turns `data.video` into a HumanNeRF-layout dataset in WORKDIR/data,
which `--mode=train` (running prepare first when WORKDIR/data is missing) trains on.

  python -m fmgs_jax.main --config=configs/video.py --config.data.video=clip.mp4 --workdir=runs/me --mode=prepare
  python -m fmgs_jax.main --config=configs/video.py --config.data.video=clip.mp4 --workdir=runs/me --mode=train

The models are local checkpoints (third_party/README.md): prepare.seg_model and prepare.pose_model.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root: load from any cwd
from configs import humannerf  # pylint: disable=g-import-not-at-top
from fmgs_jax.fit import sequence  # pylint: disable=g-import-not-at-top


def get_config():
  c = humannerf.get_config()
  c.body.convention = "smpl"  # the prepared poses are SMPL-format poses of the built-in template at SMPL's rest root
  c.data.root = ""  # "" = WORKDIR/data, where prepare writes the dataset
  c.data.video = ""  # the clip (any format ffmpeg reads) or a folder of frames (*.png / *.jpg in name order)
  c.data.frames.train = (0, -1, 1)  # every prepared frame trains
  c.data.frames.novel_pose = (0, -1, 10)  # evaluated after training: every 10th frame, seen in training (a check of the fit, not held out); to hold out, e.g. train (0, 200, 1), novel_pose (200, -1, 5)
  # No foundation-model priors unless configured: set c.priors.backend / *_model, run --mode=priors after
  # prepare, and give these weights (configs/default.py: 0.1 each).
  c.loss.depth.weight = 0.0  # needs depth priors
  c.loss.normal_prior.weight = 0.0  # needs normal priors
  c.loss.semantic.weight = 0.0  # needs part priors
  c.priors.backend = "sapiens"  # --mode=priors on the prepared frames uses real models, not ground truth

  c.prepare = ml_collections.ConfigDict()
  p = c.prepare
  p.every = 1  # keep every k-th decoded frame (2 halves a 60 fps clip to 30)
  p.max_frames = 0  # at most this many kept frames, from the start (0 = all)
  p.size = 540  # longer image side of the dataset, pixels (0 = the video's): training cost grows with it
  p.focal_px = 0.0  # focal length, pixels at `size`, when known (0 = from fov_deg)
  p.fov_deg = 60.0  # field of view across the longer side: a phone's main camera filming video (~60-70)
  p.seg_model = ""  # person segmentation: Sapiens seg .pt2 / Sapiens2 seg folder / transformers segmentation folder
  p.pose_model = ""  # 2D keypoints: a VitPoseForPoseEstimation folder (COCO-17), e.g. usyd-community/vitpose-base-simple
  p.device = "auto"  # torch device of both models: auto (cuda if available) | cpu | cuda | cuda:N
  p.batch_size = 4  # frames per model forward pass
  p.mask_threshold = 0.5  # person probability above which a pixel is the person's
  p.min_person_fraction = 0.005  # a frame whose person covers less of the image is dropped (no person)
  p.fit_max_size = 256  # the body fit sees masks and keypoints at most this many pixels a side
  p.fit = sequence.default_config()  # the body fit's settings (fmgs_jax/fit/sequence.py, one comment each)
  return c

