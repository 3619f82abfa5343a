"""The problem registry: a problem is a name, a type and a reader.

    @problem("my_ner", "seq_tag", source="my_corpus/*.txt", scheme="BIO")
    def my_ner(split, data_dir):
      for line_number, (chars, tags) in ...:
        yield Example(chars, tags, path, line_number)
"""

import collections
import os
import re

from bert_mtl import types
from bert_mtl.problems import download
from bert_mtl.errors import DataError

SPLITS = ("train", "eval", "predict")


class Example(collections.namedtuple(
    "Example", ["inputs", "labels", "path", "line", "line_step"])):
  """One example: inputs (text, text pair, list of units, or a document),
  labels in the type's form, and where it came from (file, 1-based line).
  line_step 1 says unit k stands on line `line + k` (one-token-a-line
  files), so an error about one label can name its own line."""
  __slots__ = ()

  def __new__(cls, inputs, labels, path=None, line=None, line_step=None):
    return super().__new__(cls, inputs, labels, path, line, line_step)

  def line_of(self, unit):
    """The line of unit `unit` (the example's line when not known)."""
    if self.line is None or not self.line_step:
      return self.line
    return self.line + unit * self.line_step


class Problem(collections.namedtuple(
    "Problem", ["name", "type", "reader", "source", "scheme", "metric",
                "kind"])):
  """A registered problem: `type` is its type's name (as run.json and
  exports store it), `kind` the ProblemType object itself (looked up from
  `type` when not given)."""
  __slots__ = ()

  def __new__(cls, name, type, reader, source="", scheme=None,  # pylint: disable=redefined-builtin
              metric=None, kind=None):
    return super().__new__(cls, name, type, reader, source, scheme, metric,
                           kind if kind is not None else types.get(type))

_PROBLEMS = collections.OrderedDict()
# A problem's name names files (labels/<name>.json, predictions, eval
# directories, cache entries) and stands in chains, flags and signature
# names: ASCII letters, digits, "_", "." and "-", not first.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def problem(name, problem_type, source="", scheme=None, metric=None):
  """Registers the decorated reader(split, data_dir) as problem `name`.

  metric: one of the type's metrics (default: its first), e.g. seq_tag's
  "word" (segmentation, SIGHAN word F1) or "pos" (tag accuracy and word F1
  of joint B-n style tags) instead of "entity".
  """
  if not isinstance(name, str) or not NAME.fullmatch(name):
    raise ValueError(
        "problem name %r: use ASCII letters, digits, '_', '.' and '-' (not "
        "first), at most 128 characters; it names files and stands in "
        "chains ('&', '|') and flags" % (name,))
  kind = types.get(problem_type)  # raises for unknown types, listing them
  metric = metric or kind.default_metric()
  if metric not in kind.metrics:
    raise ValueError("%s: metric %r is not one of %s's (%s)" % (
        name, metric, problem_type, ", ".join(kind.metrics)))

  def register(reader):
    if name in _PROBLEMS:
      raise ValueError("problem %r is registered twice" % name)
    _PROBLEMS[name] = Problem(name, problem_type, reader, source, scheme,
                              metric, kind)
    return reader
  return register


def get(name):
  try:
    return _PROBLEMS[name]
  except KeyError:
    raise ValueError("unknown problem %r; registered problems: %s" %
                     (name, ", ".join(_PROBLEMS))) from None


def names():
  return list(_PROBLEMS)


def read(name, split, data_dir):
  """The validated examples of a problem's split (a list).

  Raises:
    DataError: a malformed example, an empty split, an unreadable file.
  """
  if split not in SPLITS:
    raise ValueError("split must be one of %s, got %r" % (SPLITS, split))
  spec = get(name)
  try:
    examples = list(spec.reader(split, data_dir))
  except DataError as e:
    if e.problem:
      raise
    raise DataError(e.message, name, e.path, e.line) from None
  except download.DownloadError as e:
    raise DataError(str(e), name) from None
  except FileNotFoundError as e:
    raise DataError("%s not found; pass --data_dir or set BERT_MTL_DATA_DIR"
                    % e.filename, name) from None
  if not examples:
    raise DataError("the %s split is empty" % split, name,
                    os.path.join(data_dir, spec.source) if spec.source else
                    None)
  kind = spec.kind
  for example in examples:
    labels = example.labels
    if labels is None and split == "predict":
      labels = kind.placeholder_labels(example.inputs)
    message = kind.check(example.inputs, labels)
    if message:
      raise DataError(message, name, example.path, example.line)
  return examples
