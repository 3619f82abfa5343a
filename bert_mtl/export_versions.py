"""The version directories of an export base: a version appears complete or
not at all.

TF Serving serves the highest all-digit child of a model's base path, and
so does Predictor(<base>).  An export is therefore built in a staging
directory whose name is not a number (TF Serving ignores it:
".staging-<host>-<pid>-<hex>"), verified, and renamed to a new version
number under a lock on the base, so a killed or failed export leaves no
version, two exports never get the same one, and the next export removes
what a dead exporter left.  A reader takes the newest version that passes
`verify` and says which ones it skipped.
"""

import contextlib
import json
import os
import shutil
import socket
import time
import uuid

from absl import logging

from bert_mtl import export_assets, files

STAGING_PREFIX = ".staging-"
LOCK_FILE = ".export.lock"
# What exports of earlier versions of this code could leave behind: the
# Estimator's own temporary directories, and the text-signature rewrite's.
LEGACY_LEFTOVERS = ("temp-",)
LEGACY_SUFFIXES = (".text", ".ids")


class ExportError(ValueError):
  """An export directory that is not a complete export (says why)."""


def _locked(base):
  return files.exclusive_lock(os.path.join(base, LOCK_FILE))


def _alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _stale(name):
  """True for a leftover of a dead exporter on this host."""
  if name.startswith(LEGACY_LEFTOVERS) or (name.endswith(LEGACY_SUFFIXES) and
                                          name.split(".")[0].isdigit()):
    return True
  if not name.startswith(STAGING_PREFIX):
    return False
  # STAGING_PREFIX + host-pid-hex (a host name may hold "-")
  host, _, pid = name[len(STAGING_PREFIX):].rpartition("-")[0].rpartition(
      "-")
  if not pid.isdigit():
    return False
  pid = int(pid)
  return host == socket.gethostname() and not _alive(pid)


def clean(base):
  """Removes what dead exporters on this host left in `base`; returns the
  names removed.  Call it holding the lock."""
  removed = []
  for name in sorted(os.listdir(base)):
    path = os.path.join(base, name)
    if os.path.isdir(path) and _stale(name):
      shutil.rmtree(path, ignore_errors=True)
      removed.append(name)
  if removed:
    logging.warning("removed what earlier exports left unfinished in %s: "
                    "%s", base, ", ".join(removed))
  return removed


@contextlib.contextmanager
def staging(base):
  """A new staging directory in `base` (created), removed on exit."""
  os.makedirs(base, exist_ok=True)
  with _locked(base):
    clean(base)
  path = os.path.join(base, "%s%s-%d-%s" % (
      STAGING_PREFIX, socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8]))
  os.mkdir(path)
  try:
    yield path
  finally:
    shutil.rmtree(path, ignore_errors=True)


def publish(source, base):
  """Renames the verified SavedModel directory `source` (on base's file
  system) to a new version of `base`: the current time in seconds, or one
  more than the highest version there.  Returns the version's path."""
  with _locked(base):
    versions = [int(n) for n in os.listdir(base) if n.isdigit()]
    version = max([int(time.time())] + [v + 1 for v in versions])
    target = os.path.join(base, str(version))
    os.rename(source, target)
  descriptor = os.open(base, os.O_RDONLY)
  try:
    os.fsync(descriptor)  # the rename itself reaches the disk
  finally:
    os.close(descriptor)
  return target


def signature_names(export_dir):
  """The signatures in export_dir's saved_model.pb (read without loading
  the model)."""
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
  model = saved_model_pb2.SavedModel()
  path = os.path.join(export_dir, "saved_model.pb")
  try:
    with open(path, "rb") as f:
      model.ParseFromString(f.read())
  except (OSError, ValueError) as e:
    raise ExportError("%s cannot be read: %s" % (path, e)) from None
  names = set()
  for meta_graph in model.meta_graphs:
    names.update(n for n in meta_graph.signature_def
                 if not n.startswith("__"))  # (__saved_model_init_op)
  return names


def verify(export_dir):
  """Raises ExportError unless export_dir is a complete export: its
  assets pass export_assets.read's checks and saved_model.pb has every
  signature its manifest lists."""
  if not os.path.exists(os.path.join(export_dir, "saved_model.pb")):
    raise ExportError("%s has no saved_model.pb" % export_dir)
  try:
    manifest = export_assets.read(export_dir).manifest
  except export_assets.AssetError as e:
    raise ExportError(str(e)) from None
  missing = sorted(set(manifest.get("signatures", [])) -
                   signature_names(export_dir))
  if missing:
    raise ExportError("%s lacks the signatures its manifest lists: %s" % (
        export_dir, ", ".join(missing)))


def newest(base):
  """The newest complete version of `base` (an all-digit child that
  passes `verify`); each newer one that does not is logged and skipped.

  Raises:
    ExportError: there is none.
  """
  versions = sorted((n for n in os.listdir(base) if n.isdigit() and
                     os.path.isdir(os.path.join(base, n))), key=int,
                    reverse=True)
  for name in versions:
    path = os.path.join(base, name)
    try:
      verify(path)
    except ExportError as e:
      logging.warning("skipped export %s: %s", path, e)
      continue
    return path
  raise ExportError("%s holds no complete export%s" % (
      base, " (versions %s are incomplete)" % ", ".join(versions)
      if versions else ""))


def write_manifest(export_dir, manifest):
  """Writes manifest.json into export_dir's assets.extra with the sha256
  of every other asset and the signatures saved_model.pb has."""
  manifest = dict(manifest)
  manifest["checksums"] = export_assets.checksums(export_dir, manifest)
  manifest["signatures"] = sorted(signature_names(export_dir))
  files.atomic_write(os.path.join(
      export_dir, export_assets.ASSETS, export_assets.MANIFEST),
                     json.dumps(manifest, ensure_ascii=False, indent=1))
