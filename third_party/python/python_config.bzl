"""Repository rule exposing the active Python's headers and pybind11.

The paths differ per machine and per virtual environment, so they are asked
of the interpreter (PYTHON_BIN_PATH, else `python3` on PATH) when Bazel
configures the workspace.  The same interpreter generates the tokenizer's
Unicode tables, so the extension agrees with the Python that imports it.
"""

def _python_config_impl(ctx):
    python = ctx.os.environ.get("PYTHON_BIN_PATH") or ctx.which("python3")
    if not python:
        fail("no python3 found: put one on PATH or set PYTHON_BIN_PATH")
    result = ctx.execute([
        python,
        "-c",
        "import sys, sysconfig, pybind11; " +
        "print(sys.executable); " +
        "print(sysconfig.get_paths()['include']); " +
        "print(pybind11.get_include())",
    ])
    if result.return_code != 0:
        fail("cannot query %s for its headers and pybind11 (pip install pybind11): %s" %
             (python, result.stderr))
    executable, python_include, pybind11_include = result.stdout.strip().split("\n")
    ctx.symlink(python_include, "python_include")
    ctx.symlink(pybind11_include, "pybind11_include")
    ctx.file("BUILD", """
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "python_headers",
    hdrs = glob(["python_include/**/*.h"]),
    includes = ["python_include"],
)

cc_library(
    name = "pybind11",
    hdrs = glob(["pybind11_include/**/*.h"]),
    includes = ["pybind11_include"],
    deps = [":python_headers"],
)
""")
    ctx.file("defs.bzl", "PYTHON = %r\n" % executable)

python_config = repository_rule(
    implementation = _python_config_impl,
    environ = ["PYTHON_BIN_PATH", "PATH"],
    local = True,
)
