"""The training progress line: steps/s, examples/s, ETA and each problem's
loss averaged over the interval (batches without the problem left out)."""

import re

import tensorflow as tf

from bert_mtl import progress

tf1 = tf.compat.v1


def test_progress_lines_average_losses_over_the_interval(monkeypatch):
  lines = []
  monkeypatch.setattr(progress.tf1.logging, "info",
                      lambda fmt, *args: lines.append(fmt % args))
  with tf.Graph().as_default():
    step = tf1.train.get_or_create_global_step()
    value = tf.cast(step, tf.float32) + 1.0  # 1, 2, 3, ... at steps 0, 1, 2
    # Problem b is present only on odd global steps (its loss is 0 else).
    absent = tf.equal(step % 2, 0)
    loss_b = tf.where(absent, 0.0, 10.0 * value)
    tf1.summary.scalar("loss/a", value)
    tf1.summary.scalar("loss/b", loss_b)
    with tf.control_dependencies([value, loss_b]):  # read, then increment
      train_op = tf1.assign_add(step, 1)
    hook = progress.ProgressHook(total_steps=6, batch_size=8,
                                 problem_names=["a", "b"], every_steps=3)
    with tf1.train.MonitoredSession(hooks=[hook]) as session:
      for _ in range(6):
        session.run(train_op)
  assert len(lines) == 2, lines
  pattern = (r"step (\d+)/6 \((\d+)%\)  ([\d.]+) steps/s  ([\d.]+) examples/s"
             r"  ETA (\d+)m(\d\d)s  loss/a=([\d.]+) loss/b=([\d.]+)")
  first, last = [re.fullmatch(pattern, l) for l in lines]
  assert first and last, lines
  # Line 1 covers global steps 0-2 (values 1, 2, 3; b present at step 1
  # only), line 2 steps 3-5 (values 4, 5, 6; b present at steps 3 and 5).
  assert first.group(1, 2) == ("3", "50") and last.group(1, 2) == ("6", "100")
  assert float(first.group(7)) == 2.0 and float(first.group(8)) == 20.0
  assert float(last.group(7)) == 5.0 and float(last.group(8)) == 50.0
  steps_per_second = float(last.group(3))
  assert float(last.group(4)) == round(8 * steps_per_second, 1) or abs(
      float(last.group(4)) - 8 * steps_per_second) < 0.1
  assert last.group(5, 6) == ("0", "00")


def test_evaluation_and_prediction_show_rows_done_rate_and_eta(monkeypatch):
  lines = []
  monkeypatch.setattr(progress.tf1.logging, "info",
                      lambda fmt, *args: lines.append(fmt % args))
  now = [100.0]
  counter = progress.RowCounter("predicting a", 100, every_seconds=10,
                                clock=lambda: now[0])
  for _ in range(4):  # 25 rows every 5 s: a line every other call
    now[0] += 5.0
    counter.add(25)
  assert lines == [
      "predicting a: 50/100 rows (50%)  5.0 rows/s  ETA 0m10s",
      "predicting a: 100/100 rows (100%)  5.0 rows/s  ETA 0m00s"]
  # The evaluation hook counts every replica's batch (model_fn names each
  # replica's real rows base.EVAL_ROWS).
  lines.clear()
  with tf.Graph().as_default():
    step = tf1.train.get_or_create_global_step()
    tf.identity(tf.constant(8), name="eval_rows")
    with tf.name_scope("replica_1"):
      tf.identity(tf.constant(8), name="eval_rows")
    op = tf1.assign_add(step, 1)
    hook = progress.EvalProgressHook("evaluating eval", 48, every_seconds=0)
    with tf1.train.MonitoredSession(hooks=[hook]) as session:
      for _ in range(3):
        session.run(op)
  assert [l.split("  ")[0] for l in lines] == [
      "evaluating eval: 16/48 rows (33%)", "evaluating eval: 32/48 rows (66%)",
      "evaluating eval: 48/48 rows (100%)"]
  assert list(progress.counted(iter("abc"), "x", 3)) == ["a", "b", "c"]
  # An evaluation that ends short of its rows says so.
  warnings = []
  monkeypatch.setattr(progress.tf1.logging, "warning",
                      lambda fmt, *args: warnings.append(fmt % args))
  lines.clear()
  counter = progress.RowCounter("evaluating eval", 205, every_seconds=1e9)
  counter.add(201)
  counter.finish()
  assert lines == [] and warnings == [
      "evaluating eval: ended after 201 of 205 rows"]
  # The final line is logged once, by add() or else by finish().
  counter = progress.RowCounter("x", 3, every_seconds=1e9)
  counter.add(3)
  counter.finish()
  assert [l.split("  ")[0] for l in lines] == ["x: 3/3 rows (100%)"]
