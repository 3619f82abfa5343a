"""The graph pieces of the text signatures against the Python path they
replace: units and first tokens (features.text_units / encode_units), the
window choice (features.best_windows) and the whole-text Viterbi
(crf.viterbi_decode, the native decoder), on varied inputs."""

import random

import numpy as np
import pytest
import tensorflow as tf

from bert_mtl import crf, graph_tokenizer, text_serving, tokenization
from bert_mtl.data import features
from conftest import data_file
from test_graph_tokenizer import (NONCHARACTERS, SPECIALS, random_text,
                                  write_vocab)


def test_best_window_is_the_predictors_choice():
  for max_seq_length in (5, 8, 9, 32, 33):
    for n in range(0, 130):
      spans = features.window_spans(n, max_seq_length)
      num_windows, stride, length = text_serving.window_plan(
          tf.constant([n]), max_seq_length)
      assert int(num_windows[0]) == len(spans), (n, max_seq_length)
      assert [(w * stride, min(n, w * stride + length))
              for w in range(len(spans))] == [tuple(s) for s in spans]
      if not n:
        continue
      got = text_serving.best_window(
          tf.range(n), tf.fill([n], n), tf.fill([n], len(spans)), stride,
          length).numpy().tolist()
      assert got == features.best_windows(np.arange(n), spans), (
          n, max_seq_length)


@pytest.mark.parametrize("constrained", [False, True])
def test_viterbi_equals_the_native_decoder(constrained):
  rng = np.random.RandomState(5)
  labels = ["B-PER", "M-PER", "E-PER", "S-PER", "B-LOC", "M-LOC", "E-LOC",
            "S-LOC", "O"]
  k = len(labels)
  for trial in range(30):
    batch, steps = rng.randint(1, 6), rng.randint(1, 40)
    # Small integers: many exact ties, which must go to the lowest tag.
    potentials = rng.randint(-3, 4, [batch, steps, k]).astype(np.float32)
    if trial % 2:
      potentials += rng.randn(batch, steps, k).astype(np.float32)
    transitions = rng.randint(-2, 3, [k, k]).astype(np.float32)
    lengths = rng.randint(0, steps + 1, batch).astype(np.int32)
    kwargs, start, end = {}, None, None
    graph_transitions = transitions
    if constrained:
      allowed, allowed_start, allowed_end = crf.scheme_constraints(labels,
                                                                   "BMES")
      kwargs = dict(allowed_transitions=allowed, allowed_start=allowed_start,
                    allowed_end=allowed_end)
      graph_transitions = np.where(allowed, transitions,
                                   np.float32(crf.NEG_INF))
      to_scores = lambda m: tf.constant(np.where(m, 0, crf.NEG_INF).astype(
          np.float32))
      start, end = to_scores(allowed_start), to_scores(allowed_end)
    want, _ = crf.viterbi_decode(potentials, transitions, lengths, **kwargs)
    got = crf.viterbi_graph(tf.constant(potentials),
                               tf.constant(graph_transitions),
                               tf.constant(lengths), start, end)
    np.testing.assert_array_equal(got.numpy(), want, err_msg=str(trial))


def test_viterbi_of_no_positions():
  got = crf.viterbi_graph(tf.zeros([2, 0, 3]), tf.zeros([3, 3]),
                             tf.constant([0, 0]))
  assert got.shape == (2, 0)


def _units_in_graph(tokenizer, texts, kind):
  chars = graph_tokenizer.decode(tf.constant(
      [t.encode("utf-8") for t in texts]))
  joined, spans, starts = text_serving.unit_inputs(tokenizer, chars, kind)
  ids, token_spans = tokenizer.tokenize_chars(joined)
  first = text_serving.first_tokens(token_spans, starts)
  joined = ["".join(map(chr, row)) for row in joined.to_list()]
  return joined, spans.to_list(), ids.to_list(), first.to_list()


@pytest.mark.parametrize("kind", ["char", "word"])
def test_units_and_first_tokens_are_the_predictors(tmp_path, kind):
  rng = random.Random(11)
  texts = [random_text(rng) for _ in range(1500)] + [
      "", "  ", "上海 浦东ABC开发", " New  York,x ", "a\x1cb\u200bc",
      "２００１年 12月", "\u0301a \u0301", "x" * 230,
      "a\uffffb \ufdd0c\U0010ffff d\U0001fffe", "".join(NONCHARACTERS)]
  vocab_file = write_vocab(tmp_path / "vocab.txt", SPECIALS + sorted(
      {c for t in texts for c in t.lower() if c.strip() and c == c.strip()}
      | {"##" + c for c in "abcxyz"} | {"ab", "abc", "new", "york"}))
  tokenizer = graph_tokenizer.GraphTokenizer(vocab_file, True)
  joined, spans, ids, first = _units_in_graph(tokenizer, texts, kind)
  native = tokenization.FullTokenizer(vocab_file, True)
  units = [features.text_units(t, kind) for t in texts]
  alignments = features.align_units(native, [[u for u, _ in us]
                                             for us in units])
  for i, text in enumerate(texts):
    assert joined[i] == " ".join(u for u, _ in units[i])
    assert spans[i] == [[o, o + len(u)] for u, o in units[i]], repr(text)
    assert ids[i] == alignments[i].ids.tolist(), repr(text)
    assert first[i] == alignments[i].first_token.tolist(), repr(text)


def test_units_on_real_sentences():
  vocab_file = data_file("vocab/chinese_vocab.txt")
  with open(data_file("sighan2005/pku_test_gold.utf8"), encoding="utf-8") as f:
    texts = [l.replace("  ", "") for l in f.read().splitlines()[:400]]
  tokenizer = graph_tokenizer.GraphTokenizer(vocab_file, True)
  native = tokenization.FullTokenizer(vocab_file, True)
  for kind in ("char", "word"):
    _, spans, ids, first = _units_in_graph(tokenizer, texts, kind)
    units = [features.text_units(t, kind) for t in texts]
    alignments = features.align_units(native, [[u for u, _ in us]
                                               for us in units])
    assert ids == [a.ids.tolist() for a in alignments]
    assert first == [a.first_token.tolist() for a in alignments]


def test_pair_truncation_is_run_classifiers_loop():
  for max_seq_length in (3, 4, 5, 8, 9, 16):
    grid = [(a, b) for a in range(0, 20) for b in range(0, 20)]
    len_a, len_b = text_serving.truncate_pair_lengths(
        tf.constant([a for a, _ in grid]), tf.constant([b for _, b in grid]),
        max_seq_length)
    got = list(zip(len_a.numpy().tolist(), len_b.numpy().tolist()))
    assert got == [tokenization.truncate_pair_lengths(a, b, max_seq_length)
                   for a, b in grid], max_seq_length


def test_pair_rows_are_the_records_rows():
  """[CLS] a [SEP] b [SEP] rows, segment ids and masks as features.pack
  builds the training records, on random lengths (b empty included)."""
  rng = np.random.RandomState(2)
  cls_id, sep_id = 101, 102
  for max_seq_length in (5, 9, 16):
    texts_a = [rng.randint(200, 300, rng.randint(0, 20)) for _ in range(40)]
    texts_b = [rng.randint(300, 400, rng.randint(0, 12) * (k % 3 != 0))
               for k in range(40)]
    model = type("Model", (), {"max_seq_length": max_seq_length,
                               "cls_id": cls_id, "sep_id": sep_id})()
    ragged = lambda rows: tf.ragged.constant([r.tolist() for r in rows],
                                             tf.int32, row_splits_dtype=tf.int64)
    inputs, num_windows = text_serving.TextModel._pair_rows(  # pylint: disable=protected-access
        model, ragged(texts_a), ragged(texts_b))
    assert num_windows.numpy().tolist() == [1] * 40
    for row, (a, b) in enumerate(zip(texts_a, texts_b)):
      ids, segments = features.pack(a.tolist(), max_seq_length, cls_id,
                                    sep_id, b.tolist())
      n = len(ids)
      assert inputs["input_ids"][row, :n].numpy().tolist() == ids.tolist()
      assert inputs["segment_ids"][row, :n].numpy().tolist() == (
          segments.tolist())
      mask = inputs["input_mask"][row].numpy()
      assert mask[:n].all() and not mask[n:].any()
      assert not inputs["input_ids"][row, n:].numpy().any()
      assert not inputs["tag_mask"][row].numpy().any()
