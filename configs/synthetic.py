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
  c.data.name = "synthetic"
  c.body.convention = c.data.synthetic.get_ref("convention")  # the template in the frame the capture's poses use
  c.data.synthetic.height = 128
  c.data.synthetic.width = 128
  c.data.synthetic.focal = 210.0  # the same field of view as 256 px at 420
  c.body.num_faces = 10000
  c.model.grid.num_levels = 12
  c.model.grid.log2_table_size = 15
  c.model.grid.max_resolution = 512
  c.render.tile_size = 8
  # Geometry at 128 px, where a pixel is ~15 mm on the body. Chosen on this capture by short runs
  # (`python -m fmgs_jax.main --config=configs/synthetic.py --config.train.steps=150 --config.x=y`),
  # scored on novel views; `python bench/geometry_floor.py` gives the representation's floor:
  #   settings (150 steps unless noted)                        normal err  Chamfer  PSNR
  #   low-pass 0.5 px, init_scale 1.5, opacity lr 0.005, mask 0.1  14.3 deg   12.8 mm  28.8
  #   same, L_iso on posed vs canonical neighbours (train/step)     14.3       12.6     28.8
  #   same, mask weight 0.5                                          13.3       11.7     28.9
  #   same, mask weight 1.0, max_rotation 0.35 -> 0.15 rad          13.2       11.6     28.9
  #   low-pass 0.3 px, init_scale 1.0, mask 0.5, rotation 0.15      13.5        8.9     29.9
  #   same, 450 steps                                               14.6       10.2     32.5
  #   same, 450 steps, non-rigid lr decaying 1e-3 -> 1e-4           13.8        9.0     32.4
  #   same, tilt in its own MLP, the normal losses update only it    13.6        8.9     32.4  (kept)
  # (the rows above: the capture before wrinkles, data.synthetic.wrinkle_amplitude=0; with them, 450
  # steps, depth alpha 100 and the tilt on its own grid: 14.7 deg, 9.0 mm, 32.3 dB)
  # Why: a splat's footprint spills past the surface it sits on (Gaussian tails of surfels near edge-on,
  # plus the screen-space filter): at init_scale 1.5 / 0.5 px the rendered silhouette of the true
  # geometry is 0.89 px too wide (bench/geometry_floor.py, "spill px"), and the mask and colour losses
  # pull the surface ~1 px inwards to match the binary mask (Chamfer stayed near the untrained
  # template's 13.9 mm). A sharper footprint (0.3 px filter, surfels of one face size) spills 0.33 px
  # and still covers the body (0.5% holes). A stronger mask term lets the silhouette, the one absolute
  # cue to the clothing offset in a monocular video, win over the colour term's preference for a fat
  # template; a tighter tilt bound keeps the colour term from turning the surfels away from the
  # surface (the normal target is the surface's, the tilt is a correction). Opacity at 3DGS's lr 0.05
  # lets ~10% of surfels fade below 0.2 in 150 steps, letting back surfaces show through on
  # silhouettes; 0.005 keeps them. At a constant non-rigid lr geometry gets worse after ~150 steps
  # (Chamfer 8.9 -> 10.2 mm, normals 13.5 -> 14.6 deg by 450) while colour still improves; decaying it
  # (as 3DGS-Avatar's position lr decays) lets the geometry settle; the tilt MLP's lr decays alike.
  c.optim.groups.non_rigid.lr_final = 1e-4
  c.optim.groups.tilt.lr_final = 1e-4
  c.render.low_pass_radius = 0.3
  c.surfels.init_scale = 1.0
  c.loss.mask.weight = 0.5
  c.model.max_rotation = 0.15
  c.optim.groups.opacity.lr = 0.005
  # Depth-prior sharpness (loss.depth.alpha, paper: 10). Rendered depth is in metres: at alpha 10 a
  # correctly ordered pair a few cm apart sits in tanh's linear part, so the ranking loss keeps pushing
  # it apart and stretches the relief seen from the training camera. At 100 such pairs are saturated
  # and the loss acts on wrong or near-tied orders. 450 steps, Chamfer novel views (novel poses):
  # alpha 10: 8.89 (9.08) mm, worse than no depth prior's 8.81 (9.23); alpha 100: 8.70 (8.64) mm.
  c.loss.depth.alpha = 100.0
  c.train.steps = 450
  c.train.log_every = 25
  c.train.image_every = 100
  c.train.checkpoint_every = 100
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
