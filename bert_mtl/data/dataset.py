"""Problem groups -> cached TFRecords -> the Estimator input_fn.

One group (`a&b`) shares inputs: each record carries the labels of every
problem of its group.  Records of different groups (`|`) are mixed by the
sampling strategy, and every problem absent from a record gets zero labels
and `<problem>_present = 0`, so its head gives it no loss.

What a problem's label feature is, how it parses, pads and looks when the
problem is absent is its type's (bert_mtl.types); this module assembles
records and batches from them.  A document group (pretrain) writes its
type's own records.
"""

import collections
import inspect
import os
import sys
import zlib

import numpy as np
import tensorflow as tf

from bert_mtl import base, extension
from bert_mtl import config as config_lib
from bert_mtl import problems
from bert_mtl.config import PretrainConfig  # pylint: disable=unused-import
from bert_mtl.data import cache, features
from bert_mtl.problems import chain

PipelineConfig = collections.namedtuple("PipelineConfig", [
    "tokenizer", "vocab_file", "do_lower_case", "normalize_width",
    "max_seq_length", "data_dir",
    "cache_dir", "num_shards", "max_examples", "num_threads",
    "max_target_length", "target_tokenizer", "pretrain", "num_processes"])


def make_config(tokenizer, data_dir, max_seq_length=None, cache_dir=None,
                target_tokenizer=None, **options):
  """Everything that shapes the features (all of it goes into cache keys).

  Args:
    max_seq_length, options: RunConfig settings (max_examples, num_shards,
      num_threads, max_target_length, pretrain, num_processes), with its
      defaults; another key is a ConfigError.
    target_tokenizer: tokenizes seq2seq_text targets (default: `tokenizer`).
  """
  if max_seq_length is not None:
    options["max_seq_length"] = max_seq_length
  run = config_lib.RunConfig.from_dict(options)
  return PipelineConfig(tokenizer, tokenizer.vocab_file,
                        tokenizer.do_lower_case, tokenizer.normalize_width,
                        run.max_seq_length, data_dir,
                        cache_dir or cache.default_cache_dir(),
                        run.num_shards, run.max_examples, run.num_threads,
                        run.max_target_length, target_tokenizer or tokenizer,
                        run.pretrain, run.num_processes)


def subset_indices(size, max_examples, seed, labels=None):
  """Sorted indices of at most max_examples of `size` examples, drawn at
  random (seeded), so the examples keep their file order.  With `labels`
  (one per example, for classification) each label keeps its share
  (largest remainders, at least one example of each label while
  max_examples allows).  Corpora are often sorted by label, so a prefix
  would see one class only."""
  if not max_examples or size <= max_examples:
    return list(range(size))
  rng = np.random.RandomState(seed)
  if labels is None:
    return sorted(rng.choice(size, max_examples, replace=False).tolist())
  by_label = collections.OrderedDict()
  for index, label in enumerate(labels):
    by_label.setdefault(label, []).append(index)
  kinds = sorted(by_label, key=str)
  shares = np.array([len(by_label[l]) for l in kinds], np.float64)
  exact = shares * max_examples / size
  counts = np.floor(exact).astype(int)
  counts = np.maximum(counts, np.minimum(1, max_examples // len(kinds)))
  for k in np.argsort(-(exact - np.floor(exact)), kind="stable"):
    if counts.sum() >= max_examples:
      break
    counts[k] += 1
  while counts.sum() > max_examples:  # the minimum of one overshot
    counts[int(np.argmax(counts))] -= 1
  chosen = []
  for label, count in zip(kinds, counts):
    chosen.extend(rng.choice(by_label[label], int(count), replace=False))
  return sorted(int(i) for i in chosen)


def subset(examples, max_examples, seed, stratify=False):
  """The examples at subset_indices (stratified by label if asked)."""
  labels = [e.labels for e in examples] if stratify else None
  return [examples[i] for i in subset_indices(len(examples), max_examples,
                                              seed, labels)]


class SplitReader(object):
  """Reads each (problem, split) once per run: label fitting, every group's
  features and the scoring share the examples."""

  def __init__(self, data_dir):
    self.data_dir = data_dir
    self._read = {}

  def __call__(self, name, split):
    key = (name, split)
    if key not in self._read:
      self._read[key] = problems.read(name, split, self.data_dir)
    return self._read[key]


def read_examples(group, split, config, sources, read=None):
  """{problem: examples} of an `&` group, the same subset of each under
  max_examples (stratified when every problem of the group asks for it,
  as classification does)."""
  read = read or SplitReader(config.data_dir)
  examples = {n: read(sources.get(n, n), split) for n in group}
  if not config.max_examples:
    return examples
  first = examples[group[0]]
  stratify = all(problems.get(n).kind.stratified for n in group)
  seed = zlib.crc32(("%s/%s" % ("&".join(group), split)).encode("utf-8"))
  indices = subset_indices(len(first), config.max_examples, seed,
                           [e.labels for e in first] if stratify else None)
  # A problem with other examples is left whole for check_same_inputs to
  # report.
  return {n: [e[i] for i in indices] if len(e) == len(first) else e
          for n, e in examples.items()}


def fit_label_encoders(groups, config, read=None):
  """Label encoders of every problem, each fitted by its type (on the whole
  training split, even when max_examples trims the features: a quick run
  on a subset must still know every label)."""
  read = read or SplitReader(config.data_dir)
  encoders = {}
  for name in (n for group in groups for n in group):
    spec = problems.get(name)
    encoders[name] = spec.kind.fit_encoder(name, spec, config, read)
  return encoders


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
    """Everything that shapes the records: this module, the features and
    type modules (a type owns its record values), the native record
    builder's build, the examples, the vocabulary and the settings."""
    spec_files = [os.path.join(os.path.dirname(__file__), f)
                  for f in ("features.py", "dataset.py")]
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
      return self._unit_records(first, lo, hi)
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

  def _native_unit_records(self, first, lo, hi, chunk=4096):
    cls_id, sep_id = self._special_ids()
    for start in range(lo, hi, chunk):
      indices = self.order[start:min(hi, start + chunk)]
      ragged = features.encode_units(
          self.config.tokenizer, [first[i].inputs for i in indices],
          self.config.num_threads)
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

  def _unit_records(self, first, lo, hi):
    aligned = [n for n in self.group if self.kinds[n].token_aligned]
    if self.native_records and len(aligned) == len(self.group):
      yield from self._native_unit_records(first, lo, hi)
      return
    cls_id, sep_id = self._special_ids()
    alignments = features.align_units(self.config.tokenizer,
                                      [first[i].inputs for i in
                                       self.order[lo:hi]],
                                      self.config.num_threads)
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

  def build(self):
    """(shard paths, meta), from the cache when its key matches."""
    key = self.key()
    name = "%s-%s" % (self.name.replace("&", "+"), self.split)
    found = cache.cached_shards(self.config.cache_dir, name, key)
    if found is not None:
      return found
    meta = {"group": self.group, "split": self.split}
    size = len(self.examples[self.group[0]])
    processes = min(self.config.num_processes, size // 1000)
    if self.document or processes <= 1:
      return cache.write_shards(self.config.cache_dir, name, key,
                                self.records(), self.config.num_shards, meta)
    return cache.write_entry(
        self.config.cache_dir, name, key,
        lambda directory: _write_in_processes(self, directory, processes),
        meta)


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


def _parse_fn(group, all_problems, kinds, encoders, max_seq_length,
              max_predictions):
  """Record -> feature dict with every problem of the chain present."""
  document = [n for n in group if kinds[n].inputs == "document"]
  spec = {"input_ids": tf.io.VarLenFeature(tf.int64),
          "segment_ids": tf.io.VarLenFeature(tf.int64),
          "example_index": tf.io.FixedLenFeature([1], tf.int64),
          "window_start": tf.io.FixedLenFeature([1], tf.int64)}
  if not document:
    for name in group:
      spec.update(kinds[name].parse_spec(name, len(encoders[name])))
  absent_context = {"max_predictions": max_predictions}

  def parse(record):
    if document:
      name, = document
      out = kinds[name].parse_record(record, name, max_seq_length,
                                     max_predictions)
    else:
      parsed = tf.io.parse_single_example(record, spec)
      input_ids = tf.cast(tf.sparse.to_dense(parsed["input_ids"]), tf.int32)
      out = {"input_ids": input_ids,
             "input_mask": tf.ones_like(input_ids),
             "segment_ids": tf.cast(
                 tf.sparse.to_dense(parsed["segment_ids"]), tf.int32),
             "example_index": tf.cast(parsed["example_index"][0], tf.int32),
             "window_start": tf.cast(parsed["window_start"][0], tf.int32)}
      for name in group:
        out.update(kinds[name].parse(name, parsed))
    for name in all_problems:
      if name not in group:
        out.update(kinds[name].absent(name, len(encoders[name]),
                                      out["input_ids"], absent_context))
    return out
  return parse


def _padding(all_problems, kinds):
  values = {k: tf.constant(0, tf.int32) for k in (
      "input_ids", "input_mask", "segment_ids", "example_index",
      "window_start")}
  for name in all_problems:
    values.update(kinds[name].padding(name))
  return values


# The run configuration's defaults (each written once, in bert_mtl.config).
_RUN_DEFAULTS = config_lib.RunConfig()


def make_input_fn(groups, shards_by_group, encoders, batch_size, training,
                  num_replicas=1, seed=_RUN_DEFAULTS.seed,
                  strategy=_RUN_DEFAULTS.sampling,
                  sizes=None, num_instances=1 << 16, first_instance=0,
                  bucket_boundaries=None,
                  max_seq_length=_RUN_DEFAULTS.max_seq_length,
                  max_predictions_per_seq=(
                      _RUN_DEFAULTS.pretrain.max_predictions_per_seq),
                  all_problems=None, **strategy_kwargs):
  """An Estimator input_fn over the groups' cached shards.

  Args:
    groups: [[problem, ...], ...] from chain.parse.
    shards_by_group: per group, its TFRecord shard paths.
    batch_size: the GLOBAL batch size; each replica gets batch_size /
      num_replicas (Estimator + MirroredStrategy wants per-replica batches).
    training: sample groups (deterministically from `seed`) and repeat;
      otherwise visit every example of every group exactly once, in order.
    sizes: records per group (for the sampling probabilities).
    num_instances: training instances the group schedule spans (the run's
      steps x batch size: "annealed" anneals over them); beyond it the
      schedule repeats.
    first_instance: where a resumed run picks the schedule up.
    bucket_boundaries: sequence lengths that bound the padding buckets.
    max_seq_length, max_predictions_per_seq: the static shapes of pretrain
      records (the original tool's flags of the same names).
    all_problems: every problem of the model (default: those of `groups`);
      the others get absent labels.
  """
  if batch_size % num_replicas:
    raise ValueError("batch size %d is not divisible by %d replicas" %
                     (batch_size, num_replicas))
  per_replica = batch_size // num_replicas
  all_problems = all_problems or [n for g in groups for n in g]
  kinds = {n: problems.get(n).kind for n in all_problems}

  def input_fn(params=None, input_context=None):
    del params
    # Multi-worker: each input pipeline reads its own shard of every group.
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    # Built here: an Estimator calls input_fn inside its own graph.
    padding = _padding(all_problems, kinds)
    # Shuffle seeds combine with the graph seed; under a distribution
    # strategy input_fn runs in a graph without the RunConfig's seed, so
    # pin it: the same stream with one replica or many.
    tf.compat.v1.set_random_seed(seed)
    datasets = []
    for group, shards in zip(groups, shards_by_group):
      ds = tf.data.TFRecordDataset(shards)
      if pipelines > 1:
        ds = ds.shard(pipelines, pipeline_id)
      if training:
        ds = ds.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
        ds = ds.repeat()
      datasets.append(ds.map(
          _parse_fn(group, all_problems, kinds, encoders, max_seq_length,
                    max_predictions_per_seq),
          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))
    if training and len(datasets) > 1:
      choices = chain.sample_groups(sizes, num_instances, seed, strategy,
                                    **strategy_kwargs)
      choice_ds = tf.data.Dataset.from_tensor_slices(
          choices[first_instance:]).concatenate(
              tf.data.Dataset.from_tensor_slices(choices).repeat())
      ds = tf.data.Dataset.choose_from_datasets(datasets, choice_ds)
    else:
      ds = datasets[0]
      for other in datasets[1:]:
        ds = ds.concatenate(other)
    if bucket_boundaries:
      ds = ds.bucket_by_sequence_length(
          lambda f: tf.shape(f["input_ids"])[0], bucket_boundaries,
          [per_replica] * (len(bucket_boundaries) + 1),
          padding_values=padding, drop_remainder=training)
    else:
      ds = ds.padded_batch(per_replica, padding_values=padding,
                           drop_remainder=training)
    if not training and num_replicas > 1:
      ds = whole_steps(ds, num_replicas, padding)
    return ds.prefetch(tf.data.AUTOTUNE)
  return input_fn


def filler_batch(element_spec, padding):
  """A batch of one row that is all padding: input_mask 0 everywhere and
  every problem absent, so it adds no loss, metric or counted row
  (model_fn counts rows by input_mask[:, 0], the [CLS] every real row
  has).  Unknown dimensions are 1."""
  return {key: tf.fill([1 if d is None else d for d in spec.shape.as_list()],
                       tf.cast(padding[key], spec.dtype))
          for key, spec in element_spec.items()}


def whole_steps(batches, num_replicas, padding):
  """`batches` followed by the filler batches that make their number a
  multiple of num_replicas.

  Estimator.evaluate under MirroredStrategy hands consecutive batches to
  the replicas; when the last step has fewer batches than replicas, the
  step ends the input and its batches are sometimes dropped (a race: on 2
  replicas the final batch of an odd count is lost in some runs), so the
  metrics miss rows and differ run to run.  With whole steps every replica
  gets a batch in every step."""
  filler = tf.data.Dataset.from_tensors(
      filler_batch(batches.element_spec, padding)).repeat(num_replicas - 1)
  tagged = batches.map(_tagged(True)).concatenate(filler.map(_tagged(False)))

  def keep(counts, element):
    real, fillers = counts
    batch, is_real = element
    real += tf.cast(is_real, tf.int64)
    fillers += 1 - tf.cast(is_real, tf.int64)
    needed = (num_replicas - real % num_replicas) % num_replicas
    return (real, fillers), (batch, is_real | (fillers <= needed))

  def is_kept(batch, kept):
    del batch
    return kept

  def untagged(batch, kept):
    del kept
    return batch

  kept = tagged.scan((tf.constant(0, tf.int64), tf.constant(0, tf.int64)),
                     keep)
  return kept.filter(is_kept).map(untagged)


def _tagged(flag):
  def tag(batch):
    return batch, flag
  return tag
