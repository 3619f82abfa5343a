"""Problems: registry, chain grammar, label encoders and the predefined
corpora (importing this package registers them)."""

from bert_mtl.problems import corpora  # pylint: disable=unused-import
from bert_mtl.problems import glue  # pylint: disable=unused-import
from bert_mtl.problems.chain import group_probabilities, parse, sample_groups
from bert_mtl.errors import DataError
from bert_mtl.labels import LabelEncoder, scheme_misfit
from bert_mtl.problems.registry import Example, get, names, problem, read
