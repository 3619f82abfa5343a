"""Problem types as plugins: a type defined entirely in this file trains,
evaluates, exports and predicts through the library; the regression type
and STS-B; evaluation and the Predictor decode alike."""

import json
import os

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from bert_mtl import (experiment, metrics, modeling, problems, serving,
                      tokenization, types)
from bert_mtl.data import features
from bert_mtl.heads import base
from conftest import data_dir, data_file
from run_helpers import TINY_BERT


# ----------------------------------------------------------- a toy type
class MentionHead(base.Head):
  """One sigmoid from the pooled output: does the text mention the word?"""

  SETTINGS = {"threshold": 0.5}

  def build(self, body, features_, mode):
    del features_
    return {"logit": self.pooled_logits(body, mode)[:, 0]}

  def loss(self, outputs, features_):
    per_row = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.cast(self.label(features_), tf.float32),
        logits=outputs["logit"])
    return base.masked_mean(per_row, self.present(features_))

  def predictions(self, outputs):
    return {"probability": tf.sigmoid(outputs["logit"])}


class Mention(types.ProblemType):
  """A yes / no label per text, scored by accuracy."""

  name = "test_mention"
  inputs = "text"
  metrics = {"yes_no": "accuracy"}
  head = MentionHead

  def check(self, inputs, labels):
    if not isinstance(inputs, str):
      return "test_mention inputs must be a text"
    if labels not in ("yes", "no"):
      return "test_mention labels are yes or no, got %r" % (labels,)
    return None

  def fit_encoder(self, name, spec, config, read):
    return problems.LabelEncoder(["value"], name)

  def label_value(self, encoder, example, config):
    return int(example.labels == "yes")

  def decode(self, rows, encoder, context):
    return "yes" if rows[0]["probability"] >= 0.5 else "no"

  def score(self, spec, examples, results, encoder, context):
    return {"accuracy": metrics.accuracy([e.labels for e in examples],
                                         results)}

  def serve(self, result, rows, encoder, context):
    return {"mentions": result == "yes",
            "probability": float(rows[0]["probability"])}


# ------------------------------------------------ a toy token-level type
class UnitKindHead(base.Head):
  """A softmax per token over the sequence output, trained and predicted
  on the positions its labels (records) or the tag mask (served) mark."""

  def build(self, body, features_, mode):
    del mode
    logits = base.dense_logits(body.sequence_output, self.num_labels,
                               self.bert_config.initializer_range)
    if self.name + "_label" in features_:
      marked = tf.not_equal(features_[self.name + "_label"], -1)
    else:
      marked = tf.cast(features_[features.TAG_MASK], tf.bool)
    return {"logits": tf.cast(logits, tf.float32), "marked": marked}

  def loss(self, outputs, features_):
    per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.maximum(self.label(features_), 0), logits=outputs["logits"])
    weights = tf.cast(outputs["marked"], tf.float32) * self.present(
        features_)[:, None]
    return tf.reduce_sum(per_token * weights) / tf.maximum(
        tf.reduce_sum(weights), 1.0)

  def predictions(self, outputs):
    ids = tf.argmax(outputs["logits"], -1, output_type=tf.int32)
    return {"ids": tf.where(outputs["marked"], ids, -tf.ones_like(ids))}


class UnitKind(types.ProblemType):
  """A kind per character (digit, latin or other), written with the type
  interface alone: whole-text decoding from windows, the served graph's
  per-unit outputs and their reading."""

  name = "test_unit_kind"
  inputs = "units"
  token_aligned = True
  label_shape = "sequence"
  metrics = {"unit_accuracy": "accuracy"}
  head = UnitKindHead

  def check(self, inputs, labels):
    if not types.is_units(inputs) or len(labels) != len(inputs):
      return "test_unit_kind needs one label per unit"
    return None

  def placeholder_labels(self, inputs):
    return ["other"] * len(inputs)

  def fit_encoder(self, name, spec, config, read):
    return problems.LabelEncoder(["digit", "latin", "other"], name)

  def serving_inputs(self, inputs, vocab_tokens):
    real = tf.cast(inputs["input_mask"], tf.int32)
    # (The first problem of the chain that serves tag_mask sets its
    # default: here seq_tag's.)
    return {features.TAG_MASK: real}

  def label_value(self, encoder, example, config):
    return encoder.encode(example.labels, example.path, example.line,
                          example)

  def decode(self, rows, encoder, context):
    ids = features.merge_window_predictions(
        context.alignment, context.windows, [r["ids"][1:] for r in rows], 0)
    return encoder.decode(ids)

  def score(self, spec, examples, results, encoder, context):
    return {"accuracy": metrics.token_accuracy([e.labels for e in examples],
                                               results)}

  def serve_text(self, name, outputs, plan, entry, encoder, state):
    ids = plan.per_unit(plan.unit_values(outputs["ids"]).flat_values, 0)
    return {"unit_spans": plan.unit_spans.to_tensor(-1),
            "ids": ids.to_tensor(-1)}

  def read_served(self, outputs, encoder, context):
    spans = np.asarray(outputs["unit_spans"])
    units = [(context.text[s:e], int(s)) for s, e in spans if s >= 0]
    return encoder.decode(np.asarray(outputs["ids"])[:len(units)].tolist()), (
        units)

  def serve(self, result, rows, encoder, context):
    return {"kinds": list(result), "units": [u for u, _ in context.units]}


def _unit_kind(unit):
  if unit.isdigit():
    return "digit"
  return "latin" if unit.isascii() and unit.isalpha() else "other"


def _unit_kinds(split, data_dir_):
  for example in _corpus_or_texts("pd98_ner", "O")(split, data_dir_):
    yield example._replace(labels=[_unit_kind(u) for u in example.inputs])




def _sentiment_texts(split):
  path = data_file("sentiment/pos.txt")
  with open(path, encoding="utf-8") as f:
    lines = [l.strip() for l in f if l.strip()][:400]
  lines = lines[:300] if split == "train" else lines[300:]
  return path, lines


def _mentions_hotel(split, data_dir_):
  del data_dir_
  path, lines = _sentiment_texts(split)
  for number, text in enumerate(lines, 1):
    yield problems.Example(text, "yes" if "酒店" in text else "no", path,
                           number)


# Sequence labelling whose eval split is a list of texts chosen to stress
# decoding: Latin, digits, full-width, spaces, and texts over many windows.
DECODE_TEXTS = [
    "iPhone 12 Pro发布于2020年10月，售价５４９９元。ＡＢＣ　ｘ",
    "上海浦东开发与法制建设同步。",
    "我爱北京天安门。" * 14,
    "ABC公司CEO John Smith在1994年访问了北京和上海。" * 3,
    "好",
]


def _corpus_or_texts(reader_name, label):
  def read(split, data_dir_):
    if split == "train":
      yield from problems.get(reader_name).reader(split, data_dir())
      return
    for number, text in enumerate(DECODE_TEXTS, 1):
      chars = [u for u, _ in features.text_units(text, "char")]
      yield problems.Example(chars, [label] * len(chars), "decode.txt",
                             number)
  return read


@pytest.fixture(scope="module")
def registered():
  """The toy type and this file's problems, registered for this module's
  tests only (other test files see the library's registry)."""
  types.register(Mention())
  types.register(UnitKind())
  problems.problem("test_unit_kinds", "test_unit_kind")(_unit_kinds)
  problems.problem("test_mentions_hotel", "test_mention")(_mentions_hotel)
  problems.problem("test_decode_ner", "seq_tag", scheme="BIO")(
      _corpus_or_texts("pd98_ner", "O"))
  problems.problem("test_decode_cws", "seq_tag", scheme="BMES",
                   metric="word")(_corpus_or_texts("pd98_cws", "S"))
  yield
  for name in ("test_mentions_hotel", "test_decode_ner", "test_decode_cws",
               "test_unit_kinds"):
    problems.registry._PROBLEMS.pop(name)  # pylint: disable=protected-access
  for name in ("test_mention", "test_unit_kind"):
    types._TYPES.pop(name)  # pylint: disable=protected-access


def _write_stsb(root):
  """A small STS-B in GLUE's layout (train / dev / test TSVs)."""
  header = ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\t"
            "sentence1\tsentence2\tscore\n")
  rng = np.random.RandomState(0)
  words = ["猫", "狗", "在", "上", "下", "吃", "鱼", "肉", "跑", "跳"]
  rows = []
  for i in range(120):
    a = "".join(rng.choice(words, 6))
    overlap = rng.randint(0, 7)
    b = a[:overlap] + "".join(rng.choice(words, 6 - overlap))
    rows.append((a, b, 5.0 * overlap / 6))
  os.makedirs(os.path.join(root, "STS-B"))
  for name, part in (("train.tsv", rows[:90]), ("dev.tsv", rows[90:])):
    with open(os.path.join(root, "STS-B", name), "w", encoding="utf-8") as f:
      f.write(header)
      for k, (a, b, score) in enumerate(part):
        f.write("%d\tmain\tx\t2012\t%d\tnone\tnone\t%s\t%s\t%.3f\n" % (
            k, k, a, b, score))
  with open(os.path.join(root, "STS-B", "test.tsv"), "w",
            encoding="utf-8") as f:
    f.write(header.rsplit("\t", 1)[0] + "\n")
    f.write("0\tmain\tx\t2012\t0\tnone\tnone\t猫在上\t猫在下\n")
  return rows


CHAIN = ("test_mentions_hotel|test_decode_ner&test_decode_cws&test_unit_kinds|"
         "stsb")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, registered):  # pylint: disable=redefined-outer-name,unused-argument
  """One tiny run of the chain, trained, evaluated and exported in-process
  (the toy type is not known to a subprocess)."""
  root = tmp_path_factory.mktemp("types")
  _write_stsb(str(root / "data"))
  vocab = data_file("vocab/chinese_vocab.txt")
  options = {
      "problems": CHAIN, "data_dir": str(root / "data"),
      "cache_dir": str(root / "cache"),
      "bert_config": modeling.BertConfig(**TINY_BERT).to_dict(),
      "max_seq_length": 32, "max_examples": 300, "num_train_steps": 30,
      "train_batch_size": 16, "learning_rate": 2e-3,
      "settings": {"test_decode_cws": {"crf": False}},
      # Width normalisation on, so evaluation, the Predictor and the text
      # signature are compared with it (the other exports test it off).
      "normalize_width": True,
  }
  run = experiment.Experiment(str(root / "model"), options, vocab)
  run.train()
  results = run.evaluate()
  export_dir = serving.export(run, str(root / "model" / "export"))
  return run, results, export_dir


def test_a_type_defined_in_a_test_trains_evaluates_exports_and_predicts(
    trained):
  run, results, export_dir = trained
  assert set(results["test_mentions_hotel"]) >= {"accuracy", "loss"}
  assert 0 <= results["test_mentions_hotel"]["accuracy"] <= 1
  predictor = serving.Predictor(export_dir)
  texts = ["这家酒店很好", "房间干净"]
  served = predictor.predict(texts)
  for result in served:
    assert set(result["test_mentions_hotel"]) == {"mentions", "probability"}
    assert 0 <= result["test_mentions_hotel"]["probability"] <= 1
  manifest = json.load(open(os.path.join(export_dir, "assets.extra",
                                         serving.MANIFEST)))
  entry, = [p for p in manifest["problems"]
            if p["name"] == "test_mentions_hotel"]
  assert entry["type"] == "test_mention" and entry["inputs"] == "text"
  # Its predictions file, like every type's.
  out = run.predict("eval")
  assert len(out["test_mentions_hotel"]) == 100
  assert set(out["test_mentions_hotel"]) <= {"yes", "no"}
  # A head setting the type does not have is an error naming it.
  saved = run.run_config.settings
  run.run_config.settings = {"test_mentions_hotel": {"beam_size": 2}}
  try:
    with pytest.raises(ValueError, match=r"settings of test_mentions_hotel "
                       r"\(test_mention\): unknown beam_size \(it has: "
                       r"threshold\)"):
      run.head_settings("test_mentions_hotel")
  finally:
    run.run_config.settings = saved


def test_a_token_level_type_defined_in_a_test(trained):
  """The toy token-level type trains and evaluates with the run; its
  decoding of evaluation, the Predictor (native tokenizer, windows merged
  in Python) and the export's text signature (all in the graph) agree on
  texts over several windows, one kind per character."""
  run, results, export_dir = trained
  assert 0 <= results["test_unit_kinds"]["accuracy"] <= 1
  decoded, group = run._predict_group(["test_unit_kinds"], "eval")  # pylint: disable=protected-access
  assert [len(d) for d in decoded["test_unit_kinds"]] == [
      len(e.inputs) for e in group.examples["test_unit_kinds"]]
  model = tf.saved_model.load(export_dir)
  assert "serving_text:test_unit_kinds" in model.signatures
  served = serving.Predictor(export_dir, batch_size=3).predict(DECODE_TEXTS)
  in_graph = serving.Predictor(export_dir, text_signature=True).predict(
      DECODE_TEXTS)
  for index, text in enumerate(DECODE_TEXTS):
    units = [u for u, _ in features.text_units(text, "char")]
    result = served[index]["test_unit_kinds"]
    assert result == {"kinds": decoded["test_unit_kinds"][index],
                      "units": units}
    assert in_graph[index]["test_unit_kinds"] == result
  # Its predictions file, like every type's.
  out = run.predict("eval")
  assert out["test_unit_kinds"] == decoded["test_unit_kinds"]


def test_regression_on_stsb(trained):
  run, results, export_dir = trained
  stsb = results["stsb"]
  assert set(stsb) >= {"pearson", "spearman", "mse", "loss"}
  decoded, group = run._predict_group(["stsb"], "eval")  # pylint: disable=protected-access
  gold = [float(e.labels) for e in group.examples["stsb"]]
  values = decoded["stsb"]
  assert all(isinstance(v, float) for v in values)
  # The metrics against scipy's.
  assert stsb["pearson"] == pytest.approx(
      scipy.stats.pearsonr(gold, values)[0], abs=1e-6)
  assert stsb["spearman"] == pytest.approx(
      scipy.stats.spearmanr(gold, values)[0], abs=1e-6)
  assert stsb["mse"] == pytest.approx(np.mean((np.array(gold) -
                                               np.array(values)) ** 2))
  # The in-graph loss (the head's masked mean squared error over the split)
  # is the mean squared error of the decoded values.
  assert stsb["loss"] == pytest.approx(stsb["mse"], rel=1e-5)
  served = serving.Predictor(export_dir).predict(["猫在上"])[0]["stsb"]
  assert set(served) == {"value"} and isinstance(served["value"], float)
  # Served as pairs: the Predictor (native tokenizer) and the text
  # signature (text, text_b) give evaluation's values on the eval pairs.
  pairs = [e.inputs for e in group.examples["stsb"]]
  assert all(isinstance(p, tuple) and p[1] for p in pairs)
  texts, texts_b = [a for a, _ in pairs], [b for _, b in pairs]
  for predictor in (serving.Predictor(export_dir, batch_size=7),
                    serving.Predictor(export_dir, text_signature=True)):
    got = [r["stsb"]["value"] for r in predictor.predict(texts, texts_b)]
    assert got == pytest.approx(values, abs=1e-5)
    # "" reads the text alone, as no text_b does.
    alone = predictor.predict(texts[:3], ["", "", ""])
    assert alone == predictor.predict(texts[:3])
    with pytest.raises(ValueError, match=r"texts_b has 1 texts, texts 2"):
      predictor.predict(texts[:2], texts_b[:1])
  entry, = [e for e in predictor.manifest["problems"] if e["name"] == "stsb"]
  assert entry["inputs"] == "pair"
  # The pair rows are the training records' rows: [CLS] a [SEP] b [SEP].
  tokenizer = predictor.tokenizer
  (ids, segments, _, _, _), = predictor.encode(texts[:1], "pair",
                                               texts_b[:1])[0]
  ids_a, ids_b = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(t))
                  for t in (texts[0], texts_b[0])]
  cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
  assert ids.tolist() == [cls_id] + ids_a + [sep_id] + ids_b + [sep_id]
  assert segments.tolist() == [0] * (len(ids_a) + 2) + [1] * (len(ids_b) + 1)
  # The text signature of the pair problem takes text_b and returns its
  # tokens; a text_b batch of another size is a clear error.
  model = tf.saved_model.load(export_dir)
  signature = model.signatures["serving_text:stsb"]
  assert sorted(signature.structured_input_signature[1]) == ["text",
                                                             "text_b"]
  out = signature(text=tf.constant(["猫在上"]), text_b=tf.constant(["狗"]))
  assert out["text_b_token_ids"].numpy().tolist() == [
      predictor.tokenizer.convert_tokens_to_ids(["狗"])]
  assert out["text_b_token_spans"].numpy().tolist() == [[[0, 1]]]
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="text_b must hold one text per text"):
    signature(text=tf.constant(["猫", "狗"]), text_b=tf.constant(["狗"]))
  # Predicted like cls: the predict split (pairs) into predictions/.
  run.predict()
  with open(os.path.join(run.output_dir, "predictions", "stsb.jsonl"),
            encoding="utf-8") as f:
    record, = [json.loads(l) for l in f]
  assert record["input"] == ["猫在上", "猫在下"]
  assert isinstance(record["prediction"], float)


def test_stsb_reader_and_bad_scores(tmp_path):
  rows = _write_stsb(str(tmp_path))
  train = problems.read("stsb", "train", str(tmp_path))
  assert len(train) == 90
  assert train[5].inputs == rows[5][:2] and train[5].line == 7
  assert float(train[5].labels) == pytest.approx(rows[5][2], abs=1e-3)
  assert problems.read("stsb", "predict", str(tmp_path))[0].inputs == (
      "猫在上", "猫在下")
  with open(tmp_path / "STS-B" / "dev.tsv", "a", encoding="utf-8") as f:
    f.write("9\tmain\tx\t2012\t9\tnone\tnone\ta\tb\tnan\n")
  with pytest.raises(problems.DataError, match=r"problem stsb, file .*dev.tsv,"
                     r" line 32: regression target must be a finite number, "
                     r"got 'nan'"):
    problems.read("stsb", "eval", str(tmp_path))


def test_pearson_and_spearman_against_scipy():
  rng = np.random.RandomState(3)
  gold = rng.randint(0, 5, 200).astype(float)  # many ties
  predicted = gold + rng.normal(size=200)
  assert metrics.pearson(list(gold), list(predicted)) == pytest.approx(
      scipy.stats.pearsonr(gold, predicted)[0], abs=1e-9)
  assert metrics.spearman(list(gold), list(predicted)) == pytest.approx(
      scipy.stats.spearmanr(gold, predicted)[0], abs=1e-9)
  assert metrics.pearson([1.0, 1.0], [0.0, 2.0]) == 0.0  # constant side


def test_evaluation_and_the_predictor_decode_alike(trained):
  """The same exported model and texts: evaluation's decoding (Estimator
  predictions, whole-text Viterbi from the checkpoint) equals the
  Predictor's (SavedModel, native Viterbi), across windows, for the CRF
  problem and the softmax one."""
  run, _, export_dir = trained
  decoded, group = run._predict_group(  # pylint: disable=protected-access
      ["test_decode_ner", "test_decode_cws"], "eval")
  served = serving.Predictor(export_dir, batch_size=3).predict(DECODE_TEXTS)
  assert max(len(t) for t in DECODE_TEXTS) > 3 * 30  # several windows
  for index, text in enumerate(DECODE_TEXTS):
    units = features.text_units(text, "char")
    assert group.examples["test_decode_ner"][index].inputs == [
        u for u, _ in units]
    assert served[index]["test_decode_ner"]["tags"] == decoded[
        "test_decode_ner"][index]
    cws = decoded["test_decode_cws"][index]
    assert served[index]["test_decode_cws"]["words"] == (
        metrics.words_from_tags([u for u, _ in units], cws))
  # The text signature tokenizes in the graph with the same width
  # normalisation, recorded in the manifest.
  in_graph = serving.Predictor(export_dir, text_signature=True)
  assert in_graph.manifest["normalize_width"] is True
  assert in_graph.predict(DECODE_TEXTS) == serving.Predictor(
      export_dir).predict(DECODE_TEXTS)
  # Both kinds of head are covered: one CRF, one softmax.
  entries = {e["name"]: e for e in serving.Predictor(
      export_dir).manifest["problems"]}
  assert entries["test_decode_ner"]["crf"] and not entries[
      "test_decode_cws"]["crf"]


def test_fallback_label_is_one_rule():
  assert features.fallback_label(["B-LOC", "I-LOC", "O"]) == 2
  assert features.fallback_label(["B", "E", "M", "S"]) == 3  # segmentation
  assert features.fallback_label(["NN", "VV"]) == 0
  # A unit without a token (U+FFFD, which BERT deletes) gets it, in
  # evaluation and serving alike (both decode through types.seq_tag).
  tokenizer = tokenization.FullTokenizer(
      data_file("vocab/chinese_vocab.txt"))
  alignment, = features.align_units(tokenizer, [["上", "\ufffd", "海"]])
  assert alignment.first_token.tolist() == [0, -1, 1]


def test_unit_kind_of_training_data():
  assert features.unit_kind([list("上海"), list("北京")]) == "char"
  assert features.unit_kind([["New", "York"], ["a"]]) == "word"
  # A stray multi-character unit (Weibo's "\ufffd\ufffd") keeps characters.
  assert features.unit_kind([list("上海" * 600) + ["\ufffd\ufffd"]]) == "char"


def test_a_type_owns_its_learning_rate_multipliers():
  """seq_tag's CRF transitions learn faster when asked; the run only
  collects what each type says (no pattern of a type's variables
  elsewhere)."""
  import re  # pylint: disable=g-import-not-at-top
  seq_tag = types.get("seq_tag")
  got = seq_tag.lr_multipliers("pd98.cws", {"transitions_lr_multiplier": 100})
  assert got == {"^pd98\\.cws/transitions$": 100}
  pattern, = got
  assert re.match(pattern, "pd98.cws/transitions")
  assert not re.match(pattern, "pd98xcws/transitions")
  assert seq_tag.lr_multipliers("a", {"transitions_lr_multiplier": None}) == {}
  assert types.get("cls").lr_multipliers("a", {}) == {}
  import bert_mtl.experiment  # pylint: disable=g-import-not-at-top
  source = open(bert_mtl.experiment.__file__).read()
  assert "transitions" not in source
