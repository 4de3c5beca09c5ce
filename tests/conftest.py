"""Shared test set-up: the repository root on sys.path so tests can `from configs import default`, and
one persistent XLA compilation cache per test session (shared by the xdist workers), so a program that
several tests compile identically (the train step of a tiny avatar) is compiled once."""

import os
import shutil
import sys
import tempfile

import jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

_CACHE_ENV = "FMGS_TEST_XLA_CACHE"


def pytest_configure(config):
  if _CACHE_ENV not in os.environ:  # the controller (or a plain run) makes it; xdist workers inherit it
    os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="fmgs_xla_cache_")
    config._fmgs_owns_cache = True  # pylint: disable=protected-access
  jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_ENV])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def pytest_unconfigure(config):
  if getattr(config, "_fmgs_owns_cache", False):
    shutil.rmtree(os.environ.pop(_CACHE_ENV), ignore_errors=True)
