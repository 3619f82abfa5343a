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


def data_file(relative):
  """Path of a file of the real data, or skip the test when it is absent."""
  try:
    return _data_dir.require(relative)
  except FileNotFoundError as e:
    pytest.skip(str(e))
