"""Native CRF Viterbi against a numpy reference, brute force and tfa."""

import itertools

import numpy as np
import pytest

from bert_mtl import _native, crf


def numpy_viterbi(potentials, transitions, length):
  """Textbook Viterbi for one sequence; ties go to the lowest index."""
  length = max(1, length)
  score = potentials[0].astype(np.float32)
  backpointers = []
  for t in range(1, length):
    candidates = score[:, None] + transitions  # [previous, current]
    backpointers.append(np.argmax(candidates, axis=0))
    score = (potentials[t] + np.max(candidates, axis=0)).astype(np.float32)
  tags = [int(np.argmax(score))]
  for bp in reversed(backpointers):
    tags.append(int(bp[tags[-1]]))
  return tags[::-1], np.float32(np.max(score))


def brute_force(potentials, transitions, length, allowed=None, start=None,
                end=None):
  """Best path by enumerating every allowed path."""
  k = potentials.shape[1]
  best, best_path = -np.inf, None
  for path in itertools.product(range(k), repeat=length):
    if start is not None and not start[path[0]]:
      continue
    if end is not None and not end[path[-1]]:
      continue
    if allowed is not None and not all(
        allowed[a, b] for a, b in zip(path, path[1:])):
      continue
    s = sum(potentials[t, path[t]] for t in range(length))
    s += sum(transitions[a, b] for a, b in zip(path, path[1:]))
    if s > best + 1e-6:
      best, best_path = s, path
  return list(best_path), best


def random_case(rng, batch, max_len, num_tags, ties):
  if ties:  # small integers make equal scores common
    potentials = rng.integers(-2, 3, size=(batch, max_len, num_tags))
    transitions = rng.integers(-2, 3, size=(num_tags, num_tags))
  else:
    potentials = rng.normal(size=(batch, max_len, num_tags))
    transitions = rng.normal(size=(num_tags, num_tags))
  lengths = rng.integers(0, max_len + 1, size=batch)
  lengths[0] = max_len
  return (potentials.astype(np.float32), transitions.astype(np.float32),
          lengths.astype(np.int32))


@pytest.mark.parametrize("ties", [False, True])
def test_matches_numpy_reference_on_many_shapes(ties):
  rng = np.random.default_rng(7 + ties)
  for _ in range(300):
    batch, max_len, k = (int(rng.integers(1, 6)), int(rng.integers(1, 20)),
                         int(rng.integers(1, 12)))
    p, tr, lengths = random_case(rng, batch, max_len, k, ties)
    tags, scores = crf.viterbi_decode(p, tr, lengths)
    assert tags.shape == (batch, max_len) and tags.dtype == np.int32
    for b in range(batch):
      want_tags, want_score = numpy_viterbi(p[b], tr, lengths[b])
      n = len(want_tags)
      assert tags[b, :n].tolist() == want_tags
      assert (tags[b, n:] == 0).all()
      assert scores[b] == want_score


def test_matches_tfa_crf_decode():
  tf = pytest.importorskip("tensorflow")
  tfa = pytest.importorskip("tensorflow_addons")
  rng = np.random.default_rng(3)
  shapes = [(1, 1, 1), (3, 1, 4), (4, 2, 1), (8, 7, 9), (5, 30, 30),
            (16, 64, 5), (2, 128, 9), (3, 20, 61)]
  for ties in (False, True):
    for batch, max_len, k in shapes:
      p, tr, lengths = random_case(rng, batch, max_len, k, ties)
      want_tags, want_scores = tfa.text.crf_decode(
          tf.constant(p), tf.constant(tr), tf.constant(lengths))
      tags, scores = crf.viterbi_decode(p, tr, lengths)
      np.testing.assert_array_equal(tags, want_tags.numpy())
      np.testing.assert_array_equal(scores, want_scores.numpy())


def test_lengths_zero_and_one_and_single_tag():
  p = np.array([[[1.0, 3.0], [5.0, 0.0]], [[2.0, 1.0], [0.0, 9.0]]],
               np.float32)
  tr = np.zeros((2, 2), np.float32)
  tags, scores = crf.viterbi_decode(p, tr, [0, 1])
  assert tags.tolist() == [[1, 0], [0, 0]]
  assert scores.tolist() == [3.0, 2.0]
  tags, scores = crf.viterbi_decode(np.ones((2, 3, 1), np.float32),
                                    np.full((1, 1), 0.5, np.float32), [3, 2])
  assert tags.tolist() == [[0, 0, 0], [0, 0, 0]]
  assert scores.tolist() == [4.0, 2.5]
  tags, scores = crf.viterbi_decode(np.zeros((0, 4, 3), np.float32),
                                    np.zeros((3, 3), np.float32),
                                    np.zeros(0, np.int32))
  assert tags.shape == (0, 4) and scores.shape == (0,)


def test_constraints_match_brute_force():
  rng = np.random.default_rng(11)
  labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
  allowed, start, end = crf.scheme_constraints(labels, "BIO")
  for _ in range(60):
    length = int(rng.integers(1, 6))
    p = rng.normal(size=(1, length, 5)).astype(np.float32) * 3
    tr = rng.normal(size=(5, 5)).astype(np.float32) * 3
    tags, scores = crf.viterbi_decode(p, tr, [length], allowed, start, end)
    want, want_score = brute_force(p[0], tr, length, allowed, start, end)
    assert tags[0].tolist() == want
    assert scores[0] == pytest.approx(want_score, rel=1e-5)


def test_bmes_constraints_produce_valid_segmentations():
  allowed, start, end = crf.scheme_constraints(list("BMES"), "BMES")
  rng = np.random.default_rng(5)
  p = rng.normal(size=(64, 12, 4)).astype(np.float32) * 5
  lengths = rng.integers(1, 13, size=64)
  tags, _ = crf.viterbi_decode(p, np.zeros((4, 4), np.float32), lengths,
                               allowed, start, end)
  for row, n in zip(tags, lengths):
    text = "".join("BMES"[t] for t in row[:n])
    assert text[0] in "BS" and text[-1] in "ES"
    for a, b in zip(text, text[1:]):
      assert (b in "ME") == (a in "BM")


def test_scheme_constraints_rules():
  allowed, start, end = crf.scheme_constraints(
      ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], "BIO")
  assert not allowed[0, 2] and allowed[1, 2] and allowed[2, 2]
  assert not allowed[1, 4] and allowed[4, 1]
  assert start.tolist() == [True, True, False, True, False]
  assert end.all()
  with pytest.raises(ValueError, match="does not belong"):
    crf.scheme_constraints(["O", "X-PER"], "BIO")
  with pytest.raises(ValueError, match="unknown tagging scheme"):
    crf.scheme_constraints(["O"], "IOB9")


def test_bad_shapes_give_clear_errors():
  p = np.zeros((2, 3, 4), np.float32)
  tr = np.zeros((4, 4), np.float32)
  with pytest.raises(ValueError, match=r"potentials must be \[batch"):
    _native.viterbi_decode(np.zeros((3, 4), np.float32), tr, [1, 1])
  with pytest.raises(ValueError, match=r"transitions must be \[num_tags"):
    _native.viterbi_decode(p, np.zeros((3, 4), np.float32), [1, 1])
  with pytest.raises(ValueError, match=r"lengths must be \[batch\] = \[2\]"):
    _native.viterbi_decode(p, tr, [1, 1, 1])
  with pytest.raises(ValueError, match=r"lengths\[1\] = 4 is outside \[0, 3\]"):
    _native.viterbi_decode(p, tr, [1, 4])
  with pytest.raises(ValueError, match=r"lengths\[0\] = -1"):
    _native.viterbi_decode(p, tr, [-1, 1])
  with pytest.raises(ValueError, match="start_scores must be"):
    _native.viterbi_decode(p, tr, [1, 1], np.zeros(3, np.float32))
  with pytest.raises(ValueError, match="allowed_transitions has shape"):
    crf.viterbi_decode(p, tr, [1, 1], np.ones((3, 3), bool))
  # Non-contiguous, float64 and int64 inputs are converted, not misread.
  p64 = np.random.default_rng(0).normal(size=(2, 3, 8))[:, :, ::2]
  tags, _ = crf.viterbi_decode(p64, tr.astype(np.float64),
                               np.array([3, 2], np.int64))
  want = crf.viterbi_decode(np.ascontiguousarray(p64, np.float32), tr, [3, 2])
  np.testing.assert_array_equal(tags, want[0])
