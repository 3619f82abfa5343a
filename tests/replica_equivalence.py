"""Two replicas with batch b vs one with 2b vs gradient accumulation.

Run in a fresh process (the logical CPU devices must exist before TensorFlow
starts): python tests/replica_equivalence.py WORK_DIR.  Prints one JSON line
with the largest variable differences and the logged first-step losses.
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * 2)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bert_mtl import checkpoint, modeling, optimization  # pylint: disable=g-import-not-at-top,wrong-import-position

tf1 = tf.compat.v1
CONFIG = modeling.BertConfig(vocab_size=50, hidden_size=16,
                             num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=24, max_position_embeddings=16,
                             hidden_dropout_prob=0.0,
                             attention_probs_dropout_prob=0.0,
                             type_vocab_size=2)
SEQ, EXAMPLES, NUM_LABELS, UPDATES = 8, 8, 3, 3
# Equivalent computations differ by float32 rounding, which Adam's first
# steps (m / sqrt(v) with tiny v) amplify in proportion to the step size;
# a real error (replica copies diverging, a wrong split, no reduction) moves
# variables by the order of the learning rate itself.
LEARNING_RATE = 1e-4
RNG = np.random.default_rng(0)
IDS = RNG.integers(1, 50, size=(EXAMPLES, SEQ)).astype(np.int32)
MASK = (np.arange(SEQ)[None] < RNG.integers(3, SEQ + 1, (EXAMPLES, 1))).astype(
    np.int32)
LABELS = RNG.integers(0, NUM_LABELS, size=EXAMPLES).astype(np.int32)


def build_loss(features, is_training):
  model = modeling.BertModel(CONFIG, is_training, features["input_ids"],
                             features["input_mask"])
  logits = tf1.layers.dense(model.get_pooled_output(), NUM_LABELS,
                            name="classifier")
  return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=features["labels"], logits=logits))


def make_model_fn(init_ckpt, accumulation):
  def model_fn(features, labels, mode, params):
    del labels, params
    loss = build_loss(features, mode == tf.estimator.ModeKeys.TRAIN)
    checkpoint.init_from_checkpoint(init_ckpt)
    train_op = optimization.create_optimizer(
        loss, LEARNING_RATE, 100, 0, gradient_accumulation_steps=accumulation)
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)
  return model_fn


def input_fn_for(batch):
  def input_fn(params=None, input_context=None):
    del params, input_context
    data = {"input_ids": IDS, "input_mask": MASK, "labels": LABELS}
    return tf.data.Dataset.from_tensor_slices(data).batch(batch).repeat()
  return input_fn


def train(work, name, batch, steps, strategy=None, accumulation=1):
  config = tf.estimator.RunConfig(
      model_dir=os.path.join(work, name), train_distribute=strategy,
      save_summary_steps=1, log_step_count_steps=1, tf_random_seed=1)
  est = tf.estimator.Estimator(make_model_fn(os.path.join(work, "init.ckpt"),
                                             accumulation), config=config)
  est.train(input_fn_for(batch), max_steps=steps)
  values = checkpoint.read_checkpoint(est.latest_checkpoint())
  return values, first_loss(os.path.join(work, name))


def first_loss(model_dir):
  losses = []
  for path in sorted(tf.io.gfile.glob(os.path.join(model_dir, "events.*"))):
    for event in tf1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == "loss":
          losses.append((event.step, value.simple_value))
  return sorted(losses)[0][1]


def main(work):
  with tf.Graph().as_default():
    tf1.set_random_seed(0)
    features = {k: tf.constant(v) for k, v in
                (("input_ids", IDS), ("input_mask", MASK), ("labels", LABELS))}
    build_loss(features, True)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      tf1.train.Saver().save(sess, os.path.join(work, "init.ckpt"))
  init = checkpoint.read_checkpoint(os.path.join(work, "init.ckpt"))
  strategy = tf.distribute.MirroredStrategy(
      ["/cpu:0", "/cpu:1"],
      cross_device_ops=tf.distribute.ReductionToOneDevice())
  single, loss_single = train(work, "single", EXAMPLES, UPDATES)
  replicas, loss_replicas = train(work, "replicas", EXAMPLES // 2, UPDATES,
                                  strategy)
  accumulated, _ = train(work, "accumulated", EXAMPLES // 2, 2 * UPDATES,
                         accumulation=2)

  def max_diff(a, b):
    return max(float(np.abs(a[n] - b[n]).max()) for n in init)

  print(json.dumps({
      "max_diff_replicas": max_diff(single, replicas),
      "max_diff_accumulation": max_diff(single, accumulated),
      "moved": max_diff(single, init),
      "loss_single": loss_single, "loss_replicas": loss_replicas,
      "steps": [int(single["global_step"]), int(replicas["global_step"]),
                int(accumulated["global_step"])]}))


if __name__ == "__main__":
  main(sys.argv[1])
