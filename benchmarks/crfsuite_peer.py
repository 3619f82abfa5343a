"""The classic baseline beside our models: a character CRF (CRFsuite).

Features per character, the textbook set for Chinese segmentation and NER:
the characters at offsets -2..2 and the bigrams at -2..1 (a window of 2),
plus a bias; L2 regularisation 1.0 (c2), no L1, L-BFGS for a fixed number
of iterations.  Trained on a problem's training split, it tags the
evaluation data (its own eval split, or another corpus for
`problem@corpus`) and is scored by the same metric code as our heads
(bert_mtl.metrics: SIGHAN word F1, entity F1).  CPU time is recorded.

    python benchmarks/crfsuite_peer.py [--problems pd98_cws@pku_cws,msra_ner]

Needs `python-crfsuite` (the benchmark extra: pip install -e '.[bench]').
"""

import argparse
import json
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# Iterations as in the runs (segmentation 60, NER 50).
ITERATIONS = {"pd98_cws": 60, "msra_ner": 50, "weibo_ner": 50}
PROBLEMS = ("pd98_cws@pku_cws", "msra_ner", "weibo_ner")


def char_features(units):
  """CRFsuite feature lists of one sentence: [[str, ...] per unit]."""
  padded = ["<s2>", "<s1>"] + list(units) + ["</s1>", "</s2>"]
  out = []
  for i in range(2, len(padded) - 2):
    f = ["b"]
    for k in range(-2, 3):
      f.append("u%d=%s" % (k, padded[i + k]))
    for k in range(-2, 2):
      f.append("b%d=%s%s" % (k, padded[i + k], padded[i + k + 1]))
    out.append(f)
  return out


def score(problem, gold_examples, predicted):
  """Our metric of `problem` (its spec's metric) on predicted tag lists."""
  from bert_mtl import metrics, problems  # pylint: disable=g-import-not-at-top
  spec = problems.get(problem)
  gold = [list(e.labels) for e in gold_examples]
  if spec.metric == "entity":
    return "entity_f1", metrics.entity_prf(gold, predicted)["f1"]
  units = [list(e.inputs) for e in gold_examples]
  return "word_f1", metrics.word_prf(
      [metrics.words_from_tags(u, g) for u, g in zip(units, gold)],
      [metrics.words_from_tags(u, p) for u, p in zip(units, predicted)])["f1"]


def run(name, data_dir, work_dir, iterations=None, max_examples=None):
  """Train and score one problem (`problem` or `problem@corpus`), on at
  most max_examples training and evaluation sentences (None: all);
  returns the record the accuracy table shows."""
  import pycrfsuite  # pylint: disable=g-import-not-at-top
  from bert_mtl import problems  # pylint: disable=g-import-not-at-top
  problem, _, corpus = name.partition("@")
  iterations = iterations or ITERATIONS.get(problem, 50)
  train = problems.read(problem, "train", data_dir)[:max_examples]
  evaluated = problems.read(corpus or problem, "eval", data_dir)[
      :max_examples]
  start_cpu, start = time.process_time(), time.time()
  trainer = pycrfsuite.Trainer(verbose=False)
  for example in train:
    trainer.append(char_features(example.inputs), list(example.labels))
  trainer.set_params({"c1": 0.0, "c2": 1.0, "max_iterations": iterations,
                      "feature.possible_transitions": True})
  model_path = os.path.join(work_dir, problem + ".crfsuite")
  trainer.train(model_path)
  train_cpu = time.process_time() - start_cpu
  tagger = pycrfsuite.Tagger()
  tagger.open(model_path)
  predicted = [tagger.tag(char_features(e.inputs)) for e in evaluated]
  metric, value = score(problem, evaluated, predicted)
  return {"problem": name, "setting": "CRFsuite", "metric": metric,
          "value": value, "iterations": iterations,
          "train_sentences": len(train), "eval_sentences": len(evaluated),
          "train_cpu_seconds": round(train_cpu, 1),
          "wall_seconds": round(time.time() - start, 1)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--problems", default=",".join(PROBLEMS))
  parser.add_argument("--data_dir", default=None)
  parser.add_argument("--output", default=None,
                      help="JSON file for the records (default: print)")
  args = parser.parse_args()
  from bert_mtl import data_dir as data_dir_lib  # pylint: disable=g-import-not-at-top
  data_dir = data_dir_lib.resolve(args.data_dir)
  records = []
  with tempfile.TemporaryDirectory() as work:
    for name in args.problems.split(","):
      record = run(name, data_dir, work)
      print(json.dumps(record))
      records.append(record)
  if args.output:
    with open(args.output, "w", encoding="utf-8") as f:
      json.dump(records, f, indent=1)


if __name__ == "__main__":
  main()
