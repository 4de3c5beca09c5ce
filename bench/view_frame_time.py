"""Viewer frame time: the render callback of --mode=view (fmgs_jax/view/render_fn.py) per quantity.

Times one frame (the avatar posed, rasterized and colour-mapped: what the viewer sends the browser,
JPEG encoding excluded) after a warm-up call that compiles; median of --repeats. Without --workdir the
avatar is the freshly initialised one of --config (the quickstart's 10k surfels for
configs/synthetic.py: the same surfel count and coverage as a trained one) in the template's rest
pose, seen from 2.5 m by a camera with a 40-degree vertical field of view.

  python bench/view_frame_time.py                          # 512 x 512, configs/synthetic.py
  python bench/view_frame_time.py --workdir runs/demo      # a trained run (its config.json's config)
  python bench/view_frame_time.py --size 256 --json
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--config", default="configs/synthetic.py", help="config file (get_config())")
  ap.add_argument("--workdir", default="", help="a trained run; empty = the initial avatar of --config")
  ap.add_argument("--size", type=int, default=512, help="image width = height, pixels")
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--json", action="store_true", help="print a JSON list as the last line")
  args = ap.parse_args()

  import importlib.util
  import jax
  import numpy as np
  from fmgs_jax import avatar as avatar_lib
  from fmgs_jax.train import loop
  from fmgs_jax.view import camera as camera_lib
  from fmgs_jax.view import poses as poses_lib
  from fmgs_jax.view import render_fn

  spec = importlib.util.spec_from_file_location("cfg", args.config)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  config = mod.get_config()
  body = loop.load_body(config)
  num_betas = int(np.asarray(body.shapedirs).shape[-1])
  if args.workdir:
    av, params, _ = loop.restore_params(config, args.workdir)
  else:
    av = avatar_lib.build(config, body, np.zeros(num_betas, np.float32), 0)
    params = avatar_lib.init_params(av, jax.random.key(config.seed))
  pose = poses_lib.ViewPose(pose=np.zeros((24, 3), np.float32), transl=np.zeros(3, np.float32),
                            betas=np.zeros(num_betas, np.float32))
  centre = poses_lib.make_skeleton_fn(body)(pose)[0, 0]
  # Looking along -z at the pelvis from 2.5 m, world y up (OpenCV camera: R = diag(1, -1, -1)).
  cam = camera_lib.viser_to_camera((0.0, 1.0, 0.0, 0.0), centre + np.array([0.0, 0.0, 2.5]), math.radians(40.0),
                                   args.size, args.size, config.render.near, config.render.far)
  render = render_fn.make_view_renderer(av, config)
  rows = []
  for q in render_fn.QUANTITIES:
    t0 = time.perf_counter()
    img = render(params, pose, cam, q)
    first = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
      t0 = time.perf_counter()
      render(params, pose, cam, q)
      times.append(time.perf_counter() - t0)
    covered = float(np.mean(np.any(img != img[0, 0], -1)))
    rows.append({"quantity": q, "size": args.size, "surfels": av.num_surfels, "first_s": first,
                 "frame_ms": 1000 * statistics.median(times), "covered": covered})
  print(f"{'quantity':<10} {'size':>9} {'surfels':>8} {'first call s':>13} {'frame ms':>9} {'covered':>8}")
  for r in rows:
    print(f"{r['quantity']:<10} {r['size']:>4} x {r['size']:<4} {r['surfels']:>7} {r['first_s']:>13.1f} "
          f"{r['frame_ms']:>9.0f} {r['covered']:>8.2f}")
  print(f"backend {config.render.backend}, device {jax.devices()[0].platform}")
  if args.json:
    print(json.dumps(rows))


if __name__ == "__main__":
  main()
