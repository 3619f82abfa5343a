"""The Bazel BUILD builds offline and its C++ test passes (when Bazel is
installed: Debian's bazel-bootstrap and bazel-rules-java, see docs/development.md)."""

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_bazel_builds_extension_and_runs_cpp_test():
  if os.environ.get("BAZEL_TESTING"):
    pytest.skip("already running inside Bazel")
  bazel = shutil.which("bazel")
  if bazel is None or not os.path.isdir("/usr/share/bazel/rules/java"):
    pytest.skip("bazel-bootstrap / bazel-rules-java not installed")
  env = dict(os.environ, PYTHON_BIN_PATH=sys.executable,
             PATH=os.path.dirname(sys.executable) + os.pathsep +
             os.environ.get("PATH", ""))
  result = subprocess.run(
      [bazel, "--batch", "test", "//:native_test", "--test_output=errors",
       "--noshow_progress"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  result = subprocess.run(
      [bazel, "--batch", "build", "//:bert_mtl/_native.so", "--noshow_progress"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  built = os.path.join(REPO, "bazel-bin", "bert_mtl", "_native.so")
  probe = subprocess.run(
      [sys.executable, "-c",
       "import importlib.util, sys; "
       "spec = importlib.util.spec_from_file_location('bert_mtl._native', %r);"
       "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
       "print(m.unidata_version, m.viterbi_decode([[[1.0, 2.0]]], "
       "[[0.0, 0.0], [0.0, 0.0]], [1])[0].tolist())" % built],
      capture_output=True, text=True, timeout=120)
  assert probe.returncode == 0, probe.stderr
  assert probe.stdout.split()[0] == __import__("unicodedata").unidata_version
  assert "[[1]]" in probe.stdout
