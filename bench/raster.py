"""Rasterizer benchmark: forward and forward+backward time, peak memory, pixel-surfel pairs per second.

Scene: N surfels covering a body-sized ellipsoid (semi-axes 0.3 x 0.85 x 0.2 m, both sides visible to
the tiler, the front occludes the back), tangent to it, scales so that the disks cover the surface
about once (the paper's density: 60k surfels on a person at 512x512), opacity in [0.5, 1], RGB
features; camera 3 m away, the ellipsoid spans ~85% of the image height.

With --primitive 3dgs the same scene is made of 3D Gaussians: the same centres and frames, three
scales (the third along the normal) drawn like the two in-plane ones, i.e. near-isotropic, as the
avatar initialises them (model.primitive=3dgs).

Each measurement runs in its own subprocess so that `peak_rss_mb` (ru_maxrss) belongs to it alone.
Times are the median of --repeats runs after a warm-up call; compile time (first call) is reported
separately. `pairs_per_s` = N * H * W / forward_s (dense-equivalent pixel-surfel pairs per second).

  python bench/raster.py                  # the issue's table
  python bench/raster.py --json           # ... and a JSON list as the last line
  python bench/raster.py --only 60000x512 # one size
  python bench/raster.py --backends xla,pallas --only 2000x128  # chosen backends at the table's sizes
  python bench/raster.py --primitive 2dgs,3dgs --only 10000x256  # surfels vs 3D Gaussians
  python bench/raster.py --only 60000x512 --cotangents 1,4  # the backward with R cotangents at once

--cotangents R,...: also times the forward plus R random cotangents (on every output) pulled back by
one vmapped VJP, as train/isolation.py's rows are; the backend's backward takes them together (one
recompute per tile). `backward_r<R>_s` = that time minus forward_s; `backward_r<R>_ratio` = it over
backward_r1_s when R = 1 is measured.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

# (backend, surfels, width, height)
CASES = (
    ("reference", 2000, 128, 128),
    ("xla", 2000, 128, 128),
    ("xla", 10000, 256, 256),
    ("xla", 60000, 512, 512),
    ("xla", 200000, 1024, 1024),
)
KEYS = ("backend", "primitive", "surfels", "width", "height", "forward_s", "forward_backward_s",
        "peak_rss_mb", "pairs_per_s")
PRIMITIVES = ("2dgs", "3dgs")


def make_scene(num, width, height, seed=0, primitive="2dgs"):
  """Ellipsoid-body scene: (Surfels, Camera, background); scales (N, 3) for primitive "3dgs"."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from fmgs_jax.render import Surfels, look_at  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  axes = np.array([0.3, 0.85, 0.2])
  d = rng.normal(size=(num, 3))
  d /= np.linalg.norm(d, axis=1, keepdims=True)
  means = d * axes
  normal = means / axes ** 2
  normal /= np.linalg.norm(normal, axis=1, keepdims=True)
  helper = np.where(np.abs(normal[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
  u = np.cross(normal, helper)
  u /= np.linalg.norm(u, axis=1, keepdims=True)
  v = np.cross(normal, u)
  rot = np.stack([u, v, normal], axis=-1)
  area = 2.2  # m^2, the ellipsoid's surface
  sigma = np.sqrt(area / num / np.pi)
  scales = sigma * rng.uniform(0.7, 1.4, size=(num, 3 if primitive == "3dgs" else 2))
  surfels = Surfels(means=jnp.asarray(means, jnp.float32), rotations=jnp.asarray(rot, jnp.float32),
                    scales=jnp.asarray(scales, jnp.float32),
                    opacities=jnp.asarray(rng.uniform(0.5, 1.0, num), jnp.float32),
                    features=jnp.asarray(rng.uniform(0, 1, (num, 3)), jnp.float32))
  f = 1.5 * height
  camera = look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], f, f, width, height,
                   near=0.01, far=100.0)
  return surfels, camera, jnp.array([0.2, 0.3, 0.4], jnp.float32)


def measure(backend, num, width, height, repeats, primitive="2dgs", cotangents=()):
  """One measurement record (runs in the current process)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from fmgs_jax.render import rasterize  # pylint: disable=g-import-not-at-top
  surfels, camera, background = make_scene(num, width, height, primitive=primitive)
  weights = jax.random.uniform(jax.random.PRNGKey(1), (height, width, 3))

  def loss(s):
    out = rasterize(s, camera, background, backend=backend, primitive=primitive)
    return (jnp.sum(out.color * weights) + jnp.sum(out.depth) + jnp.sum(out.normal)
            + jnp.sum(out.distortion) + jnp.sum(out.alpha)), out.overflow

  fwd = jax.jit(lambda s: rasterize(s, camera, background, backend=backend, primitive=primitive))
  fwd_bwd = jax.jit(jax.value_and_grad(loss, has_aux=True))

  def timed(fn):
    start = time.perf_counter()
    jax.block_until_ready(fn(surfels))
    return time.perf_counter() - start

  compile_f = timed(fwd)
  compile_fb = timed(fwd_bwd)
  t_f = statistics.median(timed(fwd) for _ in range(repeats))
  t_fb = statistics.median(timed(fwd_bwd) for _ in range(repeats))
  multi = {}
  for r in cotangents:
    def pulled(s, cts):
      _, vjp = jax.vjp(lambda x: fwd(x).replace(overflow=jnp.zeros((), jnp.float32)), s)
      return jax.vmap(lambda ct: vjp(ct)[0])(cts)
    out = fwd(surfels).replace(overflow=jnp.zeros((), jnp.float32))
    keys = jax.random.split(jax.random.PRNGKey(2), len(jax.tree.leaves(out)))
    cts = jax.tree.unflatten(jax.tree.structure(out), [
        jax.random.normal(k, (r,) + x.shape, x.dtype) for k, x in zip(keys, jax.tree.leaves(out))])
    fn = jax.jit(pulled)
    jax.block_until_ready(fn(surfels, cts))
    multi[f"backward_r{r}_s"] = statistics.median(
        timed(lambda s, fn=fn, cts=cts: fn(s, cts)) for _ in range(repeats)) - t_f
  if 1 in cotangents:
    for r in cotangents:
      multi[f"backward_r{r}_ratio"] = multi[f"backward_r{r}_s"] / multi["backward_r1_s"]
  overflow = int(fwd(surfels).overflow)
  rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
  return dict(backend=backend, primitive=primitive, surfels=num, width=width, height=height,
              forward_s=t_f, forward_backward_s=t_fb, peak_rss_mb=rss_mb, pairs_per_s=num * width * height / t_f,
              compile_forward_s=compile_f, compile_forward_backward_s=compile_fb, overflow=overflow,
              **multi)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--json", action="store_true", help="print a JSON list as the last line")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--only", default="", help="comma-separated NxW sizes, e.g. 60000x512")
  parser.add_argument("--backends", default="",
                      help="comma-separated backends (xla, pallas, reference) to measure at every "
                           "size of the table instead of its fixed backends; pallas runs in "
                           "interpret mode unless JAX's default backend is a GPU")
  parser.add_argument("--primitive", default="2dgs",
                      help="comma-separated primitives (2dgs, 3dgs) to measure at every case")
  parser.add_argument("--cotangents", default="",
                      help="comma-separated R: also time the backward of R cotangents at once")
  parser.add_argument("--_one", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  cotangents = tuple(int(r) for r in args.cotangents.split(",") if r)
  if any(r < 1 for r in cotangents):
    parser.error(f"--cotangents: expected positive integers, got {args.cotangents!r}")
  if args._one:  # child process: one measurement, JSON on stdout
    backend, num, width, height, primitive = args._one.split(",")
    print(json.dumps(measure(backend, int(num), int(width), int(height), args.repeats, primitive,
                             cotangents)))
    return
  primitives = [p for p in args.primitive.split(",") if p]
  if not primitives or set(primitives) - set(PRIMITIVES):
    parser.error(f"--primitive: expected a comma-separated subset of {PRIMITIVES}, got "
                 f"{args.primitive!r}")
  only = {s for s in args.only.split(",") if s}
  cases = CASES
  if args.backends:
    backends = [b for b in args.backends.split(",") if b]
    unknown = set(backends) - {"xla", "pallas", "reference"}
    if unknown:
      parser.error(f"--backends: unknown {sorted(unknown)}; choose from xla, pallas, reference")
    sizes = dict.fromkeys(case[1:] for case in CASES)
    cases = [(b, *size) for size in sizes for b in backends]
  records = []
  print(f"load average: {os.getloadavg()}", flush=True)
  header = (f"{'backend':>9} {'prim':>4} {'surfels':>7} {'size':>9} {'fwd s':>8} {'fwd+bwd s':>9} "
            f"{'compile s':>10} {'peak MB':>8} {'pairs/s':>9} {'overflow':>8}")
  print(header, flush=True)
  cases = [(*case, p) for case in cases for p in primitives]
  for backend, num, width, height, primitive in cases:
    if only and f"{num}x{width}" not in only:
      continue
    cmd = [sys.executable, __file__, "--_one", f"{backend},{num},{width},{height},{primitive}",
           "--repeats", str(args.repeats), "--cotangents", args.cotangents]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
      print(f"{backend:>9} {primitive:>4} {num:>7} {width}x{height}: failed\n{proc.stderr[-2000:]}",
            flush=True)
      continue
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    records.append(r)
    print(f"{backend:>9} {primitive:>4} {num:>7} {f'{width}x{height}':>9} {r['forward_s']:8.4f} "
          f"{r['forward_backward_s']:9.4f} "
          f"{r['compile_forward_s'] + r['compile_forward_backward_s']:10.1f} "
          f"{r['peak_rss_mb']:8.0f} {r['pairs_per_s']:9.2e} {r['overflow']:8d}", flush=True)
    for c in cotangents:
      ratio = r.get(f"backward_r{c}_ratio")
      print(f"{'':>9} backward with R = {c} cotangents at once: {r[f'backward_r{c}_s']:.4f} s"
            + (f" ({ratio:.2f}x R = 1)" if ratio is not None else ""), flush=True)
  for r in records:
    if r["primitive"] != "3dgs":
      continue
    base = [q for q in records if q["primitive"] == "2dgs" and all(
        q[k] == r[k] for k in ("backend", "surfels", "width", "height"))]
    if base:
      print(f"3dgs / 2dgs time ({r['backend']}) at {r['surfels']} surfels {r['width']}px: forward "
            f"{r['forward_s'] / base[0]['forward_s']:.2f}, forward+backward "
            f"{r['forward_backward_s'] / base[0]['forward_backward_s']:.2f}")
  by_size = {}
  for r in records:
    by_size.setdefault((r["surfels"], r["width"], r["primitive"]), {})[r["backend"]] = r
  for (num, width, _), rs in by_size.items():
    if "reference" in rs and "xla" in rs:
      print(f"speed-up xla vs reference at {num} surfels {width}px: forward "
            f"{rs['reference']['forward_s'] / rs['xla']['forward_s']:.1f}x, forward+backward "
            f"{rs['reference']['forward_backward_s'] / rs['xla']['forward_backward_s']:.1f}x")
    if "pallas" in rs and "xla" in rs:
      print(f"pallas / xla time at {num} surfels {width}px: forward "
            f"{rs['pallas']['forward_s'] / rs['xla']['forward_s']:.2f}, forward+backward "
            f"{rs['pallas']['forward_backward_s'] / rs['xla']['forward_backward_s']:.2f}")
  print(f"load average: {os.getloadavg()}", flush=True)
  if args.json:
    print(json.dumps([{k: r[k] for k in KEYS + tuple(q for q in r if q.startswith("backward_r"))}
                      for r in records]))


if __name__ == "__main__":
  main()
