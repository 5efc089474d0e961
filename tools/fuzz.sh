#!/bin/sh
# tools/fuzz.sh [SECONDS [RUNS [--merge]]]
# The longer fuzzing campaign (issue 6): build every libFuzzer target with clang + ASan +
# UBSan in build-fuzz/, run each for SECONDS (default 600) or RUNS executions (default no
# limit), whichever comes first, from a working copy of its corpus,
# and print the executions per target. --merge adds the inputs that found new coverage to the
# checked-in corpus (tests/fuzz/corpus/<target>/, minimised with libFuzzer's -merge=1).
# A crash stops that target with its input in build-fuzz/fuzz-long/<target>/artifacts/.
# Runs under nice: the machine is shared.
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-600}
RUNS=${2:--1}
MERGE=${3:-}
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DRTLOG_WERROR=ON -DRTLOG_FUZZ=ON \
    -DRTLOG_SANITIZE=address,undefined >/dev/null
cmake --build build-fuzz -j2 --target fuzz_schema fuzz_render fuzz_params fuzz_auth fuzz_store >/dev/null
status=0
for t in schema render params auth store; do
    work=build-fuzz/fuzz-long/$t
    echo "== fuzz_$t, ${SECS} s"
    bin=$(find build-fuzz/tests -type f -name fuzz_$t | head -n 1)
    nice sh tests/fuzz/run_fuzz.sh "$bin" tests/fuzz/corpus/$t "$work" "$SECS" "$RUNS" \
        || status=1
    if [ "$MERGE" = "--merge" ]; then
        "$bin" -merge=1 tests/fuzz/corpus/$t "$work/corpus" >/dev/null 2>&1 || status=1
    fi
done
exit $status
