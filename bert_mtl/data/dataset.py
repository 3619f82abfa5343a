"""Problem groups -> cached TFRecords -> the Estimator input_fn, in three
modules this one gathers (`dataset.X` is the API the run, the tests and
the benchmarks use):

  examples   pipeline settings, splits read once, subsets, label maps;
  records    a group's records, their cache key, the writer processes;
  input_fn   parsing, mixing the groups, batching.

One group (`a&b`) shares inputs: each record carries the labels of every
problem of its group.  Records of different groups (`|`) are mixed by the
sampling strategy, and every problem absent from a record gets zero labels
and `<problem>_present = 0`, so its head gives it no loss.
"""

# pylint: disable=unused-import
from bert_mtl.config import PretrainConfig
from bert_mtl.data.examples import (PipelineConfig, SplitReader,
                                    fit_label_encoders, make_config,
                                    read_examples, subset, subset_indices)
from bert_mtl.data.input_fn import (filler_batch, make_input_fn,
                                    whole_steps)
from bert_mtl.data.records import GroupFeatures, type_digest
