"""The error raised for bad data: it names the problem, file and line."""


class DataError(ValueError):
  """Bad input data, located as precisely as the reader knows."""

  def __init__(self, message, problem=None, path=None, line=None):
    where = ", ".join(part for part in (
        "problem %s" % problem if problem else "",
        "file %s" % path if path else "",
        "line %d" % line if line else "") if part)
    super().__init__("%s: %s" % (where, message) if where else message)
    self.message, self.problem, self.path, self.line = (message, problem,
                                                        path, line)


class WriteError(RuntimeError):
  """A file or directory that could not be written (full disk, read-only
  or not permitted, a file where a directory should be): names the path
  and what was being written."""

  def __init__(self, path, what, reason):
    if isinstance(reason, OSError):
      reason = reason.strerror or str(reason)
    super().__init__("cannot write %s (%s): %s" % (path, what, reason))
    self.path, self.what, self.reason = path, what, reason
