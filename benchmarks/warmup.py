"""The first request after a model version loads, with and without the
export's warm-up file, as TF Serving sees it.

A fresh process loads the SavedModel (BERT-Base shape unless --small) and
times one request to `serving_text` and to `tagged:serving_default`:

  cold     the request straight after loading;
  warmed   the same request after replaying assets.extra/
           tf_serving_warmup_requests (what TF Serving does before it
           marks the version available; the replay's own time is shown);
  steady   the same request once more (the floor).

Each measurement is its own process (nothing cached between them).

    python benchmarks/warmup.py [--small] [--rounds 3]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import predict  # pylint: disable=g-import-not-at-top,wrong-import-position

TEXT = "国务院总理李鹏在人民大会堂会见了来访的日本客人。"

# Runs in a fresh process: load, (replay,) time the first request, then a
# second one.
CHILD = r"""
import json, sys, time
import numpy as np
import tensorflow as tf
from bert_mtl import serving_warmup
export_dir, signature_name, replay = sys.argv[1], sys.argv[2], sys.argv[3]
model = tf.saved_model.load(export_dir)
signature = model.signatures[signature_name]
replayed = 0.0
if replay == "1":
  from tensorflow_serving.apis import prediction_log_pb2
  start = time.perf_counter()
  path = export_dir + "/assets.extra/" + serving_warmup.WARMUP_FILE
  for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
    request = prediction_log_pb2.PredictionLog.FromString(
        record).predict_log.request
    model.signatures[request.model_spec.signature_name](**{
        k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
  replayed = time.perf_counter() - start
text = %r
if signature_name == "serving_text":
  feeds = {"text": tf.constant([text.encode("utf-8")])}
else:
  from bert_mtl import tokenization
  vocab = export_dir + "/assets.extra/vocab.txt"
  tokenizer = tokenization.FullTokenizer(vocab)
  ids = tokenizer.convert_tokens_to_ids(
      ["[CLS]"] + tokenizer.tokenize(text) + ["[SEP]"])
  ids = np.array([ids], np.int32)
  tag_mask = np.ones_like(ids)
  tag_mask[:, 0] = tag_mask[:, -1] = 0
  feeds = {"input_ids": tf.constant(ids),
           "input_mask": tf.constant(np.ones_like(ids)),
           "segment_ids": tf.constant(np.zeros_like(ids)),
           "tag_mask": tf.constant(tag_mask)}
  feeds = {k: v for k, v in feeds.items()
           if k in signature.structured_input_signature[1]}
times = []
for _ in range(2):
  start = time.perf_counter()
  signature(**feeds)
  times.append(time.perf_counter() - start)
print(json.dumps({"first": times[0], "second": times[1],
                  "replayed": replayed}))
""" % TEXT


def measure(export_dir, signature, replay):
  out = subprocess.run([sys.executable, "-c", CHILD, export_dir, signature,
                        "1" if replay else "0"], capture_output=True,
                       text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--small", action="store_true",
                      help="a BERT-small export instead of BERT-Base")
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args()
  work = tempfile.mkdtemp(prefix="bert_mtl_warmup_")
  try:
    bert_config = None
    if args.small:
      from bert_mtl import modeling  # pylint: disable=g-import-not-at-top
      bert_config = modeling.BertConfig(
          21128, **modeling.SMALL_MODELS["small"]).to_dict()
    export_dir = predict.export_base_model(work, 128, bert_config)
    print("export: %s (%s)" % (export_dir, "BERT-small" if args.small
                               else "BERT-Base shape"))
    print("%-24s %10s %10s %10s %10s %8s" % (
        "signature", "cold ms", "warmed ms", "steady ms", "replay s",
        "cold/warm"))
    for signature in ("serving_text", "tagged:serving_default"):
      cold = min((measure(export_dir, signature, False)
                  for _ in range(args.rounds)), key=lambda r: r["first"])
      warm = min((measure(export_dir, signature, True)
                  for _ in range(args.rounds)), key=lambda r: r["first"])
      print("%-24s %10.1f %10.1f %10.1f %10.2f %7.1fx" % (
          signature, 1000 * cold["first"], 1000 * warm["first"],
          1000 * min(cold["second"], warm["second"]), warm["replayed"],
          cold["first"] / warm["first"]))
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
