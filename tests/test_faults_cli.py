"""Faults through the command line, as an operator meets them: SIGTERM and
Ctrl-C, two writers, a killed and concurrent exports, damaged checkpoints,
full and read-only disks, a peer that never starts, missing GPUs, bad
TF_CONFIG, run.json and --init_checkpoint.  Each asserts the one line the
user sees, the exit status and what is left on disk."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from bert_mtl import preemption
from conftest import data_dir
from run_helpers import REPO, base_args, run_multitask

PROBLEM = "msra_ner"  # fetched from the package index on a fresh machine


def _error_lines(stderr):
  return [l for l in stderr.splitlines() if l.startswith("run_multitask.py:")]


def _popen(args, log):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
  return subprocess.Popen(
      [sys.executable, os.path.join(REPO, "run_multitask.py")] + args,
      env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def _wait_for(predicate, timeout, what):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return
    time.sleep(0.2)
  raise AssertionError("timed out waiting for %s" % what)


def _step_of_progress(log_path):
  steps = re.findall(r"step (\d+)/", open(log_path).read())
  return int(steps[-1]) if steps else 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A run trained 4 steps with checkpoints at 2 and 4, exported once."""
  root = tmp_path_factory.mktemp("trained")
  args = base_args(root, data_dir(), PROBLEM, steps=4,
                   save_checkpoints_steps=2)
  run_multitask(args + ["--do_train", "--do_export"])
  return root, args


def _snapshot(directory):
  out = {}
  for dirpath, _, names in os.walk(directory):
    for name in names:
      path = os.path.join(dirpath, name)
      out[os.path.relpath(path, directory)] = os.stat(path).st_mtime_ns
  return out


# -------------------------------------------------- preemption, two writers


def test_sigterm_saves_the_current_step_and_a_rerun_resumes(tmp_path):
  """SIGTERM mid-training: a second writer meanwhile is refused at once;
  the run saves the step it was at, says so in one line, exits 143; the
  same command resumes there and ends at the same step."""
  args = base_args(tmp_path, data_dir(), PROBLEM, steps=100000,
                   log_every_steps=1, save_checkpoints_steps=100000)
  log_path = tmp_path / "train.log"
  with open(log_path, "w") as log:
    process = _popen(args + ["--do_train"], log)
    try:
      _wait_for(lambda: _step_of_progress(log_path) >= 3, 300,
                "training to log step 3")
      # A second training on the same output_dir: refused in one line.
      second = run_multitask(args + ["--do_train"], check=False, timeout=120)
      assert second.returncode == 1
      refused, = _error_lines(second.stderr)
      assert re.match(r"run_multitask.py: error: .*model is in use by train "
                      r"\(run_multitask.py .*--do_train\) \(pid %d on " %
                      process.pid, refused), refused
      process.send_signal(signal.SIGTERM)
      process.wait(timeout=preemption.GRACE_SECS + 30)
    finally:
      process.kill()
  output = open(log_path).read()
  assert process.returncode == 143, output[-3000:]
  line, = _error_lines(output)
  saved = re.search(r"stopped by SIGTERM: the newest checkpoint is "
                    r".*model.ckpt-(\d+) \(step \d+\); the same command "
                    r"resumes from it", line)
  assert saved, line
  step = int(saved.group(1))
  assert step >= 3  # the step it was at, not the last periodic save (0)
  model = tmp_path / "model"
  assert (model / ("model.ckpt-%d.index" % step)).exists()
  assert not list(model.glob("*_temp*"))
  assert json.loads((model / ".writer.lock").read_text() or "{}") == {}
  # Resumed: the same command, a smaller target, ends at once from there.
  resumed = run_multitask([a for a in args if not a.startswith(
      "--num_train_steps")] + ["--num_train_steps=%d" % (step + 2),
                               "--do_train"])
  assert "model.ckpt-%d" % step in resumed.stderr  # restored from it
  assert (model / ("model.ckpt-%d.index" % (step + 2))).exists()


def test_ctrl_c_before_training_is_one_line(tmp_path):
  """SIGINT while the features are built: no traceback, status 130."""
  args = base_args(tmp_path, data_dir(), PROBLEM, steps=4,
                   max_examples=20000)
  log_path = tmp_path / "log"
  with open(log_path, "w") as log:
    process = _popen(args + ["--do_train"], log)
    try:
      _wait_for(lambda: "main job" in open(log_path).read() or
                (tmp_path / "model" / "run.json").exists() or
                os.path.exists(tmp_path / "cache"), 120, "the run to start")
      process.send_signal(signal.SIGINT)
      process.wait(timeout=60)
    finally:
      process.kill()
  output = open(log_path).read()
  assert process.returncode == 130, output[-3000:]
  assert "Traceback" not in output
  assert _error_lines(output)[-1].startswith(
      "run_multitask.py: stopped by SIGINT")


# ---------------------------------------------------------------- exports


def test_a_killed_export_leaves_no_version_and_concurrent_ones_differ(
    trained):
  root, args = trained
  export = root / "model" / "export"
  before = sorted(n for n in os.listdir(export) if n.isdigit())
  assert len(before) == 1
  log_path = root / "killed.log"
  with open(log_path, "w") as log:
    process = _popen(args + ["--do_export"], log)
    try:
      _wait_for(lambda: any(n.startswith(".staging-") and os.listdir(
          export / n) for n in os.listdir(export)), 120, "a staging export")
      time.sleep(2)
      process.kill()
      process.wait()
    finally:
      process.kill()
  assert sorted(n for n in os.listdir(export) if n.isdigit()) == before
  # Two exports at once: distinct versions, each complete; the dead
  # export's staging directory is gone.
  logs = [open(root / ("export-%d.log" % i), "w") for i in range(2)]
  processes = [_popen(args + ["--do_export"], log) for log in logs]
  for process, log in zip(processes, logs):
    process.wait(timeout=400)
    log.close()
  outputs = [open(root / ("export-%d.log" % i)).read() for i in range(2)]
  assert [p.returncode for p in processes] == [1, 0] or [
      p.returncode for p in processes] == [0, 1] or [
          p.returncode for p in processes] == [0, 0], outputs
  # (Two exports of one run directory: the second may be refused by the
  # writer lock; each that ran made its own version.)
  made = sorted(n for n in os.listdir(export) if n.isdigit())
  exported = [re.search(r"exported .*/(\d+)$", o, re.M) for o in outputs]
  assert sorted(m.group(1) for m in exported if m) == sorted(
      set(made) - set(before))
  refused = [o for o, p in zip(outputs, processes) if p.returncode]
  for output in refused:
    assert "is in use by export" in _error_lines(output)[-1]
  assert not [n for n in os.listdir(export) if n.startswith(
      (".staging-", "temp-"))]
  from bert_mtl import serving  # pylint: disable=g-import-not-at-top
  newest = serving.resolve_export(str(export))
  assert os.path.basename(newest) == made[-1]


def test_exports_elsewhere_run_at_once_into_distinct_versions(trained,
                                                              tmp_path):
  """Exports into a directory outside the run take no run lock: two at
  once get two versions."""
  _, args = trained
  target = tmp_path / "served"
  logs = [open(tmp_path / ("e%d.log" % i), "w") for i in range(2)]
  processes = [_popen(args + ["--do_export", "--export_dir=%s" % target],
                      log) for log in logs]
  for process, log in zip(processes, logs):
    process.wait(timeout=400)
    log.close()
  outputs = [open(tmp_path / ("e%d.log" % i)).read() for i in range(2)]
  assert [p.returncode for p in processes] == [0, 0], outputs
  assert len([n for n in os.listdir(target) if n.isdigit()]) == 2


# ------------------------------------------------------ damaged checkpoints


def test_a_damaged_newest_checkpoint_is_named_and_skipped(trained, tmp_path):
  root, args = trained
  model = tmp_path / "model"
  shutil.copytree(root / "model", model)
  args = [a.replace(str(root / "model"), str(model)) for a in args]
  with open(model / "model.ckpt-4.data-00000-of-00001", "r+b") as f:
    f.truncate(100)
  (model / "model.ckpt-6_temp").mkdir()  # a save that died
  evaluated = run_multitask(args + ["--do_eval"])
  assert re.search(r"model.ckpt-4 is damaged: unreadable .*files "
                   r"model.ckpt-4.data-00000-of-00001, model.ckpt-4.index.*"
                   r"using model.ckpt-2", evaluated.stderr)
  assert "global_step = 2" in (model / "eval_results.txt").read_text()
  # Training resumes from the intact one and replaces the damaged step.
  trained_again = run_multitask(args + ["--do_train"])
  assert "model.ckpt-2" in trained_again.stderr
  assert not (model / "model.ckpt-6_temp").exists()
  assert (model / "model.ckpt-4.data-00000-of-00001.damaged").exists()
  from bert_mtl import checkpoint  # pylint: disable=g-import-not-at-top
  assert checkpoint.damage(str(model / "model.ckpt-4")) is None
  # None intact: one line naming them.
  for path in model.glob("model.ckpt-*.data-*"):
    path.write_bytes(b"")
  process = run_multitask(args + ["--do_eval"], check=False)
  assert process.returncode == 1
  line, = _error_lines(process.stderr)
  assert re.match(r"run_multitask.py: error: no intact checkpoint in .*: "
                  r"model.ckpt-4: unreadable.*model.ckpt-2: unreadable", line)


# ---------------------------------------------------- read-only run, disks


def test_a_run_directory_is_evaluated_without_writing_into_it(trained,
                                                               tmp_path):
  root, args = trained
  before = _snapshot(root / "model")
  results = tmp_path / "results"
  run_multitask(args + ["--do_eval", "--do_predict",
                        "--results_dir=%s" % results])
  assert _snapshot(root / "model") == before
  assert "%s/entity_f1 = " % PROBLEM in (results /
                                        "eval_results.txt").read_text()
  assert (results / "predictions" / (PROBLEM + ".jsonl")).exists()


def _mount_tmpfs(path, size):
  path.mkdir()
  done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size,
                         "tmpfs", str(path)], capture_output=True)
  if done.returncode:
    pytest.skip("cannot mount a small file system here (needs root): %s" %
                done.stderr.decode().strip())
  return path


@pytest.fixture()
def small_disk(tmp_path):
  mounted = []

  def make(name, size):
    mounted.append(_mount_tmpfs(tmp_path / name, size))
    return mounted[-1]
  yield make
  for path in mounted:
    subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disks_are_one_line_and_leave_nothing_half_written(
    trained, tmp_path, small_disk):
  root, args = trained
  # The feature cache on a full disk.
  cache = small_disk("disk_cache", "64k")
  process = run_multitask(
      base_args(tmp_path, data_dir(), PROBLEM, steps=2, max_examples=3000,
                cache_dir=str(cache)) + ["--do_train"], check=False)
  line, = _error_lines(process.stderr)
  assert process.returncode == 1
  assert re.match(r"run_multitask.py: error: cannot write %s.* \(the "
                  r"feature cache\): No space left on device" % cache, line)
  assert os.listdir(cache) == []  # no partial entry
  # Checkpoints on a full disk (the tiny model's first checkpoint is
  # ~8 MB with its Adam slots).
  disk = small_disk("disk_model", "3m")
  process = run_multitask(
      [a for a in base_args(tmp_path, data_dir(), PROBLEM, steps=2)
       if not a.startswith("--output_dir")] + [
           "--output_dir=%s" % (disk / "run"), "--do_train"], check=False)
  line, = _error_lines(process.stderr)
  assert process.returncode == 1
  assert re.match(r"run_multitask.py: error: cannot write .*run.* \(a "
                  r"checkpoint\): .*No space left on device", line), line
  assert not list((disk / "run").glob("*_temp*"))
  assert not list((disk / "run").glob("*.tmp*"))
  # An export on a full disk: no version.
  export = small_disk("disk_export", "1m")
  process = run_multitask(args + ["--do_export", "--export_dir=%s" % export],
                          check=False)
  line, = _error_lines(process.stderr)
  assert process.returncode == 1
  assert re.match(r"run_multitask.py: error: cannot write .* \(the "
                  r"export\): .*No space left on device", line), line
  assert not [n for n in os.listdir(export) if not n.startswith(".export")]


@pytest.mark.parametrize("where", ["file", "under_a_file"])
def test_an_output_dir_that_cannot_be_made_is_one_line(tmp_path, where):
  blocker = tmp_path / "blocker"
  blocker.write_text("a file")
  output = blocker if where == "file" else blocker / "run"
  args = [a for a in base_args(tmp_path, data_dir(), PROBLEM, steps=2)
          if not a.startswith("--output_dir")]
  process = run_multitask(args + ["--output_dir=%s" % output, "--do_train"],
                          check=False)
  assert process.returncode in (1, 2)
  line, = _error_lines(process.stderr)
  assert str(blocker) in line and "Traceback" not in process.stderr, line


# ------------------------------------------------------ hangs, bad settings


def test_a_peer_that_never_starts_stops_the_job_naming_it(tmp_path):
  import socket  # pylint: disable=g-import-not-at-top
  s = socket.socket()
  s.bind(("127.0.0.1", 0))
  dead = s.getsockname()[1]
  s.close()
  s = socket.socket()
  s.bind(("127.0.0.1", 0))
  mine = s.getsockname()[1]
  s.close()
  env = {"TF_CONFIG": json.dumps({
      "cluster": {"worker": ["127.0.0.1:%d" % mine, "127.0.0.1:%d" % dead]},
      "task": {"type": "worker", "index": 0}})}
  start = time.time()
  process = run_multitask(base_args(tmp_path, data_dir(), PROBLEM, steps=2,
                                    worker_timeout_secs=8) + ["--do_train"],
                          env=env, check=False, timeout=300)
  # Killed by its watcher: TensorFlow waits for peers inside a C++ call.
  assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
  assert "worker 1 at 127.0.0.1:%d never answered within 8 s" % dead in (
      process.stderr)
  assert time.time() - start < 120


@pytest.mark.parametrize("env,flags,match", [
    ({"TF_CONFIG": "{oops"}, [], "TF_CONFIG is not valid JSON"),
    ({"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                               "task": {"type": "worker", "index": 5}})}, [],
     "TF_CONFIG: task index 5 is out of range"),
    ({}, ["--num_gpus=2"], "--num_gpus=2: this machine has 0 GPUs visible"),
    ({}, ["--init_checkpoint=/etc/passwd"],
     "--init_checkpoint=/etc/passwd: not a readable checkpoint"),
    ({}, ["--init_checkpoint=EMPTY"], "not a readable checkpoint"),
])
def test_bad_settings_are_one_line_before_anything_is_written(
    tmp_path, env, flags, match):
  (tmp_path / "EMPTY").mkdir()
  flags = [f.replace("EMPTY", str(tmp_path / "EMPTY")) for f in flags]
  process = run_multitask(base_args(tmp_path, data_dir(), PROBLEM, steps=2)
                          + flags + ["--do_train"], env=env, check=False,
                          timeout=120)
  assert process.returncode in (1, 2)
  assert match in _error_lines(process.stderr)[0], process.stderr[-2000:]
  assert "Traceback" not in process.stderr
  assert not (tmp_path / "model" / "run.json").exists()


@pytest.mark.parametrize("edit,match", [
    (lambda r: "{broken", r"run.json cannot be read"),
    (lambda r: dict(r, problems="no_such_problem"),
     r"unknown problem 'no_such_problem'"),
    (lambda r: dict(r, learning_rate="fast"), r"learning_rate"),
    (lambda r: dict(r, bogus_key=1), r"bogus_key"),
    (lambda r: dict(r, history="x"), r"history"),
])
def test_a_hand_edited_run_json_is_one_line_naming_the_key(trained, tmp_path,
                                                            edit, match):
  root, args = trained
  model = tmp_path / "model"
  shutil.copytree(root / "model", model, ignore=shutil.ignore_patterns(
      "export", "eval", "*.data-*"))
  record = json.loads((model / "run.json").read_text())
  edited = edit(record)
  (model / "run.json").write_text(edited if isinstance(edited, str)
                                  else json.dumps(edited))
  process = run_multitask(["--output_dir=%s" % model, "--do_eval"],
                          check=False, timeout=120)
  assert process.returncode in (1, 2)
  line, = _error_lines(process.stderr)
  assert re.search(match, line), line
  assert "run.json" in line


@pytest.fixture()
def read_only(tmp_path):
  """read_only(directory): a read-only bind mount of it (root only)."""
  mounted = []

  def make(directory):
    target = tmp_path / ("ro-%d" % len(mounted))
    target.mkdir()
    for command in (["mount", "--bind", str(directory), str(target)],
                    ["mount", "-o", "remount,ro,bind", str(target)]):
      done = subprocess.run(command, capture_output=True)
      if done.returncode:
        if mounted or command[1] == "-o":
          subprocess.run(["umount", "-l", str(target)], check=False)
        pytest.skip("cannot make a read-only mount here (needs root): %s" %
                    done.stderr.decode().strip())
    mounted.append(target)
    return target
  yield make
  for path in mounted:
    subprocess.run(["umount", "-l", str(path)], check=False)


def test_read_only_places(trained, tmp_path, read_only):
  """A published (read-only) run is evaluated and predicted into
  --results_dir; a read-only output_dir or cache is one line."""
  root, args = trained
  model = read_only(root / "model")
  results = tmp_path / "results"
  ro_args = [a.replace(str(root / "model"), str(model)) for a in args]
  run_multitask(ro_args + ["--do_eval", "--do_predict",
                           "--results_dir=%s" % results])
  assert (results / "eval_results.txt").exists()
  assert (results / "predictions" / (PROBLEM + ".jsonl")).exists()
  # Evaluating into the read-only run itself: one line.
  process = run_multitask(ro_args + ["--do_eval"], check=False)
  line, = _error_lines(process.stderr)
  assert process.returncode == 1
  assert "Read-only file system" in line and str(model) in line, line
  # A new run into a read-only directory, and a read-only cold cache.
  empty = tmp_path / "empty"
  empty.mkdir()
  locked = read_only(empty)
  for flag in ("--output_dir=%s" % (locked / "run"),
               "--cache_dir=%s" % (locked / "cache")):
    new_args = [a for a in base_args(tmp_path, data_dir(), PROBLEM, steps=2)
                if not a.startswith(flag.split("=")[0])] + [flag]
    process = run_multitask(new_args + ["--do_train"], check=False)
    line, = _error_lines(process.stderr)
    assert process.returncode == 1, process.stderr[-2000:]
    assert "Read-only file system" in line and str(locked) in line, line
