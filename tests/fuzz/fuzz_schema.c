/* fuzz_schema.c - libFuzzer target for where events come in and go out: the ingest parser
 * (JSON / array / NDJSON, every family) and the stored-record decoder (render, rec_type,
 * rec_field_str on arbitrary bytes, as if read back from a damaged disk).
 *
 * The first input byte picks the mode; the rest is the body or the record. Beyond "no
 * crash, no leak, no over-read" it checks the properties storage relies on and aborts when
 * one breaks: rec.json == render(mp, 0, REDACT); render with seq N is rec.json with
 * ,"seq":N before its last '}'; rec_type gives rec.type; and rec.json parsed again renders
 * to itself (a fixed point), which catches any escaping or number-format slip.
 * Built as a fuzzer with clang -DRTLOG_FUZZ=ON; the corpus in corpus/schema/ is replayed
 * by fuzz_schema_replay.c in every ctest run.
 */
#include "rtlog_schema.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_schema: property failed: %s (line %d)\n", #c, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void decode_only(const uint8_t *p, size_t n, uint8_t mode)
{
    rtlog_buf out = {0};
    rtlog_err rc =
        rtlog_schema_render(p, n, mode & 1 ? 42 : 0, mode & 2 ? RTLOG_JSON_REDACT : 0, &out);
    CHECK(rc == RTLOG_OK || rc == RTLOG_E_CORRUPT);
    CHECK(rc == RTLOG_OK || out.len == 0);
    const char *v;
    size_t vl;
    rc = rtlog_schema_rec_type(p, n, &v, &vl);
    CHECK(rc == RTLOG_OK || rc == RTLOG_E_CORRUPT);
    rc = rtlog_schema_rec_field_str(p, n, "nodeId", &v, &vl);
    CHECK(rc == RTLOG_OK || rc == RTLOG_E_CORRUPT || rc == RTLOG_E_NOTFOUND);
    rtlog_buf_free(&out);
}

static void check_record(const rtlog_rec *r, rtlog_family fam, uint64_t seq)
{
    rtlog_buf out = {0};
    CHECK(rtlog_schema_render(r->mp, r->mp_len, 0, RTLOG_JSON_REDACT, &out) == RTLOG_OK);
    CHECK(out.len == r->json_len && memcmp(out.p, r->json, out.len) == 0);

    rtlog_buf_clear(&out);
    CHECK(rtlog_schema_render(r->mp, r->mp_len, seq, RTLOG_JSON_REDACT, &out) == RTLOG_OK);
    char tail[32];
    int tn = snprintf(tail, sizeof tail, ",\"seq\":%llu}", (unsigned long long)seq);
    CHECK(out.len == r->json_len - 1 + (size_t)tn);
    CHECK(memcmp(out.p, r->json, r->json_len - 1) == 0);
    CHECK(memcmp(out.p + r->json_len - 1, tail, (size_t)tn) == 0);

    const char *t;
    size_t tl;
    CHECK(rtlog_schema_rec_type(r->mp, r->mp_len, &t, &tl) == RTLOG_OK);
    CHECK(tl == strlen(r->type) && memcmp(t, r->type, tl) == 0);

    /* canonical JSON is a fixed point (a redacted secret is no longer a valid event) */
    if (!(r->flags & RTLOG_REC_SECRET)) {
        rtlog_parse_opts o = {.family = fam, .now = "2026-01-10T14:23:45.123Z"};
        rtlog_batch b2 = {0};
        rtlog_errinfo ei;
        CHECK(rtlog_schema_parse(&o, r->json, r->json_len, &b2, &ei) == RTLOG_OK);
        CHECK(b2.n == 1);
        CHECK(b2.recs[0].json_len == r->json_len &&
              memcmp(b2.recs[0].json, r->json, r->json_len) == 0);
        rtlog_batch_free(&b2);
    }
    rtlog_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    if (mode & 0x80) {
        decode_only(data, size, mode);
        return 0;
    }
    rtlog_parse_opts o = {
        .family = (rtlog_family)(1 + (mode & 7) % 5),
        .ndjson = (mode >> 3) & 1,
        .max_event_bytes = mode & 0x10 ? 300 : 0,
        .max_events = mode & 0x20 ? 3 : 0,
        .now = "2026-01-10T14:23:45.123Z",
    };
    rtlog_batch b = {0};
    rtlog_errinfo ei;
    rtlog_err rc = rtlog_schema_parse(&o, (const char *)data, size, &b, &ei);
    if (rc) {
        CHECK(rc == RTLOG_E_INVAL || rc == RTLOG_E_TOOBIG);
        CHECK(b.recs == NULL && b.n == 0);
        CHECK(ei.code == rc && strlen(ei.text) > 0);
        return 0;
    }
    for (size_t i = 0; i < b.n; i++)
        check_record(&b.recs[i], o.family, i + 1);
    rtlog_batch_free(&b);
    return 0;
}
