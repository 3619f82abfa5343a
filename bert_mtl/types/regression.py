"""`regression`: one real number per text (or pair), a linear unit over the
pooled output trained with mean squared error (GLUE's STS-B)."""

import math

import numpy as np
import tensorflow as tf

from bert_mtl import metrics, types
from bert_mtl.heads import base
from bert_mtl.labels import LabelEncoder


class RegressionHead(base.Head):
  """A float from the pooled output: run_classifier's variables with one
  output (`output_weights` [1, hidden], `output_bias` [1])."""

  def build(self, body, features, mode):
    del features
    return {"value": self.pooled_logits(body, mode)[:, 0]}  # [batch]

  def loss_terms(self, outputs, features):
    error = tf.square(outputs["value"] - self.label(features))
    return [(error, self.present(features))]

  def metrics(self, outputs, features):
    error = tf.square(outputs["value"] - self.label(features))
    return {"mse": base.mean_metric(error, self.present(features))}

  def predictions(self, outputs):
    return {"value": outputs["value"]}


def as_number(label):
  """A label as a finite float, else None."""
  if isinstance(label, bool):
    return None
  try:
    value = float(label)
  except (TypeError, ValueError):
    return None
  return value if math.isfinite(value) else None


class Regression(types.ProblemType):
  """A number (or its text, as in a TSV) per example."""

  name = "regression"
  inputs = "text"
  metrics = {"correlation": "pearson"}
  head = RegressionHead
  label_dtype = "float32"

  def check(self, inputs, labels):
    if not types.is_text(inputs):
      return "regression inputs must be a text or a (text_a, text_b) pair"
    if as_number(labels) is None:
      return "regression target must be a finite number, got %r" % (labels,)
    return None

  def placeholder_labels(self, inputs):
    return 0.0

  def fit_encoder(self, name, spec, config, read):
    # One output; its "label map" names it, so exports stay uniform.
    return LabelEncoder(["value"], name)

  def label_value(self, encoder, example, config):
    return [as_number(example.labels)]

  def decode(self, rows, encoder, context):
    return float(rows[0]["value"])

  def score(self, spec, examples, results, encoder, context):
    gold = [as_number(e.labels) for e in examples]
    return {"pearson": metrics.pearson(gold, results),
            "spearman": metrics.spearman(gold, results),
            "mse": float(np.mean((np.asarray(gold) - np.asarray(results)) ** 2))
                   if gold else 0.0}

  def serve(self, result, rows, encoder, context):
    return {"value": result}


types.register(Regression())
