"""The run configuration: one typed tree, each default written once.

    config = RunConfig(problems="msra_ner|chn_sentiment", learning_rate=1e-3)
    config = RunConfig.from_dict(json.load(open("run.json")))  # checked

`validate()` raises ConfigError naming the key for unknown keys, bad values
and bad combinations; `to_dict()` is what run.json stores.  run_multitask.py
derives its flags from the fields (`flag_fields`: name, default, help), and
the Experiment, benchmarks/accuracy.py and the notebooks build runs through
it.  Head settings (CRF, beam search...) are the problem types' own, with
their defaults on each head (`settings` here only says what a run changes:
{"*": {...}, problem: {...}}).

Pure Python on purpose: the data layer reads its defaults here too.
"""

import dataclasses
import typing

SAMPLING_STRATEGIES = ("uniform", "proportional", "temperature", "annealed",
                       "weights")
MIXED_PRECISION = ("float16", "bfloat16", "auto")


class ConfigError(ValueError):
  """A setting that makes no sense, with its key, value and reason."""

  def __init__(self, key, value, reason):
    super().__init__("%s=%s: %s" % (key, value, reason))
    self.key, self.value, self.reason = key, value, reason


def _field(default, help_text, flag=True, **metadata):
  """A config field; `flag`: run_multitask.py exposes it as --<name>."""
  kwargs = ({"default_factory": default} if callable(default) else
            {"default": default})
  return dataclasses.field(metadata=dict(help=help_text, flag=flag,
                                         **metadata), **kwargs)


@dataclasses.dataclass
class PretrainConfig:
  """create_pretraining_data.py's settings, with its defaults."""

  dupe_factor: int = _field(10, "pretrain: passes over the corpus with "
                            "different masks.", flag_name="pretrain_dupe_factor")
  short_seq_prob: float = _field(0.1, "pretrain: share of shorter "
                                 "sequences.")
  masked_lm_prob: float = _field(0.15, "pretrain: masked share.")
  max_predictions_per_seq: int = _field(20, "pretrain: masked positions per "
                                        "sequence.")
  do_whole_word_mask: bool = _field(False, "pretrain: mask whole words.")
  seed: typing.Optional[int] = _field(
      None, "pretrain: instance seed (default: the run's seed).", flag=False)

  def validate(self):
    _need(self.dupe_factor >= 1, "pretrain.dupe_factor", self.dupe_factor,
          "must be >= 1")
    _need(self.max_predictions_per_seq >= 1,
          "pretrain.max_predictions_per_seq", self.max_predictions_per_seq,
          "must be >= 1")
    _need(0 < self.masked_lm_prob < 1, "pretrain.masked_lm_prob",
          self.masked_lm_prob, "must be in (0, 1)")
    _need(0 <= self.short_seq_prob <= 1, "pretrain.short_seq_prob",
          self.short_seq_prob, "must be in [0, 1]")


BUCKETS = (16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 256, 320, 384)


@dataclasses.dataclass
class RunConfig:
  """Every setting of a run (see the field helps)."""

  problems: typing.Optional[str] = _field(
      None, "The problem chain, e.g. 'msra_ner&msra_entity_types|"
      "chn_sentiment' ('&': same inputs, '|': sampled groups).")
  data_dir: typing.Optional[str] = _field(
      None, "Corpora directory (default: $BERT_MTL_DATA_DIR or "
      "../shared/data).")
  cache_dir: typing.Optional[str] = _field(
      None, "Feature cache (default: $BERT_MTL_CACHE_DIR or "
      "~/.cache/bert_mtl).")
  results_dir: typing.Optional[str] = _field(
      None, "Where evaluation and prediction write their results (default: "
      "output_dir; name another directory to evaluate or predict with a "
      "run directory that is read-only or in use).")
  bert_config: typing.Optional[dict] = _field(
      None, "The BertConfig as a dict (--bert_config_file or --small_model).",
      flag=False)
  do_lower_case: bool = _field(True, "Lower-case input (must match the "
                               "checkpoint's vocabulary).")
  normalize_width: bool = _field(
      False, "Tokenize full-width ASCII variants (U+FF01-U+FF5E, U+3000) as "
      "their ASCII forms, in training, evaluation and the export (corpora "
      "that mix widths, as People's Daily and the SIGHAN tests; the "
      "vocabulary gives the two widths different ids).")
  zero_init_token_types: bool = _field(
      False, "A fresh model's token-type embeddings start at zero instead of "
      "the original's random normal (variables restored from "
      "--init_checkpoint are unaffected): a random constant added to every "
      "position of single-segment inputs slows the learning of position-"
      "dependent attention (benchmarks/README.md, Accuracy).")
  init_checkpoint: typing.Optional[str] = _field(
      None, "Initial checkpoint (an original BERT checkpoint or a bert_mtl "
      "run).")
  original_head: typing.Optional[str] = _field(
      None, "A cls problem that takes run_classifier.py's head (output_weights"
      " / output_bias) from --init_checkpoint.")
  max_seq_length: int = _field(128, "Tokens per input, [CLS]/[SEP] "
                               "included; longer inputs are windowed.")
  max_target_length: int = _field(32, "seq2seq target tokens, EOS included.")
  max_examples: typing.Optional[int] = _field(
      None, "Use at most this many examples per problem and split (a seeded "
      "random subset; stratified for classification).")
  train_batch_size: int = _field(32, "Global training batch size.")
  eval_batch_size: int = _field(32, "Evaluation batch size.")
  predict_batch_size: int = _field(32, "Prediction batch size.")
  learning_rate: float = _field(5e-5, "Peak Adam learning rate.")
  num_train_steps: typing.Optional[int] = _field(
      None, "Training steps (default: num_train_epochs over the training "
      "records).")
  num_train_epochs: float = _field(3.0, "Epochs over the training records "
                                   "when num_train_steps is not given.")
  warmup_proportion: float = _field(0.1, "Share of steps with linear "
                                    "warmup.")
  save_checkpoints_steps: int = _field(1000, "Checkpoint interval.")
  keep_checkpoint_max: int = _field(5, "Checkpoints kept.")
  gradient_accumulation_steps: int = _field(1, "Micro-batches per update.")
  adam_bias_correction: bool = _field(
      False, "Adam with bias correction (as tf.keras, Model Garden and "
      "HuggingFace); off is the original's update, whose first steps are "
      "several times the learning rate (benchmarks/README.md, Accuracy).")
  mixed_precision: typing.Optional[str] = _field(
      None, "float16 (GPUs; dynamic loss scaling), bfloat16 (CPUs with "
      "AVX512_BF16 or AMX, GPUs of compute capability 8.0+) or auto "
      "(bfloat16 where the hardware has it, else float32; run.json records "
      "what was used).",
      choices=MIXED_PRECISION)
  fused_ops: bool = _field(
      True, "Training graphs run dropout and GELU as single-pass custom ops "
      "(csrc/tf_ops, built by setup.py) when their library loads; exports "
      "never contain them (benchmarks/train_step.py times both).")
  use_xla: bool = _field(False, "JIT-compile the model with XLA "
                         "(auto-clustering); off by default "
                         "(benchmarks/train_step.py times both).")
  sampling: str = _field("proportional", "How '|' groups are sampled.",
                         choices=SAMPLING_STRATEGIES)
  sampling_temperature: float = _field(2.0, "T of temperature sampling.")
  sampling_weights: typing.Optional[list] = _field(
      None, "Per-group weights (with sampling=weights).", flag=False)
  loss_weights: typing.Optional[dict] = _field(
      None, "{problem: loss weight} (default 1).", flag=False)
  uncertainty_weighting: bool = _field(
      False, "Learn loss weights (Kendall et al. 2018).")
  settings: dict = _field(dict, "Head settings: {'*' or problem: {setting: "
                          "value}}; the types give the defaults.", flag=False)
  seed: int = _field(12345, "Random seed (sampling, init, dropout).")
  bucket_boundaries: list = _field(
      lambda: list(BUCKETS), "Sequence lengths that bound the padding "
      "buckets.", flag=False)
  num_shards: int = _field(4, "TFRecord shards per cached split.",
                           flag=False)
  num_threads: int = _field(2, "Tokenizer threads.", flag=False)
  num_processes: int = _field(2, "Processes writing features.", flag=False)
  log_every_steps: int = _field(50, "Progress log interval.")
  pretrain: PretrainConfig = _field(PretrainConfig, "Pretraining data "
                                    "settings.", flag=False)
  num_gpus: int = _field(0, "GPUs for MirroredStrategy (>1).")
  cpu_replicas: int = _field(0, "Split the CPU into N logical devices for "
                             "MirroredStrategy (>1).")
  eval_on: dict = _field(dict, "{problem: other problem}: also score a head "
                         "on another problem's data.", flag=False)
  worker_timeout_secs: int = _field(
      60, "Multi-worker: stop, with a clear error, when a worker has been "
      "silent this long.")

  # ------------------------------------------------------------- (de)serial

  @classmethod
  def from_dict(cls, values):
    """A RunConfig from a dict such as run.json's; an unknown key is a
    ConfigError naming it (a misspelt setting is never ignored)."""
    values = dict(values)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in sorted(values):
      if key not in known:
        raise ConfigError(key, values[key], "not a setting of a run (known: "
                          "%s)" % ", ".join(sorted(known)))
    pretrain = values.pop("pretrain", None)
    if isinstance(pretrain, dict):  # (a PretrainConfig is taken as it is)
      pretrain_known = {f.name for f in dataclasses.fields(PretrainConfig)}
      for key in sorted(pretrain):
        if key not in pretrain_known:
          raise ConfigError("pretrain." + key, pretrain[key],
                            "not a pretrain setting (known: %s)" %
                            ", ".join(sorted(pretrain_known)))
      _check_types(PretrainConfig, pretrain, "pretrain.")
      pretrain = PretrainConfig(**pretrain)
    _check_types(cls, values)
    config = cls(**values) if pretrain is None else cls(pretrain=pretrain,
                                                        **values)
    return config

  def to_dict(self):
    return dataclasses.asdict(self)

  def replace(self, **changes):
    """A copy with `changes` (keys checked like from_dict)."""
    return RunConfig.from_dict(dict(self.to_dict(), **changes))

  # -------------------------------------------------------------- checking

  def validate(self, num_groups=None):
    """Raises ConfigError at the first bad value or combination.

    num_groups: the chain's '|' groups (checks sampling_weights)."""
    _need(self.learning_rate > 0, "learning_rate", self.learning_rate,
          "must be > 0")
    _need(self.num_train_steps is None or self.num_train_steps >= 1,
          "num_train_steps", self.num_train_steps,
          "must be >= 1 (or left out for --num_train_epochs)")
    _need(self.num_train_epochs > 0, "num_train_epochs",
          self.num_train_epochs, "must be > 0")
    _need(0 <= self.warmup_proportion < 1, "warmup_proportion",
          self.warmup_proportion, "must be in [0, 1)")
    _need(self.max_seq_length >= 3, "max_seq_length", self.max_seq_length,
          "must be >= 3 ([CLS], [SEP] and one token)")
    for key in ("train_batch_size", "eval_batch_size", "predict_batch_size",
                "save_checkpoints_steps", "keep_checkpoint_max",
                "gradient_accumulation_steps", "log_every_steps",
                "max_target_length", "worker_timeout_secs", "num_shards",
                "num_threads", "num_processes"):
      _need(getattr(self, key) >= 1, key, getattr(self, key), "must be >= 1")
    _need(self.max_examples is None or self.max_examples >= 1,
          "max_examples", self.max_examples, "must be >= 1")
    _need(self.sampling_temperature > 0, "sampling_temperature",
          self.sampling_temperature, "must be > 0")
    _need(self.sampling in SAMPLING_STRATEGIES, "sampling", self.sampling,
          "must be one of %s" % ", ".join(SAMPLING_STRATEGIES))
    _need(self.mixed_precision in (None,) + MIXED_PRECISION,
          "mixed_precision", self.mixed_precision,
          "must be float16, bfloat16 or auto (or left out)")
    _need(all(isinstance(b, int) and b >= 1 for b in self.bucket_boundaries)
          and list(self.bucket_boundaries) == sorted(set(
              self.bucket_boundaries)), "bucket_boundaries",
          self.bucket_boundaries, "must be increasing positive integers")
    _need(self.cpu_replicas >= 0, "cpu_replicas", self.cpu_replicas,
          "must be >= 0")
    _need(self.num_gpus >= 0, "num_gpus", self.num_gpus, "must be >= 0")
    replicas = max(self.num_gpus, self.cpu_replicas, 1)
    for key in ("train_batch_size", "eval_batch_size"):
      _need(getattr(self, key) % replicas == 0, key, getattr(self, key),
            "is not divisible by %d replicas" % replicas)
    for name, weight in (self.loss_weights or {}).items():
      _need(isinstance(weight, (int, float)) and weight >= 0,
            "loss_weights", self.loss_weights,
            "%s: weights must be numbers >= 0" % name)
    if self.sampling == "weights":
      weights = self.sampling_weights or []
      _need((num_groups is None or len(weights) == num_groups) and weights
            and min(weights) >= 0 and sum(weights) > 0, "sampling",
            self.sampling, "needs one weight >= 0 per '|' group (%s) in "
            "sampling_weights, not all 0" % (num_groups or "?"))
    else:
      _need(not self.sampling_weights, "sampling_weights",
            self.sampling_weights, "is used only with sampling=weights")
    _need(isinstance(self.settings, dict) and all(
        isinstance(v, dict) for v in self.settings.values()), "settings",
          self.settings, "must be {'*' or problem: {setting: value}}")
    _need(not self.original_head or self.init_checkpoint, "original_head",
          self.original_head, "needs init_checkpoint")
    self.pretrain.validate()
    return self

  def problem_names(self):
    """The problems named in the chain (without parsing it)."""
    return [n.strip() for g in (self.problems or "").split("|")
            for n in g.split("&") if n.strip()]


def _type_fits(value, kind):
  """True when `value` (from JSON) is of annotation `kind`."""
  if typing.get_origin(kind) is typing.Union:  # Optional[X]
    return any(_type_fits(value, k) for k in typing.get_args(kind))
  if kind is type(None):
    return value is None
  origin = typing.get_origin(kind) or kind
  if origin is float:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if origin is int:
    return isinstance(value, int) and not isinstance(value, bool)
  if origin in (list, tuple):
    return isinstance(value, (list, tuple))
  return isinstance(value, origin) if isinstance(origin, type) else True


def _check_types(config_class, values, prefix=""):
  """Raises ConfigError for a value whose type is not its field's (a
  hand-edited run.json: "learning_rate": "fast")."""
  for field in dataclasses.fields(config_class):
    if field.name in values and not (
        dataclasses.is_dataclass(field.type) and isinstance(
            values[field.name], (dict, field.type))) and not _type_fits(
                values[field.name], field.type):
      kind = field.type
      name = getattr(kind, "__name__", None) or str(kind).replace(
          "typing.", "")
      raise ConfigError(prefix + field.name, repr(values[field.name]),
                        "must be %s" % name)


def _need(ok, key, value, reason):
  if not ok:
    raise ConfigError(key, value, reason)


def flag_fields(config_class=RunConfig, prefix=""):
  """(flag name, key, default, help, choices, python type) of the fields
  exposed as flags, nested configs' included with dotted keys
  ("pretrain.masked_lm_prob"); the flag name is `flag_name`, else the
  field's name."""
  out = []
  for field in dataclasses.fields(config_class):
    if isinstance(field.type, type) and dataclasses.is_dataclass(field.type):
      out.extend(flag_fields(field.type, prefix + field.name + "."))
      continue
    if not field.metadata.get("flag"):
      continue
    default = (field.default_factory() if field.default is
               dataclasses.MISSING else field.default)
    kind = field.type
    if typing.get_origin(kind) is typing.Union:  # Optional[X]
      kind = [a for a in typing.get_args(kind) if a is not type(None)][0]
    out.append((field.metadata.get("flag_name", field.name),
                prefix + field.name, default, field.metadata["help"],
                field.metadata.get("choices"), kind))
  return out
