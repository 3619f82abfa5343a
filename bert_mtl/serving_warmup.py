"""TF Serving's warm-up file: recorded requests that the server replays
when it loads a model version, so the first client request is not the one
that pays for building and optimising the graphs.

`assets.extra/tf_serving_warmup_requests` is a TFRecord file of
tensorflow.serving.PredictionLog protos, each holding a PredictRequest (a
signature name and its input tensors).  Every export gets a few requests
for each of its signatures (text and ids, one short and one batched):
sample texts in the text signatures, their tokenization in the ids ones.

The protos are written here in protobuf's wire format (TF Serving's own
Python package is not a dependency of the library); the tests read them
back with tensorflow-serving-api's classes.
"""

import os

import numpy as np
import tensorflow as tf

from bert_mtl import base, tokenization
from bert_mtl.data import features

WARMUP_FILE = "tf_serving_warmup_requests"

# Texts of the recorded requests: Chinese and Latin, short and long (more
# than one window at the usual lengths).
SAMPLE_TEXTS = ["上海浦东开发与法制建设同步。",
                "中国人民银行行长周小川在北京会见了美国财政部长。",
                "iPhone 12 Pro发布于2020年10月，售价5499元。",
                "这家酒店的服务很好，房间干净，下次还会再来。" * 4]
# Requests per signature: one text alone, then a batch of them.
BATCHES = (1, 8)


# ------------------------------------------------------- protobuf wire

def _varint(value):
  out = bytearray()
  while True:
    byte = value & 0x7F
    value >>= 7
    if value:
      out.append(byte | 0x80)
    else:
      out.append(byte)
      return bytes(out)


def _field(number, payload):
  """A length-delimited field (wire type 2): a string or a message."""
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def predict_log(signature_name, inputs):
  """A serialized PredictionLog holding one PredictRequest.

  Args:
    inputs: {input name: numpy array} of the signature.
  """
  model_spec = _field(3, signature_name.encode("utf-8"))  # signature_name
  request = _field(1, model_spec)  # PredictRequest.model_spec
  for name in sorted(inputs):  # map<string, TensorProto> inputs = 2
    entry = _field(1, name.encode("utf-8")) + _field(
        2, tf.make_tensor_proto(inputs[name]).SerializeToString())
    request += _field(2, entry)
  return _field(6, _field(1, request))  # predict_log = 6, request = 1


# ------------------------------------------------------------- requests

def _ids_inputs(tokenizer, texts, max_seq_length):
  """input_ids / input_mask / segment_ids (and tag_mask) int32 [B, L] of
  texts as single-text rows, and serialized tf.train.Examples of them."""
  cls_id, sep_id = (tokenizer.vocab[base.CLS_TOKEN],
                    tokenizer.vocab[base.SEP_TOKEN])
  rows = [features.pack(tokenizer.convert_tokens_to_ids(
      tokenizer.tokenize(t)), max_seq_length, cls_id, sep_id)[0]
          for t in texts]
  length = max(len(r) for r in rows)
  ids = np.zeros([len(rows), length], np.int32)
  mask = np.zeros_like(ids)
  for i, row in enumerate(rows):
    ids[i, :len(row)], mask[i, :len(row)] = row, 1
  tag_mask = mask.copy()
  tag_mask[:, 0] = 0
  tag_mask[np.arange(len(rows)), mask.sum(1) - 1] = 0
  examples = np.array([tf.train.Example(features=tf.train.Features(feature={
      k: tf.train.Feature(int64_list=tf.train.Int64List(value=v[i][
          :mask[i].sum()].tolist())) for k, v in (
              ("input_ids", ids), ("input_mask", mask),
              ("segment_ids", np.zeros_like(ids)))})).SerializeToString()
                       for i in range(len(rows))], object)
  return {"input_ids": ids, "input_mask": mask,
          "segment_ids": np.zeros_like(ids), features.TAG_MASK: tag_mask,
          "examples": examples}


def requests(signatures, tokenizer, max_seq_length):
  """[serialized PredictionLog]: BATCHES requests per signature.

  Args:
    signatures: {signature name: [its input names]}.
  """
  out = []
  for batch in BATCHES:
    texts = (SAMPLE_TEXTS * batch)[:batch]
    values = _ids_inputs(tokenizer, texts, max_seq_length)
    values["text"] = np.array([t.encode("utf-8") for t in texts], object)
    values["text_b"] = np.array([b""] * batch, object)
    for name in sorted(signatures):
      out.append(predict_log(name, {k: values[k] for k in signatures[name]}))
  return out


def write(export_dir, vocab_file, manifest):
  """Writes the warm-up file of the SavedModel at export_dir (its
  signatures read from it) into its assets.extra; returns its path."""
  loaded = tf.saved_model.load(export_dir)
  signatures = {name: sorted(fn.structured_input_signature[1])
                for name, fn in loaded.signatures.items()}
  tokenizer = tokenization.FullTokenizer(
      vocab_file, manifest["do_lower_case"],
      manifest.get("normalize_width", False))
  path = os.path.join(export_dir, "assets.extra", WARMUP_FILE)
  with tf.io.TFRecordWriter(path) as writer:
    for record in requests(signatures, tokenizer,
                           int(manifest["max_seq_length"])):
      writer.write(record)
  return path
