"""BERT's FullTokenizer as TensorFlow graph ops, core ops only.

TF Serving loads a SavedModel only if every op in it is registered by core
TensorFlow, so a text signature cannot use TensorFlow Text or Addons.  This
module rebuilds tokenization.py's BasicTokenizer + WordpieceTokenizer from
core ops (string/Unicode ops, gathers, cumulative sums, a sort, a hash table
and a while loop), vectorised over a batch, with the Unicode tables the
native tokenizer compiles in (`_native.unicode_tables()`), embedded as
constants.  The result is byte-identical to the native FullTokenizer, hence
to the original `tokenization.py` under the same Python (same tokens, ids
and character spans), which tests/test_graph_tokenizer.py checks on the
real corpora and on random strings.

Characters are code points of the UTF-8 decoded text with invalid bytes
dropped (`bytes.decode("utf-8", "ignore")`, as `convert_to_unicode` does);
spans are [start, end) offsets in those code points, as the native
tokenizer's.

Every stage below works on flat per-character tensors: `cp` (code points),
`src` (each character's offset in its text), and the id of the text / word /
token the character belongs to, so ragged batches never need padding.
"""

import numpy as np
import tensorflow as tf

from bert_mtl import _native, tokenization

CAPITAL_SIGMA, SMALL_SIGMA, FINAL_SIGMA = 0x3A3, 0x3C3, 0x3C2
MAX_INPUT_CHARS_PER_WORD = _native.max_input_chars_per_word


class UnicodeTables(object):
  """The native tokenizer's per-code-point records as graph constants."""

  def __init__(self):
    t = _native.unicode_tables()
    self.version = t["unidata_version"]
    self.shift = int(t["block_shift"])
    self.bits = {k: int(v) for k, v in t["flag_bits"].items()}
    const = lambda a: tf.constant(np.asarray(a, np.int32))
    self.stage1, self.stage2 = const(t["stage1"]), const(t["stage2"])
    self.flags, self.ccc = const(t["flags"]), const(t["ccc"])
    self.lower_len = const(t["lower_len"])
    self.lower_off = const(t["lower_off"])
    self.nfd_len, self.nfd_off = const(t["nfd_len"]), const(t["nfd_off"])
    self.lower_pool = const(t["lower_pool"])
    self.nfd_pool = const(t["nfd_pool"])

  def record(self, cp):
    """Record index of each code point of `cp` (int32 [N])."""
    mask = (1 << self.shift) - 1
    block = tf.gather(self.stage1, tf.bitwise.right_shift(cp, self.shift))
    return tf.gather(self.stage2, tf.bitwise.bitwise_or(
        tf.bitwise.left_shift(block, self.shift), tf.bitwise.bitwise_and(
            cp, mask)))

  def has(self, record, flag):
    """bool [N]: the records carry flag `flag` (a name of flag_bits)."""
    return tf.not_equal(tf.bitwise.bitwise_and(
        tf.gather(self.flags, record), self.bits[flag]), 0)


def run_starts(ids):
  """bool [N]: each position starts a new run of equal `ids` (int [N])."""
  return tf.concat([tf.ones([tf.minimum(tf.size(ids), 1)], tf.bool),
                    tf.not_equal(ids[1:], ids[:-1])], 0)


def shift_right(x, fill):
  """x [N] moved one position later, `fill` first."""
  return tf.concat([tf.fill([tf.minimum(tf.size(x), 1)], fill), x[:-1]], 0)


def _select(mask, *tensors):
  return [tf.boolean_mask(t, mask) for t in tensors]


def _expand(cp, length, offset, pool, carried):
  """Replaces each code point by its mapping (`length` > 0: pool[offset:
  offset + length]; 0: itself) and repeats the `carried` tensors alongside.

  Returns: (new cp [M], [carried tensor repeated, [M]]).
  """
  count = tf.maximum(length, 1)
  owner = tf.repeat(tf.range(tf.size(cp)), count)
  first = tf.cumsum(count, exclusive=True)
  within = tf.range(tf.reduce_sum(count)) - tf.gather(first, owner)
  mapped = tf.gather(pool, tf.gather(offset, owner) + within)
  out = tf.where(tf.gather(length, owner) > 0, mapped, tf.gather(cp, owner))
  return out, [tf.gather(t, owner) for t in carried]


def positions_in_rows(ragged):
  """int32 [N]: each value's index within its row of `ragged` [B, (n)]."""
  return tf.cast(tf.range(tf.size(ragged.flat_values, out_type=tf.int64)) -
                 tf.gather(ragged.row_starts(), ragged.value_rowids()),
                 tf.int32)


def half_width(cp):
  """tokenization.normalize_width_of on code points int32 [N]."""
  full = tf.logical_and(cp >= 0xFF01, cp <= 0xFF5E)
  return tf.where(full, cp - 0xFEE0, tf.where(tf.equal(cp, 0x3000), 32, cp))


def decode(text):
  """Code points of UTF-8 texts, invalid bytes dropped, as
  tokenization.convert_to_unicode reads bytes.

  Args:
    text: string [B].

  Returns:
    tf.RaggedTensor int32 [B, (chars)].

  (Code points become strings again through utf8_encode, never
  tf.strings.unicode_encode: see there.)
  """
  return tf.strings.unicode_decode(text, "UTF-8", errors="ignore")


def _utf8_length(cp):
  """int32 [N]: the UTF-8 length of each code point of `cp`."""
  return 1 + tf.cast(cp >= 0x80, tf.int32) + tf.cast(
      cp >= 0x800, tf.int32) + tf.cast(cp >= 0x10000, tf.int32)


# Each byte value as a one-byte string, and the first byte's marker per
# UTF-8 length.
_BYTES = [bytes([b]) for b in range(256)]
_LEAD = [0, 0x00, 0xC0, 0xE0, 0xF0]


def utf8_encode(chars):
  """The UTF-8 strings of code point rows, every code point as it is.

  tf.strings.unicode_encode writes U+FFFD for noncharacters (U+FFFF,
  U+FDD0..U+FDEF, U+nFFFE...), which are valid text and may stand in a
  vocabulary, so the bytes are computed here.

  Args:
    chars: tf.RaggedTensor int32 [B, (chars)].

  Returns:
    string [B].
  """
  cp = chars.flat_values
  length = _utf8_length(cp)
  owner = tf.repeat(tf.range(tf.size(cp)), length)
  k = tf.range(tf.reduce_sum(length)) - tf.gather(
      tf.cumsum(length, exclusive=True), owner)  # byte k of its character
  n, c = tf.gather(length, owner), tf.gather(cp, owner)
  shifted = tf.bitwise.right_shift(c, 6 * (n - 1 - k))
  byte = tf.where(
      tf.equal(k, 0),
      tf.bitwise.bitwise_or(tf.gather(_LEAD, n), shifted),
      tf.bitwise.bitwise_or(0x80, tf.bitwise.bitwise_and(shifted, 0x3F)))
  rows = tf.gather(chars.value_rowids(), owner)
  return tf.strings.reduce_join(tf.RaggedTensor.from_value_rowids(
      tf.gather(tf.constant(_BYTES), byte), rows, chars.nrows(),
      validate=False), axis=1)


class GraphTokenizer(tf.Module):
  """FullTokenizer(vocab_file, do_lower_case, normalize_width) in graph ops.

  Build it in the graph that uses it (an Estimator's export graph), or keep
  it as an attribute of a tf.Module for tf.saved_model.save: it owns the
  vocabulary's hash table.
  """

  def __init__(self, vocab_file, do_lower_case=True, normalize_width=False):
    super().__init__(name="graph_tokenizer")
    self.normalize_width = bool(normalize_width)
    tokens = tokenization.load_vocab_tokens(vocab_file)
    vocab = {}
    for index, token in enumerate(tokens):
      vocab[token] = index  # a duplicate keeps its last id, as the original
    if tokenization.UNK_TOKEN not in vocab:
      raise ValueError("vocab file %s has no %s token" % (
          vocab_file, tokenization.UNK_TOKEN))
    self.do_lower_case = bool(do_lower_case)
    self.unk_id = vocab[tokenization.UNK_TOKEN]
    # [CLS] / [SEP] for the rows a model reads (-1: not in the vocab).
    self.cls_id = vocab.get(tokenization.CLS_TOKEN, -1)
    self.sep_id = vocab.get(tokenization.SEP_TOKEN, -1)
    self.tables = UnicodeTables()
    keys = [k.encode("utf-8") for k in vocab]
    self.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, tf.string),
            tf.constant(list(vocab.values()), tf.int32)), -1)
    # The greedy match never tries a piece longer than the vocab's longest.
    self.max_word = max((len(k) for k in vocab), default=1)
    self.max_cont = max((len(k) - 2 for k in vocab if k.startswith("##")),
                        default=0)

  def tokenize(self, text):
    """WordPiece ids and spans of a batch of texts.

    Args:
      text: string [B], UTF-8 (invalid bytes are dropped).

    Returns:
      (ids, spans): tf.RaggedTensor int32 [B, (pieces)] and int32
      [B, (pieces), 2], each piece's [start, end) code points in its text.
    """
    text = tf.convert_to_tensor(text, tf.string)
    return self.tokenize_chars(decode(text))

  def tokenize_chars(self, chars):
    """tokenize() of texts given as code points.

    Args:
      chars: tf.RaggedTensor int32 [B, (chars)] (see `decode`).

    Returns:
      as tokenize(); spans index `chars`' rows.
    """
    nrows = chars.nrows()
    cp = chars.flat_values
    if self.normalize_width:
      cp = half_width(cp)
    row = chars.value_rowids()
    src = positions_in_rows(chars)
    cp, src, row, word = self._words(cp, src, row)
    if self.do_lower_case:
      cp, src, row, word = self._lower_and_strip_accents(cp, src, row, word)
    cp, src, row, token = self._split_punctuation(cp, src, row, word)
    token_row = tf.math.segment_max(row, token)
    ids, piece_token, begin, end = self._wordpiece(cp, token)
    # A piece's span covers its characters' sources (after NFD a piece's
    # characters are in source order or permuted within one source run).
    token_first = tf.cast(tf.math.segment_min(
        tf.range(tf.size(token)), token), tf.int32)
    first = tf.gather(token_first, piece_token)
    positions = tf.ragged.range(first + begin, first + end)
    sources = tf.gather(src, positions)
    spans = tf.stack([tf.reduce_min(sources, axis=1),
                      tf.reduce_max(sources, axis=1) + 1], axis=1)
    piece_row = tf.gather(token_row, piece_token)
    ragged = lambda values: tf.RaggedTensor.from_value_rowids(
        values, piece_row, nrows, validate=False)
    return ragged(ids), ragged(spans)

  # --------------------------------------------------------------- stages

  def _words(self, cp, src, row):
    """BasicTokenizer's clean text, CJK isolation and whitespace split.

    Returns (cp, src, row, word) of the characters kept, `word` the word id
    of each (increasing from 0 over the batch; a word lies in one text).
    """
    t = self.tables
    record = t.record(cp)
    keep = tf.logical_not(tf.logical_or(
        tf.logical_or(tf.equal(cp, 0), tf.equal(cp, 0xFFFD)),
        t.has(record, "control")))
    cp, src, row, record = _select(keep, cp, src, row, record)
    space = tf.logical_or(t.has(record, "clean_space"),
                          t.has(record, "py_space"))
    cjk = t.has(record, "cjk")
    start = tf.logical_or(tf.logical_or(
        run_starts(row), shift_right(space, True)),
        tf.logical_or(cjk, shift_right(cjk, False)))
    cp, src, row, start = _select(tf.logical_not(space), cp, src, row, start)
    # A text's first kept character after removal of spaces starts a word.
    start = tf.logical_or(start, run_starts(row))
    return cp, src, row, tf.cumsum(tf.cast(start, tf.int32)) - 1

  def _lower_and_strip_accents(self, cp, src, row, word):
    """str.lower() (full mappings, final sigma) per word, then NFD and the
    removal of category Mn, as BasicTokenizer does when lower-casing."""
    t = self.tables
    record = t.record(cp)
    # Python's final-sigma rule: skipping case-ignorable characters, a
    # cased one precedes the capital sigma in its word and none follows.
    counted = tf.logical_not(t.has(record, "case_ignorable"))
    cased = t.has(record, "cased")
    where = tf.cast(tf.reshape(tf.where(counted), [-1]), tf.int32)
    n = tf.size(where)
    sentinel = tf.concat([where, [-1]], 0)
    before = tf.cumsum(tf.cast(counted, tf.int32), exclusive=True)
    through = tf.cumsum(tf.cast(counted, tf.int32))
    prev = tf.gather(sentinel, tf.where(before > 0, before - 1, n))
    nxt = tf.gather(sentinel, tf.minimum(through, n))
    safe = lambda i: tf.maximum(i, 0)
    prev_cased = tf.logical_and(tf.logical_and(
        prev >= 0, tf.equal(tf.gather(word, safe(prev)), word)),
        tf.gather(cased, safe(prev)))
    next_cased = tf.logical_and(tf.logical_and(
        nxt >= 0, tf.equal(tf.gather(word, safe(nxt)), word)),
        tf.gather(cased, safe(nxt)))
    final = tf.logical_and(prev_cased, tf.logical_not(next_cased))
    sigma = tf.equal(cp, CAPITAL_SIGMA)
    lower_len = tf.where(sigma, 0, tf.gather(t.lower_len, record))
    lowered = tf.where(sigma, tf.where(final, FINAL_SIGMA, SMALL_SIGMA), cp)
    cp, (src, row, word) = _expand(lowered, lower_len,
                                   tf.gather(t.lower_off, record),
                                   t.lower_pool, [src, row, word])
    record = t.record(cp)
    cp, (src, row, word) = _expand(cp, tf.gather(t.nfd_len, record),
                                   tf.gather(t.nfd_off, record), t.nfd_pool,
                                   [src, row, word])
    # Canonical ordering: stable sort of each run of non-starters by
    # combining class; a run ends at a starter (class 0) or a word's end.
    record = t.record(cp)
    ccc = tf.gather(t.ccc, record)
    group = tf.cumsum(tf.cast(tf.logical_or(tf.equal(ccc, 0), run_starts(word)),
                              tf.int64))
    order = tf.argsort(group * 256 + tf.cast(ccc, tf.int64), stable=True)
    cp, src, row, word, record = [tf.gather(x, order)
                                  for x in (cp, src, row, word, record)]
    return _select(tf.logical_not(t.has(record, "mn")), cp, src, row, word)

  def _split_punctuation(self, cp, src, row, word):
    """Every punctuation character its own token; whitespace (which
    lower-casing or NFD can produce) splits too.

    Returns (cp, src, row, token)."""
    t = self.tables
    record = t.record(cp)
    punct = t.has(record, "punct")
    space = tf.logical_and(t.has(record, "py_space"), tf.logical_not(punct))
    start = tf.logical_or(tf.logical_or(run_starts(word), punct), tf.logical_or(
        shift_right(punct, False), shift_right(space, False)))
    cp, src, row, start, word = _select(tf.logical_not(space), cp, src, row,
                                        start, word)
    start = tf.logical_or(start, run_starts(word))
    return cp, src, row, tf.cumsum(tf.cast(start, tf.int32)) - 1

  def _wordpiece(self, cp, token):
    """Greedy longest-match-first WordPiece over all tokens at once.

    Returns per piece, in order: id, token index, [begin, end) character
    offsets in its token.
    """
    num_tokens = tf.reduce_max(tf.concat([token, [-1]], 0)) + 1
    length = tf.math.unsorted_segment_sum(tf.ones_like(token), token,
                                          num_tokens)
    ragged = tf.RaggedTensor.from_value_rowids(cp, token, num_tokens,
                                               validate=False)
    strings = utf8_encode(ragged)
    utf8_len = _utf8_length(cp)
    # byte_at[token_first[t] + t + k]: byte offset of character k of token t.
    token_first = tf.cumsum(length, exclusive=True)
    byte_at = tf.RaggedTensor.from_row_lengths(utf8_len, length,
                                               validate=False)
    byte_at = tf.concat([tf.zeros([num_tokens, 1], tf.int32),
                         tf.cumsum(byte_at, axis=1)], axis=1).flat_values
    bound_first = token_first + tf.range(num_tokens)

    too_long = length > MAX_INPUT_CHARS_PER_WORD
    init = (tf.constant(0), tf.zeros([num_tokens], tf.int32), too_long,
            tf.TensorArray(tf.int32, size=0, dynamic_size=True,
                           infer_shape=False, element_shape=[None, 4]))

    def active(unused_i, start, failed, unused_pieces):
      return tf.reduce_any(tf.logical_and(start < length,
                                          tf.logical_not(failed)))

    def step(i, start, failed, pieces):
      todo = tf.cast(tf.reshape(tf.where(tf.logical_and(
          start < length, tf.logical_not(failed))), [-1]), tf.int32)
      begin = tf.gather(start, todo)
      cont = begin > 0
      longest = tf.minimum(tf.gather(length, todo) - begin,
                           tf.where(cont, self.max_cont, self.max_word))
      # Candidates longest first: row a holds lengths longest[a] .. 1.
      tries = tf.ragged.range(longest, 0, -1)
      owner = tries.value_rowids()
      size = tries.flat_values
      which = tf.gather(todo, owner)
      first = tf.gather(begin, owner)
      base_at = tf.gather(bound_first, which)
      byte_begin = tf.gather(byte_at, base_at + first)
      byte_end = tf.gather(byte_at, base_at + first + size)
      piece = tf.strings.substr(tf.gather(strings, which), byte_begin,
                                byte_end - byte_begin)
      prefix = tf.where(tf.gather(cont, owner), "##", "")
      found = self.table.lookup(tf.strings.join([prefix, piece]))
      best = tf.maximum(tf.math.unsorted_segment_max(
          tf.where(found >= 0, size, 0), owner, tf.size(todo)), 0)
      hit = best > 0
      at = tries.row_starts() + tf.cast(longest - best, tf.int64)
      ids = tf.gather(found, tf.where(hit, at, 0))
      matched = tf.boolean_mask(tf.stack(
          [ids, todo, begin, begin + best], axis=1), hit)
      pieces = pieces.write(i, matched)
      start = tf.tensor_scatter_nd_add(start, todo[:, None],
                                       tf.where(hit, best, 0))
      failed = tf.tensor_scatter_nd_update(
          failed, todo[:, None], tf.logical_or(tf.gather(failed, todo),
                                               tf.logical_not(hit)))
      return i + 1, start, failed, pieces

    _, _, failed, pieces = tf.while_loop(
        active, step, init, maximum_iterations=MAX_INPUT_CHARS_PER_WORD + 1)
    pieces = tf.cond(pieces.size() > 0, pieces.concat,
                     lambda: tf.zeros([0, 4], tf.int32))
    # A word with a position that matches nothing (or too long) is one
    # [UNK] over the whole word; its partial pieces are dropped.
    pieces = tf.boolean_mask(pieces, tf.logical_not(tf.gather(
        failed, pieces[:, 1])))
    failed_tokens = tf.cast(tf.reshape(tf.where(failed), [-1]), tf.int32)
    unknown = tf.stack([tf.fill(tf.shape(failed_tokens), self.unk_id),
                        failed_tokens, tf.zeros_like(failed_tokens),
                        tf.gather(length, failed_tokens)], axis=1)
    pieces = tf.concat([pieces, unknown], 0)
    order = tf.argsort(tf.cast(pieces[:, 1], tf.int64) * 1024 +
                       tf.cast(pieces[:, 2], tf.int64))
    pieces = tf.gather(pieces, order)
    return pieces[:, 0], pieces[:, 1], pieces[:, 2], pieces[:, 3]

