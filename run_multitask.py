"""bert_mtl's command line.

Today it runs the native data path on real corpora: it tokenizes People's
Daily, MSRA NER and the sentiment reviews with the Chinese BERT vocabulary into
model inputs (input_ids / input_mask / segment_ids / character spans) and
reports throughput and how many sentences exceed max_seq_length.  Training,
evaluation, export and prediction arrive with the model, data and head
modules (issues #3-#6) and will be driven by the same flags.

    python run_multitask.py [--data_dir=DIR] [--max_seq_length=128]
"""

import time

from absl import app
from absl import flags
from absl import logging

from bert_mtl import data_dir
from bert_mtl import tokenization

FLAGS = flags.FLAGS

flags.DEFINE_string("data_dir", None,
                    "Directory of the real corpora (default: $%s or "
                    "../shared/data)." % data_dir.ENV_VAR)
flags.DEFINE_string("vocab_file", None,
                    "WordPiece vocab.txt (default: the Chinese BERT vocab in "
                    "the data directory).")
flags.DEFINE_bool("do_lower_case", True, "Lower-case and strip accents.")
flags.DEFINE_integer("max_seq_length", 128,
                     "Sequence length after WordPiece, [CLS] and [SEP].")
flags.DEFINE_integer("num_threads", 2, "Tokenizer threads.")

CORPORA = [
    ("pd98 (People's Daily 1998)", "pd98/pos_199801.txt"),
    ("msra_ner", "msra_ner/msra_train.txt"),
    ("chn_sentiment (positive)", "sentiment/pos.txt"),
    ("chn_sentiment (negative)", "sentiment/neg.txt"),
]


def read_sentences(path):
  """Plain text of a corpus file, one sentence or paragraph per entry."""
  with open(path, encoding="utf-8") as f:
    raw = f.read()
  if "msra" in path:  # one "CHAR TAG" a line, blank line between sentences
    sentences = []
    for block in raw.replace("\r", "").split("\n\n"):
      chars = [line.split(" ")[0] for line in block.split("\n") if line]
      if chars:
        sentences.append("".join(chars))
    return sentences
  if "pos_199801" in path:  # word/TAG separated by two spaces
    return ["".join(tok.rsplit("/", 1)[0] for tok in line.split())
            for line in raw.split("\n") if line.strip()]
  return [line for line in raw.split("\n") if line.strip()]


def main(argv):
  del argv
  vocab_file = FLAGS.vocab_file or data_dir.require(
      "vocab/chinese_vocab.txt", FLAGS.data_dir)
  tokenizer = tokenization.FullTokenizer(vocab_file, FLAGS.do_lower_case)
  logging.info("vocab %s: %d entries", vocab_file, len(tokenizer.vocab))
  total_chars = total_sentences = 0
  total_seconds = 0.0
  for name, relative in CORPORA:
    sentences = read_sentences(data_dir.require(relative, FLAGS.data_dir))
    start = time.perf_counter()
    features = tokenizer.encode_batch(sentences, max_seq_length=FLAGS.max_seq_length,
                                      num_threads=FLAGS.num_threads)
    seconds = time.perf_counter() - start
    chars = sum(len(s) for s in sentences)
    pieces = features["num_pieces"][:, 0]
    too_long = int((pieces > FLAGS.max_seq_length - 2).sum())
    print("%-28s %7d sentences %9d chars  %6.3f s  %9.0f sentences/s  "
          "%5.1f M chars/s  %5.1f%% longer than %d pieces" %
          (name, len(sentences), chars, seconds, len(sentences) / seconds,
           chars / seconds / 1e6, 100.0 * too_long / len(sentences),
           FLAGS.max_seq_length - 2))
    total_chars += chars
    total_sentences += len(sentences)
    total_seconds += seconds
  print("total: %d sentences, %.1f M chars in %.2f s (%.1f M chars/s, %d "
        "threads)" % (total_sentences, total_chars / 1e6, total_seconds,
                      total_chars / total_seconds / 1e6, FLAGS.num_threads))
  example = "我爱北京天安门。Hello, BERT!"
  print("example: %r -> %s" % (example, tokenizer.tokenize(example)))


if __name__ == "__main__":
  app.run(main)
