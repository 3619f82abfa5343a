"""Evaluation and prediction of a run: the in-graph losses and metrics,
the decoded results (bert_mtl.decoding, the Predictor's path) and each
problem's metrics (its type's), and the one number a problem is judged by."""

import json
import os

import tensorflow as tf

from bert_mtl import checkpoint, decoding, files, problems, progress


def score(name, examples, results, encoder, context):
  """Metrics of one problem's results against its examples' labels.

  context: the data PipelineConfig (target tokenizer, max_target_length)."""
  spec = problems.get(name)
  return spec.kind.score(spec, examples, results, encoder,
                                    context)


def main_metric(name):
  """The key of the one number a problem is judged by ("a@b", a problem
  scored on another's data, is judged like a)."""
  spec = problems.get(name.split("@")[0])
  return spec.kind.metrics[spec.metric]


def _mkdir(path):
  os.makedirs(path, exist_ok=True)
  return path


class Evaluator(object):
  """Evaluates and predicts with a run (an Experiment: its estimator,
  data and settings)."""

  def __init__(self, run):
    self.run = run
    # {(split, global step): the Estimator's metrics of that checkpoint}
    self._graph_metrics = {}

  def remember(self, split, graph_metrics):
    """Keeps the in-graph metrics of an evaluation of `split` (at
    graph_metrics["global_step"]) for evaluate() on the same checkpoint."""
    self._graph_metrics[(split, int(graph_metrics["global_step"]))] = dict(
        graph_metrics)

  def graph_metrics(self, split, checkpoint_path=None):
    """The Estimator's in-graph losses and metrics of `split` at the
    checkpoint (default: the latest), computed once per checkpoint."""
    checkpoint_path = checkpoint_path or self.run.checkpoint_path()
    step = checkpoint.step_of(checkpoint_path)
    if (split, step) in self._graph_metrics:
      return self._graph_metrics[(split, step)]
    input_fn, _, built = self.run.input_fn(
        split, False, self.run.run_config.eval_batch_size)
    metrics = self.run.estimator(model_dir=self.run.results_dir).evaluate(
        input_fn, checkpoint_path=checkpoint_path, hooks=[
            progress.EvalProgressHook("evaluating %s" % split, sum(
                meta["count"] for _, meta in built))])
    self.remember(split, metrics)
    return metrics

  def evaluate(self, split="eval", write=True, checkpoint_path=None):
    """In-graph losses plus sentence-level metrics per problem, and the
    metrics of each eval_on pair (a problem's head scored on another
    problem's data) under "<problem>@<other>".

    Returns:
      {problem: {metric: value}} (and "_graph": the Estimator's metrics).
    """
    # (The Estimator writes its summaries into results_dir even when the
    # results are not written.)
    with self.run.writing("evaluate", self.run.results_dir):
      return self._evaluate(split, write, checkpoint_path)

  def _evaluate(self, split, write, checkpoint_path):
    checkpoint_path = checkpoint_path or self.run.checkpoint_path()
    graph_metrics = self.graph_metrics(split, checkpoint_path)
    results = {"_graph": {k: float(v) for k, v in graph_metrics.items()}}
    for group in self.run.groups:
      if not all(self.run.kind(n).decodes for n in group):
        for name in group:
          results[name] = {k.split("/", 1)[1]: float(v)
                           for k, v in graph_metrics.items()
                           if k.startswith(name + "/")}
        continue
      decoded, features = self.predict_group(group, split,
                                              checkpoint_path=checkpoint_path)
      for name in group:
        results[name] = self._score(name, features, decoded)
        results[name]["loss"] = float(graph_metrics.get(name + "/loss", 0))
        results[name]["global_step"] = int(graph_metrics["global_step"])
    for name, source in sorted(self.run.run_config.eval_on.items()):
      decoded, features = self.predict_group(
          [name], split, {name: source}, checkpoint_path)
      key = "%s@%s" % (name, source)
      results[key] = self._score(name, features, decoded)
      results[key]["global_step"] = int(graph_metrics["global_step"])
    if write:
      self._write_eval_results(results, split)
    return results

  def _score(self, name, features, decoded):
    return score(name, features.examples[name], decoded[name],
                            self.run.encoders[name], self.run.config)

  def predict_group(self, group, split, sources=None, checkpoint_path=None):
    """Decoded predictions of one group's split (decoding's one path, as
    the Predictor), by an Estimator that builds only that group's heads."""
    input_fn, (features,), ((_, meta),) = self.run.input_fn(
        split, False, self.run.run_config.predict_batch_size, groups=[group],
        sources=sources)
    checkpoint_path = checkpoint_path or self.run.checkpoint_path()
    predictions = progress.counted(
        self.run.estimator(predict_problems=group).predict(
            input_fn, yield_single_examples=True,
            checkpoint_path=checkpoint_path),
        "predicting %s (%s)" % ("&".join(group), split), meta["count"])
    entries = {n: self.run.entry(n) for n in group}
    stored = dict(tf.train.list_variables(checkpoint_path))
    states = decoding.decode_states(
        entries, self.run.encoders,
        lambda v: tf.train.load_variable(checkpoint_path, v)
        if v in stored else None)
    decoded = decoding.decode_group(
        group, [e.inputs for e in features.examples[group[0]]],
        decoding.rows_by_example(predictions, group), self.run.encoders,
        entries, features.encodings(), states)
    return decoded, features

  def _write_eval_results(self, results, split):
    lines = []
    root = self.run.results_dir
    with files.writing(root, "evaluation results"):
      for name in [n for n in results if not n.startswith("_")]:
        directory = _mkdir(os.path.join(root, split, name))
        own = []
        for key in sorted(results[name]):
          own.append("%s = %s\n" % (key, results[name][key]))
          lines.append("%s/%s = %s" % (name, key, results[name][key]))
        files.atomic_write(os.path.join(directory, "eval_results.txt"),
                           "".join(own))
      files.atomic_write(os.path.join(root, "eval_results.txt"),
                         "\n".join(lines) + "\n")

  def predict(self, split="predict"):
    """Writes predictions/<problem>.jsonl (input, prediction and, when the
    split has them, gold labels); returns {problem: [result]}."""
    with self.run.writing("predict", self.run.results_dir):
      return self._predict(split)

  def _predict(self, split):
    out = {}
    directory = os.path.join(self.run.results_dir, "predictions")
    with files.writing(directory, "predictions"):
      _mkdir(directory)
    for group in self.run.groups:
      if not all(self.run.kind(n).decodes for n in group):
        continue
      decoded, features = self.predict_group(group, split)
      for name in group:
        out[name] = decoded[name]
        lines = []
        for example, result in zip(features.examples[name], decoded[name]):
          inputs = example.inputs
          record = {"input": "".join(inputs) if isinstance(inputs, list)
                    else inputs, "prediction": result}
          if example.labels is not None:
            record["label"] = example.labels
          lines.append(json.dumps(record, ensure_ascii=False) + "\n")
        path = os.path.join(directory, name + ".jsonl")
        with files.writing(path, "predictions"):
          files.atomic_write(path, "".join(lines))
    return out
