"""Code written against google-research/bert runs on bert_mtl's modules:
examples/migrating/run_classifier.py (flags, a DataProcessor,
model_fn_builder, TPUEstimator with use_tpu=False; only its imports name
bert_mtl) trains, evaluates and predicts on real reviews under TF2
behaviour and under tf.compat.v1.disable_v2_behavior(), and the checkpoint
it writes loads into a bert_mtl `cls` problem with --original_head, giving
the same probabilities as the original graph."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bert_mtl import tokenization
from conftest import REPO, data_file
from run_helpers import run_multitask, tiny_config

SCRIPT = os.path.join(REPO, "examples", "migrating", "run_classifier.py")
MAX_SEQ_LENGTH = 32


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  """150 short real reviews per class (each fits in MAX_SEQ_LENGTH tokens,
  so truncation and windows play no part), laid out as the data dir."""
  root = tmp_path_factory.mktemp("migrating")
  os.makedirs(root / "data" / "sentiment")
  texts = {}
  for label in ("pos", "neg"):
    with open(data_file("sentiment/%s.txt" % label), encoding="utf-8") as f:
      lines = [l.strip() for l in f if l.strip() and len(l.strip()) <= 28]
    texts[label] = lines[:150]
    (root / "data" / "sentiment" / (label + ".txt")).write_text(
        "\n".join(texts[label]) + "\n", encoding="utf-8")
  return {"root": root, "data_dir": str(root / "data"), "texts": texts,
          "vocab": data_file("vocab/chinese_vocab.txt"),
          "config": tiny_config(root, num_hidden_layers=2)}


def run_script(corpus, output_dir, *extra):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
  process = subprocess.run(
      [sys.executable, SCRIPT, "--data_dir=" + corpus["data_dir"],
       "--bert_config_file=" + corpus["config"],
       "--vocab_file=" + corpus["vocab"], "--output_dir=" + output_dir,
       "--max_seq_length=%d" % MAX_SEQ_LENGTH, "--learning_rate=1e-3",
       "--do_train", "--do_eval", "--do_predict"] + list(extra),
      env=env, capture_output=True, text=True, timeout=600, check=False)
  assert process.returncode == 0, process.stderr[-5000:]
  results = {}
  with open(os.path.join(output_dir, "eval_results.txt")) as f:
    for line in f:
      key, _, value = line.partition(" = ")
      results[key] = float(value)
  probabilities = np.loadtxt(os.path.join(output_dir, "test_results.tsv"),
                             ndmin=2)
  return results, probabilities


def dev_texts(corpus):
  """The script's dev set: every 10th review of pos, then of neg."""
  return [t for label in ("pos", "neg")
          for i, t in enumerate(corpus["texts"][label]) if i % 10 == 9]


@pytest.fixture(scope="module")
def trained_v2(corpus):
  output_dir = str(corpus["root"] / "original_v2")
  results, probabilities = run_script(corpus, output_dir,
                                      "--num_train_epochs=30")
  return output_dir, results, probabilities


def test_original_script_trains_under_tf2_behavior(corpus, trained_v2):
  _, results, probabilities = trained_v2
  assert sorted(results) == ["eval_accuracy", "eval_loss", "global_step",
                             "loss"]
  assert results["global_step"] == int(270 / 32 * 30)
  assert results["eval_accuracy"] >= 0.8  # it learns, through our optimizer
  assert probabilities.shape == (len(dev_texts(corpus)), 2)
  np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-6)


def test_original_script_runs_under_disable_v2_behavior(corpus):
  output_dir = str(corpus["root"] / "original_v1")
  results, probabilities = run_script(corpus, output_dir,
                                      "--num_train_epochs=2",
                                      "--disable_v2_behavior")
  assert results["global_step"] == int(270 / 32 * 2)
  assert np.isfinite(results["eval_loss"])
  assert probabilities.shape == (len(dev_texts(corpus)), 2)
  assert os.path.exists(os.path.join(output_dir, "model.ckpt-16.index"))


def test_original_checkpoint_loads_into_a_cls_problem(corpus, trained_v2):
  original_dir, original_results, original_probabilities = trained_v2
  step = int(original_results["global_step"])
  output_dir = str(corpus["root"] / "bert_mtl")
  process = run_multitask([
      "--problems=chn_sentiment", "--data_dir=" + corpus["data_dir"],
      "--cache_dir=" + str(corpus["root"] / "cache"),
      "--bert_config_file=" + corpus["config"],
      "--vocab_file=" + corpus["vocab"],
      "--init_checkpoint=%s/model.ckpt-%d" % (original_dir, step),
      "--original_head=chn_sentiment",
      "--max_seq_length=%d" % MAX_SEQ_LENGTH, "--output_dir=" + output_dir,
      "--do_eval", "--do_predict", "--do_export"])
  # The same sentences, the same labels, the same accuracy.
  with open(os.path.join(output_dir, "predictions",
                         "chn_sentiment.jsonl"), encoding="utf-8") as f:
    records = [json.loads(line) for line in f]
  assert [r["input"] for r in records] == dev_texts(corpus)
  labels = json.load(open(os.path.join(output_dir, "labels",
                                       "chn_sentiment.json")))["labels"]
  assert labels == ["neg", "pos"]  # the script's get_labels() order
  assert [r["prediction"] for r in records] == [
      labels[i] for i in original_probabilities.argmax(1)]
  assert "chn_sentiment        accuracy             %.4f   (loss=%.4f" % (
      original_results["eval_accuracy"], original_results["eval_loss"]
  ) in process.stdout, process.stdout
  # The served graph on the original features: the same probabilities.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tokenizer = tokenization.FullTokenizer(corpus["vocab"])
  inputs = tokenizer.encode_batch(dev_texts(corpus),
                                  max_seq_length=MAX_SEQ_LENGTH)
  export_dir = glob.glob(os.path.join(output_dir, "export", "[0-9]*"))[0]
  signature = tf.saved_model.load(export_dir).signatures["chn_sentiment"]
  served = signature(**{k: tf.constant(inputs[k]) for k in (
      "input_ids", "input_mask", "segment_ids")})["probabilities"].numpy()
  np.testing.assert_allclose(served, original_probabilities, atol=1e-6)


def _checkpoint_without_head(tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with tf.Graph().as_default():
    tf.compat.v1.get_variable("bert/x", [2])
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      return tf.compat.v1.train.Saver().save(session,
                                             str(tmp_path / "bare.ckpt"))


def test_original_head_errors(corpus, trained_v2, tmp_path):
  original_dir, results, _ = trained_v2
  checkpoint = "%s/model.ckpt-%d" % (original_dir, int(results["global_step"]))
  common = ["--data_dir=" + corpus["data_dir"],
            "--bert_config_file=" + corpus["config"],
            "--vocab_file=" + corpus["vocab"],
            "--max_seq_length=%d" % MAX_SEQ_LENGTH,
            "--output_dir=" + str(tmp_path / "out"), "--do_eval"]
  cases = [
      (["--problems=chn_sentiment", "--original_head=chn_sentiment"],
       "--original_head needs --init_checkpoint"),
      (["--problems=chn_sentiment", "--original_head=msra_ner",
        "--init_checkpoint=" + checkpoint],
       "msra_ner is not a problem of this run"),
      (["--problems=msra_ner", "--original_head=msra_ner",
        "--init_checkpoint=" + checkpoint],
       "msra_ner is seq_tag; run_classifier's head loads into a cls problem"),
      (["--problems=chn_sentiment", "--original_head=chn_sentiment",
        "--init_checkpoint=" + str(tmp_path / "missing.ckpt")],
       "missing.ckpt: no such checkpoint"),
      (["--problems=chn_sentiment", "--original_head=chn_sentiment",
        "--init_checkpoint=" + _checkpoint_without_head(tmp_path)],
       "has no output_weights or output_bias (not a checkpoint of "
       "run_classifier.py)"),
  ]
  for flags, message in cases:
    process = run_multitask(flags + common, check=False)
    assert process.returncode != 0
    assert message in process.stderr, process.stderr[-2000:]
  assert not os.path.exists(tmp_path / "out" / "run.json")


# ------------------------------------ pre-training and feature extraction


def _run(script, *args, expect_ok=True):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
  process = subprocess.run(
      [sys.executable, os.path.join(REPO, "examples", "migrating", script)] +
      list(args), env=env, capture_output=True, text=True, timeout=600,
      check=False)
  if expect_ok:
    assert process.returncode == 0, process.stderr[-5000:]
  return process


def _pretraining_records(corpus, path, max_seq_length, max_predictions):
  """What create_pretraining_data.py writes, from real reviews (documents
  of 4 reviews), through bert_mtl's reimplementation of it."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from bert_mtl.testing import reference_pretraining as pretraining  # pylint: disable=g-import-not-at-top
  tokenizer = tokenization.FullTokenizer(corpus["vocab"])
  reviews = corpus["texts"]["pos"] + corpus["texts"]["neg"]
  documents = [[tokenizer.tokenize(r) for r in reviews[i:i + 4]]
               for i in range(0, len(reviews), 4)]
  instances = pretraining.create_instances(
      documents, list(tokenizer.vocab), max_seq_length, dupe_factor=2,
      max_predictions_per_seq=max_predictions)
  with tf.io.TFRecordWriter(path) as writer:
    for instance in instances:
      features = pretraining.instance_features(
          instance, tokenizer.vocab, max_seq_length, max_predictions)
      feature = {
          name: (tf.train.Feature(float_list=tf.train.FloatList(
              value=values)) if values.dtype.kind == "f" else
                 tf.train.Feature(int64_list=tf.train.Int64List(
                     value=values)))
          for name, values in features.items()}
      writer.write(tf.train.Example(features=tf.train.Features(
          feature=feature)).SerializeToString())
  return len(instances)


def test_original_pretraining_and_feature_extraction(corpus):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import numpy_bert  # pylint: disable=g-import-not-at-top
  from bert_mtl import modeling  # pylint: disable=g-import-not-at-top
  root = corpus["root"]
  records = str(root / "pretrain.tfrecord")
  assert _pretraining_records(corpus, records, MAX_SEQ_LENGTH, 5) > 100
  output_dir = str(root / "pretrain")
  # TF1 behaviour, from scratch: 20 steps, then 5 eval batches.
  _run("run_pretraining.py", "--input_file=" + records,
       "--bert_config_file=" + corpus["config"], "--output_dir=" + output_dir,
       "--max_seq_length=%d" % MAX_SEQ_LENGTH, "--max_predictions_per_seq=5",
       "--do_train", "--do_eval", "--train_batch_size=8",
       "--eval_batch_size=8", "--learning_rate=1e-3", "--num_train_steps=20",
       "--num_warmup_steps=2", "--max_eval_steps=5", "--disable_v2_behavior")
  with open(os.path.join(output_dir, "eval_results.txt")) as f:
    results = dict(line.strip().split(" = ") for line in f)
  assert sorted(results) == ["global_step", "loss", "masked_lm_accuracy",
                             "masked_lm_loss", "next_sentence_accuracy",
                             "next_sentence_loss"]
  assert int(results["global_step"]) == 20
  checkpoint = os.path.join(output_dir, "model.ckpt-20")
  stored = dict(tf.train.list_variables(checkpoint))
  assert stored["cls/predictions/output_bias"] == [21128]
  assert stored["cls/seq_relationship/output_weights"] == [2, 32]
  assert "bert/encoder/layer_1/output/dense/kernel/adam_m" in stored

  # Features of that checkpoint (TF2 behaviour) against a numpy forward
  # pass with its weights.
  lines = ["这家酒店的服务很好", "房间干净 ||| 下次还会再来", "Héllo WORLD!!"]
  input_file = root / "input.txt"
  input_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
  output_file = str(root / "features.jsonl")
  _run("extract_features.py", "--input_file=%s" % input_file,
       "--output_file=" + output_file, "--vocab_file=" + corpus["vocab"],
       "--bert_config_file=" + corpus["config"],
       "--init_checkpoint=" + checkpoint, "--layers=-1,-2",
       "--max_seq_length=16", "--batch_size=2")
  with open(output_file, encoding="utf-8") as f:
    outputs = [json.loads(line) for line in f]
  assert [o["linex_index"] for o in outputs] == [0, 1, 2]
  tokenizer = tokenization.FullTokenizer(corpus["vocab"])
  assert [t["token"] for t in outputs[1]["features"]] == (
      ["[CLS]"] + tokenizer.tokenize("房间干净") + ["[SEP]"] +
      tokenizer.tokenize("下次还会再来") + ["[SEP]"])
  assert [t["token"] for t in outputs[2]["features"]] == [
      "[CLS]", "hello", "world", "!", "!", "[SEP]"]
  reader = tf.train.load_checkpoint(checkpoint)
  weights = {name: reader.get_tensor(name) for name in stored}
  config = modeling.BertConfig.from_json_file(corpus["config"])
  for output, line in zip(outputs, lines):
    a, _, b = line.partition(" ||| ")
    encoded = tokenizer.encode_batch([a], [b] if b else None,
                                     max_seq_length=16)
    layers, _ = numpy_bert.forward(weights, config, encoded["input_ids"],
                                   encoded["input_mask"],
                                   encoded["segment_ids"])
    n = len(output["features"])
    for which, layer in ((0, layers[-1]), (1, layers[-2])):
      got = np.array([t["layers"][which]["values"]
                      for t in output["features"]])
      assert [t["layers"][which]["index"] for t in output["features"]] == [
          [-1, -2][which]] * n
      np.testing.assert_allclose(got, layer[0, :n], atol=2e-5)
