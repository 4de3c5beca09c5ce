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


def get_config():
  c = default.get_config()
  c.data.name = "synthetic"
  c.data.synthetic.height = 128
  c.data.synthetic.width = 128
  c.data.synthetic.focal = 210.0  # the same field of view as 256 px at 420
  c.body.num_faces = 10000
  c.model.grid.num_levels = 12
  c.model.grid.log2_table_size = 15
  c.model.grid.max_resolution = 512
  c.render.tile_size = 8
  c.train.steps = 500
  c.train.log_every = 25
  c.train.image_every = 100
  c.train.checkpoint_every = 100
  return c
