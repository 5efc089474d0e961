#!/usr/bin/env bash
# bench_catchup.sh - issue 5 "catch-up": subscribers that resume at the start of a
# 100,000-event backlog (Last-Event-ID: 0, the stream followed live afterwards), rtlog and
# nchan in the same invocation, --runs times.
#   1. one subscriber, 7 replays per run: time to the first event, events/s to the
#      100,000th (ids checked 1..100,000 for rtlog);
#   2. 100 such subscribers at once: time until all 100 hold all 100,000 events.
# rtlog's store is filled with `rtlog import` (step_log events of ~190 B NDJSON); nchan's
# channel with the same count of 200 B events posted (nchan keeps 100,000 messages per
# channel, in memory) and replayed from the oldest (/suball). nchan replays are bounded by
# --timeout (a replay not done by then fails: the figure is then "did not finish").
# usage: tools/bench/bench_catchup.sh [--runs 3] [--no-nchan] [--quick]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=100000 PAR=100 REP=7 NTIMEOUT=90
[ "$QUICK" = 1 ] && { N=20000; PAR=10; REP=3; NTIMEOUT=20; }
machine

awk -v n=$N 'BEGIN { for (i = 1; i <= n; i++)
    printf "{\"type\":\"step_log\",\"nodeId\":\"step-%03d\",\"line\":\"catch-up event %07d " \
           "padding padding padding padding padding padding padding padding pad\"," \
           "\"level\":\"info\",\"timestamp\":\"2026-01-10T14:23:50Z\"}\n", i % 50, i }' \
    >"$TMP/backlog.ndjson"
"$RTLOG" import --data "$TMP/catchup" workflow-runs/backlog "$TMP/backlog.ndjson" >/dev/null
P=/api/v1/workflow-runs/backlog/stream

for run in $(seq "$RUNS"); do
    start_rtlog catchup
    record one.rtlog "$BIN/bench_catchup" --port "$PORT" --token "$TOKEN" --path "$P" \
        --last-event-id 0 --expect $N --repeat $REP --server-pid "$SRV_PID"
    record par.rtlog "$BIN/bench_catchup" --port "$PORT" --token "$TOKEN" --path "$P" \
        --last-event-id 0 --expect $N --repeat 1 --parallel $PAR --server-pid "$SRV_PID"
    stop_rtlog
    if [ "$HAVE_NGINX" = 1 ]; then
        start_nchan
        # load: one subscriber keeps the channel alive while $N events are posted
        "$BIN/bench_fanout" --target nchan --port "$NPORT" --sub-path "/sub?id=backlog" \
            --pub-path "/pub?id=backlog" --subs 1 --rate 20000 --secs $((N / 20000)) \
            --event-bytes 200 --pub-conns 16 >/dev/null || echo "loading nchan was incomplete" >&2
        record one.nchan "$BIN/bench_catchup" --port "$NPORT" --path "/suball?id=backlog" \
            --ids any --expect $N --repeat 1 --timeout $NTIMEOUT --server-pid "$NWORKER"
        record par.nchan "$BIN/bench_catchup" --port "$NPORT" --path "/suball?id=backlog" \
            --ids any --expect $N --repeat 1 --parallel $PAR --timeout $NTIMEOUT \
            --server-pid "$NWORKER"
        stop_nchan
    fi
done

echo
echo "== catch-up summary ($N-event backlog): median [min..max] over runs; load at end" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
for s in rtlog nchan; do
    [ "$(ok one.$s)" = - ] && continue
    echo "one.$s: $(ok one.$s); events/s $(summ one.$s median_events_per_s);" \
        "first event ms $(summ one.$s median_ttfe_ms); first byte ms $(summ one.$s median_ttfb_ms);" \
        "server ns/event $(summ one.$s median_server_cpu_ns_per_event)"
    echo "par.$s ($PAR at once): $(ok par.$s); all done s $(summ par.$s all_done_max_s);" \
        "total events/s $(summ par.$s total_events_per_s); worst first event ms" \
        "$(summ par.$s ttfe_max_ms)"
done
[ "$(ok one.nchan)" != - ] && echo "ratio rtlog/nchan per run: one events/s" \
    "$(pair_ratios one.rtlog one.nchan median_events_per_s); first event" \
    "$(pair_ratios one.rtlog one.nchan median_ttfe_ms)"
echo "results: $RESULTS"
