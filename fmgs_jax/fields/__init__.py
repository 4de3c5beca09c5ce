"""Learned fields of the avatar: multi-resolution hash grids and small MLP decoders (Flax)."""

from fmgs_jax.fields.decoders import (AppearanceDecoder, GeometryDecoder, GeometryResidual, PoseEncoder,
                                      SemanticDecoder, SkinningDecoder, axis_angle_to_matrix,
                                      frequency_encoding)
from fmgs_jax.fields.hashgrid import HashGrid, level_resolutions
from fmgs_jax.fields.model import FieldOutputs, Fields, GridSpec, fields_from_config
