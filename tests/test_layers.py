"""The package's layers point one way, and the light modules stay light."""

import ast
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "bert_mtl")

# Lowest first; a module may import only from its own layer or below (never
# up).  Within a layer imports are free.
LAYERS = [
    ("base", ["bert_mtl", "bert_mtl.base", "bert_mtl.errors",
              "bert_mtl.files", "bert_mtl.config", "bert_mtl.process",
              "bert_mtl.metrics", "bert_mtl.labels", "bert_mtl.hardware"]),
    ("native", ["bert_mtl._native", "bert_mtl.extension",
                "bert_mtl.tokenization", "bert_mtl.crf",
                "bert_mtl.fused_ops"]),
    ("primitives", ["bert_mtl.modeling", "bert_mtl.optimization",
                    "bert_mtl.graph_tokenizer",
                    "bert_mtl.checkpoint", "bert_mtl.heads", "bert_mtl.data",
                    "bert_mtl.data.features",
                    "bert_mtl.data.cache"]),
    ("types", ["bert_mtl.types"]),
    # Corpora: readers, the chain grammar, where the data lives (and its
    # download).
    ("problems", ["bert_mtl.problems", "bert_mtl.data_dir"]),
    ("data", ["bert_mtl.data.dataset", "bert_mtl.data.examples",
              "bert_mtl.data.records", "bert_mtl.data.input_fn"]),
    ("model", ["bert_mtl.model_fn"]),
    ("run", ["bert_mtl.run_directory", "bert_mtl.run_data",
             "bert_mtl.run_checks",
             "bert_mtl.decoding", "bert_mtl.evaluation", "bert_mtl.progress",
             "bert_mtl.cluster", "bert_mtl.peers", "bert_mtl.preemption",
             "bert_mtl.experiment"]),
    ("serving", ["bert_mtl.serving", "bert_mtl.text_serving",
                 "bert_mtl.serving_warmup",
                 "bert_mtl.export_assets", "bert_mtl.export_versions"]),
    ("cli", ["bert_mtl.cli", "bert_mtl.__main__"]),
    # References the tests and benchmarks compare the library with; the
    # library never imports them.
    ("testing", ["bert_mtl.testing"]),
]


def layer_of(module):
  """Index of the layer of `module` (longest prefix match; the package
  itself, "bert_mtl", matches only itself, so a new module has no layer
  until it is given one)."""
  best, found = -1, None
  for index, (_, prefixes) in enumerate(LAYERS):
    for prefix in prefixes:
      below = module.startswith(prefix + ".") and prefix != "bert_mtl"
      if (module == prefix or below) and len(prefix) > best:
        best, found = len(prefix), index
  return found


def package_modules():
  """(module, path) of every module of the package, the C++ extension
  (bert_mtl._native, a shared library) included."""
  for root, _, names in os.walk(PACKAGE):
    for name in names:
      if name.startswith("_native.") and name.endswith(".so"):
        yield "bert_mtl._native", os.path.join(root, name)
      if name.endswith(".py"):
        path = os.path.join(root, name)
        relative = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
        if relative.endswith(".__init__"):
          relative = relative[:-len(".__init__")]
        yield relative, path


def imports_of(module, path):
  """Every bert_mtl module `module` imports, at any depth of its code."""
  tree = ast.parse(open(path, encoding="utf-8").read(), path)
  package = module if path.endswith("__init__.py") else module.rpartition(
      ".")[0]
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names if a.name.startswith("bert_mtl"))
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(package.split(".")[:len(package.split(".")) -
                                           node.level + 1] + [base])
      if not base.startswith("bert_mtl"):
        continue
      for alias in node.names:  # `from bert_mtl import x`: x may be a module
        candidate = base + "." + alias.name
        out.add(candidate if layer_of(candidate) is not None and any(
            m == candidate for m, _ in package_modules()) else base)
  return out


def test_every_module_has_a_layer():
  modules = [m for m, _ in package_modules()]
  assert "bert_mtl._native" in modules
  missing = [m for m in modules if layer_of(m) is None]
  assert missing == [], missing
  # The check can fail: a module nobody placed has no layer.
  assert layer_of("bert_mtl.brand_new_module") is None
  assert layer_of("bert_mtl.data.brand_new") == layer_of("bert_mtl.data")


def test_imports_point_down_only():
  upward = []
  for module, path in package_modules():
    if not path.endswith(".py"):
      continue
    mine = layer_of(module)
    for imported in imports_of(module, path):
      theirs = layer_of(imported)
      if theirs is not None and theirs > mine:
        upward.append("%s (%s) imports %s (%s)" % (
            module, LAYERS[mine][0], imported, LAYERS[theirs][0]))
  assert upward == [], "\n".join(upward)


def test_the_checker_sees_an_upward_import(tmp_path):
  """The check above can fail: a primitives module importing serving is
  reported."""
  path = tmp_path / "features.py"
  path.write_text("from bert_mtl import serving\nimport bert_mtl.experiment\n"
                  "from bert_mtl import _native\n")
  found = imports_of("bert_mtl.data.features", str(path))
  assert found == {"bert_mtl.serving", "bert_mtl.experiment",
                   "bert_mtl._native"}
  assert layer_of("bert_mtl.serving") > layer_of("bert_mtl.data.features")


def test_problems_and_bert_config_need_no_extension():
  """`import bert_mtl.problems` and BertConfig do not load the C++
  extension (nor tensorflow_addons)."""
  code = ("import sys\n"
          "import bert_mtl.problems, bert_mtl.config\n"
          "from bert_mtl import modeling\n"
          "modeling.BertConfig(100).to_json_string()\n"
          "bert_mtl.problems.get('msra_ner')\n"
          "print(sorted(m for m in sys.modules if m == 'bert_mtl._native' or "
          "m.startswith('tensorflow_addons')))\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, timeout=300, cwd=REPO,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip().splitlines()[-1] == "[]"
