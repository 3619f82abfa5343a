"""The windows of a labelled unit sequence as plain numpy, the statement
the records (built natively) are checked against."""

from bert_mtl.data.features import token_labels, window_spans


def seq_tag_windows(alignment, label_ids, max_seq_length, stride=None):
  """Features of one labelled unit sequence, one per window.

  Args:
    alignment: UnitAlignment of the example.
    label_ids: int label id per unit (or None for prediction).
    max_seq_length: including [CLS] and [SEP].
    stride: tokens between window starts (default half a window).

  Returns:
    list of (Window, token label ids with IGNORE, int32 [window length]).
  """
  labels = token_labels(alignment, label_ids)
  return [(w, labels[w.start:w.end])
          for w in window_spans(len(alignment.ids), max_seq_length, stride)]
