"""What a problem type is: one object that owns everything about the type.

A type is a `ProblemType` subclass registered once with
`bert_mtl.types.register`; nothing else in the library names it.  Along
the way from a corpus line to a TF Serving response the library asks the
type, in this order:

    check(inputs, labels)             every example a reader yields
    fit_encoder(name, spec, config)   the label map, from the train split
    label_value(...)                  the label feature of one record
    parse_spec / parse / absent / padding   the tf.data side of the record
    document_records / parse_record   the same, for "document" inputs
    head(name, num_labels, settings, bert_config)   the graph (heads.base)
    head_settings(spec, encoder, ...)   settings the head derives from the run
    decode_state(name, entry, encoder, read_variable)   what decoding
                                      needs of the trained model
    decode(rows, encoder, context)    model outputs -> the label space
    score(spec, examples, results, context)   the type's metrics
    serve_text(name, outputs, plan, ...)    the export's text signature
    read_served(outputs, encoder, context)  a text signature's response
    serve(result, rows, encoder, context)    the Predictor's result

Defaults here fit a type with one label per example (as `cls`): a type
overrides what differs.  Settings are the
per-problem head settings the type accepts (its head's SETTINGS); the run
configuration rejects any other.
"""

import numpy as np

from bert_mtl import base
from bert_mtl.labels import LabelEncoder


def is_text(inputs):
  """A text or a (text_a, text_b) pair."""
  return isinstance(inputs, str) or (
      isinstance(inputs, tuple) and len(inputs) == 2 and
      all(isinstance(t, str) for t in inputs))


def is_units(inputs):
  """A list of non-empty unit strings (characters or words)."""
  return isinstance(inputs, (list, tuple)) and all(
      isinstance(u, str) and u for u in inputs)


class ProblemType(object):
  """Base class; subclasses set the class attributes and override hooks.

  Attributes:
    name: the type's name in `@problem(name, type)`.
    inputs: "text" (a text or pair), "units" (a list of units), "any" (either)
      or "document" (a list of sentences; its records are its own).
    token_aligned: labels are per unit, carried on each unit's first token
      and windowed with the input (seq_tag).
    metrics: {metric name: its main key}; the first is the default.
    stratified: a max_examples subset keeps each label's share.
    decodes: predictions are decoded per example (False: judged by the
      in-graph metrics only, as pretraining).
    head: its heads.base.Head subclass; the head's SETTINGS ({setting:
      default}) are the per-problem settings the type accepts.
  """

  name = None
  inputs = "text"
  token_aligned = False
  stratified = False
  metrics = {}
  decodes = True
  head = None

  # ----------------------------------------------------------- examples

  def check(self, inputs, labels):
    """None when (inputs, labels) fit the type, else what is wrong."""
    raise NotImplementedError

  def placeholder_labels(self, inputs):
    """Stand-in labels of an unlabelled (predict) example, so its inputs
    are still checked."""
    return "?"

  def default_metric(self):
    return next(iter(self.metrics))

  # ------------------------------------------------------------- labels

  def training_label_lists(self, examples):
    """The label lists a label map is fitted on."""
    return [[e.labels] for e in examples]

  def fit_encoder(self, name, spec, config, read):
    """The problem's LabelEncoder.

    Args:
      spec: the registry's Problem; config: the data PipelineConfig;
      read: fn(problem, split) -> examples (the run reads each split once).
    """
    examples = read(name, "train")
    encoder = LabelEncoder.fit(self.training_label_lists(examples), name,
                               self.reserved_labels())
    self.check_training_labels(name, spec, examples, encoder)
    return encoder

  def reserved_labels(self):
    return ()

  def check_training_labels(self, name, spec, examples, encoder):
    """Raises DataError when the training labels cannot train the problem."""

  # ------------------------------------------------------------ records

  def label_value(self, encoder, example, config):
    """The `<name>_label` feature of one labelled example (int64 or
    float32 array-like)."""
    return encoder.encode([example.labels], example.path, example.line)[0]

  def label_values(self, encoder, examples, config):
    """label_value of a chunk of examples (None where unlabelled); a type
    may batch its work here."""
    return [None if e.labels is None else
            self.label_value(encoder, e, config) for e in examples]

  # What a label feature is: "scalar" (one value), "per_label" (one value
  # per label, e.g. multi-hot) or "sequence" (variable length; per token
  # when token_aligned), of dtype "int64" or "float32".  The record spec,
  # parsing, padding and absent values below follow from these two.
  label_shape = "scalar"
  label_dtype = "int64"

  def unlabelled_value(self, num_labels):
    """The record value of an example without labels (present = 0)."""
    if self.label_shape == "per_label":
      return [0] * num_labels
    return [] if self.label_shape == "sequence" else 0

  def record_dtype(self):
    return np.float32 if self.label_dtype == "float32" else np.int64

  def _tf_dtypes(self):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if self.label_dtype == "float32":
      return tf.float32, tf.float32
    return tf.int64, tf.int32  # (in the record, in the model)

  def parse_spec(self, name, num_labels):
    """{feature: tf.io spec} of the problem's features in its records."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    stored, _ = self._tf_dtypes()
    label = (tf.io.VarLenFeature(stored) if self.label_shape == "sequence"
             else tf.io.FixedLenFeature(
                 [num_labels if self.label_shape == "per_label" else 1],
                 stored))
    return {name + "_label": label,
            name + "_present": tf.io.FixedLenFeature([1], tf.int64)}

  def parse(self, name, parsed):
    """The problem's model features from the parsed record."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    _, dtype = self._tf_dtypes()
    label = parsed[name + "_label"]
    if self.label_shape == "sequence":
      label = tf.sparse.to_dense(label)
    elif self.label_shape == "scalar":
      label = label[0]
    return {name + "_label": tf.cast(label, dtype),
            name + "_present": tf.cast(parsed[name + "_present"][0],
                                       tf.int32)}

  def absent(self, name, num_labels, input_ids, context):
    """Features of a record of another group (the problem is absent):
    IGNORE on every token for a token-aligned label, else zeros."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    del context
    _, dtype = self._tf_dtypes()
    if self.token_aligned:
      label = tf.fill(tf.shape(input_ids), tf.constant(base.IGNORE, dtype))
    elif self.label_shape == "sequence":
      label = tf.zeros([0], dtype)
    elif self.label_shape == "per_label":
      label = tf.zeros([num_labels], dtype)
    else:
      label = tf.constant(0, dtype)
    return {name + "_label": label,
            name + "_present": tf.constant(0, tf.int32)}

  def padding(self, name):
    """{feature: tf scalar} padding values of the problem's features."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    _, dtype = self._tf_dtypes()
    return {name + "_label": tf.constant(
        base.IGNORE if self.token_aligned else 0, dtype),
            name + "_present": tf.constant(0, tf.int32)}

  # ----------------------------------------------- document inputs
  # A type whose inputs are "document" (pretrain) builds its records itself
  # from whole documents and reads them back itself; the data layer asks
  # only these two.

  def document_records(self, documents, config, split):
    """Serialized tf.train.Examples of a split's documents (Examples whose
    inputs are lists of sentences); config: the data PipelineConfig."""
    raise NotImplementedError("%s reads no documents" % self.name)

  def parse_record(self, record, name, max_seq_length, max_predictions):
    """One of document_records' records -> the model's features of
    problem `name` (input_ids, input_mask, segment_ids, example_index,
    window_start and the problem's own)."""
    raise NotImplementedError("%s reads no documents" % self.name)

  # --------------------------------------------------------------- head

  def settings(self):
    """{setting: default} a problem of this type accepts."""
    return dict(self.head.SETTINGS)

  def head_settings(self, spec, encoder, bert_config, run_config, given):
    """Settings the head derives from the run (beyond SETTINGS); `given`:
    the settings the run gives the problem."""
    return {}

  def serving_inputs(self, inputs, vocab_tokens):
    """{name: int32 Tensor [batch, length]}: model inputs of the export
    beyond `inputs` (input_ids, input_mask, segment_ids) that a problem of
    this type reads, each with its value when a request does not give it
    (the export's `tagged` signatures take them)."""
    return {}

  def manifest(self, settings):
    """What the export's manifest records of a problem of this type."""
    return {}

  def decode_state(self, name, entry, encoder, read_variable):
    """What decoding problem `name`'s outputs needs of the trained model
    beyond them (seq_tag: its CRF's scores), or None; read from a
    checkpoint or an export through read_variable(variable name) -> value
    (None when absent).  It reaches decode as context.state, and
    serve_text as `state`."""
    return None

  def lr_multipliers(self, name, settings):
    """{regex over variable names: learning-rate factor} of problem
    `name`'s head (e.g. a CRF's transitions learning faster)."""
    return {}

  # ------------------------------------------------------------ outputs

  def decode(self, rows, encoder, context):
    """One example's result in the label space.

    Args:
      rows: per window of the example (in order), {output: value} of this
        problem's predictions.
      context: a decoding.Context (alignment, windows, CRF transitions).
    """
    raise NotImplementedError

  def score(self, spec, examples, results, encoder, context):
    """{metric: value} of results (one per example) against the labels."""
    raise NotImplementedError

  def serve_text(self, name, outputs, plan, entry, encoder, state):
    """The export's text signature for problem `name`, in graph ops:
    {output: Tensor [batch, ...]} (named `<name>/<output>` in the response).

    Args:
      outputs: {output: Tensor [rows, ...]}, the problem's model outputs
        on the plan's rows.
      plan: a text_serving.TextPlan (rows per text; a unit form's units,
        tokens and windows).
      entry: its manifest entry; state: its decode_state.
    The default: the outputs of each text's first row, as the ids
    signatures return them."""
    return {key: plan.first_rows(value) for key, value in outputs.items()}

  def read_served(self, outputs, encoder, context):
    """decode of one text's serve_text outputs ({output: value}, as TF
    Serving returns them): (result, the text's [(unit, offset)] for serve,
    or None)."""
    return self.decode([outputs], encoder, context), context.units

  def serve(self, result, rows, encoder, context):
    """The Predictor's result for one text: `result` is decode's, `rows`
    the example's model outputs; context.text is the text and
    context.units its [(unit, character offset)]."""
    raise NotImplementedError

