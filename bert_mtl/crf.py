"""CRF decoding outside the TensorFlow graph, and tag-scheme constraints.

`viterbi_decode` is the one entry point to the native decoder; heads decode
in-graph with tfa.text.crf_decode, and the Python predictor uses this.
"""

import numpy as np

from bert_mtl import extension

NEG_INF = float("-inf")


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
  return extension.native().viterbi_decode(potentials, transitions,
                                np.asarray(lengths, np.int32),
                                _mask_to_scores(allowed_start),
                                _mask_to_scores(allowed_end))


def _mask_to_scores(mask):
  if mask is None:
    return None
  mask = np.asarray(mask, bool)
  return np.where(mask, np.float32(0), np.float32(NEG_INF)).astype(np.float32)


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

