"""--mixed_precision=auto: bfloat16 where the hardware multiplies it
natively, float32 elsewhere; what was used is in run.json, and a run
resumes across the two."""

import json

import pytest

from bert_mtl import hardware
from conftest import data_dir
from run_helpers import base_args, run_multitask

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu vme sse sse2 avx avx2 avx512f %s
"""


@pytest.mark.parametrize("flags,expected", [
    ("avx512_bf16", "bfloat16"), ("amx_bf16 amx_tile", "bfloat16"),
    ("avx512_vnni", None), ("", None)])
def test_auto_reads_the_cpus_bfloat16_flags(tmp_path, monkeypatch, flags,
                                            expected):
  monkeypatch.delenv("BERT_MTL_PRECISION_AUTO", raising=False)
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text(CPUINFO % flags)
  used, why = hardware.resolve_precision("auto", cpuinfo=str(cpuinfo))
  assert used == expected
  assert ("has " + flags.split()[0]) in why if expected else "none of" in why
  # Asked precisions are kept as they are; an unreadable cpuinfo is
  # hardware without bfloat16.
  assert hardware.resolve_precision("float16")[0] == "float16"
  assert hardware.resolve_precision(None)[0] is None
  assert hardware.resolve_precision(
      "auto", cpuinfo=str(tmp_path / "missing"))[0] is None
  monkeypatch.setenv("BERT_MTL_PRECISION_AUTO", "float32")
  assert hardware.resolve_precision("auto", cpuinfo=str(cpuinfo))[0] is None


def test_auto_is_recorded_and_a_run_resumes_across_precisions(tmp_path):
  args = base_args(tmp_path, data_dir(), "pd98_ner", steps=1)
  record = lambda: json.loads((tmp_path / "model" / "run.json").read_text())
  run = run_multitask(args + ["--do_train", "--mixed_precision=auto"],
                      env={"BERT_MTL_PRECISION_AUTO": "bfloat16"})
  assert "mixed_precision=auto: bfloat16" in run.stderr
  assert record()["mixed_precision"] == "auto"
  assert record()["mixed_precision_used"] == "bfloat16"
  # Resumed in float32 (no setting): two more steps from the checkpoint.
  resume = [a for a in args if not a.startswith("--num_train_steps")]
  run_multitask(resume + ["--do_train", "--num_train_steps=3"])
  assert record()["mixed_precision_used"] == "float32"
  assert (tmp_path / "model" / "model.ckpt-3.index").exists()
  # float16 checkpoints differ (loss scale): refused, nothing written.
  before = (tmp_path / "model" / "run.json").read_text()
  refused = run_multitask(resume + ["--do_train", "--num_train_steps=4",
                                    "--mixed_precision=float16"],
                          check=False)
  assert refused.returncode != 0
  assert "mixed_precision: None there, float16 asked" in refused.stderr
  assert (tmp_path / "model" / "run.json").read_text() == before
