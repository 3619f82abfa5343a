"""The Predictor on long texts: time outside the TensorFlow call per 1,000
characters, from 5k to 1M characters, against the quadratic window choice
it replaced (every window scored for every unit), measured in the same run
on the same windows.

The export is a tiny model (2 layers, hidden 128) trained for one step on
msra_ner|pd98_cws&pd98_pos|chn_sentiment at max_seq_length 128; the texts
are MSRA test sentences joined together.

    python benchmarks/long_text.py [--sizes 5000,10000,20000,40000,1000000]
"""

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bert_mtl import modeling, problems, serving  # pylint: disable=g-import-not-at-top,wrong-import-position
from bert_mtl.data import features  # pylint: disable=g-import-not-at-top,wrong-import-position
from common import data_dir  # pylint: disable=g-import-not-at-top,wrong-import-position
from predict import CHAIN, TimedSignature, export_base_model  # pylint: disable=g-import-not-at-top,wrong-import-position


def quadratic_best_window(position, spans):
  """The window choice before: every window scored for every position."""
  best, best_score = None, None
  for index, (start, end) in enumerate(spans):
    if start <= position < end:
      score = min(position - start, end - 1 - position)
      if best_score is None or score > best_score:
        best, best_score = index, score
  return best


def export_tiny_model(work):
  config = dict(vocab_size=21128, max_position_embeddings=128,
                type_vocab_size=2, **modeling.SMALL_MODELS["tiny"])
  return export_base_model(work, 128, config)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sizes", default="5000,10000,20000,40000,1000000")
  parser.add_argument("--baseline_up_to", type=int, default=40000,
                      help="longest text to time the quadratic choice on")
  args = parser.parse_args()
  sentences = ["".join(e.inputs) for e in problems.read(
      "msra_ner", "eval", data_dir())]
  corpus = "".join(sentences)
  while len(corpus) < max(int(s) for s in args.sizes.split(",")):
    corpus += corpus
  work = tempfile.mkdtemp(prefix="bert_mtl_long_")
  try:
    predictor = serving.Predictor(export_tiny_model(work), batch_size=64)
    predictor.predict(["warm-up"])
    print("tiny export, %s, max_seq_length 128; MSRA test text" % CHAIN)
    print("%9s %9s %10s %12s %14s %16s" % (
        "chars", "windows", "total s", "in TF s", "outside ms/1k",
        "quadratic s"))
    for size in [int(s) for s in args.sizes.split(",")]:
      text = corpus[:size]
      timed = TimedSignature(predictor._signature)  # pylint: disable=protected-access
      predictor._signature = timed  # pylint: disable=protected-access
      start = time.perf_counter()
      predictor.predict([text])
      total = time.perf_counter() - start
      predictor._signature = timed.signature  # pylint: disable=protected-access
      alignment, spans = predictor.encode([text], "char").encodings[0]
      baseline = "-"
      if size <= args.baseline_up_to:
        start = time.perf_counter()
        for position in alignment.first_token:
          quadratic_best_window(position, spans)
        quadratic = time.perf_counter() - start
        start = time.perf_counter()
        features.best_windows(alignment.first_token, spans)
        linear = time.perf_counter() - start
        baseline = "%.2f (%.0fx)" % (quadratic, quadratic / max(linear, 1e-9))
      print("%9d %9d %10.2f %12.2f %14.2f %16s" % (
          size, len(spans), total, timed.seconds,
          1000 * (total - timed.seconds) / (size / 1000), baseline))
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
