"""Whether the other tasks of a cluster answer (standard library only:
the watcher process of cluster.watch_peers_start imports it without
TensorFlow)."""

import socket
import time


def reachable(address, timeout=2.0):
  host, _, port = address.rpartition(":")
  try:
    socket.create_connection((host, int(port)), timeout=timeout).close()
    return True
  except OSError:
    return False


def unanswered_peers(peer_list, timeout_secs, interval_secs=1.0,
                     alive=lambda: True):
  """[(task name, address)] of `peer_list` that did not answer once within
  timeout_secs ([] when all did, or when `alive()` turned False)."""
  waiting = dict(peer_list)
  start = time.time()
  while waiting and alive():
    for name, address in list(waiting.items()):
      if reachable(address, timeout=min(2.0, interval_secs)):
        del waiting[name]
    if waiting and time.time() - start >= timeout_secs:
      return sorted(waiting.items())
    time.sleep(interval_secs if waiting else 0)
  return []


def peers_report(missing, timeout_secs):
  return ("multi-worker training cannot start: %s never answered within "
          "%.0f s (--worker_timeout_secs); check TF_CONFIG's addresses and "
          "that every worker was started" % (", ".join(
              "%s at %s" % (n, a) for n, a in missing), timeout_secs))
