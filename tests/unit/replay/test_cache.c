/* test_cache.c - the block cache hands out exactly what the uncached path does.
 *
 * Subscribers far behind the head are served from cached segments of rendered frames
 * (rtlog_replay_opts.cache_bytes). Every check here runs the same subscriber twice, on an
 * engine with the cache and on one without it (cache_off), over the same store, and
 * compares the bytes the two produce to the end: for many starting cursors (segment
 * starts, ends and middles, with and without a cursor), every filter kind (nodeId, types,
 * both, one that matches nothing), the three formats, byte budgets from none to less than
 * one frame, follow on and off, personal frames (which the cache must leave to the store
 * path), a cache too small for more than a few segments (its bytes are checked after every
 * fill), many subscribers interleaved at nearby positions (which must share renders), and
 * retention trimming events that sit in cached segments (the reset must come exactly as
 * without the cache).
 */
#include "replay_test.h"

#define S      "workflow-runs/cache-0001"
#define EVENTS 701u /* 700 + the sealing workflow_completed */
#define CHUNK  37u  /* segment size: segments are not aligned with the store's blocks */

static void fill_store(tenv *t, const char *stream, unsigned n, int seal)
{
    rtlog_buf body = {0}, big = {0};
    for (unsigned i = 0; i < 900; i++) /* 3,600 bytes with escapes */
        rtlog_buf_puts(&big, i % 61 == 0 ? "\\\"q\\\\" : i % 53 == 0 ? "\\u0001" : "ab c");
    rtlog_buf_nul(&big);
    for (unsigned i = 1; i <= n;) {
        rtlog_buf_clear(&body);
        rtlog_buf_puts(&body, "[");
        for (unsigned k = 0; k < 25 && i <= n; k++, i++) {
            if (k)
                rtlog_buf_puts(&body, ",");
            switch (i % 4) {
            case 0:
                rtlog_buf_printf(&body, "{\"type\":\"step_started\",\"nodeId\":\"n%u\","
                                        "\"stepType\":\"docker\"}", i % 3);
                break;
            case 1:
                rtlog_buf_printf(&body, "{\"type\":\"step_log\",\"nodeId\":\"n%u\",\"line\":"
                                        "\"a\\r\\nb \\u001b[31mred\\u001b[0m κόσμε %u\","
                                        "\"level\":\"info\"}", i % 3, i);
                break;
            case 2:
                rtlog_buf_printf(&body, "{\"type\":\"step_log\",\"nodeId\":\"n%u\",\"line\":"
                                        "\"%s\",\"level\":\"warn\"}", i % 3,
                                 i % 50 == 2 ? big.p : "x");
                break;
            default:
                rtlog_buf_printf(&body, "{\"type\":\"step_progress\",\"nodeId\":\"n\\u0000%u\","
                                        "\"progress\":%u}", i % 3, i % 100);
                break;
            }
        }
        rtlog_buf_puts(&body, "]");
        rtlog_buf_nul(&body);
        tappend(t, stream, body.p);
    }
    if (seal)
        tappend(t, stream, "{\"type\":\"workflow_completed\",\"status\":\"succeeded\"}");
    rtlog_buf_free(&body);
    rtlog_buf_free(&big);
}

/* Personal frames for step_started: even seqs get this subscriber's own JSON, odd ones the
 * shared frame (used = 0). */
static rtlog_err personal(void *ctx, void *user, uint64_t seq, const void *mp, size_t mp_len,
                          rtlog_buf *out, int *used)
{
    (void)ctx;
    (void)user;
    (void)mp;
    (void)mp_len;
    *used = seq % 2 == 0;
    return *used ? rtlog_buf_printf(out, "{\"type\":\"step_started\",\"mine\":1,\"seq\":%" PRIu64
                                         "}", seq)
                 : RTLOG_OK;
}

struct sub_spec {
    const char *stream;
    int has_cursor;
    uint64_t cursor;
    const char *node, *types;
    int follow, personal;
    rtlog_replay_fmt fmt;
    size_t max_bytes;
};

static rtlog_replay *engine(tenv *t, int cache_off, size_t cache_bytes, size_t ring_frames)
{
    rtlog_replay *e = NULL;
    rtlog_replay_opts o = {.store = t->st, .ring_frames = ring_frames, .chunk_events = CHUNK,
                           .cache_off = cache_off, .cache_bytes = cache_bytes};
    assert_int_equal(rtlog_replay_new(&o, &e), RTLOG_OK);
    return e;
}

static rtlog_replay_sub *sub_open(rtlog_replay *e, const struct sub_spec *p)
{
    rtlog_replay_req q = {.stream = p->stream, .has_cursor = p->has_cursor,
                          .cursor = p->cursor, .node_id = p->node, .types = p->types,
                          .follow = p->follow, .fmt = p->fmt};
    if (p->personal) {
        q.personal = personal;
        q.personal_type = "step_started";
    }
    rtlog_replay_sub *s = NULL;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_replay_open(e, &q, &s, &ei), RTLOG_OK);
    return s;
}

/* One fill of @s appended to @got (WS messages closed by '\x1e'); returns the state. */
static rtlog_replay_state fill_once(rtlog_replay_sub *s, const struct sub_spec *p, rtlog_buf *got,
                                    rtlog_replay *e, size_t cache_max)
{
    rtlog_buf out = {0};
    rtlog_replay_state st;
    size_t nf = 0;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_replay_fill(s, &out, p->max_bytes, p->fmt == RTLOG_REPLAY_WS ? 1 : 0,
                                       &st, &nf, &ei),
                     RTLOG_OK);
    if (p->max_bytes && nf > 1)
        assert_true(out.len <= p->max_bytes); /* the budget holds unless one frame is bigger */
    if (out.len)
        assert_int_equal(rtlog_buf_append(got, out.p, out.len), RTLOG_OK);
    if (out.len && p->fmt == RTLOG_REPLAY_WS)
        assert_int_equal(rtlog_buf_append(got, "\x1e", 1), RTLOG_OK);
    rtlog_buf_free(&out);
    if (e && cache_max) {
        rtlog_replay_stats x;
        rtlog_replay_get_stats(e, &x);
        assert_true(x.cache_bytes <= cache_max);
    }
    return st;
}

/* Fill until the state is not MORE; returns the last state. */
static rtlog_replay_state drain(rtlog_replay_sub *s, const struct sub_spec *p, rtlog_buf *got,
                                rtlog_replay *e, size_t cache_max)
{
    rtlog_replay_state st = RTLOG_REPLAY_MORE;
    for (int i = 0; i < 100000 && st == RTLOG_REPLAY_MORE; i++)
        st = fill_once(s, p, got, e, cache_max);
    return st;
}

static void check_same(const rtlog_buf *a, const rtlog_buf *b)
{
    assert_int_equal(a->len, b->len);
    if (a->len)
        assert_memory_equal(a->p, b->p, a->len);
}

/* Run @p on a cached and an uncached engine, compare; returns the cached engine's frames
 * served from the cache. */
static uint64_t compare_one(tenv *t, const struct sub_spec *p, size_t cache_bytes)
{
    rtlog_replay *ec = engine(t, 0, cache_bytes, 16), *eu = engine(t, 1, 0, 16);
    rtlog_replay_sub *sc = sub_open(ec, p), *su = sub_open(eu, p);
    rtlog_buf gc = {0}, gu = {0};
    rtlog_replay_state stc = drain(sc, p, &gc, ec, cache_bytes ? cache_bytes : 32u << 20);
    rtlog_replay_state stu = drain(su, p, &gu, NULL, 0);
    assert_int_equal(stc, stu);
    assert_int_equal(rtlog_replay_cursor(sc), rtlog_replay_cursor(su));
    check_same(&gc, &gu);
    rtlog_replay_stats x;
    rtlog_replay_get_stats(ec, &x);
    rtlog_replay_close(sc);
    rtlog_replay_close(su);
    rtlog_replay_get_stats(ec, &x);
    assert_int_equal(x.cache_segments, 0); /* freed with the stream's last subscriber */
    assert_int_equal(x.cache_bytes, 0);
    rtlog_buf_free(&gc);
    rtlog_buf_free(&gu);
    rtlog_replay_free(ec);
    rtlog_replay_free(eu);
    return x.cache_frames;
}

static void test_many_positions(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    fill_store(t, S, EVENTS - 1, 1);
    static const struct {
        const char *node, *types;
    } filters[] = {{NULL, NULL},         {"n1", NULL},          {NULL, "step_started"},
                   {"n2", "step_log"},   {NULL, "no_such_type"}, {NULL, "step_log,step_progress"}};
    static const uint64_t cursors[] = {0, 1, 36, 37, 38, 73, 74, 100, 333, 650, 690, 700, 701};
    static const size_t budgets[] = {0, 300, 4096, 65536};
    uint64_t from_cache = 0;
    unsigned runs = 0;
    for (size_t fi = 0; fi < sizeof filters / sizeof filters[0]; fi++)
        for (size_t ci = 0; ci < sizeof cursors / sizeof cursors[0]; ci++)
            for (int fmt = RTLOG_REPLAY_SSE; fmt <= RTLOG_REPLAY_WS_FRAMED; fmt++) {
                /* budgets and follow vary with the other indexes, to keep the run short */
                size_t k = fi + ci + (size_t)fmt;
                struct sub_spec p = {.stream = S, .has_cursor = cursors[ci] != 0 || k % 2,
                                     .cursor = cursors[ci], .node = filters[fi].node,
                                     .types = filters[fi].types, .follow = (int)(k / 2 % 2),
                                     .fmt = (rtlog_replay_fmt)fmt,
                                     .max_bytes = budgets[k % 4]};
                from_cache += compare_one(t, &p, 0);
                runs++;
            }
    assert_true(runs > 200);
    assert_true(from_cache > 10000); /* the cache really served most of it */
    tenv_close(t);
}

/* Personal frames are never taken from the cache (the store path renders them), and the
 * events around them still are; the bytes are the same either way. */
static void test_personal(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    fill_store(t, S, EVENTS - 1, 1);
    for (int fmt = RTLOG_REPLAY_SSE; fmt <= RTLOG_REPLAY_WS_FRAMED; fmt++)
        for (size_t b = 0; b < 2; b++) {
            struct sub_spec p = {.stream = S, .personal = 1, .fmt = (rtlog_replay_fmt)fmt,
                                 .max_bytes = b ? 2000 : 0, .types = b ? "step_started" : NULL};
            uint64_t cached = compare_one(t, &p, 0);
            if (!p.types) /* with only step_started wanted, every frame is personal */
                assert_true(cached > 0);
        }
    tenv_close(t);
}

/* A cache that holds only a few segments: evictions all the time, same bytes, and its
 * byte count never over the limit (checked after every fill by drain). */
static void test_small_cache(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    fill_store(t, S, EVENTS - 1, 1);
    for (int fmt = RTLOG_REPLAY_SSE; fmt <= RTLOG_REPLAY_WS_FRAMED; fmt++) {
        struct sub_spec p = {.stream = S, .fmt = (rtlog_replay_fmt)fmt, .max_bytes = 1500};
        assert_true(compare_one(t, &p, 24 * 1024) > 0);
        /* smaller than one segment of 37 events with its 3.6 KB lines: nothing is kept */
        p.node = "n1";
        compare_one(t, &p, 4096);
    }
    tenv_close(t);
}

/* Many subscribers at nearby positions, filled in turn as the server does: each gets the
 * uncached bytes, and an event is rendered about once for all of them, not once each. */
static void test_shared(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    fill_store(t, S, EVENTS - 1, 1);
    enum { N = 12 };
    rtlog_replay *ec = engine(t, 0, 0, 16), *eu = engine(t, 1, 0, 16);
    rtlog_replay_sub *sc[N], *su[N];
    struct sub_spec p[N];
    rtlog_buf gc[N], gu[N];
    rtlog_replay_state stc[N], stu[N];
    for (int i = 0; i < N; i++) {
        p[i] = (struct sub_spec){.stream = S, .has_cursor = 1, .cursor = (uint64_t)(i * 5),
                                 .fmt = (rtlog_replay_fmt)(RTLOG_REPLAY_SSE + i % 3),
                                 .node = i % 4 == 3 ? "n0" : NULL, .max_bytes = 3000,
                                 .follow = i % 2};
        sc[i] = sub_open(ec, &p[i]);
        su[i] = sub_open(eu, &p[i]);
        gc[i] = gu[i] = (rtlog_buf){0};
        stc[i] = stu[i] = RTLOG_REPLAY_MORE;
    }
    for (int round = 0; round < 100000; round++) {
        int busy = 0;
        for (int i = 0; i < N; i++) {
            if (stc[i] == RTLOG_REPLAY_MORE) {
                stc[i] = fill_once(sc[i], &p[i], &gc[i], ec, 32u << 20);
                busy = 1;
            }
            if (stu[i] == RTLOG_REPLAY_MORE) {
                stu[i] = fill_once(su[i], &p[i], &gu[i], NULL, 0);
                busy = 1;
            }
        }
        if (!busy)
            break;
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(stc[i], stu[i]);
        assert_int_equal(stc[i], RTLOG_REPLAY_END); /* the stream is sealed */
        check_same(&gc[i], &gu[i]);
    }
    rtlog_replay_stats xc, xu;
    rtlog_replay_get_stats(ec, &xc);
    rtlog_replay_get_stats(eu, &xu);
    assert_true(xu.frames_rendered >= (uint64_t)N * (EVENTS - 60));
    assert_true(xc.frames_rendered < 2 * EVENTS); /* shared: about one render per event */
    assert_true(xc.cache_hits > xc.cache_misses);
    for (int i = 0; i < N; i++) {
        rtlog_replay_close(sc[i]);
        rtlog_replay_close(su[i]);
        rtlog_buf_free(&gc[i]);
        rtlog_buf_free(&gu[i]);
    }
    rtlog_replay_free(ec);
    rtlog_replay_free(eu);
    tenv_close(t);
}

/* Retention trims events that sit in cached segments, with subscribers before, inside and
 * after the cut: the cached engine sends the same resets and events as the uncached one,
 * never a trimmed event from the cache. */
static void test_trim(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    const char *T = "workflow-runs/cache-trim";
    fill_store(t, T, 600, 0);
    rtlog_replay *ec = engine(t, 0, 0, 16), *eu = engine(t, 1, 0, 16);
    enum { N = 4 };
    struct sub_spec p[N];
    rtlog_replay_sub *sc[N], *su[N];
    rtlog_buf gc[N], gu[N];
    static const uint64_t cursors[N] = {0, 20, 120, 400};
    for (int i = 0; i < N; i++) {
        p[i] = (struct sub_spec){.stream = T, .has_cursor = 1, .cursor = cursors[i],
                                 .follow = 1, .fmt = (rtlog_replay_fmt)(RTLOG_REPLAY_SSE + i % 3),
                                 .max_bytes = 2500};
        sc[i] = sub_open(ec, &p[i]);
        su[i] = sub_open(eu, &p[i]);
        gc[i] = gu[i] = (rtlog_buf){0};
        /* a few fills each: the segments around every cursor are cached */
        for (int k = 0; k < 3; k++) {
            fill_once(sc[i], &p[i], &gc[i], ec, 32u << 20);
            fill_once(su[i], &p[i], &gu[i], NULL, 0);
        }
        check_same(&gc[i], &gu[i]);
    }
    rtlog_replay_stats x;
    rtlog_replay_get_stats(ec, &x);
    assert_true(x.cache_segments > 0);
    uint64_t at_trim[N];
    for (int i = 0; i < N; i++)
        at_trim[i] = rtlog_replay_cursor(sc[i]);
    rtlog_trim_res tr;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_trim(t->st, T, 300, &tr, &ei), RTLOG_OK);
    assert_true(tr.first_seq > 150 && tr.first_seq <= 300);
    /* and a subscriber opened after the trim, at a cursor the cache held */
    struct sub_spec late = {.stream = T, .has_cursor = 1, .cursor = 40, .follow = 1,
                            .fmt = RTLOG_REPLAY_SSE};
    rtlog_replay_sub *lc = sub_open(ec, &late), *lu = sub_open(eu, &late);
    rtlog_buf lgc = {0}, lgu = {0};
    assert_int_equal(drain(lc, &late, &lgc, ec, 32u << 20), drain(lu, &late, &lgu, NULL, 0));
    check_same(&lgc, &lgu);
    for (int i = 0; i < N; i++) {
        rtlog_replay_state a = drain(sc[i], &p[i], &gc[i], ec, 32u << 20);
        rtlog_replay_state b = drain(su[i], &p[i], &gu[i], NULL, 0);
        assert_int_equal(a, b);
        assert_int_equal(a, RTLOG_REPLAY_IDLE);
        check_same(&gc[i], &gu[i]);
        /* those that had not passed the cut were told, in-band (memmem: WebSocket frame
         * headers may hold NUL bytes) */
        if (at_trim[i] + 1 < tr.first_seq)
            assert_non_null(memmem(gc[i].p, gc[i].len, "\"type\":\"reset\"", 14));
    }
    rtlog_replay_get_stats(ec, &x);
    assert_true(x.resets >= 3);
    assert_true(at_trim[0] + 1 < tr.first_seq && at_trim[1] + 1 < tr.first_seq);
    for (int i = 0; i < N; i++) {
        rtlog_replay_close(sc[i]);
        rtlog_replay_close(su[i]);
        rtlog_buf_free(&gc[i]);
        rtlog_buf_free(&gu[i]);
    }
    rtlog_replay_close(lc);
    rtlog_replay_close(lu);
    rtlog_buf_free(&lgc);
    rtlog_buf_free(&lgu);
    rtlog_replay_free(ec);
    rtlog_replay_free(eu);
    tenv_close(t);
}

/* A segment cut short by its byte limit (cache_bytes / 4) ends before its aligned block
 * does. A subscriber past the cut must not rebuild that same short segment on every fill
 * (a store read and a render of up to cache_bytes / 4 thrown away each time): each event is
 * still rendered a small number of times, as without the cache. */
static void test_cut_segment_not_rebuilt(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    fill_store(t, S, EVENTS - 1, 1);
    for (int fmt = RTLOG_REPLAY_SSE; fmt <= RTLOG_REPLAY_WS_FRAMED; fmt++) {
        /* 8 KiB: segments of 2 KiB, far fewer than CHUNK events of ~150 bytes */
        rtlog_replay *ec = engine(t, 0, 8192, 16), *eu = engine(t, 1, 0, 16);
        struct sub_spec p = {.stream = S, .fmt = (rtlog_replay_fmt)fmt, .max_bytes = 400};
        rtlog_replay_sub *sc = sub_open(ec, &p), *su = sub_open(eu, &p);
        rtlog_buf gc = {0}, gu = {0};
        assert_int_equal(drain(sc, &p, &gc, ec, 8192), drain(su, &p, &gu, NULL, 0));
        check_same(&gc, &gu);
        rtlog_replay_stats xc, xu;
        rtlog_replay_get_stats(ec, &xc);
        rtlog_replay_get_stats(eu, &xu);
        assert_true(xc.frames_rendered <= 2 * xu.frames_rendered);
        rtlog_replay_close(sc);
        rtlog_replay_close(su);
        rtlog_buf_free(&gc);
        rtlog_buf_free(&gu);
        rtlog_replay_free(ec);
        rtlog_replay_free(eu);
    }
    tenv_close(t);
}

/* A subscriber with personal frames (an agent's own connection) following at the head: a
 * personal event in the ring is rendered by the store path; the cache must not be asked
 * for it (the segment holding it is near the head, short, and rebuilt - read and rendered
 * from its block's start - at every new event). Same bytes, and about as many renders as
 * without the cache. */
static void test_personal_at_head(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    const char *H = "workflow-runs/cache-head";
    fill_store(t, H, 50, 0);
    rtlog_replay *ec = engine(t, 0, 0, 0), *eu = engine(t, 1, 0, 0); /* default ring */
    struct sub_spec p = {.stream = H, .personal = 1, .follow = 1, .fmt = RTLOG_REPLAY_SSE};
    /* an ordinary subscriber too, filled first: it puts the shared frames in the ring */
    struct sub_spec o = {.stream = H, .follow = 1, .fmt = RTLOG_REPLAY_SSE};
    rtlog_replay_sub *sc = sub_open(ec, &p), *su = sub_open(eu, &p);
    rtlog_replay_sub *oc = sub_open(ec, &o), *ou = sub_open(eu, &o);
    rtlog_buf gc = {0}, gu = {0}, go = {0};
    drain(oc, &o, &go, ec, 32u << 20);
    drain(ou, &o, &go, NULL, 0);
    assert_int_equal(drain(sc, &p, &gc, ec, 32u << 20), drain(su, &p, &gu, NULL, 0));
    for (int i = 0; i < 200; i++) {
        rtlog_append_res r = tappend(t, H, i % 2 ? "{\"type\":\"step_log\",\"nodeId\":\"n1\","
                                                   "\"line\":\"x\",\"level\":\"info\"}"
                                                 : "{\"type\":\"step_started\",\"nodeId\":\"n1\","
                                                   "\"stepType\":\"docker\"}");
        rtlog_replay_notify(ec, H, r.last_seq, 0);
        rtlog_replay_notify(eu, H, r.last_seq, 0);
        drain(oc, &o, &go, ec, 32u << 20);
        drain(ou, &o, &go, NULL, 0);
        assert_int_equal(drain(sc, &p, &gc, ec, 32u << 20), RTLOG_REPLAY_IDLE);
        assert_int_equal(drain(su, &p, &gu, NULL, 0), RTLOG_REPLAY_IDLE);
    }
    check_same(&gc, &gu);
    rtlog_replay_stats xc, xu;
    rtlog_replay_get_stats(ec, &xc);
    rtlog_replay_get_stats(eu, &xu);
    assert_true(xc.frames_rendered <= xu.frames_rendered + xu.frames_rendered / 10);
    assert_int_equal(xc.cache_misses, 0); /* nothing here is far behind the head */
    rtlog_replay_close(sc);
    rtlog_replay_close(su);
    rtlog_replay_close(oc);
    rtlog_replay_close(ou);
    rtlog_buf_free(&go);
    rtlog_buf_free(&gc);
    rtlog_buf_free(&gu);
    rtlog_replay_free(ec);
    rtlog_replay_free(eu);
    tenv_close(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_positions),
        cmocka_unit_test(test_personal),
        cmocka_unit_test(test_small_cache),
        cmocka_unit_test(test_shared),
        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_cut_segment_not_rebuilt),
        cmocka_unit_test(test_personal_at_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
