"""Which body model a dataset's poses belong to, and the built-in template placed in its frame.

SMPL-format data place a body by posing that model: `forward(model, betas, pose, transl)`, and for
ZJU-MoCap / HumanNeRF also `x_world = R(Rh) x_body + Th` outside it. Both act around the model's own
canonical frame: the root joint sits at the model's rest pelvis, and global orientation turns the body
about it. A template whose rest root sits elsewhere is placed off by that difference in every frame.

Conventions (`config.body.convention`, set by each dataset config):

  smpl   SMPL (ZJU-MoCap, PeopleSnapshot, HumanNeRF, the synthetic capture): rest pelvis at
         `SMPL_REST_ROOT`, SMPL's neutral model's J_regressor @ v_template.
  smplx  SMPL-X: the frame the built-in template (mannequin-x, built on SMPL-X's skeleton) comes in.

Both share the axes: metres, y up (head above pelvis), z forward (toes in front of ankles), x to the
body's left (left hip at +x). `place_template` moves the built-in template rigidly (a translation:
the two models share the axes) so that its rest root is the convention's; `check_axes` verifies the
axes of any model and is applied to user SMPL files too (their frame is SMPL's by definition).
"""

from __future__ import annotations

import numpy as np

from fmgs_jax import errors
from fmgs_jax.body.model import BodyModel

CONVENTIONS = ("smpl", "smplx")

# SMPL's neutral model, rest pose, mean shape: the pelvis joint (J_regressor @ v_template), metres.
# One real subject's rest root from its dataset's `tpose_joints` is (-0.002, -0.221, 0.028).
SMPL_REST_ROOT = np.array([-0.001795, -0.223333, 0.028219])

_LEFT_HIP, _RIGHT_HIP, _LEFT_ANKLE, _LEFT_FOOT, _HEAD = 1, 2, 7, 10, 15


def rest_joints(model: BodyModel) -> np.ndarray:
  """(J, 3) float64 rest joints of the mean shape: J_regressor @ v_template."""
  return np.asarray(model.J_regressor, np.float64) @ np.asarray(model.v_template, np.float64)


def check_axes(model: BodyModel, source: str) -> None:
  """Raises ValueError naming `source` unless the model is y up, z forward, x to the body's left.

  Checked on the 24 SMPL joints: head above pelvis, left hip at larger x than the right, left toes in
  front of (larger z than) the left ankle.
  """
  if model.num_joints < 16:
    return
  j = rest_joints(model)
  problems = []
  if not j[_HEAD, 1] > j[0, 1] + 0.2:
    problems.append(f"head joint y {j[_HEAD, 1]:.3f} is not above the pelvis y {j[0, 1]:.3f} (y must be up)")
  if not j[_LEFT_HIP, 0] > j[_RIGHT_HIP, 0]:
    problems.append("left hip is not at larger x than the right hip (x must point to the body's left)")
  if not j[_LEFT_FOOT, 2] > j[_LEFT_ANKLE, 2]:
    problems.append("left foot joint is not in front of (larger z than) the ankle (z must be forward)")
  if problems:
    raise errors.InputError(f"body model {source}: not in SMPL's canonical axes: " + "; ".join(problems))


def place_template(model: BodyModel, convention: str) -> BodyModel:
  """The built-in template translated so that its rest root is `convention`'s.

  `smplx` returns the model unchanged (its native frame). Joints follow the vertices exactly: the
  template's regressor rows sum to one, so J_regressor @ (v + d) = J + d.
  """
  if convention not in CONVENTIONS:
    raise errors.ConfigError(f"config body.convention must be one of {CONVENTIONS}, got {convention!r}")
  check_axes(model, "built-in template")
  if convention == "smplx":
    return model
  shift = SMPL_REST_ROOT - rest_joints(model)[0]
  v = np.asarray(model.v_template, np.float64) + shift
  return model.replace(v_template=v.astype(np.float32))
