"""The interface every problem type's head implements, and the pieces heads
share (each type's head lives in its type module, bert_mtl/types/).

A head is built once per problem inside the model_fn, under the problem's
own variable scope:

    head = types.get(problem_type).head(name, num_labels, settings,
                                        bert_config)
    outputs = head.build(body, features, mode)      # tensors, all modes
    loss = head.loss(outputs, features)             # TRAIN / EVAL
    terms = head.loss_terms(outputs, features)      # what the loss averages
    metrics = head.metrics(outputs, features)       # EVAL, in-graph
    predictions = head.predictions(outputs)         # PREDICT / export

`features` holds `<name>_label` and `<name>_present` (1 where the row has
the problem).  Losses are means over the rows (or labelled positions) where
the problem is present; with none present they are exactly 0 with a zero
gradient, never NaN.
"""

import collections

import tensorflow as tf

tf1 = tf.compat.v1

# What a head sees of the encoder.
Body = collections.namedtuple("Body", [
    "sequence_output",   # float [batch, seq, hidden]
    "pooled_output",     # float [batch, hidden]
    "embedding_table",   # float [vocab, hidden]
    "input_ids",         # int32 [batch, seq]
    "input_mask",        # int32 [batch, seq]
    "config",            # BertConfig
])


class Head(object):
  """Base class: stores the problem's name, label count and settings.

  SETTINGS: {setting: default} the head reads (the only place a head
  setting's default is written; the run configuration checks settings
  against it).
  SETTING_HELP: {setting: what it does}; the command line's flag of each
    setting is generated from these (bert_mtl/cli.py).
  SETTING_TYPES: {setting: type} where the default (None) does not say.
  SETTING_FLAGS: {setting: flag name} where the flag is named otherwise.
  PER_PROBLEM: settings whose flag takes problem=value pairs (the others
    take one value for every problem that has the setting)."""

  SETTINGS = {}
  SETTING_HELP = {}
  SETTING_TYPES = {}
  SETTING_FLAGS = {}
  PER_PROBLEM = ()

  def __init__(self, name, num_labels, settings, bert_config):
    self.name = name
    self.num_labels = num_labels
    self.settings = settings
    self.bert_config = bert_config

  def setting(self, key):
    """The problem's setting `key`, else its default in SETTINGS."""
    if key in self.settings:
      return self.settings[key]
    return self.SETTINGS[key]

  def label(self, features):
    return features[self.name + "_label"]

  def present(self, features, dtype=tf.float32):
    return tf.cast(features[self.name + "_present"], dtype)

  def build(self, body, features, mode):
    raise NotImplementedError

  def pooled_logits(self, body, mode):
    """[batch, num_labels] from the pooled output (dropout in TRAIN).

    The variables are run_classifier.py's, `output_weights` [num_labels,
    hidden] (used transposed) and `output_bias` [num_labels], under the
    problem's scope, so an original fine-tuned classifier loads into the
    head by a plain rename (checkpoint.ORIGINAL_CLASSIFIER).
    """
    pooled = maybe_dropout(body.pooled_output, mode,
                           self.bert_config.hidden_dropout_prob)
    hidden = pooled.shape[-1]
    weights = tf1.get_variable(
        "output_weights", [self.num_labels, hidden],
        initializer=tf1.truncated_normal_initializer(
            stddev=self.bert_config.initializer_range))
    bias = tf1.get_variable("output_bias", [self.num_labels],
                            initializer=tf1.zeros_initializer())
    return tf.nn.bias_add(tf.matmul(pooled, weights, transpose_b=True), bias)

  def loss_terms(self, outputs, features):
    """[(values, weights)]: the loss is the sum over the terms of
    masked_mean(values, weights), a mean over the rows or positions each
    term weights.  A type defines this or `loss`, not both: one that
    overrides `loss` alone returns None here (its evaluation loss is then
    a mean of batch losses)."""
    return None

  def loss(self, outputs, features):
    terms = self.loss_terms(outputs, features)
    if terms is None:
      raise NotImplementedError("%s defines neither loss nor loss_terms" %
                                type(self).__name__)
    return loss_of_terms(terms)

  def metrics(self, outputs, features):
    return {}

  def predictions(self, outputs):
    raise NotImplementedError


def loss_of_terms(terms):
  """The loss of Head.loss_terms: sum of each term's masked mean."""
  return tf.add_n([masked_mean(values, weights) for values, weights in terms])


def split_loss_metric(terms):
  """tf1.metrics (value, update op) of the loss over a whole split: each
  term's mean over every row or position it weights in the split, however
  the batches were cut (a token-mean loss is not a mean of batch means)."""
  means = [tf1.metrics.mean(values, weights=weights)
           for values, weights in terms]
  if len(means) == 1:
    return means[0]
  values = [value for value, _ in means]
  update = tf.group(*[update for _, update in means])
  context = tf.distribute.get_replica_context()
  if context is None:  # cross-replica context
    return tf.add_n(values), update
  # Each mean is the one cross-replica value every replica sees (as
  # tf1.metrics returns it); their sum must be one too, not one per replica.
  return context.merge_call(lambda _, *means: tf.add_n(means),
                            args=values), update


def masked_mean(values, weights):
  """sum(values * weights) / sum(weights); exactly 0 (and a zero gradient)
  when every weight is 0."""
  weights = tf.cast(weights, values.dtype)
  return tf.math.divide_no_nan(tf.reduce_sum(values * weights),
                               tf.reduce_sum(weights))


def dense_logits(inputs, num_outputs, initializer_range, name="output"):
  """A dense projection with the BERT initializer."""
  return tf1.layers.dense(
      inputs, num_outputs, name=name,
      kernel_initializer=tf1.truncated_normal_initializer(
          stddev=initializer_range))


def maybe_dropout(inputs, mode, rate):
  if mode == tf.estimator.ModeKeys.TRAIN and rate:
    return tf.nn.dropout(inputs, rate=rate)
  return inputs


def mean_metric(values, weights):
  """An eval_metric_op averaging `values` with `weights` over the set."""
  return tf1.metrics.mean(values, weights=tf.cast(weights, tf.float32))
