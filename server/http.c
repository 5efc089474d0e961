/* http.c - plain HTTP on the lws thread: routing, JSON responses and the ingest POST.
 *
 * Ingest follows CONTRACT "Ingest": the token and its publish grant are checked first
 * (401/403 before anything is said about the stream), then the body is read under a cap,
 * validated by schema/ into a batch, and queued with rtlog_store_append_async(). The
 * request then simply has no answer until the writer thread reports the durable commit;
 * the 201 is written from EVENT_WAIT_CANCELLED via a WRITEABLE, so the lws thread never
 * waits for an fsync. Errors decided before the body has been read are answered after
 * reading (and discarding) it when it is small, so keep-alive works and the client never
 * sees a reset; oversized bodies (413) are answered at once, then the rest of the body is
 * read and dropped for a bounded time and size before closing ("lingering close", as
 * nginx does), so a client still writing gets its 413 instead of EPIPE/ECONNRESET.
 * Unframed bodies (411) are answered and closed at once. Bodies of PARSE_OFFLOAD_BYTES or
 * more are parsed on the parse thread (parse_pool.c) so a big batch does not stall every
 * other socket; the job comes back through the done queue and continues here as if it
 * had been parsed inline.
 * A response whose body fits beside its headers (every JSON answer: 201s, errors) goes out
 * in one write at one WRITEABLE, as lws_return_http_status() does; a larger body follows
 * at the next WRITEABLE. One WRITEABLE fewer matters when thousands of subscribers share
 * the service thread: an ingest's answer waits for a whole pass over the ready sockets
 * per WRITEABLE it needs (tools/bench/RESULTS.md "Fan-out").
 */
#define RTLOG_LOG_TAG "http"
#include "server_int.h"

#include "log.h"
#include "ui.h"

#include <inttypes.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFER_MAX_BODY (1u << 20) /* read and drop at most this much before a deferred error */
#define LINGER_MAX_BYTES (64u << 20) /* after an early error, discard at most this much body */
#define LINGER_SECS 5                /* ... for at most this long, then close */
/* Bodies this large or larger are parsed off the lws thread. One event (~200 B - a few KB)
 * parses in a few us, less than the two thread hand-offs would cost; a 100-event batch
 * (~20 KB) takes ~0.3 ms of jansson (RESULTS.md "Ingest"). */
#define PARSE_OFFLOAD_BYTES (8u << 10)

void http_body_release(struct conn *c)
{
    if (c->body_reserved) {
        c->srv->inflight_body -= c->body_reserved;
        c->body_reserved = 0;
    }
    if (c->body_timer) {
        c->body_timer = 0;
        if (c->wsi)
            lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
    }
}

void http_reset(struct conn *c)
{
    http_body_release(c);
    c->resp_retry_after = 0;
    c->ingest_active = 0;
    c->deferred = RTLOG_OK;
    if (c->rare)
        c->rare->deferred_msg[0] = '\0';
    c->discard_body = 0;
    c->linger = 0;
    c->discarded = 0;
    c->body_done = 0;
    c->lws_completed = 0;
    c->content_length = 0;
    c->has_expected = 0;
    c->expected = 0;
    c->ndjson = 0;
    c->stream[0] = '\0';
    rtlog_buf_free(&c->body);
    rtlog_buf_free(&c->resp_body);
    c->resp_hdrs = NULL;
    c->resp_hdrs_arg = NULL;
}

void http_respond_type(struct conn *c, int status, const char *ctype, const char *body,
                       size_t len, int close)
{
    struct srv *s = c->srv;
    if (c->resp == RS_NONE)
        s->responses_pending++;
    rtlog_buf_clear(&c->resp_body);
    if (rtlog_buf_append(&c->resp_body, body, len) != RTLOG_OK) {
        close = 1; /* out of memory: the empty body still ends the request */
    }
    c->resp_status = status;
    c->resp_ctype = ctype;
    c->resp_close = close;
    c->resp = RS_HEADERS;
    srv_want_write(c);
}

void http_respond(struct conn *c, int status, const char *body, size_t len, int close)
{
    http_respond_type(c, status, "application/json", body, len, close);
}

void http_respond_status(struct conn *c, int status, rtlog_err code, const char *message,
                         int close)
{
    rtlog_buf b = {0};
    if (rtlog_error_json(&b, code, message, 0, 0) != RTLOG_OK) {
        rtlog_buf_free(&b);
        http_respond(c, 500, "{}", 2, 1);
        return;
    }
    http_respond(c, status, b.p, b.len, close);
    rtlog_buf_free(&b);
}

void http_respond_error(struct conn *c, rtlog_err code, const char *message, int close)
{
    http_respond_status(c, rtlog_err_http_status(code), code, message, close);
}

static int ingest_queue(struct conn *c);
static int response_sent(struct conn *c);

int http_writeable(struct conn *c)
{
    struct srv *s = c->srv;
    struct lws *wsi = c->wsi;
    if (c->job_ready)
        return ingest_queue(c);
    if (c->resp == RS_HEADERS) {
        unsigned char hb[LWS_PRE + 1024 + 2048], *start = hb + LWS_PRE, *p = start,
                                                 *end = hb + sizeof hb - 1;
        if (lws_add_http_common_headers(wsi, (unsigned)c->resp_status, c->resp_ctype,
                                        c->resp_body.len, &p, end) ||
            (c->resp_hdrs && c->resp_hdrs(c, &p, end)) ||
            (!c->resp_hdrs &&
             lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                          (const unsigned char *)"no-store", 8, &p, end)) ||
            (c->resp_close &&
             lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                          (const unsigned char *)"close", 5, &p, end)) ||
            (c->resp_retry_after > 0 &&
             lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_RETRY_AFTER,
                                          (const unsigned char *)"1", 1, &p, end)) ||
            lws_finalize_http_header(wsi, &p, end))
            return -1;
        size_t blen = c->resp_body.len;
        if (blen > (size_t)(end - p)) {
            /* a large body: headers now, the body at the next WRITEABLE */
            if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) !=
                (int)(p - start))
                return -1;
            c->resp = RS_BODY;
            srv_want_write(c);
            return 0;
        }
        if (blen)
            memcpy(p, c->resp_body.p, blen);
        p += blen;
        int n = lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS);
        c->resp = RS_NONE;
        s->responses_pending--;
        if (n != (int)(p - start))
            return -1;
        return response_sent(c);
    }
    if (c->resp != RS_BODY)
        return 0; /* spurious WRITEABLE, or still waiting for a commit */
    rtlog_buf *w = &s->wbuf;
    size_t len = c->resp_body.len;
    rtlog_buf_clear(w);
    if (rtlog_buf_reserve(w, LWS_PRE + len) != RTLOG_OK)
        return -1;
    if (len) /* a 302 or 304 has no body (and resp_body.p is NULL then) */
        memcpy(w->p + LWS_PRE, c->resp_body.p, len);
    int n = lws_write(wsi, (unsigned char *)w->p + LWS_PRE, len, LWS_WRITE_HTTP_FINAL);
    c->resp = RS_NONE;
    s->responses_pending--;
    if (n < (int)len)
        return -1;
    return response_sent(c);
}

/* The whole response is written: close, linger, or get ready for the next request. */
static int response_sent(struct conn *c)
{
    struct lws *wsi = c->wsi;
    if (c->resp_close) {
        if (c->linger == 1 && !c->body_done) {
            /* keep reading (and dropping) what the client is still sending, bounded */
            c->linger = 2;
            lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LINGER_SECS);
            return 0;
        }
        return -1;
    }
    http_reset(c);
    if (lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

/* Answer now, before the body is read, and close afterwards (lingering). */
static void reject_early(struct conn *c, int status, rtlog_err code, const char *msg)
{
    c->srv->m_ingest_rejected++;
    c->ingest_active = 0;
    c->linger = 1;
    http_respond_status(c, status, code, msg, 1);
}

/* ---- ingest -------------------------------------------------------------------------- */

static void ingest_cb(void *ctx, rtlog_err rc, const rtlog_append_res *res,
                      const rtlog_errinfo *ei)
{
    /* writer thread: record the result and hand the job back; nothing else */
    struct job *j = ctx;
    j->rc = rc;
    if (res)
        j->res = *res;
    if (ei)
        j->ei = *ei;
    http_job_queue_done(j);
}

static void parse_done(struct srv *s, struct job *j);

void http_job_done(struct srv *s, struct job *j)
{
    if (j->op >= JOB_REPORT) {
        agents_job_done(s, j);
        return;
    }
    struct conn *c = j->conn;
    if (j->stage == JOB_PARSE) {
        parse_done(s, j);
        return;
    }
    s->jobs_inflight--;
    if (j->op != JOB_INGEST)
        agents_ingest_done(s, j, 1);
    if (c) {
        c->job = NULL;
        rtlog_buf b = {0};
        char msg[320];
        switch (j->rc) {
        case RTLOG_OK:
            if (j->nevents == 0 && j->res.sealed) {
                /* an empty batch changes nothing, but a sealed stream takes no appends:
                 * the same 409 as any append to it (not a 201 with lastSeq < firstSeq) */
                s->m_ingest_rejected++;
                http_respond_error(c, RTLOG_E_SEALED, "stream is sealed", 0);
                break;
            }
            s->m_events_accepted += j->nevents;
            rtlog_buf_printf(&b, "{\"stream\":\"%s\",\"firstSeq\":%" PRIu64 ",\"lastSeq\":%" PRIu64
                                 "}",
                             j->stream, j->res.first_seq, j->res.last_seq);
            LOG_INFO("conn=%" PRIu64 " appended stream=%s seq=%" PRIu64 "..%" PRIu64, c->id,
                     j->stream, j->res.first_seq, j->res.last_seq);
            http_respond(c, 201, b.p, b.len, 0);
            break;
        case RTLOG_E_CONFLICT:
            s->m_ingest_rejected++;
            snprintf(msg, sizeof msg, "expectedSeq does not match the stream's last seq %" PRIu64,
                     j->res.last_seq);
            if (rtlog_error_json(&b, RTLOG_E_CONFLICT, msg, 1, j->res.last_seq) == RTLOG_OK)
                http_respond(c, 409, b.p, b.len, 0);
            else
                http_respond(c, 500, "{}", 2, 1);
            break;
        case RTLOG_E_SEALED:
            s->m_ingest_rejected++;
            http_respond_error(c, RTLOG_E_SEALED, "stream is sealed", 0);
            break;
        case RTLOG_E_INVAL:
        case RTLOG_E_TOOBIG:
            s->m_ingest_rejected++;
            http_respond_error(c, j->rc, j->ei.text[0] ? j->ei.text : rtlog_strerror(j->rc), 0);
            break;
        case RTLOG_E_FULL:
            s->m_ingest_rejected++;
            LOG_ERR("conn=%" PRIu64 " append to %s failed: storage full", c->id, j->stream);
            http_respond_error(c, RTLOG_E_FULL, "storage full: the event was not stored", 0);
            break;
        default:
            s->m_ingest_rejected++;
            LOG_ERR("conn=%" PRIu64 " append to %s failed: %s (%s)", c->id, j->stream,
                    rtlog_strerror(j->rc), j->ei.text);
            http_respond_error(c, j->rc, "internal error: the event was not stored", 0);
            break;
        }
        rtlog_buf_free(&b);
    }
    rtlog_batch_free(&j->batch);
    free(j);
}

/* The deferred error's message ("" when it could not be kept: out of memory). */
static const char *deferred_msg(struct conn *c)
{
    return c->rare ? c->rare->deferred_msg : "";
}

static void defer_error(struct conn *c, rtlog_err code, const char *msg)
{
    if (c->deferred != RTLOG_OK)
        return; /* the first problem found is the answer */
    c->deferred = code;
    struct conn_rare *rare = conn_rare(c);
    if (rare)
        snprintf(rare->deferred_msg, sizeof rare->deferred_msg, "%s", msg);
}

/* Is query parameter @name present without a value ("name" or "name=")? lws' argument
 * fragments keep the '=' and what follows, so both forms are seen here. */
static int arg_without_value(struct lws *wsi, const char *name)
{
    size_t nl = strlen(name);
    char frag[64];
    for (int i = 0;; i++) {
        int fl = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (fl <= 0)
            return 0;
        if ((size_t)fl > nl + 1)
            continue;
        int n = lws_hdr_copy_fragment(wsi, frag, (int)sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n <= 0 || (size_t)n < nl || memcmp(frag, name, nl) != 0)
            continue;
        if ((size_t)n == nl || ((size_t)n == nl + 1 && frag[nl] == '='))
            return 1;
    }
}

static int ingest_start(struct conn *c, const route *r)
{
    struct srv *s = c->srv;
    struct lws *wsi = c->wsi;
    char buf[8448];
    int n;
    c->kind = CK_INGEST;
    c->ingest_active = 1;
    c->amode = r->kind == ROUTE_TASKS         ? JOB_ASSIGN
               : r->kind == ROUTE_TASK_CANCEL ? JOB_CANCEL
                                              : JOB_INGEST;
    if (c->amode == JOB_CANCEL) {
        struct conn_rare *rare = conn_rare(c);
        if (!rare) {
            http_respond_error(c, RTLOG_E_NOMEM, "out of memory", 1);
            c->ingest_active = 0;
            return 0;
        }
        snprintf(rare->task_id, sizeof rare->task_id, "%s", r->task_id);
    }
    s->m_ingest_requests++;

    if (s->draining) {
        s->m_ingest_rejected++;
        http_respond_status(c, 503, RTLOG_E_AGAIN, "server is shutting down; retry", 1);
        c->ingest_active = 0;
        return 0;
    }
    /* Framing first: without a trustworthy length nothing else can be read safely. */
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        s->m_ingest_rejected++;
        http_respond_status(c, 411, RTLOG_E_INVAL,
                            "chunked request bodies are not supported: send Content-Length", 1);
        c->ingest_active = 0;
        return 0;
    }
    /* Bodies are taken as sent: a compressed one would be stored as garbage or refused
     * as bad JSON. Anything but identity is 415 before the body is read. */
    n = lws_hdr_copy(wsi, buf, 64, WSI_TOKEN_HTTP_CONTENT_ENCODING);
    if (n > 0 && strcasecmp(buf, "identity") != 0) {
        reject_early(c, 415, RTLOG_E_INVAL,
                     "Content-Encoding is not supported: send the body uncompressed");
        return 0;
    }
    if (n < 0 || (n == 0 && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_ENCODING) > 0)) {
        reject_early(c, 415, RTLOG_E_INVAL,
                     "Content-Encoding is not supported: send the body uncompressed");
        return 0;
    }
    n = lws_hdr_copy(wsi, buf, 32, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    uint64_t cl = 0;
    if (n < 0 || (n == 0 && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)) {
        s->m_ingest_rejected++;
        http_respond_error(c, RTLOG_E_INVAL, "bad Content-Length", 1);
        c->ingest_active = 0;
        return 0;
    }
    /* No Content-Length and no Transfer-Encoding: the body is empty (RFC 9112 6.3), as
     * `curl -X POST .../cancel` sends it. */
    if (n > 0 && rtlog_seq_param_parse(buf, (size_t)n, &cl) != RTLOG_OK) {
        s->m_ingest_rejected++;
        http_respond_error(c, RTLOG_E_INVAL, "bad Content-Length", 1);
        c->ingest_active = 0;
        return 0;
    }
    c->content_length = cl;
    if (cl > s->cfg.max_body_bytes) {
        snprintf(buf, sizeof buf, "request body larger than %" PRIu64 " bytes",
                 s->cfg.max_body_bytes);
        reject_early(c, 413, RTLOG_E_TOOBIG, buf);
        return 0;
    }

    /* Memory for bodies being received is bounded across connections: a body that would
     * take the total over max-inflight-body-bytes is refused at once with 503 and
     * Retry-After (the server is busy, the request is fine: retry), like a 413 (lingering
     * close). Each body must also arrive within body-timeout (408, http_body_timeout()). */
    if (cl > 0) {
        if (s->inflight_body + cl > s->cfg.max_inflight_body_bytes) {
            c->resp_retry_after = 1;
            reject_early(c, 503, RTLOG_E_AGAIN,
                         "too many request bodies being received; retry");
            return 0;
        }
        c->body_reserved = cl;
        s->inflight_body += cl;
        c->body_timer = 1;
        lws_set_timer_usecs(wsi, (lws_usec_t)s->cfg.body_timeout_ms * LWS_US_PER_MS);
    }

    /* 401, then 400 for the id, then 403: access before existence. */
    rtlog_principal *pr = NULL;
    n = lws_hdr_copy(wsi, buf, (int)sizeof buf, WSI_TOKEN_HTTP_AUTHORIZATION);
    const char *tok;
    size_t tok_len;
    if (n <= 0 || rtlog_bearer_parse(buf, (size_t)n, &tok, &tok_len) != RTLOG_OK)
        defer_error(c, RTLOG_E_UNAUTH,
                    "missing or malformed Authorization header (expected \"Bearer\" and a token)");
    else if (srv_auth_token(c, tok, tok_len, &pr) != RTLOG_OK)
        defer_error(c, RTLOG_E_UNAUTH, "invalid or expired token");
    memset(buf, 0, sizeof buf);
    if (r->stream_err != RTLOG_OK)
        defer_error(c, RTLOG_E_INVAL, r->stream_why);
    else if (pr && c->amode == JOB_INGEST && !rtlog_principal_can(pr, 1, r->stream))
        defer_error(c, RTLOG_E_FORBIDDEN, "no publish access to this stream");
    else if (pr && c->amode != JOB_INGEST && !rtlog_principal_grants(pr, 1, r->stream))
        /* the agent's own grant lets it report, not assign or cancel its tasks */
        defer_error(c, RTLOG_E_FORBIDDEN, "no publish access to this agent's tasks");
    if (pr)
        LOG_DEBUG("conn=%" PRIu64 " ingest sub=%s stream=%s", c->id, pr->sub, r->stream);
    rtlog_principal_free(pr);

    size_t vl;
    int a = srv_get_arg(wsi, "expectedSeq", buf, 64, &vl);
    if (a < 0 || (a > 0 && rtlog_seq_param_parse(buf, vl, &c->expected) != RTLOG_OK) ||
        (a == 0 && arg_without_value(wsi, "expectedSeq")))
        defer_error(c, RTLOG_E_INVAL,
                    "expectedSeq must be a decimal sequence number (0 .. 2^63-1)");
    c->has_expected = a > 0;

    n = lws_hdr_copy(wsi, buf, 256, WSI_TOKEN_HTTP_CONTENT_TYPE);
    c->ndjson = n >= 20 && strncasecmp(buf, "application/x-ndjson", 20) == 0 &&
                (n == 20 || buf[20] == ';' || buf[20] == ' ');
    snprintf(c->stream, sizeof c->stream, "%s", r->stream);
    rtlog_kind kind = RTLOG_KIND_NONE;
    if (r->stream_err == RTLOG_OK)
        rtlog_stream_parse(c->stream, strlen(c->stream), &kind, NULL, NULL, NULL);
    c->skind = kind;

    if (c->deferred != RTLOG_OK) {
        if (cl == 0) {
            s->m_ingest_rejected++;
            http_respond_error(c, c->deferred, deferred_msg(c), 0);
            c->ingest_active = 0;
            return 0;
        }
        if (cl > DEFER_MAX_BODY) {
            reject_early(c, rtlog_err_http_status(c->deferred), c->deferred, deferred_msg(c));
            return 0;
        }
        s->m_ingest_rejected++;
        c->discard_body = 1;
        return 0;
    }
    if (cl == 0)
        return http_body_done(c);
    return 0;
}

int http_body(struct conn *c, const void *in, size_t len)
{
    struct srv *s = c->srv;
    if (c->linger) {
        c->discarded += len;
        return c->discarded > LINGER_MAX_BYTES ? -1 : 0;
    }
    if (!c->ingest_active || c->resp != RS_NONE)
        return 0;
    if (c->discard_body)
        return 0;
    if (c->body.len + len > c->content_length || c->body.len + len > s->cfg.max_body_bytes) {
        reject_early(c, 413, RTLOG_E_TOOBIG, "request body larger than announced");
        return 0;
    }
    if (rtlog_buf_append(&c->body, in, len) != RTLOG_OK) {
        http_respond_error(c, RTLOG_E_NOMEM, "out of memory", 1);
        c->ingest_active = 0;
    }
    return 0;
}

/* Does @p hold one complete JSON value followed by more than whitespace? That is an NDJSON
 * body sent without its Content-Type (curl --data-binary @run.ndjson sends
 * application/x-www-form-urlencoded), and the 400 says how to send it. Only the first value
 * is parsed, and only on this error path. */
static int several_json_values(const char *p, size_t len)
{
    json_error_t je;
    json_t *v = json_loadb(p, len, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &je);
    if (!v)
        return 0;
    json_decref(v);
    for (size_t i = (size_t)je.position; i < len; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return 1;
    return 0;
}

int http_body_completion(struct conn *c)
{
    if (c->lws_completed) {
        /* A second completion for the same request. lws 4.1.6 cannot pipeline behind a
         * request body: it stays in its body state (0 bytes left) until the transaction
         * completes and offers the bytes that follow the body again and again, calling
         * BODY_COMPLETION each time and consuming nothing (one socket spun the service
         * thread at 100% and blocked SIGTERM); a body request parsed from its stash gets
         * its own header bytes as body. So the connection is closed here, before the
         * append of this request was queued (see ingest_queue()): no answer, nothing
         * stored. rtlog_server.h "Pipelining". */
        LOG_INFO("conn=%" PRIu64 " request pipelined behind a request body: closing", c->id);
        http_job_drop_ready(c);
        return -1;
    }
    c->lws_completed = 1;
    return http_body_done(c);
}

int http_body_timeout(struct conn *c)
{
    if (!c->body_timer)
        return 0; /* a stale timer: the body was complete */
    c->body_timer = 0;
    http_body_release(c);
    if (c->resp != RS_NONE || c->body_done)
        return 0;
    LOG_INFO("conn=%" PRIu64 " body not received within body-timeout: 408", c->id);
    c->srv->m_ingest_rejected++;
    c->ingest_active = 0;
    c->linger = 0;
    http_respond_status(c, 408, RTLOG_E_INVAL, "request body not received in time", 1);
    return 0;
}

/* Answer a body that did not parse (400/413 with the event index and field). */
static void parse_refused(struct conn *c, rtlog_err rc, const rtlog_errinfo *ei,
                          int several_values)
{
    char msg[sizeof ei->text + 80];
    snprintf(msg, sizeof msg, "%s%s", ei->text[0] ? ei->text : rtlog_strerror(rc),
             several_values ? "; for NDJSON send Content-Type: application/x-ndjson" : "");
    c->srv->m_ingest_rejected++;
    LOG_INFO("conn=%" PRIu64 " ingest %s rejected: %s", c->id, c->stream, msg);
    http_respond_error(c, rc, msg, 0);
}

void http_job_parse(struct job *j)
{
    const char *body = j->body.p ? j->body.p : "";
    j->rc = rtlog_schema_parse(&j->po, body, j->body.len, &j->batch, &j->ei);
    j->several_values = j->rc == RTLOG_E_INVAL && !j->po.ndjson &&
                        several_json_values(body, j->body.len);
    rtlog_buf_free(&j->body);
}

/* A JOB_PARSE job is back from the parse thread: refuse it, or queue it like an inline
 * parse would (job_ready, appended at the next WRITEABLE). */
static void parse_done(struct srv *s, struct job *j)
{
    struct conn *c = j->conn;
    if (c)
        c->job = NULL;
    if (!c || j->rc != RTLOG_OK) {
        s->jobs_inflight--;
        if (c)
            parse_refused(c, j->rc, &j->ei, j->several_values);
        rtlog_batch_free(&j->batch);
        free(j);
        return;
    }
    j->stage = JOB_APPEND;
    j->nevents = j->batch.n;
    c->job_ready = j; /* still counted in jobs_inflight */
    srv_want_write(c);
}

int http_body_done(struct conn *c)
{
    struct srv *s = c->srv;
    c->body_done = 1;
    http_body_release(c);
    if (c->linger == 2)
        return -1; /* the early answer is out and the body is drained: close now */
    if (!c->ingest_active || c->resp != RS_NONE)
        return 0;
    c->ingest_active = 0;
    if (c->deferred != RTLOG_OK) {
        http_respond_error(c, c->deferred, deferred_msg(c), 0);
        return 0;
    }
    rtlog_parse_opts po = {
        .family = rtlog_kind_family(c->skind),
        .max_event_bytes = (size_t)s->cfg.max_event_bytes,
        .ndjson = c->ndjson,
    };
    /* Task assignments and cancellations are built on this thread: they read and reserve
     * entries of the task table, which only this thread touches (agents.c). */
    if (c->amode == JOB_INGEST && c->body.len >= PARSE_OFFLOAD_BYTES && s->parse_running) {
        struct job *pj = calloc(1, sizeof *pj);
        if (!pj) {
            http_respond_error(c, RTLOG_E_NOMEM, "out of memory", 1);
            return 0;
        }
        pj->srv = s;
        pj->conn = c;
        pj->stage = JOB_PARSE;
        pj->po = po;
        pj->body = c->body; /* stolen */
        memset(&c->body, 0, sizeof c->body);
        snprintf(pj->stream, sizeof pj->stream, "%s", c->stream);
        c->job = pj;        /* a close before it comes back sets pj->conn = NULL */
        s->jobs_inflight++; /* the drain waits for it like for a queued append */
        parse_pool_submit(s, pj);
        return 0;
    }
    rtlog_batch batch = {0};
    rtlog_errinfo ei = {0};
    const char *body = c->body.p ? c->body.p : "";
    char task_id[RTLOG_ID_MAX + 1] = "";
    rtlog_err rc;
    if (c->amode != JOB_INGEST) {
        rc = agents_build(c, body, c->body.len, &batch, task_id, ei.text, sizeof ei.text);
        if (c->amode == JOB_ASSIGN && c->body.p)
            explicit_bzero(c->body.p, c->body.len); /* it held the task's credentials */
        if (rc != RTLOG_OK) {
            rtlog_buf_free(&c->body);
            s->m_ingest_rejected++;
            LOG_INFO("conn=%" PRIu64 " %s %s refused: %s", c->id,
                     c->amode == JOB_ASSIGN ? "assignment to" : "cancellation on", c->stream,
                     ei.text);
            http_respond_error(c, rc, ei.text, 0);
            return 0;
        }
    } else {
        rc = rtlog_schema_parse(&po, body, c->body.len, &batch, &ei);
    }
    if (rc != RTLOG_OK) {
        int several = rc == RTLOG_E_INVAL && !c->ndjson && several_json_values(body, c->body.len);
        rtlog_buf_free(&c->body);
        parse_refused(c, rc, &ei, several);
        return 0;
    }
    rtlog_buf_free(&c->body);
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        rtlog_batch_free(&batch);
        http_respond_error(c, RTLOG_E_NOMEM, "out of memory", 1);
        return 0;
    }
    j->srv = s;
    j->conn = c;
    j->op = c->amode;
    snprintf(j->task_id, sizeof j->task_id, "%s", task_id);
    j->batch = batch;
    j->nevents = batch.n;
    snprintf(j->stream, sizeof j->stream, "%s", c->stream);
    /* Queued at the next WRITEABLE, not now: a pipelined request behind this body shows
     * up as a repeated BODY_COMPLETION within this same service pass, and the connection
     * is then closed with nothing stored rather than with an unanswered commit. */
    c->job_ready = j;
    s->jobs_inflight++; /* the drain waits for it like for a queued append */
    srv_want_write(c);
    return 0;
}

void http_job_drop_ready(struct conn *c)
{
    if (!c->job_ready)
        return;
    c->srv->jobs_inflight--;
    if (c->job_ready->op != JOB_INGEST)
        agents_ingest_done(c->srv, c->job_ready, 0);
    rtlog_batch_free(&c->job_ready->batch);
    free(c->job_ready);
    c->job_ready = NULL;
}

/* Hand the validated batch of @c to the writer thread. Returns 0, or -1 to close. */
static int ingest_queue(struct conn *c)
{
    struct srv *s = c->srv;
    struct job *j = c->job_ready;
    rtlog_err rc;
    c->job_ready = NULL;
    rtlog_append_req req = {
        .stream = j->stream,
        .recs = j->batch.recs,
        .n = j->batch.n,
        .expected_seq = c->expected,
        .has_expected = c->has_expected,
    };
    rc = rtlog_store_append_async(s->store, &req, ingest_cb, j);
    if (rc != RTLOG_OK) {
        s->m_ingest_rejected++;
        s->jobs_inflight--;
        if (j->op != JOB_INGEST)
            agents_ingest_done(s, j, 0);
        rtlog_batch_free(&j->batch);
        free(j);
        LOG_ERR("conn=%" PRIu64 " cannot queue append to %s: %s", c->id, c->stream,
                rtlog_strerror(rc));
        http_respond_error(c, rc, rc == RTLOG_E_INVAL ? "bad request" : "internal error", 0);
        return 0;
    }
    c->job = j;
    return 0;
}

/* ---- routing ------------------------------------------------------------------------- */

static const char *method_of(struct lws *wsi)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))
        return "GET";
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
        return "POST";
    return "OTHER";
}

int http_request(struct conn *c, const char *path, size_t path_len)
{
    struct lws *wsi = c->wsi;
    (void)path_len;
    http_reset(c);
    c->kind = CK_HTTP;
    const char *method = method_of(wsi);
    int is_get = !strcmp(method, "GET"), is_post = !strcmp(method, "POST");
    route r;
    rtlog_route_parse(path, strlen(path), &r);
    /* The query string is not logged at all (it may hold token=); the path is escaped by
     * the logger. */
    LOG_DEBUG("conn=%" PRIu64 " %s /%s", c->id, method, path[0] == '/' ? path + 1 : path);

    switch (r.kind) {
    case ROUTE_METRICS:
    case ROUTE_LIVE:
    case ROUTE_READY:
        if (!is_get)
            break;
        return srv_ops_request(c, r.kind);
    case ROUTE_STREAM:
        if (!is_get)
            break;
        return sse_start(c, &r);
    case ROUTE_EVENTS:
        if (!is_post)
            break;
        return ingest_start(c, &r);
    case ROUTE_TASKS:
    case ROUTE_TASK_CANCEL:
        if (!is_post)
            break;
        return ingest_start(c, &r);
    default:
        if (ui_request(c, path, is_get))
            return 0; /* the browser UI, or GET /api/v1/streams (server/ui.c) */
        http_respond_error(c, RTLOG_E_NOTFOUND, "no such endpoint", !is_get);
        return 0;
    }
    http_respond_status(c, 405, RTLOG_E_INVAL, "method not allowed on this path", !is_get);
    return 0;
}
