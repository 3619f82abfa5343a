"""The typed run configuration: defaults written once, checked keys and
values, flags derived from it, and the sampler's real horizon."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bert_mtl import config, experiment, modeling, problems, types
from bert_mtl.config import ConfigError, PretrainConfig, RunConfig
from conftest import data_dir, data_file
from run_helpers import REPO, TINY_BERT


def test_unknown_keys_are_errors_naming_them():
  with pytest.raises(ConfigError, match=r"^learnig_rate=0.1: not a setting "
                     r"of a run \(known: .*learning_rate"):
    RunConfig.from_dict({"learnig_rate": 0.1})
  with pytest.raises(ConfigError, match=r"^pretrain.dupe=3: not a pretrain "
                     "setting"):
    RunConfig.from_dict({"pretrain": {"dupe": 3}})
  with pytest.raises(ConfigError, match="beam_sise"):
    RunConfig().replace(beam_sise=2)


@pytest.mark.parametrize("changes,message", [
    ({"learning_rate": 0}, "learning_rate=0: must be > 0"),
    ({"warmup_proportion": 1.0}, r"warmup_proportion=1.0: must be in \[0, 1\)"),
    ({"max_seq_length": 2}, "max_seq_length=2: must be >= 3"),
    ({"eval_batch_size": 0}, "eval_batch_size=0: must be >= 1"),
    ({"sampling": "random"}, "sampling=random: must be one of uniform"),
    ({"mixed_precision": "int8"}, "mixed_precision=int8: must be float16"),
    ({"bucket_boundaries": [32, 16]}, "bucket_boundaries=.*: must be "
     "increasing positive integers"),
    ({"cpu_replicas": 3, "train_batch_size": 32},
     "train_batch_size=32: is not divisible by 3 replicas"),
    ({"loss_weights": {"a": -1.0}}, "a: weights must be numbers >= 0"),
    ({"sampling_weights": [1.0, 2.0]}, "sampling_weights=.*: is used only "
     "with sampling=weights"),
    ({"original_head": "mrpc"}, "original_head=mrpc: needs init_checkpoint"),
    ({"pretrain": PretrainConfig(masked_lm_prob=1.5)},
     r"pretrain.masked_lm_prob=1.5: must be in \(0, 1\)"),
    ({"settings": {"msra_ner": 3}}, "settings=.*: must be"),
])
def test_bad_values_and_combinations_name_the_key(changes, message):
  with pytest.raises(ConfigError, match=message):
    dataclasses.replace(RunConfig(), **changes).validate()


def test_sampling_weights_need_one_per_group():
  weighted = dataclasses.replace(RunConfig(), sampling="weights",
                                 sampling_weights=[1.0, 0.0])
  assert weighted.validate(num_groups=2) is weighted
  with pytest.raises(ConfigError, match=r"sampling=weights: needs one weight "
                     r">= 0 per '\|' group \(3\)"):
    weighted.validate(num_groups=3)


def test_round_trip_through_run_json():
  original = RunConfig(problems="msra_ner|chn_sentiment", learning_rate=1e-3,
                       settings={"*": {"beam_size": 2}},
                       pretrain=PretrainConfig(dupe_factor=3))
  text = json.dumps(original.to_dict())
  assert RunConfig.from_dict(json.loads(text)) == original
  assert RunConfig.from_dict(json.loads(text)).pretrain.dupe_factor == 3


def test_flags_are_derived_from_the_config():
  """run_multitask.py's flags carry the config's defaults and helps (each
  default written once), and the head-setting flags default to the heads'
  own (None: not given)."""
  code = ("import json, run_multitask\n"
          "from absl import flags\n"
          "run_multitask.cli.define_setting_flags()  # as the command does\n"
          "print(json.dumps({n: [f.default, f.help] for n, f in "
          "flags.FLAGS._flags().items()}))\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, cwd=REPO, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  defined = json.loads(out.stdout.strip().splitlines()[-1])
  fields = config.flag_fields()
  assert len(fields) >= 30
  for flag, _, default, help_text, _, _ in fields:
    assert defined[flag][0] == default, flag
    assert defined[flag][1].endswith(help_text), flag  # enums: <a|b>: ...
  for flag in ("decoder_layers", "beam_size", "beam_alpha",
               "crf_constraints", "crf_lr_multiplier"):
    assert defined[flag][0] is None, flag
  # Every head setting of every type has its flag, generated from the head.
  from bert_mtl import types  # pylint: disable=g-import-not-at-top
  for type_name in types.names():
    head = types.get(type_name).head
    for setting in head.SETTINGS:
      flag = head.SETTING_FLAGS.get(setting, setting)
      assert defined[flag][0] is None, flag
      assert defined[flag][1].startswith(head.SETTING_HELP[setting]), flag
  assert defined["pretrain_dupe_factor"][0] == PretrainConfig().dupe_factor


def _run(tmp_path, **changes):
  values = dict(problems="msra_ner|chn_sentiment", data_dir=data_dir(),
                cache_dir=str(tmp_path / "cache"),
                bert_config=modeling.BertConfig(**TINY_BERT).to_dict(),
                max_seq_length=32, max_examples=40, train_batch_size=8,
                num_train_steps=7)
  values.update(changes)
  return experiment.Experiment(str(tmp_path / "model"), RunConfig(**values),
                               data_file("vocab/chinese_vocab.txt"))


def test_an_experiment_rejects_a_misspelt_setting(tmp_path):
  with pytest.raises(ConfigError, match="num_train_step=5: not a setting"):
    experiment.Experiment(str(tmp_path), {"problems": "msra_ner",
                                          "num_train_step": 5},
                          data_file("vocab/chinese_vocab.txt"))
  assert not os.path.exists(tmp_path / "run.json")


def test_head_settings_come_from_the_types(tmp_path):
  run = _run(tmp_path, problems="msra_ner|msra_entities_text",
             settings={"*": {"beam_size": 2}, "msra_ner": {"crf": False}})
  ner = run.head_settings("msra_ner")
  assert ner["crf"] is False
  assert ner["crf_constraints"] == types.get("seq_tag").settings()[
      "crf_constraints"]
  assert "beam_size" not in ner  # "*" gives each type only its own keys
  text = run.head_settings("msra_entities_text")
  assert text["beam_size"] == 2
  assert text["decoder_layers"] == types.get("seq2seq_text").settings()[
      "decoder_layers"]
  assert text["max_decode_length"] == run.run_config.max_target_length


def test_the_sampler_gets_the_runs_real_horizon(tmp_path, monkeypatch):
  """`annealed` anneals over the run's steps x batch instances (not a
  fixed 65,536), and a resumed run continues the schedule where its last
  checkpoint stopped."""
  from bert_mtl import checkpoint  # pylint: disable=g-import-not-at-top
  seen = []
  original = problems.chain.sample_groups

  def recording(sizes, num_instances, seed, strategy, **kwargs):
    choices = original(sizes, num_instances, seed, strategy, **kwargs)
    seen.append((num_instances, strategy, choices))
    return choices
  monkeypatch.setattr(problems.chain, "sample_groups", recording)
  run = _run(tmp_path, sampling="annealed", bucket_boundaries=[])
  input_fn, _, _ = run.input_fn("train", True, 1)
  rows = [int(b["msra_ner_present"].numpy()[0])
          for b in input_fn().take(20)]
  (horizon, strategy, choices), = seen
  assert (horizon, strategy) == (7 * 8, "annealed")
  # One row per instance, in the schedule's order (group 0 is msra_ner).
  assert rows == [int(c == 0) for c in choices[:20]]
  # Resumed after step 3 (of batch 8): the schedule goes on at instance 24.
  monkeypatch.setattr(checkpoint, "latest_step", lambda output_dir: 3)
  input_fn, _, _ = run.input_fn("train", True, 1)
  rows = [int(b["msra_ner_present"].numpy()[0])
          for b in input_fn().take(20)]
  assert rows == [int(c == 0) for c in choices[24:44]]
  # The schedule itself: alpha goes from 1 to 0.2 over those instances.
  sizes = [400, 40]
  first = problems.group_probabilities(sizes, "annealed", progress=0.0)
  last = problems.group_probabilities(sizes, "annealed", progress=1.0)
  np.testing.assert_allclose(first, np.array(sizes) / 440)
  np.testing.assert_allclose(last, np.array([400, 40]) ** 0.2 /
                             (400 ** 0.2 + 40 ** 0.2))


def test_each_split_is_read_once_per_run(tmp_path, monkeypatch):
  """Label fitting, the training and eval features, the input forms and
  the scoring share one read of each (problem, split)."""
  reads = []
  original = problems.read

  def counting(name, split, data_dir_):
    reads.append((name, split))
    return original(name, split, data_dir_)
  monkeypatch.setattr(problems, "read", counting)
  run = _run(tmp_path, num_train_steps=2)
  run.train()
  run.evaluate()
  run.predict("eval")
  assert sorted(reads) == sorted(set(reads))
  assert set(reads) == {(n, s) for n in ("msra_ner", "chn_sentiment")
                        for s in ("train", "eval")}


def test_lower_layers_take_their_defaults_from_the_config():
  """No layer below the run configuration carries a default that
  disagrees with it (the input_fn's seed, sampling and lengths)."""
  import inspect  # pylint: disable=g-import-not-at-top
  from bert_mtl.data import dataset  # pylint: disable=g-import-not-at-top
  defaults = RunConfig()
  parameters = inspect.signature(dataset.make_input_fn).parameters
  assert parameters["seed"].default == defaults.seed
  assert parameters["strategy"].default == defaults.sampling
  assert parameters["max_seq_length"].default == defaults.max_seq_length
  assert parameters["max_predictions_per_seq"].default == (
      defaults.pretrain.max_predictions_per_seq)


def test_pretraining_instances_follow_the_runs_seed(tmp_path):
  """The pretraining data's seed is the run's unless a run names its own,
  for the command line, notebooks and benchmarks alike."""
  from bert_mtl import tokenization  # pylint: disable=g-import-not-at-top
  from bert_mtl.data import dataset  # pylint: disable=g-import-not-at-top
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\n")
  tokenizer = tokenization.FullTokenizer(str(vocab))
  config = dataset.make_config(tokenizer, str(tmp_path), seed=7)
  assert config.pretrain.seed == 7
  assert dataset.make_config(tokenizer, str(tmp_path)).pretrain.seed == (
      RunConfig().seed)
  own = dataset.make_config(tokenizer, str(tmp_path), seed=7,
                            pretrain=PretrainConfig(seed=3))
  assert own.pretrain.seed == 3
