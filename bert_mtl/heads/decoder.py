"""A transformer decoder over BERT's encoder output.

Each layer: masked self-attention, cross-attention over the encoder output
(with the input mask), feed-forward; each sub-layer with its own output
projection, dropout, residual and LayerNorm (post-LN, as BERT).  Sizes,
activation and initializer follow the BertConfig.  `decoder_layers` with a
key/value cache runs the new positions alone, for beam search; keys and
values are kept split into heads, so a step transposes only its own.
"""

import math

import tensorflow as tf

from bert_mtl import modeling

tf1 = tf.compat.v1


def _dense(x, width, name, config, activation=None):
  return tf1.layers.dense(
      x, width, activation=activation, name=name,
      kernel_initializer=modeling.create_initializer(config.initializer_range))


def _split_heads(x, heads):
  """[batch, length, hidden] -> [batch, heads, length, hidden / heads]."""
  batch, length = tf.shape(x)[0], tf.shape(x)[1]
  x = tf.reshape(x, [batch, length, heads, x.shape[-1] // heads])
  return tf.transpose(x, [0, 2, 1, 3])


def _attend(query, key, value, bias, heads):
  """Scaled dot-product attention.

  query: [batch, q, hidden]; key, value: [batch, heads, k, hidden / heads]
  (split once: the encoder's per sequence, the cache's per position);
  bias broadcasts to [batch, heads, q, k]."""
  q = _split_heads(query, heads)
  scores = tf.matmul(q, key, transpose_b=True) / math.sqrt(
      float(q.shape[-1]))
  probs = tf.nn.softmax(scores + tf.cast(bias, scores.dtype))
  context = tf.transpose(tf.matmul(probs, value), [0, 2, 1, 3])
  batch, length = tf.shape(context)[0], tf.shape(context)[1]
  return tf.reshape(context, [batch, length, query.shape[-1]])


def _residual(x, sublayer_output, config, dropout):
  return modeling.layer_norm(
      x + modeling.dropout(
          _dense(sublayer_output, config.hidden_size, "output", config),
          dropout))


def encoder_keys_values(encoder_output, config, num_layers):
  """Per layer, the cross-attention keys and values of the encoder output
  ([batch, heads, source, hidden / heads] each), computed once per
  sequence."""
  out = []
  heads = config.num_attention_heads
  for layer in range(num_layers):
    with tf1.variable_scope("layer_%d/cross_attention" % layer):
      out.append({name: _split_heads(_dense(
          encoder_output, config.hidden_size, name, config), heads)
                  for name in ("key", "value")})
  return out


def encoder_bias(input_mask):
  """[batch, 1, 1, source]: -10000 on padding."""
  return (1.0 - tf.cast(input_mask, tf.float32))[:, None, None, :] * -10000.0


def causal_bias(length):
  """[1, 1, length, length]: -10000 above the diagonal."""
  allowed = tf.linalg.band_part(tf.ones([length, length]), -1, 0)
  return (1.0 - allowed)[None, None] * -10000.0


def decoder_layers(x, encoder_kv, source_bias, self_bias, config, dropout,
                   cache=None):
  """Runs every layer.

  Args:
    x: float [batch, length, hidden] target embeddings.
    encoder_kv: from encoder_keys_values.
    source_bias: from encoder_bias; self_bias: causal_bias or 0.
    cache: None, or per layer {"key", "value"} of earlier positions
      ([batch, heads, t, hidden / heads]); the new positions are appended
      (returned).

  Returns:
    (float [batch, length, hidden], the updated cache or None).
  """
  heads = config.num_attention_heads
  new_cache = [] if cache is not None else None
  for layer, kv in enumerate(encoder_kv):
    with tf1.variable_scope("layer_%d" % layer):
      with tf1.variable_scope("self_attention"):
        query = _dense(x, config.hidden_size, "query", config)
        key = _split_heads(_dense(x, config.hidden_size, "key", config),
                           heads)
        value = _split_heads(_dense(x, config.hidden_size, "value", config),
                             heads)
        if cache is not None:
          key = tf.concat([cache[layer]["key"], key], 2)
          value = tf.concat([cache[layer]["value"], value], 2)
          new_cache.append({"key": key, "value": value})
        x = _residual(x, _attend(query, key, value, self_bias, heads), config,
                      dropout)
      with tf1.variable_scope("cross_attention"):
        query = _dense(x, config.hidden_size, "query", config)
        x = _residual(x, _attend(query, kv["key"], kv["value"], source_bias,
                                 heads), config, dropout)
      with tf1.variable_scope("ffn"):
        hidden = _dense(x, config.intermediate_size, "intermediate", config,
                        modeling.get_activation(config.hidden_act))
        x = _residual(x, hidden, config, dropout)
  return x, new_cache


def empty_cache(batch_size, config, num_layers):
  heads = config.num_attention_heads
  shape = [batch_size, heads, 0, config.hidden_size // heads]
  return [{"key": tf.zeros(shape), "value": tf.zeros(shape)}
          for _ in range(num_layers)]
