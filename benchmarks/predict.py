"""The Predictor on a BERT-Base-shaped export: latency at batch 1,
throughput at batch 64, and the share of time spent outside the
TensorFlow call (tokenization, windows, padding, decoding to spans).

The model is exported after one training step (its weights do not matter
for speed).  Chain: msra_ner|pd98_cws&pd98_pos|chn_sentiment.

    python benchmarks/predict.py [--sentences 256]
"""

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bert_mtl import config, experiment, problems, serving  # pylint: disable=g-import-not-at-top,wrong-import-position
from common import data_dir, data_file  # pylint: disable=g-import-not-at-top,wrong-import-position

BASE = dict(vocab_size=21128, hidden_size=768, num_hidden_layers=12,
            num_attention_heads=12, intermediate_size=3072,
            max_position_embeddings=512, type_vocab_size=2)
CHAIN = "msra_ner|pd98_cws&pd98_pos|chn_sentiment"


class TimedSignature(object):
  """Wraps a concrete function and adds up the seconds spent inside it."""

  def __init__(self, signature):
    self.signature = signature
    self.seconds = 0.0

  def __call__(self, **kwargs):
    start = time.perf_counter()
    out = self.signature(**kwargs)
    out = {k: v.numpy() for k, v in out.items()}  # include the copy out
    self.seconds += time.perf_counter() - start
    return {k: _Eager(v) for k, v in out.items()}


class _Eager(object):
  def __init__(self, value):
    self.value = value

  def numpy(self):
    return self.value


def base_model_run(work, max_seq_length, bert_config=None):
  """A run of CHAIN after one training step (BERT-Base shape unless
  bert_config says otherwise)."""
  options = config.RunConfig(problems=CHAIN, data_dir=data_dir(),
                 cache_dir=os.path.join(work, "cache"),
                 bert_config=bert_config or BASE,
                 max_seq_length=max_seq_length, max_examples=64,
                 train_batch_size=2, num_train_steps=1)
  run = experiment.Experiment(os.path.join(work, "model"), options,
                              data_file("vocab/chinese_vocab.txt"))
  run.train(1)
  return run


def export_base_model(work, max_seq_length, bert_config=None,
                      precision="float32"):
  """An export of base_model_run's run in `precision`."""
  return serving.export(base_model_run(work, max_seq_length, bert_config),
                        serving.default_export_dir(work, precision),
                        precision=precision)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sentences", type=int, default=256)
  parser.add_argument("--max_seq_length", type=int, default=128)
  args = parser.parse_args()
  texts = ["".join(e.inputs) for e in problems.read(
      "msra_ner", "eval", data_dir())[:args.sentences]]
  work = tempfile.mkdtemp(prefix="bert_mtl_predict_")
  try:
    export_dir = export_base_model(work, args.max_seq_length)
    print("BERT-Base-shaped export, %s, %d MSRA test sentences (mean %.0f "
          "characters)" % (CHAIN, len(texts),
                           sum(map(len, texts)) / len(texts)))
    for batch_size, count in ((1, min(32, len(texts))), (64, len(texts))):
      predictor = serving.Predictor(export_dir, batch_size=batch_size)
      predictor.predict(texts[:batch_size])  # warm-up
      timed = TimedSignature(predictor._signature)  # pylint: disable=protected-access
      predictor._signature = timed  # pylint: disable=protected-access
      start = time.perf_counter()
      for i in range(0, count, batch_size):
        predictor.predict(texts[i:i + batch_size])
      total = time.perf_counter() - start
      outside = total - timed.seconds
      print("  batch %2d: %.1f ms per call, %.1f sentences/s; outside the "
            "TensorFlow call: %.1f%% of the time" % (
                batch_size, 1000 * total / ((count + batch_size - 1) //
                                            batch_size),
                count / total, 100 * outside / total))
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
