"""Errors that a user can fix: bad input, not bugs.

`python -m fmgs_jax.main` (and the launch/ scripts) print an exception of these types as one line,
`fmgs_jax.main: error: <message>`, and exit with status 2; any other exception is a bug and keeps its
traceback (`--debug` shows the traceback of a user error too). The message itself says what is wrong and
where (file, field, frame) and what to do. Each class also derives from the built-in type code raised
before it existed (ValueError, FileNotFoundError), so callers that catch those still do.

This module imports nothing of the package: every layer can raise these.
"""

import difflib
from typing import Any, Iterable


class UserError(Exception):
  """Base of every error a user can fix (a dataset, config, checkpoint or input file at fault)."""


class ConfigError(UserError, ValueError):
  """A config field holds a value the run cannot use; the message names the field."""


class InputError(UserError, ValueError):
  """An input file the user supplied (a body model, weights) cannot be used; the message names it."""


class MissingInputError(UserError, FileNotFoundError):
  """Something the run needs is not there (a checkpoint, priors, weights); the message says how to make it."""


class MissingPackageError(UserError, ImportError):
  """A mode needs an optional package that is not installed; the message names the extra to install."""


def one_line(error: BaseException) -> str:
  """The message of `error` on one line (line breaks become '; ', repeated blanks collapse)."""
  text = str(error)
  if isinstance(error, KeyError) and len(error.args) == 1 and isinstance(error.args[0], str):
    text = error.args[0]  # str(KeyError) adds quotes
  lines = [l.strip() for l in text.splitlines() if l.strip()]
  return "; ".join(lines) or type(error).__name__


def config_keys(config: Any, prefix: str = "") -> list[str]:
  """Every dotted field path of a ConfigDict (`train`, `train.steps`, ...), inner fields included."""
  keys = []
  for k, v in config.items():
    keys.append(prefix + k)
    if hasattr(v, "items"):
      keys += config_keys(v, prefix + k + ".")
  return keys


def did_you_mean(key: str, known: Iterable[str]) -> str:
  """'; did you mean K?' with K the closest of `known` to `key` (difflib), or '' when none is close."""
  match = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
  return f"; did you mean {match[0]}?" if match else ""
