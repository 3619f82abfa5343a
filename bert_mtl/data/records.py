"""A `&` group's split as cached TFRecords: one record per window (unit
inputs) or per text, each carrying the labels of every problem of the
group; the cache key of everything that shapes them; the worker processes
that write a large split.

What a problem's label feature is, is its type's (bert_mtl.types); a
document group (pretrain) writes its type's own records.
"""

import inspect
import os
import sys

import numpy as np

from bert_mtl import base, extension
from bert_mtl import problems
from bert_mtl.data import cache, features
from bert_mtl.data.examples import read_examples
from bert_mtl.problems import chain

def _int_feature(values):
  return np.asarray(values, np.int64).reshape(-1)


def _base_feature(input_ids, segment_ids, example_index, window_start):
  return {"input_ids": _int_feature(input_ids),
          "segment_ids": _int_feature(segment_ids),
          "example_index": _int_feature([example_index]),
          "window_start": _int_feature([window_start])}


def _serialize(feature):
  """{name: int64 or float32 array} -> tf.train.Example bytes (native)."""
  return extension.native().serialize_example(feature)


def _row(ragged, index):
  splits = ragged["row_splits"]
  return ragged["ids"][splits[index]:splits[index + 1]]


def _value_feature(problem_type, value):
  return np.asarray(value, problem_type.record_dtype()).reshape(-1)


def type_digest(kind):
  """sha256 of what defines a problem type's records: its module's file,
  else (a type defined in a notebook or in `python -c`, whose module is
  __main__ without a file) its class's source, else its methods' code."""
  module = sys.modules.get(type(kind).__module__)
  path = getattr(module, "__file__", None)
  if path and os.path.exists(path):
    return cache.file_digest(path)
  try:
    return cache.fingerprint(inspect.getsource(type(kind)))
  except (OSError, TypeError):
    pass
  codes = []
  for klass in type(kind).__mro__:
    for name, value in sorted(vars(klass).items()):
      code = getattr(value, "__code__", None)
      if code is not None:
        codes.append([klass.__qualname__, name, code.co_code.hex(),
                      repr(code.co_consts)])
  return cache.fingerprint(codes)


class GroupFeatures(object):
  """Features of one `&` group for one split.

  sources: {problem: other problem} reads that other problem's examples for
    it (same type and label set), e.g. {"pd98_cws": "pku_cws"} scores the
    pd98_cws head on the SIGHAN PKU gold test.
  read: a SplitReader shared by the run (each split is read once).
  """

  def __init__(self, group, split, config, encoders, sources=None,
               read=None):
    self.group = list(group)
    self.split = split
    self.config = config
    self.encoders = encoders
    self.sources = dict(sources or {})
    self.types = {n: problems.get(n).type for n in group}
    self.kinds = {n: problems.get(n).kind for n in group}
    for name, source in self.sources.items():
      if problems.get(source).type != self.types[name]:
        raise ValueError("%s (%s) cannot be scored on %s (%s): the types "
                         "differ" % (name, self.types[name], source,
                                     problems.get(source).type))
    self.examples = read_examples(self.group, split, config, self.sources,
                                  read)
    chain.check_same_inputs(self.group, self.examples)
    first = self.examples[self.group[0]]
    # Training records are written in a fixed random order: corpora are
    # often sorted (all positive reviews, then all negative), which a
    # shuffle buffer alone would not undo.
    self.order = (np.random.RandomState(0).permutation(len(first))
                  if split == "train" else np.arange(len(first)))
    self.document = any(k.inputs == "document" for k in self.kinds.values())
    self.units = not self.document and isinstance(first[0].inputs, list)
    self._encoded = None  # encode_units' dict of every example, in order
    for name, kind in self.kinds.items():
      if kind.inputs == "units" and not self.units:
        raise ValueError("%s is %s but group %s has text inputs" %
                         (name, kind.name, self.name))
      if kind.inputs == "text" and self.units:
        raise ValueError("%s is %s but group %s has unit-list inputs" %
                         (name, kind.name, self.name))

  @property
  def name(self):
    return "&".join(self.group)

  def key(self):
    """Everything that shapes the records: this module, the features,
    examples (subsets) and type modules (a type owns its record values),
    the native record builder's build, the examples, the vocabulary and
    the settings."""
    spec_files = [os.path.join(os.path.dirname(__file__), f)
                  for f in ("features.py", "examples.py", "records.py")]
    return cache.fingerprint(
        cache.FEATURES_VERSION,
        [cache.file_digest(f) for f in spec_files],
        sorted({type_digest(k) for k in self.kinds.values()}),
        extension.native().source_digest,  # the native record builder's build
        self.group, self.sources, self.split,
        cache.file_digest(self.config.vocab_file),
        self.config.do_lower_case, self.config.normalize_width,
        self.config.max_seq_length,
        self.config.max_target_length,
        cache.file_digest(self.config.target_tokenizer.vocab_file),
        self.config.pretrain if self.document else None,
        {n: self.encoders[n].labels for n in self.group},
        {n: cache.examples_digest(e) for n, e in self.examples.items()})

  def records(self, lo=0, hi=None):
    """Serialized tf.train.Examples, one per window of examples lo..hi-1."""
    first = self.examples[self.group[0]]
    if self.document:
      kind, = self.kinds.values()
      return kind.document_records(first, self.config, self.split)
    hi = len(first) if hi is None else hi
    if self.units:
      return self._unit_records(lo, hi)
    return self._text_records(first, lo, hi)

  def _special_ids(self):
    vocab = self.config.tokenizer.vocab
    return vocab[base.CLS_TOKEN], vocab[base.SEP_TOKEN]

  def _labels(self, lo, hi):
    """{problem: [label value or None]} of the examples at order[lo:hi],
    from their types (per example, not per token)."""
    return {name: self.kinds[name].label_values(
        self.encoders[name], [self.examples[name][i] for i in
                              self.order[lo:hi]], self.config)
            for name in self.group if not self.kinds[name].token_aligned}

  # Groups of token-aligned problems only are assembled by the extension
  # (identical records: tests compare both paths).
  native_records = True

  def _native_unit_records(self, lo, hi, chunk=4096):
    cls_id, sep_id = self._special_ids()
    for start in range(lo, hi, chunk):
      indices = self.order[start:min(hi, start + chunk)]
      ragged = features.take_rows(self.encoded(), indices)
      labels = [self._label_ids(name, indices) for name in self.group]
      yield from extension.native().unit_records(
          ragged["ids"], ragged["row_splits"], ragged["first_token"],
          ragged["unit_splits"], indices, self.group, labels,
          self.config.max_seq_length, cls_id, sep_id,
          features.window_stride(self.config.max_seq_length))

  def _label_ids(self, name, indices):
    """int32 ids of the unit labels of examples `indices`, concatenated
    (None when unlabelled)."""
    examples = self.examples[name]
    if examples[indices[0]].labels is None:
      return None
    encoder = self.encoders[name]
    ids, bad = extension.native().lookup_labels(
        [examples[i].labels for i in indices], encoder.ids)
    if ids is None:  # an error naming the file and line of the example
      example = examples[indices[bad]]
      self.kinds[name].label_value(encoder, example, self.config)
      raise AssertionError("lookup_labels and LabelEncoder disagree")
    return ids

  def _unit_records(self, lo, hi):
    aligned = [n for n in self.group if self.kinds[n].token_aligned]
    if self.native_records and len(aligned) == len(self.group):
      yield from self._native_unit_records(lo, hi)
      return
    cls_id, sep_id = self._special_ids()
    alignments = features.alignments_of(self.encoded(), self.order[lo:hi])
    labels = self._labels(lo, hi)
    for position, (index, alignment) in enumerate(
        zip(self.order[lo:hi], alignments)):
      # Every problem of the group shares the alignment, hence the windows;
      # a per-example label belongs to the whole input, so to the first
      # window.
      per_token = {}
      for name in aligned:
        example = self.examples[name][index]
        ids = (None if example.labels is None else self.kinds[
            name].label_value(self.encoders[name], example, self.config))
        per_token[name] = (features.token_labels(alignment, ids, pad=1),
                           ids is not None)
      for k, (window, input_ids, segment_ids, _) in enumerate(
          features.unit_rows(alignment, self.config.max_seq_length, cls_id,
                             sep_id)):
        feature = _base_feature(input_ids, segment_ids, index, window.start)
        for name in self.group:
          if name in per_token:
            # [CLS] + the window's tokens + [SEP], padded labels included.
            token_ids, present = per_token[name]
            value = token_ids[window.start:window.end + 2].copy()
            value[0] = value[-1] = base.IGNORE
          else:
            value = labels[name][position] if k == 0 else None
            present = value is not None
          feature.update(self._label_feature(name, value, present))
        yield _serialize(feature)

  def _label_feature(self, name, value, present):
    kind = self.kinds[name]
    if value is None:  # no labels (predict), or not the first window
      value, present = kind.unlabelled_value(len(self.encoders[name])), False
    return {name + "_label": _value_feature(kind, value),
            name + "_present": _int_feature([int(present)])}

  def _text_records(self, first, lo, hi):
    cls_id, sep_id = self._special_ids()
    tokenizer, threads = self.config.tokenizer, self.config.num_threads
    chunk = [first[i] for i in self.order[lo:hi]]
    ragged_a = tokenizer.encode_ragged(
        [e.inputs if isinstance(e.inputs, str) else
         e.inputs[0] if isinstance(e.inputs, tuple) else " ".join(e.inputs)
         for e in chunk], threads)
    ragged_b = tokenizer.encode_ragged(
        [e.inputs[1] if isinstance(e.inputs, tuple) else "" for e in chunk],
        threads)
    labels = self._labels(lo, hi)
    for position, index in enumerate(self.order[lo:hi]):
      input_ids, segment_ids = features.pack(
          _row(ragged_a, position), self.config.max_seq_length, cls_id,
          sep_id, _row(ragged_b, position))
      feature = _base_feature(input_ids, segment_ids, index, 0)
      for name in self.group:
        value = labels[name][position]
        feature.update(self._label_feature(name, value, value is not None))
      yield _serialize(feature)

  # The cache entry's copy of the unit groups' encoding (encode_units'
  # arrays), which decoding reads instead of tokenizing again.
  ENCODING = "encoding.npz"

  def encoded(self):
    """encode_units' dict of a unit group's examples (in example order),
    tokenized once: the records' rows and the decoding of their outputs
    both come from it."""
    if self._encoded is None:
      self._encoded = features.encode_units(
          self.config.tokenizer,
          [e.inputs for e in self.examples[self.group[0]]],
          self.config.num_threads)
    return self._encoded

  def encodings(self):
    """[features.Encoding] of every example of a unit group (None for
    other groups), from the cache entry where it holds them."""
    if not self.units:
      return None
    if self._encoded is None:
      shards, _ = self.build()
      path = cache.attachment_path(shards, self.ENCODING)
      if os.path.exists(path):
        with np.load(path) as stored:
          self._encoded = {k: stored[k] for k in stored.files}
    return features.encodings_of(self.encoded(), self.config.max_seq_length)

  def build(self):
    """(shard paths, meta), from the cache when its key matches."""
    key = self.key()
    name = "%s-%s" % (self.name.replace("&", "+"), self.split)
    found = cache.cached_shards(self.config.cache_dir, name, key)
    if found is not None:
      return found
    meta = {"group": self.group, "split": self.split}
    attachments = {}
    if self.units:
      self.encoded()  # before the writer processes fork: they share it
      attachments[self.ENCODING] = lambda path: _save_arrays(
          path, self.encoded())
    size = len(self.examples[self.group[0]])
    processes = min(self.config.num_processes, size // 1000)
    if self.document or processes <= 1:
      return cache.write_shards(self.config.cache_dir, name, key,
                                self.records(), self.config.num_shards, meta,
                                attachments)
    return cache.write_entry(
        self.config.cache_dir, name, key,
        lambda directory: _write_in_processes(self, directory, processes),
        meta, attachments)


def _save_arrays(path, arrays):
  """np.savez to exactly `path` (np.savez appends .npz to other names)."""
  with open(path, "wb") as f:
    np.savez(f, **arrays)


def _write_in_processes(group_features, directory, processes):
  """Forks `processes` writers, each turning a contiguous slice of the
  examples into its own shards.  The children use only the native
  tokenizer and file I/O (no TensorFlow), which is safe after fork.

  Returns:
    (shard file names, record count).
  """
  import multiprocessing  # pylint: disable=g-import-not-at-top
  import queue  # pylint: disable=g-import-not-at-top
  import traceback  # pylint: disable=g-import-not-at-top
  size = len(group_features.examples[group_features.group[0]])
  bounds = np.linspace(0, size, processes + 1).astype(int)
  per_process = max(1, -(-group_features.config.num_shards // processes))
  names = [["part-%05d-%05d.tfrecord" % (p, j) for j in range(per_process)]
           for p in range(processes)]
  context = multiprocessing.get_context("fork")
  results = context.Queue()

  def work(p):
    try:
      writer = cache.ShardWriter([os.path.join(directory, n)
                                  for n in names[p]])
      for record in group_features.records(bounds[p], bounds[p + 1]):
        writer.write(record)
      writer.close()
      results.put((p, writer.count, None))
    except BaseException:  # pylint: disable=broad-except
      results.put((p, 0, traceback.format_exc()))

  children = [context.Process(target=work, args=(p,))
              for p in range(processes)]
  for child in children:
    child.start()
  reports = []
  try:
    while len(reports) < processes:
      try:
        reports.append(results.get(timeout=1.0))
      except queue.Empty:
        dead = [c.exitcode for c in children if c.exitcode]
        if dead:  # killed before it could report (e.g. out of memory)
          raise RuntimeError("a feature-writing process died (exit code "
                             "%s)" % dead[0]) from None
  finally:
    for child in children:
      if len(reports) < processes:
        child.kill()
      child.join()
  errors = [error for _, _, error in reports if error]
  if errors:
    raise RuntimeError("a feature-writing process failed:\n" + errors[0])
  return [n for group in names for n in group], sum(c for _, c, _ in reports)
