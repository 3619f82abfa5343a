"""Graph-level checks of bert_mtl.modeling and bert_mtl.optimization against
google-research/bert's documented API, run in a fresh process under either
TensorFlow behaviour (tests/test_original_api.py starts them):

    BERT_MTL_TF_BEHAVIOR=v1 python -m pytest tests/original_graph_checks.py

v1 calls tf.compat.v1.disable_v2_behavior() first (reference variables,
v1 shapes), as TensorFlow's migration guide runs TF1 code; v2 keeps the
defaults.  The CPU is split into two logical devices for the
MirroredStrategy check.  Not collected by the main test run (no test_
prefix): disable_v2_behavior is process-wide.
"""

import collections
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

BEHAVIOR = os.environ.get("BERT_MTL_TF_BEHAVIOR", "v2")
if BEHAVIOR == "v1":
  tf.compat.v1.disable_v2_behavior()
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy_bert  # pylint: disable=g-import-not-at-top,wrong-import-position
from bert_mtl import modeling, optimization  # pylint: disable=g-import-not-at-top,wrong-import-position

tf1 = tf.compat.v1


def test_behavior_is_the_one_asked_for():
  assert tf1.executing_eagerly_outside_functions() == (BEHAVIOR == "v2")
  with tf.Graph().as_default():
    v = tf1.get_variable("v", [2])
    kind = type(v).__name__
  assert kind == ("RefVariable" if BEHAVIOR == "v1" else "ResourceVariable")


# ------------------------------------------------------------- helpers


def ids_tensor(shape, vocab_size, seed):
  rng = np.random.RandomState(seed)
  return tf.constant(rng.randint(0, vocab_size, size=shape), tf.int32)


# What TensorFlow itself adds beside every resource variable in a graph.
VARIABLE_BOOKKEEPING = re.compile(r"/(IsInitialized/VarIsInitializedOp|"
                                  r"Read/ReadVariableOp)$")


def unreachable_ops(graph, fetches):
  """Ops that are not ancestors (through data or control inputs) of
  `fetches`: what a graph builds and nobody uses (TensorFlow's own
  per-variable bookkeeping aside)."""
  seen, stack = set(), []
  for fetch in tf.nest.flatten(fetches):
    stack.append(fetch.op if isinstance(fetch, tf.Tensor) else fetch)
  while stack:
    op = stack.pop()
    if op.name in seen:
      continue
    seen.add(op.name)
    stack.extend(t.op for t in op.inputs)
    stack.extend(op.control_inputs)
  return [op.name for op in graph.get_operations()
          if op.name not in seen and not VARIABLE_BOOKKEEPING.search(op.name)]


# ------------------------------------------------------------- modeling


def test_bert_model_default_tester_shapes_and_every_op_reachable():
  # The original modeling_test's default tester: batch 13, length 7,
  # vocab 99, hidden 32, 5 layers, 4 heads, intermediate 37, 16 types.
  graph = tf.Graph()
  with graph.as_default():
    config = modeling.BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=5,
        num_attention_heads=4, intermediate_size=37, hidden_act="gelu",
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        max_position_embeddings=512, type_vocab_size=16,
        initializer_range=0.02)
    model = modeling.BertModel(
        config=config, is_training=True,
        input_ids=ids_tensor([13, 7], 99, 0),
        input_mask=ids_tensor([13, 7], 2, 1),
        token_type_ids=ids_tensor([13, 7], 16, 2), scope=None)
    outputs = {
        "embedding_output": model.get_embedding_output(),
        "sequence_output": model.get_sequence_output(),
        "pooled_output": model.get_pooled_output(),
        "all_encoder_layers": model.get_all_encoder_layers(),
    }
    init_op = tf.group(tf1.global_variables_initializer(),
                       tf1.local_variables_initializer())
    with tf1.Session() as session:
      session.run(init_op)
      result = session.run(outputs)
    assert unreachable_ops(graph, [init_op, outputs]) == []
  assert result["embedding_output"].shape == (13, 7, 32)
  assert result["sequence_output"].shape == (13, 7, 32)
  assert result["pooled_output"].shape == (13, 32)
  assert len(result["all_encoder_layers"]) == 5
  np.testing.assert_array_equal(result["all_encoder_layers"][-1],
                                result["sequence_output"])


def test_config_to_json_string():
  config = modeling.BertConfig(vocab_size=99, hidden_size=37)
  obj = json.loads(config.to_json_string())
  assert obj["vocab_size"] == 99 and obj["hidden_size"] == 37
  assert obj["type_vocab_size"] == 16  # the class default, not 2


def test_bert_model_equals_numpy_forward():
  config = modeling.BertConfig(vocab_size=50, hidden_size=16,
                               num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=24,
                               max_position_embeddings=16, type_vocab_size=2)
  rng = np.random.RandomState(3)
  ids = rng.randint(0, 50, size=(3, 6))
  mask = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4])
  types = rng.randint(0, 2, size=(3, 6))
  with tf.Graph().as_default():
    model = modeling.BertModel(config, False, tf.constant(ids, tf.int32),
                               tf.constant(mask, tf.int32),
                               tf.constant(types, tf.int32))
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      weights = {v.op.name: session.run(v)
                 for v in tf1.global_variables()}
      layers, pooled = session.run([model.get_all_encoder_layers(),
                                    model.get_pooled_output()])
  ref_layers, ref_pooled = numpy_bert.forward(weights, config, ids, mask,
                                              types)
  for got, want in zip(layers, ref_layers):
    np.testing.assert_allclose(got, want, atol=2e-5)
  np.testing.assert_allclose(pooled, ref_pooled, atol=2e-5)


def test_get_shape_list_is_static_where_it_can_be():
  graph = tf.Graph()
  with graph.as_default():
    static = tf.zeros([2, 3, 4])
    shapes_before = len([o for o in graph.get_operations()
                         if o.type == "Shape"])
    assert modeling.get_shape_list(static, expected_rank=3) == [2, 3, 4]
    assert len([o for o in graph.get_operations()
                if o.type == "Shape"]) == shapes_before
    dynamic = tf1.placeholder(tf.float32, [None, 3])
    batch, width = modeling.get_shape_list(dynamic, expected_rank=[2, 3])
    assert isinstance(batch, tf.Tensor) and width == 3
    with pytest.raises(ValueError):
      modeling.get_shape_list(static, expected_rank=2)
    with pytest.raises(ValueError):
      modeling.assert_rank(static, [1, 2])
    modeling.assert_rank(static, 3)


def test_embedding_lookup_2d_3d_and_one_hot():
  with tf.Graph().as_default():
    ids = tf.constant([[1, 2, 3], [4, 0, 5]])
    with tf1.variable_scope("a"):
      out, table = modeling.embedding_lookup(ids, 7, embedding_size=4)
    with tf1.variable_scope("a", reuse=True):
      one_hot, _ = modeling.embedding_lookup(ids, 7, embedding_size=4,
                                             use_one_hot_embeddings=True)
    with tf1.variable_scope("b"):
      out3, _ = modeling.embedding_lookup(tf.constant([[[1, 2]], [[3, 4]]]),
                                          7, embedding_size=4)
    assert out.shape.as_list() == [2, 3, 4]
    assert table.shape.as_list() == [7, 4]
    assert table.op.name == "a/word_embeddings"
    # [batch, seq, num_inputs] ids: the num_inputs vectors concatenated.
    assert out3.shape.as_list() == [2, 1, 8]
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      got, got_one_hot, t = session.run([out, one_hot, table])
  np.testing.assert_allclose(got, t[[[1, 2, 3], [4, 0, 5]]])
  np.testing.assert_allclose(got_one_hot, got, atol=1e-6)


def test_embedding_postprocessor_flags():
  with tf.Graph().as_default():
    x = tf.zeros([2, 3, 4])
    with tf1.variable_scope("plain"):
      modeling.embedding_postprocessor(x, use_position_embeddings=False,
                                       dropout_prob=0.0)
    with tf1.variable_scope("full"):
      modeling.embedding_postprocessor(
          x, use_token_type=True, token_type_ids=tf.zeros([2, 3], tf.int32),
          token_type_vocab_size=2, max_position_embeddings=8)
    with pytest.raises(ValueError, match="token_type_ids"):
      modeling.embedding_postprocessor(x, use_token_type=True)
    names = {v.op.name: v.shape.as_list() for v in tf1.global_variables()}
  assert names == {
      "plain/LayerNorm/beta": [4], "plain/LayerNorm/gamma": [4],
      "full/token_type_embeddings": [2, 4],
      "full/position_embeddings": [8, 4],
      "full/LayerNorm/beta": [4], "full/LayerNorm/gamma": [4]}


def test_attention_layer_ranks_masks_and_errors():
  with tf.Graph().as_default():
    rng = np.random.RandomState(0)
    x = tf.constant(rng.normal(size=(2, 3, 8)), tf.float32)
    mask = modeling.create_attention_mask_from_input_mask(
        x, tf.constant([[1, 1, 1], [1, 0, 0]]))
    assert mask.shape.as_list() == [2, 3, 3]
    with tf1.variable_scope("three_d"):
      out = modeling.attention_layer(x, x, mask, num_attention_heads=2,
                                     size_per_head=4)
    with tf1.variable_scope("three_d", reuse=True):
      out_2d = modeling.attention_layer(
          modeling.reshape_to_matrix(x), modeling.reshape_to_matrix(x),
          mask, num_attention_heads=2, size_per_head=4,
          do_return_2d_tensor=True, batch_size=2, from_seq_length=3,
          to_seq_length=3)
    assert out.shape.as_list() == [2, 3, 8]
    assert out_2d.shape.as_list() == [6, 8]
    with pytest.raises(ValueError):
      modeling.attention_layer(modeling.reshape_to_matrix(x), x)
    with pytest.raises(ValueError):
      modeling.attention_layer(modeling.reshape_to_matrix(x),
                               modeling.reshape_to_matrix(x))
    names = sorted(v.op.name for v in tf1.global_variables())
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      got, got_2d, m = session.run([out, out_2d, mask])
  assert names == ["three_d/%s/%s" % (n, p) for n in ("key", "query", "value")
                   for p in ("bias", "kernel")]
  np.testing.assert_allclose(got.reshape(6, 8), got_2d, atol=1e-6)
  np.testing.assert_array_equal(m[1], [[1, 0, 0]] * 3)
  # Row 1 attends only to its first position: every query gets its value.
  assert np.allclose(got[1], got[1][0:1], atol=1e-5)


def test_transformer_model_layers_and_width_check():
  with tf.Graph().as_default():
    x = tf.zeros([2, 3, 8])
    layers = modeling.transformer_model(x, hidden_size=8,
                                        num_hidden_layers=2,
                                        num_attention_heads=2,
                                        intermediate_size=12,
                                        do_return_all_layers=True)
    assert len(layers) == 2 and layers[0].shape.as_list() == [2, 3, 8]
    with pytest.raises(ValueError):
      modeling.transformer_model(x, hidden_size=8, num_attention_heads=3)
    with pytest.raises(ValueError):
      modeling.transformer_model(x, hidden_size=16, num_attention_heads=2)


def test_reshape_helpers():
  with tf.Graph().as_default():
    x = tf.zeros([2, 3, 4])
    matrix = modeling.reshape_to_matrix(x)
    assert matrix.shape.as_list() == [6, 4]
    assert modeling.reshape_to_matrix(matrix) is matrix
    back = modeling.reshape_from_matrix(matrix, [2, 3, 4])
    assert back.shape.as_list() == [2, 3, 4]
    assert modeling.reshape_from_matrix(matrix, [6, 4]) is matrix
    with pytest.raises(ValueError):
      modeling.reshape_to_matrix(tf.zeros([4]))


def test_activations_dropout_layer_norm_initializer():
  xs = np.linspace(-4, 4, 81).astype(np.float32)
  with tf.Graph().as_default():
    gelu = modeling.gelu(tf.constant(xs))
    assert modeling.get_activation("linear") is None
    assert modeling.get_activation("") is None
    assert modeling.get_activation(None) is None
    assert modeling.get_activation("gelu") is modeling.gelu
    assert modeling.get_activation("ReLU") is tf.nn.relu
    assert modeling.get_activation("tanh") is tf.tanh
    assert modeling.get_activation(tf.nn.relu6) is tf.nn.relu6
    with pytest.raises(ValueError):
      modeling.get_activation("swish")
    ones = tf.ones([200, 100])
    assert modeling.dropout(ones, 0.0) is ones
    assert modeling.dropout(ones, None) is ones
    dropped = modeling.dropout(ones, 0.9)  # 0.9 is the rate of dropping
    normed = modeling.layer_norm(tf.constant(
        np.random.RandomState(0).normal(3, 5, size=(4, 16)), tf.float32))
    init = tf1.get_variable("w", [2000],
                            initializer=modeling.create_initializer(0.5))
    names = sorted(v.op.name for v in tf1.global_variables())
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      g, d, n, w = session.run([gelu, dropped, normed, init])
  np.testing.assert_allclose(g, numpy_bert.gelu_tanh(xs), atol=1e-6)
  assert 0.08 < (d > 0).mean() < 0.12
  np.testing.assert_allclose(n.mean(-1), 0, atol=1e-5)
  np.testing.assert_allclose(n.std(-1), 1, atol=1e-3)
  assert names == ["LayerNorm/beta", "LayerNorm/gamma", "w"]
  assert np.abs(w).max() <= 1.0 + 1e-6  # truncated at two standard deviations
  assert 0.4 < w.std() < 0.5


def test_get_assignment_map_from_checkpoint(tmp_path):
  with tf.Graph().as_default():
    tf1.get_variable("bert/a", [2])
    tf1.get_variable("bert/b", [3])
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      prefix = tf1.train.Saver().save(session, str(tmp_path / "model.ckpt"))
  with tf.Graph().as_default():
    a = tf1.get_variable("bert/a", [2])
    tf1.get_variable("head/c", [1])
    assignment_map, initialized = modeling.get_assignment_map_from_checkpoint(
        tf1.trainable_variables(), prefix)
  assert isinstance(assignment_map, collections.OrderedDict)
  assert isinstance(initialized, collections.OrderedDict)
  assert dict(assignment_map) == {"bert/a": "bert/a"}
  assert set(initialized) == {"bert/a", "bert/a:0"}
  assert a.name == "bert/a:0"


# ---------------------------------------------------------- optimization


def test_adam_weight_decay_fits_a_vector():
  # The original optimization_test: 100 steps of lr 0.2 fit [0.4, 0.2, -0.5].
  with tf.Graph().as_default():
    w = tf1.get_variable("w", shape=[3], initializer=tf1.constant_initializer(
        [0.1, -0.2, -0.1]))
    x = tf.constant([0.4, 0.2, -0.5])
    loss = tf.reduce_mean(tf.square(x - w))
    tvars = tf1.trainable_variables()
    grads = tf.gradients(loss, tvars)
    global_step = tf1.train.get_or_create_global_step()
    optimizer = optimization.AdamWeightDecayOptimizer(learning_rate=0.2)
    train_op = optimizer.apply_gradients(zip(grads, tvars), global_step)
    init_op = tf.group(tf1.global_variables_initializer(),
                       tf1.local_variables_initializer())
    slots = sorted(v.op.name for v in tf1.global_variables())
    with tf1.Session() as session:
      session.run(init_op)
      for _ in range(100):
        session.run(train_op)
      w_np, step = session.run([w, global_step])
  np.testing.assert_allclose(w_np.flat, [0.4, 0.2, -0.5], rtol=1e-2,
                             atol=1e-2)
  assert step == 0  # apply_gradients does not count steps, as the original
  assert slots == ["global_step", "w", "w/adam_m", "w/adam_v"]
  assert isinstance(optimizer, tf1.train.Optimizer)
  assert optimizer.get_name() == "AdamWeightDecayOptimizer"


def numpy_original_update(params, grads, m, v, lr, wd, excluded):
  """google-research/bert's update (section 4), for a dict of arrays."""
  for name in params:
    if grads.get(name) is None:
      continue
    m[name] = 0.9 * m[name] + 0.1 * grads[name]
    v[name] = 0.999 * v[name] + 0.001 * grads[name] ** 2
    update = m[name] / (np.sqrt(v[name]) + 1e-6)
    if wd and not any(re.search(r, name) for r in excluded or []):
      update = update + wd * params[name]
    params[name] = params[name] - lr * update


def test_adam_weight_decay_update_equals_the_original_arithmetic():
  rng = np.random.RandomState(0)
  init = {"dense/kernel": rng.normal(size=(3, 2)),
          "dense/bias": rng.normal(size=2),
          "LayerNorm/gamma": rng.normal(size=2),
          "unused": rng.normal(size=2)}
  names = list(init)
  # Gradients are fed, so no update can race a read of another variable
  # (reference variables under v1 give no such ordering).
  grad_values = [{n: rng.normal(size=init[n].shape) for n in names[:3]}
                 for _ in range(3)]
  with tf.Graph().as_default():
    tvars = {n: tf1.get_variable(n, initializer=tf.constant(v, tf.float32))
             for n, v in init.items()}
    feeds = {n: tf1.placeholder(tf.float32, init[n].shape)
             for n in names[:3]}
    grads = [feeds.get(n) for n in names]  # None for "unused"
    optimizer = optimization.AdamWeightDecayOptimizer(
        0.01, weight_decay_rate=0.05,
        exclude_from_weight_decay=["LayerNorm", "bias"])
    train_op = optimizer.apply_gradients(
        zip(grads, [tvars[n] for n in names]), name="my_update")
    assert train_op.name == "my_update"
    assert "unused/adam_m" not in [v.op.name for v in tf1.global_variables()]
    params = {n: v.astype(np.float64) for n, v in init.items()}
    m = {n: np.zeros_like(v) for n, v in params.items()}
    v = {n: np.zeros_like(p) for n, p in params.items()}
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      for g in grad_values:
        session.run(train_op, {feeds[n]: g[n] for n in g})
        numpy_original_update(params, g, m, v, 0.01, 0.05,
                              ["LayerNorm", "bias"])
      got = {n: session.run(t) for n, t in tvars.items()}
  for name in names:
    np.testing.assert_allclose(got[name], params[name], rtol=2e-5, atol=1e-6)
  assert optimizer._do_use_weight_decay("dense/kernel")  # pylint: disable=protected-access
  assert not optimizer._do_use_weight_decay("dense/bias")  # pylint: disable=protected-access
  assert optimizer._get_variable_name("dense/kernel:0") == "dense/kernel"  # pylint: disable=protected-access
  # The class defaults decay nothing (weight_decay_rate 0.0).
  assert not optimization.AdamWeightDecayOptimizer(0.1)._do_use_weight_decay(  # pylint: disable=protected-access
      "dense/kernel")


def test_create_optimizer_positional_as_the_original_scripts_call_it():
  with tf.Graph().as_default():
    w = tf1.get_variable("w", initializer=tf.constant([1.0, -1.0]))
    loss = tf.reduce_sum(tf.square(w))
    train_op = optimization.create_optimizer(loss, 0.1, 10, 2, False)
    step = tf1.train.get_global_step()
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      for _ in range(3):
        session.run(train_op)
      assert session.run(step) == 3
    with pytest.raises(ValueError, match="TPU"):
      with tf.Graph().as_default():
        w = tf1.get_variable("w", [2])
        optimization.create_optimizer(tf.reduce_sum(w), 0.1, 10, 0, True)


def test_apply_gradients_under_mirrored_strategy_updates_copies_alike():
  """Replica-dependent gradients: every copy gets the update of the mean
  gradient (the original let the copies diverge)."""
  strategy = tf.distribute.MirroredStrategy(
      ["/cpu:0", "/cpu:1"],
      cross_device_ops=tf.distribute.ReductionToOneDevice())
  with tf.Graph().as_default():
    with strategy.scope():
      w = tf1.get_variable("w", initializer=tf.constant([1.0, -2.0]))
      optimizer = optimization.AdamWeightDecayOptimizer(0.1)

    def step_fn():
      replica = tf.distribute.get_replica_context().replica_id_in_sync_group
      grad = tf.cast(replica + 1, tf.float32) * tf.constant([1.0, -1.0])
      return optimizer.apply_gradients([(grad, w)])

    update = strategy.extended.call_for_each_replica(step_fn)
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      session.run(strategy.experimental_local_results(update))
      copies = [session.run(c) for c in strategy.experimental_local_results(
          w)]
  params, m, v = {"w": np.array([1.0, -2.0])}, {"w": np.zeros(2)}, {
      "w": np.zeros(2)}
  numpy_original_update(params, {"w": np.array([1.5, -1.5])}, m, v, 0.1, 0,
                        None)
  np.testing.assert_array_equal(copies[0], copies[1])
  np.testing.assert_allclose(copies[0], params["w"], rtol=1e-5)
