"""The rendered silhouette of a posed mesh: one opaque 2DGS surfel per face, through `rasterize`.

Each face becomes a disk at its barycentre, in its tangent plane, with standard deviation
`scale` x the face's size (the radius of the disk of equal area), opacity `opacity`: neighbouring
disks overlap, so the interior is opaque and the edge falls off over about a face size. The alpha is
differentiable in the vertices, which is what the fits need (shape, bones, pose from masks).
"""

import jax.numpy as jnp

from fmgs_jax.geometry import frames as frames_lib
from fmgs_jax.render import Camera, Surfels, rasterize


def mesh_surfels(vertices: jnp.ndarray, faces: jnp.ndarray, scale: float = 1.0,
                 opacity: float = 0.99) -> Surfels:
  """(F) surfels covering the mesh (vertices (V, 3) world metres, faces (F, 3)); one feature channel."""
  fr = frames_lib.face_frames(vertices, faces)
  n = faces.shape[0]
  size = jnp.maximum(fr.size, 1e-5) * scale
  return Surfels(means=fr.centre, rotations=fr.rotation, scales=jnp.stack([size, size], -1),
                 opacities=jnp.full((n,), opacity, vertices.dtype), features=jnp.ones((n, 1), vertices.dtype))


def render_alpha(vertices: jnp.ndarray, faces: jnp.ndarray, camera: Camera, *, tile_size: int = 8,
                 tile_capacity: int = 256, scale: float = 1.0) -> jnp.ndarray:
  """(H, W) float32 alpha of the mesh seen by `camera` (differentiable in `vertices`).

  Args:
    vertices: (V, 3) posed vertices, world metres.
    faces: (F, 3) int32.
    camera: the view (its width and height set the image).
    tile_size, tile_capacity: rasterizer tiling (surfels kept per tile, nearest first).
    scale: disk standard deviation in face sizes.
  """
  s = mesh_surfels(vertices, jnp.asarray(faces), scale)
  return rasterize(s, camera, jnp.zeros((1,), vertices.dtype), tile_size=tile_size,
                   tile_capacity=tile_capacity).alpha


def iou(alpha: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
  """Intersection over union of alpha > 0.5 and mask > 0.5 (any leading axes reduced)."""
  a, m = alpha > 0.5, mask > 0.5
  return jnp.sum(a & m) / jnp.maximum(jnp.sum(a | m), 1)
