"""Accuracy on real Chinese benchmarks: single-task vs multi-task vs random
initialisation, from a small Chinese BERT pretrained here.

Protocol:
1. Pretrain a small BERT (masked LM + next sentence, the `zh_pretrain`
   problem: People's Daily, reviews, MSRA and Weibo training text) with the
   Chinese BERT vocabulary; evaluate masked-LM accuracy at every checkpoint.
2. Fine-tune from that checkpoint at a fixed budget per problem size: single
   problems, the same-input chain pd98_cws&pd98_pos&pd98_ner and the mixed
   chain msra_ner|weibo_ner&weibo_cws|pd98_cws under two sampling
   strategies. pd98_cws is also scored on the SIGHAN 2005 PKU gold test
   (`pd98_cws@pku_cws`). Small problems (and chains holding one) run with
   several seeds.
3. The single-task runs again from random initialisation, same budget.
4. The classic peer in the same run: a CRFsuite character CRF
   (benchmarks/crfsuite_peer.py) on PKU, MSRA and Weibo, scored by the same
   metric code, with its CPU time, as jobs of the same pool (`--no_peer`
   skips it).
A budget may run a subset of these settings (`cpu`: PD98/PKU, MSRA and
Weibo segmentation and NER, and the Weibo chain from the checkpoint), and
settings of its own: `cpu-transfer` chains Weibo with the large related
corpora (MSRA NER, People's Daily segmentation and NER) from random
initialisation under three sampling strategies, with a line per lever;
`pku-hour` is the PKU moonshot, one segmentation run of about an hour.

    python benchmarks/accuracy.py [--budget cpu] [--parallel 2]

Runs go to <output_dir>/runs/<run>/ with a result.json each; a rerun skips
finished runs and resumes killed ones from their checkpoints. The table goes
to benchmarks/results/accuracy.{json,md} and the learning curves to
benchmarks/results/accuracy.png (accuracy-<budget>.* for a budget other
than `cpu`). `--budget full` is the documented long run
(a bigger model and 10-20x the steps; hours on a GPU).
"""

import argparse
import concurrent.futures
import json
import math
import os
import platform
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
RESULTS = os.path.join(REPO, "benchmarks", "results")
PRETRAIN = "pretrain"
DEFAULT_BUDGET = "cpu"
PEER = "CRFsuite"

# Steps are per budget; "large" problems have 10k+ training sentences,
# "small" ones about a thousand (Weibo) or are easy (sentiment).  A budget
# may name the settings it runs (`settings`: setting -> inits; default all,
# both inits for single problems), options of the pretraining run
# (`pretrain_options`) and of a setting's runs (`options`: setting ->
# RunConfig options), and how many points the learning curves have.
# The two options for short runs from random initialisation: without them a
# fresh model of ours does not learn position-dependent attention (the
# positional task of tests/test_training.py), which masked LM needs.
FRESH_MODEL_OPTIONS = {"zero_init_token_types": True,
                       "adam_bias_correction": True}
# The `cpu` protocol's sizes and rates, which the later CPU budgets keep.
CPU_BASE = dict(model="tiny", max_seq_length=128, batch=32,
                pretrain_batch=64, pretrain_steps=3000, large=6000,
                small=3000, seeds=3, dupe_factor=2, max_examples=None,
                learning_rate=1e-3, pretrain_learning_rate=1e-3,
                curve_points=3)
BUDGETS = {
    "quick": dict(model="tiny", max_seq_length=64, batch=16, pretrain_batch=16,
                  pretrain_steps=40, large=30, small=20, seeds=2,
                  dupe_factor=1, max_examples=200, learning_rate=1e-3,
                  pretrain_learning_rate=1e-3),
    # The levers benchmarks/ablation.py measured, in one protocol of about
    # 85 minutes of this 2-core machine alone, 63 once the pretraining is
    # cached (benchmarks/README.md): learning rate 1e-3, 6000
    # steps for the large problems and 3000 for Weibo, width normalisation
    # for PD98 (PKU test) segmentation, pretraining with both fresh-model
    # options; the problems the CRFsuite peer is run on plus Weibo
    # segmentation (few labels: does pretraining help segmentation there?)
    # and the same-input chain against its single-task runs; three seeds
    # for the Weibo problems, as before.
    "cpu": dict(CPU_BASE, pretrain_options=FRESH_MODEL_OPTIONS,
                options={"pd98_cws": {"normalize_width": True}},
                settings={"msra_ner": ("pretrained", "random"),
                          "pd98_cws": ("pretrained", "random"),
                          "weibo_ner": ("pretrained", "random"),
                          "weibo_cws": ("pretrained", "random"),
                          "weibo_ner&weibo_cws": ("pretrained",)}),
    # Transfer to the small problem from random initialisation (issue
    # #35): Weibo NER and segmentation alone, and chained with the large
    # related corpora (MSRA NER; People's Daily segmentation and NER) under
    # the sampling strategies that keep a small group from drowning; in
    # bfloat16 (benchmarks/README.md: within float32's seed spread, 1.34x
    # its step), the `cpu` protocol's steps and rate otherwise.
    "cpu-transfer": dict(
        CPU_BASE, run_options={"mixed_precision": "bfloat16"},
        options={"pd98_cws": {"normalize_width": True},
                 "weibo|msra weights 1:1": {"sampling_weights": [1, 1]},
                 "weibo&cws|msra|pd98 cws&ner weights 1:1:1": {
                     "sampling_weights": [1, 1, 1],
                     "normalize_width": True},
                 "weibo&cws|msra|pd98 cws&ner temperature T=2": {
                     "normalize_width": True}},
        # Each lever against the setting it changes.
        levers=[
            ("weibo|msra temperature T=2", "weibo_ner",
             "MSRA NER beside Weibo NER"),
            ("weibo|msra annealed", "weibo|msra temperature T=2",
             "annealed sampling instead of temperature"),
            ("weibo|msra weights 1:1", "weibo|msra temperature T=2",
             "equal group weights instead of temperature"),
            ("weibo&cws|msra|pd98 cws&ner temperature T=2",
             "weibo|msra temperature T=2",
             "Weibo segmentation and People's Daily added"),
            ("weibo&cws|msra|pd98 cws&ner weights 1:1:1",
             "weibo&cws|msra|pd98 cws&ner temperature T=2",
             "equal group weights instead of temperature")],
        settings={"weibo_ner": ("random",), "weibo_cws": ("random",),
                  "msra_ner": ("random",), "pd98_cws": ("random",),
                  "weibo|msra temperature T=2": ("random",),
                  "weibo|msra annealed": ("random",),
                  "weibo|msra weights 1:1": ("random",),
                  "weibo&cws|msra|pd98 cws&ner temperature T=2": (
                      "random",),
                  "weibo&cws|msra|pd98 cws&ner weights 1:1:1": (
                      "random",)}),
    # The PKU moonshot (0.950): the `cpu` protocol's segmentation run
    # from random initialisation (0.927 after 6000 steps, still rising)
    # for about an hour of one slot, in bfloat16, with six curve points.
    "pku-hour": dict(
        CPU_BASE, large=36000, seeds=1, curve_points=6,
        run_options={"mixed_precision": "bfloat16"},
        options={"pd98_cws": {"normalize_width": True}},
        settings={"pd98_cws": ("random",)}),
    # The first protocol (2026-11-28, 2 h 07 min for its 34 runs): the
    # accuracy table's old numbers and the base of benchmarks/ablation.py.
    "cpu-1500": dict(model="tiny", max_seq_length=128, batch=32,
                     pretrain_batch=64, pretrain_steps=3000, large=1500,
                     small=600, seeds=3, dupe_factor=2, max_examples=None,
                     learning_rate=5e-4, pretrain_learning_rate=1e-3,
                     settings={s: None for s in (
                         "pd98_cws", "pd98_pos", "pd98_ner", "msra_ner",
                         "weibo_ner", "weibo_ner&weibo_cws", "chn_sentiment",
                         "pd98 cws&pos&ner", "mixed proportional",
                         "mixed temperature T=2")}),
    "full": dict(model="small", max_seq_length=128, batch=32,
                 pretrain_batch=256, pretrain_steps=100000, large=20000,
                 small=3000, seeds=3, dupe_factor=5, max_examples=None,
                 learning_rate=1e-4, pretrain_learning_rate=5e-4),
}

BIG_CHAIN = "weibo_ner&weibo_cws|msra_ner|pd98_cws&pd98_ner"

# (setting, chain, size, eval_on, sampling, several seeds, learning curve)
FINE_TUNING = [
    ("pd98_cws", "pd98_cws", "large", {"pd98_cws": "pku_cws"}, None, False,
     True),
    ("pd98_pos", "pd98_pos", "large", {}, None, False, False),
    ("pd98_ner", "pd98_ner", "large", {}, None, False, False),
    ("msra_ner", "msra_ner", "large", {}, None, False, False),
    ("weibo_ner", "weibo_ner", "small", {}, None, True, True),
    ("weibo_cws", "weibo_cws", "small", {}, None, True, False),
    ("weibo_ner&weibo_cws", "weibo_ner&weibo_cws", "small", {}, None, True,
     False),
    ("chn_sentiment", "chn_sentiment", "small", {}, None, True, False),
]
MULTI_TASK = [
    ("pd98 cws&pos&ner", "pd98_cws&pd98_pos&pd98_ner", "large",
     {"pd98_cws": "pku_cws"}, "proportional", False, False),
    ("mixed proportional", "msra_ner|weibo_ner&weibo_cws|pd98_cws", "large",
     {"pd98_cws": "pku_cws"}, "proportional", True, False),
    ("mixed temperature T=2", "msra_ner|weibo_ner&weibo_cws|pd98_cws",
     "large", {"pd98_cws": "pku_cws"}, "temperature", True, False),
    # Transfer: the small Weibo NER set (1,350 sentences) beside MSRA NER
    # (50,289; PER/LOC/ORG in news), one group per instance.  Proportional
    # sampling would give Weibo 2.6% of the instances: "temperature" (p ~
    # n^(1/2): 14%), "annealed" (proportional at first, n^0.2 at the end:
    # from 2.6% to 33%, the body learns from the large set first) and
    # explicit equal weights (50%).
    ("weibo|msra temperature T=2", "weibo_ner|msra_ner", "large", {},
     "temperature", True, True),
    ("weibo|msra annealed", "weibo_ner|msra_ner", "large", {}, "annealed",
     True, True),
    ("weibo|msra weights 1:1", "weibo_ner|msra_ner", "large", {}, "weights",
     True, True),
    # Every related corpus: Weibo's NER and segmentation on the same
    # sentences (segmentation marks the boundaries entities share), MSRA
    # NER, and People's Daily segmentation with its person/place/
    # organisation tags, so each Weibo problem has a large twin: weibo_ner
    # learns from both NER corpora, weibo_cws from PD98's segmentation.
    ("weibo&cws|msra|pd98 cws&ner temperature T=2", BIG_CHAIN, "large",
     {"pd98_cws": "pku_cws"}, "temperature", True, True),
    ("weibo&cws|msra|pd98 cws&ner weights 1:1:1", BIG_CHAIN, "large",
     {"pd98_cws": "pku_cws"}, "weights", True, True),
]

# Published numbers to put ours in context (sources in benchmarks/README.md).
REFERENCES = {
    "pd98_cws@pku_cws": "0.950 best SIGHAN 2005 closed track; BERT-Base "
                        "0.965 (glyce README)",
    "weibo_ner": "BiLSTM-CRF, no pretraining, ~0.56; BERT-Base 0.673 "
                 "(glyce README)",
    "msra_ner": "BERT-Base 0.948 on the standard split (glyce README); ours "
                "is a different split",
}
TARGETS = {"pd98_cws@pku_cws": 0.950, "weibo_ner": 0.67}


def run_name(setting, init, seed):
  safe = "".join(c if c.isalnum() else "_" for c in setting)
  return "%s-%s-s%d" % (safe, init, seed)


def inits_of(budget, kind, setting):
  """The inits a budget runs a setting from: () when it does not run it;
  by default single problems from both, chains from the pretrained
  checkpoint only."""
  settings = BUDGETS[budget].get("settings")
  default = ("pretrained", "random") if kind == "single" else ("pretrained",)
  if settings is None:
    return default
  if setting not in settings:
    return ()
  return settings[setting] or default


def make_jobs(budget, output_dir, data_dir, cache_dir):
  """Every run of the protocol as a job dict (pretraining first, when a
  run starts from its checkpoint)."""
  b = BUDGETS[budget]
  common = dict(budget=budget, data_dir=data_dir, cache_dir=cache_dir,
                model=b["model"], max_seq_length=b["max_seq_length"],
                max_examples=b["max_examples"])
  pretrain_dir = os.path.join(output_dir, "runs", PRETRAIN)
  curve_points = b.get("curve_points", 4)
  # Options of every run of the budget (such as its precision), then the
  # pretraining's or a setting's own.
  run_options = b.get("run_options", {})
  jobs = [dict(common, name=PRETRAIN, setting=PRETRAIN, kind="pretrain",
               chain="zh_pretrain", init="random", seed=0,
               steps=b["pretrain_steps"], batch=b["pretrain_batch"],
               learning_rate=b["pretrain_learning_rate"], eval_on={},
               sampling="proportional", curve=True,
               curve_points=curve_points, dupe_factor=b["dupe_factor"],
               options=dict(run_options, **b.get("pretrain_options", {})),
               output_dir=pretrain_dir)]
  for kind, table in (("single", FINE_TUNING), ("multi", MULTI_TASK)):
    for setting, chain, size, eval_on, sampling, seeded, curve in table:
      for init in inits_of(budget, kind, setting):
        for seed in range(b["seeds"] if seeded else 1):
          name = run_name(setting, init, seed)
          jobs.append(dict(
              common, name=name, setting=setting, kind=kind, chain=chain,
              init=init, seed=seed, steps=b[size], batch=b["batch"],
              learning_rate=b["learning_rate"], eval_on=eval_on,
              sampling=sampling or "proportional",
              curve=curve and seed == 0, curve_points=curve_points,
              dupe_factor=b["dupe_factor"],
              options=dict(run_options,
                           **b.get("options", {}).get(setting, {})),
              init_checkpoint=(pretrain_dir if init == "pretrained"
                               else None),
              output_dir=os.path.join(output_dir, "runs", name)))
  return with_needed_pretraining(jobs)


def with_needed_pretraining(jobs):
  """The jobs without the pretraining run when none starts from it."""
  if any(j.get("init") == "pretrained" for j in jobs):
    return jobs
  return [j for j in jobs if j["kind"] != "pretrain"]


def peer_jobs(output_dir, data_dir, budget, wanted=None):
  """The CRFsuite peer's runs (benchmarks/crfsuite_peer.py) on the problems
  of `wanted` settings (None: all) as jobs, so they share the protocol's
  slots: each writes <output_dir>/runs/crfsuite/<problem>/result.json."""
  import crfsuite_peer  # pylint: disable=g-import-not-at-top
  return [dict(name="crfsuite-" + name.replace("@", "-"), kind="peer",
               problem=name, init="random", budget=budget, data_dir=data_dir,
               max_examples=BUDGETS[budget]["max_examples"],
               output_dir=os.path.join(output_dir, "runs", "crfsuite",
                                       name.replace("@", "-")))
          for name in crfsuite_peer.PROBLEMS
          if wanted is None or name.partition("@")[0] in wanted]


# ------------------------------------------------------------- one run

def job_options(job, vocab_file):
  """The RunConfig of one job (the rest are its defaults)."""
  from bert_mtl import config, modeling, tokenization  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  bert_config = modeling.BertConfig(
      len(tokenization.load_vocab_tokens(vocab_file)),
      max_position_embeddings=max(128, job["max_seq_length"]),
      **modeling.SMALL_MODELS[job["model"]])
  init_checkpoint = None
  if job.get("init_checkpoint"):
    init_checkpoint = tf.train.latest_checkpoint(job["init_checkpoint"])
    if not init_checkpoint:
      raise ValueError("no pretrained checkpoint in %s" %
                       job["init_checkpoint"])
  steps = job["steps"]
  return config.RunConfig(**{
      "problems": job["chain"], "data_dir": job["data_dir"],
      "cache_dir": job["cache_dir"], "bert_config": bert_config.to_dict(),
      "init_checkpoint": init_checkpoint,
      "max_seq_length": job["max_seq_length"],
      "max_examples": job["max_examples"], "train_batch_size": job["batch"],
      "eval_batch_size": 64, "predict_batch_size": 64,
      "learning_rate": job["learning_rate"], "num_train_steps": steps,
      # The learning curve's checkpoints (four unless the budget says);
      # keep them all.
      "save_checkpoints_steps": (max(1, steps // job.get("curve_points", 4))
                                 if job["curve"] else steps),
      "keep_checkpoint_max": 8, "sampling": job["sampling"],
      "seed": 1000 + job["seed"], "eval_on": job["eval_on"],
      "log_every_steps": max(1, min(200, steps // 5)), "num_processes": 1,
      "num_threads": 1,
      # (Instances drawn with seed 12345, as every recorded pretraining
      # job's were: the runs' own seeds vary the training, not the data.)
      "pretrain": config.PretrainConfig(dupe_factor=job["dupe_factor"],
                                        seed=12345),
      # A lever's own settings (benchmarks/ablation.py).
      **job.get("options", {}),
  }).validate()


def headline(results):
  """{problem: its main metric} of Experiment.evaluate's results."""
  from bert_mtl import evaluation  # pylint: disable=g-import-not-at-top
  return {name: values.get(evaluation.main_metric(name))
          for name, values in results.items() if not name.startswith("_")}


def run_peer_job(job):
  """Trains and scores the CRFsuite peer on one problem; writes
  result.json (the record the table shows)."""
  import crfsuite_peer  # pylint: disable=g-import-not-at-top
  from bert_mtl import files  # pylint: disable=g-import-not-at-top
  os.makedirs(job["output_dir"], exist_ok=True)
  record = crfsuite_peer.run(job["problem"], job["data_dir"],
                             job["output_dir"],
                             max_examples=job["max_examples"])
  files.atomic_write(os.path.join(job["output_dir"], "result.json"),
                     json.dumps(record, indent=1))
  return record


def run_job(job):
  """Trains and evaluates one job in this process; writes result.json."""
  if job["kind"] == "peer":
    return run_peer_job(job)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from bert_mtl import data_dir as data_dir_lib, experiment  # pylint: disable=g-import-not-at-top
  tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.INFO)
  vocab_file = data_dir_lib.require("vocab/chinese_vocab.txt",
                                    job["data_dir"])
  run = experiment.Experiment(job["output_dir"], job_options(job, vocab_file),
                              vocab_file)
  start = time.time()
  run.train(job["steps"])
  train_seconds = time.time() - start
  state = tf.train.get_checkpoint_state(job["output_dir"])
  checkpoints = list(state.all_model_checkpoint_paths)
  if not job["curve"]:
    checkpoints = checkpoints[-1:]
  curve, final = [], None
  start = time.time()
  for checkpoint in checkpoints:
    last = checkpoint == checkpoints[-1]
    results = run.evaluate(checkpoint_path=checkpoint, write=last)
    step = int(checkpoint.rsplit("-", 1)[1])
    curve.append({"step": step, "metrics": headline(results)})
    if last:
      final = {k: v for k, v in results.items() if not k.startswith("_")}
  result = {"job": job, "train_seconds": train_seconds,
            "eval_seconds": time.time() - start, "curve": curve,
            "final": final}
  with open(os.path.join(job["output_dir"], "result.json"), "w",
            encoding="utf-8") as f:
    json.dump(result, f, indent=1, sort_keys=True)
  return result


def launch(job, threads, log_dir):
  """Runs a job in a fresh process with `threads` TensorFlow threads."""
  path = os.path.join(log_dir, job["name"] + ".job.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump(job, f)
  env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(threads),
             TF_NUM_INTEROP_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="2")
  start = time.time()
  with open(os.path.join(log_dir, job["name"] + ".log"), "w",
            encoding="utf-8") as log:
    code = subprocess.call([sys.executable, os.path.abspath(__file__),
                            "--job", path], stdout=log,
                           stderr=subprocess.STDOUT, env=env, cwd=REPO)
  print("%-48s %s in %.0f s" % (job["name"], "done" if code == 0 else
                                "FAILED (exit %d, log %s)" % (
                                    code, log.name),
                                time.time() - start), flush=True)
  return code


def result_of(job):
  path = os.path.join(job["output_dir"], "result.json")
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  return None


def run_all(jobs, parallel, log_dir):
  """Pretraining in one slot while random-init runs and the peer's use the
  others, longest first; the runs from the pretrained checkpoint start once
  it is done, longest first."""
  os.makedirs(log_dir, exist_ok=True)
  todo = [j for j in jobs if result_of(j) is None]
  print("%d of %d runs to do" % (len(todo), len(jobs)), flush=True)
  threads = max(1, (os.cpu_count() or 2) // parallel)
  failed = []
  by_length = lambda js: sorted(js, key=lambda j: -j.get("steps", 0))
  with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
    pretrain = [j for j in todo if j["kind"] == "pretrain"]
    first = by_length([j for j in todo if j["kind"] != "pretrain" and
                       j["init"] == "random"])
    after = by_length([j for j in todo if j.get("init") == "pretrained"])
    futures = {pool.submit(launch, j, threads, log_dir): j
               for j in pretrain + first}
    pretrain_ok = all(f.result() == 0 for f, j in futures.items()
                      if j["kind"] == "pretrain")
    if not pretrain_ok:
      failed.append(PRETRAIN)
      after = []
    futures.update({pool.submit(launch, j, threads, log_dir): j
                    for j in after})
    failed += [j["name"] for f, j in futures.items() if f.result() != 0]
  return failed


# ----------------------------------------------------------- the table

def mean_std(values):
  mean = sum(values) / len(values)
  if len(values) < 2:
    return mean, 0.0
  return mean, math.sqrt(sum((v - mean) ** 2 for v in values) /
                         (len(values) - 1))


def column_of(job):
  """The table column of a job: single-task, multi-task: <chain>, or
  random init (of either)."""
  single = "&" not in job["chain"] and "|" not in job["chain"]
  column = "single-task" if single else "multi-task: " + job["setting"]
  if job["init"] == "random":
    column = "random init" if single else "random init, " + column
  return column


def records_of(jobs):
  """One record per problem x setting: metric, values over seeds, mean,
  sample standard deviation, budget."""
  from bert_mtl import evaluation  # pylint: disable=g-import-not-at-top
  grouped = {}
  for job in jobs:
    result = result_of(job)
    if result is None or job["kind"] == "pretrain":
      continue
    column = column_of(job)
    for problem, values in result["final"].items():
      metric = evaluation.main_metric(problem)
      key = (problem, column)
      record = grouped.setdefault(key, {
          "problem": problem, "setting": column, "chain": job["chain"],
          "sampling": job["sampling"], "init": job["init"],
          "metric": metric, "values": [], "seeds": [],
          "steps": job["steps"], "batch": job["batch"],
          "max_seq_length": job["max_seq_length"], "model": job["model"],
          "train_seconds": []})
      record["values"].append(values[metric])
      record["seeds"].append(job["seed"])
      record["train_seconds"].append(round(result["train_seconds"], 1))
  for record in grouped.values():
    record["mean"], record["std"] = mean_std(record["values"])
  return list(grouped.values())


def problems_of(records):
  """The records' problems, each once, in the order they first appear."""
  return list(dict.fromkeys(r["problem"] for r in records))


def fine_tuning(jobs):
  return [j for j in jobs if j["kind"] != "pretrain"]


def pretraining_result(jobs):
  """The pretraining run's result (None: not run or not in the protocol)."""
  return next((result_of(j) for j in jobs if j["kind"] == "pretrain"), None)


def steps_to_target(curve, problem, target):
  """Steps at which a straight line through (log steps, metric) of the
  curve's last points reaches target (None: it does not rise)."""
  points = [(math.log(p["step"]), p["metrics"][problem]) for p in curve
            if p["step"] > 0 and p["metrics"].get(problem) is not None]
  points = points[-3:]
  if len(points) < 2:
    return None
  n = len(points)
  mx = sum(x for x, _ in points) / n
  my = sum(y for _, y in points) / n
  sxx = sum((x - mx) ** 2 for x, _ in points)
  slope = sum((x - mx) * (y - my) for x, y in points) / sxx
  if slope <= 0:
    return None
  return int(math.exp(mx + (target - my) / slope))


def curves_of(jobs):
  """{run name: curve} of the runs that recorded one."""
  out = {}
  for job in jobs:
    result = result_of(job)
    if result and job["curve"]:
      out[job["name"]] = result["curve"]
  return out


def peer_margins(records):
  """A line per problem the peer ran on: our best cell against it."""
  lines = []
  for peer in [r for r in records if r["setting"] == PEER]:
    ours = [r for r in records
            if r["problem"] == peer["problem"] and r["setting"] != PEER]
    if ours:
      best = max(ours, key=lambda r: r["mean"])
      lines.append("- %s: our best %.3f (%s) vs CRFsuite %.3f: %+.3f%s" % (
          peer["problem"], best["mean"], best["setting"], peer["mean"],
          best["mean"] - peer["mean"], spread_verdict(best, peer)))
  return lines


def spread_verdict(ours, other):
  """", beyond one standard deviation" when the ±1 sd bands of two records
  with several seeds do not overlap (", within ..." when they do); "" for
  a record of one run (no spread to judge by)."""
  if len(ours.get("values", ())) < 2:
    return ""
  gap = abs(ours["mean"] - other["mean"])
  beyond = gap > ours["std"] + other.get("std", 0.0)
  return ", %s one standard deviation" % ("beyond" if beyond else "within")


def multi_task_margins(records):
  """A line per problem of a multi-task column: its mean against the
  single-task column of the same initialisation."""
  single = {(r["problem"], r["init"]): r for r in records
            if r["setting"] in ("single-task", "random init")}
  lines = []
  for record in records:
    if "multi-task" not in record["setting"]:
      continue
    alone = single.get((record["problem"], record["init"]))
    if alone is None:
      continue
    lines.append("- %s, %s: %s vs %s %s: %+.3f%s" % (
        record["problem"], record["setting"], fmt(record),
        alone["setting"], fmt(alone), record["mean"] - alone["mean"],
        spread_verdict(record, alone)))
  return lines


def fmt(record):
  if record is None:
    return "–"
  if len(record["values"]) > 1:
    return "%.3f ± %.3f (n=%d)" % (record["mean"], record["std"],
                                    len(record["values"]))
  return "%.3f" % record["mean"]


def lever_lines(records, jobs, levers):
  """A line per lever and problem the two settings share: the setting's
  mean against its base setting's, judged by one standard deviation.

  levers: [(setting, base setting, what changes)].
  """
  column = {j["setting"]: column_of(j) for j in fine_tuning(jobs)}
  trains = {j["setting"]: set(j["chain"].replace("&", "|").split("|"))
            for j in fine_tuning(jobs)}
  by_key = {(r["problem"], r["setting"]): r for r in records}
  problems = problems_of(records)
  lines = []
  for setting, base, what in levers:
    if setting not in column or base not in column:
      continue
    for problem in problems:
      # (Single-task settings share a column: only the problems both
      # settings train count; "@" scores a head on another problem's data.)
      if problem.partition("@")[0] not in trains[setting] & trains[base]:
        continue
      ours = by_key.get((problem, column[setting]))
      theirs = by_key.get((problem, column[base]))
      if ours and theirs:
        lines.append("- %s (%s against %s), %s: %s vs %s: %+.3f%s" % (
            what, setting, base, problem, fmt(ours), fmt(theirs),
            ours["mean"] - theirs["mean"], spread_verdict(ours, theirs)))
  return lines


def table(records, jobs, budget):
  """The markdown table of benchmarks/README.md."""
  columns = []
  for job in fine_tuning(jobs):  # in protocol order
    if column_of(job) not in columns:
      columns.append(column_of(job))
  columns = ([c for c in columns if not c.startswith("random")] +
             [c for c in columns if c.startswith("random")])
  if any(r["setting"] == PEER for r in records):
    columns.append(PEER)
  problems = problems_of(records)
  by_key = {(r["problem"], r["setting"]): r for r in records}
  # (A chain's "|" would split a markdown cell.)
  header = [c.replace("|", "\\|") for c in columns]
  lines = ["| problem | metric | " + " | ".join(header) + " | reference |",
           "|---" * (len(columns) + 3) + "|"]
  for problem in problems:
    metric = next(r["metric"] for r in records if r["problem"] == problem)
    cells = [fmt(by_key.get((problem, c))) for c in columns]
    lines.append("| %s | %s | %s | %s |" % (
        problem, metric, " | ".join(cells), REFERENCES.get(problem, "")))
  from bert_mtl import modeling  # pylint: disable=g-import-not-at-top
  b = BUDGETS[budget]
  lines.append("")
  pretraining = ""
  if any(j["kind"] == "pretrain" for j in jobs):
    pretraining = "; pretraining %d steps of %d at learning rate %g%s, " \
        "dupe_factor %d" % (
            b["pretrain_steps"], b["pretrain_batch"],
            b["pretrain_learning_rate"], "".join(
                ", " + o for o in sorted(b.get("pretrain_options", {}))),
            b["dupe_factor"])
  lines.append(
      "Budget `%s`: model %s (%s), max_seq_length %d, fine-tuning batch %d, "
      "%d steps (large problems and chains) / %d steps (small problems), "
      "learning rate %g%s%s%s. Machine: %s, %d CPUs." % (
          budget, b["model"], json.dumps(modeling.SMALL_MODELS[b["model"]]),
          b["max_seq_length"], b["batch"], b["large"],
          b["small"], b["learning_rate"], "".join(
              ", %s=%s" % item for item in sorted(
                  b.get("run_options", {}).items())), "".join(
              ", %s for %s" % (", ".join(
                  "%s=%s" % kv for kv in sorted(o.items())), s)
              for s, o in sorted(b.get("options", {}).items())),
          pretraining, platform.processor() or platform.machine(),
          os.cpu_count() or 0))
  lines += peer_margins(records)
  lines += multi_task_margins(records)
  lines += lever_lines(records, jobs, b.get("levers", ()))
  for record in records:
    if record["setting"] == PEER:
      lines.append("- %s, CRFsuite: %d L-BFGS iterations on %d training "
                   "sentences, %.0f s of CPU" % (
                       record["problem"], record["iterations"],
                       record["train_sentences"], record["train_cpu_seconds"]))
  pretrain = pretraining_result(jobs)
  if pretrain:
    final = pretrain["final"]["zh_pretrain"]
    lines.append(
        "- pretraining (zh_pretrain eval split): masked-LM accuracy %s, "
        "next-sentence accuracy %.3f after %d steps (%.0f min)" % (
            " → ".join("%.3f@%d" % (p["metrics"]["zh_pretrain"], p["step"])
                       for p in pretrain["curve"]),
            final["next_sentence_accuracy"], pretrain["curve"][-1]["step"],
            pretrain["train_seconds"] / 60))
  curves = curves_of(jobs)
  for problem, target in TARGETS.items():
    for name, curve in curves.items():
      if problem not in curve[-1]["metrics"]:
        continue
      value = curve[-1]["metrics"][problem]
      reach = steps_to_target(curve, problem, target)
      lines.append(
          "- %s, run %s: %.3f after %d steps (target %.3f); %s" % (
              problem, name, value, curve[-1]["step"], target,
              "reached" if value >= target else
              ("a log-linear fit of the last curve points reaches it near "
               "%.1g steps" % reach if reach else "the curve does not rise")))
  return "\n".join(lines) + "\n"


def plot(jobs, path):
  """Learning curves: masked-LM accuracy of pretraining, then each curve
  run's main metrics against steps."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  curves = curves_of(jobs)
  problems = sorted({p for c in curves.values() for point in c
                     for p in point["metrics"]})
  fig, axes = plt.subplots(1, max(1, len(problems)),
                           figsize=(4.2 * max(1, len(problems)), 3.6),
                           squeeze=False)
  for axis, problem in zip(axes[0], problems):
    for name, curve in sorted(curves.items()):
      points = [(p["step"], p["metrics"][problem]) for p in curve
                if p["metrics"].get(problem) is not None]
      if points:
        axis.plot(*zip(*points), marker="o", label=name)
    if problem in TARGETS:
      axis.axhline(TARGETS[problem], color="grey", linestyle="--",
                   label="target %.2f" % TARGETS[problem])
    axis.set_title(problem)
    axis.set_xlabel("training steps")
    axis.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=90)


def peer_records(jobs):
  """The records of the peer's jobs (peer_jobs) that have a result."""
  records = []
  for job in jobs:
    record = result_of(job)
    if record is None:
      continue
    record.update(values=[record["value"]], mean=record["value"], std=0.0,
                  seeds=[])
    records.append(record)
    print("CRFsuite %s: %s %.4f (%.0f s CPU)" % (
        record["problem"], record["metric"], record["value"],
        record["train_cpu_seconds"]))
  return records


def record_invocation(output_dir, seconds, runs_done):
  """Appends this command's wall time and the runs it finished to
  <output_dir>/invocations.json; returns every invocation recorded."""
  from bert_mtl import files  # pylint: disable=g-import-not-at-top
  path = os.path.join(output_dir, "invocations.json")
  invocations = []
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      invocations = json.load(f)
  invocations.append({"finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                      "wall_seconds": round(seconds, 1),
                      "runs_done": runs_done})
  files.atomic_write(path, json.dumps(invocations, indent=1))
  return invocations


def wall_time_line(invocations):
  """The protocol's wall time over the invocations that ran something."""
  working = [i for i in invocations if i["runs_done"]]
  if not working:
    return []
  return ["- wall time of the runs: %.0f min in %d invocation(s) of this "
          "command (%s)" % (
              sum(i["wall_seconds"] for i in working) / 60, len(working),
              "; ".join("%.0f min for %d run(s)" % (
                  i["wall_seconds"] / 60, len(i["runs_done"]))
                        for i in working))]


def results_stem(budget):
  """The name of a budget's result files: accuracy.{json,md,png} for the
  default budget, accuracy-<budget>.* for the others (each budget keeps its
  own table)."""
  return "accuracy" if budget == DEFAULT_BUDGET else "accuracy-" + budget


def report(jobs, budget, results_dir, peers=(), invocations=()):
  os.makedirs(results_dir, exist_ok=True)
  records = records_of(jobs) + list(peers)
  pretrain = pretraining_result(jobs)
  stem = os.path.join(results_dir, results_stem(budget))
  with open(stem + ".json", "w", encoding="utf-8") as f:
    json.dump({"budget": budget, "settings": BUDGETS[budget],
               "records": records, "invocations": list(invocations),
               "pretraining_curve": pretrain and pretrain["curve"],
               "curves": curves_of(jobs)}, f, indent=1, sort_keys=True)
  text = table(records, jobs, budget) + "".join(
      line + "\n" for line in wall_time_line(invocations))
  with open(stem + ".md", "w", encoding="utf-8") as f:
    f.write(text)
  plot(jobs, stem + ".png")
  print(text)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--budget", choices=sorted(BUDGETS),
                      default=DEFAULT_BUDGET)
  parser.add_argument("--parallel", type=int, default=2,
                      help="runs at a time (each gets cpus/parallel "
                           "TensorFlow threads)")
  parser.add_argument("--output_dir", default=os.path.join(
      REPO, "output", "accuracy"))
  parser.add_argument("--results_dir", default=RESULTS)
  parser.add_argument("--data_dir", default=None)
  parser.add_argument("--only", default=None,
                      help="comma-separated settings to run (pretraining "
                           "first, when one of them starts from it)")
  parser.add_argument("--no_peer", action="store_true",
                      help="skip the CRFsuite baseline")
  parser.add_argument("--job", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.job:
    with open(args.job, encoding="utf-8") as f:
      run_job(json.load(f))
    return
  from bert_mtl import data_dir as data_dir_lib  # pylint: disable=g-import-not-at-top
  data_dir = data_dir_lib.resolve(args.data_dir)
  jobs = make_jobs(args.budget, os.path.abspath(args.output_dir), data_dir,
                   os.path.join(os.path.abspath(args.output_dir), "cache"))
  wanted = None
  if args.only:
    wanted = set(args.only.split(","))
    jobs = with_needed_pretraining([j for j in jobs if j["kind"] ==
                                    "pretrain" or j["setting"] in wanted])
  peers = [] if args.no_peer else peer_jobs(
      os.path.abspath(args.output_dir), data_dir, args.budget, wanted)
  start, todo = time.time(), [j for j in jobs + peers if result_of(j) is None]
  failed = run_all(jobs + peers, args.parallel,
                   os.path.join(os.path.abspath(args.output_dir), "logs"))
  invocations = record_invocation(
      os.path.abspath(args.output_dir), time.time() - start,
      [j["name"] for j in todo if result_of(j) is not None])
  peers = peer_records(peers)
  report(jobs, args.budget, args.results_dir, peers, invocations)
  if failed:
    sys.exit("failed runs: %s" % ", ".join(failed))


if __name__ == "__main__":
  main()
