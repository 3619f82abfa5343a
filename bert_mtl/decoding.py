"""Model outputs -> one result per example, in the label space: the one path
evaluation and the Predictor share.

Both hand over the model's per-row outputs (a row is one window of an
example, named by `example_index` and `window_start`), the examples'
inputs and, for unit inputs, the encodings (data.features.Encoding: unit
alignment and windows) the rows were built from; the rows of an example
are put in window order and each problem's type decodes them
(types.<type>.decode).  What a problem's decoding needs to know of its
training (its type, metric, scheme, CRF settings, how its text was cut into
units) is its entry: written into the export's manifest, and rebuilt from
the run for evaluation by the same function.
"""

import collections

from bert_mtl import problems, types
from bert_mtl.data import features

# What a type's decode and serve see of an example besides its rows.
Context = collections.namedtuple("Context", [
    "alignment",    # features.UnitAlignment of the example (unit inputs)
    "windows",      # its features.Windows
    "state",        # its type's decode_state (seq_tag: CRF transitions)
    "spec",         # the problem's entry (see problem_entry)
    "text",         # the raw text (Predictor) or None
    "units",        # [(unit, character offset)] of the text, or None
])


def problem_entry(name, settings, inputs):
  """The problem's decoding entry (also its manifest entry).

  Args:
    settings: the problem's resolved head settings.
    inputs: how its inputs were given in training: "text", "pair" (a
      (text_a, text_b) pair), "document", or a unit kind of
      features.UNIT_KINDS.
  """
  spec = problems.get(name)
  entry = {"name": name, "type": spec.type, "metric": spec.metric,
           "scheme": spec.scheme, "inputs": inputs,
           "labels": "labels/%s.json" % name}
  entry.update(spec.kind.manifest(settings))
  return entry


def input_form(examples):
  """`inputs` of problem_entry from a problem's training examples."""
  first = examples[0].inputs
  if isinstance(first, list):
    return features.unit_kind(e.inputs for e in examples)
  return "pair" if isinstance(first, tuple) else "text"


def rows_by_example(predictions, names):
  """{example_index: [{problem: {output: value}}, ...] in window order}
  from an iterable of per-row prediction dicts (keys `<problem>/<output>`)."""
  by_example = collections.defaultdict(list)
  for p in predictions:
    row = {n: {} for n in names}
    for key, value in p.items():
      problem, slash, output = key.partition("/")
      if slash and problem in row:
        row[problem][output] = value
    by_example[int(p["example_index"])].append((int(p["window_start"]), row))
  return {i: [row for _, row in sorted(rows, key=lambda r: r[0])]
          for i, rows in by_example.items()}


def decode_group(group, inputs, rows, encoders, entries, encodings=None,
                 states=None, texts=None, units=None):
  """Per problem of `group`, one result per example.

  Args:
    inputs: the examples' inputs (unit lists or texts), index-aligned with
      the predictions' example_index.
    rows: rows_by_example of the model's per-row prediction dicts.
    entries: {problem: problem_entry}.
    encodings: [features.Encoding] per example of a unit group: the one
      its rows were built from (nothing is tokenized again here).
    states: {problem: decode state} (decode_states).
    texts, units: the Predictor's raw texts and their units.

  Returns:
    {problem: [result per example]}.
  """
  states = states or {}
  kinds = {n: types.get(entries[n]["type"]) for n in group}
  if encodings is None and any(k.token_aligned for k in kinds.values()):
    raise ValueError("decoding %s needs the examples' encodings" %
                     "&".join(group))
  out = {n: [] for n in group}
  for index in range(len(inputs)):
    if index not in rows:
      raise ValueError("no prediction for example %d of %s" %
                       (index, "&".join(group)))
    alignment, spans = encodings[index] if encodings else (None, None)
    for name in group:
      context = Context(alignment, spans, states.get(name),
                        entries[name], texts[index] if texts else None,
                        units[index] if units else None)
      out[name].append(kinds[name].decode(
          [r[name] for r in rows[index]], encoders[name], context))
  return out


def decode_states(entries, encoders, read_variable):
  """{problem: its type's decode_state} of the problems among `entries`
  ({problem: entry}; encoders: {problem: LabelEncoder}) that have one;
  read_variable(name) returns a variable's value of the checkpoint or
  export (None if absent)."""
  out = {}
  for name, entry in entries.items():
    state = types.get(entry["type"]).decode_state(name, entry, encoders[name],
                                                  read_variable)
    if state is not None:
      out[name] = state
  return out
