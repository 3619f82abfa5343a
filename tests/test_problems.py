"""Problems: chain grammar, sampling, label encoders, readers (real corpora
and small files written here), and clear errors for bad data."""

import os

import numpy as np
import pytest

from bert_mtl import problems
from bert_mtl.problems import chain, corpora
from conftest import data_dir, data_file


# ----------------------------------------------------------------- chain

def test_parse_chain():
  assert chain.parse("weibo_ner&weibo_cws|msra_ner") == [
      ["weibo_ner", "weibo_cws"], ["msra_ner"]]
  assert chain.parse(" pd98_cws & pd98_pos |chn_sentiment ") == [
      ["pd98_cws", "pd98_pos"], ["chn_sentiment"]]


@pytest.mark.parametrize("text,message", [
    ("", "empty"), ("  ", "empty"),
    ("weibo_ner&&weibo_cws", "empty problem name"),
    ("weibo_ner|", "empty problem name"),
    ("nope", "unknown problem 'nope'; registered problems: weibo_ner"),
    ("msra_ner|msra_ner", "appears twice"),
])
def test_bad_chains(text, message):
  with pytest.raises(ValueError, match=message):
    chain.parse(text)


def test_and_requires_identical_inputs():
  a = [problems.Example(list("ab"), ["O", "O"], "f", 1),
       problems.Example(list("cd"), ["O", "O"], "f", 3)]
  b = [problems.Example(list("ab"), ["S", "S"], "g", 1),
       problems.Example(list("cx"), ["S", "S"], "g", 7)]
  chain.check_same_inputs(["p", "q"], {"p": a, "q": a})
  with pytest.raises(problems.DataError,
                     match=r"problem q, file g, line 7: example 1 differs"):
    chain.check_same_inputs(["p", "q"], {"p": a, "q": b})
  with pytest.raises(problems.DataError, match="1 examples but problem p has 2"):
    chain.check_same_inputs(["p", "q"], {"p": a, "q": a[:1]})


@pytest.mark.parametrize("group,needs", [
    (["weibo_ner", "weibo_cws", "weibo_ner_nam"],
     "weibo_ner/weiboNER_2nd_conll.test"),
    (["pd98_cws", "pd98_pos", "pd98_ner"], "pd98/pos_199801.txt")])
def test_real_and_groups_share_inputs(group, needs):
  data_file(needs)  # Weibo is not on the package index: skips without it
  examples = {n: problems.read(n, "eval", data_dir()) for n in group}
  chain.check_same_inputs(group, examples)


# -------------------------------------------------------------- sampling

def test_group_probabilities():
  sizes = [100, 400]
  np.testing.assert_allclose(chain.group_probabilities(sizes, "uniform"),
                             [0.5, 0.5])
  np.testing.assert_allclose(chain.group_probabilities(sizes, "proportional"),
                             [0.2, 0.8])
  np.testing.assert_allclose(
      chain.group_probabilities(sizes, "temperature", temperature=2.0),
      [10 / 30, 20 / 30])
  np.testing.assert_allclose(
      chain.group_probabilities(sizes, "annealed", progress=0.0), [0.2, 0.8])
  np.testing.assert_allclose(  # alpha = 0.2 at the end
      chain.group_probabilities(sizes, "annealed", progress=1.0),
      np.array([100, 400]) ** 0.2 / (100 ** 0.2 + 400 ** 0.2))
  np.testing.assert_allclose(
      chain.group_probabilities(sizes, "weights", weights=[3, 1]), [0.75, 0.25])


@pytest.mark.parametrize("kwargs,message", [
    (dict(strategy="nope"), "unknown sampling strategy"),
    (dict(strategy="weights"), "one weight per group"),
    (dict(strategy="weights", weights=[0, 0]), "not all 0"),
    (dict(strategy="temperature", temperature=0), "positive"),
])
def test_bad_sampling_settings(kwargs, message):
  with pytest.raises(ValueError, match=message):
    chain.group_probabilities([1, 2], **kwargs)
  with pytest.raises(ValueError, match="every group needs examples"):
    chain.group_probabilities([1, 0])


def test_sampling_is_deterministic_and_follows_probabilities():
  a = chain.sample_groups([100, 300], 20000, seed=7)
  b = chain.sample_groups([100, 300], 20000, seed=7)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, chain.sample_groups([100, 300], 20000, seed=8))
  assert abs((a == 1).mean() - 0.75) < 0.02
  annealed = chain.sample_groups([100, 10000], 40000, seed=1,
                                 strategy="annealed")
  early, late = (annealed[:4000] == 0).mean(), (annealed[-4000:] == 0).mean()
  assert early < 0.03 and late > 0.2  # the small group gains weight


# ---------------------------------------------------------- label encoder

def test_label_encoder(tmp_path):
  enc = problems.LabelEncoder.fit([["B-PER", "O"], ["O", "I-PER"]], "ner")
  assert enc.labels == ["B-PER", "I-PER", "O"]  # no [PAD] class
  assert enc.encode(["O", "B-PER"]) == [2, 0]
  assert enc.decode([1]) == ["I-PER"]
  path = str(tmp_path / "ner.json")
  enc.save(path)
  assert problems.LabelEncoder.load(path).labels == enc.labels
  assert '"B-PER"' in open(path, encoding="utf-8").read()
  with pytest.raises(problems.DataError,
                     match=r"problem ner, file x.txt, line 9: label 'B-LOC' "
                     "was not in the training split"):
    enc.encode(["B-LOC"], "x.txt", 9)
  with pytest.raises(problems.DataError, match="no labels"):
    problems.LabelEncoder.fit([[]], "empty")


# ------------------------------------------------------ real corpora

def _root():
  return data_dir()


# Files of the problems that are not on the package index (a fresh
# machine's tests skip them; the others are fetched).
NOT_ON_THE_INDEX = {"weibo_ner": "weibo_ner/weiboNER_2nd_conll.train",
                    "pku_cws": "sighan2005/pku_test_gold.utf8"}


@pytest.mark.parametrize("name,split,count", [
    ("weibo_ner", "train", 1350), ("weibo_ner", "eval", 270),
    ("msra_ner", "train", 50289), ("msra_ner", "eval", 5000),
    ("pku_cws", "eval", 1944), ("chn_sentiment", "train", 31612),
    ("chn_sentiment", "eval", 3511)])
def test_real_corpus_sizes(name, split, count):
  if name in NOT_ON_THE_INDEX:
    data_file(NOT_ON_THE_INDEX[name])
  assert len(problems.read(name, split, _root())) == count


def test_weibo_labels_and_segmentation():
  data_file(NOT_ON_THE_INDEX["weibo_ner"])
  examples = problems.read("weibo_ner", "train", _root())
  tags = {t for e in examples for t in e.labels}
  assert len(tags) == 17 and "B-PER.NOM" in tags  # 8 types x B/I + O
  nam = problems.read("weibo_ner_nam", "train", _root())
  assert not any(t.endswith(".NOM") for e in nam for t in e.labels)
  cws = problems.read("weibo_cws", "train", _root())
  for example in cws:  # a valid BMES sequence for every sentence
    text = "".join(t for t in example.labels)
    assert text[0] in "BS" and text[-1] in "ES"


def test_pd98_segmentation_agrees_with_the_other_file():
  """pd98_cws derives BMES from pos_199801.txt's words; seg_bmes.txt holds
  the same paragraphs tagged independently."""
  root = _root()
  seg_lines = [l.split() for l in open(data_file("pd98/seg_bmes.txt"),
                                        encoding="utf-8").read().split("\n")
               if l.strip()]
  seg_eval = [line for i, line in enumerate(seg_lines) if i % 10 == 9]
  want_chars = [t.rsplit("/", 1)[0] for line in seg_eval for t in line]
  want_tags = [t.rsplit("/", 1)[1].upper() for line in seg_eval for t in line]
  examples = problems.read("pd98_cws", "eval", root)
  got_chars = [c for e in examples for c in e.inputs]
  got_tags = [t for e in examples for t in e.labels]
  assert "".join(got_chars) == "".join(want_chars)
  mismatch = sum(a != b for a, b in zip(got_tags, want_tags))
  assert mismatch / len(want_tags) < 0.001, mismatch


def test_pd98_ner_and_pos():
  examples = problems.read("pd98_ner", "eval", _root())
  entities = sum(t.startswith("B-") for e in examples for t in e.labels)
  assert entities > 3000
  # 江/nr 泽民/nr is one person.
  for e in examples:
    text = "".join(e.inputs)
    if "江泽民" in text:
      k = text.index("江泽民")
      assert e.labels[k:k + 3] == ["B-PER", "I-PER", "I-PER"]
      break
  else:
    pytest.fail("no 江泽民 in the eval split")
  pos = problems.read("pd98_pos", "eval", _root())
  assert all(t.split("-")[0] in "BMES" for e in pos[:100] for t in e.labels)


def test_msra_derived_problems():
  root = _root()
  ner = problems.read("msra_ner", "eval", root)
  types_ = problems.read("msra_entity_types", "eval", root)
  text = problems.read("msra_entities_text", "eval", root)
  for a, b, c in zip(ner[:500], types_, text):
    spans = corpora.bmes_entities(a.labels)
    assert b.labels == sorted({k for _, _, k in spans})
    assert c.labels == "，".join("".join(a.inputs[s:e]) for s, e, _ in spans)


def test_predict_split_reads_inputs():
  examples = problems.read("msra_ner", "predict", _root())
  assert len(examples) == 5000


# --------------------------------------------------- bad data, small files

def write(path, text, encoding="utf-8"):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(text.encode(encoding) if isinstance(text, str) else text)


def test_malformed_line_names_file_and_line(tmp_path):
  write(str(tmp_path / "msra_ner/msra_train.txt"),
        "中 B-LOC\r\n国 E-LOC\r\n\r\n好\r\n")
  with pytest.raises(problems.DataError, match=r"problem msra_ner, file "
                     ".*msra_train.txt, line 4: malformed line"):
    problems.read("msra_ner", "train", str(tmp_path))


def test_non_utf8_names_the_line(tmp_path):
  write(str(tmp_path / "sentiment/pos.txt"), b"good\n\xff\xfebad\n")
  write(str(tmp_path / "sentiment/neg.txt"), "ok\n")
  with pytest.raises(problems.DataError, match=r"problem chn_sentiment, file "
                     ".*pos.txt, line 2: not valid UTF-8"):
    problems.read("chn_sentiment", "train", str(tmp_path))


def test_empty_split_and_missing_files(tmp_path):
  write(str(tmp_path / "msra_ner/msra_test.txt"), "\r\n\r\n")
  with pytest.raises(problems.DataError, match="eval split is empty"):
    problems.read("msra_ner", "eval", str(tmp_path))
  with pytest.raises(problems.DataError, match="not found"):
    problems.read("weibo_ner", "train", str(tmp_path))
  with pytest.raises(problems.DataError, match="SIGHAN gold files are test"):
    problems.read("pku_cws", "train", str(tmp_path))


@pytest.fixture
def unregister_after():
  """Names registered by a test leave the registry with it (other tests in
  the process list the registered problems)."""
  before = set(problems.names())
  yield
  for name in set(problems.names()) - before:
    problems.registry._PROBLEMS.pop(name)  # pylint: disable=protected-access


@pytest.mark.usefixtures("unregister_after")
def test_label_count_mismatch_is_rejected(tmp_path):
  @problems.problem("test_misaligned", "seq_tag")
  def _misaligned(split, data_dir):
    del split, data_dir
    yield problems.Example(list("abc"), ["O", "O"], "m.txt", 12)
  with pytest.raises(problems.DataError, match=r"problem test_misaligned, "
                     "file m.txt, line 12: seq_tag needs one label per input "
                     "unit: 3 units, 2 labels"):
    problems.read("test_misaligned", "train", str(tmp_path))
  with pytest.raises(ValueError, match="registered twice"):
    problems.problem("test_misaligned", "seq_tag")(_misaligned)
  with pytest.raises(ValueError, match="unknown problem type"):
    problems.problem("x", "ranking")


def test_glue_readers_on_original_tsv_layouts(tmp_path):
  write(str(tmp_path / "MRPC/train.tsv"),
        "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        "1\t1\t2\tHe said.\tHe says.\n0\t3\t4\tA cat.\tA dog.\n")
  write(str(tmp_path / "MRPC/test.tsv"),
        "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1\t2\tX.\tY.\n")
  write(str(tmp_path / "CoLA/train.tsv"), "gj04\t1\t\tThe cat sat.\n"
        "gj04\t0\t*\tCat the sat.\n")
  write(str(tmp_path / "CoLA/test.tsv"), "index\tsentence\n0\tHello there.\n")
  write(str(tmp_path / "MNLI/dev_matched.tsv"),
        "\t".join("c%d" % i for i in range(12)) + "\n" +
        "\t".join(["x"] * 8 + ["Premise.", "Hypothesis."] + ["n", "neutral"])
        + "\n")
  write(str(tmp_path / "XNLI/xnli.dev.tsv"),
        "language\tgold_label\t2\t3\t4\t5\ts1\ts2\n"
        "en\tneutral\t\t\t\t\tA.\tB.\nzh\tcontradiction\t\t\t\t\t甲。\t乙。\n")
  write(str(tmp_path / "XNLI/multinli.train.zh.tsv"),
        "premise\thypo\tlabel\n前提。\t假设。\tcontradictory\n")
  root = str(tmp_path)
  mrpc = problems.read("mrpc", "train", root)
  assert [(e.inputs, e.labels) for e in mrpc] == [
      (("He said.", "He says."), "1"), (("A cat.", "A dog."), "0")]
  assert problems.read("mrpc", "predict", root)[0].inputs == ("X.", "Y.")
  cola = problems.read("cola", "train", root)
  assert [(e.inputs, e.labels) for e in cola] == [("The cat sat.", "1"),
                                                  ("Cat the sat.", "0")]
  assert problems.read("cola", "predict", root)[0].inputs == "Hello there."
  mnli = problems.read("mnli", "eval", root)[0]
  assert (mnli.inputs, mnli.labels) == (("Premise.", "Hypothesis."), "neutral")
  xnli = problems.read("xnli", "eval", root)
  assert [(e.inputs, e.labels) for e in xnli] == [(("甲。", "乙。"),
                                                   "contradiction")]
  assert problems.read("xnli", "train", root)[0].labels == "contradiction"
  write(str(tmp_path / "CoLA/dev.tsv"), "gj04\t1\n")
  with pytest.raises(problems.DataError, match=r"dev.tsv, line 1: expected at "
                     "least 4 tab-separated columns, got 2"):
    problems.read("cola", "eval", root)
