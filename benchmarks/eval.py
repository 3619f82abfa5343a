"""Evaluation throughput per problem type against training throughput.

For one real problem of each type (one single-problem run each), in the
same process and run:
  train      steady-state training sentences/s (after the first step);
  eval pass  the in-graph evaluation (losses and cheap metrics, no
             decoding) over the full eval split, steady state;
  decode     the prediction pass and decoding evaluate() runs for the
             type's metrics, steady state (after its first batch) and wall
             clock (graph building included); for seq2seq problems this is
             beam search, reported per decoded sentence.
The target (issue #15): a sentence costs evaluation no more than its share
of a training step, beam search aside, i.e. cost ratio = (eval pass +
decode, per sentence, steady state) / (training, per sentence) <= 1 (for
seq2seq the eval pass alone).  The wall clock columns add each pass's
fixed cost (graph building, session start), which dominates small splits.

    python benchmarks/eval.py [--shape tiny|base] [--max_examples N]

--shape tiny: the README main job's model (2 x 128), batch 32 x 64;
--shape base: BERT-Base (12 x 768), batch 8 x 128 (use --max_examples:
the full eval splits take hours there on 2 cores).
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

from bert_mtl import base as constants  # pylint: disable=g-import-not-at-top,wrong-import-position
from bert_mtl import config, experiment, modeling, tokenization  # pylint: disable=g-import-not-at-top,wrong-import-position

import common  # pylint: disable=g-import-not-at-top,wrong-import-position

tf1 = tf.compat.v1
# One real problem per type: (type, problem, its head settings).
PROBLEMS = [("cls", "chn_sentiment", {}),
            ("multi_cls", "msra_entity_types", {}),
            ("seq_tag (CRF)", "msra_ner", {}),
            ("seq_tag (softmax)", "weibo_cws", {"crf": False}),
            ("seq2seq_tag", "pd98_pos_seq", {}),
            ("seq2seq_text", "msra_entities_text", {}),
            ("pretrain", "zh_pretrain", {})]
BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072)
SHAPES = {"tiny": (modeling.SMALL_MODELS["tiny"], 32, 64),
          "base": (BASE, 8, 128)}


class Timer(tf1.train.SessionRunHook):
  """Times session runs after the first (graph building, session start
  and pipeline warm-up excluded): rows (EVAL_ROWS tensors) or steps."""

  def __init__(self, rows_per_run=None):
    self.rows_per_run = rows_per_run
    self.first = self.last = None
    self.runs = self.rows = 0

  def begin(self):
    self.row_tensors = [op.outputs[0] for op in
                        tf1.get_default_graph().get_operations()
                        if op.name.split("/")[-1] == constants.EVAL_ROWS]

  def before_run(self, run_context):
    return tf1.train.SessionRunArgs(
        [] if self.rows_per_run else self.row_tensors)

  def after_run(self, run_context, run_values):
    now = time.perf_counter()
    rows = self.rows_per_run or sum(int(r) for r in run_values.results)
    if self.first is None:
      self.first = now
    else:
      self.runs += 1
      self.rows += rows
    self.last = now

  def rows_per_second(self):
    return self.rows / max(self.last - self.first, 1e-9)


def time_from_first_prediction(run):
  """Makes run's estimators' predict() record when its first row arrives
  (clock["first"]): the prediction pass's steady state starts there."""
  clock, make = {}, run.estimator

  def estimator(*args, **kwargs):
    built = make(*args, **kwargs)
    predict = built.predict

    def timed_predict(*predict_args, **predict_kwargs):
      for index, item in enumerate(predict(*predict_args, **predict_kwargs)):
        if index == 0:
          clock["first"] = time.perf_counter()
        yield item
    built.predict = timed_predict
    return built
  run.estimator = estimator
  return clock


def options(problem, settings, shape, max_examples, steps, data_dir,
            cache_dir, vocab_file):
  body, batch, seq = SHAPES[shape]
  bert_config = modeling.BertConfig(
      len(tokenization.load_vocab_tokens(vocab_file)),
      max_position_embeddings=max(128, seq), **body)
  return config.RunConfig(
      problems=problem, data_dir=data_dir, cache_dir=cache_dir,
      bert_config=bert_config.to_dict(), max_seq_length=seq,
      max_examples=max_examples, train_batch_size=batch,
      eval_batch_size=batch, predict_batch_size=batch,
      num_train_steps=steps, save_checkpoints_steps=steps,
      log_every_steps=max(1, steps), settings={problem: settings},
      pretrain=config.PretrainConfig(dupe_factor=1)).validate()


def measure(kind, problem, settings, args, data_dir, vocab_file, work_dir):
  """{train, eval pass, decode} rates of one problem's run."""
  run = experiment.Experiment(
      os.path.join(work_dir, problem),
      options(problem, settings, args.shape, args.max_examples, args.train_steps,
              data_dir, args.cache_dir, vocab_file), vocab_file)
  _, batch, _ = SHAPES[args.shape]
  input_fn, _, _ = run.input_fn("train", True, batch)
  run.save()
  train_timer = Timer(rows_per_run=batch)
  run.estimator(args.train_steps).train(input_fn, max_steps=args.train_steps,
                                        hooks=[train_timer])
  eval_fn, (eval_features,), ((_, meta),) = run.input_fn(
      "eval", False, batch)
  sentences = len(eval_features.examples[problem])
  eval_timer = Timer()
  start = time.perf_counter()
  run.estimator().evaluate(eval_fn, hooks=[eval_timer])
  eval_wall = time.perf_counter() - start
  decode_wall = decode_rate = None
  if run.kind(problem).decodes:
    clock = time_from_first_prediction(run)
    start = time.perf_counter()
    run.evaluator.predict_group([problem], "eval")
    end = time.perf_counter()
    decode_wall = end - start
    # After the first batch: the model on the other rows plus decoding.
    decode_rate = (meta["count"] - batch) / max(end - clock["first"], 1e-9)
  # Rates are rows (model inputs: windows, pretraining instances) per
  # second, the unit a training step counts; the table shows sentences.
  train_rate = train_timer.rows_per_second()
  eval_rate = eval_timer.rows_per_second()
  seq2seq = run.kind(problem).name.startswith("seq2seq")
  per_row = 1.0 / eval_rate + (
      1.0 / decode_rate if decode_rate and not seq2seq else 0.0)
  rows_per_sentence = meta["count"] / sentences
  return {"kind": kind, "problem": problem, "sentences": sentences,
          "rows": meta["count"], "train": train_rate,
          "eval": eval_rate / rows_per_sentence, "eval_wall": eval_wall,
          "decode_wall": decode_wall,
          "decode": decode_rate and decode_rate / rows_per_sentence,
          "seq2seq": seq2seq, "ratio": per_row * train_rate}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
  parser.add_argument("--max_examples", type=int, default=None,
                      help="examples per split (default: all)")
  parser.add_argument("--train_steps", type=int, default=30)
  parser.add_argument("--problems", default=None,
                      help="comma-separated subset of: " + ", ".join(
                          p for _, p, _ in PROBLEMS))
  parser.add_argument("--cache_dir", default=None)
  parser.add_argument("--data_dir", default=None)
  args = parser.parse_args()
  tf1.logging.set_verbosity(tf1.logging.ERROR)
  data_dir = common.data_dir(args.data_dir)
  vocab_file = common.data_file("vocab/chinese_vocab.txt", data_dir)
  wanted = set(args.problems.split(",")) if args.problems else None
  body, batch, seq = SHAPES[args.shape]
  print("shape %s: %d layers x %d hidden, batch %d x %d tokens, "
        "eval splits: %s" % (args.shape, body["num_hidden_layers"],
                             body["hidden_size"], batch, seq,
                             args.max_examples or "full"))
  print("%-18s %-19s %6s %6s %9s %9s %9s %11s %12s %6s" % (
      "type", "problem", "sents", "rows", "train r/s", "eval s/s",
      "eval wall", "decode s/s", "decode wall", "ratio"))
  with tempfile.TemporaryDirectory() as work_dir:
    for kind, problem, settings in PROBLEMS:
      if wanted and problem not in wanted:
        continue
      r = measure(kind, problem, settings, args, data_dir, vocab_file, work_dir)
      decode = ("-" if r["decode"] is None else "%.1f%s" % (
          r["decode"], " beam" if r["seq2seq"] else ""))
      decode_wall = ("-" if r["decode_wall"] is None else
                     "%.1fs" % r["decode_wall"])
      print("%-18s %-19s %6d %6d %9.1f %9.1f %8.1fs %11s %12s %5.2fx" % (
          kind, problem, r["sentences"], r["rows"], r["train"], r["eval"],
          r["eval_wall"], decode, decode_wall, r["ratio"]), flush=True)
  print("train r/s: training rows/s; eval and decode s/s: sentences/s "
        "(steady state); ratio: evaluation cost per row / training cost per "
        "row (eval pass + decoding; seq2seq: eval pass only, beam search "
        "reported apart); target <= 1")


if __name__ == "__main__":
  main()
