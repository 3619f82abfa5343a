"""Small file helpers shared by the run directory and the label maps."""

import os
import shutil
import uuid


def atomic_write(path, text):
  """Writes `text` (UTF-8) to `path` so that readers see the old file or
  the whole new one, never a part: a temporary file beside it, flushed to
  disk, then renamed over it."""
  directory = os.path.dirname(os.path.abspath(path))
  temporary = os.path.join(directory, ".%s.tmp-%s" % (
      os.path.basename(path), uuid.uuid4().hex[:8]))
  try:
    with open(temporary, "w", encoding="utf-8") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(temporary, path)
  except BaseException:
    if os.path.exists(temporary):
      os.remove(temporary)
    raise


def atomic_copy(source, path):
  """Copies `source` to `path` atomically (see atomic_write); concurrent
  copies (two workers of one run) each use their own temporary file."""
  temporary = os.path.join(os.path.dirname(os.path.abspath(path)),
                           ".%s.tmp-%s" % (os.path.basename(path),
                                           uuid.uuid4().hex[:8]))
  try:
    shutil.copyfile(source, temporary)
    os.replace(temporary, path)
  except BaseException:
    if os.path.exists(temporary):
      os.remove(temporary)
    raise
