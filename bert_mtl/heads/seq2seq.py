"""`seq2seq_tag` and `seq2seq_text`: a transformer decoder over the
encoder output, trained with teacher forcing, decoded by beam search.

Targets (`<name>_label`, [batch, target]) end in EOS and are padded with
0 ([PAD]); the decoder input is BOS followed by the targets shifted right
by one, and the loss covers the real target positions only.
seq2seq_text ties its input and output embeddings to BERT's word
embeddings when the target vocabulary is BERT's; seq2seq_tag has its own.
"""

import tensorflow as tf

from bert_mtl import modeling
from bert_mtl.heads import base, beam_search, decoder

tf1 = tf.compat.v1


class Seq2SeqHead(base.Head):
  """Settings: decoder_layers (2), beam_size (4), beam_alpha (0.6),
  max_decode_length (32), bos_id / eos_id (given by the model_fn),
  share_embeddings (given: True for seq2seq_text on BERT's vocabulary)."""

  def build(self, body, features, mode):
    config = self.bert_config
    training = mode == tf.estimator.ModeKeys.TRAIN
    dropout = config.hidden_dropout_prob if training else 0.0
    self.num_layers = int(self.setting("decoder_layers", 2))
    with tf1.variable_scope("decoder", reuse=tf1.AUTO_REUSE):
      if self.setting("share_embeddings", False):
        table = body.embedding_table
      else:
        table = tf1.get_variable(
            "target_embeddings", [self.num_labels, config.hidden_size],
            initializer=modeling.create_initializer(config.initializer_range))
      positions = tf1.get_variable(
          "position_embeddings",
          [config.max_position_embeddings, config.hidden_size],
          initializer=modeling.create_initializer(config.initializer_range))
      output_bias = tf1.get_variable("output_bias", [self.num_labels],
                                     initializer=tf1.zeros_initializer())
      encoder_kv = decoder.encoder_keys_values(body.sequence_output, config,
                                               self.num_layers)
      source_bias = decoder.encoder_bias(body.input_mask)

      def embed(ids, start):
        """[batch, length] ids at positions start.. -> embeddings."""
        length = tf.shape(ids)[1]
        x = tf.gather(table, ids) + tf.gather(
            positions, tf.range(start, start + length))[None]
        with tf1.variable_scope("embeddings", reuse=tf1.AUTO_REUSE):
          return modeling.layer_norm_and_dropout(x, dropout)

      def logits_of(hidden):
        return tf.einsum("blh,vh->blv", hidden, table) + output_bias

      bos = int(self.setting("bos_id"))
      label_key = self.name + "_label"
      if label_key in features:
        targets = features[label_key]
      else:  # serving: no targets; the variables are built on BOS alone
        targets = tf.zeros([tf.shape(body.input_ids)[0], 1], tf.int32)
      # A batch without the problem has [batch, 0] targets: keep one column.
      targets = tf.pad(targets, [[0, 0], [0, tf.maximum(
          0, 1 - tf.shape(targets)[1])]])
      batch_size = tf.shape(targets)[0]
      inputs = tf.concat([tf.fill([batch_size, 1], bos), targets[:, :-1]], 1)
      hidden, _ = decoder.decoder_layers(
          embed(inputs, 0), encoder_kv, source_bias,
          decoder.causal_bias(tf.shape(inputs)[1]), config, dropout)
      outputs = {"logits": tf.cast(logits_of(hidden), tf.float32),
                 "targets": targets}

      if mode != tf.estimator.ModeKeys.TRAIN:
        def step(ids, cache, position):
          kv, layer_cache = cache["encoder"], cache["layers"]
          x = embed(ids[:, None], position)
          hidden, layer_cache = decoder.decoder_layers(
              x, kv, cache["source_bias"], 0.0, config, 0.0, layer_cache)
          return logits_of(hidden)[:, 0], dict(cache, layers=layer_cache)
        batch = tf.shape(body.sequence_output)[0]
        cache = {"encoder": encoder_kv, "source_bias": source_bias,
                 "layers": decoder.empty_cache(batch, config,
                                               self.num_layers)}
        ids, scores = beam_search.beam_search(
            step, cache, batch, self.num_labels,
            int(self.setting("beam_size", 4)),
            int(self.setting("max_decode_length", 32)), bos,
            int(self.setting("eos_id")), float(self.setting("beam_alpha", 0.6)))
        outputs.update(decoded_ids=ids, decoded_scores=scores)
    return outputs

  def loss(self, outputs, features):
    targets = outputs["targets"]
    per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=targets, logits=outputs["logits"])
    weights = tf.cast(targets > 0, tf.float32) * self.present(features)[:, None]
    return base.masked_mean(per_token, weights)

  def metrics(self, outputs, features):
    targets = outputs["targets"]
    weights = tf.cast(targets > 0, tf.float32) * self.present(features)[:, None]
    correct = tf.cast(tf.equal(
        tf.argmax(outputs["logits"], -1, output_type=tf.int32), targets),
                      tf.float32)
    return {"token_accuracy": base.mean_metric(correct, weights)}

  def predictions(self, outputs):
    return {"ids": outputs["decoded_ids"], "scores": outputs["decoded_scores"]}
