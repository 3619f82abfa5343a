"""`seq_tag`: a tag per unit (character or word), softmax or CRF over the
sequence output.

Only a unit's first token is tagged (features.tag_positions, one rule for
training records, evaluation, the Predictor and the served graph): [CLS],
[SEP], padding and continuation pieces get no loss and no prediction.  The
CRF runs over those positions only, packed to the front of each row, so
its transitions link consecutive units, not sub-tokens.  A text longer
than one window is decoded as a whole: each unit's scores come from the
window where it has the most context, then one Viterbi pass (CRF) or the
argmax (softmax) gives its tag; a unit without a token gets
features.fallback_label.
"""

import re

import numpy as np
import tensorflow as tf

from bert_mtl import base as constants
from bert_mtl import crf, metrics, types
from bert_mtl.data import features as feature_lib
from bert_mtl.heads import base
from bert_mtl.errors import DataError
from bert_mtl.labels import scheme_misfit

# Added to scores that a scheme constraint forbids (finite, so no NaN).
FORBIDDEN = -10000.0


def tag_positions(features, name):
  """bool [batch, seq]: the positions to tag: where the labels are not
  IGNORE (records), else the `tag_mask` input (the served graph: each
  unit's first token, see serving), else every real token but [CLS] and the
  final [SEP]."""
  key = name + "_label"
  if key in features:
    return tf.not_equal(features[key], constants.IGNORE)
  if feature_lib.TAG_MASK in features:
    return tf.cast(features[feature_lib.TAG_MASK], tf.bool)
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
  """Settings: crf, crf_constraints (forbid the transitions the scheme
  does not allow), transitions_lr_multiplier; labels and scheme are given
  by the run (head_settings)."""

  SETTINGS = {"crf": True, "crf_constraints": False,
              "transitions_lr_multiplier": None}
  SETTING_HELP = {
      "crf": "problem=true|false: a CRF (else a softmax) per seq_tag "
             "problem.",
      "crf_constraints": "Forbid transitions the tagging scheme does not "
                         "allow.",
      "transitions_lr_multiplier": "Learning-rate factor for the CRF "
                                   "transitions."}
  SETTING_TYPES = {"transitions_lr_multiplier": float}
  SETTING_FLAGS = {"transitions_lr_multiplier": "crf_lr_multiplier"}
  PER_PROBLEM = ("crf",)

  def build(self, body, features, mode):
    sequence = base.maybe_dropout(body.sequence_output, mode,
                                  self.bert_config.hidden_dropout_prob)
    logits = tf.cast(base.dense_logits(
        sequence, self.num_labels, self.bert_config.initializer_range),
                     tf.float32)                        # [batch, seq, K]
    mask = tag_positions(features, self.name)
    outputs = {"logits": logits, "mask": mask}
    if self.setting("crf"):
      outputs.update(self._build_crf(logits, mask))
    return outputs

  def _build_crf(self, logits, mask):
    transitions = tf.compat.v1.get_variable(
        "transitions", [self.num_labels, self.num_labels],
        initializer=tf.compat.v1.zeros_initializer())
    packed, order, lengths = pack_positions(logits, mask)
    scheme = self.settings.get("scheme")
    if self.setting("crf_constraints") and scheme:
      # Transitions only: a row is a window, which may begin or end inside
      # a word or entity (an `M` or `E` first), so the scheme's first and
      # last tags are constrained where a whole text is decoded
      # (SeqTag.decode, the text signatures), never per row.
      transitions = transitions + tf.constant(crf.scheme_scores(
          self.settings["labels"], scheme, FORBIDDEN).transitions)
    return {"packed": packed, "order": order, "lengths": lengths,
            "transitions": transitions}

  def loss_terms(self, outputs, features):
    labels = self.label(features)
    present = self.present(features)
    if "transitions" not in outputs:
      per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=tf.maximum(labels, 0), logits=outputs["logits"])
      weights = tf.cast(outputs["mask"], tf.float32) * present[:, None]
      return [(per_token, weights)]
    packed_labels = tf.gather(tf.maximum(labels, 0), outputs["order"],
                              batch_dims=1)
    # Rows without positions get length 1 and weight 0: finite, no gradient.
    import tensorflow_addons as tfa  # pylint: disable=g-import-not-at-top
    log_likelihood, _ = tfa.text.crf_log_likelihood(
        outputs["packed"], packed_labels, tf.maximum(outputs["lengths"], 1),
        outputs["transitions"])
    weights = present * tf.cast(outputs["lengths"] > 0, tf.float32)
    return [(-log_likelihood, weights)]

  def decode(self, outputs):
    """int32 [batch, seq]: the tag id of every tagged position, else -1."""
    if "transitions" not in outputs:
      tags = tf.argmax(outputs["logits"], -1, output_type=tf.int32)
      return tf.where(outputs["mask"], tags, -tf.ones_like(tags))
    import tensorflow_addons as tfa  # pylint: disable=g-import-not-at-top
    packed_tags, _ = tfa.text.crf_decode(
        outputs["packed"], outputs["transitions"],
        tf.maximum(outputs["lengths"], 1))
    return unpack_positions(packed_tags, outputs["order"], outputs["mask"])

  def metrics(self, outputs, features):
    """In-graph evaluation decodes nothing: the tag accuracy of the unary
    scores' argmax (the softmax head's own decision; for a CRF head a cheap
    proxy, its Viterbi decoding is scored per sentence by evaluation)."""
    weights = tf.cast(outputs["mask"], tf.float32) * self.present(
        features)[:, None]
    argmax = tf.argmax(outputs["logits"], -1, output_type=tf.int32)
    correct = tf.cast(tf.equal(argmax, self.label(features)), tf.float32)
    key = "unary_token_accuracy" if "transitions" in outputs else (
        "token_accuracy")
    return {key: base.mean_metric(correct, weights)}

  def predictions(self, outputs):
    out = {"tag_ids": self.decode(outputs)}
    if "transitions" in outputs:
      # The unary scores too, so a client can decode a whole long text at
      # once (the Predictor does, with the native Viterbi).
      out["potentials"] = outputs["logits"]
    return out


class SeqTag(types.ProblemType):
  """A list of units and one label per unit."""

  name = "seq_tag"
  inputs = "units"
  token_aligned = True
  # "word" and "pos" read B-n style joint tags of segmentation (SIGHAN word
  # F1; and tag accuracy for part of speech).
  metrics = {"entity": "entity_f1", "word": "word_f1",
             "pos": "token_accuracy"}
  head = SeqTagHead
  label_shape = "sequence"

  def check(self, inputs, labels):
    if not types.is_units(inputs) or not inputs:
      return "seq_tag inputs must be a non-empty list of characters or words"
    if not isinstance(labels, (list, tuple)) or len(labels) != len(inputs):
      return ("seq_tag needs one label per input unit: %d units, %s labels" %
              (len(inputs), len(labels) if isinstance(labels, (list, tuple))
               else "no"))
    if not all(isinstance(l, str) and l for l in labels):
      return "seq_tag labels must be non-empty strings"
    return None

  def placeholder_labels(self, inputs):
    return ["?"] * len(inputs)

  def training_label_lists(self, examples):
    return [e.labels for e in examples]

  def check_training_labels(self, name, spec, examples, encoder):
    """Tags outside the problem's declared scheme are a DataError at the
    first line that has one."""
    if not spec.scheme:
      return
    misfit = scheme_misfit(encoder.labels, spec.scheme)
    if misfit is None:
      return
    label, reason = misfit
    example = next(e for e in examples if label in e.labels)
    raise DataError(
        "label %r does not fit the %s tagging scheme: %s" % (
            label, spec.scheme, reason), name, example.path,
        example.line_of(list(example.labels).index(label)))

  def label_value(self, encoder, example, config):
    return encoder.encode(example.labels, example.path, example.line,
                          example)

  def head_settings(self, spec, encoder, bert_config, run_config, given):
    return {"labels": encoder.labels, "scheme": spec.scheme}

  def serving_inputs(self, inputs, vocab_tokens):
    """tag_mask (features.TAG_MASK); not given: every real token but
    [CLS], the final [SEP] and WordPiece continuations ("##"), each unit's
    first token for characters and plain words."""
    continuation = tf.constant([t.startswith("##") for t in vocab_tokens])
    mask = tf.cast(inputs["input_mask"], tf.bool)
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), 1)
    positions = tf.range(tf.shape(mask)[1])[None, :]
    inner = mask & (positions > 0) & (positions < lengths[:, None] - 1)
    return {feature_lib.TAG_MASK: tf.cast(
        inner & ~tf.gather(continuation, inputs["input_ids"]), tf.int32)}

  def manifest(self, settings):
    return {"crf": bool(settings["crf"]),
            "crf_constraints": bool(settings["crf_constraints"])}

  def decode_state(self, name, entry, encoder, read_variable):
    """A CRF problem's scores for decoding whole texts (one Viterbi pass
    over all their windows' scores): crf.SchemeScores of its trained
    transitions float32 [K, K] plus, with crf_constraints, its scheme's
    (start / end None without)."""
    if not entry.get("crf"):
      return None
    value = read_variable(name + "/transitions")
    if value is None:
      return None
    transitions = np.asarray(value, np.float32)
    if not (entry.get("crf_constraints") and entry.get("scheme")):
      return crf.SchemeScores(transitions, None, None)
    scheme = crf.scheme_scores(encoder.labels, entry["scheme"])
    return crf.SchemeScores(transitions + scheme.transitions, scheme.start,
                            scheme.end)

  def lr_multipliers(self, name, settings):
    factor = settings.get("transitions_lr_multiplier")
    return {"^%s/transitions$" % re.escape(name): factor} if factor else {}

  def decode(self, rows, encoder, context):
    """Labels per unit of the example (see the module docstring)."""
    alignment, spans = context.alignment, context.windows
    fallback = feature_lib.fallback_label(encoder.labels)
    if context.state is None:  # softmax: each unit's own argmax
      return encoder.decode(feature_lib.merge_window_predictions(
          alignment, spans, [r["tag_ids"] for r in rows], fallback,
          offset=1))  # +1: rows start with [CLS]
    first_token = np.asarray(alignment.first_token, np.int64)
    tagged = np.flatnonzero(first_token >= 0)
    ids = np.full(len(first_token), fallback, np.int64)
    if len(tagged):
      potentials = feature_lib.gather_from_windows(
          first_token[tagged], spans, [r["potentials"] for r in rows],
          offset=1)
      state = context.state
      tags, _ = crf.viterbi_scores(
          np.asarray(potentials, np.float32)[None], state.transitions,
          [len(tagged)], state.start, state.end)
      ids[tagged] = tags[0][:len(tagged)]
    return encoder.decode(ids.tolist())

  def serve_text(self, name, outputs, plan, entry, encoder, state):
    """Per unit of each text: `unit_spans` [B, units, 2] (character
    offsets), `tag_ids` and `tags` [B, units] (-1 / "" padded), decoded
    over the whole text as decode does (a CRF's one Viterbi pass, in graph
    ops)."""
    if plan.first_token is None:
      return super().serve_text(name, outputs, plan, entry, encoder, state)
    if state is not None:
      potentials = plan.unit_values(outputs["potentials"])
      tags = crf.viterbi_graph(
          potentials.to_tensor(), tf.constant(state.transitions),
          tf.cast(potentials.row_lengths(), tf.int32),
          *[None if s is None else tf.constant(s)
            for s in (state.start, state.end)])
      chosen = tf.RaggedTensor.from_tensor(
          tags, lengths=potentials.row_lengths()).flat_values
    else:
      chosen = plan.unit_values(outputs["tag_ids"]).flat_values
    tag_ids = plan.per_unit(chosen, feature_lib.fallback_label(
        encoder.labels))
    labels = tf.constant(list(encoder.labels))
    return {"unit_spans": plan.unit_spans.to_tensor(-1),
            "tag_ids": tag_ids.to_tensor(-1),
            "tags": tf.ragged.map_flat_values(
                lambda i: tf.gather(labels, i), tag_ids).to_tensor("")}

  def read_served(self, outputs, encoder, context):
    """The tags of the units serve_text found (its unit_spans)."""
    spans = np.asarray(outputs["unit_spans"])
    spans = spans[spans[:, 0] >= 0]
    units = [(context.text[s:e], int(s)) for s, e in spans]
    return encoder.decode(np.asarray(outputs["tag_ids"])[:len(units)]
                          .tolist()), units

  def score(self, spec, examples, results, encoder, context):
    gold = [e.labels for e in examples]
    if spec.metric == "entity":
      return {"entity_" + k: v for k, v in metrics.entity_prf(
          gold, results).items()}
    units = [e.inputs for e in examples]
    out = {"word_" + k: v for k, v in metrics.word_prf(
        [metrics.words_from_tags(u, g) for u, g in zip(units, gold)],
        [metrics.words_from_tags(u, r) for u, r in zip(units, results)]
    ).items()}
    if spec.metric == "pos":
      out["token_accuracy"] = metrics.token_accuracy(gold, results)
    return out

  def serve(self, result, rows, encoder, context):
    """entity: the spans with their text and character offsets (and the
    tags per unit); word: the words; pos: the words and (word, tag) pairs;
    other metrics: the tags per unit."""
    units, text, metric = context.units, context.text, context.spec["metric"]
    tags = list(result)
    if metric == "entity":
      found = []
      for kind, start, end in sorted(metrics.entities(tags),
                                     key=lambda e: e[1]):
        begin, finish = units[start][1], units[end][1] + len(units[end][0])
        found.append({"type": kind, "text": text[begin:finish],
                      "start": begin, "end": finish})
      return {"entities": found, "tags": tags}
    if metric not in ("word", "pos"):
      return {"tags": tags}
    unit_text = [u for u, _ in units]
    words = metrics.words_from_tags(unit_text, tags)
    out = {"words": words}
    if metric == "pos":
      kinds, position = [], 0
      for word in words:  # a word's type is its first unit's tag suffix
        kinds.append(tags[position].partition("-")[2])
        consumed = 0
        while consumed < len(word):
          consumed += len(unit_text[position])
          position += 1
      out["pos"] = list(zip(words, kinds))
    return out


types.register(SeqTag())
