#!/usr/bin/env bash
# bench_ingest.sh - issue 5 "ingest": keep-alive producers with one POST in flight each,
# rtlog (durable: 201 after fsync) and nchan (memory only) in the same invocation.
#   c4.b1   : 4 connections, 1 event per POST (nchan's reference shape)
#   c64.b1  : 64 connections, 1 event per POST, each connection its own run (stream)
#   c64.b100: 64 connections, 100 events per POST (NDJSON; rtlog only: nchan has no batch)
# 10 s each, ~200-byte events. After the rtlog runs the store is checked: the sum of every
# stream's lastSeq must equal the events the bench saw acknowledged (nothing acknowledged
# and lost). Prints events/s, ack p99 and server CPU us per event, median [min..max].
# usage: tools/bench/bench_ingest.sh [--runs 3] [--no-nchan] [--quick]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SECS=10
[ "$QUICK" = 1 ] && SECS=3
machine

for run in $(seq "$RUNS"); do
    start_rtlog "ingest$run"
    for shape in "4 1" "64 1" "64 100"; do
        set -- $shape
        record "c$1.b$2.rtlog" "$BIN/bench_ingest" --port "$PORT" --token "$TOKEN" \
            --path "/api/v1/workflow-runs/r$run-c$1-b$2-%u/events" --conns "$1" --batch "$2" \
            --secs $SECS --server-pid "$SRV_PID"
    done
    stop_rtlog
    stored=$("$RTLOG" ls --data "$TMP/ingest$run" --json |
        python3 -c 'import json, sys; print(sum(s["lastSeq"] for s in json.load(sys.stdin)))')
    acked=$(tail -n 3 "$RESULTS" | awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "=");
        if (kv[1] == "events_ok") s += kv[2] } } END { print s }')
    echo "store check run $run: acknowledged $acked, stored $stored" \
        "$([ "$acked" -le "$stored" ] && echo OK || echo LOST)" | tee -a "$RESULTS"
    if [ "$HAVE_NGINX" = 1 ]; then
        start_nchan
        for shape in "4 1" "64 1"; do
            set -- $shape
            record "c$1.b$2.nchan" "$BIN/bench_ingest" --target nchan --port "$NPORT" \
                --path "/pub?id=r$run-c$1-%u" --conns "$1" --batch "$2" --secs $SECS \
                --server-pid "$NWORKER"
        done
        stop_nchan
    fi
done

echo
echo "== ingest summary: median [min..max] over runs; load at end $(cut -d' ' -f1-3 /proc/loadavg)"
for l in c4.b1.rtlog c4.b1.nchan c64.b1.rtlog c64.b1.nchan c64.b100.rtlog; do
    [ "$(ok $l)" = - ] && continue
    echo "$l: $(ok $l); events/s $(summ $l events_per_s); ack p50 us $(summ $l ack_p50_us);" \
        "p99 us $(summ $l ack_p99_us); server us/event $(summ $l server_cpu_us_per_event)"
done
for s in c4.b1 c64.b1; do
    [ "$(ok $s.nchan)" = - ] && continue
    echo "ratio $s rtlog/nchan per run: events/s $(pair_ratios $s.rtlog $s.nchan events_per_s)"
done
[ "$(ok c64.b100.rtlog)" != - ] && [ "$(ok c4.b1.nchan)" != - ] &&
    echo "ratio c64.b100.rtlog / c4.b1.nchan per run: events/s" \
        "$(pair_ratios c64.b100.rtlog c4.b1.nchan events_per_s)"
grep '^store check' "$RESULTS" || true
echo "results: $RESULTS"
