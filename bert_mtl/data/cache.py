"""A content-keyed, crash-safe cache of sharded TFRecord files.

The key hashes everything that changes the features: the code version of the
readers and feature builders, the examples themselves (inputs and labels,
so any change to a data file shows), the vocabulary, casing, sequence length,
label maps and problem set.  A cache directory is written under a temporary
name and renamed when complete, so a run killed mid-write leaves nothing
that a later run would trust; meta.json records each shard's size and
sha256, and an entry is used only when its shards still match them (a
damaged entry is reported with its path and rebuilt).
"""

import hashlib
import json
import os
import shutil
import uuid

from absl import logging

from bert_mtl import extension, files
from bert_mtl.files import file_digest  # pylint: disable=unused-import

# Bump when the feature layout or the readers change meaning.
FEATURES_VERSION = "1"
META = "meta.json"


def fingerprint(*parts):
  """sha256 hex of JSON-serialisable parts (order matters)."""
  digest = hashlib.sha256()
  for part in parts:
    digest.update(json.dumps(part, sort_keys=True, ensure_ascii=False,
                             default=str).encode("utf-8"))
    digest.update(b"\0")
  return digest.hexdigest()




def examples_digest(examples):
  """Digest of examples' inputs and labels (not their file positions)."""
  digest = hashlib.sha256()
  try:  # unit lists with label lists: the same bytes, assembled natively
    digest.update(extension.native().units_payload(
        [e.inputs for e in examples], [e.labels for e in examples]))
    return digest.hexdigest()
  except TypeError:
    digest = hashlib.sha256()
  for example in examples:
    inputs, labels = example.inputs, example.labels
    payload = None
    if isinstance(inputs, list) and isinstance(labels, list):
      try:  # the common unit/label-list case, fast (join needs strings)
        payload = ("\x1f".join(inputs) + "\x1e" + "\x1f".join(labels) +
                   "\x1d")
      except TypeError:
        payload = None
    if payload is None:
      payload = json.dumps([inputs, labels], ensure_ascii=False)
    digest.update(payload.encode("utf-8", "surrogatepass"))
  return digest.hexdigest()


def entry_directory(cache_dir, name, key):
  return os.path.join(cache_dir, "%s-%s" % (name, key[:16]))


def _damage(directory, key):
  """Why the entry in `directory` cannot be trusted (None if it can), and
  its meta dict."""
  meta_path = os.path.join(directory, META)
  try:
    with open(meta_path, encoding="utf-8") as f:
      meta = json.load(f)
  except (OSError, ValueError) as e:
    return "%s is unreadable (%s)" % (meta_path, e), None
  if not isinstance(meta, dict) or meta.get("key") != key:
    return "%s belongs to another key" % meta_path, None
  checks = meta.get("shard_checks")
  if not isinstance(checks, list) or len(checks) != len(meta.get("shards",
                                                                  ())):
    return "%s lists no size and checksum for its shards" % meta_path, None
  attached = meta.get("attachment_checks", {})
  for shard, (size, digest) in list(zip(meta["shards"], checks)) + [
      (name, check) for name, check in sorted(attached.items())]:
    path = os.path.join(directory, shard)
    if not os.path.exists(path):
      return "%s is missing" % path, None
    if os.path.getsize(path) != size:
      return "%s has %d bytes, %d were written" % (
          path, os.path.getsize(path), size), None
    if file_digest(path) != digest:
      return "%s does not match the checksum it was written with" % path, None
  return None, meta


def cached_shards(cache_dir, name, key):
  """(shard paths, meta dict) of a complete, intact cache entry, or None.

  An entry whose meta.json or shards are damaged (unreadable, truncated,
  emptied, overwritten) is reported with its path and left for the caller
  to rebuild; it is never trained on."""
  directory = entry_directory(cache_dir, name, key)
  if not os.path.exists(directory):
    return None
  reason, meta = _damage(directory, key)
  if reason is not None:
    logging.warning("feature cache entry %s is damaged: %s; rebuilding it",
                    directory, reason)
    return None
  return [os.path.join(directory, s) for s in meta["shards"]], meta


class ShardWriter(object):
  """Writes framed records round-robin into TFRecord files (the framing is
  native and byte-identical to tf.io.TFRecordWriter; no TensorFlow is used,
  so forked writer processes are safe)."""

  def __init__(self, paths):
    self.files = [open(p, "wb") for p in paths]
    self.count = 0

  def write(self, record):
    self.files[self.count % len(self.files)].write(
        extension.native().frame_record(record))
    self.count += 1

  def close(self):
    for f in self.files:
      f.close()


def shard_names(num_shards):
  return ["part-%05d-of-%05d.tfrecord" % (i, num_shards)
          for i in range(num_shards)]


def write_entry(cache_dir, name, key, write, extra_meta=None,
                attachments=None):
  """Creates a cache entry atomically and returns (shard paths, meta).

  Args:
    write: write(temporary_directory) -> (shard file names, record count);
      it writes the shards into the directory it is given.
    attachments: {file name: write(path)}: other files of the entry (read
      back with attachment_path), checked like the shards.
  """
  directory = entry_directory(cache_dir, name, key)
  with files.writing(directory, "the feature cache"):
    return _write_entry(cache_dir, name, key, write, extra_meta, directory,
                        attachments or {})


def attachment_path(shards, name):
  """The path of attachment `name` of the entry holding `shards`."""
  return os.path.join(os.path.dirname(shards[0]), name)


def _check(path):
  return [os.path.getsize(path), file_digest(path)]


def _write_entry(cache_dir, name, key, write, extra_meta, directory,
                 attachments):
  temporary = "%s.tmp-%s" % (directory, uuid.uuid4().hex[:8])
  os.makedirs(temporary)
  try:
    names, count = write(temporary)
    checks = [_check(os.path.join(temporary, n)) for n in names]
    attached = {}
    for file_name, write_attachment in sorted(attachments.items()):
      write_attachment(os.path.join(temporary, file_name))
      attached[file_name] = _check(os.path.join(temporary, file_name))
    meta = dict(extra_meta or {}, key=key, shards=names, count=count,
                shard_checks=checks, attachment_checks=attached)
    with open(os.path.join(temporary, META), "w", encoding="utf-8") as f:
      json.dump(meta, f, ensure_ascii=False, indent=1)
    try:
      os.rename(temporary, directory)
    except OSError:
      # Another process (a second worker) completed the same entry first:
      # its content is the same (same key); keep it, drop ours.
      found = cached_shards(cache_dir, name, key)
      if found is not None:
        shutil.rmtree(temporary, ignore_errors=True)
        return found
      shutil.rmtree(directory, ignore_errors=True)  # damaged: replace it
      os.rename(temporary, directory)
  except BaseException:
    shutil.rmtree(temporary, ignore_errors=True)
    raise
  return [os.path.join(directory, n) for n in names], meta


def write_shards(cache_dir, name, key, records, num_shards, extra_meta=None,
                 attachments=None):
  """Writes serialized records round-robin into num_shards TFRecord files,
  atomically, and returns (shard paths, meta).

  Args:
    records: iterable of serialized tf.train.Example bytes.
  """
  def write(directory):
    names = shard_names(num_shards)
    writer = ShardWriter([os.path.join(directory, n) for n in names])
    try:
      for record in records:
        writer.write(record)
    finally:
      writer.close()
    return names, writer.count
  return write_entry(cache_dir, name, key, write, extra_meta, attachments)


def default_cache_dir():
  """$BERT_MTL_CACHE_DIR, else ~/.cache/bert_mtl (never beside the data)."""
  return os.environ.get("BERT_MTL_CACHE_DIR") or os.path.join(
      os.path.expanduser("~"), ".cache", "bert_mtl")

