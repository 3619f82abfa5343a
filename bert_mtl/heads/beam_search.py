"""Beam search in core TensorFlow ops (exportable, any batch size).

The model is a step function: the last token of every hypothesis and a
cache (e.g. a decoder's keys and values) in, next-token logits and the
updated cache out.  Hypotheses are kept in a [batch, beam] grid; the
cache is flattened to [batch * beam, ...] with row b * beam + k.  A
hypothesis that produced EOS continues with [PAD] (id 0) at no cost, so
finished and open hypotheses compete on raw log-probability; the final
choice divides by the GNMT length penalty ((5 + length) / 6) ** alpha.
beam_size 1 is greedy decoding.
"""

import tensorflow as tf

NEG = -1e9


def length_penalty(lengths, alpha):
  return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


def _gather_beams(tensor, beams, batch_size, beam_size):
  """Rows of a [batch * beam, ...] tensor picked by beams [batch, beam]."""
  flat = beams + tf.range(batch_size)[:, None] * beam_size
  return tf.gather(tensor, tf.reshape(flat, [-1]))


def _shape_invariant(tensor):
  """Batch and time may change (caches grow); inner sizes stay."""
  shape = tensor.shape.as_list()
  return tf.TensorShape([None] * min(2, len(shape)) + shape[2:])


def beam_search(step_fn, cache, batch_size, vocab_size, beam_size,
                max_length, bos_id, eos_id, alpha=0.6):
  """Best hypothesis per batch row.

  Args:
    step_fn: (ids int32 [batch * beam], cache, step int32 scalar) ->
      (logits float [batch * beam, vocab], cache).
    cache: nested structure of [batch, ...] tensors (tiled here).
    batch_size: scalar (may be a tensor).
    alpha: length penalty exponent (0: none).

  Returns:
    (ids int32 [batch, max_length], 0 after EOS; scores float [batch],
     the length-normalised log-probabilities).
  """
  cache = tf.nest.map_structure(
      lambda t: tf.repeat(t, beam_size, axis=0), cache)
  first_scores = tf.concat([[0.0], tf.fill([beam_size - 1], NEG)], 0)
  state = {
      "step": tf.constant(0),
      "last": tf.fill([batch_size * beam_size], bos_id),
      "ids": tf.zeros([batch_size, beam_size, max_length], tf.int32),
      "scores": tf.tile(first_scores[None], [batch_size, 1]),
      "finished": tf.zeros([batch_size, beam_size], tf.bool),
      "lengths": tf.fill([batch_size, beam_size], max_length),
      "cache": cache,
  }

  def cond(state):
    return tf.logical_and(state["step"] < max_length,
                          tf.logical_not(tf.reduce_all(state["finished"])))

  def body(state):
    step = state["step"]
    logits, new_cache = step_fn(state["last"], state["cache"], step)
    log_probs = tf.reshape(tf.nn.log_softmax(tf.cast(logits, tf.float32)),
                           [batch_size, beam_size, vocab_size])
    after_end = tf.concat([[0.0], tf.fill([vocab_size - 1], NEG)], 0)
    log_probs = tf.where(state["finished"][:, :, None],
                         after_end[None, None], log_probs)
    candidates = tf.reshape(state["scores"][:, :, None] + log_probs,
                            [batch_size, beam_size * vocab_size])
    scores, index = tf.math.top_k(candidates, k=beam_size)
    beams, tokens = index // vocab_size, index % vocab_size
    finished = tf.gather(state["finished"], beams, batch_dims=1)
    lengths = tf.gather(state["lengths"], beams, batch_dims=1)
    ids = tf.gather(state["ids"], beams, batch_dims=1)
    ids += tf.one_hot(step, max_length, dtype=tf.int32)[None, None] * (
        tokens[:, :, None])
    lengths = tf.where(tf.logical_and(tf.logical_not(finished),
                                      tf.equal(tokens, eos_id)),
                       tf.fill(tf.shape(lengths), step + 1), lengths)
    finished = tf.logical_or(finished, tf.equal(tokens, eos_id))
    new_cache = tf.nest.map_structure(
        lambda t: _gather_beams(t, beams, batch_size, beam_size), new_cache)
    return [{"step": step + 1, "last": tf.reshape(tokens, [-1]), "ids": ids,
             "scores": scores, "finished": finished, "lengths": lengths,
             "cache": new_cache}]

  invariants = tf.nest.map_structure(_shape_invariant, state)
  invariants["step"] = tf.TensorShape([])
  state, = tf.while_loop(cond, body, [state], shape_invariants=[invariants],
                         maximum_iterations=max_length)
  normalised = state["scores"] / length_penalty(state["lengths"], alpha)
  best = tf.argmax(normalised, axis=1, output_type=tf.int32)
  ids = tf.gather(state["ids"], best, batch_dims=1)
  ids = tf.reshape(ids, [batch_size, max_length])
  return ids, tf.gather(normalised, best, batch_dims=1)
