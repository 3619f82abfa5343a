"""Problem groups -> cached TFRecords -> the Estimator input_fn.

One group (`a&b`) shares inputs: each record carries the labels of every
problem of its group.  Records of different groups (`|`) are mixed by the
sampling strategy, and every problem absent from a record gets zero labels
and `<problem>_present = 0`, so its head gives it no loss.

Supported here: cls, multi_cls and seq_tag problems.  seq2seq and pretrain
features are not built yet and fail with a clear message.
"""

import collections
import os

import numpy as np
import tensorflow as tf

from bert_mtl import problems
from bert_mtl.data import cache, features
from bert_mtl.problems import chain, types

SUPPORTED_TYPES = ("cls", "multi_cls", "seq_tag")

PipelineConfig = collections.namedtuple("PipelineConfig", [
    "tokenizer", "vocab_file", "do_lower_case", "max_seq_length", "data_dir",
    "cache_dir", "num_shards", "max_examples", "num_threads"])


def make_config(tokenizer, data_dir, max_seq_length=128, cache_dir=None,
                num_shards=4, max_examples=None, num_threads=2):
  return PipelineConfig(tokenizer, tokenizer.vocab_file,
                        tokenizer.do_lower_case, max_seq_length, data_dir,
                        cache_dir or cache.default_cache_dir(), num_shards,
                        max_examples, num_threads)


def _read(name, split, config):
  examples = problems.read(name, split, config.data_dir)
  return examples[:config.max_examples] if config.max_examples else examples


def fit_label_encoders(groups, config):
  """Label encoders of every labelled problem, from its training split."""
  encoders = {}
  for name in (n for group in groups for n in group):
    spec = problems.get(name)
    if spec.type not in SUPPORTED_TYPES:
      raise NotImplementedError(
          "problem %s: %s features are not built by the data pipeline yet" %
          (name, spec.type))
    kind = types.TYPES[spec.type].label_kind
    examples = _read(name, "train", config)
    if kind == "single":
      label_lists = [[e.labels] for e in examples]
    else:
      label_lists = [e.labels for e in examples]
    encoders[name] = problems.LabelEncoder.fit(label_lists, name)
  return encoders


def _int_feature(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(
      value=np.asarray(values, np.int64).reshape(-1)))


def _base_feature(input_ids, segment_ids, example_index, window_start):
  return {"input_ids": _int_feature(input_ids),
          "segment_ids": _int_feature(segment_ids),
          "example_index": _int_feature([example_index]),
          "window_start": _int_feature([window_start])}


def _serialize(feature):
  return tf.train.Example(features=tf.train.Features(
      feature=feature)).SerializeToString()


def _row(ragged, index):
  splits = ragged["row_splits"]
  return ragged["ids"][splits[index]:splits[index + 1]]


class GroupFeatures(object):
  """Features of one `&` group for one split."""

  def __init__(self, group, split, config, encoders):
    self.group = list(group)
    self.split = split
    self.config = config
    self.encoders = encoders
    self.types = {n: problems.get(n).type for n in group}
    self.examples = {n: _read(n, split, config) for n in group}
    chain.check_same_inputs(self.group, self.examples)
    first = self.examples[self.group[0]]
    self.units = isinstance(first[0].inputs, list)
    for name, problem_type in self.types.items():
      if (problem_type == "seq_tag") != self.units:
        raise ValueError("group %s mixes sequence tagging with classification"
                         " inputs" % "&".join(group))

  @property
  def name(self):
    return "&".join(self.group)

  def key(self):
    spec_files = [os.path.join(os.path.dirname(__file__), f)
                  for f in ("features.py", "dataset.py")]
    return cache.fingerprint(
        cache.FEATURES_VERSION, [cache.file_digest(f) for f in spec_files],
        self.group, self.split, cache.file_digest(self.config.vocab_file),
        self.config.do_lower_case, self.config.max_seq_length,
        {n: self.encoders[n].labels for n in self.group},
        {n: cache.examples_digest(e) for n, e in self.examples.items()})

  def labels_for(self, name, example):
    encoder = self.encoders[name]
    if example.labels is None:  # predict: no labels
      return None
    if self.types[name] == "cls":
      return encoder.encode([example.labels], example.path, example.line)[0]
    if self.types[name] == "multi_cls":
      hot = np.zeros(len(encoder), np.int64)
      hot[encoder.encode(example.labels, example.path, example.line)] = 1
      return hot
    return encoder.encode(example.labels, example.path, example.line)

  def records(self):
    """Serialized tf.train.Examples, one per window of every example."""
    first = self.examples[self.group[0]]
    if self.units:
      return self._unit_records(first)
    return self._text_records(first)

  def _special_ids(self):
    vocab = self.config.tokenizer.vocab
    return vocab["[CLS]"], vocab["[SEP]"]

  def _labels(self, index):
    return {n: self.labels_for(n, self.examples[n][index]) for n in self.group}

  def _unit_records(self, first):
    cls_id, sep_id = self._special_ids()
    alignments = features.align_units(self.config.tokenizer,
                                      [e.inputs for e in first],
                                      self.config.num_threads)
    for index, alignment in enumerate(alignments):
      labels = self._labels(index)
      # Every problem of the group shares the alignment, hence the windows.
      per_problem = {n: features.seq_tag_windows(
          alignment, labels[n], self.config.max_seq_length)
                     for n in self.group}
      for k, (window, _) in enumerate(per_problem[self.group[0]]):
        input_ids, segment_ids = features.pack(
            alignment.ids[window.start:window.end],
            self.config.max_seq_length, cls_id, sep_id)
        feature = _base_feature(input_ids, segment_ids, index, window.start)
        for name, windowed in per_problem.items():
          feature[name + "_label"] = _int_feature(np.concatenate(
              [[features.IGNORE], windowed[k][1], [features.IGNORE]]))
        yield _serialize(feature)

  def _text_records(self, first):
    cls_id, sep_id = self._special_ids()
    tokenizer, threads = self.config.tokenizer, self.config.num_threads
    ragged_a = tokenizer.encode_ragged(
        [e.inputs if isinstance(e.inputs, str) else e.inputs[0]
         for e in first], threads)
    ragged_b = tokenizer.encode_ragged(
        [e.inputs[1] if isinstance(e.inputs, tuple) else "" for e in first],
        threads)
    for index in range(len(first)):
      input_ids, segment_ids = features.pack(
          _row(ragged_a, index), self.config.max_seq_length, cls_id, sep_id,
          _row(ragged_b, index))
      feature = _base_feature(input_ids, segment_ids, index, 0)
      for name, value in self._labels(index).items():
        if value is None:  # predict: no labels
          value = (np.zeros(len(self.encoders[name]), np.int64)
                   if self.types[name] == "multi_cls" else 0)
        feature[name + "_label"] = _int_feature(value)
      yield _serialize(feature)

  def build(self):
    """(shard paths, meta), from the cache when its key matches."""
    key = self.key()
    name = "%s-%s" % (self.name.replace("&", "+"), self.split)
    found = cache.cached_shards(self.config.cache_dir, name, key)
    if found is not None:
      return found
    return cache.write_shards(self.config.cache_dir, name, key,
                              self.records(), self.config.num_shards,
                              extra_meta={"group": self.group,
                                          "split": self.split})


def feature_spec(name, problem_type, num_labels):
  """Parsing spec of one problem's label feature."""
  if problem_type == "cls":
    return tf.io.FixedLenFeature([1], tf.int64)
  if problem_type == "multi_cls":
    return tf.io.FixedLenFeature([num_labels], tf.int64)
  return tf.io.VarLenFeature(tf.int64)


def _parse_fn(group, all_problems, types_by_name, encoders):
  """Record -> feature dict with every problem of the chain present."""
  spec = {"input_ids": tf.io.VarLenFeature(tf.int64),
          "segment_ids": tf.io.VarLenFeature(tf.int64),
          "example_index": tf.io.FixedLenFeature([1], tf.int64),
          "window_start": tf.io.FixedLenFeature([1], tf.int64)}
  for name in group:
    spec[name + "_label"] = feature_spec(name, types_by_name[name],
                                         len(encoders[name]))

  def parse(record):
    parsed = tf.io.parse_single_example(record, spec)
    input_ids = tf.cast(tf.sparse.to_dense(parsed["input_ids"]), tf.int32)
    out = {"input_ids": input_ids,
           "input_mask": tf.ones_like(input_ids),
           "segment_ids": tf.cast(tf.sparse.to_dense(parsed["segment_ids"]),
                                  tf.int32),
           "example_index": tf.cast(parsed["example_index"][0], tf.int32),
           "window_start": tf.cast(parsed["window_start"][0], tf.int32)}
    for name in all_problems:
      problem_type = types_by_name[name]
      present = name in group
      if problem_type == "seq_tag":
        label = (tf.sparse.to_dense(parsed[name + "_label"]) if present else
                 tf.fill(tf.shape(input_ids), tf.constant(
                     features.IGNORE, tf.int64)))
      elif problem_type == "multi_cls":
        label = (parsed[name + "_label"] if present else
                 tf.zeros([len(encoders[name])], tf.int64))
      else:
        label = parsed[name + "_label"][0] if present else tf.constant(
            0, tf.int64)
      out[name + "_label"] = tf.cast(label, tf.int32)
      out[name + "_present"] = tf.constant(1 if present else 0, tf.int32)
    return out
  return parse


def _padding(all_problems, types_by_name):
  values = {"input_ids": 0, "input_mask": 0, "segment_ids": 0,
            "example_index": 0, "window_start": 0}
  for name in all_problems:
    values[name + "_label"] = (features.IGNORE
                               if types_by_name[name] == "seq_tag" else 0)
    values[name + "_present"] = 0
  return {k: tf.constant(v, tf.int32) for k, v in values.items()}


def make_input_fn(groups, shards_by_group, encoders, batch_size, training,
                  num_replicas=1, seed=0, strategy="proportional",
                  sizes=None, num_instances=1 << 20, bucket_boundaries=None,
                  **strategy_kwargs):
  """An Estimator input_fn over the groups' cached shards.

  Args:
    groups: [[problem, ...], ...] from chain.parse.
    shards_by_group: per group, its TFRecord shard paths.
    batch_size: the GLOBAL batch size; each replica gets batch_size /
      num_replicas (Estimator + MirroredStrategy wants per-replica batches).
    training: sample groups (deterministically from `seed`) and repeat;
      otherwise visit every example of every group exactly once, in order.
    sizes: records per group (for the sampling probabilities).
    bucket_boundaries: sequence lengths that bound the padding buckets.
  """
  if batch_size % num_replicas:
    raise ValueError("batch size %d is not divisible by %d replicas" %
                     (batch_size, num_replicas))
  per_replica = batch_size // num_replicas
  all_problems = [n for g in groups for n in g]
  types_by_name = {n: problems.get(n).type for n in all_problems}
  padding = _padding(all_problems, types_by_name)

  def input_fn(params=None, input_context=None):
    del params, input_context
    datasets = []
    for group, shards in zip(groups, shards_by_group):
      ds = tf.data.TFRecordDataset(shards)
      if training:
        ds = ds.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
        ds = ds.repeat()
      datasets.append(ds.map(
          _parse_fn(group, all_problems, types_by_name, encoders),
          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))
    if training and len(datasets) > 1:
      choices = chain.sample_groups(sizes, num_instances, seed, strategy,
                                    **strategy_kwargs)
      choice_ds = tf.data.Dataset.from_tensor_slices(choices).repeat()
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
    return ds.prefetch(tf.data.AUTOTUNE)
  return input_fn
