"""The multi-task Estimator model_fn: one BERT body, one head per problem.

Params (a JSON-serialisable dict, saved with the model):
  bert_config: BertConfig dict.
  problems: problem names in chain order; types: {name: type name} (each
    head is types.get(type).head);
  num_labels: {name: K}; settings: {name: {head setting: value}}.
  loss_weights: {name: weight} (default 1); uncertainty_weighting: bool
    (Kendall et al. 2018: loss_i * exp(-s_i) + s_i with a learned s_i).
  learning_rate, num_train_steps, num_warmup_steps,
  gradient_accumulation_steps, loss_scale, init_checkpoint, model_dir;
  init_checkpoint_map: {checkpoint name: graph name} loaded besides the
    exact-name matches (an original fine-tuned head into a problem's).
  predict_problems: in PREDICT, build only these problems' heads (the
    export leaves it out and serves every head).

The exported graph's inputs and outputs are defined here too
(serving_input_receiver_fn, export_outputs): int32 input_ids / input_mask /
segment_ids, with tf.Example and tag_mask alternatives.

The body and every head are built identically in TRAIN, EVAL and PREDICT
(seq2seq heads add a decoding loop in PREDICT, with no new variables),
so any checkpoint restores into any mode and into the export.
"""

import tensorflow as tf

from bert_mtl import base as constants
from bert_mtl import checkpoint, modeling, optimization, tokenization, types
from bert_mtl import config as config_lib
from bert_mtl.heads import base

tf1 = tf.compat.v1
ModeKeys = tf.estimator.ModeKeys

# Passed through to predictions so windows can be merged back.
PASSTHROUGH = ("example_index", "window_start", "input_mask")


# --export_precision: the dtype an export's encoder stores its dense kernels
# in and runs its matrix products in (modeling.dense).
EXPORT_PRECISIONS = {"float32": tf.float32, "bfloat16": tf.bfloat16}


def build_heads(params):
  config = modeling.BertConfig.from_dict(params["bert_config"])
  return config, [types.get(params["types"][name]).head(
      name, params["num_labels"][name], params["settings"].get(name, {}),
      config) for name in params["problems"]]


def build(features, mode, params, body_transform=None):
  """(heads, {name: head outputs}, {name: the features its head saw}) for
  `features` in `mode`: in TRAIN and EVAL each head sees only the rows that
  have its problem (rows_with); in PREDICT every row.

  body_transform: optional fn(Body, mode) -> Body run between the encoder
  and the heads (e.g. an extra layer over the sequence output).
  """
  config, heads = build_heads(params)
  if mode == ModeKeys.PREDICT and params.get("predict_problems"):
    # A group's prediction pass runs that group's heads only (beam search
    # of a seq2seq problem is not run over every other group's rows).
    wanted = set(params["predict_problems"])
    heads = [h for h in heads if h.name in wanted]
  input_ids = features["input_ids"]
  matmul_dtype = tf.float32
  if mode == ModeKeys.PREDICT:
    matmul_dtype = EXPORT_PRECISIONS[params.get("export_precision",
                                                "float32")]
  model = modeling.BertModel(
      config, mode == ModeKeys.TRAIN, input_ids,
      input_mask=features["input_mask"],
      token_type_ids=features["segment_ids"],
      token_type_initializer=(tf1.zeros_initializer()
                              if params.get("zero_init_token_types") else None),
      matmul_dtype=matmul_dtype,
      # Exports (PREDICT) hold core ops only.
      fused=mode != ModeKeys.PREDICT and params.get("fused_ops", False))
  body = base.Body(model.get_sequence_output(), model.get_pooled_output(),
                   model.get_embedding_table(), input_ids,
                   features["input_mask"], config)
  if body_transform is not None:
    with tf1.variable_scope("body_transform"):
      body = body_transform(body, mode)
  outputs, head_features = {}, {}
  for head in heads:
    head_body, head_features[head.name] = body, features
    if mode != ModeKeys.PREDICT:
      head_body, head_features[head.name] = rows_with(head.name, body,
                                                      features)
    if getattr(head, "global_scope", False):
      outputs[head.name] = head.build(head_body, head_features[head.name],
                                      mode)
    else:
      with tf1.variable_scope(head.name):
        outputs[head.name] = head.build(head_body, head_features[head.name],
                                        mode)
  return heads, outputs, head_features


def rows_with(name, body, features):
  """(Body, features) of the batch's rows that have problem `name`.

  In a chain, a batch mixes rows of several groups (training samples a
  group per row; evaluation runs one group's rows after another), and a
  head's loss and metrics only count its own rows: running each head on
  those rows alone gives the same losses without computing an MLM softmax
  or a decoder over rows that do not have the problem.  Every feature is
  per row ([batch, ...]); without `<name>_present` every row counts."""
  if name + "_present" not in features:
    return body, features
  rows = tf.where(features[name + "_present"] > 0)[:, 0]

  def take(tensor):
    return tf.gather(tensor, rows)
  return body._replace(
      sequence_output=take(body.sequence_output),
      pooled_output=take(body.pooled_output),
      input_ids=take(body.input_ids),
      input_mask=take(body.input_mask)), {
          key: take(value) for key, value in features.items()}


def loss_terms_of(heads, outputs, head_features):
  """{name: its head's loss_terms, or None for a head with `loss` alone}."""
  return {h.name: h.loss_terms(outputs[h.name], head_features[h.name])
          for h in heads}


def total_loss(heads, outputs, features, params, head_features=None,
               terms=None):
  """(weighted total, {name: problem loss}).

  head_features: {name: the features its head was built on} (build's);
    default `features` for every head.
  terms: loss_terms_of's, when the caller has them already."""
  weights = params.get("loss_weights") or {}
  head_features = head_features or {h.name: features for h in heads}
  if terms is None:
    terms = loss_terms_of(heads, outputs, head_features)
  losses = {h.name: (h.loss(outputs[h.name], head_features[h.name])
                     if terms[h.name] is None else
                     base.loss_of_terms(terms[h.name])) for h in heads}
  weighted_losses = []
  for name, loss in losses.items():
    weighted = float(weights.get(name, 1.0)) * loss
    if params.get("uncertainty_weighting"):
      log_variance = tf1.get_variable(
          "uncertainty/%s" % name, [], initializer=tf1.zeros_initializer())
      present = tf.cast(tf.reduce_any(
          features[name + "_present"] > 0), tf.float32)
      # A problem absent from the batch contributes nothing, not s_i.
      weighted = present * (weighted * tf.exp(-log_variance) + log_variance)
    weighted_losses.append(weighted)
  return tf.add_n(weighted_losses), losses


def predictions_of(heads, outputs, features):
  out = {k: features[k] for k in PASSTHROUGH if k in features}
  for head in heads:
    for key, value in head.predictions(outputs[head.name]).items():
      out["%s/%s" % (head.name, key)] = value
  return out


def export_outputs(heads, predictions):
  """serving_default with every output, plus one signature per problem."""
  serving = {k: v for k, v in predictions.items() if "/" in k}
  out = {tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY:
             tf.estimator.export.PredictOutput(serving)}
  for head in heads:
    prefix = head.name + "/"
    out[head.name] = tf.estimator.export.PredictOutput(
        {k[len(prefix):]: v for k, v in serving.items()
         if k.startswith(prefix)})
  return out


INPUTS = ("input_ids", "input_mask", "segment_ids")


def serving_input_receiver_fn(vocab_file, kinds=None):
  """A serving_input_receiver_fn for the vocabulary of `vocab_file`.

  Raw int32 inputs, with two alternatives: `examples` (serialized
  tf.train.Examples with int64 lists input_ids / input_mask / segment_ids)
  and `tagged` (the raw inputs plus the inputs the problem types `kinds`
  serve, ProblemType.serving_inputs: seq_tag's tag_mask; default: every
  registered type; where two serve one input, the first's default).
  Inputs are placeholders with defaults, so each signature feeds the ones
  it names."""
  vocab_tokens = tokenization.load_vocab_tokens(vocab_file)
  kinds = [types.get(n) for n in types.names()] if kinds is None else kinds

  def receiver_fn():
    serialized = tf.compat.v1.placeholder_with_default(
        tf.constant([], tf.string), [None], name="examples")
    parsed = tf.io.parse_example(
        serialized, {name: tf.io.VarLenFeature(tf.int64) for name in INPUTS})
    tensors = {name: tf.compat.v1.placeholder_with_default(
        tf.cast(tf.sparse.to_dense(parsed[name]), tf.int32), [None, None],
        name=name) for name in INPUTS}
    served = {}
    for kind in kinds:
      for name, default in kind.serving_inputs(tensors, vocab_tokens).items():
        if name not in served:
          served[name] = tf.compat.v1.placeholder_with_default(
              default, [None, None], name=name)
    model_features = dict(tensors, **served)
    return tf.estimator.export.ServingInputReceiver(
        model_features, tensors, receiver_tensors_alternatives={
            "examples": {"examples": serialized},
            "tagged": dict(model_features)})
  return receiver_fn


def make_model_fn(body_transform=None):
  """A model_fn with `body_transform` between the encoder and the heads."""
  def transformed_model_fn(features, labels, mode, params):
    return model_fn(features, labels, mode, params, body_transform)
  return transformed_model_fn


def model_fn(features, labels, mode, params, body_transform=None):
  """The Estimator model_fn (labels travel inside `features`)."""
  del labels
  heads, outputs, head_features = build(features, mode, params,
                                        body_transform)
  if mode == ModeKeys.PREDICT:
    predictions = predictions_of(heads, outputs, features)
    return tf.estimator.EstimatorSpec(
        mode, predictions=predictions,
        export_outputs=export_outputs(heads, predictions))

  terms = loss_terms_of(heads, outputs, head_features)
  loss, losses = total_loss(heads, outputs, features, params, head_features,
                            terms)
  if mode == ModeKeys.EVAL:
    # Each replica's real rows, for the evaluation progress line (filler
    # rows, dataset.whole_steps, have no [CLS]).
    tf.identity(tf.reduce_sum(features["input_mask"][:, 0]),
                name=constants.EVAL_ROWS)
    metrics = {}
    for head in heads:
      if terms[head.name] is not None:
        metrics[head.name + "/loss"] = base.split_loss_metric(
            terms[head.name])
      else:  # a type with `loss` alone: batch means weighted by rows
        present = tf.cast(features[head.name + "_present"], tf.float32)
        metrics[head.name + "/loss"] = tf1.metrics.mean(
            losses[head.name], weights=tf.reduce_sum(present))
      for key, op in head.metrics(outputs[head.name],
                                  head_features[head.name]).items():
        metrics["%s/%s" % (head.name, key)] = op
    return tf.estimator.EstimatorSpec(mode, loss=loss,
                                      eval_metric_ops=metrics)

  if params.get("init_checkpoint"):
    checkpoint.init_from_checkpoint(
        params["init_checkpoint"], extra_map=params.get("init_checkpoint_map"),
        model_dir=params.get("model_dir"))
  for name, value in losses.items():
    tf1.summary.scalar("loss/" + name, value)
  train_op = optimization.create_optimizer(
      loss, params["learning_rate"], params["num_train_steps"],
      params.get("num_warmup_steps", 0),
      gradient_accumulation_steps=params.get("gradient_accumulation_steps", 1),
      loss_scale=params.get("loss_scale"),
      lr_multipliers=params.get("lr_multipliers"),
      bias_correction=params.get("adam_bias_correction", False))
  logged = dict(("loss/" + k, v) for k, v in losses.items())
  logged["step"] = tf1.train.get_or_create_global_step()
  hooks = [tf1.train.LoggingTensorHook(
      logged, every_n_iter=params.get(
          "log_every_steps", config_lib.RunConfig().log_every_steps))]
  return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op,
                                    training_hooks=hooks)
