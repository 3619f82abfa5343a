"""The problem chain grammar and the sampling of `|` groups.

`a&b|c&d|e`: `&` joins problems trained on the same examples (identical
inputs, every label set carried by each example); `|` joins groups with
different inputs, one group sampled per training instance.
"""

import numpy as np

from bert_mtl.problems import registry
from bert_mtl.errors import DataError

STRATEGIES = ("uniform", "proportional", "temperature", "annealed", "weights")


def parse(chain):
  """Groups of problem names: "a & b | c" -> [["a", "b"], ["c"]].

  Raises:
    ValueError: empty chain or member, unknown or repeated problem, or a
      group mixing pretrain with other problems' inputs.
  """
  if not chain or not chain.strip():
    raise ValueError("the problem chain is empty")
  groups, seen = [], set()
  for group_text in chain.split("|"):
    group = []
    for name in (n.strip() for n in group_text.split("&")):
      if not name:
        raise ValueError("empty problem name in chain %r" % chain)
      registry.get(name)  # raises for unknown names, listing known ones
      if name in seen:
        raise ValueError("problem %r appears twice in chain %r" % (name,
                                                                   chain))
      seen.add(name)
      group.append(name)
    groups.append(group)
  return groups


def check_same_inputs(group, examples_by_problem):
  """Raises DataError at the first example whose inputs differ between the
  `&`-joined problems of a group (or whose counts differ)."""
  first = group[0]
  reference = examples_by_problem[first]
  for name in group[1:]:
    other = examples_by_problem[name]
    for i, (a, b) in enumerate(zip(reference, other)):
      if a.inputs != b.inputs:
        raise DataError(
            "example %d differs from problem %s's (%r... vs %r...); '&' joins "
            "problems with identical inputs, use '|' otherwise" %
            (i, first, _preview(b.inputs), _preview(a.inputs)), name, b.path,
            b.line)
    if len(reference) != len(other):
      raise DataError("%d examples but problem %s has %d; '&' needs the same "
                      "examples" % (len(other), first, len(reference)), name)


def _preview(inputs):
  text = "".join(inputs) if isinstance(inputs, (list, tuple)) else inputs
  return str(text)[:20]


def group_probabilities(sizes, strategy="proportional", temperature=2.0,
                        weights=None, progress=0.0):
  """Probability of drawing each group for the next training instance.

  Args:
    sizes: examples per group.
    strategy: "uniform"; "proportional" (to size); "temperature" (p ~
      n^(1/T)); "annealed" (Stickland & Murray 2019: p ~ n^alpha with alpha
      going from 1 to 0.2 as `progress` goes from 0 to 1); "weights"
      (explicit, normalised).
    progress: fraction of training done, for "annealed".

  Returns:
    float64 numpy array summing to 1.
  """
  sizes = np.asarray(sizes, np.float64)
  if (sizes <= 0).any():
    raise ValueError("every group needs examples, got sizes %s" % sizes)
  if strategy == "uniform":
    p = np.ones_like(sizes)
  elif strategy == "proportional":
    p = sizes
  elif strategy == "temperature":
    if temperature <= 0:
      raise ValueError("temperature must be positive, got %r" % temperature)
    p = sizes ** (1.0 / temperature)
  elif strategy == "annealed":
    alpha = 1.0 - 0.8 * min(max(progress, 0.0), 1.0)
    p = sizes ** alpha
  elif strategy == "weights":
    if weights is None or len(weights) != len(sizes):
      raise ValueError("strategy 'weights' needs one weight per group (%d), "
                       "got %r" % (len(sizes), weights))
    p = np.asarray(weights, np.float64)
    if (p < 0).any() or not p.sum() > 0:
      raise ValueError("group weights must be >= 0 and not all 0: %r" %
                       (weights,))
  else:
    raise ValueError("unknown sampling strategy %r (one of %s)" %
                     (strategy, ", ".join(STRATEGIES)))
  return p / p.sum()


def sample_groups(sizes, num_instances, seed, strategy="proportional",
                  chunk=1024, **kwargs):
  """Deterministic sequence of group ids for `num_instances` instances.

  The same seed gives the same sequence on every worker and replica.  For
  "annealed" the probabilities are recomputed every `chunk` instances.
  """
  rng = np.random.default_rng(seed)
  out = np.empty(num_instances, np.int64)
  for start in range(0, num_instances, chunk):
    end = min(num_instances, start + chunk)
    p = group_probabilities(sizes, strategy,
                            progress=start / max(1, num_instances), **kwargs)
    out[start:end] = rng.choice(len(sizes), size=end - start, p=p)
  return out

