"""CRF Viterbi decoding: native vs vectorised numpy vs tfa.text.crf_decode.

One thread, same inputs, B=32, T=128, K=9 and K=30, lengths drawn in
[T/2, T].  Baseline: a numpy Viterbi vectorised over the batch (the loop over
time is the only Python loop).

    python benchmarks/crf.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from common import best_time, row
from bert_mtl import crf


def numpy_viterbi(potentials, transitions, lengths):
  """Batch Viterbi in numpy with tfa's length semantics."""
  batch, max_len, _ = potentials.shape
  lengths = np.maximum(lengths, 1)
  score = potentials[:, 0]
  backpointers = np.zeros(potentials.shape, np.int32)
  for t in range(1, max_len):
    candidates = score[:, :, None] + transitions[None]
    best_prev = candidates.argmax(axis=1)
    new_score = potentials[:, t] + candidates.max(axis=1)
    active = (t < lengths)[:, None]
    score = np.where(active, new_score, score)
    backpointers[:, t] = best_prev
  tags = np.zeros((batch, max_len), np.int32)
  last = score.argmax(axis=1)
  rows = np.arange(batch)
  for t in range(max_len - 1, -1, -1):
    at_end = t == lengths - 1
    current = np.where(at_end, last, 0)
    if t < max_len - 1:
      following = tags[:, t + 1]
      inside = t < lengths - 1
      current = np.where(inside, backpointers[rows, t + 1, following], current)
    tags[:, t] = current
  return tags, score.max(axis=1)


def main():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_addons as tfa  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  rng = np.random.default_rng(0)
  for num_tags in (9, 30):
    batch, max_len = 32, 128
    p = rng.normal(size=(batch, max_len, num_tags)).astype(np.float32)
    tr = rng.normal(size=(num_tags, num_tags)).astype(np.float32)
    lengths = rng.integers(max_len // 2, max_len + 1, size=batch).astype(
        np.int32)
    decode = tf.function(tfa.text.crf_decode)
    tp, ttr, tl = tf.constant(p), tf.constant(tr), tf.constant(lengths)
    want = decode(tp, ttr, tl)[0].numpy()
    got = crf.viterbi_decode(p, tr, lengths)[0]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(numpy_viterbi(p, tr, lengths)[0], want)

    t_np = best_time(lambda: numpy_viterbi(p, tr, lengths), repeats=20)
    t_tfa = best_time(lambda: decode(tp, ttr, tl)[0].numpy(), repeats=20)
    t_ours = best_time(lambda: crf.viterbi_decode(p, tr, lengths), repeats=200)
    print("\n== Viterbi B=%d T=%d K=%d (baseline: vectorised numpy)" %
          (batch, max_len, num_tags))
    print(row("numpy, vectorised over the batch", t_np, t_np))
    print(row("tfa.text.crf_decode in tf.function", t_tfa, t_np))
    print(row("bert_mtl native viterbi_decode", t_ours, t_np))
    print("ratios: native vs numpy %.1fx, native vs tfa %.1fx" %
          (t_np / t_ours, t_tfa / t_ours))


if __name__ == "__main__":
  main()
