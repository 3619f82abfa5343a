"""`seq_tag`: a tag per unit from the sequence output, softmax or CRF.

Only positions that carry a label (a unit's first sub-token) are tagged:
[CLS], [SEP], padding and continuation pieces get no loss and no
prediction.  The CRF runs over those positions only, packed to the front of
each row, so its transitions link consecutive units, not sub-tokens.
Served graphs have no labels; there every real token but [CLS] and the
final [SEP] is a position (the same thing for Chinese characters).
"""

import tensorflow as tf
import tensorflow_addons as tfa

from bert_mtl import crf
from bert_mtl.data import features as feature_lib
from bert_mtl.heads import base

# Added to scores that a scheme constraint forbids (finite, so no NaN).
FORBIDDEN = -10000.0


def tag_positions(features, name):
  """bool [batch, seq]: the positions to tag."""
  key = name + "_label"
  if key in features:
    return tf.not_equal(features[key], feature_lib.IGNORE)
  mask = tf.cast(features["input_mask"], tf.bool)
  lengths = tf.reduce_sum(tf.cast(mask, tf.int32), 1)
  positions = tf.range(tf.shape(mask)[1])[None, :]
  return mask & (positions > 0) & (positions < lengths[:, None] - 1)


def pack_positions(values, mask):
  """Moves the masked positions of each row to its front, in order.

  Args:
    values: [batch, seq, ...]; mask: bool [batch, seq].

  Returns:
    (packed values, order int32 [batch, seq] with packed[:, i] =
    values[:, order[:, i]], lengths int32 [batch]).
  """
  order = tf.argsort(tf.cast(tf.logical_not(mask), tf.int32), axis=1,
                     stable=True)
  packed = tf.gather(values, order, batch_dims=1)
  return packed, order, tf.reduce_sum(tf.cast(mask, tf.int32), 1)


def unpack_positions(packed, order, mask, fill=-1):
  """Inverse of pack_positions; positions outside `mask` get `fill`."""
  values = tf.gather(packed, tf.argsort(order, axis=1), batch_dims=1)
  return tf.where(mask, values, tf.fill(tf.shape(values), fill))


class SeqTagHead(base.Head):
  """Settings: crf (True), crf_constraints (False), labels and scheme (for
  the constraints; given by the model_fn)."""

  def build(self, body, features, mode):
    sequence = base.maybe_dropout(body.sequence_output, mode,
                                  self.bert_config.hidden_dropout_prob)
    logits = tf.cast(base.dense_logits(
        sequence, self.num_labels, self.bert_config.initializer_range),
                     tf.float32)                        # [batch, seq, K]
    mask = tag_positions(features, self.name)
    outputs = {"logits": logits, "mask": mask}
    if self.setting("crf", True):
      outputs.update(self._build_crf(logits, mask))
    return outputs

  def _build_crf(self, logits, mask):
    transitions = tf.compat.v1.get_variable(
        "transitions", [self.num_labels, self.num_labels],
        initializer=tf.compat.v1.zeros_initializer())
    packed, order, lengths = pack_positions(logits, mask)
    scheme = self.setting("scheme")
    if self.setting("crf_constraints", False) and scheme:
      allowed, start, end = crf.scheme_constraints(self.setting("labels"),
                                                   scheme)
      transitions = transitions + tf.constant(
          (1 - allowed.astype("float32")) * FORBIDDEN, tf.float32)
      length_index = tf.maximum(lengths, 1) - 1
      first = tf.one_hot(tf.zeros_like(lengths), tf.shape(packed)[1])
      last = tf.one_hot(length_index, tf.shape(packed)[1])
      packed += (first[:, :, None] * ((1 - start.astype("float32")) * FORBIDDEN)[None, None] +
                 last[:, :, None] * ((1 - end.astype("float32")) * FORBIDDEN)[None, None])
    return {"packed": packed, "order": order, "lengths": lengths,
            "transitions": transitions}

  def loss(self, outputs, features):
    labels = self.label(features)
    present = self.present(features)
    if "transitions" not in outputs:
      per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=tf.maximum(labels, 0), logits=outputs["logits"])
      weights = tf.cast(outputs["mask"], tf.float32) * present[:, None]
      return base.masked_mean(per_token, weights)
    packed_labels = tf.gather(tf.maximum(labels, 0), outputs["order"],
                              batch_dims=1)
    # Rows without positions get length 1 and weight 0: finite, no gradient.
    log_likelihood, _ = tfa.text.crf_log_likelihood(
        outputs["packed"], packed_labels, tf.maximum(outputs["lengths"], 1),
        outputs["transitions"])
    weights = present * tf.cast(outputs["lengths"] > 0, tf.float32)
    return base.masked_mean(-log_likelihood, weights)

  def decode(self, outputs):
    """int32 [batch, seq]: the tag id of every tagged position, else -1."""
    if "transitions" not in outputs:
      tags = tf.argmax(outputs["logits"], -1, output_type=tf.int32)
      return tf.where(outputs["mask"], tags, -tf.ones_like(tags))
    packed_tags, _ = tfa.text.crf_decode(
        outputs["packed"], outputs["transitions"],
        tf.maximum(outputs["lengths"], 1))
    return unpack_positions(packed_tags, outputs["order"], outputs["mask"])

  def metrics(self, outputs, features):
    weights = tf.cast(outputs["mask"], tf.float32) * self.present(
        features)[:, None]
    correct = tf.cast(tf.equal(self.decode(outputs), self.label(features)),
                      tf.float32)
    return {"token_accuracy": base.mean_metric(correct, weights)}

  def predictions(self, outputs):
    out = {"tag_ids": self.decode(outputs)}
    if "transitions" in outputs:
      # The unary scores too, so a client can decode a whole long text at
      # once (the Predictor does, with the native Viterbi).
      out["potentials"] = outputs["logits"]
    return out
