"""Label encoders: fitted on the training split only, stored as readable
JSON next to the model, reused unchanged by eval, predict and export."""

import json

from bert_mtl.problems.errors import DataError


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

  def encode(self, labels, path=None, line=None):
    """ids of `labels`; a label never seen in training is a DataError."""
    try:
      return [self.ids[label] for label in labels]
    except KeyError as e:
      raise DataError("label %r was not in the training split (known: %s)" %
                      (e.args[0], ", ".join(self.labels[:20])), self.problem,
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
    with open(path, "w", encoding="utf-8") as f:
      f.write(self.to_json() + "\n")

  @classmethod
  def load(cls, path):
    with open(path, encoding="utf-8") as f:
      return cls.from_json(f.read())
