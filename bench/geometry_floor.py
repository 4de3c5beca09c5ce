"""What the surfel representation scores when its geometry is exact: the floor under the geometry metrics.

  python bench/geometry_floor.py --config=configs/synthetic.py --workdir=/tmp/fmgs_floor [--config.x=y ...]
  python bench/geometry_floor.py --config=configs/synthetic.py --json

For each held-out novel-view frame of the synthetic capture, surfels are placed on two meshes exactly
as the avatar places them (one per face of the mesh resampled to `body.num_faces`, face frames,
`surfels.init_scale` face sizes, `surfels.init_opacity`) and rasterized with the configured renderer
settings (`render.*`, through the training step's `render_batch`):

  ground truth   the posed ground-truth mesh (body + clothing): a perfectly learned avatar
  template       the posed template without clothing: the untrained avatar (learned offsets 0)

Columns: normal error (deg) over the ground-truth mask, inside it (eroded by one pixel) and on its
one-pixel boundary; `spill px` = rendered opacity outside the ground-truth mask (summed within two
pixels of it) per boundary pixel, i.e. how far the rendered silhouette spills over the true one (the
mask loss pulls the surface inwards by about that much); `holes %` = missing opacity inside the mask;
Chamfer (mm) of the mesh's surface against the ground truth (`eval.chamfer_samples` points each).
"""

import json
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # pylint: disable=g-import-not-at-top

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/*.py")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/fmgs_floor", "where the synthetic capture is cached")
_JSON = flags.DEFINE_bool("json", False, "also print the rows as one JSON line")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  import cv2  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from fmgs_jax import body as body_lib  # pylint: disable=g-import-not-at-top
  from fmgs_jax.data import load_dataset, stack_frames  # pylint: disable=g-import-not-at-top
  from fmgs_jax.eval import metrics  # pylint: disable=g-import-not-at-top
  from fmgs_jax.geometry import frames as frames_lib  # pylint: disable=g-import-not-at-top
  from fmgs_jax.geometry import subdivide  # pylint: disable=g-import-not-at-top
  from fmgs_jax.geometry import surfels as surfels_lib  # pylint: disable=g-import-not-at-top
  from fmgs_jax.train import loop  # pylint: disable=g-import-not-at-top
  from fmgs_jax.train import step as step_lib  # pylint: disable=g-import-not-at-top

  c = _CONFIG.value
  if c.data.name != "synthetic":
    sys.exit("bench/geometry_floor.py needs ground-truth meshes: use configs/synthetic.py")
  workdir = _WORKDIR.value
  loop.load_training_frames(c, workdir)  # makes the capture when missing
  root = loop.data_root(c, workdir)
  ds = load_dataset(c.data, "novel_view", default_root=root)
  av = loop.build_avatar(c, [ds[0]], workdir)
  template, body = av.template, av.body

  def surfel_render(vertices, faces, frame):
    """The avatar's placement with zero residuals, rendered by the training step's renderer call."""
    f = jnp.asarray(faces, jnp.int32)
    n = f.shape[0]
    s = surfels_lib.place_surfels(frames_lib.face_frames(jnp.asarray(vertices, jnp.float32), f), jnp.zeros((n,)),
                                  jnp.zeros((n, 2)), jnp.zeros((n, 3)), c.surfels.init_scale)
    q = {"means": s.means[None], "rotations": s.rotations[None], "scales": s.scales[None],
         "opacities": jnp.full((1, n), c.surfels.init_opacity), "colors": jnp.ones((1, n, 3)),
         "semantics": jnp.zeros((1, n, 0))}
    h, w = frame.mask.shape
    batch = step_lib.batch_from_frames(stack_frames([frame]))
    out = step_lib.render_batch(q, batch, w, h, jnp.zeros(3), c.render)
    return jax.tree.map(lambda x: np.asarray(x)[0], out)

  rows = {"ground truth": [], "template": []}
  for i in range(len(ds)):
    frame = ds[i]
    gt = ds.gt_mesh(i)
    gt_pts = metrics.sample_surface(np.asarray(gt.vertices), np.asarray(gt.faces), c.eval.chamfer_samples, seed=1)
    resampled = subdivide.resample(np.asarray(gt.vertices, np.float32), np.asarray(gt.faces, np.int32),
                                   c.body.num_faces)
    posed = body_lib.forward(body, betas=jnp.asarray(av.betas, jnp.float32), pose=jnp.asarray(frame.pose, jnp.float32),
                             transl=jnp.asarray(frame.transl, jnp.float32))
    tmpl_v = np.asarray(body_lib.skin_points(jnp.asarray(template.vertices), jnp.asarray(template.weights),
                                             posed.transforms))
    meshes = {"ground truth": (resampled.vertices, resampled.faces), "template": (tmpl_v, template.faces)}
    fg, inner, boundary = common.mask_regions(frame.mask)
    outer = (cv2.dilate(fg.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & ~fg
    for name, (v, f) in meshes.items():
      out = surfel_render(v, f, frame)
      normal, alpha = out.normal, out.alpha
      chamfer = metrics.chamfer_fscore(metrics.sample_surface(np.asarray(v), np.asarray(f), c.eval.chamfer_samples,
                                                              seed=0), gt_pts, c.eval.fscore_threshold)["chamfer_mm"]
      rows[name].append(dict(
          normal_error_deg=metrics.normal_angular_error(normal, frame.gt_normal, fg),
          normal_error_inside_deg=metrics.normal_angular_error(normal, frame.gt_normal, inner),
          normal_error_boundary_deg=metrics.normal_angular_error(normal, frame.gt_normal, boundary),
          spill_px=float(alpha[outer].sum() / max(boundary.sum(), 1)),
          holes_pct=float(100 * (1 - alpha[fg]).mean()), chamfer_mm=float(chamfer)))
  table = {name: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} for name, rs in rows.items()}
  print(f"{len(ds)} novel-view frames, {template.faces.shape[0]} surfels, init_scale {c.surfels.init_scale}, "
        f"low-pass {c.render.low_pass_radius:.3g} px, {ds[0].mask.shape[1]} x {ds[0].mask.shape[0]}")
  common.print_markdown("mesh", [("normal err (deg)", "normal_error_deg", ".1f"),
                                 ("inside", "normal_error_inside_deg", ".1f"),
                                 ("boundary", "normal_error_boundary_deg", ".1f"), ("spill px", "spill_px", ".2f"),
                                 ("holes %", "holes_pct", ".2f"), ("Chamfer (mm)", "chamfer_mm", ".1f")], table)
  if _JSON.value:
    print(json.dumps(table))


if __name__ == "__main__":
  app.run(main)
