"""Problem types: what a problem's inputs and labels look like.

A type is one entry of TYPES; its head (issue #5) is one module. The checks
here run on every example a reader yields, so a malformed corpus fails
before anything is trained on it.
"""

import collections

from bert_mtl.problems.errors import DataError


def _units(inputs):
  return isinstance(inputs, (list, tuple)) and all(
      isinstance(u, str) and u for u in inputs)


def _text(inputs):
  return isinstance(inputs, str) or (
      isinstance(inputs, tuple) and len(inputs) == 2 and
      all(isinstance(t, str) for t in inputs))


def check_cls(inputs, labels):
  if not _text(inputs):
    return "cls inputs must be a text or a (text_a, text_b) pair"
  if not isinstance(labels, str) or not labels:
    return "cls label must be a non-empty string, got %r" % (labels,)
  return None


def check_multi_cls(inputs, labels):
  if not _text(inputs):
    return "multi_cls inputs must be a text or a (text_a, text_b) pair"
  if not isinstance(labels, (list, tuple)) or not all(
      isinstance(l, str) and l for l in labels):
    return "multi_cls labels must be a list of label strings"
  return None


def check_seq_tag(inputs, labels):
  if not _units(inputs) or not inputs:
    return "seq_tag inputs must be a non-empty list of characters or words"
  if not isinstance(labels, (list, tuple)) or len(labels) != len(inputs):
    return ("seq_tag needs one label per input unit: %d units, %s labels" %
            (len(inputs), len(labels) if isinstance(labels, (list, tuple))
             else "no"))
  if not all(isinstance(l, str) and l for l in labels):
    return "seq_tag labels must be non-empty strings"
  return None


def check_seq2seq_tag(inputs, labels):
  if not (_units(inputs) or _text(inputs)):
    return "seq2seq_tag inputs must be a text or a list of units"
  if not isinstance(labels, (list, tuple)) or not labels or not all(
      isinstance(l, str) and l for l in labels):
    return "seq2seq_tag target must be a non-empty list of tags"
  return None


def check_seq2seq_text(inputs, labels):
  if not (_units(inputs) or _text(inputs)):
    return "seq2seq_text inputs must be a text or a list of units"
  if not isinstance(labels, str):
    return "seq2seq_text target must be a string"
  return None


def check_pretrain(inputs, labels):
  if not isinstance(inputs, (list, tuple)) or not all(
      isinstance(s, str) for s in inputs):
    return "pretrain inputs must be a document: a list of sentences"
  if labels is not None:
    return "pretrain examples carry no labels"
  return None


ProblemType = collections.namedtuple("ProblemType",
                                     ["name", "check", "label_kind"])

# label_kind says what a label encoder fits: one label per example, a set
# per example, one per unit, a tag sequence, free text (target vocabulary),
# or nothing.
TYPES = {
    "cls": ProblemType("cls", check_cls, "single"),
    "multi_cls": ProblemType("multi_cls", check_multi_cls, "set"),
    "seq_tag": ProblemType("seq_tag", check_seq_tag, "per_unit"),
    "seq2seq_tag": ProblemType("seq2seq_tag", check_seq2seq_tag, "sequence"),
    "seq2seq_text": ProblemType("seq2seq_text", check_seq2seq_text, "text"),
    "pretrain": ProblemType("pretrain", check_pretrain, "none"),
}


# Stand-in labels for unlabeled (predict) examples, so their inputs are
# still checked.
_NO_LABELS = {"single": lambda x: "?", "set": lambda x: [],
              "per_unit": lambda x: ["?"] * len(x), "sequence": lambda x: ["?"],
              "text": lambda x: "", "none": lambda x: None}


def validate(problem_type, example, problem_name, labels_required=True):
  """Raises DataError locating the example when it does not fit the type."""
  spec = TYPES[problem_type]
  labels = example.labels
  if labels is None and not labels_required:
    labels = _NO_LABELS[spec.label_kind](example.inputs)
  message = spec.check(example.inputs, labels)
  if message:
    raise DataError(message, problem_name, example.path, example.line)
