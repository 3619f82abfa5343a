"""Run in a fresh process with only TensorFlow imported: lists ops of a
SavedModel that core TensorFlow does not register, and calls every
signature on the inputs in an .npz (`tag_mask` goes to the signatures
that take it; the text signatures get the texts of a JSON list, and those of pair
problems the same texts reversed as text_b), saving
the outputs."""

import json
import sys

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry


def unknown_ops(export_dir):
  proto = saved_model_pb2.SavedModel()
  with open(export_dir + "/saved_model.pb", "rb") as f:
    proto.ParseFromString(f.read())
  ops = set()
  for meta_graph in proto.meta_graphs:
    ops.update(n.op for n in meta_graph.graph_def.node)
    for function in meta_graph.graph_def.library.function:
      ops.update(n.op for n in function.node_def)
  return sorted(op for op in ops if op_def_registry.get(op) is None), len(ops)


def main(export_dir, inputs_path, outputs_path, texts_path):
  bad, count = unknown_ops(export_dir)
  model = tf.saved_model.load(export_dir)
  inputs = dict(np.load(inputs_path))
  tag_mask = inputs.pop("tag_mask", None)
  outputs = {}
  lengths = inputs["input_mask"].sum(1)
  serialized = tf.constant([tf.train.Example(features=tf.train.Features(
      feature={k: tf.train.Feature(int64_list=tf.train.Int64List(
          value=v[row, :lengths[row]].tolist())) for k, v in inputs.items()})
                            ).SerializeToString()
                            for row in range(len(lengths))])
  with open(texts_path, encoding="utf-8") as f:
    texts = tf.constant([t.encode("utf-8") for t in json.load(f)])
  for name, signature in model.signatures.items():
    if "text_b" in signature.structured_input_signature[1]:
      result = signature(text=texts, text_b=tf.reverse(texts, [0]))
    elif "text" in signature.structured_input_signature[1]:
      result = signature(text=texts)
    elif "examples" in signature.structured_input_signature[1]:
      result = signature(examples=serialized)
    elif "tag_mask" in signature.structured_input_signature[1]:
      result = signature(tag_mask=tf.constant(tag_mask), **{
          k: tf.constant(v) for k, v in inputs.items()})
    else:
      result = signature(**{k: tf.constant(v) for k, v in inputs.items()})
    for key, value in result.items():
      outputs["%s:%s" % (name, key)] = value.numpy()
  np.savez(outputs_path, **outputs)
  print(json.dumps({"unknown_ops": bad, "num_ops": count,
                    "signatures": sorted(model.signatures)}))


if __name__ == "__main__":
  main(*sys.argv[1:])
