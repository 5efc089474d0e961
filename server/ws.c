/* ws.c - WebSocket streams on /api/v1/<stream>/stream (same path as SSE).
 *
 * The upgrade is accepted for every path; refusals after that are in-band: an
 * {"type":"error",...} message, then close 4000 + HTTP status (1011 for internal_error),
 * so a browser can tell 401 from 404 (it never sees the HTTP status of a failed upgrade).
 * Authentication is ?token= at the upgrade or a first {"type":"auth","token":...} message
 * within auth-timeout; before it no heartbeat or event is sent (only one bad_request reply
 * to the first message that is not an auth message) and at most max-preauth-bytes may
 * arrive. Inbound messages are reassembled under a cap that is checked against what the
 * frame header announces (on the first payload byte, and by the housekeeping tick when
 * none follows), so nothing beyond the cap is ever buffered (1009); lws validates
 * UTF-8 (1007); binary frames are refused (1003). One write per WRITEABLE, in priority
 * order: pending error, close, control replies, heartbeat, then replay frames: up to
 * sse-write-bytes of event messages (more for one catching up: srv_fill_budget), framed
 * by the replay engine (RTLOG_REPLAY_WS_FRAMED)
 * and written raw in one lws_write, so a subscriber that is behind gets many messages per
 * send() and one at the head gets its one frame as before (tools/bench/RESULTS.md).
 * Source: CONTRACT.md "Authentication", "Errors and limits"; handed.md C09, C10, C17.
 */
#define RTLOG_LOG_TAG "ws"
#include "server_int.h"

#include "log.h"

#include <inttypes.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <string.h>

void ws_close_with(struct conn *c, int code, const char *reason)
{
    if (c->close_code)
        return;
    c->close_code = code;
    struct conn_rare *rare = conn_rare(c);
    if (rare)
        snprintf(rare->close_reason, sizeof rare->close_reason, "%s", reason);
    c->rx_discard = 1;
    srv_want_write(c);
}

static void fail_with(struct conn *c, rtlog_err code, const char *message, int close_code)
{
    if (c->close_code || c->err_pending)
        return;
    rtlog_buf b = {0};
    struct conn_rare *rare = conn_rare(c);
    if (rare && rtlog_error_json(&b, code, message, 0, 0) == RTLOG_OK &&
        b.len < sizeof rare->err_json) {
        memcpy(rare->err_json, b.p, b.len);
        rare->err_json[b.len] = '\0';
        c->err_pending = 1;
    }
    rtlog_buf_free(&b);
    ws_close_with(c, close_code, rtlog_err_wire_code(code));
}

void ws_fail(struct conn *c, rtlog_err code, const char *message)
{
    int status = rtlog_err_http_status(code);
    if (!c->started)
        c->srv->m_stream_refused++;
    LOG_INFO("conn=%" PRIu64 " ws error: %s (%s)", c->id, rtlog_err_wire_code(code), message);
    fail_with(c, code, message, status >= 500 ? 1011 : 4000 + status);
}

void ws_ctl_free(struct conn *c)
{
    if (!c->rare)
        return;
    while (c->rare->ctl_head) {
        struct ctlmsg *m = c->rare->ctl_head;
        c->rare->ctl_head = m->next;
        free(m);
    }
    c->rare->ctl_tail = NULL;
    c->nctl = 0;
}

void ws_rx_update(struct conn *c)
{
    if (!c->wsi || c->kind != CK_WS || c->rx_discard)
        return;
    int pause = c->nctl >= CTL_PAUSE || c->nreports >= AGENT_REPORTS_INFLIGHT;
    if (pause == c->rx_paused)
        return;
    c->rx_paused = pause;
    lws_rx_flow_control(c->wsi, !pause);
}

/* Queue a reply. Every message gets its answer: when replies pile up the socket is no
 * longer read (ws_rx_update) until they are written, so a client that sends faster than
 * it reads is slowed down by TCP instead of losing answers. Only a client that keeps
 * sending what was already in flight past CTL_MAX unread replies is closed (1008), which
 * it sees, rather than losing a reply silently. */
static void ctl_push(struct conn *c, const char *json, size_t len)
{
    if (c->close_code || c->err_pending)
        return;
    if (c->nctl >= CTL_MAX) {
        ws_close_with(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "replies not read");
        return;
    }
    struct ctlmsg *m = conn_rare(c) ? malloc(sizeof *m + len + 1) : NULL;
    if (!m) {
        ws_close_with(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return;
    }
    m->next = NULL;
    m->len = len;
    memcpy(m->s, json, len);
    m->s[len] = '\0';
    if (c->rare->ctl_tail)
        c->rare->ctl_tail->next = m;
    else
        c->rare->ctl_head = m;
    c->rare->ctl_tail = m;
    c->nctl++;
    ws_rx_update(c);
    srv_want_write(c);
}

static void ctl_error(struct conn *c, rtlog_err code, const char *message)
{
    rtlog_buf b = {0};
    if (rtlog_error_json(&b, code, message, 0, 0) == RTLOG_OK)
        ctl_push(c, b.p, b.len);
    rtlog_buf_free(&b);
}

void ws_ctl_error(struct conn *c, rtlog_err code, const char *message)
{
    ctl_error(c, code, message);
}

int ws_filter(struct srv *s, struct lws *wsi)
{
    (void)wsi;
    /* Every path upgrades (an unknown one then gets not_found + 4404, which a browser can
     * see; a refused handshake it cannot). Only a draining server refuses outright. */
    return s->draining ? 1 : 0;
}

/* Verify a token from ?token= or an auth message and start (or extend) the stream. */
static void authenticate(struct conn *c, const char *tok, size_t len)
{
    char why[256];
    rtlog_principal *pr = NULL;
    if (srv_auth_token(c, tok, len, &pr) != RTLOG_OK) {
        ws_fail(c, RTLOG_E_UNAUTH, "invalid or expired token");
        return;
    }
    if (c->started) {
        /* re-auth: the new token must grant the same stream; it only extends expiry */
        if (!rtlog_principal_can(pr, 0, c->stream)) {
            rtlog_principal_free(pr);
            ws_fail(c, RTLOG_E_FORBIDDEN, "new token has no access to this stream");
            return;
        }
        /* On an agent stream the token decides who may report and who gets the task
         * credentials (agents.c): a new token may extend the connection, not change who
         * is on it. */
        if (rtlog_principal_is_agent(pr, c->stream) != rtlog_principal_is_agent(c->pr, c->stream)) {
            rtlog_principal_free(pr);
            ws_fail(c, RTLOG_E_FORBIDDEN, "new token is not the same agent identity");
            return;
        }
        rtlog_principal_free(c->pr);
        c->pr = pr;
        c->exp_deadline_s = srv_exp_deadline_s(pr->exp, c->srv->cfg.jwt_leeway_ms);
        LOG_DEBUG("conn=%" PRIu64 " re-authenticated sub=%s", c->id, pr->sub);
        return;
    }
    c->pr = pr;
    c->authed = 1;
    c->auth_deadline_ms = 0;
    srv_preauth_release(c);
    struct srv *s = c->srv;
    if (s->n_sse + s->n_ws_authed >= s->cfg.max_connections) {
        s->m_rate_limited++;
        ws_fail(c, RTLOG_E_LIMIT, "too many connections");
        return;
    }
    c->counted_authed = 1;
    s->n_ws_authed++;
    rtlog_err rc = srv_stream_begin(c, why, sizeof why);
    if (rc != RTLOG_OK) {
        ws_fail(c, rc, why);
        return;
    }
    c->started = 1;
    srv_want_write(c);
}

int ws_established(struct conn *c)
{
    struct srv *s = c->srv;
    struct lws *wsi = c->wsi;
    char uri[2048], why[256], tok[RTLOG_JWT_MAX_TOKEN + 1];
    route r;

    c->counted_total = 1;
    s->n_ws++;
    srv_list_add(c);

    int n = lws_hdr_copy(wsi, uri, (int)sizeof uri, WSI_TOKEN_GET_URI);
    rtlog_route_parse(uri, n > 0 ? (size_t)n : 0, &r);
    if (s->draining) {
        ws_close_with(c, 1001, "server shutting down");
        return 0;
    }
    if (!srv_origin_ok(c)) {
        ws_fail(c, RTLOG_E_FORBIDDEN, "origin not allowed");
        return 0;
    }
    if (r.kind != ROUTE_STREAM || r.stream_err != RTLOG_OK) {
        if (r.kind == ROUTE_STREAM)
            ws_fail(c, RTLOG_E_INVAL, r.stream_why);
        else
            ws_fail(c, RTLOG_E_NOTFOUND, "no such endpoint");
        return 0;
    }
    snprintf(c->stream, sizeof c->stream, "%s", r.stream);
    rtlog_err rc = srv_stream_params(c, 0, why, sizeof why);
    if (rc != RTLOG_OK) {
        ws_fail(c, rc, why);
        return 0;
    }
    size_t tl;
    int a = srv_get_arg(wsi, "token", tok, sizeof tok, &tl);
    if (a < 0) {
        ws_fail(c, RTLOG_E_UNAUTH, "invalid or expired token");
        return 0;
    }
    if (a > 0) {
        authenticate(c, tok, tl);
        memset(tok, 0, tl);
        return 0;
    }
    /* Unauthenticated sockets have their own caps (total and per client IP) and do not
     * count toward max-connections, so idle ones cannot lock out clients that hold a
     * token (handed.md C10 f). */
    if (srv_preauth_acquire(c)) {
        s->m_rate_limited++;
        ws_fail(c, RTLOG_E_LIMIT, "too many unauthenticated connections");
        return 0;
    }
    c->auth_deadline_ms = srv_now_ms() + s->cfg.auth_timeout_ms;
    return 0;
}

static void handle_message(struct conn *c, const char *p, size_t len)
{
    json_error_t je;
    /* NUL is allowed inside strings, as on ingest (a log line may hold one); a type with a
     * NUL in it is no type. */
    json_t *m = json_loadb(p, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    const char *type = NULL;
    if (m && json_is_object(m)) {
        json_t *t = json_object_get(m, "type");
        type = json_string_value(t);
        if (type && strlen(type) != json_string_length(t))
            type = NULL;
    }

    if (type && !strcmp(type, "auth")) {
        /* First-message auth, or re-auth on an open stream to extend its expiry. */
        json_t *t = json_object_get(m, "token");
        if (!json_is_string(t))
            ws_fail(c, RTLOG_E_UNAUTH, "auth message needs a \"token\" string");
        else
            authenticate(c, json_string_value(t), json_string_length(t));
    } else if (!c->authed) {
        /* Before authentication only "auth" means anything; nothing else extends the
         * deadline (handed.md C10). The first message that is not one (not JSON, or another
         * type: a client that never sends ?token= nor an auth message would otherwise only
         * learn why at the deadline) gets one bad_request saying what is expected; the rest
         * are ignored, so a chatty client gets one reply, and the deadline stands. */
        if (!c->preauth_hinted) {
            c->preauth_hinted = 1;
            ctl_error(c, RTLOG_E_INVAL, "expected {\"type\":\"auth\",\"token\":...}");
        }
    } else if (!type) {
        /* never echo jansson's text: it quotes the input, which may hold a token */
        ctl_error(c, RTLOG_E_INVAL, "message must be a JSON object with a string \"type\"");
    } else if (!strcmp(type, "pong")) {
        c->hb_unanswered_ms = 0;
        lws_validity_confirmed(c->wsi); /* the same as an RFC 6455 pong (server.c) */
    } else if (!strcmp(type, "ping")) {
        ctl_push(c, "{\"type\":\"pong\"}", 15);
    } else if (agents_message(c, type, p, len)) {
        /* an agent's report: validated, stored in its job stream (agents.c) */
    } else {
        ctl_error(c, RTLOG_E_INVAL, "unknown message type");
    }
    json_decref(m);
}

int ws_receive(struct conn *c, const void *in, size_t len)
{
    struct srv *s = c->srv;
    struct lws *wsi = c->wsi;
    if (c->rx_discard)
        return 0;
    if (lws_frame_is_binary(wsi)) {
        LOG_INFO("conn=%" PRIu64 " binary frame refused", c->id);
        fail_with(c, RTLOG_E_INVAL, "binary frames are not accepted; send JSON text", 1003);
        return 0;
    }
    /* Past a limit the close goes out from WRITEABLE (ws_close_with) and the rest of the
     * input is read and dropped (rx_discard, close_drain: see close_now), never refused
     * with -1 here: lws 4.1.6 would then close a second time at the next spill of the
     * still-arriving flood (one rx_buffer_size later), kill the socket before the close
     * frame is sent, and the kernel would answer the unread flood with RST. */
    size_t remaining = lws_remaining_packet_payload(wsi);
    if (!c->authed) {
        c->preauth_bytes += len;
        if (c->preauth_bytes + remaining > s->cfg.max_preauth_bytes) {
            LOG_INFO("conn=%" PRIu64 " closed: more than %" PRIu64 " bytes before auth", c->id,
                     s->cfg.max_preauth_bytes);
            c->close_drain = 1;
            ws_close_with(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "too much data before auth");
            return 0;
        }
    }
    if (c->rx.len + len + remaining > s->cfg.max_ws_message) {
        LOG_INFO("conn=%" PRIu64 " closed: message larger than %" PRIu64 " bytes", c->id,
                 s->cfg.max_ws_message);
        c->close_drain = 1;
        ws_close_with(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big");
        return 0;
    }
    if (rtlog_buf_append(&c->rx, in, len) != RTLOG_OK) {
        ws_close_with(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return 0;
    }
    if (!lws_is_final_fragment(wsi))
        return 0;
    s->m_ws_messages_in++;
    handle_message(c, c->rx.p ? c->rx.p : "", c->rx.len);
    /* Between messages a connection holds no reassembly buffer: most are idle after their
     * auth message (the browser client's), and one malloc per message is small next to
     * parsing it (tools/bench/RESULTS.md, issue 5 idle). */
    rtlog_buf_free(&c->rx);
    return 0;
}

/* lws 4.1.6 says nothing between a frame header and the first byte of its payload, so a
 * header announcing more than the limits allow, followed by nothing, would only be ended by
 * the liveness rule. lws_remaining_packet_payload() is the part of the current frame's
 * announced length still to come (while the length bytes are still arriving, a lower bound
 * of it), kept in the wsi outside callbacks too, so the housekeeping tick makes the same
 * check ws_receive() makes on the first payload byte, without waiting for one. Nothing is
 * ever allocated from the announced size: only bytes that arrived are buffered. */
int ws_check_announced(struct conn *c)
{
    struct srv *s = c->srv;
    if (!c->wsi || c->rx_discard || c->close_code || c->err_pending)
        return 0;
    uint64_t remaining = (uint64_t)lws_remaining_packet_payload(c->wsi);
    if (!remaining)
        return 0;
    int preauth = !c->authed && c->preauth_bytes + remaining > s->cfg.max_preauth_bytes;
    if (!preauth && c->rx.len + remaining <= s->cfg.max_ws_message)
        return 0;
    LOG_INFO("conn=%" PRIu64 " closed: a frame header announces %" PRIu64
             " more bytes (limit %" PRIu64 ")",
             c->id, remaining, preauth ? s->cfg.max_preauth_bytes : s->cfg.max_ws_message);
    c->close_drain = 1; /* the announced payload may be on its way */
    ws_close_with(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                  preauth ? "too much data before auth" : "message too big");
    return 1;
}

void ws_pong(struct conn *c)
{
    if (c->authed)
        c->hb_unanswered_ms = 0; /* an RFC 6455 pong answers a heartbeat too */
}

static int write_text(struct conn *c, const char *p, size_t len)
{
    rtlog_buf *w = &c->srv->wbuf;
    rtlog_buf_clear(w);
    if (rtlog_buf_reserve(w, LWS_PRE + len) != RTLOG_OK)
        return -1;
    memcpy(w->p + LWS_PRE, p, len);
    int n = lws_write(c->wsi, (unsigned char *)w->p + LWS_PRE, len, LWS_WRITE_TEXT);
    return n < (int)len ? -1 : 0;
}

/* Hand the close frame to lws (-1 after lws_close_reason): it sends it at the next POLLOUT
 * and then waits for the peer's close, reading and dropping whatever still arrives, for up
 * to its close-ack timeout (5 s; RFC 6455 7.1.1). lws 4.1.6 calls WRITEABLE once more after
 * sending it, and a second -1 there closes the socket at once. That is what a refusal or an
 * end of stream wants (the peer may never answer; nothing of it is unread). A close for
 * input past a limit (close_drain) must not: the flood is still arriving, closing with it
 * unread makes the kernel answer RST, and a client still writing then fails its write and
 * drops the close frame it had received; so there ws_writeable() returns 0 and lws drains
 * until the peer's close (measured: 5.0 s and 0.8 s of server CPU for a client that floods
 * without end and never answers). */
static int close_now(struct conn *c, int code, const char *reason)
{
    c->close_handed = 1;
    lws_close_reason(c->wsi, (enum lws_close_status)code, (unsigned char *)reason,
                     strlen(reason));
    return -1;
}

int ws_writeable(struct conn *c)
{
    struct srv *s = c->srv;
    struct lws *wsi = c->wsi;

    if (c->close_handed)
        return c->close_drain ? 0 : -1;
    if (c->err_pending) {
        c->err_pending = 0;
        if (write_text(c, c->rare->err_json, strlen(c->rare->err_json)))
            return -1;
        srv_want_write(c); /* the close follows at the next WRITEABLE */
        return 0;
    }
    if (c->close_code)
        return close_now(c, c->close_code, c->rare ? c->rare->close_reason : "");
    /* Control replies go out before authentication too (only the one pre-auth hint can be
     * queued then); heartbeats and events only once the stream has started. */
    if (c->nctl) {
        struct ctlmsg *m = c->rare->ctl_head;
        c->rare->ctl_head = m->next;
        if (!m->next)
            c->rare->ctl_tail = NULL;
        c->nctl--;
        int rc = write_text(c, m->s, m->len);
        free(m);
        if (rc)
            return -1;
        ws_rx_update(c);
        srv_want_write(c);
        return 0;
    }
    if (!c->started)
        return 0; /* before authentication: no heartbeats, no events */
    if (c->hb_pending) {
        char hb[96], ts[32];
        c->hb_pending = 0;
        int n = snprintf(hb, sizeof hb, "{\"type\":\"heartbeat\",\"timestamp\":\"%s\"}",
                         rtlog_schema_now(ts));
        if (write_text(c, hb, (size_t)n))
            return -1;
        srv_want_write(c); /* frames may be pending behind the heartbeat */
        return 0;
    }
    if (c->sub_done)
        return close_now(c, LWS_CLOSE_STATUS_NORMAL, "end of stream");
    rtlog_buf *w = &s->wbuf;
    rtlog_buf_clear(w);
    if (rtlog_buf_reserve(w, LWS_PRE + 256) != RTLOG_OK)
        return -1;
    w->len = LWS_PRE;
    rtlog_replay_state st;
    size_t nf = 0;
    rtlog_errinfo ei = {0};
    rtlog_err rc = rtlog_replay_fill(c->sub, w, srv_fill_budget(c), 0, &st, &nf, &ei);
    c->behind = rc == RTLOG_OK && st == RTLOG_REPLAY_MORE;
    if (rc != RTLOG_OK) {
        LOG_ERR("conn=%" PRIu64 " stream=%s delivery failed: %s", c->id, c->stream, ei.text);
        ws_fail(c, rc, "internal error; resume from your last seq");
        return 0;
    }
    size_t len = w->len - LWS_PRE;
    if (len) {
        /* complete frames already: lws sends them as they are (it keeps what the socket
         * does not take and writes it before the next WRITEABLE) */
        int n = lws_write(wsi, (unsigned char *)w->p + LWS_PRE, len, LWS_WRITE_RAW);
        if (n < (int)len)
            return -1;
    }
    if (st == RTLOG_REPLAY_END) {
        c->sub_done = 1;
        if (!len)
            return close_now(c, LWS_CLOSE_STATUS_NORMAL, "end of stream");
        srv_want_write(c);
    } else if (st == RTLOG_REPLAY_MORE) {
        srv_want_write(c);
    }
    return 0;
}
