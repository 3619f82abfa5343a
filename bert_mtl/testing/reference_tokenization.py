"""A small, readable pure-Python statement of the BERT tokenizer specification.

Written for the tests from ../shared/reference/original_bert.md section 3, not
from the native code: the native tokenizer must agree with it exactly.
"""

import unicodedata

CJK_RANGES = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
              (0x2A700, 0x2B73F), (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF),
              (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]


def load_vocab(path):
  """Split on "\\n" only, strip each line; a duplicate keeps its last id."""
  with open(path, "rb") as f:
    lines = f.read().decode("utf-8").split("\n")
  if lines and lines[-1] == "":
    lines.pop()
  return {line.strip(): index for index, line in enumerate(lines)}


def is_control(ch):
  if ch in "\t\n\r":
    return False
  return unicodedata.category(ch) in ("Cc", "Cf")


def is_whitespace(ch):
  return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_punctuation(ch):
  cp = ord(ch)
  if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
    return True
  return unicodedata.category(ch).startswith("P")


def is_cjk(ch):
  cp = ord(ch)
  return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def clean(text):
  out = []
  for ch in text:
    if ord(ch) in (0, 0xFFFD) or is_control(ch):
      continue
    out.append(" " if is_whitespace(ch) else ch)
  return "".join(out)


def space_cjk(text):
  return "".join(" %s " % ch if is_cjk(ch) else ch for ch in text)


def strip_accents(text):
  text = unicodedata.normalize("NFD", text)
  return "".join(ch for ch in text if unicodedata.category(ch) != "Mn")


def split_on_punctuation(text):
  pieces, current = [], []
  for ch in text:
    if is_punctuation(ch):
      if current:
        pieces.append("".join(current))
        current = []
      pieces.append(ch)
    else:
      current.append(ch)
  if current:
    pieces.append("".join(current))
  return pieces


def basic_tokenize(text, do_lower_case):
  if isinstance(text, bytes):
    text = text.decode("utf-8", "ignore")
  text = space_cjk(clean(text))
  tokens = []
  for word in text.split():
    if do_lower_case:
      word = strip_accents(word.lower())
    tokens.extend(split_on_punctuation(word))
  return " ".join(tokens).split()


def wordpiece(word, vocab, max_chars=200):
  if len(word) > max_chars:
    return ["[UNK]"]
  pieces, start = [], 0
  while start < len(word):
    end = len(word)
    while end > start:
      candidate = word[start:end] if start == 0 else "##" + word[start:end]
      if candidate in vocab:
        break
      end -= 1
    if end == start:
      return ["[UNK]"]
    pieces.append(candidate)
    start = end
  return pieces


def tokenize(text, vocab, do_lower_case):
  return [p for w in basic_tokenize(text, do_lower_case)
          for p in wordpiece(w, vocab)]
