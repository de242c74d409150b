#!/usr/bin/env bash
# Memory safety of the compiled core: build the extensions with AddressSanitizer (and
# UBSan's bounds checks) in a separate copy of the tree, then run the test suite there
# with libasan preloaded. Any ASan report aborts the process, so a clean pytest exit
# means zero errors.
#
#   scripts/asan_check.sh                 # a representative subset (about 5 minutes)
#   scripts/asan_check.sh tests           # the whole suite (much longer)
#   scripts/asan_check.sh --valgrind      # valgrind memcheck of a small subset instead
#
# Nothing in the work tree is touched: the copy, its build and its venv live in
# $ASAN_DIR (default /tmp/bytepiece-asan). Needs gcc with libasan (Debian: gcc) and,
# for --valgrind, valgrind. Exit status: 0 clean, non-zero on any report or failure.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
ASAN_DIR="${ASAN_DIR:-/tmp/bytepiece-asan}"
PYTHON="${PYTHON:-python3}"
MODE=asan
if [[ "${1:-}" == "--valgrind" ]]; then MODE=valgrind; shift; fi

SUBSET=(
  tests/reliability/test_reliability_properties.py
  tests/reliability/test_reliability_models.py
  tests/reliability/test_reliability_concurrency.py
  tests/api/test_tokenizer.py
  tests/api/test_model.py
  tests/core/test_sampling_exact.py
  tests/core/test_golden.py
)
if [[ $# -gt 0 ]]; then SUBSET=("$@"); fi

echo "== copying the tree to $ASAN_DIR/src"
rm -rf "$ASAN_DIR/src"
mkdir -p "$ASAN_DIR/src"
# The tracked files plus untracked ones not ignored (work in progress is checked too).
(cd "$REPO" && git ls-files -co --exclude-standard -z) | (cd "$REPO" && xargs -0 cp --parents -t "$ASAN_DIR/src" 2>/dev/null || true)
rm -f "$ASAN_DIR"/src/bytepiece/*.so "$ASAN_DIR"/src/cython_src/*.c

if [[ ! -x "$ASAN_DIR/venv/bin/python" ]]; then
  echo "== venv (reusing the system's numpy, Cython, pytest, hypothesis when present)"
  "$PYTHON" -m venv --system-site-packages "$ASAN_DIR/venv"
fi
VPY="$ASAN_DIR/venv/bin/python"
"$VPY" -c "import Cython, numpy, pytest, hypothesis, click" 2>/dev/null \
  || "$VPY" -m pip install -q "Cython>=3" numpy pytest hypothesis click scipy

cd "$ASAN_DIR/src"
if [[ $MODE == asan ]]; then
  LIBASAN="$(gcc -print-file-name=libasan.so)"
  [[ -e "$LIBASAN" ]] || { echo "libasan not found (install gcc)"; exit 2; }
  echo "== building with -fsanitize=address"
  CC=gcc \
  CFLAGS="-fsanitize=address -fsanitize=bounds -fno-omit-frame-pointer -g -O1" \
  LDFLAGS="-fsanitize=address" \
    "$VPY" setup.py build_ext --inplace -q >"$ASAN_DIR/build.log" 2>&1 \
    || { tail -30 "$ASAN_DIR/build.log"; exit 2; }
  nm -D bytepiece/_core/segment*.so | grep -q __asan_init || { echo "extension is not instrumented"; exit 2; }
  echo "== pytest under ASan: ${SUBSET[*]}"
  # detect_leaks=0: CPython's own allocations at exit are not leaks of ours.
  # abort_on_error=1 + halt_on_error=1: the first report kills the run (non-zero exit).
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1:detect_stack_use_after_return=0"
  export LD_PRELOAD="$LIBASAN"
  export PYTHONPATH="$ASAN_DIR/src"
  export PYTHONMALLOC=malloc   # route Python's allocations through ASan too
  # (not under set -e: a failing run must still reach the report check below)
  status=0
  "$VPY" -m pytest -q -p no:cacheprovider -x "${SUBSET[@]}" 2>&1 | tee "$ASAN_DIR/pytest.log" || status=$?
  if grep -q "ERROR: AddressSanitizer" "$ASAN_DIR/pytest.log"; then
    echo "ASan reported errors"; exit 1
  fi
  echo "== ASan run finished with pytest status $status"
  exit "$status"
else
  echo "== building with -O1 -g for valgrind"
  CFLAGS="-O1 -g" "$VPY" setup.py build_ext --inplace -q >"$ASAN_DIR/build.log" 2>&1 \
    || { tail -30 "$ASAN_DIR/build.log"; exit 2; }
  export PYTHONPATH="$ASAN_DIR/src" PYTHONMALLOC=malloc
  # A small subset: valgrind is about 50x slower.
  VG_TESTS=(${VG_TESTS:-tests/api/test_tokenizer.py})
  echo "== pytest under valgrind memcheck: ${VG_TESTS[*]}"
  valgrind --tool=memcheck --error-exitcode=99 --leak-check=no --track-origins=no \
    --suppressions=/dev/null --log-file="$ASAN_DIR/valgrind.%p.log" \
    "$VPY" -m pytest -q -p no:cacheprovider -x "${VG_TESTS[@]}" \
    -k "not fresh_process and not spawn and not fork"
  status=$?
  errors=$(grep -h "ERROR SUMMARY" "$ASAN_DIR"/valgrind.*.log | awk '{s+=$4} END {print s+0}')
  echo "== valgrind: pytest status $status, errors reported: $errors (logs: $ASAN_DIR/valgrind.*.log)"
  [[ $status -eq 0 && $errors -eq 0 ]]
fi
