"""Model outputs -> results per original example, and their metrics.

Estimator predictions arrive per record (window); seq_tag windows are merged
back so that every unit of a sentence gets exactly one label, and every
output is mapped to the original label space before it is scored.
"""

import collections

from bert_mtl import metrics, problems
from bert_mtl.data import dataset, features


def _fallback_label(encoder):
  for label in ("O", "S"):
    if label in encoder.ids:
      return encoder.ids[label]
  return 0


def detokenize(tokens):
  """WordPiece tokens -> text: ## pieces join their word, CJK characters
  join without spaces, other words are separated by one."""
  text = ""
  for token in tokens:
    if token.startswith("##"):
      text += token[2:]
    elif text and (token[0].isascii() and token[0].isalnum() and
                   text[-1].isascii() and text[-1].isalnum()):
      text += " " + token
    else:
      text += token
  return text


def target_tokens(ids, encoder):
  """Decoded target ids (EOS-terminated, 0-padded) -> label strings."""
  _, bos, eos = dataset.decoder_special_ids(encoder)
  out = []
  for i in ids:
    if i == eos:
      break
    if i not in (0, bos):
      out.append(encoder.labels[int(i)])
  return out


def decode(group, examples, predictions, encoders, tokenizer, max_seq_length):
  """Per-example results of one `&` group.

  Args:
    examples: {problem: [Example]} of the split (as GroupFeatures read it).
    predictions: iterable of Estimator prediction dicts for the group's
      records (any order).

  Returns:
    {problem: [result per example]}: seq_tag a label per unit, cls a label,
    multi_cls a label list, seq2seq_tag a tag list, seq2seq_text a string.
  """
  types = {n: problems.get(n).type for n in group}
  by_example = collections.defaultdict(list)
  for p in predictions:
    by_example[int(p["example_index"])].append(p)
  first = examples[group[0]]
  tagged = [n for n in group if types[n] == "seq_tag"]
  alignments = (features.align_units(tokenizer, [e.inputs for e in first])
                if tagged else None)
  out = {n: [] for n in group}
  for index in range(len(first)):
    windows = sorted(by_example.get(index, []),
                     key=lambda p: int(p["window_start"]))
    if not windows:
      raise ValueError("no prediction for example %d of %s" %
                       (index, "&".join(group)))
    for name in group:
      encoder = encoders[name]
      problem_type = types[name]
      if problem_type == "seq_tag":
        alignment = alignments[index]
        spans = features.window_spans(len(alignment.ids), max_seq_length)
        per_window = [p[name + "/tag_ids"][1:1 + (w.end - w.start)]
                      for p, w in zip(windows, spans)]
        ids = features.merge_window_predictions(
            alignment, spans, per_window, _fallback_label(encoder))
        out[name].append(encoder.decode(
            [i if i >= 0 else _fallback_label(encoder) for i in ids]))
      elif problem_type == "cls":
        out[name].append(encoder.labels[int(windows[0][name + "/label_ids"])])
      elif problem_type == "multi_cls":
        mask = windows[0][name + "/label_mask"]
        out[name].append([l for l, m in zip(encoder.labels, mask) if m])
      elif problem_type == "seq2seq_tag":
        out[name].append(target_tokens(windows[0][name + "/ids"], encoder))
      elif problem_type == "seq2seq_text":
        out[name].append(detokenize(target_tokens(windows[0][name + "/ids"],
                                                  encoder)))
  return out


def score(name, examples, results, encoder=None, target_tokenizer=None,
          max_target_length=None):
  """Metrics of one problem's results against its examples' labels."""
  spec = problems.get(name)
  gold = [e.labels for e in examples]
  kind = spec.metric
  if kind == "accuracy":
    return {"accuracy": metrics.accuracy(gold, results),
            "macro_f1": metrics.macro_f1(gold, results)}
  if kind == "multi_label":
    micro, macro = metrics.multi_label_f1(
        [set(g) for g in gold], [set(r) for r in results], encoder.labels)
    return {"micro_f1": micro, "macro_f1": macro}
  if kind == "entity":
    return _prefixed("entity_", metrics.entity_prf(gold, results))
  if kind in ("word", "pos"):
    units = [e.inputs for e in examples]
    out = _prefixed("word_", metrics.word_prf(
        [metrics.words_from_tags(u, g) for u, g in zip(units, gold)],
        [metrics.words_from_tags(u, r) for u, r in zip(units, results)]))
    if kind == "pos":
      out["token_accuracy"] = metrics.token_accuracy(gold, results)
    return out
  if kind == "sequence":
    limit = (max_target_length or 10 ** 9) - 1
    gold = [list(g)[:limit] for g in gold]
    return {"exact_match": metrics.accuracy(
        [tuple(g) for g in gold], [tuple(r) for r in results]),
            "token_accuracy": _aligned_accuracy(gold, results)}
  if kind == "text":
    gold_tokens = [target_tokenizer.tokenize(g) for g in gold]
    if max_target_length:
      gold_tokens = [g[:max_target_length - 1] for g in gold_tokens]
    result_tokens = [target_tokenizer.tokenize(r) for r in results]
    return {"exact_match": metrics.accuracy(
        [tuple(g) for g in gold_tokens], [tuple(r) for r in result_tokens]),
            "bleu4": metrics.corpus_bleu(gold_tokens, result_tokens)}
  return {}


def _aligned_accuracy(gold, predicted):
  """Position-wise token accuracy over the gold length."""
  total = sum(len(g) for g in gold)
  correct = sum(a == b for g, p in zip(gold, predicted)
                for a, b in zip(g, p))
  return correct / total if total else 0.0


def _prefixed(prefix, values):
  return {prefix + k: v for k, v in values.items()}


MAIN_METRICS = {"accuracy": "accuracy", "multi_label": "micro_f1",
                "entity": "entity_f1", "word": "word_f1",
                "pos": "token_accuracy", "sequence": "exact_match",
                "text": "bleu4", "masked_lm": "masked_lm_accuracy"}


def main_metric(name):
  """The key of the one number a problem is judged by ("a@b", a problem
  scored on another's data, is judged like a)."""
  return MAIN_METRICS[problems.get(name.split("@")[0]).metric]
