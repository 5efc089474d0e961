#!/usr/bin/env bash
# bench_idle.sh - issue 5 "idle memory": 10,000 idle SSE, then 10,000 idle WebSocket
# connections (?token= at the upgrade), then 10,000 WebSocket connections authenticated by a
# first auth message as the browser client does (rtlog only: "wsmsg"), on an empty stream,
# server RSS per connection ((VmRSS after - before) / N), a fresh server for each row,
# rtlog and nchan (worker RSS) in the same invocation.
# usage: tools/bench/bench_idle.sh [--runs 3] [--no-nchan] [--quick]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
IDLE=10000
[ "$QUICK" = 1 ] && IDLE=2000
machine

for run in $(seq "$RUNS"); do
    for mode in sse ws wsmsg; do
        start_rtlog "idle-$mode-$run"
        curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" \
            -H 'Content-Type: application/json' -d '[]' \
            "http://127.0.0.1:$PORT/api/v1/workflow-runs/idle/events"
        sleep 1
        if [ $mode = sse ]; then
            record idle.rtlog.sse "$BIN/bench_idle" --mode sse --port "$PORT" --token "$TOKEN" \
                --path /api/v1/workflow-runs/idle/stream --conns "$IDLE" --hold-secs 5 \
                --server-pid "$SRV_PID"
        elif [ $mode = ws ]; then
            record idle.rtlog.ws "$BIN/bench_idle" --mode ws --port "$PORT" \
                --path "/api/v1/workflow-runs/idle/stream?token=$TOKEN" --conns "$IDLE" \
                --hold-secs 5 --server-pid "$SRV_PID"
        else
            record idle.rtlog.wsmsg "$BIN/bench_idle" --mode ws --port "$PORT" \
                --path /api/v1/workflow-runs/idle/stream --auth-msg "$TOKEN" --conns "$IDLE" \
                --hold-secs 5 --server-pid "$SRV_PID"
        fi
        stop_rtlog
        if [ "$HAVE_NGINX" = 1 ] && [ $mode != wsmsg ]; then
            start_nchan
            sleep 1
            path=/sub?id=idle
            [ $mode = ws ] && path=/subws?id=idle
            record "idle.nchan.$mode" "$BIN/bench_idle" --mode $mode --port "$NPORT" \
                --path "$path" --conns "$IDLE" --hold-secs 5 --server-pid "$NWORKER"
            stop_nchan
        fi
    done
done

echo
echo "== idle summary ($IDLE connections): bytes of server RSS per connection, median [min..max]"
for l in idle.rtlog.sse idle.nchan.sse idle.rtlog.ws idle.nchan.ws idle.rtlog.wsmsg; do
    [ "$(ok $l)" = - ] && continue
    echo "$l: $(ok $l); $(summ $l per_conn_bytes) B per connection"
done
echo "ratio rtlog/nchan: sse $(ratio "$(med idle.rtlog.sse per_conn_bytes)" \
    "$(med idle.nchan.sse per_conn_bytes)"), ws $(ratio "$(med idle.rtlog.ws per_conn_bytes)" \
    "$(med idle.nchan.ws per_conn_bytes)")"
echo "results: $RESULTS"
