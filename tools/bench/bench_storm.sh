#!/usr/bin/env bash
# bench_storm.sh - issue 5 "reconnect storm": N subscribers follow a run that receives 100
# events/s; 3 s in, every subscriber's connection is dropped (RST) and all N reconnect at
# once, each resuming from the last id it saw (SSE Last-Event-ID; rtlog WS ?lastEventId=).
# Reported: gaps and duplicates over the whole run (must be 0), and the time from the drop
# until each subscriber is "live again" (its new stream open and every event published
# before its new request received): p50 / p99 / max, median [min..max] over runs.
# N = 1,000 and 10,000 all at once, and 10,000 with at most 1,000 handshakes in flight
# ("10000p": 10,000 SYNs at once overflow the listen backlog of 4,096 and the kernel's SYN
# retransmits, 1 s then 3 s, dominate); rtlog SSE and WS, nchan SSE, in the same invocation.
# usage: tools/bench/bench_storm.sh [--runs 3] [--no-nchan] [--quick]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SECS=8 AT=3 SHAPES="1000:0 10000:0 10000:1000"
[ "$QUICK" = 1 ] && { SECS=4; AT=2; SHAPES="200:0 1000:0 1000:100"; }
machine

for run in $(seq "$RUNS"); do
    for shape in $SHAPES; do
        n=${shape%:*} pend=${shape#*:}
        F=(--subs "$n" --rate 100 --secs "$SECS" --storm-at "$AT" --event-bytes 200
            --pub-conns 16 --pub-deadline $((SECS + 5)) --storm-pending "$pend")
        [ "$pend" = 0 ] || n=${n}p
        start_rtlog "storm$n-$run"
        for proto in sse ws; do
            id=st-$proto-$n
            sp="/api/v1/workflow-runs/$id/stream"
            [ "$proto" = ws ] && sp="$sp?token=$TOKEN"
            record "storm$n.rtlog.$proto" "$BIN/bench_fanout" --target rtlog --proto $proto \
                --port "$PORT" --token "$TOKEN" --create-path "/api/v1/workflow-runs/$id/events" \
                --sub-path "$sp" --pub-path "/api/v1/workflow-runs/$id/events" \
                --server-pid "$SRV_PID" "${F[@]}"
        done
        stop_rtlog
        if [ "$HAVE_NGINX" = 1 ]; then
            start_nchan
            record "storm$n.nchan.sse" "$BIN/bench_fanout" --target nchan --port "$NPORT" \
                --sub-path "/sub?id=st$n" --pub-path "/pub?id=st$n" --server-pid "$NWORKER" \
                "${F[@]}"
            stop_nchan
        fi
    done
done

echo
echo "== storm summary: median [min..max] over runs; load at end $(cut -d' ' -f1-3 /proc/loadavg)"
for shape in $SHAPES; do
    n=${shape%:*}
    [ "${shape#*:}" = 0 ] || n=${n}p
    for l in storm$n.rtlog.sse storm$n.rtlog.ws storm$n.nchan.sse; do
        [ "$(ok $l)" = - ] && continue
        echo "$l: $(ok $l); missing $(summ $l missing) dups $(summ $l dups) order" \
            "$(summ $l order_errors); live again of $n: $(summ $l storm_live)"
        echo "   drop->live us p50 $(summ $l storm_live_p50_us) p99 $(summ $l storm_live_p99_us)" \
            "max $(summ $l storm_live_max_us); drop->reopened p99 us $(summ $l storm_open_p99_us)"
    done
    [ "$(ok storm$n.nchan.sse)" != - ] && echo "ratio storm$n rtlog.sse/nchan.sse per run:" \
        "live max $(pair_ratios storm$n.rtlog.sse storm$n.nchan.sse storm_live_max_us)"
done
echo "results: $RESULTS"
