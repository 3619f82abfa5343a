"""Sentence-level metrics in the original label space.

entity_prf has the semantics of seqeval's default (conlleval) mode for
BIO and BIOES tags; BMES tags are read as BIOES (M = I).  word_prf is the
SIGHAN bakeoff scorer's word precision/recall/F1.  All take whole
sentences (windows already merged).
"""

import collections
import math


def _split_tag(tag):
  if tag in ("O", ""):
    return "O", ""
  prefix, _, kind = tag.partition("-")
  prefix = prefix.upper()
  return ("I" if prefix == "M" else prefix), kind


def _chunk_ends(prev_prefix, prefix, prev_kind, kind):
  return (prev_prefix in ("E", "S") or
          (prev_prefix == "B" and prefix in ("B", "S", "O")) or
          (prev_prefix == "I" and prefix in ("B", "S", "O")) or
          (prev_prefix not in ("O", "") and prev_kind != kind))


def _chunk_starts(prev_prefix, prefix, prev_kind, kind):
  return (prefix in ("B", "S") or
          (prev_prefix in ("E", "S", "O", "") and prefix in ("E", "I")) or
          (prefix != "O" and prev_kind != kind))


def entities(tags):
  """Set of (type, start, end inclusive) chunks, conlleval style."""
  out, start, prev_prefix, prev_kind = set(), None, "O", ""
  for i, tag in enumerate(list(tags) + ["O"]):
    prefix, kind = _split_tag(tag)
    if start is not None and _chunk_ends(prev_prefix, prefix, prev_kind,
                                         kind):
      out.add((prev_kind, start, i - 1))
      start = None
    if _chunk_starts(prev_prefix, prefix, prev_kind, kind):
      start = i
    prev_prefix, prev_kind = prefix, kind
  return out


def prf(num_correct, num_predicted, num_gold):
  precision = num_correct / num_predicted if num_predicted else 0.0
  recall = num_correct / num_gold if num_gold else 0.0
  f1 = (2 * precision * recall / (precision + recall)
        if precision + recall else 0.0)
  return {"precision": precision, "recall": recall, "f1": f1}


def entity_prf(gold_sentences, predicted_sentences):
  """Micro entity P/R/F1 over sentences of tags."""
  correct = predicted = gold = 0
  for k, (g, p) in enumerate(zip(gold_sentences, predicted_sentences)):
    g_set = {(t, s, e) for t, s, e in entities(g)}
    p_set = {(t, s, e) for t, s, e in entities(p)}
    correct += len(g_set & p_set)
    predicted += len(p_set)
    gold += len(g_set)
  return prf(correct, predicted, gold)


def words_from_tags(units, tags):
  """Words of a BMES-tagged sentence (a word ends at E or S, or where the
  next unit starts one: B or S; a type suffix such as B-n is ignored)."""
  words, current = [], ""
  for unit, tag in zip(units, tags):
    prefix = tag.partition("-")[0].upper()
    if prefix in ("B", "S") and current:
      words.append(current)
      current = ""
    current += unit
    if prefix in ("E", "S"):
      words.append(current)
      current = ""
  if current:
    words.append(current)
  return words


def _spans(words):
  out, position = set(), 0
  for word in words:
    out.add((position, position + len(word)))
    position += len(word)
  return out


def word_prf(gold_words, predicted_words):
  """SIGHAN word P/R/F1: a word is correct when its span matches."""
  correct = predicted = gold = 0
  for g, p in zip(gold_words, predicted_words):
    g_spans, p_spans = _spans(g), _spans(p)
    correct += len(g_spans & p_spans)
    predicted += len(p_spans)
    gold += len(g_spans)
  return prf(correct, predicted, gold)


def accuracy(gold, predicted):
  pairs = list(zip(gold, predicted))
  return sum(g == p for g, p in pairs) / len(pairs) if pairs else 0.0


def token_accuracy(gold_sentences, predicted_sentences):
  return accuracy([t for s in gold_sentences for t in s],
                  [t for s in predicted_sentences for t in s])


def macro_f1(gold, predicted, labels=None):
  """Mean over labels of the per-label F1 (labels: default those in gold
  or predicted)."""
  labels = sorted(set(gold) | set(predicted)) if labels is None else labels
  scores = []
  for label in labels:
    correct = sum(g == p == label for g, p in zip(gold, predicted))
    scores.append(prf(correct, sum(p == label for p in predicted),
                      sum(g == label for g in gold))["f1"])
  return sum(scores) / len(scores) if scores else 0.0


def multi_label_f1(gold_sets, predicted_sets, labels):
  """(micro F1, macro F1) of label sets."""
  per_label = {l: [0, 0, 0] for l in labels}
  for g, p in zip(gold_sets, predicted_sets):
    for label in labels:
      per_label[label][0] += label in g and label in p
      per_label[label][1] += label in p
      per_label[label][2] += label in g
  micro = prf(*[sum(c[i] for c in per_label.values()) for i in range(3)])
  macro = [prf(*c)["f1"] for c in per_label.values()]
  return micro["f1"], sum(macro) / len(macro) if macro else 0.0


def _ngrams(tokens, n):
  return collections.Counter(tuple(tokens[i:i + n])
                             for i in range(len(tokens) - n + 1))


def corpus_bleu(references, hypotheses, max_n=4):
  """Corpus BLEU-4 (Papineni et al.; one reference per hypothesis, uniform
  weights, brevity penalty, no smoothing)."""
  matches, totals = [0] * max_n, [0] * max_n
  ref_length = hyp_length = 0
  for ref, hyp in zip(references, hypotheses):
    ref_length += len(ref)
    hyp_length += len(hyp)
    for n in range(1, max_n + 1):
      ref_counts, hyp_counts = _ngrams(ref, n), _ngrams(hyp, n)
      matches[n - 1] += sum(min(c, ref_counts[g])
                            for g, c in hyp_counts.items())
      totals[n - 1] += max(0, len(hyp) - n + 1)
  if not hyp_length or min(matches) == 0:
    return 0.0
  log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
  brevity = min(0.0, 1.0 - ref_length / hyp_length)
  return math.exp(log_precision + brevity)


def pearson(gold, predicted):
  """Pearson's correlation coefficient (0 when either side is constant)."""
  n = len(gold)
  if n < 2:
    return 0.0
  mean_g, mean_p = sum(gold) / n, sum(predicted) / n
  cov = sum((g - mean_g) * (p - mean_p) for g, p in zip(gold, predicted))
  var_g = sum((g - mean_g) ** 2 for g in gold)
  var_p = sum((p - mean_p) ** 2 for p in predicted)
  if var_g <= 0 or var_p <= 0:
    return 0.0
  return cov / math.sqrt(var_g * var_p)


def _ranks(values):
  """1-based ranks, ties given the mean of the ranks they span."""
  order = sorted(range(len(values)), key=lambda i: values[i])
  ranks = [0.0] * len(values)
  start = 0
  while start < len(order):
    end = start
    while end + 1 < len(order) and values[order[end + 1]] == values[
        order[start]]:
      end += 1
    for k in range(start, end + 1):
      ranks[order[k]] = (start + end) / 2 + 1
    start = end + 1
  return ranks


def spearman(gold, predicted):
  """Spearman's rank correlation: Pearson's on the (tie-averaged) ranks."""
  return pearson(_ranks(list(gold)), _ranks(list(predicted)))
