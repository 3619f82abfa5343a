"""Heads against small independent references (graph mode, tiny sizes)."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from bert_mtl import model_fn, modeling
from bert_mtl.data import features as feature_lib
from bert_mtl.heads import base
from bert_mtl.types import seq_tag

tf1 = tf.compat.v1
IGNORE = feature_lib.IGNORE


def _session_run(build):
  graph = tf.Graph()
  with graph.as_default():
    tf1.set_random_seed(1)
    fetches = build()
    with tf1.Session(graph=graph) as session:
      session.run(tf1.global_variables_initializer())
      return session.run(fetches)


def _log_sum_exp(values):
  top = max(values)
  return top + np.log(sum(np.exp(v - top) for v in values))


def crf_nll_brute_force(unary, transitions, tags):
  """-log p(tags) by enumerating every tag sequence."""
  def score(sequence):
    total = sum(unary[i, t] for i, t in enumerate(sequence))
    return total + sum(transitions[a, b]
                       for a, b in zip(sequence, sequence[1:]))
  k = unary.shape[1]
  all_scores = [score(s) for s in itertools.product(range(k),
                                                    repeat=len(tags))]
  return _log_sum_exp(all_scores) - score(tags)


def test_crf_loss_over_labelled_positions_only():
  rng = np.random.RandomState(0)
  logits = rng.normal(size=(3, 7, 3)).astype(np.float32)
  transitions = rng.normal(size=(3, 3)).astype(np.float32)
  labels = np.full((3, 7), IGNORE, np.int32)
  labels[0, [1, 2, 4]] = [2, 0, 1]      # a gap: a continuation piece
  labels[1, [1, 2, 3, 4, 5]] = [0, 1, 1, 2, 0]
  present = np.array([1, 1, 0], np.int32)  # row 2: problem absent

  def build():
    head = seq_tag.SeqTagHead("t", 3, {}, None)
    features = {"t_label": tf.constant(labels), "t_present": tf.constant(
        present)}
    mask = seq_tag.tag_positions(features, "t")
    outputs = {"logits": tf.constant(logits), "mask": mask}
    packed, order, lengths = seq_tag.pack_positions(outputs["logits"], mask)
    outputs.update(packed=packed, order=order, lengths=lengths,
                   transitions=tf.constant(transitions))
    return head.loss(outputs, features), head.decode(outputs)
  loss, decoded = _session_run(build)
  want = np.mean([
      crf_nll_brute_force(logits[0, [1, 2, 4]], transitions, [2, 0, 1]),
      crf_nll_brute_force(logits[1, 1:6], transitions, [0, 1, 1, 2, 0])])
  assert loss == pytest.approx(want, rel=1e-5)
  # Decoded tags sit at the labelled positions, -1 elsewhere.
  assert (decoded[0, [0, 3, 5, 6]] == -1).all()
  assert (decoded[0, [1, 2, 4]] >= 0).all()


def test_crf_constraints_forbid_transitions_not_a_windows_first_tag():
  """With crf_constraints a row's gold path may begin with `M` and end with
  `B` (a window cut inside words): its loss is the CRF's with the scheme's
  forbidden transitions only, not ~10,000 per cut end (which trained the
  model towards the forbidden tags at window edges)."""
  labels_list = ["B", "E", "M", "S"]
  rng = np.random.RandomState(3)
  logits = rng.normal(size=(1, 6, 4)).astype(np.float32)
  labels = np.full((1, 6), IGNORE, np.int32)
  gold = [2, 1, 3, 0]                   # M E S B
  labels[0, 1:5] = gold

  def build():
    head = seq_tag.SeqTagHead("t", 4, {"crf_constraints": True,
                                       "labels": labels_list,
                                       "scheme": "BMES"}, None)
    features = {"t_label": tf.constant(labels),
                "t_present": tf.constant([1], tf.int32)}
    mask = seq_tag.tag_positions(features, "t")
    outputs = {"logits": tf.constant(logits), "mask": mask}
    outputs.update(head._build_crf(outputs["logits"], mask))  # pylint: disable=protected-access
    return head.loss(outputs, features)
  loss = _session_run(build)
  # The transitions variable starts at zero; BMES allows B->M, B->E, M->M,
  # M->E, E->B, E->S, S->B, S->S (ids: B 0, E 1, M 2, S 3).
  allowed = np.zeros((4, 4), bool)
  for a, b in ("BM", "BE", "MM", "ME", "EB", "ES", "SB", "SS"):
    allowed[labels_list.index(a), labels_list.index(b)] = True
  transitions = np.where(allowed, 0.0, seq_tag.FORBIDDEN)
  assert loss == pytest.approx(
      crf_nll_brute_force(logits[0, 1:5], transitions, gold), rel=1e-5)
  assert loss < 20


def test_softmax_tagging_and_zero_rows():
  rng = np.random.RandomState(1)
  logits = rng.normal(size=(2, 5, 4)).astype(np.float32)
  labels = np.full((2, 5), IGNORE, np.int32)
  labels[0, 1:4] = [3, 0, 2]

  def build(present):
    head = seq_tag.SeqTagHead("t", 4, {"crf": False}, None)
    features = {"t_label": tf.constant(labels),
                "t_present": tf.constant(present)}
    logits_t = tf.constant(logits)
    outputs = {"logits": logits_t,
               "mask": seq_tag.tag_positions(features, "t")}
    loss = head.loss(outputs, features)
    return loss, tf.gradients(loss, logits_t)[0]
  loss, _ = _session_run(lambda: build(np.array([1, 0], np.int32)))
  log_probs = logits[0, 1:4] - np.log(np.exp(logits[0, 1:4]).sum(-1,
                                                                  keepdims=True))
  assert loss == pytest.approx(-np.mean(log_probs[[0, 1, 2], [3, 0, 2]]),
                               rel=1e-5)
  loss, gradient = _session_run(lambda: build(np.array([0, 0], np.int32)))
  assert loss == 0.0 and not np.any(gradient) and np.isfinite(gradient).all()


def test_split_loss_is_the_mean_over_the_splits_positions():
  """A token-mean loss over an evaluation split of two batches with 1 and 6
  labelled positions: the per-head loss is the mean over the split's 7
  positions (numpy), not the mean of the two batch means; batch losses are
  unchanged (the masked means)."""
  rng = np.random.RandomState(2)
  logits = rng.normal(size=(2, 2, 4, 3)).astype(np.float32)  # 2 batches
  labels = np.full((2, 2, 4), IGNORE, np.int32)
  labels[0, 0, 1] = 2                     # batch 0: one position
  labels[1, 0, :] = [0, 1, 2, 0]          # batch 1: six positions
  labels[1, 1, 1:3] = [1, 1]
  present = np.ones(2, np.int32)  # both rows of each batch

  def per_token_nll(b):
    positions = np.argwhere(labels[b] != IGNORE)
    out = []
    for row, col in positions:
      z = logits[b, row, col]
      out.append(np.log(np.exp(z).sum()) - z[labels[b, row, col]])
    return out

  def build():
    head = seq_tag.SeqTagHead("t", 3, {"crf": False}, None)
    logits_in = tf1.placeholder(tf.float32, [2, 4, 3])
    labels_in = tf1.placeholder(tf.int32, [2, 4])
    features = {"t_label": labels_in, "t_present": tf.constant(present)}
    outputs = {"logits": logits_in,
               "mask": seq_tag.tag_positions(features, "t")}
    terms = head.loss_terms(outputs, features)
    value, update = base.split_loss_metric(terms)
    return logits_in, labels_in, head.loss(outputs, features), value, update

  graph = tf.Graph()
  with graph.as_default():
    logits_in, labels_in, loss, value, update = build()
    with tf1.Session(graph=graph) as session:
      session.run(tf1.local_variables_initializer())
      batch_losses = [session.run([loss, update], {
          logits_in: logits[b], labels_in: labels[b]})[0] for b in (0, 1)]
      split_loss = session.run(value)
  for b in (0, 1):
    assert batch_losses[b] == pytest.approx(np.mean(per_token_nll(b)),
                                            rel=1e-5)
  want = np.mean(per_token_nll(0) + per_token_nll(1))
  assert split_loss == pytest.approx(want, rel=1e-5)
  assert abs(np.mean(batch_losses) - want) > 1e-2  # the old mean differs


def test_masked_mean_is_zero_without_weights():
  def build():
    values = tf.constant([1.0, 2.0])
    loss = base.masked_mean(values * values, tf.zeros([2]))
    return loss, tf.gradients(loss, values)[0]
  loss, gradient = _session_run(build)
  assert loss == 0.0 and gradient.tolist() == [0.0, 0.0]


TINY = {"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 32,
        "max_position_embeddings": 32}


def _params(types, num_labels, settings=None):
  return {"bert_config": TINY, "problems": list(types), "types": types,
          "num_labels": num_labels, "settings": settings or {},
          "learning_rate": 1e-3, "num_train_steps": 10}


def _features(batch=4, length=9, present=None, extra=None):
  rng = np.random.RandomState(2)
  out = {"input_ids": tf.constant(rng.randint(5, 50, (batch, length)),
                                  tf.int32),
         "input_mask": tf.ones([batch, length], tf.int32),
         "segment_ids": tf.zeros([batch, length], tf.int32)}
  out.update({k: tf.constant(v) for k, v in (extra or {}).items()})
  return out


def test_absent_problem_gets_zero_gradient_through_the_model_fn():
  batch, length = 4, 9
  rng = np.random.RandomState(3)
  tags = rng.randint(0, 3, (batch, length)).astype(np.int32)
  tags[:, 0] = tags[:, -1] = IGNORE
  target = rng.randint(3, 7, (batch, 5)).astype(np.int32)
  extra = {
      "ner_label": tags, "ner_present": np.ones([batch], np.int32),
      "senti_label": np.array([0, 1, 0, 1], np.int32),
      "senti_present": np.zeros([batch], np.int32),          # absent
      "gen_label": target, "gen_present": np.array([1, 0, 1, 0], np.int32),
  }
  params = _params({"ner": "seq_tag", "senti": "cls", "gen": "seq2seq_tag"},
                   {"ner": 3, "senti": 2, "gen": 8},
                   {"gen": {"bos_id": 1, "eos_id": 2, "decoder_layers": 1}})

  def build():
    features = _features(batch, length, extra=extra)
    heads, outputs, head_features = model_fn.build(
        features, tf.estimator.ModeKeys.TRAIN, params)
    loss, losses = model_fn.total_loss(heads, outputs, features, params,
                                       head_features)
    variables = tf1.trainable_variables()
    senti_vars = [v for v in variables if v.name.startswith("senti/")]
    grads = tf.gradients(loss, senti_vars)
    body_grads = tf.gradients(loss, [v for v in variables
                                     if v.name.startswith("bert/")])
    return losses, grads, body_grads
  losses, grads, body_grads = _session_run(build)
  assert losses["senti"] == 0.0
  assert grads and all(g is not None and not np.any(g) for g in grads)
  assert losses["ner"] > 0 and losses["gen"] > 0
  assert any(np.any(getattr(g, "values", g)) for g in body_grads)


def test_each_head_runs_on_its_own_rows_with_the_same_losses():
  """In TRAIN and EVAL a head is built on the rows that have its problem
  (a chain's batch mixes groups): its outputs have those rows only, and
  each loss equals the loss of a batch holding just those rows."""
  batch, length = 6, 9
  rng = np.random.RandomState(4)
  tags = rng.randint(0, 3, (batch, length)).astype(np.int32)
  tags[:, 0] = tags[:, -1] = IGNORE
  extra = {
      "ner_label": tags, "ner_present": np.array([1, 0, 1, 1, 0, 0],
                                                 np.int32),
      "c_label": rng.randint(0, 2, batch).astype(np.int32),
      "c_present": np.array([0, 1, 0, 0, 1, 1], np.int32),
      "gen_label": rng.randint(3, 7, (batch, 5)).astype(np.int32),
      "gen_present": np.array([0, 1, 0, 0, 0, 1], np.int32)}
  params = _params({"ner": "seq_tag", "c": "cls", "gen": "seq2seq_tag"},
                   {"ner": 3, "c": 2, "gen": 8},
                   {"gen": {"bos_id": 1, "eos_id": 2, "decoder_layers": 1}})
  ids = rng.randint(5, 50, (batch, length)).astype(np.int32)
  mask = np.ones([batch, length], np.int32)
  mask[1, 6:] = mask[3, 4:] = 0

  def run(rows):
    def build():
      features = {"input_ids": tf.constant(ids[rows]),
                  "input_mask": tf.constant(mask[rows]),
                  "segment_ids": tf.zeros([len(rows), length], tf.int32)}
      features.update({k: tf.constant(v[rows]) for k, v in extra.items()})
      heads, outputs, head_features = model_fn.build(
          features, tf.estimator.ModeKeys.EVAL, params)
      _, losses = model_fn.total_loss(heads, outputs, features, params,
                                      head_features)
      return losses, {n: tf.shape(outputs[n]["logits"])[0] for n in losses}
    return _session_run(build)
  losses, rows_seen = run(np.arange(batch))
  assert rows_seen == {"ner": 3, "c": 3, "gen": 2}
  for name in ("ner", "c", "gen"):
    own = np.flatnonzero(extra[name + "_present"])
    alone, _ = run(own)
    assert losses[name] > 0
    assert losses[name] == pytest.approx(alone[name], rel=1e-5), name


def test_seq2seq_teacher_forcing_is_causal_and_masked():
  """Logits at position t must not see targets t, t+1, ... (shifted
  inputs), and padding positions must not change the loss."""
  batch, length = 2, 6
  params = _params({"gen": "seq2seq_tag"}, {"gen": 9},
                   {"gen": {"bos_id": 1, "eos_id": 2, "decoder_layers": 2}})

  def run(target):
    def build():
      features = _features(batch, length, extra={
          "gen_label": target, "gen_present": np.ones([batch], np.int32)})
      heads, outputs, head_features = model_fn.build(
          features, tf.estimator.ModeKeys.EVAL, params)
      return outputs["gen"]["logits"], heads[0].loss(outputs["gen"],
                                                     head_features["gen"])
    return _session_run(build)
  base_target = np.array([[5, 6, 7, 2, 0], [4, 3, 2, 0, 0]], np.int32)
  logits, loss = run(base_target)
  changed = base_target.copy()
  changed[0, 2] = 8  # position 2's target changes
  logits2, _ = run(changed)
  np.testing.assert_allclose(logits[0, :3], logits2[0, :3], atol=1e-5)
  assert not np.allclose(logits[0, 3], logits2[0, 3], atol=1e-5)
  # Position 0's input is BOS, not the first target.
  changed = base_target.copy()
  changed[:, 0] = 8
  logits3, _ = run(changed)
  np.testing.assert_allclose(logits[:, 0], logits3[:, 0], atol=1e-5)
  assert loss > 0


def test_predict_builds_without_labels_and_restores_from_train():
  """Every mode builds the same variables (a checkpoint restores into all)."""
  params = _params({"ner": "seq_tag", "gen": "seq2seq_text", "c": "cls",
                    "m": "multi_cls", "p": "pretrain"},
                   {"ner": 3, "gen": 50, "c": 2, "m": 4, "p": 2},
                   {"gen": {"bos_id": 1, "eos_id": 2, "decoder_layers": 1,
                            "share_embeddings": True, "beam_size": 2,
                            "max_decode_length": 4}})
  names = {}
  for mode in (tf.estimator.ModeKeys.TRAIN, tf.estimator.ModeKeys.PREDICT):
    graph = tf.Graph()
    with graph.as_default():
      features = _features()
      if mode == tf.estimator.ModeKeys.TRAIN:
        features.update({
            "ner_label": tf.zeros([4, 9], tf.int32),
            "gen_label": tf.ones([4, 3], tf.int32),
            "p_masked_lm_positions": tf.ones([4, 2], tf.int32),
            "p_masked_lm_ids": tf.ones([4, 2], tf.int32),
            "p_masked_lm_weights": tf.ones([4, 2]),
            "p_label": tf.zeros([4], tf.int32)})
      model_fn.build(features, mode, params)
      names[mode] = sorted((v.name, tuple(v.shape.as_list()))
                           for v in tf1.global_variables())
  assert names[tf.estimator.ModeKeys.TRAIN] == names[
      tf.estimator.ModeKeys.PREDICT]
  assert any(n.startswith("cls/predictions/output_bias") for n, _ in
             names[tf.estimator.ModeKeys.TRAIN])
  assert any(n.startswith("cls/seq_relationship/output_weights") for n, _ in
             names[tf.estimator.ModeKeys.TRAIN])


def test_pretrain_metrics_are_means_over_the_split():
  """masked_lm_loss averages the split's masked positions and
  next_sentence_loss its rows with the problem (run_pretraining.py's
  metrics), however the rows fall into batches: a batch without the
  problem (another group's rows) changes neither."""
  from bert_mtl.types import pretrain  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(5)
  vocab, positions = 7, 3
  batches = []
  for rows, present in ((2, [1, 1]), (3, [0, 0, 0]), (1, [1])):
    batches.append({
        "p_masked_lm_ids": rng.integers(0, vocab, (rows, positions)),
        "p_masked_lm_weights": (rng.random((rows, positions)) < 0.7) * 1.0,
        "p_label": rng.integers(0, 2, rows),
        "p_present": np.array(present),
        "mlm_logits": rng.normal(size=(rows * positions, vocab)),
        "nsp_logits": rng.normal(size=(rows, 2))})
  batches[0]["p_masked_lm_weights"][0] = [1.0, 0.0, 1.0]

  def cross_entropy(logits, label):
    return _log_sum_exp(list(logits)) - logits[label]
  mlm = [(cross_entropy(b["mlm_logits"][i], b["p_masked_lm_ids"].flat[i]),
          b["p_masked_lm_weights"].flat[i] * b["p_present"][i // positions])
         for b in batches for i in range(b["mlm_logits"].shape[0])]
  nsp = [cross_entropy(b["nsp_logits"][i], b["p_label"][i])
         for b in batches for i in range(len(b["p_label"])) if
         b["p_present"][i]]
  expected_mlm = sum(l * w for l, w in mlm) / sum(w for _, w in mlm)

  graph = tf.Graph()
  with graph.as_default():
    inputs = {
        "p_masked_lm_ids": tf1.placeholder(tf.int32, [None, positions]),
        "p_masked_lm_weights": tf1.placeholder(tf.float32, [None, positions]),
        "p_label": tf1.placeholder(tf.int32, [None]),
        "p_present": tf1.placeholder(tf.int32, [None])}
    outputs = {"mlm_logits": tf1.placeholder(tf.float32, [None, vocab]),
               "nsp_logits": tf1.placeholder(tf.float32, [None, 2])}
    head = pretrain.PretrainHead("p", 2, {}, None)
    metrics = head.metrics(outputs, inputs)
    with tf1.Session(graph=graph) as session:
      session.run(tf1.local_variables_initializer())
      for batch in batches:
        session.run([op for _, op in metrics.values()], {
            placeholder: batch[key] for key, placeholder in
            list(inputs.items()) + list(outputs.items())})
      values = session.run({k: v for k, (v, _) in metrics.items()})
  assert values["masked_lm_loss"] == pytest.approx(expected_mlm, rel=1e-5)
  assert values["next_sentence_loss"] == pytest.approx(np.mean(nsp),
                                                       rel=1e-5)


def test_a_groups_predict_pass_builds_only_its_heads():
  """predict_problems restricts PREDICT to a group's heads: no beam search
  (gen's while loop) in the pass of a group without gen, and
  the group's variables are named as in the full model."""
  params = _params({"ner": "seq_tag", "gen": "seq2seq_text", "c": "cls"},
                   {"ner": 3, "gen": 50, "c": 2},
                   {"gen": {"bos_id": 1, "eos_id": 2, "decoder_layers": 1,
                            "share_embeddings": True, "beam_size": 2,
                            "max_decode_length": 4}})
  built = {}
  for restrict in (None, ["ner", "c"], ["gen"]):
    graph = tf.Graph()
    with graph.as_default():
      spec = model_fn.model_fn(
          _features(), None, tf.estimator.ModeKeys.PREDICT,
          dict(params, predict_problems=restrict))
      built[tuple(restrict or ())] = (
          sorted(k for k in spec.predictions if "/" in k),
          {v.op.name for v in tf1.global_variables()},
          any(op.name.startswith("gen/") and "while" in op.name
              for op in graph.get_operations()))
  every_key, every_var, every_loop = built[()]
  keys, variables, loop = built[("ner", "c")]
  assert keys == [k for k in every_key if k.split("/")[0] in ("ner", "c")]
  assert variables < every_var and not loop and every_loop
  assert not any(v.startswith("gen/") for v in variables)
  keys, _, loop = built[("gen",)]
  assert keys == ["gen/ids", "gen/scores"] and loop


def test_cls_label_smoothing_and_multi_cls_weight():
  from bert_mtl.types import cls, multi_cls  # pylint: disable=g-import-not-at-top
  logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]], np.float32)

  def build():
    features = {"c_label": tf.constant([0, 2]),
                "c_present": tf.constant([1, 1]),
                "m_label": tf.constant([[1, 0, 1], [0, 0, 0]]),
                "m_present": tf.constant([1, 1])}
    smoothed = cls.ClsHead("c", 3, {"label_smoothing": 0.1}, None).loss(
        {"logits": tf.constant(logits)}, features)
    weighted = multi_cls.MultiClsHead("m", 3, {"positive_weight": 3.0},
                                      None).loss(
                                          {"logits": tf.constant(logits)},
                                          features)
    return smoothed, weighted
  smoothed, weighted = _session_run(build)
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  targets = np.full((2, 3), 0.1 / 3)
  targets[0, 0] += 0.9
  targets[1, 2] += 0.9
  assert smoothed == pytest.approx(-(targets * log_probs).sum(-1).mean(),
                                   rel=1e-5)
  labels = np.array([[1, 0, 1], [0, 0, 0]], np.float32)
  sig = 1 / (1 + np.exp(-logits))
  per = -(3.0 * labels * np.log(sig) + (1 - labels) * np.log(1 - sig))
  assert weighted == pytest.approx(per.sum(-1).mean(), rel=1e-5)


def test_uncertainty_weighting():
  """Kendall et al.: loss_i * exp(-s_i) + s_i with learned s_i (0 at the
  start); a problem absent from the batch adds nothing, not even s_i."""
  params = _params({"a": "cls", "b": "cls"}, {"a": 2, "b": 3})
  params["uncertainty_weighting"] = True
  extra = {"a_label": np.array([0, 1, 1, 0], np.int32),
           "a_present": np.ones([4], np.int32),
           "b_label": np.array([2, 0, 1, 0], np.int32),
           "b_present": np.zeros([4], np.int32)}

  names = []

  def build():
    features = _features(extra=extra)
    heads, outputs, head_features = model_fn.build(
        features, tf.estimator.ModeKeys.TRAIN, params)
    total, losses = model_fn.total_loss(heads, outputs, features, params,
                                        head_features)
    log_variances = [v for v in tf1.global_variables()
                     if v.name.startswith("uncertainty/")]
    names.extend(v.name for v in log_variances)
    return total, losses, tf.gradients(total, log_variances)
  total, losses, grads = _session_run(build)
  assert sorted(names) == ["uncertainty/a:0", "uncertainty/b:0"]
  assert total == pytest.approx(losses["a"])  # s = 0: exp(-s) = 1
  grad_a, grad_b = grads if names[0].endswith("a:0") else grads[::-1]
  assert grad_a == pytest.approx(1 - losses["a"])  # d/ds (L e^-s + s)
  assert grad_b == 0.0
