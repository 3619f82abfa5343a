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


def tile_beams(tensor, beam_size):
  """[batch, ...] -> [batch * beam, ...], row b * beam + k = row b."""
  return tf.repeat(tensor, beam_size, axis=0)


def _gather_beams(tensor, beams, batch_size, beam_size):
  """Rows of a [batch * beam, ...] tensor picked by beams [batch, beam]."""
  flat = beams + tf.range(batch_size)[:, None] * beam_size
  return tf.gather(tensor, tf.reshape(flat, [-1]))


BLOCK = 32  # vocabulary entries per block in top_k_with_max (measured)


def top_k_with_max(logits, k):
  """(values, indices) of each row's k largest logits, as tf.math.top_k
  (ties: lower index first), and the row maxima [rows, 1].

  Over a large vocabulary TopK is the costliest op of a decoding step, so
  rows are cut into blocks of BLOCK: a row's top k lie in the k blocks with
  the largest maxima (each block ranked before an element's block holds
  a distinct element ranked before it), which are taken in index order and
  searched alone.  A small vocabulary uses top_k directly."""
  rows, vocab_size = tf.shape(logits)[0], logits.shape[-1]
  if vocab_size is None or vocab_size < 8 * BLOCK:
    values, indices = tf.math.top_k(logits, k=k)
    return values, indices, tf.reduce_max(logits, -1, keepdims=True)
  padding = -vocab_size % BLOCK
  if padding:
    logits = tf.pad(logits, [[0, 0], [0, padding]],
                    constant_values=logits.dtype.min)
  blocks = tf.reshape(logits, [rows, -1, BLOCK])
  block_max = tf.reduce_max(blocks, -1)
  _, top_blocks = tf.math.top_k(block_max, k=k)
  top_blocks = tf.sort(top_blocks, -1)
  candidates = tf.reshape(tf.gather(blocks, top_blocks, batch_dims=1),
                          [rows, k * BLOCK])
  values, positions = tf.math.top_k(candidates, k=k)
  indices = tf.gather(top_blocks, positions // BLOCK, batch_dims=1) * BLOCK + (
      positions % BLOCK)
  return values, indices, tf.reduce_max(block_max, -1, keepdims=True)


def padded_vocab_size(vocab_size):
  """The logits width top_k_with_max reads without padding a copy of them
  each step: an output layer padded once (entries at NEG) to this size."""
  if vocab_size < 8 * BLOCK:
    return vocab_size
  return vocab_size + (-vocab_size % BLOCK)


def _shape_invariant(tensor):
  """Every size but the last may change (batch, caches growing in time,
  wherever a step function keeps it); the rank and last size stay."""
  shape = tensor.shape.as_list()
  return tf.TensorShape([None] * (len(shape) - 1) + shape[-1:])


def beam_search(step_fn, cache, batch_size, vocab_size, beam_size,
                max_length, bos_id, eos_id, alpha=0.6):
  """Best hypothesis per batch row.

  Args:
    step_fn: (ids int32 [batch * beam], cache, step int32 scalar) ->
      (logits float [batch * beam, vocab or more], cache); entries past
      vocab_size (an output layer padded to padded_vocab_size) are NEG.
    cache: nested structure of [batch, ...] tensors (tiled here), what
      changes from step to step and is reordered with the hypotheses;
      what does not (an encoder's output) the step function reads tiled
      (tile_beams) from outside the loop.
    batch_size: scalar (may be a tensor).
    alpha: length penalty exponent (0: none).

  Returns:
    (ids int32 [batch, max_length], 0 after EOS; scores float [batch],
     the length-normalised log-probabilities).
  """
  cache = tf.nest.map_structure(lambda t: tile_beams(t, beam_size), cache)
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
    logits = tf.cast(logits, tf.float32)
    # The best beam_size of all beam x vocab continuations are among each
    # hypothesis' own best beam_size, so the full [batch, beam * vocab]
    # candidate grid (log-softmax, masking, top-k over it) is never built:
    # top-k of the logits (their order is the log-probabilities' order),
    # then top-k over the beam x k survivors.  Same ids and scores, ties
    # included (top_k keeps lower indices first at both stages).
    k = min(beam_size, vocab_size)
    top_logits, top_tokens, row_max = top_k_with_max(logits, k)
    log_norm = row_max + tf.math.log(tf.reduce_sum(
        tf.exp(logits - row_max), -1, keepdims=True))
    top_log_probs = tf.reshape(top_logits - log_norm,
                               [batch_size, beam_size, k])
    top_tokens = tf.reshape(top_tokens, [batch_size, beam_size, k])
    # A finished hypothesis continues with [PAD] at no cost; its other
    # continuations (tokens 1.., NEG) are there only to keep the grid full.
    after_end = tf.concat([[0.0], tf.fill([k - 1], NEG)], 0)
    finished_now = state["finished"][:, :, None]
    top_log_probs = tf.where(finished_now, after_end[None, None],
                             top_log_probs)
    top_tokens = tf.where(finished_now, tf.range(k)[None, None], top_tokens)
    candidates = tf.reshape(state["scores"][:, :, None] + top_log_probs,
                            [batch_size, beam_size * k])
    scores, index = tf.math.top_k(candidates, k=beam_size)
    beams = index // k
    tokens = tf.gather(tf.reshape(top_tokens, [batch_size, beam_size * k]),
                       index, batch_dims=1)
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
