"""Body models: SMPL-format loader, built-in template, forward kinematics, LBS.

  m = load_body_model(path)   # official SMPL / SMPL-X .pkl / .npz
  m = builtin_body_model()    # mannequin-x 'wooden', converted to SMPL format
  out = forward(m, betas, pose, transl)   # out.vertices, out.joints, out.transforms
  skin_points(points, weights, out.transforms);  rest_vertices(m, betas)
"""

from fmgs_jax.body.builtin import builtin_body_model
from fmgs_jax.body.lbs import BodyOutput, axis_angle_to_matrix, forward, rest_vertices, skin_points
from fmgs_jax.body.model import SMPL_JOINT_NAMES, BodyModel, load_body_model

__all__ = ["BodyModel", "BodyOutput", "SMPL_JOINT_NAMES", "axis_angle_to_matrix", "builtin_body_model",
           "forward", "load_body_model", "rest_vertices", "skin_points"]
