# coding=utf-8
"""Masked-LM and next-sentence pre-training written against
google-research/bert's API, reading the TFRecords of
create_pretraining_data.py.  Only the imports name bert_mtl.

  python examples/migrating/run_pretraining.py --input_file=train.tfrecord \
    --bert_config_file=bert_config.json --output_dir=/tmp/pretrain \
    --do_train --do_eval --num_train_steps=100 --num_warmup_steps=10
"""

import os

from absl import app
from absl import flags
import tensorflow as tf

from bert_mtl import modeling  # was: import modeling
from bert_mtl import optimization  # was: import optimization

FLAGS = flags.FLAGS

flags.DEFINE_string("bert_config_file", None, "bert_config.json.")
flags.DEFINE_string("input_file", None, "TFRecord files (comma-separated "
                    "globs).")
flags.DEFINE_string("output_dir", None, "Checkpoints and results.")
flags.DEFINE_string("init_checkpoint", None, "Checkpoint to start from.")
flags.DEFINE_integer("max_seq_length", 128, "Tokens per sequence.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions.")
flags.DEFINE_bool("do_train", False, "Train.")
flags.DEFINE_bool("do_eval", False, "Evaluate.")
flags.DEFINE_integer("train_batch_size", 32, "Training batch size.")
flags.DEFINE_integer("eval_batch_size", 8, "Evaluation batch size.")
flags.DEFINE_float("learning_rate", 5e-5, "Adam learning rate.")
flags.DEFINE_integer("num_train_steps", 100000, "Training steps.")
flags.DEFINE_integer("num_warmup_steps", 10000, "Warm-up steps.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Checkpoint interval.")
flags.DEFINE_integer("iterations_per_loop", 1000, "Steps per estimator call.")
flags.DEFINE_integer("max_eval_steps", 100, "Evaluation steps.")
flags.DEFINE_bool("use_tpu", False, "Use a TPU.")
flags.DEFINE_integer("num_tpu_cores", 8, "TPU cores.")
flags.DEFINE_bool("disable_v2_behavior", False,
                  "Run as TF1 code: tf.compat.v1.disable_v2_behavior().")


def gather_indexes(sequence_tensor, positions):
  """The vectors at `positions` [batch, n] of [batch, seq, width]."""
  batch_size, seq_length, width = modeling.get_shape_list(
      sequence_tensor, expected_rank=3)
  flat_offsets = tf.reshape(
      tf.range(0, batch_size, dtype=tf.int32) * seq_length, [-1, 1])
  flat_positions = tf.reshape(positions + flat_offsets, [-1])
  flat_sequence = tf.reshape(sequence_tensor, [batch_size * seq_length,
                                               width])
  return tf.gather(flat_sequence, flat_positions)


def get_masked_lm_output(bert_config, input_tensor, output_weights,
                         positions, label_ids, label_weights):
  """Masked-LM loss over the gathered positions, output tied to the
  embedding table (cls/predictions/...)."""
  input_tensor = gather_indexes(input_tensor, positions)
  with tf.compat.v1.variable_scope("cls/predictions"):
    with tf.compat.v1.variable_scope("transform"):
      input_tensor = tf.compat.v1.layers.dense(
          input_tensor, units=bert_config.hidden_size,
          activation=modeling.get_activation(bert_config.hidden_act),
          kernel_initializer=modeling.create_initializer(
              bert_config.initializer_range))
      input_tensor = modeling.layer_norm(input_tensor)
    output_bias = tf.compat.v1.get_variable(
        "output_bias", shape=[bert_config.vocab_size],
        initializer=tf.compat.v1.zeros_initializer())
    logits = tf.matmul(input_tensor, output_weights, transpose_b=True)
    logits = tf.nn.bias_add(logits, output_bias)
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    label_ids = tf.reshape(label_ids, [-1])
    label_weights = tf.reshape(label_weights, [-1])
    one_hot_labels = tf.one_hot(label_ids, depth=bert_config.vocab_size,
                                dtype=tf.float32)
    per_example_loss = -tf.reduce_sum(log_probs * one_hot_labels, axis=[-1])
    numerator = tf.reduce_sum(label_weights * per_example_loss)
    denominator = tf.reduce_sum(label_weights) + 1e-5
    return numerator / denominator, per_example_loss, log_probs


def get_next_sentence_output(bert_config, input_tensor, labels):
  """Next-sentence loss (cls/seq_relationship/...); 0 = is next."""
  with tf.compat.v1.variable_scope("cls/seq_relationship"):
    output_weights = tf.compat.v1.get_variable(
        "output_weights", shape=[2, bert_config.hidden_size],
        initializer=modeling.create_initializer(
            bert_config.initializer_range))
    output_bias = tf.compat.v1.get_variable(
        "output_bias", shape=[2], initializer=tf.compat.v1.zeros_initializer())
    logits = tf.nn.bias_add(
        tf.matmul(input_tensor, output_weights, transpose_b=True),
        output_bias)
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    labels = tf.reshape(labels, [-1])
    one_hot_labels = tf.one_hot(labels, depth=2, dtype=tf.float32)
    per_example_loss = -tf.reduce_sum(one_hot_labels * log_probs, axis=-1)
    return tf.reduce_mean(per_example_loss), per_example_loss, log_probs


def model_fn_builder(bert_config, init_checkpoint, learning_rate,
                     num_train_steps, num_warmup_steps, use_tpu,
                     use_one_hot_embeddings):
  """The model_fn closure for TPUEstimator."""

  def model_fn(features, labels, mode, params):
    del labels, params
    is_training = mode == tf.estimator.ModeKeys.TRAIN
    model = modeling.BertModel(
        config=bert_config, is_training=is_training,
        input_ids=features["input_ids"], input_mask=features["input_mask"],
        token_type_ids=features["segment_ids"],
        use_one_hot_embeddings=use_one_hot_embeddings)
    (masked_lm_loss, masked_lm_example_loss,
     masked_lm_log_probs) = get_masked_lm_output(
         bert_config, model.get_sequence_output(),
         model.get_embedding_table(), features["masked_lm_positions"],
         features["masked_lm_ids"], features["masked_lm_weights"])
    (next_sentence_loss, next_sentence_example_loss,
     next_sentence_log_probs) = get_next_sentence_output(
         bert_config, model.get_pooled_output(),
         features["next_sentence_labels"])
    total_loss = masked_lm_loss + next_sentence_loss

    if init_checkpoint:
      assignment_map, _ = modeling.get_assignment_map_from_checkpoint(
          tf.compat.v1.trainable_variables(), init_checkpoint)
      tf.compat.v1.train.init_from_checkpoint(init_checkpoint, assignment_map)

    if mode == tf.estimator.ModeKeys.TRAIN:
      train_op = optimization.create_optimizer(
          total_loss, learning_rate, num_train_steps, num_warmup_steps,
          use_tpu)
      return tf.compat.v1.estimator.tpu.TPUEstimatorSpec(
          mode=mode, loss=total_loss, train_op=train_op)

    def metric_fn(masked_lm_example_loss, masked_lm_log_probs, masked_lm_ids,
                  masked_lm_weights, next_sentence_example_loss,
                  next_sentence_log_probs, next_sentence_labels):
      masked_lm_predictions = tf.argmax(masked_lm_log_probs, axis=-1,
                                        output_type=tf.int32)
      masked_lm_ids = tf.reshape(masked_lm_ids, [-1])
      masked_lm_weights = tf.reshape(masked_lm_weights, [-1])
      next_sentence_predictions = tf.argmax(next_sentence_log_probs, axis=-1,
                                            output_type=tf.int32)
      return {
          "masked_lm_accuracy": tf.compat.v1.metrics.accuracy(
              labels=masked_lm_ids, predictions=masked_lm_predictions,
              weights=masked_lm_weights),
          "masked_lm_loss": tf.compat.v1.metrics.mean(
              values=masked_lm_example_loss, weights=masked_lm_weights),
          "next_sentence_accuracy": tf.compat.v1.metrics.accuracy(
              labels=tf.reshape(next_sentence_labels, [-1]),
              predictions=next_sentence_predictions),
          "next_sentence_loss": tf.compat.v1.metrics.mean(
              values=next_sentence_example_loss),
      }

    return tf.compat.v1.estimator.tpu.TPUEstimatorSpec(
        mode=mode, loss=total_loss, eval_metrics=(metric_fn, [
            masked_lm_example_loss, masked_lm_log_probs,
            features["masked_lm_ids"], features["masked_lm_weights"],
            next_sentence_example_loss, next_sentence_log_probs,
            features["next_sentence_labels"]]))

  return model_fn


def input_fn_builder(input_files, max_seq_length, max_predictions_per_seq,
                     is_training):
  """An input_fn over the TFRecord files (batch size from params)."""
  name_to_features = {
      "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
      "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
      "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
      "masked_lm_positions": tf.io.FixedLenFeature([max_predictions_per_seq],
                                                   tf.int64),
      "masked_lm_ids": tf.io.FixedLenFeature([max_predictions_per_seq],
                                             tf.int64),
      "masked_lm_weights": tf.io.FixedLenFeature([max_predictions_per_seq],
                                                 tf.float32),
      "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
  }

  def _decode_record(record):
    example = tf.io.parse_single_example(record, name_to_features)
    return {name: tf.cast(t, tf.int32) if t.dtype == tf.int64 else t
            for name, t in example.items()}

  def input_fn(params):
    d = tf.data.TFRecordDataset(input_files)
    if is_training:
      d = d.repeat().shuffle(buffer_size=100, seed=12345)
    return d.map(_decode_record).batch(params["batch_size"],
                                       drop_remainder=True)

  return input_fn


def main(_):
  if FLAGS.disable_v2_behavior:
    tf.compat.v1.disable_v2_behavior()
  tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.INFO)
  if not FLAGS.do_train and not FLAGS.do_eval:
    raise ValueError("At least one of `do_train` or `do_eval` must be True.")
  bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
  tf.io.gfile.makedirs(FLAGS.output_dir)
  input_files = []
  for pattern in FLAGS.input_file.split(","):
    input_files.extend(tf.io.gfile.glob(pattern))
  run_config = tf.compat.v1.estimator.tpu.RunConfig(
      model_dir=FLAGS.output_dir, tf_random_seed=12345,
      save_checkpoints_steps=FLAGS.save_checkpoints_steps,
      tpu_config=tf.compat.v1.estimator.tpu.TPUConfig(
          iterations_per_loop=FLAGS.iterations_per_loop,
          num_shards=FLAGS.num_tpu_cores))
  estimator = tf.compat.v1.estimator.tpu.TPUEstimator(
      use_tpu=FLAGS.use_tpu,
      model_fn=model_fn_builder(
          bert_config, FLAGS.init_checkpoint, FLAGS.learning_rate,
          FLAGS.num_train_steps, FLAGS.num_warmup_steps, FLAGS.use_tpu,
          FLAGS.use_tpu),
      config=run_config, train_batch_size=FLAGS.train_batch_size,
      eval_batch_size=FLAGS.eval_batch_size)
  if FLAGS.do_train:
    estimator.train(input_fn=input_fn_builder(
        input_files, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq,
        True), max_steps=FLAGS.num_train_steps)
  if FLAGS.do_eval:
    result = estimator.evaluate(input_fn=input_fn_builder(
        input_files, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq,
        False), steps=FLAGS.max_eval_steps)
    with tf.io.gfile.GFile(os.path.join(FLAGS.output_dir, "eval_results.txt"),
                           "w") as writer:
      for key in sorted(result.keys()):
        writer.write("%s = %s\n" % (key, str(result[key])))


if __name__ == "__main__":
  flags.mark_flag_as_required("input_file")
  flags.mark_flag_as_required("bert_config_file")
  flags.mark_flag_as_required("output_dir")
  app.run(main)
