/* config.c - every setting of `rtlog serve`, defined once.
 *
 * One table (name, environment variable, type, default, min, max, help) drives the flag
 * parser, the environment, the optional `key = value` config file, validation, --help
 * and --print-config, so a setting cannot exist in one place and be missing in another.
 * Precedence is what operators expect: flag > environment > file > default. Durations are
 * kept in milliseconds (a value may be written "15", "1.5", "500ms", "2s", "1m"); sizes in
 * bytes ("1048576", "64KiB", "1MiB", "1M", "2GiB"). Zero means "the default" only where the
 * table says so in its help text.
 */
#include "rtlog_server.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum { T_STR, T_DUR, T_BYTES, T_UINT, T_BOOL } vtype;

typedef struct setting {
    const char *name; /* flag and file key: --name, name = value */
    const char *env;  /* environment variable */
    vtype type;
    size_t off;       /* offset of the field in rtlog_server_config */
    const char *def;  /* default, written as a user would write it */
    uint64_t min, max; /* numeric range in the stored unit (ms, bytes, count) */
    const char *help;
} setting;

#define OFF(f) offsetof(rtlog_server_config, f)
#define KIB    ((uint64_t)1024)
#define MIB    ((uint64_t)1024 * 1024)
#define GIB    ((uint64_t)1024 * 1024 * 1024)

static const setting table[] = {
    {"listen", "RTLOG_LISTEN", T_STR, OFF(listen), "127.0.0.1:8080", 0, 0,
     "HOST:PORT to listen on ([::1]:PORT for IPv6; port 0 picks a free port)"},
    {"data", "RTLOG_DATA", T_STR, OFF(data), "./rtlog-data", 0, 0,
     "data directory (LMDB store, jwt-secret)"},
    {"jwt-alg", "RTLOG_JWT_ALG", T_STR, OFF(jwt_alg), "HS256", 0, 0,
     "the only JWT algorithm accepted: HS256, RS256 or ES256"},
    {"jwt-key", "RTLOG_JWT_KEY", T_STR, OFF(jwt_key), "", 0, 0,
     "key file: HS256 hex secret or RS256/ES256 public key PEM; empty = the data "
     "directory's HS256 secret (created on first start)"},
    {"secrets-key", "RTLOG_SECRETS_KEY", T_STR, OFF(secrets_key), "", 0, 0,
     "key file (64+ hex digits, mode 0600) sealing agents' task credentials at rest; empty = "
     "the data directory's secrets-key (created on first start)"},
    {"task-timeout", "RTLOG_TASK_TIMEOUT", T_DUR, OFF(task_timeout_ms), "3600", 1000,
     2592000000ull, "lease of an agent task whose assignment gives no timeout: no report "
     "for this long fails it (seconds)"},
    {"jwt-iss", "RTLOG_JWT_ISS", T_STR, OFF(jwt_iss), "", 0, 0,
     "required token issuer (iss); empty = not checked"},
    {"jwt-aud", "RTLOG_JWT_AUD", T_STR, OFF(jwt_aud), "", 0, 0,
     "required token audience (aud); empty = not checked"},
    {"jwt-leeway", "RTLOG_JWT_LEEWAY", T_DUR, OFF(jwt_leeway_ms), "60", 0, 3600000,
     "clock skew allowed on exp/nbf (seconds)"},
    {"heartbeat", "RTLOG_HEARTBEAT", T_DUR, OFF(heartbeat_ms), "15", 100, 3600000,
     "interval of WS {\"type\":\"heartbeat\"} and SSE `: heartbeat` (seconds)"},
    {"pong-timeout", "RTLOG_PONG_TIMEOUT", T_DUR, OFF(pong_timeout_ms), "30", 100, 3600000,
     "drop a WS that answers no heartbeat (JSON or RFC 6455 pong) for heartbeat + this "
     "(seconds)"},
    {"tcp-user-timeout", "RTLOG_TCP_USER_TIMEOUT", T_DUR, OFF(tcp_user_timeout_ms), "0", 0,
     3600000, "TCP_USER_TIMEOUT of stream sockets (WS + SSE): a peer that acknowledges no "
     "byte for this long is closed by the kernel and the server lets it go (a vanished SSE "
     "client is then found within heartbeat + this, not after minutes of TCP retries); "
     "0 = the pong-timeout (seconds)"},
    {"stream-sndbuf", "RTLOG_STREAM_SNDBUF", T_BYTES, OFF(stream_sndbuf), "256KiB", 0,
     64 * MIB, "SO_SNDBUF of stream sockets (WS + SSE; the kernel doubles it): bounds the "
     "kernel memory a subscriber that does not read can hold (Linux autotuning grows it to "
     "4 MiB) and how much it has queued when the stall timeout starts; 0 = kernel autotuning"},
    {"auth-timeout", "RTLOG_AUTH_TIMEOUT", T_DUR, OFF(auth_timeout_ms), "10", 100, 600000,
     "a WS without ?token= must send {\"type\":\"auth\"} within this (seconds)"},
    {"stall-timeout", "RTLOG_STALL_TIMEOUT", T_DUR, OFF(stall_timeout_ms), "60", 100,
     86400000, "close a stream socket that accepts no bytes for this long (seconds)"},
    {"drain-timeout", "RTLOG_DRAIN_TIMEOUT", T_DUR, OFF(drain_timeout_ms), "5", 100, 600000,
     "on SIGTERM, wait at most this long for clients and appends (seconds)"},
    {"max-event-bytes", "RTLOG_MAX_EVENT_BYTES", T_BYTES, OFF(max_event_bytes), "1MiB",
     256, 256 * MIB, "largest event accepted (canonical JSON); larger is 413"},
    {"max-body-bytes", "RTLOG_MAX_BODY_BYTES", T_BYTES, OFF(max_body_bytes), "64MiB", 1 * KIB,
     4 * GIB, "largest ingest request body; larger is 413"},
    {"max-ws-message", "RTLOG_MAX_WS_MESSAGE", T_BYTES, OFF(max_ws_message), "1MiB", 256,
     256 * MIB, "largest inbound WS message after reassembly; larger closes 1009"},
    {"max-preauth-bytes", "RTLOG_MAX_PREAUTH_BYTES", T_BYTES, OFF(max_preauth_bytes), "8KiB",
     256, 1 * MIB, "bytes a WS may send before it is authenticated; more closes 1009"},
    {"max-connections", "RTLOG_MAX_CONNECTIONS", T_UINT, OFF(max_connections), "10000", 1,
     1000000, "stream connections (WS + SSE) in total; more get 429 rate_limited"},
    {"max-connections-per-subject", "RTLOG_MAX_CONNECTIONS_PER_SUBJECT", T_UINT,
     OFF(max_connections_per_subject), "1000", 1, 1000000,
     "stream connections per token subject (sub); more get 429 rate_limited"},
    {"max-preauth-connections", "RTLOG_MAX_PREAUTH_CONNECTIONS", T_UINT,
     OFF(max_preauth_connections), "1024", 1, 1000000,
     "WebSockets not yet authenticated, in total (they do not count toward "
     "max-connections); more are refused: rate_limited + close 4429"},
    {"max-preauth-per-ip", "RTLOG_MAX_PREAUTH_PER_IP", T_UINT, OFF(max_preauth_per_ip), "64",
     1, 1000000, "WebSockets not yet authenticated per client IP; more: close 4429"},
    {"max-inflight-body-bytes", "RTLOG_MAX_INFLIGHT_BODY_BYTES", T_BYTES,
     OFF(max_inflight_body_bytes), "256MiB", 1 * KIB, 64 * GIB,
     "announced bytes of ingest bodies being received at once (all connections); a body "
     "that would go over gets 503 + Retry-After"},
    {"body-timeout", "RTLOG_BODY_TIMEOUT", T_DUR, OFF(body_timeout_ms), "30", 100, 3600000,
     "an ingest body not fully received within this gets 408 and the connection closes "
     "(seconds)"},
    {"origins", "RTLOG_ORIGINS", T_STR, OFF(origins), "", 0, 0,
     "comma-separated browser Origins allowed on WS and SSE; empty = no restriction "
     "(requests without Origin always pass)"},
    {"map-bytes", "RTLOG_MAP_BYTES", T_BYTES, OFF(map_bytes), "0", 0, 1024 * GIB,
     "initial LMDB map size; 0 = store default"},
    {"map-max-bytes", "RTLOG_MAP_MAX_BYTES", T_BYTES, OFF(map_max_bytes), "0", 0, 1024 * GIB,
     "the LMDB map never grows past this (storage full beyond); 0 = only the disk"},
    {"sse-retry-ms", "RTLOG_SSE_RETRY_MS", T_UINT, OFF(sse_retry_ms), "3000", 0, 600000,
     "the `retry:` hint sent first on every SSE stream (milliseconds)"},
    {"sse-write-bytes", "RTLOG_SSE_WRITE_BYTES", T_BYTES, OFF(sse_write_bytes), "32KiB",
     1 * KIB, RTLOG_MAX_WRITE_BYTES,
     "SSE frames (and WebSocket event messages) written per socket write (one write per "
     "writable)"},
    {"catchup-write-bytes", "RTLOG_CATCHUP_WRITE_BYTES", T_BYTES, OFF(catchup_write_bytes),
     "256KiB", 0, RTLOG_MAX_WRITE_BYTES,
     "a subscriber that is behind may get up to this much per socket write, as far as its "
     "socket's send buffer has room (what the kernel does not take stays within "
     "sse-write-bytes); below sse-write-bytes = off"},
    {"replay-cache-bytes", "RTLOG_REPLAY_CACHE_BYTES", T_BYTES, OFF(replay_cache_bytes),
     "32MiB", 0, 64 * GIB,
     "memory for rendered frames of stored events shared by subscribers catching up the same "
     "backlog (least recently used first out); 0 = no cache"},
    {"fd-limit", "RTLOG_FD_LIMIT", T_UINT, OFF(fd_limit), "16384", 64, 1048576,
     "size of the socket table (max connections is a little below this); also set as the "
     "soft RLIMIT_NOFILE (bounded by the hard limit)"},
    {"nosync", "RTLOG_NOSYNC", T_BOOL, OFF(nosync), "false", 0, 1,
     "skip fsync on commit (tests and benchmarks only: acknowledged events may be lost "
     "on a machine crash)"},
    {"dashboard-retain-events", "RTLOG_DASHBOARD_RETAIN_EVENTS", T_UINT,
     OFF(dashboard_retain_events), "10000", 0, 1000000000000ull,
     "retention of the dashboard stream: keep about this many newest events (trimmed back to "
     "it once over by 1/16; the latest metric_update and what follows it always stay); "
     "0 = no count limit"},
    {"dashboard-retain-seconds", "RTLOG_DASHBOARD_RETAIN_SECONDS", T_DUR,
     OFF(dashboard_retain_ms), "168h", 0, 100ull * 365 * 24 * 3600000,
     "retention of the dashboard stream: remove events whose timestamp is older than this "
     "(seconds or 90m, 24h; default 7 days); 0 = no age limit"},
    {"dashboard-retain-interval", "RTLOG_DASHBOARD_RETAIN_INTERVAL", T_DUR,
     OFF(dashboard_retain_interval_ms), "10", 100, 3600000,
     "how often dashboard retention is checked (seconds)"},
    {"log-level", "RTLOG_LOG_LEVEL", T_STR, OFF(log_level), "info", 0, 0,
     "error, warn, info or debug (logs go to stderr; tokens are never logged)"},
};

#define NSET (sizeof table / sizeof table[0])
_Static_assert(NSET <= sizeof(((rtlog_server_config *)0)->source) /
                          sizeof(((rtlog_server_config *)0)->source[0]),
               "rtlog_server_config.source is too small for the settings table");

static const char *source_name(rtlog_cfg_source s)
{
    switch (s) {
    case RTLOG_CFG_FILE:
        return "file";
    case RTLOG_CFG_ENV:
        return "env";
    case RTLOG_CFG_FLAG:
        return "flag";
    default:
        return "default";
    }
}

static const setting *find_setting(const char *name, size_t len)
{
    for (size_t i = 0; i < NSET; i++) {
        const char *n = table[i].name;
        if (strlen(n) != len)
            continue;
        size_t j = 0;
        /* file keys may use '_' for '-' (jwt_alg = HS256) */
        while (j < len && (n[j] == name[j] || (n[j] == '-' && name[j] == '_')))
            j++;
        if (j == len)
            return &table[i];
    }
    return NULL;
}

/* Strict unsigned decimal with an optional fraction (for durations). */
static int parse_number(const char *s, const char **end, uint64_t *ip, uint64_t *frac_num,
                        uint64_t *frac_den)
{
    uint64_t v = 0, fn = 0, fd = 1;
    const char *p = s;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (*p == '.' && frac_num) {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        for (; isdigit((unsigned char)*p); p++) {
            if (fd < 1000000000ull) {
                fn = fn * 10 + (uint64_t)(*p - '0');
                fd *= 10;
            }
        }
    }
    *end = p;
    *ip = v;
    if (frac_num) {
        *frac_num = fn;
        *frac_den = fd;
    }
    return 0;
}

static int mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b && a > UINT64_MAX / b)
        return 0;
    *out = a * b;
    return 1;
}

static int parse_dur_ms(const char *s, uint64_t *out)
{
    const char *p;
    uint64_t ip, fn, fd, unit = 1000; /* seconds by default */
    if (parse_number(s, &p, &ip, &fn, &fd))
        return -1;
    if (*p == '\0' || strcmp(p, "s") == 0)
        unit = 1000;
    else if (strcmp(p, "ms") == 0)
        unit = 1;
    else if (strcmp(p, "m") == 0)
        unit = 60000;
    else if (strcmp(p, "h") == 0)
        unit = 3600000;
    else
        return -1;
    uint64_t v;
    if (!mul_ok(ip, unit, &v))
        return -1;
    uint64_t f = fn * unit / fd; /* fn < fd <= 1e9 and unit <= 3.6e6: no overflow */
    if (v > UINT64_MAX - f)
        return -1;
    *out = v + f;
    return 0;
}

static int parse_bytes(const char *s, uint64_t *out)
{
    const char *p;
    uint64_t ip, unit;
    if (parse_number(s, &p, &ip, NULL, NULL))
        return -1;
    if (*p == '\0' || strcmp(p, "B") == 0)
        unit = 1;
    else if (!strcmp(p, "K") || !strcmp(p, "KiB") || !strcmp(p, "k") || !strcmp(p, "KB"))
        unit = KIB;
    else if (!strcmp(p, "M") || !strcmp(p, "MiB") || !strcmp(p, "MB"))
        unit = MIB;
    else if (!strcmp(p, "G") || !strcmp(p, "GiB") || !strcmp(p, "GB"))
        unit = GIB;
    else
        return -1;
    return mul_ok(ip, unit, out) ? 0 : -1;
}

static int parse_uint(const char *s, uint64_t *out)
{
    const char *p;
    if (parse_number(s, &p, out, NULL, NULL) || *p)
        return -1;
    return 0;
}

static int parse_bool(const char *s, uint64_t *out)
{
    if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
        *out = 1;
    else if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
        *out = 0;
    else
        return -1;
    return 0;
}

rtlog_err rtlog_listen_parse(const char *s, char *host, size_t host_cap, int *port)
{
    const char *colon, *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return RTLOG_E_INVAL;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return RTLOG_E_INVAL;
        hl = (size_t)(colon - s);
        if (memchr(s, ':', hl))
            return RTLOG_E_INVAL; /* bare IPv6 needs brackets */
    }
    if (hl == 0 || hl >= host_cap)
        return RTLOG_E_INVAL;
    uint64_t p;
    if (parse_uint(colon + 1, &p) || p > 65535)
        return RTLOG_E_INVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return RTLOG_OK;
}

/* Check the values that are more than a number in a range. */
static int validate_str(const setting *st, const char *v, const char **why)
{
    if (!strcmp(st->name, "listen")) {
        char host[256];
        int port;
        if (rtlog_listen_parse(v, host, sizeof host, &port) != RTLOG_OK) {
            *why = "expected HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:8080)";
            return -1;
        }
    } else if (!strcmp(st->name, "jwt-alg")) {
        if (strcmp(v, "HS256") && strcmp(v, "RS256") && strcmp(v, "ES256")) {
            *why = "expected HS256, RS256 or ES256";
            return -1;
        }
    } else if (!strcmp(st->name, "log-level")) {
        if (strcmp(v, "error") && strcmp(v, "warn") && strcmp(v, "info") && strcmp(v, "debug")) {
            *why = "expected error, warn, info or debug";
            return -1;
        }
    } else if (!strcmp(st->name, "data")) {
        if (!v[0]) {
            *why = "must not be empty";
            return -1;
        }
    }
    return 0;
}

static rtlog_err set_value(rtlog_server_config *cfg, const setting *st, const char *v,
                           rtlog_cfg_source src, const char *where, rtlog_errinfo *ei)
{
    const char *why = NULL;
    uint64_t n = 0;
    int bad = 0;
    switch (st->type) {
    case T_STR:
        if (strlen(v) >= RTLOG_CFG_STR_MAX) {
            why = "value too long";
            bad = 1;
        } else if (validate_str(st, v, &why)) {
            bad = 1;
        } else {
            memcpy((char *)cfg + st->off, v, strlen(v) + 1);
        }
        break;
    case T_DUR:
        bad = parse_dur_ms(v, &n);
        why = "expected a duration: seconds (1.5) or with a unit (500ms, 2s, 1m)";
        break;
    case T_BYTES:
        bad = parse_bytes(v, &n);
        why = "expected a size: bytes or with a unit (64KiB, 1MiB, 2G)";
        break;
    case T_UINT:
        bad = parse_uint(v, &n);
        why = "expected a whole number";
        break;
    case T_BOOL:
        bad = parse_bool(v, &n);
        why = "expected true or false";
        break;
    }
    if (!bad && st->type != T_STR && (n < st->min || n > st->max) &&
        !(n == 0 && st->min == 0)) {
        bad = 1;
        why = "out of range (see rtlog serve --help)";
    }
    if (bad)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, st->name, "%s: bad value: %s", where,
                                 why ? why : "invalid");
    if (st->type != T_STR)
        memcpy((char *)cfg + st->off, &n, sizeof n);
    cfg->source[st - table] = src;
    return RTLOG_OK;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

static rtlog_err load_file(rtlog_server_config *cfg, const char *path, rtlog_errinfo *ei)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, "config", "cannot read %s: %s", path,
                                 strerror(errno));
    char line[RTLOG_CFG_STR_MAX + 128];
    unsigned lineno = 0;
    rtlog_err rc = RTLOG_OK;
    while (rc == RTLOG_OK && fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, "config", "%s:%u: line too long", path,
                                   lineno);
            break;
        }
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, "config",
                                   "%s:%u: expected `key = value`", path, lineno);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = '\0';
            val++;
        }
        const setting *st = find_setting(key, strlen(key));
        char where[RTLOG_CFG_STR_MAX + 32];
        snprintf(where, sizeof where, "%s:%u", path, lineno);
        if (!st) {
            rc = rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, "config", "%s: unknown setting \"%s\"",
                                   where, key);
            break;
        }
        rc = set_value(cfg, st, val, RTLOG_CFG_FILE, where, ei);
    }
    fclose(f);
    return rc;
}

static const char *default_env(const char *name)
{
    return getenv(name);
}

rtlog_err rtlog_config_load(int argc, char **argv, const char *(*envp)(const char *name),
                            rtlog_server_config *cfg, rtlog_cfg_action *action,
                            rtlog_errinfo *ei)
{
    if (!envp)
        envp = default_env;
    memset(cfg, 0, sizeof *cfg);
    *action = RTLOG_CFG_RUN;
    rtlog_err rc;
    for (size_t i = 0; i < NSET; i++)
        if ((rc = set_value(cfg, &table[i], table[i].def, RTLOG_CFG_DEFAULT, "default", ei)))
            return rc;

    /* First pass over the flags: --help, --print-config and --config, and a syntax check,
     * so the file can be applied before the environment and the flags. */
    const char *file = envp("RTLOG_CONFIG");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *action = RTLOG_CFG_HELP;
            return RTLOG_OK;
        }
        if (!strcmp(a, "--print-config")) {
            *action = RTLOG_CFG_PRINT;
            continue;
        }
        if (strncmp(a, "--", 2) != 0)
            return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL,
                                     "unexpected argument \"%.100s\" (see rtlog serve --help)",
                                     a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        int is_config = nl == 6 && !strncmp(name, "config", 6);
        const setting *st = is_config ? NULL : find_setting(name, nl);
        if (!is_config && !st)
            return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL,
                                     "unknown option \"--%.*s\" (see rtlog serve --help)",
                                     (int)(nl > 100 ? 100 : nl), name);
        const char *val = eq ? eq + 1 : NULL;
        if (!val && !(st && st->type == T_BOOL && (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2)))) {
            if (i + 1 >= argc)
                return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "--%.*s needs a value",
                                         (int)nl, name);
            val = argv[++i];
        }
        if (is_config)
            file = val;
    }
    if (file && *file) {
        if (strlen(file) >= sizeof cfg->config_file)
            return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, "config", "config path too long");
        snprintf(cfg->config_file, sizeof cfg->config_file, "%s", file);
        if ((rc = load_file(cfg, file, ei)))
            return rc;
    }
    for (size_t i = 0; i < NSET; i++) {
        const char *v = envp(table[i].env);
        if (v && (rc = set_value(cfg, &table[i], v, RTLOG_CFG_ENV, table[i].env, ei)))
            return rc;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--print-config"))
            continue;
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        const setting *st = find_setting(name, nl);
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (st && st->type == T_BOOL && (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2)))
                val = "true";
            else
                val = argv[++i];
        }
        if (!st)
            continue; /* --config, handled above */
        char where[128];
        snprintf(where, sizeof where, "--%s", st->name);
        if ((rc = set_value(cfg, st, val, RTLOG_CFG_FLAG, where, ei)))
            return rc;
    }
    return RTLOG_OK;
}

static void fmt_value(const rtlog_server_config *cfg, const setting *st, char *buf, size_t cap)
{
    const void *p = (const char *)cfg + st->off;
    uint64_t n;
    if (st->type == T_STR) {
        snprintf(buf, cap, "%s", (const char *)p);
        return;
    }
    memcpy(&n, p, sizeof n);
    switch (st->type) {
    case T_DUR:
        if (n % 1000 == 0)
            snprintf(buf, cap, "%" PRIu64 "s", n / 1000);
        else
            snprintf(buf, cap, "%" PRIu64 "ms", n);
        break;
    case T_BYTES:
        if (n && n % MIB == 0)
            snprintf(buf, cap, "%" PRIu64 "MiB", (uint64_t)(n / MIB));
        else if (n && n % KIB == 0)
            snprintf(buf, cap, "%" PRIu64 "KiB", (uint64_t)(n / KIB));
        else
            snprintf(buf, cap, "%" PRIu64, n);
        break;
    case T_BOOL:
        snprintf(buf, cap, "%s", n ? "true" : "false");
        break;
    default:
        snprintf(buf, cap, "%" PRIu64, n);
        break;
    }
}

void rtlog_config_help(FILE *f)
{
    fprintf(f,
            "usage: rtlog serve [--listen HOST:PORT] [--data DIR] [--jwt-alg ALG --jwt-key FILE]\n"
            "                   [--config FILE] [--print-config] [--SETTING VALUE]...\n\n"
            "Serves ingest (POST /api/v1/.../events), WebSocket and SSE streams\n"
            "(GET /api/v1/.../stream), /metrics, /health/live and /health/ready.\n"
            "Each setting is a flag (--name VALUE or --name=VALUE), an environment variable,\n"
            "or a line `name = value` in the --config FILE (also RTLOG_CONFIG).\n"
            "Precedence: flag > environment > file > default.\n"
            "Durations are seconds (1.5) or with a unit (500ms, 2s, 1m); sizes are bytes or\n"
            "with a unit (64KiB, 1MiB, 2GiB).\n\n");
    for (size_t i = 0; i < NSET; i++) {
        const setting *st = &table[i];
        fprintf(f, "  --%-28s %s\n", st->name, st->help);
        fprintf(f, "  %-30s env %s, default \"%s\"", "", st->env, st->def);
        if (st->type == T_DUR)
            fprintf(f, ", %" PRIu64 "ms..%" PRIu64 "ms", st->min, st->max);
        else if (st->type == T_BYTES || st->type == T_UINT)
            fprintf(f, ", %" PRIu64 "..%" PRIu64, st->min, st->max);
        fprintf(f, "\n");
    }
    fprintf(f, "\nWithout --jwt-key, an HS256 secret is created in the data directory on first\n"
               "start; mint a token with: rtlog token --data DIR --subscribe '*' --publish '*'\n"
               "One rtlog serve per data directory (it holds DIR/serve.lock); rtlog import,\n"
               "export, ls, stat and verify run beside it, and what rtlog import appends\n"
               "reaches live subscribers.\n");
}

void rtlog_config_print(const rtlog_server_config *cfg, FILE *f)
{
    char buf[RTLOG_CFG_STR_MAX + 16];
    if (cfg->config_file[0])
        fprintf(f, "# config file: %s\n", cfg->config_file);
    for (size_t i = 0; i < NSET; i++) {
        fmt_value(cfg, &table[i], buf, sizeof buf);
        fprintf(f, "%s = %s  # %s\n", table[i].name, buf, source_name(cfg->source[i]));
    }
}
