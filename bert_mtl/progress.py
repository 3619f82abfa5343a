"""Progress in the log: training (steps/s, examples/s, ETA, problem
losses), evaluation and prediction (rows done of total, rows/s, ETA)."""

import time

import tensorflow as tf

from bert_mtl import base

tf1 = tf.compat.v1


class ProgressHook(tf1.train.SessionRunHook):
  """Logs every `every_steps` global steps:

    step 200/1000 (20%)  3.1 steps/s  99 examples/s  ETA 4m18s
      loss/msra_ner=0.41 loss/pd98_cws=0.22

  (each problem's loss averaged over the batches since the last line).
  """

  def __init__(self, total_steps, batch_size, problem_names, every_steps=50):
    self.total_steps = total_steps
    self.batch_size = batch_size
    self.problem_names = problem_names
    self.every_steps = max(1, every_steps)

  def begin(self):
    self.global_step = tf1.train.get_global_step()
    graph = tf1.get_default_graph()
    self.losses = {}
    for name in self.problem_names:
      # The per-problem loss summaries' inputs (see model_fn).
      for op in graph.get_operations():
        if op.type == "ScalarSummary" and op.name.startswith(
            "loss/%s" % name):
          self.losses[name] = op.inputs[1]
          break
    self.last = None
    self.loss_sums = {}

  def before_run(self, run_context):
    return tf1.train.SessionRunArgs({"step": self.global_step,
                                     "losses": self.losses})

  def after_run(self, run_context, run_values):
    step = int(run_values.results["step"]) + 1
    now = time.time()
    # Losses are averaged over the interval: one batch's loss swings widely
    # (a CRF loss sums over a sentence's tokens). A problem absent from a
    # batch reports exactly 0 there, and those batches are left out.
    for name, value in run_values.results["losses"].items():
      if value != 0.0:
        total, count = self.loss_sums.get(name, (0.0, 0))
        self.loss_sums[name] = (total + float(value), count + 1)
    if self.last is None:
      self.last = (step, now)
      return
    if step % self.every_steps and step < self.total_steps:
      return
    last_step, last_time = self.last
    if step <= last_step:
      return
    rate = (step - last_step) / max(now - last_time, 1e-9)
    remaining = max(0, self.total_steps - step) / max(rate, 1e-9)
    losses = " ".join("loss/%s=%.4f" % (name, total / count)
                      for name, (total, count) in sorted(
                          self.loss_sums.items()))
    self.loss_sums = {}
    tf1.logging.info(
        "step %d/%d (%d%%)  %.2f steps/s  %.1f examples/s  ETA %dm%02ds  %s",
        step, self.total_steps, 100 * step // max(1, self.total_steps), rate,
        rate * self.batch_size, remaining // 60, remaining % 60, losses)
    self.last = (step, now)


class RowCounter(object):
  """Logs "<label>: N/total rows (P%)  R rows/s  ETA XmYYs" at most every
  `every_seconds` (and when done).  `clock` is for tests."""

  def __init__(self, label, total, every_seconds=10.0, clock=time.time):
    self.label, self.total = label, max(0, int(total))
    self.every_seconds = every_seconds
    self.clock = clock
    self.start = self.last = clock()
    self.done = self.logged = 0

  def add(self, rows):
    self.done += int(rows)
    now = self.clock()
    if now - self.last < self.every_seconds and self.done < self.total:
      return
    self._log(now)

  def finish(self):
    """The last line, if add() did not log it; a warning when the rows
    done are not the total (rows lost or counted twice)."""
    if self.done != self.total:
      tf1.logging.warning("%s: ended after %d of %d rows", self.label,
                          self.done, self.total)
    elif self.logged != self.done:
      self._log(self.clock())

  def _log(self, now):
    self.last, self.logged = now, self.done
    rate = self.done / max(now - self.start, 1e-9)
    remaining = max(0, self.total - self.done) / max(rate, 1e-9)
    tf1.logging.info("%s: %d/%d rows (%d%%)  %.1f rows/s  ETA %dm%02ds",
                     self.label, self.done, self.total,
                     100 * self.done // max(1, self.total), rate,
                     remaining // 60, remaining % 60)


class EvalProgressHook(tf1.train.SessionRunHook):
  """Estimator.evaluate's progress: counts the rows of every batch (all
  replicas) with a RowCounter."""

  def __init__(self, label, total_rows, every_seconds=10.0):
    self.label, self.total_rows = label, total_rows
    self.every_seconds = every_seconds

  def begin(self):
    graph = tf1.get_default_graph()
    self.rows = [op.outputs[0] for op in graph.get_operations()
                 if op.name.split("/")[-1] == base.EVAL_ROWS]
    self.counter = RowCounter(self.label, self.total_rows,
                              self.every_seconds)

  def before_run(self, run_context):
    return tf1.train.SessionRunArgs(self.rows)

  def after_run(self, run_context, run_values):
    self.counter.add(sum(int(r) for r in run_values.results))

  def end(self, session):
    self.counter.finish()


def counted(items, label, total, every_seconds=10.0):
  """Yields `items` (e.g. Estimator.predict's rows), logging progress."""
  counter = RowCounter(label, total, every_seconds)
  for item in items:
    yield item
    counter.add(1)
  counter.finish()


class VariableDigestHook(tf1.train.SessionRunHook):
  """Writes {variable: [sum, sum of squares]} of the trainable variables to
  a JSON file when training ends (to compare the workers of a cluster)."""

  def __init__(self, path):
    self.path = path

  def begin(self):
    self.digests = {
        v.op.name: tf.stack([tf.reduce_sum(tf.cast(v, tf.float64)),
                             tf.reduce_sum(tf.square(tf.cast(v, tf.float64)))])
        for v in tf1.trainable_variables()}

  def end(self, session):
    import json  # pylint: disable=g-import-not-at-top
    values = session.run(self.digests)
    with open(self.path, "w") as f:
      json.dump({k: v.tolist() for k, v in values.items()}, f, indent=0,
                sort_keys=True)
