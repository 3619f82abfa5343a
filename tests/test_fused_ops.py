"""The fused training ops against their core-ops twins and a numpy
statement of the dropout mask; the fallback when the library is missing."""

import hashlib

import numpy as np
import pytest
import tensorflow as tf

from bert_mtl import fused_ops, modeling
from bert_mtl.testing import reference_fused_ops

tf1 = tf.compat.v1

needs_library = pytest.mark.skipif(
    not fused_ops.available(),
    reason="the fused op library is not built (setup.py builds it)")


def inputs(shape=(37, 129)):
  """Values over GELU's whole range: large, small, zero, negative."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=shape).astype(np.float32) * 3
  x.flat[:6] = [0.0, -0.0, 12.0, -12.0, 1e-4, -30.0]
  return tf.constant(x)


def value_and_gradient(function, x, dy):
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = function(x)
  return y, tape.gradient(y, x, output_gradients=dy)


@needs_library
def test_gelu_and_its_gradient_equal_the_core_formula():
  x = inputs()
  dy = tf.constant(np.random.default_rng(1).normal(
      size=x.shape).astype(np.float32))
  fused, fused_grad = value_and_gradient(fused_ops.gelu, x, dy)
  core, core_grad = value_and_gradient(modeling.gelu, x, dy)
  np.testing.assert_allclose(fused, core, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(fused_grad, core_grad, rtol=1e-5, atol=1e-5)
  # bfloat16 in and out, float32 inside: within bfloat16's rounding (8
  # significant bits) of the float32 values on the rounded inputs.
  xb, dyb = tf.cast(x, tf.bfloat16), tf.cast(dy, tf.bfloat16)
  fused_b, fused_grad_b = value_and_gradient(fused_ops.gelu, xb, dyb)
  assert fused_b.dtype == fused_grad_b.dtype == tf.bfloat16
  core_b, core_grad_b = value_and_gradient(
      modeling.gelu, tf.cast(xb, tf.float32), tf.cast(dyb, tf.float32))
  np.testing.assert_allclose(tf.cast(fused_b, tf.float32), core_b,
                             rtol=1 / 128, atol=1e-3)
  np.testing.assert_allclose(tf.cast(fused_grad_b, tf.float32), core_grad_b,
                             rtol=1 / 128, atol=1e-3)


@needs_library
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5])
def test_dropout_keeps_the_reference_mask_and_scales_by_it(rate):
  x = inputs((64, 300))
  dy = tf.constant(np.random.default_rng(2).normal(
      size=x.shape).astype(np.float32))
  seed = -1234567890123  # int64, negative: its two's complement bits
  y, dx = value_and_gradient(
      lambda t: fused_ops.dropout(t, rate, seed=tf.constant(seed, tf.int64)),
      x, dy)
  keep = reference_fused_ops.keep_mask(seed, x.shape.num_elements(),
                                       rate).reshape(x.shape)
  scale = np.float32(1) / (np.float32(1) - np.float32(rate))
  np.testing.assert_array_equal(y, np.where(keep, x.numpy() * scale, 0))
  np.testing.assert_array_equal(dx, np.where(keep, dy.numpy() * scale, 0))
  kept = keep.mean()
  sd = np.sqrt(rate * (1 - rate) / keep.size)
  assert abs(kept - (1 - rate)) <= 4 * sd + 1e-9, kept
  # bfloat16: the same mask, values rounded.
  yb = fused_ops.dropout(tf.cast(x, tf.bfloat16), rate,
                         seed=tf.constant(seed, tf.int64))
  assert yb.dtype == tf.bfloat16
  np.testing.assert_array_equal(yb.numpy() != 0, keep & (x.numpy() != 0))
  np.testing.assert_allclose(tf.cast(yb, tf.float32), y, rtol=1 / 64)


@needs_library
def test_dropout_masks_differ_by_seed_and_graph_runs():
  x = tf.ones([4096])
  first = fused_ops.dropout(x, 0.5, seed=tf.constant(1, tf.int64)).numpy()
  again = fused_ops.dropout(x, 0.5, seed=tf.constant(1, tf.int64)).numpy()
  other = fused_ops.dropout(x, 0.5, seed=tf.constant(2, tf.int64)).numpy()
  np.testing.assert_array_equal(first, again)
  assert (first != other).mean() > 0.3
  # Without a seed each run of a graph draws a new mask, and a graph seed
  # makes the sequence repeat.
  runs = []
  for _ in range(2):
    with tf.Graph().as_default():
      tf1.set_random_seed(5)
      y = fused_ops.dropout(tf.ones([4096]), 0.5)
      with tf1.Session() as session:
        runs.append([session.run(y) for _ in range(2)])
  assert (runs[0][0] != runs[0][1]).any()
  np.testing.assert_array_equal(runs[0], runs[1])


@needs_library
def test_bad_dropout_arguments_are_named():
  x = tf.ones([3])
  with pytest.raises(tf.errors.InvalidArgumentError, match="rate must be"):
    fused_ops.dropout(x, 1.0, seed=tf.constant(1, tf.int64))
  with pytest.raises(tf.errors.InvalidArgumentError, match="rate must be"):
    fused_ops.dropout(x, -0.1, seed=tf.constant(1, tf.int64))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="seed must be a scalar"):
    fused_ops.dropout(x, 0.1, seed=tf.constant([1, 2], tf.int64))
  with pytest.raises(tf.errors.InvalidArgumentError, match="differ in shape"):
    fused_ops.library().bert_mtl_gelu_grad(tf.ones([3]), tf.ones([4]))


def model_graph(fused):
  """(digest of BertModel's training graph, its op types)."""
  graph = tf.Graph()
  with graph.as_default():
    tf1.set_random_seed(3)
    config = modeling.BertConfig(vocab_size=100, hidden_size=32,
                                 num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64)
    modeling.BertModel(config, True, tf.constant([[1, 2, 3]]), fused=fused)
  definition = graph.as_graph_def()
  for node in definition.node:
    node.ClearField("experimental_debug_info")
  return (hashlib.sha256(definition.SerializeToString(
      deterministic=True)).hexdigest(), {n.op for n in definition.node})


@needs_library
def test_a_fused_model_uses_the_ops_in_training_only():
  _, ops = model_graph(True)
  assert {"BertMtlDropout", "BertMtlGelu"} <= ops
  assert "RandomUniformInt" in ops  # the masks' seeds
  assert not any(op.startswith("BertMtl") for op in model_graph(False)[1])


def test_without_the_library_training_falls_back_to_core_ops(monkeypatch):
  """A missing library is said once and the model is the core-ops one,
  graph for graph."""
  warnings = []
  monkeypatch.setattr(fused_ops, "LIBRARY", "/nonexistent/_fused_ops.so")
  monkeypatch.setattr(fused_ops, "_state", {})
  monkeypatch.setattr(fused_ops.logging, "warning",
                      lambda *args: warnings.append(args[0] % args[1:]))
  assert not fused_ops.available()
  assert model_graph(True) == model_graph(False)
  assert len(warnings) == 1 and "core TensorFlow ops" in warnings[0]
  assert "/nonexistent/_fused_ops.so" in warnings[0]
