"""Every check of a run's settings, in one place: the command line, the
Experiment, notebooks and benchmarks all call `check`.

RunConfig.validate checks what the settings say on their own (ranges,
combinations); `check` adds what needs the registry, the model's
configuration or the files a new run reads: the chain, which problems the
per-problem settings name, head settings each type has, `eval_on` pairs,
`original_head`, max_seq_length against the position embeddings, and the
initial checkpoint.  Each failure is a ConfigError naming its key (the
command line shows it as the flag), before anything is written or read
further.  Lower layers (data, C++) receive checked values.
"""

from bert_mtl import checkpoint, problems, tokenization
from bert_mtl.config import ConfigError


def check(config, bert_config=None, new_run=True):
  """Raises ConfigError (problems.parse's ValueError for the chain) at the
  first thing wrong with a run; returns its groups.

  Args:
    config: a RunConfig.
    bert_config: its modeling.BertConfig, when known (BertConfig.validate
      checks it against the vocabulary).
    new_run: also check the files a new run reads once (init_checkpoint,
      the original head in it); a saved run does not read them again.
  """
  groups = problems.parse(config.problems)
  names = [n for g in groups for n in g]
  config.validate(len(groups))
  chain = "problems=%s" % config.problems
  for key, named in (("loss_weights", config.loss_weights or {}),
                     ("settings", config.settings)):
    for name in named:
      if name != "*" and name not in names:
        raise ConfigError(key, _shown(named), "%s is not in %s" % (name,
                                                                   chain))
  for name in names:
    check_head_settings(name, config.settings.get(name, {}))
  for group in groups:
    for name in group:
      kind = problems.get(name).kind
      if kind.inputs == "document" and len(group) > 1:
        raise ConfigError("problems", config.problems, (
            "a %s problem (%s) takes documents; it cannot be '&'-joined, "
            "use '|'" % (kind.name, name)))
  _check_eval_on(config.eval_on, names)
  if config.original_head:
    _check_original_head(config, names, new_run)
  if bert_config is not None:
    if config.max_seq_length > bert_config.max_position_embeddings:
      raise ConfigError("max_seq_length", config.max_seq_length, (
          "exceeds max_position_embeddings %d" %
          bert_config.max_position_embeddings))
  if new_run and config.init_checkpoint:
    _check_init_checkpoint(config)
  return groups


def check_head_settings(name, given):
  """The settings `given` to problem `name` are settings of its type."""
  kind = problems.get(name).kind
  unknown = sorted(set(given) - set(kind.settings()))
  if unknown:
    raise ConfigError("settings", _shown({name: given}), (
        "settings of %s (%s): unknown %s (it has: %s)" % (
            name, kind.name, ", ".join(unknown),
            ", ".join(sorted(kind.settings())))))


def _shown(value):
  """A dict setting as the command line writes it: problem=value pairs."""
  return ",".join("%s=%s" % item for item in sorted(value.items()))


def _check_eval_on(eval_on, names):
  """{problem: other problem}: a problem of the run, scored on another
  problem of its type."""
  for name, source in sorted(eval_on.items()):
    shown = "%s=%s" % (name, source)
    if name not in names:
      raise ConfigError("eval_on", shown, "%s is not a problem of this run "
                        "(%s)" % (name, ", ".join(names)))
    try:
      source_type = problems.get(source).type
    except ValueError as e:
      raise ConfigError("eval_on", shown, str(e)) from None
    if source_type != problems.get(name).type:
      raise ConfigError("eval_on", shown, "%s is %s but %s is %s" % (
          name, problems.get(name).type, source, source_type))


def _check_original_head(config, names, new_run):
  """original_head names a cls problem of the run, and init_checkpoint
  holds run_classifier's head."""
  name = config.original_head
  if name not in names:
    raise ConfigError("original_head", name, "%s is not a problem of this "
                      "run (%s)" % (name, ", ".join(names)))
  if problems.get(name).type != "cls":
    raise ConfigError("original_head", name, "%s is %s; run_classifier's "
                      "head loads into a cls problem" % (
                          name, problems.get(name).type))
  if not new_run:
    return
  stored = _checkpoint_variables(config.init_checkpoint)
  lacking = [n for n in checkpoint.ORIGINAL_CLASSIFIER if n not in stored]
  if lacking:
    raise ConfigError("original_head", name, "%s has no %s (not a "
                      "checkpoint of run_classifier.py)" % (
                          config.init_checkpoint, " or ".join(lacking)))


def _checkpoint_variables(path):
  """{name: shape} of the checkpoint at `path` (a prefix or directory)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not (tf.io.gfile.exists(path + ".index") or tf.io.gfile.exists(path)):
    raise ConfigError("init_checkpoint", path, "no such checkpoint (give the "
                      "prefix, e.g. .../bert_model.ckpt)")
  try:
    stored = dict(tf.train.list_variables(path))
  except (ValueError, tf.errors.OpError) as e:
    why = str(e).strip().splitlines()[0][:200]
  else:
    if stored:
      return stored
    why = "it holds no variables"
  raise ConfigError("init_checkpoint", path, "not a readable checkpoint (%s);"
                    " give a checkpoint's prefix, e.g. .../bert_model.ckpt" %
                    why)


def _check_init_checkpoint(config):
  _checkpoint_variables(config.init_checkpoint)
  # (The original's ValueError and message, as its users know them.)
  tokenization.validate_case_matches_checkpoint(config.do_lower_case,
                                                config.init_checkpoint)
