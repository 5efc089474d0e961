/* test_render_robust.c - the renderer and the record lookups read bytes back from disk, so
 * no input may crash them or make them read past the end: every proper prefix of a valid
 * record, random bytes, random mutations of a valid record and hand-made hostile records
 * give RTLOG_E_CORRUPT (or, for mutations that stay well-formed, OK), and a failed render
 * leaves the output buffer as it was. Run under ASan this also proves "no over-read": each
 * input is copied into an exactly-sized heap block first. */
#include "schema_test.h"

/* A record that uses every kind of value the parser can produce. */
static const char *rich =
    "{\"type\":\"step_completed\",\"nodeId\":\"node\",\"status\":\"succeeded\","
    "\"outputs\":{\"i\":[0,127,128,255,256,65535,65536,4294967296,-1,-32,-33,-128,-129,"
    "-32768,-32769,-2147483648,-2147483649,9223372036854775807],\"r\":[5.2,-0.0,1e300],"
    "\"s\":\"\\u0000\\u001b\\r\\n\\\"\\\\\",\"b\":[true,false,null],\"e\":{},\"a\":[[[]]],"
    "\"long\":\"0123456789012345678901234567890123456789\"},\"duration\":5.2}";

/* Render @len bytes copied into a block of exactly that size; returns the result. The output
 * buffer starts with "abc" and must still hold exactly that after a failure. */
static rtlog_err render_exact(const uint8_t *bytes, size_t len, uint32_t flags)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (len)
        memcpy(copy, bytes, len);
    rtlog_buf out = {0};
    assert_int_equal(rtlog_buf_puts(&out, "abc"), RTLOG_OK);
    rtlog_err rc = rtlog_schema_render(copy, len, 5, flags, &out);
    if (rc) {
        assert_int_equal(out.len, 3);
        assert_memory_equal(out.p, "abc", 3);
    } else {
        assert_true(out.len > 3);
    }
    /* the lookups must survive the same bytes */
    const char *v;
    size_t vl;
    rtlog_err t = rtlog_schema_rec_type(copy, len, &v, &vl);
    assert_true(t == RTLOG_OK || t == RTLOG_E_CORRUPT);
    if (t == RTLOG_OK)
        assert_true(v >= (const char *)copy && v + vl <= (const char *)copy + len);
    t = rtlog_schema_rec_field_str(copy, len, "nodeId", &v, &vl);
    assert_true(t == RTLOG_OK || t == RTLOG_E_CORRUPT || t == RTLOG_E_NOTFOUND);
    if (t == RTLOG_OK)
        assert_true(v >= (const char *)copy && v + vl <= (const char *)copy + len);
    rtlog_buf_free(&out);
    free(copy);
    return rc;
}

static void every_prefix(void **state)
{
    (void)state;
    rtlog_batch b = {0};
    parse_ok(RTLOG_FAM_RUN, 0, rich, &b);
    const rtlog_rec *r = &b.recs[0];
    assert_int_equal(render_exact(r->mp, r->mp_len, 0), RTLOG_OK);
    for (size_t n = 0; n < r->mp_len; n++) {
        if (render_exact(r->mp, n, 0) != RTLOG_E_CORRUPT)
            fail_msg("prefix of %zu/%zu bytes not refused", n, r->mp_len);
        assert_int_equal(render_exact(r->mp, n, RTLOG_JSON_REDACT), RTLOG_E_CORRUPT);
    }
    /* one trailing byte too many */
    uint8_t *more = malloc(r->mp_len + 1);
    memcpy(more, r->mp, r->mp_len);
    more[r->mp_len] = 0xc0;
    assert_int_equal(render_exact(more, r->mp_len + 1, 0), RTLOG_E_CORRUPT);
    free(more);
    rtlog_batch_free(&b);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void random_bytes(void **state)
{
    (void)state;
    uint8_t buf[96];
    size_t ok = 0;
    for (int iter = 0; iter < 200000; iter++) {
        size_t n = next_rand() % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)next_rand();
        /* half the time, start with a small map header so decoding gets further */
        if (n && (iter & 1))
            buf[0] = (uint8_t)(0x81 + next_rand() % 3);
        if (render_exact(buf, n, iter & 2 ? RTLOG_JSON_REDACT : 0) == RTLOG_OK)
            ok++;
    }
    printf("random: %zu of 200000 inputs rendered\n", ok);
}

static void mutations(void **state)
{
    (void)state;
    const char *src[] = {
        rich,
        "{\"type\":\"task_assigned\",\"task\":{\"taskId\":\"t\",\"taskType\":\"x\","
        "\"credentials\":{\"u\":\"p\"},\"timeout\":300},\"jobId\":\"j\"}",
    };
    for (size_t s = 0; s < 2; s++) {
        rtlog_batch b = {0};
        parse_ok(s == 0 ? RTLOG_FAM_RUN : RTLOG_FAM_AGENT_TASK, 0, src[s], &b);
        const rtlog_rec *r = &b.recs[0];
        uint8_t *m = malloc(r->mp_len);
        for (int iter = 0; iter < 50000; iter++) {
            memcpy(m, r->mp, r->mp_len);
            int flips = 1 + (int)(next_rand() % 4);
            for (int f = 0; f < flips; f++)
                m[next_rand() % r->mp_len] = (uint8_t)next_rand();
            render_exact(m, r->mp_len, RTLOG_JSON_REDACT);
            render_exact(m, r->mp_len, 0);
        }
        free(m);
        rtlog_batch_free(&b);
    }
}

#define BYTES(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static void hostile(void **state)
{
    (void)state;
    /* {"type": <x>} with x of each kind the parser never writes */
    assert_int_equal(render_exact(BYTES(0x81, 0xa4, 't', 'y', 'p', 'e', 0xc4, 1, 'x'), 0),
                     RTLOG_E_CORRUPT); /* bin8 */
    assert_int_equal(render_exact(BYTES(0x81, 0xa1, 'a', 0xd4, 1, 2), 0),
                     RTLOG_E_CORRUPT); /* fixext1 */
    assert_int_equal(render_exact(BYTES(0x81, 0xa1, 'a', 0xc7, 1, 1, 2), 0),
                     RTLOG_E_CORRUPT); /* ext8 */
    assert_int_equal(render_exact(BYTES(0x81, 0xa1, 'a', 0xca, 0x40, 0, 0, 0), 0),
                     RTLOG_E_CORRUPT); /* float32 */
    assert_int_equal(render_exact(BYTES(0x81, 0xa1, 'a', 0xc1), 0), RTLOG_E_CORRUPT);
    /* uint64 above INT64_MAX */
    assert_int_equal(render_exact(BYTES(0x81, 0xa1, 'a', 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0), 0),
                     RTLOG_E_CORRUPT);
    assert_int_equal(
        render_exact(BYTES(0x81, 0xa1, 'a', 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
                     0),
        RTLOG_OK);
    /* NaN, +Inf, -Inf */
    assert_int_equal(render_exact(BYTES(0x81, 0xa1, 'a', 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0), 0),
                     RTLOG_E_CORRUPT);
    assert_int_equal(render_exact(BYTES(0x81, 0xa1, 'a', 0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0), 0),
                     RTLOG_E_CORRUPT);
    assert_int_equal(render_exact(BYTES(0x81, 0xa1, 'a', 0xcb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0), 0),
                     RTLOG_E_CORRUPT);
    /* non-string key, at top level and nested */
    assert_int_equal(render_exact(BYTES(0x81, 0x01, 0x02), 0), RTLOG_E_CORRUPT);
    assert_int_equal(render_exact(BYTES(0x81, 0xa1, 'a', 0x81, 0xc0, 0x01), 0), RTLOG_E_CORRUPT);
    /* top level not a map; empty map */
    assert_int_equal(render_exact(BYTES(0x91, 0x01), 0), RTLOG_E_CORRUPT);
    assert_int_equal(render_exact(BYTES(0xa1, 'a'), 0), RTLOG_E_CORRUPT);
    assert_int_equal(render_exact(BYTES(0x80), 0), RTLOG_E_CORRUPT);
    assert_int_equal(render_exact(NULL, 0, 0), RTLOG_E_CORRUPT);
    /* counts and lengths that promise more than there is */
    assert_int_equal(render_exact(BYTES(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 0x01), 0),
                     RTLOG_E_CORRUPT);
    assert_int_equal(render_exact(BYTES(0x81, 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff, 1), 0),
                     RTLOG_E_CORRUPT);
    assert_int_equal(render_exact(BYTES(0x81, 0xa1, 'a', 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'), 0),
                     RTLOG_E_CORRUPT);
    assert_int_equal(render_exact(BYTES(0x81, 0xdb, 0xff, 0xff, 0xff, 0xf0, 'x'), 0),
                     RTLOG_E_CORRUPT);
    assert_int_equal(render_exact(BYTES(0x81, 0xa1, 'a', 0xd9), 0), RTLOG_E_CORRUPT);
    assert_int_equal(render_exact(BYTES(0x81, 0xa1, 'a', 0xcd, 0x01), 0), RTLOG_E_CORRUPT);
    /* str8/str16/map16/array16 forms we do not write for short values are still read */
    assert_int_equal(render_exact(BYTES(0xde, 0, 1, 0xd9, 1, 'a', 0xdc, 0, 1, 0xda, 0, 1, 'x'), 0),
                     RTLOG_OK);
}

/* Nesting: exactly the parser's limit renders; one more is corrupt (no deep recursion). */
static void depth(void **state)
{
    (void)state;
    /* {"a": [[[...]]]}: the map is level 1, so n arrays reach level n + 1 */
    size_t n = 127;
    uint8_t *m = malloc(3 + 200000 + 1);
    m[0] = 0x81;
    m[1] = 0xa1;
    m[2] = 'a';
    for (size_t i = 0; i < n; i++)
        m[3 + i] = 0x91;
    m[3 + n] = 0x01;
    assert_int_equal(render_exact(m, 3 + n + 1, 0), RTLOG_OK);
    n = 128;
    for (size_t i = 0; i < n; i++)
        m[3 + i] = 0x91;
    m[3 + n] = 0x01;
    assert_int_equal(render_exact(m, 3 + n + 1, 0), RTLOG_E_CORRUPT);
    /* a 200,000-deep bomb must not blow the stack */
    n = 200000;
    for (size_t i = 0; i < n; i++)
        m[3 + i] = 0x91;
    m[3 + n] = 0x01;
    assert_int_equal(render_exact(m, 3 + n + 1, 0), RTLOG_E_CORRUPT);
    free(m);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_prefix), cmocka_unit_test(random_bytes), cmocka_unit_test(mutations),
        cmocka_unit_test(hostile),      cmocka_unit_test(depth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
