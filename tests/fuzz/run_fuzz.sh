#!/bin/sh
# run_fuzz.sh FUZZER SEED_CORPUS WORK_DIR SECONDS [RUNS]
# Run one libFuzzer target for SECONDS (or until RUNS executions, when given) from a working
# copy of SEED_CORPUS (the checked-in corpus is only read). Prints libFuzzer's last status
# line (executions, coverage) and exits non-zero on a crash, leak or timeout; the input that did it is left in WORK_DIR/artifacts/.
set -eu
fuzzer=$1 seeds=$2 work=$3 secs=$4 runs=${5:--1}
mkdir -p "$work/corpus" "$work/artifacts"
cp -n "$seeds"/* "$work/corpus/" 2>/dev/null || true
log="$work/fuzz.log"
set +e
# -runs: stop after that many executions (-1 = no limit, SECONDS decides)
"$fuzzer" -max_total_time="$secs" -runs="$runs" -timeout=10 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" >"$log" 2>&1
rc=$?
set -e
grep -h 'stat::number_of_executed_units\|^#[0-9].*DONE\|ERROR\|property failed' "$log" | tail -n 8
if [ "$rc" -ne 0 ]; then
    echo "run_fuzz: $(basename "$fuzzer") failed (exit $rc); inputs in $work/artifacts/:" >&2
    ls "$work/artifacts" >&2
    tail -n 40 "$log" >&2
fi
exit "$rc"
