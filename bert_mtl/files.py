"""Small file helpers shared by the run directory and the label maps."""

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import uuid

from bert_mtl.errors import WriteError


@contextlib.contextmanager
def exclusive_lock(path):
  """An exclusive flock on `path` (created) held in the block: other
  processes taking it wait (the kernel drops it when a holder dies)."""
  with open(path, "a") as f:
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def file_digest(path):
  """sha256 hex of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _replace(path, write):
  """Calls write(temporary) for a temporary file beside `path` (its own,
  so concurrent writers never share one), then renames it over `path`:
  readers see the old file or the whole new one, never a part."""
  directory = os.path.dirname(os.path.abspath(path))
  temporary = os.path.join(directory, ".%s.tmp-%s" % (
      os.path.basename(path), uuid.uuid4().hex[:8]))
  try:
    write(temporary)
    os.replace(temporary, path)
  except BaseException:
    if os.path.exists(temporary):
      os.remove(temporary)
    raise


def atomic_write(path, text):
  """Writes `text` (UTF-8) to `path` atomically, flushed to disk first."""
  def write(temporary):
    with open(temporary, "w", encoding="utf-8") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
  _replace(path, write)


def atomic_copy(source, path):
  """Copies `source` to `path` atomically (two workers of one run may copy
  the same file at once)."""
  _replace(path, lambda temporary: shutil.copyfile(source, temporary))


# What file system errors say (errno's strerror), as TensorFlow's own file
# errors quote them in their messages.
DISK_REASONS = tuple(os.strerror(e) for e in (
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
    errno.ENOTDIR, errno.EISDIR, errno.EEXIST))


def disk_error_reason(error):
  """The file system reason of `error` (an OSError, or an error of another
  library, TensorFlow's included, whose message quotes one), or None."""
  if isinstance(error, OSError):
    return error.strerror or str(error)
  message = str(error)
  for reason in DISK_REASONS:
    if reason in message:
      return reason
  return None


@contextlib.contextmanager
def writing(path, what):
  """Turns a file system error raised in the block (an OSError, or
  another library's error that quotes one) into a WriteError naming
  `path` (or the file an OSError names) and `what` was being written."""
  try:
    yield
  except WriteError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    reason = disk_error_reason(e)
    if reason is None:
      raise
    raise WriteError(getattr(e, "filename", None) or path, what,
                     reason) from None
