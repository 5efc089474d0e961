/* rtlog_server.h - the streaming server: configuration and the serve loop.
 *
 * One process, one lws service thread for every socket (REST ingest, WebSocket, SSE,
 * /metrics, /health) and the store's writer thread for commits. Configuration comes from
 * one table of settings (config.c) that drives flags, RTLOG_* environment variables, an
 * optional `key = value` file, validation, --help and --print-config.
 *
 * Decisions the contract leaves open (also in `rtlog serve --help`):
 * - WebSocket upgrades are always accepted (except while draining); every refusal after
 *   that (401/403/404/400/429) is an in-band {"type":"error",...} message followed by
 *   close 4000 + status (1011 for internal_error), so browsers can see why (they never see
 *   the HTTP status of a refused upgrade). An unknown path gets not_found + 4404.
 * - Heartbeats are JSON ({"type":"heartbeat","timestamp":...}; SSE `: heartbeat`); the
 *   server sends no RFC 6455 pings. A {"type":"pong"} message or an RFC 6455 pong frame
 *   (solicited or not, with or without payload) answers. A WebSocket that answers nothing
 *   for heartbeat + pong-timeout (whole seconds, rounded up) since its last answer (or
 *   its upgrade) is dropped without a close frame (clients see 1006): the peer is not
 *   listening, so nothing is sent to it. This uses lws' validity timer, the only place
 *   lws 4.1.6 reports empty pong frames.
 * - Dead peers (handed.md C09): a stream socket (SSE, or WS once authenticated) gets
 *   TCP_USER_TIMEOUT = tcp-user-timeout (default: the pong-timeout, 30 s). A peer that
 *   vanished without FIN or RST (network gone) acknowledges nothing; the next heartbeat
 *   (or event) then stays unacknowledged and the kernel ends the connection with
 *   ETIMEDOUT after that long, instead of after tcp_retries2 (~15 min). So an idle SSE
 *   subscriber whose network vanished is closed within heartbeat + tcp-user-timeout (+ one
 *   housekeeping tick), inside C09's bound of "30 s after the first unanswered heartbeat
 *   + one heartbeat interval + 2 s", and a WS the same as by its pong rule. It counts in
 *   rtlog_stalled_closed_total (a peer that acknowledges nothing accepts no bytes). No
 *   TCP keepalive: heartbeats are data every heartbeat interval, so a stream socket is
 *   never idle long enough for keepalive probes to find anything sooner; a live peer
 *   whose receive window is closed keeps answering the kernel's window probes and is left
 *   to stall-timeout.
 * - Before authentication a WebSocket gets no heartbeats and no events; only an auth
 *   message counts (pongs do not extend the deadline). The first message that is not one
 *   (not JSON, or another type) is answered at once with one error {"code":"bad_request",
 *   "message":"expected {\"type\":\"auth\",\"token\":...}"}; later ones get nothing.
 *   The socket stays open (no 4400) so the client can still authenticate, and the auth
 *   deadline stands: unauthorized + 4401 if no auth message comes.
 * - `origins` empty = no Origin restriction (browsers carry no ambient credentials here:
 *   tokens are bearer tokens); non-empty = a request carrying an Origin header must match
 *   one entry exactly, else 403 forbidden. Requests without Origin always pass.
 * - Cursor (Last-Event-ID, lastEventId): OWS trimmed, empty = absent, plain decimal in
 *   [0, 2^63-1] (leading zeros allowed), anything else 400 bad_request (WS: close 4400).
 *   The SSE header wins over the query parameter; of two Last-Event-ID headers the first
 *   counts (lws exposes only the first).
 * - Ingest: Bearer token only (no ?token= on POST). A body that is several JSON values sent
 *   without Content-Type application/x-ndjson is a 400 whose message ends
 *   "; for NDJSON send Content-Type: application/x-ndjson". Without Content-Length: 411; with
 *   Transfer-Encoding: 411 (lws cannot de-chunk); over max-body-bytes: 413 at once, then
 *   the body is read and dropped (at most 64 MiB / 5 s) before closing, so clients get
 *   the 413 rather than a reset. While draining: 503 (code internal_error, retry).
 * - /health/live: 200 while the process serves. /health/ready: 200 when the store is open,
 *   the last commit did not fail for lack of space and the server is not draining; else
 *   503 with {"status":"unavailable","reason":...}. /metrics needs no token.
 * - Paths are URL-decoded and normalised by lws 4.1.6 before routing ("%2f" is a '/',
 *   "/../" and "%2e%2e%2f" collapse, so "workflow-runs/%2e%2e%2fdashboard/events" is
 *   served as "dashboard/events"; a %0d%0a ends the path). lws decodes as the bytes
 *   arrive and keeps no copy of the raw request target, so rtlog cannot refuse escapes or
 *   dot segments with 400: a request is answered for the path it normalises to, and the
 *   access check always runs on that served name. A stream is only ever named from an id
 *   of 1-128 [A-Za-z0-9._:-] (anything else: 400, or 404 for a path that names nothing).
 * - A WebSocket frame header announcing more than max-ws-message (counting fragments
 *   already reassembled) or, before authentication, more than max-preauth-bytes closes
 *   1009 at the next housekeeping tick (at most 1 s) even if no payload byte follows: lws
 *   4.1.6 calls back only with payload, so the tick reads lws_remaining_packet_payload().
 *   Nothing is allocated from an announced length. A frame within the limits whose payload
 *   never completes falls to the pong rule above (a peer mid-frame cannot answer).
 * - Dashboard without a cursor starts at its latest metric_update and delivers everything
 *   after it (alerts included), then live events; with no metric_update, live only. The
 *   dashboard stream is created (an empty batch) at every start, so it can be followed
 *   before anything was posted.
 * - One server per data directory: DATA/serve.lock is flock'ed (exclusive, non-blocking)
 *   for the process lifetime; a second `rtlog serve` prints "rtlog serve: another rtlog
 *   serve (pid N) is using DIR" and returns 1. The CLI readers and `rtlog import` do not
 *   take the lock.
 * - Appends by another process (`rtlog import` beside the server) send no commit notes:
 *   every 250 ms the server compares rtlog_store_generation() with the last value seen
 *   and, when it moved, re-reads the head of every followed stream
 *   (rtlog_replay_refresh()), so their subscribers get those events live.
 * - HTTP/1.1 only: LWS_CALLBACK_HTTP_CONFIRM_UPGRADE answers "Upgrade: h2c" with 400 +
 *   Connection: close before lws would switch to HTTP/2 (SSE on h2 lost live events and
 *   Last-Event-ID; lws 4.1.6 has no option to disable h2c). A POST carrying it is refused.
 * - Pipelining: GETs behind GETs are answered in order; anything with a body that shares a
 *   read with an earlier request is not (lws 4.1.6 mis-parses it: no answer, not stored,
 *   README "Known limits"). Behind a request body lws
 *   4.1.6 re-offers the following bytes for ever (a repeated BODY_COMPLETION; one socket
 *   spun the service thread and blocked SIGTERM): the repeat closes the connection with
 *   no answer. An append is queued at the next WRITEABLE, after that repeat would have
 *   come, so a closed one is never stored.
 * - Bodies in progress: their Content-Length counts toward max-inflight-body-bytes (over
 *   it: 503 internal_error + Retry-After: 1 at once, lingering close like a 413); each must
 *   be complete within body-timeout (lws timer: 408 bad_request, close). Parsing and
 *   validation run on the service thread (a 50 MB body blocks it ~1.5 s).
 * - Limits: max-connections counts SSE streams and authenticated WebSockets only;
 *   unauthenticated WebSockets are capped by max-preauth-connections and
 *   max-preauth-per-ip (client IP from lws_get_peer_simple) with rate_limited + 4429.
 * - Token exp + leeway saturates at INT64_MAX (srv_exp_deadline_s()).
 * - fd-limit is applied as the soft RLIMIT_NOFILE (bounded by the hard limit) before lws
 *   starts, and lws gets the effective value, so lws indexes sockets by fd.
 * - Ingest: Content-Encoding other than identity is 415; `expectedSeq` without a value is
 *   400; an empty batch to a sealed stream is 409 conflict.
 * - Cold per-connection buffers (struct conn_rare) are allocated on first use.
 * Source: CONTRACT.md (all but "Agents"), DESIGN.md "Threads".
 */
#ifndef RTLOG_SERVER_H
#define RTLOG_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rtlog_err.h"

/* Where a setting's effective value came from (for --print-config). */
typedef enum rtlog_cfg_source {
    RTLOG_CFG_DEFAULT = 0,
    RTLOG_CFG_FILE,
    RTLOG_CFG_ENV,
    RTLOG_CFG_FLAG,
} rtlog_cfg_source;

#define RTLOG_CFG_STR_MAX 1024 /* bytes of a string setting, NUL included */
#define RTLOG_MAX_WRITE_BYTES (16u << 20) /* the largest --sse-write-bytes; lws sends that
                                          * much in one send() (server.c protocols) */

/* Effective configuration. Durations are milliseconds, sizes bytes. Plain data. */
typedef struct rtlog_server_config {
    char listen[RTLOG_CFG_STR_MAX];     /* "HOST:PORT" ("[::1]:8080" for IPv6); port 0 = any */
    char data[RTLOG_CFG_STR_MAX];       /* data directory */
    char jwt_alg[RTLOG_CFG_STR_MAX];    /* "HS256" | "RS256" | "ES256" */
    char jwt_key[RTLOG_CFG_STR_MAX];    /* key file; "" = the data directory's HS256 secret */
    char jwt_iss[RTLOG_CFG_STR_MAX];    /* "" = iss not required */
    char jwt_aud[RTLOG_CFG_STR_MAX];    /* "" = aud not required */
    uint64_t jwt_leeway_ms;
    uint64_t heartbeat_ms;
    uint64_t pong_timeout_ms;
    uint64_t tcp_user_timeout_ms;       /* TCP_USER_TIMEOUT of stream sockets; 0 = the
                                         * pong timeout */
    uint64_t stream_sndbuf;             /* SO_SNDBUF of stream sockets (bytes); 0 = kernel
                                         * autotuning */
    uint64_t auth_timeout_ms;
    uint64_t stall_timeout_ms;
    uint64_t drain_timeout_ms;
    uint64_t max_event_bytes;
    uint64_t max_body_bytes;
    uint64_t max_ws_message;
    uint64_t max_preauth_bytes;
    uint64_t max_connections;
    uint64_t max_connections_per_subject;
    uint64_t max_preauth_connections;   /* unauthenticated WebSockets, in total */
    uint64_t max_preauth_per_ip;        /* unauthenticated WebSockets per client IP */
    uint64_t max_inflight_body_bytes;   /* ingest bodies being received, all connections */
    uint64_t body_timeout_ms;           /* an ingest body must arrive within this */
    char origins[RTLOG_CFG_STR_MAX];    /* comma-separated allowlist; "" = no restriction */
    uint64_t map_bytes;                 /* initial LMDB map; 0 = store default */
    uint64_t map_max_bytes;             /* LMDB map ceiling; 0 = only the disk */
    uint64_t sse_retry_ms;
    uint64_t sse_write_bytes;           /* bytes of SSE frames (WS event messages) per
                                         * socket write */
    uint64_t catchup_write_bytes;       /* per write for a subscriber catching up, as far as
                                         * its send buffer has room */
    uint64_t replay_cache_bytes;        /* replay block cache (rendered frames shared by
                                         * subscribers catching up); 0 = off */
    uint64_t fd_limit;                  /* lws fd table size */
    uint64_t nosync;                    /* 1 = no fsync (tests/benchmarks only) */
    uint64_t dashboard_retain_events;   /* dashboard count limit; 0 = none */
    uint64_t dashboard_retain_ms;       /* dashboard age limit (ms); 0 = none */
    uint64_t dashboard_retain_interval_ms; /* time between retention checks */
    char log_level[RTLOG_CFG_STR_MAX];  /* "error" | "warn" | "info" | "debug" */
    char config_file[RTLOG_CFG_STR_MAX]; /* the --config FILE in effect ("" = none) */
    char secrets_key[RTLOG_CFG_STR_MAX]; /* key file sealing agents' credentials; "" = the
                                          * data directory's secrets-key */
    uint64_t task_timeout_ms;           /* lease of a task whose assignment names none */
    rtlog_cfg_source source[64];        /* per setting, in table order */
} rtlog_server_config;

/* What rtlog_config_load() asks the caller to do. */
typedef enum rtlog_cfg_action {
    RTLOG_CFG_RUN = 0,   /* serve */
    RTLOG_CFG_HELP,      /* --help was given: print rtlog_config_help() and exit 0 */
    RTLOG_CFG_PRINT,     /* --print-config: print rtlog_config_print() and exit 0 */
} rtlog_cfg_action;

/**
 * rtlog_config_load() - build the effective configuration.
 * Precedence: flag > environment (RTLOG_<NAME>, dashes as underscores) > config file
 * (--config FILE or RTLOG_CONFIG; lines `key = value`, `#` comments) > default.
 * @argc/@argv: the arguments after "serve" (argv[0] is "serve"); borrowed.
 * @envp:   environment lookup (NULL = getenv); lets tests pass their own.
 * @cfg:    out, fully filled on success.
 * @action: out, see rtlog_cfg_action.
 * Errors:  RTLOG_E_INVAL (unknown flag or key, missing value, bad number or unit, out of
 *          range, unreadable config file: @ei->text names the setting, its source and, for
 *          files, the line).
 */
rtlog_err rtlog_config_load(int argc, char **argv, const char *(*envp)(const char *name),
                            rtlog_server_config *cfg, rtlog_cfg_action *action,
                            rtlog_errinfo *ei);

/* Print the settings table (name, env var, default, range, help) to @f. */
void rtlog_config_help(FILE *f);

/* Print every effective value and where it came from to @f. */
void rtlog_config_print(const rtlog_server_config *cfg, FILE *f);

/**
 * rtlog_listen_parse() - split "HOST:PORT" / "[V6]:PORT" into @host (NUL-terminated,
 * brackets removed) and @port (0..65535). Errors: RTLOG_E_INVAL.
 */
rtlog_err rtlog_listen_parse(const char *s, char *host, size_t host_cap, int *port);

/**
 * rtlog_server_run() - open the store and auth, listen, serve until SIGTERM/SIGINT, drain
 * (stop accepting, WS close 1001, end SSE, answer queued appends), then return.
 * Prints "rtlog: listening on http://HOST:PORT (data DIR)" to stdout once listening.
 * Returns 0 after a clean drain, 1 on a startup failure (logged to stderr).
 * Context: the calling thread becomes the lws service thread.
 */
int rtlog_server_run(const rtlog_server_config *cfg);

#endif
