"""Run the paper's ablation grid, one `python -m fmgs_jax.main` per run, and tabulate their metrics.

    python launch/ablations.py --config=configs/synthetic.py --workdir=runs/ablations \
        [--override key=value ...] [--only name,name] [--verbose]

Each run trains and evaluates in WORKDIR/<name>/ with `--config.<key>=<value>` for the global
`--override`s, then its own (the run's win where both set a key). Runs go one after another; a run
whose metrics.json exists is skipped (delete its folder to redo it) and an interrupted run resumes
from its checkpoint when the grid is started again. A failing run is recorded (status
"failed (exit N)", its output in WORKDIR/<name>/launch.log) and the grid goes on. At the end
WORKDIR/ablations.md gets a markdown table, one row per run with a result and one column per metric
the metrics.json files report for the novel_view and novel_pose splits, and is printed.

Every override key (global and per run) is checked against the config before anything runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)
from fmgs_jax import errors  # pylint: disable=g-import-not-at-top,wrong-import-position  (imports nothing else)

MAIN_ERROR = "fmgs_jax.main: error: "  # how a run's user error (exit status 2) ends its log

_PRIORS_OFF = {"loss.depth.weight": "0", "loss.normal_depth.weight": "0", "loss.normal_prior.weight": "0",
               "loss.normal_tv.weight": "0", "loss.semantic.weight": "0", "loss.semantic_reg.weight": "0"}


def _priors_on(*names: str) -> dict[str, str]:
  return {k: v for k, v in _PRIORS_OFF.items() if k.split(".")[1] not in names}


# Run name -> config overrides (key -> value as on the command line). Edit freely.
GRID: dict[str, dict[str, str]] = {
    "full": {},
    "no_isolation": {"isolation.enabled": "False"},
    "strict_isolation": {"isolation.preset": "strict"},
    "cosine_sn": {"loss.normal_depth.form": "cosine"},
    "no_normal_prior": {"loss.normal_prior.weight": "0", "loss.normal_depth.weight": "0",
                        "loss.normal_tv.weight": "0"},
    "no_depth_prior": {"loss.depth.weight": "0"},
    "no_semantic_prior": {"loss.semantic.weight": "0", "loss.semantic_reg.weight": "0"},
    "3dgs": {"model.primitive": "3dgs"},
    "free_gaussians": {"model.mesh_guided": "False"},
    # The paper's cumulative prior rows: none -> +depth -> +L_sn -> +L_n -> +semantics (= full). The normal
    # TV term goes with L_n, the semantic regulariser with the semantic loss.
    "priors_none": _priors_on(),
    "plus_depth": _priors_on("depth"),
    "plus_sn": _priors_on("depth", "normal_depth"),
    "plus_n": _priors_on("depth", "normal_depth", "normal_prior", "normal_tv"),
}
# Rows that are another run under a second name (not run twice).
ALIASES: dict[str, str] = {"plus_semantics": "full"}

SPLITS = ("novel_view", "novel_pose")
FIRST_METRICS = ("psnr", "ssim", "lpips", "normal_error_deg", "chamfer_mm")  # report.FRAME_KEYS order
HIGHER_IS_BETTER = {"psnr", "ssim", "fscore", "part_miou"}
LOG_FILE = "launch.log"
STATUS_FILE = "launch_status.json"
TABLE_FILE = "ablations.md"

Runner = Callable[[Sequence[str], str, str], int]


class LaunchError(errors.UserError, ValueError):
  """Bad launcher arguments (unknown run, malformed or unknown override); nothing has run. The scripts
  print it as one line, `ablations: error: <message>`, and exit with status 2."""


@dataclasses.dataclass(frozen=True)
class Result:
  """One run's outcome in this invocation: status "done" | "failed" | "skipped" (metrics.json existed)."""
  name: str
  status: str
  exit_code: int = 0
  seconds: float = 0.0


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
  """["a.b=1", "c=x"] -> {"a.b": "1", "c": "x"} (later items win)."""
  out = {}
  for item in items:
    key, sep, value = item.partition("=")
    key = key.strip().removeprefix("--config.")
    if not sep or not key:
      raise LaunchError(f"--override {item!r}: expected key=value, e.g. train.steps=2000")
    out[key] = value
  return out


def load_config(path: str):
  """The ml_collections config of a configs/*.py file (its get_config())."""
  file = path.split(":", 1)[0]
  if not os.path.isfile(file):
    raise LaunchError(f"--config={path}: file not found")
  if REPO not in sys.path:
    sys.path.insert(0, REPO)
  spec = importlib.util.spec_from_file_location("_ablation_config", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def check_keys(config, overrides: Mapping[str, str], where: str) -> None:
  """Raises LaunchError naming `where` and the closest field when a dotted key is not a field of `config`."""
  for key in overrides:
    node = config
    for part in key.split("."):
      if part not in (list(node.keys()) if hasattr(node, "keys") else []):
        raise LaunchError(f"{where}: {key}: no such field{errors.did_you_mean(key, errors.config_keys(config))}")
      node = node[part]


def command(config_path: str, run_dir: str, overrides: Mapping[str, str]) -> list[str]:
  """The `python -m fmgs_jax.main` command line of one run."""
  return ([sys.executable, "-m", "fmgs_jax.main", f"--config={config_path}", f"--workdir={run_dir}", "--mode=train"]
          + [f"--config.{k}={v}" for k, v in overrides.items()])


def run_subprocess(cmd: Sequence[str], log_path: str, cwd: str, verbose: bool = False,
                   env: Mapping[str, str] | None = None) -> int:
  """Runs `cmd` in `cwd` (with `env` added to the environment), stdout and stderr into `log_path` (and
  the console if verbose); exit code. Shared with subjects.py."""
  with open(log_path, "w") as log:
    log.write("$ " + shlex.join(cmd) + "\n")
    log.flush()
    proc = subprocess.Popen(list(cmd), cwd=cwd, env={**os.environ, **(env or {})}, text=True, bufsize=1,
                            stdout=subprocess.PIPE if verbose else log, stderr=subprocess.STDOUT)
    try:
      if verbose:
        for line in proc.stdout:
          log.write(line)
          sys.stdout.write(line)
      return proc.wait()
    except KeyboardInterrupt:  # the child got the same SIGINT: let it save its checkpoint
      proc.wait(timeout=120)
      raise


def clock(seconds: float) -> str:
  s = int(round(seconds))
  return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _tail(path: str, lines: int = 12) -> str:
  """The last non-blank lines of a log (progress-bar carriage returns count as line breaks)."""
  try:
    with open(path, errors="replace") as f:
      text = f.read().replace("\r", "\n")
  except OSError:
    return ""
  return "\n".join([l for l in text.splitlines() if l.strip()][-lines:])


def user_error(log_path: str) -> str:
  """The `fmgs_jax.main: error: ...` line a run's log ends with after a user error, or ''."""
  last = _tail(log_path, 1)
  return last if last.startswith(MAIN_ERROR) else ""


def _read_status(run_dir: str) -> dict | None:
  try:
    with open(os.path.join(run_dir, STATUS_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def run_grid(grid: Mapping[str, Mapping[str, str]], names: Sequence[str], config_path: str, workdir: str,
             overrides: Mapping[str, str], runner: Runner, out: Callable[[str], None] = print) -> list[Result]:
  """Runs `names` of `grid` one after another (see the module docstring); returns their results."""
  results, start = [], time.perf_counter()
  for i, name in enumerate(names, 1):
    run_dir = os.path.join(workdir, name)
    head = f"[{i}/{len(names)}] {name}"
    status = _read_status(run_dir)
    if os.path.isfile(os.path.join(run_dir, "metrics.json")) and not (status and status["status"] == "failed"):
      out(f"{head}: metrics.json exists, skipped")
      results.append(Result(name, "skipped"))
      continue
    os.makedirs(run_dir, exist_ok=True)
    log = os.path.join(run_dir, LOG_FILE)
    run_overrides = {**overrides, **grid[name]}
    shown = " ".join(f"{k}={v}" for k, v in grid[name].items()) or "no override"
    out(f"{head} ({shown}): running, log {log} (elapsed {clock(time.perf_counter() - start)})")
    t0 = time.perf_counter()
    code = runner(command(config_path, run_dir, run_overrides), log, REPO)
    seconds = time.perf_counter() - t0
    result = Result(name, "done" if code == 0 else "failed", int(code), seconds)
    with open(os.path.join(run_dir, STATUS_FILE), "w") as f:
      json.dump(dataclasses.asdict(result), f, indent=2)
    if code == 0:
      out(f"{head}: done in {clock(seconds)} (elapsed {clock(time.perf_counter() - start)})")
    else:
      error = user_error(log)
      if error:  # one line says it all
        out(f"{head}: FAILED (exit {code}) after {clock(seconds)}: {error} (log {log})")
      else:
        out(f"{head}: FAILED (exit {code}) after {clock(seconds)}; last lines of {log}:\n{_tail(log)}")
    results.append(result)
  return results


def _metric_header(split: str, key: str) -> str:
  arrow = "↑" if key in HIGHER_IS_BETTER else "↓"
  return f"{split} {key} {arrow}"


def _fmt(v) -> str:
  if v is None or (isinstance(v, float) and not math.isfinite(v)):
    return "–"
  if isinstance(v, int) and not isinstance(v, bool):
    return str(v)
  return f"{float(v):.4g}"


def collect_rows(grid: Mapping[str, Mapping[str, str]], workdir: str, shown: Sequence[str]) -> list[dict]:
  """One row per name in `shown` (grid order, aliases after their target): name, status, metrics.json."""
  rows = []
  for name in shown:
    target = ALIASES.get(name, name)
    run_dir = os.path.join(workdir, target)
    metrics = None
    try:
      with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    except (OSError, ValueError):
      pass
    status = _read_status(run_dir)
    if status and status["status"] == "failed":
      text = f"failed (exit {status['exit_code']})"
    elif metrics is not None:
      text = "done"
    else:
      text = "not run"
    if target != name:
      text += f" (= {target})"
    rows.append({"name": name, "status": text, "metrics": metrics})
  return rows


def markdown_table(rows: Sequence[Mapping], grid: Mapping[str, Mapping[str, str]],
                   overrides: Mapping[str, str]) -> str:
  """The ablations.md text: the table, then each run's overrides."""
  columns = []  # (split, key) with a value in at least one row
  for split in SPLITS:
    keys = []
    for r in rows:
      per_split = ((r["metrics"] or {}).get("splits") or {}).get(split) or {}
      keys += [k for k, v in per_split.items() if k != "num_frames" and v is not None and k not in keys]
    keys = [k for k in FIRST_METRICS if k in keys] + sorted(k for k in keys if k not in FIRST_METRICS)
    columns += [(split, k) for k in keys]
  header = ["run", "status"] + [_metric_header(s, k) for s, k in columns] + ["train steps", "train s"]
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["--:"] * (len(header) - 2)) + "|"]
  for r in rows:
    m = r["metrics"] or {}
    splits = m.get("splits") or {}
    cells = [r["name"], r["status"]] + [_fmt((splits.get(s) or {}).get(k)) for s, k in columns]
    cells += [_fmt(m.get("train_steps")), _fmt(m.get("train_seconds"))]
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "Overrides of every run: " + (" ".join(f"{k}={v}" for k, v in overrides.items()) or "none") + ".", ""]
  for r in rows:
    target = ALIASES.get(r["name"], r["name"])
    ov = " ".join(f"{k}={v}" for k, v in grid.get(target, {}).items()) or "none"
    lines.append(f"- {r['name']}: {ov}" + (f" (the {target} run)" if target != r["name"] else ""))
  return "\n".join(lines) + "\n"


def _selected(grid: Mapping[str, Mapping[str, str]], only: str) -> tuple[list[str], list[str]]:
  """(runs to launch, rows to show) in grid order; --only may name aliases."""
  known = list(grid) + [a for a, t in ALIASES.items() if t in grid]
  if not only:
    return list(grid), known
  asked = [n.strip() for n in only.split(",") if n.strip()]
  unknown = [n for n in asked if n not in known]
  if unknown:
    raise LaunchError(f"--only: unknown run(s) {unknown}; the grid has {known}")
  targets = {ALIASES.get(n, n) for n in asked}
  return [n for n in grid if n in targets], [n for n in known if n in asked]


def main(argv: Sequence[str] | None = None, grid: Mapping[str, Mapping[str, str]] = GRID,
         runner: Runner | None = None) -> int:
  """Command line entry; returns 0 when every launched run succeeded, else 1 (2: bad arguments)."""
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", required=True, help="configs/*.py file passed to every run")
  p.add_argument("--workdir", required=True, help="grid folder: one sub-folder per run, ablations.md")
  p.add_argument("--override", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                 help="config override for every run (repeatable), e.g. train.steps=2000")
  p.add_argument("--only", default="", help="comma-separated run names (default: the whole grid)")
  p.add_argument("--verbose", action="store_true", help="echo each run's output")
  args = p.parse_args(argv)
  try:
    overrides = parse_overrides([o for group in args.override for o in group])
    to_run, shown = _selected(grid, args.only)
    config = load_config(args.config)
    check_keys(config, overrides, "--override")
    for name in to_run:
      check_keys(config, grid[name], f"grid run {name}")
  except LaunchError as e:
    print(f"ablations: error: {errors.one_line(e)}", file=sys.stderr)
    return 2
  config_path = os.path.abspath(args.config)
  workdir = os.path.abspath(args.workdir)
  os.makedirs(workdir, exist_ok=True)
  if runner is None:
    runner = lambda cmd, log, cwd: run_subprocess(cmd, log, cwd, verbose=args.verbose)
  results = run_grid(grid, to_run, config_path, workdir, overrides, runner)
  # Rows: what this invocation asked for, plus every other grid run that already has a result.
  names = list(grid) + [a for a, t in ALIASES.items() if t in grid]
  shown = [n for n in names if n in shown or _read_status(os.path.join(workdir, n))
           or os.path.isfile(os.path.join(workdir, ALIASES.get(n, n), "metrics.json"))]
  table = markdown_table(collect_rows(grid, workdir, shown), grid, overrides)
  path = os.path.join(workdir, TABLE_FILE)
  with open(path, "w") as f:
    f.write(table)
  print(f"\n{path}:\n\n{table}")
  return 1 if any(r.status == "failed" for r in results) else 0


if __name__ == "__main__":
  sys.exit(main())
