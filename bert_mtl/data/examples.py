"""A run's examples and label maps: the pipeline settings, each split read
once, the seeded (stratified) max_examples subsets and the label maps
fitted on the training split.  No TensorFlow."""

import collections
import dataclasses
import zlib

import numpy as np

from bert_mtl import config as config_lib
from bert_mtl import problems
from bert_mtl.data import cache


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
  pretrain = run.pretrain
  if pretrain.seed is None:  # the run's seed draws its instances
    pretrain = dataclasses.replace(pretrain, seed=run.seed)
  return PipelineConfig(tokenizer, tokenizer.vocab_file,
                        tokenizer.do_lower_case, tokenizer.normalize_width,
                        run.max_seq_length, data_dir,
                        cache_dir or cache.default_cache_dir(),
                        run.num_shards, run.max_examples, run.num_threads,
                        run.max_target_length, target_tokenizer or tokenizer,
                        pretrain, run.num_processes)


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
