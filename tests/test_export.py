"""The SavedModel: core ops only, every signature equal to
Estimator.predict, and the Predictor on raw text."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert_mtl.data import features
from conftest import data_dir
from run_helpers import base_args, run_multitask

CHAIN = ("pd98_ner&pd98_cws|chn_sentiment|msra_entity_types|"
         "msra_entities_text|pd98_pos_seq")


@pytest.fixture(scope="module")
def exported_chain(tmp_path_factory):
  """One run of CHAIN (trained 3 steps and exported) for the file's tests:
  (run directory's parent, stdout of the run)."""
  tmp_path = tmp_path_factory.mktemp("chain")
  args = base_args(tmp_path, data_dir(), CHAIN, steps=3, beam_size=2)
  process = run_multitask(args + ["--do_train", "--do_export"])
  return tmp_path, process.stdout


def test_export_serves_what_the_estimator_predicts(exported_chain, tmp_path):
  run_root, stdout = exported_chain
  # The main-job style run ends with the Predictor on example sentences.
  assert '"pd98_ner": {"entities"' in stdout
  export_dir, = glob.glob(str(run_root / "model" / "export" / "*"))
  manifest = json.load(open(os.path.join(export_dir, "assets.extra",
                                         "manifest.json")))
  assert [p["name"] for p in manifest["problems"]] == [
      "pd98_ner", "pd98_cws", "chn_sentiment", "msra_entity_types",
      "msra_entities_text", "pd98_pos_seq"]

  rng = np.random.RandomState(0)
  lengths = [5, 17, 32]  # variable lengths in one padded batch
  ids = np.zeros([3, 32], np.int32)
  for row, n in enumerate(lengths):
    ids[row, :n] = rng.randint(672, 7000, n)
    ids[row, 0], ids[row, n - 1] = 101, 102
  inputs = {"input_ids": ids, "input_mask": (ids > 0).astype(np.int32),
            "segment_ids": np.zeros_like(ids)}
  # The tagged signatures take the positions to tag: here every real token
  # but [CLS], [SEP] and every third one (as continuation pieces would be).
  tag_mask = inputs["input_mask"].copy()
  tag_mask[:, 0] = tag_mask[:, 1::3] = 0
  for row, n in enumerate(lengths):
    tag_mask[row, n - 1] = 0
  np.savez(tmp_path / "inputs.npz", tag_mask=tag_mask, **inputs)
  with open(tmp_path / "texts.json", "w", encoding="utf-8") as f:
    json.dump(TEXTS, f)
  report, served = export_check(export_dir, tmp_path, "outputs")
  assert "serving_default" in report["signatures"]
  assert set(manifest_names(manifest)) <= set(report["signatures"])

  from bert_mtl import experiment  # pylint: disable=g-import-not-at-top
  run = experiment.Experiment(str(run_root / "model"))
  predicted = list(run.estimator().predict(
      lambda: tf.data.Dataset.from_tensor_slices(inputs).batch(3),
      yield_single_examples=False))[0]
  tagged = list(run.estimator().predict(
      lambda: tf.data.Dataset.from_tensor_slices(
          dict(inputs, tag_mask=tag_mask)).batch(3),
      yield_single_examples=False))[0]
  # The positions decide the CRF's path: tag_mask changes the tags.
  assert (tagged["pd98_ner/tag_ids"][tag_mask == 0] == -1).all()
  assert (predicted["pd98_ner/tag_ids"][tag_mask == 0][
      inputs["input_mask"][tag_mask == 0] == 1] != -1).any()
  compared = 0
  for key, value in tagged.items():
    if "/" in key:
      np.testing.assert_allclose(served["tagged:serving_default:" + key],
                                 value, rtol=1e-4, atol=1e-5, err_msg=key)
  for key, value in predicted.items():
    if "/" not in key:
      continue
    np.testing.assert_allclose(served["serving_default:" + key], value,
                               rtol=1e-4, atol=1e-5, err_msg=key)
    problem, output = key.split("/", 1)
    np.testing.assert_allclose(served["%s:%s" % (problem, output)], value,
                               rtol=1e-4, atol=1e-5, err_msg=key)
    # The tf.Example signatures serve the same thing.
    np.testing.assert_allclose(
        served["examples:serving_default:" + key], value, rtol=1e-4,
        atol=1e-5, err_msg=key)
    np.testing.assert_allclose(
        served["examples:%s:%s" % (problem, output)], value, rtol=1e-4,
        atol=1e-5, err_msg=key)
    compared += 1
  assert compared >= 9
  check_text_signatures(export_dir, manifest, served)


def export_check(export_dir, tmp_path, name):
  """(report, {signature:output: array}) of export_check.py run on
  export_dir in a fresh process with only TensorFlow imported (inputs.npz
  and texts.json in tmp_path); asserts the export holds core ops only."""
  check = subprocess.run(
      [sys.executable, os.path.join(os.path.dirname(__file__),
                                    "export_check.py"), export_dir,
       str(tmp_path / "inputs.npz"), str(tmp_path / (name + ".npz")),
       str(tmp_path / "texts.json")],
      capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert check.returncode == 0, check.stderr[-3000:]
  report = json.loads(check.stdout.strip().splitlines()[-1])
  assert report["unknown_ops"] == [], report
  return report, dict(np.load(tmp_path / (name + ".npz"), allow_pickle=True))


# Several windows at max_seq_length 32, mixed scripts, empty and blank
# texts, characters BERT deletes, a word over 200 characters.
TEXTS = ["上海浦东开发与法制建设同步。", "", "   ",
         "中国人民银行行长周小川在北京会见了美国财政部长。" * 3,
         "Héllo WORLD 2001年１２月 iPhone13 ΟΔΟΣ", "a\u200bb\tc 好",
         "x" * 230 + " 北京", "😀 smile ☺",
         # Noncharacters, private use and unassigned code points are text
         # like any other (an encoder once turned them into U+FFFD).
         "北\uffff京 \ufdd0上海\U0010ffff \ue000天\u0378津\U0001fffe"]


def check_text_signatures(export_dir, manifest, served):
  """serving_text (run above in a process with core TensorFlow only)
  gives the Predictor's results: decoded through the Predictor's own
  output mapping, they equal Predictor.predict on raw text."""
  from bert_mtl import serving  # pylint: disable=g-import-not-at-top
  names = manifest_names(manifest)
  for name in names:  # one text signature per problem too
    assert any(k.startswith("serving_text:%s:" % name) for k in served)
  text_out = {k.partition(":")[2]: v for k, v in served.items()
              if k.startswith("serving_text:") and
              k.count(":") == 1}
  assert text_out["token_ids"].shape[0] == len(TEXTS)
  predictor = serving.Predictor(export_dir, batch_size=3)
  expected = predictor.predict(TEXTS)
  from_serving = [{n: predictor.serve_text_outputs(n, text_out, i, t)
                   for n in predictor.entries} for i, t in enumerate(TEXTS)]
  in_graph_predictor = serving.Predictor(export_dir, text_signature=True)
  in_graph = in_graph_predictor.predict(TEXTS)
  for ours, served_result, graph, text in zip(expected, from_serving,
                                              in_graph, TEXTS):
    assert_same_results(ours, served_result, text)
    assert_same_results(ours, graph, text)
  # (The model is 3 steps old and tags nearly everything "O": the window
  # merge, first tokens and Viterbi are checked on varied scores against
  # their Python counterparts in tests/test_text_serving.py.)
  # The text's own tokens and their spans, as the native tokenizer gives.
  native = predictor.tokenizer.encode_ragged(TEXTS)
  for i in range(len(TEXTS)):
    lo, hi = native["row_splits"][i:i + 2]
    assert text_out["token_ids"][i][:hi - lo].tolist() == (
        native["ids"][lo:hi].tolist())
    assert text_out["token_spans"][i][:hi - lo].tolist() == (
        native["spans"][lo:hi].tolist())
  # Requests with nothing to tag, and with no text at all.
  for batch in ([""], ["", "  ", "\u200b"], []):
    assert in_graph_predictor.predict(batch) == predictor.predict(batch)
  # Invalid UTF-8 is dropped byte-wise, as tokenization.py does.
  signature = in_graph_predictor._text  # pylint: disable=protected-access
  call = lambda texts: {k: v.numpy().tolist() for k, v in signature(
      text=tf.constant(texts)).items()}
  assert call([b"\xe4\xb8\x8a\xff\xe6\xb5\xb7"]) == call(
      [b"\xe4\xb8\x8a\xe6\xb5\xb7"])
  # A 1 MB text (350,000 characters): a clear error naming the limit, not
  # a crash or an out-of-memory.
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="serving_text: the request needs more than"):
    signature(text=tf.constant(["北京" * 175000]))


def assert_same_results(expected, got, text):
  """Labels, tags, words and texts equal; probabilities within float32
  noise (the two paths pad their batches differently)."""
  assert expected.keys() == got.keys(), text
  for name, value in expected.items():
    other = got[name]
    assert value.keys() == other.keys(), (name, text)
    for key, item in value.items():
      if key in ("probability", "probabilities"):
        np.testing.assert_allclose(
            np.asarray(list(item.values()) if isinstance(item, dict)
                       else item), np.asarray(list(other[key].values())
                                              if isinstance(item, dict)
                                              else other[key]),
            rtol=1e-4, atol=1e-5, err_msg="%s %r" % (name, text))
      else:
        assert item == other[key], (name, key, text)


def manifest_names(manifest):
  return [p["name"] for p in manifest["problems"]]


def test_predictor_maps_back_to_characters(exported_chain, tmp_path):
  # CHAIN's export has pd98_ner&pd98_cws (character units) and
  # chn_sentiment (text units).
  run_root, _ = exported_chain
  export_dir, = glob.glob(str(run_root / "model" / "export" / "*"))
  from bert_mtl import serving  # pylint: disable=g-import-not-at-top
  predictor = serving.Predictor(export_dir, batch_size=2)
  long_text = "我爱北京天安门。" * 12  # 96 characters: windows at length 32
  texts = ["上海 浦东ABC开发", long_text, "好"]
  results = predictor.predict(texts)
  assert len(results) == 3
  for text, result in zip(texts, results):
    # Segmentation covers every non-space character exactly once.
    assert "".join(result["pd98_cws"]["words"]) == "".join(text.split())
    # Units as in training: MSRA / PD98 units are characters, so "ABC"
    # is three units (not one, as an earlier Predictor had it).
    assert len(result["pd98_ner"]["tags"]) == len(
        features.text_units(text, "char"))
    for entity in result["pd98_ner"]["entities"]:
      assert text[entity["start"]:entity["end"]] == entity["text"]
    assert result["chn_sentiment"]["label"] in ("pos", "neg")
  # Whole-text decoding with the native Viterbi equals the graph's CRF
  # decode where the text fits one window.
  graph_decoded = serving.Predictor(export_dir, native_viterbi=False)
  assert predictor._states  # pylint: disable=protected-access
  short = ["上海浦东开发与法制建设同步。", "我爱北京天安门"]
  for ours, theirs in zip(predictor.predict(short),
                          graph_decoded.predict(short)):
    assert ours["pd98_ner"]["tags"] == theirs["pd98_ner"]["tags"]
    assert ours["pd98_cws"]["words"] == theirs["pd98_cws"]["words"]
  assert predictor.entries["pd98_ner"]["inputs"] == "char"
  assert predictor.entries["chn_sentiment"]["inputs"] == "text"
  assert features.text_units("上海 ABC1,x", "char") == [
      ("上", 0), ("海", 1), ("A", 3), ("B", 4), ("C", 5), ("1", 6), (",", 7),
      ("x", 8)]
  assert features.text_units(" New  York,x ", "word") == [
      ("New", 1), ("York,x", 6)]
  # Inputs: a list of str or bytes (UTF-8, invalid bytes dropped as
  # FullTokenizer drops them); anything else is one clear error.
  assert predictor.predict([b"\xe4\xb8\x8a\xff\xe6\xb5\xb7"]) == (
      predictor.predict(["上海"]))
  with pytest.raises(TypeError, match="got a single str: pass"):
    predictor.predict("北京上海")
  with pytest.raises(TypeError, match=r"texts\[1\] must be str or bytes, "
                     "not NoneType"):
    predictor.predict(["好", None])
  with pytest.raises(TypeError, match=r"texts\[0\] must be str or bytes, "
                     "not int"):
    predictor.predict([3])
  with pytest.raises(ValueError, match=r"texts\[0\] holds a lone surrogate "
                     "U\\+D800 at character 1"):
    predictor.predict(["a\ud800b"])
  # The export's parent directory resolves to its newest export.
  parent = serving.Predictor(str(run_root / "model" / "export"))
  assert parent.predict(short) == predictor.predict(short)
  with pytest.raises(FileNotFoundError, match="no saved_model.pb"):
    serving.Predictor(str(tmp_path))


def test_export_of_a_saved_run_writes_only_the_export(exported_chain):
  """--do_export on a trained run adds a version under export/ and
  changes nothing else in the run directory (run.json included) but the
  writer lock, which names the export while it runs."""
  import os  # pylint: disable=g-import-not-at-top
  from bert_mtl import run_directory  # pylint: disable=g-import-not-at-top
  run_root, _ = exported_chain
  model = run_root / "model"

  def state():
    out = {}
    for root, _, names in os.walk(model):
      if os.path.relpath(root, model).split(os.sep)[0] == "export":
        continue
      for name in set(names) - {run_directory.LOCK_FILE}:
        path = os.path.join(root, name)
        out[path] = (os.stat(path).st_mtime_ns, open(path, "rb").read())
    return out
  before = state()
  versions = set(os.listdir(model / "export"))
  run_multitask(["--output_dir=%s" % model, "--do_export"])
  assert len(set(os.listdir(model / "export")) - versions) == 1
  after = state()
  assert sorted(after) == sorted(before)
  changed = [p for p in before if before[p] != after[p]]
  assert changed == [], changed


def test_every_export_ships_tf_servings_warmup_requests(exported_chain):
  """assets.extra/tf_serving_warmup_requests: PredictionLogs (read with
  TF Serving's own protos) with a single and a batched request for every
  signature, each of which the SavedModel answers; its checksum is in
  the manifest."""
  import os  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  from bert_mtl import export_assets, serving_warmup  # pylint: disable=g-import-not-at-top
  run_root, _ = exported_chain
  export_dir = sorted(glob.glob(str(run_root / "model" / "export" / "*")))[0]
  path = os.path.join(export_dir, "assets.extra", serving_warmup.WARMUP_FILE)
  assert export_assets.read(export_dir).manifest["checksums"][
      serving_warmup.WARMUP_FILE]
  model = tf.saved_model.load(export_dir)
  seen = {}
  for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
    log = prediction_log_pb2.PredictionLog.FromString(record)
    request = log.predict_log.request
    signature = model.signatures[request.model_spec.signature_name]
    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    assert sorted(inputs) == sorted(signature.structured_input_signature[1])
    out = signature(**{k: tf.constant(v) for k, v in inputs.items()})
    batch = len(next(iter(inputs.values())))
    assert all(v.shape[0] == batch for v in out.values())
    seen.setdefault(request.model_spec.signature_name, []).append(batch)
  assert sorted(seen) == sorted(model.signatures)
  assert all(b == list(serving_warmup.BATCHES) for b in seen.values()), seen
  assert {"serving_text", "serving_default", "tagged:serving_default",
          "examples:serving_default", "serving_text:pd98_ner"} <= set(seen)


def test_a_bfloat16_export_beside_the_float32_one(exported_chain, tmp_path):
  """--export_precision=bfloat16 on a trained run: a new model directory
  export_bfloat16/ beside export/, core ops only, the encoder's dense
  kernels stored in bfloat16 (the rest float32), the manifest saying so,
  warm-up requests shipped, and answers within bfloat16's rounding of the
  float32 export's on every ids and text signature."""
  from bert_mtl import export_assets, serving, serving_warmup  # pylint: disable=g-import-not-at-top
  run_root, _ = exported_chain
  model_dir = run_root / "model"
  process = run_multitask(["--output_dir=%s" % model_dir, "--do_export",
                           "--export_precision=bfloat16"])
  bf16_dir, = glob.glob(str(model_dir / "export_bfloat16" / "*"))
  assert "exported %s" % bf16_dir in process.stdout
  f32_dir = sorted(glob.glob(str(model_dir / "export" / "*")))[0]
  manifest = export_assets.read(bf16_dir).manifest
  assert manifest["precision"] == "bfloat16"
  assert export_assets.read(f32_dir).manifest["precision"] == "float32"
  assert manifest["checksums"][serving_warmup.WARMUP_FILE]

  variables = export_assets.variables_by_name(tf.saved_model.load(bf16_dir))
  kernels = [n for n in variables if n.startswith("bert/encoder/") and
             n.endswith("/kernel")] + ["bert/pooler/dense/kernel"]
  layers = {n.split("/")[2] for n in kernels if "/layer_" in n}
  # Per layer: query, key, value, attention output, intermediate, output.
  assert layers and len(kernels) == 6 * len(layers) + 1
  assert all(variables[n].dtype == tf.bfloat16 for n in kernels)
  others = set(variables) - set(kernels)
  assert {"bert/embeddings/word_embeddings",
          "bert/encoder/layer_0/output/LayerNorm/gamma",
          "bert/encoder/layer_0/output/dense/bias",
          "pd98_ner/transitions"} <= others
  assert all(variables[n].dtype != tf.bfloat16 for n in others)

  rng = np.random.RandomState(1)
  ids = rng.randint(672, 7000, [4, 24]).astype(np.int32)
  ids[:, 0], ids[:, -1] = 101, 102
  inputs = {"input_ids": ids, "input_mask": np.ones_like(ids),
            "segment_ids": np.zeros_like(ids)}
  tag_mask = inputs["input_mask"].copy()
  tag_mask[:, 0] = tag_mask[:, -1] = 0
  np.savez(tmp_path / "inputs.npz", tag_mask=tag_mask, **inputs)
  with open(tmp_path / "texts.json", "w", encoding="utf-8") as f:
    json.dump(TEXTS, f)
  served = {name: export_check(path, tmp_path, name)[1]
            for name, path in (("float32", f32_dir), ("bfloat16", bf16_dir))}
  assert sorted(served["bfloat16"]) == sorted(served["float32"])
  differing = 0
  for key, expected in served["float32"].items():
    got = served["bfloat16"][key]
    if expected.dtype.kind == "f":
      # bfloat16 keeps 8 significant bits: each of the 13 products rounds
      # its inputs to ~0.4%; a 3-step model's scores stay within 5%.
      scale = max(1.0, float(np.abs(expected).max()))
      np.testing.assert_allclose(got, expected, atol=0.05 * scale,
                                 err_msg=key)
      differing += int(not np.array_equal(got, expected))
  # The products did run in bfloat16 (else every float would be equal).
  assert differing > 0
  # The Predictor reads the bfloat16 export as it reads any other.
  results = serving.Predictor(bf16_dir).predict(TEXTS[:2])
  assert sorted(results[0]) == sorted(serving.Predictor(f32_dir).predict(
      TEXTS[:1])[0])


def test_training_ran_the_fused_ops_and_the_export_holds_none(
    exported_chain):
  """The run trained with the fused training ops (where the library
  loads); its export, built from core ops, holds none of them (the ids
  and text signatures' ops are checked against core TensorFlow's registry
  in test_export_serves_what_the_estimator_predicts)."""
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
  from bert_mtl import fused_ops  # pylint: disable=g-import-not-at-top
  run_root, _ = exported_chain
  with open(run_root / "model" / "graph.pbtxt", encoding="utf-8") as f:
    training_graph = f.read()
  if fused_ops.available():
    assert 'op: "BertMtlDropout"' in training_graph
    assert 'op: "BertMtlGelu"' in training_graph
  export_dir = sorted(glob.glob(str(run_root / "model" / "export" / "*")))[0]
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  ops = {n.op for g in proto.meta_graphs for n in g.graph_def.node}
  ops |= {n.op for g in proto.meta_graphs
          for function in g.graph_def.library.function
          for n in function.node_def}
  assert ops and not any(op.startswith("BertMtl") for op in ops)
