"""`multi_cls`: a set of labels per text, one sigmoid per label over the
pooled output."""

import tensorflow as tf

from bert_mtl import metrics, types
from bert_mtl.heads import base


class MultiClsHead(base.Head):
  """An independent sigmoid per label; a label is on at `threshold`."""

  SETTINGS = {"threshold": 0.5, "positive_weight": 1.0}
  SETTING_HELP = {
      "threshold": "Probability at which a multi_cls label is on.",
      "positive_weight": "Weight of the positive labels in multi_cls "
                         "losses (imbalanced labels)."}

  def build(self, body, features, mode):
    del features
    return {"logits": self.pooled_logits(body, mode)}  # [batch, labels]

  def loss_terms(self, outputs, features):
    labels = tf.cast(self.label(features), tf.float32)
    per_label = tf.nn.weighted_cross_entropy_with_logits(
        labels=labels, logits=outputs["logits"],
        pos_weight=float(self.setting("positive_weight")))
    return [(tf.reduce_sum(per_label, -1), self.present(features))]

  def _decided(self, logits):
    return tf.cast(tf.sigmoid(logits) >= float(self.setting("threshold")),
                   tf.int32)

  def metrics(self, outputs, features):
    decided = self._decided(outputs["logits"])
    exact = tf.cast(tf.reduce_all(tf.equal(decided, self.label(features)), -1),
                    tf.float32)
    return {"exact_match": base.mean_metric(exact, self.present(features))}

  def predictions(self, outputs):
    return {"probabilities": tf.sigmoid(outputs["logits"]),
            "label_mask": self._decided(outputs["logits"])}


class MultiCls(types.ProblemType):
  """A list of label strings per example (a multi-hot record feature)."""

  name = "multi_cls"
  inputs = "text"
  metrics = {"multi_label": "micro_f1"}
  head = MultiClsHead
  label_shape = "per_label"

  def check(self, inputs, labels):
    if not types.is_text(inputs):
      return "multi_cls inputs must be a text or a (text_a, text_b) pair"
    if not isinstance(labels, (list, tuple)) or not all(
        isinstance(l, str) and l for l in labels):
      return "multi_cls labels must be a list of label strings"
    return None

  def placeholder_labels(self, inputs):
    return []

  def training_label_lists(self, examples):
    return [e.labels for e in examples]

  def label_value(self, encoder, example, config):
    hot = [0] * len(encoder)
    for i in encoder.encode(example.labels, example.path, example.line):
      hot[i] = 1
    return hot

  def decode(self, rows, encoder, context):
    mask = rows[0]["label_mask"]
    return [l for l, m in zip(encoder.labels, mask) if m]

  def score(self, spec, examples, results, encoder, context):
    micro, macro = metrics.multi_label_f1(
        [set(e.labels) for e in examples], [set(r) for r in results],
        encoder.labels)
    return {"micro_f1": micro, "macro_f1": macro}

  def serve(self, result, rows, encoder, context):
    probabilities = rows[0]["probabilities"]
    return {"labels": result, "probabilities": {
        l: float(p) for l, p in zip(encoder.labels, probabilities)}}


types.register(MultiCls())
