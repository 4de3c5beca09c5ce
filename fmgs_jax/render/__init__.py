"""Differentiable 2DGS / 3DGS rasterizer: `rasterize(Surfels, Camera, background, backend=...,
primitive="2dgs" | "3dgs")`."""

from fmgs_jax.render.camera import Camera, look_at
from fmgs_jax.render.rasterize import RenderOutput, rasterize
from fmgs_jax.render.surfels import Surfels

__all__ = ["Camera", "Surfels", "RenderOutput", "rasterize", "look_at"]
