"""Label alignment through character spans, windows and their merging."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bert_mtl import problems, tokenization
from bert_mtl.data import features
from bert_mtl.testing import reference_records
from conftest import data_dir, data_file


@pytest.fixture(scope="module")
def tokenizer():
  return tokenization.FullTokenizer(data_file("vocab/chinese_vocab.txt"))


def test_first_sub_token_carries_the_label(tokenizer):
  units = ["我", "爱", "Hello", "2013", "\ufffd\ufffd", "。"]
  [al] = features.align_units(tokenizer, [units])
  pieces = tokenizer.convert_ids_to_tokens(al.ids.tolist())
  assert pieces[al.first_token[0]] == "我"
  assert pieces[al.first_token[2]] == "hello"
  assert pieces[al.first_token[3]].startswith("201")
  assert al.first_token[4] == -1  # U+FFFD is deleted: no token
  assert pieces[al.first_token[5]] == "。"
  [(window, labels)] = reference_records.seq_tag_windows(
      al, [1, 2, 3, 4, 5, 6], 128)
  assert window == (0, len(al.ids))
  assert labels[al.first_token[0]] == 1 and labels[al.first_token[5]] == 6
  assert (labels == features.IGNORE).sum() == len(al.ids) - 5


def _by_spans(tokenizer, units_list):
  return features._encode_units_from_spans(tokenizer, units_list, 1)  # pylint: disable=protected-access


def _assert_same_encoding(native, reference):
  for key in ("ids", "row_splits", "first_token", "unit_splits"):
    np.testing.assert_array_equal(native[key], reference[key], err_msg=key)


@pytest.mark.parametrize("name,split,needs", [
    ("weibo_ner", "train", "weibo_ner/weiboNER_2nd_conll.train"),
    ("msra_ner", "train", None), ("pd98_pos", "train", None),
    ("pku_cws", "eval", "sighan2005/pku_test_gold.utf8"), ("edge_cases", None,
                                                           None)])
def test_native_unit_encoding_equals_the_span_alignment(tokenizer, name,
                                                        split, needs):
  """The extension's encode_units equals the alignment through character
  spans (the path sentencepiece tokenizers take) on every real corpus that
  has unit lists, and on edge cases."""
  if needs:
    data_file(needs)  # not on the package index
  if split:
    units = [e.inputs for e in problems.read(name, split, data_dir())][:3000]
    _assert_same_encoding(tokenizer.encode_units(units, 2),
                          _by_spans(tokenizer, units))
    return
  edge = [[], [""], ["", ""], [" "], ["a b", "c"], ["\ufffd", "x"],
          ["Hello", "world!", "2013年"], ["\u200b", "", "中"], ["\x00"],
          ["unaffable", "##", "[UNK]"]]
  _assert_same_encoding(tokenizer.encode_units(edge),
                        _by_spans(tokenizer, edge))
  assert tokenizer.encode_units([])["row_splits"].tolist() == [0]
  with pytest.raises(TypeError, match=r"units\[1\]\[0\] must be str"):
    tokenizer.encode_units([["a"], [b"b"]])
  with pytest.raises(TypeError, match=r"units\[0\] must be a list"):
    tokenizer.encode_units(["ab"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.text(alphabet=st.sampled_from(
    list("中文ab1 ,。\ufffd\u3000\t#") + ["\U0001F600"]), max_size=6),
                         max_size=8), max_size=6))
def test_native_unit_encoding_on_random_units(tokenizer, units):
  _assert_same_encoding(tokenizer.encode_units(units),
                        _by_spans(tokenizer, units))


def test_label_lookup(tokenizer):
  del tokenizer
  from bert_mtl import _native  # pylint: disable=g-import-not-at-top
  ids, bad = _native.lookup_labels([["B", "E"], [], ["S"]],
                                   {"B": 0, "E": 2, "S": 3})
  assert ids.dtype == np.int32 and ids.tolist() == [0, 2, 3] and bad == -1
  ids, bad = _native.lookup_labels([["B"], ["S", "X"], ["Y"]],
                                   {"B": 0, "S": 3})
  assert ids is None and bad == 1


def test_windows_cover_and_stride():
  assert features.windows(5, 10, 5) == [(0, 5)]
  assert features.windows(10, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
  assert features.windows(11, 4, 3) == [(0, 4), (3, 7), (6, 10), (9, 11)]
  with pytest.raises(ValueError, match="stride"):
    features.windows(10, 4, 5)
  spans = features.windows(10, 4, 2)
  assert features.best_window(3, spans) == 1  # centred in (2, 6)
  assert features.best_window(0, spans) == 0 and features.best_window(9, spans) == 3


@pytest.mark.parametrize("max_seq_length", [16, 64])
def test_every_character_of_long_lines_gets_exactly_one_label(
    tokenizer, max_seq_length):
  """SIGHAN PKU lines of 600+ characters through short windows: with the
  gold labels as predictions, merging returns every gold label."""
  data_file("sighan2005/pku_test_gold.utf8")  # not on the package index
  examples = problems.read("pku_cws", "eval", data_dir())
  examples = sorted(examples, key=lambda e: -len(e.inputs))[:40]
  assert len(examples[0].inputs) > 600
  label_ids = {"B": 0, "M": 1, "E": 2, "S": 3}
  alignments = features.align_units(tokenizer, [e.inputs for e in examples])
  for example, al in zip(examples, alignments):
    gold = [label_ids[t] for t in example.labels]
    feats = reference_records.seq_tag_windows(al, gold, max_seq_length)
    assert all(len(lab) <= max_seq_length - 2 for _, lab in feats)
    spans = [w for w, _ in feats]
    predictions = [lab for _, lab in feats]
    merged = features.merge_window_predictions(al, spans, predictions,
                                               fallback=3)
    assert len(merged) == len(example.inputs)
    for unit, (m, g) in enumerate(zip(merged, gold)):
      if al.first_token[unit] >= 0:
        assert m == g
      else:
        assert m == 3


def test_pack_truncates_like_run_classifier():
  ids, seg = features.pack([5, 6, 7, 8], 5, 101, 102)
  assert ids.tolist() == [101, 5, 6, 7, 102] and seg.tolist() == [0] * 5
  ids, seg = features.pack([1, 2, 3, 4], 7, 101, 102, ids_b=[9, 8, 7])
  assert ids.tolist() == [101, 1, 2, 102, 9, 8, 102]
  assert seg.tolist() == [0, 0, 0, 0, 1, 1, 1]
