"""Label encoders: fitted on the training split only, stored as readable
JSON next to the model, reused unchanged by eval, predict and export."""

import collections
import json

from bert_mtl import files

from bert_mtl.errors import DataError


class LabelEncoder(object):
  """Maps label strings to ids 0..K-1 (no reserved [PAD] class)."""

  def __init__(self, labels, problem=None):
    self.labels = list(labels)
    self.problem = problem
    self.ids = {label: i for i, label in enumerate(self.labels)}
    if len(self.ids) != len(self.labels):
      raise ValueError("duplicate labels in %s" % self.labels)

  @classmethod
  def fit(cls, label_lists, problem=None, reserved=()):
    """Sorted distinct labels of an iterable of label lists, after the
    `reserved` ones (decoder specials such as [PAD], [BOS], [EOS])."""
    seen = set()
    for labels in label_lists:
      seen.update(labels)
    if not seen:
      raise DataError("no labels in the training split", problem)
    return cls(list(reserved) + sorted(seen - set(reserved)), problem)

  def __len__(self):
    return len(self.labels)

  def encode(self, labels, path=None, line=None, example=None):
    """ids of `labels`; a label never seen in training is a DataError
    naming the file and the line (the label's own line when `example`, an
    Example, knows it)."""
    try:
      return [self.ids[label] for label in labels]
    except KeyError as e:
      bad = e.args[0]
      if example is not None:
        line = example.line_of(list(labels).index(bad))
      raise DataError("label %r was not in the training split (known: %s)" %
                      (bad, ", ".join(self.labels[:20])), self.problem,
                      path, line) from None

  def decode(self, ids):
    return [self.labels[i] for i in ids]

  def to_json(self):
    return json.dumps({"problem": self.problem, "labels": self.labels},
                      ensure_ascii=False, indent=1)

  @classmethod
  def from_json(cls, text):
    data = json.loads(text)
    return cls(data["labels"], data.get("problem"))

  def save(self, path):
    files.atomic_write(path, self.to_json() + "\n")

  @classmethod
  def load(cls, path):
    with open(path, encoding="utf-8") as f:
      return cls.from_json(f.read())


# The prefixes each tagging scheme allows ("O" outside any span is allowed
# in all of them; MSRA's BMES tags use it too).
SCHEME_PREFIXES = {"BIO": "BI", "BIOES": "BIOES", "BMES": "BMES"}
# A span of a type that begins (B) must also end: the letter that closes it.
SCHEME_CLOSERS = {"BIOES": "E", "BMES": "E"}


def scheme_misfit(labels, scheme):
  """(label, reason) of the first label that does not fit `scheme`
  ("BIO", "BIOES" or "BMES"), or None.  A label is "O", a prefix letter
  of the scheme, or PREFIX-TYPE; a type that appears with B must appear
  with the scheme's closing prefix as well (a file cut inside a tag leaves
  a type of its own, e.g. "B-L", that never ends)."""
  prefixes = SCHEME_PREFIXES[scheme]
  seen = collections.defaultdict(set)
  for label in labels:
    if label == "O":
      continue
    prefix, dash, kind = label.partition("-")
    if prefix not in prefixes or len(prefix) != 1 or (dash and not kind):
      return label, "not O, one of %s, or one of them with -TYPE" % (
          ", ".join(prefixes))
    seen[kind].add(prefix)
  closer = SCHEME_CLOSERS.get(scheme)
  for kind, found in sorted(seen.items()):
    if closer and "B" in found and closer not in found:
      return ("B-" + kind if kind else "B",
              "type %r begins (B) but never ends (%s) in the training "
              "split" % (kind, closer))
    if scheme == "BIO" and "I" in found and "B" not in found:
      return ("I-" + kind if kind else "I",
              "type %r continues (I) but never begins (B) in the training "
              "split" % kind)
  return None
