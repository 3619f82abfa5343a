"""Export for TF Serving, and a Predictor from raw text to structured results.

The SavedModel takes int32 `input_ids`, `input_mask`, `segment_ids`
[batch, length] (any batch, any length up to max_seq_length) and returns,
under `serving_default`, every problem's outputs named `<problem>/<output>`;
each problem also has its own signature.  `examples:<signature>` takes
serialized tf.train.Examples instead, and `tagged:<signature>` adds an int32
`tag_mask` [batch, length]: the positions sequence-labelling heads tag (1 on
each unit's first token, as in training).  Without it a head tags every
real token but [CLS], the final [SEP] and WordPiece continuations ("##"),
which is each unit's first token for characters and plain words.  The label
maps, the vocabulary and `manifest.json` (inputs, problems with their
decoding entries, tokenizer settings) ship in `assets.extra/`.

The Predictor cuts raw text into units as each problem's training data was
(the entry's `inputs`), builds the rows with the functions that built the
training records, and decodes the outputs on the path evaluation uses
(bert_mtl.decoding), so evaluation and serving give the same answers.
"""

import collections
import json
import os
import re
import shutil

import numpy as np
import tensorflow as tf

from bert_mtl import (base, checkpoint, decoding, export_assets,
                      export_versions, files, model_fn, serving_warmup,
                      text_serving, tokenization, types)
from bert_mtl.data import features

INPUTS, TAG_MASK = model_fn.INPUTS, features.TAG_MASK
MANIFEST = export_assets.MANIFEST


def manifest(run, precision="float32"):
  """The export's manifest.json (export_versions.write_manifest adds the
  assets' checksums and the signatures)."""
  problems = []
  for name in run.names:
    entry = dict(run.entry(name), num_labels=len(run.encoders[name]))
    problems.append(entry)
  return {
      "inputs": {name: {"dtype": "int32", "shape": [-1, -1]}
                 for name in INPUTS},
      "max_seq_length": run.run_config.max_seq_length,
      "do_lower_case": run.run_config.do_lower_case,
      "normalize_width": run.run_config.normalize_width,
      "vocab": "vocab.txt",
      "precision": precision,
      "problems": problems,
  }


def required_signatures(run):
  """The signatures every export of `run` has: the ids signatures and the
  text signatures of its problems that decode."""
  names = {"serving_default", text_serving.TEXT_SIGNATURE}
  for name in run.names:
    if run.kind(name).decodes:
      names.add("%s:%s" % (text_serving.TEXT_SIGNATURE, name))
  return names


# {(output_dir, checkpoint path, precision): SavedModel directory} of this
# process' exports: a second export of the same checkpoint (--do_export
# after the best export of the final evaluation) is a copy, not a rebuild.
_EXPORTED = {}


def default_export_dir(output_dir, precision="float32"):
  """<output_dir>/export, or export_<precision> beside it: TF Serving
  serves each as its own model (a directory of versions)."""
  return os.path.join(output_dir, "export" if precision == "float32" else
                      "export_" + precision)


def export(run, export_dir, checkpoint_path=None, precision="float32"):
  """Exports a checkpoint of `run` (an Experiment; default: its newest
  intact one) as a new version of export_dir; returns its directory.

  precision: "bfloat16" stores the encoder's dense kernels in bfloat16 and
  runs its matrix products in bfloat16 (core ops: casts around MatMul;
  LayerNorm, GELU, softmax and the heads stay float32); the manifest
  records it.  The version appears only once complete and verified (see
  export_versions): a failed or killed export leaves none.  Every export,
  the best exporter's included, takes this one path."""
  if precision not in model_fn.EXPORT_PRECISIONS:
    raise ValueError("export precision must be one of %s, not %r" % (
        ", ".join(model_fn.EXPORT_PRECISIONS), precision))
  with run.writing("export", export_dir), files.writing(export_dir,
                                                          "the export"):
    return _export(run, export_dir, checkpoint_path or run.checkpoint_path(),
                   precision)


def _export(run, export_dir, checkpoint_path, precision):
  done = _EXPORTED.get((run.output_dir, checkpoint_path, precision))
  with export_versions.staging(export_dir) as staging:
    if done and os.path.exists(done):
      path = os.path.join(staging, "copy")
      shutil.copytree(done, path)
    else:
      path = _build(run, staging, checkpoint_path, precision)
    missing = sorted(required_signatures(run) -
                     export_versions.signature_names(path))
    if missing:
      raise export_versions.ExportError(
          "the export of %s lacks the signatures %s" % (
              checkpoint_path, ", ".join(missing)))
    export_versions.verify(path)
    version = export_versions.publish(path, export_dir)
  _EXPORTED[(run.output_dir, checkpoint_path, precision)] = version
  return version


def _build(run, staging, checkpoint_path, precision):
  """The SavedModel of checkpoint_path, text signatures and assets
  included, in a new directory under `staging`."""
  estimator = run.estimator(export_precision=precision)
  manifest_path = os.path.join(staging, MANIFEST)
  files.atomic_write(manifest_path, json.dumps(
      manifest(run, precision), ensure_ascii=False, indent=1))
  vocab_file = os.path.join(run.output_dir, "vocab.txt")
  assets = {MANIFEST: manifest_path, "vocab.txt": vocab_file}
  for name in run.names:
    assets["labels/%s.json" % name] = os.path.join(run.output_dir, "labels",
                                                   name + ".json")
  receiver_fn = model_fn.serving_input_receiver_fn(
      vocab_file, [run.kind(n) for n in run.names])
  if precision != "float32":
    # The graph's variables in their own dtypes (bfloat16 kernels): the
    # Estimator restores the export from a cast copy of the checkpoint.
    checkpoint_path = checkpoint.write_cast_copy(
        checkpoint_path, os.path.join(staging, "cast", "model.ckpt"),
        _graph_variables(estimator, run, receiver_fn))
  path = estimator.export_saved_model(
      staging, receiver_fn, assets_extra=assets,
      checkpoint_path=checkpoint_path)
  path = path.decode("utf-8") if isinstance(path, bytes) else path
  path = text_serving.add_text_signatures(path)
  with open(manifest_path, encoding="utf-8") as f:
    written = json.load(f)
  # The warm-up requests cover every signature, text ones included.
  serving_warmup.write(path, os.path.join(path, "assets.extra", "vocab.txt"),
                       written)
  written["warmup"] = serving_warmup.WARMUP_FILE
  export_versions.write_manifest(path, written)
  return path


def _graph_variables(estimator, run, receiver_fn):
  """{name: dtype} of the variables estimator's export graph reads."""
  with tf.Graph().as_default():
    tf.compat.v1.train.get_or_create_global_step()
    receiver = receiver_fn()
    model_fn.make_model_fn(run.body_transform)(
        receiver.features, None, tf.estimator.ModeKeys.PREDICT,
        estimator.params)
    return {v.op.name: v.dtype.base_dtype
            for v in tf.compat.v1.global_variables()}


def resolve_export(export_dir):
  """A SavedModel directory: export_dir itself, or, for a parent such as
  <output_dir>/export, its newest complete version (export_versions)."""
  if os.path.exists(os.path.join(export_dir, "saved_model.pb")):
    return export_dir
  if os.path.isdir(export_dir) and any(n.isdigit()
                                       for n in os.listdir(export_dir)):
    return export_versions.newest(export_dir)
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


def padded_inputs(rows):
  """{input name: int32 [len(rows), longest row]} of Predictor.encode rows
  (input_ids, segment_ids, tag_mask, ...), zero-padded: the `tagged:`
  signatures' inputs."""
  length = max(len(row[0]) for row in rows)
  arrays = {k: np.zeros([len(rows), length], np.int32)
            for k in INPUTS + (TAG_MASK,)}
  for b, (ids, segments, tag_mask) in enumerate(row[:3] for row in rows):
    arrays["input_ids"][b, :len(ids)] = ids
    arrays["segment_ids"][b, :len(ids)] = segments
    arrays["input_mask"][b, :len(ids)] = 1
    arrays[TAG_MASK][b, :len(ids)] = tag_mask
  return arrays


# What Predictor.encode makes of texts in one input form.
Encoded = collections.namedtuple("Encoded", ["rows", "inputs", "units",
                                             "encodings"])


class Predictor(object):
  """Raw text in, structured results out, from an exported SavedModel.

      predictor = Predictor(export_dir)
      predictor.predict(["上海浦东开发与法制建设同步。"])
      # [{"msra_ner": {"entities": [{"type": "LOC", "text": "上海", ...}]},
      #   "pd98_cws": {"words": [...]}, "chn_sentiment": {...}}]

  `encode`, `run` and `decode` are public so TF Serving responses (REST
  `outputs` of the `tagged:serving_default` signature) can be decoded the
  same way.
  """

  def __init__(self, export_dir, batch_size=64, native_viterbi=True,
               text_signature=False):
    """text_signature: tokenize, window and decode in the graph (the
    export's `serving_text` signature, as TF Serving clients use it) and
    only turn its outputs into results here."""
    export_dir = resolve_export(export_dir)
    assets = export_assets.read(export_dir)
    self.manifest = assets.manifest
    self.tokenizer = tokenization.FullTokenizer(
        assets.vocab_file, self.manifest["do_lower_case"],
        self.manifest.get("normalize_width", False))
    self.entries, self.encoders, self.kinds = {}, {}, {}
    for entry in self.manifest["problems"]:
      kind = types.get(entry["type"])
      if not kind.decodes:
        continue
      # Exports before the manifest recorded inputs: text problems read
      # the text, sequence labelling characters.
      entry.setdefault("inputs", "text" if kind.inputs == "text" else "char")
      self.entries[entry["name"]] = entry
      self.encoders[entry["name"]] = assets.encoders[entry["name"]]
      self.kinds[entry["name"]] = kind
    self.max_seq_length = self.manifest["max_seq_length"]
    self.batch_size = batch_size
    self._model = tf.saved_model.load(export_dir)
    signatures = self._model.signatures
    # (Exports without the tagged signature tag their default positions.)
    self._signature = signatures.get("tagged:serving_default",
                                     signatures["serving_default"])
    # CRF problems: decode whole texts (all windows' scores merged) with
    # the native Viterbi and the exported transitions, as evaluation does.
    self._states = {}
    self._text = None
    if text_signature:
      if text_serving.TEXT_SIGNATURE not in signatures:
        raise ValueError("%s has no %s signature (exported before text "
                         "signatures existed): export it again" % (
                             export_dir, text_serving.TEXT_SIGNATURE))
      self._text = signatures[text_serving.TEXT_SIGNATURE]
    if native_viterbi:
      self._states = export_assets.decode_states(
          self.entries, self.encoders,
          export_assets.variables_by_name(self._model))
    vocab = self.tokenizer.vocab
    self._cls, self._sep = vocab[base.CLS_TOKEN], vocab[base.SEP_TOKEN]

  def forms(self):
    """{input form: [problem]}: problems whose training inputs were given
    alike share one model pass."""
    out = {}
    for name, entry in self.entries.items():
      out.setdefault(entry["inputs"], []).append(name)
    return out

  def encode(self, texts, form, texts_b=None):
    """Encoded(rows, inputs, units, encodings) of `texts` in input form
    `form`: model rows (input_ids, segment_ids, tag_mask, example_index,
    window_start), each text's model inputs (a text, a (text, text_b)
    pair, or its unit list), its units [(unit, offset)] and the
    features.Encoding its rows were built from (both None for text
    problems).  texts_b: the second texts of a "pair" form ("" or None: a
    single text)."""
    rows = []
    if form in ("text", "pair"):
      texts_b = texts_b if form == "pair" and texts_b else [""] * len(texts)
      ragged_a = self.tokenizer.encode_ragged(texts)
      # A text form has no second texts to tokenize.
      ragged_b = (self.tokenizer.encode_ragged(texts_b) if form == "pair"
                  else None)
      row = lambda ragged, i: [] if ragged is None else ragged["ids"][
          ragged["row_splits"][i]:ragged["row_splits"][i + 1]]
      for index in range(len(texts)):
        ids, segments = features.pack(
            row(ragged_a, index), self.max_seq_length, self._cls, self._sep,
            row(ragged_b, index))
        rows.append((ids, segments, np.zeros_like(ids), index, 0))
      inputs = (list(texts) if form == "text" else
                [(a, b) for a, b in zip(texts, texts_b)])
      return Encoded(rows, inputs, None, None)
    units = [features.text_units(t, form) for t in texts]
    inputs = [[u for u, _ in us] for us in units]
    encodings = features.encodings_of(
        features.encode_units(self.tokenizer, inputs), self.max_seq_length)
    for index, (alignment, spans) in enumerate(encodings):
      for window, ids, segments, tag_mask in features.unit_rows(
          alignment, self.max_seq_length, self._cls, self._sep, spans):
        rows.append((ids, segments, tag_mask, index, window.start))
    return Encoded(rows, inputs, units, encodings)

  def run(self, rows):
    """Calls the model on padded batches; one prediction dict per row
    ({"<problem>/<output>": value, "example_index", "window_start"}).
    Rows are batched in length order (less padding)."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    out = [None] * len(rows)
    for start in range(0, len(rows), self.batch_size):
      batch = order[start:start + self.batch_size]
      arrays = padded_inputs([rows[i] for i in batch])
      if TAG_MASK not in self._signature.structured_input_signature[1]:
        del arrays[TAG_MASK]
      result = {k: v.numpy() for k, v in self._signature(
          **{k: tf.constant(v) for k, v in arrays.items()}).items()}
      for b, i in enumerate(batch):
        out[i] = {k: v[b] for k, v in result.items()}
        out[i]["example_index"], out[i]["window_start"] = rows[i][3:]
    return out

  def predict(self, texts, texts_b=None):
    """One result per text of `texts`, a list (or other sequence) of str or
    bytes (UTF-8, invalid bytes dropped, as FullTokenizer reads them).

    texts_b: for problems trained on (text_a, text_b) pairs (entry inputs
    "pair"), the second text of each pair, index-aligned with `texts`; ""
    (or no texts_b) reads the text alone, as run_classifier does an
    example without text_b.  Other problems ignore it."""
    texts = check_texts(texts)
    if texts_b is not None:
      texts_b = check_texts(texts_b)
      if len(texts_b) != len(texts):
        raise ValueError("texts_b has %d texts, texts %d: give one second "
                         "text per text (\"\" for none)" % (
                             len(texts_b), len(texts)))
    if self._text is not None:
      return self._predict_in_graph(texts, texts_b)
    results = [{} for _ in texts]
    for form, names in self.forms().items():
      encoded = self.encode(texts, form, texts_b)
      for name, values in self.decode(names, texts, encoded,
                                      self.run(encoded.rows)).items():
        for result, value in zip(results, values):
          result[name] = value
    order = list(self.entries)
    return [{n: r[n] for n in order} for r in results]

  def decode(self, names, texts, encoded, predictions):
    """{problem: [served result per text]} of problems `names` (one input
    form) from the rows' prediction dicts; encoded: encode's result."""
    rows = decoding.rows_by_example(predictions, names)
    units = encoded.units
    decoded = decoding.decode_group(
        names, encoded.inputs, rows, self.encoders, self.entries,
        encoded.encodings, self._states, texts, units)
    out = {}
    for name in names:
      kind = self.kinds[name]
      out[name] = [kind.serve(result, [r[name] for r in rows[index]],
                              self.encoders[name], decoding.Context(
                                  None, None, None, self.entries[name],
                                  texts[index],
                                  units[index] if units else None))
                   for index, result in enumerate(decoded[name])]
    return out

  def _predict_in_graph(self, texts, texts_b):
    """predict through the `serving_text` signature."""
    results = []
    strings = lambda batch: tf.constant([t.encode("utf-8") for t in batch],
                                        tf.string)
    takes_b = (text_serving.TEXT_B in
               self._text.structured_input_signature[1])
    for start in range(0, len(texts), self.batch_size):
      batch = texts[start:start + self.batch_size]
      feeds = {"text": strings(batch)}
      if takes_b:
        feeds[text_serving.TEXT_B] = strings(
            texts_b[start:start + self.batch_size] if texts_b
            else [""] * len(batch))
      out = {k: v.numpy() for k, v in self._text(**feeds).items()}
      for index, text in enumerate(batch):
        results.append({name: self.serve_text_outputs(name, out, index, text)
                        for name in self.entries})
    return results

  def serve_text_outputs(self, name, outputs, index, text):
    """Problem `name`'s result for text `index` of a `serving_text`
    response (`outputs`: {name: array}, as TF Serving returns them)."""
    entry, encoder = self.entries[name], self.encoders[name]
    kind = self.kinds[name]
    units = (None if entry["inputs"] in ("text", "pair") else
             features.text_units(text, entry["inputs"]))
    own = {key.partition("/")[2]: value[index]
           for key, value in outputs.items() if key.partition("/")[0] == name}
    context = decoding.Context(None, None, None, entry, text, units)
    result, units = kind.read_served(own, encoder, context)
    return kind.serve(result, [own], encoder, context._replace(units=units))
