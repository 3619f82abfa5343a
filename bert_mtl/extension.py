"""The C++ extension (bert_mtl._native), loaded on first use: modules that
need it only in some functions (the cache, the record builder, Viterbi)
import without it, so `import bert_mtl.problems` never loads it."""


def native():
  """The bert_mtl._native module."""
  from bert_mtl import _native  # pylint: disable=g-import-not-at-top
  return _native
