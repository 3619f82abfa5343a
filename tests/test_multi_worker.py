"""Multi-worker training through TF_CONFIG (MultiWorkerMirroredStrategy):
two worker processes on localhost finish with identical variables."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import tensorflow as tf

from bert_mtl import cluster

from conftest import data_dir
from run_helpers import REPO, base_args


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _start_workers(tmp_path, steps, launch=0, **flags):
  ports = _free_ports(2)
  cluster = {"worker": ["localhost:%d" % p for p in ports]}
  args = base_args(tmp_path, data_dir(), "pd98_ner&pd98_cws", steps=steps,
                   **flags)
  command = [sys.executable, os.path.join(REPO, "run_multitask.py")] + args + [
      "--do_train"]
  processes = []
  for index in range(2):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": index}}))
    log = open(tmp_path / ("worker-%d-launch-%d.log" % (index, launch)),
               "w+")
    processes.append((subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True),
                      log))
  return processes


def _log(log):
  log.flush()
  log.seek(0)
  return log.read()


def _finish(processes, timeout=400):
  outputs = []
  for process, log in processes:
    try:
      process.wait(timeout=timeout)
    finally:
      process.kill()
    outputs.append(_log(log))
  return outputs


def _check_identical_finish(tmp_path, processes, outputs, steps):
  for (process, _), output in zip(processes, outputs):
    assert process.returncode == 0, output[-4000:]
  model = tmp_path / "model"
  digests = [json.loads((model / ("variables-worker-%d.json" % i)).read_text())
             for i in range(2)]
  assert digests[0] and digests[0] == digests[1]
  assert (model / ("model.ckpt-%d.index" % steps)).exists()


def test_two_workers_train_to_identical_variables(tmp_path):
  processes = _start_workers(tmp_path, 4, save_checkpoints_steps=2)
  outputs = _finish(processes)
  _check_identical_finish(tmp_path, processes, outputs, 4)
  assert "MultiWorkerMirroredStrategy" in outputs[0] or (
      "CollectiveAllReduceStrategy" in outputs[0])


def test_a_dead_worker_is_reported_and_a_restart_resumes(tmp_path):
  """SIGKILL one worker mid-run: the other stops within the timeout with a
  report naming the dead worker and the checkpoint; running both again
  resumes from it and ends at the same step with identical variables.
  Batches of different lengths on the two workers (max_seq_length 64,
  dynamic padding) also exercise the cross-worker gradient reduction."""
  steps = 120
  flags = dict(save_checkpoints_steps=20, log_every_steps=10,
               worker_timeout_secs=5, max_seq_length=64, max_examples=200)
  processes = _start_workers(tmp_path, steps, **flags)
  (victim, victim_log), (survivor, survivor_log) = processes[1], processes[0]
  deadline = time.time() + 300
  while "step 40/%d" % steps not in _log(victim_log):
    assert victim.poll() is None and survivor.poll() is None, (
        _log(victim_log)[-3000:] + _log(survivor_log)[-3000:])
    assert time.time() < deadline, _log(victim_log)[-3000:]
    time.sleep(0.5)
  victim.send_signal(signal.SIGKILL)
  killed_at = time.time()
  survivor.wait(timeout=120)
  report = _log(survivor_log)
  assert survivor.returncode == cluster.WORKER_LOST_EXIT_CODE, report[-4000:]
  assert time.time() - killed_at < 60
  message = [l for l in report.splitlines()
             if l.startswith("ERROR: multi-worker training stopped")]
  assert message, report[-4000:]
  assert "worker 1 at localhost:" in message[0]
  assert "Restart every worker with the same command" in message[0]
  assert "model.ckpt-" in message[0]
  resumed_from = tf.train.latest_checkpoint(str(tmp_path / "model"))
  assert int(resumed_from.rsplit("-", 1)[1]) >= 20
  # The same command on both workers resumes and finishes.
  processes = _start_workers(tmp_path, steps, launch=1, **flags)
  outputs = _finish(processes)
  _check_identical_finish(tmp_path, processes, outputs, steps)
  assert "Restoring parameters from %s" % resumed_from in outputs[0]
