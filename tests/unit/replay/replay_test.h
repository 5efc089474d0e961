/* replay_test.h - helpers for the replay unit tests: a real store in a temp directory,
 * appends built with rtlog_schema_parse (the same path ingest uses), commit notes captured
 * from the writer thread and delivered to rtlog_replay_notify() when the test decides
 * (like the server's queue), and a checker that parses SSE/WS output and asserts every
 * frame's id/seq.
 */
#ifndef REPLAY_TEST_H
#define REPLAY_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rtlog_replay.h"
#include "rtlog_schema.h"
#include "rtlog_store.h"

/* ---- temp store ----------------------------------------------------------------------- */

struct tnote {
    struct tnote *next;
    uint64_t last_seq;
    int sealed;
    char stream[RTLOG_STREAM_MAX];
};

typedef struct tenv {
    char dir[64];
    rtlog_store *st;
    pthread_mutex_t lock;
    struct tnote *notes, **tail; /* captured on the writer thread */
    uint64_t captured;           /* notes captured so far */
} tenv;

static inline int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void on_commit_capture(void *ctx, const rtlog_commit_note *n, size_t cnt)
{
    tenv *t = ctx;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < cnt; i++) {
        struct tnote *e = calloc(1, sizeof *e);
        if (!e)
            abort();
        e->last_seq = n[i].last_seq;
        e->sealed = n[i].sealed;
        snprintf(e->stream, sizeof e->stream, "%s", n[i].stream);
        *t->tail = e;
        t->tail = &e->next;
        t->captured++;
    }
    pthread_mutex_unlock(&t->lock);
}

static inline tenv *tenv_open(void)
{
    tenv *t = calloc(1, sizeof *t);
    assert_non_null(t);
    snprintf(t->dir, sizeof t->dir, "/tmp/rtlog-replay-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    pthread_mutex_init(&t->lock, NULL);
    t->tail = &t->notes;
    rtlog_store_opts o = {.dir = t->dir, .nosync = 1};
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_open(&o, &t->st, &ei), RTLOG_OK);
    rtlog_store_on_commit(t->st, on_commit_capture, t);
    return t;
}

/* Deliver the captured notes (all, or only the first @max when max > 0). */
static inline size_t tenv_deliver(tenv *t, rtlog_replay *e, size_t max)
{
    size_t n = 0;
    for (;;) {
        pthread_mutex_lock(&t->lock);
        struct tnote *x = t->notes;
        if (x && (max == 0 || n < max)) {
            t->notes = x->next;
            if (!t->notes)
                t->tail = &t->notes;
        } else {
            x = NULL;
        }
        pthread_mutex_unlock(&t->lock);
        if (!x)
            return n;
        if (e)
            rtlog_replay_notify(e, x->stream, x->last_seq, x->sealed);
        free(x);
        n++;
    }
}

static inline void tenv_close(tenv *t)
{
    rtlog_store_close(t->st);
    tenv_deliver(t, NULL, 0);
    pthread_mutex_destroy(&t->lock);
    nftw(t->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(t);
}

/* Append a JSON/NDJSON body to @stream through schema validation; returns the result. */
static inline rtlog_append_res tappend(tenv *t, const char *stream, const char *body)
{
    rtlog_kind kind;
    assert_int_equal(rtlog_stream_parse(stream, strlen(stream), &kind, NULL, NULL, NULL),
                     RTLOG_OK);
    rtlog_parse_opts po = {.family = rtlog_kind_family(kind), .now = "2026-01-10T14:23:45.000Z"};
    rtlog_batch b = {0};
    rtlog_errinfo ei = {0};
    rtlog_err rc = rtlog_schema_parse(&po, body, strlen(body), &b, &ei);
    if (rc != RTLOG_OK)
        fail_msg("parse: %s", ei.text);
    rtlog_append_req req = {.stream = stream, .recs = b.recs, .n = b.n};
    rtlog_append_res res = {0};
    pthread_mutex_lock(&t->lock);
    uint64_t before = t->captured;
    pthread_mutex_unlock(&t->lock);
    rc = rtlog_store_append(t->st, &req, &res, &ei);
    if (rc != RTLOG_OK)
        fail_msg("append: %s", ei.text);
    rtlog_batch_free(&b);
    /* The commit hook runs on the writer thread just after the append's completion: wait
     * for its note so tests decide exactly when it is delivered. */
    for (int i = 0;; i++) {
        pthread_mutex_lock(&t->lock);
        uint64_t now = t->captured;
        pthread_mutex_unlock(&t->lock);
        if (now > before)
            break;
        assert_true(i < 50000);
        usleep(100);
    }
    return res;
}

/* Append @n step_log events (nodeId "n<k % nodes>") in one batch. */
static inline rtlog_append_res tappend_logs(tenv *t, const char *stream, unsigned n, unsigned nodes,
                                            unsigned start)
{
    rtlog_buf b = {0};
    rtlog_buf_puts(&b, "[");
    for (unsigned i = 0; i < n; i++)
        rtlog_buf_printf(&b,
                         "%s{\"type\":\"step_log\",\"nodeId\":\"n%u\",\"line\":\"line %u\","
                         "\"level\":\"info\"}",
                         i ? "," : "", (start + i) % (nodes ? nodes : 1), start + i);
    rtlog_buf_puts(&b, "]");
    rtlog_buf_nul(&b);
    rtlog_append_res r = tappend(t, stream, b.p);
    rtlog_buf_free(&b);
    return r;
}

/* ---- output checking ------------------------------------------------------------------ */

/* The seq inside a frame's JSON ("seq":N is always last). */
static inline uint64_t json_seq(const char *json, size_t len)
{
    const char *k = NULL;
    for (size_t i = 0; i + 6 <= len; i++)
        if (!memcmp(json + i, "\"seq\":", 6))
            k = json + i + 6;
    assert_non_null(k);
    return strtoull(k, NULL, 10);
}

typedef struct frame_out {
    uint64_t seq;    /* 0 for control messages */
    char type[40];   /* event type, or "reset" */
    char node[40];
} frame_out;

/* Parse SSE output into frames. Checks framing: id equals the JSON seq, event equals the
 * JSON type, reset has no id. Returns the number of frames written to @out. */
static inline size_t parse_sse(const char *p, size_t len, frame_out *out, size_t cap)
{
    size_t n = 0;
    const char *end = p + len;
    while (p < end) {
        const char *fe = strstr(p, "\n\n");
        assert_non_null(fe);
        assert_true(fe < end);
        frame_out f = {0};
        int has_id = 0;
        const char *line = p;
        while (line < fe) {
            const char *le = memchr(line, '\n', (size_t)(fe - line));
            if (!le)
                le = fe;
            size_t ll = (size_t)(le - line);
            if (ll > 4 && !memcmp(line, "id: ", 4)) {
                f.seq = strtoull(line + 4, NULL, 10);
                has_id = 1;
            } else if (ll > 7 && !memcmp(line, "event: ", 7)) {
                snprintf(f.type, sizeof f.type, "%.*s", (int)(ll - 7), line + 7);
            } else if (ll > 6 && !memcmp(line, "data: ", 6)) {
                if (!strcmp(f.type, "reset")) {
                    assert_false(has_id);
                } else {
                    assert_true(has_id);
                    assert_int_equal(json_seq(line + 6, ll - 6), f.seq);
                    char want[64];
                    snprintf(want, sizeof want, "{\"type\":\"%s\"", f.type);
                    assert_memory_equal(line + 6, want, strlen(want));
                    const char *nd = strstr(line, "\"nodeId\":\"");
                    if (nd && nd < le)
                        sscanf(nd + 10, "%39[^\"]", f.node);
                }
            } else {
                fail_msg("unexpected SSE line: %.*s", (int)ll, line);
            }
            line = le + 1;
        }
        assert_true(n < cap);
        out[n++] = f;
        p = fe + 2;
    }
    return n;
}

/* One WS message (the JSON of one frame). */
static inline frame_out parse_ws(const char *p, size_t len)
{
    frame_out f = {0};
    assert_true(len > 10);
    assert_int_equal(p[0], '{');
    sscanf(p, "{\"type\":\"%39[^\"]", f.type);
    if (strcmp(f.type, "reset") != 0) {
        f.seq = json_seq(p, len);
        const char *nd = strstr(p, "\"nodeId\":\"");
        if (nd && nd < p + len)
            sscanf(nd + 10, "%39[^\"]", f.node);
    }
    return f;
}

#endif
