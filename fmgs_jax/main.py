"""Command line: `python -m fmgs_jax.main --config=configs/X.py --workdir=DIR --mode=train|eval|render|priors`.

A thin driver (as in the Flax examples): parse flags, validate, write the resolved config, dispatch by mode.
Every experiment is a `--config.x.y=v` override; a mistyped override fails before any compute starts.
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

MODES = ("train", "eval", "render", "priors", "fit", "view")

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to an ml_collections config file (configs/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: config.json, checkpoints, metrics.json, renders/.")
_MODE = flags.DEFINE_enum("mode", "train", MODES, "train (runs the subject fit first where needed, then evaluates) | eval | render | priors | fit (template -> subject) | view (browser viewer).")
flags.mark_flags_as_required(["config", "workdir"])


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing that turns a mistyped `--config.x.y=v` into one clear line instead of a traceback."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f"fmgs_jax.main: {e}\nPass --helpfull to see the flags.")
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    bad = [a for a in argv[1:] if a.startswith("--config.")]
    msg = str(e).strip("'\"").replace("\\n", " ").replace("\\'", "'")
    sys.exit(f"fmgs_jax.main: bad config override among {bad}: {msg}")


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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config, workdir, mode = _CONFIG.value, _WORKDIR.value, _MODE.value
  main_process = True
  if mode == "train":  # training may span processes; join them before anything touches a device
    from fmgs_jax.train import parallel  # pylint: disable=g-import-not-at-top
    parallel.maybe_initialize_distributed(config.parallel)
    main_process = parallel.is_main_process()
  if main_process:
    write_config(config, workdir, mode)
  logging.info("mode=%s workdir=%s", mode, workdir)
  # Imports per mode keep start-up light and keep torch out of every mode but `priors`.
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
  elif mode == "view":
    from fmgs_jax.view import server  # pylint: disable=g-import-not-at-top
    server.view(config, workdir)


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
