"""The data pipeline: raw corpora -> cached TFRecords -> batches.

1. Feature building for weibo_ner&weibo_cws|msra_ner|pd98_cws&pd98_pos
   (training splits): bert_mtl's builder (native tokenizer, span alignment,
   windows, sharded TFRecords) vs a straightforward single-process
   pure-Python builder in the original project's style (per sentence:
   Python tokenizer, label per token, a tf.train.Example, one writer),
   timed on the same sentences in the same run.
2. Input-pipeline headroom: batches/s the input_fn delivers from the cache
   vs batches/s a BERT-Base-shaped training step consumes on this machine.
3. Padded share of tokens per batch, with and without length bucketing.

    python benchmarks/pipeline.py [--baseline_sentences 8000]
"""

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

from bert_mtl.testing import reference_tokenization as ref  # pylint: disable=g-import-not-at-top,wrong-import-position

from bert_mtl import problems, tokenization  # pylint: disable=g-import-not-at-top,wrong-import-position
from bert_mtl.data import dataset  # pylint: disable=g-import-not-at-top,wrong-import-position
from common import data_dir, data_file  # pylint: disable=g-import-not-at-top,wrong-import-position

CHAIN = "weibo_ner&weibo_cws|msra_ner|pd98_cws&pd98_pos"
BASE = dict(vocab_size=21128, hidden_size=768, num_hidden_layers=12,
            num_attention_heads=12, intermediate_size=3072,
            max_position_embeddings=512, type_vocab_size=2)


def build_all(tokenizer, cache_dir, max_seq_length, num_threads, processes):
  config = dataset.make_config(tokenizer, data_dir(), max_seq_length,
                               cache_dir=cache_dir, num_threads=num_threads,
                               num_processes=processes)
  groups = problems.parse(CHAIN)
  encoders = dataset.fit_label_encoders(groups, config)
  features = [dataset.GroupFeatures(g, "train", config, encoders)
              for g in groups]
  start = time.perf_counter()
  built = [f.build() for f in features]
  seconds = time.perf_counter() - start
  sentences = sum(len(f.examples[f.group[0]]) for f in features)
  return seconds, sentences, groups, encoders, built, features


def pure_python_build(features, encoders, vocab, path, limit,
                      max_seq_length):
  """The original project's way: one sentence at a time, in Python, on
  every k-th sentence of every group (the same mix of groups as ours)."""
  total = sum(len(f.examples[f.group[0]]) for f in features)
  every = max(1, -(-total // limit))
  writer = tf.io.TFRecordWriter(path)
  count = 0
  start = time.perf_counter()
  for group_features in features:
    group = group_features.group
    examples = group_features.examples
    for index in range(0, len(examples[group[0]]), every):
      example = examples[group[0]][index]
      ids, labels = [vocab["[CLS]"]], {n: [-1] for n in group}
      for position, unit in enumerate(example.inputs):
        pieces = ref.tokenize(unit, vocab, True)
        for k, piece in enumerate(pieces):
          ids.append(vocab.get(piece, vocab["[UNK]"]))
          for name in group:
            label = examples[name][index].labels[position]
            labels[name].append(encoders[name].ids[label] if k == 0 else -1)
      ids = ids[:max_seq_length - 1] + [vocab["[SEP]"]]
      feature = {"input_ids": tf.train.Feature(
          int64_list=tf.train.Int64List(value=ids))}
      for name in group:
        values = labels[name][:max_seq_length - 1] + [-1]
        feature[name + "_label"] = tf.train.Feature(
            int64_list=tf.train.Int64List(value=values))
      writer.write(tf.train.Example(features=tf.train.Features(
          feature=feature)).SerializeToString())
      count += 1
  writer.close()
  return time.perf_counter() - start, count


def input_rate(groups, encoders, built, batch_size, max_seq_length,
               boundaries, batches):
  input_fn = dataset.make_input_fn(
      groups, [b[0] for b in built], encoders, batch_size, True,
      sizes=[b[1]["count"] for b in built], bucket_boundaries=boundaries,
      max_seq_length=max_seq_length)
  iterator = iter(input_fn())
  next(iterator)
  real = total = 0
  start = time.perf_counter()
  for _ in range(batches):
    batch = next(iterator)
    mask = batch["input_mask"].numpy()
    real += mask.sum()
    total += mask.size
  return batches / (time.perf_counter() - start), 1 - real / total


def training_step_rate(batch_size, seq_length, steps):
  """Steps/s of a BERT-Base-shaped training step (forward, backward, Adam)
  at the given shape, one replica, float32."""
  from bert_mtl import modeling, optimization  # pylint: disable=g-import-not-at-top
  graph = tf.Graph()
  with graph.as_default():
    rng = np.random.default_rng(0)
    ids = tf.constant(rng.integers(1000, 20000, (batch_size, seq_length)),
                      tf.int32)
    model = modeling.BertModel(modeling.BertConfig(**BASE), True, ids)
    logits = tf.compat.v1.layers.dense(model.get_sequence_output(), 7)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.zeros_like(ids), logits=logits))
    train_op = optimization.create_optimizer(loss, 1e-5, 100, 0)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      session.run(train_op)
      start = time.perf_counter()
      for _ in range(steps):
        session.run(train_op)
      return steps / (time.perf_counter() - start)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--baseline_sentences", type=int, default=8000,
                      help="sentences (all groups) for the pure-Python "
                      "builder")
  parser.add_argument("--max_seq_length", type=int, default=128)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--train_steps", type=int, default=3)
  args = parser.parse_args()
  tokenizer = tokenization.FullTokenizer(
      data_file("vocab/chinese_vocab.txt"))
  work = tempfile.mkdtemp(prefix="bert_mtl_pipeline_")
  try:
    seconds, sentences, groups, encoders, built, features = build_all(
        tokenizer, os.path.join(work, "cache"), args.max_seq_length, 1, 2)
    records = sum(b[1]["count"] for b in built)
    vocab = ref.load_vocab(tokenizer.vocab_file)
    base_seconds, base_count = pure_python_build(
        features, encoders, vocab, os.path.join(work, "baseline.tfrecord"),
        args.baseline_sentences, args.max_seq_length)
    ours = sentences / seconds
    baseline = base_count / base_seconds
    print("feature building, %s (train splits)" % CHAIN)
    print("  bert_mtl builder (2 processes): %d sentences "
          "-> %d records in %.2f s = %.0f sentences/s" %
          (sentences, records, seconds, ours))
    print("  pure-Python single-process builder (baseline): %d sentences in "
          "%.2f s = %.0f sentences/s" % (base_count, base_seconds, baseline))
    print("  ratio: %.1fx" % (ours / baseline))

    boundaries = [12, 16, 20, 24, 32, 40, 48, 56, 64, 80, 96, 112]
    plain_rate, plain_pad = input_rate(groups, encoders, built,
                                       args.batch_size, args.max_seq_length,
                                       None, 300)
    bucket_rate, bucket_pad = input_rate(groups, encoders, built,
                                         args.batch_size,
                                         args.max_seq_length, boundaries, 300)
    step_rate = training_step_rate(args.batch_size, args.max_seq_length,
                                   args.train_steps)
    print("input pipeline (batch %d, max length %d)" % (
        args.batch_size, args.max_seq_length))
    print("  delivered: %.1f batches/s without bucketing, %.1f with" %
          (plain_rate, bucket_rate))
    print("  BERT-Base training step consumes: %.2f batches/s (at the full "
          "length %d)" % (step_rate, args.max_seq_length))
    print("  headroom: %.0fx (bucketed pipeline / training step)" %
          (bucket_rate / step_rate))
    print("padded share of tokens: %.1f%% without bucketing, %.1f%% with "
          "bucketing %s" % (100 * plain_pad, 100 * bucket_pad, boundaries))
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
