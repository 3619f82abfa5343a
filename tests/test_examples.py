"""The notebooks in examples/ run as written (their code cells, in order,
in a fresh process), so they never rot."""

import glob
import json
import os
import subprocess
import sys

import pytest

from conftest import data_dir
from run_helpers import REPO

NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "examples", "*.ipynb")))


def test_there_are_notebooks():
  assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, tmp_path):
  root = data_dir()
  with open(path, encoding="utf-8") as f:
    cells = json.load(f)["cells"]
  code = "\n\n".join("".join(c["source"]) for c in cells
                     if c["cell_type"] == "code")
  script = tmp_path / "notebook.py"
  script.write_text(code, encoding="utf-8")
  process = subprocess.run(
      [sys.executable, str(script)], capture_output=True, text=True,
      timeout=600, cwd=str(tmp_path),
      env=dict(os.environ, BERT_MTL_DATA_DIR=root,
               EXAMPLE_OUTPUT=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="2"))
  assert process.returncode == 0, process.stderr[-5000:]
