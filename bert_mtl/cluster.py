"""Multi-worker training through TF_CONFIG: the strategy, and a watchdog
that reports a worker that died.

When a worker dies, TensorFlow's collective ops on the others fail with
UNAVAILABLE, the MonitoredSession takes it for a preemption, restores the
last checkpoint and then waits for the dead peer forever; its aborted
collectives cannot take the peer back either ("Restart your program to
reset"). So every worker watches the others' ports while it trains: when one
stays unreachable for `timeout_secs`, the worker logs which one, where, at
which step, and how to resume, and exits with WORKER_LOST_EXIT_CODE (in the
128-255 range that Kubeflow's ExitCode restart policy retries). Running the
same command on every worker again resumes from the last checkpoint.
"""

import json
import os
import socket
import sys
import threading
import time

import tensorflow as tf

tf1 = tf.compat.v1

WORKER_LOST_EXIT_CODE = 200
_STRATEGY = []


def tf_config():
  return json.loads(os.environ.get("TF_CONFIG") or "{}")


def is_multi_worker():
  """True when TF_CONFIG describes a cluster with more than one task."""
  return sum(len(v) for v in tf_config().get("cluster", {}).values()) > 1


def multi_worker_strategy():
  """The process's MultiWorkerMirroredStrategy.  Collective ops must be set
  up before TensorFlow runs anything, so run_multitask.py calls this first."""
  if not _STRATEGY:
    _STRATEGY.append(tf.distribute.experimental.MultiWorkerMirroredStrategy())
  return _STRATEGY[0]


def task_name():
  task = tf_config().get("task", {})
  return "%s %s" % (task.get("type"), task.get("index"))


def peers():
  """[(task name, "host:port")] of every other task of the cluster."""
  config = tf_config()
  task = config.get("task", {})
  out = []
  for task_type, addresses in sorted(config.get("cluster", {}).items()):
    for index, address in enumerate(addresses):
      if (task_type, index) != (task.get("type"), task.get("index")):
        out.append(("%s %d" % (task_type, index), address))
  return out


def reachable(address, timeout=2.0):
  host, _, port = address.rpartition(":")
  try:
    socket.create_connection((host, int(port)), timeout=timeout).close()
    return True
  except OSError:
    return False


class WorkerWatchdogHook(tf1.train.SessionRunHook):
  """Stops this worker, with a clear report, when a peer is gone.

  A peer counts as gone once it has been reachable and then refuses or times
  out connections for `timeout_secs` in a row. The watch runs from the first
  training step to the end of the training loop, so peers that finish and
  exit normally are never reported.

  Args:
    model_dir: where the checkpoints are (named in the report).
    timeout_secs: how long a peer may stay unreachable.
    interval_secs: time between checks.
    exit_fn: called with the exit code after the report (tests replace it;
      the default leaves the process at once, since the training thread is
      blocked inside a collective op that no exception can interrupt).
  """

  def __init__(self, model_dir, timeout_secs=60.0, interval_secs=2.0,
               exit_fn=None):
    self.model_dir = model_dir
    self.timeout_secs = timeout_secs
    self.interval_secs = interval_secs
    self.exit_fn = exit_fn or os._exit  # pylint: disable=protected-access
    self.step = None
    self.report = None
    self._stop = threading.Event()
    self._thread = None

  def begin(self):
    self._global_step = tf1.train.get_global_step()

  def before_run(self, run_context):
    if self._thread is None:
      self._thread = threading.Thread(target=self._watch, daemon=True,
                                      name="worker-watchdog")
      self._thread.start()
    return tf1.train.SessionRunArgs(self._global_step)

  def after_run(self, run_context, run_values):
    self.step = int(run_values.results)

  def end(self, session):
    self.stop()

  def stop(self):
    self._stop.set()

  def _watch(self):
    seen, down_since = set(), {}
    while not self._stop.wait(self.interval_secs):
      now = time.time()
      for name, address in peers():
        if reachable(address):
          seen.add(name)
          down_since.pop(name, None)
        elif name in seen:
          if name not in down_since:
            down_since[name] = now
            tf1.logging.warning(
                "%s at %s is unreachable (step %s); this worker stops in "
                "%.0f s unless it comes back", name, address, self.step,
                self.timeout_secs)
          elif now - down_since[name] >= self.timeout_secs:
            self._lost(name, address, now - down_since[name])
            return

  def _lost(self, name, address, seconds):
    checkpoint = tf.train.latest_checkpoint(self.model_dir)
    self.report = (
        "multi-worker training stopped: %s at %s has been unreachable for "
        "%.0f s (it died or its machine is gone) while %s was at step %s. "
        "Restart every worker with the same command (TF_CONFIG unchanged): "
        "training resumes from the last checkpoint, %s." % (
            name, address, seconds, task_name(), self.step,
            checkpoint or "none yet (it starts over)"))
    tf1.logging.error(self.report)
    sys.stderr.write("ERROR: %s\n" % self.report)
    sys.stderr.flush()
    self.exit_fn(WORKER_LOST_EXIT_CODE)
