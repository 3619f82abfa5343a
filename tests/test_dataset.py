"""Cached TFRecords and the input_fn on real corpora (small subsets)."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from bert_mtl import problems, tokenization
from bert_mtl import _native as native
from bert_mtl.data import cache, dataset, features
from bert_mtl.testing import reference_pretraining as pretraining
from bert_mtl.types import pretrain
from conftest import data_dir, data_file


@pytest.fixture(scope="module")
def tokenizer():
  return tokenization.FullTokenizer(data_file("vocab/chinese_vocab.txt"))


def build_chain(tokenizer, chain_text, tmp, split="train", max_examples=150,
                max_seq_length=32, root=None):
  config = dataset.make_config(tokenizer, root or data_dir(), max_seq_length,
                               cache_dir=str(tmp), max_examples=max_examples)
  groups = problems.parse(chain_text)
  encoders = dataset.fit_label_encoders(groups, config)
  built = [dataset.GroupFeatures(g, split, config, encoders).build()
           for g in groups]
  return groups, encoders, built, config


def used_examples(tokenizer, group, split, max_examples, sources=None):
  """The examples a group's features are built from under max_examples
  (the seeded subset every GroupFeatures of that group reads)."""
  config = dataset.make_config(tokenizer, data_dir(),
                               max_examples=max_examples)
  return dataset.read_examples(group, split, config, sources or {})


def test_records_round_trip_labels(tokenizer, tmp_path):
  groups, encoders, built, _ = build_chain(tokenizer, "pd98_ner&pd98_cws",
                                           tmp_path, max_seq_length=512)
  (shards, meta), = built
  assert meta["count"] == 150  # one window each at 512
  used = used_examples(tokenizer, ["pd98_ner", "pd98_cws"], "train", 150)
  examples, cws = used["pd98_ner"], used["pd98_cws"]
  alignments = features.align_units(tokenizer, [e.inputs for e in examples])
  seen = 0
  for record in tf.data.TFRecordDataset(shards):
    parsed = tf.train.Example.FromString(record.numpy()).features.feature
    index = parsed["example_index"].int64_list.value[0]
    ids = list(parsed["input_ids"].int64_list.value)
    al = alignments[index]
    assert ids == [101] + al.ids.tolist() + [102]
    for name, source in (("pd98_ner", examples), ("pd98_cws", cws)):
      token_labels = list(parsed[name + "_label"].int64_list.value)
      assert len(token_labels) == len(ids)
      got = [encoders[name].labels[token_labels[p + 1]]
             for p in al.first_token if p >= 0]
      want = [l for l, p in zip(source[index].labels, al.first_token) if p >= 0]
      assert got == want
    seen += 1
  assert seen == 150


def _python_digest(examples):
  """The digest examples_digest must give: per example, inputs and labels
  joined by \\x1f (JSON for anything else), separated by \\x1e / \\x1d."""
  import hashlib  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  digest = hashlib.sha256()
  for e in examples:
    if isinstance(e.inputs, list) and isinstance(e.labels, list) and all(
        isinstance(x, str) for x in e.inputs + e.labels):
      payload = ("\x1f".join(e.inputs) + "\x1e" + "\x1f".join(e.labels) +
                 "\x1d")
    else:
      payload = json.dumps([e.inputs, e.labels], ensure_ascii=False)
    digest.update(payload.encode("utf-8", "surrogatepass"))
  return digest.hexdigest()


def test_examples_digest(tmp_path):
  """Unit-list examples are digested natively, others in Python: both give
  the digest of the plain definition, and any change to inputs or labels
  changes it."""
  del tmp_path
  Example = problems.Example  # pylint: disable=invalid-name
  for name, split in (("msra_ner", "eval"), ("pd98_ner", "train"),
                      ("chn_sentiment", "eval"), ("msra_ner", "predict")):
    examples = problems.read(name, split, data_dir())[:2000]
    assert cache.examples_digest(examples) == _python_digest(examples)
  odd = [Example(["a", "\ud800", "\U0001F600", ""], ["x", "é", "", "y"],
                 None, None), Example([], [], None, None)]
  assert cache.examples_digest(odd) == _python_digest(odd)
  mixed = odd + [Example("text", "label", None, None)]
  assert cache.examples_digest(mixed) == _python_digest(mixed)
  base = cache.examples_digest(odd)
  for changed in ([Example(["a", "\ud800", "\U0001F600", ""],
                           ["x", "é", "", "z"], None, None), odd[1]],
                  [Example(["a", "\ud800\U0001F600", ""], ["x", "é", "y"],
                           None, None), odd[1]]):
    assert cache.examples_digest(changed) != base


def test_cache_reused_and_invalidated(tokenizer, tmp_path):
  _, _, [(shards, _)], _ = build_chain(tokenizer, "msra_ner", tmp_path)
  mtime = os.path.getmtime(shards[0])
  _, _, [(again, _)], _ = build_chain(tokenizer, "msra_ner", tmp_path)
  assert again == shards and os.path.getmtime(again[0]) == mtime
  _, _, [(longer, _)], _ = build_chain(tokenizer, "msra_ner", tmp_path,
                                       max_seq_length=64)
  assert longer != shards
  # A changed data file changes the key.
  root = tmp_path / "data"
  (root / "msra_ner").mkdir(parents=True)
  for name in ("msra_train.txt", "msra_test.txt"):
    shutil.copy(data_file("msra_ner/" + name), root / "msra_ner" / name)
  _, _, [(copied, _)], _ = build_chain(tokenizer, "msra_ner", tmp_path,
                                       root=str(root))
  assert copied == shards  # same content, same key
  text = (root / "msra_ner/msra_train.txt").read_bytes()
  (root / "msra_ner/msra_train.txt").write_bytes(
      text.replace("当 O".encode(), "当 B-LOC".encode()))  # in the subset
  _, _, [(changed, _)], _ = build_chain(tokenizer, "msra_ner", tmp_path,
                                        root=str(root))
  assert changed != shards


def test_killed_write_leaves_no_trusted_cache(tmp_path):
  def records():
    yield b"x"
    raise KeyboardInterrupt  # the run dies mid-write
  with pytest.raises(KeyboardInterrupt):
    cache.write_shards(str(tmp_path), "g", "k" * 64, records(), 2)
  assert os.listdir(str(tmp_path)) == []
  assert cache.cached_shards(str(tmp_path), "g", "k" * 64) is None
  shards, meta = cache.write_shards(str(tmp_path), "g", "k" * 64,
                                    iter([b"a", b"b", b"c"]), 2)
  assert meta["count"] == 3
  assert cache.cached_shards(str(tmp_path), "g", "k" * 64)[0] == shards


def test_training_input_fn_mixes_groups_with_presence(tokenizer, tmp_path):
  groups, encoders, built, _ = build_chain(
      tokenizer, "pd98_ner&pd98_cws|msra_ner|chn_sentiment", tmp_path)
  sizes = [meta["count"] for _, meta in built]
  input_fn = dataset.make_input_fn(
      groups, [s for s, _ in built], encoders, batch_size=16, training=True,
      num_replicas=2, seed=3, strategy="uniform", sizes=sizes,
      bucket_boundaries=[16, 24])
  batches = list(input_fn().take(60).as_numpy_iterator())
  again = list(input_fn().take(5).as_numpy_iterator())
  for a, b in zip(batches, again):  # deterministic for a seed
    np.testing.assert_array_equal(a["input_ids"], b["input_ids"])
  present = {n: 0 for g in groups for n in g}
  for batch in batches:
    assert batch["input_ids"].shape[0] == 8  # per replica
    assert (batch["input_ids"][:, 0] == 101).all()
    assert (batch["input_mask"].sum(1) >= 3).all()
    for name in present:
      mask = batch[name + "_present"].astype(bool)
      present[name] += mask.sum()
      if name != "chn_sentiment":
        absent = batch[name + "_label"][~mask]
        assert (absent == features.IGNORE).all()
    # &-joined problems are present together.
    np.testing.assert_array_equal(batch["pd98_ner_present"],
                                  batch["pd98_cws_present"])
  total = 60 * 8
  for name in ("msra_ner", "chn_sentiment", "pd98_ner"):
    assert abs(present[name] / total - 1 / 3) < 0.08, present


def test_eval_input_fn_visits_every_record_once(tokenizer, tmp_path):
  groups, encoders, built, _ = build_chain(
      tokenizer, "msra_ner|pd98_ner", tmp_path, split="eval",
      max_seq_length=24)
  input_fn = dataset.make_input_fn(groups, [s for s, _ in built], encoders,
                                   batch_size=7, training=False)
  seen = []
  for batch in input_fn().as_numpy_iterator():
    for i in range(batch["input_ids"].shape[0]):
      group = 0 if batch["msra_ner_present"][i] else 1
      seen.append((group, batch["example_index"][i], batch["window_start"][i]))
  assert len(seen) == len(set(seen)) == sum(m["count"] for _, m in built)


@pytest.mark.parametrize("num_replicas", [2, 4])
def test_eval_batches_fill_whole_replica_steps(tokenizer, tmp_path,
                                               num_replicas):
  """Under a distribution strategy the eval batches come in whole steps
  (filler batches without rows complete the last one): the same rows in
  the same order, nothing a head or the row count can see added."""
  groups, encoders, built, _ = build_chain(
      tokenizer, "zh_pretrain|pd98_ner&pd98_cws", tmp_path, split="eval",
      max_examples=30, max_seq_length=24)
  shards = [s for s, _ in built]
  total = sum(m["count"] for _, m in built)
  # A batch size that leaves a partial last step (the corpora present
  # decide the row count: zh_pretrain reads Weibo where it is).
  for per_replica in [4] + list(range(2, 17)):
    plain = list(dataset.make_input_fn(
        groups, shards, encoders, batch_size=per_replica, training=False,
        max_seq_length=24)().as_numpy_iterator())
    if len(plain) % num_replicas:
      break
  stepped = list(dataset.make_input_fn(
      groups, shards, encoders, batch_size=per_replica * num_replicas,
      training=False, num_replicas=num_replicas,
      max_seq_length=24)().as_numpy_iterator())
  assert len(plain) % num_replicas, "the case needs a partial last step"
  assert len(stepped) == -(-len(plain) // num_replicas) * num_replicas
  for a, b in zip(plain, stepped):
    assert sorted(a) == sorted(b)
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  names = [n for g in groups for n in g]
  for filler in stepped[len(plain):]:
    assert filler["input_ids"].shape[0] == 1
    assert not filler["input_mask"].any()
    for name in names:
      assert not filler[name + "_present"].any()
    assert filler["zh_pretrain_masked_lm_weights"].shape == (1, 20)
    assert not filler["zh_pretrain_masked_lm_weights"].any()
  # model_fn counts a batch's rows by its [CLS] mask.
  assert sum(b["input_mask"][:, 0].sum() for b in stepped) == total
  # Whole steps already: nothing is added.
  exact = list(dataset.whole_steps(tf.data.Dataset.from_tensor_slices(
      {"input_ids": np.ones([4, 1, 3], np.int32)}), 2,
      {"input_ids": tf.constant(0)}).as_numpy_iterator())
  assert len(exact) == 4 and all(b["input_ids"].all() for b in exact)


def test_bucketing_reduces_padding(tokenizer, tmp_path):
  groups, encoders, built, _ = build_chain(tokenizer, "chn_sentiment",
                                           tmp_path, max_examples=2000,
                                           max_seq_length=128)

  def padded_fraction(boundaries):
    input_fn = dataset.make_input_fn(
        groups, [s for s, _ in built], encoders, batch_size=32,
        training=True, seed=0, sizes=[built[0][1]["count"]],
        bucket_boundaries=boundaries)
    real = total = 0
    for batch in input_fn().take(40).as_numpy_iterator():
      real += batch["input_mask"].sum()
      total += batch["input_mask"].size
    return 1 - real / total
  plain = padded_fraction(None)
  bucketed = padded_fraction([24, 32, 48, 64, 96])
  assert bucketed < 0.15 and bucketed < 0.5 * plain, (bucketed, plain)


def test_bad_settings(tokenizer, tmp_path):
  with pytest.raises(ValueError, match="not divisible by 3 replicas"):
    dataset.make_input_fn([["msra_ner"]], [[]], {}, batch_size=16,
                          training=True, num_replicas=3)
  config = dataset.make_config(tokenizer, data_dir(), cache_dir=str(tmp_path),
                               max_examples=20)
  encoders = dataset.fit_label_encoders([["zh_pretrain"], ["msra_ner"]],
                                        config)
  with pytest.raises(ValueError, match="differs from problem zh_pretrain"):
    dataset.GroupFeatures(["zh_pretrain", "msra_ner"], "train", config,
                          encoders)


def test_scoring_a_head_on_another_problems_data(tokenizer, tmp_path):
  """pd98_cws's head scored on the SIGHAN PKU gold test: the group reads
  pku_cws's examples under pd98_cws's name and labels, in its own cache
  entry."""
  data_file("sighan2005/pku_test_gold.utf8")  # not on the package index
  config = dataset.make_config(tokenizer, data_dir(), 32,
                               cache_dir=str(tmp_path), max_examples=30)
  encoders = dataset.fit_label_encoders([["pd98_cws"]], config)
  own = dataset.GroupFeatures(["pd98_cws"], "eval", config, encoders)
  pku = dataset.GroupFeatures(["pd98_cws"], "eval", config, encoders,
                              sources={"pd98_cws": "pku_cws"})
  gold = used_examples(tokenizer, ["pd98_cws"], "eval", 30,
                       {"pd98_cws": "pku_cws"})["pd98_cws"]
  assert [e.labels for e in pku.examples["pd98_cws"]] == [
      e.labels for e in gold]
  assert own.key() != pku.key()
  shards, meta = pku.build()
  assert meta["count"] >= 30 and all(os.path.exists(s) for s in shards)
  with pytest.raises(ValueError, match="pd98_cws .seq_tag. cannot be scored "
                     "on chn_sentiment .cls."):
    dataset.GroupFeatures(["pd98_cws"], "eval", config, encoders,
                          sources={"pd98_cws": "chn_sentiment"})


def test_width_normalisation_changes_the_features_and_their_key(tokenizer,
                                                                tmp_path):
  """normalize_width: PD98's full-width digits and letters become the ids
  of their ASCII forms (the PKU test's), in a cache entry of their own."""
  wide = tokenization.FullTokenizer(tokenizer.vocab_file, True, True)
  groups = []
  for t in (tokenizer, wide):
    config = dataset.make_config(t, data_dir(), 64, cache_dir=str(tmp_path),
                                 max_examples=200)
    encoders = dataset.fit_label_encoders([["pd98_cws"]], config)
    groups.append(dataset.GroupFeatures(["pd98_cws"], "eval", config,
                                        encoders))
  assert groups[0].key() != groups[1].key()
  ids = []
  for group in groups:
    ids.append(np.concatenate([tf.train.Example.FromString(r).features
                               .feature["input_ids"].int64_list.value
                               for r in group.records()]))
  full = set(tokenizer.convert_tokens_to_ids(
      [c for c in map(chr, tokenization.HALF_WIDTH) if c in tokenizer.vocab]))
  assert np.isin(ids[0], list(full)).sum() > 20
  assert not np.isin(ids[1], list(full)).any()
  # One position per character either way; only the ids differ.
  assert len(ids[0]) == len(ids[1])
  half = [tokenizer.vocab[chr(tokenization.HALF_WIDTH[ord(c)])]
          for c in "０１２３４５６７８９"]
  assert np.isin(ids[1], half).sum() >= np.isin(ids[0], half).sum() + 20


def test_a_label_unseen_in_training_names_its_file_and_line(tokenizer,
                                                           tmp_path):
  """The native record path looks labels up in bulk; a label the map lacks
  is still reported with the example's file and line, and no cache entry
  is left behind."""
  config = dataset.make_config(tokenizer, data_dir(), 32,
                               cache_dir=str(tmp_path), max_examples=300)
  examples = used_examples(tokenizer, ["msra_ner"], "eval", 300)["msra_ner"]
  seen = sorted({l for e in examples for l in e.labels})
  missing = next(l for l in seen if l.endswith("ORG"))
  first_bad = next(e for e in examples if missing in e.labels)
  encoder = problems.LabelEncoder([l for l in seen if l != missing],
                                  "msra_ner")
  group = dataset.GroupFeatures(["msra_ner"], "eval", config,
                                {"msra_ner": encoder})
  with pytest.raises(problems.DataError, match=r"problem msra_ner, file "
                     r".*msra_test.txt, line %d: label '%s' was not in the "
                     "training split" % (first_bad.line_of(
                         first_bad.labels.index(missing)), missing)):
    group.build()
  assert not os.listdir(tmp_path)


def _records(shards):
  for record in tf.data.TFRecordDataset(shards):
    yield tf.train.Example.FromString(record.numpy()).features.feature


def test_seq2seq_targets(tokenizer, tmp_path):
  groups, encoders, built, config = build_chain(
      tokenizer, "pd98_pos_seq|msra_entities_text", tmp_path, max_examples=60)
  config = config._replace(max_target_length=8)
  built = [dataset.GroupFeatures(g, "train", config, encoders).build()
           for g in groups]
  tags = encoders["pd98_pos_seq"]
  assert tags.labels[:3] == ["[PAD]", "[BOS]", "[EOS]"]
  pos_examples = used_examples(tokenizer, ["pd98_pos_seq"], "train",
                               60)["pd98_pos_seq"]
  for parsed in _records(built[0][0]):
    index = parsed["example_index"].int64_list.value[0]
    start = parsed["window_start"].int64_list.value[0]
    label = list(parsed["pd98_pos_seq_label"].int64_list.value)
    present = parsed["pd98_pos_seq_present"].int64_list.value[0]
    if start:  # a later window of a long sentence: the target is elsewhere
      assert present == 0
      continue
    want = tags.encode(pos_examples[index].labels)[:7] + [2]
    assert (label, present) == (want, 1)
  ner_examples = used_examples(tokenizer, ["msra_entities_text"], "train",
                               60)["msra_entities_text"]
  for parsed in _records(built[1][0]):
    index = parsed["example_index"].int64_list.value[0]
    label = list(parsed["msra_entities_text_label"].int64_list.value)
    ids = tokenizer.convert_tokens_to_ids(
        tokenizer.tokenize(ner_examples[index].labels))
    assert label == ids[:7] + [tokenizer.vocab["[SEP]"]]
  input_fn = dataset.make_input_fn(
      groups, [b[0] for b in built], encoders, batch_size=16, training=True,
      sizes=[b[1]["count"] for b in built], strategy="uniform")
  batch = next(input_fn().as_numpy_iterator())
  for name in ("pd98_pos_seq", "msra_entities_text"):
    label, present = batch[name + "_label"], batch[name + "_present"]
    assert label.shape[1] <= 8
    # A row without the problem (or a later window) has no target at all.
    assert not label[present == 0].any()
    assert (label[present == 1] > 0).any(axis=1).all()


def test_pretrain_records_equal_the_readable_reference(tokenizer):
  """The extension builds the cached records from ids; the Python
  reference (testing/reference_pretraining.py) from token strings: same bytes."""
  documents = problems.read("zh_pretrain", "train", data_dir())[:40]
  settings = dataset.PretrainConfig(dupe_factor=2, max_predictions_per_seq=10,
                                    do_whole_word_mask=True, seed=5)
  config = dataset.make_config(tokenizer, data_dir(), 64, pretrain=settings)
  records = list(pretrain.Pretrain().document_records(
      documents, config, "train", chunk=7))
  vocab = tokenizer.vocab
  words = sorted(vocab, key=vocab.get)
  instances = pretraining.create_instances(
      [[tokenizer.tokenize(s) for s in d.inputs] for d in documents], words,
      64, 2, settings.short_seq_prob, settings.masked_lm_prob, 10, True, 5)
  assert len(records) == len(instances) > 100
  assert records == [native.serialize_example(pretraining.instance_features(
      i, vocab, 64, 10)) for i in instances]


def test_pretrain_records_read_like_the_original(tokenizer, tmp_path):
  config = dataset.make_config(
      tokenizer, data_dir(), 64, cache_dir=str(tmp_path), max_examples=30,
      pretrain=dataset.PretrainConfig(dupe_factor=2,
                                      max_predictions_per_seq=10))
  groups = problems.parse("zh_pretrain|msra_ner")
  encoders = dataset.fit_label_encoders(groups, config)
  built = [dataset.GroupFeatures(g, "train", config, encoders).build()
           for g in groups]
  # The original run_pretraining.py spec parses our records unchanged.
  spec = pretrain.pretrain_spec(64, 10)
  count = 0
  for record in tf.data.TFRecordDataset(built[0][0]):
    parsed = tf.io.parse_single_example(record, spec)
    mask = parsed["input_mask"].numpy()
    length = mask.sum()
    assert mask[:length].all() and length <= 64
    weights = parsed["masked_lm_weights"].numpy()
    num = int(weights.sum())
    assert num == min(10, max(1, round(length * 0.15)))
    positions = parsed["masked_lm_positions"].numpy()[:num]
    assert (np.diff(positions) > 0).all() and (positions < length).all()
    count += 1
  assert count == built[0][1]["count"] > 30
  # dupe_factor applies to training only: eval documents are masked once.
  eval_counts = []
  for dupe in (2, 5):
    eval_config = config._replace(pretrain=dataset.PretrainConfig(
        dupe_factor=dupe, max_predictions_per_seq=10))
    eval_counts.append(dataset.GroupFeatures(
        ["zh_pretrain"], "eval", eval_config, encoders).build()[1]["count"])
  assert eval_counts[0] == eval_counts[1] > 0
  input_fn = dataset.make_input_fn(
      groups, [b[0] for b in built], encoders, batch_size=32, training=True,
      sizes=[b[1]["count"] for b in built], strategy="uniform",
      max_seq_length=64, max_predictions_per_seq=10)
  batch = next(input_fn().as_numpy_iterator())
  present = batch["zh_pretrain_present"]
  assert 0 < present.sum() < 32
  assert batch["zh_pretrain_masked_lm_weights"].shape == (32, 10)
  assert not batch["zh_pretrain_masked_lm_weights"][present == 0].any()
  assert (batch["zh_pretrain_masked_lm_weights"][present == 1].sum(1) >= 1
          ).all()
  assert (batch["msra_ner_label"][batch["msra_ner_present"] == 0] ==
          features.IGNORE).all()
  lengths = batch["input_mask"].sum(1)
  assert batch["input_mask"].shape[1] == lengths.max()


@pytest.mark.parametrize("chain_text,split", [("pd98_cws&pd98_pos", "train"),
                                              ("pd98_ner&pd98_cws",
                                               "predict")])
def test_native_records_equal_the_python_path(tokenizer, tmp_path, chain_text,
                                              split):
  config = dataset.make_config(tokenizer, data_dir(), 32,
                               cache_dir=str(tmp_path), max_examples=800)
  groups = problems.parse(chain_text)
  encoders = dataset.fit_label_encoders(groups, config)
  group = dataset.GroupFeatures(groups[0], split, config, encoders)
  native = list(group.records())
  group.native_records = False
  assert native == list(group.records()) and len(native) > 800


def test_parallel_writers_write_the_same_records(tokenizer, tmp_path):
  records = []
  for processes in (1, 2):
    config = dataset.make_config(tokenizer, data_dir(), 64,
                                 cache_dir=str(tmp_path / str(processes)),
                                 max_examples=2500, num_processes=processes)
    groups = problems.parse("msra_ner")
    encoders = dataset.fit_label_encoders(groups, config)
    shards, meta = dataset.GroupFeatures(groups[0], "train", config,
                                         encoders).build()
    assert len(shards) == 4
    records.append(sorted(r.numpy() for r in tf.data.TFRecordDataset(shards)))
  assert records[0] == records[1] and len(records[0]) >= 2500


def test_a_changed_native_builder_invalidates_the_cache(tokenizer, tmp_path,
                                                       monkeypatch):
  """The extension carries the digest of the sources it was built from
  (csrc/gen_source_digest.py); it is part of every cache key, so records
  written by another build of the native record builder are not reused."""
  from bert_mtl import _native  # pylint: disable=g-import-not-at-top
  assert len(_native.source_digest) == 64  # set by setup.py's build
  _, _, [(shards, _)], _ = build_chain(tokenizer, "msra_ner", tmp_path)
  _, _, [(again, _)], _ = build_chain(tokenizer, "msra_ner", tmp_path)
  assert again == shards
  monkeypatch.setattr(_native, "source_digest", "0" * 64)
  _, _, [(rebuilt, _)], _ = build_chain(tokenizer, "msra_ner", tmp_path)
  assert rebuilt != shards


def test_types_defined_without_a_file_key_the_cache(tmp_path):
  """A type defined in a notebook (module __main__, no file) has a cache
  key digest: its source, else its methods' code; a change changes it."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  code = ("from bert_mtl.types import cls\n"
          "from bert_mtl.data import dataset\n"
          "class Mine(cls.Cls):\n"
          "  name = 'mine'\n"
          "  def check(self, inputs, labels):\n"
          "    return %s\n"
          "print(dataset.type_digest(Mine()))\n")
  digests = []
  for body in ("None", "'no'"):
    out = subprocess.run([sys.executable, "-c", code % body],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    digests.append(out.stdout.strip().splitlines()[-1])
  assert len(digests[0]) == 64 and digests[0] != digests[1]
  from bert_mtl.types import cls  # pylint: disable=g-import-not-at-top
  assert dataset.type_digest(cls.Cls()) == cache.file_digest(cls.__file__)


def test_decoding_reads_the_encoding_the_records_were_built_from(
    tokenizer, tmp_path, monkeypatch):
  """A unit group's encoding (alignment and windows) is computed once,
  kept in its cache entry beside the records, and read back from there:
  a second run's decoding tokenizes nothing.  It equals a fresh
  tokenization, and a damaged copy makes the entry rebuild."""
  config = dataset.make_config(tokenizer, data_dir(), 24,
                               cache_dir=str(tmp_path), max_examples=60)
  groups = problems.parse("pd98_ner&pd98_cws")
  encoders = dataset.fit_label_encoders(groups, config)
  group = dataset.GroupFeatures(groups[0], "eval", config, encoders)
  shards, _ = group.build()
  expected = [(a.ids.tolist(), a.first_token.tolist(), w) for a, w in (
      group.encodings())]
  units = [e.inputs for e in group.examples["pd98_ner"]]
  fresh = features.align_units(tokenizer, units)
  assert [(a.ids.tolist(), a.first_token.tolist()) for a in fresh] == [
      (i, f) for i, f, _ in expected]
  assert [w for _, _, w in expected] == [
      features.window_spans(len(a.ids), 24) for a in fresh]
  assert any(len(w) > 1 for _, _, w in expected)  # windowed examples too

  def no_tokenizing(*args, **kwargs):
    raise AssertionError("tokenized again")
  with monkeypatch.context() as patch:
    patch.setattr(features, "encode_units", no_tokenizing)
    again = dataset.GroupFeatures(groups[0], "eval", config, encoders)
    assert again.build()[0] == shards
    assert [(a.ids.tolist(), a.first_token.tolist(), w) for a, w in (
        again.encodings())] == expected
  path = os.path.join(os.path.dirname(shards[0]),
                      dataset.GroupFeatures.ENCODING)
  with open(path, "r+b") as f:
    f.seek(100)
    f.write(b"\0\0\0\0")
  assert cache.cached_shards(str(tmp_path), os.path.basename(
      os.path.dirname(shards[0])).rsplit("-", 1)[0], group.key()) is None
  rebuilt = dataset.GroupFeatures(groups[0], "eval", config, encoders)
  rebuilt.build()
  assert [(a.ids.tolist(), a.first_token.tolist(), w) for a, w in (
      rebuilt.encodings())] == expected
