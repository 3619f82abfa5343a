"""Units, tokens, windows and the positions a head tags: the one home of
these rules for training records, evaluation, the Predictor and the served
graph.

Sequence-labelling inputs are lists of units (characters or words).  Units
are joined with spaces before WordPiece, so every unit is tokenized on its
own and its first sub-token carries its label; the other sub-tokens,
[CLS], [SEP] and padding carry IGNORE and are excluded from the loss.  A
unit that yields no token (e.g. a lone U+FFFD, which BERT deletes) has no
position; it gets fallback_label.  Raw text is cut into units the way the
problem's training data was (text_units, with the unit kind recorded in the
export).

Inputs longer than max_seq_length are cut into overlapping windows
(window_stride apart; every unit's first token lies in at least one
window), and predictions are merged back by taking each unit's label (or
scores) from the window where it has the most context on both sides, as the
original run_squad.py does for documents.
"""

import collections
import itertools
import re

import numpy as np

from bert_mtl.base import IGNORE

# Unit kinds: "char" (every non-space character is a unit, as the Chinese
# corpora) or "word" (whitespace-separated words, as CoNLL files).
UNIT_KINDS = ("char", "word")
_UNIT_PATTERNS = {"char": re.compile(r"\S"), "word": re.compile(r"\S+")}


def unit_kind(units_lists):
  """"char" when (nearly) every unit of the training unit lists is one
  character, else "word".  Nearly: real corpora hold a few stray
  multi-character units (Weibo NER has "\ufffd\ufffd" 12 times among
  70,000 characters), which do not make its units words."""
  total = longer = 0
  for units in units_lists:
    total += len(units)
    longer += sum(len(u) != 1 for u in units)
  return "char" if longer <= 0.001 * total else "word"


def text_units(text, kind):
  """[(unit, character offset)] of a raw text, cut as training data of
  unit kind `kind` was."""
  return [(m.group(0), m.start()) for m in _UNIT_PATTERNS[kind].finditer(
      text)]


def fallback_label(labels):
  """The label id of a unit without a token: outside ("O"), else a single
  unit word ("S"), else the first label."""
  for label in ("O", "S"):
    if label in labels:
      return list(labels).index(label)
  return 0

UnitAlignment = collections.namedtuple("UnitAlignment", ["ids", "first_token"])


def encode_units(tokenizer, units_list, num_threads=1):
  """WordPiece ids of unit lists (each list tokenized as its units joined by
  single spaces) and each unit's first piece, for a whole batch at once.

  Args:
    tokenizer: a FullTokenizer (native `encode_units`), or anything with
      encode_ragged (e.g. a sentencepiece tokenizer).
    units_list: N lists of unit strings (characters or words).

  Returns:
    dict of numpy arrays: ids int32 [M] and row_splits int64 [N + 1] (the
    pieces of list i are ids[row_splits[i]:row_splits[i + 1]]), first_token
    int32 [U] (the index within its list's pieces of each unit's first
    piece; -1: the unit has none, e.g. only characters BERT deletes) and
    unit_splits int64 [N + 1].
  """
  if hasattr(tokenizer, "encode_units"):
    return tokenizer.encode_units(units_list, num_threads)
  return _encode_units_from_spans(tokenizer, units_list, num_threads)


def _encode_units_from_spans(tokenizer, units_list, num_threads):
  """encode_units through encode_ragged's character spans."""
  texts = [" ".join(units) for units in units_list]
  ragged = tokenizer.encode_ragged(texts, num_threads=num_threads)
  splits, ids, spans = ragged["row_splits"], ragged["ids"], ragged["spans"]
  # Everything at once over the whole batch: unit k of text i starts at
  # character offset base[i] + (sum of earlier unit lengths + separators).
  unit_counts = np.fromiter((len(u) for u in units_list), np.int64,
                            len(units_list))
  unit_splits = np.concatenate([[0], np.cumsum(unit_counts)])
  lengths = np.fromiter(map(len, itertools.chain.from_iterable(units_list)),
                        np.int64, int(unit_splits[-1]))
  text_lengths = np.fromiter(map(len, texts), np.int64, len(texts))
  base = np.concatenate([[0], np.cumsum(text_lengths + 1)])[:-1]
  unit_starts = np.cumsum(lengths + 1) - (lengths + 1)
  unit_text = np.repeat(np.arange(len(texts)), unit_counts)
  # Make offsets global: subtract each text's own first offset, add base.
  first_offset = np.repeat(unit_starts[unit_splits[:-1][unit_counts > 0]],
                           unit_counts[unit_counts > 0])
  unit_starts = unit_starts - first_offset + base[unit_text]
  token_counts = np.diff(splits)
  token_text = np.repeat(np.arange(len(texts)), token_counts)
  token_starts = spans[:, 0].astype(np.int64) + base[token_text]
  unit_of_token = np.searchsorted(unit_starts, token_starts, side="right") - 1
  first = np.full(len(lengths), -1, np.int64)
  # Tokens run in order, so a unit's first token is where the unit changes.
  change = np.flatnonzero(np.diff(unit_of_token, prepend=-1) != 0)
  first[unit_of_token[change]] = change
  local = np.where(first >= 0, first - splits[unit_text], -1)
  return {"ids": ids, "row_splits": splits,
          "first_token": local.astype(np.int32), "unit_splits": unit_splits}


def align_units(tokenizer, units_list, num_threads=1):
  """encode_units as one UnitAlignment(ids int32 [n_tokens], first_token
  int32 [n_units]) per unit list."""
  return alignments_of(encode_units(tokenizer, units_list, num_threads))


def alignments_of(ragged, indices=None):
  """One UnitAlignment per row of encode_units' dict (rows `indices`, in
  that order; default all)."""
  ids, splits = ragged["ids"], ragged["row_splits"]
  first, unit_splits = ragged["first_token"], ragged["unit_splits"]
  rows = range(len(splits) - 1) if indices is None else indices
  return [UnitAlignment(ids[splits[i]:splits[i + 1]],
                        first[unit_splits[i]:unit_splits[i + 1]])
          for i in rows]


def take_rows(ragged, indices):
  """encode_units' dict of rows `indices` only, in that order."""
  out = {}
  for values, splits in (("ids", "row_splits"),
                         ("first_token", "unit_splits")):
    starts, ends = ragged[splits][indices], ragged[splits][
        np.asarray(indices) + 1]
    out[splits] = np.concatenate([[0], np.cumsum(ends - starts)]).astype(
        np.int64)
    out[values] = (np.concatenate([ragged[values][s:e] for s, e in
                                   zip(starts, ends)]).astype(np.int32)
                   if len(indices) else np.zeros([0], np.int32))
  return out


# One example's encoded form, built once and used both for the model's
# rows and for decoding their outputs: its UnitAlignment and its Windows.
Encoding = collections.namedtuple("Encoding", ["alignment", "windows"])


def encodings_of(ragged, max_seq_length):
  """One Encoding per row of encode_units' dict."""
  return [Encoding(a, window_spans(len(a.ids), max_seq_length))
          for a in alignments_of(ragged)]


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


def best_windows(positions, spans):
  """For each token position, the index of the window giving it the most
  context (the smaller of its left and right context, ties to the earlier
  window); None for a position no window covers.

  Linear in len(positions) + len(spans), vectorised: windows are sorted by
  start (and so by end), as window_spans makes them, so the windows
  covering a position are a short contiguous run, scored from its last
  window backwards.
  """
  positions = np.asarray(positions, np.int64).reshape(-1)
  if not len(spans) or not len(positions):
    return [None] * len(positions)
  starts = np.asarray([s for s, _ in spans], np.int64)
  ends = np.asarray([e for _, e in spans], np.int64)
  last = np.searchsorted(starts, positions, side="right") - 1
  first = np.searchsorted(ends, positions, side="right")
  best = np.full(len(positions), -1, np.int64)
  best_score = np.full(len(positions), -1, np.int64)
  for back in range(int(np.max(last - first, initial=-1)) + 1):
    index = last - back
    valid = index >= first
    clipped = np.clip(index, 0, len(spans) - 1)
    score = np.minimum(positions - starts[clipped],
                       ends[clipped] - 1 - positions)
    better = valid & (score >= best_score)
    best = np.where(better, index, best)
    best_score = np.where(better, score, best_score)
  return [None if b < 0 else b for b in best.tolist()]


def gather_from_windows(positions, spans, per_window, offset=0):
  """Each position's row of `per_window` (per window, an array indexed by
  token position within the window, plus `offset`) from its best window,
  stacked: [len(positions), ...].  One slice per window, not per token."""
  positions = np.asarray(positions, np.int64).reshape(-1)
  if not len(positions):
    return np.zeros((0,) + np.shape(per_window[0])[1:])
  chosen = np.asarray(best_windows(positions, spans), np.int64)
  cuts = np.flatnonzero(np.diff(chosen)) + 1
  pieces = []
  for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(positions)]):
    w = chosen[lo]
    local = positions[lo:hi] - spans[w].start + offset
    pieces.append(np.asarray(per_window[w])[local])
  return np.concatenate(pieces)


def best_window(position, spans):
  """best_windows of one position."""
  return best_windows([position], spans)[0]


def window_stride(max_seq_length):
  """Tokens between consecutive window starts: half a window."""
  return max(1, (max_seq_length - 2) // 2)


def window_spans(num_tokens, max_seq_length, stride=None):
  """The Windows of a sequence of num_tokens tokens ([CLS]/[SEP] excluded)
  at max_seq_length; consecutive windows start `stride` (default
  window_stride) apart."""
  return windows(num_tokens, max_seq_length - 2,
                 stride or window_stride(max_seq_length))


def token_labels(alignment, label_ids, pad=0):
  """int32 [pad + n_tokens + pad]: each unit's label on its first token,
  IGNORE elsewhere (and on the `pad` positions at both ends, for [CLS] and
  [SEP]).  label_ids None (prediction) puts 0 on first tokens, which still
  marks where a prediction is read."""
  out = np.full(len(alignment.ids) + 2 * pad, IGNORE, np.int32)
  has_token = alignment.first_token >= 0
  out[alignment.first_token[has_token] + pad] = (
      0 if label_ids is None else np.asarray(label_ids, np.int32)[has_token])
  return out


def merge_window_predictions(alignment, spans, window_predictions,
                             fallback, offset=0):
  """Per-unit predictions from per-window token predictions (each unit's
  from the window where it has the most context).

  Args:
    alignment: UnitAlignment.
    spans: the Windows of the example.
    window_predictions: per window, predicted ids of its tokens (from
      index `offset` on: 1 for model rows, which start with [CLS]).
    fallback: the id for units that have no token.

  Returns:
    int list, exactly one prediction per unit.
  """
  first_token = np.asarray(alignment.first_token, np.int64)
  out = np.full(len(first_token), fallback, np.int64)
  has_token = first_token >= 0
  if has_token.any():
    out[has_token] = gather_from_windows(first_token[has_token], spans,
                                         window_predictions, offset)
  return out.tolist()


# The model input marking each unit's first token in rows of units (1
# there, else 0): the positions a token-aligned head tags.
TAG_MASK = "tag_mask"


def unit_rows(alignment, max_seq_length, cls_id, sep_id, spans=None):
  """The model rows of one unit sequence, one per window: [(Window,
  input_ids, segment_ids, tag_mask)], tag_mask int32 1 on each unit's
  first token (the positions a head tags, as token_labels marks them).
  spans: its Windows, when known (an Encoding's)."""
  positions = token_labels(alignment, None, pad=1) != IGNORE
  out = []
  if spans is None:
    spans = window_spans(len(alignment.ids), max_seq_length)
  for window in spans:
    input_ids, segment_ids = pack(alignment.ids[window.start:window.end],
                                  max_seq_length, cls_id, sep_id)
    tag_mask = positions[window.start:window.end + 2].astype(np.int32)
    tag_mask[0] = tag_mask[-1] = 0
    out.append((window, input_ids, segment_ids, tag_mask))
  return out


def pack(ids_a, max_seq_length, cls_id, sep_id, ids_b=None):
  """[CLS] a [SEP] (b [SEP]) as (input_ids, segment_ids), unpadded, with the
  original scripts' truncation."""
  from bert_mtl import tokenization  # pylint: disable=g-import-not-at-top
  ids_b = [] if ids_b is None else list(ids_b)
  len_a, len_b = tokenization.truncate_pair_lengths(len(ids_a), len(ids_b),
                                                    max_seq_length)
  input_ids = [cls_id] + list(ids_a[:len_a]) + [sep_id]
  segment_ids = [0] * len(input_ids)
  if len_b:
    input_ids += ids_b[:len_b] + [sep_id]
    segment_ids += [1] * (len_b + 1)
  return (np.asarray(input_ids, np.int32), np.asarray(segment_ids, np.int32))
