"""Fused training ops (csrc/tf_ops/fused_ops.cc) with their gradients.

`gelu` and `dropout` run the op library's single-pass kernels.  modeling
uses them in training graphs when `available()` and the run asks for them
(RunConfig.fused_ops); their core-ops twins (modeling.gelu, tf.nn.dropout)
build every PREDICT graph, exports included, and run when the library
cannot load (said once in the log).  setup.py builds the library against
the installed TensorFlow.

Numerics: both run their arithmetic in float32.  Dropout draws its keep mask
from a counter-based hash of (seed, element index), not TensorFlow's
generator, so fused and core runs see different (equally distributed)
masks.
"""

import importlib.machinery
import os

from absl import logging
import tensorflow as tf


def _library_path():
  """bert_mtl/_fused_ops<extension suffix> as setup.py builds it."""
  here = os.path.dirname(os.path.abspath(__file__))
  for suffix in importlib.machinery.EXTENSION_SUFFIXES:
    path = os.path.join(here, "_fused_ops" + suffix)
    if os.path.exists(path):
      return path
  return os.path.join(here, "_fused_ops.so")


LIBRARY = _library_path()

_state = {}


def library():
  """The loaded op library's module, or None (logged once) when it cannot
  load."""
  if "module" not in _state:
    try:
      _state["module"] = tf.load_op_library(LIBRARY)
    except (tf.errors.NotFoundError, OSError) as e:
      _state["module"] = None
      logging.warning("fused training ops unavailable (%s): core "
                      "TensorFlow ops instead", str(e).splitlines()[0])
  return _state["module"]


def available():
  """Whether training graphs can use the fused ops: the library loads and
  no GPU is visible (its kernels are CPU kernels; on a GPU the core ops
  stay on the device)."""
  if "gpu" not in _state:
    _state["gpu"] = bool(tf.config.list_physical_devices("GPU"))
  return not _state["gpu"] and library() is not None


def gelu(x):
  """BERT's tanh GELU of float32 or bfloat16 `x` (any shape) in one pass;
  twin: modeling.gelu.  Needs available()."""
  return library().bert_mtl_gelu(x)


def dropout(x, rate, seed=None):
  """x with each element zeroed with probability `rate` (a Python float in
  [0, 1)) and the rest scaled by 1 / (1 - rate), in one pass; twin:
  tf.nn.dropout.  seed: int64 scalar of the keep mask (default: a fresh
  draw of TensorFlow's generator each time the graph runs, so the graph's
  seed still decides the sequence of masks).  Needs available()."""
  if seed is None:
    seed = tf.random.uniform([], maxval=tf.int64.max, dtype=tf.int64)
  return library().bert_mtl_dropout(x, seed, rate=float(rate))


@tf.RegisterGradient("BertMtlDropout")
def _dropout_grad(op, dy):
  # The same mask (same seed and rate) scales the gradient.
  return (library().bert_mtl_dropout(dy, op.inputs[1],
                                     rate=op.get_attr("rate")), None)


@tf.RegisterGradient("BertMtlGelu")
def _gelu_grad(op, dy):
  return library().bert_mtl_gelu_grad(dy, op.inputs[0])
