"""Where the real corpora live: a flag, else BERT_MTL_DATA_DIR, else
../shared/data beside the repository (a developer checkout).  Files missing
there that are published on the package index are downloaded and verified
into the user cache (bert_mtl.problems.download)."""

import os

ENV_VAR = "BERT_MTL_DATA_DIR"
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def resolve(flag_value=None):
  """The data directory to use; it may not exist (callers report that)."""
  return (flag_value or os.environ.get(ENV_VAR) or
          os.path.join(os.path.dirname(_REPO), "shared", "data"))


def require(relative, flag_value=None):
  """Path of `relative` under the data directory, or a clear error."""
  root = resolve(flag_value)
  path = os.path.join(root, relative)
  if not os.path.exists(path):
    from bert_mtl.problems import download  # pylint: disable=g-import-not-at-top
    if relative in download.SOURCES:
      return download.ensure(relative)
    raise FileNotFoundError(
        "%s not found under the data directory %s; pass --data_dir or set %s"
        % (relative, root, ENV_VAR))
  return path
