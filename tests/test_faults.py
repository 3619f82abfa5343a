"""Faults operators meet, in-process: damaged checkpoints, two writers,
export versions and their assets, malformed TF_CONFIG, unsafe names.

(The same classes through the command line, with real processes killed,
signalled and run at once, are in tests/test_faults_cli.py.)
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from bert_mtl import (checkpoint, cluster, export_assets, export_versions,
                      peers, run_directory)
from bert_mtl.problems import registry

tf1 = tf.compat.v1


# ------------------------------------------------------------ checkpoints


def _save_steps(model_dir, steps):
  """Checkpoints model.ckpt-<step> of two variables for each step (as a
  training run saves them: one checkpoint state file listing them)."""
  with tf.Graph().as_default():
    step = tf1.train.get_or_create_global_step()
    tf1.get_variable("w", initializer=np.arange(6, dtype=np.float32))
    tf1.get_variable("b", initializer=np.ones([1000], np.float32))
    saver = tf1.train.Saver(max_to_keep=10)
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      for value in steps:
        session.run(step.assign(value))
        saver.save(session, os.path.join(str(model_dir), "model.ckpt"),
                   global_step=value)


def _truncate(path, keep=10):
  with open(path, "r+b") as f:
    f.truncate(keep)


def test_a_truncated_newest_checkpoint_falls_back_to_the_intact_one(
    tmp_path, caplog):
  _save_steps(tmp_path, [1, 2, 3])
  data = str(tmp_path / "model.ckpt-3.data-00000-of-00001")
  _truncate(data)
  assert checkpoint.damage(str(tmp_path / "model.ckpt-3")).startswith(
      "unreadable")
  assert checkpoint.damage(str(tmp_path / "model.ckpt-2")) is None
  # A reader (evaluation, export) falls back and says which files.
  assert checkpoint.newest_intact(str(tmp_path)) == str(
      tmp_path / "model.ckpt-2")
  warning, = [r.getMessage() for r in caplog.records
              if "damaged" in r.getMessage()]
  assert "model.ckpt-3 is damaged" in warning
  assert "model.ckpt-3.data-00000-of-00001" in warning
  assert "using model.ckpt-2" in warning
  assert os.path.exists(data)  # a reader changes nothing
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-3")
  # A writer (training resumes) moves the damaged files aside and points
  # the checkpoint state at the intact one, which the Estimator resumes.
  assert checkpoint.newest_intact(str(tmp_path), repair=True).endswith(
      "ckpt-2")
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-2")
  assert os.path.exists(data + ".damaged") and not os.path.exists(data)
  state = tf.train.get_checkpoint_state(str(tmp_path))
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      "model.ckpt-1", "model.ckpt-2"]


def test_deleted_and_missing_parts_are_damage_too(tmp_path):
  _save_steps(tmp_path, [1, 2])
  os.remove(tmp_path / "model.ckpt-2.index")
  assert "model.ckpt-2.index is missing" in checkpoint.damage(
      str(tmp_path / "model.ckpt-2"))
  assert checkpoint.newest_intact(str(tmp_path)).endswith("ckpt-1")
  os.remove(tmp_path / "model.ckpt-1.data-00000-of-00001")
  assert "data files missing" in checkpoint.damage(
      str(tmp_path / "model.ckpt-1"))
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"no intact checkpoint in .*model.ckpt-2: "
                     r".*index is missing; model.ckpt-1: data files missing"):
    checkpoint.newest_intact(str(tmp_path))
  assert checkpoint.newest_intact(str(tmp_path / "empty")) is None


def test_a_damaged_state_file_still_finds_the_checkpoints(tmp_path):
  _save_steps(tmp_path, [5, 9])
  (tmp_path / "checkpoint").write_text("garbage {")
  assert checkpoint.newest_intact(str(tmp_path), repair=True).endswith(
      "ckpt-9")


def test_what_a_failed_save_left_is_removed(tmp_path):
  _save_steps(tmp_path, [1])
  left = tmp_path / "model.ckpt-7_temp"
  left.mkdir()
  (left / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
  (tmp_path / "model.ckpt-8_temp_abc.index").write_bytes(b"x")
  removed = checkpoint.remove_failed_saves(str(tmp_path))
  assert [os.path.basename(p) for p in removed] == [
      "model.ckpt-7_temp", "model.ckpt-8_temp_abc.index"]
  assert sorted(os.listdir(tmp_path)) == [
      "checkpoint", "model.ckpt-1.data-00000-of-00001", "model.ckpt-1.index",
      "model.ckpt-1.meta"]


# ------------------------------------------------------------ writer lock


HOLD = textwrap.dedent("""
    import sys, time
    from bert_mtl import run_directory
    with run_directory.writer_lock(sys.argv[1], "holder --do_train"):
      print("held", flush=True)
      time.sleep(600)
""")


def _holder(output_dir):
  process = subprocess.Popen([sys.executable, "-c", HOLD, str(output_dir)],
                             stdout=subprocess.PIPE, text=True)
  assert process.stdout.readline().strip() == "held"
  return process


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, caplog):
  holder = _holder(tmp_path)
  try:
    with pytest.raises(run_directory.RunInUseError) as error:
      with run_directory.writer_lock(str(tmp_path), "second"):
        pass
    message = str(error.value)
    assert "is in use by holder --do_train (pid %d on " % holder.pid in message
    assert "\n" not in message
  finally:
    holder.kill()
    holder.wait()
  # The holder died without releasing: its lock is taken over, saying so.
  with run_directory.writer_lock(str(tmp_path), "third"):
    record = json.loads((tmp_path / run_directory.LOCK_FILE).read_text())
    assert record["command"] == "third" and record["pid"] == os.getpid()
    # Re-entrant in its own process (training exports the best checkpoint).
    with run_directory.writer_lock(str(tmp_path), "nested"):
      pass
  assert any("taking over the writer lock that holder --do_train (pid %d"
             % holder.pid in r.getMessage() for r in caplog.records)
  # A clean release leaves no holder: the next writer says nothing.
  caplog.clear()
  with run_directory.writer_lock(str(tmp_path), "fourth"):
    pass
  assert not [r for r in caplog.records if "taking over" in r.getMessage()]


def test_a_lock_of_another_host_is_not_taken_over(tmp_path):
  (tmp_path / run_directory.LOCK_FILE).write_text(json.dumps(
      {"host": "elsewhere", "pid": 1, "command": "train", "since": "x"}))
  with pytest.raises(run_directory.RunInUseError,
                     match="in use by train .pid 1 on elsewhere.* on another "
                     "host: if that process is gone, remove"):
    with run_directory.writer_lock(str(tmp_path), "mine"):
      pass


# ------------------------------------------------------- export versions


def _fake_export(directory, labels=("neg", "pos"), signatures=None):
  """A minimal export: a SavedModel with `signatures` and assets with
  their checksums (export_versions.write_manifest)."""
  class Model(tf.Module):

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def serve(self, x):
      return {"y": x + 1}
  model = Model()
  names = signatures or ["serving_default"]
  tf.saved_model.save(model, str(directory), signatures={
      n: model.serve for n in names})
  assets = directory / "assets.extra"
  (assets / "labels").mkdir(parents=True)
  (assets / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\na\n")
  (assets / "labels" / "p.json").write_text(json.dumps(
      {"problem": "p", "labels": list(labels)}))
  export_versions.write_manifest(str(directory), {
      "max_seq_length": 8, "do_lower_case": True, "vocab": "vocab.txt",
      "problems": [{"name": "p", "type": "cls", "labels": "labels/p.json",
                    "num_labels": len(labels)}]})
  return directory


def test_assets_are_checked_on_load(tmp_path):
  export = _fake_export(tmp_path / "e")
  assets = export_assets.read(str(export))
  assert assets.encoders["p"].labels == ["neg", "pos"]
  manifest_path = export / "assets.extra" / "manifest.json"
  manifest = json.loads(manifest_path.read_text())
  assert set(manifest["checksums"]) == {"vocab.txt", "labels/p.json"}
  assert manifest["signatures"] == ["serving_default"]
  label_file = export / "assets.extra" / "labels" / "p.json"

  def broken(edit, match):
    saved = manifest_path.read_text(), label_file.read_text()
    edit()
    with pytest.raises(export_assets.AssetError, match=match):
      export_assets.read(str(export))
    manifest_path.write_text(saved[0])
    label_file.write_text(saved[1])

  # A reordered label map: its sha256 differs from the export's.
  broken(lambda: label_file.write_text(json.dumps(
      {"problem": "p", "labels": ["pos", "neg"]})),
         r"p.json has changed since the export")
  # Sizes against the head, even where the checksum is updated to match.
  for labels in (["a", "b", "c"], ["x%d" % i for i in range(1000)]):
    def resize(labels=labels):
      label_file.write_text(json.dumps({"problem": "p", "labels": labels}))
      m = json.loads(manifest_path.read_text())
      m["checksums"] = export_assets.checksums(str(export), m)
      manifest_path.write_text(json.dumps(m))
    broken(resize, r"p.json has %d labels but the head of p has 2 "
           r"\(problems\[0\].labels of .*manifest.json\)" % len(labels))
  # Paths outside assets.extra, missing keys, malformed JSON.
  def retarget(key, value):
    def apply():
      m = json.loads(manifest_path.read_text())
      if key == "labels":
        m["problems"][0]["labels"] = value
      else:
        m[key] = value
      manifest_path.write_text(json.dumps(m))
    return apply
  broken(retarget("labels", "../../../../etc/passwd"),
         r"manifest.json: problems\[0\].labels = '../../../../etc/passwd' "
         r"points outside assets.extra")
  broken(retarget("vocab", "/etc/passwd"), "vocab = '/etc/passwd' points "
         "outside assets.extra")
  broken(retarget("max_seq_length", "8"), "max_seq_length must be a int")
  broken(lambda: manifest_path.write_text("{\"problems\": ["),
         r"manifest.json cannot be read: Expecting")
  broken(lambda: manifest_path.write_text(json.dumps({"vocab": "v"})),
         "manifest.json: problems is missing")


def test_versions_appear_whole_and_the_newest_complete_is_served(
    tmp_path, caplog):
  base = tmp_path / "export"
  with export_versions.staging(str(base)) as staging:
    first = export_versions.publish(
        str(_fake_export(tmp_path / staging / "m")), str(base))
  with export_versions.staging(str(base)) as staging:
    second = export_versions.publish(
        str(_fake_export(tmp_path / staging / "m")), str(base))
  # Distinct versions even within one second; staging directories gone.
  assert int(os.path.basename(second)) == int(os.path.basename(first)) + 1
  assert sorted(os.listdir(base)) == sorted(
      [os.path.basename(first), os.path.basename(second),
       export_versions.LOCK_FILE])
  assert export_versions.newest(str(base)) == second
  # A newer version that is not complete (a signature its manifest lists
  # is missing, or no manifest) is skipped with a warning.
  broken = base / str(int(os.path.basename(second)) + 1)
  shutil.copytree(second, broken)
  manifest_path = broken / "assets.extra" / "manifest.json"
  manifest = json.loads(manifest_path.read_text())
  manifest["signatures"].append("serving_text")
  manifest_path.write_text(json.dumps(manifest))
  newer = base / str(int(os.path.basename(second)) + 2)
  shutil.copytree(second, newer)
  os.remove(newer / "assets.extra" / "manifest.json")
  assert export_versions.newest(str(base)) == second
  skipped = [r.getMessage() for r in caplog.records if "skipped export" in
             r.getMessage()]
  assert len(skipped) == 2
  assert "lacks the signatures its manifest lists: serving_text" in skipped[1]
  assert "manifest.json not found" in skipped[0]
  for path in (first, second):
    shutil.rmtree(path)
  with pytest.raises(export_versions.ExportError,
                     match="holds no complete export .versions .* are "
                     "incomplete"):
    export_versions.newest(str(base))


def test_a_dead_exporters_staging_is_cleaned_by_the_next_export(tmp_path):
  base = tmp_path / "export"
  base.mkdir()
  process = subprocess.Popen([sys.executable, "-c", "pass"])
  process.wait()
  dead = base / ("%s%s-%d-abcd" % (export_versions.STAGING_PREFIX,
                                   __import__("socket").gethostname(),
                                   process.pid))
  alive = base / ("%s%s-%d-abcd" % (export_versions.STAGING_PREFIX,
                                    __import__("socket").gethostname(),
                                    os.getpid()))
  legacy = base / "temp-1700000000"
  for d in (dead, alive, legacy):
    d.mkdir()
  with export_versions.staging(str(base)):
    names = os.listdir(base)
  assert dead.name not in names and legacy.name not in names
  assert alive.name in names  # a live exporter's is its own


# ------------------------------------------------------------ TF_CONFIG


@pytest.mark.parametrize("value,match", [
    ("{not json", "TF_CONFIG is not valid JSON"),
    ("[]", "TF_CONFIG: must be a JSON object"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}}', 'TF_CONFIG: no "task"'),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", '
     '"index": 2}}', "task index 2 is out of range: the cluster has 2 worker"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "ps", '
     '"index": 0}}', "task type 'ps' is not in the cluster"),
    ('{"cluster": {"worker": ["a", "b:2"]}, "task": {"type": "worker", '
     '"index": 0}}', 'must be a list of "host:port" strings'),
])
def test_malformed_tf_config_is_one_line_naming_it(monkeypatch, value,
                                                   match):
  monkeypatch.setenv("TF_CONFIG", value)
  with pytest.raises(cluster.ClusterError, match=match) as error:
    cluster.is_multi_worker()
  assert "\n" not in str(error.value)


def test_a_peer_that_never_answers_is_named():
  import socket  # pylint: disable=g-import-not-at-top
  listening = socket.socket()
  listening.bind(("127.0.0.1", 0))
  listening.listen()
  s = socket.socket()
  s.bind(("127.0.0.1", 0))
  port = s.getsockname()[1]
  s.close()  # nothing listens there
  up = ("worker 0", "127.0.0.1:%d" % listening.getsockname()[1])
  down = ("worker 1", "127.0.0.1:%d" % port)
  assert peers.unanswered_peers([up], 2.0, 0.1) == []
  assert peers.unanswered_peers([up, down], 1.0, 0.1) == [down]
  assert peers.unanswered_peers([down], 30.0, 0.1,
                                  alive=lambda: False) == []
  assert peers.peers_report([down], 8) == (
      "multi-worker training cannot start: worker 1 at 127.0.0.1:%d never "
      "answered within 8 s (--worker_timeout_secs); check TF_CONFIG's "
      "addresses and that every worker was started" % port)
  listening.close()


def test_chief_is_worker_zero_or_the_chief():
  assert cluster.is_chief()  # no TF_CONFIG: a single process


# ----------------------------------------------------------- problem names


@pytest.mark.parametrize("name", ["../../../x", "a/b", "with space", "名字",
                                  "a&b", "a|b", "", ".hidden", "a@b",
                                  "x" * 129])
def test_unsafe_problem_names_are_refused_at_registration(name):
  with pytest.raises(ValueError, match="problem name .*ASCII letters"):
    registry.problem(name, "cls")(lambda split, data_dir: [])
  assert name not in registry.names()


# ------------------------------------------------------------- preemption


def test_signals_are_handled_only_inside_the_block():
  """handling() installs the handlers and gives the previous ones back (a
  notebook's SIGINT and SIGTERM are its own after training); a signal
  outside deferred() stops at once, inside it waits for the step."""
  import signal  # pylint: disable=g-import-not-at-top
  from bert_mtl import preemption  # pylint: disable=g-import-not-at-top
  before = signal.getsignal(signal.SIGTERM)
  with pytest.raises(preemption.Preempted) as stopped:
    with preemption.handling():
      assert signal.getsignal(signal.SIGTERM) is not before
      os.kill(os.getpid(), signal.SIGTERM)
      for _ in range(1000):  # the handler runs between bytecodes
        pass
  assert stopped.value.exit_code == 143
  assert isinstance(stopped.value, KeyboardInterrupt)
  assert signal.getsignal(signal.SIGTERM) is before
  with pytest.raises(preemption.Preempted, match="stopped by SIGINT"):
    with preemption.handling():
      with preemption.deferred():
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
          pass
        assert preemption.requested() == signal.SIGINT  # not raised yet
  # A new block starts clean.
  with preemption.handling():
    assert preemption.requested() is None
