"""Offline stand-in for @rules_cc: re-exports Bazel's native C++ rules.

Debian's bazel-rules-cc is newer than Debian's Bazel 4.2.3 and does not load
with it; this shim gives @rules_cc//cc:defs.bzl without any network fetch.
"""

cc_library = native.cc_library
cc_binary = native.cc_binary
cc_test = native.cc_test
cc_import = native.cc_import
cc_toolchain = native.cc_toolchain
cc_toolchain_suite = native.cc_toolchain_suite
