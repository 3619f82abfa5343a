"""The bfloat16 export against the float32 export of the same checkpoint.

Speed: a BERT-Base-shaped export of the main job's chain (one training
step; weights do not matter for speed), both precisions loaded in this
process, the same requests timed round by round in alternation (fastest
round kept): `tagged:serving_default` on the rows the Predictor builds for
MSRA test sentences (batch 1, and batch 8 padded to its longest row), and
`serving_text` on the raw sentences (batch 1 and 8).  Baseline: the
float32 export; ratio = float32 time / bfloat16 time (throughput ratio).

Agreement (--run_dir, a trained run such as the README's main job,
output/main_job): both precisions exported from its newest checkpoint,
then every evaluation sentence of its problems (MSRA NER, PD98 words and
POS, sentiment) predicted through the ids signatures (the Predictor) and
through the text signature; reported: the share of equal per-character
tags and labels, and each export's F1 (accuracy for sentiment) against the
gold labels.

    python benchmarks/export_precision.py [--run_dir output/main_job]
"""

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

from bert_mtl import experiment, metrics, problems, serving, text_serving  # pylint: disable=g-import-not-at-top,wrong-import-position
from common import data_dir  # pylint: disable=g-import-not-at-top,wrong-import-position
import predict  # pylint: disable=g-import-not-at-top,wrong-import-position

PRECISIONS = ("float32", "bfloat16")


def speed(work, texts, rounds):
  """Prints the time of each request kind in both precisions."""
  run = predict.base_model_run(work, 128)
  exports = {p: serving.export(run, serving.default_export_dir(work, p),
                               precision=p) for p in PRECISIONS}
  encoder = serving.Predictor(exports["float32"])
  rows = encoder.encode(texts, "char").rows
  requests = {}
  for batch in (1, 8):
    ids = [{k: tf.constant(v) for k, v in serving.padded_inputs(
        rows[i:i + batch]).items()} for i in range(0, len(rows), batch)]
    strings = [tf.constant([t.encode("utf-8") for t in texts[i:i + batch]])
               for i in range(0, len(texts), batch)]
    requests["ids, batch %d" % batch] = ("tagged:serving_default", ids)
    requests["text, batch %d" % batch] = (
        text_serving.TEXT_SIGNATURE, [{"text": s} for s in strings])
  models = {p: tf.saved_model.load(exports[p]) for p in PRECISIONS}
  calls = []
  for name, (signature, feeds) in requests.items():
    for precision in PRECISIONS:
      function = models[precision].signatures[signature]
      function(**feeds[0])  # trace, warm up
      calls.append(((name, precision), function, feeds))
  best = {key: float("inf") for key, _, _ in calls}
  for _ in range(rounds):
    for key, function, feeds in calls:
      start = time.perf_counter()
      for feed in feeds:
        for value in function(**feed).values():
          value.numpy()
      best[key] = min(best[key], time.perf_counter() - start)
  print("BERT-Base shape (12 x 768), %s, %d MSRA test sentences (%d rows, "
        "mean %.0f characters), fastest of %d rounds" % (
            predict.CHAIN, len(texts), len(rows),
            sum(map(len, texts)) / len(texts), rounds))
  print("%-16s %12s %12s %14s" % ("request", "float32", "bfloat16",
                                  "bf16 speed-up"))
  for name in requests:
    f32, bf16 = best[(name, "float32")], best[(name, "bfloat16")]
    calls_made = len(requests[name][1])
    print("%-16s %9.1f ms %9.1f ms %13.2fx" % (
        name, 1000 * f32 / calls_made, 1000 * bf16 / calls_made, f32 / bf16))


def char_tags(result, text):
  """A problem's result as one label per character (one for a text)."""
  if "tags" in result:
    return list(result["tags"])
  if "pos" in result:
    return [t for word, pos in result["pos"]
            for t in metrics_tags(len(word), pos)]
  if "words" in result:
    return [t for word in result["words"] for t in metrics_tags(len(word))]
  del text
  return [result["label"]]


def metrics_tags(length, kind=None):
  """BMES tags of a word of `length` characters (typed "B-n" if kind)."""
  tags = ["S"] if length == 1 else ["B"] + ["M"] * (length - 2) + ["E"]
  return [t + "-" + kind for t in tags] if kind else tags


def score(gold, predicted):
  """F1 of per-character BMES tag sequences (entities, words, words with
  tags), or accuracy of labels."""
  if isinstance(gold[0], str):
    return metrics.accuracy(gold, [p[0] for p in predicted])
  return metrics.entity_prf(gold, predicted)["f1"]


def agreement(work, run_dir, limit):
  """Prints the two precisions' agreement and scores on run_dir's problems'
  evaluation sets."""
  run = experiment.Experiment(run_dir)
  exports = {p: serving.export(run, serving.default_export_dir(work, p),
                               precision=p) for p in PRECISIONS}
  print("\nagreement on %s (step %d), evaluation sets of %s" % (
      run_dir, int(run.checkpoint_path().rsplit("-", 1)[1]),
      run.run_config.problems))
  print("%-14s %-6s %7s %9s %10s %10s" % (
      "problem", "path", "texts", "equal", "F1 f32", "F1 bf16"))
  for name in run.names:
    examples = problems.read(name, "eval", data_dir())[:limit]
    texts = [e.inputs if isinstance(e.inputs, str) else "".join(e.inputs)
             for e in examples]
    gold = [e.labels for e in examples]
    for path, text_signature in (("ids", False), ("text", True)):
      predicted = {}
      for precision in PRECISIONS:
        predictor = serving.Predictor(exports[precision],
                                      text_signature=text_signature)
        predicted[precision] = [
            char_tags(r[name], t)
            for r, t in zip(predictor.predict(texts), texts)]
      pairs = [(a, b) for x, y in zip(predicted["float32"],
                                      predicted["bfloat16"])
               for a, b in zip(x, y)]
      equal = sum(a == b for a, b in pairs) / max(1, len(pairs))
      print("%-14s %-6s %7d %8.2f%% %10.4f %10.4f" % (
          name, path, len(texts), 100 * equal,
          score(gold, predicted["float32"]),
          score(gold, predicted["bfloat16"])))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sentences", type=int, default=64)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--run_dir", help="a trained run (e.g. the main "
                      "job's output/main_job) for the agreement table")
  parser.add_argument("--eval_sentences", type=int, default=None,
                      help="at most this many per evaluation set")
  parser.add_argument("--skip_speed", action="store_true")
  args = parser.parse_args()
  work = tempfile.mkdtemp(prefix="bert_mtl_export_precision_")
  try:
    if not args.skip_speed:
      texts = ["".join(e.inputs) for e in problems.read(
          "msra_ner", "eval", data_dir())[:args.sentences]]
      speed(os.path.join(work, "speed"), texts, args.rounds)
    if args.run_dir:
      agreement(os.path.join(work, "agreement"), args.run_dir,
                args.eval_sentences)
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
