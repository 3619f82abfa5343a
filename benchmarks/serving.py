"""The text signature against the ids signature with the native tokenizer on
the client: same BERT-Base-shaped export, same texts, same run.

  text     `serving_text` on raw texts: tokenization, units, windows, the
           model, window merge and CRF decoding all in the graph;
  ids      the client's work for the same result: the native FullTokenizer
           builds each input form's rows (Predictor.encode), then one call
           of `tagged:serving_default` per form (Predictor.run), without
           the Python decoding the text signature also replaces;
  in-graph tokenizer   the graph's tokenization alone (the text's tokens,
           its units joined and tokenized, each unit's first token) on the
           same batch, as a share of a text-signature request.

    python benchmarks/serving.py [--sentences 256] [--max_seq_length 128]
"""

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

from bert_mtl import graph_tokenizer, problems, serving, text_serving  # pylint: disable=g-import-not-at-top,wrong-import-position
from common import data_dir  # pylint: disable=g-import-not-at-top,wrong-import-position
import predict  # pylint: disable=g-import-not-at-top,wrong-import-position


def fastest(fn, repeats):
  best = None
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    best = elapsed if best is None else min(best, elapsed)
  return best


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sentences", type=int, default=256)
  parser.add_argument("--max_seq_length", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=2)
  args = parser.parse_args()
  texts = ["".join(e.inputs) for e in problems.read(
      "msra_ner", "eval", data_dir())[:args.sentences]]
  work = tempfile.mkdtemp(prefix="bert_mtl_serving_")
  try:
    start = time.perf_counter()
    export_dir = predict.export_base_model(work, args.max_seq_length)
    print("export with text signatures: %.1f s" % (time.perf_counter() -
                                                   start))
    predictor = serving.Predictor(export_dir, text_signature=True)
    model = tf.saved_model.load(export_dir)
    text_signature = model.signatures[text_serving.TEXT_SIGNATURE]
    ids_signature = model.signatures["tagged:serving_default"]
    tokenizer = graph_tokenizer.GraphTokenizer(
        os.path.join(export_dir, "assets.extra", "vocab.txt"),
        predictor.manifest["do_lower_case"])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)],
                 autograph=False)
    def tokenize_only(text):
      ids, _ = tokenizer.tokenize(text)
      chars = tf.strings.unicode_decode(text, "UTF-8", errors="ignore")
      joined, _, starts = text_serving.unit_inputs(tokenizer, chars, "char")
      unit_ids, unit_spans = tokenizer.tokenize(joined)
      first = text_serving.first_tokens(unit_spans, starts)
      return ids.flat_values, unit_ids.flat_values, first.flat_values

    def ids_request(batch):
      for form in predictor.forms():
        rows = predictor.encode(batch, form).rows
        length = max(len(r[0]) for r in rows)
        arrays = {k: tf.constant([list(r[i]) + [0] * (length - len(r[0]))
                                  for r in rows], tf.int32)
                  for k, i in (("input_ids", 0), ("segment_ids", 1),
                               ("tag_mask", 2))}
        arrays["input_mask"] = tf.constant(
            [[1] * len(r[0]) + [0] * (length - len(r[0])) for r in rows],
            tf.int32)
        {k: v.numpy() for k, v in ids_signature(**arrays).items()}

    print("BERT-Base-shaped export, %s, %d MSRA test sentences (mean %.0f "
          "characters), max_seq_length %d" % (
              predict.CHAIN, len(texts), sum(map(len, texts)) / len(texts),
              args.max_seq_length))
    for batch_size, count in ((1, min(32, len(texts))), (64, len(texts))):
      batches = [texts[i:i + batch_size] for i in range(0, count, batch_size)]
      encoded = [tf.constant([t.encode("utf-8") for t in b]) for b in batches]
      text_signature(text=encoded[0])  # warm up both paths
      ids_request(batches[0])
      text_s = fastest(lambda: [{k: v.numpy() for k, v in text_signature(
          text=e).items()} for e in encoded], args.repeats)
      ids_s = fastest(lambda: [ids_request(b) for b in batches],
                      args.repeats)
      tokenize_only(encoded[0])
      token_s = fastest(lambda: [[x.numpy() for x in tokenize_only(e)]
                                 for e in encoded], args.repeats)
      print("  batch %2d: text %.1f sentences/s, ids + native tokenizer "
            "%.1f sentences/s (text/ids %.2fx); in-graph tokenizer %.2f ms "
            "per call, %.1f%% of a text request" % (
                batch_size, count / text_s, count / ids_s, ids_s / text_s,
                1000 * token_s / len(batches), 100 * token_s / text_s))
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
