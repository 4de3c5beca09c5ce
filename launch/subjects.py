"""Train and evaluate one avatar per subject, as independent jobs, and tabulate their metrics.

    python launch/subjects.py --config=configs/people_snapshot.py --workdir=runs/ps \
        --subjects=male-3-casual:/data/ps/male-3-casual,female-3-casual:/data/ps/female-3-casual \
        [--subjects_file=FILE] [--max_parallel=N] [--gpus=0,1,2,3] [--override key=value ...]
        [--slurm [--sbatch_option=--gres=gpu:1 ...] [--submit]] [--summary] [--verbose]

Each subject NAME:PATH runs `python -m fmgs_jax.main --mode=train` (train, then evaluate) in
WORKDIR/NAME with `--config.data.root=PATH`, the global `--override`s, then the subject's own (from
the subjects file). When the config's get_config takes an argument (configs/people_snapshot.py: the
subject's frame ranges), the config is passed as CONFIG:NAME. A subjects file holds one subject a
line, `NAME PATH [key=value ...]` or `NAME:PATH`; `#` starts a comment. Subject names, dataset
folders (but for the synthetic dataset, generated there) and override keys are checked first.

Local runs (default): up to --max_parallel at once (with --gpus, one GPU each through
CUDA_VISIBLE_DEVICES, and --max_parallel defaults to the number of GPUs). A subject whose
metrics.json exists is skipped (delete its folder to redo it); an unfinished one is started again and
resumes from its checkpoint. A failed run is recorded (WORKDIR/NAME/launch_status.json, its output in
WORKDIR/NAME/launch.log) and the others go on.

--slurm: writes WORKDIR/subjects.sbatch, a job array with one task per subject still to run, each
the same command as a local run (and the same skip if metrics.json appeared meanwhile); --submit
also runs `sbatch` on it. Run again with --summary when the array is done.

At the end WORKDIR/subjects.md gets a markdown table, one row per subject (status done, failed (exit
N), or pending), one column per metric of the metrics.json files, and a mean over the finished
subjects; it is printed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import importlib.util
import inspect
import json
import math
import os
import queue
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)
from fmgs_jax import errors  # pylint: disable=g-import-not-at-top,wrong-import-position
from launch.ablations import (  # pylint: disable=g-import-not-at-top,wrong-import-position
    LaunchError, Result, check_keys, clock, parse_overrides, run_subprocess, user_error)

LOG_FILE = "launch.log"
STATUS_FILE = "launch_status.json"
TABLE_FILE = "subjects.md"
SBATCH_FILE = "subjects.sbatch"
FIRST_METRICS = ("psnr", "ssim", "lpips", "normal_error_deg", "chamfer_mm")
LAST_METRICS = ("train_steps", "train_seconds")
HIGHER_IS_BETTER = {"psnr", "ssim", "fscore", "part_miou"}

# (command, log path, working folder, extra environment) -> exit code.
Runner = Callable[[Sequence[str], str, str, Mapping[str, str]], int]


@dataclasses.dataclass(frozen=True)
class Subject:
  """One subject: its run folder name, dataset folder and own config overrides."""
  name: str
  root: str
  overrides: tuple[tuple[str, str], ...] = ()


def _subject(name: str, root: str, where: str, overrides: Sequence[str] = ()) -> Subject:
  name, root = name.strip(), root.strip()
  if not name or not root:
    raise LaunchError(f"{where}: expected NAME:PATH (or 'NAME PATH' in a file)")
  if name in (".", "..") or "/" in name or any(c.isspace() for c in name):
    raise LaunchError(f"{where}: subject name {name!r} must be a plain folder name")
  try:
    own = parse_overrides(overrides)
  except LaunchError as e:
    raise LaunchError(f"{where}: {e}") from None
  return Subject(name, os.path.abspath(os.path.expanduser(root)), tuple(own.items()))


def parse_subjects(spec: str = "", path: str = "") -> list[Subject]:
  """Subjects from `--subjects` ("a:/x,b:/y") and/or a subjects file; names must be unique."""
  out = []
  for item in [s for s in spec.split(",") if s.strip()]:
    name, sep, root = item.partition(":")
    out.append(_subject(name, root if sep else "", f"--subjects item {item!r}"))
  if path:
    if not os.path.isfile(path):
      raise LaunchError(f"--subjects_file={path}: file not found")
    with open(path) as f:
      for number, line in enumerate(f, 1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
          continue
        where = f"{path}:{number}"
        if ":" in tokens[0] and (len(tokens) == 1 or "=" in tokens[1]):
          name, _, root = tokens[0].partition(":")
          out.append(_subject(name, root, where, tokens[1:]))
        else:
          out.append(_subject(tokens[0], tokens[1] if len(tokens) > 1 else "", where, tokens[2:]))
  if not out:
    raise LaunchError("no subjects: give --subjects=NAME:PATH,... or --subjects_file=FILE")
  names = [s.name for s in out]
  dups = sorted({n for n in names if names.count(n) > 1})
  if dups:
    raise LaunchError(f"subject names must be unique (they name the run folders): {dups} repeat")
  return out


def load_config_module(path: str):
  """The configs/*.py module of `path` (CONFIG or CONFIG:ARG)."""
  file = path.split(":", 1)[0]
  if not os.path.isfile(file):
    raise LaunchError(f"--config={path}: file not found")
  spec = importlib.util.spec_from_file_location("_subjects_config", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def config_for(config_path: str, module, subject: Subject) -> str:
  """The --config value of `subject`: CONFIG:NAME when get_config takes the subject and none is given."""
  takes_arg = bool(inspect.signature(module.get_config).parameters)
  return f"{config_path}:{subject.name}" if takes_arg and ":" not in config_path else config_path


def command(config: str, run_dir: str, subject: Subject, overrides: Mapping[str, str]) -> list[str]:
  """The `python -m fmgs_jax.main` command line of one subject."""
  merged = {"data.root": subject.root, **overrides, **dict(subject.overrides)}
  return ([sys.executable, "-m", "fmgs_jax.main", f"--config={config}", f"--workdir={run_dir}", "--mode=train"]
          + [f"--config.{k}={v}" for k, v in merged.items()])


def _read_json(path: str) -> dict | None:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def is_done(run_dir: str) -> bool:
  return os.path.isfile(os.path.join(run_dir, "metrics.json"))


def run_local(jobs: Sequence[tuple[Subject, list[str]]], workdir: str, runner: Runner, max_parallel: int = 1,
              gpus: Sequence[str] = (), out: Callable[[str], None] = print) -> list[Result]:
  """Runs each (subject, command) not yet done, `max_parallel` at a time; returns the results in order."""
  start = time.perf_counter()
  free = queue.Queue()
  for g in gpus:
    free.put(g)

  def one(i: int, subject: Subject, cmd: list[str]) -> Result:
    run_dir = os.path.join(workdir, subject.name)
    head = f"[{i}/{len(jobs)}] {subject.name}"
    if is_done(run_dir):
      out(f"{head}: metrics.json exists, skipped")
      return Result(subject.name, "skipped")
    os.makedirs(run_dir, exist_ok=True)
    log = os.path.join(run_dir, LOG_FILE)
    gpu = free.get() if gpus else None
    env = {"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {}
    out(f"{head}: running{f' on GPU {gpu}' if gpu is not None else ''}, log {log} "
        f"(elapsed {clock(time.perf_counter() - start)})")
    t0 = time.perf_counter()
    try:
      code = runner(cmd, log, REPO, env)
    finally:
      if gpu is not None:
        free.put(gpu)
    result = Result(subject.name, "done" if code == 0 else "failed", int(code), time.perf_counter() - t0)
    with open(os.path.join(run_dir, STATUS_FILE), "w") as f:
      json.dump(dataclasses.asdict(result), f, indent=2)
    error = "" if code == 0 else user_error(log)
    out(f"{head}: {'done' if code == 0 else f'FAILED (exit {code})'} in {clock(result.seconds)}"
        + ("" if code == 0 else f"{': ' + error if error else ''}; see {log}"))
    return result

  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, max_parallel)) as pool:
    futures = [pool.submit(one, i, s, c) for i, (s, c) in enumerate(jobs, 1)]
    return [f.result() for f in futures]


def sbatch_script(jobs: Sequence[tuple[Subject, list[str]]], workdir: str, max_parallel: int = 0,
                  options: Sequence[str] = ()) -> str:
  """A SLURM job-array script: task k runs the k-th command unless its metrics.json exists, logging to
  WORKDIR/NAME/launch.log and recording WORKDIR/NAME/launch_status.json."""
  limit = f"%{max_parallel}" if max_parallel > 0 else ""
  lines = ["#!/bin/bash",
           "#SBATCH --job-name=fmgs-subjects",
           f"#SBATCH --array=0-{len(jobs) - 1}{limit}",
           "#SBATCH --ntasks=1",
           f"#SBATCH --output={os.path.join(workdir, 'slurm', '%A_%a.out')}"]
  lines += [f"#SBATCH {o}" for o in options]
  lines += ["", "# Generated by launch/subjects.py: one task per subject; resubmitting skips finished subjects.",
            "set -u", f"cd {shlex.quote(REPO)}", "case \"$SLURM_ARRAY_TASK_ID\" in"]
  for k, (subject, cmd) in enumerate(jobs):
    lines.append(f"  {k}) NAME={shlex.quote(subject.name)}; CMD=({' '.join(shlex.quote(c) for c in cmd)}) ;;")
  lines += ["  *) echo \"no subject for task $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;", "esac",
            f"RUN={shlex.quote(workdir)}/\"$NAME\"",
            "if [ -f \"$RUN/metrics.json\" ]; then echo \"$NAME: metrics.json exists, skipped\"; exit 0; fi",
            "mkdir -p \"$RUN\"",
            "START=$SECONDS",
            f"\"${{CMD[@]}}\" > \"$RUN/{LOG_FILE}\" 2>&1",
            "CODE=$?",
            "if [ $CODE -eq 0 ]; then STATUS=done; else STATUS=failed; fi",
            "printf '{\"name\": \"%s\", \"status\": \"%s\", \"exit_code\": %d, \"seconds\": %d}\\n' "
            f"\"$NAME\" \"$STATUS\" \"$CODE\" $((SECONDS - START)) > \"$RUN/{STATUS_FILE}\"",
            "exit $CODE", ""]
  return "\n".join(lines)


def _fmt(v) -> str:
  if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
    return "–"
  return str(v) if isinstance(v, int) else f"{v:.4g}"


def collect_rows(subjects: Sequence[Subject], workdir: str) -> list[dict]:
  """One row per subject: name, status ("done" | "failed (exit N)" | "pending"), metrics (or None)."""
  rows = []
  for s in subjects:
    run_dir = os.path.join(workdir, s.name)
    metrics = _read_json(os.path.join(run_dir, "metrics.json"))
    status = _read_json(os.path.join(run_dir, STATUS_FILE))
    if metrics is not None:
      text = "done"
    elif status and status.get("status") == "failed":
      text = f"failed (exit {status.get('exit_code')})"
    else:
      text = "pending"
    rows.append({"name": s.name, "status": text, "metrics": metrics})
  return rows


def markdown_table(rows: Sequence[Mapping]) -> str:
  """The subjects.md text: a row per subject, the mean of the finished ones, metrics as columns."""
  keys = []
  for r in rows:
    keys += [k for k, v in (r["metrics"] or {}).items() if k not in keys and k != "num_frames" and (
        k in FIRST_METRICS or isinstance(v, (int, float)) and not isinstance(v, bool))]  # null lpips: a "–" column
  middle = sorted(k for k in keys if k not in FIRST_METRICS + LAST_METRICS)
  columns = [k for k in FIRST_METRICS if k in keys] + middle + [k for k in LAST_METRICS if k in keys]
  arrow = lambda k: "" if k in LAST_METRICS else (" ↑" if k in HIGHER_IS_BETTER else " ↓")
  header = ["subject", "status"] + [k + arrow(k) for k in columns]
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["--:"] * len(columns)) + "|"]
  for r in rows:
    m = r["metrics"] or {}
    lines.append("| " + " | ".join([r["name"], r["status"]] + [_fmt(m.get(k)) for k in columns]) + " |")
  done = [r["metrics"] for r in rows if r["metrics"] is not None]
  if done:
    means = []
    for k in columns:
      vals = [m[k] for m in done if isinstance(m.get(k), (int, float)) and math.isfinite(m[k])]
      means.append(_fmt(float(sum(vals) / len(vals))) if vals else "–")
    lines.append("| " + " | ".join([f"mean ({len(done)} of {len(rows)})", ""] + means) + " |")
  return "\n".join(lines) + "\n"


def write_summary(subjects: Sequence[Subject], workdir: str) -> tuple[str, str]:
  table = markdown_table(collect_rows(subjects, workdir))
  path = os.path.join(workdir, TABLE_FILE)
  with open(path, "w") as f:
    f.write(table)
  return path, table


def main(argv: Sequence[str] | None = None, runner: Runner | None = None) -> int:
  """Command line entry; 0 when every launched run succeeded (or the script was written), 1 when one
  failed, 2 for bad arguments (nothing run)."""
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", required=True, help="configs/*.py file passed to every run")
  p.add_argument("--workdir", required=True, help="one sub-folder per subject, subjects.md, subjects.sbatch")
  p.add_argument("--subjects", default="", help="comma-separated NAME:PATH (dataset folder of the subject)")
  p.add_argument("--subjects_file", default="", help="file of subjects, one 'NAME PATH [key=value ...]' a line")
  p.add_argument("--override", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                 help="config override for every subject (repeatable), e.g. train.steps=30000")
  p.add_argument("--max_parallel", type=int, default=0,
                 help="local runs at once (default: the number of --gpus, else 1); SLURM: array tasks at once "
                      "(default: no limit)")
  p.add_argument("--gpus", default="", help="local runs: GPU ids to share out, one per run, e.g. 0,1,2,3")
  p.add_argument("--slurm", action="store_true", help="write a SLURM job-array script instead of running")
  p.add_argument("--sbatch_option", action="append", default=[], metavar="OPTION",
                 help="extra #SBATCH line (repeatable), e.g. --sbatch_option=--gres=gpu:1")
  p.add_argument("--submit", action="store_true", help="with --slurm: submit the script with sbatch")
  p.add_argument("--summary", action="store_true", help="only write and print the table of what is there")
  p.add_argument("--verbose", action="store_true", help="echo each local run's output (with --max_parallel=1)")
  args = p.parse_args(argv)
  gpus = [g.strip() for g in args.gpus.split(",") if g.strip()]
  try:
    subjects = parse_subjects(args.subjects, args.subjects_file)
    overrides = parse_overrides([o for group in args.override for o in group])
    module = load_config_module(args.config)
    base = module.get_config()
    check_keys(base, overrides, "--override")
    check_keys(base, {"data.root": ""}, "subjects")
    for s in subjects:
      check_keys(base, dict(s.overrides), f"subject {s.name}")
      if base.data.name != "synthetic" and not os.path.isdir(s.root):  # synthetic: generated there
        raise LaunchError(f"subject {s.name}: dataset folder {s.root} not found")
    if args.max_parallel < 0:
      raise LaunchError(f"--max_parallel={args.max_parallel}: expected 0 (default) or more")
    if args.submit and not args.slurm:
      raise LaunchError("--submit goes with --slurm")
  except LaunchError as e:
    print(f"subjects: error: {errors.one_line(e)}", file=sys.stderr)
    return 2
  config_path = os.path.abspath(args.config.split(":", 1)[0]) + (
      ":" + args.config.split(":", 1)[1] if ":" in args.config else "")
  workdir = os.path.abspath(args.workdir)
  os.makedirs(workdir, exist_ok=True)
  jobs = [(s, command(config_for(config_path, module, s), os.path.join(workdir, s.name), s, overrides))
          for s in subjects]
  code = 0
  if args.summary:
    pass
  elif args.slurm:
    pending = [(s, c) for s, c in jobs if not is_done(os.path.join(workdir, s.name))]
    for s, _ in jobs:
      if is_done(os.path.join(workdir, s.name)):
        print(f"{s.name}: metrics.json exists, not in the array")
    if pending:
      os.makedirs(os.path.join(workdir, "slurm"), exist_ok=True)
      script = os.path.join(workdir, SBATCH_FILE)
      with open(script, "w") as f:
        f.write(sbatch_script(pending, workdir, args.max_parallel, args.sbatch_option))
      print(f"wrote {script}: {len(pending)} array task(s) ({', '.join(s.name for s, _ in pending)})")
      if args.submit:
        done = subprocess.run(["sbatch", script], capture_output=True, text=True, check=False)
        print((done.stdout + done.stderr).strip())
        code = 0 if done.returncode == 0 else 1
      else:
        print(f"submit with: sbatch {script}; then: python launch/subjects.py ... --summary")
    else:
      print("every subject has its metrics.json: nothing to submit")
  else:
    if runner is None:
      runner = lambda cmd, log, cwd, env: run_subprocess(cmd, log, cwd, verbose=args.verbose, env=env)
    parallel = args.max_parallel or len(gpus) or 1
    if gpus and parallel > len(gpus):
      print(f"subjects: --max_parallel={parallel} > {len(gpus)} GPUs: runs wait for a free GPU", file=sys.stderr)
    results = run_local(jobs, workdir, runner, parallel, gpus)
    code = 1 if any(r.status == "failed" for r in results) else 0
  path, table = write_summary(subjects, workdir)
  print(f"\n{path}:\n\n{table}")
  return code


if __name__ == "__main__":
  sys.exit(main())
