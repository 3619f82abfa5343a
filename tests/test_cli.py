"""run_multitask.py's command line: listing, and bad settings failing
before any work with one clear message."""

import os

import pytest

from bert_mtl import problems, types
from conftest import data_dir
from run_helpers import base_args, run_multitask, tiny_config


def test_list_problems():
  out = run_multitask(["--list_problems"]).stdout.splitlines()
  rows = [line.split("\t") for line in out]
  assert [r[0] for r in rows] == problems.names()
  assert all(len(r) == 3 and r[1] in types.names() for r in rows)
  assert {r[1] for r in rows} == {"cls", "multi_cls", "seq_tag",
                                  "seq2seq_tag", "seq2seq_text", "pretrain",
                                  "regression"}


def _fails(tmp_path, message, **flags):
  args = base_args(tmp_path, data_dir(), flags.pop("problems", "msra_ner"),
                   **flags)
  process = run_multitask(args + ["--do_train"], check=False)
  assert process.returncode != 0
  assert message in process.stderr, process.stderr[-2000:]
  assert "Traceback" not in process.stderr, process.stderr[-3000:]
  assert "bounding the padding buckets" not in process.stderr  # no flag help
  assert not (tmp_path / "model" / "run.json").exists()  # no work done
  return process.stderr


@pytest.mark.parametrize("flags,message", [
    ({"problems": "msra_ner|nope"}, "unknown problem 'nope'"),
    ({"problems": "msra_ner&&weibo_ner"}, "empty"),
    ({"cpu_replicas": 3}, "not divisible by 3 replicas"),
    ({"bert_config_file": "/no/such/config.json"},
     "/no/such/config.json does not exist"),
    ({"vocab_file": "/no/such/vocab.txt"}, "/no/such/vocab.txt"),
    ({"loss_weights": "weibo_ner=2"}, "weibo_ner is not in --problems"),
    ({"max_seq_length": 100}, "exceeds max_position_embeddings"),
    ({"eval_on": "msra_ner=nope"}, "unknown problem 'nope'"),
    ({"eval_on": "pd98_cws=pku_cws"}, "pd98_cws is not a problem of this run"),
    ({"eval_on": "msra_ner=chn_sentiment"},
     "msra_ner is seq_tag but chn_sentiment is cls"),
    ({"learning_rate": -1}, "--learning_rate=-1.0: must be > 0"),
    ({"loss_weights": "msra_ner=-2"}, "--loss_weights=['msra_ner=-2']: "
     "'msra_ner=-2': weights must be numbers >= 0"),
    ({"num_train_steps": 0}, "--num_train_steps=0: must be >= 1"),
    ({"num_train_steps": -1}, "--num_train_steps=-1: must be >= 1"),
    ({"max_seq_length": 2}, "--max_seq_length=2: must be >= 3"),
    ({"train_batch_size": 0}, "--train_batch_size=0: must be >= 1"),
    ({"problems": "msra_ner|chn_sentiment", "sampling": "weights"},
     "--sampling=weights: needs one weight >= 0 per '|' group (2)"),
    ({"bucket_boundaries": "32,16"}, "--bucket_boundaries=['32', '16']: "
     "must be increasing positive integers"),
    ({"masked_lm_prob": 1.5}, "--masked_lm_prob=1.5: must be in (0, 1)"),
    ({"init_checkpoint": "/no/such/bert_model.ckpt"},
     "--init_checkpoint=/no/such/bert_model.ckpt: no such checkpoint"),
])
def test_bad_settings_fail_early_and_clearly(tmp_path, flags, message):
  _fails(tmp_path, message, **flags)


def test_config_and_vocab_must_agree(tmp_path):
  config = tiny_config(tmp_path, vocab_size=30522)
  _fails(tmp_path, "30522", bert_config_file=config)


def test_eval_needs_a_trained_run(tmp_path):
  process = run_multitask(["--output_dir=%s" % tmp_path, "--do_eval"],
                          check=False)
  assert process.returncode != 0 and "run.json" in process.stderr
  assert "Traceback" not in process.stderr


def test_installed_command_and_module_work_from_any_directory(tmp_path):
  """The wheel's `bert-mtl` console script and `python -m bert_mtl` are the
  same command as run_multitask.py, from any directory."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  script = os.path.join(os.path.dirname(sys.executable), "bert-mtl")
  for command, name in (([script], "bert-mtl"),
                        ([sys.executable, "-m", "bert_mtl"], "bert-mtl")):
    listed = subprocess.run(command + ["--list_problems"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "msra_ner\tseq_tag\t" in listed.stdout
    bad = subprocess.run(command + ["--problems=nope", "--do_train",
                                    "--output_dir=%s" % (tmp_path / "x")],
                         cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-2].startswith(
        "%s: error: unknown problem 'nope'" % name), bad.stderr[-2000:]
    assert not (tmp_path / "x").exists()


def test_head_setting_flags_reach_the_run(tmp_path):
  """Generated head-setting flags: a shared value ("*") and problem=value
  pairs land in run.json's settings, each read by its own head."""
  import json  # pylint: disable=g-import-not-at-top
  args = base_args(tmp_path, data_dir(), "msra_ner|chn_sentiment", steps=1)
  run_multitask(args + ["--do_train", "--crf=msra_ner=false",
                        "--crf_constraints", "--label_smoothing=0.1",
                        "--crf_lr_multiplier=10"])
  record = json.loads((tmp_path / "model" / "run.json").read_text())
  assert record["settings"] == {
      "*": {"crf_constraints": True, "label_smoothing": 0.1,
            "transitions_lr_multiplier": 10.0},
      "msra_ner": {"crf": False}}
  process = run_multitask(args + ["--do_train", "--crf=msra_ner=maybe"],
                          check=False)
  assert "expected true or false, got 'maybe'" in process.stderr
