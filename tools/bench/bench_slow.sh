#!/usr/bin/env bash
# bench_slow.sh - issue 6 hardening "slow and stalled consumers" with the C client: do the
# fast subscribers keep their latency while others read slowly or not at all?
#   (a) FAST fast SSE subscribers alone (default 890);
#   (b) the same FAST + SLOW reading 1 KB/s (default 100) + STALLED reading nothing after
#       the headers (default 10), both with a small SO_RCVBUF (bench_fanout --slow/--stalled),
# alternately (a), (b), (a), (b)... --runs times, one stream at --rate events/s of 200 B
# posted --batch per POST, for --secs, each run on a fresh `rtlog serve --stall-timeout
# STALL` (short, so the stalled ones are closed within the run). The stream first gets a
# --backlog of 16,000 events (~4.5 MB as SSE frames): the fast subscribers start after it
# (Last-Event-ID), the slow and stalled ones at seq 1, so they read from the store and fill
# the server's socket buffer (up to 4 MiB with Linux's default tcp_wmem) at once; without
# that, a stalled socket at 1,000 events/s would take ~13 s to fill before its stall clock
# even starts. While a run lasts, every second (plus the sampling's own time, ~0.2-1 s on
# a loaded machine): server RSS, data.mdb size, LMDB read transactions open (mdb_stat -e -r,
# package lmdb-utils), SSE connections, the server's stream sockets with more than 1 MB
# queued and the largest queue (Send-Q, from ss: a full 4 MiB buffer held ~1.99 MB of
# 285-byte frames here), rtlog_stalled_closed_total and the kernel's TCP memory (sockstat).
# Prints each run's line, the sample curves and a summary: fast p50/p99 (a) and (b), the
# ratio fast-p99(b)/fast-p99(a) per pair, RSS peak, data.mdb growth, stall closes, resumes.
# usage: tools/bench/bench_slow.sh [--runs 3] [--rate 1000] [--batch 10] [--secs 30]
#        [--stall 5] [--fast 890] [--slow 100] [--stalled 10] [--event-bytes 200]
#        [--backlog 16000]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
RATE=1000 BATCH=10 SECS=30 STALL=5 NFAST=890 NSLOW=100 NSTALLED=10 EBYTES=200 BACKLOG=16000
set -- "${ARGS[@]+"${ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
    --rate) RATE=$2 ;;
    --batch) BATCH=$2 ;;
    --secs) SECS=$2 ;;
    --stall) STALL=$2 ;;
    --fast) NFAST=$2 ;;
    --slow) NSLOW=$2 ;;
    --stalled) NSTALLED=$2 ;;
    --event-bytes) EBYTES=$2 ;;
    --backlog) BACKLOG=$2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
    shift 2
done
[ "$QUICK" = 1 ] && SECS=20
machine
echo "== shape: rate=$RATE batch=$BATCH secs=$SECS stall_timeout=$STALL fast=$NFAST" \
    "slow=$NSLOW (1024 B/s) stalled=$NSTALLED event_bytes=$EBYTES backlog=$BACKLOG"

# sampler FILE: one line a second until killed: t_ms rss_kb mdb_bytes readers sse
# queued_1mb stalled_closed tcp_mem_pages max_sendq_bytes txnids last_txnid (txnids: the
# snapshots of the open read transactions, comma-separated, "-" for none; last_txnid: the
# store's last commit. A pinned snapshot is one seen in consecutive samples while commits
# go on past it; once writes stop every reader sees the same txnid and that says nothing.)
sampler() {
    local f=$1 m
    while kill -0 "$SRV_PID" 2>/dev/null; do
        m=$(curl -s -m 1 "http://127.0.0.1:$PORT/metrics" || true)
        echo "$(date +%s%3N)" \
            "$(awk '/^VmRSS:/ { print $2 }' "/proc/$SRV_PID/status" 2>/dev/null || echo 0)" \
            "$(stat -c %s "$DATA/data.mdb" 2>/dev/null || echo 0)" \
            "$(mdb_stat -e -r "$DATA" >"$f.mdb" 2>/dev/null
               awk '/^ +[0-9]+ +[0-9a-f]+ +([0-9]+|-)$/ && $3 != "-" { n++ } END { print n + 0 }' "$f.mdb")" \
            "$(echo "$m" | awk '/^rtlog_connections\{transport="sse"\}/ { print $2 }')" \
            "$(ss -Htn state established "( sport = :$PORT )" >"$f.ss"
               awk '$2 > 1000000 { n++ } END { print n + 0 }' "$f.ss")" \
            "$(echo "$m" | awk '/^rtlog_stalled_closed_total/ { print $2 }')" \
            "$(awk '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat)" \
            "$(awk '$2 > m { m = $2 } END { print m + 0 }' "$f.ss")" \
            "$(awk '/^ +[0-9]+ +[0-9a-f]+ +[0-9]+$/ { t = t (t ? "," : "") $3 }
                END { print t ? t : "-" }' "$f.mdb")" \
            "$(awk '/Last transaction ID:/ { print $4 }' "$f.mdb")" \
            >>"$f"
        sleep 1
    done
}

one() { # one LABEL RUN [bench flags...]
    local label=$1 run=$2 id smp
    shift 2
    id="s$label$run"
    start_rtlog "$id" --stall-timeout "$STALL"
    local mdb0
    mdb0=$(stat -c %s "$DATA/data.mdb")
    smp=$TMP/samples.$label.$run
    sampler "$smp" &
    local spid=$!
    echo "-- $label run $run: $(uptime | sed 's/^ *//')"
    record "$label" "$BIN/bench_fanout" --target rtlog --port "$PORT" --token "$TOKEN" \
        --create-path "/api/v1/workflow-runs/$id/events" \
        --sub-path "/api/v1/workflow-runs/$id/stream" \
        --pub-path "/api/v1/workflow-runs/$id/events" --server-pid "$SRV_PID" \
        --rate "$RATE" --batch "$BATCH" --secs "$SECS" --event-bytes "$EBYTES" \
        --backlog "$BACKLOG" --pub-conns 16 --pub-deadline $((SECS + 15)) --drain-secs 120 "$@"
    stop_pid "$spid"
    local mdb1 pub
    mdb1=$(stat -c %s "$DATA/data.mdb")
    stop_rtlog
    pub=$(awk -v l="$label" '$1 == l' "$RESULTS" | tail -1 | grep -o ' published=[0-9]*' |
        cut -d= -f2)
    echo "$label.mdb rc=0 mdb_before=$mdb0 mdb_after=$mdb1 mdb_growth=$((mdb1 - mdb0))" \
        "mdb_bytes_per_event=$(((mdb1 - mdb0) / (BACKLOG + ${pub:-0} + 1)))" \
        "txn_pinned_samples_max=$(awk '{ split($10, r, ","); c = 0
            for (i in r) if (r[i] != "-" && (r[i] in prev) && $11 > r[i]) c = 1
            n = c ? n + 1 : 0; if (n > m) m = n
            delete prev; for (i in r) prev[r[i]] = 1 } END { print m + 0 }' "$smp")" \
        "rss_peak_kb=$(awk '$2 > m { m = $2 } END { print m + 0 }' "$smp")" \
        "readers_max=$(awk '$4 > m { m = $4 } END { print m + 0 }' "$smp")" \
        "tcp_mem_peak_pages=$(awk '$8 > m { m = $8 } END { print m + 0 }' "$smp")" \
        | tee -a "$RESULTS"
}

for run in $(seq "$RUNS"); do
    one a "$run" --subs "$NFAST"
    one b "$run" --subs $((NFAST + NSLOW + NSTALLED)) --slow "$NSLOW" --slow-bps 1024 \
        --stalled "$NSTALLED"
done

# curve FILE PUB_START_MS: the samples, t from the first POST
curve() {
    awk -v t0="$2" 'BEGIN { printf "%7s %8s %9s %7s %5s %6s %6s %7s %8s\n", "t_s", "rss_MiB",
            "mdb_MiB", "readers", "sse", "q>1MB", "maxQMB", "stalled", "tcp_MiB" }
        { printf "%7.1f %8.1f %9.2f %7d %5d %6d %6.2f %7d %8.1f\n", ($1 - t0) / 1000, $2 / 1024,
            $3 / 1048576, $4, $5, $6, $9 / 1e6, $7, $8 * 4096 / 1048576 }' "$1"
}
echo
for run in $(seq "$RUNS"); do
    for l in a b; do
        ps=$(awk -v l="$l" -v r="$run" '$1 == l { if (++n == r) for (i = 2; i <= NF; i++)
            if ($i ~ /^pub_start_ms=/) { sub(/.*=/, "", $i); print $i } }' "$RESULTS")
        [ -n "$ps" ] || ps=$(head -1 "$TMP/samples.$l.$run" | cut -d' ' -f1)
        echo "== samples $l run $run (t from the first POST; q>1MB: server sockets with more" \
            "than 1 MB unsent; stalled: rtlog_stalled_closed_total)"
        curve "$TMP/samples.$l.$run" "$ps"
    done
done

echo
echo "== slow/stalled summary: median [min..max] over runs; load at end $(cut -d' ' -f1-3 /proc/loadavg)"
for l in a b; do
    echo "$l: $(ok $l); subs $(med $l subs), published/s $(summ $l pub_rate) of $RATE"
    echo "   fast lat p50 us $(summ $l lat_p50_us)  p99 us $(summ $l lat_p99_us)" \
        " e2e p99 us $(summ $l e2e_p99_us)  delivered/s $(summ $l delivered_per_s)"
    echo "   server CPU % $(summ $l server_cpu_pct)  client CPU % $(summ $l client_cpu_pct)" \
        " machine busy % (200 = both cores) $(summ $l machine_busy_pct)"
    echo "   RSS peak KiB $(summ $l.mdb rss_peak_kb)  data.mdb growth B $(summ $l.mdb mdb_growth)" \
        " (per event stored $(summ $l.mdb mdb_bytes_per_event))  read txns open max" \
        "$(summ $l.mdb readers_max), samples in a row holding one snapshot while commits went past it" \
        "$(summ $l.mdb txn_pinned_samples_max)  kernel TCP mem peak pages $(summ $l.mdb tcp_mem_peak_pages)"
done
echo "b: slow closed by the server $(summ b slow_closed_subs) of $NSLOW (closes $(summ b slow_closes))," \
    "stalled closed $(summ b stalled_closed_subs) of $NSTALLED, slow read B/s $(summ b slow_rx_Bps)," \
    "catch-up after publishing s $(summ b catchup_s), missing $(summ b missing) dups $(summ b dups)" \
    "order errors $(summ b order_errors), frame bytes $(summ b frame_bytes)"
echo "ratio fast-p99 (b)/(a) per run: $(pair_ratios b a lat_p99_us); fast-p50: $(pair_ratios b a lat_p50_us)"
echo "results: $RESULTS"
