"""Tokenizers with the interface of google-research/bert's tokenization.py.

Every public name of the original module is here with its signature and
behaviour (`FullTokenizer`, `BasicTokenizer`, `WordpieceTokenizer`,
`load_vocab`, `convert_to_unicode`, `printable_text`, `whitespace_tokenize`,
`convert_by_vocab`, `convert_tokens_to_ids`, `convert_ids_to_tokens`,
`validate_case_matches_checkpoint` and the `_is_whitespace` / `_is_control` /
`_is_punctuation` helpers).  The three tokenizers run in the native
extension and give the original's tokens byte for byte; `FullTokenizer`
adds batch APIs that return padded id arrays and, for every token, the span
of input characters it came from.  `SentencePieceTokenizer` offers the same
interface over a sentencepiece `.model` file.
"""

import collections
import re
import unicodedata

import numpy as np

from bert_mtl import _native

if _native.unidata_version != unicodedata.unidata_version:
  raise ImportError(
      "bert_mtl._native was built with Unicode %s tables but this Python has "
      "Unicode %s; rebuild the package with this Python (pip install -e .)" %
      (_native.unidata_version, unicodedata.unidata_version))

UNK_TOKEN = "[UNK]"
CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"
MAX_INPUT_CHARS_PER_WORD = _native.max_input_chars_per_word


class UnsupportedStringType(TypeError, ValueError):
  """Text that is neither str nor bytes.  The original raised ValueError;
  a TypeError is what Python code expects; this is both."""


def convert_to_unicode(text):
  """Returns `text` as str; bytes are UTF-8 with invalid bytes dropped."""
  if isinstance(text, str):
    return text
  if isinstance(text, bytes):
    return text.decode("utf-8", "ignore")
  raise UnsupportedStringType(
      "Unsupported string type: text must be str or bytes, not %s" %
      type(text).__name__)


def printable_text(text):
  """`text` as str for printing or logging (Python 3: convert_to_unicode)."""
  return convert_to_unicode(text)


def whitespace_tokenize(text):
  """Python's whitespace split of the stripped text."""
  text = text.strip()
  if not text:
    return []
  return text.split()


def _is_whitespace(char):
  """Space, TAB, LF, CR or category Zs (what BasicTokenizer turns into a
  single space)."""
  if char in (" ", "\t", "\n", "\r"):
    return True
  return unicodedata.category(char) == "Zs"


def _is_control(char):
  """Categories Cc and Cf, except TAB, LF and CR (deleted by
  BasicTokenizer)."""
  if char in ("\t", "\n", "\r"):
    return False
  return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char):
  """Every non-alphanumeric ASCII printable, or any category P*."""
  cp = ord(char)
  if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
    return True
  return unicodedata.category(char).startswith("P")


def _is_chinese_char_code(cp):
  """The CJK Unified Ideographs blocks the original isolates (not kana,
  Hangul, CJK punctuation or full-width forms)."""
  return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
               (0x2A700, 0x2B73F), (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF),
               (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _read_bytes(path):
  if "://" in path:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    with tf.io.gfile.GFile(path, "rb") as f:
      return f.read()
  with open(path, "rb") as f:
    return f.read()


def load_vocab_tokens(vocab_file):
  """Lines of a vocab.txt exactly as the original loader sees them.

  The file is split on "\\n" only and each line is `str.strip()`-ed, so lines
  holding U+2028 (the Chinese vocab has two) keep every later id in place.

  Returns:
    list of str; token i has id i.
  """
  data = _read_bytes(vocab_file)
  if not data:
    raise ValueError("vocab file %s is empty" % vocab_file)
  lines = data.split(b"\n")
  if lines[-1] == b"":
    lines.pop()
  tokens = []
  for number, line in enumerate(lines, start=1):
    try:
      tokens.append(line.decode("utf-8").strip())
    except UnicodeDecodeError as e:
      raise ValueError("vocab file %s, line %d is not valid UTF-8: %s" %
                       (vocab_file, number, e)) from None
  return tokens


def load_vocab(vocab_file):
  """token -> id, as the original: a duplicate keeps its last line's id."""
  vocab = collections.OrderedDict()
  for index, token in enumerate(load_vocab_tokens(vocab_file)):
    vocab[token] = index
  return vocab


def convert_by_vocab(vocab, items):
  """[vocab[item] for item in items]: a KeyError for an unknown item."""
  return [vocab[item] for item in items]


def convert_tokens_to_ids(vocab, tokens):
  return convert_by_vocab(vocab, tokens)


def convert_ids_to_tokens(inv_vocab, ids):
  return convert_by_vocab(inv_vocab, ids)


def validate_case_matches_checkpoint(do_lower_case, init_checkpoint):
  """Raises ValueError when the casing flag contradicts a known Google model.

  Same rule as the original: only the released model names below are
  checked, taken from the path component right before `/bert_model.ckpt`.
  """
  if not init_checkpoint:
    return
  m = re.match("^.*?([A-Za-z0-9_-]+)/bert_model.ckpt", init_checkpoint)
  if m is None:
    return
  model_name = m.group(1)
  lower_models = [
      "uncased_L-24_H-1024_A-16", "uncased_L-12_H-768_A-12",
      "multilingual_L-12_H-768_A-12", "chinese_L-12_H-768_A-12"
  ]
  cased_models = [
      "cased_L-12_H-768_A-12", "cased_L-24_H-1024_A-16",
      "multi_cased_L-12_H-768_A-12"
  ]
  if model_name in lower_models and not do_lower_case:
    actual_flag, case_name, opposite_flag = "False", "lowercased", "True"
  elif model_name in cased_models and do_lower_case:
    actual_flag, case_name, opposite_flag = "True", "cased", "False"
  else:
    return
  raise ValueError(
      "You passed in `--do_lower_case=%s` with `--init_checkpoint=%s`. "
      "However, `%s` seems to be a %s model, so you should pass in "
      "`--do_lower_case=%s` so that the fine-tuning matches how the model was "
      "pre-training. If this error is wrong, please just comment out this "
      "check." % (actual_flag, init_checkpoint, model_name, case_name,
                  opposite_flag))


class BasicTokenizer(object):
  """The original BasicTokenizer: cleaning, CJK isolation, whitespace split,
  lower-casing with NFD accent removal (do_lower_case), punctuation split.

  `tokenize` runs in the native extension; the original's private steps
  (`_clean_text`, `_tokenize_chinese_chars`, `_run_strip_accents`,
  `_run_split_on_punc`, `_is_chinese_char`) are kept, in Python, for code
  that calls them.
  """

  def __init__(self, do_lower_case=True):
    self.do_lower_case = do_lower_case
    self._native = _native.NativeTokenizer([UNK_TOKEN], bool(do_lower_case),
                                           0, -1, -1)

  def tokenize(self, text):
    """Basic tokens of `text` (str, or bytes decoded as UTF-8)."""
    return self._native.basic_tokenize(convert_to_unicode(text))

  def _run_strip_accents(self, text):
    text = unicodedata.normalize("NFD", text)
    return "".join(c for c in text if unicodedata.category(c) != "Mn")

  def _run_split_on_punc(self, text):
    output, start_new_word = [], True
    for char in text:
      if _is_punctuation(char):
        output.append([char])
        start_new_word = True
      else:
        if start_new_word:
          output.append([])
        start_new_word = False
        output[-1].append(char)
    return ["".join(x) for x in output]

  def _tokenize_chinese_chars(self, text):
    return "".join(" %s " % c if self._is_chinese_char(ord(c)) else c
                   for c in text)

  def _is_chinese_char(self, cp):
    return _is_chinese_char_code(cp)

  def _clean_text(self, text):
    output = []
    for char in text:
      cp = ord(char)
      if cp == 0 or cp == 0xFFFD or _is_control(char):
        continue
      output.append(" " if _is_whitespace(char) else char)
    return "".join(output)


class WordpieceTokenizer(object):
  """The original WordpieceTokenizer: greedy longest-match-first over each
  whitespace-separated token; a token with an unmatched position, or longer
  than max_input_chars_per_word code points, becomes `unk_token`.

  Runs in the native extension.  `vocab` is any mapping (or collection) of
  tokens, as the original only tests membership.
  """

  def __init__(self, vocab, unk_token=UNK_TOKEN,
               max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD):
    self.vocab = vocab
    self.unk_token = unk_token
    self.max_input_chars_per_word = max_input_chars_per_word
    tokens = list(vocab)
    if unk_token not in vocab:
      tokens.append(unk_token)
    self._native = _native.NativeTokenizer(tokens, False,
                                           tokens.index(unk_token), -1, -1)

  def tokenize(self, text):
    """WordPieces of `text`, which has passed BasicTokenizer already."""
    words = whitespace_tokenize(convert_to_unicode(text))
    pieces = self._native.wordpiece_tokenize(words,
                                             self.max_input_chars_per_word)
    return [self.unk_token if p is None else p for p in pieces]


# Full-width ASCII variants and the ideographic space -> ASCII: the
# width normalisation of FullTokenizer(normalize_width=True), one character
# for one (so character offsets are unchanged).
HALF_WIDTH = dict([(cp, cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F)] +
                  [(0x3000, 0x20)])


def normalize_width_of(text):
  """`text` with full-width ASCII variants and U+3000 in their ASCII form."""
  return text.translate(HALF_WIDTH)


class FullTokenizer(object):
  """BasicTokenizer + WordPiece, identical to the original FullTokenizer
  (and to `wordpiece_tokenizer.tokenize` over `basic_tokenizer.tokenize`,
  done here in one native pass)."""

  def __init__(self, vocab_file, do_lower_case=True, normalize_width=False):
    """normalize_width: read full-width ASCII variants (U+FF01-U+FF5E,
    ideographic space U+3000) as ASCII first (normalize_width_of), for
    corpora that mix both widths; off, as the original."""
    self.vocab_file = vocab_file
    self.do_lower_case = bool(do_lower_case)
    self.normalize_width = bool(normalize_width)
    tokens = load_vocab_tokens(vocab_file)
    self.vocab = collections.OrderedDict()
    for index, token in enumerate(tokens):
      self.vocab[token] = index
    self.inv_vocab = {v: k for k, v in self.vocab.items()}
    if UNK_TOKEN not in self.vocab:
      raise ValueError("vocab file %s has no %s token, which WordPiece emits "
                       "for unknown words" % (vocab_file, UNK_TOKEN))
    self._native = _native.NativeTokenizer(
        tokens, self.do_lower_case, self.vocab[UNK_TOKEN],
        self.vocab.get(CLS_TOKEN, -1), self.vocab.get(SEP_TOKEN, -1),
        self.normalize_width)
    self._basic_tokenizer = None
    self._wordpiece_tokenizer = None

  # Built on first use: most callers only tokenize through the fused path.
  @property
  def basic_tokenizer(self):
    if self._basic_tokenizer is None:
      self._basic_tokenizer = BasicTokenizer(do_lower_case=self.do_lower_case)
    return self._basic_tokenizer

  @property
  def wordpiece_tokenizer(self):
    if self._wordpiece_tokenizer is None:
      self._wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
    return self._wordpiece_tokenizer

  def tokenize(self, text):
    """WordPiece tokens of `text` (str, or bytes decoded as UTF-8)."""
    return self._native.tokenize(text)

  def convert_tokens_to_ids(self, tokens):
    return convert_by_vocab(self.vocab, tokens)

  def convert_ids_to_tokens(self, ids):
    return convert_by_vocab(self.inv_vocab, ids)

  def encode_ragged(self, texts, num_threads=1):
    """Every text's WordPiece ids, without truncation or special tokens.

    Returns:
      dict with `ids` int32 [M], `spans` int32 [M, 2] (start, end character
      offsets of each piece in its text) and `row_splits` int64 [N + 1]: the
      pieces of text i are rows row_splits[i]:row_splits[i + 1].
    """
    return self._native.encode_ragged(list(texts), num_threads)

  def encode_units(self, units_list, num_threads=1):
    """Pieces of unit lists, each joined by single spaces, and each unit's
    first piece: see bert_mtl.data.features.encode_units."""
    return self._native.encode_units(
        units_list if isinstance(units_list, (list, tuple))
        else list(units_list), num_threads)

  def encode_batch(self, texts, texts_b=None, max_seq_length=128,
                   num_threads=1):
    """Model inputs for a batch of texts or text pairs, as run_classifier.py.

    Each row is `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, padded with id 0;
    pairs are truncated longest-first (b on ties) to fit `max_seq_length`.
    The GIL is released while `num_threads` threads tokenize.

    Returns:
      dict of numpy arrays, N = len(texts), L = max_seq_length:
        input_ids, input_mask, segment_ids: int32 [N, L];
        token_spans: int32 [N, L, 2], the characters [start, end) of the
          token's own text (a for segment 0, b for segment 1); -1 for [CLS],
          [SEP] and padding;
        num_pieces: int32 [N, 2], pieces of a and b before truncation.
    """
    texts_b = None if texts_b is None else list(texts_b)
    return self._native.encode_batch(list(texts), texts_b, max_seq_length,
                                     num_threads)


class SentencePieceTokenizer(object):
  """The FullTokenizer interface over a sentencepiece model (.model file).

  [CLS]/[SEP] are the model's pieces of those names (as ALBERT's models
  define them) or else its BOS/EOS pieces.
  """

  def __init__(self, model_file, do_lower_case=False):
    import sentencepiece as spm  # pylint: disable=g-import-not-at-top
    self.model_file = model_file
    self.do_lower_case = bool(do_lower_case)
    self._sp = spm.SentencePieceProcessor()
    try:
      with open(model_file, "rb") as f:
        proto = f.read()
      self._sp.LoadFromSerializedProto(proto)
    except (OSError, RuntimeError) as e:
      raise ValueError("cannot load sentencepiece model %s: %s" %
                       (model_file, e)) from None
    self.vocab = collections.OrderedDict(
        (self._sp.id_to_piece(i), i) for i in range(self._sp.get_piece_size()))
    self.inv_vocab = {v: k for k, v in self.vocab.items()}
    self._cls_id = self._special_id(CLS_TOKEN, self._sp.bos_id())
    self._sep_id = self._special_id(SEP_TOKEN, self._sp.eos_id())

  def _special_id(self, piece, fallback):
    if piece in self.vocab:
      return self.vocab[piece]
    return fallback

  def _prepare(self, text):
    text = convert_to_unicode(text)
    return text.lower() if self.do_lower_case else text

  def _encode(self, text):
    """ids and character spans of one text."""
    prepared = self._prepare(text)
    proto = self._sp.EncodeAsProto(prepared)
    # sentencepiece reports UTF-8 byte offsets; map them to characters.  With
    # do_lower_case the spans index the lower-cased text, which has the same
    # length as the input except for rare characters such as U+0130.
    byte_to_char = np.zeros(len(prepared.encode("utf-8")) + 1, np.int32)
    position = 0
    for index, char in enumerate(prepared):
      width = len(char.encode("utf-8", "surrogatepass"))
      byte_to_char[position:position + width] = index
      position += width
    byte_to_char[position] = len(prepared)
    ids, spans = [], []
    for piece in proto.pieces:
      if piece.begin == piece.end:
        continue  # a "▁" with no surface marks a word start, not text
      ids.append(piece.id)
      spans.append((byte_to_char[piece.begin], byte_to_char[piece.end - 1] + 1))
    return ids, spans

  def tokenize(self, text):
    return self._sp.encode_as_pieces(self._prepare(text))

  def convert_tokens_to_ids(self, tokens):
    # Pieces outside the model (characters it never saw) are its <unk>.
    return [self._sp.piece_to_id(token) for token in tokens]

  def convert_ids_to_tokens(self, ids):
    return convert_by_vocab(self.inv_vocab, ids)

  def encode_ragged(self, texts, num_threads=1):
    del num_threads  # sentencepiece is fast enough single-threaded here
    ids, spans, row_splits = [], [], [0]
    for text in texts:
      piece_ids, piece_spans = self._encode(text)
      ids.extend(piece_ids)
      spans.extend(piece_spans)
      row_splits.append(len(ids))
    return {
        "ids": np.asarray(ids, np.int32),
        "spans": np.asarray(spans, np.int32).reshape(-1, 2),
        "row_splits": np.asarray(row_splits, np.int64),
    }

  def encode_batch(self, texts, texts_b=None, max_seq_length=128,
                   num_threads=1):
    del num_threads
    if self._cls_id < 0 or self._sep_id < 0:
      raise ValueError("sentencepiece model %s has no [CLS]/[SEP] or BOS/EOS "
                       "pieces" % self.model_file)
    texts = list(texts)
    if texts_b is not None:
      texts_b = list(texts_b)
      if len(texts_b) != len(texts):
        raise ValueError("texts_b has %d entries but texts has %d" %
                         (len(texts_b), len(texts)))
    return pack_batch([self._encode(t) for t in texts],
                      None if texts_b is None else
                      [self._encode(t) for t in texts_b],
                      max_seq_length, self._cls_id, self._sep_id)


def truncate_pair_lengths(len_a, len_b, max_seq_length):
  """Lengths of a and b kept by run_classifier's truncation: pairs lose a
  token from the longer side (b on ties) until [CLS] a [SEP] b [SEP] fits;
  a single text keeps max_seq_length - 2."""
  if not len_b:
    return min(len_a, max_seq_length - 2), 0
  while len_a + len_b > max_seq_length - 3:
    if len_a > len_b:
      len_a -= 1
    else:
      len_b -= 1
  return len_a, len_b


def pack_batch(encoded_a, encoded_b, max_seq_length, cls_id, sep_id):
  """Builds encode_batch's arrays from per-text (ids, spans) pairs."""
  min_len = 3 if encoded_b is not None else 2
  if max_seq_length < min_len:
    raise ValueError("max_seq_length must be at least %d, got %d" %
                     (min_len, max_seq_length))
  n, length = len(encoded_a), max_seq_length
  out = {
      "input_ids": np.zeros((n, length), np.int32),
      "input_mask": np.zeros((n, length), np.int32),
      "segment_ids": np.zeros((n, length), np.int32),
      "token_spans": np.full((n, length, 2), -1, np.int32),
      "num_pieces": np.zeros((n, 2), np.int32),
  }
  for row, (ids_a, spans_a) in enumerate(encoded_a):
    ids_b, spans_b = encoded_b[row] if encoded_b is not None else ([], [])
    out["num_pieces"][row] = (len(ids_a), len(ids_b))
    len_a, len_b = truncate_pair_lengths(len(ids_a), len(ids_b), length)
    tokens = [(cls_id, 0, (-1, -1))]
    tokens += [(i, 0, s) for i, s in zip(ids_a[:len_a], spans_a[:len_a])]
    tokens.append((sep_id, 0, (-1, -1)))
    if len_b:
      tokens += [(i, 1, s) for i, s in zip(ids_b[:len_b], spans_b[:len_b])]
      tokens.append((sep_id, 1, (-1, -1)))
    for pos, (token_id, segment, span) in enumerate(tokens):
      out["input_ids"][row, pos] = token_id
      out["input_mask"][row, pos] = 1
      out["segment_ids"][row, pos] = segment
      out["token_spans"][row, pos] = span
  return out
