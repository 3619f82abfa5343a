"""BERT's AdamWeightDecay optimizer, correct under MirroredStrategy, with
gradient accumulation and loss scaling.

The update is the original's exactly: Adam without bias correction,
epsilon 1e-6, decoupled weight decay 0.01 skipped for names containing
"LayerNorm", "layer_norm" or "bias", global-norm clipping at 1.0, linear
warmup then linear decay counted from step 0, slots `<var>/adam_m` and
`<var>/adam_v`.  What the original got wrong under a distribution strategy
(each replica updated its own copy, the logged loss was the sum) is replaced
by: average the gradients across replicas, clip the average, update every
copy once with the same values.
"""

import re

import tensorflow as tf
from tensorflow.python.client import pywrap_tf_session  # pylint: disable=g-direct-tensorflow-import
# The multi-worker strategy's extended class has no public name.
from tensorflow.python.distribute import collective_all_reduce_strategy  # pylint: disable=g-direct-tensorflow-import

tf1 = tf.compat.v1

DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")


def variable_name(var):
  """A variable's checkpoint name, also for a replica's copy of a mirrored
  variable (whose op is named ".../replica_1")."""
  return re.sub(r"/replica_\d+$", "", var.op.name)


def learning_rate_schedule(init_lr, num_train_steps, num_warmup_steps, step):
  """The original schedule as a float32 scalar Tensor.

  lr = init_lr * step / W during warmup (step < W), else
  init_lr * (1 - min(step, T) / T): the decay counts from step 0, so the
  rate drops from about init_lr to init_lr * (1 - W / T) at step W.
  """
  step = tf.cast(step, tf.int64)
  decayed = tf1.train.polynomial_decay(
      tf.constant(init_lr, tf.float32), step, num_train_steps,
      end_learning_rate=0.0, power=1.0, cycle=False)
  if not num_warmup_steps:
    return decayed
  step_int = tf.cast(step, tf.int32)
  warmup = init_lr * (tf.cast(step_int, tf.float32) / float(num_warmup_steps))
  return tf.where(step_int < num_warmup_steps, warmup, decayed)


def _is_resource(var):
  """Resource variables (TF2 and every strategy's copies) take the fused
  kernel; reference variables (tf.compat.v1.disable_v2_behavior()) have no
  handle and are updated with the same arithmetic in plain ops."""
  try:
    return var.handle is not None
  except AttributeError:
    return False


class AdamWeightDecayOptimizer(tf1.train.Optimizer):
  """The original AdamWeightDecayOptimizer, replica-correct.

  Same constructor, defaults and slots (`<var>/adam_m`, `<var>/adam_v`,
  created at the root scope) as google-research/bert's; `apply_gradients`
  updates with Adam without bias correction plus decoupled weight decay
  and, like the original, does not touch `global_step` (create_optimizer
  increments it).  Unlike the original, under a distribution strategy the
  replicas' gradients are averaged first and every copy of a variable gets
  the same single update (the original let the copies diverge).

  Extensions (keyword only): lr_multipliers {regex over variable names:
  learning-rate factor}, e.g. for a CRF's transitions; update_number, a
  scalar Tensor holding the 1-based number of the update being made, turns
  on Adam's bias correction (as tf.keras' Adam, Model Garden's
  AdamWeightDecay and HuggingFace's AdamW do): without it the first
  updates are up to 1 / sqrt(1 - b2^t) times larger than the learning
  rate, which the original's 10,000 warmup steps hide and short runs
  from random initialisation do not.
  """

  def __init__(self, learning_rate, weight_decay_rate=0.0, beta_1=0.9,
               beta_2=0.999, epsilon=1e-6, exclude_from_weight_decay=None,
               name="AdamWeightDecayOptimizer", *, lr_multipliers=None,
               update_number=None):
    super(AdamWeightDecayOptimizer, self).__init__(False, name)
    self.learning_rate = learning_rate
    self.weight_decay_rate = weight_decay_rate
    self.beta_1 = beta_1
    self.beta_2 = beta_2
    self.epsilon = epsilon
    self.exclude_from_weight_decay = exclude_from_weight_decay
    self.lr_multipliers = [(re.compile(pattern), float(factor)) for
                           pattern, factor in (lr_multipliers or {}).items()]
    self.update_number = update_number

  def _beta_powers(self):
    """(b1^t, b2^t) of update t with bias correction, else (0, 0): the fused
    kernel's step is lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)."""
    if self.update_number is None:
      return tf.constant(0.0), tf.constant(0.0)
    t = tf.cast(self.update_number, tf.float32)
    return tf.pow(self.beta_1, t), tf.pow(self.beta_2, t)

  def _multiplier(self, name):
    for pattern, factor in self.lr_multipliers:
      if pattern.search(name):
        return factor
    return 1.0

  def _do_use_weight_decay(self, param_name):
    """Whether to use L2 weight decay for `param_name`."""
    if not self.weight_decay_rate:
      return False
    if self.exclude_from_weight_decay:
      for r in self.exclude_from_weight_decay:
        if re.search(r, param_name) is not None:
          return False
    return True

  def _get_variable_name(self, param_name):
    """The variable name from the tensor name (without ":0")."""
    m = re.match("^(.*):\\d+$", param_name)
    if m is not None:
      param_name = m.group(1)
    return param_name

  def _slot(self, var, suffix):
    return tf1.get_variable(
        name=variable_name(var) + "/" + suffix, shape=var.shape.as_list(),
        dtype=tf.float32, trainable=False,
        initializer=tf1.zeros_initializer())

  def _update_one(self, var, grad, m, v, apply, beta_powers):
    """Adam step of one variable copy; `apply` False leaves it unchanged;
    `beta_powers` is _beta_powers() of this update (built once for all).

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    var <- var - lr (m / (sqrt(v) + eps) + wd var)  [wd only if decayed]
    Without a skip flag this runs as TensorFlow's fused Adam kernel with
    beta powers 0, i.e. without bias correction, plus the decay term (with
    update_number: the powers of update t, so lr is corrected).
    """
    decay = self._do_use_weight_decay(variable_name(var))
    grad = tf.convert_to_tensor(grad)
    lr = tf.cast(self.learning_rate, var.dtype.base_dtype) * self._multiplier(
        variable_name(var))
    if apply is None and _is_resource(var):
      # var (1 - lr wd) - lr m / (sqrt(v) + eps) is the original's
      # var - lr (m / (sqrt(v) + eps) + wd var): decay in one pass first.
      deps = []
      if decay:
        deps.append(var.assign(var * (1.0 - lr * self.weight_decay_rate),
                               read_value=False))
      beta1_power, beta2_power = beta_powers
      with tf.control_dependencies(deps):
        return tf.raw_ops.ResourceApplyAdam(
            var=var.handle, m=m.handle, v=v.handle,
            beta1_power=beta1_power, beta2_power=beta2_power,
            lr=lr, beta1=tf.constant(self.beta_1),
            beta2=tf.constant(self.beta_2), epsilon=tf.constant(self.epsilon),
            grad=grad)
    # The same arithmetic as the fused kernel, so both paths round alike.
    next_m = m + (grad - m) * (1.0 - self.beta_1)
    next_v = v + (tf.square(grad) - v) * (1.0 - self.beta_2)
    kept = var * (1.0 - lr * self.weight_decay_rate) if decay else var
    step_lr = lr
    if self.update_number is not None:
      beta1_power, beta2_power = beta_powers
      step_lr = lr * tf.sqrt(1.0 - beta2_power) / (1.0 - beta1_power)
    next_param = kept - (next_m * step_lr) / (tf.sqrt(next_v) + self.epsilon)
    if apply is not None:
      next_param = tf.where(apply, next_param, var)
      next_m = tf.where(apply, next_m, m)
      next_v = tf.where(apply, next_v, v)
    return tf.group(var.assign(next_param), m.assign(next_m),
                    v.assign(next_v))

  def apply_gradients(self, grads_and_vars, global_step=None, name=None):
    """The original call: updates every variable with a gradient (None
    gradients are skipped) and returns the grouped op, named `name`.
    `global_step` is accepted and, as in the original, not incremented.

    Inside a replica context with several replicas, the gradients are
    averaged across replicas before the update.
    """
    del global_step  # the original ignores it too
    grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
    context = tf.distribute.get_replica_context()
    if (context is not None and
        tf.distribute.get_strategy().num_replicas_in_sync > 1):
      grads = _mean_across_replicas(context, [g for g, _ in grads_and_vars])
      grads_and_vars = list(zip(grads, [v for _, v in grads_and_vars]))
    return tf.group(self.update(grads_and_vars), name=name)

  def update(self, grads_and_vars, global_step=None, apply=None):
    """Applies gradients that every replica holds identically (already
    averaged and clipped), once per variable copy.

    Args:
      grads_and_vars: list of (gradient, variable); IndexedSlices are
        applied densely (every row's moments decay, as in the original).
      global_step: incremented by one with the update when given.
      apply: optional boolean scalar; False skips the update (accumulation
        boundaries, non-finite fp16 gradients) but still counts the step.

    Returns:
      the update op.
    """
    slots = [(self._slot(v, "adam_m"), self._slot(v, "adam_v"))
             for _, v in grads_and_vars]

    def merge_fn(strategy, grads, apply_flag):
      beta_powers = self._beta_powers()
      updates = []
      for (_, var), grad, (m, v) in zip(grads_and_vars, grads, slots):
        updates.append(strategy.extended.update(
            var, lambda p, g, mm, vv, a: self._update_one(
                p, g, mm, vv, a, beta_powers),
            args=(grad, m, v, apply_flag), group=True))
      if global_step is None:
        return tf.group(*updates)
      with tf.control_dependencies(updates):
        return global_step.assign_add(1)

    grads = [g for g, _ in grads_and_vars]
    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context: no merge needed
      return merge_fn(tf.distribute.get_strategy(), grads, apply)
    return context.merge_call(merge_fn, args=(grads, apply))


def _zeros_if_none(grad, var):
  # Embedding gradients stay IndexedSlices until the update needs them
  # dense: clipping their rows is far cheaper than a [vocab, hidden] tensor.
  return tf.zeros_like(var) if grad is None else grad


def _deduplicate(grad):
  """IndexedSlices with each row once (duplicates summed), so its norm is the
  dense gradient's.  The original clipped raw slices, counting a repeated
  token's rows separately; that made the clip depend on how a batch is split
  and would break micro-batch and replica equivalence."""
  if not isinstance(grad, tf.IndexedSlices):
    return grad
  rows, positions = tf.unique(grad.indices)
  values = tf.math.unsorted_segment_sum(grad.values, positions,
                                        tf.shape(rows)[0])
  return tf.IndexedSlices(values, rows, grad.dense_shape)


def _spans_workers(strategy):
  """True for MultiWorkerMirroredStrategy (collective ops between
  processes), whatever Estimator's distribute coordinator wrapped it in."""
  return isinstance(strategy.extended,
                    collective_all_reduce_strategy.CollectiveAllReduceExtended)


def _mean_across_replicas(context, tensors):
  """Each replica's copy of the mean of `tensors` over replicas.

  A merge_call with batch_reduce_to rather than ReplicaContext.all_reduce,
  whose graph-mode gradient wrapper looks up per-replica variable copies by
  name and fails under an Estimator.
  """
  def merge_fn(strategy, *per_replica):
    return strategy.extended.batch_reduce_to(
        tf.distribute.ReduceOp.MEAN, [(v, v) for v in per_replica])
  return list(context.merge_call(merge_fn, args=tuple(tensors)))


def _all_finite(tensors):
  return tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])


class DynamicLossScale(object):
  """Dynamic loss scaling for float16: multiply the loss by `scale`, divide
  the gradients back; on non-finite gradients skip the step and halve the
  scale; after `growth_interval` finite steps double it."""

  def __init__(self, initial_scale=2.0 ** 15, growth_interval=2000):
    self.scale = tf1.get_variable(
        "loss_scale", initializer=tf.constant(initial_scale, tf.float32),
        trainable=False,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.good_steps = tf1.get_variable(
        "good_steps", initializer=tf.constant(0, tf.int64), trainable=False,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.growth_interval = growth_interval

  def update(self, finite):
    grow = tf.logical_and(finite, self.good_steps + 1 >= self.growth_interval)
    new_scale = tf.where(grow, self.scale * 2.0,
                         tf.where(finite, self.scale,
                                  tf.maximum(self.scale / 2.0, 1.0)))
    new_good = tf.where(tf.logical_and(finite, tf.logical_not(grow)),
                        self.good_steps + 1, tf.zeros_like(self.good_steps))
    return tf.group(self.scale.assign(new_scale),
                    self.good_steps.assign(new_good))


def create_optimizer(loss, init_lr, num_train_steps, num_warmup_steps,
                     use_tpu=False, gradient_accumulation_steps=1,
                     loss_scale=None, weight_decay_rate=0.01, clip_norm=1.0,
                     tvars=None, lr_multipliers=None, bias_correction=False):
  """The train op, as the original create_optimizer, replica-correct.

  Inside a model_fn under MirroredStrategy (or MultiWorkerMirroredStrategy)
  each replica computes gradients of its own mean loss; they are averaged
  across replicas, clipped by global norm, and applied once to every copy.
  The Estimator then logs the mean loss over replicas, not the sum.

  Args:
    loss: scalar float Tensor, the replica's mean loss.
    init_lr, num_train_steps, num_warmup_steps: the schedule, counted in
      optimizer updates.
    use_tpu: accepted for drop-in compatibility; TPUs are not supported.
    gradient_accumulation_steps: N > 1 sums the gradients of N consecutive
      micro-batches per replica and updates once with their mean; global_step
      counts micro-batches, so train for N * num_train_steps steps.
    loss_scale: None, or "dynamic" for float16 training.
    tvars: variables to train (default: all trainable variables).
    lr_multipliers: {regex over variable names: learning-rate factor}.
    bias_correction: Adam's bias correction (AdamWeightDecayOptimizer's
      update_number); False is the original's update.

  Returns:
    the train op (which also increments global_step).
  """
  if use_tpu:
    raise ValueError("TPUs are not supported; use GPUs with MirroredStrategy")
  accumulation = int(gradient_accumulation_steps)
  if accumulation < 1:
    raise ValueError("gradient_accumulation_steps must be >= 1, got %d" %
                     accumulation)
  global_step = tf1.train.get_or_create_global_step()
  update_step = global_step // accumulation
  learning_rate = learning_rate_schedule(init_lr, num_train_steps,
                                         num_warmup_steps, update_step)
  tf1.summary.scalar("learning_rate", learning_rate)
  optimizer = AdamWeightDecayOptimizer(
      learning_rate, weight_decay_rate=weight_decay_rate,
      exclude_from_weight_decay=list(DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY),
      lr_multipliers=lr_multipliers,
      update_number=update_step + 1 if bias_correction else None)
  tvars = tf1.trainable_variables() if tvars is None else tvars
  scaler = DynamicLossScale() if loss_scale == "dynamic" else None
  if loss_scale not in (None, "dynamic"):
    raise ValueError("loss_scale must be None or 'dynamic', got %r" %
                     (loss_scale,))

  scaled_loss = loss * scaler.scale if scaler else loss
  grads = [_zeros_if_none(g, v)
           for g, v in zip(tf.gradients(scaled_loss, tvars), tvars)]
  if scaler:
    grads = [g / scaler.scale for g in grads]

  apply = None
  if accumulation > 1:
    # Per-replica running sums (sync-on-read: each replica keeps its own).
    accumulators = [tf1.get_variable(
        variable_name(v) + "/grad_accum", shape=v.shape.as_list(), dtype=tf.float32,
        trainable=False, initializer=tf1.zeros_initializer(),
        synchronization=tf.VariableSynchronization.ON_READ,
        aggregation=tf.VariableAggregation.SUM) for v in tvars]
    apply = tf.equal((global_step + 1) % accumulation, 0)
    sums = [a + tf.convert_to_tensor(g) for a, g in zip(accumulators, grads)]
    reset = tf.group(*[a.assign(tf.where(apply, tf.zeros_like(s), s))
                       for a, s in zip(accumulators, sums)])
    grads = [s / float(accumulation) for s in sums]
  else:
    reset = tf.no_op()

  strategy = tf.distribute.get_strategy()
  replicas = strategy.num_replicas_in_sync
  context = tf.distribute.get_replica_context()
  if replicas > 1 and context is not None:
    if _spans_workers(strategy):
      # TF 2.15 all-gathers IndexedSlices across workers with a cond that
      # pads unequal lengths, and that path fails with "Shape mismatch in the
      # collective instance" as soon as two workers' batches hold different
      # numbers of tokens; reduce dense gradients there (Horovod's
      # sparse_as_dense).
      grads = [tf.convert_to_tensor(g) for g in grads]
    grads = _mean_across_replicas(context, grads)
    # The Estimator reports the MEAN of the replicas' losses only when it
    # believes an optimizer scaled the loss; ours averages gradients
    # instead, so the mean is the right report.
    tf1.get_default_graph()._is_loss_scaled_by_optimizer = True  # pylint: disable=protected-access

  if scaler:
    grads = [tf.convert_to_tensor(g) for g in grads]
    finite = _all_finite(grads)
    apply = finite if apply is None else tf.logical_and(apply, finite)
    grads = [tf.where(finite, g, tf.zeros_like(g)) for g in grads]
  grads = [_deduplicate(g) for g in grads]
  (grads, global_norm) = tf.clip_by_global_norm(grads, clip_norm=clip_norm)
  tf1.summary.scalar("global_gradient_norm", global_norm)
  train_op = optimizer.update(list(zip(grads, tvars)), global_step,
                              apply=apply)
  ops = [train_op, reset]
  if scaler:
    context = tf.distribute.get_replica_context()
    if context is None:
      ops.append(scaler.update(finite))
    else:
      ops.append(context.merge_call(lambda _, f: scaler.update(f),
                                    args=(finite,)))
  return tf.group(*ops, name="train_op")


def mixed_precision_session_config(mode, session_config=None):
  """Session config enabling Grappler's automatic mixed precision.

  mode "float16": fp16 compute on NVIDIA GPUs (use loss_scale="dynamic");
  "bfloat16": bf16 compute on CPUs through oneDNN; None: unchanged.
  Variables, the optimizer and the loss stay float32 either way.
  """
  from tensorflow.core.protobuf import rewriter_config_pb2  # pylint: disable=g-import-not-at-top
  config = session_config or tf1.ConfigProto()
  options = config.graph_options.rewrite_options
  if mode == "float16":
    options.auto_mixed_precision = rewriter_config_pb2.RewriterConfig.ON
  elif mode == "bfloat16":
    options.auto_mixed_precision_onednn_bfloat16 = (
        rewriter_config_pb2.RewriterConfig.ON)
  elif mode is not None:
    raise ValueError("mixed precision mode must be float16, bfloat16 or None, "
                     "got %r" % (mode,))
  return config


# On CPU, a session's global_jit_level alone clusters nothing: auto-
# clustering of CPU ops also needs TensorFlow's --tf_xla_cpu_global_jit
# flag (without it the trace shows no _XlaRun).  The flag is read when the
# process's first session starts, so it is set at import, before any
# session; it acts only in sessions whose jit level is on (tested).
pywrap_tf_session.TF_SetTfXlaCpuGlobalJit(True)


def xla_session_config(use_xla, session_config=None):
  """Session config with XLA auto-clustering (JIT compilation of the
  model's graph; the tf.data input pipeline is not compiled) when
  `use_xla`; otherwise unchanged."""
  config = session_config or tf1.ConfigProto()
  if use_xla:
    config.graph_options.optimizer_options.global_jit_level = (
        tf1.OptimizerOptions.ON_1)
  return config

