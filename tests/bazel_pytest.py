"""Runs one pytest file as a Bazel py_test (see BUILD)."""

import os
import sys

import pytest

if __name__ == "__main__":
  # The test must exercise the extension Bazel built, not an installed one.
  from bert_mtl import _native  # pylint: disable=g-import-not-at-top
  runfiles = os.environ.get("TEST_SRCDIR") or os.environ.get("RUNFILES_DIR")
  if runfiles and not os.path.realpath(_native.__file__).startswith(
      os.path.realpath(runfiles)) and "bazel-out" not in os.path.realpath(
          _native.__file__):
    sys.exit("bert_mtl._native was imported from %s, not from Bazel's "
             "runfiles %s" % (_native.__file__, runfiles))
  print("bert_mtl._native from", os.path.realpath(_native.__file__))
  os.environ["BAZEL_TESTING"] = "1"
  # Bazel's HOME and TMPDIR are read-only or unset in the sandbox.
  os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                        os.environ.get("TEST_TMPDIR", "/tmp"))
  sys.exit(pytest.main(["-q", "-p", "no:cacheprovider"] + sys.argv[1:]))
