"""`pretrain`: masked LM + next sentence, as run_pretraining.py builds them.

Variables keep the original names (`cls/predictions/...`,
`cls/seq_relationship/...`, outside the problem's scope), so they restore
from and save to original checkpoints.  The masked-LM output matrix is the
word-embedding table.
"""

import numpy as np
import tensorflow as tf

from bert_mtl import base as constants
from bert_mtl import config as config_lib
from bert_mtl import extension, modeling, types
from bert_mtl.heads import base
from bert_mtl.labels import LabelEncoder

tf1 = tf.compat.v1

MLM_FEATURES = ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights")


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

  def _terms(self, ids, mlm_weights, outputs, features):
    """Masked-LM loss per position [batch * P] and its weights, next-sentence
    loss per row [batch] and its weights (rows with the problem)."""
    mlm = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=ids, logits=outputs["mlm_logits"])
    nsp = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=self.label(features), logits=outputs["nsp_logits"])
    return mlm, mlm_weights, nsp, self.present(features)

  def loss_terms(self, outputs, features):
    """Masked-LM loss over the masked positions plus next-sentence loss
    over the rows, as run_pretraining.py adds them."""
    mlm, mlm_weights, nsp, present = self._terms(
        *self._mlm_terms(outputs, features), outputs, features)
    return [(mlm, mlm_weights), (nsp, present)]

  def metrics(self, outputs, features):
    # Means over the split's masked positions and rows, as run_pretraining.py
    # computes them: independent of how the batches were cut.
    ids, weights = self._mlm_terms(outputs, features)
    mlm, mlm_weights, nsp, present = self._terms(ids, weights, outputs,
                                                 features)
    mlm_correct = tf.cast(tf.equal(tf.argmax(
        outputs["mlm_logits"], -1, output_type=tf.int32), ids), tf.float32)
    nsp_correct = tf.cast(tf.equal(tf.argmax(
        outputs["nsp_logits"], -1, output_type=tf.int32),
                                   self.label(features)), tf.float32)
    return {"masked_lm_accuracy": base.mean_metric(mlm_correct, mlm_weights),
            "masked_lm_loss": base.mean_metric(mlm, mlm_weights),
            "next_sentence_accuracy": base.mean_metric(nsp_correct, present),
            "next_sentence_loss": base.mean_metric(nsp, present)}

  def predictions(self, outputs):
    return {"next_sentence_probabilities": tf.nn.softmax(
        outputs["nsp_logits"])}


def pretrain_spec(max_seq_length, max_predictions_per_seq):
  """The original run_pretraining.py parsing spec."""
  seq = tf.io.FixedLenFeature([max_seq_length], tf.int64)
  predictions = tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64)
  return {"input_ids": seq, "input_mask": seq, "segment_ids": seq,
          "masked_lm_positions": predictions, "masked_lm_ids": predictions,
          "masked_lm_weights": tf.io.FixedLenFeature(
              [max_predictions_per_seq], tf.float32),
          "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64)}


def _mlm_dtype(key):
  return tf.float32 if key == "masked_lm_weights" else tf.int32


class Pretrain(types.ProblemType):
  """Documents (lists of sentences); records are the original
  create_pretraining_data instances (statically padded, original feature
  names), which parse_record trims back to their real length."""

  name = "pretrain"
  inputs = "document"
  metrics = {"masked_lm": "masked_lm_accuracy"}
  decodes = False  # judged by its in-graph metrics
  head = PretrainHead

  def check(self, inputs, labels):
    if not isinstance(inputs, (list, tuple)) or not all(
        isinstance(s, str) for s in inputs):
      return "pretrain inputs must be a document: a list of sentences"
    if labels is not None:
      return "pretrain examples carry no labels"
    return None

  def placeholder_labels(self, inputs):
    return None

  def fit_encoder(self, name, spec, config, read):
    return LabelEncoder(constants.NSP_LABELS, name)

  def document_records(self, documents, config, split, chunk=4096):
    """Serialized records of the original tool's instances, built by the
    extension from token ids with the draws of
    testing.reference_pretraining.create_instances (tests compare both:
    same instances, same bytes).  dupe_factor (passes with other masks) applies to
    training; the other splits are masked once, so evaluating a pretrain
    problem costs a pass over its documents, not dupe_factor passes."""
    tokenizer, settings = config.tokenizer, config.pretrain
    sentences = [s for d in documents for s in d.inputs]
    ragged = tokenizer.encode_ragged(sentences, config.num_threads)
    vocab = tokenizer.vocab
    # Random replacements draw any id of the vocabulary file's lines.
    continuation = np.zeros(max(vocab.values()) + 1, np.uint8)
    for token, index in vocab.items():
      continuation[index] = token.startswith("##")
    instances = extension.native().PretrainingInstances(
        ragged["ids"], ragged["row_splits"],
        np.cumsum([0] + [len(d.inputs) for d in documents]), continuation,
        vocab[constants.CLS_TOKEN], vocab[constants.SEP_TOKEN],
        vocab[constants.MASK_TOKEN], config.max_seq_length,
        settings.dupe_factor if split == "train" else 1,
        settings.short_seq_prob, settings.masked_lm_prob,
        settings.max_predictions_per_seq, settings.do_whole_word_mask,
        # (None where a PipelineConfig was not made by make_config, which
        # puts the run's seed there: the run configuration's default.)
        config_lib.RunConfig().seed if settings.seed is None
        else settings.seed)
    for lo in range(0, len(instances), chunk):
      yield from instances.records(lo, min(len(instances), lo + chunk))

  def parse_record(self, record, name, max_seq_length, max_predictions):
    """An original pretraining record -> model features."""
    parsed = tf.io.parse_single_example(
        record, pretrain_spec(max_seq_length, max_predictions))
    length = tf.reduce_sum(tf.cast(parsed["input_mask"], tf.int32))
    out = {k: tf.cast(parsed[k][:length], tf.int32)
           for k in ("input_ids", "input_mask", "segment_ids")}
    out["example_index"] = tf.constant(0, tf.int32)
    out["window_start"] = tf.constant(0, tf.int32)
    for k in MLM_FEATURES:
      out["%s_%s" % (name, k)] = tf.cast(parsed[k], _mlm_dtype(k))
    out[name + "_label"] = tf.cast(parsed["next_sentence_labels"][0],
                                   tf.int32)
    out[name + "_present"] = tf.constant(1, tf.int32)
    return out

  def absent(self, name, num_labels, input_ids, context):
    out = super().absent(name, num_labels, input_ids, context)
    for k in MLM_FEATURES:
      out["%s_%s" % (name, k)] = tf.zeros([context["max_predictions"]],
                                          _mlm_dtype(k))
    return out

  def padding(self, name):
    out = super().padding(name)
    for k in MLM_FEATURES:
      out["%s_%s" % (name, k)] = tf.constant(0, _mlm_dtype(k))
    return out

  def score(self, spec, examples, results, encoder, context):
    raise NotImplementedError("pretrain is scored by its in-graph metrics")


types.register(Pretrain())
