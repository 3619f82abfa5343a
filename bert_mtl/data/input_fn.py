"""Cached records -> the Estimator input_fn: the groups' records parsed
with every problem of the chain present (zero labels and
`<problem>_present = 0` for the problems absent from a record, so their
heads give it no loss), mixed by the sampling strategy, bucketed by length
and batched; under a distribution strategy, evaluation batches come in
whole steps (filler batches).  How a problem's label parses, pads and looks
when absent is its type's (bert_mtl.types).
"""

import tensorflow as tf

from bert_mtl import config as config_lib
from bert_mtl import problems
from bert_mtl.problems import chain

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
