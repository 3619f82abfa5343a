"""The README main job's training loop against its training step alone.

The main job's run (chain, from-scratch tiny model, batch, learning rate,
sequence length, checkpoint interval as `python run_multitask.py` sets
them) in a fresh directory, three ways, one after the other in this
process:

  step alone      the run's model_fn TRAIN graph (every head, the same
                  shapes) on the run's first --batches batches held in
                  memory (tf.data cache, repeated: the same mix of groups
                  and lengths, no parsing or sampling work left):
                  sess.run(train_op) in a plain session with the run's
                  session options.  The baseline.
  + input         the same graph reading the run's tf.data pipeline
                  (sampling across groups, parsing, batching) in a plain
                  session.
  the loop        Experiment.train, as the main job trains: Estimator,
                  progress and preemption hooks, summaries, checkpoints.
                  Rate between step --skip and the last step, read by a
                  hook (startup and graph building excluded).

    python benchmarks/train_loop.py [--steps 600] [--skip 100] [--batches 50]
"""

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

from bert_mtl import (cli, config, experiment, model_fn, modeling, progress,  # pylint: disable=g-import-not-at-top,wrong-import-position
                      tokenization)
from common import data_dir, data_file  # pylint: disable=g-import-not-at-top,wrong-import-position

tf1 = tf.compat.v1


def main_job_run(work, steps):
  """A fresh Experiment with the main job's settings."""
  vocab_file = data_file("vocab/chinese_vocab.txt")
  job = dict(cli.MAIN_JOB)
  del job["output_dir"]
  bert_config = modeling.BertConfig(
      len(tokenization.load_vocab_tokens(vocab_file)),
      max_position_embeddings=max(128, job["max_seq_length"]),
      **modeling.SMALL_MODELS["tiny"])
  job.update(num_train_steps=steps, data_dir=data_dir(),
             cache_dir=os.path.join(work, "cache"),
             bert_config=bert_config.to_dict())
  return experiment.Experiment(os.path.join(work, "model"),
                               config.RunConfig(**job), vocab_file)


def plain_session_rate(run, steps, skip, batches_in_memory=None):
  """Steps/s of the run's TRAIN graph in a plain session, on the run's
  first batches held in memory, or (None) on its input pipeline."""
  input_fn, _, _ = run.input_fn("train", True,
                                run.run_config.train_batch_size)
  params = run.params(steps)
  session_config = run.estimator().config.session_config
  with tf.Graph().as_default():
    tf1.set_random_seed(run.run_config.seed)
    dataset = input_fn()
    if batches_in_memory:
      dataset = dataset.take(batches_in_memory).cache().repeat()
    features = tf1.data.make_one_shot_iterator(dataset).get_next()
    tf1.train.get_or_create_global_step()
    spec = model_fn.make_model_fn(run.body_transform)(
        features, None, tf.estimator.ModeKeys.TRAIN, params)
    with tf1.Session(config=session_config) as session:
      session.run(tf1.global_variables_initializer())
      for _ in range(skip):
        session.run(spec.train_op)
      start = time.perf_counter()
      for _ in range(steps - skip):
        session.run(spec.train_op)
      return (steps - skip) / (time.perf_counter() - start)


class _StepClock(progress.ProgressHook):
  """The run's progress hook, also timing the steps after `skip`."""
  skip, marks = 0, []

  def after_run(self, run_context, run_values):
    super().after_run(run_context, run_values)
    step = int(run_values.results["step"]) + 1
    if step >= _StepClock.skip:
      _StepClock.marks.append((step, time.perf_counter()))


def loop_rate(run, steps, skip):
  """Steps/s of Experiment.train between step `skip` and `steps`."""
  _StepClock.skip, _StepClock.marks = skip, []
  original = experiment.progress.ProgressHook
  experiment.progress.ProgressHook = _StepClock
  try:
    run.train(steps)
  finally:
    experiment.progress.ProgressHook = original
  (first, start), (last, end) = _StepClock.marks[0], _StepClock.marks[-1]
  return (last - first) / (end - start)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--steps", type=int, default=600)
  parser.add_argument("--skip", type=int, default=100,
                      help="steps left out of each rate (warm-up)")
  parser.add_argument("--batches", type=int, default=50,
                      help="batches the step-alone baseline cycles through")
  args = parser.parse_args()
  work = tempfile.mkdtemp(prefix="bert_mtl_train_loop_")
  try:
    run = main_job_run(work, args.steps)
    run.initialize()
    alone = plain_session_rate(run, args.steps, args.skip, args.batches)
    with_input = plain_session_rate(run, args.steps, args.skip)
    loop = loop_rate(run, args.steps, args.skip)
    print("main job (%s, tiny model, batch %d x %d), steps %d-%d" % (
        run.run_config.problems, run.run_config.train_batch_size,
        run.run_config.max_seq_length, args.skip, args.steps))
    for name, rate in (("step alone (baseline)", alone),
                       ("+ input pipeline", with_input),
                       ("the loop (Experiment.train)", loop)):
      print("%-30s %7.2f steps/s  %5.1f%% of the step alone" % (
          name, rate, 100 * rate / alone))
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
