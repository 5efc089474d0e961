/* test_catchup_live.c - DESIGN.md invariant 2: a subscriber sees each event after its
 * cursor exactly once, in order, whatever the interleaving of appends, commit notes and
 * fills (catch-up and live are the same loop, so there is no hand-over to get wrong).
 *
 * Randomised but seeded and bounded: each round runs a fixed number of random steps over
 * several subscribers (SSE and WS, random cursors, random fill limits, some never filled
 * for long stretches) while batches are appended and the commit notes are delivered late,
 * in random amounts, as the server's queue would. Every frame is parsed and checked
 * against the subscriber's expected next seq; at the end every subscriber must have
 * reached the head. A failing seed is printed so it can be replayed.
 */
#include "replay_test.h"

#define NSUBS  8
#define STEPS  1500
#define ROUNDS 6

static uint64_t rng_state;

static uint32_t rnd(void)
{
    /* xorshift64*: deterministic across platforms */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

struct tsub {
    rtlog_replay_sub *s;
    rtlog_replay_fmt fmt;
    uint64_t next;     /* next seq expected */
    int woken;         /* wake callback seen since the last fill */
    int idle;          /* last fill said IDLE */
    uint64_t delivered;
};

static void wake_cb(void *ctx, rtlog_replay_sub *sub, void *user)
{
    (void)ctx;
    struct tsub *ts = user;
    assert_ptr_equal(ts->s, sub);
    ts->woken++;
}

static void fill_one(struct tsub *ts, uint32_t seed_bits)
{
    rtlog_buf out = {0};
    size_t max_frames = ts->fmt == RTLOG_REPLAY_WS ? 1 : (seed_bits % 4 == 0 ? 0 : 1 + seed_bits % 7);
    size_t max_bytes = (seed_bits >> 3) % 3 == 0 ? 0 : 200 + (seed_bits >> 5) % 3000;
    rtlog_replay_state st;
    size_t nf = 0;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_replay_fill(ts->s, &out, max_bytes, max_frames, &st, &nf, &ei),
                     RTLOG_OK);
    if (max_frames)
        assert_true(nf <= max_frames);
    assert_int_equal(rtlog_buf_nul(&out), RTLOG_OK);
    frame_out fr[64];
    size_t n;
    if (ts->fmt == RTLOG_REPLAY_SSE) {
        n = out.len ? parse_sse(out.p, out.len, fr, 64) : 0;
    } else {
        n = out.len ? 1 : 0;
        if (n)
            fr[0] = parse_ws(out.p, out.len);
    }
    assert_int_equal(n, nf);
    for (size_t i = 0; i < n; i++) {
        if (fr[i].seq != ts->next)
            fail_msg("expected seq %" PRIu64 ", got %" PRIu64, ts->next, fr[i].seq);
        ts->next++;
        ts->delivered++;
    }
    ts->idle = st == RTLOG_REPLAY_IDLE;
    ts->woken = 0;
    assert_true(st != RTLOG_REPLAY_END); /* follow=1, never sealed here */
    rtlog_buf_free(&out);
}

static void one_round(uint64_t seed)
{
    rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
    tenv *t = tenv_open();
    const char *stream = "workflow-runs/rand";
    tappend(t, stream, "[]"); /* create */
    uint64_t head = 0;
    unsigned made = 0;

    rtlog_replay *e;
    /* small ring and chunks so every path (ring hit, miss, eviction, chunk edges) runs */
    rtlog_replay_opts o = {.store = t->st, .wake = wake_cb, .ring_frames = 16,
                           .ring_bytes = 4096, .chunk_events = 5, .chunk_bytes = 900};
    assert_int_equal(rtlog_replay_new(&o, &e), RTLOG_OK);

    struct tsub subs[NSUBS];
    memset(subs, 0, sizeof subs);
    int opened = 0;

    for (int step = 0; step < STEPS; step++) {
        uint32_t r = rnd();
        switch (r % 10) {
        case 0:
        case 1: { /* append a batch of 1..20 */
            unsigned k = 1 + (r >> 8) % 20;
            rtlog_append_res res = tappend_logs(t, stream, k, 3, made);
            made += k;
            assert_int_equal(res.first_seq, head + 1);
            head = res.last_seq;
            break;
        }
        case 2: /* deliver some notes (late, partial) */
            tenv_deliver(t, e, 1 + (r >> 8) % 3);
            break;
        case 3: { /* open a subscriber (up to NSUBS) with a random cursor */
            if (opened >= NSUBS)
                break;
            struct tsub *ts = &subs[opened];
            ts->fmt = (r >> 8) & 1 ? RTLOG_REPLAY_SSE : RTLOG_REPLAY_WS;
            rtlog_replay_req q = {.stream = stream, .follow = 1, .fmt = ts->fmt, .user = ts};
            if ((r >> 9) % 3) {
                q.has_cursor = 1;
                q.cursor = head ? (r >> 12) % (head + 1) : 0;
            }
            rtlog_errinfo ei = {0};
            assert_int_equal(rtlog_replay_open(e, &q, &ts->s, &ei), RTLOG_OK);
            ts->next = q.has_cursor ? q.cursor + 1 : 1;
            opened++;
            break;
        }
        default: { /* fill a random subscriber (some get starved for long stretches) */
            if (!opened)
                break;
            unsigned i = (r >> 8) % (unsigned)opened;
            if (i == 0 && (r >> 16) % 8) /* subscriber 0 is slow: rarely filled */
                break;
            fill_one(&subs[i], rnd());
            break;
        }
        }
    }
    /* Everything committed must now reach everyone: deliver all notes, fill until IDLE. */
    tenv_deliver(t, e, 0);
    for (int i = 0; i < opened; i++) {
        int guard = 0;
        do {
            fill_one(&subs[i], rnd());
            assert_true(++guard < 100000);
        } while (!subs[i].idle);
        if (subs[i].next != head + 1)
            fail_msg("seed %" PRIu64 ": sub %d ended at %" PRIu64 ", head %" PRIu64, seed, i,
                     subs[i].next - 1, head);
        assert_int_equal(rtlog_replay_cursor(subs[i].s), head);
    }
    /* One more live event: every IDLE subscriber is woken exactly once and gets it. */
    tappend_logs(t, stream, 1, 3, made);
    head++;
    tenv_deliver(t, e, 0);
    for (int i = 0; i < opened; i++) {
        assert_int_equal(subs[i].woken, 1);
        fill_one(&subs[i], 0);
        assert_int_equal(subs[i].next, head + 1);
    }
    rtlog_replay_stats stats;
    rtlog_replay_get_stats(e, &stats);
    assert_int_equal(stats.subscribers, (uint64_t)opened);
    assert_true(stats.ring_frames <= 16);
    for (int i = 0; i < opened; i++)
        rtlog_replay_close(subs[i].s);
    rtlog_replay_get_stats(e, &stats);
    assert_int_equal(stats.subscribers, 0);
    assert_int_equal(stats.streams, 0);
    assert_int_equal(stats.ring_frames, 0);
    rtlog_replay_free(e);
    tenv_close(t);
}

static void test_random_interleavings(void **state)
{
    (void)state;
    const char *env = getenv("RTLOG_REPLAY_SEED");
    if (env) {
        one_round(strtoull(env, NULL, 10));
        return;
    }
    for (uint64_t seed = 1; seed <= ROUNDS; seed++)
        one_round(seed);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_interleavings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
