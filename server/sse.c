/* sse.c - Server-Sent Events on GET /api/v1/<stream>/stream.
 *
 * Every check happens while lws still holds the request headers (lws_http_mark_sse()
 * detaches them): Origin, token (Authorization: Bearer, or ?token= for EventSource),
 * stream id, cursor and filters, connection limits, access, existence. A refusal is an
 * ordinary JSON response with a length (handed.md C07). Once accepted, the response is
 * 200 text/event-stream with no length, no-cache and X-Accel-Buffering: no; the header
 * goes out at the first WRITEABLE in one write with `retry:` and the first frames, so
 * proxies and clients see bytes at once and a reconnect costs one send(). Each
 * WRITEABLE writes at most sse-write-bytes of frames from the replay engine (one write:
 * a slow client holds at most that much in lws, never a queue); a subscriber catching up
 * gets more when its socket has room for it (srv_fill_budget). Heartbeats are comment
 * lines and errors are `event: error` without an id, so neither moves a client's resume
 * position (handed.md C06). The stream ends (response closed) when replay says END, on
 * token expiry (after an error event), or on drain.
 */
#define RTLOG_LOG_TAG "sse"
#include "server_int.h"

#include "log.h"

#include <inttypes.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int refuse(struct conn *c, rtlog_err code, const char *why)
{
    c->srv->m_stream_refused++;
    rtlog_principal_free(c->pr);
    c->pr = NULL;
    LOG_INFO("conn=%" PRIu64 " sse refused: %s (%s)", c->id, rtlog_err_wire_code(code), why);
    http_respond_error(c, code, why, 0);
    return 0;
}

int sse_start(struct conn *c, const route *r)
{
    struct srv *s = c->srv;
    struct lws *wsi = c->wsi;
    char buf[8448], why[256];
    const char *tok = NULL;
    size_t tok_len = 0;
    rtlog_err rc;

    if (s->draining)
        return refuse(c, RTLOG_E_AGAIN, "server is shutting down; reconnect");
    if (!srv_origin_ok(c))
        return refuse(c, RTLOG_E_FORBIDDEN, "origin not allowed");

    int n = lws_hdr_copy(wsi, buf, (int)sizeof buf, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 0) {
        if (rtlog_bearer_parse(buf, (size_t)n, &tok, &tok_len) != RTLOG_OK)
            return refuse(c, RTLOG_E_UNAUTH, "malformed Authorization header");
    } else if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) > 0) {
        return refuse(c, RTLOG_E_UNAUTH, "invalid or expired token");
    } else {
        size_t vl;
        int a = srv_get_arg(wsi, "token", buf, sizeof buf, &vl);
        if (a < 0)
            return refuse(c, RTLOG_E_UNAUTH, "invalid or expired token");
        if (a > 0) {
            tok = buf;
            tok_len = vl;
        }
    }
    if (!tok)
        return refuse(c, RTLOG_E_UNAUTH,
                      "a token is required: Authorization header or token query parameter");
    rtlog_principal *pr = NULL;
    rc = srv_auth_token(c, tok, tok_len, &pr);
    memset(buf, 0, sizeof buf);
    if (rc != RTLOG_OK)
        return refuse(c, RTLOG_E_UNAUTH, "invalid or expired token");
    c->pr = pr;

    if (r->stream_err != RTLOG_OK)
        return refuse(c, RTLOG_E_INVAL, r->stream_why);
    snprintf(c->stream, sizeof c->stream, "%s", r->stream);
    if (!rtlog_principal_can(c->pr, 0, c->stream))
        return refuse(c, RTLOG_E_FORBIDDEN, "no access to this stream");
    if ((rc = srv_stream_params(c, 1, why, sizeof why)) != RTLOG_OK)
        return refuse(c, rc, why);
    if (s->n_sse + s->n_ws_authed >= s->cfg.max_connections) {
        s->m_rate_limited++;
        return refuse(c, RTLOG_E_LIMIT, "too many connections");
    }
    char origin[512];
    int ol = lws_hdr_copy(wsi, origin, (int)sizeof origin, WSI_TOKEN_ORIGIN);

    c->kind = CK_SSE;
    if ((rc = srv_stream_begin(c, why, sizeof why)) != RTLOG_OK) {
        c->kind = CK_HTTP;
        return refuse(c, rc, why);
    }
    c->counted_total = 1;
    s->n_sse++;
    srv_list_add(c);

    unsigned char hb[LWS_PRE + 2048], *start = hb + LWS_PRE, *p = start, *end = hb + sizeof hb - 1;
    if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "text/event-stream; charset=utf-8",
                                    LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-cache", 8, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"x-accel-buffering:",
                                    (const unsigned char *)"no", 2, &p, end) ||
        (ol > 0 &&
         (lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-origin:",
                                      (const unsigned char *)origin, ol, &p, end) ||
          lws_add_http_header_by_name(wsi, (const unsigned char *)"vary:",
                                      (const unsigned char *)"Origin", 6, &p, end))) ||
        lws_finalize_http_header(wsi, &p, end))
        return -1;
    /* The header goes out with the first frames (the retry: line and whatever the cursor
     * has to catch up), in one send at the first WRITEABLE: a reconnect costs one send()
     * and one wake of the client, not two (a reconnect storm is a thousand of them while
     * the live fan-out holds the thread; tools/bench/RESULTS.md). resp_body is free on a
     * stream connection: it only carries JSON answers. */
    rtlog_buf_clear(&c->resp_body);
    if (rtlog_buf_append(&c->resp_body, start, (size_t)(p - start)) != RTLOG_OK)
        return -1;
    /* From here the header table is gone: everything needed was read above. */
    lws_http_mark_sse(wsi);
    srv_want_write(c);
    return 0;
}

int sse_writeable(struct conn *c)
{
    struct srv *s = c->srv;
    rtlog_buf *w = &s->wbuf;
    int end_after = 0, more = 0;

    if (c->sse_closing == 2)
        return -1; /* everything written has left: end the response */
    rtlog_buf_clear(w);
    if (rtlog_buf_reserve(w, LWS_PRE + 256) != RTLOG_OK)
        return -1;
    w->len = LWS_PRE;
    int first = !c->sse_started;
    if (first) {
        if (rtlog_buf_append(w, c->resp_body.p, c->resp_body.len) != RTLOG_OK)
            return -1;
        rtlog_buf_free(&c->resp_body);
        rtlog_buf_printf(w, "retry: %" PRIu64 "\n\n", s->cfg.sse_retry_ms);
        c->sse_started = 1;
    }
    if (c->has_sse_err) {
        rtlog_buf_printf(w, "event: error\ndata: %s\n\n", c->rare->sse_err);
        c->has_sse_err = 0;
        end_after = 1;
    } else if (c->sse_closing) {
        end_after = 1;
    } else {
        if (c->hb_pending) {
            rtlog_buf_puts(w, ": heartbeat\n\n");
            c->hb_pending = 0;
        }
        if (c->sub && !c->sub_done) {
            rtlog_replay_state st;
            rtlog_errinfo ei = {0};
            rtlog_err rc = rtlog_replay_fill(c->sub, w, srv_fill_budget(c), 0, &st, NULL, &ei);
            c->behind = rc == RTLOG_OK && st == RTLOG_REPLAY_MORE;
            if (rc != RTLOG_OK) {
                LOG_ERR("conn=%" PRIu64 " stream=%s delivery failed: %s", c->id, c->stream,
                        ei.text);
                rtlog_buf b = {0};
                if (rtlog_error_json(&b, rc, "internal error; resume from your last event id",
                                     0, 0) == RTLOG_OK)
                    rtlog_buf_printf(w, "event: error\ndata: %.*s\n\n", (int)b.len, b.p);
                rtlog_buf_free(&b);
                end_after = 1;
            } else if (st == RTLOG_REPLAY_MORE) {
                more = 1;
            } else if (st == RTLOG_REPLAY_END) {
                c->sub_done = 1;
                end_after = 1;
            }
        }
    }
    size_t len = w->len - LWS_PRE;
    if (len) {
        int n = lws_write(c->wsi, (unsigned char *)w->p + LWS_PRE, len,
                          first ? LWS_WRITE_HTTP_HEADERS : LWS_WRITE_HTTP);
        if (n < (int)len)
            return -1;
    }
    if (end_after) {
        if (!len)
            return -1;
        c->sse_closing = 2;
        srv_want_write(c);
    } else if (more) {
        srv_want_write(c);
    }
    return 0;
}
