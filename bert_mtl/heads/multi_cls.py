"""`multi_cls`: an independent sigmoid per label over the pooled output."""

import tensorflow as tf

from bert_mtl.heads import base


class MultiClsHead(base.Head):
  """Settings: threshold (0.5), positive_weight (1.0)."""

  def build(self, body, features, mode):
    del features
    return {"logits": self.pooled_logits(body, mode)}  # [batch, labels]

  def loss(self, outputs, features):
    labels = tf.cast(self.label(features), tf.float32)
    per_label = tf.nn.weighted_cross_entropy_with_logits(
        labels=labels, logits=outputs["logits"],
        pos_weight=float(self.setting("positive_weight", 1.0)))
    return base.masked_mean(tf.reduce_sum(per_label, -1),
                            self.present(features))

  def _decided(self, logits):
    return tf.cast(tf.sigmoid(logits) >= float(self.setting("threshold", 0.5)),
                   tf.int32)

  def metrics(self, outputs, features):
    decided = self._decided(outputs["logits"])
    exact = tf.cast(tf.reduce_all(tf.equal(decided, self.label(features)), -1),
                    tf.float32)
    return {"exact_match": base.mean_metric(exact, self.present(features))}

  def predictions(self, outputs):
    return {"probabilities": tf.sigmoid(outputs["logits"]),
            "label_mask": self._decided(outputs["logits"])}
