"""Nothing lost, nothing silently wrong: a run directory is never damaged by
a later command, subsets are never biased, damaged caches and corpora are
reported (and caches rebuilt), bad settings fail before any work with one
readable line, and long texts are linear."""

import json
import os
import random
import shutil

import numpy as np
import pytest

from bert_mtl import problems, tokenization
from bert_mtl.data import cache, dataset, features
from conftest import data_dir, data_file
from run_helpers import run_multitask, tiny_config


# ------------------------------------------------------------ corpora


def _copy(tmp_path, *relatives):
  """A data directory holding copies of some real corpus files."""
  root = tmp_path / "data"
  for relative in relatives:
    os.makedirs(root / os.path.dirname(relative), exist_ok=True)
    shutil.copyfile(data_file(relative), root / relative)
  return root


def _fit(name, root):
  tokenizer = tokenization.FullTokenizer(data_file("vocab/chinese_vocab.txt"))
  config = dataset.make_config(tokenizer, str(root))
  return dataset.fit_label_encoders([[name]], config)


def test_an_empty_corpus_file_is_an_error_naming_it(tmp_path):
  root = _copy(tmp_path, "sentiment/pos.txt", "sentiment/neg.txt")
  (root / "sentiment" / "neg.txt").write_text("", encoding="utf-8")
  with pytest.raises(problems.DataError) as error:
    problems.read("chn_sentiment", "train", str(root))
  assert str(error.value) == "problem chn_sentiment, file %s: the file is empty" % (
      root / "sentiment" / "neg.txt")


def _one_class(split, data_dir):
  """The reviews of pos.txt only, as a cls problem: one class."""
  path = os.path.join(data_dir, "sentiment", "pos.txt")
  for line, text in problems.corpora.split_lines(path, split):
    yield problems.Example(text.strip(), "pos", path, line)


def test_a_one_class_training_split_is_an_error(tmp_path, monkeypatch):
  from bert_mtl.problems import registry  # pylint: disable=g-import-not-at-top
  # Registered for this test only (the registry is process-wide).
  monkeypatch.setitem(registry._PROBLEMS, "test_one_class", registry.Problem(  # pylint: disable=protected-access
      "test_one_class", "cls", _one_class, "sentiment/pos.txt", None,
      "accuracy"))
  root = _copy(tmp_path, "sentiment/pos.txt")
  with pytest.raises(problems.DataError) as error:
    _fit("test_one_class", root)
  assert str(error.value) == (
      "problem test_one_class, file %s: every training example has label "
      "'pos'; a classifier needs at least two classes (is a corpus file "
      "empty or missing?)" % (root / "sentiment" / "pos.txt"))


def test_a_corpus_cut_inside_a_tag_is_an_error_naming_the_line(tmp_path):
  root = _copy(tmp_path, "msra_ner/msra_train.txt", "msra_ner/msra_test.txt")
  path = root / "msra_ner" / "msra_train.txt"
  data = path.read_bytes()
  cut = data.index(b" B-LOC", len(data) * 6 // 10) + len(b" B-L")
  path.write_bytes(data[:cut])
  line = data[:cut].count(b"\n") + 1
  with pytest.raises(problems.DataError) as error:
    _fit("msra_ner", root)
  assert str(error.value) == (
      "problem msra_ner, file %s, line %d: label 'B-L' does not fit the "
      "BMES tagging scheme: type 'L' begins (B) but never ends (E) in the "
      "training split" % (path, line))


def test_an_empty_tag_names_its_own_line(tmp_path):
  root = _copy(tmp_path, "msra_ner/msra_train.txt")
  path = root / "msra_ner" / "msra_train.txt"
  lines = path.read_text(encoding="utf-8").split("\n")
  lines[6] = lines[6].split(" ")[0] + " "  # inside the first sentence
  path.write_text("\n".join(lines), encoding="utf-8")
  with pytest.raises(problems.DataError, match="line 7: malformed line"):
    problems.read("msra_ner", "train", str(root))


def test_an_unseen_eval_label_names_its_own_line(tmp_path):
  root = _copy(tmp_path, "msra_ner/msra_train.txt", "msra_ner/msra_test.txt")
  path = root / "msra_ner" / "msra_test.txt"
  lines = path.read_text(encoding="utf-8").split("\n")
  lines[9] = lines[9].split(" ")[0] + " S-FOO"
  path.write_text("\n".join(lines), encoding="utf-8")
  tokenizer = tokenization.FullTokenizer(data_file("vocab/chinese_vocab.txt"))
  config = dataset.make_config(tokenizer, str(root), 32,
                               cache_dir=str(tmp_path / "cache"),
                               max_examples=50)
  encoders = dataset.fit_label_encoders([["msra_ner"]], config)
  group = dataset.GroupFeatures(["msra_ner"], "eval", config, encoders)
  group.examples = {"msra_ner": problems.read("msra_ner", "eval",
                                              str(root))[:50]}
  with pytest.raises(problems.DataError, match="file %s, line 10: label "
                     "'S-FOO' was not in the training split" % path):
    list(group.records())


def test_a_byte_order_mark_is_not_a_unit(tmp_path):
  root = _copy(tmp_path, "msra_ner/msra_train.txt")
  path = root / "msra_ner" / "msra_train.txt"
  plain = problems.read("msra_ner", "train", str(root))[:3]
  path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
  marked = problems.read("msra_ner", "train", str(root))[:3]
  assert marked == plain


# ------------------------------------------------------------ subsets


def test_max_examples_draws_a_seeded_stratified_subset():
  tokenizer = tokenization.FullTokenizer(data_file("vocab/chinese_vocab.txt"))
  config = dataset.make_config(tokenizer, data_dir(), max_examples=500)
  whole = problems.read("chn_sentiment", "train", data_dir())
  chosen = dataset.read_examples(["chn_sentiment"], "train", config,
                                 {})["chn_sentiment"]
  again = dataset.read_examples(["chn_sentiment"], "train", config,
                                {})["chn_sentiment"]
  assert len(chosen) == 500 and chosen == again
  share = sum(e.labels == "pos" for e in whole) / len(whole)
  got = sum(e.labels == "pos" for e in chosen) / len(chosen)
  assert abs(got - share) <= 1 / 500  # each class keeps its share
  positions = {(e.path, e.line): i for i, e in enumerate(whole)}
  order = [positions[(e.path, e.line)] for e in chosen]
  assert order == sorted(order)  # file order kept
  assert order[-1] > 14894  # not a prefix (the first negative is there)


def test_subset_edge_cases():
  examples = [problems.Example(str(i), "a" if i < 95 else "b")
              for i in range(100)]
  picked = dataset.subset(examples, 10, seed=1, stratify=True)
  assert [e.labels for e in picked].count("b") == 1  # rare class kept
  assert dataset.subset(examples, 100, seed=1) == examples
  assert dataset.subset(examples, None, seed=1) == examples
  two = dataset.subset(examples, 2, seed=3, stratify=True)
  assert sorted(e.labels for e in two) == ["a", "b"]


def test_an_and_group_subset_is_the_same_sentences():
  tokenizer = tokenization.FullTokenizer(data_file("vocab/chinese_vocab.txt"))
  config = dataset.make_config(tokenizer, data_dir(), max_examples=40)
  group = dataset.read_examples(["pd98_ner", "pd98_cws"], "train", config,
                                {})
  assert [e.inputs for e in group["pd98_ner"]] == [
      e.inputs for e in group["pd98_cws"]]
  assert [(e.line, e.inputs) for e in group["pd98_ner"]] != [
      (e.line, e.inputs) for e in problems.read("pd98_ner", "train",
                                                data_dir())[:40]]


# ------------------------------------------------------------ the cache


@pytest.mark.parametrize("damage", ["empty_shard", "truncated_shard",
                                    "garbage_shard", "garbage_meta"])
def test_a_damaged_cache_entry_is_reported_and_rebuilt(tmp_path, damage,
                                                       caplog):
  tokenizer = tokenization.FullTokenizer(data_file("vocab/chinese_vocab.txt"))
  config = dataset.make_config(tokenizer, data_dir(), 32,
                               cache_dir=str(tmp_path), max_examples=58)
  encoders = dataset.fit_label_encoders([["chn_sentiment"]], config)

  def build():
    return dataset.GroupFeatures(["chn_sentiment"], "train", config,
                                 encoders).build()

  shards, meta = build()
  originals = [open(s, "rb").read() for s in shards]
  directory = os.path.dirname(shards[0])
  victim = shards[1]
  if damage == "empty_shard":
    open(victim, "wb").close()
  elif damage == "truncated_shard":
    open(victim, "wb").write(originals[1][:len(originals[1]) // 2])
  elif damage == "garbage_shard":
    open(victim, "wb").write(bytes(random.Random(0).getrandbits(8)
                                   for _ in range(len(originals[1]))))
  else:
    open(os.path.join(directory, cache.META), "w").write("{not json")
  caplog.set_level("WARNING")
  rebuilt, rebuilt_meta = build()
  assert "feature cache entry %s is damaged" % directory in caplog.text
  assert rebuilt == shards and rebuilt_meta["count"] == meta["count"] == 58
  assert [open(s, "rb").read() for s in rebuilt] == originals
  caplog.clear()
  build()
  assert "damaged" not in caplog.text  # trusted again once rebuilt


# ------------------------------------------------------- long texts


def test_window_choice_is_the_definition(tmp_path):
  def reference(position, spans):
    """The covering window with the most context on its shorter side,
    the earliest among equals."""
    covering = [i for i, (start, end) in enumerate(spans)
                if start <= position < end]
    if not covering:
      return None
    return max(covering, key=lambda i: (min(position - spans[i].start,
                                             spans[i].end - 1 - position),
                                         -i))
  rng = random.Random(0)
  for _ in range(300):
    n = rng.randint(0, 300)
    length = rng.randint(4, 40)
    spans = features.window_spans(n, length, rng.choice(
        [None, 1, 2, length - 2]))
    positions = list(range(-1, n + 1))
    assert features.best_windows(positions, spans) == [
        reference(p, spans) for p in positions]


# --------------------------------------------- the run directory (CLI)


def _sentiment_root(tmp_path):
  root = tmp_path / "data" / "sentiment"
  os.makedirs(root)
  for label in ("pos", "neg"):
    with open(data_file("sentiment/%s.txt" % label), encoding="utf-8") as f:
      lines = [l for l in f if l.strip()][:60]
    (root / (label + ".txt")).write_text("".join(lines), encoding="utf-8")
  return str(tmp_path / "data")


def _train(tmp_path, data, *extra, check=True):
  args = ["--problems=chn_sentiment", "--data_dir=" + data,
          "--cache_dir=%s" % (tmp_path / "cache"),
          "--bert_config_file=" + tiny_config(tmp_path),
          "--output_dir=%s" % (tmp_path / "model"), "--max_seq_length=32",
          "--train_batch_size=8", "--learning_rate=1e-3",
          "--num_train_steps=2", "--do_train"]
  overridden = {a.split("=")[0] for a in extra}
  args = [a for a in args if a.split("=")[0] not in overridden]
  return run_multitask(args + list(extra), check=check)


def _snapshot(directory):
  return {name: open(os.path.join(directory, name), "rb").read()
          for name in ("run.json", "bert_config.json", "vocab.txt",
                       os.path.join("labels", "chn_sentiment.json"))}


def _one_line_error(process, message):
  assert process.returncode != 0
  assert "Traceback" not in process.stderr, process.stderr[-3000:]
  ours = [l for l in process.stderr.splitlines()
          if l.startswith("run_multitask.py: error: ")]
  assert len(ours) == 1 and message in ours[0], process.stderr[-3000:]
  assert "bounding the padding buckets" not in process.stderr  # no flag help


def test_a_rerun_never_damages_the_run_directory(tmp_path):
  data = _sentiment_root(tmp_path)
  model = str(tmp_path / "model")
  first = _train(tmp_path, data)
  # The terminal shows our lines, not TensorFlow's deprecation notices.
  assert "step 2/2 (100%)" in first.stderr
  assert "Instructions for updating" not in first.stderr + first.stdout
  assert "TensorFlow Addons (TFA) has ended development" not in first.stderr
  # ...nor the CUDA plug-in registration errors of TensorFlow's import.
  assert "Unable to register" not in first.stderr, first.stderr[:2000]
  assert "Using config:" not in first.stderr  # the Estimator's config dump
  before = _snapshot(model)
  cases = [
      (("--problems=msra_ner",), 'problems: "chn_sentiment" there, '
       '"msra_ner" asked'),
      (("--bert_config_file=" + tiny_config(tmp_path / "data",
                                            hidden_size=64),),
       "bert_config.hidden_size: 32 there, 64 asked"),
      (("--max_seq_length=48",), "max_seq_length: 32 there, 48 asked"),
      (("--nodo_lower_case",), "do_lower_case: true there, false asked"),
      (("--normalize_width",), "normalize_width: false there, true asked"),
  ]
  for flags, message in cases:
    process = _train(tmp_path, data, *flags, check=False)
    _one_line_error(process, message)
    assert "nothing was written; use a new --output_dir" in process.stderr
    assert _snapshot(model) == before
  # Settings that may change on resume are recorded, not overwritten.
  process = _train(tmp_path, data, "--learning_rate=5e-4",
                   "--num_train_steps=3", "--verbosity=1")
  assert "Instructions for updating" in process.stderr  # all of it again
  record = json.load(open(os.path.join(model, "run.json")))
  assert record["learning_rate"] == 1e-3 and record["num_train_steps"] == 2
  assert [h["changed"] for h in record["history"]] == [
      {"learning_rate": 5e-4, "num_train_steps": 3}]
  assert os.path.exists(os.path.join(model, "model.ckpt-3.index"))
  # Evaluation honours where the data is now, refuses what it cannot use.
  moved = str(tmp_path / "moved")
  shutil.copytree(data, moved)
  evaluation = run_multitask(["--output_dir=" + model, "--do_eval",
                              "--data_dir=" + moved])
  assert "chn_sentiment" in evaluation.stdout
  _one_line_error(run_multitask(["--output_dir=" + model, "--do_eval",
                                 "--max_seq_length=64"], check=False),
                  "--max_seq_length=64: the run in %s was trained with "
                  "max_seq_length=32" % model)
  assert json.load(open(os.path.join(model, "run.json"))) == record
  # A directory of someone else's checkpoints is not trained into.
  foreign = tmp_path / "foreign"
  os.makedirs(foreign)
  for name in os.listdir(model):
    if name.startswith(("model.ckpt-3", "checkpoint")):
      shutil.copyfile(os.path.join(model, name), foreign / name)
  _one_line_error(_train(tmp_path, data, "--output_dir=%s" % foreign,
                         check=False),
                  "holds checkpoints but no run.json: it is not a bert_mtl "
                  "run")


def test_project_errors_are_one_line(tmp_path):
  data = _sentiment_root(tmp_path)
  os.remove(os.path.join(data, "sentiment", "neg.txt"))
  open(os.path.join(data, "sentiment", "neg.txt"), "w").close()
  _one_line_error(_train(tmp_path, data, check=False),
                  "neg.txt: the file is empty")
  assert not os.path.exists(tmp_path / "model" / "run.json")
  # --verbosity=1 brings the traceback back.
  process = _train(tmp_path, data, "--verbosity=1", check=False)
  assert process.returncode != 0 and "Traceback" in process.stderr


def test_a_checkpoint_of_other_shapes_is_one_line(tmp_path):
  data = _sentiment_root(tmp_path)
  _train(tmp_path, data)
  other = tmp_path / "other"
  os.makedirs(other)
  process = _train(tmp_path, data, "--output_dir=%s" % (other / "model"),
                   "--bert_config_file=" + tiny_config(other, hidden_size=64),
                   "--init_checkpoint=%s" % (tmp_path / "model" /
                                              "model.ckpt-2"), check=False)
  _one_line_error(process, "has shape [21128, 32] in %s but the model's "
                  "bert/embeddings/word_embeddings is [21128, 64]" % (
                      tmp_path / "model" / "model.ckpt-2"))


def test_the_best_export_keeps_the_lowest_loss_across_resumes(tmp_path):
  """BestExport exports an evaluation only when its loss is the lowest so
  far, keeps only the newest export, and a new exporter (a resumed run)
  reads the best loss back instead of exporting a worse checkpoint."""
  from bert_mtl import experiment  # pylint: disable=g-import-not-at-top
  exported = []

  def export(checkpoint_path, export_dir):
    path = os.path.join(export_dir, str(len(exported) + 1000))
    os.makedirs(path)
    exported.append(os.path.basename(checkpoint_path))
    return path

  base = str(tmp_path / "export" / "best")
  best = experiment.BestExport(export)
  for step, loss in [(1, 3.0), (2, 2.0), (3, 2.5), (4, 2.0)]:
    best.export(None, base, str(tmp_path / ("model.ckpt-%d" % step)),
                {"loss": np.float32(loss)}, False)
  assert exported == ["model.ckpt-1", "model.ckpt-2"]
  assert sorted(os.listdir(base)) == ["1001", "best.json"]
  assert json.load(open(os.path.join(base, "best.json"))) == {
      "loss": 2.0, "checkpoint": "model.ckpt-2", "export": "1001"}
  resumed = experiment.BestExport(export)
  assert resumed.export(None, base, "model.ckpt-5", {"loss": 2.2},
                        False) is None
  assert resumed.export(None, base, "model.ckpt-6", {"loss": 1.5},
                        False).endswith("1002")
  assert sorted(os.listdir(base)) == ["1002", "best.json"]
