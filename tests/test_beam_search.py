"""Beam search against exhaustive search and a plain-Python beam search."""

import itertools
import math

import numpy as np
import pytest
import tensorflow as tf

from bert_mtl.heads import beam_search

V, EOS, BOS = 4, 3, 1


def _log_softmax(x):
  x = x - x.max()
  return x - math.log(np.exp(x).sum())


def _penalty(length, alpha):
  return ((5.0 + length) / 6.0) ** alpha


def _score(table, row, sequence, alpha):
  """Length-normalised log-probability of a sequence (EOS included)."""
  total, prev = 0.0, BOS
  for step, token in enumerate(sequence):
    total += _log_softmax(table[row, step, prev])[token]
    prev = token
  return total / _penalty(len(sequence), alpha)


def exhaustive(table, row, max_length, alpha):
  best = None
  for length in range(1, max_length + 1):
    for seq in itertools.product(range(V), repeat=length):
      ended = EOS in seq
      if ended and seq.index(EOS) != length - 1:
        continue  # tokens after EOS
      if not ended and length < max_length:
        continue  # an unfinished hypothesis only counts at max_length
      score = _score(table, row, seq, alpha)
      if best is None or score > best[0]:
        best = (score, seq)
  return best


def _run(table, beam_size, max_length, alpha):
  table_t = tf.constant(table, tf.float32)
  batch = table.shape[0]

  @tf.function
  def run():
    def step(ids, cache, position):
      logits = tf.gather_nd(table_t, tf.stack(
          [cache["row"][:, 0], tf.fill(tf.shape(ids), position), ids], 1))
      return logits, cache
    return beam_search.beam_search(
        step, {"row": tf.range(batch)[:, None]}, batch, V, beam_size,
        max_length, BOS, EOS, alpha)
  ids, scores = run()
  return ids.numpy(), scores.numpy()


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_full_beam_equals_exhaustive_search(alpha):
  rng = np.random.RandomState(int(alpha * 10))
  max_length = 3
  table = rng.normal(0, 2, size=(5, max_length, V, V))
  ids, scores = _run(table, V ** max_length, max_length, alpha)
  for row in range(5):
    best_score, best = exhaustive(table, row, max_length, alpha)
    got = [t for t in ids[row]]
    assert got[:len(best)] == list(best), (row, got, best)
    assert not any(got[len(best):])
    assert scores[row] == pytest.approx(best_score, abs=1e-4)


def reference_beam(table, row, beam_size, max_length, alpha):
  """The documented algorithm, in plain Python."""
  beams = [(0.0, [], False)]
  for step in range(max_length):
    candidates = []
    for score, seq, done in beams:
      if done:
        candidates.append((score, seq + [0], True))
        continue
      prev = seq[-1] if seq else BOS
      log_probs = _log_softmax(table[row, step, prev])
      for token in range(V):
        candidates.append((score + log_probs[token], seq + [token],
                           token == EOS))
    candidates.sort(key=lambda c: -c[0])
    beams = candidates[:beam_size]
    if all(done for _, _, done in beams):
      break

  def length(seq):
    return seq.index(EOS) + 1 if EOS in seq else max_length
  return max(beams, key=lambda b: b[0] / _penalty(length(b[1]), alpha))[1]


def test_small_beams_equal_the_reference_at_any_batch_size():
  rng = np.random.RandomState(3)
  table = rng.normal(0, 1.5, size=(7, 6, V, V))
  for beam_size in (1, 2, 3):
    ids, _ = _run(table, beam_size, 6, 0.6)
    for row in range(7):
      want = reference_beam(table, row, beam_size, 6, 0.6)
      want = want + [0] * (6 - len(want))
      assert ids[row].tolist() == want, (beam_size, row)
    # The same rows alone (batch 1) give the same answers.
    single, _ = _run(table[2:3], beam_size, 6, 0.6)
    assert single[0].tolist() == ids[2].tolist()


def test_blocked_top_k_equals_top_k_with_ties():
  """The decoding step's blocked top-k (large vocabularies) gives
  tf.math.top_k's values and indices, lower index first on ties, for any
  vocabulary size (padded blocks included)."""
  rng = np.random.RandomState(5)
  for vocab_size in (256, 1000, 21128):
    for k in (1, 4, 7):
      logits = rng.normal(size=(9, vocab_size)).astype(np.float32)
      # Ties: repeated maxima within and across blocks, and a row of one
      # value.
      logits[1, [3, 40, 41, vocab_size - 1]] = 9.0
      logits[2, :] = 0.5
      logits[3, ::97] = logits[3].max()
      values, indices, row_max = beam_search.top_k_with_max(
          tf.constant(logits), k)
      want_values, want_indices = tf.math.top_k(logits, k=k)
      np.testing.assert_array_equal(indices.numpy(), want_indices.numpy())
      np.testing.assert_array_equal(values.numpy(), want_values.numpy())
      np.testing.assert_array_equal(row_max.numpy()[:, 0],
                                    logits.max(-1))
