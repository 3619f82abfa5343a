# coding=utf-8
"""Frozen BERT activations to JSON lines, written against
google-research/bert's API (the format of its extract_features.py: one
object per input line with `linex_index` and, per token, the values of the
chosen layers).  Only the imports name bert_mtl.

  python examples/migrating/extract_features.py --input_file=input.txt \
    --output_file=features.jsonl --vocab_file=vocab.txt \
    --bert_config_file=bert_config.json --init_checkpoint=bert_model.ckpt \
    --layers=-1,-2 --max_seq_length=64

A line "A ||| B" is a sentence pair.
"""

import collections
import json
import re

from absl import app
from absl import flags
import tensorflow as tf

from bert_mtl import modeling  # was: import modeling
from bert_mtl import tokenization  # was: import tokenization

FLAGS = flags.FLAGS

flags.DEFINE_string("input_file", None, "One example a line.")
flags.DEFINE_string("output_file", None, "JSON lines out.")
flags.DEFINE_string("layers", "-1,-2,-3,-4", "Layer indexes to write.")
flags.DEFINE_string("bert_config_file", None, "bert_config.json.")
flags.DEFINE_integer("max_seq_length", 128, "Tokens per sequence.")
flags.DEFINE_string("init_checkpoint", None, "The checkpoint to read.")
flags.DEFINE_string("vocab_file", None, "vocab.txt.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case the input.")
flags.DEFINE_integer("batch_size", 32, "Prediction batch size.")
flags.DEFINE_bool("use_tpu", False, "Use a TPU.")
flags.DEFINE_bool("use_one_hot_embeddings", False, "One-hot word lookup.")
flags.DEFINE_bool("disable_v2_behavior", False,
                  "Run as TF1 code: tf.compat.v1.disable_v2_behavior().")


class InputExample(object):

  def __init__(self, unique_id, text_a, text_b):
    self.unique_id = unique_id
    self.text_a = text_a
    self.text_b = text_b


class InputFeatures(object):

  def __init__(self, unique_id, tokens, input_ids, input_mask,
               input_type_ids):
    self.unique_id = unique_id
    self.tokens = tokens
    self.input_ids = input_ids
    self.input_mask = input_mask
    self.input_type_ids = input_type_ids


def read_examples(input_file):
  """One InputExample per line; "A ||| B" splits at the last " ||| "."""
  examples = []
  with tf.io.gfile.GFile(input_file, "r") as reader:
    for unique_id, line in enumerate(reader):
      line = tokenization.convert_to_unicode(line).strip()
      m = re.match(r"^(.*) \|\|\| (.*)$", line)
      if m is None:
        examples.append(InputExample(unique_id, line, None))
      else:
        examples.append(InputExample(unique_id, m.group(1), m.group(2)))
  return examples


def _truncate_seq_pair(tokens_a, tokens_b, max_length):
  """Pops from the longer sequence (b on ties) until the pair fits."""
  while len(tokens_a) + len(tokens_b) > max_length:
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


def convert_examples_to_features(examples, seq_length, tokenizer):
  features = []
  for example in examples:
    tokens_a = tokenizer.tokenize(example.text_a)
    tokens_b = tokenizer.tokenize(example.text_b) if example.text_b else None
    if tokens_b:
      _truncate_seq_pair(tokens_a, tokens_b, seq_length - 3)
    elif len(tokens_a) > seq_length - 2:
      tokens_a = tokens_a[0:(seq_length - 2)]
    tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
    input_type_ids = [0] * len(tokens)
    if tokens_b:
      tokens += tokens_b + ["[SEP]"]
      input_type_ids += [1] * (len(tokens_b) + 1)
    input_ids = tokenizer.convert_tokens_to_ids(tokens)
    input_mask = [1] * len(input_ids)
    while len(input_ids) < seq_length:
      input_ids.append(0)
      input_mask.append(0)
      input_type_ids.append(0)
    features.append(InputFeatures(example.unique_id, tokens, input_ids,
                                  input_mask, input_type_ids))
  return features


def input_fn_builder(features, seq_length):
  """An input_fn over in-memory features (batch size from params)."""

  def input_fn(params):
    def column(name):
      return tf.constant([getattr(f, name) for f in features], tf.int32)
    d = tf.data.Dataset.from_tensor_slices({
        "unique_ids": column("unique_id"),
        "input_ids": column("input_ids"),
        "input_mask": column("input_mask"),
        "input_type_ids": column("input_type_ids"),
    })
    return d.batch(params["batch_size"], drop_remainder=False)

  del seq_length
  return input_fn


def model_fn_builder(bert_config, init_checkpoint, layer_indexes,
                     use_one_hot_embeddings):
  """PREDICT-only model_fn: the chosen encoder layers of every token."""

  def model_fn(features, labels, mode, params):
    del labels, params
    if mode != tf.estimator.ModeKeys.PREDICT:
      raise ValueError("Only PREDICT modes are supported: %s" % mode)
    model = modeling.BertModel(
        config=bert_config, is_training=False,
        input_ids=features["input_ids"], input_mask=features["input_mask"],
        token_type_ids=features["input_type_ids"],
        use_one_hot_embeddings=use_one_hot_embeddings)
    assignment_map, _ = modeling.get_assignment_map_from_checkpoint(
        tf.compat.v1.trainable_variables(), init_checkpoint)
    tf.compat.v1.train.init_from_checkpoint(init_checkpoint, assignment_map)
    all_layers = model.get_all_encoder_layers()
    predictions = {"unique_id": features["unique_ids"]}
    for i, layer_index in enumerate(layer_indexes):
      predictions["layer_output_%d" % i] = all_layers[layer_index]
    return tf.compat.v1.estimator.tpu.TPUEstimatorSpec(
        mode=mode, predictions=predictions)

  return model_fn


def main(_):
  if FLAGS.disable_v2_behavior:
    tf.compat.v1.disable_v2_behavior()
  tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.INFO)
  layer_indexes = [int(x) for x in FLAGS.layers.split(",")]
  bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
  tokenizer = tokenization.FullTokenizer(vocab_file=FLAGS.vocab_file,
                                         do_lower_case=FLAGS.do_lower_case)
  run_config = tf.compat.v1.estimator.tpu.RunConfig(
      tpu_config=tf.compat.v1.estimator.tpu.TPUConfig(
          num_shards=8, per_host_input_for_training=(
              tf.compat.v1.estimator.tpu.InputPipelineConfig.PER_HOST_V2)))
  examples = read_examples(FLAGS.input_file)
  features = convert_examples_to_features(examples, FLAGS.max_seq_length,
                                          tokenizer)
  unique_id_to_feature = {f.unique_id: f for f in features}
  estimator = tf.compat.v1.estimator.tpu.TPUEstimator(
      use_tpu=FLAGS.use_tpu,
      model_fn=model_fn_builder(bert_config, FLAGS.init_checkpoint,
                                layer_indexes, FLAGS.use_one_hot_embeddings),
      config=run_config, predict_batch_size=FLAGS.batch_size)
  input_fn = input_fn_builder(features, FLAGS.max_seq_length)
  with tf.io.gfile.GFile(FLAGS.output_file, "w") as writer:
    for result in estimator.predict(input_fn, yield_single_examples=True):
      unique_id = int(result["unique_id"])
      feature = unique_id_to_feature[unique_id]
      output = collections.OrderedDict(linex_index=unique_id)
      all_features = []
      for i, token in enumerate(feature.tokens):
        layers = []
        for j, layer_index in enumerate(layer_indexes):
          values = result["layer_output_%d" % j][i]
          layers.append(collections.OrderedDict(
              index=layer_index,
              values=[round(float(x), 6) for x in values.flat]))
        all_features.append(collections.OrderedDict(token=token,
                                                    layers=layers))
      output["features"] = all_features
      writer.write(json.dumps(output) + "\n")


if __name__ == "__main__":
  flags.mark_flag_as_required("input_file")
  flags.mark_flag_as_required("vocab_file")
  flags.mark_flag_as_required("bert_config_file")
  flags.mark_flag_as_required("init_checkpoint")
  flags.mark_flag_as_required("output_file")
  app.run(main)
