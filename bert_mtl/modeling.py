"""The BERT encoder, with the variable names, shapes and numerics of
google-research/bert's modeling.py.

Built in graph mode with `tf.compat.v1` (as an Estimator `model_fn` runs), so
checkpoints of the original load unchanged and code written against the
original `BertModel` runs unchanged.
"""

import collections
import copy
import json
import math
import re

import numpy as np
import tensorflow as tf

from bert_mtl import fused_ops

tf1 = tf.compat.v1

# Activation names a config may use.  "gelu" is BERT's tanh approximation;
# "gelu_exact" is the erf form that PyTorch/HuggingFace checkpoints were
# trained with (their configs say "gelu" but mean erf).
ACTIVATIONS = ("gelu", "gelu_exact", "relu", "tanh", "linear")


# Shapes of from-scratch models (no pretrained Chinese BERT is available
# offline): run_multitask.py --small_model and benchmarks/accuracy.py.
SMALL_MODELS = {
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=512),
    "mini": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                 intermediate_size=1024),
    "small": dict(hidden_size=512, num_hidden_layers=4, num_attention_heads=8,
                  intermediate_size=2048),
}


class BertConfig(object):
  """Configuration of a BertModel, read from and written to bert_config.json.

  As the original, loading copies every key of the JSON (unknown keys are
  kept and written back); unlike it, `validate` names inconsistent values
  before they turn into NaNs or shape errors.
  """

  def __init__(self, vocab_size, hidden_size=768, num_hidden_layers=12,
               num_attention_heads=12, intermediate_size=3072,
               hidden_act="gelu", hidden_dropout_prob=0.1,
               attention_probs_dropout_prob=0.1, max_position_embeddings=512,
               type_vocab_size=16, initializer_range=0.02):
    self.vocab_size = vocab_size
    self.hidden_size = hidden_size
    self.num_hidden_layers = num_hidden_layers
    self.num_attention_heads = num_attention_heads
    self.hidden_act = hidden_act
    self.intermediate_size = intermediate_size
    self.hidden_dropout_prob = hidden_dropout_prob
    self.attention_probs_dropout_prob = attention_probs_dropout_prob
    self.max_position_embeddings = max_position_embeddings
    self.type_vocab_size = type_vocab_size
    self.initializer_range = initializer_range

  @classmethod
  def from_dict(cls, json_object):
    config = BertConfig(vocab_size=None)
    for key, value in json_object.items():
      config.__dict__[key] = value
    return config

  @classmethod
  def from_json_file(cls, json_file):
    with tf.io.gfile.GFile(json_file, "r") as reader:
      text = reader.read()
    try:
      data = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError("%s is not valid JSON: %s" % (json_file, e)) from None
    if not isinstance(data, dict):
      raise ValueError("%s must hold a JSON object" % json_file)
    config = cls.from_dict(data)
    config.validate(source=json_file)
    return config

  def to_dict(self):
    return copy.deepcopy(self.__dict__)

  def to_json_string(self):
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

  def to_json_file(self, json_file):
    with tf.io.gfile.GFile(json_file, "w") as writer:
      writer.write(self.to_json_string())

  def validate(self, vocab_file=None, source="bert_config"):
    """Raises ValueError naming the first inconsistent setting."""
    def fail(message):
      raise ValueError("%s: %s" % (source, message))

    for name in ("vocab_size", "hidden_size", "num_hidden_layers",
                 "num_attention_heads", "intermediate_size",
                 "max_position_embeddings", "type_vocab_size"):
      value = getattr(self, name, None)
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        fail("%s must be a positive integer, got %r" % (name, value))
    if self.hidden_size % self.num_attention_heads:
      fail("hidden_size %d is not a multiple of num_attention_heads %d" %
           (self.hidden_size, self.num_attention_heads))
    if self.hidden_act not in ACTIVATIONS:
      fail("hidden_act %r is not one of %s" % (self.hidden_act, ACTIVATIONS))
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
      value = getattr(self, name)
      if not 0.0 <= value < 1.0:
        fail("%s must be in [0, 1), got %r" % (name, value))
    if vocab_file is not None:
      from bert_mtl import tokenization  # pylint: disable=g-import-not-at-top
      vocab_lines = len(tokenization.load_vocab_tokens(vocab_file))
      if vocab_lines != self.vocab_size:
        fail("vocab_size is %d but %s has %d lines; ids past the embedding "
             "table would read garbage" % (self.vocab_size, vocab_file,
                                           vocab_lines))


class BertModel(object):
  """BERT encoder ("Bidirectional Encoder Representations from Transformers").

  Example, as with the original:

    model = modeling.BertModel(config=config, is_training=True,
                               input_ids=input_ids, input_mask=input_mask,
                               token_type_ids=token_type_ids)
    pooled = model.get_pooled_output()        # [batch_size, hidden_size]
    sequence = model.get_sequence_output()    # [batch_size, seq_length, hidden]
  """

  def __init__(self, config, is_training, input_ids, input_mask=None,
               token_type_ids=None, use_one_hot_embeddings=False, scope=None,
               token_type_initializer=None, matmul_dtype=tf.float32,
               fused=False):
    """Builds the encoder.

    Args:
      config: BertConfig.
      is_training: True applies dropout; False disables it.
      input_ids: int32 Tensor [batch_size, seq_length].
      input_mask: optional int32 Tensor [batch_size, seq_length], 1 = real.
      token_type_ids: optional int32 Tensor [batch_size, seq_length].
      use_one_hot_embeddings: look words up by one-hot matmul (as on TPUs).
      scope: variable scope, default "bert".
      token_type_initializer: initializer of the token-type embeddings
        (None: the original's truncated normal); only a fresh model uses it.
      matmul_dtype: the dtype the encoder's and the pooler's dense kernels
        are stored in and their matrix products run in (see `dense`);
        tf.bfloat16 builds the bfloat16 export's graph.
      fused: dropout and GELU as the single-pass ops of bert_mtl.fused_ops
        when their library loads (training graphs; else the core ops).

    Raises:
      ValueError: the config is invalid or seq_length exceeds
        max_position_embeddings.
    """
    config = copy.deepcopy(config)
    config.validate()
    if not is_training:
      config.hidden_dropout_prob = 0.0
      config.attention_probs_dropout_prob = 0.0

    input_shape = get_shape_list(input_ids, expected_rank=2)
    batch_size, seq_length = input_shape
    if isinstance(seq_length, int) and seq_length > config.max_position_embeddings:
      raise ValueError(
          "sequence length %d exceeds max_position_embeddings %d of the "
          "config; use a shorter max_seq_length" %
          (seq_length, config.max_position_embeddings))
    if input_mask is None:
      input_mask = tf.ones(shape=[batch_size, seq_length], dtype=tf.int32)
    if token_type_ids is None:
      token_type_ids = tf.zeros(shape=[batch_size, seq_length], dtype=tf.int32)

    with tf1.variable_scope(scope, default_name="bert"):
      with tf1.variable_scope("embeddings"):
        (self.embedding_output, self.embedding_table) = embedding_lookup(
            input_ids=input_ids,
            vocab_size=config.vocab_size,
            embedding_size=config.hidden_size,
            initializer_range=config.initializer_range,
            word_embedding_name="word_embeddings",
            use_one_hot_embeddings=use_one_hot_embeddings)
        self.embedding_output = embedding_postprocessor(
            input_tensor=self.embedding_output,
            use_token_type=True,
            token_type_ids=token_type_ids,
            token_type_vocab_size=config.type_vocab_size,
            token_type_initializer=token_type_initializer,
            initializer_range=config.initializer_range,
            max_position_embeddings=config.max_position_embeddings,
            dropout_prob=config.hidden_dropout_prob, fused=fused)

      with tf1.variable_scope("encoder"):
        attention_mask = create_attention_mask_from_input_mask(
            input_ids, input_mask)
        self.all_encoder_layers = transformer_model(
            input_tensor=self.embedding_output,
            attention_mask=attention_mask,
            hidden_size=config.hidden_size,
            num_hidden_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads,
            intermediate_size=config.intermediate_size,
            intermediate_act_fn=_activation(config.hidden_act, fused),
            hidden_dropout_prob=config.hidden_dropout_prob,
            attention_probs_dropout_prob=config.attention_probs_dropout_prob,
            initializer_range=config.initializer_range,
            do_return_all_layers=True, matmul_dtype=matmul_dtype,
            fused=fused)
      self.sequence_output = self.all_encoder_layers[-1]

      # The pooler: the [CLS] vector of the last layer through a tanh dense.
      with tf1.variable_scope("pooler"):
        first_token = tf.squeeze(self.sequence_output[:, 0:1, :], axis=1)
        self.pooled_output = dense(
            first_token, config.hidden_size, activation=tf.tanh,
            kernel_initializer=create_initializer(config.initializer_range),
            matmul_dtype=matmul_dtype)

  def get_pooled_output(self):
    """[batch_size, hidden_size]."""
    return self.pooled_output

  def get_sequence_output(self):
    """[batch_size, seq_length, hidden_size]: the last encoder layer."""
    return self.sequence_output

  def get_all_encoder_layers(self):
    """List of num_hidden_layers Tensors [batch_size, seq_length, hidden]."""
    return self.all_encoder_layers

  def get_embedding_output(self):
    """[batch_size, seq_length, hidden_size]: embeddings after LayerNorm and
    dropout, the encoder's input."""
    return self.embedding_output

  def get_embedding_table(self):
    """[vocab_size, hidden_size]."""
    return self.embedding_table


def gelu(x):
  """BERT's GELU: the tanh approximation.

  x * x * x rather than the original's tf.pow(x, 3): the same value to the
  last bit or one ulp, but Pow's gradient (a real power function) cost about
  a tenth of a BERT-Base training step on CPU.
  """
  cdf = 0.5 * (1.0 + tf.tanh(
      (np.sqrt(2 / np.pi) * (x + 0.044715 * (x * x * x)))))
  return x * cdf


def gelu_exact(x):
  """GELU with the exact normal CDF (erf), as PyTorch's nn.GELU."""
  return 0.5 * x * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


def get_activation(activation_string):
  """Activation function for a config's hidden_act (None for "linear")."""
  if not isinstance(activation_string, str):
    return activation_string
  act = activation_string.lower()
  if act in ("", "linear"):
    return None
  functions = {"gelu": gelu, "gelu_exact": gelu_exact, "relu": tf.nn.relu,
               "tanh": tf.tanh}
  if act not in functions:
    raise ValueError("unsupported activation: %s" % act)
  return functions[act]


def _activation(hidden_act, fused):
  """get_activation, with BERT's GELU as the single-pass fused op when
  `fused` and its library loads."""
  function = get_activation(hidden_act)
  if fused and function is gelu and fused_ops.available():
    return fused_ops.gelu
  return function


def get_assignment_map_from_checkpoint(tvars, init_checkpoint):
  """Maps checkpoint names to the trainable variables of the same name.

  Returns:
    (assignment_map OrderedDict {name: name}, initialized_variable_names
     OrderedDict {name: 1, name + ":0": 1}), as the original.
  """
  name_to_variable = collections.OrderedDict()
  for var in tvars:
    m = re.match("^(.*):\\d+$", var.name)
    name = m.group(1) if m else var.name
    name_to_variable[name] = var
  assignment_map = collections.OrderedDict()
  initialized_variable_names = collections.OrderedDict()
  for name, _ in tf.train.list_variables(init_checkpoint):
    if name not in name_to_variable:
      continue
    assignment_map[name] = name
    initialized_variable_names[name] = 1
    initialized_variable_names[name + ":0"] = 1
  return assignment_map, initialized_variable_names


def dropout(input_tensor, dropout_prob, fused=False):
  """Dropout with a *drop* probability (0 or None: identity); fused: one
  pass of bert_mtl.fused_ops when its library loads."""
  if dropout_prob is None or dropout_prob == 0.0:
    return input_tensor
  if fused and fused_ops.available():
    return fused_ops.dropout(input_tensor, dropout_prob)
  return tf.nn.dropout(input_tensor, rate=dropout_prob)


def layer_norm(input_tensor, name=None):
  """LayerNorm over the last axis, epsilon 1e-12, variables beta and gamma
  under scope `name` (default "LayerNorm"), as tf.contrib.layers.layer_norm."""
  with tf1.variable_scope(name, default_name="LayerNorm"):
    depth = input_tensor.shape[-1]
    beta = tf1.get_variable("beta", [depth], initializer=tf1.zeros_initializer())
    gamma = tf1.get_variable("gamma", [depth],
                             initializer=tf1.ones_initializer())
    mean, variance = tf.nn.moments(input_tensor, axes=[-1], keepdims=True)
    return tf.nn.batch_normalization(input_tensor, mean, variance,
                                     offset=beta, scale=gamma,
                                     variance_epsilon=1e-12)


def layer_norm_and_dropout(input_tensor, dropout_prob, name=None,
                           fused=False):
  return dropout(layer_norm(input_tensor, name), dropout_prob, fused)


def create_initializer(initializer_range=0.02):
  return tf1.truncated_normal_initializer(stddev=initializer_range)


def dense(input_tensor, units, activation=None, kernel_initializer=None,
          name=None, matmul_dtype=tf.float32):
  """tf1.layers.dense of a float32 [rows, width] into [rows, units], with
  variables `<name>/kernel` [width, units] and `<name>/bias` [units], whose
  kernel is stored in and whose product runs in `matmul_dtype`; bias,
  activation and output stay float32.

  float32 is tf1.layers.dense itself: the graph training builds (and its
  random initial values) is the original's.  bfloat16 is the bfloat16
  export's: the kernel is a bfloat16 variable (checkpoint.write_cast_copy
  writes it), so a request casts activations only, never the weights.
  """
  if matmul_dtype == tf.float32:
    return tf1.layers.dense(input_tensor, units, activation=activation,
                            name=name, kernel_initializer=kernel_initializer)
  with tf1.variable_scope(name, default_name="dense"):
    kernel = tf1.get_variable("kernel", [input_tensor.shape[-1], units],
                              dtype=matmul_dtype,
                              initializer=kernel_initializer)
    bias = tf1.get_variable("bias", [units],
                            initializer=tf1.zeros_initializer())
    output = tf.cast(tf.matmul(tf.cast(input_tensor, matmul_dtype), kernel),
                     input_tensor.dtype)
    output = tf.nn.bias_add(output, bias)
    return output if activation is None else activation(output)


def matmul_in(matmul_dtype, a, b, transpose_b=False):
  """tf.matmul of float32 `a` and `b` computed in `matmul_dtype`; float32
  out (no casts at all for float32)."""
  product = tf.matmul(tf.cast(a, matmul_dtype), tf.cast(b, matmul_dtype),
                      transpose_b=transpose_b)
  return tf.cast(product, a.dtype)


def embedding_lookup(input_ids, vocab_size, embedding_size=128,
                     initializer_range=0.02,
                     word_embedding_name="word_embeddings",
                     use_one_hot_embeddings=False):
  """Word embeddings.

  Args:
    input_ids: int32 [batch_size, seq_length], or [batch_size, seq_length,
      num_inputs] (then the num_inputs vectors are concatenated).

  Returns:
    (float [batch_size, seq_length, num_inputs * embedding_size] (num_inputs
     is 1 for 2D ids), the table [vocab_size, embedding_size]).
  """
  # As the original: 2D ids are read as [batch_size, seq_length, 1].
  if input_ids.shape.ndims == 2:
    input_ids = tf.expand_dims(input_ids, axis=[-1])
  embedding_table = tf1.get_variable(
      name=word_embedding_name, shape=[vocab_size, embedding_size],
      initializer=create_initializer(initializer_range))
  if use_one_hot_embeddings:
    flat_ids = tf.reshape(input_ids, [-1])
    one_hot = tf.one_hot(flat_ids, depth=vocab_size)
    output = tf.matmul(one_hot, embedding_table)
  else:
    output = tf.gather(embedding_table, input_ids)
  shape = get_shape_list(input_ids)
  output = tf.reshape(output, shape[0:-1] + [shape[-1] * embedding_size])
  return output, embedding_table


def embedding_postprocessor(input_tensor, use_token_type=False,
                            token_type_ids=None, token_type_vocab_size=16,
                            token_type_embedding_name="token_type_embeddings",
                            use_position_embeddings=True,
                            position_embedding_name="position_embeddings",
                            initializer_range=0.02,
                            max_position_embeddings=512, dropout_prob=0.1,
                            token_type_initializer=None, fused=False):
  """Adds token-type and position embeddings, then LayerNorm and dropout.

  Args:
    input_tensor: float [batch_size, seq_length, width].
    use_token_type: add token-type embeddings of `token_type_ids`.
    token_type_ids: int32 [batch_size, seq_length] (with use_token_type).
    token_type_initializer: of the token-type table (None: truncated normal
      of initializer_range, as the original).
    use_position_embeddings: add the first seq_length position vectors.

  Returns:
    float [batch_size, seq_length, width].

  Raises:
    ValueError: use_token_type without token_type_ids.
  """
  batch_size, seq_length, width = get_shape_list(input_tensor, expected_rank=3)
  output = input_tensor
  if use_token_type:
    if token_type_ids is None:
      raise ValueError("`token_type_ids` must be specified if "
                       "`use_token_type` is True.")
    token_type_table = tf1.get_variable(
        name=token_type_embedding_name, shape=[token_type_vocab_size, width],
        initializer=token_type_initializer or create_initializer(
            initializer_range))
    # One-hot matmul: faster than a gather for a tiny vocabulary.
    flat_token_type_ids = tf.reshape(token_type_ids, [-1])
    one_hot_ids = tf.one_hot(flat_token_type_ids, depth=token_type_vocab_size)
    token_type_embeddings = tf.matmul(one_hot_ids, token_type_table)
    output += tf.reshape(token_type_embeddings,
                         [batch_size, seq_length, width])

  if use_position_embeddings:
    full_position_embeddings = tf1.get_variable(
        name=position_embedding_name, shape=[max_position_embeddings, width],
        initializer=create_initializer(initializer_range))
    if not isinstance(seq_length, int):
      with tf.control_dependencies([tf1.assert_less_equal(
          seq_length, max_position_embeddings,
          message="sequence longer than max_position_embeddings")]):
        seq_length = tf.identity(seq_length)
    position_embeddings = tf.slice(full_position_embeddings, [0, 0],
                                   [seq_length, -1])
    output += tf.expand_dims(position_embeddings, 0)
  return layer_norm_and_dropout(output, dropout_prob, fused=fused)


def create_attention_mask_from_input_mask(from_tensor, to_mask):
  """[batch_size, from_seq_length, to_seq_length] float mask from a 2D mask.

  Only keys are masked; padding queries attend normally (their outputs are
  ignored downstream), as in the original.
  """
  from_shape = get_shape_list(from_tensor, expected_rank=[2, 3])
  batch_size, from_seq_length = from_shape[0], from_shape[1]
  to_seq_length = get_shape_list(to_mask, expected_rank=2)[1]
  to_mask = tf.cast(tf.reshape(to_mask, [batch_size, 1, to_seq_length]),
                    tf.float32)
  broadcast_ones = tf.ones(shape=[batch_size, from_seq_length, 1],
                           dtype=tf.float32)
  return broadcast_ones * to_mask


def attention_layer(from_tensor, to_tensor, attention_mask=None,
                    num_attention_heads=1, size_per_head=512,
                    query_act=None, key_act=None, value_act=None,
                    attention_probs_dropout_prob=0.0, initializer_range=0.02,
                    do_return_2d_tensor=False, batch_size=None,
                    from_seq_length=None, to_seq_length=None,
                    matmul_dtype=tf.float32, fused=False):
  """Multi-headed scaled dot-product attention from `from_tensor` to
  `to_tensor`.

  Args:
    from_tensor: float [batch_size, from_seq_length, from_width] or the 2D
      [batch_size * from_seq_length, from_width] (then give the sizes).
    to_tensor: float [batch_size, to_seq_length, to_width] or 2D likewise.
    attention_mask: optional [batch_size, from_seq_length, to_seq_length],
      1 where attention is allowed; 0 adds -10000 to the score.
    matmul_dtype: the dtype of the projections' kernels and of every matrix
      product (`dense`); the softmax runs in float32.

  Returns:
    float [batch_size, from_seq_length, heads * size_per_head], or 2D
    [batch_size * from_seq_length, heads * size_per_head].
  """
  from_shape = get_shape_list(from_tensor, expected_rank=[2, 3])
  to_shape = get_shape_list(to_tensor, expected_rank=[2, 3])
  if len(from_shape) != len(to_shape):
    raise ValueError(
        "The rank of `from_tensor` must match the rank of `to_tensor`.")
  if len(from_shape) == 3:
    batch_size, from_seq_length = from_shape[0], from_shape[1]
    to_seq_length = to_shape[1]
  elif batch_size is None or from_seq_length is None or to_seq_length is None:
    raise ValueError("with 2D inputs, batch_size, from_seq_length and "
                     "to_seq_length must be given")

  from_2d = reshape_to_matrix(from_tensor)
  to_2d = reshape_to_matrix(to_tensor)
  width = num_attention_heads * size_per_head
  def project(tensor, activation, name):
    return dense(tensor, width, activation=activation, name=name,
                 kernel_initializer=create_initializer(initializer_range),
                 matmul_dtype=matmul_dtype)

  query = project(from_2d, query_act, "query")
  key = project(to_2d, key_act, "key")
  value = project(to_2d, value_act, "value")

  def split_heads(x, seq_length):
    x = tf.reshape(x, [batch_size, seq_length, num_attention_heads,
                       size_per_head])
    return tf.transpose(x, [0, 2, 1, 3])  # [B, N, S, H]

  query = split_heads(query, from_seq_length)
  key = split_heads(key, to_seq_length)
  scores = matmul_in(matmul_dtype, query, key,
                     transpose_b=True)  # [B, N, F, T]
  scores = scores * (1.0 / math.sqrt(float(size_per_head)))
  if attention_mask is not None:
    mask = tf.expand_dims(attention_mask, axis=[1])  # [B, 1, F, T]
    scores += (1.0 - tf.cast(mask, scores.dtype)) * -10000.0
  probs = tf.nn.softmax(scores)
  probs = dropout(probs, attention_probs_dropout_prob, fused)
  value = split_heads(value, to_seq_length)
  context = tf.transpose(matmul_in(matmul_dtype, probs, value),
                         [0, 2, 1, 3])  # [B, F, N, H]
  if do_return_2d_tensor:
    return tf.reshape(context, [batch_size * from_seq_length, width])
  return tf.reshape(context, [batch_size, from_seq_length, width])


def transformer_model(input_tensor, attention_mask=None, hidden_size=768,
                      num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072, intermediate_act_fn=gelu,
                      hidden_dropout_prob=0.1,
                      attention_probs_dropout_prob=0.1,
                      initializer_range=0.02, do_return_all_layers=False,
                      matmul_dtype=tf.float32, fused=False):
  """The post-LayerNorm Transformer encoder of "Attention is All You Need".

  Args:
    input_tensor: float [batch_size, seq_length, hidden_size].
    attention_mask: optional [batch_size, seq_length, seq_length].
    matmul_dtype: the dtype of the dense kernels and matrix products
      (`dense`); LayerNorm, GELU and softmax run in float32.

  Returns:
    float [batch_size, seq_length, hidden_size], the last layer, or the list
    of every layer's output with do_return_all_layers.
  """
  if hidden_size % num_attention_heads != 0:
    raise ValueError("hidden size %d is not a multiple of the number of "
                     "attention heads %d" % (hidden_size, num_attention_heads))
  size_per_head = hidden_size // num_attention_heads
  batch_size, seq_length, input_width = get_shape_list(input_tensor,
                                                       expected_rank=3)
  if input_width != hidden_size:
    raise ValueError("input width %d differs from hidden size %d" %
                     (input_width, hidden_size))

  # The layers work on a [batch * seq, hidden] matrix: no reshapes between
  # the dense layers.
  prev_output = reshape_to_matrix(input_tensor)
  all_layer_outputs = []
  for layer_idx in range(num_hidden_layers):
    with tf1.variable_scope("layer_%d" % layer_idx):
      layer_input = prev_output
      with tf1.variable_scope("attention"):
        with tf1.variable_scope("self"):
          attention_output = attention_layer(
              from_tensor=layer_input, to_tensor=layer_input,
              attention_mask=attention_mask,
              num_attention_heads=num_attention_heads,
              size_per_head=size_per_head,
              attention_probs_dropout_prob=attention_probs_dropout_prob,
              initializer_range=initializer_range, do_return_2d_tensor=True,
              batch_size=batch_size, from_seq_length=seq_length,
              to_seq_length=seq_length, matmul_dtype=matmul_dtype,
              fused=fused)
        with tf1.variable_scope("output"):
          attention_output = dense(
              attention_output, hidden_size,
              kernel_initializer=create_initializer(initializer_range),
              matmul_dtype=matmul_dtype)
          attention_output = dropout(attention_output, hidden_dropout_prob,
                                     fused)
          attention_output = layer_norm(attention_output + layer_input)
      with tf1.variable_scope("intermediate"):
        intermediate_output = dense(
            attention_output, intermediate_size,
            activation=intermediate_act_fn,
            kernel_initializer=create_initializer(initializer_range),
            matmul_dtype=matmul_dtype)
      with tf1.variable_scope("output"):
        layer_output = dense(
            intermediate_output, hidden_size,
            kernel_initializer=create_initializer(initializer_range),
            matmul_dtype=matmul_dtype)
        layer_output = dropout(layer_output, hidden_dropout_prob, fused)
        layer_output = layer_norm(layer_output + attention_output)
      prev_output = layer_output
      all_layer_outputs.append(layer_output)

  shape = [batch_size, seq_length, hidden_size]
  if do_return_all_layers:
    return [tf.reshape(x, shape) for x in all_layer_outputs]
  return tf.reshape(prev_output, shape)


def get_shape_list(tensor, expected_rank=None, name=None):
  """Dimensions of `tensor`: python ints where static, scalar Tensors where
  dynamic (a tf.shape op is made only when some dimension is dynamic, so a
  fully static graph has no unused ops).

  Raises:
    ValueError: expected_rank is given and the rank differs.
  """
  if name is None and not tf.executing_eagerly():
    name = tensor.name
  if expected_rank is not None:
    assert_rank(tensor, expected_rank, name)
  shape = tensor.shape.as_list()
  non_static = [i for i, dim in enumerate(shape) if dim is None]
  if not non_static:
    return shape
  dynamic = tf.shape(tensor)
  for index in non_static:
    shape[index] = dynamic[index]
  return shape


def reshape_to_matrix(input_tensor):
  """[..., width] -> [-1, width] (a rank-2 tensor is returned as is).

  Raises:
    ValueError: input_tensor has rank < 2.
  """
  ndims = input_tensor.shape.ndims
  if ndims < 2:
    raise ValueError("Input tensor must have at least rank 2. Shape = %s" %
                     (input_tensor.shape,))
  if ndims == 2:
    return input_tensor
  return tf.reshape(input_tensor, [-1, input_tensor.shape[-1]])


def reshape_from_matrix(output_tensor, orig_shape_list):
  """[-1, width] -> orig_shape_list[:-1] + [width]."""
  if len(orig_shape_list) == 2:
    return output_tensor
  width = get_shape_list(output_tensor)[-1]
  return tf.reshape(output_tensor, orig_shape_list[:-1] + [width])


def assert_rank(tensor, expected_rank, name=None):
  """Raises ValueError unless tensor's rank is (one of) expected_rank."""
  ranks = expected_rank if isinstance(expected_rank, (list, tuple)) else [
      expected_rank]
  if tensor.shape.ndims not in ranks:
    raise ValueError("tensor %s has rank %s, expected %s" %
                     (name or tensor.name, tensor.shape.ndims, expected_rank))
