"""What each accuracy lever buys: one line per change, measured in one run.

Every line trains one problem from random initialisation (the
`-pretrained` lines: from a pretraining line's checkpoint; the
`weibo-chain` lines: the chain weibo_ner&weibo_cws, one run that each of
them reads for its problem) at the `cpu-1500` budget of
benchmarks/accuracy.py, the first protocol's (tiny model, batch 32,
max_seq_length 128), with one change against the line it names as its
base, and records the problem's main metric (PKU gold test word F1 for
`pd98_cws`, entity F1 on the MSRA test for `msra_ner` and
on the Weibo test for `weibo_ner`, word F1 on the Weibo test for
`weibo_cws`), the training seconds and the seed.  The base lines repeat the
accuracy table's "random init" protocol, so each change is against a
baseline measured in the same run on the same machine, and every line is
also set against the CRFsuite character CRF (benchmarks/crfsuite_peer.py)
trained and scored in the same run.

    python benchmarks/ablation.py [--only NAME,...] [--parallel 2]
                                  [--seeds 0,1,2]

Runs live in output/ablation/runs/<line>[-s<seed>]/ (finished ones are
skipped on a rerun, killed ones resume from their checkpoints); the table of
seed 0 is written to benchmarks/results/ablation.md and .json.  Further
seeds give benchmarks/results/ablation_seeds.md and .json: each line's
values over its seeds (every line with a seed beyond 0, from this run or
recorded), their mean and standard deviation, and the mean's margin over
the peer.  A seed whose run directory is gone is taken from the record an
earlier run wrote to ablation.json or ablation_seeds.json when that
record's job is the same job, and is not run again (the runs are
deterministic for a seed: the base lines reproduce the accuracy table's
values exactly); the tables say so.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import accuracy  # pylint: disable=g-import-not-at-top,wrong-import-position

# The base every line changes: the first accuracy protocol's budget.
BUDGET = "cpu-1500"
PROBLEMS = {"pd98_cws": ({"pd98_cws": "pku_cws"}, "pd98_cws@pku_cws"),
            "msra_ner": ({}, "msra_ner"),
            "weibo_ner": ({}, "weibo_ner"),
            "weibo_cws": ({}, "weibo_cws"),
            "zh_pretrain": ({}, "zh_pretrain")}  # masked-LM accuracy

# Segmentation at learning rate 1e-3 with width normalisation (line
# cws-width), the base of the later segmentation lines.
CWS_WIDTH = {"learning_rate": 1e-3, "options": {"normalize_width": True}}
# Where the fine-tuning levers below arrive (lines cws-steps and
# msra-steps); the runs from our pretraining change only the init.
CWS_BEST = dict(CWS_WIDTH, steps=6000)
MSRA_BEST = {"learning_rate": 1e-3, "steps": 6000}
# Weibo NER (1,350 training sentences) is one of the table's small
# problems: 600 steps; its levers are the same two.
WEIBO_BASE = {"steps": 600}
WEIBO_BEST = {"learning_rate": 1e-3, "steps": 3000}
# Multi-task against single-task at equal steps: Weibo's same-input pair
# trained together; one run, read by two lines (one per problem).
WEIBO_CHAIN = dict(WEIBO_BEST, chain="weibo_ner&weibo_cws",
                   run="weibo-chain")
WEIBO_CHAIN_PRETRAINED = dict(WEIBO_CHAIN, run="weibo-chain-pretrained",
                              init_from="pretrain-steps")
# Pretraining at the accuracy table's batch (64) and learning rate.
PRETRAIN = {"kind": "pretrain", "batch": 64, "learning_rate": 1e-3,
            "steps": 1500}
# The two options for short runs from random initialisation (the accuracy
# protocol's pretraining uses both: accuracy.FRESH_MODEL_OPTIONS).
ZERO_TYPES = {"zero_init_token_types": True}
BOTH_LEVERS = dict(accuracy.FRESH_MODEL_OPTIONS)
# The long pretraining keeps both: without them a fresh model of ours does
# not learn position-dependent attention (the positional task of
# tests/test_training.py), which masked-LM needs to leave the plateau.
PRETRAIN_LONG = dict(PRETRAIN, steps=6000, curve=True, options=BOTH_LEVERS)

# (line, problem, base line or None, change: job fields and RunConfig
# options, what it is)
LINES = [
    ("cws-base", "pd98_cws", None, {}, "the table's random-init run"),
    ("cws-lr1e-3", "pd98_cws", "cws-base", {"learning_rate": 1e-3},
     "learning rate 5e-4 -> 1e-3"),
    ("cws-lr2e-3", "pd98_cws", "cws-base", {"learning_rate": 2e-3},
     "learning rate 5e-4 -> 2e-3"),
    ("cws-width", "pd98_cws", "cws-lr1e-3", CWS_WIDTH,
     "normalize_width (PD98 full-width, PKU half-width digits and letters)"),
    ("cws-steps", "pd98_cws", "cws-width", CWS_BEST,
     "1500 -> 6000 steps (about 20 minutes of training)"),
    ("cws-mini", "pd98_cws", "cws-width", dict(CWS_WIDTH, model="mini"),
     "model tiny (2 x 128) -> mini (4 x 256), same steps"),
    ("msra-base", "msra_ner", None, {}, "the table's random-init run"),
    ("msra-lr1e-3", "msra_ner", "msra-base", {"learning_rate": 1e-3},
     "learning rate 5e-4 -> 1e-3"),
    ("msra-steps", "msra_ner", "msra-lr1e-3", MSRA_BEST,
     "1500 -> 6000 steps (about 20 minutes of training)"),
    ("cws-levers", "pd98_cws", "cws-width",
     dict(CWS_WIDTH, options=dict(CWS_WIDTH["options"], **BOTH_LEVERS)),
     "--zero_init_token_types and --adam_bias_correction"),
    ("pretrain-1500", "zh_pretrain", None, PRETRAIN,
     "pretraining at the table's batch (64) and rate (1e-3), 1500 steps"),
    ("pretrain-zero-types", "zh_pretrain", "pretrain-1500",
     dict(PRETRAIN, options=ZERO_TYPES), "--zero_init_token_types"),
    ("pretrain-levers", "zh_pretrain", "pretrain-zero-types",
     dict(PRETRAIN, options=BOTH_LEVERS), "... and --adam_bias_correction"),
    ("pretrain-steps", "zh_pretrain", "pretrain-levers", PRETRAIN_LONG,
     "1500 -> 6000 steps (the table's run: 3000 steps, masked-LM 0.149)"),
    ("weibo-base", "weibo_ner", None, WEIBO_BASE,
     "the table's random-init run (a small problem: 600 steps)"),
    ("weibo-lr1e-3", "weibo_ner", "weibo-base",
     dict(WEIBO_BASE, learning_rate=1e-3), "learning rate 5e-4 -> 1e-3"),
    ("weibo-steps", "weibo_ner", "weibo-lr1e-3", WEIBO_BEST,
     "600 -> 3000 steps"),
    ("weibo-steps-lr5e-4", "weibo_ner", "weibo-base", dict(WEIBO_BEST,
                                                          learning_rate=5e-4),
     "600 -> 3000 steps at the table's rate (5e-4)"),
    ("cws-pretrained", "pd98_cws", "cws-steps",
     dict(CWS_BEST, init_from="pretrain-steps"),
     "random init -> the pretrain-steps checkpoint"),
    ("msra-pretrained", "msra_ner", "msra-steps",
     dict(MSRA_BEST, init_from="pretrain-steps"),
     "random init -> the pretrain-steps checkpoint"),
    ("weibo-pretrained", "weibo_ner", "weibo-steps",
     dict(WEIBO_BEST, init_from="pretrain-steps"),
     "random init -> the pretrain-steps checkpoint"),
    ("cws-width-pretrained", "pd98_cws", "cws-width",
     dict(CWS_WIDTH, init_from="pretrain-steps"),
     "random init -> the pretrain-steps checkpoint, at 1500 steps"),
    ("msra-lr1e-3-pretrained", "msra_ner", "msra-lr1e-3",
     {"learning_rate": 1e-3, "init_from": "pretrain-steps"},
     "random init -> the pretrain-steps checkpoint, at 1500 steps"),
    ("weibo-cws-steps", "weibo_cws", None, WEIBO_BEST,
     "single-task Weibo segmentation at weibo-steps' settings"),
    ("weibo-chain", "weibo_ner", "weibo-steps", WEIBO_CHAIN,
     "single-task -> the chain weibo_ner&weibo_cws, same steps"),
    ("weibo-chain-cws", "weibo_cws", "weibo-cws-steps", WEIBO_CHAIN,
     "single-task -> the chain weibo_ner&weibo_cws (weibo-chain's run)"),
    # Segmentation with few labels (1,350 Weibo sentences, where PD98 has
    # 40,585): does our pretraining help segmentation when the labels do
    # not already teach what masked LM on the same text can?
    ("weibo-cws-pretrained", "weibo_cws", "weibo-cws-steps",
     dict(WEIBO_BEST, init_from="pretrain-steps"),
     "random init -> the pretrain-steps checkpoint"),
    # The same-input chain from our pretraining against its single-task
    # lines from the same checkpoint (one run, read by two lines).
    ("weibo-chain-pretrained", "weibo_ner", "weibo-pretrained",
     WEIBO_CHAIN_PRETRAINED,
     "single-task -> the chain weibo_ner&weibo_cws, both from the "
     "pretrain-steps checkpoint"),
    ("weibo-chain-pretrained-cws", "weibo_cws", "weibo-cws-pretrained",
     WEIBO_CHAIN_PRETRAINED,
     "single-task -> the chain weibo_ner&weibo_cws, both from the "
     "pretrain-steps checkpoint (weibo-chain-pretrained's run)"),
    # The cpu protocol's pretraining (accuracy.py --budget cpu: 3000 steps,
    # both options), and Weibo segmentation from it at a fine-tuning rate
    # below the pretraining's, as BERT fine-tunes (at 1e-3 the protocol's
    # runs from it end below random init).
    ("pretrain-3000", "zh_pretrain", "pretrain-levers",
     dict(PRETRAIN_LONG, steps=3000, curve_points=3),
     "1500 -> 3000 steps (the cpu protocol's pretraining)"),
    ("weibo-cws-lr3e-4", "weibo_cws", "weibo-cws-steps",
     dict(WEIBO_BEST, learning_rate=3e-4), "learning rate 1e-3 -> 3e-4"),
    ("weibo-cws-lr3e-4-pretrained", "weibo_cws", "weibo-cws-lr3e-4",
     dict(WEIBO_BEST, learning_rate=3e-4, init_from="pretrain-3000"),
     "random init -> the pretrain-3000 checkpoint"),
    ("cws-12k", "pd98_cws", "cws-steps", dict(CWS_BEST, steps=12000),
     "6000 -> 12000 steps"),
    ("msra-12k", "msra_ner", "msra-steps", dict(MSRA_BEST, steps=12000),
     "6000 -> 12000 steps"),
]


def run_name(line_name, seed):
  return line_name if seed == 0 else "%s-s%d" % (line_name, seed)


def unique_runs(jobs):
  """The jobs with one of each run (lines reading the same run share it)."""
  return list({job["name"]: job for job in jobs}.values())


def line_job(line, budget, output_dir, data_dir, seed=0):
  """The accuracy protocol's job for one line (its change applied)."""
  line_name, problem, _, change, _ = line
  name = run_name(change.get("run", line_name), seed)
  b = accuracy.BUDGETS[budget]
  eval_on, _ = PROBLEMS[problem]
  job = dict(budget=budget, data_dir=data_dir,
             cache_dir=os.path.join(output_dir, "cache"), model=b["model"],
             max_seq_length=b["max_seq_length"],
             max_examples=b["max_examples"], name=name, setting=name,
             kind="single", chain=problem, init="random", seed=seed,
             steps=b["large"], batch=b["batch"],
             learning_rate=b["learning_rate"], eval_on=eval_on,
             sampling="proportional", curve=False,
             dupe_factor=b["dupe_factor"], init_checkpoint=None,
             output_dir=os.path.join(output_dir, "runs", name))
  options = dict(change.get("options", {}))
  job.update({k: v for k, v in change.items()
              if k not in ("options", "init_from", "run")})
  job["options"] = options
  if job["chain"] != problem:
    job["kind"] = "multi"
  if change.get("init_from"):  # a pretraining line's run (one, seed 0)
    job.update(init="pretrained", init_checkpoint=os.path.join(
        output_dir, "runs", run_name(change["init_from"], 0)))
  return job


def table(lines, jobs, peers=(), recorded=()):
  """Markdown table and records: metric, its change against the base
  line and against the peer on the same problem, train seconds.  A line
  whose run directory is gone is taken from its record in `recorded` (an
  earlier ablation.json) when that record's job is the same job, and the
  table says so."""
  earlier = {r["line"]: r for r in recorded if "line" in r}
  measured = {}  # line -> (value, train seconds, curve, from the record)
  for (name, problem, _, _, _), job in zip(lines, jobs):
    metric_key = PROBLEMS[problem][1]
    result = accuracy.result_of(job)
    if result is not None:
      curve = [(p["step"], p["metrics"][metric_key])
               for p in result.get("curve", [])]
      measured[name] = (accuracy.headline(result["final"])[metric_key],
                        result["train_seconds"], curve, False)
    elif name in earlier and same_job(earlier[name]["job"], job):
      record = earlier[name]
      measured[name] = (record["value"], record["train_seconds"],
                        record.get("curve", []), True)
  peer = {p["problem"]: p for p in peers}
  records, rows, curves = [], [], []
  for record in peers:
    rows.append("| %s | %s | %s | %.3f | – | – | %d iterations | %.0f s "
                "CPU |" % (accuracy.PEER, record["problem"],
                           "CRFsuite character CRF (the peer)",
                           record["value"], record["iterations"],
                           record["train_cpu_seconds"]))
  for (name, problem, base, _, what), job in zip(lines, jobs):
    if name not in measured:
      continue
    metric_key = PROBLEMS[problem][1]
    value, seconds, curve, from_record = measured[name]
    delta = None if base not in measured else value - measured[base][0]
    against = peer.get(metric_key)
    versus = None if against is None else value - against["value"]
    records.append({"line": name, "problem": metric_key, "base": base,
                    "change": what, "value": value, "delta": delta,
                    "vs_peer": versus, "curve": curve,
                    "steps": job["steps"], "seed": job["seed"],
                    "train_seconds": round(seconds, 1), "job": job})
    rows.append("| %s | %s | %s | %.3f | %s | %s | %d steps | %.0f s%s |" % (
        name, metric_key, what, value,
        "–" if delta is None else "%+.3f vs %s" % (delta, base),
        "–" if versus is None else "%+.3f" % versus,
        job["steps"], seconds, " (recorded)" if from_record else ""))
    if len(curve) > 1:
      curves.append("- %s, %s by step: %s" % (name, metric_key, " → ".join(
          "%.3f@%d" % (v, step) for step, v in curve)))
  head = ("| line | problem | change | value | vs base | vs CRFsuite | "
          "training | train time |\n|---|---|---|---|---|---|---|---|\n")
  text = head + "\n".join(rows) + "\n"
  if curves:
    text += "\n" + "\n".join(curves) + "\n"
  return text, records + list(peers)


def same_job(a, b):
  """Jobs equal but for where they write and the name of the budget they
  were made from (a job holds every value of its budget: the records made
  while the base budget was named `cpu` stay the same jobs)."""
  paths = ("output_dir", "cache_dir", "data_dir", "init_checkpoint",
           "budget")
  return ({k: v for k, v in a.items() if k not in paths} ==
          {k: v for k, v in b.items() if k not in paths})


def earlier_runs(line_records, seed_records):
  """[{line, seed, value, job}] of the runs an earlier ablation.json (the
  first table's lines) and ablation_seeds.json (each line's seeds) record."""
  runs = [r for r in line_records if "line" in r]
  runs += [dict(run, line=r["line"]) for r in seed_records
           for run in r.get("runs", [])]
  return runs


def runs_to_do(jobs, runs):
  """The jobs to hand to accuracy.run_all: all but those without a result
  that a recorded run of the same job stands in for (its directory is
  gone; rerunning it would repeat a measurement the tables have).  A run
  whose checkpoint another job starts from is kept: a record holds no
  checkpoint."""
  inits = {j["init_checkpoint"] for j in jobs if j.get("init_checkpoint")}
  return [j for j in jobs if accuracy.result_of(j) is not None or
          j["output_dir"] in inits or not any(
              r["job"]["name"] == j["name"] and same_job(r["job"], j)
              for r in runs)]


def seed_table(lines, jobs_by_seed, recorded=(), peers=()):
  """Markdown table and records of each line over its seeds.

  Args:
    jobs_by_seed: {seed: [job of each line]}.
    recorded: runs recorded earlier (earlier_runs); one stands in for a
      seed whose run has no result when its job is the same job.
    peers: peer records (value per problem).

  A line is listed when it has a value for a seed beyond 0.
  """
  recorded = {(r["line"], r["seed"]): r for r in recorded if "line" in r}
  peer = {p["problem"]: p["value"] for p in peers}
  rows, records = [], []
  for index, (name, problem, _, _, what) in enumerate(lines):
    metric_key = PROBLEMS[problem][1]
    values, seeds, taken, runs = [], [], [], []
    for seed in sorted(jobs_by_seed):
      job = jobs_by_seed[seed][index]
      result = accuracy.result_of(job)
      if result is not None:
        value = accuracy.headline(result["final"])[metric_key]
      elif (name, seed) in recorded and same_job(
          recorded[(name, seed)]["job"], job):
        value = recorded[(name, seed)]["value"]
        taken.append(seed)
      else:
        continue
      values.append(value)
      seeds.append(seed)
      runs.append({"seed": seed, "value": value, "job": job})
    if not values or seeds == [0]:  # no seed beyond the first table's
      continue
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 \
        if len(values) > 1 else 0.0
    versus = None if metric_key not in peer else mean - peer[metric_key]
    records.append({"line": name, "problem": metric_key, "change": what,
                    "values": values, "seeds": seeds, "mean": mean,
                    "std": std, "vs_peer": versus,
                    "from_earlier_record": taken, "runs": runs})
    rows.append("| %s | %s | %s | %s | %.3f ± %.3f | %s |" % (
        name, metric_key, what, ", ".join(
            "%.3f (seed %d%s)" % (v, s, ", recorded" if s in taken else "")
            for v, s in zip(values, seeds)), mean, std,
        "–" if versus is None else "%+.3f" % versus))
  head = ("| line | problem | change | values | mean ± std | mean vs "
          "CRFsuite |\n|---|---|---|---|---|---|\n")
  return head + "\n".join(rows) + "\n", records


def _read(results_dir, stem):
  """The records of results_dir/<stem>.json ([] if there is none)."""
  path = os.path.join(results_dir, stem + ".json")
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _write(results_dir, stem, text, records):
  os.makedirs(results_dir, exist_ok=True)
  with open(os.path.join(results_dir, stem + ".json"), "w",
            encoding="utf-8") as f:
    json.dump(records, f, indent=1, sort_keys=True)
  with open(os.path.join(results_dir, stem + ".md"), "w",
            encoding="utf-8") as f:
    f.write(text)
  print(text)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--budget", choices=sorted(accuracy.BUDGETS),
                      default=BUDGET)
  parser.add_argument("--parallel", type=int, default=2)
  parser.add_argument("--only", default=None,
                      help="comma-separated lines to run (default: all)")
  parser.add_argument("--output_dir", default=os.path.join(
      accuracy.REPO, "output", "ablation"))
  parser.add_argument("--results_dir", default=accuracy.RESULTS)
  parser.add_argument("--data_dir", default=None)
  parser.add_argument("--no_peer", action="store_true",
                      help="skip the CRFsuite peer (the seed table then "
                      "uses the peer values recorded in ablation.json)")
  parser.add_argument("--seeds", default="0",
                      help="comma-separated seeds of each line (default 0)")
  args = parser.parse_args()
  from bert_mtl import data_dir as data_dir_lib  # pylint: disable=g-import-not-at-top
  data_dir = data_dir_lib.resolve(args.data_dir)
  output_dir = os.path.abspath(args.output_dir)
  lines = LINES
  if args.only:
    wanted = set(args.only.split(","))
    unknown = wanted - {line[0] for line in LINES}
    if unknown:
      sys.exit("unknown lines: %s" % ", ".join(sorted(unknown)))
    lines = [line for line in LINES if line[0] in wanted]
  seeds = sorted({int(s) for s in args.seeds.split(",")})
  recorded = {stem: _read(args.results_dir, stem)
              for stem in ("ablation", "ablation_seeds")}
  earlier = earlier_runs(recorded["ablation"], recorded["ablation_seeds"])
  jobs = [line_job(line, args.budget, output_dir, data_dir, seed)
          for seed in seeds for line in lines]
  peer_jobs = [] if args.no_peer else accuracy.peer_jobs(
      output_dir, data_dir, args.budget, set(PROBLEMS))
  failed = accuracy.run_all(unique_runs(runs_to_do(jobs, earlier)) +
                            peer_jobs, args.parallel,
                            os.path.join(output_dir, "logs"))
  peers = accuracy.peer_records(peer_jobs)
  recorded_peers = [r for r in recorded["ablation"] if "line" not in r]
  if 0 in seeds:
    all_jobs = [line_job(line, args.budget, output_dir, data_dir)
                for line in LINES]
    text, records = table(LINES, all_jobs, peers or recorded_peers,
                          recorded["ablation"])
    _write(args.results_dir, "ablation", text, records)
  if seeds != [0]:
    # Every line with further seeds, these or recorded ones.
    all_seeds = set(seeds) | {0} | {r["seed"] for r in earlier}
    text, records = seed_table(
        LINES, {s: [line_job(line, args.budget, output_dir, data_dir, s)
                    for line in LINES] for s in all_seeds},
        earlier, peers or recorded_peers)
    _write(args.results_dir, "ablation_seeds", text, records)
  if failed:
    sys.exit("failed runs: %s" % ", ".join(failed))


if __name__ == "__main__":
  main()
