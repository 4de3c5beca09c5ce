"""step.render_batch renders each frame of a batch as rasterize would, with the primitive the
avatar's scales ask for (two columns: 2DGS surfels, three: 3D Gaussians)."""

import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from fmgs_jax.render import Camera, Surfels, look_at, rasterize
from fmgs_jax.train import step as step_lib


@pytest.mark.parametrize("primitive", ["2dgs", "3dgs"])
def test_render_batch_matches_the_dense_reference_per_frame(primitive):
  rng = np.random.default_rng(3)
  n, width, height = 24, 20, 16
  rot, _ = np.linalg.qr(rng.normal(size=(n, 3, 3)))
  q = {"means": rng.uniform(-0.4, 0.4, (n, 3)), "rotations": rot,
       "scales": rng.uniform(0.05, 0.2, (n, 3 if primitive == "3dgs" else 2)),
       "opacities": rng.uniform(0.4, 0.9, n), "colors": rng.uniform(0, 1, (n, 3)),
       "semantics": rng.uniform(0, 1, (n, 2))}
  q = {k: jnp.asarray(v, jnp.float32) for k, v in q.items()}
  q2 = dict(q, means=q["means"] + 0.05, opacities=q["opacities"][::-1])  # frame 2 moves the surfels
  qs = [q, q2]
  cams = [look_at((0.2, 0.1, -2.0), (0, 0, 0), (0, 1, 0), 25.0, 25.0, width, height),
          look_at((-1.5, 0.0, -1.2), (0, 0, 0), (0, 1, 0), 22.0, 24.0, width, height)]
  batch = step_lib.Batch(**{f: None for f in step_lib.Batch.__dataclass_fields__}).replace(
      K=jnp.stack([c.K for c in cams]), world_to_camera=jnp.stack([c.world_to_camera for c in cams]))
  cfg = default.get_config().render
  cfg.tile_size, cfg.tiles_per_chunk = 8, 3
  background = jnp.asarray([0.1, 0.2, 0.3, 0.0, 0.0], jnp.float32)
  stacked = {k: jnp.stack([qs[0][k], qs[1][k]]) for k in q}
  out = step_lib.render_batch(stacked, batch, width, height, background, cfg)
  for i, (c, qi) in enumerate(zip(cams, qs)):
    surfels = Surfels(means=qi["means"], rotations=qi["rotations"], scales=qi["scales"],
                      opacities=qi["opacities"], features=jnp.concatenate([qi["colors"], qi["semantics"]], -1))
    cam = Camera(K=c.K, world_to_camera=c.world_to_camera, width=width, height=height, near=cfg.near,
                 far=cfg.far)
    ref = rasterize(surfels, cam, background, backend="reference", alpha_min=cfg.alpha_min,
                    alpha_max=cfg.alpha_max, transmittance_min=cfg.transmittance_min, primitive=primitive)
    assert float(ref.alpha.max()) > 0.3  # the scene is in view
    for name in ("color", "alpha", "depth", "normal"):
      np.testing.assert_allclose(np.asarray(getattr(out, name)[i]), np.asarray(getattr(ref, name)),
                                 rtol=3e-5, atol=2e-5, err_msg=f"{primitive} frame {i} {name}")
