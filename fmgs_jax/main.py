"""Command line: `python -m fmgs_jax.main --config=configs/X.py --workdir=DIR --mode=train|eval|render|priors|fit|view|prepare`.

A thin driver (as in the Flax examples): parse flags, validate, write the resolved config, dispatch by mode.
Every experiment is a `--config.x.y=v` override; a mistyped override fails before any compute starts.

A user error (fmgs_jax/errors.py: a bad flag, config value, dataset, checkpoint or input file) ends the
run with one line on standard error, `fmgs_jax.main: error: <message>`, and exit status 2; `--debug` shows
its traceback too. Any other exception is a bug and keeps its traceback.
"""

import importlib.util
import json
import os
import sys
from typing import Any, NoReturn

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from fmgs_jax import errors

MODES = ("train", "eval", "render", "priors", "fit", "view", "prepare")

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to an ml_collections config file (configs/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: config.json, checkpoints, metrics.json, renders/.")
_MODE = flags.DEFINE_enum("mode", "train", MODES, "train (runs the subject fit first where needed, then evaluates) | eval | render | priors | fit (template -> subject) | view (browser viewer) | prepare (a video -> a dataset: configs/video.py).")
_DEBUG = flags.DEFINE_bool("debug", False, "Show the Python traceback of a user error (bad config, dataset, "
                           "checkpoint or input file) too, not only its one-line message.")
flags.mark_flags_as_required(["config", "workdir"])

PROG = "fmgs_jax.main"


def fail(message: str) -> NoReturn:
  """Ends the run on a user error: `fmgs_jax.main: error: MESSAGE` on standard error, exit status 2."""
  sys.stdout.flush()
  sys.stderr.flush()
  print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
  # No interpreter teardown: orbax's threads left by a failed restore would print asyncio tracebacks
  # ("Event loop is closed") after the message. Checkpoint managers are already closed.
  os._exit(2)  # pylint: disable=protected-access


def _config_arg(argv: list[str]) -> str | None:
  """The value of --config in `argv` (`--config=PATH` or `--config PATH`), or None."""
  for i, a in enumerate(argv):
    if a.startswith("--config="):
      return a.split("=", 1)[1]
    if a == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def unknown_override(argv: list[str]) -> str | None:
  """`--config.x.y: no such field; did you mean x.z?` for the first override in `argv` that names no field
  of the --config file, or None when every override names one."""
  path = _config_arg(argv)
  if path is None:
    return None
  file, *arg = path.split(":", 1)
  spec = importlib.util.spec_from_file_location("_fmgs_config_for_override_check", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(*arg)
  keys = set(errors.config_keys(config))
  for a in argv[1:]:
    if not a.startswith("--config."):
      continue
    flag = a.split("=", 1)[0]
    key = flag.removeprefix("--config.").split("[", 1)[0]
    if key not in keys:
      return f"{flag}: no such field{errors.did_you_mean(key, sorted(keys))}"
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing where a bad flag, a missing config file or a mistyped `--config.x.y=v` ends in one
  line naming it (`fail`) instead of a traceback."""
  path = _config_arg(argv)
  if path is not None and not os.path.isfile(path.split(":", 1)[0]):
    fail(f"--config={path}: no such file")
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    hint = "; --helpfull lists the flags" if "Unknown command line flag" in str(e) else ""
    fail(errors.one_line(e) + hint)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    fail(unknown_override(argv) or f"bad --config override: {errors.one_line(e)}")


def write_config(config, workdir: str, mode: str = "train") -> str:
  """Writes the resolved config and returns its path.

  Training writes WORKDIR/config.json, the record of how the run was trained. The other modes write
  WORKDIR/config_<mode>.json, and WORKDIR/config.json too where none exists yet (every workdir has one),
  so evaluating or rendering never overwrites the training record.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "config.json")
  if mode != "train" and os.path.exists(path):
    path = os.path.join(workdir, f"config_{mode}.json")
  with open(path, "w") as f:
    json.dump(config.to_dict(), f, indent=2, sort_keys=True)
  return path


def run_mode(config: Any, workdir: str, mode: str) -> None:
  """Writes the resolved config and runs `mode`."""
  main_process = True
  if mode == "train":  # training may span processes; join them before anything touches a device
    from fmgs_jax.train import parallel  # pylint: disable=g-import-not-at-top
    parallel.maybe_initialize_distributed(config.parallel)
    main_process = parallel.is_main_process()
  if main_process:
    write_config(config, workdir, mode)
  logging.info("mode=%s workdir=%s", mode, workdir)
  # Imports per mode keep start-up light and keep torch out of every mode but `priors` and `prepare`.
  if mode == "train" and config.data.get("video"):  # a video: prepare its dataset first where it is missing
    from fmgs_jax.prepare import run as prepare  # pylint: disable=g-import-not-at-top
    if main_process and prepare.needs_prepare(config, workdir):
      prepare.prepare(config, workdir)
    parallel.barrier("prepare")
  if mode == "train":
    from fmgs_jax.train import loop  # pylint: disable=g-import-not-at-top
    loop.train_and_evaluate(config, workdir)
  elif mode == "eval":
    from fmgs_jax.eval import evaluate  # pylint: disable=g-import-not-at-top
    evaluate.evaluate(config, workdir)
  elif mode == "render":
    from fmgs_jax.eval import animate  # pylint: disable=g-import-not-at-top
    animate.render_poses(config, workdir)
  elif mode == "fit":
    from fmgs_jax.fit import stage  # pylint: disable=g-import-not-at-top
    stage.run_fit(config, workdir, force=True)
  elif mode == "priors":
    from fmgs_jax.priors import extract  # pylint: disable=g-import-not-at-top
    extract.extract_priors(config, workdir)
  elif mode == "prepare":
    from fmgs_jax.prepare import run as prepare  # pylint: disable=g-import-not-at-top
    prepare.prepare(config, workdir)
  elif mode == "view":
    from fmgs_jax.view import server  # pylint: disable=g-import-not-at-top
    server.view(config, workdir)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  mode = _MODE.value
  try:
    run_mode(_CONFIG.value, _WORKDIR.value, mode)
  except errors.UserError as e:
    if _DEBUG.value:
      raise
    fail(errors.one_line(e))
  except KeyboardInterrupt:
    if _DEBUG.value:
      raise
    resume = "; the same command resumes from the checkpoint it saved" if mode == "train" else ""
    print(f"{PROG}: interrupted{resume}", file=sys.stderr, flush=True)
    sys.exit(130)


def _add_config_dir_to_path(argv: list[str]) -> None:
  """Lets a config do `from configs import default` whatever the current directory is."""
  for a in argv:
    if a.startswith("--config="):
      root = os.path.dirname(os.path.dirname(os.path.abspath(a.split("=", 1)[1])))
      if root not in sys.path:
        sys.path.insert(0, root)


def run():
  _add_config_dir_to_path(sys.argv)
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
