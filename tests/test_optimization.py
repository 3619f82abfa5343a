"""AdamWeightDecay against a numpy statement of the original update, and
replica / accumulation equivalence under MirroredStrategy."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert_mtl import optimization

tf1 = tf.compat.v1
HERE = os.path.dirname(os.path.abspath(__file__))


def numpy_lr(init_lr, total, warmup, step):
  decayed = init_lr * (1 - min(step, total) / total)
  if warmup and step < warmup:
    return init_lr * step / warmup
  return decayed


def numpy_adam_step(params, grads, m, v, lr, decay_names, clip=1.0, wd=0.01,
                    t=None):
  """One original update of every parameter (dicts by name); with `t`, the
  1-based update number, Adam's bias correction in the paper's efficient
  form (Kingma & Ba, section 2): lr sqrt(1 - b2^t) / (1 - b1^t) m /
  (sqrt(v) + eps), the weight decay uncorrected."""
  norm = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads.values()))
  scale = clip / max(norm, clip)
  for name in params:
    g = grads[name] * scale
    m[name] = 0.9 * m[name] + 0.1 * g
    v[name] = 0.999 * v[name] + 0.001 * g * g
    step_lr = lr if t is None else lr * np.sqrt(1 - 0.999 ** t) / (
        1 - 0.9 ** t)
    update = step_lr * m[name] / (np.sqrt(v[name]) + 1e-6)
    if name in decay_names:
      update = update + lr * wd * params[name]
    params[name] = params[name] - update


@pytest.mark.parametrize("bias_correction", [False, True],
                         ids=["original", "bias_corrected"])
@pytest.mark.parametrize("accumulation", [1, 2], ids=["fused", "unfused"])
@pytest.mark.parametrize("grad_scale", [0.01, 50.0], ids=["unclipped",
                                                            "clipped"])
def test_steps_match_numpy(grad_scale, accumulation, bias_correction):
  """Both update paths: the fused Adam kernel, and the unfused arithmetic
  that gradient accumulation (and the loss scale) runs under a flag."""
  rng = np.random.default_rng(0)
  init = {"dense/kernel": rng.normal(size=(4, 3)),
          "dense/bias": rng.normal(size=3),
          "LayerNorm/gamma": rng.normal(size=3),
          "emb/layer_norm_x": rng.normal(size=3)}
  x = rng.normal(size=(5, 4))
  init_lr, total, warmup = 0.1, 10, 3
  with tf.Graph().as_default():
    tvars = {n: tf1.get_variable(n, initializer=tf.constant(v, tf.float32))
             for n, v in init.items()}
    h = tf.matmul(tf.constant(x, tf.float32), tvars["dense/kernel"])
    h = (h + tvars["dense/bias"]) * tvars["LayerNorm/gamma"]
    h = h * tvars["emb/layer_norm_x"]
    loss = grad_scale * tf.reduce_sum(tf.square(h)) / 5.0
    train_op = optimization.create_optimizer(
        loss, init_lr, total, warmup, gradient_accumulation_steps=accumulation,
        bias_correction=bias_correction)
    grads = tf.gradients(loss, list(tvars.values()))
    step = tf1.train.get_global_step()
    # b1^t and b2^t are built once per update, not once per variable.
    pows = [op for op in tf1.get_default_graph().get_operations()
            if op.type == "Pow" and "PolynomialDecay" not in op.name]
    assert len(pows) == (2 if bias_correction else 0), [p.name for p in pows]
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      params = {n: v.astype(np.float64) for n, v in init.items()}
      m = {n: np.zeros_like(v) for n, v in params.items()}
      v2 = {n: np.zeros_like(v) for n, v in params.items()}
      for i in range(5):
        g = dict(zip(tvars, sess.run(grads)))
        numpy_adam_step(params, g, m, v2, numpy_lr(init_lr, total, warmup, i),
                        decay_names={"dense/kernel"},
                        t=i + 1 if bias_correction else None)
        # The same gradient for every micro-batch: their mean is it.
        for _ in range(accumulation):
          sess.run(train_op)
        assert sess.run(step) == (i + 1) * accumulation
        got = sess.run(tvars)
        for n in params:
          # float32 against a float64 reference over five steps: m/sqrt(v)
          # amplifies round-off where a gradient changes sign (2e-5 seen on
          # CI's CPU), while a step moves a weight by up to lr = 0.1 and the
          # weight decay term alone by 1e-3: 4e-5 still catches either.
          np.testing.assert_allclose(got[n], params[n], rtol=1e-5, atol=4e-5,
                                     err_msg="%s step %d" % (n, i))
      names = {v.op.name for v in tf1.global_variables()}
      assert {"dense/kernel/adam_m", "dense/kernel/adam_v",
              "global_step"} <= names


def test_learning_rate_schedule_jumps_at_warmup_end():
  with tf.Graph().as_default():
    step = tf1.placeholder(tf.int64, [])
    lr = optimization.learning_rate_schedule(1.0, 100, 10, step)
    with tf1.Session() as sess:
      for s in (0, 1, 9, 10, 11, 50, 100, 120):
        assert sess.run(lr, {step: s}) == pytest.approx(
            numpy_lr(1.0, 100, 10, s), abs=1e-6), s
  assert numpy_lr(1.0, 100, 10, 9) == pytest.approx(0.9)
  assert numpy_lr(1.0, 100, 10, 10) == pytest.approx(0.9)


def test_dynamic_loss_scale_skips_non_finite_steps():
  with tf.Graph().as_default():
    w = tf1.get_variable("w", initializer=tf.constant([1.0, 2.0]))
    bad = tf1.placeholder(tf.bool, [])
    loss = tf.reduce_sum(w * w) * tf.where(bad, np.float32(np.inf), 1.0)
    train_op = optimization.create_optimizer(loss, 0.1, 100, 0,
                                             loss_scale="dynamic")
    scale = [v for v in tf1.global_variables() if v.op.name == "loss_scale"][0]
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      sess.run(train_op, {bad: True})
      assert sess.run(w).tolist() == [1.0, 2.0]  # skipped
      assert sess.run(scale) == 2.0 ** 14
      sess.run(train_op, {bad: False})
      assert (sess.run(w) < [1.0, 2.0]).all()
      assert sess.run(tf1.train.get_global_step()) == 2


def test_bad_arguments():
  with tf.Graph().as_default():
    w = tf1.get_variable("w", initializer=tf.constant([1.0]))
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
      optimization.create_optimizer(tf.reduce_sum(w), 0.1, 10, 0,
                                    gradient_accumulation_steps=0)
    with pytest.raises(ValueError, match="TPUs are not supported"):
      optimization.create_optimizer(tf.reduce_sum(w), 0.1, 10, 0, True)
    with pytest.raises(ValueError, match="mixed precision mode"):
      optimization.mixed_precision_session_config("float8")


@pytest.mark.slow
def test_two_replicas_and_accumulation_equal_one_big_batch(tmp_path):
  """Runs tests/replica_equivalence.py in a fresh process (logical CPU
  devices must be configured before TensorFlow starts)."""
  result = subprocess.run(
      [sys.executable, os.path.join(HERE, "replica_equivalence.py"),
       str(tmp_path)], capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["max_diff_replicas"] < 1e-6, report
  assert report["max_diff_accumulation"] < 1e-6, report
  assert report["moved"] > 5e-4, report  # training changed the variables
  # The logged loss is the mean over replicas, not the sum.
  assert report["loss_replicas"] == pytest.approx(report["loss_single"],
                                                  rel=1e-4)


def test_bfloat16_rewrite_runs_matmuls_in_bfloat16_on_cpu():
  from bert_mtl import modeling  # pylint: disable=g-import-not-at-top
  config = modeling.BertConfig(vocab_size=30, hidden_size=32,
                               num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64,
                               max_position_embeddings=16)
  rng = np.random.default_rng(0)
  ids = rng.integers(0, 30, size=(8, 16)).astype(np.int32)
  with tf.Graph().as_default():
    model = modeling.BertModel(config, False, tf.constant(ids))
    loss = tf.reduce_mean(tf.square(model.get_pooled_output() - 0.5))
    train_op = optimization.create_optimizer(loss, 1e-3, 100, 0)
    session_config = optimization.mixed_precision_session_config("bfloat16")
    with tf1.Session(config=session_config) as sess:
      sess.run(tf1.global_variables_initializer())
      run_metadata = tf1.RunMetadata()
      options = tf1.RunOptions(output_partition_graphs=True)
      first = sess.run(loss)
      for _ in range(5):
        sess.run(train_op, options=options, run_metadata=run_metadata)
      last = sess.run(loss)
  types = {(node.op, attr.type) for graph in run_metadata.partition_graphs
           for node in graph.node for key, attr in node.attr.items()
           if key == "T"}
  if not any(t == tf.bfloat16.as_datatype_enum for _, t in types):
    pytest.skip("this CPU/TensorFlow build does not rewrite to bfloat16")
  assert any("MatMul" in op and t == tf.bfloat16.as_datatype_enum
             for op, t in types)
  assert np.isfinite(last) and last < first


def _traced_op_types(session_config):
  """Op types the trace of one run of a small elementwise graph shows."""
  with tf.Graph().as_default():
    x = tf1.placeholder(tf.float32, [4, 4])
    y = x
    for _ in range(6):
      y = tf.tanh(y * 2.0 + 1.0) * x
    with tf1.Session(config=session_config) as sess:
      run_metadata = tf1.RunMetadata()
      sess.run(y, {x: np.ones([4, 4], np.float32)},
               options=tf1.RunOptions(
                   trace_level=tf1.RunOptions.FULL_TRACE),
               run_metadata=run_metadata)
  return {node.timeline_label.split("=")[-1].split("(")[0].strip()
          for device in run_metadata.step_stats.dev_stats
          for node in device.node_stats}


def test_use_xla_compiles_on_cpu():
  """--use_xla's session config JIT-compiles CPU ops (global_jit_level
  alone did not: on CPU it needs --tf_xla_cpu_global_jit as well)."""
  plain = optimization.xla_session_config(False)
  assert plain.graph_options.optimizer_options.global_jit_level == 0
  uncompiled = _traced_op_types(plain)
  assert "_XlaRun" not in uncompiled and "Tanh" in uncompiled
  compiled = _traced_op_types(optimization.xla_session_config(True))
  assert "_XlaRun" in compiled and "Tanh" not in compiled
  # Sessions without the jit level stay uncompiled in the same process.
  assert "_XlaRun" not in _traced_op_types(tf1.ConfigProto())


def test_learning_rate_multiplier_scales_one_variables_steps():
  graph = tf.Graph()
  with graph.as_default():
    a = tf1.get_variable("head/output", initializer=tf.constant([1.0, -2.0]))
    b = tf1.get_variable("head/transitions", initializer=tf.constant(
        [1.0, -2.0]))
    grad = tf.constant([0.3, -0.7])
    optimizer = optimization.AdamWeightDecayOptimizer(
        1e-3, weight_decay_rate=0.0,
        lr_multipliers={"^head/transitions$": 10.0})
    step = optimizer.apply_gradients([(grad, a), (grad, b)])
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      session.run(step)
      new_a, new_b = session.run([a, b])
  delta_a = new_a - np.array([1.0, -2.0])
  delta_b = new_b - np.array([1.0, -2.0])
  assert np.abs(delta_a).min() > 0
  np.testing.assert_allclose(delta_b, 10 * delta_a, rtol=1e-4)
