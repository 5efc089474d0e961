/* schema_test.h - small helpers shared by the schema unit tests (header-only, static). */
#ifndef SCHEMA_TEST_H
#define SCHEMA_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rtlog_schema.h"

#define TEST_NOW "2026-01-10T14:23:45.123Z"

/* Read a whole file; returns malloc'd bytes (NUL-terminated, not counted) or NULL. */
static inline char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            p = realloc(p, cap);
        }
        size_t got = fread(p + n, 1, cap - n - 1, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    p[n] = '\0';
    *len = n;
    return p;
}

/* Parse @s (NUL-terminated) for @fam with fixed `now`; asserts success; one batch out. */
static inline void parse_ok(rtlog_family fam, int ndjson, const char *s, rtlog_batch *b)
{
    rtlog_parse_opts o = {.family = fam, .ndjson = ndjson, .now = TEST_NOW};
    rtlog_errinfo ei;
    memset(&ei, 0, sizeof ei);
    rtlog_err rc = rtlog_schema_parse(&o, s, strlen(s), b, &ei);
    if (rc)
        fail_msg("parse failed (%d): %s\ninput: %.200s", (int)rc, ei.text, s);
}

/* Parse, expect failure with @code; returns the errinfo. */
static inline rtlog_errinfo parse_err(rtlog_family fam, int ndjson, const char *s, size_t len,
                                      rtlog_err code)
{
    rtlog_parse_opts o = {.family = fam, .ndjson = ndjson, .now = TEST_NOW};
    rtlog_errinfo ei;
    memset(&ei, 0, sizeof ei);
    rtlog_batch b = {NULL, 77, NULL};
    rtlog_err rc = rtlog_schema_parse(&o, s, len, &b, &ei);
    if (rc != code)
        fail_msg("expected error %d, got %d (%s) for: %.200s", (int)code, (int)rc, ei.text, s);
    /* untouched on error */
    assert_null(b.recs);
    assert_int_equal(b.n, 77);
    assert_int_equal(ei.code, code);
    return ei;
}

/* Render @r with @seq and @flags into a fresh NUL-terminated string (malloc'd). */
static inline char *render_dup(const rtlog_rec *r, uint64_t seq, uint32_t flags)
{
    rtlog_buf b = {0};
    assert_int_equal(rtlog_schema_render(r->mp, r->mp_len, seq, flags, &b), RTLOG_OK);
    assert_int_equal(rtlog_buf_nul(&b), RTLOG_OK);
    return b.p;
}

#endif
