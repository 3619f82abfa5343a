"""Build of bert_mtl, its native extension bert_mtl._native and its
TensorFlow op library bert_mtl._fused_ops.

The extension's Unicode tables are generated at build time from the Python
that builds it (csrc/gen_unicode_tables.py), so the tokenizer agrees with the
`unicodedata` of the interpreter it is installed into.  The op library is
compiled against the TensorFlow of the build (pyproject.toml pins the
stack's); without one it is left out and training uses core ops
(bert_mtl/fused_ops.py).
"""

import os
import subprocess
import sys

import pybind11
from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))

STACK = [
    "tensorflow==2.15.1",
    "tensorflow-estimator==2.15.0",
    "tensorflow-addons==0.23.0",
    "numpy>=1.23,<2",
    "absl-py",
    "sentencepiece",
    "pybind11>=2.11",
]

TEST_EXTRAS = [
    "pytest",
    "pytest-xdist==3.8.0",  # the suite runs on every core (pyproject.toml)
    "hypothesis",
    "seqeval==1.2.2",
    "safetensors",
    "matplotlib",  # benchmarks/accuracy.py draws learning curves
    "python-crfsuite==0.9.12",  # ... and trains the CRFsuite baseline
    # Its protos read back the export's warm-up requests (the library
    # writes them itself).
    "tensorflow-serving-api==2.15.1",
]

BENCH_EXTRAS = [
    "tokenizers",
    # benchmarks/train_step.py's peer: TFBertModel (the last releases with
    # TensorFlow models that run on Keras 2, i.e. TensorFlow 2.15).
    "transformers==4.46.3",
    "matplotlib",
    "python-crfsuite==0.9.12",
]


class BuildExtWithTables(build_ext):
  """Generates csrc/unicode_tables.h with this Python and source_digest.h,
  then compiles."""

  def run(self):
    gen_dir = os.path.join(self.build_temp, "generated")
    os.makedirs(gen_dir, exist_ok=True)
    header = os.path.join(gen_dir, "unicode_tables.h")
    subprocess.check_call([sys.executable,
                           os.path.join(HERE, "csrc", "gen_unicode_tables.py"),
                           header])
    # The digest of every native source (and of the tables just made):
    # feature caches written by another build of the record builder are
    # never reused.
    csrc = os.path.join(HERE, "csrc")
    sources = [os.path.join(csrc, name) for name in sorted(os.listdir(csrc))
               if name.endswith((".cc", ".h", ".py"))] + [header]
    subprocess.check_call([sys.executable,
                           os.path.join(csrc, "gen_source_digest.py"),
                           os.path.join(gen_dir, "source_digest.h")] +
                          sources)
    for ext in self.extensions:
      ext.include_dirs.insert(0, gen_dir)
    try:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
    except ImportError:
      tf = None
    for ext in list(self.extensions):
      if ext.name != fused_ops.name:
        continue
      if tf is None:
        print("warning: TensorFlow is not importable here: %s is not built "
              "(training uses core ops)" % ext.name)
        self.extensions.remove(ext)
        continue
      ext.extra_compile_args += tf.sysconfig.get_compile_flags()
      ext.extra_link_args += tf.sysconfig.get_link_flags()
    super().run()


native = Extension(
    "bert_mtl._native",
    # The core (one file per concept), then the bindings (py_*: they only
    # convert and check).
    sources=["csrc/tokenizer.cc", "csrc/alignment.cc", "csrc/viterbi.cc",
             "csrc/example_proto.cc", "csrc/pretraining.cc",
             "csrc/py_tokenizer.cc", "csrc/py_viterbi.cc",
             "csrc/py_records.cc", "csrc/py_pretraining.cc",
             "csrc/py_module.cc"],
    include_dirs=["csrc", pybind11.get_include()],
    language="c++",
    extra_compile_args=["-std=c++17", "-O3", "-DNDEBUG", "-fvisibility=hidden",
                        "-Wall", "-Wno-sign-compare"],
)

# Custom TensorFlow ops for training graphs (fused dropout and GELU); the
# TensorFlow flags are added at build time.
fused_ops = Extension(
    "bert_mtl._fused_ops",
    sources=["csrc/tf_ops/fused_ops.cc"],
    language="c++",
    extra_compile_args=["-O3", "-DNDEBUG", "-fvisibility=hidden", "-Wall",
                        "-Wno-sign-compare"],
)

setup(
    name="bert_mtl",
    version="0.1.0",
    description="Multi-task BERT for TensorFlow (Estimator, original checkpoints)",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["bert_mtl", "bert_mtl.*"]),
    ext_modules=[native, fused_ops],
    cmdclass={"build_ext": BuildExtWithTables},
    install_requires=STACK,
    extras_require={"test": TEST_EXTRAS, "bench": BENCH_EXTRAS,
                    # TensorFlow 2.15.1's CUDA 12 build and its NVIDIA
                    # libraries; untested here (no GPU machine runs TF 2.15).
                    "gpu": ["tensorflow[and-cuda]==2.15.1"]},
    entry_points={"console_scripts": ["bert-mtl=bert_mtl.cli:run"]},
    zip_safe=False,
)
