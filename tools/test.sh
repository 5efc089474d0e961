#!/bin/sh
# Build rtlog with ASan + UBSan and warnings as errors, then run the whole test suite
# (unit and integration) with ctest. Needs the packages from tools/deps.sh.
set -eu
cd "$(dirname "$0")/.."
# (again when package-lock.json changed since the last install, e.g. playwright-core added)
if [ -f tests/clients/package.json ] && { [ ! -d tests/clients/node_modules ] ||
    [ tests/clients/package-lock.json -nt tests/clients/node_modules/.package-lock.json ]; }; then
    (cd tests/clients && npm ci --no-audit --no-fund)
fi
BUILD=${RTLOG_TEST_BUILD:-build-test}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DRTLOG_WERROR=ON \
      -DRTLOG_SANITIZE=address,undefined
cmake --build "$BUILD" -j "$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
ctest --test-dir "$BUILD" --output-on-failure -j "$(nproc)" --timeout 600
