"""What an export ships beside its graph, read back: the manifest, the label
maps and vocabulary in `assets.extra/`, and the decode states (CRF
transitions) among the
SavedModel's variables."""

import collections
import json
import os

from bert_mtl import decoding, files
from bert_mtl.labels import LabelEncoder

MANIFEST = "manifest.json"
ASSETS = "assets.extra"

Assets = collections.namedtuple("Assets", [
    "manifest",   # manifest.json (see serving.manifest)
    "encoders",   # {problem: LabelEncoder}
    "vocab_file",  # path of the vocabulary
])


class AssetError(ValueError):
  """An export's assets.extra that cannot be trusted: names the file and,
  where it is one, the key."""


def _asset_path(export_dir, relative, manifest_path, key):
  """The path of asset `relative`, which must stay inside assets.extra."""
  assets = os.path.realpath(os.path.join(export_dir, ASSETS))
  if not isinstance(relative, str) or not relative:
    raise AssetError("%s: %s must be a file name in %s, got %r" % (
        manifest_path, key, ASSETS, relative))
  path = os.path.realpath(os.path.join(assets, relative))
  if os.path.isabs(relative) or not path.startswith(assets + os.sep):
    raise AssetError("%s: %s = %r points outside %s" % (
        manifest_path, key, relative, ASSETS))
  if not os.path.isfile(path):
    raise AssetError("%s: %s = %r: no such file in %s" % (
        manifest_path, key, relative, ASSETS))
  return path


def _files(manifest):
  """{manifest key: asset path} of every asset the manifest names."""
  out = {"vocab": manifest["vocab"]}
  for index, entry in enumerate(manifest["problems"]):
    out["problems[%d].labels" % index] = entry["labels"]
  if "warmup" in manifest:  # (exports before warm-up files had none)
    out["warmup"] = manifest["warmup"]
  return out


def checksums(export_dir, manifest):
  """{asset path: sha256} of the assets `manifest` names."""
  return {relative: files.file_digest(_asset_path(
      export_dir, relative, MANIFEST, key))
          for key, relative in _files(manifest).items()}


def _need(ok, manifest_path, key, what):
  if not ok:
    raise AssetError("%s: %s %s" % (manifest_path, key, what))


def _check_schema(manifest, path):
  _need(isinstance(manifest, dict), path, "the manifest", "is not a JSON "
        "object")
  for key, kind in (("problems", list), ("vocab", str),
                    ("max_seq_length", int), ("do_lower_case", bool)):
    _need(key in manifest, path, key, "is missing")
    _need(isinstance(manifest[key], kind), path, key,
          "must be a %s, got %r" % (kind.__name__, manifest[key]))
  for index, entry in enumerate(manifest["problems"]):
    where = "problems[%d]" % index
    _need(isinstance(entry, dict), path, where, "must be an object")
    for key in ("name", "type", "labels"):
      _need(isinstance(entry.get(key), str), path, "%s.%s" % (where, key),
            "is missing or not a string")
  for key in ("checksums",):
    _need(isinstance(manifest.get(key, {}), dict), path, key,
          "must be an object")


def read(export_dir):
  """The Assets of the SavedModel at `export_dir`, checked: the manifest's
  schema, asset paths inside assets.extra, each asset's sha256 against the
  one written at export, each label map's size against its head's.

  Raises:
    AssetError: naming the file and the key.
  """
  path = os.path.join(export_dir, ASSETS, MANIFEST)
  try:
    with open(path, encoding="utf-8") as f:
      manifest = json.load(f)
  except FileNotFoundError:
    raise AssetError("%s not found: %s is not a bert_mtl export" % (
        path, export_dir)) from None
  except (OSError, ValueError) as e:
    raise AssetError("%s cannot be read: %s" % (path, e)) from None
  _check_schema(manifest, path)
  paths = {key: _asset_path(export_dir, relative, path, key)
           for key, relative in _files(manifest).items()}
  # Exports written before checksums existed have none to compare.
  for relative, expected in manifest.get("checksums", {}).items():
    asset = _asset_path(export_dir, relative, path, "checksums")
    if files.file_digest(asset) != expected:
      raise AssetError("%s: %s has changed since the export (sha256 %s, the "
                       "manifest says %s); export the run again" % (
                           path, asset, files.file_digest(asset), expected))
  encoders = {}
  for index, entry in enumerate(manifest["problems"]):
    key = "problems[%d].labels" % index
    try:
      encoder = LabelEncoder.load(paths[key])
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise AssetError("%s (%s of %s) is not a label map: %s" % (
          paths[key], key, path, e)) from None
    size = entry.get("num_labels")
    if size is not None and len(encoder) != size:
      raise AssetError("%s has %d labels but the head of %s has %d (%s of "
                       "%s)" % (paths[key], len(encoder), entry["name"],
                                size, key, path))
    encoders[entry["name"]] = encoder
  return Assets(manifest, encoders, paths["vocab"])


def variables_by_name(loaded):
  """{variable name without ":0": variable} of a loaded SavedModel; an
  export with text signatures keeps the model's under their names."""
  return dict(getattr(loaded, "exported_variables", None) or
              {v.name[:-len(":0")]: v for v in loaded.variables})


def decode_states(entries, encoders, variables):
  """decoding.decode_states of `entries` ({problem: manifest entry}) from
  variables_by_name's dict."""
  return decoding.decode_states(
      entries, encoders,
      lambda v: variables[v].numpy() if v in variables else None)
