/* server.c - the process: lws context, the one service thread, the writer-thread queues,
 * the housekeeping tick, connection accounting, /metrics and /health, and the drain.
 *
 * Threads (DESIGN.md "Threads"): this thread runs lws and does everything network. The
 * store's writer thread commits; its completion callback and commit hook only push onto
 * a mutex-protected queue and call lws_cancel_service() (the one lws call allowed off the
 * service thread). LWS_CALLBACK_EVENT_WAIT_CANCELLED drains both queues here: finished
 * appends become 201s (or errors), commit notes go to the replay engine, which wakes the
 * subscribers that now have work. The service thread never waits for an fsync.
 * One housekeeping tick walks the stream connections for heartbeats, pong, auth, token
 * expiry, stall deadlines and oversized frame announcements, so no per-connection timer
 * can outlive its connection; a second timer polls the store's generation for commits by
 * other processes. The data directory is locked for the process lifetime (one server).
 */
#define RTLOG_LOG_TAG "server"
#include "server_int.h"

#include "log.h"
#include "retention.h"
#include "tcp_window.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h> /* SIOCOUTQ */
#include <inttypes.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct srv *g_srv;           /* for the signal handler and lws callbacks */
static lws_retry_bo_t retry_policy; /* must outlive the context */

uint64_t srv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Ask lws for a WRITEABLE callback and start the stall clock if it is not running: the
 * clock stops at the next WRITEABLE, which lws only delivers once earlier bytes left. */
void srv_want_write(struct conn *c)
{
    if (!c->wsi)
        return;
    if (!c->blocked_since_ms)
        c->blocked_since_ms = srv_now_ms();
    lws_callback_on_writable(c->wsi);
}

/* The byte budget of one fill (one send()). At the head it is --sse-write-bytes. A
 * subscriber catching up (its last fill said MORE) gets more, up to
 * --catchup-write-bytes, but only as much as its socket's send buffer has room for now
 * (SO_SNDBUF less what is queued, SIOCOUTQ, less a quarter for the kernel's per-buffer
 * overhead): the kernel takes all of it in one send(), the reader is woken once per big
 * chunk instead of once per 32 KiB, and lws keeps nothing of it, so a reader that does not
 * keep up (a full send buffer) still holds at most --sse-write-bytes in lws. */
size_t srv_fill_budget(const struct conn *c)
{
    size_t base = (size_t)c->srv->cfg.sse_write_bytes;
    size_t max = (size_t)c->srv->cfg.catchup_write_bytes;
    if (!c->behind || max <= base || !c->wsi)
        return base;
    int fd = lws_get_socket_fd(c->wsi), sndbuf = 0, queued = 0;
    socklen_t sl = sizeof sndbuf;
    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl) != 0 ||
        ioctl(fd, SIOCOUTQ, &queued) != 0 || sndbuf <= 0 || queued < 0)
        return base;
    size_t room = (size_t)sndbuf > (size_t)queued ? ((size_t)sndbuf - (size_t)queued) / 4 * 3 : 0;
    return room > max ? max : room > base ? room : base;
}

/* ---- connection accounting ---------------------------------------------------------- */

void srv_list_add(struct conn *c)
{
    struct srv *s = c->srv;
    if (c->listed)
        return;
    c->prev = NULL;
    c->next = s->streams;
    if (s->streams)
        s->streams->prev = c;
    s->streams = c;
    c->listed = 1;
}

static unsigned subj_hash(const char *sub)
{
    unsigned h = 2166136261u;
    for (; *sub; sub++)
        h = (h ^ (unsigned char)*sub) * 16777619u;
    return h % SUBJ_BUCKETS;
}

/* Count @c under its principal's subject. Returns 0, or -1 when the subject is at its
 * limit (the caller answers 429). */
int srv_subject_acquire(struct conn *c)
{
    struct srv *s = c->srv;
    if (c->subject || !c->pr)
        return 0;
    unsigned h = subj_hash(c->pr->sub);
    struct subj *e = s->subjects[h];
    while (e && strcmp(e->sub, c->pr->sub) != 0)
        e = e->next;
    if (e && e->count >= s->cfg.max_connections_per_subject)
        return -1;
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e)
            return -1;
        snprintf(e->sub, sizeof e->sub, "%s", c->pr->sub);
        e->next = s->subjects[h];
        s->subjects[h] = e;
    }
    e->count++;
    c->subject = e;
    return 0;
}

int srv_preauth_acquire(struct conn *c)
{
    struct srv *s = c->srv;
    char ip[128] = "";
    if (c->preauth_ip)
        return 0;
    if (s->n_preauth >= s->cfg.max_preauth_connections)
        return -1;
    lws_get_peer_simple(c->wsi, ip, sizeof ip);
    unsigned h = subj_hash(ip);
    struct subj *e = s->preauth_ips[h];
    while (e && strcmp(e->sub, ip) != 0)
        e = e->next;
    if (e && e->count >= s->cfg.max_preauth_per_ip)
        return -1;
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e)
            return -1;
        snprintf(e->sub, sizeof e->sub, "%s", ip);
        e->next = s->preauth_ips[h];
        s->preauth_ips[h] = e;
    }
    e->count++;
    c->preauth_ip = e;
    s->n_preauth++;
    return 0;
}

void srv_preauth_release(struct conn *c)
{
    struct srv *s = c->srv;
    struct subj *e = c->preauth_ip;
    if (!e)
        return;
    c->preauth_ip = NULL;
    s->n_preauth--;
    if (--e->count)
        return;
    struct subj **pp = &s->preauth_ips[subj_hash(e->sub)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    free(e);
}

static void subject_release(struct conn *c)
{
    struct srv *s = c->srv;
    struct subj *e = c->subject;
    if (!e)
        return;
    c->subject = NULL;
    if (--e->count)
        return;
    struct subj **pp = &s->subjects[subj_hash(e->sub)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    free(e);
}

struct conn_rare *conn_rare(struct conn *c)
{
    if (!c->rare)
        c->rare = calloc(1, sizeof *c->rare);
    return c->rare;
}

/* Free everything a connection holds. Idempotent: lws may report both CLOSED_HTTP and
 * HTTP_DROP_PROTOCOL for one socket. */
void srv_conn_release(struct conn *c)
{
    struct srv *s = c->srv;
    if (!s)
        return;
    if (c->listed) {
        if (c->prev)
            c->prev->next = c->next;
        else
            s->streams = c->next;
        if (c->next)
            c->next->prev = c->prev;
        c->listed = 0;
        c->prev = c->next = NULL;
    }
    if (c->counted_http) {
        s->n_http--;
        c->counted_http = 0;
    }
    if (c->counted_total) {
        if (c->kind == CK_SSE)
            s->n_sse--;
        else if (c->kind == CK_WS)
            s->n_ws--;
        c->counted_total = 0;
    }
    if (c->counted_authed) {
        s->n_ws_authed--;
        c->counted_authed = 0;
    }
    srv_preauth_release(c);
    subject_release(c);
    if (c->sub) {
        rtlog_replay_close(c->sub);
        c->sub = NULL;
    }
    rtlog_principal_free(c->pr);
    c->pr = NULL;
    http_job_drop_ready(c);
    agents_conn_release(c);
    if (c->job) {
        c->job->conn = NULL; /* the append finishes; its answer has nowhere to go */
        c->job = NULL;
    }
    if (c->resp != RS_NONE) {
        s->responses_pending--;
        c->resp = RS_NONE;
    }
    http_body_release(c);
    rtlog_buf_free(&c->resp_body);
    rtlog_buf_free(&c->body);
    rtlog_buf_free(&c->rx);
    ws_ctl_free(c);
    free(c->rare); /* after rtlog_replay_close(): nothing points into it any more */
    c->rare = NULL;
    c->has_sse_err = 0;
    c->nctl = 0;
    c->wsi = NULL;
}

/* exp + leeway, saturating: exp is a token claim (any int64 a signer chose; 2^63-1 made
 * the plain sum a signed overflow, UB, and in Release an instantly "expired" stream). */
int64_t srv_exp_deadline_s(int64_t exp, uint64_t leeway_ms)
{
    uint64_t l = leeway_ms / 1000;
    if (l > (uint64_t)INT64_MAX)
        l = (uint64_t)INT64_MAX;
    if (exp > INT64_MAX - (int64_t)l)
        return INT64_MAX;
    return exp + (int64_t)l;
}

/* ---- shared checks for SSE and WS --------------------------------------------------- */

int srv_origin_ok(struct conn *c)
{
    char origin[512];
    int n = lws_hdr_copy(c->wsi, origin, (int)sizeof origin, WSI_TOKEN_ORIGIN);
    if (n <= 0)
        return lws_hdr_total_length(c->wsi, WSI_TOKEN_ORIGIN) > 0
                   ? rtlog_origin_allowed(c->srv->cfg.origins, "", 0) /* too long */
                   : 1;
    return rtlog_origin_allowed(c->srv->cfg.origins, origin, (size_t)n);
}

/* Read query parameter @name (without '='), URL-decoded by lws. Returns 1 and the value
 * when present, 0 when absent, -1 when present but longer than @cap - 1. */
int srv_get_arg(struct lws *wsi, const char *name, char *buf, size_t cap, size_t *len)
{
    size_t nl = strlen(name);
    char frag[16384];
    for (int i = 0;; i++) {
        int fl = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (fl <= 0)
            return 0;
        if ((size_t)fl < nl + 1)
            continue;
        if ((size_t)fl >= sizeof frag) {
            /* too long to hold, but check whether it is ours */
            char head[64];
            if (nl + 1 >= sizeof head)
                continue;
            int hl = lws_hdr_copy_fragment(wsi, head, (int)sizeof head, WSI_TOKEN_HTTP_URI_ARGS, i);
            if (hl > (int)nl && !memcmp(head, name, nl) && head[nl] == '=')
                return -1;
            continue;
        }
        int n = lws_hdr_copy_fragment(wsi, frag, (int)sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < (int)nl + 1 || memcmp(frag, name, nl) != 0 || frag[nl] != '=')
            continue;
        size_t vl = (size_t)n - nl - 1;
        if (vl + 1 > cap)
            return -1;
        memcpy(buf, frag + nl + 1, vl);
        buf[vl] = '\0';
        if (len)
            *len = vl;
        return 1;
    }
}

/* Read the subscription parameters shared by SSE and WS: the cursor (Last-Event-ID header
 * for SSE wins over ?lastEventId=; both must be well-formed), ?nodeId=, ?types=, ?follow=.
 * Must run while lws still holds the request headers. */
rtlog_err srv_stream_params(struct conn *c, int sse, char *why, size_t cap)
{
    struct lws *wsi = c->wsi;
    char buf[8448];
    size_t n;
    int present = 0, a;
    uint64_t v = 0;

    c->follow = 1;
    c->has_cursor = 0;
    a = srv_get_arg(wsi, "lastEventId", buf, sizeof buf, &n);
    if (a < 0 || (a > 0 && rtlog_cursor_parse(buf, n, &present, &v) != RTLOG_OK)) {
        snprintf(why, cap, "lastEventId must be a decimal sequence number (0 .. 2^63-1)");
        return RTLOG_E_CURSOR;
    }
    if (present) {
        c->has_cursor = 1;
        c->cursor = v;
    }
    if (sse) {
        int hl = lws_hdr_custom_length(wsi, "last-event-id:", 14);
        if (hl >= (int)sizeof buf) {
            snprintf(why, cap, "Last-Event-ID must be a decimal sequence number (0 .. 2^63-1)");
            return RTLOG_E_CURSOR;
        }
        if (hl > 0) {
            int got = lws_hdr_custom_copy(wsi, buf, (int)sizeof buf, "last-event-id:", 14);
            if (got < 0 || rtlog_cursor_parse(buf, (size_t)got, &present, &v) != RTLOG_OK) {
                snprintf(why, cap,
                         "Last-Event-ID must be a decimal sequence number (0 .. 2^63-1)");
                return RTLOG_E_CURSOR;
            }
            if (present) { /* the header wins: a browser reconnects with the old URL */
                c->has_cursor = 1;
                c->cursor = v;
            }
        }
    }
    a = srv_get_arg(wsi, "nodeId", c->node_id, sizeof c->node_id, &n);
    if (a < 0) {
        snprintf(why, cap, "nodeId is longer than %d bytes", RTLOG_ID_MAX);
        return RTLOG_E_INVAL;
    }
    if (a == 0)
        c->node_id[0] = '\0';
    a = srv_get_arg(wsi, "types", buf, sizeof c->rare->types, &n);
    if (a < 0) {
        snprintf(why, cap, "types is too long");
        return RTLOG_E_INVAL;
    }
    if (a == 0) {
        if (c->rare)
            c->rare->types[0] = '\0';
    } else {
        struct conn_rare *rare = conn_rare(c);
        if (!rare) {
            snprintf(why, cap, "out of memory");
            return RTLOG_E_NOMEM;
        }
        memcpy(rare->types, buf, n + 1);
        char *types = rare->types;
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)types[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ',' ||
                  (ch >= '0' && ch <= '9'))) {
                snprintf(why, cap, "types must be a comma-separated list of event types");
                return RTLOG_E_INVAL;
            }
        }
        if (n && (types[0] == ',' || types[n - 1] == ',' || strstr(types, ",,"))) {
            snprintf(why, cap, "types must be a comma-separated list of event types");
            return RTLOG_E_INVAL;
        }
    }
    a = srv_get_arg(wsi, "follow", buf, 16, &n);
    if (a < 0 || (a > 0 && rtlog_bool_param_parse(buf, n, &c->follow) != RTLOG_OK)) {
        snprintf(why, cap, "follow must be true or false");
        return RTLOG_E_INVAL;
    }
    return RTLOG_OK;
}

rtlog_err srv_auth_token(struct conn *c, const char *tok, size_t len, rtlog_principal **out)
{
    rtlog_errinfo ei = {0};
    rtlog_err rc = rtlog_auth_verify(c->srv->auth, tok, len, (int64_t)time(NULL), out, &ei);
    if (rc != RTLOG_OK)
        LOG_INFO("conn=%" PRIu64 " token rejected: %s", c->id, ei.text);
    return rc;
}

/* Bound how long a stream's peer may leave sent bytes unacknowledged (README "Hardening",
 * rtlog_server.h "Dead peers"). Without it a peer that vanished silently (no FIN, no RST)
 * is found only when TCP gives up retransmitting (tcp_retries2: ~15 min); heartbeats keep
 * bytes in flight every heartbeat interval, so with it the kernel ends such a connection
 * (ETIMEDOUT) about tcp-user-timeout after the first heartbeat it could not deliver, the
 * same time the WS pong rule allows. A setsockopt failure only loses that bound. */
/* The send buffer is capped too (--stream-sndbuf): Linux autotuning grows a stream
 * socket's send buffer to tcp_wmem[2] (4 MiB), so every subscriber that stops reading
 * held ~2.7 MiB of kernel memory (measured: tools/bench/RESULTS.md "Slow and stalled
 * consumers"), a few hundred of them put every TCP socket of the machine under memory
 * pressure, the stall timeout only started after 4 MiB, and a 1 KB/s reader found its
 * close behind ~2 MB. 256 KiB (the kernel makes it 512 KiB) still takes a whole catch-up
 * write (--catchup-write-bytes, srv_fill_budget) in one send(). */
static void stream_socket_opts(struct conn *c)
{
    unsigned int v = (unsigned int)c->srv->cfg.tcp_user_timeout_ms; /* <= 3600000: config */
    int fd = (int)lws_get_socket_fd(c->wsi);
    if (fd < 0)
        return;
    if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, sizeof v) != 0)
        LOG_WARN("conn=%" PRIu64 " TCP_USER_TIMEOUT %u ms: %s", c->id, v, strerror(errno));
    int sb = (int)c->srv->cfg.stream_sndbuf; /* <= 64 MiB: config */
    if (sb > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb) != 0)
        LOG_WARN("conn=%" PRIu64 " SO_SNDBUF %d: %s", c->id, sb, strerror(errno));
}

/* Start delivering c->stream to an authenticated connection: access, per-subject limit,
 * then existence (access before existence: CONTRACT "Authentication"). */
rtlog_err srv_stream_begin(struct conn *c, char *why, size_t why_cap)
{
    struct srv *s = c->srv;
    if (!rtlog_principal_can(c->pr, 0, c->stream)) {
        snprintf(why, why_cap, "no access to this stream");
        return RTLOG_E_FORBIDDEN;
    }
    if (srv_subject_acquire(c)) {
        s->m_rate_limited++;
        snprintf(why, why_cap, "too many connections for this subject");
        return RTLOG_E_LIMIT;
    }
    rtlog_replay_req req = {
        .stream = c->stream,
        .has_cursor = c->has_cursor,
        .cursor = c->cursor,
        .node_id = c->node_id,
        .types = c->rare ? c->rare->types : NULL,
        .follow = c->follow,
        .fmt = c->kind == CK_WS ? RTLOG_REPLAY_WS_FRAMED : RTLOG_REPLAY_SSE,
        .user = c,
    };
    agents_stream_prepare(c, &req);
    rtlog_errinfo ei = {0};
    rtlog_err rc = rtlog_replay_open(s->replay, &req, &c->sub, &ei);
    if (rc != RTLOG_OK) {
        subject_release(c);
        if (rc == RTLOG_E_NOTFOUND)
            snprintf(why, why_cap, "stream not found");
        else if (rc == RTLOG_E_INVAL)
            snprintf(why, why_cap, "%s", ei.text[0] ? ei.text : "bad request");
        else {
            LOG_ERR("conn=%" PRIu64 " open %s: %s", c->id, c->stream, ei.text);
            snprintf(why, why_cap, "internal error");
        }
        return rc;
    }
    c->exp_deadline_s = srv_exp_deadline_s(c->pr->exp, s->cfg.jwt_leeway_ms);
    c->next_hb_ms = srv_now_ms() + s->cfg.heartbeat_ms;
    stream_socket_opts(c);
    LOG_INFO("conn=%" PRIu64 " %s stream=%s sub=%s cursor=%s%" PRIu64 " follow=%d",
             c->id, c->kind == CK_WS ? "ws" : "sse", c->stream, c->pr->sub,
             c->has_cursor ? "" : "none/", c->cursor, c->follow);
    return RTLOG_OK;
}

/* ---- writer thread -> lws thread ----------------------------------------------------- */

static void on_commit(void *ctx, const rtlog_commit_note *notes, size_t n)
{
    struct srv *s = ctx;
    struct note *head = NULL, **tail = &head;
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(notes[i].stream);
        struct note *e = malloc(sizeof *e + nl + 1);
        if (!e)
            continue; /* a lost note only delays wakes until the next commit or fill */
        e->next = NULL;
        e->last_seq = notes[i].last_seq;
        e->sealed = notes[i].sealed;
        memcpy(e->stream, notes[i].stream, nl + 1);
        *tail = e;
        tail = &e->next;
    }
    if (!head)
        return;
    pthread_mutex_lock(&s->qlock);
    if (s->notes_tail)
        s->notes_tail->next = head;
    else
        s->notes_head = head;
    s->notes_tail = (struct note *)((char *)tail - offsetof(struct note, next));
    int wake = !s->wake_pending;
    s->wake_pending = 1;
    pthread_mutex_unlock(&s->qlock);
    if (wake)
        lws_cancel_service(s->ctx);
}

void http_job_queue_done(struct job *j)
{
    struct srv *s = j->srv;
    j->next = NULL;
    pthread_mutex_lock(&s->qlock);
    if (s->done_tail)
        s->done_tail->next = j;
    else
        s->done_head = j;
    s->done_tail = j;
    int wake = !s->wake_pending;
    s->wake_pending = 1;
    pthread_mutex_unlock(&s->qlock);
    if (wake)
        lws_cancel_service(s->ctx);
}

static void drain_queues(struct srv *s)
{
    if (s->final)
        return; /* lws_context_destroy() is running: leftovers are freed afterwards */
    pthread_mutex_lock(&s->qlock);
    struct job *jobs = s->done_head;
    struct note *notes = s->notes_head;
    s->done_head = s->done_tail = NULL;
    s->notes_head = s->notes_tail = NULL;
    s->wake_pending = 0; /* what is queued from now on wakes us again */
    pthread_mutex_unlock(&s->qlock);

    while (jobs) {
        struct job *nx = jobs->next;
        http_job_done(s, jobs);
        jobs = nx;
    }
    while (notes) {
        struct note *nx = notes->next;
        rtlog_replay_notify(s->replay, notes->stream, notes->last_seq, notes->sealed);
        free(notes);
        notes = nx;
    }
}

static void replay_wake(void *ctx, rtlog_replay_sub *sub, void *user)
{
    (void)ctx;
    (void)sub;
    srv_want_write(user);
}

/* ---- the housekeeping tick ----------------------------------------------------------- */

static uint64_t tick_interval_ms(const rtlog_server_config *cfg)
{
    uint64_t m = cfg->heartbeat_ms;
    if (cfg->pong_timeout_ms < m)
        m = cfg->pong_timeout_ms;
    if (cfg->auth_timeout_ms < m)
        m = cfg->auth_timeout_ms;
    if (cfg->stall_timeout_ms < m)
        m = cfg->stall_timeout_ms;
    m /= 4;
    return m < 25 ? 25 : m > 1000 ? 1000 : m;
}

/* lws does not watch an SSE response socket for the client going away (it only learns
 * on a failed write, a heartbeat or two later), so the tick peeks: EOF or an error means
 * the client left and its connection slot and subscription are released now.
 * Returns 0 (still there), 1 (left: EOF or reset) or 2 (dead: the kernel ended the
 * connection because the peer acknowledged nothing for TCP_USER_TIMEOUT, ETIMEDOUT). */
static int sse_peer_gone(struct conn *c)
{
    int fd = (int)lws_get_socket_fd(c->wsi);
    char b;
    if (fd < 0)
        return 1;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return 1;
    if (n > 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return 0;
    return errno == ETIMEDOUT ? 2 : 1;
}

static void conn_tick(struct conn *c, uint64_t now, int64_t wall)
{
    struct srv *s = c->srv;
    int gone = c->kind == CK_SSE ? sse_peer_gone(c) : 0;
    if (gone == 2) {
        /* A dead peer accepted no bytes either: same counter as the stall timeout. */
        s->m_stalled++;
        LOG_INFO("conn=%" PRIu64 " closed: dead peer (nothing acknowledged for %" PRIu64
                 " ms, TCP_USER_TIMEOUT)",
                 c->id, s->cfg.tcp_user_timeout_ms);
    } else if (gone) {
        LOG_DEBUG("conn=%" PRIu64 " sse client went away", c->id);
    }
    if (gone) {
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    /* A reader that stopped reading (zero window) is the stall timeout's to close, not
     * TCP_USER_TIMEOUT's (it would abort it after --tcp-user-timeout: tcp_window.h);
     * looked at only while bytes wait for it, or to set the bound back. */
    if ((c->blocked_since_ms || c->uto_raised) && s->cfg.tcp_user_timeout_ms &&
        s->cfg.stall_timeout_ms > s->cfg.tcp_user_timeout_ms && c->wsi) {
        int fd = (int)lws_get_socket_fd(c->wsi);
        unsigned base = (unsigned)s->cfg.tcp_user_timeout_ms; /* <= 1 h: config */
        unsigned raised = (unsigned)(s->cfg.stall_timeout_ms + s->cfg.tcp_user_timeout_ms);
        if (fd >= 0 && rtlog_tcp_uto_adjust(fd, base, raised, &c->uto_raised) != 0)
            LOG_WARN("conn=%" PRIu64 " TCP_USER_TIMEOUT for a zero window: %s", c->id,
                     strerror(errno));
    }
    if (c->blocked_since_ms && now - c->blocked_since_ms >= s->cfg.stall_timeout_ms) {
        /* The peer took no bytes for stall-timeout: nothing can be said to it any more. */
        s->m_stalled++;
        LOG_INFO("conn=%" PRIu64 " closed: stalled (no bytes accepted for %" PRIu64 " ms)",
                 c->id, now - c->blocked_since_ms);
        c->blocked_since_ms = 0;
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    if (c->kind == CK_WS && ws_check_announced(c))
        return;
    if (c->kind == CK_WS && !c->authed) {
        if (c->auth_deadline_ms && now >= c->auth_deadline_ms && !c->err_pending &&
            !c->close_code) {
            s->m_auth_timeouts++;
            c->auth_deadline_ms = 0;
            ws_fail(c, RTLOG_E_UNAUTH, "authentication timeout");
        }
        return;
    }
    if (!c->sub || c->sse_closing || c->close_code || c->err_pending || c->has_sse_err)
        return;
    if (c->exp_deadline_s && wall >= c->exp_deadline_s) {
        s->m_expired++;
        LOG_INFO("conn=%" PRIu64 " token expired", c->id);
        if (c->kind == CK_WS) {
            ws_fail(c, RTLOG_E_UNAUTH, "token expired");
        } else {
            rtlog_buf b = {0};
            struct conn_rare *rare = conn_rare(c);
            if (rare && rtlog_error_json(&b, RTLOG_E_UNAUTH, "token expired", 0, 0) == RTLOG_OK &&
                b.len < sizeof rare->sse_err) {
                memcpy(rare->sse_err, b.p, b.len);
                rare->sse_err[b.len] = '\0';
                c->has_sse_err = 1;
            } else {
                c->sse_closing = 1;
            }
            rtlog_buf_free(&b);
            srv_want_write(c);
        }
        return;
    }
    if (now >= c->next_hb_ms) {
        c->next_hb_ms = now + s->cfg.heartbeat_ms;
        c->hb_pending = 1;
        if (c->kind == CK_WS && !c->hb_unanswered_ms)
            c->hb_unanswered_ms = now;
        srv_want_write(c);
    }
}

static void tick_cb(lws_sorted_usec_list_t *sul)
{
    struct srv *s = g_srv;
    (void)sul;
    uint64_t now = srv_now_ms();
    int64_t wall = (int64_t)time(NULL);
    struct conn *c = s->streams;
    while (c) {
        struct conn *nx = c->next;
        conn_tick(c, now, wall);
        c = nx;
    }
    agents_tick(s);
    lws_sul_schedule(s->ctx, 0, s->tick_sul, tick_cb,
                     (lws_usec_t)tick_interval_ms(&s->cfg) * LWS_US_PER_MS);
}

/* ---- appends by other processes ------------------------------------------------------ */

#define GEN_POLL_MS 250 /* how often the store's generation is compared */

/* The commit hook reports this process's commits only; `rtlog import` beside the server
 * commits to the same LMDB environment unseen. Every GEN_POLL_MS the environment's last
 * committed txn id is compared with the last one seen (a few loads, no txn); when it
 * moved, the replay engine re-reads the head of every followed stream and wakes whoever
 * now has work. The server's own commits move it too, which costs one short read per
 * followed stream at most every GEN_POLL_MS while it is being written: the notes already
 * woke those subscribers, so nothing is delivered twice. */
static void gen_cb(lws_sorted_usec_list_t *sul)
{
    struct srv *s = g_srv;
    (void)sul;
    uint64_t g = rtlog_store_generation(s->store);
    if (g != s->last_gen) {
        rtlog_errinfo ei = {0};
        s->last_gen = g;
        if (rtlog_replay_refresh(s->replay, &ei) != RTLOG_OK)
            LOG_WARN("re-reading stream heads after a commit by another process: %s", ei.text);
    }
    lws_sul_schedule(s->ctx, 0, s->gen_sul, gen_cb, (lws_usec_t)GEN_POLL_MS * LWS_US_PER_MS);
}

/* ---- /metrics and /health ------------------------------------------------------------ */

static void metrics_text(struct srv *s, rtlog_buf *b)
{
    rtlog_store_stats ss;
    rtlog_replay_stats rs;
    rtlog_auth_stats as;
    rtlog_store_get_stats(s->store, &ss);
    rtlog_replay_get_stats(s->replay, &rs);
    rtlog_auth_get_stats(s->auth, &as);
#define G(name, help, fmt, ...)                                                                  \
    rtlog_buf_printf(b, "# HELP " name " " help "\n# TYPE " name " gauge\n" fmt "\n", __VA_ARGS__)
#define C(name, help, v)                                                                         \
    rtlog_buf_printf(b, "# HELP " name " " help "\n# TYPE " name " counter\n" name " %" PRIu64 "\n", \
                     (uint64_t)(v))
    rtlog_buf_printf(b,
                     "# HELP rtlog_connections Open connections by transport.\n"
                     "# TYPE rtlog_connections gauge\n"
                     "rtlog_connections{transport=\"sse\"} %" PRIu64 "\n"
                     "rtlog_connections{transport=\"ws\"} %" PRIu64 "\n"
                     "rtlog_connections{transport=\"http\"} %" PRIu64 "\n"
                     "# HELP rtlog_ws_preauth WebSockets open and not yet authenticated.\n"
                     "# TYPE rtlog_ws_preauth gauge\n"
                     "rtlog_ws_preauth %" PRIu64 "\n",
                     s->n_sse, s->n_ws, s->n_http, s->n_preauth);
    G("rtlog_subscribers", "Open stream subscriptions.", "rtlog_subscribers %" PRIu64,
      rs.subscribers);
    G("rtlog_replay_streams", "Streams with at least one subscriber.",
      "rtlog_replay_streams %" PRIu64, rs.streams);
    G("rtlog_replay_ring_frames", "Rendered frames held in stream rings.",
      "rtlog_replay_ring_frames %" PRIu64, rs.ring_frames);
    G("rtlog_replay_ring_bytes", "Bytes of rendered frames held in stream rings.",
      "rtlog_replay_ring_bytes %" PRIu64, rs.ring_bytes);
    G("rtlog_replay_cache_bytes", "Bytes held by the replay block cache.",
      "rtlog_replay_cache_bytes %" PRIu64, rs.cache_bytes);
    G("rtlog_replay_cache_segments", "Segments of rendered frames in the replay block cache.",
      "rtlog_replay_cache_segments %" PRIu64, rs.cache_segments);
    C("rtlog_events_appended_total", "Events committed durably.", ss.events);
    C("rtlog_commits_total", "Durable write transactions.", ss.commits);
    C("rtlog_append_batches_total", "Append requests committed.", ss.batches);
    C("rtlog_failed_commits_total", "Write transactions that failed.", ss.failed_commits);
    G("rtlog_storage_full", "Whether the last commit failed for lack of space.",
      "rtlog_storage_full %d", ss.full);
    G("rtlog_storage_map_bytes", "Current LMDB map size.", "rtlog_storage_map_bytes %" PRIu64,
      ss.map_bytes);
    C("rtlog_events_delivered_total", "Event frames handed to subscribers.",
      rs.frames_delivered);
    C("rtlog_replay_frames_rendered_total", "Events rendered to JSON for delivery.",
      rs.frames_rendered);
    C("rtlog_replay_ring_hits_total", "Frames served from a stream ring.", rs.ring_hits);
    C("rtlog_replay_ring_misses_total", "Store reads made for subscribers.", rs.ring_misses);
    C("rtlog_replay_cache_hits_total", "Fills served from the replay block cache.",
      rs.cache_hits);
    C("rtlog_replay_cache_misses_total", "Segments read and rendered into the block cache.",
      rs.cache_misses);
    C("rtlog_replay_cache_frames_total", "Event frames served from the replay block cache.",
      rs.cache_frames);
    C("rtlog_replay_resets_total", "Reset messages sent for unusable cursors.", rs.resets);
    C("rtlog_replay_refreshes_total",
      "Times the store's generation moved and followed streams' heads were re-read.",
      rs.refreshes);
    C("rtlog_ingest_requests_total", "Ingest requests received.", s->m_ingest_requests);
    C("rtlog_ingest_rejected_total", "Ingest requests answered with an error.",
      s->m_ingest_rejected);
    C("rtlog_auth_rejected_total", "Tokens refused.", as.rejected);
    C("rtlog_auth_cache_hits_total", "Tokens verified from the cache.", as.cache_hits);
    C("rtlog_stream_refused_total", "Stream requests refused before streaming.",
      s->m_stream_refused);
    C("rtlog_rate_limited_total", "Connections refused by a connection limit.",
      s->m_rate_limited);
    C("rtlog_auth_timeouts_total", "WebSockets closed for not authenticating in time.",
      s->m_auth_timeouts);
    C("rtlog_ws_dropped_total",
      "WebSockets dropped without a close handshake (no pong, or connection lost).",
      s->m_pong_timeouts);
    C("rtlog_stalled_closed_total",
      "Stream sockets closed for accepting no bytes (nothing taken for stall-timeout, or an "
      "SSE peer that acknowledged nothing for tcp-user-timeout).",
      s->m_stalled);
    C("rtlog_token_expired_total", "Streams ended because their token expired.",
      s->m_expired);
    C("rtlog_ws_messages_received_total", "WebSocket messages received.",
      s->m_ws_messages_in);
    C("rtlog_agent_reports_total", "Reports received from agents (task_progress/log/completed).",
      s->m_reports);
    C("rtlog_agent_reports_refused_total", "Agent reports refused or not stored.",
      s->m_reports_refused);
    C("rtlog_task_timeouts_total", "Agent tasks failed because their lease ran out.",
      s->m_task_timeouts);
    G("rtlog_agent_tasks", "Agent tasks in the task table (open and finished).",
      "rtlog_agent_tasks %zu", s->tasks ? rtlog_tasks_count(s->tasks) : (size_t)0);
    G("rtlog_draining", "Whether the server is draining for shutdown.", "rtlog_draining %d",
      s->draining);
    rtlog_retention_stats ts;
    rtlog_retention_get_stats(s->retention, &ts);
    C("rtlog_dashboard_trimmed_events_total", "Dashboard events removed by retention.",
      ts.events);
    C("rtlog_dashboard_trim_failures_total", "Dashboard retention checks that failed.",
      ts.failures);
    G("rtlog_dashboard_first_seq", "Earliest retained dashboard seq at the last check.",
      "rtlog_dashboard_first_seq %" PRIu64, ts.first_seq);
#undef G
#undef C
}

/* Answer GET /metrics, /health/live, /health/ready. */
int srv_ops_request(struct conn *c, route_kind rk)
{
    struct srv *s = c->srv;
    rtlog_buf b = {0};
    int status = 200;
    if (rk == ROUTE_METRICS) {
        metrics_text(s, &b);
        /* text/plain; version=0.0.4 is the Prometheus text exposition format */
        http_respond_type(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len, 0);
        rtlog_buf_free(&b);
        return 0;
    }
    if (rk == ROUTE_READY) {
        rtlog_store_stats ss;
        rtlog_store_get_stats(s->store, &ss);
        const char *why = s->draining ? "draining" : ss.full ? "storage full" : NULL;
        if (why) {
            status = 503;
            rtlog_buf_printf(&b, "{\"status\":\"unavailable\",\"reason\":\"%s\"}", why);
        } else {
            rtlog_buf_puts(&b, "{\"status\":\"ready\"}");
        }
    } else {
        rtlog_buf_puts(&b, "{\"status\":\"live\"}");
    }
    http_respond(c, status, b.p, b.len, 0);
    rtlog_buf_free(&b);
    return 0;
}

/* Answer an h2c upgrade request with 400 (JSON error, Connection: close) written now, as
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE requires. Returns -1 when it cannot (lws hangs up). */
static int refuse_h2c(struct lws *wsi)
{
    rtlog_buf b = {0};
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
                                       *end = buf + sizeof buf - 1;
    if (rtlog_error_json(&b, RTLOG_E_INVAL,
                         "HTTP/2 (Upgrade: h2c) is not supported: send HTTP/1.1", 0, 0) ||
        b.len > 512 ||
        lws_add_http_common_headers(wsi, 400, "application/json", b.len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close",
                                     5, &p, end) ||
        lws_finalize_http_header(wsi, &p, end)) {
        rtlog_buf_free(&b);
        return -1;
    }
    memcpy(p, b.p, b.len);
    p += b.len;
    size_t n = (size_t)(p - start);
    rtlog_buf_free(&b);
    if (lws_write(wsi, start, n, LWS_WRITE_HTTP_FINAL) != (int)n)
        return -1;
    /* the rest of the request (a POST body) must not be parsed as a next request */
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    return 1;
}

/* ---- the lws callback ---------------------------------------------------------------- */

/* A peer's close frame (RFC 6455 5.5.1, 7.4): lws 4.1.6 echoes its payload as our close
 * answer and refuses only some invalid codes itself (it echoed 5000 and a 1-byte payload).
 * Returns 0 when the payload may be echoed as it is; otherwise rewrites it in place (the
 * buffer is lws' receive buffer, the one it echoes) to 1002 protocol error with the reason
 * blanked, or returns -1 when no valid close can be made of it (1 byte): the connection is
 * then failed without a close frame (handed.md C17 g). */
static int peer_close_check(uint8_t *p, size_t len)
{
    if (len == 0)
        return 0; /* no status code: allowed */
    if (len == 1)
        return -1;
    unsigned code = (unsigned)p[0] << 8 | p[1];
    /* sendable codes: 1000-1003, 1007-1014 (IANA registry), 3000-4999 */
    int ok = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
             (code >= 3000 && code <= 4999);
    if (ok)
        return 0;
    p[0] = 1002 >> 8;
    p[1] = 1002 & 0xff;
    memset(p + 2, ' ', len - 2);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct conn *c = user;
    struct srv *s = g_srv;

    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        drain_queues(s);
        return 0;

    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        /* stop accepting while draining (listen socket stays, new sockets are dropped) */
        return s->draining ? 1 : 0;

    case LWS_CALLBACK_HTTP_BIND_PROTOCOL:
        if (c && !c->initialised) {
            memset(c, 0, sizeof *c);
            c->srv = s;
            c->wsi = wsi;
            c->id = ++s->next_conn_id;
            c->initialised = 1;
            c->counted_http = 1;
            s->n_http++;
        }
        break;

    case LWS_CALLBACK_HTTP:
        if (!c)
            return -1;
        if (!c->initialised) {
            memset(c, 0, sizeof *c);
            c->srv = s;
            c->id = ++s->next_conn_id;
            c->initialised = 1;
            c->counted_http = 1;
            s->n_http++;
        }
        c->wsi = wsi;
        return http_request(c, in, len);

    case LWS_CALLBACK_HTTP_BODY:
        return c ? http_body(c, in, len) : -1;

    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return c ? http_body_completion(c) : -1;

    case LWS_CALLBACK_TIMER:
        return c && c->initialised && c->kind == CK_INGEST ? http_body_timeout(c) : 0;

    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!c || !c->initialised)
            return 0;
        c->blocked_since_ms = 0;
        if (c->kind == CK_SSE)
            return sse_writeable(c);
        return http_writeable(c);

    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_WS_SERVER_DROP_PROTOCOL:
        /* The last one comes alone for an upgrade whose socket died before ESTABLISHED
         * (the peer reset it at once): without it the http gauge leaked one per such
         * socket. srv_conn_release() gives back the http count exactly once. */
        if (c && c->initialised && c->kind != CK_WS) {
            srv_conn_release(c);
            c->initialised = 0;
            c->srv = s; /* keep for idempotent release */
        }
        if (reason == LWS_CALLBACK_WS_SERVER_DROP_PROTOCOL)
            return 0;
        break;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* HTTP/1.1 only. lws 4.1.6 would switch an "Upgrade: h2c" request to HTTP/2, where
         * SSE gets no live events, custom headers (Last-Event-ID) are unavailable and lws
         * has no option to turn h2c off: refuse it with 400 and close, before lws answers
         * 101. A POST carrying it is refused (never stored), not served without its body. */
        if (in && !strcasecmp((const char *)in, "h2c")) {
            LOG_INFO("refused an h2c upgrade (HTTP/1.1 only)");
            return refuse_h2c(wsi);
        }
        return 0;

    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return ws_filter(s, wsi);

    case LWS_CALLBACK_ESTABLISHED:
        if (!c)
            return -1;
        if (c->initialised) {
            /* the HTTP phase of this socket is over; it is a WebSocket from now on */
            srv_conn_release(c);
        }
        memset(c, 0, sizeof *c);
        c->srv = s;
        c->wsi = wsi;
        c->id = ++s->next_conn_id;
        c->initialised = 1;
        c->kind = CK_WS;
        return ws_established(c);

    case LWS_CALLBACK_RECEIVE:
        return c && c->initialised ? ws_receive(c, in, len) : -1;

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c && c->initialised)
            c->peer_closed = 1;
        return in ? peer_close_check(in, len) : 0;

    case LWS_CALLBACK_RECEIVE_PONG:
        if (c && c->initialised)
            ws_pong(c);
        return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!c || !c->initialised)
            return 0;
        c->blocked_since_ms = 0;
        return ws_writeable(c);

    case LWS_CALLBACK_CLOSED:
        if (c && c->initialised) {
            /* closed neither by us nor by a close frame from the peer: dropped (lws'
             * validity timer for a peer that answers no heartbeat, or a network error) */
            if (!c->close_code && !c->peer_closed) {
                /* a WS whose peer vanished is counted here whichever ends it first, the
                 * pong rule or TCP_USER_TIMEOUT (stream_socket_opts) */
                s->m_pong_timeouts++;
                LOG_INFO("conn=%" PRIu64 " dropped (no pong or connection lost)", c->id);
            }
            srv_conn_release(c);
            c->initialised = 0;
        }
        return 0;

    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    /* rx_buffer_size: lws 4.1.6 allocates it (+ LWS_PRE) for every WebSocket at the upgrade
     * and reads the socket in pieces of that size; ws.c reassembles messages itself, so it
     * only sets how many RECEIVE callbacks a message takes. 1024 keeps an idle WebSocket
     * under 4 KiB of server memory (4096 cost 3 KiB more; tools/bench/RESULTS.md, issue 5
     * idle). A flood past a limit still gets its 1009 close frame at this size because ws.c
     * closes through WRITEABLE and keeps reading and dropping the flood (ws_receive,
     * close_now; tests ws_flood_close, wsframes (d), auth "pre-auth oversize").
     * tx_packet_size: with 0, lws cuts every send() to rx_buffer_size + LWS_PRE + 4 bytes
     * (lws_issue_raw) and copies the rest into the connection's buflist, sent one piece per
     * POLLOUT: a 32 KiB fill of SSE or WebSocket frames became many sends, each waking the
     * reader (575k sends of 4,116 bytes for 100 readers x 100,000 events at rx 4096).
     * The largest --sse-write-bytes (16 MiB) goes in one send() as the socket takes it;
     * nothing is allocated for it. */
    {"rtlog", callback, sizeof(struct conn), 1024, 0, NULL, RTLOG_MAX_WRITE_BYTES},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- lws logging --------------------------------------------------------------------- */

static void lws_emit(int level, const char *line)
{
    /* Debian's lws logs this at ERR for every SSE request on h1: noise, not an error. */
    if (strstr(line, "not h2 substream"))
        return;
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    int lv = (level & LLL_ERR) ? RTLOG_LOG_WARN : RTLOG_LOG_DEBUG;
    rtlog_log(lv, "lws", "%.*s", (int)n, line);
}

/* ---- startup, loop, drain ------------------------------------------------------------ */

static void on_signal(int sig)
{
    (void)sig;
    if (g_srv) {
        g_srv->stop = 1;
        if (g_srv->ctx)
            lws_cancel_service(g_srv->ctx); /* an eventfd write: async-signal-safe */
    }
}

static rtlog_err load_key(struct srv *s, uint8_t **key, size_t *key_len, rtlog_jwt_alg *alg)
{
    rtlog_errinfo ei = {0};
    rtlog_err rc;
    *alg = rtlog_jwt_alg_parse(s->cfg.jwt_alg);
    if (s->cfg.jwt_key[0]) {
        rc = rtlog_auth_key_load(s->cfg.jwt_key, *alg, key, key_len, &ei);
        if (rc != RTLOG_OK)
            LOG_ERR("cannot load --jwt-key: %s", ei.text);
        return rc;
    }
    if (*alg != RTLOG_JWT_HS256) {
        LOG_ERR("--jwt-alg %s needs --jwt-key FILE (a public key PEM)", s->cfg.jwt_alg);
        return RTLOG_E_INVAL;
    }
    int created = 0;
    rc = rtlog_auth_secret_load_or_create(s->cfg.data, key, key_len, &created, &ei);
    if (rc != RTLOG_OK) {
        LOG_ERR("cannot use the data directory's secret: %s", ei.text);
        return rc;
    }
    printf("rtlog: no --jwt-key given: HS256 tokens are verified with the secret in "
           "%s/jwt-secret%s\n"
           "rtlog: mint a token with: rtlog token --data %s --subscribe '*' --publish '*'\n",
           s->cfg.data, created ? " (created now)" : "", s->cfg.data);
    fflush(stdout);
    return RTLOG_OK;
}

/* ---- one server per data directory --------------------------------------------------- */

/* Take DATA/serve.lock (flock, exclusive, non-blocking) for the process lifetime. LMDB
 * would let two servers share a directory, but each would wake only its own subscribers
 * on its own commits and both would write the same streams behind each other's back; a
 * second `rtlog serve` by mistake (another terminal, a unit restarted twice) is refused
 * instead. Readers and `rtlog import` do not take it. The file holds the owner's pid for
 * the message. flock goes with the process (even on SIGKILL): a crash never leaves it
 * stale. Taken right after the store is opened (which creates the directory): a refused
 * second server has then only opened the environment, as `rtlog import` would, and
 * written nothing.
 * Returns 0 (s->lock_fd set), or 1 after saying why the server cannot start. */
static int lock_data_dir(struct srv *s)
{
    char path[RTLOG_CFG_STR_MAX + 16];
    snprintf(path, sizeof path, "%s/serve.lock", s->cfg.data);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        LOG_ERR("cannot open %s: %s", path, strerror(errno));
        return 1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int err = errno;
        if (err == EWOULDBLOCK) {
            char buf[32] = {0};
            ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
            long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
            if (pid > 0)
                fprintf(stderr, "rtlog serve: another rtlog serve (pid %ld) is using %s\n", pid,
                        s->cfg.data);
            else
                fprintf(stderr, "rtlog serve: another rtlog serve is using %s\n", s->cfg.data);
        } else {
            LOG_ERR("cannot lock %s: %s", path, strerror(err));
        }
        close(fd);
        return 1;
    }
    char pid[32];
    int pl = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) || pwrite(fd, pid, (size_t)pl, 0) != pl)
        LOG_WARN("cannot record the pid in %s: %s", path, strerror(errno));
    s->lock_fd = fd;
    return 0;
}

static int open_all(struct srv *s)
{
    uint8_t *key = NULL;
    size_t key_len = 0;
    rtlog_jwt_alg alg;
    rtlog_errinfo ei = {0};

    /* The store first: it creates the data directory the secret lives in. */
    rtlog_store_opts so = {
        .dir = s->cfg.data,
        .map_bytes = (size_t)s->cfg.map_bytes,
        .map_max_bytes = (size_t)s->cfg.map_max_bytes,
        .nosync = (int)s->cfg.nosync,
    };
    if (rtlog_store_open(&so, &s->store, &ei) != RTLOG_OK) {
        LOG_ERR("cannot open the store in %s: %s", s->cfg.data, ei.text);
        return -1;
    }
    if (lock_data_dir(s))
        return -1;
    if (load_key(s, &key, &key_len, &alg) != RTLOG_OK)
        return -1;
    rtlog_auth_opts ao = {
        .alg = alg,
        .key = key,
        .key_len = key_len,
        .issuer = s->cfg.jwt_iss[0] ? s->cfg.jwt_iss : NULL,
        .audience = s->cfg.jwt_aud[0] ? s->cfg.jwt_aud : NULL,
        .leeway_s = (unsigned)(s->cfg.jwt_leeway_ms / 1000),
    };
    rtlog_err rc = rtlog_auth_new(&ao, &s->auth, &ei);
    if (key)
        memset(key, 0, key_len);
    free(key);
    if (rc != RTLOG_OK) {
        LOG_ERR("cannot set up token verification: %s", ei.text);
        return -1;
    }
    rtlog_replay_opts ro = {.store = s->store, .wake = replay_wake, .wake_ctx = s,
                            .cache_bytes = (size_t)s->cfg.replay_cache_bytes,
                            .cache_off = s->cfg.replay_cache_bytes == 0};
    if (rtlog_replay_new(&ro, &s->replay) != RTLOG_OK) {
        LOG_ERR("out of memory");
        return -1;
    }
    /* The dashboard exists from the first start (an empty batch creates a stream and changes
     * nothing when it exists), so a UI can subscribe before anything was posted and follow
     * live instead of getting not_found. A store that cannot take it (full disk) still
     * serves: the dashboard is then created by its first append, as before. */
    rtlog_append_req dash = {.stream = "dashboard", .n = 0};
    if (rtlog_store_append(s->store, &dash, NULL, &ei) != RTLOG_OK)
        LOG_WARN("cannot create the dashboard stream: %s", ei.text);
    return agents_init(s);
}

/* lws 4.1.6 sizes its socket table from fd_limit_per_thread but, when that is below the
 * process' RLIMIT_NOFILE, looks sockets up by scanning the table (measured: 14% CPU at
 * 3,000 subscribers). So the soft limit is set to --fd-limit (bounded by the hard limit;
 * lowered too when it is above) before the context exists, and lws gets the value that
 * took effect: both agree and lws indexes by fd. Returns the effective limit. */
static unsigned apply_fd_limit(struct srv *s)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)s->cfg.fd_limit;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        LOG_WARN("getrlimit(RLIMIT_NOFILE): %s; fd table %" PRIu64, strerror(errno),
                 s->cfg.fd_limit);
        return (unsigned)s->cfg.fd_limit;
    }
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    if (rl.rlim_cur != want) {
        struct rlimit nl = {.rlim_cur = want, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nl) != 0) {
            LOG_WARN("setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)want,
                     strerror(errno));
            want = rl.rlim_cur;
        }
    }
    char hard[32] = "unlimited";
    if (rl.rlim_max != RLIM_INFINITY)
        snprintf(hard, sizeof hard, "%llu", (unsigned long long)rl.rlim_max);
    LOG_INFO("fd limit %llu (RLIMIT_NOFILE soft = lws fd table; --fd-limit %" PRIu64
             ", hard %s)",
             (unsigned long long)want, s->cfg.fd_limit, hard);
    return (unsigned)want;
}

static int create_context(struct srv *s)
{
    static const struct lws_protocol_vhost_options pvo_def = {NULL, NULL, "default", "1"};
    static const struct lws_protocol_vhost_options pvo = {NULL, &pvo_def, "rtlog", ""};
    static const struct lws_http_mount mount = {
        .mountpoint = "/",
        .mountpoint_len = 1,
        .origin_protocol = LWSMPRO_CALLBACK,
        .protocol = "rtlog",
    };
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = s->port;
    info.iface = s->host;
    info.protocols = protocols;
    info.pvo = &pvo;
    info.mounts = &mount;
    info.vhost_name = "rtlog";
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.max_http_header_data = 16384;   /* big RS256 tokens; past it lws drops the socket */
    info.max_http_header_pool = 0;
    info.fd_limit_per_thread = apply_fd_limit(s); /* = RLIMIT_NOFILE soft */
    info.timeout_secs = 20;              /* handshakes and header reads */
    info.keepalive_timeout = 30;
    /* Liveness of WebSockets uses lws' validity timer: lws confirms validity on every
     * RFC 6455 pong, including empty ones, which lws 4.1.6 never reports to the protocol
     * callback (LWS_CALLBACK_RECEIVE_PONG only comes for pongs with a payload); a JSON
     * {"type":"pong"} confirms it through lws_validity_confirmed(). A socket with no
     * answer for heartbeat + pong-timeout (whole seconds, rounded up) is dropped. lws
     * never pings on its own here: heartbeats are our JSON messages. */
    uint64_t hang = (s->cfg.heartbeat_ms + s->cfg.pong_timeout_ms + 999) / 1000;
    retry_policy.secs_since_valid_ping = 65535;
    retry_policy.secs_since_valid_hangup = (uint16_t)(hang < 65534 ? hang : 65534);
    info.retry_and_idle_policy = &retry_policy;
    info.user = s;
    s->ctx = lws_create_context(&info);
    if (!s->ctx) {
        LOG_ERR("cannot create the lws context");
        return -1;
    }
    s->vh = lws_create_vhost(s->ctx, &info);
    if (!s->vh) {
        LOG_ERR("cannot listen on %s (is the port in use?)", s->cfg.listen);
        return -1;
    }
    s->port = lws_get_vhost_listen_port(s->vh);
    return 0;
}

static int drain_done(struct srv *s)
{
    return !s->streams && !s->jobs_inflight && !s->responses_pending;
}

static void drain(struct srv *s)
{
    s->draining = 1;
    s->drain_deadline_ms = srv_now_ms() + s->cfg.drain_timeout_ms;
    LOG_INFO("draining: closing %" PRIu64 " WebSocket and %" PRIu64 " SSE streams, %" PRIu64
             " appends in flight",
             s->n_ws, s->n_sse, s->jobs_inflight);
    for (struct conn *c = s->streams; c; c = c->next) {
        if (c->kind == CK_WS) {
            if (!c->close_code && !c->err_pending)
                ws_close_with(c, 1001, "server shutting down");
        } else {
            c->sse_closing = 1;
            srv_want_write(c);
        }
    }
    while (!drain_done(s) && srv_now_ms() < s->drain_deadline_ms)
        if (lws_service(s->ctx, 0) < 0)
            break;
}

/* Dashboard retention: its own thread trims the dashboard (README "Dashboard retention").
 * Stopped before the store closes, in rtlog_server_run(). */
static int retention_start(struct srv *s)
{
    rtlog_retention_opts o = {.store = s->store,
                              .stream = "dashboard",
                              .keep_events = s->cfg.dashboard_retain_events,
                              .keep_ms = s->cfg.dashboard_retain_ms,
                              .interval_ms = s->cfg.dashboard_retain_interval_ms};
    if (rtlog_retention_start(&o, &s->retention) != RTLOG_OK) {
        LOG_ERR("cannot start the dashboard retention worker");
        return -1;
    }
    return 0;
}

int rtlog_server_run(const rtlog_server_config *cfg)
{
    int ret = 1;
    struct srv *s = calloc(1, sizeof *s);
    if (!s)
        return 1;
    s->cfg = *cfg;
    if (!s->cfg.tcp_user_timeout_ms) /* 0 = the pong timeout: TCP and the pong rule agree */
        s->cfg.tcp_user_timeout_ms = s->cfg.pong_timeout_ms;
    s->lock_fd = -1;
    pthread_mutex_init(&s->qlock, NULL);
    g_srv = s;
    rtlog_log_set_level_name(cfg->log_level);
    lws_set_log_level(LLL_ERR | LLL_WARN | (rtlog_log_level() >= RTLOG_LOG_DEBUG ? LLL_NOTICE : 0),
                      lws_emit);

    if (rtlog_listen_parse(cfg->listen, s->host, sizeof s->host, &s->port) != RTLOG_OK) {
        LOG_ERR("bad --listen value");
        goto out;
    }
    if (open_all(s) || retention_start(s))
        goto out;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    if (create_context(s))
        goto out;
    rtlog_store_on_commit(s->store, on_commit, s);
    if (parse_pool_start(s))
        goto out;
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    s->tick_sul = calloc(1, sizeof(lws_sorted_usec_list_t));
    if (!s->tick_sul)
        goto out;
    lws_sul_schedule(s->ctx, 0, s->tick_sul, tick_cb,
                     (lws_usec_t)tick_interval_ms(&s->cfg) * LWS_US_PER_MS);
    s->gen_sul = calloc(1, sizeof(lws_sorted_usec_list_t));
    if (!s->gen_sul)
        goto out;
    s->last_gen = rtlog_store_generation(s->store);
    lws_sul_schedule(s->ctx, 0, s->gen_sul, gen_cb, (lws_usec_t)GEN_POLL_MS * LWS_US_PER_MS);

    printf("rtlog: listening on http://%s%s%s:%d (data %s)\n", strchr(s->host, ':') ? "[" : "",
           s->host, strchr(s->host, ':') ? "]" : "", s->port, s->cfg.data);
    fflush(stdout);
    LOG_INFO("listening on %s:%d, data %s", s->host, s->port, s->cfg.data);

    while (!s->stop)
        if (lws_service(s->ctx, 0) < 0)
            break;
    drain(s);
    ret = 0;

out:
    /* First: its last results are queued with lws_cancel_service() on a live context. */
    parse_pool_stop(s);
    if (s->tick_sul && s->ctx)
        lws_sul_cancel(s->tick_sul);
    if (s->gen_sul && s->ctx)
        lws_sul_cancel(s->gen_sul);
    rtlog_retention_stop(s->retention); /* it trims through the store: stop it first */
    s->retention = NULL;
    if (s->store) {
        /* Finishes queued appends; their completions land in the queue (freed below). */
        rtlog_store_on_commit(s->store, NULL, NULL);
        rtlog_store_close(s->store);
        s->store = NULL;
    }
    s->final = 1;
    if (s->ctx) {
        /* Drop subscriptions before lws frees the sessions they live in. */
        for (struct conn *c = s->streams; c; c = c->next)
            if (c->sub) {
                rtlog_replay_close(c->sub);
                c->sub = NULL;
            }
        lws_context_destroy(s->ctx);
        s->ctx = NULL;
    }
    /* Anything still queued: finished appends whose clients are gone, notes. */
    pthread_mutex_lock(&s->qlock);
    struct job *j = s->done_head;
    struct note *n = s->notes_head;
    s->done_head = s->done_tail = NULL;
    s->notes_head = s->notes_tail = NULL;
    pthread_mutex_unlock(&s->qlock);
    while (j) {
        struct job *nx = j->next;
        rtlog_batch_free(&j->batch);
        rtlog_buf_free(&j->body);
        free(j);
        j = nx;
    }
    while (n) {
        struct note *nx = n->next;
        free(n);
        n = nx;
    }
    for (size_t i = 0; i < SUBJ_BUCKETS; i++)
        while (s->preauth_ips[i]) {
            struct subj *nx = s->preauth_ips[i]->next;
            free(s->preauth_ips[i]);
            s->preauth_ips[i] = nx;
        }
    for (size_t i = 0; i < SUBJ_BUCKETS; i++)
        while (s->subjects[i]) {
            struct subj *nx = s->subjects[i]->next;
            free(s->subjects[i]);
            s->subjects[i] = nx;
        }
    rtlog_replay_free(s->replay);
    agents_free(s);
    rtlog_auth_free(s->auth);
    rtlog_buf_free(&s->wbuf);
    free(s->tick_sul);
    free(s->gen_sul);
    pthread_mutex_destroy(&s->qlock);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the lock, after the store is closed */
    if (ret == 0)
        LOG_INFO("stopped");
    g_srv = NULL;
    free(s);
    return ret;
}
