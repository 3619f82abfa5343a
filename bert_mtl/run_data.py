"""A run's data: its tokenizer's pipeline settings, its splits (each read
once), label maps, input forms, cached features and input_fns."""

from bert_mtl import checkpoint, decoding, problems
from bert_mtl.data import dataset


class RunData(object):
  """The data side of one run.

  Args:
    run_config: the run's RunConfig (the Experiment's: it sets
      num_train_steps when training decides them).
    tokenizer: the run's FullTokenizer.
    groups: the parsed chain.
    directory: the RunDirectory (saved label maps and input forms).
  """

  def __init__(self, run_config, tokenizer, groups, directory):
    self.run_config = run_config
    self.groups = groups
    self.names = [n for g in groups for n in g]
    self.directory = directory
    self.config = dataset.make_config(
        tokenizer, run_config.data_dir, run_config.max_seq_length,
        run_config.cache_dir, **{k: getattr(run_config, k) for k in (
            "num_shards", "max_examples", "num_threads", "max_target_length",
            "pretrain", "num_processes", "seed")})
    self.read = dataset.SplitReader(self.config.data_dir)
    self._encoders = None
    self._inputs = None

  @property
  def encoders(self):
    """Label maps: loaded from output_dir, else fitted on training data."""
    if self._encoders is None:
      self._encoders = (self.directory.load_encoders(self.names) or
                        dataset.fit_label_encoders(self.groups, self.config,
                                                   self.read))
    return self._encoders

  @property
  def inputs(self):
    """{problem: input form}: "text", "document" or a unit kind; saved,
    else from the training split."""
    if self._inputs is None:
      self._inputs = self.directory.load_inputs()
      for name in self.names:
        if name not in self._inputs:
          kind = problems.get(name).kind
          self._inputs[name] = (
              "document" if kind.inputs == "document" else
              decoding.input_form(self.read(name, "train")))
    return self._inputs

  def group_features(self, split, groups=None, sources=None):
    return [dataset.GroupFeatures(g, split, self.config, self.encoders,
                                  sources, self.read)
            for g in groups or self.groups]

  def input_fn(self, split, training, batch_size, num_replicas=1,
               groups=None, sources=None):
    """(input_fn, [GroupFeatures], [(shards, meta)]) of a split."""
    groups = groups or self.groups
    built_groups = self.group_features(split, groups, sources)
    built = [g.build() for g in built_groups]
    sizes = [meta["count"] for _, meta in built]
    config = self.run_config
    horizon = {}
    if training and config.num_train_steps:
      # The sampler's schedule spans the run's real length ("annealed"
      # anneals over it), and a resumed run continues it where it stopped.
      batch = config.train_batch_size
      horizon = {"num_instances": int(config.num_train_steps) * batch,
                 "first_instance": (checkpoint.latest_step(
                     self.directory.output_dir) or 0) * batch}
    fn = dataset.make_input_fn(
        groups, [shards for shards, _ in built], self.encoders, batch_size,
        training, num_replicas=num_replicas, seed=config.seed,
        strategy=config.sampling, sizes=sizes,
        bucket_boundaries=[b for b in config.bucket_boundaries
                           if b < config.max_seq_length] or None,
        max_seq_length=config.max_seq_length,
        max_predictions_per_seq=self.config.pretrain.max_predictions_per_seq,
        all_problems=self.names, **horizon, **self._sampling_kwargs())
    return fn, built_groups, built

  def _sampling_kwargs(self):
    strategy = self.run_config.sampling
    if strategy == "temperature":
      return {"temperature": self.run_config.sampling_temperature}
    if strategy == "weights":
      return {"weights": self.run_config.sampling_weights}
    return {}

  def num_train_records(self):
    return sum(g.build()[1]["count"] for g in self.group_features("train"))
