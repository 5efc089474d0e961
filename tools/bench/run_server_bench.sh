#!/usr/bin/env bash
# run_server_bench.sh - every server scenario of issue 5, rtlog and nginx+nchan side by side:
# runs bench_limits.sh (the machine's own limits, no server), bench_fanout.sh, bench_storm.sh,
# bench_catchup.sh, bench_idle.sh and bench_ingest.sh (see each for what it measures) with the
# same flags, one after the other, and keeps their outputs in one directory. ~40-60 min with --runs 3 on a 2-core machine.
# usage: tools/bench/run_server_bench.sh [--runs 3] [--no-nchan] [--quick]
#            [--only limits|fanout|storm|catchup|idle|ingest] [--out DIR]
# env: BUILD (default <repo>/build-bench), passed on.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ONLY="" OUT="" PASS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --only) ONLY=$2; shift ;;
    --out) OUT=$2; shift ;;
    --runs) PASS+=("$1" "$2"); shift ;;
    --no-nchan | --quick) PASS+=("$1") ;;
    -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
OUT=${OUT:-$(mktemp -d /tmp/rtlog-bench-all.XXXXXX)}
mkdir -p "$OUT"
rc=0
for s in limits fanout storm catchup idle ingest; do
    [ -z "$ONLY" ] || [ "$ONLY" = "$s" ] || continue
    echo "== $s ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg)) -> $OUT/$s.txt"
    "$HERE/bench_$s.sh" "${PASS[@]}" >"$OUT/$s.txt" 2>&1 || rc=1
    sed -n '/== .* summary/,$p' "$OUT/$s.txt"
done
exit $rc
