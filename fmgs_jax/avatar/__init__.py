"""The canonical avatar (template surfels + learned fields) and its posing for a frame."""

from fmgs_jax.avatar.model import Avatar, build, camera_centre, frame_quantities, init_params, quantities
from fmgs_jax.avatar.template import Template, build_template

__all__ = ["Avatar", "Template", "build", "build_template", "camera_centre", "frame_quantities",
           "init_params", "quantities"]
