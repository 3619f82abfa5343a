"""`pretrain`: masked LM + next sentence, as run_pretraining.py builds them.

Variables keep the original names (`cls/predictions/...`,
`cls/seq_relationship/...`, outside the problem's scope), so they restore
from and save to original checkpoints.  The masked-LM output matrix is the
word-embedding table.
"""

import tensorflow as tf

from bert_mtl import modeling
from bert_mtl.heads import base

tf1 = tf.compat.v1


class PretrainHead(base.Head):
  """Features: <name>_masked_lm_positions / _ids / _weights [batch, P] and
  <name>_label (next_sentence_labels, 0 = IsNext) [batch]."""

  global_scope = True  # builds under cls/, not under the problem's name

  def _feature(self, features, key):
    return features["%s_%s" % (self.name, key)]

  def build(self, body, features, mode):
    config = self.bert_config
    key = self.name + "_masked_lm_positions"
    positions = (features[key] if key in features else  # serving: NSP only
                 tf.zeros([tf.shape(body.input_ids)[0], 1], tf.int32))
    batch, seq = tf.shape(body.sequence_output)[0], tf.shape(
        body.sequence_output)[1]
    flat = tf.reshape(positions + tf.range(batch)[:, None] * seq, [-1])
    gathered = tf.gather(tf.reshape(body.sequence_output,
                                    [-1, config.hidden_size]), flat)
    with tf1.variable_scope("cls/predictions"):
      with tf1.variable_scope("transform"):
        hidden = tf1.layers.dense(
            gathered, config.hidden_size,
            activation=modeling.get_activation(config.hidden_act),
            kernel_initializer=modeling.create_initializer(
                config.initializer_range))
        hidden = modeling.layer_norm(hidden)
      bias = tf1.get_variable("output_bias", [config.vocab_size],
                              initializer=tf1.zeros_initializer())
      mlm_logits = tf.matmul(hidden, body.embedding_table,
                             transpose_b=True) + bias
    with tf1.variable_scope("cls/seq_relationship"):
      weights = tf1.get_variable(
          "output_weights", [2, config.hidden_size],
          initializer=modeling.create_initializer(config.initializer_range))
      nsp_bias = tf1.get_variable("output_bias", [2],
                                  initializer=tf1.zeros_initializer())
      nsp_logits = tf.matmul(body.pooled_output, weights,
                             transpose_b=True) + nsp_bias
    return {"mlm_logits": tf.cast(mlm_logits, tf.float32),  # [batch * P, V]
            "nsp_logits": tf.cast(nsp_logits, tf.float32)}  # [batch, 2]

  def _mlm_terms(self, outputs, features):
    ids = tf.reshape(self._feature(features, "masked_lm_ids"), [-1])
    weights = tf.reshape(self._feature(features, "masked_lm_weights"), [-1])
    weights *= tf.reshape(tf.broadcast_to(
        self.present(features)[:, None],
        tf.shape(self._feature(features, "masked_lm_weights"))), [-1])
    return ids, weights

  def losses(self, outputs, features):
    """(masked-LM loss, next-sentence loss)."""
    ids, weights = self._mlm_terms(outputs, features)
    mlm = base.masked_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=ids, logits=outputs["mlm_logits"]), weights)
    nsp = base.masked_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=self.label(features), logits=outputs["nsp_logits"]),
                           self.present(features))
    return mlm, nsp

  def loss(self, outputs, features):
    return tf.add_n(self.losses(outputs, features))

  def metrics(self, outputs, features):
    ids, weights = self._mlm_terms(outputs, features)
    mlm_correct = tf.cast(tf.equal(tf.argmax(
        outputs["mlm_logits"], -1, output_type=tf.int32), ids), tf.float32)
    nsp_correct = tf.cast(tf.equal(tf.argmax(
        outputs["nsp_logits"], -1, output_type=tf.int32),
                                   self.label(features)), tf.float32)
    mlm_loss, nsp_loss = self.losses(outputs, features)
    present = self.present(features)
    return {"masked_lm_accuracy": base.mean_metric(mlm_correct, weights),
            "masked_lm_loss": tf1.metrics.mean(mlm_loss),
            "next_sentence_accuracy": base.mean_metric(nsp_correct, present),
            "next_sentence_loss": tf1.metrics.mean(nsp_loss)}

  def predictions(self, outputs):
    return {"next_sentence_probabilities": tf.nn.softmax(
        outputs["nsp_logits"])}
