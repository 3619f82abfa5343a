"""Settings of a Python process that builds and runs large TF1 graphs."""

import gc

# Objects between young-generation collections (Python's default: 700).
YOUNG_COLLECTION_THRESHOLD = 100000


def collect_garbage_less_often():
  """Raises the garbage collector's thresholds.

  A TF1 graph of a multi-problem model is millions of Python objects, and
  with the default thresholds the collector walks them again and again
  while graphs are built, exported and re-loaded: in the six-problem chain
  of benchmarks/README.md, 5:17 with the defaults, 4:34 with these (the
  best export 49 s -> 26 s), the same numbers.  Reference cycles are
  still collected, less often.
  """
  gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, 50, 1000)
