"""`cls`: softmax over the pooled output (no phantom [PAD] class)."""

import tensorflow as tf

from bert_mtl.heads import base


class ClsHead(base.Head):
  """Settings: label_smoothing (0)."""

  def build(self, body, features, mode):
    del features
    return {"logits": self.pooled_logits(body, mode)}  # [batch, labels]

  def loss(self, outputs, features):
    labels = tf.one_hot(self.label(features), self.num_labels)
    smoothing = float(self.setting("label_smoothing", 0.0))
    if smoothing:
      labels = labels * (1 - smoothing) + smoothing / self.num_labels
    per_row = tf.nn.softmax_cross_entropy_with_logits(
        labels=tf.stop_gradient(labels), logits=outputs["logits"])
    return base.masked_mean(per_row, self.present(features))

  def metrics(self, outputs, features):
    correct = tf.cast(tf.equal(tf.argmax(outputs["logits"], -1, tf.int32),
                               self.label(features)), tf.float32)
    return {"accuracy": base.mean_metric(correct, self.present(features))}

  def predictions(self, outputs):
    probabilities = tf.nn.softmax(outputs["logits"])
    return {"probabilities": probabilities,
            "label_ids": tf.argmax(probabilities, -1, output_type=tf.int32)}
