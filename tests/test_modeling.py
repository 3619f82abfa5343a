"""BertModel: original names, shapes and numerics; BertConfig; checkpoints;
the MiniLM golden check."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import numpy_bert
from bert_mtl import checkpoint, modeling, tokenization
from conftest import data_file

tf1 = tf.compat.v1

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=24, type_vocab_size=3)


def expected_shapes(c):
  """The variable table of original_bert.md section 2.2."""
  h, i = c.hidden_size, c.intermediate_size
  shapes = {
      "bert/embeddings/word_embeddings": [c.vocab_size, h],
      "bert/embeddings/token_type_embeddings": [c.type_vocab_size, h],
      "bert/embeddings/position_embeddings": [c.max_position_embeddings, h],
      "bert/embeddings/LayerNorm/beta": [h],
      "bert/embeddings/LayerNorm/gamma": [h],
      "bert/pooler/dense/kernel": [h, h],
      "bert/pooler/dense/bias": [h],
  }
  for n in range(c.num_hidden_layers):
    p = "bert/encoder/layer_%d/" % n
    for name in ("query", "key", "value"):
      shapes[p + "attention/self/%s/kernel" % name] = [h, h]
      shapes[p + "attention/self/%s/bias" % name] = [h]
    shapes[p + "attention/output/dense/kernel"] = [h, h]
    shapes[p + "attention/output/dense/bias"] = [h]
    for scope in ("attention/output/", "output/"):
      shapes[p + scope + "LayerNorm/beta"] = [h]
      shapes[p + scope + "LayerNorm/gamma"] = [h]
    shapes[p + "intermediate/dense/kernel"] = [h, i]
    shapes[p + "intermediate/dense/bias"] = [i]
    shapes[p + "output/dense/kernel"] = [i, h]
    shapes[p + "output/dense/bias"] = [h]
  return shapes


def build(config, ids, mask=None, types=None, is_training=False, scope=None):
  return modeling.BertModel(
      config, is_training, tf.constant(ids, tf.int32),
      None if mask is None else tf.constant(mask, tf.int32),
      None if types is None else tf.constant(types, tf.int32), scope=scope)


def test_variable_names_and_shapes_are_the_originals():
  config = modeling.BertConfig(**TINY)
  with tf.Graph().as_default():
    build(config, np.zeros((2, 5), np.int32))
    got = {v.op.name: v.shape.as_list() for v in tf1.global_variables()}
    assert got == expected_shapes(config)
    assert all(v.dtype.base_dtype == tf.float32 for v in tf1.global_variables())


def test_forward_pass_matches_numpy_reference():
  config = modeling.BertConfig(**TINY)
  rng = np.random.default_rng(0)
  ids = rng.integers(0, 99, size=(3, 7)).astype(np.int32)
  mask = np.ones((3, 7), np.int32)
  mask[1, 4:] = 0
  mask[2, 1:] = 0
  types = rng.integers(0, 3, size=(3, 7)).astype(np.int32)
  with tf.Graph().as_default():
    model = build(config, ids, mask, types)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      # Non-trivial LayerNorm and bias values, not just the initializers.
      for v in tf1.global_variables():
        sess.run(v.assign(rng.normal(scale=0.3, size=v.shape.as_list())))
      weights = {v.op.name: sess.run(v) for v in tf1.global_variables()}
      layers, pooled = sess.run([model.get_all_encoder_layers(),
                                 model.get_pooled_output()])
  want_layers, want_pooled = numpy_bert.forward(weights, config, ids, mask,
                                                types)
  for got, want in zip(layers, want_layers):
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
  np.testing.assert_allclose(pooled, want_pooled, atol=1e-4)


def test_gelu_forms():
  x = np.linspace(-4, 4, 101).astype(np.float32)
  tanh_form = modeling.gelu(tf.constant(x)).numpy()
  np.testing.assert_allclose(tanh_form, numpy_bert.gelu_tanh(x), atol=1e-6)
  np.testing.assert_allclose(modeling.gelu_exact(tf.constant(x)).numpy(),
                             numpy_bert.gelu_erf(x), atol=1e-6)
  assert np.abs(tanh_form - numpy_bert.gelu_erf(x)).max() > 1e-4


def test_dropout_only_when_training():
  config = modeling.BertConfig(**dict(TINY, hidden_dropout_prob=0.5))
  ids = np.ones((2, 6), np.int32)
  with tf.Graph().as_default():
    eval_model = build(config, ids)
    with tf1.variable_scope(tf1.get_variable_scope(), reuse=True):
      train_model = build(config, ids, is_training=True, scope="bert")
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      a, b = sess.run([eval_model.get_sequence_output()] * 2)
      c = sess.run(train_model.get_sequence_output())
  np.testing.assert_array_equal(a, b)
  assert np.abs(a - c).max() > 1e-3


def test_sequence_longer_than_positions_fails_at_build():
  config = modeling.BertConfig(**TINY)
  with tf.Graph().as_default():
    with pytest.raises(ValueError, match="exceeds max_position_embeddings 24"):
      build(config, np.zeros((1, 25), np.int32))


def test_config_round_trip_and_defaults(tmp_path):
  assert modeling.BertConfig(vocab_size=10).type_vocab_size == 16
  data = dict(TINY, directionality="bidi", pooler_type="first_token_transform",
              hidden_act="gelu", hidden_dropout_prob=0.1,
              attention_probs_dropout_prob=0.1, initializer_range=0.02)
  path = tmp_path / "bert_config.json"
  path.write_text(json.dumps(data))
  config = modeling.BertConfig.from_json_file(str(path))
  assert config.directionality == "bidi"
  text = config.to_json_string()
  assert text.endswith("}\n") and json.loads(text) == data
  assert list(json.loads(text)) == sorted(data)


@pytest.mark.parametrize("change,message", [
    (dict(num_attention_heads=5), "not a multiple of num_attention_heads 5"),
    (dict(hidden_act="swish"), "hidden_act 'swish'"),
    (dict(vocab_size=None), "vocab_size must be a positive integer"),
    (dict(hidden_dropout_prob=1.5), "hidden_dropout_prob must be in"),
])
def test_config_validation_names_the_problem(tmp_path, change, message):
  path = tmp_path / "bert_config.json"
  path.write_text(json.dumps(dict(TINY, **change)))
  with pytest.raises(ValueError, match=message) as e:
    modeling.BertConfig.from_json_file(str(path))
  assert str(path) in str(e.value)


def test_vocab_size_mismatch_is_an_error(tmp_path):
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("\n".join(["[UNK]"] + ["w%d" % i for i in range(99)]) + "\n")
  config = modeling.BertConfig(**TINY)
  with pytest.raises(ValueError, match="vocab_size is 99 but .* has 100 lines"):
    config.validate(vocab_file=str(vocab))


def _save_tiny_checkpoint(tmp_path, config, with_slots=True):
  with tf.Graph().as_default():
    build(config, np.zeros((1, 4), np.int32))
    if with_slots:
      for v in list(tf1.trainable_variables()):
        tf1.get_variable(v.op.name + "/adam_m", v.shape, trainable=False,
                         initializer=tf1.ones_initializer())
    tf1.train.get_or_create_global_step()
    with tf1.variable_scope("", reuse=tf1.AUTO_REUSE):
      tf1.get_variable("output_weights", [3, config.hidden_size],
                       initializer=tf1.constant_initializer(0.5))
      tf1.get_variable("output_bias", [3],
                       initializer=tf1.constant_initializer(0.25))
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      prefix = str(tmp_path / "model.ckpt")
      tf1.train.Saver().save(sess, prefix)
      weights = {v.op.name: sess.run(v) for v in tf1.trainable_variables()}
  return prefix, weights


def test_init_checkpoint_semantics(tmp_path):
  config = modeling.BertConfig(**TINY)
  prefix, saved = _save_tiny_checkpoint(tmp_path, config)
  with tf.Graph().as_default():
    build(config, np.zeros((1, 4), np.int32))
    with tf1.variable_scope("ner/cls"):
      head_w = tf1.get_variable("output_weights", [3, config.hidden_size],
                                initializer=tf1.zeros_initializer())
      tf1.get_variable("output_bias", [3], initializer=tf1.zeros_initializer())
    with tf1.variable_scope("new_head"):
      fresh = tf1.get_variable("w", [2], initializer=tf1.constant_initializer(7))
    step = tf1.train.get_or_create_global_step()
    restored, missing = checkpoint.init_from_checkpoint(
        prefix, extra_map=checkpoint.original_head_map(
            checkpoint.ORIGINAL_CLASSIFIER, "ner/cls"))
    by_name = {v.op.name: v for v in tf1.global_variables()}
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      for name, value in saved.items():
        if name.startswith("bert/"):
          np.testing.assert_array_equal(sess.run(by_name[name]), value)
      np.testing.assert_array_equal(sess.run(head_w), 0.5)
      assert sess.run(fresh).tolist() == [7, 7]
      assert sess.run(step) == 0  # never taken from init_checkpoint
  assert "new_head/w" in missing and "ner/cls/output_weights" in restored
  assert not any("adam" in n for n in restored)


def test_init_checkpoint_shape_mismatch_is_clear(tmp_path):
  prefix, _ = _save_tiny_checkpoint(tmp_path, modeling.BertConfig(**TINY))
  with tf.Graph().as_default():
    build(modeling.BertConfig(**dict(TINY, vocab_size=98)),
          np.zeros((1, 4), np.int32))
    with pytest.raises(ValueError, match="word_embeddings has shape"):
      checkpoint.init_from_checkpoint(prefix)


def test_init_checkpoint_defers_to_model_dir(tmp_path):
  prefix, _ = _save_tiny_checkpoint(tmp_path, modeling.BertConfig(**TINY))
  with tf.Graph().as_default():
    build(modeling.BertConfig(**TINY), np.zeros((1, 4), np.int32))
    restored, _ = checkpoint.init_from_checkpoint(prefix,
                                                  model_dir=str(tmp_path))
    assert restored == []


def test_strip_slots(tmp_path):
  prefix, _ = _save_tiny_checkpoint(tmp_path, modeling.BertConfig(**TINY))
  kept, dropped = checkpoint.strip_slots(prefix, str(tmp_path / "lean.ckpt"))
  assert "global_step" in dropped and all(
      n.endswith("/adam_m") or n == "global_step" for n in dropped)
  lean = checkpoint.read_checkpoint(str(tmp_path / "lean.ckpt"))
  assert set(lean) == set(kept) and "output_weights" in lean
  size = lambda p: sum(os.path.getsize(str(f)) for f in tmp_path.glob(p + "*"))
  assert size("lean.ckpt") < 0.6 * size("model.ckpt")


def test_hf_names():
  f = checkpoint._hf_to_tf_name  # pylint: disable=protected-access
  assert f("bert.encoder.layer.11.attention.self.query.weight") == (
      "bert/encoder/layer_11/attention/self/query/kernel", True)
  assert f("encoder.layer.0.output.LayerNorm.weight") == (
      "bert/encoder/layer_0/output/LayerNorm/gamma", False)
  assert f("embeddings.word_embeddings.weight") == (
      "bert/embeddings/word_embeddings", False)
  assert f("pooler.dense.bias") == ("bert/pooler/dense/bias", False)
  assert f("cls.predictions.transform.dense.weight") == (
      "cls/predictions/transform/dense/kernel", True)
  assert f("cls.predictions.transform.LayerNorm.gamma") == (
      "cls/predictions/transform/LayerNorm/gamma", False)
  assert f("cls.predictions.bias") == ("cls/predictions/output_bias", False)
  assert f("cls.seq_relationship.weight") == (
      "cls/seq_relationship/output_weights", False)
  assert f("embeddings.position_ids") == (None, False)


def test_validate_case_matches_checkpoint():
  check = tokenization.validate_case_matches_checkpoint
  with pytest.raises(ValueError, match="seems to be a lowercased model"):
    check(False, "/m/uncased_L-12_H-768_A-12/bert_model.ckpt")
  with pytest.raises(ValueError):
    check(False, "/m/uncased_L-12_H-768_A-12/bert_model.ckpt.index")
  with pytest.raises(ValueError, match="cased model"):
    check(True, "gs://x/cased_L-12_H-768_A-12/bert_model.ckpt")
  check(True, "/m/uncased_L-12_H-768_A-12/bert_model.ckpt")
  check(False, "/m/wwm_uncased_L-24_H-1024_A-16/bert_model.ckpt")
  check(False, "/m/uncased_L-2_H-128_A-2/bert_model.ckpt")
  check(False, "/out/model.ckpt-1000")
  check(False, None)


# ---------------------------------------------------------------- MiniLM

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.",
             "The girl is carrying a baby."]


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
  src = os.path.dirname(data_file("minilm/model.safetensors"))
  dst = str(tmp_path_factory.mktemp("minilm_tf"))
  prefix = checkpoint.convert_hf(src, dst)
  return dst, prefix


def test_minilm_golden_cosines_and_numpy_layers(minilm):
  dst, prefix = minilm
  config = modeling.BertConfig.from_json_file(os.path.join(dst,
                                                           "bert_config.json"))
  assert config.hidden_act == "gelu_exact"
  tok = tokenization.FullTokenizer(os.path.join(dst, "vocab.txt"), True)
  batch = tok.encode_batch(SENTENCES, max_seq_length=16)
  ids, mask = batch["input_ids"], batch["input_mask"]
  types = batch["segment_ids"]
  with tf.Graph().as_default():
    model = build(config, ids, mask, types)
    restored, missing = checkpoint.init_from_checkpoint(prefix)
    assert missing == [] and len(restored) == 5 + 16 * 6 + 2
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      layers = sess.run(model.get_all_encoder_layers())
  weights = checkpoint.read_checkpoint(prefix)
  want_layers, _ = numpy_bert.forward(weights, config, ids, mask, types)
  for n, (got, want) in enumerate(zip(layers, want_layers)):
    real = mask.astype(bool)
    np.testing.assert_allclose(got[real], want[real], atol=1e-4,
                               err_msg="layer %d" % n)
  last = layers[-1]
  m = mask[:, :, None].astype(np.float32)
  emb = (last * m).sum(1) / m.sum(1)
  emb /= np.linalg.norm(emb, axis=1, keepdims=True)
  assert emb[0] @ emb[1] == pytest.approx(0.755, abs=0.002)
  assert emb[0] @ emb[2] == pytest.approx(-0.105, abs=0.002)


def test_convert_hf_cli_and_errors(tmp_path, minilm):
  import subprocess, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  result = subprocess.run(
      [sys.executable, "-m", "bert_mtl.checkpoint", "strip-slots",
       "--src=" + minilm[1], "--dst=" + str(tmp_path / "s.ckpt")],
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  # 104 safetensors entries less the position_ids buffer.
  assert "kept 103 variables, dropped 0" in result.stdout
  with pytest.raises(FileNotFoundError, match="model.safetensors not found"):
    checkpoint.convert_hf(str(tmp_path), str(tmp_path / "out"))
