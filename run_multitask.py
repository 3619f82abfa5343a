"""bert_mtl's command line.

Today it runs the native data path on real corpora: it reads the training
splits of pd98_cws, msra_ner and chn_sentiment through their problem readers
and tokenizes them with the Chinese BERT vocabulary into
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
from bert_mtl import problems
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

# (label, problem) whose training-split texts the job tokenizes.
CORPORA = [
    ("pd98 (People's Daily 1998)", "pd98_cws"),
    ("msra_ner", "msra_ner"),
    ("chn_sentiment", "chn_sentiment"),
]


def problem_texts(name, root):
  """Plain texts of a problem's training split, through its reader."""
  return ["".join(e.inputs) if isinstance(e.inputs, list) else e.inputs
          for e in problems.read(name, "train", root)]


def main(argv):
  del argv
  vocab_file = FLAGS.vocab_file or data_dir.require(
      "vocab/chinese_vocab.txt", FLAGS.data_dir)
  tokenizer = tokenization.FullTokenizer(vocab_file, FLAGS.do_lower_case)
  logging.info("vocab %s: %d entries", vocab_file, len(tokenizer.vocab))
  total_chars = total_sentences = 0
  total_seconds = 0.0
  for name, problem_name in CORPORA:
    sentences = problem_texts(problem_name, data_dir.resolve(FLAGS.data_dir))
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
