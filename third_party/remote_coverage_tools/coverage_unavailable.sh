#!/bin/sh
echo "bazel coverage is not available offline; use pytest-cov instead" >&2
exit 1
