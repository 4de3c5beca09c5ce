"""Where a trained run's normal error comes from: inside the body, its silhouette, and the tilts.

  python bench/normal_breakdown.py runs/ablations/full runs/ablations/no_normal_prior [--json]

Each argument is a finished run folder (config.json + checkpoints, trained on a dataset with
ground-truth normals, e.g. configs/synthetic.py). For its held-out novel-view frames the rendered
normal's angle to the ground truth (degrees) is split into:

  inside        ground-truth mask eroded by one pixel
  edge, a>=0.9  the mask's one-pixel boundary where the render covers the pixel (opacity >= 0.9)
  edge, a<0.9   the boundary where it does not: such pixels see only the tails of nearby surfels
  edge share    fraction of boundary pixels with opacity < 0.9

`tilt / bound` is the mean learned tilt |delta_r| over c.model.max_rotation (first training pose):
how much of the allowed rotation the surfels use. `prior inside` / `prior edge` score the run's
normal prior itself (training frames, where one is cached) on the same masks, for comparison.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # pylint: disable=g-import-not-at-top


def breakdown(workdir: str) -> dict[str, float]:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from fmgs_jax.data import load_dataset  # pylint: disable=g-import-not-at-top
  from fmgs_jax.eval import evaluate, metrics  # pylint: disable=g-import-not-at-top
  from fmgs_jax.train import loop  # pylint: disable=g-import-not-at-top

  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    sys.exit(f"{path} is missing: pass a run folder written by `python -m fmgs_jax.main`")
  with open(path) as f:
    c = ml_collections.ConfigDict(json.load(f))
  _, train_frames = loop.load_training_frames(c, workdir)
  av, params, _ = loop.restore_params(c, workdir, train_frames)
  ds = load_dataset(c.data, "novel_view", default_root=loop.data_root(c, workdir))
  renderers = {}

  def error(normal, gt, region):  # mean angle (deg) over the region, NaN when it is empty
    return metrics.normal_angular_error(normal, gt, region) if region.any() else float("nan")

  sums = {k: [] for k in ("all", "inside", "edge_covered", "edge_uncovered", "edge_share")}
  for i in range(len(ds)):
    frame = ds[i]
    if frame.gt_normal is None:
      sys.exit(f"{workdir}: novel-view frames have no ground-truth normals (synthetic capture only)")
    h, w = frame.mask.shape
    if (h, w) not in renderers:
      renderers[(h, w)] = loop.make_render_fn(av, c, w, h)
    out = jax.device_get(renderers[(h, w)](params, evaluate.eval_batch(frame)))
    normal, covered = np.asarray(out.normal[0]), np.asarray(out.alpha[0]) >= 0.9
    fg, inner, edge = common.mask_regions(frame.mask)
    sums["all"].append(error(normal, frame.gt_normal, fg))
    sums["inside"].append(error(normal, frame.gt_normal, inner))
    sums["edge_covered"].append(error(normal, frame.gt_normal, edge & covered))
    sums["edge_uncovered"].append(error(normal, frame.gt_normal, edge & ~covered))
    sums["edge_share"].append((edge & ~covered).sum() / max(edge.sum(), 1))
  row = {k: float(np.nanmean(v)) for k, v in sums.items()}

  frame0 = train_frames[0]
  mu = jnp.asarray(av.template.face_centres)

  def tilt(fields):
    return fields.geometry(mu, fields.encode_pose(jnp.asarray(frame0.pose, jnp.float32))).rotation

  rotation = jax.jit(lambda p: av.fields.apply(p, method=tilt))(params["fields"])
  row["tilt_over_bound"] = float(np.mean(np.linalg.norm(np.asarray(rotation), axis=-1)) / c.model.max_rotation)
  prior_in, prior_edge = [], []
  for frame in train_frames:
    if frame.prior_normal is None or frame.gt_normal is None:
      break
    _, inner, edge = common.mask_regions(frame.mask)
    prior_in.append(error(frame.prior_normal, frame.gt_normal, inner))  # zero (invalid) priors are skipped
    prior_edge.append(error(frame.prior_normal, frame.gt_normal, edge))
  row["prior_inside"] = float(np.nanmean(prior_in)) if prior_in else float("nan")
  row["prior_edge"] = float(np.nanmean(prior_edge)) if prior_edge else float("nan")
  return row


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("runs", nargs="+", help="run folders (config.json + checkpoints)")
  p.add_argument("--json", action="store_true", help="also print the rows as one JSON line")
  args = p.parse_args(argv)
  rows = {run: breakdown(run) for run in args.runs}
  common.print_markdown("run", [("normal err (deg)", "all", ".1f"), ("inside", "inside", ".1f"),
                                ("edge, a>=0.9", "edge_covered", ".1f"), ("edge, a<0.9", "edge_uncovered", ".1f"),
                                ("edge share a<0.9", "edge_share", ".2f"), ("tilt / bound", "tilt_over_bound", ".2f"),
                                ("prior inside", "prior_inside", ".1f"), ("prior edge", "prior_edge", ".1f")], rows)
  if args.json:
    print(json.dumps(rows))


if __name__ == "__main__":
  main()
