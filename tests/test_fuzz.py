"""Property-based fuzzing of the native extension against the reference.

Any str (lone surrogates included) or bytes must tokenize exactly like the
pure-Python specification, and the batch APIs must agree with tokenize().
tools/fuzz_tokenizer.py runs the same oracle under atheris for longer runs.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bert_mtl.testing import reference_tokenization as ref
from bert_mtl import tokenization
from conftest import data_file

ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                         blacklist_categories=())
TEXT = st.text(alphabet=ANY_CHAR, max_size=300) | st.text(
    alphabet=st.sampled_from("aAbΣσ\u0301\u0130 .'\u200b中\ud800"), max_size=60)


@pytest.fixture(scope="module")
def tokenizers():
  path = data_file("minilm/vocab.txt")
  return {lower: tokenization.FullTokenizer(path, lower)
          for lower in (True, False)}, ref.load_vocab(path)


@settings(max_examples=1500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT, lower=st.booleans())
def test_any_str_matches_reference(tokenizers, text, lower):
  toks, vocab = tokenizers
  assert toks[lower].tokenize(text) == ref.tokenize(text, vocab, lower)


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_any_bytes_matches_reference(tokenizers, data):
  toks, vocab = tokenizers
  assert toks[True].tokenize(data) == ref.tokenize(data, vocab, True)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXT, max_size=8), pairs=st.lists(TEXT, max_size=8),
       max_len=st.integers(3, 40), threads=st.integers(1, 4))
def test_batch_apis_agree_with_tokenize(tokenizers, texts, pairs, max_len,
                                        threads):
  toks, _ = tokenizers
  tok = toks[True]
  pairs = (pairs + [""] * len(texts))[:len(texts)]
  ragged = tok.encode_ragged(texts, num_threads=threads)
  for i, text in enumerate(texts):
    lo, hi = ragged["row_splits"][i:i + 2]
    assert ragged["ids"][lo:hi].tolist() == tok.convert_tokens_to_ids(
        tok.tokenize(text))
  out = tok.encode_batch(texts, pairs, max_seq_length=max_len,
                         num_threads=threads)
  assert out["input_ids"].shape == (len(texts), max_len)
  assert (out["input_mask"].sum(axis=1) <= max_len).all()
