"""Runs the native core's C++ tests under ASan and UBSan (tools/sanitize.sh)."""

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_cpp_tests_pass_under_sanitizers(tmp_path):
  if shutil.which(os.environ.get("CXX", "g++")) is None:
    pytest.skip("no C++ compiler")
  result = subprocess.run(
      ["bash", os.path.join(REPO, "tools", "sanitize.sh"), str(tmp_path)],
      env=dict(os.environ, PYTHON=sys.executable), capture_output=True,
      text=True, timeout=600)
  assert result.returncode == 0, result.stdout + result.stderr
  assert "native_test: all passed" in result.stdout
