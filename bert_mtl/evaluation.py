"""Decoded results -> each problem's metrics (its type's), and the one
number a problem is judged by."""

from bert_mtl import problems, types


def score(name, examples, results, encoder, context):
  """Metrics of one problem's results against its examples' labels.

  context: the data PipelineConfig (target tokenizer, max_target_length)."""
  spec = problems.get(name)
  return types.get(spec.type).score(spec, examples, results, encoder,
                                    context)


def main_metric(name):
  """The key of the one number a problem is judged by ("a@b", a problem
  scored on another's data, is judged like a)."""
  spec = problems.get(name.split("@")[0])
  return types.get(spec.type).metrics[spec.metric]
