"""Isolation and optimiser tests: the one-forward isolated gradient against a naive per-loss
stop_gradient formulation on a toy differentiable "renderer", exact zeros, the plain gradient when
off, and per-group learning rates against Adam's closed-form first step."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fmgs_jax.fields.decoders import axis_angle_to_matrix
from fmgs_jax.train import isolation, optim

N, P, C = 5, 7, 4  # surfels, pixels, semantic classes
LABELS = {"position": "position", "rotation": "rotation", "color": "appearance", "semantic": "semantics",
          "opacity": "opacity"}


def _default_config():
  path = pathlib.Path(__file__).resolve().parents[2] / "configs" / "default.py"
  spec = importlib.util.spec_from_file_location("fmgs_default_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _params(seed=0):
  k = jax.random.split(jax.random.PRNGKey(seed), 5)
  return {"position": jax.random.normal(k[0], (N, 3)), "rotation": 0.5 * jax.random.normal(k[1], (N, 3)),
          "color": jax.random.uniform(k[2], (N, 3)), "semantic": jax.random.normal(k[3], (N, C)),
          "opacity": jax.random.normal(k[4], (N,))}


def build(params):
  """Toy model: every surfel quantity depends on exactly one parameter."""
  return {"means": params["position"] * 1.5, "rotations": axis_angle_to_matrix(params["rotation"]),
          "colors": jax.nn.sigmoid(params["color"]), "semantics": params["semantic"],
          "opacities": jax.nn.sigmoid(params["opacity"])}


PIXELS = jnp.stack([jnp.linspace(-1, 1, P), jnp.linspace(1, -0.5, P)], axis=-1)  # (P, 2)


def render(q):
  """Toy "renderer": Gaussian footprints whose weights depend on position, normal tilt and opacity."""
  d2 = jnp.sum((PIXELS[:, None, :] - q["means"][None, :, :2]) ** 2, axis=-1)  # (P, N)
  tilt = 1.0 + 0.5 * q["rotations"][:, 2, 2]  # foreshortening: rotation changes coverage
  w = q["opacities"] * tilt * jnp.exp(-d2)  # (P, N)
  return {"color": w @ q["colors"], "depth": w @ q["means"][:, 2], "alpha": jnp.tanh(jnp.sum(w, -1)),
          "normal": w @ q["rotations"][:, :, 2], "semantics": w @ q["semantics"]}


T = {"color": jnp.full((P, 3), 0.3), "depth": jnp.linspace(1.0, 2.0, P), "normal": jnp.tile(
    jnp.array([0.0, 0.0, -1.0]), (P, 1)), "labels": jnp.arange(P) % C}

LOSSES = {
    "rgb": lambda r, q: jnp.mean((r["color"] - T["color"]) ** 2),
    "mask": lambda r, q: jnp.mean((r["alpha"] - 0.8) ** 2),
    "depth": lambda r, q: jnp.mean((r["depth"] - T["depth"]) ** 2),
    "normal": lambda r, q: jnp.mean(1.0 - jnp.sum(r["normal"] * T["normal"], -1) /
                                    jnp.linalg.norm(r["normal"], axis=-1)),
    "semantic": lambda r, q: -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(r["semantics"]),
                                                           T["labels"][:, None], -1)),
    "reg": lambda r, q: jnp.sum(q["colors"] ** 2) + jnp.sum(q["means"] ** 2),
}
WEIGHTS = {"rgb": 1.0, "mask": 0.5, "depth": 0.7, "normal": 0.3, "semantic": 0.2, "reg": 0.01}
Q_ROWS = {"rgb": None, "mask": None, "depth": {"means"}, "normal": {"rotations"}, "semantic": {"semantics"},
          "reg": None}
G_ROWS = {"rgb": None, "mask": {"opacity", "position"}, "depth": None, "normal": None, "semantic": None,
          "reg": None}


def _table(q_rows=Q_ROWS, g_rows=G_ROWS):
  fz = lambda s: None if s is None else frozenset(s)
  return isolation.IsolationTable(tuple((k, fz(v)) for k, v in q_rows.items()),
                                  tuple((k, fz(v)) for k, v in g_rows.items()))


def _naive(params, weights, q_rows=Q_ROWS, g_rows=G_ROWS):
  """One loss at a time, stop_gradient on every quantity outside its row, then mask groups; sum."""
  total = jax.tree.map(jnp.zeros_like, params)
  for k, w in weights.items():
    def f(p, k=k):
      q = build(p)
      if q_rows[k] is not None:
        q = {name: v if name in q_rows[k] else jax.lax.stop_gradient(v) for name, v in q.items()}
      return LOSSES[k](render(q), q)
    g = jax.grad(f)(params)
    if g_rows[k] is not None:
      g = {name: v if LABELS[name] in g_rows[k] else jnp.zeros_like(v) for name, v in g.items()}
    total = jax.tree.map(lambda a, b, w=w: a + w * b, total, g)
  return total


def _assert_tree_close(a, b, atol=1e-6):
  for name in a:
    np.testing.assert_allclose(np.asarray(a[name]), np.asarray(b[name]), atol=atol, rtol=1e-5,
                               err_msg=name)


@pytest.mark.parametrize("vectorize", [False, True])
def test_isolated_gradient_equals_naive_sum_of_masked_per_loss_gradients(vectorize):
  params = _params()
  step = jax.jit(lambda p: isolation.isolated_value_and_grad(p, build, render, LOSSES, WEIGHTS, _table(),
                                                             group_labels=LABELS, vectorize=vectorize))
  total, values, grads, aux = step(params)
  assert aux is None
  _assert_tree_close(grads, _naive(params, WEIGHTS))
  for k in WEIGHTS:
    q = build(params)
    np.testing.assert_allclose(float(values[k]), float(LOSSES[k](render(q), q)), rtol=1e-6)
  np.testing.assert_allclose(float(total), sum(WEIGHTS[k] * float(values[k]) for k in WEIGHTS), rtol=1e-6)


def test_isolated_quantities_receive_exactly_zero():
  params = _params(1)
  table = _table()

  def grads_of(term, tbl):
    return isolation.isolated_value_and_grad(params, build, render, LOSSES, {term: 1.0}, tbl,
                                             group_labels=LABELS)[2]

  off = isolation.no_isolation(WEIGHTS)
  depth, depth_off = grads_of("depth", table), grads_of("depth", off)
  assert np.all(np.asarray(depth["rotation"]) == 0) and np.all(np.asarray(depth["opacity"]) == 0)
  assert np.any(np.asarray(depth_off["rotation"]) != 0)  # the toy depth does depend on rotation
  assert np.any(np.asarray(depth["position"]) != 0)
  normal, normal_off = grads_of("normal", table), grads_of("normal", off)
  assert np.all(np.asarray(normal["position"]) == 0) and np.any(np.asarray(normal_off["position"]) != 0)
  assert np.any(np.asarray(normal["rotation"]) != 0)
  sem, sem_off = grads_of("semantic", table), grads_of("semantic", off)
  for name in ("position", "rotation", "opacity", "color"):
    assert np.all(np.asarray(sem[name]) == 0), name
  assert np.any(np.asarray(sem_off["position"]) != 0) and np.any(np.asarray(sem_off["rotation"]) != 0)
  assert np.any(np.asarray(sem["semantic"]) != 0)
  mask = grads_of("mask", table)  # group row: opacity and position only
  assert np.all(np.asarray(mask["rotation"]) == 0) and np.any(np.asarray(mask["opacity"]) != 0)


def test_isolation_off_gives_plain_summed_gradient():
  params = _params(2)
  c = _default_config()
  c.isolation.enabled = False
  table = isolation.table_from_config(c.isolation, WEIGHTS)
  total, _, grads, _ = isolation.isolated_value_and_grad(params, build, render, LOSSES, WEIGHTS, table)

  def summed(p):
    q = build(p)
    r = render(q)
    return sum(w * LOSSES[k](r, q) for k, w in WEIGHTS.items())

  want_total, want = jax.value_and_grad(summed)(params)
  _assert_tree_close(grads, want)
  np.testing.assert_allclose(float(total), float(want_total), rtol=1e-6)


def test_zero_weight_removes_term_and_aux_passes_through():
  params = _params(3)
  weights = dict(WEIGHTS, depth=0.0)
  calls = []
  losses = dict(LOSSES, depth=lambda r, q: calls.append(1) or LOSSES["depth"](r, q))
  total, values, grads, aux = isolation.isolated_value_and_grad(
      params, lambda p: (build(p), "b"), lambda q: (render(q), "r"), losses, weights, _table(),
      group_labels=LABELS, has_aux=True)
  assert "depth" not in values and not calls and aux == ("b", "r")
  _assert_tree_close(grads, _naive(params, {k: w for k, w in weights.items() if w}))


def test_table_from_config_default_is_the_papers_table_and_errors_are_clear():
  c = _default_config()
  movers = isolation.Except(frozenset({"position", "non_rigid", "skinning", "pose_refine"}))
  table = isolation.table_from_config(c.isolation, ["rgb", "depth", "normal_prior", "semantic"],
                                      list(c.optim.groups))
  assert table.row("rgb") == (None, None)
  assert table.row("depth") == (isolation.Except(frozenset({"rotations"})), None)  # "block ... rotation"
  assert table.row("normal_prior") == (isolation.Except(frozenset({"means"})), movers)  # "block ... position"
  assert table.row("semantic") == (isolation.Except(frozenset({"means", "rotations"})), movers)
  c.isolation.preset = "strict"
  strict = isolation.table_from_config(c.isolation, ["rgb", "depth", "normal_prior", "semantic"])
  assert strict.row("rgb") == (None, None)
  assert strict.row("depth") == (frozenset({"means"}), None)
  assert strict.row("normal_prior") == (frozenset({"rotations"}), frozenset({"tilt", "rotation"}))
  assert strict.row("semantic") == (frozenset({"semantics"}), None)
  c.isolation.preset = "lenient"
  with pytest.raises(ValueError, match="config.isolation.preset"):
    isolation.table_from_config(c.isolation, ["rgb"])
  c.isolation.preset = "paper"
  with pytest.raises(ValueError, match="config.isolation.quantities.bogus"):
    isolation.table_from_config(c.isolation, ["bogus"])
  c.isolation.groups.depth = "-positon"
  with pytest.raises(ValueError, match="config.isolation.groups.depth.*positon"):
    isolation.table_from_config(c.isolation, ["depth"], list(c.optim.groups))
  c.isolation.groups.depth = "means,-rotations"
  with pytest.raises(ValueError, match="mixes"):
    isolation.table_from_config(c.isolation, ["depth"])
  bad = _table(dict(Q_ROWS, depth={"meanz"}))
  with pytest.raises(ValueError, match="meanz"):
    isolation.isolated_value_and_grad(_params(), build, render, LOSSES, WEIGHTS, bad, group_labels=LABELS)
  blocked_bad = isolation.IsolationTable(tuple((k, isolation.Except(frozenset({"meanz"})) if k == "depth" else None)
                                               for k in WEIGHTS), tuple((k, None) for k in WEIGHTS))
  with pytest.raises(ValueError, match="meanz"):
    isolation.isolated_value_and_grad(_params(), build, render, LOSSES, WEIGHTS, blocked_bad)
  with pytest.raises(ValueError, match="group_labels"):
    isolation.isolated_value_and_grad(_params(), build, render, LOSSES, WEIGHTS, _table())


def test_blocked_rows_equal_the_naive_gradient_with_the_complement_allowed():
  """'-a' rows (the paper states its table as blocks) against the naive formulation given the
  complementary allowed sets written out."""
  names = {"means", "rotations", "colors", "semantics", "opacities"}
  groups = set(LABELS.values())
  q_block = {"rgb": None, "mask": None, "depth": {"rotations"}, "normal": {"means"},
             "semantic": {"means", "rotations"}, "reg": None}
  g_block = {k: None for k in WEIGHTS} | {"normal": {"position"}, "semantic": {"position", "opacity"}}
  ex = lambda rows: tuple((k, None if v is None else isolation.Except(frozenset(v))) for k, v in rows.items())
  table = isolation.IsolationTable(ex(q_block), ex(g_block))
  grads = isolation.isolated_value_and_grad(_params(2), build, render, LOSSES, WEIGHTS, table,
                                            group_labels=LABELS)[2]
  comp = lambda rows, universe: {k: None if v is None else universe - v for k, v in rows.items()}
  _assert_tree_close(grads, _naive(_params(2), WEIGHTS, comp(q_block, names), comp(g_block, groups)))
  sem = isolation.isolated_value_and_grad(_params(2), build, render, LOSSES, {"semantic": 1.0}, table,
                                          group_labels=LABELS)[2]
  assert np.all(np.asarray(sem["position"]) == 0) and np.all(np.asarray(sem["rotation"]) == 0)
  assert np.all(np.asarray(sem["opacity"]) == 0) and np.any(np.asarray(sem["semantic"]) != 0)


# --- optimiser -----------------------------------------------------------------------------------


def _avatar_like_params():
  z = lambda *s: jnp.zeros(s)
  return {"fields": {"params": {"geometry_grid": {"table": z(2, 8, 2)}, "geometry_mlp": {"kernel": z(3, 4)},
                                "tilt_grid": {"table": z(2, 8, 2)}, "tilt_mlp": {"kernel": z(3, 3)},
                                "pose_encoder": {"kernel": z(2, 2)}, "appearance_grid": {"table": z(2, 8, 2)},
                                "appearance_mlp": {"kernel": z(4, 3)}, "semantic_mlp": {"kernel": z(4, 28)},
                                "skinning_grid": {"table": z(2, 8, 2)}, "skinning_mlp": {"bias": z(24)}}},
          "surfels": {"means": z(N, 3), "opacities": z(N), "scales": z(N, 2)},
          "pose_refine": z(10, 24, 3)}


def test_optimizer_groups_get_their_own_learning_rates():
  c = _default_config()
  params = _avatar_like_params()
  labels = optim.param_labels(params, c.optim.groups)
  assert labels["fields"]["params"]["geometry_mlp"]["kernel"] == "non_rigid"
  assert labels["fields"]["params"]["tilt_mlp"]["kernel"] == "tilt"
  assert labels["fields"]["params"]["tilt_grid"]["table"] == "tilt"
  assert labels["fields"]["params"]["skinning_grid"]["table"] == "skinning"
  assert labels["surfels"]["means"] == "position" and labels["pose_refine"] == "pose_refine"
  tx = optim.make_optimizer(c.optim, params, total_steps=100)
  grads = jax.tree.map(lambda x: jax.random.normal(jax.random.PRNGKey(x.size), x.shape), params)
  updates, _ = tx.update(grads, tx.init(params), params)
  # Adam's first step is -lr * g / (|g| + eps) (bias-corrected moments): -lr * sign(g).
  for (path, u), g, label in zip(jax.tree_util.tree_leaves_with_path(updates), jax.tree.leaves(grads),
                                 jax.tree.leaves(labels)):
    lr = c.optim.groups[label].lr
    np.testing.assert_allclose(np.asarray(u), -lr * np.sign(np.asarray(g)), rtol=1e-5,
                               err_msg=jax.tree_util.keystr(path))


def test_position_schedule_decays_exponentially_to_final():
  c = _default_config()
  lrs = {t: optim.learning_rates(c.optim, 1000, t) for t in (0, 500, 1000, 5000)}
  assert lrs[0]["position"] == pytest.approx(1.6e-4)
  assert lrs[500]["position"] == pytest.approx(np.sqrt(1.6e-4 * 1.6e-6), rel=1e-4)
  assert lrs[1000]["position"] == pytest.approx(1.6e-6, rel=1e-4)
  assert lrs[5000]["position"] == pytest.approx(1.6e-6, rel=1e-4)
  assert lrs[5000]["non_rigid"] == pytest.approx(1e-3)
  # The optimiser applies the schedule: the position step after k updates is -lr(k) * sign(g).
  params = {"surfels": {"means": jnp.zeros((3,))}}
  tx = optim.make_optimizer(c.optim, params, total_steps=2)
  state = tx.init(params)
  g = {"surfels": {"means": jnp.array([1.0, -2.0, 3.0])}}
  for _ in range(2):
    u, state = tx.update(g, state, params)
  want = -np.sqrt(1.6e-4 * 1.6e-6) * np.sign(np.asarray(g["surfels"]["means"]))
  np.testing.assert_allclose(np.asarray(u["surfels"]["means"]), want, rtol=1e-4)


def test_zero_step_run_keeps_the_start_lr_and_negative_decay_is_an_error():
  c = _default_config()  # position decays over train.steps: a 0-step run has nothing to decay over
  assert optim.learning_rates(c.optim, 0, 0)["position"] == pytest.approx(1.6e-4)
  optim.make_optimizer(c.optim, {"surfels": {"means": jnp.zeros((3,))}}, total_steps=0)
  c.optim.groups.position.decay_steps = -5
  with pytest.raises(ValueError, match=r"groups\.position: decay over -5 steps"):
    optim.learning_rates(c.optim, 100, 0)


def test_unmatched_or_ambiguous_paths_are_errors():
  c = _default_config()
  with pytest.raises(ValueError, match="'mystery/w' matches no group"):
    optim.param_labels({"mystery": {"w": jnp.zeros(2)}}, c.optim.groups)
  c.optim.groups.appearance.pattern = r"_(grid|mlp)/"
  with pytest.raises(ValueError, match="geometry_mlp"):
    optim.param_labels(_avatar_like_params(), c.optim.groups)


def test_zero_learning_rate_freezes_a_group_and_negative_is_an_error():
  c = _default_config()
  c.optim.groups.opacity.lr = 0.0
  params = _avatar_like_params()
  tx = optim.make_optimizer(c.optim, params, total_steps=10)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  assert not np.any(np.asarray(updates["surfels"]["opacities"]))  # frozen
  np.testing.assert_allclose(np.asarray(updates["surfels"]["scales"]), -c.optim.groups.scaling.lr, rtol=1e-5)
  c.optim.groups.opacity.lr = -1e-3
  with pytest.raises(ValueError, match=r"groups\.opacity\.lr must be >= 0"):
    optim.make_optimizer(c.optim, params, total_steps=10)
