# coding=utf-8
"""Sentence classification written against google-research/bert's API.

This is user code of the kind people wrote for the original repository
(flags, a DataProcessor, convert_single_example, file-based input_fn,
create_model, model_fn_builder, TPUEstimator with use_tpu=False), with one
change: the three library modules are imported from bert_mtl.  The test
suite runs it on the Chinese sentiment reviews under TensorFlow 2 behaviour
and under `tf.compat.v1.disable_v2_behavior()`.

  python examples/migrating/run_classifier.py --data_dir=DATA \
    --bert_config_file=bert_config.json --vocab_file=vocab.txt \
    --output_dir=/tmp/cls --do_train --do_eval --do_predict

DATA holds sentiment/pos.txt and sentiment/neg.txt (one review a line);
every 10th non-blank line of each file (index % 10 == 9) is the dev set.
"""

import collections
import csv
import os

from absl import app
from absl import flags
import tensorflow as tf

from bert_mtl import modeling  # was: import modeling
from bert_mtl import optimization  # was: import optimization
from bert_mtl import tokenization  # was: import tokenization

FLAGS = flags.FLAGS

flags.DEFINE_string("data_dir", None, "Directory with sentiment/{pos,neg}.txt.")
flags.DEFINE_string("bert_config_file", None, "bert_config.json.")
flags.DEFINE_string("vocab_file", None, "vocab.txt.")
flags.DEFINE_string("output_dir", None, "Checkpoints and results.")
flags.DEFINE_string("init_checkpoint", None, "Checkpoint to start from.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case the input.")
flags.DEFINE_integer("max_seq_length", 128, "Tokens per sequence.")
flags.DEFINE_bool("do_train", False, "Train.")
flags.DEFINE_bool("do_eval", False, "Evaluate on the dev set.")
flags.DEFINE_bool("do_predict", False, "Predict the dev set.")
flags.DEFINE_integer("train_batch_size", 32, "Training batch size.")
flags.DEFINE_integer("eval_batch_size", 8, "Evaluation batch size.")
flags.DEFINE_integer("predict_batch_size", 8, "Prediction batch size.")
flags.DEFINE_float("learning_rate", 5e-5, "Adam learning rate.")
flags.DEFINE_float("num_train_epochs", 3.0, "Training epochs.")
flags.DEFINE_float("warmup_proportion", 0.1, "Warm-up share of the steps.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Checkpoint interval.")
flags.DEFINE_integer("iterations_per_loop", 1000, "Steps per estimator call.")
flags.DEFINE_bool("use_tpu", False, "Use a TPU.")
flags.DEFINE_integer("num_tpu_cores", 8, "TPU cores.")
flags.DEFINE_bool("disable_v2_behavior", False,
                  "Run as TF1 code: tf.compat.v1.disable_v2_behavior().")


class InputExample(object):
  """One example: a guid, text_a, optional text_b, a label."""

  def __init__(self, guid, text_a, text_b=None, label=None):
    self.guid = guid
    self.text_a = text_a
    self.text_b = text_b
    self.label = label


class PaddingInputExample(object):
  """Stands for a padding row (not used off TPU)."""


class InputFeatures(object):
  """The ids of one example."""

  def __init__(self, input_ids, input_mask, segment_ids, label_id,
               is_real_example=True):
    self.input_ids = input_ids
    self.input_mask = input_mask
    self.segment_ids = segment_ids
    self.label_id = label_id
    self.is_real_example = is_real_example


class DataProcessor(object):
  """Base class of the data sets."""

  def get_train_examples(self, data_dir):
    raise NotImplementedError()

  def get_dev_examples(self, data_dir):
    raise NotImplementedError()

  def get_test_examples(self, data_dir):
    raise NotImplementedError()

  def get_labels(self):
    raise NotImplementedError()


class SentimentProcessor(DataProcessor):
  """Chinese reviews: sentiment/pos.txt and sentiment/neg.txt."""

  def get_train_examples(self, data_dir):
    return self._create_examples(data_dir, "train")

  def get_dev_examples(self, data_dir):
    return self._create_examples(data_dir, "dev")

  def get_test_examples(self, data_dir):
    return self._create_examples(data_dir, "dev")

  def get_labels(self):
    return ["neg", "pos"]

  def _create_examples(self, data_dir, set_type):
    examples = []
    for label in ("pos", "neg"):
      path = os.path.join(data_dir, "sentiment", label + ".txt")
      with tf.io.gfile.GFile(path, "r") as reader:
        lines = [line.strip() for line in reader if line.strip()]
      for index, line in enumerate(lines):
        if (index % 10 == 9) != (set_type == "dev"):
          continue
        guid = "%s-%s-%d" % (set_type, label, index)
        examples.append(InputExample(guid, tokenization.convert_to_unicode(
            line), label=label))
    return examples


def convert_single_example(ex_index, example, label_list, max_seq_length,
                           tokenizer):
  """[CLS] tokens [SEP], padded with zeros to max_seq_length."""
  if isinstance(example, PaddingInputExample):
    return InputFeatures([0] * max_seq_length, [0] * max_seq_length,
                         [0] * max_seq_length, 0, is_real_example=False)
  label_map = {label: i for i, label in enumerate(label_list)}
  tokens_a = tokenizer.tokenize(example.text_a)
  if len(tokens_a) > max_seq_length - 2:
    tokens_a = tokens_a[0:(max_seq_length - 2)]
  tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
  segment_ids = [0] * len(tokens)
  input_ids = tokenizer.convert_tokens_to_ids(tokens)
  input_mask = [1] * len(input_ids)
  while len(input_ids) < max_seq_length:
    input_ids.append(0)
    input_mask.append(0)
    segment_ids.append(0)
  if ex_index < 2:
    tf.compat.v1.logging.info("tokens: %s", " ".join(
        tokenization.printable_text(x) for x in tokens))
  return InputFeatures(input_ids, input_mask, segment_ids,
                       label_map[example.label])


def file_based_convert_examples_to_features(examples, label_list,
                                            max_seq_length, tokenizer,
                                            output_file):
  """Writes the examples' features to a TFRecord file."""
  writer = tf.io.TFRecordWriter(output_file)
  for ex_index, example in enumerate(examples):
    feature = convert_single_example(ex_index, example, label_list,
                                     max_seq_length, tokenizer)

    def int_feature(values):
      return tf.train.Feature(int64_list=tf.train.Int64List(
          value=list(values)))

    features = collections.OrderedDict()
    features["input_ids"] = int_feature(feature.input_ids)
    features["input_mask"] = int_feature(feature.input_mask)
    features["segment_ids"] = int_feature(feature.segment_ids)
    features["label_ids"] = int_feature([feature.label_id])
    features["is_real_example"] = int_feature([int(feature.is_real_example)])
    writer.write(tf.train.Example(features=tf.train.Features(
        feature=features)).SerializeToString())
  writer.close()


def file_based_input_fn_builder(input_file, seq_length, is_training,
                                drop_remainder):
  """An input_fn reading the TFRecord file (batch size from params)."""
  name_to_features = {
      "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
      "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
      "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
      "label_ids": tf.io.FixedLenFeature([], tf.int64),
      "is_real_example": tf.io.FixedLenFeature([], tf.int64),
  }

  def _decode_record(record):
    example = tf.io.parse_single_example(record, name_to_features)
    # int64 from the file, int32 in the model, as the original.
    return {name: tf.cast(t, tf.int32) for name, t in example.items()}

  def input_fn(params):
    d = tf.data.TFRecordDataset(input_file)
    if is_training:
      d = d.repeat().shuffle(buffer_size=100, seed=12345)
    return d.map(_decode_record).batch(params["batch_size"],
                                       drop_remainder=drop_remainder)

  return input_fn


def create_model(bert_config, is_training, input_ids, input_mask,
                 segment_ids, labels, num_labels, use_one_hot_embeddings):
  """The classifier of the original: pooled output, one dense layer at the
  root scope (output_weights, output_bias)."""
  model = modeling.BertModel(
      config=bert_config, is_training=is_training, input_ids=input_ids,
      input_mask=input_mask, token_type_ids=segment_ids,
      use_one_hot_embeddings=use_one_hot_embeddings)
  output_layer = model.get_pooled_output()
  hidden_size = output_layer.shape[-1]
  output_weights = tf.compat.v1.get_variable(
      "output_weights", [num_labels, hidden_size],
      initializer=tf.compat.v1.truncated_normal_initializer(stddev=0.02))
  output_bias = tf.compat.v1.get_variable(
      "output_bias", [num_labels],
      initializer=tf.compat.v1.zeros_initializer())
  with tf.compat.v1.variable_scope("loss"):
    if is_training:
      output_layer = tf.nn.dropout(output_layer, rate=0.1)
    logits = tf.matmul(output_layer, output_weights, transpose_b=True)
    logits = tf.nn.bias_add(logits, output_bias)
    probabilities = tf.nn.softmax(logits, axis=-1)
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    one_hot_labels = tf.one_hot(labels, depth=num_labels, dtype=tf.float32)
    per_example_loss = -tf.reduce_sum(one_hot_labels * log_probs, axis=-1)
    loss = tf.reduce_mean(per_example_loss)
    return loss, per_example_loss, logits, probabilities


def model_fn_builder(bert_config, num_labels, init_checkpoint, learning_rate,
                     num_train_steps, num_warmup_steps, use_tpu,
                     use_one_hot_embeddings):
  """The model_fn closure for TPUEstimator."""

  def model_fn(features, labels, mode, params):
    del labels, params
    input_ids = features["input_ids"]
    input_mask = features["input_mask"]
    segment_ids = features["segment_ids"]
    label_ids = features["label_ids"]
    is_real_example = tf.cast(features["is_real_example"], tf.float32)
    is_training = mode == tf.estimator.ModeKeys.TRAIN
    total_loss, per_example_loss, logits, probabilities = create_model(
        bert_config, is_training, input_ids, input_mask, segment_ids,
        label_ids, num_labels, use_one_hot_embeddings)

    tvars = tf.compat.v1.trainable_variables()
    scaffold_fn = None
    if init_checkpoint:
      (assignment_map, initialized_variable_names
      ) = modeling.get_assignment_map_from_checkpoint(tvars, init_checkpoint)
      tf.compat.v1.train.init_from_checkpoint(init_checkpoint, assignment_map)
      tf.compat.v1.logging.info("initialized %d variables from %s",
                                len(initialized_variable_names) // 2,
                                init_checkpoint)

    if mode == tf.estimator.ModeKeys.TRAIN:
      train_op = optimization.create_optimizer(
          total_loss, learning_rate, num_train_steps, num_warmup_steps,
          use_tpu)
      return tf.compat.v1.estimator.tpu.TPUEstimatorSpec(
          mode=mode, loss=total_loss, train_op=train_op,
          scaffold_fn=scaffold_fn)
    if mode == tf.estimator.ModeKeys.EVAL:

      def metric_fn(per_example_loss, label_ids, logits, is_real_example):
        predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
        accuracy = tf.compat.v1.metrics.accuracy(
            labels=label_ids, predictions=predictions,
            weights=is_real_example)
        loss = tf.compat.v1.metrics.mean(values=per_example_loss,
                                         weights=is_real_example)
        return {"eval_accuracy": accuracy, "eval_loss": loss}

      return tf.compat.v1.estimator.tpu.TPUEstimatorSpec(
          mode=mode, loss=total_loss,
          eval_metrics=(metric_fn, [per_example_loss, label_ids, logits,
                                    is_real_example]),
          scaffold_fn=scaffold_fn)
    return tf.compat.v1.estimator.tpu.TPUEstimatorSpec(
        mode=mode, predictions={"probabilities": probabilities},
        scaffold_fn=scaffold_fn)

  return model_fn


def main(_):
  if FLAGS.disable_v2_behavior:
    tf.compat.v1.disable_v2_behavior()
  tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.INFO)
  if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict):
    raise ValueError("At least one of `do_train`, `do_eval` or `do_predict' "
                     "must be True.")
  tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case,
                                                FLAGS.init_checkpoint)
  bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
  if FLAGS.max_seq_length > bert_config.max_position_embeddings:
    raise ValueError("max_seq_length %d > max_position_embeddings %d" %
                     (FLAGS.max_seq_length,
                      bert_config.max_position_embeddings))
  tf.io.gfile.makedirs(FLAGS.output_dir)
  processor = SentimentProcessor()
  label_list = processor.get_labels()
  tokenizer = tokenization.FullTokenizer(vocab_file=FLAGS.vocab_file,
                                         do_lower_case=FLAGS.do_lower_case)

  run_config = tf.compat.v1.estimator.tpu.RunConfig(
      model_dir=FLAGS.output_dir,
      save_checkpoints_steps=FLAGS.save_checkpoints_steps,
      tf_random_seed=12345,
      tpu_config=tf.compat.v1.estimator.tpu.TPUConfig(
          iterations_per_loop=FLAGS.iterations_per_loop,
          num_shards=FLAGS.num_tpu_cores))

  train_examples = None
  num_train_steps = None
  num_warmup_steps = None
  if FLAGS.do_train:
    train_examples = processor.get_train_examples(FLAGS.data_dir)
    num_train_steps = int(len(train_examples) / FLAGS.train_batch_size *
                          FLAGS.num_train_epochs)
    num_warmup_steps = int(num_train_steps * FLAGS.warmup_proportion)

  model_fn = model_fn_builder(
      bert_config=bert_config, num_labels=len(label_list),
      init_checkpoint=FLAGS.init_checkpoint,
      learning_rate=FLAGS.learning_rate, num_train_steps=num_train_steps,
      num_warmup_steps=num_warmup_steps, use_tpu=FLAGS.use_tpu,
      use_one_hot_embeddings=FLAGS.use_tpu)
  estimator = tf.compat.v1.estimator.tpu.TPUEstimator(
      use_tpu=FLAGS.use_tpu, model_fn=model_fn, config=run_config,
      train_batch_size=FLAGS.train_batch_size,
      eval_batch_size=FLAGS.eval_batch_size,
      predict_batch_size=FLAGS.predict_batch_size)

  if FLAGS.do_train:
    train_file = os.path.join(FLAGS.output_dir, "train.tf_record")
    file_based_convert_examples_to_features(
        train_examples, label_list, FLAGS.max_seq_length, tokenizer,
        train_file)
    tf.compat.v1.logging.info("  Num examples = %d", len(train_examples))
    tf.compat.v1.logging.info("  Num steps = %d", num_train_steps)
    estimator.train(input_fn=file_based_input_fn_builder(
        train_file, FLAGS.max_seq_length, True, True),
                    max_steps=num_train_steps)

  if FLAGS.do_eval:
    eval_examples = processor.get_dev_examples(FLAGS.data_dir)
    eval_file = os.path.join(FLAGS.output_dir, "eval.tf_record")
    file_based_convert_examples_to_features(
        eval_examples, label_list, FLAGS.max_seq_length, tokenizer, eval_file)
    result = estimator.evaluate(input_fn=file_based_input_fn_builder(
        eval_file, FLAGS.max_seq_length, False, False), steps=None)
    with tf.io.gfile.GFile(os.path.join(FLAGS.output_dir, "eval_results.txt"),
                           "w") as writer:
      for key in sorted(result.keys()):
        writer.write("%s = %s\n" % (key, str(result[key])))

  if FLAGS.do_predict:
    predict_examples = processor.get_test_examples(FLAGS.data_dir)
    predict_file = os.path.join(FLAGS.output_dir, "predict.tf_record")
    file_based_convert_examples_to_features(
        predict_examples, label_list, FLAGS.max_seq_length, tokenizer,
        predict_file)
    result = estimator.predict(input_fn=file_based_input_fn_builder(
        predict_file, FLAGS.max_seq_length, False, False))
    with tf.io.gfile.GFile(os.path.join(FLAGS.output_dir, "test_results.tsv"),
                           "w") as writer:
      out = csv.writer(writer, delimiter="\t", lineterminator="\n")
      for prediction in result:
        out.writerow(["%.9g" % p for p in prediction["probabilities"]])


if __name__ == "__main__":
  flags.mark_flag_as_required("data_dir")
  flags.mark_flag_as_required("vocab_file")
  flags.mark_flag_as_required("bert_config_file")
  flags.mark_flag_as_required("output_dir")
  app.run(main)
