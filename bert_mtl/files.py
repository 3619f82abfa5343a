"""Small file helpers shared by the run directory and the label maps."""

import contextlib
import errno
import os
import shutil
import uuid

from bert_mtl.errors import WriteError


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


@contextlib.contextmanager
def writing(path, what):
  """Turns an OSError raised in the block into a WriteError naming `path`
  (or the file the error names) and `what` was being written."""
  try:
    yield
  except OSError as e:
    if isinstance(e, WriteError):
      raise
    raise WriteError(getattr(e, "filename", None) or path, what, e) from None


def is_disk_error(error):
  """True for an OSError a user fixes on the file system (full disk,
  read-only, not permitted, not a directory...)."""
  return isinstance(error, OSError) and error.errno in (
      errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
      errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ENOENT)
