"""Multi-worker training through TF_CONFIG (MultiWorkerMirroredStrategy):
two worker processes on localhost finish with identical variables."""

import json
import os
import socket
import subprocess
import sys

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


def test_two_workers_train_to_identical_variables(tmp_path):
  ports = _free_ports(2)
  cluster = {"worker": ["localhost:%d" % p for p in ports]}
  args = base_args(tmp_path, data_dir(), "weibo_ner&weibo_cws", steps=4,
                   save_checkpoints_steps=2)
  command = [sys.executable, os.path.join(REPO, "run_multitask.py")] + args + [
      "--do_train"]
  processes = []
  for index in range(2):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": index}}))
    processes.append(subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True))
  outputs = []
  for process in processes:
    try:
      outputs.append(process.communicate(timeout=400))
    finally:
      process.kill()
  for process, (_, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr[-4000:]
  model = tmp_path / "model"
  digests = [json.loads((model / ("variables-worker-%d.json" % i)).read_text())
             for i in range(2)]
  assert digests[0] and digests[0] == digests[1]
  assert "MultiWorkerMirroredStrategy" in outputs[0][1] or (
      "CollectiveAllReduceStrategy" in outputs[0][1])
  assert (model / "model.ckpt-4.index").exists()
