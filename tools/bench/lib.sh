# lib.sh - shared by the scenario scripts of tools/bench/ (sourced, not run).
#
# Builds `rtlog` and the bench clients in a Release build directory, starts `rtlog serve`
# and nginx+nchan on 127.0.0.1 (free port, temp data dir / prefix, nchan: 1 worker), ends
# every process it started by its pid (trap on exit), records each client's key=value line
# under a label, and summarises repeated runs as median [min..max]. Everything is bounded.
# nchan needs, once, by hand (not in tools/deps.sh: CI does not run benchmarks):
#   apt-get install -y --no-install-recommends nginx-light libnginx-mod-nchan
# Common flags of every scenario script: --runs N (default 3), --no-nchan, --quick.
# env: BUILD (default <repo>/build-bench), KEEP=1 keeps the temp directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
RUNS=3 NCHAN=1 QUICK=0
ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) RUNS=$2; shift ;;
    --no-nchan) NCHAN=0 ;;
    --quick) QUICK=1 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
    *) ARGS+=("$1") ;;
    esac
    shift
done

# A process may hold at most 20,000 files here (hard limit): use what there is.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDL=$(ulimit -n)
[ "$FDL" = unlimited ] && FDL=65536
[ "$FDL" -gt 65536 ] && FDL=65536

# Release, no sanitizers, -Werror as in CI (the bench measures the shipped build).
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRTLOG_SANITIZE= >/dev/null
cmake --build "$BUILD" --target rtlog bench_fanout bench_catchup bench_idle bench_ingest -j2 \
    >/dev/null
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
RESULTS=${RESULTS:-$TMP/results.txt}
: >>"$RESULTS"
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

# start_rtlog NAME [extra serve flags...]: data dir $TMP/NAME (kept if it exists)
start_rtlog() {
    local name=$1
    shift
    PORT=$(free_port)
    DATA=$TMP/$name
    "$RTLOG" serve --listen "127.0.0.1:$PORT" --data "$DATA" --log-level warn \
        --max-connections $((FDL - 200)) --max-connections-per-subject $((FDL - 200)) \
        --max-preauth-connections $((FDL - 200)) --max-preauth-per-ip $((FDL - 200)) \
        --fd-limit "$FDL" "$@" >>"$TMP/$name.log" 2>&1 &
    SRV_PID=$!
    wait_http "http://127.0.0.1:$PORT/health/live"
    TOKEN=$("$RTLOG" token --data "$DATA" --subscribe '*' --publish '*' --ttl 7200)
}
stop_rtlog() { stop_pid "$SRV_PID"; SRV_PID=""; }

# start_nchan: nginx 1 worker, conf tools/bench/nchan/nginx.conf; NWORKER = the worker's pid
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
    echo "$label rc=$rc load=$(cut -d' ' -f1 /proc/loadavg) $out" | tee -a "$RESULTS"
}

machine() {
    echo "== machine: nproc=$(nproc) model=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 |
        sed 's/^ //')\" kernel=$(uname -r) rev=$(git -C "$ROOT" rev-parse --short HEAD \
        2>/dev/null || echo none) ulimit_n=$FDL uptime=\"$(uptime | sed 's/^ *//')\""
}

# summ LABEL KEY: "median [min..max] (n)" over every line recorded under LABEL
summ() {
    awk -v l="$1" -v k="$2" '$1 == l { for (i = 2; i <= NF; i++) { split($i, kv, "=");
            if (kv[1] == k) v[n++] = kv[2] + 0 } }
        END { if (!n) { print "-"; exit }
              for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) {
                  t = v[i]; v[i] = v[j]; v[j] = t }
              m = n % 2 ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
              printf "%s [%s..%s] (n=%d)", fmt(m), fmt(v[0]), fmt(v[n - 1]), n }
        function fmt(x) { return x >= 100 || x == int(x) ? sprintf("%.0f", x) : sprintf("%.3g", x) }' \
        "$RESULTS"
}
# med LABEL KEY: the median alone (empty when nothing was recorded)
med() { summ "$1" "$2" | awk '$1 != "-" { print $1 }'; }
# ratio A B: A/B with 2 decimals, or "-"
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-";
        else printf "%.2f", a / b }'
}
# pair_ratios LABEL_A LABEL_B KEY: the ratio A/B of each run (runs recorded in the same order)
pair_ratios() {
    awk -v a="$1" -v b="$2" -v k="$3" '
        function val(   i, kv) { for (i = 2; i <= NF; i++) { split($i, kv, "=");
            if (kv[1] == k) return kv[2] + 0 } return "" }
        $1 == a { x[na++] = val() } $1 == b { y[nb++] = val() }
        END { for (i = 0; i < na && i < nb; i++) printf "%s%.2f", i ? " " : "",
            (y[i] ? x[i] / y[i] : 0); print "" }' "$RESULTS"
}
# ok LABEL: "all N runs rc=0" or how many failed
ok() {
    awk -v l="$1" '$1 == l { n++; if ($2 != "rc=0") bad++ }
        END { if (!n) print "-"; else if (bad) printf "%d of %d runs FAILED (rc!=0)", bad, n;
              else printf "all %d runs rc=0", n }' "$RESULTS"
}
