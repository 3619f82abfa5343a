"""Small file helpers shared by the run directory and the label maps."""

import os
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
