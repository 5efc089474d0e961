/* test_resume.c - where a subscription starts and where it ends (CONTRACT "Resuming",
 * "Completion and sealing"): cursor = head, cursor beyond head (reset), no cursor, the
 * dashboard's snapshot start, filters, follow=false, sealed streams, never-created
 * streams, and the exact SSE/WS frame shapes.
 */
#include "replay_test.h"

struct collected {
    frame_out f[512];
    size_t n;
    rtlog_replay_state last;
    char raw[65536];
    size_t raw_len;
};

/* Fill until IDLE or END (at most @rounds fills), collecting frames. */
static void drain(rtlog_replay_sub *s, rtlog_replay_fmt fmt, struct collected *c, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        rtlog_buf out = {0};
        size_t nf = 0;
        rtlog_errinfo ei = {0};
        assert_int_equal(rtlog_replay_fill(s, &out, 0, fmt == RTLOG_REPLAY_WS ? 1 : 0,
                                           &c->last, &nf, &ei),
                         RTLOG_OK);
        assert_int_equal(rtlog_buf_nul(&out), RTLOG_OK);
        if (out.len && c->raw_len + out.len < sizeof c->raw) {
            memcpy(c->raw + c->raw_len, out.p, out.len + 1);
            c->raw_len += out.len;
        }
        if (fmt == RTLOG_REPLAY_SSE) {
            c->n += out.len ? parse_sse(out.p, out.len, c->f + c->n, 512 - c->n) : 0;
        } else if (out.len) {
            c->f[c->n++] = parse_ws(out.p, out.len);
        }
        rtlog_buf_free(&out);
        if (c->last != RTLOG_REPLAY_MORE)
            return;
    }
}

static rtlog_replay *engine(tenv *t)
{
    rtlog_replay *e;
    rtlog_replay_opts o = {.store = t->st};
    assert_int_equal(rtlog_replay_new(&o, &e), RTLOG_OK);
    return e;
}

static rtlog_replay_sub *open_sub(rtlog_replay *e, const char *stream, int has_cursor,
                                  uint64_t cursor, rtlog_replay_fmt fmt, int follow,
                                  const char *node, const char *types)
{
    rtlog_replay_req q = {.stream = stream, .has_cursor = has_cursor, .cursor = cursor,
                          .follow = follow, .fmt = fmt, .node_id = node, .types = types};
    rtlog_replay_sub *s = NULL;
    rtlog_errinfo ei = {0};
    rtlog_err rc = rtlog_replay_open(e, &q, &s, &ei);
    if (rc != RTLOG_OK)
        fail_msg("open: %s", ei.text);
    return s;
}

static void test_cursor_positions(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    const char *S = "workflow-runs/run-0001";
    tappend_logs(t, S, 10, 2, 0);
    rtlog_replay *e = engine(t);
    for (int fmt = RTLOG_REPLAY_SSE; fmt <= RTLOG_REPLAY_WS; fmt++) {
        /* handed.md C02: (a) cursor 10 = head: nothing until 11; (b) 4 -> 5..10;
         * (c) 0 -> 1..10; (d) no cursor -> 1..10 */
        uint64_t cursors[] = {10, 4, 0};
        for (size_t k = 0; k < 3; k++) {
            struct collected c = {0};
            rtlog_replay_sub *s = open_sub(e, S, 1, cursors[k], (rtlog_replay_fmt)fmt, 1, NULL, NULL);
            drain(s, (rtlog_replay_fmt)fmt, &c, 100);
            assert_int_equal(c.last, RTLOG_REPLAY_IDLE);
            assert_int_equal(c.n, 10 - cursors[k]);
            for (size_t i = 0; i < c.n; i++)
                assert_int_equal(c.f[i].seq, cursors[k] + 1 + i);
            assert_int_equal(rtlog_replay_cursor(s), 10);
            rtlog_replay_close(s);
        }
        struct collected c = {0};
        rtlog_replay_sub *s = open_sub(e, S, 0, 0, (rtlog_replay_fmt)fmt, 1, NULL, NULL);
        drain(s, (rtlog_replay_fmt)fmt, &c, 100);
        assert_int_equal(c.n, 10);
        assert_int_equal(c.f[0].seq, 1);
        rtlog_replay_close(s);
    }
    rtlog_replay_free(e);
    tenv_close(t);
}

static void test_cursor_beyond_head_resets(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    const char *S = "workflow-runs/r";
    tappend_logs(t, S, 3, 1, 0);
    rtlog_replay *e = engine(t);

    struct collected c = {0};
    rtlog_replay_sub *s = open_sub(e, S, 1, 50, RTLOG_REPLAY_SSE, 1, NULL, NULL);
    drain(s, RTLOG_REPLAY_SSE, &c, 10);
    /* reset first (no id line: parse_sse checks), then 1..3 */
    assert_int_equal(c.n, 4);
    assert_string_equal(c.f[0].type, "reset");
    assert_int_equal(c.f[0].seq, 0);
    assert_non_null(strstr(c.raw, "event: reset\ndata: {\"type\":\"reset\",\"earliestSeq\":1,"
                                  "\"lastSeq\":3}\n\n"));
    assert_null(strstr(c.raw, "id: \n"));
    for (int i = 1; i <= 3; i++)
        assert_int_equal(c.f[i].seq, (uint64_t)i);
    rtlog_replay_close(s);

    struct collected w = {0};
    s = open_sub(e, S, 1, 4, RTLOG_REPLAY_WS, 1, NULL, NULL);
    drain(s, RTLOG_REPLAY_WS, &w, 10);
    assert_int_equal(w.n, 4);
    assert_string_equal(w.f[0].type, "reset");
    assert_non_null(strstr(w.raw, "{\"type\":\"reset\",\"earliestSeq\":1,\"lastSeq\":3}"));
    rtlog_replay_close(s);

    rtlog_replay_stats st;
    rtlog_replay_get_stats(e, &st);
    assert_int_equal(st.resets, 2);
    rtlog_replay_free(e);
    tenv_close(t);
}

/* Retention (rtlog_store_trim) removes events a subscriber has not seen: at open (cursor
 * older than the retained history), while it is connected (a gap on its next read), and
 * when nothing at all is left after its cursor. Each time: a reset naming the earliest
 * retained seq, then the events from there, never a silent gap (CONTRACT "Resuming"). */
static void test_retention_resets(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    const char *S = "workflow-runs/ret";
    tappend(t, S, "{\"type\":\"step_log\",\"nodeId\":\"a\",\"line\":\"1\",\"level\":\"info\"}");
    for (int i = 2; i <= 10; i++)
        tappend(t, S, "{\"type\":\"step_log\",\"nodeId\":\"a\",\"line\":\"x\",\"level\":\"info\"}");
    rtlog_replay *e = engine(t);
    rtlog_errinfo ei = {0};

    /* Connected at cursor 2, then seqs 3..5 are trimmed before it reads. */
    rtlog_replay_sub *live = open_sub(e, S, 1, 2, RTLOG_REPLAY_SSE, 1, NULL, NULL);
    rtlog_trim_res tr;
    assert_int_equal(rtlog_store_trim(t->st, S, 6, &tr, &ei), RTLOG_OK);
    assert_int_equal(tr.first_seq, 6);
    struct collected c = {0};
    drain(live, RTLOG_REPLAY_SSE, &c, 10);
    assert_int_equal(c.last, RTLOG_REPLAY_IDLE);
    assert_int_equal(c.n, 6);
    assert_string_equal(c.f[0].type, "reset");
    assert_non_null(strstr(c.raw, "event: reset\ndata: {\"type\":\"reset\",\"earliestSeq\":6,"
                                  "\"lastSeq\":10}\n\n"));
    for (size_t i = 1; i < c.n; i++)
        assert_int_equal(c.f[i].seq, 5 + i);

    /* A new subscriber with a cursor before the retained history: reset at open. */
    struct collected w = {0};
    rtlog_replay_sub *late = open_sub(e, S, 1, 1, RTLOG_REPLAY_WS, 1, NULL, NULL);
    drain(late, RTLOG_REPLAY_WS, &w, 20);
    assert_int_equal(w.n, 6);
    assert_string_equal(w.f[0].type, "reset");
    assert_non_null(strstr(w.raw, "{\"type\":\"reset\",\"earliestSeq\":6,\"lastSeq\":10}"));
    assert_int_equal(w.f[1].seq, 6);
    rtlog_replay_close(late);
    /* Cursor 5 = just before first_seq: honoured, no reset. */
    struct collected ok = {0};
    late = open_sub(e, S, 1, 5, RTLOG_REPLAY_SSE, 1, NULL, NULL);
    drain(late, RTLOG_REPLAY_SSE, &ok, 10);
    assert_int_equal(ok.n, 5);
    assert_int_equal(ok.f[0].seq, 6);
    rtlog_replay_close(late);
    /* No cursor on a run: from the first retained event. */
    struct collected nc = {0};
    late = open_sub(e, S, 0, 0, RTLOG_REPLAY_SSE, 1, NULL, NULL);
    drain(late, RTLOG_REPLAY_SSE, &nc, 10);
    assert_int_equal(nc.n, 5);
    assert_int_equal(nc.f[0].seq, 6);
    rtlog_replay_close(late);
    rtlog_replay_close(live);

    /* Everything after the cursor trimmed: a reset, then the subscriber waits at the head
     * and gets the next event live. The ring is bypassed by a fresh engine. */
    rtlog_replay_free(e);
    e = engine(t);
    rtlog_replay_sub *s = open_sub(e, S, 1, 7, RTLOG_REPLAY_SSE, 1, NULL, NULL);
    assert_int_equal(rtlog_store_trim(t->st, S, 100, &tr, &ei), RTLOG_OK);
    assert_int_equal(tr.first_seq, 11);
    struct collected z = {0};
    drain(s, RTLOG_REPLAY_SSE, &z, 10);
    assert_int_equal(z.last, RTLOG_REPLAY_IDLE);
    assert_int_equal(z.n, 1);
    assert_string_equal(z.f[0].type, "reset");
    assert_non_null(strstr(z.raw, "{\"type\":\"reset\",\"earliestSeq\":11,\"lastSeq\":10}"));
    tappend(t, S, "{\"type\":\"step_log\",\"nodeId\":\"a\",\"line\":\"y\",\"level\":\"info\"}");
    tenv_deliver(t, e, 0);
    struct collected l = {0};
    drain(s, RTLOG_REPLAY_SSE, &l, 10);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.f[0].seq, 11);
    rtlog_replay_close(s);
    rtlog_replay_free(e);
    tenv_close(t);
}

static void test_frame_shapes(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    const char *S = "deployment-jobs/job-0001";
    /* CR, ANSI escapes and Unicode are carried exactly; the SSE data line stays one line */
    tappend(t, S, "{\"type\":\"task_log\",\"taskId\":\"t1\",\"line\":\"a\\r\\nb \\u001b[31mred\\u001b[0m κόσμε\","
                  "\"timestamp\":\"2026-01-10T14:23:45.000Z\"}");
    rtlog_replay *e = engine(t);
    struct collected c = {0};
    rtlog_replay_sub *s = open_sub(e, S, 0, 0, RTLOG_REPLAY_SSE, 1, NULL, NULL);
    drain(s, RTLOG_REPLAY_SSE, &c, 5);
    assert_string_equal(c.raw, "id: 1\nevent: task_log\ndata: {\"type\":\"task_log\",\"taskId\":"
                               "\"t1\",\"line\":\"a\\r\\nb \\u001b[31mred\\u001b[0m κόσμε\","
                               "\"timestamp\":\"2026-01-10T14:23:45.000Z\",\"seq\":1}\n\n");
    rtlog_replay_close(s);
    struct collected w = {0};
    s = open_sub(e, S, 0, 0, RTLOG_REPLAY_WS, 1, NULL, NULL);
    drain(s, RTLOG_REPLAY_WS, &w, 5);
    assert_string_equal(w.raw, "{\"type\":\"task_log\",\"taskId\":\"t1\",\"line\":\"a\\r\\nb "
                               "\\u001b[31mred\\u001b[0m κόσμε\",\"timestamp\":"
                               "\"2026-01-10T14:23:45.000Z\",\"seq\":1}");
    assert_string_equal(rtlog_replay_stream(s), S);
    rtlog_replay_close(s);
    rtlog_replay_free(e);
    tenv_close(t);
}

static void test_filters(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    const char *S = "workflow-runs/f";
    tappend_logs(t, S, 30, 3, 0); /* nodeId n0 n1 n2 n0 ... */
    tappend(t, S, "{\"type\":\"step_completed\",\"nodeId\":\"n1\",\"status\":\"succeeded\"}");
    tappend(t, S, "{\"type\":\"step_progress\",\"nodeId\":\"n1\",\"progress\":50}");
    rtlog_replay *e = engine(t);

    struct collected c = {0};
    rtlog_replay_sub *s = open_sub(e, S, 0, 0, RTLOG_REPLAY_SSE, 1, "n1", NULL);
    drain(s, RTLOG_REPLAY_SSE, &c, 100);
    assert_int_equal(c.n, 12); /* 10 logs + completed + progress */
    for (size_t i = 0; i < c.n; i++)
        assert_string_equal(c.f[i].node, "n1");
    assert_int_equal(rtlog_replay_cursor(s), 32); /* filtered events still advance it */
    assert_int_equal(c.last, RTLOG_REPLAY_IDLE);
    rtlog_replay_close(s);

    struct collected d = {0};
    s = open_sub(e, S, 0, 0, RTLOG_REPLAY_WS, 1, "n1", "step_completed,step_progress");
    drain(s, RTLOG_REPLAY_WS, &d, 100);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.f[0].type, "step_completed");
    assert_int_equal(d.f[0].seq, 31);
    assert_string_equal(d.f[1].type, "step_progress");
    rtlog_replay_close(s);

    /* a filter that matches nothing: no output, cursor at head, IDLE */
    struct collected z = {0};
    s = open_sub(e, S, 0, 0, RTLOG_REPLAY_SSE, 1, "nobody", NULL);
    drain(s, RTLOG_REPLAY_SSE, &z, 100);
    assert_int_equal(z.n, 0);
    assert_int_equal(z.last, RTLOG_REPLAY_IDLE);
    assert_int_equal(rtlog_replay_cursor(s), 32);
    rtlog_replay_close(s);

    /* malformed type list is refused, not reinterpreted */
    rtlog_replay_req q = {.stream = S, .follow = 1, .fmt = RTLOG_REPLAY_SSE, .types = "a,,b"};
    rtlog_replay_sub *bad = NULL;
    assert_int_equal(rtlog_replay_open(e, &q, &bad, NULL), RTLOG_E_INVAL);
    assert_null(bad);
    rtlog_replay_free(e);
    tenv_close(t);
}

static void test_follow_false(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    const char *S = "workflow-runs/audit";
    tappend_logs(t, S, 5, 1, 0);
    rtlog_replay *e = engine(t);
    rtlog_replay_sub *s = open_sub(e, S, 1, 2, RTLOG_REPLAY_SSE, 0, NULL, NULL);
    /* an append after the open is not waited for */
    tappend_logs(t, S, 3, 1, 5);
    tenv_deliver(t, e, 0);
    struct collected c = {0};
    drain(s, RTLOG_REPLAY_SSE, &c, 100);
    assert_int_equal(c.last, RTLOG_REPLAY_END);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.f[2].seq, 5);
    rtlog_replay_close(s);

    /* empty stream, follow=false: END at once */
    tappend(t, "workflow-runs/empty", "[]");
    s = open_sub(e, "workflow-runs/empty", 0, 0, RTLOG_REPLAY_WS, 0, NULL, NULL);
    struct collected z = {0};
    drain(s, RTLOG_REPLAY_WS, &z, 3);
    assert_int_equal(z.n, 0);
    assert_int_equal(z.last, RTLOG_REPLAY_END);
    rtlog_replay_close(s);
    rtlog_replay_free(e);
    tenv_close(t);
}

static int woken;
static void count_wake(void *ctx, rtlog_replay_sub *sub, void *user)
{
    (void)ctx;
    (void)sub;
    (void)user;
    woken++;
}

static void test_sealed(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    const char *S = "workflow-runs/sealme";
    tappend_logs(t, S, 4, 1, 0);
    rtlog_replay *e;
    rtlog_replay_opts o = {.store = t->st, .wake = count_wake};
    assert_int_equal(rtlog_replay_new(&o, &e), RTLOG_OK);
    rtlog_replay_sub *live = open_sub(e, S, 0, 0, RTLOG_REPLAY_WS, 1, NULL, NULL);
    struct collected c = {0};
    drain(live, RTLOG_REPLAY_WS, &c, 100);
    assert_int_equal(c.last, RTLOG_REPLAY_IDLE);
    assert_int_equal(c.n, 4);

    woken = 0;
    tappend(t, S, "{\"type\":\"workflow_completed\",\"status\":\"succeeded\",\"duration\":1.5}");
    tenv_deliver(t, e, 0);
    assert_int_equal(woken, 1);
    drain(live, RTLOG_REPLAY_WS, &c, 100);
    assert_int_equal(c.n, 5);
    assert_string_equal(c.f[4].type, "workflow_completed");
    assert_int_equal(c.last, RTLOG_REPLAY_END);
    /* END is sticky */
    drain(live, RTLOG_REPLAY_WS, &c, 1);
    assert_int_equal(c.last, RTLOG_REPLAY_END);
    assert_int_equal(c.n, 5);
    rtlog_replay_close(live);

    /* a late subscriber to the sealed stream gets all of it, then END; from its head, END */
    struct collected d = {0};
    rtlog_replay_sub *late = open_sub(e, S, 1, 2, RTLOG_REPLAY_SSE, 1, NULL, NULL);
    drain(late, RTLOG_REPLAY_SSE, &d, 100);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.last, RTLOG_REPLAY_END);
    rtlog_replay_close(late);
    struct collected h = {0};
    late = open_sub(e, S, 1, 5, RTLOG_REPLAY_SSE, 1, NULL, NULL);
    drain(late, RTLOG_REPLAY_SSE, &h, 2);
    assert_int_equal(h.n, 0);
    assert_int_equal(h.last, RTLOG_REPLAY_END);
    rtlog_replay_close(late);

    /* the seal is seen from the stored record itself, before its note arrives */
    const char *J = "deployment-jobs/j";
    tappend(t, J, "[]");
    tenv_deliver(t, e, 0);
    rtlog_replay_sub *js = open_sub(e, J, 0, 0, RTLOG_REPLAY_SSE, 1, NULL, NULL);
    struct collected g = {0};
    drain(js, RTLOG_REPLAY_SSE, &g, 3);
    assert_int_equal(g.last, RTLOG_REPLAY_IDLE);
    tappend(t, J, "{\"type\":\"job_completed\",\"status\":\"succeeded\"}");
    /* no notify yet: a fill reads on only up to what it knows, so nothing */
    drain(js, RTLOG_REPLAY_SSE, &g, 3);
    assert_int_equal(g.n, 0);
    tenv_deliver(t, e, 0);
    drain(js, RTLOG_REPLAY_SSE, &g, 3);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.last, RTLOG_REPLAY_END);
    rtlog_replay_close(js);
    rtlog_replay_free(e);
    tenv_close(t);
}

static void test_dashboard_start(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    const char *D = "dashboard";
    tappend(t, D, "[]");
    rtlog_replay *e = engine(t);
    /* no metric_update yet: live only */
    tappend(t, D, "{\"type\":\"alert\",\"alert\":{\"severity\":\"warning\",\"id\":\"a1\"}}");
    rtlog_replay_sub *s = open_sub(e, D, 0, 0, RTLOG_REPLAY_SSE, 1, NULL, NULL);
    struct collected c = {0};
    drain(s, RTLOG_REPLAY_SSE, &c, 5);
    assert_int_equal(c.n, 0);
    assert_int_equal(c.last, RTLOG_REPLAY_IDLE);
    tappend(t, D, "{\"type\":\"metric_update\",\"metrics\":{\"pendingApprovals\":3}}");
    tappend(t, D, "{\"type\":\"alert\",\"alert\":{\"severity\":\"warning\",\"id\":\"a2\"}}");
    tenv_deliver(t, e, 0);
    drain(s, RTLOG_REPLAY_SSE, &c, 5);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.f[0].seq, 2);
    rtlog_replay_close(s);

    tappend(t, D, "{\"type\":\"metric_update\",\"metrics\":{\"pendingApprovals\":4}}");
    tappend(t, D, "{\"type\":\"alert\",\"alert\":{\"severity\":\"critical\",\"id\":\"a3\"}}");
    /* a new viewer starts at the latest metric_update (seq 4), then what followed it */
    struct collected d = {0};
    s = open_sub(e, D, 0, 0, RTLOG_REPLAY_WS, 1, NULL, NULL);
    drain(s, RTLOG_REPLAY_WS, &d, 10);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.f[0].type, "metric_update");
    assert_int_equal(d.f[0].seq, 4);
    assert_int_equal(d.f[1].seq, 5);
    rtlog_replay_close(s);
    /* an explicit cursor on the dashboard is honoured like on any stream */
    struct collected x = {0};
    s = open_sub(e, D, 1, 0, RTLOG_REPLAY_WS, 1, NULL, NULL);
    drain(s, RTLOG_REPLAY_WS, &x, 10);
    assert_int_equal(x.n, 5);
    rtlog_replay_close(s);
    rtlog_replay_free(e);
    tenv_close(t);
}

static void test_not_found_and_bad_requests(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    rtlog_replay *e = engine(t);
    rtlog_replay_sub *s = NULL;
    rtlog_replay_req q = {.stream = "workflow-runs/never", .follow = 1, .fmt = RTLOG_REPLAY_SSE};
    assert_int_equal(rtlog_replay_open(e, &q, &s, NULL), RTLOG_E_NOTFOUND);
    assert_null(s);
    q.stream = "workflow-runs/bad id";
    assert_int_equal(rtlog_replay_open(e, &q, &s, NULL), RTLOG_E_INVAL);
    q.stream = "workflow-runs/ok";
    q.fmt = (rtlog_replay_fmt)7;
    assert_int_equal(rtlog_replay_open(e, &q, &s, NULL), RTLOG_E_INVAL);
    /* notes for streams nobody follows are ignored */
    rtlog_replay_notify(e, "workflow-runs/nobody", 10, 1);
    rtlog_replay_stats st;
    rtlog_replay_get_stats(e, &st);
    assert_int_equal(st.streams, 0);
    rtlog_replay_free(e);
    tenv_close(t);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_positions),
        cmocka_unit_test(test_cursor_beyond_head_resets),
        cmocka_unit_test(test_retention_resets),
        cmocka_unit_test(test_frame_shapes),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_follow_false),
        cmocka_unit_test(test_sealed),
        cmocka_unit_test(test_dashboard_start),
        cmocka_unit_test(test_not_found_and_bad_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
