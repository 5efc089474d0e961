/* server_int.h - what the server's .c files share (server module only; tests may use it).
 *
 * struct srv is the process: store, auth, replay engine, lws context and the two queues
 * that cross from the store's writer thread to the lws thread (finished appends, commit
 * notes). struct conn is lws' per-session data: one per socket, whatever it turns out to
 * be (a plain HTTP request, an ingest POST waiting for its commit, an SSE stream or a
 * WebSocket). Everything here except the queues is touched by the lws thread only.
 */
#ifndef RTLOG_SERVER_INT_H
#define RTLOG_SERVER_INT_H

#include "rtlog_server.h"

#include "auth.h"
#include "secret.h"
#include "tasks.h"
#include "rtlog_buf.h"
#include "rtlog_err.h"
#include "rtlog_replay.h"
#include "rtlog_schema.h"
#include "rtlog_store.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>

struct lws;
struct lws_context;
struct lws_vhost;

/* ---- params.c: pure parsing helpers (unit-tested without sockets) ----------------------- */

/* What a request path names. */
typedef enum route_kind {
    ROUTE_NONE = 0,    /* unknown path: 404 */
    ROUTE_STREAM,      /* /api/v1/<stream>/stream: WS or SSE */
    ROUTE_EVENTS,      /* /api/v1/<stream>/events: ingest POST */
    ROUTE_METRICS,     /* /metrics */
    ROUTE_LIVE,        /* /health/live */
    ROUTE_READY,       /* /health/ready */
    ROUTE_TASKS,       /* POST /api/v1/agents/<id>/tasks: assign a task */
    ROUTE_TASK_CANCEL, /* POST /api/v1/agents/<id>/tasks/<taskId>/cancel */
} route_kind;

typedef struct route {
    route_kind kind;
    char stream[RTLOG_STREAM_MAX]; /* canonical stream name when valid */
    rtlog_err stream_err;          /* RTLOG_OK, or RTLOG_E_INVAL for a bad id (400) */
    char stream_why[160];          /* why the id is bad (never echoes the id) */
    char task_id[RTLOG_ID_MAX + 1];/* ROUTE_TASK_CANCEL: the task id (valid when stream_err
                                    * is RTLOG_OK) */
} route;

/* Split a request path (no query) into a route. Never fails: unknown paths are ROUTE_NONE,
 * a known shape with a bad id carries stream_err = RTLOG_E_INVAL. */
void rtlog_route_parse(const char *path, size_t len, route *r);

/**
 * rtlog_cursor_parse() - a resume cursor (Last-Event-ID value or lastEventId parameter).
 * Optional whitespace (SP, HTAB) is trimmed; empty means absent (*present = 0). Otherwise
 * only ASCII digits are accepted (leading zeros fine: "007" is 7), value <= 2^63-1.
 * @s/@len: borrowed, may contain NUL bytes (refused). Errors: RTLOG_E_CURSOR.
 * Source: handed.md C03, CONTRACT.md "Resuming".
 */
rtlog_err rtlog_cursor_parse(const char *s, size_t len, int *present, uint64_t *out);

/* expectedSeq: strict decimal digits only, <= 2^63-1, no whitespace. RTLOG_E_INVAL. */
rtlog_err rtlog_seq_param_parse(const char *s, size_t len, uint64_t *out);

/* follow=: "true"/"1"/"" -> 1, "false"/"0" -> 0, anything else RTLOG_E_INVAL. */
rtlog_err rtlog_bool_param_parse(const char *s, size_t len, int *out);

/* "Bearer <token>": scheme case-insensitive, one or more spaces, then a token68 value
 * with nothing after it. @tok/@tok_len: borrowed pointer into @s. RTLOG_E_UNAUTH else. */
rtlog_err rtlog_bearer_parse(const char *s, size_t len, const char **tok, size_t *tok_len);

/* Is @origin allowed by the comma-separated @allowlist? Empty list = yes. Exact match
 * after trimming spaces; a trailing '/' on either side is ignored. */
int rtlog_origin_allowed(const char *allowlist, const char *origin, size_t origin_len);

/* Append {"type":"error","code":...,"message":...,"timestamp":...} (+ "lastSeq" when
 * @last_seq_present) to @out. @message: any bytes (escaped by jansson; invalid UTF-8 is
 * replaced). */
rtlog_err rtlog_error_json(rtlog_buf *out, rtlog_err code, const char *message,
                           int last_seq_present, uint64_t last_seq);

/* ---- the process --------------------------------------------------------------------- */

struct note {           /* a commit note from the writer thread */
    struct note *next;
    uint64_t last_seq;
    int sealed;
    char stream[];
};

struct conn;

/* What an append queued by the lws thread is for (agents.c handles all but JOB_INGEST). */
enum job_op {
    JOB_INGEST = 0,  /* POST .../events */
    JOB_ASSIGN,      /* POST /agents/<id>/tasks: task_assigned */
    JOB_CANCEL,      /* POST /agents/<id>/tasks/<taskId>/cancel: task_cancelled */
    JOB_REPORT,      /* an agent's report, as job stream events */
    JOB_START,       /* task_started on first delivery to the agent */
    JOB_TIMEOUT,     /* the lease ran out: task_cancelled in the agent stream */
    JOB_CLOSE,       /* task_completed (cancelled/failed) in the job stream after a
                      * cancellation or timeout */
};

enum job_stage {
    JOB_APPEND = 0,     /* queued to (or back from) the store's writer */
    JOB_PARSE,          /* a body handed to the parse thread (or back from it) */
};

struct job {            /* an ingest append between the lws thread and the writer */
    struct job *next;
    enum job_op op;
    struct job *cnext;  /* JOB_REPORT: the connection's list of reports in flight */
    int report;         /* JOB_REPORT: 1 progress, 2 log, 3 completed */
    int started;        /* JOB_REPORT: the batch begins with task_started */
    char task_id[RTLOG_ID_MAX + 1];
    struct conn *conn;  /* NULL once the client went away (lws thread only) */
    struct srv *srv;
    enum job_stage stage;
    rtlog_batch batch;  /* owned; the records must live until the completion */
    /* JOB_PARSE only: the body (owned, freed once parsed), how to parse it, and whether a
     * refused non-NDJSON body held several JSON values (the 400 then says how to send it) */
    rtlog_buf body;
    rtlog_parse_opts po;
    int several_values;
    char stream[RTLOG_STREAM_MAX];
    size_t nevents;
    rtlog_err rc;       /* result, written by the writer thread before queueing */
    rtlog_append_res res;
    rtlog_errinfo ei;
};

struct subj {           /* stream connections per token subject */
    struct subj *next;
    unsigned count;
    char sub[128];
};

#define SUBJ_BUCKETS 256

struct srv {
    rtlog_server_config cfg;
    int lock_fd;               /* DATA/serve.lock, flock'ed for the process lifetime */
    char host[256];
    int port;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    rtlog_store *store;
    struct rtlog_retention *retention; /* owned; NULL when dashboard retention is off */
    rtlog_auth *auth;
    rtlog_replay *replay;

    /* lws thread -> parse thread (parse_pool.c) */
    pthread_t parse_th;
    pthread_mutex_t plock;
    pthread_cond_t pcond;
    struct job *parse_head, *parse_tail;
    int parse_stop, parse_running, parse_inited;

    /* writer thread (and parse thread) -> lws thread */
    pthread_mutex_t qlock;
    struct job *done_head, *done_tail;
    struct note *notes_head, *notes_tail;
    /* a lws_cancel_service() is on its way and drain_queues() has not taken the queues yet:
     * further completions need no wake of their own (one eventfd write per drain, not one
     * per finished append) */
    int wake_pending;

    volatile sig_atomic_t stop;
    int draining;
    int final;                 /* tearing down: queues are no longer drained */
    uint64_t drain_deadline_ms;

    struct conn *streams;      /* every SSE and WS connection (doubly linked) */
    uint64_t next_conn_id;
    uint64_t n_sse, n_ws, n_http;  /* open sockets by transport (the metrics gauge) */
    uint64_t n_ws_authed;      /* authenticated WS streams: these and SSE count toward
                                * max-connections; pre-auth ones do not (handed.md C10 f) */
    uint64_t n_preauth;        /* WebSockets not (yet) authenticated */
    struct subj *preauth_ips[SUBJ_BUCKETS]; /* pre-auth WebSockets per client IP */
    uint64_t jobs_inflight;    /* appends queued and not yet drained */
    uint64_t inflight_body;    /* announced bytes of ingest bodies being received now */
    uint64_t responses_pending;
    struct subj *subjects[SUBJ_BUCKETS];

    rtlog_buf wbuf;            /* the one write buffer (LWS_PRE headroom), reused */

    /* counters for /metrics */
    uint64_t m_ingest_requests, m_ingest_rejected, m_events_accepted;
    uint64_t m_stream_refused, m_auth_timeouts, m_pong_timeouts, m_stalled, m_expired;
    uint64_t m_rate_limited, m_ws_messages_in;

    rtlog_tasks *tasks;                    /* owned; agents.c */
    int agents_repair;                     /* closes to queue at the first tick (agents.c) */
    uint8_t seal_key[RTLOG_SECRET_KEY_BYTES]; /* seals credentials (secret.h) */
    uint64_t m_reports, m_reports_refused, m_task_timeouts;

    struct lws_sorted_usec_list *tick_sul; /* owned; lws timer for the housekeeping tick */
    struct lws_sorted_usec_list *gen_sul;  /* owned; lws timer for the generation poll */
    uint64_t last_gen;                     /* rtlog_store_generation() last acted on */
};

enum conn_kind { CK_NONE = 0, CK_HTTP, CK_INGEST, CK_SSE, CK_WS };

enum resp_stage { RS_NONE = 0, RS_HEADERS, RS_BODY };

#define CTL_MAX 64       /* queued control replies per WS (pong replies, errors); a client
                          * that lets more pile up unread is closed (1008) */
#define AGENT_REPORTS_INFLIGHT 64 /* an agent's reports waiting for their commit: at this
                                   * many its socket is no longer read until some land */
#define AGENT_REPORTS_MAX 256     /* ... and beyond this (already buffered) rate_limited */
#define CTL_PAUSE 16     /* stop reading a WS while this many replies wait to be written */

/* Buffers of struct conn used only on rare paths (a ?types= filter, an error to send, a
 * deferred ingest error, queued control replies, a close reason): allocated on first use
 * by conn_rare() and freed with the connection, so an idle WebSocket does not carry
 * ~3 KiB it never touches (tools/bench/RESULTS.md "Idle"). */
struct ctlmsg {          /* one queued control reply */
    struct ctlmsg *next;
    size_t len;
    char s[];
};

struct conn_rare {
    char types[512];            /* ?types= of a stream connection ("" = all) */
    char sse_err[512];          /* an SSE error event to send, then end */
    char err_json[512];         /* WS error message to send before closing */
    char deferred_msg[256];     /* ingest: the deferred error's message */
    char close_reason[64];
    struct ctlmsg *ctl_head, *ctl_tail; /* queued control replies (owned) */
    char task_id[RTLOG_ID_MAX + 1]; /* JOB_CANCEL request: the task */
};

struct conn {
    struct srv *srv;
    struct lws *wsi;
    enum conn_kind kind;
    uint64_t id;
    int initialised;

    /* list of stream connections */
    struct conn *prev, *next;
    int listed;
    int counted_total;
    int counted_http;      /* counted in srv.n_http (released by srv_conn_release) */
    struct subj *subject;  /* counted under this subject */
    struct subj *preauth_ip; /* counted as pre-auth under this client IP (with n_preauth) */
    int counted_authed;    /* counted in n_ws_authed */

    /* a JSON HTTP response being written */
    enum resp_stage resp;
    int resp_status;
    int resp_close;        /* close the connection after the response */
    int resp_retry_after;  /* > 0: send Retry-After: this many seconds */
    const char *resp_ctype; /* static string */
    /* extra headers of this response (server/ui.c), written after the common ones; it then
     * also writes Cache-Control (else "no-store" is sent). Cleared by http_reset(). */
    int (*resp_hdrs)(struct conn *c, unsigned char **p, unsigned char *end);
    const void *resp_hdrs_arg; /* borrowed, static: what resp_hdrs needs */
    rtlog_buf resp_body;

    /* ingest */
    int ingest_active;
    rtlog_err deferred;    /* answer this once the body is read (RTLOG_OK = none) */
    int discard_body;
    int linger;            /* 1: early answer queued, close after it once the body is
                            * drained; 2: answer written, draining */
    uint64_t discarded;    /* body bytes dropped while lingering */
    int body_done;         /* the end of the body was handled */
    int lws_completed;     /* lws reported BODY_COMPLETION for this request */
    struct job *job_ready; /* validated, to be queued at the next WRITEABLE (http.c) */
    uint64_t content_length;
    uint64_t body_reserved; /* bytes of s->inflight_body held by this body */
    int body_timer;         /* the body-timeout lws timer is set */
    rtlog_buf body;
    struct job *job;
    char stream[RTLOG_STREAM_MAX];
    rtlog_kind skind;
    enum job_op amode;     /* JOB_INGEST, JOB_ASSIGN or JOB_CANCEL for this POST */
    struct job *reports;   /* WS agent: reports in flight (job->cnext) */
    unsigned nreports;
    int ndjson;
    int has_expected;
    uint64_t expected;

    /* stream connections (SSE and WS) */
    rtlog_replay_sub *sub;
    rtlog_principal *pr;
    int64_t exp_deadline_s;     /* wall clock: token exp + leeway */
    uint64_t next_hb_ms;        /* monotonic */
    int hb_pending;
    uint64_t hb_unanswered_ms;  /* when the oldest unanswered heartbeat was sent; 0 none */
    uint64_t blocked_since_ms;  /* waiting for WRITEABLE with bytes to send; 0 = not */
    int sub_done;               /* replay said END */
    int behind;                 /* the last fill said MORE: catching up (srv_fill_budget) */
    int has_cursor;
    int uto_raised;             /* TCP_USER_TIMEOUT raised for a zero window (conn_tick) */
    uint64_t cursor;
    char node_id[RTLOG_ID_MAX + 1];
    int follow;

    /* SSE */
    int sse_started;            /* retry: line sent */
    int sse_closing;            /* end the response at the next WRITEABLE */
    int has_sse_err;            /* rare->sse_err holds an error event to send, then end */

    /* WS */
    int authed;
    int started;
    int close_handed;           /* lws has the close frame (ws_writeable returned -1 once) */
    uint64_t auth_deadline_ms;
    uint64_t preauth_bytes;
    int preauth_hinted;         /* the one bad_request for a non-auth pre-auth message sent */
    int close_drain;            /* closing for input past a limit: read and drop the rest */
    rtlog_buf rx;
    int rx_discard;             /* closing: ignore input */
    int peer_closed;            /* the client sent a close frame */
    int err_pending;
    int close_code;             /* close with this at the next WRITEABLE (after err) */
    size_t nctl;                /* control replies queued in rare->ctl_head */
    int rx_paused;              /* lws_rx_flow_control(wsi, 0) in effect */
    struct conn_rare *rare;     /* owned; NULL until a rare path needs it */
};

/* c->rare, allocated (zeroed) on first use; NULL when out of memory. */
struct conn_rare *conn_rare(struct conn *c);

/* server.c */
uint64_t srv_now_ms(void);
/* Token exp + leeway in Unix seconds, saturating at INT64_MAX (exp is attacker-chosen). */
int64_t srv_exp_deadline_s(int64_t exp, uint64_t leeway_ms);
void srv_want_write(struct conn *c);
/* Bytes of frames to fill for this WRITEABLE of stream connection @c (see server.c). */
size_t srv_fill_budget(const struct conn *c);
void srv_list_add(struct conn *c);
void srv_conn_release(struct conn *c);
rtlog_err srv_stream_begin(struct conn *c, char *why, size_t why_cap);
int srv_subject_acquire(struct conn *c);
/* Count an unauthenticated WS (total and per client IP). Returns 0, or -1 at a limit. */
int srv_preauth_acquire(struct conn *c);
/* Stop counting @c as pre-auth (authenticated, or closing). Idempotent. */
void srv_preauth_release(struct conn *c);
rtlog_err srv_auth_token(struct conn *c, const char *tok, size_t len, rtlog_principal **out);
int srv_origin_ok(struct conn *c);
int srv_get_arg(struct lws *wsi, const char *name, char *buf, size_t cap, size_t *len);
rtlog_err srv_stream_params(struct conn *c, int sse, char *why, size_t cap);

/* http.c */
void http_respond(struct conn *c, int status, const char *body, size_t len, int close);
void http_respond_type(struct conn *c, int status, const char *ctype, const char *body,
                       size_t len, int close);
void http_respond_status(struct conn *c, int status, rtlog_err code, const char *message,
                         int close);
int srv_ops_request(struct conn *c, route_kind rk);
void http_job_queue_done(struct job *j);
void http_respond_error(struct conn *c, rtlog_err code, const char *message, int close);
int http_writeable(struct conn *c);
int http_request(struct conn *c, const char *path, size_t path_len);
int http_body(struct conn *c, const void *in, size_t len);
int http_body_done(struct conn *c);
/* LWS_CALLBACK_HTTP_BODY_COMPLETION: closes (-1) on a repeat for one request (lws 4.1.6
 * spinning on bytes pipelined behind a body), else http_body_done(). */
int http_body_completion(struct conn *c);
void http_job_done(struct srv *s, struct job *j);
void http_reset(struct conn *c);
/* Give back the body's share of max-inflight-body-bytes and cancel its timer. Idempotent. */
void http_body_release(struct conn *c);
/* LWS_CALLBACK_TIMER: the body-timeout expired: 408 and close. */
int http_body_timeout(struct conn *c);
/* Free a validated append not yet queued (connection closing). */
void http_job_drop_ready(struct conn *c);

/* agents.c (CONTRACT "Agents") */
/* Load or create the credentials key, build the task table from the agent and job streams
 * and queue the repairs a crash may have left. 0, or -1 (logged) when the server cannot
 * start. */
int agents_init(struct srv *s);
void agents_free(struct srv *s);
/* Validate an assignment / cancellation body into @out (one event for c->stream); reserves
 * or marks the task. RTLOG_E_INVAL / _CONFLICT / _NOTFOUND / _SEALED with @msg. @task_id
 * gets the task. */
rtlog_err agents_build(struct conn *c, const char *body, size_t len, rtlog_batch *out,
                       char task_id[RTLOG_ID_MAX + 1], char *msg, size_t cap);
/* The append of a JOB_ASSIGN / JOB_CANCEL job finished (j->rc), or was dropped before it
 * was queued (@queued = 0): update the task. */
void agents_ingest_done(struct srv *s, struct job *j, int queued);
/* A finished JOB_REPORT / _START / _TIMEOUT / _CLOSE append. Frees @j. */
void agents_job_done(struct srv *s, struct job *j);
/* An agent's WS message of a report type. Returns 1 if @type is one (handled), else 0. */
int agents_message(struct conn *c, const char *type, const char *p, size_t len);
/* Fill the personal-frame fields of @req for an agent stream subscriber, and create the
 * stream when its own agent connects first. */
void agents_stream_prepare(struct conn *c, rtlog_replay_req *req);
/* Housekeeping: leases that ran out. */
void agents_tick(struct srv *s);
/* The connection goes away: its reports in flight lose their reply address. */
void agents_conn_release(struct conn *c);
/* Send a control message (error) on a WS (ws.c). */
void ws_ctl_error(struct conn *c, rtlog_err code, const char *message);
/* Pause reading a WS while replies or reports pile up, resume when they drain (ws.c). */
void ws_rx_update(struct conn *c);
/* Free the queued control replies of @c (server.c at release). */
void ws_ctl_free(struct conn *c);

/* Parse thread side of a JOB_PARSE job: parse and validate j->body into j->batch (j->rc,
 * j->ei), then free the body. Touches nothing but the job. */
void http_job_parse(struct job *j);

/* parse_pool.c: the ingest parse thread. start: 0 or -1 (logged). submit: queue @j (stolen
 * until it comes back through http_job_queue_done). stop: finish what is queued, join;
 * idempotent, safe after a failed or absent start. */
int parse_pool_start(struct srv *s);
void parse_pool_submit(struct srv *s, struct job *j);
void parse_pool_stop(struct srv *s);

/* sse.c */
int sse_start(struct conn *c, const route *r);
int sse_writeable(struct conn *c);


/* ws.c */
int ws_filter(struct srv *s, struct lws *wsi);
int ws_established(struct conn *c);
int ws_receive(struct conn *c, const void *in, size_t len);
void ws_pong(struct conn *c);
/* Housekeeping: close 1009 a WS whose current frame header announces more than the
 * message (or pre-auth) limit, before any payload byte arrives. Returns 1 if it did. */
int ws_check_announced(struct conn *c);
int ws_writeable(struct conn *c);
void ws_fail(struct conn *c, rtlog_err code, const char *message);
void ws_close_with(struct conn *c, int code, const char *reason);

#endif
