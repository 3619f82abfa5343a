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
import subprocess
import sys
import threading
import time

import tensorflow as tf

from bert_mtl.peers import reachable

tf1 = tf.compat.v1

WORKER_LOST_EXIT_CODE = 200
_STRATEGY = []


class ClusterError(ValueError):
  """A TF_CONFIG that does not describe a cluster (names TF_CONFIG)."""


def _check_tf_config(config):
  """Raises ClusterError unless `config` (TF_CONFIG parsed) describes this
  task of a cluster: {"cluster": {type: ["host:port", ...]}, "task":
  {"type": type, "index": i}}."""
  def need(ok, what):
    if not ok:
      raise ClusterError("TF_CONFIG: %s (TF_CONFIG=%s)" % (
          what, os.environ.get("TF_CONFIG", "")[:300]))
  need(isinstance(config, dict), "must be a JSON object")
  cluster = config.get("cluster", {})
  need(isinstance(cluster, dict), '"cluster" must be an object of task '
       'lists')
  for task_type, addresses in cluster.items():
    need(isinstance(addresses, list) and all(
        isinstance(a, str) and a.rpartition(":")[2].isdigit() and
        a.rpartition(":")[0] for a in addresses),
         'cluster["%s"] must be a list of "host:port" strings' % task_type)
  if sum(len(v) for v in cluster.values()) <= 1:
    return
  task = config.get("task")
  need(isinstance(task, dict), 'no "task": which task of the cluster is '
       'this one ({"type": "worker", "index": 0})?')
  need(task.get("type") in cluster, 'task type %r is not in the cluster '
       '(%s)' % (task.get("type"), ", ".join(sorted(cluster))))
  index = task.get("index")
  need(isinstance(index, int) and not isinstance(index, bool) and
       0 <= index < len(cluster[task["type"]]),
       "task index %r is out of range: the cluster has %d %s tasks" % (
           index, len(cluster[task["type"]]), task["type"]))


def tf_config():
  """TF_CONFIG parsed and checked ({} when it is not set).

  Raises:
    ClusterError: malformed JSON, a task missing or out of range.
  """
  text = os.environ.get("TF_CONFIG")
  if not text:
    return {}
  try:
    config = json.loads(text)
  except ValueError as e:
    raise ClusterError("TF_CONFIG is not valid JSON (%s): %s" % (
        e, text[:300])) from None
  _check_tf_config(config)
  return config


def is_multi_worker():
  """True when TF_CONFIG describes a cluster with more than one task."""
  return sum(len(v) for v in tf_config().get("cluster", {}).values()) > 1


def is_chief():
  """True for the task that writes the run (the chief, else worker 0)."""
  config = tf_config()
  task = config.get("task", {})
  if "chief" in config.get("cluster", {}):
    return task.get("type") == "chief"
  return task.get("type", "worker") == "worker" and task.get("index", 0) == 0


def multi_worker_strategy(timeout_secs=None):
  """The process's MultiWorkerMirroredStrategy.  Collective ops must be set
  up before TensorFlow runs anything, so run_multitask.py calls this first.

  timeout_secs: with it, a peer that never answers within that time stops
  this worker with a report (watch_peers_start)."""
  if not _STRATEGY:
    if timeout_secs:
      watch_peers_start(timeout_secs)
    _STRATEGY.append(tf.distribute.experimental.MultiWorkerMirroredStrategy())
  return _STRATEGY[0]


# The watcher process of watch_peers_start (no TensorFlow).
_WATCHER = """
import os, signal, sys, json
from bert_mtl import peers
parent, timeout, peer_list = int(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
def alive():
  try:
    os.kill(parent, 0)
    return True
  except OSError:
    return False
missing = peers.unanswered_peers([tuple(p) for p in peer_list], timeout, alive=alive)
if missing and alive():
  sys.stderr.write("ERROR: %s\\n" % peers.peers_report(missing, timeout))
  sys.stderr.flush()
  os.kill(parent, signal.SIGKILL)
"""


def watch_peers_start(timeout_secs):
  """Starts a watcher process that waits for every peer to answer once; if
  one has not answered within timeout_secs (a host typo, a worker that
  never started) it reports the peer's address and kills this worker,
  which would otherwise wait forever inside TensorFlow's collective
  set-up (a C++ call holding the interpreter lock, so no thread of this
  process could act).  The worker ends killed (status 137 in a shell, in
  Kubeflow's retry range).  Returns the watcher's Popen."""
  return subprocess.Popen(
      [sys.executable, "-c", _WATCHER, str(os.getpid()), str(timeout_secs),
       json.dumps(peers())], stdin=subprocess.DEVNULL)


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
