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
