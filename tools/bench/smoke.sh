#!/usr/bin/env bash
# smoke.sh - ctest "bench_smoke": the bench clients still work against today's server.
# Not a benchmark: a few hundred events, a few connections, no timing is asserted. Starts
# `rtlog serve` on 127.0.0.1 port 0 (the port is read from its start line) in a temp dir,
# runs every client once in a small shape and fails when any of them reports a gap, a
# duplicate, a failed request or an incomplete replay (their exit status); ends the server
# by its pid. usage: smoke.sh RTLOG_BINARY BENCH_BIN_DIR
set -euo pipefail
RTLOG=$1 BIN=$2
TMP=$(mktemp -d /tmp/rtlog-bench-smoke.XXXXXX)
SRV=""
cleanup() {
    [ -n "$SRV" ] && kill -TERM "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

awk 'BEGIN { for (i = 1; i <= 500; i++)
    printf "{\"type\":\"step_log\",\"nodeId\":\"s\",\"line\":\"smoke %d\",\"level\":\"info\"}\n", i }' \
    >"$TMP/c.ndjson"
"$RTLOG" import --data "$TMP/data" workflow-runs/smoke-c "$TMP/c.ndjson" >/dev/null
# --stall-timeout 2: the slow/stalled run below needs the server to close its stalled
# subscribers within the run (no other client here leaves a write blocked that long)
"$RTLOG" serve --listen 127.0.0.1:0 --data "$TMP/data" --log-level warn --stall-timeout 2 \
    >"$TMP/out" 2>"$TMP/err" &
SRV=$!
PORT=""
for _ in $(seq 100); do # bounded: 10 s
    line=$(grep -m1 'listening on http://127.0.0.1:' "$TMP/out" || true)
    if [ -n "$line" ]; then
        PORT=${line##*127.0.0.1:}
        PORT=${PORT%% *}
        break
    fi
    sleep 0.1
done
[ -n "$PORT" ] || { echo "server did not start"; cat "$TMP/err"; exit 1; }
TOKEN=$("$RTLOG" token --data "$TMP/data" --subscribe '*' --publish '*' --ttl 600)
A=/api/v1/workflow-runs

run() {
    local line="+ $*"
    echo "${line:0:160}"
    "$@"
}
run "$BIN/bench_fanout" --target rtlog --port "$PORT" --token "$TOKEN" \
    --create-path "$A/smoke-f/events" --sub-path "$A/smoke-f/stream" \
    --pub-path "$A/smoke-f/events" --subs 20 --rate 200 --secs 1 --pub-conns 4 --server-pid "$SRV"
run "$BIN/bench_fanout" --target rtlog --proto ws --port "$PORT" --token "$TOKEN" \
    --create-path "$A/smoke-w/events" --sub-path "$A/smoke-w/stream?token=$TOKEN" \
    --pub-path "$A/smoke-w/events" --subs 20 --rate 200 --secs 2 --batch 5 --pub-conns 4 \
    --storm-at 1
run "$BIN/bench_fanout" --target rtlog --port "$PORT" --token "$TOKEN" \
    --create-path "$A/smoke-s/events" --sub-path "$A/smoke-s/stream" \
    --pub-path "$A/smoke-s/events" --subs 20 --rate 100 --secs 2 --pub-conns 4 --storm-at 1
# slow and stalled consumers: 3 read 1 KB/s, 2 read nothing; they start at seq 1 of a 6 MB
# backlog (150 events of 40 KB; the fast ones after it), which fills the server's socket
# buffer (4 MiB at most) at once, so the 2 s stall timeout closes the stalled ones well within
# the 8 s; the tool fails unless every stalled one was closed by the server and every
# subscriber, after resuming, holds every event exactly once in order
run "$BIN/bench_fanout" --target rtlog --port "$PORT" --token "$TOKEN" \
    --create-path "$A/smoke-l/events" --sub-path "$A/smoke-l/stream" \
    --pub-path "$A/smoke-l/events" --subs 12 --slow 3 --stalled 2 --backlog 150 --rate 20 \
    --secs 8 --event-bytes 40000 --pub-conns 4 --drain-secs 60
run "$BIN/bench_ingest" --port "$PORT" --token "$TOKEN" --path "$A/smoke-i-%u/events" \
    --conns 4 --batch 10 --secs 1 --server-pid "$SRV"
run "$BIN/bench_catchup" --port "$PORT" --token "$TOKEN" --path "$A/smoke-c/stream" \
    --last-event-id 0 --expect 500 --repeat 2 --server-pid "$SRV"
run "$BIN/bench_catchup" --port "$PORT" --token "$TOKEN" --path "$A/smoke-c/stream?follow=false" \
    --expect 500 --repeat 1 --parallel 3
run "$BIN/bench_idle" --mode sse --port "$PORT" --token "$TOKEN" --path "$A/smoke-c/stream" \
    --conns 20 --hold-secs 1 --server-pid "$SRV" >/dev/null
run "$BIN/bench_idle" --mode ws --port "$PORT" --path "$A/smoke-f/stream?token=$TOKEN" \
    --conns 20 --hold-secs 1 --server-pid "$SRV" >/dev/null
# the machine's limits (no server): both modes, tiny
run "$BIN/bench_limits" sends --conns 20 --rate 50 --secs 0.3
run "$BIN/bench_limits" fsync --dir "$TMP" --secs 0.2
# what the ingest bench had acknowledged is in the store
kill -TERM "$SRV"
wait "$SRV" || true
SRV=""
"$RTLOG" ls --data "$TMP/data" | grep -q smoke-i-3
echo "bench smoke: ok"
