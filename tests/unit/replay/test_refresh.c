/* test_refresh.c - commits whose notes never arrive (another process appending to the
 * same store, e.g. `rtlog import` beside `rtlog serve`): rtlog_store_generation() moves
 * with every commit and stays put without one; rtlog_replay_refresh() then re-reads the
 * heads of the followed streams, wakes exactly the idle subscribers that have work, which
 * get the new events once, in order, up to and including a seal (then END).
 * Source: README "Known limits" (appends by other processes), rtlog_replay.h.
 */
#include "replay_test.h"

struct woken {
    void *user[8];
    size_t n;
};

static void wake_cb(void *ctx, rtlog_replay_sub *sub, void *user)
{
    struct woken *w = ctx;
    (void)sub;
    assert_true(w->n < 8);
    w->user[w->n++] = user;
}

/* Fill @s (WS format, one frame a call) until IDLE or END; returns the seqs delivered. */
static size_t drain(rtlog_replay_sub *s, uint64_t *seqs, size_t cap, rtlog_replay_state *last)
{
    size_t n = 0;
    for (int i = 0; i < 100; i++) {
        rtlog_buf out = {0};
        rtlog_errinfo ei = {0};
        size_t nf = 0;
        assert_int_equal(rtlog_replay_fill(s, &out, 0, 1, last, &nf, &ei), RTLOG_OK);
        assert_int_equal(rtlog_buf_nul(&out), RTLOG_OK); /* parse_ws uses strstr */
        if (out.len) {
            frame_out f = parse_ws(out.p, out.len);
            assert_true(n < cap);
            seqs[n++] = f.seq;
        }
        rtlog_buf_free(&out);
        if (*last != RTLOG_REPLAY_MORE)
            break;
    }
    return n;
}

static void test_generation_and_refresh(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    const char *A = "workflow-runs/followed", *B = "workflow-runs/quiet";
    tappend_logs(t, A, 3, 1, 0);
    tappend_logs(t, B, 2, 1, 0);
    tenv_deliver(t, NULL, 0); /* opening describes the store: no notes needed */

    struct woken w = {0};
    rtlog_replay *e;
    rtlog_replay_opts o = {.store = t->st, .wake = wake_cb, .wake_ctx = &w};
    assert_int_equal(rtlog_replay_new(&o, &e), RTLOG_OK);
    int ua, ub;
    rtlog_replay_sub *sa, *sb;
    rtlog_errinfo ei = {0};
    rtlog_replay_req qa = {.stream = A, .follow = 1, .fmt = RTLOG_REPLAY_WS, .user = &ua};
    rtlog_replay_req qb = {.stream = B, .follow = 1, .fmt = RTLOG_REPLAY_WS, .user = &ub};
    assert_int_equal(rtlog_replay_open(e, &qa, &sa, &ei), RTLOG_OK);
    assert_int_equal(rtlog_replay_open(e, &qb, &sb, &ei), RTLOG_OK);
    uint64_t seqs[16];
    rtlog_replay_state st;
    assert_int_equal(drain(sa, seqs, 16, &st), 3);
    assert_int_equal(st, RTLOG_REPLAY_IDLE);
    assert_int_equal(drain(sb, seqs, 16, &st), 2);
    assert_int_equal(st, RTLOG_REPLAY_IDLE);

    /* No commit, no movement; reading it opens no txn and changes nothing. */
    uint64_t g0 = rtlog_store_generation(t->st);
    assert_true(g0 > 0);
    assert_int_equal(rtlog_store_generation(t->st), g0);

    /* A commit whose note is lost: the engine cannot know, the generation does. */
    tappend_logs(t, A, 2, 1, 3);
    tenv_deliver(t, NULL, 0);
    uint64_t g1 = rtlog_store_generation(t->st);
    assert_true(g1 > g0);
    assert_int_equal(drain(sa, seqs, 16, &st), 0);
    assert_int_equal(st, RTLOG_REPLAY_IDLE);

    /* The refresh wakes the subscriber of A only, which then gets 4 and 5 exactly once. */
    assert_int_equal(rtlog_replay_refresh(e, &ei), RTLOG_OK);
    assert_int_equal(w.n, 1);
    assert_ptr_equal(w.user[0], &ua);
    assert_int_equal(drain(sa, seqs, 16, &st), 2);
    assert_int_equal(seqs[0], 4);
    assert_int_equal(seqs[1], 5);
    assert_int_equal(st, RTLOG_REPLAY_IDLE);
    assert_int_equal(drain(sb, seqs, 16, &st), 0);

    /* Refreshing again with nothing new wakes nobody and delivers nothing. */
    w.n = 0;
    assert_int_equal(rtlog_replay_refresh(e, &ei), RTLOG_OK);
    assert_int_equal(w.n, 0);
    assert_int_equal(drain(sa, seqs, 16, &st), 0);
    assert_int_equal(rtlog_store_generation(t->st), g1);

    /* A seal committed unseen: after the refresh the subscriber gets it and ends. */
    tappend(t, A,
            "{\"type\":\"workflow_completed\",\"status\":\"succeeded\",\"duration\":1.5,"
            "\"outputs\":{},\"timestamp\":\"2026-01-10T14:25:50Z\"}");
    tenv_deliver(t, NULL, 0);
    assert_true(rtlog_store_generation(t->st) > g1);
    assert_int_equal(rtlog_replay_refresh(e, &ei), RTLOG_OK);
    assert_int_equal(w.n, 1);
    assert_int_equal(drain(sa, seqs, 16, &st), 1);
    assert_int_equal(seqs[0], 6);
    assert_int_equal(st, RTLOG_REPLAY_END);

    /* One head read per followed stream per refresh. */
    rtlog_replay_stats rs;
    rtlog_replay_get_stats(e, &rs);
    assert_int_equal(rs.refreshes, 3);
    assert_int_equal(rs.refresh_reads, 6);

    rtlog_replay_close(sa);
    rtlog_replay_close(sb);
    /* Nothing followed: a refresh reads nothing. */
    assert_int_equal(rtlog_replay_refresh(e, &ei), RTLOG_OK);
    rtlog_replay_get_stats(e, &rs);
    assert_int_equal(rs.refresh_reads, 6);
    rtlog_replay_free(e);
    tenv_close(t);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generation_and_refresh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
