"""What each head costs on top of a BERT-Base-shaped body, and beam search.

1. Training-step time (forward, backward, AdamWeightDecay) of the body alone
   (a dense layer on the sequence output as the only head, the cheapest
   possible) vs the body with each head type: ratios > 1 are the head's
   overhead.  Variants are timed alternately, best of the rounds.
2. Beam-search decoding (seq2seq_text head, 2 decoder layers, beam 4, 16
   target tokens): sentences per second at batch 32 vs batch 1.

    python benchmarks/heads.py [--batch_size 8] [--seq_length 64]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

from bert_mtl import model_fn, optimization  # pylint: disable=g-import-not-at-top,wrong-import-position

tf1 = tf.compat.v1
BASE = dict(vocab_size=21128, hidden_size=768, num_hidden_layers=12,
            num_attention_heads=12, intermediate_size=3072,
            max_position_embeddings=512, type_vocab_size=2)
TRAIN, PREDICT = tf.estimator.ModeKeys.TRAIN, tf.estimator.ModeKeys.PREDICT

# (name, problem type, labels, head settings)
HEADS = [
    ("cls", "cls", 2, {}),
    ("multi_cls", "multi_cls", 8, {}),
    ("seq_tag softmax", "seq_tag", 9, {"crf": False}),
    ("seq_tag CRF", "seq_tag", 9, {"crf": True}),
    ("seq2seq_tag (2 decoder layers)", "seq2seq_tag", 40,
     {"bos_id": 1, "eos_id": 2, "decoder_layers": 2}),
    ("pretrain (MLM + NSP)", "pretrain", 2, {}),
]


def features_for(problem_type, batch, seq, rng, target_length=16):
  ids = rng.integers(1000, 20000, (batch, seq))
  out = {"input_ids": ids, "input_mask": np.ones_like(ids),
         "segment_ids": np.zeros_like(ids),
         "p_present": np.ones([batch], np.int64)}
  if problem_type == "cls":
    out["p_label"] = rng.integers(0, 2, batch)
  elif problem_type == "multi_cls":
    out["p_label"] = rng.integers(0, 2, (batch, 8))
  elif problem_type == "seq_tag":
    labels = rng.integers(0, 9, (batch, seq))
    labels[:, 0] = labels[:, -1] = -1
    out["p_label"] = labels
  elif problem_type == "seq2seq_tag":
    out["p_label"] = rng.integers(3, 40, (batch, target_length))
  elif problem_type == "pretrain":
    out.update(p_masked_lm_positions=rng.integers(1, seq, (batch, 20)),
               p_masked_lm_ids=rng.integers(1000, 20000, (batch, 20)),
               p_masked_lm_weights=np.ones([batch, 20], np.float32),
               p_label=rng.integers(0, 2, batch))
  return {k: tf.constant(v.astype(np.float32 if v.dtype == np.float32
                                  else np.int32)) for k, v in out.items()}


class Step(object):
  """A session running one training step of body + head (or body alone)."""

  def __init__(self, problem_type, num_labels, settings, batch, seq):
    self.graph = tf.Graph()
    with self.graph.as_default():
      rng = np.random.default_rng(0)
      if problem_type is None:  # the body alone
        from bert_mtl import modeling  # pylint: disable=g-import-not-at-top
        features = features_for("cls", batch, seq, rng)
        body = modeling.BertModel(modeling.BertConfig(**BASE), True,
                                  features["input_ids"])
        loss = tf.reduce_mean(tf1.layers.dense(body.get_sequence_output(), 1))
      else:
        params = {"bert_config": BASE, "problems": ["p"],
                  "types": {"p": problem_type}, "num_labels": {"p": num_labels},
                  "settings": {"p": settings}}
        features = features_for(problem_type, batch, seq, rng)
        heads, outputs, head_features = model_fn.build(features, TRAIN,
                                                       params)
        loss, _ = model_fn.total_loss(heads, outputs, features, params,
                                      head_features)
      self.op = optimization.create_optimizer(loss, 1e-5, 100, 0)
      self.session = tf1.Session()
      self.session.run(tf1.global_variables_initializer())
      self.session.run(self.op)

  def time(self, steps):
    start = time.perf_counter()
    for _ in range(steps):
      self.session.run(self.op)
    return (time.perf_counter() - start) / steps


def beam_rate(batch, seq, rounds=3):
  graph = tf.Graph()
  with graph.as_default():
    params = {"bert_config": BASE, "problems": ["p"],
              "types": {"p": "seq2seq_text"}, "num_labels": {"p": 21128},
              "settings": {"p": {"bos_id": 101, "eos_id": 102,
                                 "decoder_layers": 2, "beam_size": 4,
                                 "max_decode_length": 16,
                                 "share_embeddings": True}}}
    features = features_for("cls", batch, seq, np.random.default_rng(1))
    del features["p_label"]  # served: inputs only
    _, outputs, _ = model_fn.build(features, PREDICT, params)
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      session.run(outputs["p"]["decoded_ids"])
      best = float("inf")
      for _ in range(rounds):
        start = time.perf_counter()
        session.run(outputs["p"]["decoded_ids"])
        best = min(best, time.perf_counter() - start)
  return batch / best


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--seq_length", type=int, default=64)
  parser.add_argument("--steps", type=int, default=2)
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args()
  variants = [("body alone (baseline)", None, 0, {})] + HEADS
  steps = {name: Step(kind, labels, settings, args.batch_size,
                      args.seq_length)
           for name, kind, labels, settings in variants}
  best = {name: float("inf") for name in steps}
  for _ in range(args.rounds):  # alternate, so drift hits every variant
    for name, step in steps.items():
      best[name] = min(best[name], step.time(args.steps))
  base = best["body alone (baseline)"]
  print("training step, BERT-Base shape, batch %d x %d tokens, CPU" %
        (args.batch_size, args.seq_length))
  for name, seconds in best.items():
    print("  %-34s %8.3f s/step  %6.3fx the body" % (name, seconds,
                                                     seconds / base))
  one = beam_rate(1, args.seq_length)
  many = beam_rate(32, args.seq_length)
  print("beam search (beam 4, 16 steps, 2-layer decoder, vocab 21128):")
  print("  batch 1: %.1f sentences/s; batch 32: %.1f sentences/s (%.1fx)" %
        (one, many, many / one))


if __name__ == "__main__":
  main()
