"""One run: problems, data, model and Estimator, saved in its output_dir.

Training writes everything later steps need into output_dir (run.json with
the settings, bert_config.json, vocab.txt, labels/<problem>.json), so
evaluation, prediction and export need only the output directory.
"""

import json
import os
import re
import time

import tensorflow as tf

from bert_mtl import (checkpoint, cluster, decoding, evaluation, files,
                      model_fn, modeling, optimization, problems, progress,
                      serving, tokenization, types)
from bert_mtl.data import dataset

tf1 = tf.compat.v1

RUN_FILE = "run.json"
# {problem: how its training inputs were given}: "text", "document", or a
# unit kind ("char", "word"), so serving cuts raw text as training did.
INPUTS_FILE = "inputs.json"
# Settings with these defaults; run_multitask.py exposes them as flags.
DEFAULTS = {
    "problems": None, "data_dir": None, "cache_dir": None,
    "bert_config": None, "do_lower_case": True, "init_checkpoint": None,
    "original_head": None,
    "max_seq_length": 128, "max_target_length": 32, "max_examples": None,
    "train_batch_size": 32, "eval_batch_size": 32, "predict_batch_size": 32,
    "learning_rate": 5e-5, "num_train_steps": 1000, "warmup_proportion": 0.1,
    "save_checkpoints_steps": 1000, "keep_checkpoint_max": 5,
    "gradient_accumulation_steps": 1, "mixed_precision": None,
    "sampling": "proportional", "sampling_temperature": 2.0,
    "sampling_weights": None, "loss_weights": None,
    "uncertainty_weighting": False, "settings": {}, "seed": 12345,
    "bucket_boundaries": [16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 160,
                          192, 256, 320, 384],
    "num_shards": 4, "num_threads": 2, "num_processes": 2,
    "log_every_steps": 50,
    "pretrain": {}, "num_gpus": 0, "cpu_replicas": 0, "eval_on": {},
    "worker_timeout_secs": 60,
}


# Settings that change what a run's checkpoints mean: a later command in
# the same output_dir must keep them.  Everything else (steps, learning
# rate, data location, logging, devices) may change on resume and is
# recorded in run.json's history.
FIXED_SETTINGS = ("problems", "bert_config", "do_lower_case", "max_seq_length",
                  "max_target_length", "settings", "pretrain",
                  "uncertainty_weighting", "gradient_accumulation_steps",
                  "mixed_precision")
HISTORY = "history"


class RunDirectoryError(ValueError):
  """A command that would change the meaning of an existing run."""


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
  return record


def effective_options(record):
  """The settings in force: the first run's, updated by each later
  command's recorded changes."""
  options = {k: v for k, v in record.items() if k != HISTORY}
  for entry in record.get(HISTORY, []):
    options.update(entry.get("changed", {}))
  return options


def _mkdir(path):
  os.makedirs(path, exist_ok=True)
  return path


class Experiment(object):
  """Builds and runs one multi-task model.

  Args:
    output_dir: the model directory (checkpoints, run.json, label maps).
    options: settings (see DEFAULTS) for a new run; None loads run.json.
    vocab_file: the vocabulary of a new run (copied into output_dir).
    body_transform: optional fn(heads.base.Body, mode) -> Body between the
      encoder and the heads (see model_fn.build); pass it again when the
      run is reloaded.
  """

  def __init__(self, output_dir, options=None, vocab_file=None,
               body_transform=None, overrides=None):
    self.output_dir = output_dir
    self.body_transform = body_transform
    # Everything is checked before anything in output_dir is written.
    self._record = load_run_record(output_dir)
    self._asked = options is not None
    if options is None:
      if self._record is None:
        raise ValueError("%s has no %s: train a model there first" %
                         (output_dir, RUN_FILE))
      options = effective_options(self._record)
    elif self._record is not None:
      self._check_compatible(effective_options(self._record), options,
                             vocab_file)
    elif tf.train.latest_checkpoint(output_dir):
      raise RunDirectoryError(
          "%s holds checkpoints but no %s: it is not a bert_mtl run; use a "
          "new --output_dir" % (output_dir, RUN_FILE))
    self.options = dict(DEFAULTS, **options)
    self.options.update(overrides or {})
    self.groups = problems.parse(self.options["problems"])
    self.names = [n for g in self.groups for n in g]
    self.types = {n: problems.get(n).type for n in self.names}
    _mkdir(output_dir)
    saved_vocab = os.path.join(output_dir, "vocab.txt")
    if vocab_file and os.path.abspath(vocab_file) != os.path.abspath(
        saved_vocab) and not os.path.exists(saved_vocab):
      files.atomic_copy(vocab_file, saved_vocab)
    if not os.path.exists(saved_vocab):
      raise ValueError("no vocab_file given and none saved in %s" %
                       output_dir)
    self.tokenizer = tokenization.FullTokenizer(
        saved_vocab, self.options["do_lower_case"])
    self.bert_config = modeling.BertConfig.from_dict(
        self.options["bert_config"])
    self.bert_config.validate(saved_vocab)
    self.config = dataset.make_config(
        self.tokenizer, self.options["data_dir"],
        self.options["max_seq_length"], self.options["cache_dir"],
        self.options["num_shards"], self.options["max_examples"],
        self.options["num_threads"], self.options["max_target_length"],
        pretrain=dataset.PretrainConfig(**self.options["pretrain"]),
        num_processes=self.options["num_processes"])
    self.read = dataset.SplitReader(self.config.data_dir)
    self._encoders = None
    self._inputs = None

  # ------------------------------------------------------------ saved state

  def _check_compatible(self, saved, asked, vocab_file):
    """Raises RunDirectoryError when `asked` would change what the run in
    output_dir means (FIXED_SETTINGS, or another vocabulary)."""
    saved = dict(DEFAULTS, **saved)
    asked = dict(DEFAULTS, **asked)
    problems_found = _differences({k: saved[k] for k in FIXED_SETTINGS},
                                  {k: asked[k] for k in FIXED_SETTINGS})
    saved_vocab = os.path.join(self.output_dir, "vocab.txt")
    if (vocab_file and os.path.exists(saved_vocab) and
        tokenization.load_vocab_tokens(vocab_file) !=
        tokenization.load_vocab_tokens(saved_vocab)):
      problems_found.append("vocab: %s there, %s asked (other tokens)" % (
          saved_vocab, vocab_file))
    if problems_found:
      raise RunDirectoryError(
          "%s already holds a run with other settings (%s): %s. These "
          "change what its checkpoints mean, so nothing was written; use a "
          "new --output_dir, or repeat the run's settings to resume it" % (
              self.output_dir, RUN_FILE, "; ".join(problems_found)))

  def _run_record(self):
    """run.json: the first run's settings and each later command's
    changes (what it asked for that differed), oldest first."""
    if self._record is None:
      self._record = dict(self.options, **{HISTORY: []})
      return self._record
    if not self._asked:  # eval / predict / export of a saved run
      return self._record
    saved = dict(DEFAULTS, **effective_options(self._record))
    changed = {k: v for k, v in self.options.items() if saved.get(k) != v}
    if changed:
      self._record = dict(self._record, **{HISTORY: list(
          self._record.get(HISTORY, [])) + [{
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "changed": changed}]})
    return self._record

  def save(self):
    files.atomic_write(os.path.join(self.output_dir, RUN_FILE), json.dumps(
        self._run_record(), ensure_ascii=False, indent=1, sort_keys=True))
    files.atomic_write(os.path.join(self.output_dir, "bert_config.json"),
                       self.bert_config.to_json_string())
    labels_dir = _mkdir(os.path.join(self.output_dir, "labels"))
    for name, encoder in self.encoders.items():
      encoder.save(os.path.join(labels_dir, name + ".json"))
    files.atomic_write(os.path.join(self.output_dir, INPUTS_FILE), json.dumps(
        self.inputs, indent=1, sort_keys=True))

  @property
  def encoders(self):
    """Label maps: loaded from output_dir, else fitted on training data."""
    if self._encoders is None:
      labels_dir = os.path.join(self.output_dir, "labels")
      paths = {n: os.path.join(labels_dir, n + ".json") for n in self.names}
      if all(os.path.exists(p) for p in paths.values()):
        self._encoders = {n: problems.LabelEncoder.load(p)
                          for n, p in paths.items()}
      else:
        self._encoders = dataset.fit_label_encoders(self.groups, self.config,
                                                    self.read)
    return self._encoders

  @property
  def inputs(self):
    """{problem: input form} (see INPUTS_FILE): saved, else from the
    training split."""
    if self._inputs is None:
      path = os.path.join(self.output_dir, INPUTS_FILE)
      if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
          self._inputs = json.load(f)
      else:
        self._inputs = {}
      for name in self.names:
        if name not in self._inputs:
          self._inputs[name] = (
              "document" if self.kind(name).inputs == "document" else
              decoding.input_form(self.read(name, "train")))
    return self._inputs

  def kind(self, name):
    """The ProblemType of problem `name`."""
    return types.get(self.types[name])

  def entry(self, name):
    """The problem's decoding (and manifest) entry."""
    return decoding.problem_entry(name, self.head_settings(name),
                                  self.inputs[name])

  # ------------------------------------------------------------------ model

  def head_settings(self, name):
    """The problem's head settings: its type's defaults, updated by the
    run's "*" settings the type has and the problem's own, then what the
    type derives from the run (labels, decoder specials...)."""
    kind = self.kind(name)
    settings = kind.settings()
    shared = self.options["settings"].get("*", {})
    given = {k: v for k, v in shared.items() if k in settings}
    own = self.options["settings"].get(name, {})
    unknown = sorted(set(own) - set(settings))
    if unknown:
      raise ValueError("settings of %s (%s): unknown %s (it has: %s)" % (
          name, kind.name, ", ".join(unknown), ", ".join(sorted(settings))))
    given.update(own)
    settings.update(given)
    settings.update(kind.head_settings(problems.get(name), self.encoders[name],
                                       self.bert_config, self.options, given))
    return settings

  def params(self, num_train_steps=None):
    steps = int(num_train_steps or self.options["num_train_steps"])
    accumulation = int(self.options["gradient_accumulation_steps"])
    updates = max(1, steps // accumulation)
    return {
        "bert_config": self.bert_config.to_dict(),
        "problems": self.names, "types": self.types,
        "num_labels": {n: len(self.encoders[n]) for n in self.names},
        "settings": {n: self.head_settings(n) for n in self.names},
        "loss_weights": self.options["loss_weights"],
        "uncertainty_weighting": self.options["uncertainty_weighting"],
        "learning_rate": self.options["learning_rate"],
        "num_train_steps": updates,
        "num_warmup_steps": int(updates * self.options["warmup_proportion"]),
        "gradient_accumulation_steps": accumulation,
        "loss_scale": ("dynamic" if self.options["mixed_precision"] ==
                       "float16" else None),
        "init_checkpoint": self.options["init_checkpoint"],
        "init_checkpoint_map": (checkpoint.original_head_map(
            checkpoint.ORIGINAL_CLASSIFIER, self.options["original_head"])
                                if self.options["original_head"] else None),
        "model_dir": self.output_dir,
        "log_every_steps": self.options["log_every_steps"],
        "lr_multipliers": {
            "^%s/transitions$" % re.escape(n):
                self.head_settings(n)["transitions_lr_multiplier"]
            for n in self.names
            if self.head_settings(n).get("transitions_lr_multiplier")},
    }

  def strategy(self):
    """MirroredStrategy over the GPUs or logical CPUs asked for, the
    multi-worker strategy under TF_CONFIG, else None."""
    if cluster.is_multi_worker():
      return cluster.multi_worker_strategy()
    if self.options["num_gpus"] > 1:
      return tf.distribute.MirroredStrategy(
          ["/gpu:%d" % i for i in range(self.options["num_gpus"])])
    if self.options["cpu_replicas"] > 1:
      return tf.distribute.MirroredStrategy(
          ["/cpu:%d" % i for i in range(self.options["cpu_replicas"])],
          cross_device_ops=tf.distribute.ReductionToOneDevice())
    return None

  def num_replicas(self, strategy):
    return strategy.num_replicas_in_sync if strategy else 1

  def estimator(self, num_train_steps=None, strategy=None,
                predict_problems=None):
    session_config = optimization.mixed_precision_session_config(
        self.options["mixed_precision"])
    session_config.allow_soft_placement = True
    run_config = tf.estimator.RunConfig(
        model_dir=self.output_dir, tf_random_seed=self.options["seed"],
        save_checkpoints_steps=self.options["save_checkpoints_steps"],
        keep_checkpoint_max=self.options["keep_checkpoint_max"],
        log_step_count_steps=self.options["log_every_steps"],
        session_config=session_config, train_distribute=strategy,
        eval_distribute=strategy)
    params = self.params(num_train_steps)
    if predict_problems:
      params["predict_problems"] = list(predict_problems)
    return tf.estimator.Estimator(
        model_fn.make_model_fn(self.body_transform), config=run_config,
        params=params)

  # ------------------------------------------------------------------- data

  def group_features(self, split):
    return [dataset.GroupFeatures(g, split, self.config, self.encoders,
                                  read=self.read) for g in self.groups]

  def input_fn(self, split, training, batch_size, num_replicas=1,
               groups=None, sources=None):
    """(input_fn, [GroupFeatures], [(shards, meta)]) of a split."""
    groups = groups or self.groups
    built_groups = [dataset.GroupFeatures(g, split, self.config,
                                          self.encoders, sources, self.read)
                    for g in groups]
    built = [g.build() for g in built_groups]
    sizes = [meta["count"] for _, meta in built]
    pretrain = self.config.pretrain
    fn = dataset.make_input_fn(
        groups, [shards for shards, _ in built], self.encoders, batch_size,
        training, num_replicas=num_replicas, seed=self.options["seed"],
        strategy=self.options["sampling"], sizes=sizes,
        bucket_boundaries=[b for b in self.options["bucket_boundaries"]
                           if b < self.options["max_seq_length"]] or None,
        max_seq_length=self.options["max_seq_length"],
        max_predictions_per_seq=pretrain.max_predictions_per_seq,
        all_problems=self.names,
        **self._sampling_kwargs())
    return fn, built_groups, built

  def _sampling_kwargs(self):
    strategy = self.options["sampling"]
    if strategy == "temperature":
      return {"temperature": self.options["sampling_temperature"]}
    if strategy == "weights":
      return {"weights": self.options["sampling_weights"]}
    return {}

  # ---------------------------------------------------------------- actions

  def num_train_steps(self):
    """num_train_steps, else epochs over all training records / batch."""
    if self.options.get("num_train_steps"):
      return int(self.options["num_train_steps"])
    records = sum(g.build()[1]["count"] for g in self.group_features("train"))
    epochs = float(self.options.get("num_train_epochs") or 1.0)
    return max(1, int(records * epochs / self.options["train_batch_size"]))

  def initialize(self):
    """Saves step 0 of a new run: model.ckpt-0 holds every variable
    training has, with the init_checkpoint's weights where it has them
    (an original fine-tuned head included, see `original_head`), new heads
    at their initializers and zero optimizer slots.  Evaluation,
    prediction and export then run on the checkpoint as it was loaded, and
    training starts from it.  Does nothing when output_dir has a
    checkpoint."""
    if tf.train.latest_checkpoint(self.output_dir):
      return
    steps = self.num_train_steps()
    self.options["num_train_steps"] = steps
    input_fn, _, _ = self.input_fn("train", True,
                                   self.options["train_batch_size"])
    self.save()
    params = self.params(steps)
    with tf.Graph().as_default():
      tf1.set_random_seed(self.options["seed"])
      features = tf1.data.make_one_shot_iterator(input_fn()).get_next()
      model_fn.make_model_fn(self.body_transform)(
          features, None, tf.estimator.ModeKeys.TRAIN, params)
      saver = tf1.train.Saver(max_to_keep=self.options["keep_checkpoint_max"])
      with tf1.Session() as session:
        session.run(tf1.global_variables_initializer())
        saver.save(session, os.path.join(self.output_dir, "model.ckpt"),
                   global_step=0)

  def train(self, num_train_steps=None, evaluate_during_training=False):
    """Trains to num_train_steps global steps; a rerun resumes from the
    last checkpoint in output_dir and stops at the same step.

    evaluate_during_training: evaluate every new checkpoint on the eval
      split (train_and_evaluate) and export the one with the lowest loss to
      <output_dir>/export/best/ (always so for multi-worker runs)."""
    steps = int(num_train_steps or self.num_train_steps())
    self.options["num_train_steps"] = steps
    strategy = self.strategy()
    replicas = self.num_replicas(strategy)
    input_fn, _, built = self.input_fn(
        "train", True, self.options["train_batch_size"], replicas)
    # --eval_on pairs are built (and their labels checked) before training,
    # not found wrong after it.
    for name, source in sorted(self.options["eval_on"].items()):
      self.input_fn("eval", False, self.options["eval_batch_size"],
                    groups=[[name]], sources={name: source})
    self.save()
    for group, (_, meta) in zip(self.groups, built):
      tf1.logging.info("train group %s: %d records", "&".join(group),
                       meta["count"])
    hooks = [progress.ProgressHook(steps, self.options["train_batch_size"],
                                   self.names,
                                   self.options["log_every_steps"])]
    done = checkpoint.latest_step(self.output_dir)
    if done is not None and done >= steps:
      tf1.logging.warning(
          "%s already holds step %d of %d: nothing to train (give a larger "
          "--num_train_steps to train on)", self.output_dir, done, steps)
    estimator = self.estimator(steps, strategy)
    if not (cluster.is_multi_worker() or evaluate_during_training):
      estimator.train(input_fn, max_steps=steps, hooks=hooks)
      return
    if cluster.is_multi_worker():
      # Every worker records a digest of its final variables, so a run can
      # check that the workers ended identical.
      hooks.append(progress.VariableDigestHook(os.path.join(
          self.output_dir, "variables-%s.json" %
          cluster.task_name().replace(" ", "-"))))
      hooks.append(cluster.WorkerWatchdogHook(
          self.output_dir, self.options["worker_timeout_secs"]))
    eval_fn, _, _ = self.input_fn("eval", False,
                                  self.options["eval_batch_size"])
    best = tf.estimator.BestExporter(
        name="best", serving_input_receiver_fn=(
            serving.serving_input_receiver_fn(os.path.join(
                self.output_dir, "vocab.txt"))), exports_to_keep=1)
    tf.estimator.train_and_evaluate(
        estimator, tf.estimator.TrainSpec(input_fn, max_steps=steps,
                                          hooks=hooks),
        tf.estimator.EvalSpec(eval_fn, steps=None, throttle_secs=0,
                              start_delay_secs=0, exporters=[best]))

  def evaluate(self, split="eval", write=True, checkpoint_path=None):
    """In-graph losses plus sentence-level metrics per problem, and the
    metrics of each eval_on pair (a problem's head scored on another
    problem's data) under "<problem>@<other>".

    Returns:
      {problem: {metric: value}} (and "_graph": the Estimator's metrics).
    """
    estimator = self.estimator()
    input_fn, _, _ = self.input_fn(split, False,
                                   self.options["eval_batch_size"])
    graph_metrics = estimator.evaluate(input_fn,
                                       checkpoint_path=checkpoint_path)
    results = {"_graph": {k: float(v) for k, v in graph_metrics.items()}}
    for group in self.groups:
      if not all(self.kind(n).decodes for n in group):
        for name in group:
          results[name] = {k.split("/", 1)[1]: float(v)
                           for k, v in graph_metrics.items()
                           if k.startswith(name + "/")}
        continue
      decoded, features = self._predict_group(group, split,
                                              checkpoint_path=checkpoint_path)
      for name in group:
        results[name] = self._score(name, features, decoded)
        results[name]["loss"] = float(graph_metrics.get(name + "/loss", 0))
        results[name]["global_step"] = int(graph_metrics["global_step"])
    for name, source in sorted(self.options["eval_on"].items()):
      decoded, features = self._predict_group(
          [name], split, {name: source}, checkpoint_path)
      key = "%s@%s" % (name, source)
      results[key] = self._score(name, features, decoded)
      results[key]["global_step"] = int(graph_metrics["global_step"])
    if write:
      self._write_eval_results(results, split)
    return results

  def _score(self, name, features, decoded):
    return evaluation.score(name, features.examples[name], decoded[name],
                            self.encoders[name], self.config)

  def _predict_group(self, group, split, sources=None, checkpoint_path=None):
    """Decoded predictions of one group's split (decoding's one path, as
    the Predictor), by an Estimator that builds only that group's heads."""
    input_fn, (features,), _ = self.input_fn(
        split, False, self.options["predict_batch_size"], groups=[group],
        sources=sources)
    checkpoint_path = checkpoint_path or tf.train.latest_checkpoint(
        self.output_dir)
    predictions = self.estimator(predict_problems=group).predict(
        input_fn, yield_single_examples=True, checkpoint_path=checkpoint_path)
    entries = {n: self.entry(n) for n in group}
    stored = dict(tf.train.list_variables(checkpoint_path))
    transitions = decoding.crf_transitions(
        entries, lambda v: tf.train.load_variable(checkpoint_path, v)
        if v in stored else None)
    decoded = decoding.decode_group(
        group, [e.inputs for e in features.examples[group[0]]], predictions,
        self.encoders, entries, self.tokenizer,
        self.options["max_seq_length"], transitions)
    return decoded, features

  def _write_eval_results(self, results, split):
    lines = []
    for name in [n for n in results if not n.startswith("_")]:
      directory = _mkdir(os.path.join(self.output_dir, split, name))
      with open(os.path.join(directory, "eval_results.txt"), "w",
                encoding="utf-8") as f:
        for key in sorted(results[name]):
          f.write("%s = %s\n" % (key, results[name][key]))
          lines.append("%s/%s = %s" % (name, key, results[name][key]))
    with open(os.path.join(self.output_dir, "eval_results.txt"), "w",
              encoding="utf-8") as f:
      f.write("\n".join(lines) + "\n")

  def predict(self, split="predict"):
    """Writes predictions/<problem>.jsonl (input, prediction and, when the
    split has them, gold labels); returns {problem: [result]}."""
    out = {}
    directory = _mkdir(os.path.join(self.output_dir, "predictions"))
    for group in self.groups:
      if not all(self.kind(n).decodes for n in group):
        continue
      decoded, features = self._predict_group(group, split)
      for name in group:
        out[name] = decoded[name]
        with open(os.path.join(directory, name + ".jsonl"), "w",
                  encoding="utf-8") as f:
          for example, result in zip(features.examples[name],
                                     decoded[name]):
            inputs = example.inputs
            record = {"input": "".join(inputs) if isinstance(inputs, list)
                      else inputs, "prediction": result}
            if example.labels is not None:
              record["label"] = example.labels
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return out
