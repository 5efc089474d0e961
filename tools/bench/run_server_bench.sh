#!/usr/bin/env bash
# run_server_bench.sh - the server benchmarks of issue 3, rtlog and nginx+nchan side by side.
#
# Builds `rtlog` and the three clients (bench_fanout, bench_catchup, bench_idle) in a Release
# build directory, then on 127.0.0.1 only, each against a freshly started server:
#   1. fan-out : 1 run, 1,000 SSE subscribers, 1,000 events/s of 200 B for 10 s
#                (rtlog: 1 event per POST every 1 ms, then 10 per POST every 10 ms, then
#                 --nosync; nchan: 1 event per POST every 1 ms), plus a rate sweep
#   2. catch-up: one SSE subscriber replays a 100,000-event run (follow=false)
#   3. idle    : 10,000 idle SSE, then 10,000 idle WebSocket connections: RSS per connection
# and prints one key=value line per measurement plus a summary with rtlog/nchan ratios.
# Every process it starts is recorded by pid and ended by that pid (trap on exit); every
# loop is bounded. nchan needs `apt-get install -y --no-install-recommends nginx-light
# libnginx-mod-nchan` (installed by hand for the bench; not in tools/deps.sh); without
# nginx the nchan runs are skipped.
#
# usage: tools/bench/run_server_bench.sh [--quick] [--no-nchan] [--only fanout|sweep|catchup|idle]
#   --quick : 3 s fan-out, no sweep, 2,000 idle connections (a smoke run, not figures)
# env: BUILD (default <repo>/build-bench), KEEP=1 keeps the temp directory.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
QUICK=0 NCHAN=1 ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --no-nchan) NCHAN=0 ;;
    --only) ONLY=$2; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

SECS=10 SUBS=1000 RATE=1000 IDLE=10000 SWEEP="100 200 400"
[ "$QUICK" = 1 ] && { SECS=3; IDLE=2000; SWEEP=""; }

# 10,000 client sockets in this process's children plus the servers' own: raise the limit
# (root may raise the hard limit; otherwise stay within it).
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
FDL=$(ulimit -n)
[ "$FDL" = unlimited ] && FDL=65536
[ "$FDL" -gt 65536 ] && FDL=65536
if [ "$FDL" -lt $((IDLE + 1000)) ]; then
    echo "ulimit -n is $(ulimit -n); need $((IDLE + 1000)) for $IDLE idle connections" >&2
    exit 2
fi

# ---- build ---------------------------------------------------------------------------
# Release, no sanitizers. -Werror is off here: this build measures, CI is where warnings fail.
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRTLOG_SANITIZE= -DRTLOG_WERROR=OFF \
    >/dev/null
cmake --build "$BUILD" --target rtlog bench_fanout bench_catchup bench_idle -j2 >/dev/null
RTLOG=$BUILD/tools/rtlog
BIN=$BUILD/tools/bench
HAVE_NGINX=0
if [ "$NCHAN" = 1 ] && command -v nginx >/dev/null &&
    [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
    HAVE_NGINX=1
elif [ "$NCHAN" = 1 ]; then
    echo "nginx/nchan not installed: nchan runs skipped" \
        "(apt-get install -y --no-install-recommends nginx-light libnginx-mod-nchan)" >&2
fi

TMP=$(mktemp -d /tmp/rtlog-bench.XXXXXX)
RESULTS=$TMP/results.txt
: >"$RESULTS"
SRV_PID="" NGX_PID=""

stop_pid() { # stop_pid PID: TERM, wait up to 10 s, then KILL (only this pid)
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$SRV_PID"
    stop_pid "$NGX_PID"
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

wait_http() { # wait_http URL: up to 10 s for any HTTP answer
    local i
    for i in $(seq 100); do
        curl -s -o /dev/null -m 1 "$1" && return 0
        sleep 0.1
    done
    echo "server at $1 did not come up" >&2
    return 1
}

# start_rtlog NAME [extra serve flags...]: fresh data dir unless $TMP/NAME exists already
start_rtlog() {
    local name=$1
    shift
    PORT=$(free_port)
    DATA=$TMP/$name
    "$RTLOG" serve --listen "127.0.0.1:$PORT" --data "$DATA" --log-level warn \
        --max-connections $((FDL - 200)) --max-connections-per-subject $((FDL - 200)) \
        --fd-limit "$FDL" "$@" \
        >"$TMP/$name.log" 2>&1 &
    SRV_PID=$!
    wait_http "http://127.0.0.1:$PORT/health/live"
    TOKEN=$("$RTLOG" token --data "$DATA" --subscribe '*' --publish '*' --ttl 7200)
}
stop_rtlog() { stop_pid "$SRV_PID"; SRV_PID=""; }

start_nchan() {
    NPORT=$(free_port)
    local p=$TMP/nginx
    rm -rf "$p"
    mkdir -p "$p/conf" "$p/logs" "$p/tmp"
    sed "s/@PORT@/$NPORT/" "$ROOT/tools/bench/nchan/nginx.conf" >"$p/conf/nginx.conf"
    nginx -p "$p" -c conf/nginx.conf >"$p/logs/stdout.log" 2>&1 &
    NGX_PID=$!
    wait_http "http://127.0.0.1:$NPORT/"
    NWORKER=$(pgrep -P "$NGX_PID" | head -1)
    [ -n "$NWORKER" ] || { echo "no nginx worker" >&2; return 1; }
}
stop_nchan() { stop_pid "$NGX_PID"; NGX_PID=""; }

record() { # record LABEL COMMAND...: run, keep its key=value line under LABEL
    local label=$1 out rc=0
    shift
    out=$("$@") || rc=$?
    echo "$label rc=$rc $out" | tee -a "$RESULTS"
}

# ---- machine ---------------------------------------------------------------------------
echo "== machine: nproc=$(nproc) model=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 |
    sed 's/^ //')\" kernel=$(uname -r) mem=$(free -g | awk '/Mem:/{print $2}')GiB" \
    "rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)" \
    "loadavg=\"$(cut -d' ' -f1-3 /proc/loadavg)\""

fanout_rtlog() { # fanout_rtlog LABEL STREAM [bench flags...]
    local label=$1 id=$2
    shift 2
    record "$label" "$BIN/bench_fanout" --target rtlog --port "$PORT" --token "$TOKEN" \
        --create-path "/api/v1/workflow-runs/$id/events" \
        --sub-path "/api/v1/workflow-runs/$id/stream" \
        --pub-path "/api/v1/workflow-runs/$id/events" --server-pid "$SRV_PID" "$@"
}
fanout_nchan() { # fanout_nchan LABEL CHANNEL [bench flags...]
    local label=$1 id=$2
    shift 2
    record "$label" "$BIN/bench_fanout" --target nchan --port "$NPORT" \
        --sub-path "/sub?id=$id" --pub-path "/pub?id=$id" --server-pid "$NWORKER" "$@"
}

# ---- 1. fan-out ------------------------------------------------------------------------
if want fanout; then
    echo "== fan-out: $SUBS SSE subscribers, $RATE events/s x ${SECS}s, 200 B events"
    F=(--subs "$SUBS" --rate "$RATE" --secs "$SECS" --event-bytes 200 --pub-conns 16)
    start_rtlog fan
    fanout_rtlog fanout.rtlog.b1 f1 "${F[@]}" --batch 1
    fanout_rtlog fanout.rtlog.b10 f10 "${F[@]}" --batch 10
    stop_rtlog
    start_rtlog fan-nosync --nosync
    fanout_rtlog fanout.rtlog-nosync.b1 f1 "${F[@]}" --batch 1
    stop_rtlog
    if [ "$HAVE_NGINX" = 1 ]; then
        start_nchan
        fanout_nchan fanout.nchan.b1 f1 "${F[@]}"
        stop_nchan
    fi
fi

# ---- 1b. rate sweep: where does p99 stay within 10 ms? ----------------------------------
if want sweep && [ -n "$SWEEP" ]; then
    echo "== fan-out rate sweep: $SUBS subscribers, events/s in: $SWEEP (1 event per POST)"
    start_rtlog sweep
    for r in $SWEEP; do
        fanout_rtlog "sweep.rtlog.r$r" "s$r" --subs "$SUBS" --rate "$r" --secs "$SECS"
    done
    stop_rtlog
    if [ "$HAVE_NGINX" = 1 ]; then
        start_nchan
        for r in $SWEEP; do
            fanout_nchan "sweep.nchan.r$r" "s$r" --subs "$SUBS" --rate "$r" --secs "$SECS"
        done
        stop_nchan
    fi
fi

# ---- 2. catch-up -----------------------------------------------------------------------
if want catchup; then
    N=100000
    echo "== catch-up: one subscriber replays $N stored events (follow=false)"
    awk -v n=$N 'BEGIN { for (i = 1; i <= n; i++)
        printf "{\"type\":\"step_log\",\"nodeId\":\"step-%03d\",\"line\":\"catch-up event %07d " \
               "padding padding padding padding padding padding padding padding pad\"," \
               "\"level\":\"info\",\"timestamp\":\"2026-01-10T14:23:50Z\"}\n", i % 50, i }' \
        >"$TMP/c100k.ndjson"
    "$RTLOG" import --data "$TMP/catchup" workflow-runs/c100k "$TMP/c100k.ndjson" >/dev/null
    start_rtlog catchup
    record catchup.rtlog "$BIN/bench_catchup" --port "$PORT" --token "$TOKEN" \
        --path "/api/v1/workflow-runs/c100k/stream?follow=false" --expect $N --repeat 7 \
        --server-pid "$SRV_PID"
    stop_rtlog
    # the same store, one knob: bytes of frames per socket write (default 32KiB)
    start_rtlog catchup --sse-write-bytes 256KiB
    record catchup.rtlog-w256k "$BIN/bench_catchup" --port "$PORT" --token "$TOKEN" \
        --path "/api/v1/workflow-runs/c100k/stream?follow=false" --expect $N --repeat 7 \
        --server-pid "$SRV_PID"
    stop_rtlog
    if [ "$HAVE_NGINX" = 1 ]; then
        # load the same 100,000 events into one nchan channel (1 subscriber keeps it alive),
        # then replay them from the oldest with EventSource
        start_nchan
        "$BIN/bench_fanout" --target nchan --port "$NPORT" --sub-path "/sub?id=c100k" \
            --pub-path "/pub?id=c100k" --subs 1 --rate 20000 --secs 5 --event-bytes 200 \
            --pub-conns 16 >/dev/null || echo "loading nchan was incomplete" >&2
        record catchup.nchan "$BIN/bench_catchup" --port "$NPORT" --path "/suball?id=c100k" \
            --ids any --expect $N --repeat 1 --server-pid "$NWORKER"
        stop_nchan
    fi
fi

# ---- 3. idle ---------------------------------------------------------------------------
if want idle; then
    echo "== idle: $IDLE idle connections, server RSS per connection (fresh server each)"
    for mode in sse ws; do
        start_rtlog "idle-$mode"
        curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" \
            -H 'Content-Type: application/json' -d '[]' \
            "http://127.0.0.1:$PORT/api/v1/workflow-runs/idle/events"
        sleep 1
        if [ $mode = sse ]; then
            record idle.rtlog.sse "$BIN/bench_idle" --mode sse --port "$PORT" --token "$TOKEN" \
                --path /api/v1/workflow-runs/idle/stream --conns "$IDLE" --hold-secs 5 \
                --server-pid "$SRV_PID"
        else
            record idle.rtlog.ws "$BIN/bench_idle" --mode ws --port "$PORT" \
                --path "/api/v1/workflow-runs/idle/stream?token=$TOKEN" --conns "$IDLE" \
                --hold-secs 5 --server-pid "$SRV_PID"
        fi
        stop_rtlog
        if [ "$HAVE_NGINX" = 1 ]; then
            start_nchan
            sleep 1
            path=/sub?id=idle
            [ $mode = ws ] && path=/subws?id=idle
            record "idle.nchan.$mode" "$BIN/bench_idle" --mode $mode --port "$NPORT" \
                --path "$path" --conns "$IDLE" --hold-secs 5 --server-pid "$NWORKER"
            stop_nchan
        fi
    done
fi

# ---- summary ---------------------------------------------------------------------------
get() { # get LABEL KEY
    awk -v l="$1" -v k="$2" '$1 == l { for (i = 2; i <= NF; i++) { split($i, kv, "=");
        if (kv[1] == k) { print kv[2]; exit } } }' "$RESULTS"
}
ratio() { # ratio A B: A/B with 2 decimals, or "-"
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-";
        else printf "%.2f", a / b }'
}
echo
echo "== summary (rtlog vs nchan: ratio = rtlog / nchan)"
if want fanout; then
    printf '%-26s %10s %8s %8s %9s %9s %8s %8s %6s\n' run delivered/s p50_us p99_us \
        missing srv_cpu% us/deliv machine% rc
    for l in fanout.rtlog.b1 fanout.rtlog.b10 fanout.rtlog-nosync.b1 fanout.nchan.b1; do
        [ -n "$(get $l rc)" ] || continue
        printf '%-26s %10s %8s %8s %9s %9s %8s %8s %6s\n' $l "$(get $l delivered_per_s)" \
            "$(get $l lat_p50_us)" "$(get $l lat_p99_us)" "$(get $l missing)" \
            "$(get $l server_cpu_pct)" "$(get $l server_cpu_us_per_delivery)" \
            "$(get $l machine_busy_pct)" "$(get $l rc)"
    done
    echo "fan-out ratios (1 event/POST, fsync on): delivered/s" \
        "$(ratio "$(get fanout.rtlog.b1 delivered_per_s)" \
            "$(get fanout.nchan.b1 delivered_per_s)")," \
        "p99 $(ratio "$(get fanout.rtlog.b1 lat_p99_us)" "$(get fanout.nchan.b1 lat_p99_us)")," \
        "server CPU per delivery" \
        "$(ratio "$(get fanout.rtlog.b1 server_cpu_us_per_delivery)" \
            "$(get fanout.nchan.b1 server_cpu_us_per_delivery)")"
fi
if want sweep && [ -n "$SWEEP" ]; then
    for r in $SWEEP; do
        for s in rtlog nchan; do
            l=sweep.$s.r$r
            [ -n "$(get $l rc)" ] || continue
            printf '%-26s %10s %8s %8s %9s %9s %8s %8s %6s\n' $l "$(get $l delivered_per_s)" \
                "$(get $l lat_p50_us)" "$(get $l lat_p99_us)" "$(get $l missing)" \
                "$(get $l server_cpu_pct)" "$(get $l server_cpu_us_per_delivery)" \
                "$(get $l machine_busy_pct)" "$(get $l rc)"
        done
    done
fi
if want catchup; then
    for l in catchup.rtlog catchup.rtlog-w256k catchup.nchan; do
        [ -n "$(get $l rc)" ] || continue
        echo "$l: median $(get $l median_events_per_s) events/s, best" \
            "$(get $l best_events_per_s), server $(get $l median_server_cpu_ns_per_event) ns/event"
    done
    echo "catch-up ratio (median events/s): $(ratio "$(get catchup.rtlog median_events_per_s)" \
        "$(get catchup.nchan median_events_per_s)")"
fi
if want idle; then
    for l in idle.rtlog.sse idle.nchan.sse idle.rtlog.ws idle.nchan.ws; do
        [ -n "$(get $l rc)" ] || continue
        echo "$l: $(get $l per_conn_bytes) B per idle connection" \
            "(RSS $(get $l rss_before_kib) -> $(get $l rss_after_kib) KiB)"
    done
    echo "idle ratios (bytes per connection): sse" \
        "$(ratio "$(get idle.rtlog.sse per_conn_bytes)" "$(get idle.nchan.sse per_conn_bytes)")," \
        "ws $(ratio "$(get idle.rtlog.ws per_conn_bytes)" "$(get idle.nchan.ws per_conn_bytes)")"
fi
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
