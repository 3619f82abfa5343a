"""Chains train, evaluate and predict under MirroredStrategy on two logical
CPUs, through the command line, on real data (tiny model, a few steps)."""

import json
import os

import pytest

from bert_mtl import evaluation, problems
from conftest import data_dir, data_file
from run_helpers import base_args, eval_results, run_multitask

CHAINS = ["zh_pretrain|pd98_ner&pd98_cws", "msra_ner|pd98_cws&pd98_pos",
          "chn_sentiment|msra_entity_types|msra_entities_text"]


@pytest.mark.parametrize("chain", CHAINS)
def test_chain_trains_evaluates_and_predicts(chain, tmp_path):
  root = data_dir()
  args = base_args(tmp_path, root, chain, cpu_replicas=2)
  names = [n for g in problems.parse(chain) for n in g]
  process = run_multitask(args + ["--do_train", "--do_eval", "--do_predict",
                                  "--do_export",
                                  "--pretrain_dupe_factor=1"])
  model = tmp_path / "model"
  results = (model / "eval_results.txt").read_text()
  for name in names:
    key = evaluation.main_metric(name)
    assert "%s/%s = " % (name, key) in results, (name, results)
    assert (model / "eval" / name / "eval_results.txt").exists()
    if problems.get(name).type != "pretrain":
      lines = (model / "predictions" / (name + ".jsonl")).read_text(
          encoding="utf-8").splitlines()
      assert lines and all("prediction" in json.loads(l) for l in lines)
      assert len(lines) == min(40, len(problems.read(name, "predict", root)))
  # The terminal shows our lines, no TensorFlow warnings.
  assert not [l for l in process.stderr.splitlines()
              if l.startswith("W") and "ag_logging" in l], process.stderr
  # The run was distributed over two replicas.
  assert "Using MirroredStrategy with devices" in process.stderr
  assert "device:CPU:1" in process.stderr
  for name in names:
    assert os.path.exists(model / "labels" / (name + ".json"))
  # --do_eval with --do_train evaluates during training and keeps the
  # best checkpoint's export.
  best = list((model / "export" / "best").glob("*/saved_model.pb"))
  assert len(best) == 1
  # It is the run's full export (the text signatures too), and --do_export
  # of the same (final) checkpoint copies it instead of building it again.
  record = json.loads((model / "export" / "best" / "best.json").read_text())
  assert record["checkpoint"] == "model.ckpt-4"
  assert "serving_text" in signature_names(best[0].parent)
  final, = (model / "export").glob("[0-9]*/saved_model.pb")
  assert final.read_bytes() == best[0].read_bytes()
  assert sorted(p.name for p in final.parent.rglob("*")) == sorted(
      p.name for p in best[0].parent.rglob("*"))
  # ...and --do_eval reuses that evaluation of the final checkpoint: the
  # in-graph pass over the eval split runs once.
  finished = [line for line in process.stderr.splitlines()
              if "evaluating eval: " in line and "(100%)" in line]
  assert len(finished) == 1, finished
  if chain == CHAINS[0]:
    # Its eval split ends in a partial step on two replicas; evaluated
    # again on one device, the same checkpoint gives the same metrics.
    distributed = eval_results(model / "eval_results.txt")
    single = [a for a in args if not a.startswith("--cpu_replicas=")]
    run_multitask(single + ["--do_eval", "--pretrain_dupe_factor=1"])
    again = eval_results(model / "eval_results.txt")
    assert sorted(again) == sorted(distributed)
    # The pretrain head's loss is its two parts' split means added.
    assert distributed["zh_pretrain/loss"] == pytest.approx(
        distributed["zh_pretrain/masked_lm_loss"] +
        distributed["zh_pretrain/next_sentence_loss"], rel=1e-5)
    for key, value in distributed.items():
      # Losses too: a head's loss is the mean over the split's rows or
      # positions (the pretrain loss: per masked position), not over batches.
      assert again[key] == pytest.approx(value, rel=1e-5), key


def test_a_head_is_also_scored_on_the_sighan_gold_test(tmp_path):
  """--eval_on=pd98_cws=pku_cws: pd98_cws's head scored on the SIGHAN PKU
  gold test too, in eval_results.txt and its own directory."""
  data_file("sighan2005/pku_test_gold.utf8")  # not on the package index
  args = base_args(tmp_path, data_dir(), "pd98_cws", steps=2)
  run_multitask(args + ["--do_train", "--do_eval",
                        "--eval_on=pd98_cws=pku_cws"])
  model = tmp_path / "model"
  results = (model / "eval_results.txt").read_text()
  assert "pd98_cws/word_f1 = " in results, results
  assert "pd98_cws@pku_cws/word_f1 = " in results, results
  assert (model / "eval" / "pd98_cws@pku_cws" / "eval_results.txt").exists()


def signature_names(export_dir):
  """The SavedModel's signatures, read from saved_model.pb alone."""
  from tensorflow.python.tools import saved_model_utils  # pylint: disable=g-import-not-at-top
  return set(saved_model_utils.get_meta_graph_def(
      str(export_dir), "serve").signature_def)

