"""Data-test helpers: a fresh data config per test."""

import pytest

from configs import default


@pytest.fixture
def data_config():
  return default.get_config().data
