"""The native FullTokenizer against the pure-Python specification."""

import collections
import gc
import glob
import multiprocessing
import os
import random
import sys
import threading
import time
import unicodedata

import numpy as np
import pytest

from bert_mtl.testing import reference_tokenization as ref
from bert_mtl import tokenization
from conftest import data_dir, data_file

CHINESE_VOCAB = "vocab/chinese_vocab.txt"
ENGLISH_VOCAB = "minilm/vocab.txt"


def write_vocab(tmp_path, tokens, name="vocab.txt"):
  path = tmp_path / name
  path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
  return str(path)


# ------------------------------------------------------------ vocabulary


def test_chinese_vocab_keeps_ids_after_line_separator_lines():
  path = data_file(CHINESE_VOCAB)
  tok = tokenization.FullTokenizer(path)
  assert len(tok.vocab) == 21128  # every line is a distinct key
  assert tok.vocab[""] == 343  # the line holding U+2028 alone, stripped
  assert tok.vocab["##"] == 13502  # "##\u2028", stripped
  assert tok.vocab == ref.load_vocab(path)
  lines = open(path, "rb").read().decode("utf-8").split("\n")
  assert tok.vocab["[UNK]"] == 100 and tok.vocab["[MASK]"] == 103
  # Every id after 343 sits on its own line of the file.
  for token, index in tok.vocab.items():
    assert lines[index].strip() == token


def test_vocab_quirks_match_original_loader(tmp_path):
  # CRLF lines, a blank line, a duplicate (last id wins), no final newline.
  path = tmp_path / "v.txt"
  path.write_bytes(b"[PAD]\r\n[UNK]\n\nfoo\n  bar \nfoo\n##x")
  tok = tokenization.FullTokenizer(str(path))
  assert tok.vocab == {"[PAD]": 0, "[UNK]": 1, "": 2, "foo": 5, "bar": 4,
                       "##x": 6}
  assert tok.vocab == ref.load_vocab(str(path))
  with pytest.raises(KeyError):
    tok.convert_ids_to_tokens([3])  # unreachable id, as in the original
  assert tok.tokenize("foox bar") == ["foo", "##x", "bar"]
  assert tok.convert_tokens_to_ids(["foo", "##x"]) == [5, 6]


def test_bad_vocab_files_give_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError):
    tokenization.FullTokenizer(str(tmp_path / "missing.txt"))
  empty = tmp_path / "empty.txt"
  empty.write_bytes(b"")
  with pytest.raises(ValueError, match="empty"):
    tokenization.FullTokenizer(str(empty))
  no_unk = write_vocab(tmp_path, ["[PAD]", "a"], "no_unk.txt")
  with pytest.raises(ValueError, match=r"no \[UNK\]"):
    tokenization.FullTokenizer(no_unk)
  bad = tmp_path / "bad.txt"
  bad.write_bytes(b"[UNK]\nok\n\xff\xfe\n")
  with pytest.raises(ValueError, match="line 3 is not valid UTF-8"):
    tokenization.FullTokenizer(str(bad))


def test_vocab_without_cls_tokenizes_but_cannot_encode(tmp_path):
  tok = tokenization.FullTokenizer(write_vocab(tmp_path, ["[UNK]", "a"]))
  assert tok.tokenize("a b") == ["a", "[UNK]"]
  with pytest.raises(ValueError, match=r"\[CLS\]"):
    tok.encode_batch(["a"])


# ------------------------------------------------------ the edge-case table

# (input, uncased basic tokens, cased basic tokens): original_bert.md 3.6.
EDGE_CASES = [
    ("Héllo WORLD!!", ["hello", "world", "!", "!"],
     ["Héllo", "WORLD", "!", "!"]),
    ("İstanbul", ["istanbul"], ["İstanbul"]),
    ("ΟΔΟΣ", ["οδος"], ["ΟΔΟΣ"]),
    ("Straße", ["straße"], ["Straße"]),
    ("한국어", [unicodedata.normalize("NFD", "한국어")], ["한국어"]),
    ("が", ["か"], ["が"]),
    ("e\u0301te", ["ete"], ["e\u0301te"]),
    ("foo\u200bbar", ["foobar"], ["foobar"]),
    ("a\u00adb", ["ab"], ["ab"]),
    ("\ufeffbom", ["bom"], ["bom"]),
    ("x\u2028y", ["x", "y"], ["x", "y"]),
    ("5€ and 3° ©2019", ["5€", "and", "3°", "©2019"],
     ["5€", "and", "3°", "©2019"]),
    ("[CLS] hi [SEP]", ["[", "cls", "]", "hi", "[", "sep", "]"],
     ["[", "CLS", "]", "hi", "[", "SEP", "]"]),
    ("ＡＢＣ１２３", ["ａｂｃ１２３"], ["ＡＢＣ１２３"]),
    ("U.S.A.", ["u", ".", "s", ".", "a", "."], ["U", ".", "S", ".", "A", "."]),
    ("don't", ["don", "'", "t"], ["don", "'", "t"]),
    ("日本語テキスト", ["日", "本", "語", "テキスト"], ["日", "本", "語", "テキスト"]),
    ("ﬁ ligature", ["ﬁ", "ligature"], ["ﬁ", "ligature"]),
    ("½", ["½"], ["½"]),
    ("Ⅻ", ["ⅻ"], ["Ⅻ"]),
    ("😀smile", ["😀smile"], ["😀smile"]),
    ("a\x00b\ufffdc", ["abc"], ["abc"]),
    ("ǅ", ["ǆ"], ["ǅ"]),
    ("ΣΟΦΟΣ.", ["σοφος", "."], ["ΣΟΦΟΣ", "."]),
    ("\uf900\uf901", ["\u8c48", "\u66f4"], ["\uf900", "\uf901"]),
    ("。", ["。"], ["。"]),
    ("$+<=>^`|~", list("$+<=>^`|~"), list("$+<=>^`|~")),
    ("  \t\r\n ", [], []),
    ("", [], []),
]


@pytest.mark.parametrize("text,uncased,cased", EDGE_CASES)
def test_edge_case_table(tmp_path, text, uncased, cased):
  # A vocab holding every expected token makes WordPiece the identity, so
  # tokenize() shows the basic tokens.
  assert ref.basic_tokenize(text, True) == uncased
  assert ref.basic_tokenize(text, False) == cased
  vocab = write_vocab(tmp_path, ["[UNK]"] + sorted(set(uncased + cased)))
  assert tokenization.FullTokenizer(vocab, True).tokenize(text) == uncased
  assert tokenization.FullTokenizer(vocab, False).tokenize(text) == cased


def test_final_sigma_rule(tmp_path):
  # Capital sigma becomes final only after a cased letter (skipping
  # case-ignorable ones such as the apostrophe) and before none.
  cases = ["ΑΣ", "Σ", "ΑΣΑ", "Α'Σ", "Α'Σ'", "ΑΣ'Α", "1Σ", "Α\u0301Σ", "ΑΣ\u0301"]
  words = sorted({t for c in cases for t in ref.basic_tokenize(c, True)})
  assert "α'ς" not in words and "ας" in words  # the rule is exercised
  tok = tokenization.FullTokenizer(write_vocab(tmp_path, ["[UNK]"] + words))
  for text in cases:
    assert tok.tokenize(text) == ref.basic_tokenize(text, True), text


def test_wordpiece_rules(tmp_path):
  vocab = write_vocab(tmp_path, ["[UNK]", "un", "##aff", "##able", "a", "##b"])
  tok = tokenization.FullTokenizer(vocab)
  assert tok.tokenize("unaffable") == ["un", "##aff", "##able"]
  assert tok.tokenize("unaffablez") == ["[UNK]"]
  assert tok.tokenize("a" * 201) == ["[UNK]"]  # more than 200 characters
  assert tok.tokenize("ab") == ["a", "##b"]
  assert tok.tokenize("a" + "b" * 199) == ["a"] + ["##b"] * 199  # 200 is fine


def test_readme_examples_with_real_uncased_vocab():
  tok = tokenization.FullTokenizer(data_file(ENGLISH_VOCAB), True)
  assert tok.tokenize("John Johanson's,") == [
      "john", "johan", "##son", "'", "s", ","]
  ids = tok.convert_tokens_to_ids(
      tok.tokenize("Who was Jim Henson ? ||| Jim Henson was a puppeteer"))
  assert ids[:5] == [2040, 2001, 3958, 27227, 1029]
  assert ids[-2:] == [13997, 11510]


def test_bytes_input_drops_invalid_utf8(tmp_path):
  vocab = write_vocab(tmp_path, ["[UNK]", "ab", "c"])
  tok = tokenization.FullTokenizer(vocab)
  assert tok.tokenize(b"a\xffb c") == ["ab", "c"]
  assert tok.tokenize(b"a\xffb c") == ref.tokenize(b"a\xffb c",
                                                   ref.load_vocab(vocab), True)
  with pytest.raises(TypeError, match="str or bytes"):
    tok.tokenize(12)


# ---------------------------------------------------- real corpora, exactly

def corpus_files():
  """Every text file of the real corpora (one test case per file; the same
  cases with or without the data directory: those not on the package
  index skip without it)."""
  from bert_mtl.problems import download  # pylint: disable=g-import-not-at-top
  fetched = [r for r in download.SOURCES if not r.startswith("vocab/")]
  return sorted(fetched + [
      "weibo_ner/weiboNER_2nd_conll.train", "weibo_ner/weiboNER_2nd_conll.dev",
      "weibo_ner/weiboNER_2nd_conll.test", "sighan2005/pku_test_gold.utf8"])


def english_lines():
  """Real English text: the reference docs beside the data, Python's licence
  and the docstrings of the standard library."""
  lines = []
  ref_dir = os.path.join(os.path.dirname(data_dir()), "reference")
  for path in sorted(glob.glob(os.path.join(ref_dir, "*.md"))):
    lines += open(path, encoding="utf-8").read().split("\n")
  import argparse, email, json, pydoc, unittest  # pylint: disable=g-import-not-at-top,multiple-imports
  for module in (argparse, email, json, pydoc, unittest, collections, os,
                 threading):
    for name in dir(module):
      doc = getattr(getattr(module, name), "__doc__", None)
      if isinstance(doc, str):
        lines += doc.split("\n")
  license_path = os.path.join(sys.base_prefix, "lib", "python3.11",
                              "LICENSE.txt")
  if os.path.exists(license_path):
    lines += open(license_path, encoding="utf-8").read().split("\n")
  return lines


def _reference_tokens(args):
  lines, vocab_path, lower = args
  vocab = ref.load_vocab(vocab_path)
  return [ref.tokenize(line, vocab, lower) for line in lines]


def assert_same_as_reference(lines, vocab_path, lower):
  """Tokens and ids of every line equal the reference (2 processes)."""
  lines = sorted(set(lines))  # identical lines give identical tokens
  chunks = [lines[i::2] for i in range(2)]
  with multiprocessing.get_context("fork").Pool(2) as pool:
    expected_chunks = pool.map(_reference_tokens,
                               [(c, vocab_path, lower) for c in chunks])
  tok = tokenization.FullTokenizer(vocab_path, lower)
  for chunk, expected in zip(chunks, expected_chunks):
    ragged = tok.encode_ragged(chunk, num_threads=2)
    splits = ragged["row_splits"]
    for i, (line, want) in enumerate(zip(chunk, expected)):
      got = tok.tokenize(line)
      assert got == want, "line %r: %r != %r" % (line, got, want)
      ids = ragged["ids"][splits[i]:splits[i + 1]].tolist()
      assert ids == tok.convert_tokens_to_ids(want), line


@pytest.mark.slow
@pytest.mark.parametrize("lower", [True, False], ids=["uncased", "cased"])
@pytest.mark.parametrize("corpus", corpus_files())
def test_every_line_of_real_chinese_corpora(corpus, lower):
  path = data_file(corpus)
  vocab = data_file(CHINESE_VOCAB)
  lines = open(path, "rb").read().decode("utf-8").split("\n")
  assert_same_as_reference(lines, vocab, lower)


@pytest.mark.slow
@pytest.mark.parametrize("lower", [True, False], ids=["uncased", "cased"])
def test_english_text_with_real_uncased_vocab(lower):
  vocab = data_file(ENGLISH_VOCAB)
  lines = english_lines()
  assert len(lines) > 2000
  assert_same_as_reference(lines, vocab, lower)


# ------------------------------------------------------- random strings

RANDOM_POOLS = [
    (0x20, 0x7E), (0x80, 0x24F), (0x300, 0x36F),  # ASCII, Latin, combining
    (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),  # Greek, Cyrillic, RTL
    (0x900, 0xDFF), (0x1100, 0x11FF), (0x1E00, 0x1FFF),  # Indic, Jamo, Greek+
    (0x2000, 0x206F), (0x2070, 0x2BFF), (0x3000, 0x30FF),  # punct, symbols
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),  # CJK, Hangul
    (0xD800, 0xDFFF), (0xE000, 0xF8FF), (0xF900, 0xFAFF),  # surrogates, PUA
    (0xFB00, 0xFFFF), (0x10000, 0x1FFFF), (0x20000, 0x2FFFF),  # SMP, SIP
    (0x30000, 0x3FFFF), (0x40000, 0xDFFFF), (0xE0000, 0xE01EF),  # TIP, tags
    (0xF0000, 0x10FFFF), (0x0, 0x1F), (0x7F, 0x9F),  # PUA-A/B, controls
]
SPECIAL_CHARS = "\u03a3\u0130\u00ad\u200b\u200d\ufeff\u2028\u2029\u00a0\u3000 '.\t"


def random_text(rng):
  length = rng.choice([0, 1, 2, 5, 10, 30, 80, 250])
  chars = []
  for _ in range(length):
    r = rng.random()
    if r < 0.15:
      chars.append(rng.choice(SPECIAL_CHARS))
    elif r < 0.3:
      chars.append(" ")
    else:
      lo, hi = rng.choice(RANDOM_POOLS)
      chars.append(chr(rng.randint(lo, hi)))
  return "".join(chars)


def random_vocab_tokens(rng, texts):
  """A vocab of [UNK] plus pieces of the texts, so WordPiece both matches
  and fails in many ways."""
  tokens = {"[UNK]", "[CLS]", "[SEP]"}
  for text in texts:
    for word in ref.basic_tokenize(text, rng.random() < 0.5):
      if not word:
        continue
      a = rng.randint(0, len(word) - 1)
      b = rng.randint(a + 1, min(len(word), a + 6))
      tokens.add(word[a:b] if a == 0 or rng.random() < 0.3 else
                 "##" + word[a:b])
  return sorted(tokens)


@pytest.mark.parametrize("lower", [True, False], ids=["uncased", "cased"])
def test_random_strings_from_all_planes(tmp_path, lower):
  rng = random.Random(1234 + lower)
  texts = [random_text(rng) for _ in range(20000)]
  texts += ["x" * n for n in (199, 200, 201)] + ["\u0130" * 150]
  tokens = random_vocab_tokens(rng, texts[:4000])
  path = tmp_path / "v.txt"
  # surrogatepass: lone surrogates can be vocab entries of a Python dict
  # only, never of a UTF-8 file, so leave them out of the file.
  tokens = [t for t in tokens if not any(0xD800 <= ord(c) < 0xE000 for c in t)]
  path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
  vocab = ref.load_vocab(str(path))
  tok = tokenization.FullTokenizer(str(path), lower)
  for text in texts:
    assert tok.tokenize(text) == ref.tokenize(text, vocab, lower), repr(text)
  check_spans(tok, texts, lower)


def check_spans(tok, texts, lower):
  """Every piece's span lies in its text, starts never go back, and where the
  piece's characters map one to one onto input characters (no expansion by
  lower-casing/NFD), the span's text normalises to exactly the piece."""
  ragged = tok.encode_ragged(texts)
  splits, spans, ids = ragged["row_splits"], ragged["spans"], ragged["ids"]
  assert splits[-1] == len(ids) == len(spans)
  for i, text in enumerate(texts):
    pieces = tok.convert_ids_to_tokens(ids[splits[i]:splits[i + 1]].tolist())
    previous_start = 0
    for piece, (start, end) in zip(pieces, spans[splits[i]:splits[i + 1]]):
      assert 0 <= start < end <= len(text)
      assert start >= previous_start
      previous_start = start
      if piece == "[UNK]":
        continue
      surface = piece[2:] if piece.startswith("##") else piece
      covered = ref.clean(text[start:end])
      if lower:
        covered = ref.strip_accents(covered.lower())
      # (Sigma's final form depends on context outside the span.)
      sigma = set("\u03c2\u03c3") & set(surface + covered)
      if len(covered) == len(surface) and not sigma:
        assert covered == surface, (text, piece, start, end)


def test_spans_round_trip_on_real_text():
  tok = tokenization.FullTokenizer(data_file(CHINESE_VOCAB), True)
  lines = open(data_file("sighan2005/pku_test_gold.utf8"),
               encoding="utf-8").read().split("\n")[:500]
  ragged = tok.encode_ragged(lines)
  for i, line in enumerate(lines):
    lo, hi = ragged["row_splits"][i:i + 2]
    pieces = tok.convert_ids_to_tokens(ragged["ids"][lo:hi].tolist())
    for piece, (start, end) in zip(pieces, ragged["spans"][lo:hi]):
      if piece != "[UNK]":
        assert line[start:end].lower() == piece.lstrip("#") or piece == "##"


# ------------------------------------------------------------ batch API

def reference_encode(tokens_a, tokens_b, max_len, vocab):
  """run_classifier.convert_single_example, written out for the test."""
  tokens_a, tokens_b = list(tokens_a), list(tokens_b or [])
  if tokens_b:
    while len(tokens_a) + len(tokens_b) > max_len - 3:
      (tokens_a if len(tokens_a) > len(tokens_b) else tokens_b).pop()
  else:
    tokens_a = tokens_a[:max_len - 2]
  tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
  segments = [0] * len(tokens)
  if tokens_b:
    tokens += tokens_b + ["[SEP]"]
    segments += [1] * (len(tokens_b) + 1)
  ids = [vocab[t] for t in tokens]
  pad = max_len - len(ids)
  return ids + [0] * pad, [1] * len(ids) + [0] * pad, segments + [0] * pad


@pytest.mark.parametrize("max_len", [3, 8, 32, 128])
def test_encode_batch_matches_run_classifier(max_len):
  path = data_file(ENGLISH_VOCAB)
  tok = tokenization.FullTokenizer(path)
  vocab = ref.load_vocab(path)
  rng = random.Random(max_len)
  words = english_lines()[:3000]
  texts_a = [" ".join(rng.sample(words, rng.randint(0, 3))) for _ in range(300)]
  texts_b = [" ".join(rng.sample(words, rng.randint(0, 3))) for _ in range(300)]
  for b_texts in (None, texts_b):
    out = tok.encode_batch(texts_a, b_texts, max_seq_length=max_len,
                           num_threads=2)
    assert out["input_ids"].shape == (300, max_len)
    assert out["input_ids"].dtype == np.int32
    for i, text in enumerate(texts_a):
      ta = ref.tokenize(text, vocab, True)
      tb = ref.tokenize(b_texts[i], vocab, True) if b_texts else []
      ids, mask, seg = reference_encode(ta, tb, max_len, vocab)
      assert out["input_ids"][i].tolist() == ids
      assert out["input_mask"][i].tolist() == mask
      assert out["segment_ids"][i].tolist() == seg
      assert out["num_pieces"][i].tolist() == [len(ta), len(tb)]


def test_encode_batch_spans_and_threads_agree():
  tok = tokenization.FullTokenizer(data_file(CHINESE_VOCAB))
  lines = open(data_file("weibo_ner/weiboNER_2nd_conll.train"),
               encoding="utf-8").read().split("\n")[:2000]
  one = tok.encode_batch(lines, max_seq_length=16, num_threads=1)
  two = tok.encode_batch(tuple(lines), max_seq_length=16, num_threads=3)
  for key in one:
    np.testing.assert_array_equal(one[key], two[key])
  ragged = tok.encode_ragged(lines)
  for i in range(len(lines)):
    lo, hi = ragged["row_splits"][i:i + 2]
    n = min(hi - lo, 14)
    np.testing.assert_array_equal(one["token_spans"][i, 1:1 + n],
                                  ragged["spans"][lo:lo + n])
    assert (one["token_spans"][i, 0] == -1).all()


def test_encode_batch_bad_arguments():
  tok = tokenization.FullTokenizer(data_file(ENGLISH_VOCAB))
  with pytest.raises(ValueError, match="max_seq_length must be at least 3"):
    tok.encode_batch(["a"], ["b"], max_seq_length=2)
  with pytest.raises(ValueError, match="max_seq_length must be at least 2"):
    tok.encode_batch(["a"], max_seq_length=1)
  with pytest.raises(ValueError, match="texts_b has 2 entries"):
    tok.encode_batch(["a"], ["b", "c"])
  with pytest.raises(TypeError, match=r"texts\[1\] must be str or bytes"):
    tok.encode_batch(["a", None])
  with pytest.raises(ValueError, match="num_threads"):
    tok.encode_batch(["a"], num_threads=0)
  empty = tok.encode_batch(["", "   "], max_seq_length=4)
  assert empty["input_ids"].tolist() == [[101, 102, 0, 0]] * 2
  assert tok.encode_batch([], max_seq_length=4)["input_ids"].shape == (0, 4)


# ------------------------------------------------------------ bad input

def test_lone_surrogates_nul_and_empty(tmp_path):
  vocab_path = write_vocab(tmp_path, ["[UNK]", "[CLS]", "[SEP]", "a", "b"])
  vocab = ref.load_vocab(vocab_path)
  for lower in (True, False):
    tok = tokenization.FullTokenizer(vocab_path, lower)
    for text in ["\ud800", "a\udfffb", "a \ud83d b", "\x00", "a\x00b", "",
                 "\ud800\udc00", "\u03a3\ud800"]:
      assert tok.tokenize(text) == ref.tokenize(text, vocab, lower), repr(text)
    out = tok.encode_batch(["a\ud800 b"])
    assert out["input_ids"][0, :4].tolist() == [1, 0, 4, 2]


def test_ten_megabyte_strings():
  tok = tokenization.FullTokenizer(data_file(ENGLISH_VOCAB))
  words = "the quick brown fox jumps over the lazy dog . "
  big = words * (10_000_000 // len(words))
  assert len(big) >= 9_900_000
  ragged = tok.encode_ragged([big])
  assert len(ragged["ids"]) == 10 * big.count("the quick")
  assert ragged["spans"][-1].tolist() == [len(big) - 2, len(big) - 1]
  one_word = "a" * 10_000_000  # one enormous word: a single [UNK]
  assert tok.tokenize(one_word) == ["[UNK]"]
  cjk = "中" * 10_000_000  # ten million one-character words
  assert len(tok.encode_ragged([cjk])["ids"]) == 10_000_000


def _rss_kb():
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_no_memory_leak():
  tok = tokenization.FullTokenizer(data_file(ENGLISH_VOCAB))
  texts = ["Héllo wörld, this is a test of ΣΟΦΟΣ and 中文 %d" % i
           for i in range(200)]

  def work():
    for _ in range(50):
      tok.encode_batch(texts, texts, max_seq_length=32)
      tok.encode_ragged(texts)
      for t in texts[:20]:
        tok.tokenize(t)
        tok.tokenize(t.encode("utf-8"))
      try:
        tok.encode_batch(texts + [3])
      except TypeError:
        pass
  work()
  gc.collect()
  before = _rss_kb()
  for _ in range(3):
    work()
  gc.collect()
  assert _rss_kb() - before < 4096


def test_batch_releases_the_gil():
  tok = tokenization.FullTokenizer(data_file(ENGLISH_VOCAB))
  texts = ["Héllo wörld, this is a long sentence of english words %d" % i
           for i in range(20000)]
  start = time.perf_counter()
  tok.encode_batch(texts, max_seq_length=64)
  single = time.perf_counter() - start
  ticks = 0
  worker = threading.Thread(
      target=lambda: [tok.encode_batch(texts, max_seq_length=64)
                      for _ in range(3)])
  worker.start()
  while worker.is_alive():
    ticks += 1
  worker.join()
  # With the GIL held for the whole call this loop could not run at all
  # while the worker tokenizes (3 x `single` seconds).
  assert ticks > 1000, (ticks, single)
