"""`cls`: one label per text (or text pair), softmax over the pooled output.

The head's variables are run_classifier.py's (`output_weights` [labels,
hidden], `output_bias`), so an original fine-tuned classifier loads into it.
"""

import numpy as np
import tensorflow as tf

from bert_mtl import metrics, types
from bert_mtl.errors import DataError
from bert_mtl.heads import base


class ClsHead(base.Head):
  """A softmax classifier over the pooled output."""

  SETTINGS = {"label_smoothing": 0.0}
  SETTING_HELP = {"label_smoothing": "Label smoothing of cls heads."}

  def build(self, body, features, mode):
    del features
    return {"logits": self.pooled_logits(body, mode)}  # [batch, labels]

  def loss_terms(self, outputs, features):
    labels = tf.one_hot(self.label(features), self.num_labels)
    smoothing = float(self.setting("label_smoothing"))
    if smoothing:
      labels = labels * (1 - smoothing) + smoothing / self.num_labels
    per_row = tf.nn.softmax_cross_entropy_with_logits(
        labels=tf.stop_gradient(labels), logits=outputs["logits"])
    return [(per_row, self.present(features))]

  def metrics(self, outputs, features):
    correct = tf.cast(tf.equal(tf.argmax(outputs["logits"], -1, tf.int32),
                               self.label(features)), tf.float32)
    return {"accuracy": base.mean_metric(correct, self.present(features))}

  def predictions(self, outputs):
    probabilities = tf.nn.softmax(outputs["logits"])
    return {"probabilities": probabilities,
            "label_ids": tf.argmax(probabilities, -1, output_type=tf.int32)}


class Cls(types.ProblemType):
  """One label string per example."""

  name = "cls"
  inputs = "text"
  stratified = True  # corpora are often sorted by label
  metrics = {"accuracy": "accuracy"}
  head = ClsHead

  def check(self, inputs, labels):
    if not types.is_text(inputs):
      return "cls inputs must be a text or a (text_a, text_b) pair"
    if not isinstance(labels, str) or not labels:
      return "cls label must be a non-empty string, got %r" % (labels,)
    return None

  def check_training_labels(self, name, spec, examples, encoder):
    if len(encoder.labels) < 2:
      paths = sorted({e.path for e in examples if e.path})
      raise DataError(
          "every training example has label %r; a classifier needs at least "
          "two classes (is a corpus file empty or missing?)" %
          encoder.labels[0], name, ", ".join(paths))

  def decode(self, rows, encoder, context):
    return encoder.labels[int(rows[0]["label_ids"])]

  def score(self, spec, examples, results, encoder, context):
    gold = [e.labels for e in examples]
    return {"accuracy": metrics.accuracy(gold, results),
            "macro_f1": metrics.macro_f1(gold, results)}

  def serve(self, result, rows, encoder, context):
    probabilities = rows[0]["probabilities"]
    return {"label": result, "probability": float(
        probabilities[int(np.argmax(probabilities))])}


types.register(Cls())
