"""SentencePieceTokenizer: the FullTokenizer interface over a trained model."""

import unicodedata

import pytest

from bert_mtl import tokenization
from conftest import data_file

spm = pytest.importorskip("sentencepiece")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
  """A small unigram model trained on real Chinese reviews."""
  lines = open(data_file("sentiment/pos.txt"), encoding="utf-8").read()
  lines = [l for l in lines.split("\n") if l.strip()][:3000]
  out = tmp_path_factory.mktemp("spm")
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(lines), model_prefix=str(out / "m"),
      vocab_size=4000, user_defined_symbols=["[CLS]", "[SEP]"],
      character_coverage=0.99, minloglevel=2)
  return str(out / "m.model"), lines


def test_tokens_ids_and_round_trip(model_file):
  path, lines = model_file
  tok = tokenization.SentencePieceTokenizer(path)
  sp = spm.SentencePieceProcessor(model_file=path)
  for line in lines[:200]:
    pieces = tok.tokenize(line)
    assert pieces == sp.encode(line, out_type=str)
    ids = tok.convert_tokens_to_ids(pieces)
    assert ids == sp.encode(line)
    unk = tok.vocab["<unk>"]
    assert tok.convert_ids_to_tokens(ids) == [
        "<unk>" if i == unk else p for p, i in zip(pieces, ids)]


def test_encode_batch_spans_cover_the_text(model_file):
  path, lines = model_file
  tok = tokenization.SentencePieceTokenizer(path)
  texts = lines[:100]
  out = tok.encode_batch(texts, texts[::-1], max_seq_length=64)
  cls_id, sep_id = tok.vocab["[CLS]"], tok.vocab["[SEP]"]
  assert (out["input_ids"][:, 0] == cls_id).all()
  ragged = tok.encode_ragged(texts)
  for i, text in enumerate(texts):
    lo, hi = ragged["row_splits"][i:i + 2]
    for piece_id, (start, end) in zip(ragged["ids"][lo:hi],
                                      ragged["spans"][lo:hi]):
      # sentencepiece's default normaliser is NFKC.
      piece = tok.inv_vocab[int(piece_id)].lstrip("\u2581")
      surface = unicodedata.normalize("NFKC", text[start:end]).strip()
      assert (surface == unicodedata.normalize("NFKC", piece) or
              piece_id == tok.vocab["<unk>"])
    n = int(out["input_mask"][i].sum())
    assert out["input_ids"][i, n - 1] == sep_id
    assert n <= 64 and (out["input_ids"][i, n:] == 0).all()
  assert out["segment_ids"].max() == 1


def test_bad_model_file(tmp_path):
  bad = tmp_path / "bad.model"
  bad.write_bytes(b"not a model")
  with pytest.raises(ValueError, match="cannot load sentencepiece model"):
    tokenization.SentencePieceTokenizer(str(bad))
  with pytest.raises(ValueError, match="cannot load"):
    tokenization.SentencePieceTokenizer(str(tmp_path / "missing.model"))
