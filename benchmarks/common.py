"""Helpers shared by the benchmark scripts: timing and the real data."""

import os
import time

from bert_mtl.data_dir import require as data_file  # pylint: disable=unused-import
from bert_mtl.data_dir import resolve as data_dir  # pylint: disable=unused-import

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def best_time(fn, repeats=5, min_seconds=0.0):
  """Fastest of `repeats` calls of fn() (seconds); noisy machines make the
  minimum the most repeatable statistic."""
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
    if min_seconds and best > min_seconds:
      break
  return best


def row(name, seconds, baseline_seconds, unit_amount=None, unit=""):
  rate = "" if unit_amount is None else "%10.2f %s" % (unit_amount / seconds,
                                                        unit)
  return "%-44s %10.4f s %s  %8.1fx vs baseline" % (
      name, seconds, rate, baseline_seconds / seconds)


def two_thread_ceiling():
  """Speed-up of 2 threads over 1 on GIL-free numpy work: what this machine's
  two cores can give at best (shared vCPUs often give well under 2x)."""
  import threading  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  data = np.random.default_rng(0).random((1500, 2000))

  def work():
    for _ in range(4):
      np.sort(data, axis=1)

  def serial():
    work()
    work()

  def parallel():
    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
      t.start()
    for t in threads:
      t.join()

  return best_time(serial, repeats=3) / best_time(parallel, repeats=3)
