"""Body models: SMPL-format loader, built-in template, forward kinematics, LBS.

  m = load_body_model(path)   # official SMPL / SMPL-X .pkl / .npz
  m = builtin_body_model()    # mannequin-x 'wooden', converted to SMPL format
  out = forward(m, betas, pose, transl)   # out.vertices, out.joints, out.transforms
  skin_points(points, weights, out.transforms);  rest_vertices(m, betas)
  m = model_from_config(config.body)   # the configured model, in the data's convention (convention.py)
  m = retarget(m, joints)     # rest mesh moved onto another skeleton (skeleton.py)
"""

from fmgs_jax.body.builtin import builtin_body_model
from fmgs_jax.body.lbs import BodyOutput, axis_angle_to_matrix, forward, rest_vertices, skin_points
from fmgs_jax.body.convention import CONVENTIONS, check_axes, place_template, rest_joints
from fmgs_jax.body.model import SMPL_JOINT_NAMES, BodyModel, load_body_model, save_body_model
from fmgs_jax.body.skeleton import bone_targets, retarget

__all__ = ["BodyModel", "BodyOutput", "CONVENTIONS", "SMPL_JOINT_NAMES", "axis_angle_to_matrix", "bone_targets",
           "builtin_body_model", "check_axes", "forward", "load_body_model", "model_from_config",
           "place_template", "rest_joints", "rest_vertices", "retarget", "save_body_model", "skin_points"]


def model_from_config(body_config) -> BodyModel:
  """The configured body model: a user's SMPL-format file (`body.model_path`; its axes checked, its
  frame is its own model's), else the built-in template placed in `body.convention`'s frame."""
  if body_config.model_path:
    model = load_body_model(body_config.model_path)
    check_axes(model, body_config.model_path)
    return model
  return place_template(builtin_body_model(), body_config.convention)
