"""The problem types, registered by name: one module per type.

    from bert_mtl import types

    class MyType(types.ProblemType):
      name = "my_type"
      ...

    types.register(MyType())

registers a type; `@problem("my_problem", "my_type")` then uses it, and
nothing else in the library changes.
"""

import collections

from bert_mtl.types.base import ProblemType, is_text, is_units

_TYPES = collections.OrderedDict()


def register(problem_type):
  """Registers a ProblemType instance under its name; returns it."""
  if not isinstance(problem_type, ProblemType):
    raise TypeError("register takes a ProblemType instance, not %r" %
                    (problem_type,))
  if not problem_type.name or problem_type.head is None:
    raise ValueError("a problem type needs a name and a head")
  if problem_type.name in _TYPES:
    raise ValueError("problem type %r is registered twice" %
                     problem_type.name)
  _TYPES[problem_type.name] = problem_type
  return problem_type


def get(name):
  try:
    return _TYPES[name]
  except KeyError:
    raise ValueError("unknown problem type %r (one of %s)" % (
        name, ", ".join(_TYPES))) from None


def names():
  return list(_TYPES)


# The built-in types (each module registers its own).
from bert_mtl.types import cls  # pylint: disable=g-import-not-at-top,wrong-import-position
from bert_mtl.types import multi_cls  # pylint: disable=g-import-not-at-top,wrong-import-position
from bert_mtl.types import regression  # pylint: disable=g-import-not-at-top,wrong-import-position
from bert_mtl.types import seq_tag  # pylint: disable=g-import-not-at-top,wrong-import-position
from bert_mtl.types import seq2seq  # pylint: disable=g-import-not-at-top,wrong-import-position
from bert_mtl.types import pretrain  # pylint: disable=g-import-not-at-top,wrong-import-position
