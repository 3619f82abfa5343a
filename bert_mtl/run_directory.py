"""The run directory: what a run keeps in its output_dir, and the rules
that protect it.

output_dir holds run.json (the settings, and each later command's changes
in `history`), bert_config.json, vocab.txt, labels/<problem>.json,
inputs.json (how each problem's inputs were given), the checkpoints and the
exports.  A command that would change what the checkpoints mean (a
FIXED_SETTINGS key, another vocabulary) is refused before anything is
written.
"""

import contextlib
import fcntl
import json
import os
import socket
import time

from absl import logging

import tensorflow as tf

from bert_mtl import files, tokenization
from bert_mtl.config import RunConfig
from bert_mtl.errors import WriteError
from bert_mtl.labels import LabelEncoder

RUN_FILE = "run.json"
# {problem: how its training inputs were given}: "text", "document", or a
# unit kind ("char", "word"), so serving cuts raw text as training did.
INPUTS_FILE = "inputs.json"
# Settings that change what a run's checkpoints mean: a later command in
# the same output_dir must keep them.  Everything else (steps, learning
# rate, data location, logging, devices) may change on resume and is
# recorded in run.json's history.
FIXED_SETTINGS = ("problems", "bert_config", "do_lower_case",
                  "normalize_width", "max_seq_length",
                  "max_target_length", "settings", "pretrain",
                  "uncertainty_weighting", "gradient_accumulation_steps")
HISTORY = "history"
# The precision the latest training session ran in (mixed_precision=auto
# resolved): "float32", "bfloat16" or "float16".
PRECISION_USED = "mixed_precision_used"
RECORD_ONLY = (HISTORY, PRECISION_USED)


class RunDirectoryError(ValueError):
  """A command that would change the meaning of an existing run."""


class RunInUseError(RunDirectoryError):
  """Another process is writing into the run directory."""


LOCK_FILE = ".writer.lock"
# {real path of a run directory: [open lock file, how many holders]}: the
# writer locks this process holds (a command holds its run's while it
# trains and exports the best checkpoint from inside training).
_HELD = {}


def _holder_text(holder):
  return "%s (pid %s on %s, since %s)" % (
      holder.get("command", "?"), holder.get("pid", "?"),
      holder.get("host", "?"), holder.get("since", "?"))


@contextlib.contextmanager
def writer_lock(output_dir, command):
  """Holds output_dir's writer lock in the block: one process writes into
  a run directory at a time (training, evaluation writing into it,
  prediction, export).  Re-entrant within a process.

  The lock is an flock on output_dir/.writer.lock, which names its holder
  (host, pid, command): the kernel releases it when its process dies, so a
  lock left by a dead process on this host is taken over (with a warning
  naming it).  A holder on another host (a shared file system) is refused
  unless that file is removed.

  Raises:
    RunInUseError: another process holds it (one line naming the holder).
  """
  key = os.path.realpath(output_dir)
  if key in _HELD:
    _HELD[key][1] += 1
    try:
      yield
    finally:
      _HELD[key][1] -= 1
    return
  path = os.path.join(output_dir, LOCK_FILE)
  try:
    os.makedirs(output_dir, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")
  except OSError as e:
    raise WriteError(path, "the run's writer lock", e) from None
  try:
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    # The holder names itself just after it takes the lock: a reader in
    # between sees an empty file, so look again for a moment.
    for _ in range(40):
      handle.seek(0)
      holder = _parse_holder(handle.read())
      if holder.get("pid"):
        break
      time.sleep(0.05)
    handle.close()
    raise RunInUseError(
        "%s is in use by %s: one process writes into a run directory at a "
        "time; wait for it to finish or stop it (evaluate elsewhere with "
        "--results_dir)" % (output_dir, _holder_text(holder))) from None
  handle.seek(0)
  previous = _parse_holder(handle.read())
  me = {"host": socket.gethostname(), "pid": os.getpid(),
        "command": command, "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
  if previous:
    if previous.get("host") != me["host"]:
      fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
      handle.close()
      raise RunInUseError(
          "%s is in use by %s on another host: if that process is gone, "
          "remove %s" % (output_dir, _holder_text(previous), path))
    logging.warning("%s: taking over the writer lock that %s left (it is "
                    "no longer running)", output_dir, _holder_text(previous))
  handle.seek(0)
  handle.truncate()
  handle.write(json.dumps(me))
  handle.flush()
  _HELD[key] = [handle, 1]
  try:
    yield
  finally:
    del _HELD[key]
    handle.seek(0)
    handle.truncate()  # a clean release leaves no holder behind
    handle.flush()
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    handle.close()


def _parse_holder(text):
  try:
    holder = json.loads(text) if text.strip() else {}
  except ValueError:
    return {"command": "an unreadable lock file"}
  return holder if isinstance(holder, dict) else {}


def _differences(saved, asked, prefix=""):
  """["key: X there, Y asked"] for the keys whose values differ."""
  out = []
  for key in sorted(set(saved) | set(asked)):
    there, here = saved.get(key), asked.get(key)
    if there == here:
      continue
    if isinstance(there, dict) and isinstance(here, dict):
      out.extend(_differences(there, here, prefix + key + "."))
    else:
      out.append("%s%s: %s there, %s asked" % (prefix, key, json.dumps(
          there, ensure_ascii=False), json.dumps(here, ensure_ascii=False)))
  return out


def load_run_record(output_dir):
  """run.json of output_dir as saved (None when there is none)."""
  path = os.path.join(output_dir, RUN_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      record = json.load(f)
  except (OSError, ValueError) as e:
    raise RunDirectoryError("%s cannot be read (%s)" % (path, e)) from None
  if not isinstance(record, dict) or "problems" not in record:
    raise RunDirectoryError("%s is not a bert_mtl run record" % path)
  history = record.get(HISTORY, [])
  if not isinstance(history, list) or not all(
      isinstance(e, dict) and isinstance(e.get("changed", {}), dict)
      for e in history):
    raise RunDirectoryError("%s: %s must be a list of {\"time\", "
                            "\"changed\": {...}} entries" % (path, HISTORY))
  return record


def effective_options(record):
  """The settings in force: the first run's, updated by each later
  command's recorded changes."""
  options = {k: v for k, v in record.items() if k not in RECORD_ONLY}
  for entry in record.get(HISTORY, []):
    options.update(entry.get("changed", {}))
  return options



class RunDirectory(object):
  """One run's output_dir: reads and writes its files."""

  def __init__(self, output_dir):
    self.output_dir = output_dir
    self.record = load_run_record(output_dir)
    self._asked = False

  def path(self, *parts):
    return os.path.join(self.output_dir, *parts)

  @property
  def vocab_file(self):
    return self.path("vocab.txt")

  def options_in_force(self, asked, vocab_file):
    """The settings of the run: `asked` (a dict) for a new or resumed run,
    checked against what the directory holds; None: the saved run's.
    Nothing is written."""
    self._asked = asked is not None
    if asked is None:
      if self.record is None:
        raise ValueError("%s has no %s: train a model there first" %
                         (self.output_dir, RUN_FILE))
      return effective_options(self.record)
    if self.record is not None:
      self._check_compatible(effective_options(self.record), asked,
                             vocab_file)
    elif tf.train.latest_checkpoint(self.output_dir):
      raise RunDirectoryError(
          "%s holds checkpoints but no %s: it is not a bert_mtl run; use a "
          "new --output_dir" % (self.output_dir, RUN_FILE))
    return asked

  def _check_compatible(self, saved, asked, vocab_file):
    """Raises RunDirectoryError when `asked` would change what the run in
    output_dir means (FIXED_SETTINGS, or another vocabulary)."""
    defaults = RunConfig().to_dict()
    saved = dict(defaults, **saved)
    asked = dict(defaults, **asked)
    problems_found = _differences({k: saved[k] for k in FIXED_SETTINGS},
                                  {k: asked[k] for k in FIXED_SETTINGS})
    # bfloat16 and float32 runs share their checkpoints (float32 masters,
    # the precision is a graph rewrite); float16 adds loss-scale variables.
    if (saved["mixed_precision"] == "float16") != (
        asked["mixed_precision"] == "float16"):
      problems_found.append("mixed_precision: %s there, %s asked (float16 "
                            "checkpoints hold loss-scale variables)" % (
                                saved["mixed_precision"],
                                asked["mixed_precision"]))
    if (vocab_file and os.path.exists(self.vocab_file) and
        tokenization.load_vocab_tokens(vocab_file) !=
        tokenization.load_vocab_tokens(self.vocab_file)):
      problems_found.append("vocab: %s there, %s asked (other tokens)" % (
          self.vocab_file, vocab_file))
    if problems_found:
      raise RunDirectoryError(
          "%s already holds a run with other settings (%s): %s. These "
          "change what its checkpoints mean, so nothing was written; use a "
          "new --output_dir, or repeat the run's settings to resume it" % (
              self.output_dir, RUN_FILE, "; ".join(problems_found)))

  def install_vocab(self, vocab_file):
    """Copies a new run's vocabulary in (once); returns the run's."""
    if vocab_file and os.path.abspath(vocab_file) != os.path.abspath(
        self.vocab_file) and not os.path.exists(self.vocab_file):
      with files.writing(self.output_dir, "the run directory"):
        os.makedirs(self.output_dir, exist_ok=True)
        files.atomic_copy(vocab_file, self.vocab_file)
    if not os.path.exists(self.vocab_file):
      raise ValueError("no vocab_file given and none saved in %s" %
                       self.output_dir)
    return self.vocab_file

  def _run_record(self, options, precision_used):
    """run.json: the first run's settings and each later command's
    changes (what it asked for that differed), oldest first, and the
    precision training last ran in."""
    if self.record is None:
      self.record = dict(options, **{HISTORY: [],
                                     PRECISION_USED: precision_used})
      return self.record
    if not self._asked:  # eval / predict / export of a saved run
      return self.record
    self.record = dict(self.record, **{PRECISION_USED: precision_used})
    saved = dict(RunConfig().to_dict(), **effective_options(self.record))
    changed = {k: v for k, v in options.items() if saved.get(k) != v}
    if changed:
      self.record = dict(self.record, **{HISTORY: list(
          self.record.get(HISTORY, [])) + [{
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "changed": changed}]})
    return self.record

  def save(self, options, bert_config, encoders, inputs,
           precision_used="float32"):
    """Writes run.json, bert_config.json, the label maps and inputs.json
    (each atomically)."""
    with files.writing(self.output_dir, "the run directory"):
      self._save(options, bert_config, encoders, inputs, precision_used)

  def _save(self, options, bert_config, encoders, inputs, precision_used):
    files.atomic_write(self.path(RUN_FILE), json.dumps(
        self._run_record(options, precision_used), ensure_ascii=False,
        indent=1,
        sort_keys=True))
    files.atomic_write(self.path("bert_config.json"),
                       bert_config.to_json_string())
    os.makedirs(self.path("labels"), exist_ok=True)
    for name, encoder in encoders.items():
      encoder.save(self.label_file(name))
    files.atomic_write(self.path(INPUTS_FILE), json.dumps(
        inputs, indent=1, sort_keys=True))

  def label_file(self, name):
    return self.path("labels", name + ".json")

  def load_encoders(self, names):
    """The saved label maps of `names`, or None unless all are saved."""
    paths = {n: self.label_file(n) for n in names}
    if not all(os.path.exists(p) for p in paths.values()):
      return None
    return {n: LabelEncoder.load(p) for n, p in paths.items()}

  def load_inputs(self):
    """inputs.json as saved ({} when there is none)."""
    if not os.path.exists(self.path(INPUTS_FILE)):
      return {}
    with open(self.path(INPUTS_FILE), encoding="utf-8") as f:
      return json.load(f)
