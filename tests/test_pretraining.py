"""Masked-LM / next-sentence instances against the original tool's rules,
and the extension's instances against this readable reference."""

import collections
import random

import numpy as np
import pytest

from bert_mtl import _native as native
from bert_mtl.testing import reference_pretraining as pretraining

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
    "w%d" % i for i in range(200)]


def _documents(seed=0, num_documents=30):
  """Documents whose tokens are unique (d<doc>s<sentence>t<token>), so every
  instance can be traced back to where its segments came from."""
  rng = np.random.RandomState(seed)
  return [[["d%ds%dt%d" % (d, s, t) for t in range(rng.randint(1, 15))]
           for s in range(rng.randint(1, 12))] for d in range(num_documents)]


def _unmask(instance):
  tokens = list(instance.tokens)
  for position, original in zip(instance.masked_lm_positions,
                                instance.masked_lm_labels):
    tokens[position] = original
  return tokens


def _is_contiguous(tokens, flat):
  if not tokens:
    return False
  start = flat.index(tokens[0])
  return flat[start:start + len(tokens)] == tokens


def test_instances_follow_the_original_construction():
  documents = _documents()
  flat = {doc[0][0][:doc[0][0].index("s")]: [t for s in doc for t in s]
          for doc in documents}
  instances = pretraining.create_instances(
      documents, VOCAB, max_seq_length=32, dupe_factor=3, seed=7)
  assert instances == pretraining.create_instances(
      documents, VOCAB, max_seq_length=32, dupe_factor=3, seed=7)
  assert instances != pretraining.create_instances(
      documents, VOCAB, max_seq_length=32, dupe_factor=3, seed=8)
  replaced = collections.Counter()
  random_next = 0
  for instance in instances:
    tokens = _unmask(instance)
    assert len(tokens) <= 32 and tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    sep = tokens.index("[SEP]")
    a, b = tokens[1:sep], tokens[sep + 1:-1]
    assert a and b
    assert instance.segment_ids == [0] * (sep + 1) + [1] * (len(b) + 1)
    doc_a = a[0][:a[0].index("s")]
    doc_b = b[0][:b[0].index("s")]
    assert _is_contiguous(a, flat[doc_a]) and _is_contiguous(b, flat[doc_b])
    if instance.is_random_next:
      random_next += 1
    else:  # the actual next: B continues A in the same document
      assert doc_a == doc_b
      whole = flat[doc_a]
      assert whole.index(b[0]) >= whole.index(a[-1]) + 1
    num = min(20, max(1, int(round(len(tokens) * 0.15))))
    assert len(instance.masked_lm_positions) == num
    assert instance.masked_lm_positions == sorted(
        instance.masked_lm_positions)
    for position, original in zip(instance.masked_lm_positions,
                                  instance.masked_lm_labels):
      assert original not in ("[CLS]", "[SEP]")
      shown = instance.tokens[position]
      replaced["mask" if shown == "[MASK]" else
               "same" if shown == original else "random"] += 1
    unmasked = set(range(len(tokens))) - set(instance.masked_lm_positions)
    assert all(instance.tokens[i] == tokens[i] for i in unmasked)
  total = sum(replaced.values())
  assert abs(replaced["mask"] / total - 0.8) < 0.03
  assert abs(replaced["same"] / total - 0.1) < 0.03
  assert abs(replaced["random"] / total - 0.1) < 0.03
  # Random next is drawn with p 0.5, plus every single-sentence chunk.
  assert 0.45 < random_next / len(instances) < 0.75


def test_whole_word_masking_masks_whole_words():
  documents = [[["un", "##believ", "##able", "news", "to", "##day"] * 3,
                ["a", "##b"] * 5] for _ in range(20)]
  instances = pretraining.create_instances(
      documents, VOCAB, max_seq_length=40, dupe_factor=5,
      do_whole_word_mask=True, max_predictions_per_seq=40, seed=1)
  partial = 0
  for instance in instances:
    tokens = _unmask(instance)
    masked = set(instance.masked_lm_positions)
    # Words: a piece and the ## pieces after it ([CLS]/[SEP] skipped, so a
    # ## piece left at the front of B by truncation joins A's last word, as
    # in the original).
    words, candidates = [], [i for i, t in enumerate(tokens)
                             if t not in ("[CLS]", "[SEP]")]
    for i in candidates:
      if words and tokens[i].startswith("##"):
        words[-1].add(i)
      else:
        words.append({i})
    for word in words:
      assert word <= masked or not word & masked
      partial += len(word) > 1 and word <= masked
  assert partial > 0


def test_features_use_the_original_layout():
  documents = _documents(1, 5)
  vocab = {t: i for i, t in enumerate(
      VOCAB + sorted({t for d in documents for s in d for t in s}))}
  words = sorted(vocab, key=vocab.get)
  instance = pretraining.create_instances(documents, words, 24, 1, seed=3)[0]
  feats = pretraining.instance_features(instance, vocab, 24, 5)
  assert list(feats) == list(pretraining.FEATURE_NAMES)
  n = len(instance.tokens)
  assert feats["input_ids"][:n].tolist() == [vocab[t] for t in instance.tokens]
  assert not feats["input_ids"][n:].any()
  assert feats["input_mask"].tolist() == [1] * n + [0] * (24 - n)
  assert feats["masked_lm_weights"].dtype == np.float32
  assert feats["next_sentence_labels"].tolist() == [
      int(instance.is_random_next)]


def _native_instances(documents, vocab_words, **settings):
  """The extension's instances of token-string documents (ids of
  vocab_words, which must hold every token)."""
  vocab = {w: i for i, w in enumerate(vocab_words)}
  sentences = [s for d in documents for s in d]
  instances = native.PretrainingInstances(
      np.asarray([vocab[t] for s in sentences for t in s], np.int32),
      np.cumsum([0] + [len(s) for s in sentences]),
      np.cumsum([0] + [len(d) for d in documents]),
      np.asarray([w.startswith("##") for w in vocab_words], np.uint8),
      vocab["[CLS]"], vocab["[SEP]"], vocab["[MASK]"], **settings)
  return instances, vocab


@pytest.mark.parametrize("settings", [
    dict(max_seq_length=32, dupe_factor=3, short_seq_prob=0.1,
         masked_lm_prob=0.15, max_predictions_per_seq=20,
         do_whole_word_mask=False, seed=7),
    dict(max_seq_length=12, dupe_factor=2, short_seq_prob=0.5,
         masked_lm_prob=0.3, max_predictions_per_seq=3,
         do_whole_word_mask=True, seed=0),
    dict(max_seq_length=128, dupe_factor=1, short_seq_prob=0.0,
         masked_lm_prob=0.15, max_predictions_per_seq=20,
         do_whole_word_mask=True, seed=-(2 ** 70 + 12345)),
])
def test_native_instances_and_records_equal_the_reference(settings):
  documents = _documents(3, 25)
  rng = random.Random(1)
  pieces = ["##p%d" % i for i in range(5)]
  for document in documents:  # continuation pieces, empty sentences
    for sentence in document:
      for i in range(len(sentence)):
        if rng.random() < 0.3:
          sentence[i] = rng.choice(pieces)
    document.insert(rng.randint(0, len(document)), [])
  documents.insert(4, [])
  words = VOCAB + pieces + sorted(
      {t for d in documents for s in d for t in s} - set(pieces))
  reference = pretraining.create_instances(documents, words, **settings)
  instances, vocab = _native_instances(documents, words, **settings)
  assert len(instances) == len(reference) > 20
  for i, expected in enumerate(reference):
    tokens, segment_ids, is_random_next, positions, labels = (
        instances.instance(i))
    assert tokens == [vocab[t] for t in expected.tokens]
    assert segment_ids == expected.segment_ids
    assert is_random_next == expected.is_random_next
    assert positions == expected.masked_lm_positions
    assert labels == [vocab[t] for t in expected.masked_lm_labels]
  records = instances.records(0, len(instances))
  seq, predictions = settings["max_seq_length"], settings[
      "max_predictions_per_seq"]
  assert records == [native.serialize_example(pretraining.instance_features(
      e, vocab, seq, predictions)) for e in reference]
  assert instances.records(3, 5) == records[3:5]


def test_native_instances_of_one_document_and_of_nothing():
  settings = dict(max_seq_length=16, dupe_factor=4, short_seq_prob=0.1,
                  masked_lm_prob=0.15, max_predictions_per_seq=5,
                  do_whole_word_mask=False, seed=3)
  one = _documents(5, 1)
  words = VOCAB + sorted({t for d in one for s in d for t in s})
  reference = pretraining.create_instances(one, words, **settings)
  instances, vocab = _native_instances(one, words, **settings)
  assert [instances.instance(i)[0] for i in range(len(instances))] == [
      [vocab[t] for t in e.tokens] for e in reference]
  empty, _ = _native_instances([[[]], []], VOCAB, **settings)
  assert len(empty) == 0 == len(pretraining.create_instances(
      [[[]], []], VOCAB, **settings))


def test_native_instances_reject_bad_arguments():
  settings = dict(cls_id=2, sep_id=3, mask_id=4, max_seq_length=16,
                  dupe_factor=1, short_seq_prob=0.1, masked_lm_prob=0.15,
                  max_predictions_per_seq=5, do_whole_word_mask=False, seed=1)
  continuation = np.zeros(10, np.uint8)
  ids = np.asarray([5, 6, 7], np.int32)
  with pytest.raises(ValueError, match="splits do not match"):
    native.PretrainingInstances(ids, [0, 2], [0, 1], continuation, **settings)
  with pytest.raises(ValueError, match="splits do not match"):
    native.PretrainingInstances(ids, [0, 3], [0, 2], continuation, **settings)
  with pytest.raises(ValueError, match="token id 12 at 1 is outside"):
    native.PretrainingInstances([5, 12, 7], [0, 3], [0, 1], continuation,
                                **settings)
  with pytest.raises(ValueError, match="special id 10 is outside"):
    native.PretrainingInstances(ids, [0, 3], [0, 1], continuation,
                                **dict(settings, mask_id=10))
  with pytest.raises(ValueError, match="max_seq_length must be >= 5"):
    native.PretrainingInstances(ids, [0, 3], [0, 1], continuation,
                                **dict(settings, max_seq_length=4))
  instances = native.PretrainingInstances(ids, [0, 3], [0, 1], continuation,
                                          **settings)
  with pytest.raises(IndexError):
    instances.instance(len(instances))
  with pytest.raises(IndexError):
    instances.records(0, len(instances) + 1)
