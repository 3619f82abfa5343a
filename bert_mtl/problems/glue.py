"""The classification tasks of google-research/bert's run_classifier.py,
reading the same TSV files, so `--problems=mrpc` replaces that script.

Files live under <data_dir>/<TASK>/ (CoLA, MRPC, MNLI, XNLI, STS-B) as the
GLUE and XNLI downloads lay them out.  predict reads the unlabeled test
files.  STS-B (a similarity score from 0 to 5 per sentence pair) is a
`regression` problem.
"""

import os

from bert_mtl.problems.corpora import lines_of
from bert_mtl.errors import DataError
from bert_mtl.problems.registry import Example, problem


def tsv_rows(path, skip_header):
  for number, text in lines_of(path):
    if skip_header and number == 1:
      continue
    if text:
      yield number, text.split("\t")


def field(row, index, path, number):
  try:
    return row[index]
  except IndexError:
    raise DataError("expected at least %d tab-separated columns, got %d" %
                    (index + 1 if index >= 0 else -index, len(row)),
                    path=path, line=number) from None


def glue_reader(task, files, columns, skip_header=True, keep=None):
  """A reader of one GLUE-style task.

  files: {split: file name}; columns: {split: (text_a, text_b, label)}
  column indices (text_b None: single sentence; label None: unlabeled);
  skip_header: bool or {split: bool}; keep(split, row): rows to use.
  """
  def read(split, data_dir):
    path = os.path.join(data_dir, task, files[split])
    header = skip_header[split] if isinstance(skip_header, dict) else \
        skip_header
    a_col, b_col, label_col = columns[split]
    for number, row in tsv_rows(path, header):
      if keep is not None and not keep(split, row):
        continue
      a = field(row, a_col, path, number)
      inputs = a if b_col is None else (a, field(row, b_col, path, number))
      labels = None if label_col is None else field(row, label_col, path,
                                                    number)
      if labels == "contradictory":  # XNLI's training files' spelling
        labels = "contradiction"
      yield Example(inputs, labels, path, number)
  return read


def _splits(train_eval, predict):
  return {"train": train_eval, "eval": train_eval, "predict": predict}


problem("cola", "cls", source="CoLA/{train,dev,test}.tsv")(glue_reader(
    "CoLA", {"train": "train.tsv", "eval": "dev.tsv", "predict": "test.tsv"},
    _splits((3, None, 1), (1, None, None)),
    skip_header={"train": False, "eval": False, "predict": True}))

problem("mrpc", "cls", source="MRPC/{train,dev,test}.tsv")(glue_reader(
    "MRPC", {"train": "train.tsv", "eval": "dev.tsv", "predict": "test.tsv"},
    _splits((3, 4, 0), (3, 4, None))))

problem("mnli", "cls", source="MNLI/{train,dev_matched,test_matched}.tsv")(
    glue_reader("MNLI", {"train": "train.tsv", "eval": "dev_matched.tsv",
                         "predict": "test_matched.tsv"},
                _splits((8, 9, -1), (8, 9, None))))

problem("xnli", "cls", source="XNLI/{multinli.train.zh,xnli.dev}.tsv")(
    glue_reader("XNLI", {"train": "multinli.train.zh.tsv",
                         "eval": "xnli.dev.tsv", "predict": "xnli.dev.tsv"},
                {"train": (0, 1, 2), "eval": (6, 7, 1),
                 "predict": (6, 7, None)},
                keep=lambda split, row: split == "train" or row[0] == "zh"))

problem("stsb", "regression", source="STS-B/{train,dev,test}.tsv")(
    glue_reader("STS-B", {"train": "train.tsv", "eval": "dev.tsv",
                          "predict": "test.tsv"},
                _splits((7, 8, 9), (7, 8, None))))
