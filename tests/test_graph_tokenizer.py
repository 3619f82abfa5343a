"""The in-graph tokenizer (core TensorFlow ops) against the native one and
the original algorithm: same ids and character spans on the edge cases of
tokenization.py, on every line of the real corpora, on tens of thousands of
random strings from all Unicode planes and on invalid UTF-8; and a
SavedModel holding it loads and runs in a process that imports nothing but
TensorFlow, with core ops only."""

import glob
import json
import os
import random
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
import tensorflow as tf

from bert_mtl import graph_tokenizer, tokenization
from bert_mtl.testing import reference_tokenization as ref
from conftest import data_dir, data_file

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# tokenization.py's edge cases (reference/original_bert.md section 3.6).
EDGE_CASES = [
    "Héllo WORLD!!", "İstanbul", "ΟΔΟΣ", "Straße", "한국어", "が",
    "e\u0301te", "foo\u200bbar", "a\u00adb", "\ufeffbom", "x\u2028y",
    "5€ and 3° ©2019", "[CLS] hi [SEP]", "ＡＢＣ１２３", "U.S.A.", "don't",
    "日本語テキスト", "ﬁ ligature", "½", "Ⅻ", "😀smile", "a\x00b\ufffdc", "ǅ",
    "ΣΟΦΟΣ.", "σΣ", "ΑΣ\u0301", "Σ", "a.Σ", "\uf900\uf901", "", "   \t\n",
    "unaffable", "unaffablez", "a" * 201, "a" * 200, "ab",
    "John Johanson's,", "2001年１２月二○○一年", "\u0345\u0300a\u0301\u0316",
    "\u1e9b\u0323", "x\u0f73\u0f75", "\U0001d15e\U0001d165",
]


def write_vocab(path, tokens):
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(tokens) + "\n")
  return str(path)


def pieces_vocab(texts, do_lower_case, rng, size=4000):
  """A vocabulary with whole words, their characters and random pieces
  (word-initial and "##") of the basic tokens of `texts`, so the greedy
  longest match takes every path."""
  words = [w for t in texts for w in ref.basic_tokenize(t, do_lower_case)]
  vocab = set()
  for w in words:
    r = rng.random()
    if r < 0.3:
      vocab.add(w)
    a = rng.randrange(len(w))
    b = rng.randrange(a, len(w)) + 1
    vocab.add(w[a:b] if a == 0 else "##" + w[a:b])
    vocab.add(w[a])
    vocab.add("##" + w[b - 1])
    if len(vocab) > size:
      break
  # Vocab lines are stripped by the loader: keep entries that survive it.
  return SPECIALS + sorted(v for v in vocab if v.strip() == v and
                           "\n" not in v and v)


def graph_encode(tokenizer, texts):
  """(ids, spans, row_splits) of the graph tokenizer on `texts`."""

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def run(text):
    ids, spans = tokenizer.tokenize(text)
    return ids.flat_values, spans.flat_values, ids.row_splits

  data = [t.encode("utf-8", "surrogatepass") if isinstance(t, str) else t
          for t in texts]
  out = [run(tf.constant(data[i:i + 4096], tf.string))
         for i in range(0, len(data), 4096)] or [run(tf.constant([], tf.string))]
  ids = np.concatenate([o[0].numpy() for o in out])
  spans = np.concatenate([o[1].numpy().reshape([-1, 2]) for o in out])
  splits, offset = [0], 0
  for o in out:
    splits.extend((o[2].numpy()[1:] + offset).tolist())
    offset = splits[-1]
  return ids, spans, np.asarray(splits)


def assert_same(vocab_file, lower, texts, what, width=False):
  native = tokenization.FullTokenizer(vocab_file, lower, width)
  graph = graph_tokenizer.GraphTokenizer(vocab_file, lower, width)
  ids, spans, splits = graph_encode(graph, texts)
  want = native.encode_ragged(texts)
  if (np.array_equal(ids, want["ids"]) and np.array_equal(
      spans, want["spans"].reshape([-1, 2])) and np.array_equal(
          splits, want["row_splits"])):
    return
  for i, text in enumerate(texts):
    got = (ids[splits[i]:splits[i + 1]].tolist(),
           spans[splits[i]:splits[i + 1]].tolist())
    lo, hi = want["row_splits"][i:i + 2]
    expected = (want["ids"][lo:hi].tolist(), want["spans"][lo:hi].tolist())
    assert got == expected, "%s, text %d %r (do_lower_case=%s)" % (
        what, i, text, lower)
  raise AssertionError("%s: row splits differ" % what)


@pytest.mark.parametrize("lower", [True, False])
def test_edge_cases_match_the_original(tmp_path, lower):
  rng = random.Random(1)
  tokens = pieces_vocab(EDGE_CASES, lower, rng)
  vocab_file = write_vocab(tmp_path / "vocab.txt", tokens)
  vocab = ref.load_vocab(vocab_file)
  graph = graph_tokenizer.GraphTokenizer(vocab_file, lower)
  ids, _, splits = graph_encode(graph, EDGE_CASES)
  inverse = {i: t for t, i in vocab.items()}
  for i, text in enumerate(EDGE_CASES):
    got = [inverse[j] for j in ids[splits[i]:splits[i + 1]]]
    assert got == ref.tokenize(text, vocab, lower), repr(text)
  assert_same(vocab_file, lower, EDGE_CASES, "edge cases")
  # WordPiece's documented outputs, independently of any implementation.
  tokens = SPECIALS + ["un", "##aff", "##able", "a", "##b"]
  graph = graph_tokenizer.GraphTokenizer(
      write_vocab(tmp_path / "wordpiece.txt", tokens), lower)
  first = lambda text: [tokens[j] for j in graph_encode(graph, [text])[0]]
  assert first("unaffable") == ["un", "##aff", "##able"]
  assert first("unaffablez") == first("a" * 201) == ["[UNK]"]
  assert first("ab") == ["a", "##b"]


def test_duplicate_vocab_entries_keep_their_last_id(tmp_path):
  """A token on two lines maps to the later line, as the original
  load_vocab's dict assignment does, in the graph as in the native
  tokenizer; the earlier line's id is never produced."""
  tokens = SPECIALS + ["foo", "##x", "bar", "foo", "##x", "[UNK]"]
  vocab_file = write_vocab(tmp_path / "dup.txt", tokens)
  vocab = ref.load_vocab(vocab_file)
  assert vocab["foo"] == 8 and vocab["##x"] == 9 and vocab["[UNK]"] == 10
  texts = ["foox bar", "foo", "qq", "barx"]
  graph = graph_tokenizer.GraphTokenizer(vocab_file, True)
  ids, _, splits = graph_encode(graph, texts)
  got = [ids[splits[i]:splits[i + 1]].tolist() for i in range(len(texts))]
  assert got == [[8, 9, 7], [8], [10], [7, 9]]
  assert graph.unk_id == 10
  assert_same(vocab_file, True, texts, "duplicate entries")


def test_special_casing_and_spans(tmp_path):
  """Length-changing lower-casing (İ -> i + U+0307), final sigma and NFD
  reordering keep each piece's span on the characters it came from."""
  tokens = SPECIALS + ["istanbul", "οδος", "σοφος", ".", "σς", "a", "##b"]
  vocab_file = write_vocab(tmp_path / "vocab.txt", tokens)
  graph = graph_tokenizer.GraphTokenizer(vocab_file, True)
  ids, spans, splits = graph_encode(graph, ["İstanbul ΟΔΟΣ", "ΣΟΦΟΣ.", "σΣ"])
  assert ids.tolist() == [5, 6, 7, 8, 9]
  assert spans.tolist() == [[0, 8], [9, 13], [0, 5], [5, 6], [0, 2]]
  assert splits.tolist() == [0, 2, 4, 5]


def corpus_lines(root):
  lines = []
  for path in sorted(glob.glob(os.path.join(root, "**", "*"),
                               recursive=True)):
    if os.path.isfile(path) and not path.endswith(".safetensors"):
      with open(path, "rb") as f:
        lines.extend(f.read().split(b"\n"))
  return lines


@pytest.mark.parametrize("lower", [True, False])
def test_every_line_of_the_real_corpora(lower):
  """Chinese vocab on every line of every file of the data directory (the
  English README and MiniLM's files included), bytes as stored (CRLF kept);
  MiniLM's uncased vocab on the same lines and the reference documents."""
  chinese = data_file("vocab/chinese_vocab.txt")
  minilm = data_file("minilm/vocab.txt")
  lines = corpus_lines(data_dir())
  texts = [l.decode("utf-8", "ignore") for l in lines]
  assert len(texts) > 100000
  assert_same(chinese, lower, texts, "corpora, Chinese vocab")
  english = corpus_lines(os.path.join(data_dir(), "..", "reference"))
  english = [l.decode("utf-8", "ignore") for l in english]
  assert_same(minilm, lower, english + texts[::20], "English, MiniLM vocab")


# The 66 noncharacters (U+FDD0..U+FDEF and the last two code points of
# every plane): valid UTF-8 that some encoders replace by U+FFFD.
NONCHARACTERS = [chr(c) for c in range(0xFDD0, 0xFDF0)] + [
    chr((plane << 16) | low) for plane in range(17) for low in (0xFFFE,
                                                                 0xFFFF)]
# Unassigned in every Unicode version (the U+xFFFE/U+xFFFF rows excluded).
UNASSIGNED = ["\u0378", "\u0379", "\u0530", "\u2fff", "\U0002fffd",
              "\U000e0080", "\U0003fffd", "\U000dffff"]


def random_text(rng):
  """A string from every plane: controls, spaces, combining marks, Greek
  sigma, special casing, CJK and its extensions, Hangul, private use,
  unassigned code points, noncharacters, emoji; sometimes one word over 200
  characters."""
  pools = [(0, 0x7F), (0x80, 0x24F), (0x300, 0x36F), (0x370, 0x3FF),
           (0x1100, 0x11FF), (0xAC00, 0xD7A3), (0x4E00, 0x9FFF),
           (0x3400, 0x4DBF), (0x20000, 0x2FA1F), (0x30000, 0x3134F),
           (0xE000, 0xF8FF), (0xF0000, 0x10FFFF), (0x1F300, 0x1FAFF),
           (0x2000, 0x206F), (0xFF00, 0xFFEF), (0xF900, 0xFAFF),
           (0x1D100, 0x1D1FF), (0x0, 0x10FFFF)]
  special = "İΣσς ßǅŉﬁΐ\u0345\u0307\u0301\u0316\u200b\u00ad\ufeff\u2028\u3000\t"
  special += "".join(NONCHARACTERS) + "".join(UNASSIGNED) + (
      "\ue000\uf8ff\U000f0000\U0010fffd")  # private use
  n = rng.choice([0, 1, 3, 10, 40, 120])
  out = []
  for _ in range(n):
    if rng.random() < 0.25:
      out.append(rng.choice(special))
      continue
    lo, hi = rng.choice(pools)
    cp = rng.randint(lo, hi)
    if 0xD800 <= cp < 0xE000:
      cp = 0x41
    out.append(chr(cp))
  if rng.random() < 0.02:
    out.append("x" * rng.randint(195, 230))
  return "".join(out)


@pytest.mark.parametrize("lower", [True, False])
def test_random_strings_from_all_planes(tmp_path, lower):
  rng = random.Random(7 + lower)
  texts = [random_text(rng) for _ in range(20000)]
  vocab_file = write_vocab(tmp_path / "vocab.txt",
                           pieces_vocab(texts, lower, rng, size=20000))
  assert_same(vocab_file, lower, texts, "random strings")
  # And the original algorithm on a sample (the native tokenizer is
  # checked against it in depth by test_fuzz).
  vocab = ref.load_vocab(vocab_file)
  graph = graph_tokenizer.GraphTokenizer(vocab_file, lower)
  sample = texts[:500]
  ids, _, splits = graph_encode(graph, sample)
  for i, text in enumerate(sample):
    assert ids[splits[i]:splits[i + 1]].tolist() == [
        vocab[t] for t in ref.tokenize(text, vocab, lower)], repr(text)


def test_invalid_utf8_drops_the_invalid_bytes(tmp_path):
  """As tokenization.py on bytes: decode("utf-8", "ignore"), never an
  error for the request."""
  rng = random.Random(3)
  valid = "aé中😀Σ \u0301".encode("utf-8")
  cases = [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
           b"abc\xe4\xb8", b"\xe4\xb8abc", b"\xf8\x88\x80\x80\x80",
           b"\x80\x80\x80", "中文".encode("utf-8")[:-1] + b"x"]
  for _ in range(3000):
    data = bytearray(rng.choice(valid) for _ in range(rng.randint(0, 30)))
    for _ in range(rng.randint(0, 4)):
      if data:
        data[rng.randrange(len(data))] = rng.randrange(256)
    if rng.random() < 0.3:
      data = data[:rng.randint(0, len(data))]
    cases.append(bytes(data))
  texts = [c.decode("utf-8", "ignore") for c in cases]
  vocab_file = write_vocab(tmp_path / "vocab.txt",
                           pieces_vocab(texts, True, rng))
  graph = graph_tokenizer.GraphTokenizer(vocab_file, True)
  ids, spans, splits = graph_encode(graph, cases)
  want = tokenization.FullTokenizer(vocab_file, True).encode_ragged(texts)
  assert ids.tolist() == want["ids"].tolist()
  assert spans.tolist() == want["spans"].reshape([-1, 2]).tolist()
  assert splits.tolist() == want["row_splits"].tolist()


CHECK = """
import json, sys
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
proto = saved_model_pb2.SavedModel()
proto.ParseFromString(open(sys.argv[1] + "/saved_model.pb", "rb").read())
ops = set()
for graph in proto.meta_graphs:
  ops.update(n.op for n in graph.graph_def.node)
  for function in graph.graph_def.library.function:
    ops.update(n.op for n in function.node_def)
model = tf.saved_model.load(sys.argv[1])
texts = json.load(open(sys.argv[2], encoding="utf-8"))
out = model.signatures["tokenize"](text=tf.constant(texts))
print(json.dumps({
    "unknown": sorted(o for o in ops if op_def_registry.get(o) is None),
    "modules": sorted(m for m in sys.modules if m.startswith(
        ("tensorflow_addons", "tensorflow_text", "bert_mtl"))),
    "ids": out["ids"].numpy().tolist(),
    "spans": out["spans"].numpy().tolist()}))
"""


def test_saved_model_loads_with_core_tensorflow_only(tmp_path):
  vocab_file = data_file("vocab/chinese_vocab.txt")
  texts = ["上海浦东开发与法制建设同步。", "Héllo WORLD!! 2001年", "",
           "İstanbul\u200b ΟΔΟΣ"]

  class Tokenize(tf.Module):

    def __init__(self):
      super().__init__()
      self.tokenizer = graph_tokenizer.GraphTokenizer(vocab_file, True)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, text):
      ids, spans = self.tokenizer.tokenize(text)
      return {"ids": ids.to_tensor(-1),
              "spans": spans.to_tensor(-1)}

  module = Tokenize()
  tf.saved_model.save(module, str(tmp_path / "model"),
                      signatures={"tokenize": module.__call__})
  with open(tmp_path / "texts.json", "w", encoding="utf-8") as f:
    json.dump(texts, f)
  check = subprocess.run(
      [sys.executable, "-c", CHECK, str(tmp_path / "model"),
       str(tmp_path / "texts.json")], capture_output=True, text=True,
      timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert check.returncode == 0, check.stderr[-3000:]
  report = json.loads(check.stdout.strip().splitlines()[-1])
  assert report["unknown"] == [] and report["modules"] == []
  native = tokenization.FullTokenizer(vocab_file, True).encode_ragged(texts)
  for i, ids in enumerate(report["ids"]):
    lo, hi = native["row_splits"][i:i + 2]
    n = hi - lo
    assert ids[:n] == native["ids"][lo:hi].tolist()
    assert set(ids[n:]) <= {-1}
    assert report["spans"][i][:n] == native["spans"][lo:hi].tolist()


def test_width_normalisation(tmp_path):
  """normalize_width reads U+FF01-U+FF5E and U+3000 as NFKC does (their
  ASCII forms), one character for one: native and graph tokenizers equal
  the original tokenizer on the normalised text, spans unchanged, on the
  corpus lines that hold full-width characters and on random strings."""
  for cp, half in tokenization.HALF_WIDTH.items():
    assert unicodedata.normalize("NFKC", chr(cp)) == chr(half)
  assert len(tokenization.HALF_WIDTH) == 95
  chinese = data_file("vocab/chinese_vocab.txt")
  # The corpora a fresh machine fetches (People's Daily writes digits and
  # Latin letters full-width).
  from bert_mtl.problems import download  # pylint: disable=g-import-not-at-top
  texts = []
  for relative in sorted(download.SOURCES):
    with open(data_file(relative), "rb") as f:
      texts.extend(l.decode("utf-8", "ignore") for l in f.read().split(b"\n"))
  wide = [t for t in texts if any(ord(c) in tokenization.HALF_WIDTH
                                  for c in t)]
  assert len(wide) > 10000
  rng = random.Random(11)
  mixed = ["".join(rng.choice("１２ａＺ！　 x年.%") for _ in range(
      rng.randint(0, 30))) + random_text(rng) for _ in range(2000)]
  normalised = tokenization.FullTokenizer(chinese, True, True)
  plain = tokenization.FullTokenizer(chinese, True)
  got = normalised.encode_ragged(wide + mixed)
  want = plain.encode_ragged([tokenization.normalize_width_of(t)
                              for t in wide + mixed])
  for key in ("ids", "spans", "row_splits"):
    assert np.array_equal(got[key], want[key]), key
  vocab = ref.load_vocab(chinese)
  for text in wide[:300] + mixed[:300]:
    assert normalised.tokenize(text) == ref.tokenize(
        tokenization.normalize_width_of(text), vocab, True), repr(text)
  assert normalised.tokenize("２００１年１２月　ＡＢＣ") == [
      "2001", "年", "12", "月", "abc"]
  for lower in (True, False):
    assert_same(chinese, lower, wide[::16 if lower else 40] + mixed,
                "width-normalised", width=True)
