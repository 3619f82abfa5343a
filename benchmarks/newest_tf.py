"""An export made here, loaded by the newest TensorFlow (what a current TF
Serving runs): same answers as TensorFlow 2.15's, and its warm-up file
replays.

Exports a small model of the main job's chain in float32 and in bfloat16
(or takes --export_dir), then in a second Python whose TensorFlow is the
newest release (made with
`python3.12 -m venv VENV && VENV/bin/pip install tensorflow
tensorflow-serving-api`) loads it, replays assets.extra/
tf_serving_warmup_requests and answers the text and ids signatures on
sample texts.  Both sides' outputs are compared: strings and integers
exactly, floats to 1e-5.

    python benchmarks/newest_tf.py --python /tmp/tf221/bin/python
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TEXTS = ["上海浦东开发与法制建设同步。",
         "中国人民银行行长周小川在北京会见了美国财政部长。",
         "这家酒店的服务很好，房间干净，下次还会再来。" * 6,
         "iPhone 12 Pro发布于2020年10月，售价５４９９元。", ""]

# Runs under either TensorFlow: every text and ids signature on TEXTS.
ANSWER = r"""
import json, sys
import numpy as np
import tensorflow as tf
export_dir, texts = sys.argv[1], json.loads(sys.argv[2])
model = tf.saved_model.load(export_dir)
replayed = 0
warmup = export_dir + "/assets.extra/tf_serving_warmup_requests"
try:
  from tensorflow_serving.apis import prediction_log_pb2
except ImportError:
  prediction_log_pb2 = None
if prediction_log_pb2 is not None:
  for record in tf.data.TFRecordDataset(warmup).as_numpy_iterator():
    request = prediction_log_pb2.PredictionLog.FromString(
        record).predict_log.request
    model.signatures[request.model_spec.signature_name](**{
        k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
    replayed += 1
out = {"tensorflow": tf.__version__, "replayed": replayed, "outputs": {}}
text = tf.constant([t.encode("utf-8") for t in texts])
ids_feeds = {k: tf.constant(np.array(v, np.int32))
             for k, v in json.loads(sys.argv[3]).items()}
for name in sorted(model.signatures):
  signature = model.signatures[name]
  inputs = sorted(signature.structured_input_signature[1])
  if inputs in (["text"], ["text", "text_b"]):
    feeds = {"text": text}
    if "text_b" in inputs:
      feeds["text_b"] = tf.constant([b""] * len(texts))
  elif set(inputs) <= set(ids_feeds):
    feeds = {k: ids_feeds[k] for k in inputs}
  else:
    continue
  for key, value in signature(**feeds).items():
    value = value.numpy()
    if value.dtype == object:
      value = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(
          value) if value.size else value
    out["outputs"]["%s/%s" % (name, key)] = [str(value.dtype),
                                             value.tolist()]
print(json.dumps(out))
"""


def ids_inputs(export_dir):
  """The ids (and tagged) signatures' inputs of TEXTS (single-text rows,
  padded)."""
  from bert_mtl import tokenization  # pylint: disable=g-import-not-at-top
  tokenizer = tokenization.FullTokenizer(
      os.path.join(export_dir, "assets.extra", "vocab.txt"))
  encoded = tokenizer.encode_batch(TEXTS, max_seq_length=64)
  out = {k: np.asarray(encoded[k]) for k in ("input_ids", "input_mask",
                                             "segment_ids")}
  # The tagged signatures' positions: every real token but [CLS] / [SEP].
  tag_mask = out["input_mask"].copy()
  tag_mask[:, 0] = 0
  tag_mask[np.arange(len(TEXTS)), out["input_mask"].sum(1) - 1] = 0
  out["tag_mask"] = tag_mask
  return {k: v.tolist() for k, v in out.items()}


def answer(python, export_dir, feeds):
  out = subprocess.run([python, "-c", ANSWER, export_dir,
                        json.dumps(TEXTS), json.dumps(feeds)],
                       capture_output=True, text=True)
  if out.returncode:
    raise RuntimeError(out.stderr[-3000:])
  return json.loads(out.stdout.strip().splitlines()[-1])


def compare(ours, theirs):
  """[differing output] of two answers."""
  differing = []
  for key in sorted(set(ours) | set(theirs)):
    if key not in ours or key not in theirs:
      differing.append("%s: only in one" % key)
      continue
    (dtype_a, a), (dtype_b, b) = ours[key], theirs[key]
    if dtype_a != dtype_b:
      differing.append("%s: %s against %s" % (key, dtype_a, dtype_b))
    elif dtype_a.startswith("float"):
      if not np.allclose(np.array(a), np.array(b), atol=1e-5, rtol=1e-5):
        differing.append("%s: max difference %g" % (key, np.max(np.abs(
            np.array(a) - np.array(b)))))
    elif a != b:
      differing.append("%s: differs" % key)
  return differing


def check(python, export_dir):
  """Prints the comparison of one export; True when both sides agree and
  the newest TensorFlow replayed the warm-up file."""
  feeds = ids_inputs(export_dir)
  ours = answer(sys.executable, export_dir, feeds)
  theirs = answer(python, export_dir, feeds)
  differing = compare(ours["outputs"], theirs["outputs"])
  with open(os.path.join(export_dir, "assets.extra", "manifest.json"),
            encoding="utf-8") as f:
    precision = json.load(f).get("precision", "float32")
  print("export %s (%s): %d outputs of %d signatures on %d texts" % (
      export_dir, precision, len(ours["outputs"]),
      len({k.split("/", 1)[0] for k in ours["outputs"]}), len(TEXTS)))
  for side in (ours, theirs):
    print("  TensorFlow %s: warm-up requests replayed: %d" % (
        side["tensorflow"], side["replayed"]))
  print("  differing outputs: %d%s" % (len(differing), "".join(
      "\n    " + d for d in differing)))
  return not differing and theirs["replayed"]


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--python", required=True,
                      help="a Python with the newest TensorFlow")
  parser.add_argument("--export_dir", help="an export (default: a small "
                      "model of the main job's chain, exported here in "
                      "float32 and in bfloat16)")
  args = parser.parse_args()
  work = tempfile.mkdtemp(prefix="bert_mtl_newest_tf_")
  try:
    export_dirs = [args.export_dir]
    if not args.export_dir:
      import predict  # pylint: disable=g-import-not-at-top
      from bert_mtl import modeling, serving  # pylint: disable=g-import-not-at-top
      run = predict.base_model_run(work, 64, modeling.BertConfig(
          21128, **modeling.SMALL_MODELS["mini"]).to_dict())
      export_dirs = [serving.export(run, serving.default_export_dir(
          work, precision), precision=precision)
                     for precision in ("float32", "bfloat16")]
    agreed = [check(args.python, export_dir) for export_dir in export_dirs]
    sys.exit(0 if all(agreed) else 1)
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
