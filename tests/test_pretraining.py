"""Masked-LM / next-sentence instances against the original tool's rules."""

import collections

import numpy as np

from bert_mtl.data import pretraining

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
