"""Masked-LM + next-sentence instances, as google-research/bert's
create_pretraining_data.py builds them.

The same algorithm, in the same order of random draws from one
random.Random(seed): documents shuffled once, `dupe_factor` passes, short
target lengths with `short_seq_prob`, segment A/B split with 50% random
next, random front/back pair truncation, 80/10/10 masking, instances
shuffled once at the end.  Records use the original feature names and
static padding, so files written by the original tool are read the same way.

Whole-word masking groups `##` continuation pieces with the piece before
them, as the original does (so it changes nothing for Chinese characters).

This module is the readable reference and the token-string API.  The cached
records of a `pretrain` problem are built by the extension from token ids
(csrc/pretraining.cc, types/pretrain.py), with the same draws from a
re-implementation of CPython's Mersenne Twister: tests compare both,
instance by instance and byte by byte.
"""

import collections
import random

import numpy as np

Instance = collections.namedtuple("Instance", [
    "tokens", "segment_ids", "is_random_next", "masked_lm_positions",
    "masked_lm_labels"])

FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids",
                 "masked_lm_positions", "masked_lm_ids", "masked_lm_weights",
                 "next_sentence_labels")


def create_instances(documents, vocab_words, max_seq_length=128,
                     dupe_factor=10, short_seq_prob=0.1, masked_lm_prob=0.15,
                     max_predictions_per_seq=20, do_whole_word_mask=False,
                     seed=12345):
  """Pretraining instances from tokenized documents.

  Args:
    documents: list of documents; a document is a list of sentences, a
      sentence a list of WordPiece tokens (empty ones are dropped).
    vocab_words: the vocabulary as a list (random replacement draws from it,
      [PAD] and [unused*] included, as in the original).

  Returns:
    list of Instance.
  """
  rng = random.Random(seed)
  documents = [[s for s in d if s] for d in documents]
  documents = [d for d in documents if d]
  rng.shuffle(documents)
  instances = []
  for _ in range(dupe_factor):
    for index in range(len(documents)):
      instances.extend(_document_instances(
          documents, index, max_seq_length, short_seq_prob, masked_lm_prob,
          max_predictions_per_seq, vocab_words, do_whole_word_mask, rng))
  rng.shuffle(instances)
  return instances


def _document_instances(documents, index, max_seq_length, short_seq_prob,
                        masked_lm_prob, max_predictions_per_seq, vocab_words,
                        do_whole_word_mask, rng):
  document = documents[index]
  max_num_tokens = max_seq_length - 3
  target_length = max_num_tokens
  if rng.random() < short_seq_prob:
    target_length = rng.randint(2, max_num_tokens)
  instances, chunk, chunk_length, i = [], [], 0, 0
  while i < len(document):
    chunk.append(document[i])
    chunk_length += len(document[i])
    if i == len(document) - 1 or chunk_length >= target_length:
      if chunk:
        a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
        tokens_a = [t for s in chunk[:a_end] for t in s]
        tokens_b = []
        is_random_next = len(chunk) == 1 or rng.random() < 0.5
        if is_random_next:
          target_b_length = target_length - len(tokens_a)
          random_index = index
          for _ in range(10):
            random_index = rng.randint(0, len(documents) - 1)
            if random_index != index:
              break
          random_document = documents[random_index]
          start = rng.randint(0, len(random_document) - 1)
          for sentence in random_document[start:]:
            tokens_b.extend(sentence)
            if len(tokens_b) >= target_b_length:
              break
          # The unused sentences of the chunk go back to the document.
          i -= len(chunk) - a_end
        else:
          tokens_b = [t for s in chunk[a_end:] for t in s]
        _truncate_pair(tokens_a, tokens_b, max_num_tokens, rng)
        tokens = ["[CLS]"] + tokens_a + ["[SEP]"] + tokens_b + ["[SEP]"]
        segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
        tokens, positions, labels = _mask_tokens(
            tokens, masked_lm_prob, max_predictions_per_seq, vocab_words,
            do_whole_word_mask, rng)
        instances.append(Instance(tokens, segment_ids, is_random_next,
                                  positions, labels))
      chunk, chunk_length = [], 0
    i += 1
  return instances


def _truncate_pair(tokens_a, tokens_b, max_num_tokens, rng):
  while len(tokens_a) + len(tokens_b) > max_num_tokens:
    longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
    if rng.random() < 0.5:
      del longer[0]
    else:
      longer.pop()


def _mask_tokens(tokens, masked_lm_prob, max_predictions_per_seq,
                 vocab_words, do_whole_word_mask, rng):
  """(masked tokens, sorted positions, original tokens at them)."""
  groups = []
  for i, token in enumerate(tokens):
    if token in ("[CLS]", "[SEP]"):
      continue
    if do_whole_word_mask and groups and token.startswith("##"):
      groups[-1].append(i)
    else:
      groups.append([i])
  rng.shuffle(groups)
  output = list(tokens)
  num_to_predict = min(max_predictions_per_seq,
                       max(1, int(round(len(tokens) * masked_lm_prob))))
  masked, covered = [], set()
  for group in groups:
    if len(masked) >= num_to_predict:
      break
    if len(masked) + len(group) > num_to_predict:
      continue
    if any(i in covered for i in group):
      continue
    for i in group:
      covered.add(i)
      if rng.random() < 0.8:
        replacement = "[MASK]"
      elif rng.random() < 0.5:
        replacement = tokens[i]
      else:
        replacement = vocab_words[rng.randint(0, len(vocab_words) - 1)]
      output[i] = replacement
      masked.append((i, tokens[i]))
  masked.sort()
  return output, [i for i, _ in masked], [t for _, t in masked]


def instance_features(instance, vocab, max_seq_length,
                      max_predictions_per_seq):
  """The original TFRecord features of one instance, statically padded.

  Returns:
    dict feature name -> numpy array (int64, except masked_lm_weights
    float32), lengths max_seq_length / max_predictions_per_seq / 1.
  """
  def padded(values, length, dtype=np.int64):
    out = np.zeros(length, dtype)
    out[:len(values)] = values
    return out
  ids = [vocab[t] for t in instance.tokens]
  num_masked = len(instance.masked_lm_positions)
  return {
      "input_ids": padded(ids, max_seq_length),
      "input_mask": padded([1] * len(ids), max_seq_length),
      "segment_ids": padded(instance.segment_ids, max_seq_length),
      "masked_lm_positions": padded(instance.masked_lm_positions,
                                    max_predictions_per_seq),
      "masked_lm_ids": padded([vocab[t] for t in instance.masked_lm_labels],
                              max_predictions_per_seq),
      "masked_lm_weights": padded([1.0] * num_masked,
                                  max_predictions_per_seq, np.float32),
      "next_sentence_labels": np.asarray([int(instance.is_random_next)],
                                         np.int64),
  }
