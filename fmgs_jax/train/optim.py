"""Per-group optimiser: `optax.multi_transform` of Adam with its own learning rate and schedule per
parameter group, groups assigned by parameter path (config.optim.groups).

A parameter's path is its pytree keys joined by "/" (e.g. "fields/params/geometry_mlp/hidden_0/kernel",
"surfels/means", "pose_refine"). It joins the one group whose `pattern` (a regular expression,
`re.search`) matches; a path matching none or several groups is an error naming it, so nothing is
silently left untrained or trained twice.
"""

import re
from typing import Any

import jax
import numpy as np
import optax

from fmgs_jax import errors


def _path_str(path) -> str:
  parts = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return "/".join(parts)


def param_labels(params: Any, groups_config: Any) -> Any:
  """Group name of every parameter.

  Args:
    params: parameter pytree.
    groups_config: `config.optim.groups` ({group: {pattern, lr, lr_final, decay_steps}}).

  Returns:
    Pytree like params whose leaves are group names (str).
  """
  patterns = {name: re.compile(groups_config[name].pattern) for name in groups_config}
  problems = []

  def label(path, _):
    p = _path_str(path)
    hits = [name for name, rx in patterns.items() if rx.search(p)]
    if len(hits) != 1:
      problems.append(f"{p!r} matches {hits or 'no group'}")
      return ""
    return hits[0]

  labels = jax.tree_util.tree_map_with_path(label, params)
  if problems:
    raise errors.ConfigError("config.optim.groups: every parameter must match exactly one group pattern; "
                             + "; ".join(problems))
  return labels


def learning_rate_schedule(group_config: Any, total_steps: int, name: str) -> optax.Schedule:
  """Constant `lr`, or exponential decay from `lr` to `lr_final` over `decay_steps` (0 = total_steps).

  The decay is log-linear, lr(t) = lr * (lr_final / lr)^(t / T), held at lr_final after T (3DGS's
  `get_expon_lr_func` without its warm-up delay).
  """
  lr, lr_final = float(group_config.lr), float(group_config.lr_final)
  if lr < 0 or not np.isfinite(lr):
    raise errors.ConfigError(f"config.optim.groups.{name}.lr must be >= 0 (0 freezes the group), got {lr}")
  if lr == 0 or lr_final <= 0 or lr_final == lr:
    return optax.constant_schedule(lr)
  steps = int(group_config.decay_steps) or int(total_steps)
  if steps == 0:  # a run of 0 steps (evaluating the untrained template) takes no step to decay over
    return optax.constant_schedule(lr)
  if steps < 0:
    raise errors.ConfigError(f"config.optim.groups.{name}: decay over {steps} steps; set its decay_steps or "
                             f"train.steps > 0")
  return optax.exponential_decay(lr, transition_steps=steps, decay_rate=lr_final / lr,
                                 end_value=lr_final)


def make_optimizer(optim_config: Any, params: Any, total_steps: int) -> optax.GradientTransformation:
  """Adam per group with its own schedule (and optional per-group norm clipping); lr = 0 freezes a group.

  Args:
    optim_config: `config.optim` (b1, b2, eps, clip_norm, groups).
    params: parameter pytree (only its structure and paths are used).
    total_steps: training steps (default decay length).

  Returns:
    An optax transformation; `init(params)` / `update(grads, state, params)` as usual.
  """
  labels = param_labels(params, optim_config.groups)
  used = sorted(set(jax.tree.leaves(labels)))
  transforms = {}
  for name in used:
    if float(optim_config.groups[name].lr) == 0:
      transforms[name] = optax.set_to_zero()  # frozen: no update, no Adam moments
      continue
    chain = []
    if optim_config.clip_norm > 0:
      chain.append(optax.clip_by_global_norm(optim_config.clip_norm))
    chain.append(optax.adam(learning_rate_schedule(optim_config.groups[name], total_steps, name),
                            b1=optim_config.b1, b2=optim_config.b2, eps=optim_config.eps))
    transforms[name] = optax.chain(*chain)
  return optax.multi_transform(transforms, labels)


def learning_rates(optim_config: Any, total_steps: int, step: int) -> dict[str, float]:
  """{group: learning rate at `step`} for every configured group (for logging)."""
  return {name: float(np.asarray(learning_rate_schedule(optim_config.groups[name], total_steps, name)(step)))
          for name in optim_config.groups}
