"""The built-in synthetic capture: no download, ground-truth geometry for scoring. The quickstart default.

Sized so the quickstart trains and evaluates on a 2-core CPU in about a quarter of an hour: 128 x 128
frames, a 10k-face template (one surfel per face), smaller hash grids, 8-pixel tiles (small surfels
touch few tiles) and 500 steps. The paper's density and schedule are one override set away:

  --config.data.synthetic.height=256 --config.data.synthetic.width=256 --config.data.synthetic.focal=420
  --config.body.num_faces=60000 --config.model.grid.num_levels=16 --config.model.grid.log2_table_size=16
  --config.model.grid.max_resolution=2048 --config.render.tile_size=16 --config.train.steps=2000

(configs/default.py holds those values; zju.py and people_snapshot.py keep them.)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root: load from any cwd
from configs import default  # pylint: disable=g-import-not-at-top


def get_config(variant: str = ""):
  """The quickstart's config; `configs/synthetic.py:tiny` is the tests' 48-pixel, untrained variant."""
  if variant not in ("", "tiny"):
    raise ValueError(f"configs/synthetic.py: unknown variant {variant!r} (known: tiny)")
  c = default.get_config()
  c.data.name = "synthetic"  # the built-in capture, generated on first use
  c.body.convention = c.data.synthetic.get_ref("convention")  # the template in the frame the capture's poses use
  c.data.synthetic.height = 128  # quarter of the paper's pixels: minutes on 2 cores
  c.data.synthetic.width = 128
  c.data.synthetic.focal = 210.0  # the same field of view as 256 px at 420
  c.body.num_faces = 10000  # one surfel per face; 60k in the paper
  c.model.grid.num_levels = 12  # smaller hash grids for 128 px
  c.model.grid.log2_table_size = 15
  c.model.grid.max_resolution = 512
  c.render.tile_size = 8  # small surfels touch few tiles
  # Geometry at 128 px (a pixel ~15 mm on the body): chosen by short runs, history in docs/tuning.md.
  c.optim.groups.non_rigid.lr_final = 1e-4  # decay lets the geometry settle after ~150 steps
  c.optim.groups.tilt.lr_final = 1e-4  # the tilt settles alike
  c.render.low_pass_radius = 0.3  # px: a sharper footprint spills less past the surface (0.33 px vs 0.89)
  c.surfels.init_scale = 1.0  # surfels of one face size still cover the body (0.5% holes)
  c.loss.mask.weight = 0.5  # the silhouette, the one absolute cue to the clothing offset, wins over colour
  c.model.max_rotation = 0.15  # rad: colour cannot turn surfels away from the surface
  c.optim.groups.opacity.lr = 0.005  # 0.05 fades ~10% of surfels and lets back surfaces show through
  c.loss.depth.alpha = 100.0  # metres: saturates pairs ordered right, acts on wrong ones (docs/tuning.md)
  c.train.steps = 450  # colour still improves, geometry has settled (600 was worse on normals)
  c.train.log_every = 25  # TensorBoard scalars
  c.train.image_every = 100  # training renders written to WORKDIR/train_renders
  c.train.checkpoint_every = 100  # an interrupted run loses at most ~1.5 minutes
  if variant == "tiny":
    _make_tiny(c)
  return c


def _make_tiny(c):
  """48 x 48, 2 training frames, 1 held-out frame per split, 1000 faces, small fields, 0 steps (the
  initial avatar's checkpoint), no subject fit (tests/fit has its own): for tests about plumbing."""
  c.fit.enabled = False  # the subject fit has its own tests (tests/fit)
  s = c.data.synthetic
  s.height, s.width, s.focal = 48, 48, 80.0  # small enough for CPU tests, the body still fills the frame
  s.num_train_frames, s.num_novel_pose_frames, s.num_novel_view_cameras, s.num_novel_view_frames = 2, 1, 1, 1  # one frame per split
  s.supersample = 1  # no anti-aliased ground truth needed
  c.body.num_faces = 1000  # 1000 surfels
  c.model.grid.num_levels, c.model.grid.log2_table_size, c.model.grid.max_resolution = 4, 10, 64  # tiny hash grid
  c.model.skinning_grid.num_levels, c.model.skinning_grid.log2_table_size = 2, 8  # tiny skinning grid
  c.model.geometry_hidden, c.model.tilt_hidden, c.model.skinning_hidden = (16,), (16,), (16,)  # one narrow layer each
  c.train.steps = 0  # a checkpoint of the initial avatar
