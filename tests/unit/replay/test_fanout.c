/* test_fanout.c - DESIGN.md "Frames encoded once" and "Back-pressure without loss":
 * at the head, one event is rendered once however many subscribers receive it; a
 * subscriber that is never filled (a socket that does not drain) costs no memory that grows
 * with its backlog, does not slow the others, and later catches up exactly.
 */
#include "replay_test.h"

#include <malloc.h>

/* ASan's allocator counter (weak: absent without ASan, where mallinfo2 works). */
extern size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

/* Bytes allocated on the heap now. */
static size_t heap_bytes(void)
{
    if (__sanitizer_get_current_allocated_bytes)
        return __sanitizer_get_current_allocated_bytes();
    return mallinfo2().uordblks;
}

static unsigned woken;
static void wake_cb(void *ctx, rtlog_replay_sub *sub, void *user)
{
    (void)ctx;
    (void)sub;
    (void)user;
    woken++;
}

static size_t fill_all(rtlog_replay_sub *s, rtlog_replay_fmt fmt, uint64_t *next)
{
    size_t total = 0;
    for (;;) {
        rtlog_buf out = {0};
        rtlog_replay_state st;
        size_t nf = 0;
        assert_int_equal(rtlog_replay_fill(s, &out, 16384, fmt == RTLOG_REPLAY_WS ? 1 : 0, &st,
                                           &nf, NULL),
                         RTLOG_OK);
        assert_int_equal(rtlog_buf_nul(&out), RTLOG_OK);
        frame_out fr[256];
        size_t n = 0;
        if (fmt == RTLOG_REPLAY_SSE && out.len)
            n = parse_sse(out.p, out.len, fr, 256);
        else if (out.len) {
            fr[0] = parse_ws(out.p, out.len);
            n = 1;
        }
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(fr[i].seq, *next);
            (*next)++;
        }
        total += n;
        rtlog_buf_free(&out);
        if (st != RTLOG_REPLAY_MORE)
            return total;
    }
}

#define NSUB 40

static void test_rendered_once_at_head(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    const char *S = "workflow-runs/fan";
    tappend_logs(t, S, 5, 1, 0);
    rtlog_replay *e;
    rtlog_replay_opts o = {.store = t->st, .wake = wake_cb};
    assert_int_equal(rtlog_replay_new(&o, &e), RTLOG_OK);
    rtlog_replay_sub *subs[NSUB];
    uint64_t next[NSUB];
    for (int i = 0; i < NSUB; i++) {
        rtlog_replay_req q = {.stream = S, .has_cursor = 1, .cursor = 5, .follow = 1,
                              .fmt = i % 2 ? RTLOG_REPLAY_WS : RTLOG_REPLAY_SSE};
        assert_int_equal(rtlog_replay_open(e, &q, &subs[i], NULL), RTLOG_OK);
        next[i] = 6;
        assert_int_equal(fill_all(subs[i], q.fmt, &next[i]), 0); /* at the head: IDLE */
    }
    rtlog_replay_stats before, after;
    rtlog_replay_get_stats(e, &before);
    const unsigned EVENTS = 50;
    for (unsigned k = 0; k < EVENTS; k++) {
        tappend_logs(t, S, 1, 1, 5 + k);
        woken = 0;
        tenv_deliver(t, e, 0);
        assert_int_equal(woken, NSUB); /* every waiting subscriber, once */
        for (int i = 0; i < NSUB; i++)
            assert_int_equal(fill_all(subs[i], i % 2 ? RTLOG_REPLAY_WS : RTLOG_REPLAY_SSE,
                                      &next[i]),
                             1);
    }
    rtlog_replay_get_stats(e, &after);
    /* one render per event, not per subscriber */
    assert_int_equal(after.frames_rendered - before.frames_rendered, EVENTS);
    assert_int_equal(after.frames_delivered - before.frames_delivered, (uint64_t)EVENTS * NSUB);
    assert_true(after.ring_hits - before.ring_hits >= (uint64_t)EVENTS * (NSUB - 1));
    /* no wake for subscribers that already have the event (none are IDLE with work) */
    woken = 0;
    tenv_deliver(t, e, 0);
    rtlog_replay_notify(e, S, 5 + EVENTS, 0); /* a stale duplicate note */
    assert_int_equal(woken, 0);
    for (int i = 0; i < NSUB; i++)
        rtlog_replay_close(subs[i]);
    rtlog_replay_free(e);
    tenv_close(t);
}

static void test_slow_subscriber_bounded(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    const char *S = "workflow-runs/slow";
    tappend(t, S, "[]");
    rtlog_replay *e;
    const size_t RING = 64, RING_BYTES = 32 << 10;
    rtlog_replay_opts o = {.store = t->st, .wake = wake_cb, .ring_frames = RING,
                           .ring_bytes = RING_BYTES};
    assert_int_equal(rtlog_replay_new(&o, &e), RTLOG_OK);
    rtlog_replay_sub *slow, *fast;
    rtlog_replay_req q = {.stream = S, .has_cursor = 1, .cursor = 0, .follow = 1,
                          .fmt = RTLOG_REPLAY_WS};
    assert_int_equal(rtlog_replay_open(e, &q, &slow, NULL), RTLOG_OK);
    q.fmt = RTLOG_REPLAY_SSE;
    assert_int_equal(rtlog_replay_open(e, &q, &fast, NULL), RTLOG_OK);
    uint64_t next_fast = 1, next_slow = 1;
    /* the slow one reads one frame, then never again (a full TCP window) */
    rtlog_buf one = {0};
    rtlog_replay_state st;
    assert_int_equal(rtlog_replay_fill(slow, &one, 0, 1, &st, NULL, NULL), RTLOG_OK);
    assert_int_equal(one.len, 0); /* empty stream yet */
    rtlog_buf_free(&one);

    size_t heap_mid = 0;
    const unsigned BATCHES = 100, PER = 40;
    for (unsigned b = 0; b < BATCHES; b++) {
        tappend_logs(t, S, PER, 4, b * PER);
        tenv_deliver(t, e, 0);
        assert_int_equal(fill_all(fast, RTLOG_REPLAY_SSE, &next_fast), PER);
        rtlog_replay_stats s;
        rtlog_replay_get_stats(e, &s);
        assert_true(s.ring_frames <= RING);
        assert_true(s.ring_bytes <= RING_BYTES);
        if (b == BATCHES / 2)
            heap_mid = heap_bytes();
    }
    assert_int_equal(next_fast, BATCHES * PER + 1);
    /* the engine's heap does not grow with the slow subscriber's backlog (2000 more events
     * between the two samples; allow slack for allocator noise, far below 2000 frames) */
    size_t heap_end = heap_bytes();
    assert_true(heap_mid > 0);
    assert_true(heap_end < heap_mid + 64 * 1024);
    assert_int_equal(rtlog_replay_cursor(slow), 0);

    /* the slow subscriber now drains and gets every event exactly once, in order */
    assert_int_equal(fill_all(slow, RTLOG_REPLAY_WS, &next_slow), BATCHES * PER);
    assert_int_equal(rtlog_replay_cursor(slow), BATCHES * PER);
    rtlog_replay_close(slow);
    rtlog_replay_close(fast);
    rtlog_replay_free(e);
    tenv_close(t);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rendered_once_at_head),
        cmocka_unit_test(test_slow_subscriber_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
