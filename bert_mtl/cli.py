"""The command line: train, evaluate, predict and export a multi-task BERT.

Installed as `bert-mtl` (and `python -m bert_mtl`); run_multitask.py at the
repository root is the same command in google-research/bert's style.
With no flags it runs the main job: a small BERT trained from scratch on a
real chain that shows both operators,
msra_ner|pd98_cws&pd98_pos&pd98_ner|chn_sentiment, then evaluation (each
problem's metric), export to a SavedModel, and the Predictor on a few
sentences.  Flags keep google-research/bert's names:

    bert-mtl --problems="weibo_ner&weibo_cws|msra_ner" \
      --bert_config_file=bert_config.json --vocab_file=vocab.txt \
      --init_checkpoint=bert_model.ckpt --do_train --do_eval \
      --output_dir=/tmp/model

Eval, predict and export need only --output_dir (everything else is saved
there by training).
"""

import json
import re
import os
import sys

from absl import app
from absl import flags
from absl import logging

from bert_mtl import config as config_lib
from bert_mtl import data_dir as data_dir_lib
from bert_mtl import process
from bert_mtl import tokenization

FLAGS = flags.FLAGS


def program_name():
  """How the user called the command: run_multitask.py, bert-mtl, or
  bert-mtl for `python -m bert_mtl`."""
  name = os.path.basename(sys.argv[0] if sys.argv else "")
  return "bert-mtl" if name in ("__main__.py", "") else name


# Flags of the run configuration, derived from its fields (name, default and
# help written once, in bert_mtl.config).
_DEFINE = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer,
           float: flags.DEFINE_float, str: flags.DEFINE_string}
for _flag, _key, _default, _help, _choices, _kind in config_lib.flag_fields():
  if _choices:
    flags.DEFINE_enum(_flag, _default, list(_choices), _help)
  else:
    _DEFINE[_kind](_flag, _default, _help)
# The flag of each config key (nested keys as "pretrain.<key>").
CONFIG_FLAGS = {key: flag
                for flag, key, _, _, _, _ in config_lib.flag_fields()}

# Everything else: google-research/bert's file flags, the actions, and the
# flags that fill the configuration's structured fields.
flags.DEFINE_string("bert_config_file", None,
                    "bert_config.json of the model (default: a small config "
                    "for training from scratch, see --small_model).")
flags.DEFINE_string("vocab_file", None,
                    "vocab.txt (default: the Chinese BERT vocab in the data "
                    "directory).")
flags.DEFINE_bool("do_train", None, "Train.")
flags.DEFINE_bool("do_eval", None, "Evaluate on every problem's eval split.")
flags.DEFINE_bool("do_predict", None, "Predict every problem's predict split.")
flags.DEFINE_bool("do_export", None, "Export a SavedModel for TF Serving.")
flags.DEFINE_string("output_dir", None, "Model directory.")
flags.DEFINE_string("export_dir", None, "Export directory (default: "
                    "<output_dir>/export, or export_bfloat16 with "
                    "--export_precision=bfloat16).")
flags.DEFINE_enum("export_precision", "float32", ["float32", "bfloat16"],
                  "The export's matrix products: bfloat16 stores the "
                  "encoder's dense kernels in bfloat16 (faster on CPUs with "
                  "bfloat16 instructions; core ops only).  LayerNorm, "
                  "softmax and the heads stay float32.")
flags.DEFINE_bool("list_problems", False, "Print every registered problem as "
                  "name, type, source; then exit.")
flags.DEFINE_enum("small_model", "tiny", ["tiny", "mini", "small"],
                  "Shape of the from-scratch model when no "
                  "--bert_config_file is given.")
flags.DEFINE_list("sampling_weights", None, "Per-group weights (with "
                  "--sampling=weights).")
flags.DEFINE_list("loss_weights", None, "problem=weight pairs.")
flags.DEFINE_list("bucket_boundaries", ",".join(map(str, config_lib.BUCKETS)),
                  "Sequence lengths bounding the padding buckets (empty: "
                  "pad each batch to its longest row).")
flags.DEFINE_list("eval_on", None, "problem=other pairs: also score a "
                  "problem's head on another problem's eval data of the same "
                  "type and labels, e.g. pd98_cws=pku_cws (SIGHAN PKU gold).")
# {flag: (head setting, its type, per problem)}: the head settings' flags,
# generated from the registered types' heads (define_setting_flags).
SETTING_FLAGS = {}


def define_setting_flags():
  """Defines a flag for every head setting of the registered problem
  types, from the head's SETTINGS, SETTING_HELP, SETTING_TYPES,
  SETTING_FLAGS and PER_PROBLEM (bert_mtl/heads/base.py): a value for
  every problem that has the setting ("*"), or problem=value pairs."""
  from bert_mtl import types  # pylint: disable=g-import-not-at-top
  for type_name in types.names():
    head = types.get(type_name).head
    for setting, default in head.SETTINGS.items():
      flag = head.SETTING_FLAGS.get(setting, setting)
      if flag in SETTING_FLAGS or flag in FLAGS:
        continue
      kind = head.SETTING_TYPES.get(setting, type(default))
      per_problem = setting in head.PER_PROBLEM
      SETTING_FLAGS[flag] = (setting, kind, per_problem)
      help_text = head.SETTING_HELP.get(setting, setting)
      if "(default:" not in help_text:
        help_text += " (default: the %s head's, %s)" % (
            type_name, "none" if default is None else default)
      if per_problem:
        flags.DEFINE_list(flag, None, help_text)
      else:
        _DEFINE[kind](flag, None, help_text)

# People's Daily's person/place/organisation tags ride on its segmentation
# and POS sentences (`&`: one more head, no more inputs) and teach the body
# what MSRA NER needs; the three groups are drawn equally often, so the
# smallest (sentiment) is not starved; bfloat16 where the CPU has it pays
# for 4000 steps in the time 3000 took in float32 (benchmarks/README.md,
# "The main job's recipe").
MAIN_JOB = {"problems": "msra_ner|pd98_cws&pd98_pos&pd98_ner|chn_sentiment",
            "output_dir": os.path.join("output", "main_job"),
            "max_seq_length": 64, "train_batch_size": 32,
            "num_train_steps": 4000, "learning_rate": 1e-3,
            "save_checkpoints_steps": 2000, "normalize_width": True,
            "sampling": "uniform", "mixed_precision": "auto"}
EXAMPLE_SENTENCES = ["中国人民银行行长周小川在北京会见了美国财政部长。",
                     "这家酒店的服务很好，房间干净，下次还会再来。",
                     "上海浦东开发与法制建设同步。"]


def _pairs(values, cast):
  out = {}
  for value in values or []:
    key, _, item = value.partition("=")
    if not item:
      raise app.UsageError("expected problem=value, got %r" % value)
    out[key.strip()] = cast(item.strip())
  return out


def _bool(text):
  if text.lower() not in ("true", "false", "1", "0"):
    raise app.UsageError("expected true or false, got %r" % text)
  return text.lower() in ("true", "1")


def _eval_on():
  """--eval_on as {problem: other problem} (run_checks checks them)."""
  return _pairs(FLAGS.eval_on, str)


def _flag_of(key):
  """The flag that sets config key `key` (None for structured keys)."""
  flag = CONFIG_FLAGS.get(key, key)
  return flag if flag in FLAGS else None


def usage_error(error):
  """A ConfigError as the command line names it: --flag=its value, and
  the settings its reason names (`key=`) as their flags."""
  reason = re.sub(r"\b([a-z_]+)=", lambda m: "--%s=" % _flag_of(m.group(1))
                  if _flag_of(m.group(1)) else m.group(0), error.reason)
  flag = _flag_of(error.key)
  if flag is None:
    return app.UsageError("%s=%s: %s" % (error.key, error.value, reason))
  return app.UsageError("--%s=%s: %s" % (flag, FLAGS[flag].value, reason))


def _check_flag_formats():
  """What only the flags' text can get wrong: list flags' items."""
  def need(ok, flag, what):
    if not ok:
      raise app.UsageError("--%s=%s: %s" % (flag, FLAGS[flag].value, what))
  try:
    [int(b) for b in FLAGS.bucket_boundaries or []]  # pylint: disable=expression-not-assigned
    buckets_ok = True
  except ValueError:
    buckets_ok = False
  need(buckets_ok, "bucket_boundaries", "must be increasing positive "
       "integers")
  for value in FLAGS.loss_weights or []:
    try:
      weight = float(value.partition("=")[2])
    except ValueError:
      weight = None
    need(weight is not None and weight >= 0, "loss_weights",
         "%r: weights must be numbers >= 0" % value)
  try:
    [float(w) for w in FLAGS.sampling_weights or []]  # pylint: disable=expression-not-assigned
  except ValueError:
    need(False, "sampling_weights", "must be numbers")


def list_problems():
  from bert_mtl import problems  # pylint: disable=g-import-not-at-top
  for name in problems.names():
    spec = problems.get(name)
    print("%s\t%s\t%s" % (name, spec.type, spec.source))


def _is_main_job():
  return not any(FLAGS[name].present for name in (
      "problems", "output_dir", "do_train", "do_eval", "do_predict",
      "do_export"))


def run_config_from_flags():
  """The RunConfig the flags describe (structured fields included), not
  yet checked (run_checks.check)."""
  values = {key: FLAGS[flag].value for key, flag in CONFIG_FLAGS.items()
            if "." not in key}
  pretrain = {key.partition(".")[2]: FLAGS[flag].value
              for key, flag in CONFIG_FLAGS.items()
              if key.startswith("pretrain.")}
  shared = {setting: FLAGS[flag].value
            for flag, (setting, _, per_problem) in SETTING_FLAGS.items()
            if not per_problem and FLAGS[flag].value is not None}
  settings = {"*": shared} if shared else {}
  for flag, (setting, kind, per_problem) in SETTING_FLAGS.items():
    if per_problem:
      for name, value in _pairs(FLAGS[flag].value,
                                _bool if kind is bool else kind).items():
        settings.setdefault(name, {})[setting] = value
  weights = _pairs(FLAGS.loss_weights, float)
  values.update(
      data_dir=data_dir_lib.resolve(FLAGS.data_dir), settings=settings,
      loss_weights=weights or None,
      sampling_weights=([float(w) for w in FLAGS.sampling_weights]
                        if FLAGS.sampling_weights else None),
      bucket_boundaries=[int(b) for b in FLAGS.bucket_boundaries or []],
      eval_on=_eval_on(),
      pretrain=config_lib.PretrainConfig(**pretrain))
  return config_lib.RunConfig(**values)


def _options(vocab_file):
  """The RunConfig of a new training run, checked before any work (a bad
  setting is a UsageError naming its flag)."""
  from bert_mtl import modeling, problems, run_checks  # pylint: disable=g-import-not-at-top
  problems.parse(FLAGS.problems)  # unknown names fail here, as they are
  _check_flag_formats()
  config = run_config_from_flags()
  if FLAGS.bert_config_file:
    bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
  else:
    vocab_size = len(tokenization.load_vocab_tokens(vocab_file))
    bert_config = modeling.BertConfig(
        vocab_size, max_position_embeddings=max(128, FLAGS.max_seq_length),
        **modeling.SMALL_MODELS[FLAGS.small_model])
  bert_config.validate(vocab_file, FLAGS.bert_config_file or "bert_config")
  config.bert_config = bert_config.to_dict()
  try:
    run_checks.check(config, bert_config)
  except config_lib.ConfigError as e:
    raise usage_error(e) from None
  return config


# TensorFlow INFO lines a user of the run wants (see _quiet_tensorflow).
KEPT_INFO = ("Restoring parameters from", "Saving checkpoints for",
             "Loss for final step")


def _verbosity_in(argv):
  """--verbosity / -v as given in argv (absl parses it later), else 0."""
  for index, arg in enumerate(argv[1:], 1):
    for name in ("--verbosity", "-v"):
      if arg.startswith(name + "="):
        value = arg.partition("=")[2]
      elif arg == name and index + 1 < len(argv):
        value = argv[index + 1]
      else:
        continue
      try:
        return int(value)
      except ValueError:
        return 0
  return 0


def _quiet_tensorflow(verbosity=None):
  """Keeps the terminal to our lines: unless --verbosity is 1 or more,
  TensorFlow's deprecation notices, the Addons end-of-life notice and the
  Keras-legacy layer warnings are dropped (all of them concern TensorFlow's
  own APIs, not the run)."""
  if (FLAGS.verbosity if verbosity is None else verbosity) >= 1:
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ INFO / WARNING
  import logging  # pylint: disable=g-import-not-at-top
  import warnings  # pylint: disable=g-import-not-at-top
  warnings.filterwarnings("ignore", module=r"(tensorflow|tensorflow_addons|"
                          r"keras|tf_keras)(\.|$)")
  warnings.filterwarnings("ignore", category=UserWarning,
                          message=r".* is deprecated and will be removed")
  warnings.filterwarnings("ignore", category=DeprecationWarning)

  import importlib.util  # pylint: disable=g-import-not-at-top
  # Our code: the bert_mtl package (found without importing it, which
  # would import TensorFlow before the filters are in place) and the
  # script that called us.
  ours = tuple(os.path.abspath(p) for p in [sys.argv[0] or __file__] + list(
      importlib.util.find_spec("bert_mtl").submodule_search_locations))

  class OurLines(logging.Filter):
    """Deprecation notices go; TensorFlow's own INFO lines (the Estimator's
    config dump, its loss and global_step/sec lines, which our progress line
    replaces, SavedModel chatter) go too, but for the lines naming the
    distribution strategy and its devices and the checkpoints restored and
    saved; warnings stay."""

    def filter(self, record):
      if record.pathname.endswith("deprecation.py"):
        return False
      if record.levelno >= logging.WARNING or os.path.abspath(
          record.pathname).startswith(ours):
        return True
      message = record.getMessage()
      # (Not "Strategy" anywhere: the Estimator's config dump and its
      # input_context notice name the strategy object too.)
      return message.startswith(KEPT_INFO) or "Strategy with " in message

  # Newer TensorFlow modules (SavedModel loading and saving) log through
  # absl's logger, the rest through "tensorflow".
  for name in ("tensorflow", "absl"):
    logging.getLogger(name).addFilter(OurLines())
  _import_tensorflow_quietly()


def _import_tensorflow_quietly():
  """Imports TensorFlow with file descriptor 2 on /dev/null: on a machine
  without a GPU its import prints three "Unable to register cuDNN / cuFFT /
  cuBLAS factory" lines at ERROR level, which TF_CPP_MIN_LOG_LEVEL=2 keeps.
  A failing import still raises, with its message, after stderr is back."""
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, "w") as devnull:
      os.dup2(devnull.fileno(), 2)
      import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
  finally:
    os.dup2(saved, 2)
    os.close(saved)


def _configure_devices():
  """Logical CPUs must be set before TensorFlow initialises; GPUs asked for
  must be there (MirroredStrategy over missing GPUs waits forever)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if FLAGS.num_gpus:
    found = len(tf.config.list_physical_devices("GPU"))
    if found < FLAGS.num_gpus:
      raise app.UsageError(
          "--num_gpus=%d: this machine has %d GPU%s visible to TensorFlow "
          "(CUDA_VISIBLE_DEVICES=%s)" % (
              FLAGS.num_gpus, found, "" if found == 1 else "s",
              os.environ.get("CUDA_VISIBLE_DEVICES", "unset")))
  if FLAGS.cpu_replicas > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * FLAGS.cpu_replicas)


def _print_results(results):
  from bert_mtl import evaluation  # pylint: disable=g-import-not-at-top
  for name, values in results.items():
    if name.startswith("_"):
      continue
    key = evaluation.main_metric(name)
    print("%-20s %-20s %.4f   (%s)" % (
        name, key, values.get(key, float("nan")),
        ", ".join("%s=%.4f" % (k, v) for k, v in sorted(values.items())
                  if k != key and isinstance(v, float))))


# Flags an eval / predict / export command may give for a saved run: where
# the data is now, and a quicker subset.  The rest is the run's own.
RUN_OVERRIDES = ("data_dir", "cache_dir", "max_examples", "results_dir",
                 "eval_on")
RUN_FIXED_FLAGS = ("problems", "max_seq_length", "do_lower_case",
                   "max_target_length")


def _saved_run_overrides(record):
  """{option: value} of the override flags given, checked; a flag that the
  saved run fixes and this command changes is an error naming it."""
  from bert_mtl import experiment  # pylint: disable=g-import-not-at-top
  options = dict(config_lib.RunConfig().to_dict(),
                 **experiment.effective_options(record))
  for name in RUN_FIXED_FLAGS:
    if not FLAGS[name].present:
      continue
    if options[name] != FLAGS[name].value:
      raise app.UsageError(
          "--%s=%s: the run in %s was trained with %s=%s; evaluation, "
          "prediction and export use the run's own (train into a new "
          "--output_dir for other settings)" % (
              name, FLAGS[name].value, FLAGS.output_dir, name,
              options[name]))
  from bert_mtl import modeling  # pylint: disable=g-import-not-at-top
  saved_vocab = os.path.join(FLAGS.output_dir, "vocab.txt")
  if FLAGS.vocab_file and (tokenization.load_vocab_tokens(FLAGS.vocab_file) !=
                           tokenization.load_vocab_tokens(saved_vocab)):
    raise app.UsageError("--vocab_file=%s differs from the run's %s" % (
        FLAGS.vocab_file, saved_vocab))
  if FLAGS.bert_config_file and (modeling.BertConfig.from_json_file(
      FLAGS.bert_config_file).to_dict() != options["bert_config"]):
    raise app.UsageError("--bert_config_file=%s differs from the run's "
                         "bert_config.json" % FLAGS.bert_config_file)
  overrides = {name: FLAGS[name].value for name in RUN_OVERRIDES
               if FLAGS[name].present}
  if "data_dir" in overrides:
    overrides["data_dir"] = data_dir_lib.resolve(overrides["data_dir"])
  if "eval_on" in overrides:
    overrides["eval_on"] = _eval_on()
  return overrides


def main(argv):
  """Runs the command; the project's own errors become one line on stderr
  (with the traceback only at --verbosity=1 or more)."""
  process.collect_garbage_less_often()
  from bert_mtl import preemption  # pylint: disable=g-import-not-at-top
  try:
    with preemption.handling():
      _main(argv)
  except preemption.Preempted as e:
    sys.stderr.write("%s: %s\n" % (program_name(), e))
    sys.exit(e.exit_code)
  except _one_line_errors() as e:
    if FLAGS.verbosity >= 1:
      raise
    sys.stderr.write("%s: error: %s\n" % (program_name(), e))
    if isinstance(e, app.UsageError):
      sys.stderr.write("(%s --helpfull lists every flag)\n" %
                       program_name())
    sys.exit(2 if isinstance(e, app.UsageError) else 1)


def _one_line_errors():
  """The errors a user fixes (bad input, settings, files, cluster): one
  line on stderr, not a traceback."""
  from bert_mtl import (checkpoint, cluster, experiment, export_assets,  # pylint: disable=g-import-not-at-top
                        export_versions)
  from bert_mtl.errors import DataError, WriteError  # pylint: disable=g-import-not-at-top
  return (app.UsageError, DataError, WriteError, experiment.RunDirectoryError,
          checkpoint.CheckpointError, config_lib.ConfigError,
          cluster.ClusterError, export_assets.AssetError,
          export_versions.ExportError)


def _main(argv):
  del argv
  from bert_mtl import preemption  # pylint: disable=g-import-not-at-top
  if FLAGS.list_problems:
    list_problems()
    return
  if _is_main_job():
    for name, value in MAIN_JOB.items():
      if not FLAGS[name].present:
        setattr(FLAGS, name, value)
    FLAGS.do_train = FLAGS.do_eval = FLAGS.do_export = True
    print("main job: %s, output in %s" % (FLAGS.problems, FLAGS.output_dir))
  if not FLAGS.output_dir:
    raise app.UsageError("--output_dir is required")
  if not any((FLAGS.do_train, FLAGS.do_eval, FLAGS.do_predict,
              FLAGS.do_export)):
    raise app.UsageError("nothing to do: pass --do_train, --do_eval, "
                         "--do_predict and/or --do_export")
  if FLAGS.original_head and not FLAGS.init_checkpoint:
    raise app.UsageError("--original_head needs --init_checkpoint")
  if FLAGS.do_train:
    from bert_mtl import cluster  # pylint: disable=g-import-not-at-top
    if cluster.is_multi_worker():
      # Before TensorFlow runs anything; a peer that never answers stops
      # this worker with a report instead of a silent wait.
      cluster.multi_worker_strategy(FLAGS.worker_timeout_secs)
  options = vocab_file = None
  # A new run that starts from --init_checkpoint may evaluate, predict or
  # export before (or without) training: step 0 is the checkpoint loaded.
  from_checkpoint = (not FLAGS.do_train and FLAGS.init_checkpoint and
                     FLAGS.problems and not os.path.exists(
                         os.path.join(FLAGS.output_dir, "run.json")))
  if FLAGS.do_train or from_checkpoint:
    if not FLAGS.problems:
      raise app.UsageError("--problems is required to train")
    try:  # every setting is checked here, before any work
      vocab_file = FLAGS.vocab_file or data_dir_lib.require(
          "vocab/chinese_vocab.txt", FLAGS.data_dir)
      if not os.path.exists(vocab_file):
        raise ValueError("--vocab_file %s does not exist" % vocab_file)
      if FLAGS.bert_config_file and not os.path.exists(
          FLAGS.bert_config_file):
        raise ValueError("--bert_config_file %s does not exist" %
                         FLAGS.bert_config_file)
      options = _options(vocab_file)
    except (ValueError, OSError) as e:
      raise app.UsageError(str(e)) from None
  _configure_devices()
  from bert_mtl import experiment, serving  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.INFO)
  preemption.check()  # a signal that landed where it could not raise
  if options is not None:
    run = experiment.Experiment(FLAGS.output_dir, options, vocab_file)
    if from_checkpoint:
      run.initialize()
    else:
      run.train(run.num_train_steps(), evaluate_during_training=bool(
          FLAGS.do_eval), export_best=lambda checkpoint_path, export_dir: (
              serving.export(run, export_dir, checkpoint_path)))
  else:
    record = experiment.load_run_record(FLAGS.output_dir)
    if record is None:
      raise app.UsageError("%s has no run.json: train a model there first "
                           "(--do_train)" % FLAGS.output_dir)
    try:
      run = experiment.Experiment(FLAGS.output_dir,
                                  overrides=_saved_run_overrides(record))
    except config_lib.ConfigError as e:  # (an override's: run.json's are
      raise usage_error(e) from None     # RunDirectoryErrors)

  preemption.check()
  if FLAGS.do_eval:
    _print_results(run.evaluate())
  preemption.check()
  if FLAGS.do_predict:
    run.predict()
    print("predictions in %s" % os.path.join(FLAGS.output_dir, "predictions"))
  preemption.check()
  if FLAGS.do_export:
    export_dir = serving.export(
        run, FLAGS.export_dir or serving.default_export_dir(
            FLAGS.output_dir, FLAGS.export_precision),
        precision=FLAGS.export_precision)
    print("exported %s" % export_dir)
    if _is_main_job() or FLAGS.do_train:
      predictor = serving.Predictor(export_dir)
      for sentence, result in zip(EXAMPLE_SENTENCES,
                                  predictor.predict(EXAMPLE_SENTENCES)):
        print(sentence)
        print("  " + json.dumps(result, ensure_ascii=False))


def run():
  """The console script's entry point (bert-mtl)."""
  # Before anything imports TensorFlow (the head settings' flags import
  # the problem types, which import it), with absl's log handler in place
  # (else TensorFlow's logger adds its own and every line shows twice).
  logging.use_absl_handler()
  _quiet_tensorflow(_verbosity_in(sys.argv))
  define_setting_flags()
  try:
    app.run(main)
  except BrokenPipeError:  # `bert-mtl --list_problems | head`
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)


if __name__ == "__main__":
  run()
