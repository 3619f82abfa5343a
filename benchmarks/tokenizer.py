"""Tokenizer throughput: native FullTokenizer vs HuggingFace and pure Python.

End to end from a list of Python str to id arrays, one thread unless stated,
on the same inputs in the same run:
  * HuggingFace `tokenizers` BertWordPieceTokenizer (Rust), single thread
    (TOKENIZERS_PARALLELISM=false, RAYON_NUM_THREADS=1), ids to one numpy
    array as ours returns them;
  * the pure-Python specification in tests/reference_tokenization.py (same
    algorithm as the original tokenization.py), timed on a 1/20 sample;
  * our encode_batch on 2 threads vs 1.

    python benchmarks/tokenizer.py
"""

import os

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"

import glob  # pylint: disable=g-import-not-at-top,wrong-import-position
import sys

import numpy as np

from common import best_time, data_dir, data_file, row, two_thread_ceiling

from bert_mtl.testing import reference_tokenization as ref  # pylint: disable=g-import-not-at-top
from bert_mtl import tokenization  # pylint: disable=g-import-not-at-top


def chinese_corpus():
  """Real Chinese sentences: sentiment reviews and the PKU gold test."""
  lines = []
  for name in ("sentiment/pos.txt", "sentiment/neg.txt",
               "sighan2005/pku_test_gold.utf8"):
    lines += open(data_file(name), encoding="utf-8").read().splitlines()
  return [l for l in lines if l.strip()]


def english_corpus():
  """Real English prose: the reference documents beside the data and the
  licence of this Python (no English corpus ships in shared/data)."""
  lines = []
  for path in sorted(glob.glob(os.path.join(os.path.dirname(data_dir()),
                                            "reference", "*.md"))):
    lines += open(path, encoding="utf-8").read().splitlines()
  lic = os.path.join(sys.base_prefix, "lib", "python3.11", "LICENSE.txt")
  if os.path.exists(lic):
    lines += open(lic, encoding="utf-8").read().splitlines()
  lines = [l for l in lines if l.strip()]
  return lines * max(1, 60000 // max(1, len(lines)))


def hf_ids(hf, texts):
  encodings = hf.encode_batch(texts, add_special_tokens=False)
  return np.fromiter((i for e in encodings for i in e.ids), np.int32)


def bench(name, texts, vocab_file):
  from tokenizers import BertWordPieceTokenizer  # pylint: disable=g-import-not-at-top
  mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
  ours = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  hf = BertWordPieceTokenizer(vocab_file, lowercase=True, strip_accents=None,
                              clean_text=True, handle_chinese_chars=True)
  vocab = ref.load_vocab(vocab_file)
  sample = texts[::20]
  sample_mb = sum(len(t.encode("utf-8")) for t in sample) / 1e6

  t_ours = best_time(lambda: ours.encode_ragged(texts, num_threads=1))
  t_ours2 = best_time(lambda: ours.encode_ragged(texts, num_threads=2))
  t_batch = best_time(lambda: ours.encode_batch(texts, max_seq_length=128))
  t_batch2 = best_time(lambda: ours.encode_batch(texts, max_seq_length=128,
                                                 num_threads=2))
  t_hf = best_time(lambda: hf_ids(hf, texts), repeats=3)
  t_py = best_time(lambda: [vocab_ids(ref.tokenize(t, vocab, True), vocab)
                            for t in sample], repeats=1) * (mb / sample_mb)
  print("\n== %s: %d texts, %.1f MB UTF-8 (baseline: HF tokenizers, 1 thread)"
        % (name, len(texts), mb))
  print(row("HF BertWordPieceTokenizer (1 thread)", t_hf, t_hf, mb, "MB/s"))
  print(row("pure Python reference (extrapolated)", t_py, t_hf, mb, "MB/s"))
  print(row("bert_mtl encode_ragged (1 thread)", t_ours, t_hf, mb, "MB/s"))
  print(row("bert_mtl encode_batch L=128 (1 thread)", t_batch, t_hf, mb,
            "MB/s"))
  print(row("bert_mtl encode_ragged (2 threads)", t_ours2, t_hf, mb, "MB/s"))
  print(row("bert_mtl encode_batch L=128 (2 threads)", t_batch2, t_hf, mb,
            "MB/s"))
  print("ratios: ours/HF %.1fx, ours/pure-Python %.1fx, 2 threads/1 thread "
        "%.2fx (ragged) %.2fx (batch)" % (t_hf / t_ours, t_py / t_ours,
                                          t_ours / t_ours2,
                                          t_batch / t_batch2))


def vocab_ids(tokens, vocab):
  return [vocab[t] for t in tokens]


def main():
  print("machine: 2 threads vs 1 on GIL-free numpy sorting: %.2fx (the "
        "ceiling for the 2-thread ratios below)" % two_thread_ceiling())
  bench("Chinese (sentiment + PKU gold), Chinese vocab", chinese_corpus(),
        data_file("vocab/chinese_vocab.txt"))
  bench("English prose, MiniLM uncased vocab", english_corpus(),
        data_file("minilm/vocab.txt"))


if __name__ == "__main__":
  main()
