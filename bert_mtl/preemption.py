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

The handlers are in force inside `handling()` (the command line: the
whole command; a library caller: Experiment.train), the previous ones
after it.  If the process is still in the block GRACE_SECS after the
signal (a step blocked in a collective op with a dead peer, say) it exits
anyway, and a second signal exits at once.
"""

import contextlib
import os
import signal
import sys
import threading

import tensorflow as tf

tf1 = tf.compat.v1

EXIT_CODES = {signal.SIGTERM: 128 + signal.SIGTERM,
              signal.SIGINT: 128 + signal.SIGINT}
# Kubernetes' default terminationGracePeriodSeconds is 30.
GRACE_SECS = 25.0

# "block": the signals of the handling() block in force ({"signal": the
# first one, "received": how many}); "deferred": deferred() depth.
_state = {"block": {"signal": None, "received": 0}, "deferred": 0,
          "installed": False}


class Preempted(KeyboardInterrupt):
  """The command was stopped by a signal (a KeyboardInterrupt, so no
  `except Exception` swallows it and interactive shells treat it as an
  interruption)."""

  def __init__(self, signum, message=None):
    self.signal_name = signal.Signals(signum).name
    super().__init__(message or "stopped by %s" % self.signal_name)
    self.signum = signum
    self.exit_code = EXIT_CODES[signum]


def requested():
  """The signal that asked this process to stop, or None."""
  return _state["block"]["signal"]


def _exit_later(signum, done):
  """The grace timer: exits the process if it is still handling the
  signal GRACE_SECS later (`done`: the handling block was left)."""
  if done.wait(GRACE_SECS):
    return
  sys.stderr.write("%s: the command did not stop within %.0f s of %s; "
                   "exiting (the last saved checkpoint is kept)\n" % (
                       os.path.basename(sys.argv[0]), GRACE_SECS,
                       signal.Signals(signum).name))
  sys.stderr.flush()
  os._exit(EXIT_CODES[signum])  # pylint: disable=protected-access


def _listen(read_fd, block, done):
  """Sees each signal as it arrives (Python runs handlers only when the
  main thread is between bytecodes, which a blocked op may never be)."""
  try:
    while _receive(os.read(read_fd, 1), block, done):
      pass
  except OSError:
    pass
  finally:
    os.close(read_fd)


def _receive(data, block, done):
  """Acts on one byte of the wakeup pipe; False at its end."""
  if not data:
    return False
  signum = data[0]
  if signum not in EXIT_CODES:
    return True
  block["received"] += 1
  if block["received"] > 1:  # a second signal: now
    sys.stderr.write("%s: %s again: exiting now\n" % (
        os.path.basename(sys.argv[0]), signal.Signals(signum).name))
    sys.stderr.flush()
    os._exit(EXIT_CODES[signum])  # pylint: disable=protected-access
  block["signal"] = block["signal"] or signum
  tf1.logging.warning(
      "%s received: %s (a second signal exits at once)",
      signal.Signals(signum).name,
      "saving a checkpoint at the current step, then stopping"
      if _state["deferred"] else "stopping")
  threading.Thread(target=_exit_later, args=(signum, done), daemon=True,
                   name="preemption-grace").start()
  return True


def _handler(signum, frame):
  del frame
  block = _state["block"]
  block["signal"] = block["signal"] or signum
  if not _state["deferred"]:
    raise Preempted(signum)


@contextlib.contextmanager
def handling():
  """SIGTERM and SIGINT handled as the module doc says inside the block
  (the command line holds it for the whole command, Experiment.train for
  training); the previous handlers come back after it.  Nested blocks
  share the outer one's; outside the main thread it does nothing."""
  if _state["installed"] or (threading.current_thread() is not
                             threading.main_thread()):
    yield
    return
  read_fd, write_fd = os.pipe()
  os.set_blocking(write_fd, False)
  previous = {s: signal.getsignal(s) for s in EXIT_CODES}
  previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
  done = threading.Event()
  block = {"signal": None, "received": 0}
  _state.update(block=block, installed=True)
  previous_hook = sys.unraisablehook

  def unraisable(info):
    # The handler's Preempted can land where Python cannot raise it (a
    # finally of the logging module, a destructor); the signal stays
    # recorded and the next check() raises it.
    if not isinstance(info.exc_value, Preempted):
      previous_hook(info)
  sys.unraisablehook = unraisable
  try:
    for signum in EXIT_CODES:
      signal.signal(signum, _handler)
    threading.Thread(target=_listen, args=(read_fd, block, done),
                     daemon=True, name="preemption-listener").start()
    yield
  finally:
    done.set()  # a grace timer running stands down
    sys.unraisablehook = previous_hook
    for signum, handler in previous.items():
      signal.signal(signum, handler)
    signal.set_wakeup_fd(previous_fd)
    _state["installed"] = False
    os.close(write_fd)  # the listener reads end-of-file and stops


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
  if requested() is not None:
    raise Preempted(requested())


class PreemptionHook(tf1.train.SessionRunHook):
  """Stops a training session at the step a signal arrived in (the
  Estimator's checkpoint saver then saves that step); in an evaluation
  session, raises Preempted (training saved its checkpoint already)."""

  def __init__(self, training=True):
    self.training = training

  def begin(self):
    check()  # no new session after a signal (train_and_evaluate's loop)

  def after_run(self, run_context, run_values):
    if requested() is None:
      return
    if self.training:
      run_context.request_stop()
    else:
      check()
