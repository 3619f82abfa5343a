"""Training-step efficiency on CPU, at two shapes.

--shape base: BERT-Base (12 x 768), a classifier on the pooled output,
batch 8 x 128.  --shape tiny: the README main job's model (2 x 128, the
Chinese vocab), a CRF tagger (13 tags) on the sequence output, batch
32 x 64.  Reports the achieved FLOP/s of one full training step (forward,
backward and the AdamWeightDecay update) in float32 and under
--mixed_precision=bfloat16, each as a fraction of the dense tf.matmul
FLOP/s of its dtype measured in the same run, the float32 step with XLA
auto-clustering (--use_xla's setting), and compares the step times with
HuggingFace transformers' TFBertModel on the same shapes, loss and threads
(float32, and Keras' mixed_bfloat16 policy), with HF's AdamWeightDecay and
the same global-norm clip (install transformers 4.x in this environment
first: `pip install -e '..[bench]'`).

    python train_step.py [--shape base|tiny] [--steps 8] [--no_xla]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

from bert_mtl import fused_ops, modeling, optimization  # pylint: disable=g-import-not-at-top,wrong-import-position

tf1 = tf.compat.v1
BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
            num_attention_heads=12, intermediate_size=3072,
            max_position_embeddings=512, type_vocab_size=2)
# name: (config, batch, sequence length, loss: "cls" or "crf")
SHAPES = {
    "base": (BASE, 8, 128, "cls"),
    "tiny": (dict(vocab_size=21128, max_position_embeddings=128,
                  type_vocab_size=2, **modeling.SMALL_MODELS["tiny"]),
             32, 64, "crf"),
}
NUM_TAGS = 13  # MSRA NER's BMES tags


def step_flops(batch, seq, c, loss):
  """Matmul FLOPs of one training step (backward = 2 x forward)."""
  h, i, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
  tokens = batch * seq
  per_layer = tokens * (2 * 4 * h * h + 2 * 2 * h * i) + batch * 2 * 2 * seq * seq * h
  head = (tokens * 2 * h * NUM_TAGS if loss == "crf" else
          batch * 2 * h * (h + 2))
  return 3 * (layers * per_layer + head)


def matmul_flops_per_second(n=2048, repeats=10, dtype=tf.float32):
  a = tf.cast(tf.random.normal([n, n]), dtype)
  b = tf.cast(tf.random.normal([n, n]), dtype)

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


def inputs(batch, seq, vocab_size, loss):
  rng = np.random.default_rng(0)
  ids = rng.integers(1000, vocab_size - 100, size=(batch, seq)).astype(
      np.int32)
  mask = np.ones((batch, seq), np.int32)
  shape = (batch, seq) if loss == "crf" else (batch,)
  labels = rng.integers(0, NUM_TAGS if loss == "crf" else 2,
                        size=shape).astype(np.int32)
  return ids, mask, labels


def head_loss(sequence, pooled, labels, loss, dense, transitions=None):
  """The step's loss: softmax over the pooled output, or a CRF over the
  tokens (tensorflow_addons, as the seq_tag head)."""
  if loss == "cls":
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=dense(pooled)))
  import tensorflow_addons as tfa  # pylint: disable=g-import-not-at-top
  unary = dense(sequence)
  lengths = tf.fill([tf.shape(unary)[0]], tf.shape(unary)[1])
  log_likelihood, _ = tfa.text.crf_log_likelihood(unary, labels, lengths,
                                                  transitions)
  return -tf.reduce_mean(log_likelihood)


def build_ours(shape, use_xla=False, precision=None, fused=False):
  """A callable running one bert_mtl training step (graph + session);
  precision: --mixed_precision's value (None: float32); fused: the fused
  training ops (--fused_ops)."""
  config_dict, batch, seq, loss_kind = SHAPES[shape]
  ids, mask, labels = inputs(batch, seq, config_dict["vocab_size"], loss_kind)
  config = modeling.BertConfig(**config_dict)
  graph = tf.Graph()
  with graph.as_default():
    model = modeling.BertModel(config, True, tf.constant(ids),
                               tf.constant(mask), fused=fused)
    outputs = NUM_TAGS if loss_kind == "crf" else 2
    transitions = (tf1.get_variable("transitions", [NUM_TAGS, NUM_TAGS])
                   if loss_kind == "crf" else None)
    loss = head_loss(model.get_sequence_output(), model.get_pooled_output(),
                     tf.constant(labels), loss_kind,
                     lambda x: tf1.layers.dense(x, outputs), transitions)
    train_op = optimization.create_optimizer(loss, 1e-5, 1000, 100)
    init = tf1.global_variables_initializer()
  sess = tf1.Session(graph=graph, config=optimization.xla_session_config(
      use_xla, optimization.mixed_precision_session_config(precision)))
  sess.run(init)
  sess.run(train_op)  # warm-up (and XLA compilation)
  sess.run(train_op)
  return lambda: sess.run(train_op)


def build_hf(shape, policy="float32"):
  """A callable running one HF TFBertModel training step under the Keras
  dtype policy `policy`, or None."""
  try:
    from transformers import AdamWeightDecay, BertConfig, TFBertModel  # pylint: disable=g-import-not-at-top
    # transformers picks its Keras (tf_keras or Keras 2) and may leave
    # tf.keras unusable afterwards: use the one it uses.
    from transformers.modeling_tf_utils import keras  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  config_dict, batch, seq, loss_kind = SHAPES[shape]
  ids, mask, labels = inputs(batch, seq, config_dict["vocab_size"], loss_kind)
  config = BertConfig(hidden_act="gelu_new", **config_dict)
  keras.mixed_precision.set_global_policy(policy)
  bert = TFBertModel(config)
  # The head's logits in float32 (as Keras' mixed-precision guide has it).
  head = keras.layers.Dense(NUM_TAGS if loss_kind == "crf" else 2,
                            dtype="float32")
  keras.mixed_precision.set_global_policy("float32")
  transitions = tf.Variable(tf.zeros([NUM_TAGS, NUM_TAGS]))
  # HF's own port of BERT's optimizer, as its create_optimizer builds it.
  opt = AdamWeightDecay(learning_rate=1e-5, weight_decay_rate=0.01,
                        epsilon=1e-6, exclude_from_weight_decay=[
                            "LayerNorm", "layer_norm", "bias"])

  @tf.function
  def step(ids, mask, labels):
    with tf.GradientTape() as tape:
      out = bert(input_ids=ids, attention_mask=mask, training=True)
      loss = head_loss(tf.cast(out.last_hidden_state, tf.float32),
                       tf.cast(out.pooler_output, tf.float32), labels,
                       loss_kind, head, transitions)
    variables = bert.trainable_variables + head.trainable_variables + (
        [transitions] if loss_kind == "crf" else [])
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
  parser.add_argument("--shape", choices=sorted(SHAPES), default="base")
  parser.add_argument("--steps", type=int, default=8,
                      help="rounds; each times every variant once")
  parser.add_argument("--no_xla", action="store_true",
                      help="leave out the XLA variant")
  args = parser.parse_args()
  config_dict, batch, seq, loss_kind = SHAPES[args.shape]
  flops = step_flops(batch, seq, config_dict, loss_kind)
  variants = [("bert_mtl float32", build_ours(args.shape)),
              ("bert_mtl bfloat16", build_ours(args.shape,
                                               precision="bfloat16"))]
  if fused_ops.available():
    variants += [("bert_mtl float32 fused", build_ours(args.shape,
                                                       fused=True)),
                 ("bert_mtl bfloat16 fused", build_ours(
                     args.shape, precision="bfloat16", fused=True))]
  if not args.no_xla:
    variants.append(("bert_mtl float32 --use_xla",
                     build_ours(args.shape, True)))
  for policy in ("float32", "mixed_bfloat16"):
    hf_step = build_hf(args.shape, policy)
    if hf_step:
      variants.append(("HF TFBertModel " + policy, hf_step))
  peaks = {dtype: matmul_flops_per_second(dtype=dtype)
           for dtype in (tf.float32, tf.bfloat16)}
  times = interleaved_best([fn for _, fn in variants], args.steps)
  peaks = {dtype: max(peak, matmul_flops_per_second(dtype=dtype))
           for dtype, peak in peaks.items()}
  print("%s shape (%d layers, hidden %d), batch %d x seq %d, %s loss, %d "
        "threads" % (args.shape, config_dict["num_hidden_layers"],
                     config_dict["hidden_size"], batch, seq, loss_kind,
                     os.cpu_count()))
  for dtype, peak in peaks.items():
    print("dense %-8s tf.matmul 2048^3:        %8.1f GFLOP/s (baseline)" % (
        dtype.name, peak / 1e9))
  by_name = dict(zip((name for name, _ in variants), times))
  for name, seconds in by_name.items():
    peak = peaks[tf.bfloat16 if "bfloat16" in name else tf.float32]
    print("%-30s %7.4f s  %6.2f steps/s  %8.1f GFLOP/s  %5.1f%% of its "
          "matmul rate" % (name + ":", seconds, 1 / seconds,
                           flops / seconds / 1e9, 100 * flops / seconds / peak))
  ratio = lambda a, b: by_name[b] / by_name[a]
  ours = [n for n in ("bert_mtl bfloat16", "bert_mtl bfloat16 fused")
          if n in by_name]
  for name in ours + [n for n in ("bert_mtl float32 fused",)
                      if n in by_name]:
    print("%s is %.2fx bert_mtl float32" % (name, ratio(
        name, "bert_mtl float32")))
  if "bert_mtl float32 --use_xla" in by_name:
    print("XLA: %.2fx the float32 step rate without" % ratio(
        "bert_mtl float32 --use_xla", "bert_mtl float32"))
  if "HF TFBertModel float32" not in by_name:
    print("transformers not installed: HF comparison skipped")
    return
  print("bert_mtl float32 is %.2fx HF TFBertModel float32" % ratio(
      "bert_mtl float32", "HF TFBertModel float32"))
  for name in ours:
    print("%s is %.2fx HF TFBertModel mixed_bfloat16" % (name, ratio(
        name, "HF TFBertModel mixed_bfloat16")))


if __name__ == "__main__":
  main()
