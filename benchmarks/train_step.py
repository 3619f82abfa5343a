"""Training-step efficiency of a BERT-Base-shaped model on CPU.

Reports the achieved FLOP/s of one full training step (forward, backward and
the AdamWeightDecay update) as a fraction of the dense float32 tf.matmul
FLOP/s measured in the same run, and compares the step time with
HuggingFace transformers' TFBertModel on the same shapes and threads, with
HF's AdamWeightDecay and the same global-norm clip (install transformers 4.x in this environment first:
`pip install -e '..[bench]'`).

    python train_step.py [--batch_size 8] [--seq_length 128] [--steps 5]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

from bert_mtl import modeling, optimization  # pylint: disable=g-import-not-at-top,wrong-import-position

tf1 = tf.compat.v1
BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
            num_attention_heads=12, intermediate_size=3072,
            max_position_embeddings=512, type_vocab_size=2)


def step_flops(batch, seq, c, num_labels=2):
  """Matmul FLOPs of one training step (backward = 2 x forward)."""
  h, i, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
  tokens = batch * seq
  per_layer = tokens * (2 * 4 * h * h + 2 * 2 * h * i) + batch * 2 * 2 * seq * seq * h
  forward = layers * per_layer + batch * 2 * h * (h + num_labels)
  return 3 * forward


def matmul_flops_per_second(n=2048, repeats=10):
  a = tf.random.normal([n, n])
  b = tf.random.normal([n, n])

  @tf.function
  def mm(x, y):
    return tf.matmul(x, y)

  mm(a, b).numpy()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    mm(a, b).numpy()
    best = min(best, time.perf_counter() - start)
  return 2 * n ** 3 / best


def inputs(batch, seq):
  rng = np.random.default_rng(0)
  ids = rng.integers(1000, 30000, size=(batch, seq)).astype(np.int32)
  mask = np.ones((batch, seq), np.int32)
  labels = rng.integers(0, 2, size=batch).astype(np.int32)
  return ids, mask, labels


def build_ours(batch, seq):
  """A callable running one bert_mtl training step (graph + session)."""
  ids, mask, labels = inputs(batch, seq)
  config = modeling.BertConfig(**BASE)
  graph = tf.Graph()
  with graph.as_default():
    model = modeling.BertModel(config, True, tf.constant(ids),
                               tf.constant(mask))
    logits = tf1.layers.dense(model.get_pooled_output(), 2)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.constant(labels), logits=logits))
    train_op = optimization.create_optimizer(loss, 1e-5, 1000, 100)
    init = tf1.global_variables_initializer()
  sess = tf1.Session(graph=graph)
  sess.run(init)
  sess.run(train_op)  # warm-up
  return lambda: sess.run(train_op)


def build_hf(batch, seq):
  """A callable running one HF TFBertModel training step, or None."""
  try:
    from transformers import AdamWeightDecay, BertConfig, TFBertModel  # pylint: disable=g-import-not-at-top
    # transformers picks its Keras (tf_keras or Keras 2) and may leave
    # tf.keras unusable afterwards: use the one it uses.
    from transformers.modeling_tf_utils import keras  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  ids, mask, labels = inputs(batch, seq)
  config = BertConfig(hidden_act="gelu_new", **BASE)
  bert = TFBertModel(config)
  head = keras.layers.Dense(2)
  # HF's own port of BERT's optimizer, as its create_optimizer builds it.
  opt = AdamWeightDecay(learning_rate=1e-5, weight_decay_rate=0.01,
                        epsilon=1e-6, exclude_from_weight_decay=[
                            "LayerNorm", "layer_norm", "bias"])

  @tf.function
  def step(ids, mask, labels):
    with tf.GradientTape() as tape:
      pooled = bert(input_ids=ids, attention_mask=mask,
                    training=True).pooler_output
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=labels, logits=head(pooled)))
    variables = bert.trainable_variables + head.trainable_variables
    grads = tape.gradient(loss, variables)
    grads, _ = tf.clip_by_global_norm(grads, 1.0)
    opt.apply_gradients(zip(grads, variables))
    return loss

  args = (tf.constant(ids), tf.constant(mask), tf.constant(labels))
  step(*args).numpy()  # trace and warm up
  return lambda: step(*args).numpy()


def interleaved_best(fns, rounds):
  """Fastest time of each callable, alternating them round by round so
  that the machine's drifting speed affects all alike."""
  best = [float("inf")] * len(fns)
  for _ in range(rounds):
    for k, fn in enumerate(fns):
      start = time.perf_counter()
      fn()
      best[k] = min(best[k], time.perf_counter() - start)
  return best


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--steps", type=int, default=8,
                      help="rounds; each times every variant once")
  args = parser.parse_args()
  flops = step_flops(args.batch_size, args.seq_length, BASE)
  ours_step = build_ours(args.batch_size, args.seq_length)
  hf_step = build_hf(args.batch_size, args.seq_length)
  peak = matmul_flops_per_second()
  fns = [ours_step] + ([hf_step] if hf_step else [])
  times = interleaved_best(fns, args.steps)
  ours, hf = times[0], (times[1] if hf_step else None)
  peak = max(peak, matmul_flops_per_second())
  print("BERT-Base shape, batch %d x seq %d, %d threads" %
        (args.batch_size, args.seq_length, os.cpu_count()))
  print("dense float32 tf.matmul 2048^3:        %8.1f GFLOP/s (baseline)" %
        (peak / 1e9))
  print("bert_mtl training step:    %7.3f s  %8.1f GFLOP/s  %5.1f%% of matmul"
        % (ours, flops / ours / 1e9, 100 * flops / ours / peak))
  if hf is None:
    print("transformers not installed: HF comparison skipped")
  else:
    print("HF TFBertModel step:       %7.3f s  %8.1f GFLOP/s  %5.1f%% of matmul"
          % (hf, flops / hf / 1e9, 100 * flops / hf / peak))
    print("ratio: bert_mtl is %.2fx the speed of HF TFBertModel" % (hf / ours))


if __name__ == "__main__":
  main()
