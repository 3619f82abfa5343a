"""benchmarks/accuracy.py: the protocol's runs, the statistics of its table,
and one quick end-to-end run so the benchmark never rots."""

import json
import math
import os
import statistics
import subprocess
import sys

import pytest

from conftest import data_dir, data_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "benchmarks"))
import accuracy  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_protocol_runs():
  """The first protocol (`cpu-1500`, the old table's runs)."""
  jobs = accuracy.make_jobs("cpu-1500", "/out", "/data", "/cache")
  assert jobs[0]["kind"] == "pretrain" and jobs[0]["chain"] == "zh_pretrain"
  by_setting = {}
  for job in jobs[1:]:
    by_setting.setdefault((job["setting"], job["init"]), []).append(job)
  # Small problems: three seeds, from the pretrained checkpoint and from
  # random initialisation, at the same budget.
  for setting in ("weibo_ner", "weibo_ner&weibo_cws", "chn_sentiment"):
    pretrained = by_setting[(setting, "pretrained")]
    random_init = by_setting[(setting, "random")]
    assert [j["seed"] for j in pretrained] == [0, 1, 2]
    assert {j["steps"] for j in pretrained} == {j["steps"]
                                               for j in random_init}
    assert all(j["init_checkpoint"] == "/out/runs/pretrain"
               for j in pretrained)
    assert all(j["init_checkpoint"] is None for j in random_init)
  # The mixed chain under two sampling strategies, scored on PKU too.
  mixed = [j for j in jobs if j["chain"] ==
           "msra_ner|weibo_ner&weibo_cws|pd98_cws"]
  assert {j["sampling"] for j in mixed} == {"proportional", "temperature"}
  assert all(j["eval_on"] == {"pd98_cws": "pku_cws"} for j in mixed)
  assert len({j["output_dir"] for j in jobs}) == len(jobs)
  assert len(jobs) == 34 and not any(j["options"] for j in jobs)
  assert "weibo_cws" not in {j["setting"] for j in jobs}


def test_cpu_protocol_runs_the_ablations_best_settings():
  """The `cpu` budget: the settings benchmarks/ablation.py found best, its
  problems from our pretraining and from random initialisation, the chain
  from the pretraining, and the peer's runs as jobs of the same pool."""
  jobs = accuracy.make_jobs("cpu", "/out", "/data", "/cache")
  pretrain = jobs[0]
  assert pretrain["kind"] == "pretrain" and pretrain["steps"] == 3000
  assert pretrain["options"] == {"zero_init_token_types": True,
                                 "adam_bias_correction": True}
  runs = {(j["setting"], j["init"], j["seed"]): j for j in jobs[1:]}
  seeds = lambda s: (0, 1, 2) if s.startswith("weibo") else (0,)
  assert sorted(runs) == sorted(
      [(s, i, seed)
       for s in ("pd98_cws", "msra_ner", "weibo_ner", "weibo_cws")
       for i in ("pretrained", "random") for seed in seeds(s)] +
      [("weibo_ner&weibo_cws", "pretrained", seed) for seed in (0, 1, 2)])
  for (setting, init, _), job in runs.items():
    assert job["learning_rate"] == 1e-3
    assert job["steps"] == (3000 if setting.startswith("weibo") else 6000)
    assert job["options"] == ({"normalize_width": True}
                              if setting == "pd98_cws" else {})
    assert (job["init_checkpoint"] == "/out/runs/pretrain") == (
        init == "pretrained")
  assert runs[("pd98_cws", "random", 0)]["eval_on"] == {"pd98_cws": "pku_cws"}
  peers = accuracy.peer_jobs("/out", "/data", "cpu")
  assert [j["problem"] for j in peers] == ["pd98_cws@pku_cws", "msra_ner",
                                           "weibo_ner"]
  assert peers[0]["output_dir"] == "/out/runs/crfsuite/pd98_cws-pku_cws"
  assert len({j["output_dir"] for j in jobs + peers}) == len(jobs) + 3


def test_transfer_protocol_chains_weibo_with_the_large_corpora():
  """The `cpu-transfer` budget: Weibo alone and chained with MSRA (and
  People's Daily) under sampling strategies that keep the small group from
  drowning, all from random initialisation (no pretraining run), three
  seeds each, in bfloat16; the peer on Weibo and MSRA in the same pool."""
  jobs = accuracy.make_jobs("cpu-transfer", "/out", "/data", "/cache")
  assert not any(j["kind"] == "pretrain" for j in jobs)
  assert all(j["init"] == "random" and j["init_checkpoint"] is None
             for j in jobs)
  assert all(j["options"]["mixed_precision"] == "bfloat16" for j in jobs)
  seeds = {}
  for job in jobs:
    seeds.setdefault(job["setting"], []).append(job["seed"])
  chains = {j["setting"]: j for j in jobs if j["kind"] == "multi"}
  assert {s: (j["chain"], j["sampling"], j["steps"])
          for s, j in chains.items()} == {
              "weibo|msra temperature T=2": ("weibo_ner|msra_ner",
                                             "temperature", 6000),
              "weibo|msra annealed": ("weibo_ner|msra_ner", "annealed",
                                      6000),
              "weibo|msra weights 1:1": ("weibo_ner|msra_ner", "weights",
                                         6000),
              "weibo&cws|msra|pd98 cws&ner temperature T=2": (
                  "weibo_ner&weibo_cws|msra_ner|pd98_cws&pd98_ner",
                  "temperature", 6000),
              "weibo&cws|msra|pd98 cws&ner weights 1:1:1": (
                  "weibo_ner&weibo_cws|msra_ner|pd98_cws&pd98_ner",
                  "weights", 6000)}
  assert chains["weibo|msra weights 1:1"]["options"]["sampling_weights"] == [
      1, 1]
  assert chains["weibo&cws|msra|pd98 cws&ner weights 1:1:1"]["options"][
      "sampling_weights"] == [1, 1, 1]
  # The chain with People's Daily is also scored on the PKU gold test, as
  # the protocol's segmentation runs are.
  assert chains["weibo&cws|msra|pd98 cws&ner weights 1:1:1"]["eval_on"] == {
      "pd98_cws": "pku_cws"}
  for setting in list(chains) + ["weibo_ner", "weibo_cws"]:
    assert seeds[setting] == [0, 1, 2], setting
  assert {j["steps"] for j in jobs if j["chain"] == "weibo_ner"} == {3000}
  # The weights settings are valid run configurations (one weight per
  # '|' group).
  from bert_mtl import config  # pylint: disable=g-import-not-at-top
  for job in chains.values():
    options = config.RunConfig(problems=job["chain"],
                               sampling=job["sampling"], **job["options"])
    options.validate(num_groups=job["chain"].count("|") + 1)
  peers = accuracy.peer_jobs("/out", "/data", "cpu-transfer",
                             {j["setting"] for j in jobs})
  assert [j["problem"] for j in peers] == ["pd98_cws@pku_cws", "msra_ner",
                                           "weibo_ner"]
  # Each large problem of the chains also runs alone (one seed: their
  # spread over seeds is 0.001-0.004).
  assert {j["chain"]: (j["steps"], seeds[j["setting"]]) for j in jobs
          if j["setting"] in ("msra_ner", "pd98_cws")} == {
              "msra_ner": (6000, [0]), "pd98_cws": (6000, [0])}
  # --only keeps the pretraining only for a run that starts from it.
  assert [j["name"] for j in accuracy.with_needed_pretraining(
      accuracy.make_jobs("cpu", "/out", "/data", "/cache")[:2])] == [
          "pretrain", "pd98_cws-pretrained-s0"]
  assert accuracy.with_needed_pretraining(accuracy.make_jobs(
      "cpu", "/out", "/data", "/cache")[:1]) == []


def test_margins_judge_by_one_standard_deviation(tmp_path):
  """Multi-task columns against the single-task column of the same init,
  and our best against the peer: the gap of the means against the sum of
  the standard deviations (the ±1 sd bands overlap or not)."""
  def record(problem, setting, values, init="random"):
    mean, std = accuracy.mean_std(values)
    return {"problem": problem, "setting": setting, "init": init,
            "values": values, "mean": mean, "std": std,
            "metric": "entity_f1"}
  alone = record("weibo_ner", "random init", [0.28, 0.29, 0.27])
  chain = record("weibo_ner", "random init, multi-task: weibo|msra",
                 [0.45, 0.47, 0.46])
  close = record("weibo_cws", "random init, multi-task: weibo|msra",
                 [0.785, 0.80, 0.79])
  cws = record("weibo_cws", "random init", [0.78, 0.79, 0.785])
  peer = {"problem": "weibo_ner", "setting": "CRFsuite", "mean": 0.415,
          "values": [0.415], "std": 0.0}
  lines = accuracy.multi_task_margins([alone, chain, close, cws, peer])
  assert lines == [
      "- weibo_ner, random init, multi-task: weibo|msra: 0.460 ± 0.010 "
      "(n=3) vs random init 0.280 ± 0.010 (n=3): +0.180, beyond one "
      "standard deviation",
      "- weibo_cws, random init, multi-task: weibo|msra: 0.792 ± 0.008 "
      "(n=3) vs random init 0.785 ± 0.005 (n=3): +0.007, within one "
      "standard deviation"]
  assert accuracy.peer_margins([alone, chain, peer]) == [
      "- weibo_ner: our best 0.460 (random init, multi-task: weibo|msra) vs "
      "CRFsuite 0.415: +0.045, beyond one standard deviation"]
  # A lever: one setting against the setting it changes, per shared
  # problem (the column names come from the jobs).
  jobs = [{"setting": "weibo_ner", "chain": "weibo_ner", "init": "random",
           "kind": "single"},
          {"setting": "weibo|msra", "chain": "weibo_ner|msra_ner",
           "init": "random", "kind": "multi"}]
  assert accuracy.lever_lines(
      [alone, chain, close, cws], jobs,
      [("weibo|msra", "weibo_ner", "MSRA beside Weibo"),
       ("weibo|msra", "not run", "a setting without runs")]) == [
           "- MSRA beside Weibo (weibo|msra against weibo_ner), weibo_ner: "
           "0.460 ± 0.010 (n=3) vs 0.280 ± 0.010 (n=3): +0.180, beyond one "
           "standard deviation"]
  # The table escapes the chains' "|" in its header (a markdown cell).
  header = accuracy.table(
      [alone, chain], [dict(job, output_dir=str(tmp_path / "none"),
                            curve=False) for job in jobs],
      "cpu-transfer").splitlines()[0]
  assert header == ("| problem | metric | random init | random init, "
                    "multi-task: weibo\\|msra | reference |")
  # 0.425 ± 0.015: the band reaches below the peer.
  near = record("weibo_ner", "random init, multi-task: weibo|msra",
                [0.41, 0.425, 0.44])
  assert accuracy.peer_margins([near, peer])[0].endswith(
      "+0.010, within one standard deviation")


def test_table_sets_our_best_against_the_peer_and_sums_wall_time(tmp_path):
  """The footer: our best cell per problem against CRFsuite's, and the
  wall time of the invocations that ran something."""
  records = [
      {"problem": "msra_ner", "setting": "single-task", "mean": 0.81},
      {"problem": "msra_ner", "setting": "random init", "mean": 0.80},
      {"problem": "msra_ner", "setting": "CRFsuite", "mean": 0.686},
      {"problem": "weibo_ner", "setting": "CRFsuite", "mean": 0.415},
      {"problem": "weibo_ner", "setting": "random init", "mean": 0.30}]
  assert accuracy.peer_margins(records) == [
      "- msra_ner: our best 0.810 (single-task) vs CRFsuite 0.686: +0.124",
      "- weibo_ner: our best 0.300 (random init) vs CRFsuite 0.415: -0.115"]
  accuracy.record_invocation(str(tmp_path), 3000.0, ["a", "b"])
  accuracy.record_invocation(str(tmp_path), 5.0, [])  # all runs done
  invocations = accuracy.record_invocation(str(tmp_path), 600.0, ["c"])
  assert [i["runs_done"] for i in invocations] == [["a", "b"], [], ["c"]]
  assert accuracy.wall_time_line(invocations) == [
      "- wall time of the runs: 60 min in 2 invocation(s) of this command "
      "(50 min for 2 run(s); 10 min for 1 run(s))"]
  assert accuracy.wall_time_line(invocations[1:2]) == []


def test_mean_and_spread():
  values = [0.61, 0.58, 0.66]
  mean, std = accuracy.mean_std(values)
  assert mean == pytest.approx(statistics.mean(values))
  assert std == pytest.approx(statistics.stdev(values))
  assert accuracy.mean_std([0.5]) == (0.5, 0.0)


def test_steps_to_target_extrapolates_log_linear_curves():
  curve = [{"step": 0, "metrics": {"p": 0.1}}] + [
      {"step": s, "metrics": {"p": 0.5 + 0.1 * math.log(s)}}
      for s in (100, 200, 400)]
  # 0.5 + 0.1 log(s) = 0.95  ->  s = e^4.5
  assert accuracy.steps_to_target(curve, "p", 0.95) == pytest.approx(
      math.exp(4.5), rel=1e-3)
  flat = [{"step": s, "metrics": {"p": 0.4}} for s in (100, 200, 300)]
  assert accuracy.steps_to_target(flat, "p", 0.95) is None


def test_quick_run_writes_table_json_and_curves(tmp_path):
  """The whole protocol at the `quick` budget on one small problem:
  pretraining, fine-tuning from it and from scratch with two seeds."""
  data_file("weibo_ner/weiboNER_2nd_conll.train")  # not on the package index
  root = data_dir()
  results = tmp_path / "results"
  process = subprocess.run(
      [sys.executable, accuracy.__file__, "--budget=quick",
       "--only=weibo_ner", "--output_dir=%s" % (tmp_path / "out"),
       "--results_dir=%s" % results, "--data_dir=%s" % root],
      capture_output=True, text=True, timeout=900,
      env=dict(os.environ, PYTHONWARNINGS="ignore"))
  assert process.returncode == 0, process.stdout[-3000:] + process.stderr[
      -3000:]
  # (Each budget's own files: the `cpu` table is not overwritten.)
  assert not (results / "accuracy.json").exists()
  report = json.loads((results / "accuracy-quick.json").read_text())
  records = {(r["problem"], r["setting"]): r for r in report["records"]}
  for setting in ("single-task", "random init"):
    record = records[("weibo_ner", setting)]
    assert record["metric"] == "entity_f1"
    assert record["seeds"] == [0, 1] and len(record["values"]) == 2
    assert 0.0 <= record["mean"] <= 1.0
  steps = [p["step"] for p in report["pretraining_curve"]]
  assert steps[-1] == accuracy.BUDGETS["quick"]["pretrain_steps"]
  assert all(0.0 <= p["metrics"]["zh_pretrain"] <= 1.0
             for p in report["pretraining_curve"])
  assert "| weibo_ner | entity_f1 |" in (
      results / "accuracy-quick.md").read_text()
  # The CRFsuite peer ran in the same run, scored by our metric code.
  peer = records[("weibo_ner", "CRFsuite")]
  assert peer["metric"] == "entity_f1" and 0.0 <= peer["value"] <= 1.0
  assert peer["train_sentences"] == accuracy.BUDGETS["quick"]["max_examples"]
  assert "CRFsuite" in (
      results / "accuracy-quick.md").read_text().splitlines()[0]
  assert (results / "accuracy-quick.png").read_bytes()[:8] == (
      b"\x89PNG\r\n\x1a\n")
  # A rerun finds every run finished and only rewrites the report.
  again = subprocess.run(
      [sys.executable, accuracy.__file__, "--budget=quick",
       "--only=weibo_ner", "--output_dir=%s" % (tmp_path / "out"),
       "--results_dir=%s" % results, "--data_dir=%s" % root],
      capture_output=True, text=True, timeout=300)
  assert again.returncode == 0 and "0 of 6 runs to do" in again.stdout  # 5 runs, 1 peer


def test_ablation_lines_change_one_thing_against_their_base():
  """benchmarks/ablation.py: each line is its base's job with its change
  applied, as a valid run configuration; the table sets each line against
  its base and the peer."""
  import ablation  # pylint: disable=g-import-not-at-top
  vocab = os.path.join(data_dir(), "vocab", "chinese_vocab.txt")
  if not os.path.exists(vocab):
    pytest.skip("needs %s" % vocab)
  jobs = {line[0]: ablation.line_job(line, ablation.BUDGET, "/out", "/data")
          for line in ablation.LINES}
  pretrained = {}
  # Runs from our pretraining: the job of their base line (random init)
  # but for the checkpoint, which is the pretraining line's run.
  for name, base in (("cws-pretrained", "cws-steps"),
                     ("msra-pretrained", "msra-steps"),
                     ("weibo-pretrained", "weibo-steps"),
                     ("cws-width-pretrained", "cws-width"),
                     ("msra-lr1e-3-pretrained", "msra-lr1e-3"),
                     ("weibo-cws-pretrained", "weibo-cws-steps"),
                     ("weibo-cws-lr3e-4-pretrained", "weibo-cws-lr3e-4"),
                     ("weibo-chain-pretrained", "weibo-chain"),
                     ("weibo-chain-pretrained-cws", "weibo-chain-cws")):
    job = pretrained[name] = jobs.pop(name)
    assert job["init_checkpoint"] == "/out/runs/" + (
        "pretrain-3000" if "lr3e-4" in name else "pretrain-steps")
    assert job["init"] == "pretrained"
    assert {k: v for k, v in job.items() if k not in (
        "init", "init_checkpoint", "name", "setting", "output_dir")} == {
            k: v for k, v in jobs[base].items() if k not in (
                "init", "init_checkpoint", "name", "setting", "output_dir")}
  # The chain from the checkpoint is one run, read by two lines.
  assert pretrained["weibo-chain-pretrained"] == pretrained[
      "weibo-chain-pretrained-cws"]
  assert pretrained["weibo-chain-pretrained"]["output_dir"] == (
      "/out/runs/weibo-chain-pretrained")
  assert jobs["pretrain-steps"]["kind"] == "pretrain"
  assert jobs["pretrain-steps"]["curve"] is True
  lines = [l for l in ablation.LINES if l[0] in jobs]
  options = {name: accuracy.job_options(job, vocab)
             for name, job in jobs.items()}
  assert options["pretrain-steps"].problems == "zh_pretrain"
  assert options["pretrain-steps"].train_batch_size == 64
  assert options["pretrain-steps"].num_train_steps == 6000
  assert options["pretrain-steps"].zero_init_token_types is True
  assert options["pretrain-steps"].adam_bias_correction is True
  # The cpu protocol's pretraining job, as a line.
  protocol = accuracy.make_jobs("cpu", "/out", "/data", "/out/cache")[0]
  assert options["pretrain-3000"].to_dict() == accuracy.job_options(
      protocol, vocab).to_dict()
  assert options["cws-base"].learning_rate == 5e-4
  assert options["cws-base"].normalize_width is False
  assert options["cws-width"].normalize_width is True
  assert options["cws-steps"].num_train_steps == 6000
  assert options["cws-mini"].bert_config["hidden_size"] == 256
  assert options["weibo-base"].num_train_steps == 600  # the table's
  assert options["weibo-base"].learning_rate == 5e-4
  assert options["weibo-steps"].num_train_steps == 3000
  assert options["cws-12k"].num_train_steps == 12000
  assert options["msra-12k"].num_train_steps == 12000
  # Multi-task against single-task: the chain's two lines read one run,
  # which is the single-task lines' job but for the chain.
  chain_lines = ("weibo-chain", "weibo-chain-cws")
  assert jobs["weibo-chain"] == jobs["weibo-chain-cws"]
  assert jobs["weibo-chain"]["output_dir"] == "/out/runs/weibo-chain"
  assert jobs["weibo-chain"]["kind"] == "multi"
  assert options["weibo-chain"].problems == "weibo_ner&weibo_cws"
  assert [j["name"] for j in ablation.unique_runs(
      [jobs[n] for n in ("weibo-steps",) + chain_lines])] == [
          "weibo-steps", "weibo-chain"]
  for name, problem, base, _, _ in lines:
    if name not in chain_lines:
      assert options[name].problems == problem
    if base is None:
      continue
    differ = {k for k, v in options[name].to_dict().items()
              if options[base].to_dict()[k] != v}
    allowed = {"learning_rate", "normalize_width", "num_train_steps",
               "bert_config", "save_checkpoints_steps", "log_every_steps",
               "zero_init_token_types", "adam_bias_correction"}
    if name in chain_lines:
      assert differ == {"problems"}, (name, differ)
    else:
      assert differ and differ <= allowed, (name, differ)
  # The table, on made-up results: deltas against the base and the peer.
  results = {"cws-base": 0.80, "cws-lr1e-3": 0.83}
  original = accuracy.result_of
  accuracy.result_of = lambda job: (
      {"final": {"pd98_cws@pku_cws": {"word_f1": results[job["name"]]}},
       "train_seconds": 10.0} if job["name"] in results else None)
  # A line whose run is gone stands in from an earlier record of the same
  # job (written elsewhere); one of another job does not.
  recorded = [
      {"line": "cws-width", "value": 0.84, "train_seconds": 30.0,
       "job": dict(jobs["cws-width"], output_dir="/elsewhere/cws-width")},
      {"line": "msra-lr1e-3", "value": 0.6, "train_seconds": 30.0,
       "job": dict(jobs["msra-lr1e-3"], steps=1)}]
  try:
    text, records = ablation.table(
        lines, [jobs[l[0]] for l in lines],
        [{"problem": "pd98_cws@pku_cws", "value": 0.88, "iterations": 60,
          "train_cpu_seconds": 143.0}], recorded)
  finally:
    accuracy.result_of = original
  by_line = {r.get("line"): r for r in records}
  assert by_line["cws-lr1e-3"]["delta"] == pytest.approx(0.03)
  assert by_line["cws-lr1e-3"]["vs_peer"] == pytest.approx(-0.05)
  assert "| cws-lr1e-3 | pd98_cws@pku_cws |" in text and "+0.030 vs cws-base" in text
  assert by_line["cws-width"]["delta"] == pytest.approx(0.01)
  assert "| cws-width |" in text and "30 s (recorded) |" in text
  assert "msra-base" not in text  # no result, no line
  assert "msra-lr1e-3" not in text  # its record is of another job


def test_ablation_chain_run_read_by_two_lines():
  """The multi-task run weibo-chain is read by one line per problem, each
  against its single-task line."""
  import ablation  # pylint: disable=g-import-not-at-top
  names = ("weibo-steps", "weibo-cws-steps", "weibo-chain",
           "weibo-chain-cws")
  lines = [l for l in ablation.LINES if l[0] in names]
  jobs = [ablation.line_job(l, ablation.BUDGET, "/out", "/data") for l in lines]
  finals = {
      "weibo-steps": {"weibo_ner": {"entity_f1": 0.28}},
      "weibo-cws-steps": {"weibo_cws": {"word_f1": 0.75}},
      "weibo-chain": {"weibo_ner": {"entity_f1": 0.30},
                      "weibo_cws": {"word_f1": 0.74}}}
  original = accuracy.result_of
  accuracy.result_of = lambda job: {"final": finals[job["name"]],
                                    "train_seconds": 60.0}
  try:
    _, records = ablation.table(lines, jobs)
  finally:
    accuracy.result_of = original
  by_line = {r["line"]: r for r in records}
  assert by_line["weibo-chain"]["problem"] == "weibo_ner"
  assert by_line["weibo-chain"]["value"] == pytest.approx(0.30)
  assert by_line["weibo-chain"]["delta"] == pytest.approx(0.02)
  assert by_line["weibo-chain-cws"]["problem"] == "weibo_cws"
  assert by_line["weibo-chain-cws"]["value"] == pytest.approx(0.74)
  assert by_line["weibo-chain-cws"]["delta"] == pytest.approx(-0.01)


def test_ablation_seed_table_means_over_seeds():
  """The seed table: each line's values over seeds, mean and sample
  standard deviation, margin over the peer; a seed without a run is taken
  from an earlier record only when it is the same job."""
  import ablation  # pylint: disable=g-import-not-at-top
  lines = [l for l in ablation.LINES if l[0] in ("cws-steps", "msra-steps")]
  jobs = {s: [ablation.line_job(l, ablation.BUDGET, "/out", "/data", s) for l in lines]
          for s in (0, 1, 2)}
  assert jobs[1][0]["name"] == "cws-steps-s1" and jobs[1][0]["seed"] == 1
  assert jobs[1][0]["output_dir"] == "/out/runs/cws-steps-s1"
  assert jobs[0][0]["name"] == "cws-steps"  # seed 0 keeps the line's name
  earlier = dict(jobs[0][0], output_dir="/elsewhere/runs/cws-steps")
  changed = dict(jobs[0][1], steps=1500)
  recorded = [{"line": "cws-steps", "seed": 0, "value": 0.92, "job": earlier},
              {"line": "msra-steps", "seed": 0, "value": 0.5, "job": changed}]
  results = {"cws-steps-s1": 0.93, "cws-steps-s2": 0.95,
             "msra-steps-s1": 0.80}
  original = accuracy.result_of
  accuracy.result_of = lambda job: (
      {"final": {"pd98_cws@pku_cws": {"word_f1": results[job["name"]]},
                 "msra_ner": {"entity_f1": results[job["name"]]}}}
      if job["name"] in results else None)
  try:
    text, records = ablation.seed_table(
        lines, jobs, recorded, [{"problem": "pd98_cws@pku_cws",
                                 "value": 0.88}])
  finally:
    accuracy.result_of = original
  cws, msra = records
  assert cws["values"] == [0.92, 0.93, 0.95] and cws["seeds"] == [0, 1, 2]
  assert cws["from_earlier_record"] == [0]
  assert cws["mean"] == pytest.approx(0.9333333)
  assert cws["std"] == pytest.approx(0.0152753, abs=1e-6)
  assert cws["vs_peer"] == pytest.approx(0.0533333)
  # msra-steps' record is of another job (1500 steps): not used.
  assert msra["values"] == [0.80] and msra["std"] == 0.0
  assert msra["vs_peer"] is None
  assert "0.920 (seed 0, recorded)" in text and "0.933 ± 0.015" in text
  # Each seed's run is recorded with its job, so it stands in later.
  assert [(r["seed"], r["value"]) for r in cws["runs"]] == [
      (0, 0.92), (1, 0.93), (2, 0.95)]
  assert cws["runs"][1]["job"] == jobs[1][0]


def test_ablation_recorded_runs_stand_in_and_are_not_rerun():
  """Runs of both tables' records stand in for gone run directories:
  the seed table keeps a line measured in an earlier run, and the rerun
  does not repeat it; a changed job is run again."""
  import ablation  # pylint: disable=g-import-not-at-top
  lines = [l for l in ablation.LINES if l[0] in ("cws-steps", "msra-steps")]
  jobs = {s: [ablation.line_job(l, ablation.BUDGET, "/out", "/data", s) for l in lines]
          for s in (0, 1)}
  first = [{"line": "cws-steps", "seed": 0, "value": 0.92,
            "job": jobs[0][0]}, {"problem": "pd98_cws@pku_cws",
                                 "value": 0.88}]  # a peer record
  seeds = [{"line": "cws-steps", "runs": [
      {"seed": 0, "value": 0.92, "job": jobs[0][0]},
      {"seed": 1, "value": 0.94, "job": dict(
          jobs[1][0], output_dir="/gone/runs/cws-steps-s1")}]},
           {"line": "msra-steps", "runs": [
               {"seed": 1, "value": 0.7, "job": dict(jobs[1][1],
                                                     steps=1500)}]}]
  earlier = ablation.earlier_runs(first, seeds)
  assert sorted((r["line"], r["seed"]) for r in earlier) == [
      ("cws-steps", 0), ("cws-steps", 0), ("cws-steps", 1),
      ("msra-steps", 1)]
  original = accuracy.result_of
  accuracy.result_of = lambda job: None  # every run directory is gone
  try:
    todo = ablation.runs_to_do(jobs[0] + jobs[1], earlier)
    text, records = ablation.seed_table(lines, jobs, earlier)
  finally:
    accuracy.result_of = original
  # cws-steps is recorded for both seeds; msra-steps' record is of another
  # job, so both of its seeds are to run.
  assert [j["name"] for j in todo] == ["msra-steps", "msra-steps-s1"]
  assert [r["line"] for r in records] == ["cws-steps"]
  assert records[0]["values"] == [0.92, 0.94]
  assert records[0]["from_earlier_record"] == [0, 1]
  assert "0.940 (seed 1, recorded)" in text and "msra-steps" not in text
  # A recorded pretraining run is run again when a job starts from its
  # checkpoint (a record holds none), and only then.
  pretrain, tuned = [ablation.line_job(l, ablation.BUDGET, "/out", "/data")
                     for l in ablation.LINES
                     if l[0] in ("pretrain-steps", "weibo-cws-pretrained")]
  recorded = [{"line": "pretrain-steps", "seed": 0, "value": 0.156,
               "job": pretrain}]
  accuracy.result_of = lambda job: None
  try:
    assert ablation.runs_to_do([pretrain], recorded) == []
    assert ablation.runs_to_do([pretrain, tuned], recorded) == [
        pretrain, tuned]
  finally:
    accuracy.result_of = original
