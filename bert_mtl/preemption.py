"""Preemption: SIGTERM (what Kubernetes, and so TFJob, sends a pod before
killing it) and SIGINT (Ctrl-C) stop a command cleanly.

During training the current step finishes, a checkpoint of it is saved
(the Estimator's CheckpointSaverHook saves at the end of the session, its
usual atomic save) and the command exits with EXIT_CODES[signal] (143 for
SIGTERM, 130 for SIGINT: 128 + the signal, in the 128-255 range that
Kubeflow's ExitCode restart policy retries); running the same command
again resumes from that step.  Outside training the command stops at once
with the same status (feature caches and exports are written atomically,
so nothing half-written is left).

If the process has not exited GRACE_SECS after the signal (a step blocked
in a collective op with a dead peer, say) it exits anyway, and a second
signal exits at once.
"""

import contextlib
import os
import signal
import sys
import threading
import time

import tensorflow as tf

tf1 = tf.compat.v1

EXIT_CODES = {signal.SIGTERM: 128 + signal.SIGTERM,
              signal.SIGINT: 128 + signal.SIGINT}
# Kubernetes' default terminationGracePeriodSeconds is 30.
GRACE_SECS = 25.0

_state = {"signal": None, "deferred": 0, "installed": False, "received": 0}


class Preempted(BaseException):
  """The command was stopped by a signal (a BaseException, like
  KeyboardInterrupt, so no `except Exception` swallows it)."""

  def __init__(self, signum, message=None):
    self.signal_name = signal.Signals(signum).name
    super().__init__(message or "stopped by %s" % self.signal_name)
    self.signum = signum
    self.exit_code = EXIT_CODES[signum]


def requested():
  """The signal that asked this process to stop, or None."""
  return _state["signal"]


def _exit_later(signum):
  """The grace timer: exits the process if it is still there."""
  time.sleep(GRACE_SECS)
  sys.stderr.write("%s: the command did not stop within %.0f s of %s; "
                   "exiting (the last saved checkpoint is kept)\n" % (
                       os.path.basename(sys.argv[0]), GRACE_SECS,
                       signal.Signals(signum).name))
  sys.stderr.flush()
  os._exit(EXIT_CODES[signum])  # pylint: disable=protected-access


def _listen(read_fd):
  """Sees each signal as it arrives (Python runs handlers only when the
  main thread is between bytecodes, which a blocked op may never be)."""
  while True:
    try:
      data = os.read(read_fd, 1)
    except OSError:
      return
    if not data:
      return
    signum = data[0]
    if signum not in EXIT_CODES:
      continue
    _state["received"] += 1
    if _state["received"] > 1:  # a second signal: now
      sys.stderr.write("%s: %s again: exiting now\n" % (
          os.path.basename(sys.argv[0]), signal.Signals(signum).name))
      sys.stderr.flush()
      os._exit(EXIT_CODES[signum])  # pylint: disable=protected-access
    _state["signal"] = _state["signal"] or signum
    tf1.logging.warning(
        "%s received: %s (a second signal exits at once)",
        signal.Signals(signum).name,
        "saving a checkpoint at the current step, then stopping"
        if _state["deferred"] else "stopping")
    threading.Thread(target=_exit_later, args=(signum,), daemon=True,
                     name="preemption-grace").start()


def _handler(signum, frame):
  del frame
  _state["signal"] = _state["signal"] or signum
  if not _state["deferred"]:
    raise Preempted(signum)


def install():
  """Installs the handlers (main thread only; once per process).  Returns
  False where they cannot be installed (not the main thread)."""
  if _state["installed"]:
    return True
  if threading.current_thread() is not threading.main_thread():
    return False
  read_fd, write_fd = os.pipe()
  os.set_blocking(write_fd, False)
  signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
  for signum in EXIT_CODES:
    signal.signal(signum, _handler)
  threading.Thread(target=_listen, args=(read_fd,), daemon=True,
                   name="preemption-listener").start()
  _state["installed"] = True
  return True


@contextlib.contextmanager
def deferred():
  """In the block a signal does not interrupt the code: PreemptionHook
  stops the session at the next step boundary, which saves a checkpoint;
  leaving the block raises Preempted."""
  _state["deferred"] += 1
  try:
    yield
  finally:
    _state["deferred"] -= 1
  check()


def check():
  """Raises Preempted when a signal asked this process to stop."""
  if _state["signal"] is not None:
    raise Preempted(_state["signal"])


class PreemptionHook(tf1.train.SessionRunHook):
  """Stops a training session at the step a signal arrived in (the
  Estimator's checkpoint saver then saves that step); in an evaluation
  session, raises Preempted (training saved its checkpoint already)."""

  def __init__(self, training=True):
    self.training = training

  def begin(self):
    check()  # no new session after a signal (train_and_evaluate's loop)

  def after_run(self, run_context, run_values):
    if _state["signal"] is None:
      return
    if self.training:
      run_context.request_stop()
    else:
      check()
