"""Examples -> model features: token ids, label alignment and windows.

Sequence-labelling inputs are lists of units (characters or words).  Units
are joined with spaces before WordPiece, so every unit is tokenized on its
own and its first sub-token carries its label; the other sub-tokens,
[CLS], [SEP] and padding carry IGNORE and are excluded from the loss.  A
unit that yields no token (e.g. a lone U+FFFD, which BERT deletes) has no
position; predictions give it the scheme's outside label.

Inputs longer than max_seq_length are cut into overlapping windows (every
unit's first token lies in at least one window), and predictions are merged
back by taking each unit's label from the window where it has the most
context on both sides, as the original run_squad.py does for documents.
"""

import collections

import numpy as np

from bert_mtl import tokenization

IGNORE = -1

UnitAlignment = collections.namedtuple(
    "UnitAlignment", ["ids", "first_token", "text"])


def align_units(tokenizer, units_list, num_threads=1):
  """WordPiece ids of unit lists and each unit's first-token position.

  Args:
    tokenizer: a FullTokenizer (or anything with encode_ragged).
    units_list: list of lists of unit strings.

  Returns:
    list of UnitAlignment(ids int32 [n_tokens], first_token int32 [n_units]
    (-1: the unit has no token), text (the joined string)).
  """
  texts, starts = [], []
  for units in units_list:
    offsets, position = [], 0
    for unit in units:
      offsets.append(position)
      position += len(unit) + 1
    texts.append(" ".join(units))
    starts.append(np.asarray(offsets, np.int64))
  ragged = tokenizer.encode_ragged(texts, num_threads=num_threads)
  splits, ids, spans = ragged["row_splits"], ragged["ids"], ragged["spans"]
  out = []
  for i, text in enumerate(texts):
    lo, hi = splits[i], splits[i + 1]
    token_starts = spans[lo:hi, 0]
    first = np.full(len(starts[i]), -1, np.int32)
    # The first token whose span starts inside unit k is its first token.
    unit_of_token = np.searchsorted(starts[i], token_starts, side="right") - 1
    seen = set()
    for position, unit in enumerate(unit_of_token):
      if unit not in seen:
        seen.add(unit)
        first[unit] = position
    out.append(UnitAlignment(ids[lo:hi], first, text))
  return out


Window = collections.namedtuple("Window", ["start", "end"])


def windows(num_tokens, max_tokens, stride):
  """Token ranges [start, end) covering num_tokens with at most max_tokens
  each, consecutive windows starting `stride` apart."""
  if max_tokens < 1 or stride < 1 or stride > max_tokens:
    raise ValueError("need 1 <= stride <= max_tokens, got stride %d, "
                     "max_tokens %d" % (stride, max_tokens))
  if num_tokens <= max_tokens:
    return [Window(0, num_tokens)]
  out, start = [], 0
  while True:
    end = min(num_tokens, start + max_tokens)
    out.append(Window(start, end))
    if end == num_tokens:
      return out
    start += stride


def best_window(position, spans):
  """Index of the window giving token `position` the most context (the
  smaller of its left and right context, ties to the earlier window)."""
  best, best_score = None, None
  for index, (start, end) in enumerate(spans):
    if start <= position < end:
      score = min(position - start, end - 1 - position)
      if best_score is None or score > best_score:
        best, best_score = index, score
  return best


def seq_tag_windows(alignment, label_ids, max_seq_length, stride=None):
  """Features of one labelled unit sequence, one per window.

  Args:
    alignment: UnitAlignment of the example.
    label_ids: int label id per unit (or None for prediction: the units'
      first tokens then get label 0, the rest IGNORE).
    max_seq_length: including [CLS] and [SEP].
    stride: tokens between window starts (default half a window).

  Returns:
    list of (Window, token label ids with IGNORE, int32 [window length]).
  """
  max_tokens = max_seq_length - 2
  spans = windows(len(alignment.ids), max_tokens,
                  stride or max(1, max_tokens // 2))
  token_labels = np.full(len(alignment.ids), IGNORE, np.int32)
  for unit, position in enumerate(alignment.first_token):
    if position >= 0:
      # Unlabelled (predict) units still mark where a prediction is read.
      token_labels[position] = 0 if label_ids is None else label_ids[unit]
  return [(w, token_labels[w.start:w.end]) for w in spans]


def merge_window_predictions(alignment, spans, window_predictions,
                             fallback):
  """Per-unit predictions from per-window token predictions.

  Args:
    alignment: UnitAlignment.
    spans: the Windows of the example.
    window_predictions: per window, predicted ids of its tokens.
    fallback: the id for units that have no token.

  Returns:
    int list, exactly one prediction per unit.
  """
  out = []
  for position in alignment.first_token:
    if position < 0:
      out.append(fallback)
      continue
    w = best_window(position, spans)
    out.append(int(window_predictions[w][position - spans[w].start]))
  return out


def pack(ids_a, max_seq_length, cls_id, sep_id, ids_b=None):
  """[CLS] a [SEP] (b [SEP]) as (input_ids, segment_ids), unpadded, with the
  original scripts' truncation."""
  ids_b = [] if ids_b is None else list(ids_b)
  len_a, len_b = tokenization.truncate_pair_lengths(len(ids_a), len(ids_b),
                                                    max_seq_length)
  input_ids = [cls_id] + list(ids_a[:len_a]) + [sep_id]
  segment_ids = [0] * len(input_ids)
  if len_b:
    input_ids += ids_b[:len_b] + [sep_id]
    segment_ids += [1] * (len_b + 1)
  return (np.asarray(input_ids, np.int32), np.asarray(segment_ids, np.int32))
