"""Text signatures of the export: raw text in, results per unit out, all in
the SavedModel with core TensorFlow ops (no client tokenizer).

`serving_text` (and `serving_text:<problem>`) take a string tensor `text`
[batch] (and, when they serve a problem trained on sentence pairs, `text_b`
[batch], "" where a text has no second sentence) and do in the graph what
the Predictor does in Python:

  * tokenize (bert_mtl.graph_tokenizer, byte-identical to FullTokenizer);
  * per input form, build the rows the training records were built from:
    a text problem reads `[CLS] text [SEP]`, a pair problem `[CLS] text
    [SEP] text_b [SEP]` (truncated as run_classifier truncates); a unit
    problem reads the text cut into units (characters or
    whitespace words, features.text_units), the units joined by single
    spaces and tokenized, in windows of max_seq_length - 2 tokens every
    window_stride, tagging each unit's first token;
  * run the model (the export's own `tagged:serving_default` graph, pruned
    to each form's problems);
  * hand each problem's outputs and the TextPlan (rows per text; a unit
    form's units, tokens and windows, with the window merge of
    features.best_windows) to its type's serve_text, which decodes them in
    graph ops (seq_tag: one Viterbi pass over a whole text's units, the
    native Viterbi's arithmetic, tie rule and scheme constraints).

Outputs: `token_ids` / `token_spans` [batch, tokens(, 2)] of the text's own
tokenization (-1 padded; spans in code points of the UTF-8 decoded text,
invalid bytes dropped), `text_b_token_ids` / `text_b_token_spans` alike
when the signature takes text_b, and per problem `<problem>/...` what its
type's serve_text returns (seq_tag: `unit_spans` [batch, units, 2],
`tag_ids` and `tags` [batch, units], -1 / "" padded; by default the
model's outputs on the text's first row, as the ids signatures return
them).
"""

import tensorflow as tf

from bert_mtl import graph_tokenizer, types
from bert_mtl.data import features

TEXT_SIGNATURE = "serving_text"
# The second texts of pair problems (GLUE's sentence2), one per `text`.
TEXT_B = "text_b"
# Model rows (windows) one request may need: a bound on the memory a
# request can take (a 1 MB text needs about 16,000 windows at length 128).
MAX_REQUEST_ROWS = 4096


def _flags(tokenizer, cp, flag):
  return tokenizer.tables.has(tokenizer.tables.record(cp), flag)


def unit_inputs(tokenizer, chars, kind):
  """The text's units and the string the Predictor tokenizes for them.

  Args:
    chars: tf.RaggedTensor int32 [B, (chars)], the decoded texts.
    kind: "char" (every non-space character) or "word" (runs of them).

  Returns:
    (joined RaggedTensor int32 [B, (chars)]: the code points of the units
     joined by single spaces,
     unit_spans RaggedTensor int32 [B, (units), 2] in `chars`,
     joined_starts RaggedTensor int32 [B, (units)]: each unit's first
     character in the joined string).
  """
  cp = chars.flat_values
  row = tf.cast(chars.value_rowids(), tf.int32)
  pos = graph_tokenizer.positions_in_rows(chars)
  # re's \S is exactly "not str.isspace()".
  solid = tf.logical_not(_flags(tokenizer, cp, "py_space"))
  new_row = graph_tokenizer.run_starts(row)
  if kind == "char":
    start = solid
  else:
    start = tf.logical_and(solid, tf.logical_or(
        new_row, tf.logical_not(graph_tokenizer.shift_right(solid, False))))
  cp, pos, row, start = [tf.boolean_mask(x, solid)
                         for x in (cp, pos, row, start)]
  unit = tf.cumsum(tf.cast(start, tf.int32)) - 1
  num_units = tf.reduce_max(tf.concat([unit, [-1]], 0)) + 1
  unit_row = tf.math.unsorted_segment_max(row, unit, num_units)
  unit_begin = tf.math.unsorted_segment_min(pos, unit, num_units)
  unit_end = tf.math.unsorted_segment_max(pos, unit, num_units) + 1
  nrows = chars.nrows()
  unit_row64 = tf.cast(unit_row, tf.int64)
  # The joined string: a space before every unit but each text's first.
  first_of_row = graph_tokenizer.run_starts(unit_row)
  space_before = tf.logical_and(start, tf.logical_not(tf.gather(
      first_of_row, tf.maximum(unit, 0))))
  count = 1 + tf.cast(space_before, tf.int32)
  owner = tf.repeat(tf.range(tf.size(cp)), count)
  is_space = tf.logical_and(tf.gather(space_before, owner), tf.equal(
      tf.range(tf.reduce_sum(count)) - tf.gather(tf.cumsum(
          count, exclusive=True), owner), 0))
  joined_cp = tf.where(is_space, 32, tf.gather(cp, owner))
  joined_row = tf.cast(tf.gather(row, owner), tf.int64)
  joined_chars = tf.RaggedTensor.from_value_rowids(
      joined_cp, joined_row, nrows, validate=False)
  # Each unit's first character in the joined string.
  joined_pos = tf.range(tf.size(joined_cp)) - tf.cast(tf.gather(
      joined_chars.row_starts(), joined_row), tf.int32)
  char_at = tf.boolean_mask(joined_pos, tf.logical_not(is_space))
  unit_joined = tf.math.unsorted_segment_min(char_at, unit, num_units)
  spans = tf.stack([unit_begin, unit_end], 1)
  per_unit = lambda values: tf.RaggedTensor.from_value_rowids(
      values, unit_row64, nrows, validate=False)
  return joined_chars, per_unit(spans), per_unit(unit_joined)


def first_tokens(token_spans, joined_starts):
  """Each unit's first token (its index in the text's tokens), or -1 when
  no token starts in the unit (features.encode_units' rule).

  Args:
    token_spans: RaggedTensor int32 [B, (tokens), 2] in the joined string.
    joined_starts: RaggedTensor int32 [B, (units)].
  Returns:
    RaggedTensor int32 [B, (units)].
  """
  # Offsets made global (texts one after another) so one search serves all.
  big = tf.cast(tf.reduce_max(tf.concat([token_spans.flat_values[:, 1],
                                         joined_starts.flat_values, [0]],
                                        0)) + 1, tf.int64)
  token_row = token_spans.value_rowids()
  unit_row = joined_starts.value_rowids()
  token_at = tf.cast(token_spans.flat_values[:, 0], tf.int64) + token_row * big
  unit_at = tf.cast(joined_starts.flat_values, tf.int64) + unit_row * big
  unit_of_token = tf.searchsorted(unit_at, token_at, side="right") - 1
  changes = tf.not_equal(unit_of_token, tf.concat(
      [[-1], unit_of_token[:-1]], 0))
  where = tf.cast(tf.reshape(tf.where(changes), [-1]), tf.int32)
  num_units = tf.size(unit_at)
  first = tf.tensor_scatter_nd_update(
      tf.fill([num_units], -1), tf.cast(tf.gather(unit_of_token, where),
                                        tf.int32)[:, None],
      where - tf.cast(tf.gather(token_spans.row_starts(), tf.gather(
          token_row, where)), tf.int32))
  return joined_starts.with_flat_values(first)


def window_plan(num_tokens, max_seq_length):
  """features.window_spans for every text at once.

  Returns (num_windows [B], stride, window length): window w of a text
  covers tokens [w * stride, min(n, w * stride + length)).
  """
  length = max_seq_length - 2
  stride = features.window_stride(max_seq_length)
  extra = tf.maximum(num_tokens - length, 0)
  return 1 + (extra + stride - 1) // stride, stride, length


def best_window(position, num_tokens, num_windows, stride, length):
  """features.best_windows for regular windows: the covering window that
  maximises min(left, right) context, ties to the earlier one.

  Args: int32 [N] each (a position, its text's token and window counts).
  """
  last = tf.minimum(position // stride, num_windows - 1)
  best = last
  best_score = tf.fill(tf.shape(position), -1)
  for back in range((length + stride - 1) // stride, -1, -1):
    w = last - back
    start = w * stride
    end = tf.minimum(num_tokens, start + length)
    valid = tf.logical_and(w >= 0, tf.logical_and(start <= position,
                                                  position < end))
    score = tf.minimum(position - start, end - 1 - position)
    better = tf.logical_and(valid, score > best_score)
    best = tf.where(better, w, best)
    best_score = tf.where(better, score, best_score)
  return best


def truncate_pair_lengths(len_a, len_b, max_seq_length):
  """tokenization.truncate_pair_lengths for int32 [B] lengths: the loop
  that drops a token from the longer side (b on ties) until [CLS] a [SEP] b
  [SEP] fits ends with a at max(ceil(budget / 2), budget - len_b) tokens,
  or all of a when shorter; a text without b keeps max_seq_length - 2."""
  budget = max_seq_length - 3
  over = len_a + len_b > budget
  kept_a = tf.minimum(len_a, tf.maximum((budget + 1) // 2, budget - len_b))
  pair_a = tf.where(over, kept_a, len_a)
  pair_b = tf.where(over, budget - kept_a, len_b)
  single = tf.equal(len_b, 0)
  return (tf.where(single, tf.minimum(len_a, max_seq_length - 2), pair_a),
          tf.where(single, 0, pair_b))


def _token_ranges(ids, text, begin, end):
  """RaggedTensor [R, (end - begin)] of indices into ids.flat_values:
  tokens begin..end of text `text` of each row (int32 [R] each)."""
  base_index = tf.cast(tf.gather(ids.row_starts(), text), tf.int32)
  return tf.ragged.range(base_index + begin, base_index + end)


def _column(rows):
  """fn(value) -> RaggedTensor [rows, 1] holding `value`."""
  return lambda value: tf.RaggedTensor.from_tensor(tf.fill([rows, 1], value))


def _model_inputs(rows, segments, marks):
  """The model's int32 [R, L] inputs from ragged rows of token ids, their
  segment ids and tag marks (None: no tagged position)."""
  # Every row holds [CLS] and [SEP]; an empty request still has width 2.
  dense = lambda ragged: tf.pad(ragged.to_tensor(0), [[0, 0], [
      0, tf.maximum(2 - ragged.bounding_shape(1, out_type=tf.int32), 0)]])
  input_ids = dense(rows)
  return {"input_ids": input_ids, "input_mask": dense(tf.ones_like(rows)),
          "segment_ids": dense(segments),
          features.TAG_MASK: (tf.zeros_like(input_ids) if marks is None
                              else dense(marks))}


class TextPlan(object):
  """How the texts of one input form became model rows, for the problem
  types' serve_text: text b's rows are the num_windows[b] rows after those
  of texts < b.  A unit form also has its model tokens, each unit's first
  token and the units' character spans."""

  def __init__(self, num_windows, max_seq_length, token_ids=None,
               first_token=None, unit_spans=None):
    """num_windows int32 [B]; token_ids RaggedTensor int32 [B, (tokens)];
    first_token RaggedTensor int32 [B, (units)] (-1: the unit has no
    token); unit_spans RaggedTensor int32 [B, (units), 2]."""
    self.num_windows, self.max_seq_length = num_windows, max_seq_length
    self.token_ids, self.first_token = token_ids, first_token
    self.unit_spans = unit_spans
    self.first_row = tf.cumsum(num_windows, exclusive=True)

  def first_rows(self, values):
    """[B, ...]: each text's first row of values [rows, ...]."""
    return tf.gather(values, self.first_row)

  def tagged_units(self):
    """bool [units of all texts]: the units that have a token."""
    return self.first_token.flat_values >= 0

  def unit_values(self, values):
    """RaggedTensor [B, (tagged units), ...]: of values [rows, length, ...]
    the one at each tagged unit's first token, from the window where the
    unit has the most context (features.best_windows' rule)."""
    num_tokens = tf.cast(self.token_ids.row_lengths(), tf.int32)
    _, stride, length = window_plan(num_tokens, self.max_seq_length)
    tagged = self.tagged_units()
    position = tf.boolean_mask(self.first_token.flat_values, tagged)
    text = tf.boolean_mask(
        tf.cast(self.first_token.value_rowids(), tf.int32), tagged)
    window = best_window(position, tf.gather(num_tokens, text),
                         tf.gather(self.num_windows, text), stride, length)
    row = tf.gather(self.first_row, text) + window
    local = position - window * stride + 1  # +1: [CLS]
    return tf.RaggedTensor.from_value_rowids(
        tf.gather_nd(values, tf.stack([row, local], 1)),
        tf.cast(text, tf.int64), self.first_token.nrows(), validate=False)

  def per_unit(self, tagged_values, fallback):
    """RaggedTensor [B, (units)]: tagged_values (one per tagged unit, in
    order) on the tagged units, `fallback` on the others."""
    first = self.first_token.flat_values
    where = tf.cast(tf.reshape(tf.where(self.tagged_units()), [-1]),
                    tf.int32)
    return self.first_token.with_flat_values(tf.tensor_scatter_nd_update(
        tf.fill(tf.shape(first), fallback), where[:, None], tagged_values))


class TextModel(tf.Module):
  """The text signatures around a loaded ids export (see module doc)."""

  def __init__(self, loaded, manifest, vocab_file, encoders, states):
    """states: {problem: its type's decode_state} (decoding.decode_states)."""
    super().__init__(name="text_model")
    self.model = loaded
    self.tokenizer = graph_tokenizer.GraphTokenizer(
        vocab_file, manifest["do_lower_case"],
        manifest.get("normalize_width", False))
    # One traced tokenizer every signature calls: the export holds (and
    # builds) its graph once, not once per signature and text field.
    self.tokenize = tf.function(
        self.tokenizer.tokenize, autograph=False,
        input_signature=[tf.TensorSpec([None], tf.string)])
    self.max_seq_length = int(manifest["max_seq_length"])
    self.cls_id, self.sep_id = self.tokenizer.cls_id, self.tokenizer.sep_id
    entries = {}
    for entry in manifest["problems"]:
      kind = types.get(entry["type"])
      if kind.decodes:
        entries[entry["name"]] = (entry, kind)
    self.entries, self.encoders, self.states = entries, encoders, states
    signature = loaded.signatures["tagged:serving_default"]
    self._outputs = {k: v.name for k, v in
                     signature.structured_outputs.items()}
    self._feeds = {k: t.name for k, t in zip(
        sorted(signature.structured_input_signature[1]), signature.inputs)}
    forms = {}
    for name, (entry, _) in entries.items():
      forms.setdefault(entry["inputs"], []).append(name)
    runs = {}
    for form, names in forms.items():
      fetches = {k: v for k, v in self._outputs.items()
                 if k.partition("/")[0] in names}
      runs[form] = loaded.prune(
          feeds=[self._feeds[k] for k in sorted(self._feeds)],
          fetches=fetches)
    self.forms, self._runs = forms, runs

  # ------------------------------------------------------------ pieces

  def _rows(self, ids, first_token, windowed):
    """Model rows of every text: (inputs dict [R, L], num_windows [B]);
    text b's rows are the num_windows[b] rows after those of texts < b."""
    num_tokens = tf.cast(ids.row_lengths(), tf.int32)
    if windowed:
      num_windows, stride, length = window_plan(num_tokens,
                                                self.max_seq_length)
    else:
      num_windows = tf.ones_like(num_tokens)
      stride, length = 1, self.max_seq_length - 2
    row_text = tf.repeat(tf.range(tf.size(num_tokens)), num_windows)
    window = tf.range(tf.size(row_text)) - tf.gather(
        tf.cumsum(num_windows, exclusive=True), row_text)
    begin = window * stride
    end = tf.minimum(tf.gather(num_tokens, row_text), begin + length)
    positions = _token_ranges(ids, row_text, begin, end)
    window_ids = tf.gather(ids.flat_values, positions)
    column = _column(tf.size(row_text))
    rows = tf.concat([column(self.cls_id), window_ids, column(self.sep_id)],
                     axis=1)
    if first_token is None:
      marks = None
    else:
      # 1 on each unit's first token (global token index).
      firsts = first_token.flat_values + tf.cast(tf.gather(
          ids.row_starts(), first_token.value_rowids()), tf.int32)
      firsts = tf.boolean_mask(firsts, first_token.flat_values >= 0)
      is_first = tf.scatter_nd(firsts[:, None], tf.ones_like(firsts),
                               tf.shape(ids.flat_values))
      marks = tf.concat([column(0), tf.gather(is_first, positions),
                         column(0)], axis=1)
    return _model_inputs(rows, tf.zeros_like(rows), marks), num_windows

  def _pair_rows(self, ids_a, ids_b):
    """Model rows of (text, text_b) pairs, one per pair: [CLS] a [SEP]
    (b [SEP]) with segment ids 0 / 1, truncated as features.pack (the
    original run_classifier) truncates; an empty b reads a alone."""
    len_a, len_b = truncate_pair_lengths(
        tf.cast(ids_a.row_lengths(), tf.int32),
        tf.cast(ids_b.row_lengths(), tf.int32), self.max_seq_length)
    text = tf.range(tf.size(len_a))
    part = lambda ids, n: tf.gather(ids.flat_values, _token_ranges(
        ids, text, tf.zeros_like(n), n))
    column = _column(tf.size(len_a))
    sep_b = tf.RaggedTensor.from_tensor(tf.fill([tf.size(len_a), 1],
                                                self.sep_id),
                                        lengths=tf.minimum(len_b, 1))
    a = tf.concat([column(self.cls_id), part(ids_a, len_a),
                   column(self.sep_id)], axis=1)
    b = tf.concat([part(ids_b, len_b), sep_b], axis=1)
    rows = tf.concat([a, b], axis=1)
    segments = tf.concat([tf.zeros_like(a), tf.ones_like(b)], axis=1)
    return _model_inputs(rows, segments, None), tf.ones_like(len_a)

  def _run(self, form, inputs):
    rows = tf.shape(inputs["input_ids"])[0]
    check = tf.debugging.assert_less_equal(
        rows, MAX_REQUEST_ROWS, message=(
            "serving_text: the request needs more than %d model rows "
            "(windows of max_seq_length tokens); send shorter texts or "
            "fewer at a time, or use the Predictor, which batches any "
            "length" % MAX_REQUEST_ROWS))
    with tf.control_dependencies([check]):
      feeds = [tf.identity(inputs[k]) for k in sorted(self._feeds)]
    return self._runs[form](*feeds)

  # ------------------------------------------------------------ serving

  def takes_pairs(self, names=None):
    """Whether problems `names` (all: None) include a pair problem, whose
    signature takes `text_b`."""
    names = list(self.entries) if names is None else names
    return any(self.entries[n][0]["inputs"] == "pair" for n in names)

  def serve(self, text, names=None, text_b=None):
    """The text signature's outputs for problems `names` (all: None);
    text_b: string [batch], the pair problems' second texts."""
    names = list(self.entries) if names is None else names
    text = tf.convert_to_tensor(text, tf.string)
    if text_b is None and self.takes_pairs(names):
      text_b = tf.zeros_like(text)  # no second texts: "" each
    ids, spans = self.tokenize(text)
    out = {"token_ids": ids.to_tensor(-1),
           "token_spans": spans.to_tensor(-1)}
    if text_b is not None:
      check = tf.debugging.assert_equal(
          tf.size(text_b), tf.size(text), message=(
              "serving_text: text_b must hold one text per text (\"\" for "
              "none)"))
      with tf.control_dependencies([check]):
        ids_b, spans_b = self.tokenize(tf.identity(text_b))
      out[TEXT_B + "_token_ids"] = ids_b.to_tensor(-1)
      out[TEXT_B + "_token_spans"] = spans_b.to_tensor(-1)
    chars = graph_tokenizer.decode(text)
    for form, members in self.forms.items():
      members = [n for n in members if n in names]
      if not members:
        continue
      first_token = None
      if form == "text":
        inputs, num_windows = self._rows(ids, None, False)
      elif form == "pair":
        inputs, num_windows = self._pair_rows(ids, ids_b)
      else:
        joined, unit_spans, joined_starts = unit_inputs(self.tokenizer,
                                                        chars, form)
        unit_ids, unit_token_spans = self.tokenizer.tokenize_chars(joined)
        first_token = first_tokens(unit_token_spans, joined_starts)
        inputs, num_windows = self._rows(unit_ids, first_token, True)
      outputs = self._run(form, inputs)
      plan = TextPlan(num_windows, self.max_seq_length,
                      unit_ids if first_token is not None else None,
                      first_token, unit_spans if first_token is not None
                      else None)
      for name in members:
        entry, kind = self.entries[name]
        own = {key.partition("/")[2]: value for key, value in outputs.items()
               if key.partition("/")[0] == name}
        served = kind.serve_text(name, own, plan, entry, self.encoders[name],
                                 self.states.get(name))
        out.update((name + "/" + key, value) for key, value in served.items())
    return out


def _text_function(model, names):
  # No autograph: the graph code is plain TensorFlow (explicit while
  # loops), and converting it would only slow down the export.
  spec = tf.TensorSpec([None], tf.string, name="text")
  if model.takes_pairs(names):
    @tf.function(input_signature=[spec, tf.TensorSpec(
        [None], tf.string, name=TEXT_B)], autograph=False)
    def serve_pairs(text, text_b):
      return model.serve(text, names, text_b)
    return serve_pairs

  @tf.function(input_signature=[spec], autograph=False)
  def serve(text):
    return model.serve(text, names)
  return serve


def add_text_signatures(export_dir):
  """Rewrites the SavedModel at `export_dir` (an Estimator export) with
  every signature it has plus `serving_text` and `serving_text:<problem>`;
  its assets.extra (manifest, vocab, label maps) are kept.  The new model
  is written beside it and swapped in, so a failure leaves the original."""
  import os  # pylint: disable=g-import-not-at-top
  import shutil  # pylint: disable=g-import-not-at-top
  from bert_mtl import export_assets  # pylint: disable=g-import-not-at-top
  assets = export_assets.read(export_dir)
  loaded = tf.saved_model.load(export_dir)
  variables = export_assets.variables_by_name(loaded)
  states = export_assets.decode_states(
      {e["name"]: e for e in assets.manifest["problems"]}, assets.encoders,
      variables)
  model = TextModel(loaded, assets.manifest, assets.vocab_file,
                    assets.encoders, states)
  # Kept by name so readers of the export (the Predictor's CRF
  # transitions) find them after the rewrite.
  model.exported_variables = dict(variables)
  signatures = dict(loaded.signatures)
  signatures[TEXT_SIGNATURE] = _text_function(model, None)
  for name in model.entries:
    signatures["%s:%s" % (TEXT_SIGNATURE, name)] = _text_function(
        model, [name])
  staged = export_dir.rstrip("/") + ".text"
  shutil.rmtree(staged, ignore_errors=True)
  tf.saved_model.save(model, staged, signatures=signatures)
  shutil.copytree(os.path.join(export_dir, "assets.extra"),
                  os.path.join(staged, "assets.extra"))
  retired = export_dir.rstrip("/") + ".ids"
  os.rename(export_dir, retired)
  os.rename(staged, export_dir)
  shutil.rmtree(retired)
  return export_dir
