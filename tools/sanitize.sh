#!/usr/bin/env bash
# Builds the native core's C++ tests with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs them.  Usage: tools/sanitize.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/sanitize}
python=${PYTHON:-python3}
mkdir -p "$out"
"$python" csrc/gen_unicode_tables.py "$out/unicode_tables.h"
${CXX:-g++} -std=c++17 -O1 -g -fno-omit-frame-pointer \
  -fsanitize=address,undefined -fno-sanitize-recover=all \
  -Icsrc -I"$out" csrc/tokenizer.cc csrc/alignment.cc csrc/viterbi.cc \
  csrc/pretraining.cc \
  csrc/example_proto.cc csrc/tests/native_test.cc \
  -o "$out/native_test"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  "$out/native_test"
