"""Shared test helpers: where the real data lives, and skipping without it."""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))


def data_dir():
  """BERT_MTL_DATA_DIR, else ../shared/data beside the repository."""
  return os.environ.get("BERT_MTL_DATA_DIR") or os.path.join(
      os.path.dirname(REPO), "shared", "data")


def data_file(relative):
  """Path of a file of the real data, or skip the test when it is absent."""
  path = os.path.join(data_dir(), relative)
  if not os.path.exists(path):
    pytest.skip("%s not found under %s (set BERT_MTL_DATA_DIR)" %
                (relative, data_dir()))
  return path
