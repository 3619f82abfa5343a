"""One run: problems, data, model and Estimator, saved in its output_dir.

An Experiment composes the pieces of a run: its RunDirectory (what
output_dir holds, run_directory.py), its RunData (splits, label maps,
features and input_fns, run_data.py), the model and training (here), and
evaluation and prediction (evaluation.Evaluator).  Training writes
everything later steps need into output_dir, so evaluation, prediction and
export need only the output directory.
"""

import contextlib
import json
import os
import shutil
import sys
import threading

import tensorflow as tf

from bert_mtl import (checkpoint, cluster, decoding, evaluation, files,
                      hardware, model_fn, modeling, optimization, preemption,
                      problems, progress, run_checks, run_data,
                      run_directory, tokenization)
from bert_mtl.config import RunConfig
from bert_mtl.errors import WriteError
from bert_mtl.run_directory import (  # pylint: disable=unused-import
    FIXED_SETTINGS, RUN_FILE, RunDirectory, RunDirectoryError,
    effective_options, load_run_record)

tf1 = tf.compat.v1


class Experiment(object):
  """Builds and runs one multi-task model.

  Args:
    output_dir: the model directory (checkpoints, run.json, label maps).
    options: a RunConfig (or a dict of its settings, checked the same way)
      for a new run; None loads run.json.
    vocab_file: the vocabulary of a new run (copied into output_dir).
    body_transform: optional fn(heads.base.Body, mode) -> Body between the
      encoder and the heads (see model_fn.build); pass it again when the
      run is reloaded.
    overrides: settings a command may change for a saved run (data_dir,
      cache_dir, max_examples).
  """

  def __init__(self, output_dir, options=None, vocab_file=None,
               body_transform=None, overrides=None):
    self.output_dir = output_dir
    self.body_transform = body_transform
    if isinstance(options, RunConfig):
      options = options.to_dict()
    # Everything is checked before anything in output_dir is written.
    self.directory = RunDirectory(output_dir)
    try:
      run_config = RunConfig.from_dict(self.directory.options_in_force(
          options, vocab_file))
      if options is None:
        run_checks.check(run_config, new_run=False)
    except RunDirectoryError:
      raise
    except ValueError as e:
      if options is not None:
        raise
      # A saved run whose run.json was edited by hand (or by another
      # version): name the file.
      raise RunDirectoryError("%s: %s" % (
          self.directory.path(RUN_FILE), e)) from None
    if overrides:
      run_config = run_config.replace(**overrides)
    # The run's settings, typed, for everything the run does; checked
    # whole (the overrides' errors are theirs, not run.json's).
    self.bert_config = modeling.BertConfig.from_dict(run_config.bert_config)
    self.groups = run_checks.check(run_config, self.bert_config,
                                   new_run=options is not None)
    self.run_config = run_config
    self.names = [n for g in self.groups for n in g]
    self.types = {n: problems.get(n).type for n in self.names}
    saved_vocab = self.directory.install_vocab(vocab_file)
    self.tokenizer = tokenization.FullTokenizer(
        saved_vocab, self.run_config.do_lower_case,
        self.run_config.normalize_width)
    self.bert_config.validate(saved_vocab)
    self.data = run_data.RunData(self.run_config, self.tokenizer,
                                 self.groups, self.directory)
    self.evaluator = evaluation.Evaluator(self)

  # ------------------------------------------------------------ run state

  @property
  def config(self):
    """The data pipeline's settings (dataset.PipelineConfig)."""
    return self.data.config

  @property
  def encoders(self):
    return self.data.encoders

  @property
  def inputs(self):
    return self.data.inputs

  def save(self):
    self.directory.save(self.run_config.to_dict(), self.bert_config,
                        self.encoders, self.inputs,
                        self.precision or "float32")

  @property
  def precision(self):
    """The mixed precision this process computes in (None: float32): the
    run's setting, with "auto" resolved once for this machine and logged
    (hardware.resolve_precision)."""
    if not hasattr(self, "_precision"):
      asked = self.run_config.mixed_precision
      used, why = hardware.resolve_precision(asked, self.run_config.num_gpus)
      if asked == "auto":
        tf1.logging.info("mixed_precision=auto: %s (%s)", used or "float32",
                         why)
      self._precision = used
    return self._precision

  @property
  def results_dir(self):
    """Where evaluation and prediction write (the results_dir setting,
    else output_dir)."""
    return self.run_config.results_dir or self.output_dir

  def writing(self, action, directory=None):
    """The writer lock of the run directory while `action` writes into
    `directory` (default: the run directory; nothing is locked when it is
    outside it).  The workers of a multi-worker run share the chief's."""
    directory = os.path.realpath(directory or self.output_dir)
    inside = (directory + os.sep).startswith(
        os.path.realpath(self.output_dir) + os.sep)
    if not inside or (cluster.is_multi_worker() and not cluster.is_chief()):
      return contextlib.nullcontext()
    # The command as `program --do_...` (its actions, not every flag).
    command = " ".join([os.path.basename(sys.argv[0])] + [
        a for a in sys.argv[1:] if a.startswith("--do_")])
    return run_directory.writer_lock(self.output_dir, "%s (%s)" % (
        action, command))

  def checkpoint_path(self):
    """The newest intact checkpoint of the run (see
    checkpoint.newest_intact).

    Raises:
      checkpoint.CheckpointError: the run has none.
    """
    path = checkpoint.newest_intact(self.output_dir)
    if path is None:
      raise checkpoint.CheckpointError(
          "%s holds no checkpoint: train there first (--do_train)" %
          self.output_dir)
    return path

  def kind(self, name):
    """The ProblemType of problem `name`."""
    return problems.get(name).kind

  def entry(self, name):
    """The problem's decoding (and manifest) entry."""
    return decoding.problem_entry(name, self.head_settings(name),
                                  self.inputs[name])

  def input_fn(self, *args, **kwargs):
    """RunData.input_fn."""
    return self.data.input_fn(*args, **kwargs)

  # ------------------------------------------------------------------ model

  def head_settings(self, name):
    """The problem's head settings: its type's defaults, updated by the
    run's "*" settings the type has and the problem's own, then what the
    type derives from the run (labels, decoder specials...)."""
    kind = self.kind(name)
    settings = kind.settings()
    shared = self.run_config.settings.get("*", {})
    given = {k: v for k, v in shared.items() if k in settings}
    own = self.run_config.settings.get(name, {})
    run_checks.check_head_settings(name, own)
    given.update(own)
    settings.update(given)
    settings.update(kind.head_settings(problems.get(name), self.encoders[name],
                                       self.bert_config, self.run_config,
                                       given))
    return settings

  def params(self, num_train_steps=None):
    steps = int(num_train_steps or self.run_config.num_train_steps)
    accumulation = int(self.run_config.gradient_accumulation_steps)
    updates = max(1, steps // accumulation)
    return {
        "bert_config": self.bert_config.to_dict(),
        "problems": self.names, "types": self.types,
        "num_labels": {n: len(self.encoders[n]) for n in self.names},
        "settings": {n: self.head_settings(n) for n in self.names},
        "loss_weights": self.run_config.loss_weights,
        "uncertainty_weighting": self.run_config.uncertainty_weighting,
        "learning_rate": self.run_config.learning_rate,
        "num_train_steps": updates,
        "num_warmup_steps": int(updates * self.run_config.warmup_proportion),
        "gradient_accumulation_steps": accumulation,
        "adam_bias_correction": self.run_config.adam_bias_correction,
        "fused_ops": self.run_config.fused_ops,
        "loss_scale": "dynamic" if self.precision == "float16" else None,
        "zero_init_token_types": self.run_config.zero_init_token_types,
        "init_checkpoint": self.run_config.init_checkpoint,
        "init_checkpoint_map": (checkpoint.original_head_map(
            checkpoint.ORIGINAL_CLASSIFIER, self.run_config.original_head)
                                if self.run_config.original_head else None),
        "model_dir": self.output_dir,
        "log_every_steps": self.run_config.log_every_steps,
        "lr_multipliers": {
            pattern: factor for n in self.names
            for pattern, factor in self.kind(n).lr_multipliers(
                n, self.head_settings(n)).items()},
    }

  def strategy(self):
    """MirroredStrategy over the GPUs or logical CPUs asked for, the
    multi-worker strategy under TF_CONFIG, else None."""
    if cluster.is_multi_worker():
      return cluster.multi_worker_strategy()
    if self.run_config.num_gpus > 1:
      return tf.distribute.MirroredStrategy(
          ["/gpu:%d" % i for i in range(self.run_config.num_gpus)])
    if self.run_config.cpu_replicas > 1:
      return tf.distribute.MirroredStrategy(
          ["/cpu:%d" % i for i in range(self.run_config.cpu_replicas)],
          cross_device_ops=tf.distribute.ReductionToOneDevice())
    return None

  def num_replicas(self, strategy):
    return strategy.num_replicas_in_sync if strategy else 1

  def estimator(self, num_train_steps=None, strategy=None,
                predict_problems=None, model_dir=None,
                export_precision="float32"):
    """The run's Estimator; model_dir: where it writes (default: the run
    directory; evaluation passes its results directory and names the
    checkpoint); export_precision: the PREDICT graph's matrix products
    (model_fn.EXPORT_PRECISIONS)."""
    session_config = optimization.xla_session_config(
        self.run_config.use_xla, optimization.mixed_precision_session_config(
            self.precision))
    session_config.allow_soft_placement = True
    run_config = tf.estimator.RunConfig(
        model_dir=model_dir or self.output_dir,
        tf_random_seed=self.run_config.seed,
        save_checkpoints_steps=self.run_config.save_checkpoints_steps,
        keep_checkpoint_max=self.run_config.keep_checkpoint_max,
        log_step_count_steps=self.run_config.log_every_steps,
        session_config=session_config, train_distribute=strategy,
        eval_distribute=strategy)
    params = self.params(num_train_steps)
    if predict_problems:
      params["predict_problems"] = list(predict_problems)
    params["export_precision"] = export_precision
    return tf.estimator.Estimator(
        model_fn.make_model_fn(self.body_transform), config=run_config,
        params=params)

  # ---------------------------------------------------------------- actions

  def num_train_steps(self):
    """num_train_steps, else epochs over all training records / batch."""
    if self.run_config.num_train_steps:
      return int(self.run_config.num_train_steps)
    records = self.data.num_train_records()
    epochs = float(self.run_config.num_train_epochs or 1.0)
    return max(1, int(records * epochs / self.run_config.train_batch_size))

  def initialize(self):
    """Saves step 0 of a new run: model.ckpt-0 holds every variable
    training has, with the init_checkpoint's weights where it has them
    (an original fine-tuned head included, see `original_head`), new heads
    at their initializers and zero optimizer slots.  Evaluation,
    prediction and export then run on the checkpoint as it was loaded, and
    training starts from it.  Does nothing when output_dir has a
    checkpoint."""
    with self.writing("initialize"):
      self._initialize()

  def _initialize(self):
    checkpoint.remove_failed_saves(self.output_dir)
    if checkpoint.newest_intact(self.output_dir, repair=True):
      return
    steps = self.num_train_steps()
    self.run_config.num_train_steps = steps
    input_fn, _, _ = self.input_fn("train", True,
                                   self.run_config.train_batch_size)
    self.save()
    params = self.params(steps)
    with tf.Graph().as_default():
      tf1.set_random_seed(self.run_config.seed)
      features = tf1.data.make_one_shot_iterator(input_fn()).get_next()
      model_fn.make_model_fn(self.body_transform)(
          features, None, tf.estimator.ModeKeys.TRAIN, params)
      saver = tf1.train.Saver(max_to_keep=self.run_config.keep_checkpoint_max)
      with tf1.Session() as session, files.writing(self.output_dir,
                                                   "a checkpoint"):
        session.run(tf1.global_variables_initializer())
        saver.save(session, os.path.join(self.output_dir, "model.ckpt"),
                   global_step=0)

  def train(self, num_train_steps=None, evaluate_during_training=False,
            export_best=None):
    """Trains to num_train_steps global steps; a rerun resumes from the
    last checkpoint in output_dir and stops at the same step.

    evaluate_during_training: evaluate every new checkpoint on the eval
      split (train_and_evaluate; always so for multi-worker runs).
    export_best: export(checkpoint_path, export_dir) -> SavedModel
      directory (serving.export of this run): with evaluation during
      training, the checkpoint with the lowest eval loss is exported to
      <output_dir>/export/best/ through it.  None: no best export.

    Raises:
      preemption.Preempted: SIGTERM or SIGINT stopped training (its step
        saved first).
    """
    try:
      with preemption.handling(), self.writing("train"):
        self._train(num_train_steps, evaluate_during_training, export_best)
    except WriteError:
      checkpoint.remove_failed_saves(self.output_dir)  # nothing half-written
      raise
    except preemption.Preempted as e:
      latest = tf.train.latest_checkpoint(self.output_dir)
      raise preemption.Preempted(e.signum, "stopped by %s: %s" % (
          e.signal_name, "the newest checkpoint is %s (step %s); the same "
          "command resumes from it" % (latest, checkpoint.step_of(latest))
          if latest else "training had not begun (no checkpoint); the same "
          "command starts it again"))

  def _train(self, num_train_steps, evaluate_during_training, export_best):
    checkpoint.remove_failed_saves(self.output_dir)
    checkpoint.newest_intact(self.output_dir, repair=True)
    steps = int(num_train_steps or self.num_train_steps())
    self.run_config.num_train_steps = steps
    strategy = self.strategy()
    replicas = self.num_replicas(strategy)
    input_fn, _, built = self.input_fn(
        "train", True, self.run_config.train_batch_size, replicas)
    # --eval_on pairs are built (and their labels checked) before training,
    # not found wrong after it.
    for name, source in sorted(self.run_config.eval_on.items()):
      self.input_fn("eval", False, self.run_config.eval_batch_size,
                    groups=[[name]], sources={name: source})
    self.save()
    for group, (_, meta) in zip(self.groups, built):
      tf1.logging.info("train group %s: %d records", "&".join(group),
                       meta["count"])
    hooks = [progress.ProgressHook(steps, self.run_config.train_batch_size,
                                   self.names,
                                   self.run_config.log_every_steps),
             preemption.PreemptionHook()]
    done = checkpoint.latest_step(self.output_dir)
    if done is not None and done >= steps:
      tf1.logging.warning(
          "%s already holds step %d of %d: nothing to train (give a larger "
          "--num_train_steps to train on)", self.output_dir, done, steps)
    estimator = self.estimator(steps, strategy)
    if not (cluster.is_multi_worker() or evaluate_during_training):
      with preemption.deferred(), files.writing(self.output_dir,
                                                "a checkpoint"):
        estimator.train(input_fn, max_steps=steps, hooks=hooks)
      return
    if cluster.is_multi_worker():
      # Every worker records a digest of its final variables, so a run can
      # check that the workers ended identical.
      hooks.append(progress.VariableDigestHook(os.path.join(
          self.output_dir, "variables-%s.json" %
          cluster.task_name().replace(" ", "-"))))
      hooks.append(cluster.WorkerWatchdogHook(
          self.output_dir, self.run_config.worker_timeout_secs))
    eval_fn, _, eval_built = self.input_fn(
        "eval", False, self.run_config.eval_batch_size, replicas)
    eval_hooks = [progress.EvalProgressHook("evaluating eval", sum(
        meta["count"] for _, meta in eval_built)),
                  preemption.PreemptionHook(training=False)]
    exporters = [BestExport(export_best)] if export_best else None
    with preemption.deferred(), files.writing(self.output_dir,
                                              "a checkpoint"):
      evaluated = tf.estimator.train_and_evaluate(
          estimator, tf.estimator.TrainSpec(input_fn, max_steps=steps,
                                            hooks=hooks),
          tf.estimator.EvalSpec(eval_fn, steps=None, throttle_secs=0,
                                start_delay_secs=0, exporters=exporters,
                                hooks=eval_hooks))
    if evaluated and evaluated[0]:
      # The last evaluation ran on the final checkpoint: --do_eval's
      # evaluate() reuses its in-graph metrics instead of a second pass.
      self.evaluator.remember("eval", evaluated[0])

  # ------------------------------------------------- evaluation, prediction

  def evaluate(self, split="eval", write=True, checkpoint_path=None):
    """evaluation.Evaluator.evaluate."""
    return self.evaluator.evaluate(split, write, checkpoint_path)

  def predict(self, split="predict"):
    """evaluation.Evaluator.predict."""
    return self.evaluator.predict(split)

  def _predict_group(self, group, split, sources=None, checkpoint_path=None):
    return self.evaluator.predict_group(group, split, sources,
                                        checkpoint_path)


class BestExport(tf.estimator.Exporter):
  """Exports the checkpoint of each evaluation whose loss is the lowest so
  far (tf.estimator.BestExporter's rule) through `export`, so the best
  export is the run's full SavedModel (text signatures included), and
  keeps only the newest.  The best loss is kept in best.json beside the
  exports: a resumed run does not replace a better export with a worse."""

  RECORD = "best.json"

  def __init__(self, export):
    self._export = export

  @property
  def name(self):
    return "best"

  def export(self, estimator, export_path, checkpoint_path, eval_result,
             is_the_final_export):
    del estimator, is_the_final_export
    record_path = os.path.join(export_path, self.RECORD)
    best = None
    if os.path.exists(record_path):
      with open(record_path, encoding="utf-8") as f:
        best = json.load(f)["loss"]
    loss = float(eval_result["loss"])
    if best is not None and not loss < best:
      return None
    tf.io.gfile.makedirs(export_path)
    path = _in_own_thread(self._export, checkpoint_path, export_path)
    files.atomic_write(record_path, json.dumps(
        {"loss": loss, "checkpoint": os.path.basename(checkpoint_path),
         "export": os.path.basename(path)}))
    for name in os.listdir(export_path):
      old = os.path.join(export_path, name)
      if name != os.path.basename(path) and name.isdigit():
        shutil.rmtree(old, ignore_errors=True)
    return path


def _in_own_thread(function, *args):
  """function(*args) in a new thread: its default graph and eager mode are
  the thread's own, so an exporter can run eagerly (the text signatures)
  while the training session's finalized graph is the caller's default."""
  result = {}

  def run():
    try:
      result["value"] = function(*args)
    except BaseException as e:  # pylint: disable=broad-except
      result["error"] = e

  thread = threading.Thread(target=run, name="export")
  thread.start()
  thread.join()
  if "error" in result:
    raise result["error"]
  return result["value"]
