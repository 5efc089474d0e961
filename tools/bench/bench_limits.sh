#!/usr/bin/env bash
# bench_limits.sh - the machine's own limits, measured in the same invocation as the server
# scenarios (issue 5's "physical limit" column), with bench_limits (no server involved):
#   sends1000     : one thread send()s a 250-byte message to each of 1,000 loopback sockets
#                   in turn, as fast as it can (an epoll thread reads them all): sends/s and
#                   how long one round (one event to all 1,000) takes
#   sends1000.r100: the same at 100 rounds/s (one event per send, as at 100 ev/s)
#   sends9000     : 9,000 sockets (18,000 descriptors: the most one process may hold here),
#                   as fast as it can, and sends9000.r11 at 11 rounds/s (~100 ev/s x 10,000)
#   fsync         : 4 KiB pwrite + fdatasync on the filesystem of the benchmarks' data dirs
# usage: tools/bench/bench_limits.sh [--runs 3] [--quick]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SECS=4
[ "$QUICK" = 1 ] && SECS=1
machine
cmake --build "$BUILD" --target bench_limits -j2 >/dev/null
for run in $(seq "$RUNS"); do
    record sends1000 "$BIN/bench_limits" sends --conns 1000 --secs $SECS
    record sends1000.r100 "$BIN/bench_limits" sends --conns 1000 --rate 100 --secs $SECS
    record sends9000 "$BIN/bench_limits" sends --conns 9000 --secs $SECS
    record sends9000.r11 "$BIN/bench_limits" sends --conns 9000 --rate 11 --secs $SECS
    record fsync "$BIN/bench_limits" fsync --dir "$TMP" --secs $SECS
done
echo
echo "== limits summary: median [min..max] over runs; load at end $(cut -d' ' -f1-3 /proc/loadavg)"
for l in sends1000 sends1000.r100 sends9000 sends9000.r11; do
    echo "$l: $(ok $l); sends/s $(summ $l sends_per_s); sender us/send" \
        "$(summ $l sender_cpu_us_per_send); round ms p50 $(summ $l round_p50_ms)" \
        "p99 $(summ $l round_p99_ms)"
done
echo "fsync: $(ok fsync); syncs/s $(summ fsync syncs_per_s); us/sync $(summ fsync us_per_sync)"
echo "results: $RESULTS"
