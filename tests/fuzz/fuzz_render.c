/* fuzz_render.c - libFuzzer target for the stored-record decoder: the msgpack map that
 * storage keeps for each event, read back by replay, export and the viewer filter
 * (rtlog_schema_render, rtlog_schema_rec_type, rtlog_schema_rec_field_str).
 *
 * The whole input is the record, as if read from a damaged or hostile disk: any answer
 * but OK / CORRUPT / NOTFOUND, any read outside the record, or a broken promise of
 * rtlog_schema.h aborts. Promises checked: @out keeps its old length on error; the seq
 * invariant render(mp, N) == render(mp, 0) minus '}' plus ,"seq":N}; REDACT does not
 * change whether a record decodes; borrowed pointers lie inside the record; an all-ASCII
 * rendering is JSON that jansson reads as an object (catches escaping and number-format
 * slips). Seeds in corpus/render/ are real events from shared/data/real-runs.
 */
#include "rtlog_schema.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_render: property failed: %s (line %d)\n", #c, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int inside(const uint8_t *mp, size_t n, const char *p, size_t len)
{
    return (const uint8_t *)p >= mp && (const uint8_t *)p + len <= mp + n;
}

static int ascii(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] >= 0x80)
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* exactly sized copy: libFuzzer's buffer is too, but the replay driver's may not be */
    uint8_t *mp = malloc(size ? size : 1);
    if (!mp)
        return 0;
    memcpy(mp, data, size);

    static const char prefix[] = "data: ";
    rtlog_buf a = {0}, b = {0}, r = {0};
    CHECK(rtlog_buf_append(&a, prefix, 6) == RTLOG_OK);
    rtlog_err ra = rtlog_schema_render(mp, size, 0, 0, &a);
    CHECK(ra == RTLOG_OK || ra == RTLOG_E_CORRUPT);
    CHECK(a.len >= 6 && memcmp(a.p, prefix, 6) == 0);
    if (ra != RTLOG_OK)
        CHECK(a.len == 6);

    uint64_t seq = (uint64_t)size * 7919u + 1u;
    rtlog_err rb = rtlog_schema_render(mp, size, seq, 0, &b);
    CHECK(rb == ra);
    rtlog_err rr = rtlog_schema_render(mp, size, 0, RTLOG_JSON_REDACT, &r);
    CHECK(rr == ra);
    if (ra == RTLOG_OK) {
        const char *j = a.p + 6;
        size_t jl = a.len - 6;
        CHECK(jl >= 2 && j[0] == '{' && j[jl - 1] == '}');
        char tail[40];
        int tn = snprintf(tail, sizeof tail, ",\"seq\":%llu}", (unsigned long long)seq);
        CHECK(b.len == jl - 1 + (size_t)tn);
        CHECK(memcmp(b.p, j, jl - 1) == 0 && memcmp(b.p + jl - 1, tail, (size_t)tn) == 0);
        CHECK(memchr(j, '\n', jl) == NULL); /* one SSE data line / one NDJSON line */
        if (ascii((const uint8_t *)j, jl)) {
            json_error_t je;
            json_t *o = json_loadb(j, jl, JSON_ALLOW_NUL, &je);
            /* a stored key may hold NUL (valid JSON as \u0000; only jansson refuses it) */
            if (!o && !strstr(je.text, "NUL byte in object key")) {
                fprintf(stderr, "fuzz_render: jansson: %s at %d\n", je.text, je.position);
                CHECK(0);
            }
            CHECK(!o || json_is_object(o));
            json_decref(o);
        }
    } else {
        CHECK(b.len == 0 && r.len == 0);
    }

    const char *v;
    size_t vl;
    rtlog_err rt = rtlog_schema_rec_type(mp, size, &v, &vl);
    CHECK(rt == RTLOG_OK || rt == RTLOG_E_CORRUPT);
    if (rt == RTLOG_OK)
        CHECK(inside(mp, size, v, vl));
    static const char *const names[] = {"nodeId", "type", "timestamp", "line", ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        rtlog_err rf = rtlog_schema_rec_field_str(mp, size, names[i], &v, &vl);
        CHECK(rf == RTLOG_OK || rf == RTLOG_E_CORRUPT || rf == RTLOG_E_NOTFOUND);
        if (rf == RTLOG_OK)
            CHECK(inside(mp, size, v, vl));
        /* a record that renders has no bad bytes before any field */
        if (ra == RTLOG_OK)
            CHECK(rf != RTLOG_E_CORRUPT);
    }
    rtlog_buf_free(&a);
    rtlog_buf_free(&b);
    rtlog_buf_free(&r);
    free(mp);
    return 0;
}
