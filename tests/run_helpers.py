"""Running run_multitask.py in a subprocess with a tiny model."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_BERT = {"vocab_size": 21128, "hidden_size": 32, "num_hidden_layers": 1,
             "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 64, "hidden_dropout_prob": 0.1,
             "attention_probs_dropout_prob": 0.1}


def tiny_config(directory, **overrides):
  path = os.path.join(str(directory), "bert_config.json")
  with open(path, "w") as f:
    json.dump(dict(TINY_BERT, **overrides), f)
  return path


def run_multitask(args, env=None, check=True, timeout=600):
  """Runs the command line; returns the CompletedProcess (output text)."""
  environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                     PYTHONWARNINGS="ignore", **(env or {}))
  process = subprocess.run(
      [sys.executable, os.path.join(REPO, "run_multitask.py")] + args,
      env=environment, capture_output=True, text=True, timeout=timeout)
  if check and process.returncode:
    raise AssertionError("run_multitask failed (%d):\n%s" % (
        process.returncode, process.stderr[-6000:]))
  return process


def base_args(tmp_path, data_dir, problems, steps=4, **flags):
  args = {"problems": problems, "output_dir": str(tmp_path / "model"),
          "data_dir": data_dir, "cache_dir": str(tmp_path / "cache"),
          "max_seq_length": 32,
          "max_examples": 40, "num_train_steps": steps,
          "train_batch_size": 8, "eval_batch_size": 8,
          "predict_batch_size": 8, "learning_rate": 1e-3,
          "max_target_length": 8, "save_checkpoints_steps": 1000}
  args.update(flags)
  if "bert_config_file" not in args:
    args["bert_config_file"] = tiny_config(tmp_path)
  return ["--%s=%s" % (k, v) for k, v in args.items()]


def eval_results(path):
  """{metric: value} of a run's eval_results.txt ("key = value" lines)."""
  with open(path, encoding="utf-8") as f:
    return {key: float(value) for key, value in (
        line.rstrip("\n").split(" = ") for line in f if " = " in line)}
