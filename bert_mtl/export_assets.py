"""What an export ships beside its graph, read back: the manifest, the label
maps and vocabulary in `assets.extra/`, and the CRF transitions among the
SavedModel's variables."""

import collections
import json
import os

from bert_mtl import decoding
from bert_mtl.labels import LabelEncoder

MANIFEST = "manifest.json"

Assets = collections.namedtuple("Assets", [
    "manifest",   # manifest.json (see serving.manifest)
    "encoders",   # {problem: LabelEncoder}
    "vocab_file",  # path of the vocabulary
])


def read(export_dir):
  """The Assets of the SavedModel at `export_dir`."""
  assets = os.path.join(export_dir, "assets.extra")
  with open(os.path.join(assets, MANIFEST), encoding="utf-8") as f:
    manifest = json.load(f)
  encoders = {e["name"]: LabelEncoder.load(os.path.join(assets, e["labels"]))
              for e in manifest["problems"]}
  return Assets(manifest, encoders, os.path.join(assets, manifest["vocab"]))


def variables_by_name(loaded):
  """{variable name without ":0": variable} of a loaded SavedModel; an
  export with text signatures keeps the model's under their names."""
  return dict(getattr(loaded, "exported_variables", None) or
              {v.name[:-len(":0")]: v for v in loaded.variables})


def crf_transitions(entries, variables):
  """{problem: float32 transitions} of the CRF problems among `entries`
  ({problem: manifest entry}) from variables_by_name's dict."""
  return decoding.crf_transitions(
      entries, lambda v: variables[v].numpy() if v in variables else None)
