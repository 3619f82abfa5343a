"""Export for TF Serving, and a Predictor from raw text to structured results.

The SavedModel takes int32 `input_ids`, `input_mask`, `segment_ids`
[batch, length] (any batch, any length up to max_seq_length) and returns,
under `serving_default`, every problem's decoded outputs named
`<problem>/<output>`; each problem also has its own signature, and
`examples:<signature>` takes serialized tf.train.Examples instead.  The label
maps, the vocabulary and `manifest.json` (inputs, outputs, problems,
tokenizer settings) ship in `assets.extra/`.
"""

import json
import os
import re

import numpy as np
import tensorflow as tf

from bert_mtl import crf, evaluation, files, problems, tokenization
from bert_mtl.data import features

INPUTS = ("input_ids", "input_mask", "segment_ids")
MANIFEST = "manifest.json"


def serving_input_receiver_fn():
  """Raw int32 inputs, plus an `examples` alternative: serialized
  tf.train.Examples with int64 lists input_ids / input_mask / segment_ids
  (signatures `examples:<name>`).  The raw inputs are placeholders with the
  parsed examples as defaults, so each signature feeds one or the other."""
  serialized = tf.compat.v1.placeholder_with_default(
      tf.constant([], tf.string), [None], name="examples")
  parsed = tf.io.parse_example(
      serialized, {name: tf.io.VarLenFeature(tf.int64) for name in INPUTS})
  tensors = {name: tf.compat.v1.placeholder_with_default(
      tf.cast(tf.sparse.to_dense(parsed[name]), tf.int32), [None, None],
      name=name) for name in INPUTS}
  return tf.estimator.export.ServingInputReceiver(
      tensors, tensors,
      receiver_tensors_alternatives={"examples": {"examples": serialized}})


def manifest(run):
  return {
      "inputs": {name: {"dtype": "int32", "shape": [-1, -1]}
                 for name in INPUTS},
      "max_seq_length": run.options["max_seq_length"],
      "do_lower_case": run.options["do_lower_case"],
      "vocab": "vocab.txt",
      "problems": [{
          "name": name, "type": run.types[name],
          "metric": problems.get(name).metric,
          "scheme": problems.get(name).scheme,
          "crf": bool(run.head_settings(name).get("crf", True)),
          "crf_constraints": bool(run.head_settings(name).get(
              "crf_constraints", False)),
          "labels": "labels/%s.json" % name,
      } for name in run.names],
  }


def export(run, export_dir):
  """Exports the latest checkpoint of `run` (an Experiment); returns the
  SavedModel directory."""
  estimator = run.estimator()
  manifest_path = os.path.join(run.output_dir, MANIFEST)
  files.atomic_write(manifest_path, json.dumps(manifest(run),
                                               ensure_ascii=False, indent=1))
  run.save()
  assets = {MANIFEST: manifest_path,
            "vocab.txt": os.path.join(run.output_dir, "vocab.txt")}
  for name in run.names:
    assets["labels/%s.json" % name] = os.path.join(run.output_dir, "labels",
                                                   name + ".json")
  path = estimator.export_saved_model(export_dir, serving_input_receiver_fn,
                                      assets_extra=assets)
  return path.decode("utf-8") if isinstance(path, bytes) else path


# Units of raw text for sequence labelling: a CJK character, a run of ASCII
# letters/digits, or any other non-space character.
_UNIT = re.compile(r"[A-Za-z0-9]+|\S")


def split_units(text):
  """[(unit, character offset)] of a raw text."""
  return [(m.group(0), m.start()) for m in _UNIT.finditer(text)]


def resolve_export(export_dir):
  """A SavedModel directory: export_dir itself, or, for a parent such as
  <output_dir>/export, its newest timestamped export."""
  if os.path.exists(os.path.join(export_dir, "saved_model.pb")):
    return export_dir
  if os.path.isdir(export_dir):
    stamps = [d for d in os.listdir(export_dir) if d.isdigit() and
              os.path.exists(os.path.join(export_dir, d, "saved_model.pb"))]
    if stamps:
      return os.path.join(export_dir, max(stamps, key=int))
  raise FileNotFoundError(
      "%s is not a SavedModel directory (no saved_model.pb) and holds no "
      "timestamped export" % export_dir)


def check_texts(texts):
  """`texts` as a list of str: bytes decoded as UTF-8 with invalid bytes
  dropped (as tokenization.convert_to_unicode); a bare string, another
  type, or a lone surrogate (not encodable Unicode text) is an error."""
  if isinstance(texts, (str, bytes)):
    raise TypeError("predict takes a list of texts, got a single %s: pass "
                    "[text]" % type(texts).__name__)
  try:
    items = list(texts)
  except TypeError:
    raise TypeError("predict takes a list of texts, not %s" %
                    type(texts).__name__) from None
  out = []
  for index, text in enumerate(items):
    if not isinstance(text, (str, bytes)):
      raise TypeError("texts[%d] must be str or bytes, not %s" %
                      (index, type(text).__name__))
    text = tokenization.convert_to_unicode(text)
    surrogate = _LONE_SURROGATE.search(text)
    if surrogate:
      raise ValueError(
          "texts[%d] holds a lone surrogate U+%04X at character %d: not "
          "Unicode text (decode the source with errors='replace', or pass "
          "its UTF-8 bytes)" % (index, ord(surrogate.group(0)),
                                surrogate.start()))
    out.append(text)
  return out


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class Predictor(object):
  """Raw text in, structured results out, from an exported SavedModel.

      predictor = Predictor(export_dir)
      predictor.predict(["上海浦东开发与法制建设同步。"])
      # [{"msra_ner": {"entities": [{"type": "LOC", "text": "上海", ...}]},
      #   "pd98_cws": {"words": [...]}, "chn_sentiment": {...}}]

  `encode` and `decode` are public so TF Serving responses (REST
  `outputs`) can be decoded the same way.
  """

  def __init__(self, export_dir, batch_size=64, native_viterbi=True):
    export_dir = resolve_export(export_dir)
    assets = os.path.join(export_dir, "assets.extra")
    with open(os.path.join(assets, MANIFEST), encoding="utf-8") as f:
      self.manifest = json.load(f)
    self.tokenizer = tokenization.FullTokenizer(
        os.path.join(assets, self.manifest["vocab"]),
        self.manifest["do_lower_case"])
    self.labels = {}
    for spec in self.manifest["problems"]:
      with open(os.path.join(assets, spec["labels"]), encoding="utf-8") as f:
        self.labels[spec["name"]] = json.load(f)["labels"]
    self.max_seq_length = self.manifest["max_seq_length"]
    self.batch_size = batch_size
    self._model = tf.saved_model.load(export_dir)
    self._signature = self._model.signatures["serving_default"]
    # CRF problems: decode whole texts (all windows' potentials merged)
    # with the native Viterbi and the exported transition matrix.
    self._transitions = {}
    if native_viterbi:
      variables = {v.name: v for v in self._model.variables}
      for spec in self.manifest["problems"]:
        found = variables.get(spec["name"] + "/transitions:0")
        if spec.get("crf") and found is not None:
          self._transitions[spec["name"]] = found.numpy()
    vocab = self.tokenizer.vocab
    self._cls, self._sep = vocab["[CLS]"], vocab["[SEP]"]

  def encode(self, texts):
    """(rows, layout): model input rows (one per window) and what decode
    needs to map them back."""
    texts = check_texts(texts)
    units = [split_units(t) for t in texts]
    alignments = features.align_units(
        self.tokenizer, [[u for u, _ in us] or [" "] for us in units])
    rows, layout = [], []
    for alignment, text_units in zip(alignments, units):
      spans = features.window_spans(len(alignment.ids), self.max_seq_length)
      first_row = len(rows)
      for window in spans:
        rows.append(features.pack(alignment.ids[window.start:window.end],
                                  self.max_seq_length, self._cls, self._sep))
      layout.append((alignment, text_units, spans, first_row))
    return rows, layout

  def run(self, rows):
    """Calls the model on padded batches; {output name: [row values]}.
    Rows are batched in length order (less padding), results returned in
    the rows' order."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    outputs = {}
    for start in range(0, len(rows), self.batch_size):
      batch = [rows[i] for i in order[start:start + self.batch_size]]
      length = max(len(ids) for ids, _ in batch)
      ids = np.zeros([len(batch), length], np.int32)
      segments = np.zeros_like(ids)
      mask = np.zeros_like(ids)
      for i, (row_ids, row_segments) in enumerate(batch):
        ids[i, :len(row_ids)] = row_ids
        segments[i, :len(row_ids)] = row_segments
        mask[i, :len(row_ids)] = 1
      result = self._signature(input_ids=tf.constant(ids),
                               input_mask=tf.constant(mask),
                               segment_ids=tf.constant(segments))
      for key, value in result.items():
        outputs.setdefault(key, []).extend(list(value.numpy()))
    inverse = [0] * len(rows)
    for position, row in enumerate(order):
      inverse[row] = position
    return {k: [v[inverse[i]] for i in range(len(rows))]
            for k, v in outputs.items()}

  def predict(self, texts):
    """One result per text of `texts`, a list (or other sequence) of str or
    bytes (UTF-8, invalid bytes dropped, as FullTokenizer reads them)."""
    texts = check_texts(texts)
    rows, layout = self.encode(texts)
    return self.decode(texts, layout, self.run(rows))

  def decode(self, texts, layout, outputs):
    """Per text, {problem: result} from per-row model outputs."""
    results = []
    for text, (alignment, units, spans, first_row) in zip(texts, layout):
      result = {}
      for spec in self.manifest["problems"]:
        name = spec["name"]
        decoder = getattr(self, "_decode_" + spec["type"], None)
        if decoder is not None:
          result[name] = decoder(spec, outputs, text, alignment, units,
                                 spans, first_row)
      results.append(result)
    return results

  def _decode_seq_tag(self, spec, outputs, text, alignment, units, spans,
                      first_row):
    labels = self.labels[spec["name"]]
    fallback = labels.index("O") if "O" in labels else 0
    if spec["name"] in self._transitions:
      ids = self._viterbi(spec, outputs, alignment, spans, first_row,
                          fallback)
    else:
      tag_rows = outputs[spec["name"] + "/tag_ids"]
      per_window = [tag_rows[first_row + k][1:1 + (w.end - w.start)]
                    for k, w in enumerate(spans)]
      ids = features.merge_window_predictions(alignment, spans, per_window,
                                              fallback)
    tags = [labels[i] if i >= 0 else labels[fallback] for i in ids]
    tags = tags[:len(units)]
    unit_text = [u for u, _ in units]
    if spec["metric"] == "entity":
      found = []
      for kind, start, end in sorted(evaluation.metrics.entities(tags),
                                     key=lambda e: e[1]):
        begin, finish = units[start][1], units[end][1] + len(units[end][0])
        found.append({"type": kind, "text": text[begin:finish],
                      "start": begin, "end": finish})
      return {"entities": found, "tags": tags}
    if spec["metric"] in ("word", "pos"):
      words = evaluation.metrics.words_from_tags(unit_text, tags)
      result = {"words": words}
      if spec["metric"] == "pos":
        kinds, position = [], 0
        for word in words:  # a word's type is its first unit's tag suffix
          kinds.append(tags[position].partition("-")[2])
          consumed = 0
          while consumed < len(word):
            consumed += len(unit_text[position])
            position += 1
        result["pos"] = list(zip(words, kinds))
      return result
    return {"tags": tags}

  def _viterbi(self, spec, outputs, alignment, spans, first_row, fallback):
    """Tag ids per unit: each unit's scores from the window where it has
    the most context, then one Viterbi pass over the whole text."""
    rows = outputs[spec["name"] + "/potentials"]
    first_token = np.asarray(alignment.first_token)
    tagged = np.flatnonzero(first_token >= 0).tolist()
    # +1: the potentials rows start with [CLS].
    potentials = features.gather_from_windows(
        first_token[tagged], spans, rows[first_row:first_row + len(spans)],
        offset=1)
    ids = [fallback] * len(alignment.first_token)
    if not tagged:
      return ids
    constraints = {}
    if spec.get("crf_constraints") and spec.get("scheme"):
      allowed, start, end = crf.scheme_constraints(
          self.labels[spec["name"]], spec["scheme"])
      constraints = dict(allowed_transitions=allowed, allowed_start=start,
                         allowed_end=end)
    tags, _ = crf.viterbi_decode(
        np.asarray(potentials, np.float32)[None],
        self._transitions[spec["name"]], [len(tagged)], **constraints)
    for unit, tag in zip(tagged, tags[0]):
      ids[unit] = int(tag)
    return ids

  def _decode_cls(self, spec, outputs, text, alignment, units, spans,
                  first_row):
    labels = self.labels[spec["name"]]
    probabilities = outputs[spec["name"] + "/probabilities"][first_row]
    best = int(np.argmax(probabilities))
    return {"label": labels[best], "probability": float(probabilities[best])}

  def _decode_multi_cls(self, spec, outputs, text, alignment, units, spans,
                        first_row):
    labels = self.labels[spec["name"]]
    mask = outputs[spec["name"] + "/label_mask"][first_row]
    probabilities = outputs[spec["name"] + "/probabilities"][first_row]
    return {"labels": [l for l, m in zip(labels, mask) if m],
            "probabilities": {l: float(p) for l, p in zip(labels,
                                                          probabilities)}}

  def _decode_seq2seq(self, spec, outputs, first_row):
    encoder = problems.LabelEncoder(self.labels[spec["name"]])
    return evaluation.target_tokens(outputs[spec["name"] + "/ids"][first_row],
                                    encoder)

  def _decode_seq2seq_tag(self, spec, outputs, text, alignment, units, spans,
                          first_row):
    return {"tags": self._decode_seq2seq(spec, outputs, first_row)}

  def _decode_seq2seq_text(self, spec, outputs, text, alignment, units, spans,
                           first_row):
    return {"text": evaluation.detokenize(
        self._decode_seq2seq(spec, outputs, first_row))}
