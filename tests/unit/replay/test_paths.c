/* test_paths.c - the two ways an event reaches a subscriber give the same bytes.
 *
 * An event near the head is rendered once into a ring frame (complete SSE frame, the JSON
 * inside it) and copied to every subscriber; an event far behind the head is rendered
 * straight into the subscriber's buffer. This test stores events with everything the
 * renderer escapes (quotes, backslashes, controls, CR, ANSI, UTF-8, a line longer than
 * the renderer's 4 KiB chunk, one longer than 65,535 bytes) and checks that both paths, in
 * SSE, WS and WS_FRAMED (each message behind its RFC 6455 header), with and without
 * filters and byte budgets, produce exactly the reference bytes: for every stored event
 * "id: N\nevent: TYPE\ndata: " + rtlog_schema_render(record, N, REDACT) + "\n\n", built
 * here with printf from the store's own read API.
 */
#include "replay_test.h"

#define S      "workflow-runs/paths-0001"
#define EVENTS 301u /* 300 + the sealing workflow_completed */

struct ref {
    rtlog_buf sse, ws; /* expected SSE stream; expected WS messages separated by '\x1e' */
    rtlog_buf wsf;     /* expected WS_FRAMED bytes: header + message, back to back */
    const char *node;  /* NULL or the nodeId to keep */
    const char *type;  /* NULL or the type to keep */
};

static int ref_cb(void *ctx, const rtlog_event_view *ev)
{
    struct ref *r = ctx;
    const char *type, *node = NULL;
    size_t tl, nl = 0;
    assert_int_equal(rtlog_schema_rec_type(ev->mp, ev->mp_len, &type, &tl), RTLOG_OK);
    if (rtlog_schema_rec_field_str(ev->mp, ev->mp_len, "nodeId", &node, &nl) != RTLOG_OK)
        node = NULL;
    if (r->node && (!node || nl != strlen(r->node) || memcmp(node, r->node, nl) != 0))
        return 0;
    if (r->type && (tl != strlen(r->type) || memcmp(type, r->type, tl) != 0))
        return 0;
    rtlog_buf json = {0};
    assert_int_equal(rtlog_schema_render(ev->mp, ev->mp_len, ev->seq, RTLOG_JSON_REDACT, &json),
                     RTLOG_OK);
    assert_int_equal(rtlog_buf_printf(&r->sse, "id: %" PRIu64 "\nevent: %.*s\ndata: %.*s\n\n",
                                      ev->seq, (int)tl, type, (int)json.len, json.p),
                     RTLOG_OK);
    assert_int_equal(rtlog_buf_append(&r->ws, json.p, json.len), RTLOG_OK);
    assert_int_equal(rtlog_buf_append(&r->ws, "\x1e", 1), RTLOG_OK);
    /* RFC 6455 5.2, written out here: FIN|text, then a 7-bit, 16-bit or 64-bit length */
    unsigned char h[10] = {0x81};
    size_t hl = 2;
    if (json.len < 126) {
        h[1] = (unsigned char)json.len;
    } else if (json.len <= 0xffff) {
        h[1] = 126;
        h[2] = (unsigned char)(json.len / 256);
        h[3] = (unsigned char)(json.len % 256);
        hl = 4;
    } else {
        h[1] = 127;
        for (size_t i = 0, v = json.len; i < 8; i++, v /= 256)
            h[9 - i] = (unsigned char)(v % 256);
        hl = 10;
    }
    assert_int_equal(rtlog_buf_append(&r->wsf, h, hl), RTLOG_OK);
    assert_int_equal(rtlog_buf_append(&r->wsf, json.p, json.len), RTLOG_OK);
    rtlog_buf_free(&json);
    return 0;
}

static void ref_build(tenv *t, struct ref *r)
{
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_read(t->st, S, 1, 0, 0, ref_cb, r, NULL, &ei), RTLOG_OK);
    assert_true(r->sse.len > 0);
}

/* Store EVENTS events of several types, nodes and string shapes. */
static void fill_store(tenv *t)
{
    rtlog_buf body = {0}, big = {0}, huge = {0};
    for (unsigned i = 0; i < 2500; i++) /* 10,000 bytes: escapes across 4 KiB chunks */
        rtlog_buf_puts(&big, i % 97 == 0 ? "\\\"q\\\\" : i % 89 == 0 ? "\\u0001" : "ab c");
    rtlog_buf_nul(&big);
    for (unsigned i = 0; i < 7000; i++) /* 70,000 bytes: a WS frame with a 64-bit length */
        rtlog_buf_puts(&huge, "0123456789");
    rtlog_buf_nul(&huge);
    for (unsigned i = 1; i < EVENTS; i++) {
        rtlog_buf_clear(&body);
        switch (i % 5) {
        case 0:
            rtlog_buf_printf(&body, "{\"type\":\"step_progress\",\"nodeId\":\"n%u\","
                                    "\"progress\":%u}", i % 3, i % 100);
            break;
        case 1:
            rtlog_buf_printf(&body, "{\"type\":\"step_log\",\"nodeId\":\"n%u\",\"line\":"
                                    "\"a\\r\\nb \\u001b[31mred\\u001b[0m κόσμε \\\"%u\\\" "
                                    "tab\\there\",\"level\":\"info\"}", i % 3, i);
            break;
        case 2:
            rtlog_buf_printf(&body, "{\"type\":\"step_log\",\"nodeId\":\"n%u\",\"line\":\"%s\","
                                    "\"level\":\"warn\"}", i % 3,
                             i == 152 ? huge.p : i % 10 == 2 ? big.p : "x");
            break;
        case 3:
            rtlog_buf_printf(&body, "{\"type\":\"step_started\",\"nodeId\":\"n%u\","
                                    "\"stepType\":\"docker\"}", i % 3);
            break;
        default:
            rtlog_buf_printf(&body, "{\"type\":\"step_log\",\"nodeId\":\"n\\u0000%u\",\"line\":"
                                    "\"del \\u007f\\\\ %u\",\"level\":\"debug\"}", i % 3, i);
            break;
        }
        rtlog_buf_nul(&body);
        tappend(t, S, body.p);
    }
    /* the last one seals the stream and has no nodeId */
    tappend(t, S, "{\"type\":\"workflow_completed\",\"status\":\"succeeded\",\"duration\":1.5}");
    rtlog_buf_free(&body);
    rtlog_buf_free(&big);
    rtlog_buf_free(&huge);
}

/* Drain one subscriber to END, concatenating what it produced (WS messages separated by
 * '\x1e', as the reference is). */
static void drain_all(rtlog_replay *e, rtlog_replay_fmt fmt, const char *node, const char *types,
                      size_t max_bytes, rtlog_buf *got)
{
    rtlog_replay_req q = {.stream = S, .follow = 0, .fmt = fmt, .node_id = node, .types = types};
    rtlog_replay_sub *s = NULL;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_replay_open(e, &q, &s, &ei), RTLOG_OK);
    rtlog_replay_state st = RTLOG_REPLAY_MORE;
    for (int i = 0; i < 10000 && st == RTLOG_REPLAY_MORE; i++) {
        rtlog_buf out = {0};
        size_t nf = 0;
        assert_int_equal(rtlog_replay_fill(s, &out, max_bytes, fmt == RTLOG_REPLAY_WS ? 1 : 0,
                                           &st, &nf, &ei),
                         RTLOG_OK);
        if (max_bytes && nf > 1)
            assert_true(out.len <= max_bytes); /* budget holds unless one frame is bigger */
        if (out.len) {
            assert_int_equal(rtlog_buf_append(got, out.p, out.len), RTLOG_OK);
            if (fmt == RTLOG_REPLAY_WS)
                assert_int_equal(rtlog_buf_append(got, "\x1e", 1), RTLOG_OK);
        }
        rtlog_buf_free(&out);
    }
    assert_int_equal(st, RTLOG_REPLAY_END);
    rtlog_replay_close(s);
}

static void check_same(const rtlog_buf *got, const rtlog_buf *want)
{
    assert_int_equal(got->len, want->len);
    assert_memory_equal(got->p, want->p, want->len);
}

/* @ring_frames small: most events take the direct path; large: every one the ring path. */
static void run_all(tenv *t, size_t ring_frames)
{
    struct {
        const char *node, *types;
    } filters[] = {{NULL, NULL}, {"n1", NULL}, {NULL, "step_started"}};
    size_t budgets[] = {0, 700, 16384};
    for (size_t fi = 0; fi < sizeof filters / sizeof filters[0]; fi++) {
        struct ref r = {.node = filters[fi].node, .type = filters[fi].types};
        ref_build(t, &r);
        for (size_t bi = 0; bi < sizeof budgets / sizeof budgets[0]; bi++) {
            for (int fmt = RTLOG_REPLAY_SSE; fmt <= RTLOG_REPLAY_WS_FRAMED; fmt++) {
                rtlog_replay *e;
                rtlog_replay_opts o = {.store = t->st, .ring_frames = ring_frames,
                                       .chunk_events = 37};
                assert_int_equal(rtlog_replay_new(&o, &e), RTLOG_OK);
                rtlog_buf got = {0};
                drain_all(e, (rtlog_replay_fmt)fmt, filters[fi].node, filters[fi].types,
                          budgets[bi], &got);
                check_same(&got, fmt == RTLOG_REPLAY_SSE  ? &r.sse
                                  : fmt == RTLOG_REPLAY_WS ? &r.ws
                                                           : &r.wsf);
                rtlog_replay_stats stats;
                rtlog_replay_get_stats(e, &stats);
                /* every event was rendered at least once, whichever path it took */
                assert_true(stats.frames_rendered >= EVENTS);
                rtlog_buf_free(&got);
                rtlog_replay_free(e);
            }
        }
        rtlog_buf_free(&r.sse);
        rtlog_buf_free(&r.ws);
        rtlog_buf_free(&r.wsf);
    }
}

static void test_direct_path(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    fill_store(t);
    run_all(t, 8); /* the last 8 events go through the ring, the rest are rendered direct */
    tenv_close(t);
}

static void test_ring_path(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    fill_store(t);
    run_all(t, 4 * EVENTS);
    tenv_close(t);
}

/* Subscribers sharing one engine: a far-behind one (direct) and one at the head (ring)
 * interleaved, so frames rendered for the ring are also handed to the one catching up. */
static void test_mixed(void **state)
{
    (void)state;
    tenv *t = tenv_open();
    fill_store(t);
    struct ref r = {0};
    ref_build(t, &r);
    rtlog_replay *e;
    rtlog_replay_opts o = {.store = t->st, .ring_frames = 64, .chunk_events = 16};
    assert_int_equal(rtlog_replay_new(&o, &e), RTLOG_OK);
    rtlog_replay_sub *a = NULL, *b = NULL;
    rtlog_replay_req qa = {.stream = S, .follow = 0, .fmt = RTLOG_REPLAY_SSE};
    rtlog_replay_req qb = {.stream = S, .follow = 0, .fmt = RTLOG_REPLAY_SSE,
                           .has_cursor = 1, .cursor = EVENTS - 40};
    assert_int_equal(rtlog_replay_open(e, &qa, &a, NULL), RTLOG_OK);
    assert_int_equal(rtlog_replay_open(e, &qb, &b, NULL), RTLOG_OK);
    rtlog_buf ga = {0}, gb = {0};
    rtlog_replay_state sa = RTLOG_REPLAY_MORE, sb = RTLOG_REPLAY_MORE;
    for (int i = 0; i < 10000 && (sa == RTLOG_REPLAY_MORE || sb == RTLOG_REPLAY_MORE); i++) {
        if (sb == RTLOG_REPLAY_MORE)
            assert_int_equal(rtlog_replay_fill(b, &gb, 0, 3, &sb, NULL, NULL), RTLOG_OK);
        if (sa == RTLOG_REPLAY_MORE)
            assert_int_equal(rtlog_replay_fill(a, &ga, 0, 5, &sa, NULL, NULL), RTLOG_OK);
    }
    assert_int_equal(sa, RTLOG_REPLAY_END);
    assert_int_equal(sb, RTLOG_REPLAY_END);
    check_same(&ga, &r.sse);
    /* b's cursor was EVENTS - 40: its bytes are the reference's tail from the next id */
    rtlog_buf_nul(&r.sse);
    char first[32];
    snprintf(first, sizeof first, "id: %u\n", EVENTS - 39);
    const char *tail = strstr(r.sse.p, first);
    assert_non_null(tail);
    assert_int_equal(gb.len, r.sse.len - (size_t)(tail - r.sse.p));
    assert_memory_equal(gb.p, tail, gb.len);
    rtlog_replay_stats stats;
    rtlog_replay_get_stats(e, &stats);
    assert_true(stats.ring_hits > 0); /* the ring path was really taken */
    rtlog_replay_close(a);
    rtlog_replay_close(b);
    rtlog_buf_free(&ga);
    rtlog_buf_free(&gb);
    rtlog_buf_free(&r.sse);
    rtlog_buf_free(&r.ws);
    rtlog_buf_free(&r.wsf);
    rtlog_replay_free(e);
    tenv_close(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direct_path),
        cmocka_unit_test(test_ring_path),
        cmocka_unit_test(test_mixed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
