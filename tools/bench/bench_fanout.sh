#!/usr/bin/env bash
# bench_fanout.sh - issue 5 "fan-out": one run, many live subscribers, rtlog and nchan
# side by side in the same invocation, --runs times (alternating rtlog, nchan).
#   A. 1,000 SSE subscribers, offered 1,000 events/s of 200 B for 10 s, one event per POST
#      on 16 keep-alive connections (rtlog also: 10 events per POST, and WebSocket);
#   B. 10,000 subscribers, offered 100 events/s for 10 s (rtlog SSE and WS, nchan SSE).
# Publishing stops 15 s after it started even when the server fell behind (nchan
# saturates), so a run is bounded; what was accepted is still delivered and checked.
# Prints each run's line and a summary: delivered/s, lat p99, server CPU us per delivery
# (median [min..max]) and the rtlog/nchan ratio of each run.
# usage: tools/bench/bench_fanout.sh [--runs 3] [--no-nchan] [--quick] [--only A|B]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ONLY=""
[ "${#ARGS[@]}" -ge 2 ] && [ "${ARGS[0]}" = --only ] && ONLY=${ARGS[1]}
SECS=10
[ "$QUICK" = 1 ] && SECS=3
machine

run_rtlog() { # run_rtlog LABEL STREAM PROTO [bench flags...]
    local label=$1 id=$2 proto=$3 sp
    shift 3
    sp="/api/v1/workflow-runs/$id/stream"
    [ "$proto" = ws ] && sp="$sp?token=$TOKEN"
    record "$label" "$BIN/bench_fanout" --target rtlog --proto "$proto" --port "$PORT" \
        --token "$TOKEN" --create-path "/api/v1/workflow-runs/$id/events" --sub-path "$sp" \
        --pub-path "/api/v1/workflow-runs/$id/events" --server-pid "$SRV_PID" \
        --pub-deadline $((SECS + 5)) "$@"
}
run_nchan() { # run_nchan LABEL CHANNEL [bench flags...]
    local label=$1 id=$2
    shift 2
    record "$label" "$BIN/bench_fanout" --target nchan --port "$NPORT" --sub-path "/sub?id=$id" \
        --pub-path "/pub?id=$id" --server-pid "$NWORKER" --pub-deadline $((SECS + 5)) "$@"
}

for run in $(seq "$RUNS"); do
    if [ -z "$ONLY" ] || [ "$ONLY" = A ]; then
        F=(--subs 1000 --rate 1000 --secs "$SECS" --event-bytes 200 --pub-conns 16)
        start_rtlog "fanA$run"
        run_rtlog A.rtlog.sse.b1 a1 sse "${F[@]}"
        run_rtlog A.rtlog.sse.b10 a10 sse "${F[@]}" --batch 10
        run_rtlog A.rtlog.ws.b1 aw1 ws "${F[@]}"
        stop_rtlog
        if [ "$HAVE_NGINX" = 1 ]; then
            start_nchan
            run_nchan A.nchan.sse.b1 a1 "${F[@]}"
            stop_nchan
        fi
    fi
    if [ -z "$ONLY" ] || [ "$ONLY" = B ]; then
        F=(--subs 10000 --rate 100 --secs "$SECS" --event-bytes 200 --pub-conns 16)
        start_rtlog "fanB$run"
        run_rtlog B.rtlog.sse.b1 b1 sse "${F[@]}"
        run_rtlog B.rtlog.ws.b1 bw1 ws "${F[@]}"
        stop_rtlog
        if [ "$HAVE_NGINX" = 1 ]; then
            start_nchan
            run_nchan B.nchan.sse.b1 b1 "${F[@]}"
            stop_nchan
        fi
    fi
done

echo
echo "== fan-out summary: median [min..max] over runs; machine load at end $(cut -d' ' -f1-3 /proc/loadavg)"
for l in A.rtlog.sse.b1 A.rtlog.sse.b10 A.rtlog.ws.b1 A.nchan.sse.b1 \
    B.rtlog.sse.b1 B.rtlog.ws.b1 B.nchan.sse.b1; do
    [ "$(ok $l)" = - ] && continue
    echo "$l: $(ok $l)"
    echo "   delivered/s $(summ $l delivered_per_s) of offered $(med $l rate) ev/s x $(med $l subs)"
    echo "   lat p50 us $(summ $l lat_p50_us)  p99 us $(summ $l lat_p99_us)  e2e p99 us $(summ $l e2e_p99_us)"
    echo "   server CPU us/delivery $(summ $l server_cpu_us_per_delivery)  machine% $(summ $l machine_busy_pct)"
done
for g in A B; do
    for p in sse.b1 sse.b10 ws.b1; do
        [ "$(ok $g.rtlog.$p)" = - ] || [ "$(ok $g.nchan.sse.b1)" = - ] && continue
        echo "ratio $g rtlog.$p / nchan.sse.b1 per run: delivered/s" \
            "$(pair_ratios $g.rtlog.$p $g.nchan.sse.b1 delivered_per_s); p99" \
            "$(pair_ratios $g.rtlog.$p $g.nchan.sse.b1 lat_p99_us); CPU/delivery" \
            "$(pair_ratios $g.rtlog.$p $g.nchan.sse.b1 server_cpu_us_per_delivery)"
    done
done
echo "results: $RESULTS"
