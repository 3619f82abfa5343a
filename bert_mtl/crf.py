"""Whole-text CRF decoding, and tag-scheme constraints.

`viterbi_decode` is the one entry point to the native decoder (evaluation
and the Predictor); `viterbi_graph` is its twin in core TensorFlow ops (the
export's text signatures).  Heads decode single rows in-graph with
tfa.text.crf_decode.  `scheme_scores` is the one home of the constraints a
tagging scheme puts on a CRF, as scores added to its own.
"""

import collections

import numpy as np

from bert_mtl import extension

NEG_INF = float("-inf")

# Scores added to a CRF's own: 0 where the scheme allows, a large negative
# value where it does not.  transitions float32 [K, K] (tag i -> tag j),
# start / end float32 [K] (a path's first / last tag).
SchemeScores = collections.namedtuple("SchemeScores",
                                      ["transitions", "start", "end"])


def viterbi_decode(potentials, transitions, lengths, allowed_transitions=None,
                   allowed_start=None, allowed_end=None):
  """Best tag paths of a linear-chain CRF, identical to tfa.text.crf_decode.

  Args:
    potentials: float32 [batch, max_len, num_tags] unary scores.
    transitions: float32 [num_tags, num_tags]; [i, j] scores tag i -> tag j.
    lengths: int [batch], each in [0, max_len]; 0 decodes like 1, as tfa does.
    allowed_transitions: optional bool [num_tags, num_tags]; False forbids.
    allowed_start, allowed_end: optional bool [num_tags]: tags a path may
      start / end with.

  Returns:
    (tags int32 [batch, max_len], 0 beyond each length;
     scores float32 [batch], the best path's score).
  """
  transitions = np.asarray(transitions, np.float32)
  if allowed_transitions is not None:
    allowed = np.asarray(allowed_transitions, bool)
    if allowed.shape != transitions.shape:
      raise ValueError("allowed_transitions has shape %s, transitions %s" %
                       (allowed.shape, transitions.shape))
    transitions = np.where(allowed, transitions, np.float32(NEG_INF))
  return viterbi_scores(potentials, transitions, lengths,
                        _mask_to_scores(allowed_start),
                        _mask_to_scores(allowed_end))


def viterbi_scores(potentials, transitions, lengths, start_scores=None,
                   end_scores=None):
  """viterbi_decode with the constraints given as scores (SchemeScores'
  start / end: float32 [num_tags] or None, added to the first / last
  position's; transitions already hold theirs)."""
  return extension.native().viterbi_decode(
      potentials, np.asarray(transitions, np.float32),
      np.asarray(lengths, np.int32), start_scores, end_scores)


def viterbi_graph(potentials, transitions, lengths, start_scores=None,
            end_scores=None):
  """viterbi_decode in graph ops, with the same float32
  arithmetic order and ties to the lowest tag.

  Args:
    potentials: float32 [B, T, K]; transitions float32 [K, K] (-inf where
      forbidden); lengths int32 [B] (0 decodes like 1); start_scores /
      end_scores float32 [K] or None.
  Returns:
    int32 [B, T], 0 beyond each length.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  given_steps = tf.shape(potentials)[1]
  # A batch with no position at all (no text has a tagged unit) still
  # decodes one dummy step, cut off at the end.
  potentials = tf.pad(potentials, [[0, 0], [0, tf.maximum(
      1 - given_steps, 0)], [0, 0]])
  batch, steps = tf.shape(potentials)[0], tf.shape(potentials)[1]
  lengths = tf.maximum(tf.minimum(lengths, steps), 1)
  state = potentials[:, 0]
  if start_scores is not None:
    state = state + start_scores
  pointers = tf.TensorArray(tf.int32, size=tf.maximum(steps, 1))
  pointers = pointers.write(0, tf.zeros([batch, tf.shape(potentials)[2]],
                                        tf.int32))

  def forward(t, state, pointers):
    scores = state[:, :, None] + transitions[None]
    pointer = tf.argmax(scores, axis=1, output_type=tf.int32)
    new = potentials[:, t] + tf.reduce_max(scores, axis=1)
    state = tf.where((t < lengths)[:, None], new, state)
    return t + 1, state, pointers.write(t, pointer)

  _, state, pointers = tf.while_loop(lambda t, *_: t < steps, forward,
                                     (tf.constant(1), state, pointers))
  if end_scores is not None:
    state = state + end_scores
  top = tf.argmax(state, axis=1, output_type=tf.int32)
  pointers = pointers.stack()  # [T, B, K]; pointers[t]: best tag at t - 1
  tags = tf.TensorArray(tf.int32, size=tf.maximum(steps, 1))

  def backward(t, later, tags):
    """Tag t from tag t + 1 (`later`); the last real position takes the
    best final tag, positions past a row's length 0."""
    from_later = tf.gather(pointers[tf.minimum(t + 1, steps - 1)], later,
                           batch_dims=1)
    tag = tf.where(tf.equal(t, lengths - 1), top,
                   tf.where(t < lengths - 1, from_later, 0))
    return t - 1, tag, tags.write(t, tag)

  _, _, tags = tf.while_loop(lambda t, *_: t >= 0, backward,
                             (steps - 1, top, tags))
  return tf.transpose(tags.stack())[:, :given_steps]


def _mask_to_scores(mask, forbidden=NEG_INF):
  """float32 scores of a bool mask: 0 where True, `forbidden` where not."""
  if mask is None:
    return None
  return np.where(np.asarray(mask, bool), np.float32(0),
                  np.float32(forbidden)).astype(np.float32)


def _split_label(label):
  """'B-PER' -> ('B', 'PER'); 'b' -> ('B', ''); 'O' -> ('O', '')."""
  prefix, _, entity = label.partition("-")
  return prefix.upper(), entity


def scheme_constraints(labels, scheme):
  """Allowed transitions, starts and ends of a tagging scheme.

  Args:
    labels: tag names, e.g. ["O", "B-PER", "I-PER"] or ["B", "M", "E", "S"].
    scheme: "BIO", "BIOES" or "BMES" (BIOES and BMES differ only in I/M).

  Returns:
    (allowed_transitions bool [K, K], allowed_start bool [K],
     allowed_end bool [K]).
  """
  scheme = scheme.upper()
  if scheme not in ("BIO", "BIOES", "BMES"):
    raise ValueError("unknown tagging scheme %r (BIO, BIOES or BMES)" % scheme)
  parsed = [_split_label(label) for label in labels]
  for label, (prefix, _) in zip(labels, parsed):
    if prefix not in set(scheme) | {"O"}:
      raise ValueError("label %r does not belong to the %s scheme" %
                       (label, scheme))
  # Prefixes that continue an entity, and prefixes after which it goes on.
  if scheme == "BIO":
    continuing, opening = {"I"}, {"B", "I"}
  else:
    continuing, opening = {"I", "M", "E"}, {"B", "I", "M"}
  k = len(labels)
  allowed = np.ones((k, k), bool)
  start = np.ones(k, bool)
  end = np.ones(k, bool)
  for j, (pj, ej) in enumerate(parsed):
    continues = pj in continuing
    if continues:
      start[j] = False
    if scheme != "BIO" and pj in opening:
      end[j] = False
    for i, (pi, ei) in enumerate(parsed):
      open_i = pi in opening
      if scheme == "BIO":
        ok = not continues or (open_i and ei == ej)
      else:
        # Inside an entity only its own I/M/E may follow; outside, only
        # B, S or O may.
        ok = (continues and ei == ej) if open_i else not continues
      allowed[i, j] = ok
  return allowed, start, end



def scheme_scores(labels, scheme, forbidden=NEG_INF):
  """scheme_constraints as SchemeScores: 0 where allowed, `forbidden`
  (-inf for decoding; a finite value inside a trained graph, so no NaN)
  where not."""
  return SchemeScores(*[_mask_to_scores(mask, forbidden) for mask in
                         scheme_constraints(labels, scheme)])
