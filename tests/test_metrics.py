"""Metrics against independent oracles: seqeval, a hand-written SIGHAN
scorer, and hand-computed cases."""

import random

import pytest
from seqeval import metrics as seqeval_metrics

from bert_mtl import metrics


def _random_tags(rng, length, prefixes, kinds=("PER", "LOC", "ORG")):
  return [rng.choice(["O"] + ["%s-%s" % (p, k) for p in prefixes
                              for k in kinds]) for _ in range(length)]


@pytest.mark.parametrize("prefixes", [("B", "I"), ("B", "I", "E", "S")])
def test_entity_prf_equals_seqeval(prefixes):
  rng = random.Random(len(prefixes))
  for trial in range(300):
    gold = [_random_tags(rng, rng.randint(0, 12), prefixes)
            for _ in range(rng.randint(1, 6))]
    # Predictions: gold with some tags changed, so there are hits.
    predicted = [[t if rng.random() < 0.7 else _random_tags(rng, 1, prefixes)[0]
                  for t in sentence] for sentence in gold]
    ours = metrics.entity_prf(gold, predicted)
    assert ours["precision"] == pytest.approx(
        seqeval_metrics.precision_score(gold, predicted, zero_division=0))
    assert ours["recall"] == pytest.approx(
        seqeval_metrics.recall_score(gold, predicted, zero_division=0))
    assert ours["f1"] == pytest.approx(
        seqeval_metrics.f1_score(gold, predicted, zero_division=0))


def test_bmes_reads_as_bioes():
  assert metrics.entities(["B-PER", "M-PER", "E-PER", "S-LOC", "O"]) == {
      ("PER", 0, 2), ("LOC", 3, 3)}
  gold = [["B-PER", "M-PER", "E-PER", "S-LOC"]]
  as_bioes = [[t.replace("M-", "I-") for t in gold[0]]]
  assert metrics.entity_prf(gold, gold)["f1"] == 1.0
  predicted = [["B-PER", "E-PER", "S-LOC", "S-LOC"]]
  predicted_bioes = [["B-PER", "E-PER", "S-LOC", "S-LOC"]]
  assert metrics.entity_prf(gold, predicted)["f1"] == pytest.approx(
      seqeval_metrics.f1_score(as_bioes, predicted_bioes))


def sighan_score(gold_words, predicted_words):
  """The bakeoff scorer, written independently: walk both word lists by
  character offset and count words whose start and end both agree."""
  correct = total_gold = total_predicted = 0
  for gold, predicted in zip(gold_words, predicted_words):
    total_gold += len(gold)
    total_predicted += len(predicted)
    i = j = gold_pos = predicted_pos = 0
    while i < len(gold) and j < len(predicted):
      if gold_pos == predicted_pos and len(gold[i]) == len(predicted[j]):
        correct += 1
      gold_end, predicted_end = (gold_pos + len(gold[i]),
                                 predicted_pos + len(predicted[j]))
      if gold_end <= predicted_end:
        i, gold_pos = i + 1, gold_end
      if predicted_end <= gold_end:
        j, predicted_pos = j + 1, predicted_end
  p = correct / total_predicted
  r = correct / total_gold
  return p, r, 2 * p * r / (p + r) if p + r else 0.0


def _random_segmentation(rng, text):
  words, i = [], 0
  while i < len(text):
    n = rng.randint(1, 4)
    words.append(text[i:i + n])
    i += n
  return words


def test_word_prf_equals_a_sighan_scorer():
  rng = random.Random(0)
  for _ in range(300):
    texts = ["".join(chr(0x4e00 + rng.randint(0, 50))
                     for _ in range(rng.randint(1, 30)))
             for _ in range(rng.randint(1, 5))]
    gold = [_random_segmentation(rng, t) for t in texts]
    predicted = [_random_segmentation(rng, t) for t in texts]
    ours = metrics.word_prf(gold, predicted)
    p, r, f = sighan_score(gold, predicted)
    assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx(
        (p, r, f))


def test_words_from_tags():
  units = list("我爱北京天安门")
  assert metrics.words_from_tags(units, ["S", "S", "B", "E", "B", "M", "E"]) \
      == ["我", "爱", "北京", "天安门"]
  # Joint POS tags, and invalid sequences still give a segmentation.
  assert metrics.words_from_tags(units, ["S-r", "S-v", "B-ns", "E-ns", "B-ns",
                                         "M-ns", "E-ns"])[2] == "北京"
  assert metrics.words_from_tags(units, ["M", "M", "E", "B", "B", "E", "M"]) \
      == ["我爱北", "京", "天安", "门"]


def test_classification_metrics_by_hand():
  gold = ["a", "a", "b", "c"]
  predicted = ["a", "b", "b", "b"]
  assert metrics.accuracy(gold, predicted) == 0.5
  # F1: a = 2/3 (p 1, r .5), b = 2/3 (p 1/3, r 1), c = 0.
  assert metrics.macro_f1(gold, predicted) == pytest.approx((2 / 3 + 0.5) / 3)
  micro, macro = metrics.multi_label_f1(
      [{"x"}, {"x", "y"}, set()], [{"x"}, {"y", "z"}, {"z"}], ["x", "y", "z"])
  # tp 2 (x, y), predicted 4, gold 3 -> p .5, r 2/3.
  assert micro == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
  assert macro == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_corpus_bleu_by_hand():
  ref = "the cat sat on the mat".split()
  assert metrics.corpus_bleu([ref], [ref]) == pytest.approx(1.0)
  assert metrics.corpus_bleu([ref], [["dog"]]) == 0.0
  hyp = "the cat sat on a mat".split()
  # p1 5/6, p2 3/5, p3 2/4, p4 1/3, same length.
  assert metrics.corpus_bleu([ref], [hyp]) == pytest.approx(
      (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)
  # No 4-gram in common: 0 without smoothing.
  assert metrics.corpus_bleu([ref], ["the cat on the mat sat".split()]) == 0.0
  hyp = "the cat sat on the".split()
  # All n-grams match (p_n = 1); brevity: exp(1 - 6/5).
  assert metrics.corpus_bleu([ref], [hyp]) == pytest.approx(
      2.718281828 ** (1 - 6 / 5))
