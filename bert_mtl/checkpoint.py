"""Checkpoints: original `init_checkpoint` semantics, head mapping, a
HuggingFace converter, an optimizer-slot stripper and cast copies.

Command line:

    python -m bert_mtl.checkpoint convert-hf --src HF_DIR --dst TF_DIR
    python -m bert_mtl.checkpoint strip-slots --src CKPT_PREFIX --dst CKPT_PREFIX
"""

import glob
import json
import os
import re
import shutil

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from bert_mtl import modeling

tf1 = tf.compat.v1

# Names the original scripts give their fine-tuning heads, and the
# pre-training heads, as stored in checkpoints.
ORIGINAL_CLASSIFIER = ("output_weights", "output_bias")
ORIGINAL_SQUAD = ("cls/squad/output_weights", "cls/squad/output_bias")
PRETRAINING_PREFIXES = ("cls/predictions/", "cls/seq_relationship/")

# Suffixes of training-only variables (optimizer slots, accumulators).
SLOT_SUFFIXES = ("/adam_m", "/adam_v", "/Adam", "/Adam_1", "/grad_accum",
                 "/Momentum")
TRAINING_ONLY_NAMES = ("global_step", "beta1_power", "beta2_power",
                       "loss_scale", "good_steps")


def latest_step(model_dir):
  """global_step of model_dir's latest checkpoint, or None."""
  latest = tf.train.latest_checkpoint(model_dir)
  return None if latest is None else step_of(latest)


def step_of(checkpoint_path):
  """The global step in a checkpoint prefix ("model.ckpt-N"), or None."""
  m = re.search(r"-(\d+)$", checkpoint_path)
  return int(m.group(1)) if m else None


class CheckpointError(ValueError):
  """A checkpoint that does not fit the model (names the variable), or
  none that can be read."""


def _data_shards(prefix):
  return [p for p in glob.glob(glob.escape(prefix) + ".data-*")
          if re.search(r"\.data-\d+-of-\d+$", p)]


def checkpoint_files(prefix):
  """The files of the checkpoint at `prefix` (index, data shards, meta)."""
  return sorted(glob.glob(glob.escape(prefix) + ".index") +
                _data_shards(prefix) +
                glob.glob(glob.escape(prefix) + ".meta"))


def damage(prefix):
  """None when the checkpoint at `prefix` reads back whole, else what is
  wrong with it: a missing index or data shard, or a tensor that cannot be
  read (truncated, or failing its checksum)."""
  index = prefix + ".index"
  if not os.path.exists(index):
    return "%s is missing" % index
  shards = _data_shards(prefix)
  wanted = {int(m.group(1)) for m in (re.search(r"-of-(\d+)$", s)
                                       for s in shards) if m}
  if not shards or len(wanted) != 1 or len(shards) != wanted.pop():
    return "data files missing (%s)" % (", ".join(sorted(
        os.path.basename(p) for p in shards)) or "none")
  try:
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)  # checks the bytes' length and crc32c
  except (tf.errors.OpError, ValueError, RuntimeError, IndexError) as e:
    return "unreadable (%s)" % str(e).strip().splitlines()[0][:200]
  return None


def _prefixes(model_dir):
  """Checkpoint prefixes of model_dir, newest step first: those of the
  checkpoint state file and any other model.ckpt-N.index."""
  found = set()
  state = tf.train.get_checkpoint_state(model_dir)
  if state is not None:
    found.update(os.path.join(model_dir, os.path.basename(p))
                 for p in state.all_model_checkpoint_paths)
  found.update(p[:-len(".index")] for p in glob.glob(os.path.join(
      glob.escape(model_dir), "model.ckpt-*.index")))
  return sorted((p for p in found if step_of(p) is not None),
                key=step_of, reverse=True)


def remove_failed_saves(model_dir):
  """Removes the temporary files a failed or killed save left (TensorFlow
  writes model.ckpt-N_temp/ and renames its parts, and other files through
  <name>.tmp<32 hex digits>); returns their names."""
  left = sorted(glob.glob(os.path.join(glob.escape(model_dir),
                                       "model.ckpt-*_temp*")) + [
      p for p in glob.glob(os.path.join(glob.escape(model_dir), "*.tmp*"))
      if re.search(r"\.tmp[0-9a-f]{32}$", p)])
  for path in left:
    if os.path.isdir(path):
      shutil.rmtree(path, ignore_errors=True)
    else:
      os.remove(path)
  if left:
    logging.warning("removed what failed checkpoint saves left in %s: %s",
                    model_dir, ", ".join(os.path.basename(p) for p in left))
  return left


def newest_intact(model_dir, repair=False):
  """The newest checkpoint of model_dir that reads back whole (None when
  the directory has none).  Damaged newer ones are named in one warning;
  with `repair` (a writer of the run) their files get a ".damaged"
  suffix and the checkpoint state points at the intact one, so training
  resumes from it.

  Raises:
    CheckpointError: there are checkpoints but none is intact.
  """
  damaged = []
  for prefix in _prefixes(model_dir):
    problem = damage(prefix)
    if problem is None:
      break
    damaged.append((prefix, problem))
  else:
    if damaged:
      raise CheckpointError("no intact checkpoint in %s: %s" % (
          model_dir, "; ".join("%s: %s" % (os.path.basename(p), why)
                               for p, why in damaged)))
    return None
  if damaged:
    logging.warning(
        "%s: %s; using %s, the newest intact checkpoint", model_dir,
        "; ".join("%s is damaged: %s (files %s)" % (
            os.path.basename(p), why, ", ".join(
                os.path.basename(f) for f in checkpoint_files(p)))
                  for p, why in damaged), os.path.basename(prefix))
    if repair:
      for bad, _ in damaged:
        for path in checkpoint_files(bad):
          os.replace(path, path + ".damaged")
      kept = [p for p in reversed(_prefixes(model_dir))
              if step_of(p) <= step_of(prefix)]
      tf1.train.update_checkpoint_state(
          model_dir, prefix, all_model_checkpoint_paths=kept)
  return prefix


def _name(var):
  m = re.match("^(.*):\\d+$", var.name)
  return m.group(1) if m else var.name


def original_head_map(checkpoint_prefix_pairs, head_scope):
  """Assignment entries that load an original fine-tuning head into a head.

  Args:
    checkpoint_prefix_pairs: names in the checkpoint, e.g.
      ORIGINAL_CLASSIFIER or ORIGINAL_SQUAD.
    head_scope: the problem head's variable scope, e.g. "my_problem/cls".

  Returns:
    {checkpoint name: graph name}: "output_weights" -> head_scope +
    "/output_weights", and so on.
  """
  return {name: "%s/%s" % (head_scope, name.rsplit("/", 1)[-1])
          for name in checkpoint_prefix_pairs}


def init_from_checkpoint(init_checkpoint, tvars=None, extra_map=None,
                         model_dir=None):
  """Initialises variables from a checkpoint with the original's semantics.

  Trainable variables whose names match a checkpoint name exactly are
  restored; `extra_map` adds {checkpoint name: graph variable name} entries
  (original fine-tuned heads into a problem's head).  Optimizer slots and
  global_step are never taken from it (they are not trainable); variables
  absent from the checkpoint keep their initializers.  Works inside a
  MirroredStrategy model_fn.  When `model_dir` already holds a checkpoint the
  Estimator resumes from it and nothing is done here.

  Returns:
    (restored graph names, graph names left at their initializers).

  Raises:
    ValueError: a matched variable's shape differs from the checkpoint's.
  """
  tvars = tf1.trainable_variables() if tvars is None else tvars
  names = {_name(v): v for v in tvars}
  if model_dir and tf.train.latest_checkpoint(model_dir):
    logging.info("%s has a checkpoint: resuming from it, not from %s",
                 model_dir, init_checkpoint)
    return [], sorted(names)
  ckpt_shapes = dict(tf.train.list_variables(init_checkpoint))
  assignment = {name: name for name in names if name in ckpt_shapes}
  for ckpt_name, graph_name in (extra_map or {}).items():
    if ckpt_name not in ckpt_shapes:
      raise CheckpointError("%s has no variable %s to load into %s" %
                       (init_checkpoint, ckpt_name, graph_name))
    if graph_name not in names:
      raise CheckpointError("the model has no variable %s to load %s of %s into" %
                       (graph_name, ckpt_name, init_checkpoint))
    assignment[ckpt_name] = graph_name
  for ckpt_name, graph_name in assignment.items():
    want = names[graph_name].shape.as_list()
    if list(ckpt_shapes[ckpt_name]) != want:
      raise CheckpointError(
          "%s has shape %s in %s but the model's %s is %s (wrong "
          "bert_config.json, vocab or number of labels?)" %
          (ckpt_name, ckpt_shapes[ckpt_name], init_checkpoint, graph_name,
           want))
  tf1.train.init_from_checkpoint(
      init_checkpoint, {k: names[v] for k, v in assignment.items()})
  restored = sorted(set(assignment.values()))
  missing = sorted(set(names) - set(restored))
  logging.info("init_checkpoint %s: restored %d variables, %d left at their "
               "initializers%s", init_checkpoint, len(restored), len(missing),
               (": " + ", ".join(missing)) if missing else "")
  return restored, missing


# ------------------------------------------------------ HuggingFace import


def _hf_to_tf_name(name):
  """TF checkpoint name and whether to transpose, for one HF tensor name.

  Returns (None, False) for tensors the TF model does not store.
  """
  name = re.sub(r"^bert\.", "", name)
  if name in ("embeddings.position_ids", "cls.predictions.decoder.weight",
              "cls.predictions.decoder.bias"):
    return None, False  # buffers, and the decoder tied to word embeddings
  if name == "cls.predictions.bias":
    return "cls/predictions/output_bias", False
  if name == "cls.seq_relationship.weight":
    return "cls/seq_relationship/output_weights", False  # [2, H] as in TF
  if name == "cls.seq_relationship.bias":
    return "cls/seq_relationship/output_bias", False
  prefix = "" if name.startswith("cls.") else "bert/"
  parts = name.split(".")
  out = []
  for i, part in enumerate(parts):
    if part == "layer" and i + 1 < len(parts) and parts[i + 1].isdigit():
      continue
    if part.isdigit() and i > 0 and parts[i - 1] == "layer":
      out.append("layer_%s" % part)
    else:
      out.append(part)
  leaf = out[-1]
  is_norm = len(out) >= 2 and out[-2] == "LayerNorm"
  transpose = False
  if is_norm:
    out[-1] = {"weight": "gamma", "bias": "beta", "gamma": "gamma",
               "beta": "beta"}[leaf]
  elif out[0] == "embeddings" and leaf == "weight":
    out = out[:-1]  # embeddings.word_embeddings.weight -> word_embeddings
  elif leaf == "weight":
    out[-1] = "kernel"
    transpose = True  # torch Linear stores [out, in]; TF dense is [in, out]
  return prefix + "/".join(out), transpose


def convert_hf(src, dst):
  """HuggingFace BERT (model.safetensors + config.json + vocab.txt) ->
  original-format bert_model.ckpt + bert_config.json + vocab.txt in dst.

  HuggingFace's "gelu" is the erf form, so the written config says
  "gelu_exact"; "gelu_new"/"gelu_pytorch_tanh" become BERT's "gelu".

  Returns:
    the checkpoint prefix dst/bert_model.ckpt.
  """
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  weights_path = os.path.join(src, "model.safetensors")
  config_path = os.path.join(src, "config.json")
  for path in (weights_path, config_path, os.path.join(src, "vocab.txt")):
    if not os.path.exists(path):
      raise FileNotFoundError("convert-hf: %s not found" % path)
  with open(config_path, encoding="utf-8") as f:
    hf = json.load(f)
  if hf.get("model_type", "bert") != "bert":
    raise ValueError("convert-hf: %s is a %r model, not BERT" %
                     (config_path, hf.get("model_type")))
  if hf.get("position_embedding_type", "absolute") != "absolute":
    raise ValueError("convert-hf: only absolute position embeddings exist in "
                     "the original BERT")
  act = {"gelu": "gelu_exact", "gelu_new": "gelu",
         "gelu_pytorch_tanh": "gelu", "relu": "relu",
         "tanh": "tanh"}.get(hf.get("hidden_act", "gelu"))
  if act is None:
    raise ValueError("convert-hf: unsupported hidden_act %r" % hf["hidden_act"])
  eps = hf.get("layer_norm_eps", 1e-12)
  if abs(eps - 1e-12) > 1e-15:
    raise ValueError("convert-hf: layer_norm_eps %g differs from BERT's "
                     "1e-12" % eps)
  config = modeling.BertConfig(
      vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"],
      num_hidden_layers=hf["num_hidden_layers"],
      num_attention_heads=hf["num_attention_heads"],
      intermediate_size=hf["intermediate_size"], hidden_act=act,
      hidden_dropout_prob=hf.get("hidden_dropout_prob", 0.1),
      attention_probs_dropout_prob=hf.get("attention_probs_dropout_prob", 0.1),
      max_position_embeddings=hf.get("max_position_embeddings", 512),
      type_vocab_size=hf.get("type_vocab_size", 2),
      initializer_range=hf.get("initializer_range", 0.02))
  config.validate(vocab_file=os.path.join(src, "vocab.txt"), source=config_path)

  tensors = {}
  for hf_name, value in load_file(weights_path).items():
    tf_name, transpose = _hf_to_tf_name(hf_name)
    if tf_name is None:
      continue
    tensors[tf_name] = np.ascontiguousarray(value.T if transpose else value,
                                            np.float32)
  os.makedirs(dst, exist_ok=True)
  prefix = os.path.join(dst, "bert_model.ckpt")
  write_checkpoint(tensors, prefix)
  config.to_json_file(os.path.join(dst, "bert_config.json"))
  shutil.copyfile(os.path.join(src, "vocab.txt"), os.path.join(dst, "vocab.txt"))
  logging.info("converted %d tensors from %s to %s (hidden_act=%s)",
               len(tensors), src, prefix, act)
  return prefix


def write_checkpoint(tensors, prefix):
  """Writes {name: numpy array} as a TF1 name-based checkpoint at prefix."""
  with tf.Graph().as_default():
    variables = {name: tf1.get_variable(name, initializer=v)
                 for name, v in tensors.items()}
    saver = tf1.train.Saver(var_list=variables)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      saver.save(sess, prefix, write_meta_graph=False)


def read_checkpoint(prefix):
  """{name: numpy array} of every variable in a checkpoint."""
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()}


def write_cast_copy(src, dst, dtypes):
  """Writes at prefix `dst` the variables {name: tf.DType} `dtypes` names,
  with src's values cast to those dtypes (a bfloat16 export's checkpoint:
  its graph's dense kernels are bfloat16 variables).  A name src lacks is a
  CheckpointError naming it."""
  reader = tf.train.load_checkpoint(src)
  missing = sorted(set(dtypes) - set(reader.get_variable_to_shape_map()))
  if missing:
    raise CheckpointError("%s lacks %s, which the graph reads" % (
        src, ", ".join(missing)))
  write_checkpoint({name: reader.get_tensor(name).astype(
      dtype.as_numpy_dtype) for name, dtype in dtypes.items()}, dst)
  return dst


def is_training_only(name):
  return name.endswith(SLOT_SUFFIXES) or name in TRAINING_ONLY_NAMES


def strip_slots(src, dst):
  """Copies a checkpoint without optimizer slots and training counters.

  Returns:
    (names kept, names dropped).
  """
  tensors = read_checkpoint(src)
  kept = {n: v for n, v in tensors.items() if not is_training_only(n)}
  dropped = sorted(set(tensors) - set(kept))
  write_checkpoint(kept, dst)
  return sorted(kept), dropped


# ---------------------------------------------------------- command line

FLAGS = flags.FLAGS
flags.DEFINE_string("src", None, "Source directory (convert-hf) or "
                    "checkpoint prefix (strip-slots).")
flags.DEFINE_string("dst", None, "Destination directory (convert-hf) or "
                    "checkpoint prefix (strip-slots).")

USAGE = ("usage: python -m bert_mtl.checkpoint {convert-hf|strip-slots} "
         "--src=... --dst=...")


def main(argv):
  if len(argv) != 2 or argv[1] not in ("convert-hf", "strip-slots"):
    raise app.UsageError(USAGE)
  if not FLAGS.src or not FLAGS.dst:
    raise app.UsageError("--src and --dst are required\n" + USAGE)
  if argv[1] == "convert-hf":
    print(convert_hf(FLAGS.src, FLAGS.dst))
  else:
    kept, dropped = strip_slots(FLAGS.src, FLAGS.dst)
    print("kept %d variables, dropped %d (%s)" %
          (len(kept), len(dropped), ", ".join(dropped[:5]) +
           (" ..." if len(dropped) > 5 else "")))


if __name__ == "__main__":
  app.run(main)
