"""Selective gradient isolation: each loss moves only the surfel quantities (and parameter groups) its
row of the isolation table allows, from ONE forward pass.

The model is split in two differentiable stages that the caller supplies:

  quantities = build_fn(params)      # dict name -> float array: the surfel quantities, e.g. means,
                                     # rotations, scales, opacities, colors, semantics, plus what the
                                     # regularisers read (skinning_weights, semantic_features, ...)
  rendered   = render_fn(quantities) # float pytree: the rendered images (color, alpha, depth, normal...)
  value_k    = loss_fns[k](rendered, quantities)   # () float32, unweighted

The gradient applied is

  g = sum_k w_k * M^g_k [ J_build^T M^q_k ( J_render^T dL_k/drendered + dL_k/dquantities ) ]

where M^q_k zeroes the cotangent of every quantity loss k may not move and M^g_k zeroes the gradient
of every parameter group it may not move. Both stages run once (`jax.vjp`); only the cheap VJPs are
repeated, once per distinct (M^q, M^g) row, since losses sharing a row are summed first (the VJPs are
linear); with `vectorize` the rows go through each VJP together (vmapped), and the rasterizer shares
its per-tile recompute between them. With isolation disabled every row is "everything" and g is the plain gradient of
sum_k w_k L_k, at the cost of a plain `jax.value_and_grad`.

This equals, loss by loss, the gradient of L_k evaluated with `jax.lax.stop_gradient` on every
quantity outside its row (tests/train/test_isolation.py checks exactly that).
"""

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from fmgs_jax import errors

ALL = None  # a row entry that allows everything


@dataclasses.dataclass(frozen=True)
class Except:
  """A row entry that allows everything but `names` (the paper states its table as blocks)."""
  names: frozenset[str]


Allowed = Any  # ALL (None), a frozenset of the allowed names, or Except(blocked names)


def allows(allowed: Allowed, name: str) -> bool:
  """Whether a row entry lets gradient through `name`."""
  if allowed is ALL:
    return True
  if isinstance(allowed, Except):
    return name not in allowed.names
  return name in allowed


def named(allowed: Allowed) -> frozenset[str]:
  """The names a row entry mentions (allowed or blocked), to check them against what exists."""
  if allowed is ALL:
    return frozenset()
  return allowed.names if isinstance(allowed, Except) else allowed


def _parse_names(text: str, where: str) -> Allowed:
  """'*' -> ALL; 'a,b' -> only a and b; '-a,-b' (or '*,-a,-b') -> all but a and b."""
  if not isinstance(text, str):
    raise errors.ConfigError(f"{where} must be a comma-separated string of names, '*', or '-name' blocks, "
                             f"got {text!r}")
  names = [t.strip() for t in text.split(",") if t.strip()]
  if not names:
    raise errors.ConfigError(f"{where} is empty; use '*' for everything or set the loss weight to 0")
  blocked = frozenset(t[1:].strip() for t in names if t.startswith("-"))
  kept = frozenset(t for t in names if not t.startswith("-"))
  if blocked:
    if kept - {"*"}:
      raise errors.ConfigError(f"{where} = {text!r} mixes allowed names {sorted(kept - {'*'})} with blocked "
                               f"'-' names; write either the allowed names or the blocked ones")
    return Except(blocked)
  return ALL if "*" in kept else kept


@dataclasses.dataclass(frozen=True)
class IsolationTable:
  """Static (hashable) table: loss -> allowed quantities and allowed parameter groups.

  Attributes:
    quantities: ((loss, allowed quantity names: a frozenset, Except(blocked) or None = all), ...).
    groups: ((loss, allowed parameter-group labels, likewise), ...).
  """
  quantities: tuple[tuple[str, Allowed], ...]
  groups: tuple[tuple[str, Allowed], ...]

  def row(self, loss: str) -> tuple[Allowed, Allowed]:
    """(allowed quantities, allowed groups) of `loss`; raises ValueError when the table lacks it."""
    q, g = dict(self.quantities), dict(self.groups)
    if loss not in q or loss not in g:
      raise errors.ConfigError(f"loss {loss!r} has no row in the isolation table (config.isolation.quantities / "
                               f"config.isolation.groups); rows: {sorted(q)}")
    return q[loss], g[loss]


def no_isolation(loss_names) -> IsolationTable:
  """The table where every loss updates everything (isolation off)."""
  return IsolationTable(tuple((k, ALL) for k in loss_names), tuple((k, ALL) for k in loss_names))


# Named tables that replace the config's rows of the losses they list. "paper" is the config's own
# table (configs/default.py writes the paper's rows out). "strict" is the stricter table this project
# trained with before the paper's was made the default: depth may move positions only, the normal
# terms rotations only (tilt field and free rotations), semantics the semantic field only.
_NORMALS = ("normal_depth", "normal_prior", "normal_tv")
PRESETS = {
    "paper": {},
    "strict": {
        "quantities": {"depth": "means", "semantic": "semantics", **{k: "rotations" for k in _NORMALS}},
        "groups": {"depth": "*", "semantic": "*", **{k: "tilt,rotation" for k in _NORMALS}},
    },
}


def table_from_config(isolation_config: Any, loss_names, group_names=None) -> IsolationTable:
  """Builds the table for the losses in use from `config.isolation`.

  Args:
    isolation_config: `config.isolation` (enabled, preset, quantities.<loss>, groups.<loss>); a row
      reads "*" (everything), "a,b" (only a and b) or "-a,-b" (everything but a and b).
    loss_names: the active loss terms (e.g. `losses.active_weights(config.loss)`).
    group_names: the optimiser's parameter groups (`config.optim.groups`); when given, a group row
      naming another is an error.
  """
  loss_names = list(loss_names)
  if not isolation_config.enabled:
    return no_isolation(loss_names)
  preset = isolation_config.get("preset", "paper")
  if preset not in PRESETS:
    raise errors.ConfigError(f"config.isolation.preset = {preset!r}: expected one of {sorted(PRESETS)}")
  rows_q, rows_g = [], []
  for k in loss_names:
    for field, rows in (("quantities", rows_q), ("groups", rows_g)):
      section = isolation_config[field]
      if k in PRESETS[preset].get(field, {}):
        rows.append((k, _parse_names(PRESETS[preset][field][k], f"isolation preset {preset!r} {field}.{k}")))
        continue
      if k not in section:
        raise errors.ConfigError(f"config.isolation.{field}.{k} is missing: add a row for loss {k!r} "
                                 f"('*' lets it update everything)")
      rows.append((k, _parse_names(section[k], f"config.isolation.{field}.{k}")))
  if group_names is not None:
    for k, allowed in rows_g:
      unknown = set(named(allowed)) - set(group_names)
      if unknown:
        raise errors.ConfigError(f"config.isolation.groups.{k} names {sorted(unknown)}, not parameter groups "
                                 f"(config.optim.groups: {sorted(group_names)})")
  return IsolationTable(tuple(rows_q), tuple(rows_g))


def _mask_quantities(ct: Mapping[str, Any], allowed: Allowed) -> dict[str, Any]:
  if allowed is ALL:
    return dict(ct)
  return {name: v if allows(allowed, name) else jax.tree.map(jnp.zeros_like, v) for name, v in ct.items()}


def _mask_groups(grads: Any, labels: Any, allowed: Allowed) -> Any:
  if allowed is ALL:
    return grads
  return jax.tree.map(lambda g, label: g if allows(allowed, label) else jnp.zeros_like(g), grads, labels)


def _add(a, b):
  return b if a is None else jax.tree.map(jnp.add, a, b)


def isolated_value_and_grad(
    params: Any,
    build_fn: Callable[[Any], Any],
    render_fn: Callable[[Any], Any],
    loss_fns: Mapping[str, Callable[[Any, Mapping[str, Any]], jnp.ndarray]],
    weights: Mapping[str, float],
    table: IsolationTable,
    group_labels: Any = None,
    has_aux: bool = False,
    vectorize: bool = False,
) -> tuple[jnp.ndarray, dict[str, jnp.ndarray], Any, Any]:
  """Weighted total loss, per-term values and the isolated gradient, from one forward pass.

  Args:
    params: parameter pytree.
    build_fn: params -> quantities, a dict {name: float array pytree} (or (quantities, aux) when
      has_aux). Put integer data in aux or close over it.
    render_fn: quantities -> rendered float pytree (or (rendered, aux) when has_aux).
    loss_fns: {term: fn(rendered, quantities) -> () float32}, unweighted.
    weights: {term: weight}; only terms listed here are computed (a 0 weight skips the term).
    table: the isolation table (`table_from_config`, `no_isolation`).
    group_labels: pytree like params of group names (`optim.param_labels`); needed only when some
      row restricts parameter groups.
    has_aux: whether build_fn and render_fn both return (output, aux).
    vectorize: pull the per-row cotangents back through the renderer (and the per-group-row ones
      through build_fn) with one vmapped VJP each instead of a Python loop over rows (same result to
      float round-off). The rasterizer's backward takes a vmapped cotangent as R cotangents at once
      (one recompute per tile), so the rows cost far less than R separate backward passes.

  Returns:
    total: () float32, sum_k weights[k] * value_k.
    values: {term: () float32 unweighted value}.
    grads: pytree like params, the isolated gradient of `total`.
    aux: (build aux, render aux) when has_aux, else None.
  """
  terms = [k for k, w in weights.items() if w != 0]
  missing = [k for k in terms if k not in loss_fns]
  if missing:
    raise ValueError(f"weights name losses without a loss function: {missing}")
  if has_aux:
    quantities, build_vjp, build_aux = jax.vjp(build_fn, params, has_aux=True)
    rendered, render_vjp, render_aux = jax.vjp(render_fn, quantities, has_aux=True)
    aux = (build_aux, render_aux)
  else:
    quantities, build_vjp = jax.vjp(build_fn, params)
    rendered, render_vjp = jax.vjp(render_fn, quantities)
    aux = None
  if not isinstance(quantities, dict):
    raise ValueError(f"build_fn must return a dict of named quantities, got {type(quantities).__name__}")

  values = {}
  rows: dict[tuple, list] = {}  # (allowed quantities, allowed groups) -> [sum of d/drendered, d/dquantities]
  for k in terms:
    allowed_q, allowed_g = table.row(k)
    unknown = set(named(allowed_q)) - set(quantities)
    if unknown:
      raise ValueError(f"isolation row of loss {k!r} names unknown quantities {sorted(unknown)}; "
                       f"build_fn gives {sorted(quantities)}")
    if allowed_g is not ALL and group_labels is None:
      raise ValueError(f"isolation row of loss {k!r} restricts parameter groups: pass group_labels")
    value, (g_r, g_q) = jax.value_and_grad(loss_fns[k], argnums=(0, 1))(rendered, quantities)
    values[k] = value
    w = weights[k]
    scaled = jax.tree.map(lambda x: w * x, (g_r, g_q))
    key = (allowed_q, allowed_g)
    rows[key] = [_add(a, b) for a, b in zip(rows.get(key, [None, None]), scaled)]

  total = sum((weights[k] * values[k] for k in terms), jnp.zeros((), jnp.float32))
  if not rows:
    return total, values, jax.tree.map(jnp.zeros_like, params), aux

  keys = list(rows)
  if vectorize and len(keys) > 1:
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[rows[key][0] for key in keys])
    pulled = jax.vmap(lambda ct: render_vjp(ct)[0])(stacked)
    through_render = [jax.tree.map(lambda x, i=i: x[i], pulled) for i in range(len(keys))]
  else:
    through_render = [render_vjp(rows[key][0])[0] for key in keys]

  per_group_row: dict[Any, Any] = {}  # allowed groups -> masked quantity cotangent
  for key, ct_render in zip(keys, through_render):
    allowed_q, allowed_g = key
    ct_q = _mask_quantities(jax.tree.map(jnp.add, dict(ct_render), dict(rows[key][1])), allowed_q)
    per_group_row[allowed_g] = _add(per_group_row.get(allowed_g), ct_q)

  group_keys = list(per_group_row)
  if vectorize and len(group_keys) > 1:
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[per_group_row[g] for g in group_keys])
    pulled = jax.vmap(lambda ct: build_vjp(ct)[0])(stacked)
    per_group = [jax.tree.map(lambda x, i=i: x[i], pulled) for i in range(len(group_keys))]
  else:
    per_group = [build_vjp(per_group_row[g])[0] for g in group_keys]
  grads = None
  for allowed_g, g in zip(group_keys, per_group):
    grads = _add(grads, _mask_groups(g, group_labels, allowed_g))
  return total, values, grads, aux
