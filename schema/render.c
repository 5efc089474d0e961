/* render.c - stored record (msgpack) -> canonical JSON line, plus the two lookups that read a
 * record without rendering it (rtlog_schema_rec_type, rtlog_schema_rec_field_str).
 *
 * This is the catch-up hot path: every replayed event of every subscriber passes through
 * rtlog_schema_render(), so it is a small hand-written decoder that writes JSON straight
 * into the output buffer instead of building msgpack-c objects or jansson trees. It also
 * reads bytes back from disk, so it trusts nothing: every length is checked against the
 * bytes left before it is used, nesting is capped at SCHEMA_MAX_DEPTH (the same cap the
 * parser enforces), and anything the parser could not have written (bin, ext, float32,
 * non-string keys, uint64 > INT64_MAX, NaN/Inf, trailing bytes) is RTLOG_E_CORRUPT.
 * The exact output rules (escapes, shortest reals, "seq" last) are what the hash chain and
 * "import then export gives back the input" depend on: change them only with storage.
 */
#include "rtlog_schema.h"
#include "schema_int.h"

#include <locale.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A bounded reader over one record. */
typedef struct rd {
    const uint8_t *p;
    const uint8_t *end;
} rd;

static size_t rd_left(const rd *r)
{
    return (size_t)(r->end - r->p);
}

static uint64_t be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Make room for @n more bytes plus the NUL spare that rtlog_buf keeps. */
static rtlog_err room(rtlog_buf *w, size_t n)
{
    if (w->cap - w->len > n)
        return RTLOG_OK;
    return rtlog_buf_reserve(w, n);
}

/* Append without a capacity check; the caller called room() for at least @n. */
static void put(rtlog_buf *w, const void *p, size_t n)
{
    memcpy(w->p + w->len, p, n);
    w->len += n;
}

/* Read a str header and return its body. -1 if the next value is not a complete str. */
static int rd_str(rd *r, const uint8_t **s, size_t *n)
{
    size_t left = rd_left(r), hl, len;
    if (left == 0)
        return -1;
    uint8_t c = r->p[0];
    if ((c & 0xe0) == 0xa0) {
        hl = 1;
        len = c & 0x1fu;
    } else if (c >= 0xd9 && c <= 0xdb) {
        hl = (size_t)1 + ((size_t)1 << (c - 0xd9)); /* 2, 3, 5 */
        if (left < hl)
            return -1;
        len = (size_t)be(r->p + 1, hl - 1);
    } else {
        return -1;
    }
    if (left - hl < len)
        return -1;
    *s = r->p + hl;
    *n = len;
    r->p += hl + len;
    return 0;
}

/* Read a map header. -1 if the next value is not a map or cannot hold @count entries. */
static int rd_map(rd *r, size_t *count)
{
    size_t left = rd_left(r), hl, n;
    if (left == 0)
        return -1;
    uint8_t c = r->p[0];
    if ((c & 0xf0) == 0x80) {
        hl = 1;
        n = c & 0x0fu;
    } else if (c == 0xde || c == 0xdf) {
        hl = c == 0xde ? 3 : 5;
        if (left < hl)
            return -1;
        n = (size_t)be(r->p + 1, hl - 1);
    } else {
        return -1;
    }
    /* every entry takes at least two bytes: refuse impossible counts before looping */
    if ((left - hl) / 2 < n)
        return -1;
    r->p += hl;
    *count = n;
    return 0;
}

/* Escape classes for string bytes: 0 = copy as is, else the char after '\' ('u' = \u00XX). */
static const char esc_class[256] = {
    ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f',  ['\r'] = 'r', [0x00] = 'u',
    [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u',  [0x05] = 'u', [0x06] = 'u',
    [0x07] = 'u', [0x0b] = 'u', [0x0e] = 'u', [0x0f] = 'u',  [0x10] = 'u', [0x11] = 'u',
    [0x12] = 'u', [0x13] = 'u', [0x14] = 'u', [0x15] = 'u',  [0x16] = 'u', [0x17] = 'u',
    [0x18] = 'u', [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u',  [0x1c] = 'u', [0x1d] = 'u',
    [0x1e] = 'u', [0x1f] = 'u', ['"'] = '"',  ['\\'] = '\\',
};

/* Write a JSON string literal. Only `"`, `\` and controls < 0x20 are escaped, so DEL, UTF-8
 * and astral chars go out raw, exactly as the producer's (and Python's ensure_ascii=False)
 * encoder wrote them. Room is made per 4 KiB of input (worst case 6 output bytes each), so
 * a 450 KB log line needs about its own size in the output buffer, not six times it.
 * This is the hottest loop of a catch-up (most strings are short keys and values), so
 * plain bytes are checked and stored 8 at a time (SWAR: a byte < 0x20, or equal to '"' or
 * '\', sets its top bit in the mask) with no memcpy call per run, and the rest byte by
 * byte through a 256-entry table. */
static rtlog_err put_str(rtlog_buf *w, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    enum { CHUNK = 4096 };
    size_t i = 0;
    char *o;
    if (room(w, n < CHUNK ? n * 6 + 2 : CHUNK * 6 + 2))
        return RTLOG_E_NOMEM;
    o = w->p + w->len;
    *o++ = '"';
    while (i < n) {
        size_t stop = n - i < CHUNK ? n : i + CHUNK;
        if (i) { /* the first chunk's room was made above */
            w->len = (size_t)(o - w->p);
            if (room(w, (stop - i) * 6 + 1))
                return RTLOG_E_NOMEM;
            o = w->p + w->len;
        }
        while (i < stop) {
            while (i + 8 <= stop) {
                uint64_t x;
                memcpy(&x, s + i, 8);
                uint64_t q = x ^ 0x2222222222222222ull, b = x ^ 0x5c5c5c5c5c5c5c5cull;
                uint64_t m = ((x - 0x2020202020202020ull) & ~x) |
                             ((q - 0x0101010101010101ull) & ~q) |
                             ((b - 0x0101010101010101ull) & ~b);
                if (m & 0x8080808080808080ull)
                    break;
                memcpy(o, &x, 8); /* room was made for 6 bytes per input byte */
                o += 8;
                i += 8;
            }
            while (i < stop && !esc_class[s[i]])
                *o++ = (char)s[i++];
            if (i == stop)
                break;
            char k = esc_class[s[i]];
            *o++ = '\\';
            *o++ = k;
            if (k == 'u') {
                *o++ = '0';
                *o++ = '0';
                *o++ = hex[s[i] >> 4];
                *o++ = hex[s[i] & 15];
            }
            i++;
        }
    }
    w->len = (size_t)(o - w->p);
    if (room(w, 1))
        return RTLOG_E_NOMEM;
    w->p[w->len++] = '"';
    return RTLOG_OK;
}

/* Decimal of a non-negative integer, written right-aligned ending at @end; returns start. */
static char *u64_digits(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

static rtlog_err put_i64(rtlog_buf *w, int64_t v)
{
    char tmp[24], *e = tmp + sizeof tmp;
    /* magnitude as unsigned so INT64_MIN does not overflow */
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char *s = u64_digits(e, m);
    if (v < 0)
        *--s = '-';
    if (room(w, (size_t)(e - s)))
        return RTLOG_E_NOMEM;
    put(w, s, (size_t)(e - s));
    return RTLOG_OK;
}

/* The shortest of %.15g/%.16g/%.17g that reads back to @d, with ".0" added when it would
 * otherwise look like an integer. Integral values below 1e15 (durations, counts sent as
 * reals) take a fast path with the same result: %.15g prints them as plain digits. */
static size_t fmt_real(double d, char out[40])
{
    if (d > -1e15 && d < 1e15 && (double)(int64_t)d == d) {
        char tmp[24], *e = tmp + sizeof tmp;
        int64_t i = (int64_t)d;
        char *s = u64_digits(e, i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i);
        if (i < 0 || (i == 0 && signbit(d)))
            *--s = '-';
        size_t n = (size_t)(e - s);
        memcpy(out, s, n);
        memcpy(out + n, ".0", 2);
        return n + 2;
    }
    int n = 0;
    /* For normal doubles any decimal of <= 15 digits that reads back to @d is what %.15g
     * prints (trailing zeros trimmed), so 15 is the shortest start. Subnormals carry fewer
     * significant bits: 5e-324 must not come out as 4.94065645841247e-324, so search from
     * one digit up for them. */
    int first = (d != 0.0 && fabs(d) < DBL_MIN) ? 1 : 15;
    for (int prec = first; prec <= 17; prec++) {
        n = snprintf(out, 40, "%.*g", prec, d);
        if (prec == 17 || strtod(out, NULL) == d)
            break;
    }
    size_t len = (size_t)n;
    /* snprintf and strtod follow LC_NUMERIC; if a program switched it (setlocale(LC_ALL, ""))
     * the decimal point may be ','. The round-trip check above used the same locale on
     * both sides, so only the spelling needs fixing for JSON. */
    const char *dp = localeconv()->decimal_point;
    if (dp[0] != '.' && dp[0] != '\0' && dp[1] == '\0') {
        char *c = memchr(out, dp[0], len);
        if (c)
            *c = '.';
    }
    if (!memchr(out, '.', len) && !memchr(out, 'e', len)) {
        memcpy(out + len, ".0", 3);
        len += 2;
    }
    return len;
}

/* Render (w != NULL) or only validate and step over (w == NULL) the value at r->p.
 * @depth is the nesting level a container here would have (the record's map is 1). */
static rtlog_err value(rd *r, rtlog_buf *w, int depth)
{
    size_t left = rd_left(r);
    if (left == 0)
        return RTLOG_E_CORRUPT;
    uint8_t c = r->p[0];

    if (c <= 0x7f || c >= 0xe0) { /* positive / negative fixint */
        r->p++;
        return w ? put_i64(w, c <= 0x7f ? (int64_t)c : (int64_t)(int8_t)c) : RTLOG_OK;
    }
    if ((c & 0xe0) == 0xa0 || (c >= 0xd9 && c <= 0xdb)) {
        const uint8_t *s;
        size_t n;
        if (rd_str(r, &s, &n))
            return RTLOG_E_CORRUPT;
        return w ? put_str(w, s, n) : RTLOG_OK;
    }
    if (c >= 0xcc && c <= 0xd3) { /* uint8..64, int8..64 */
        size_t n = (size_t)1 << ((c - 0xcc) & 3);
        if (left < 1 + n)
            return RTLOG_E_CORRUPT;
        uint64_t u = be(r->p + 1, n);
        r->p += 1 + n;
        int64_t v;
        if (c <= 0xcf) {
            if (u > (uint64_t)INT64_MAX) /* json_int_t cannot hold it: not ours */
                return RTLOG_E_CORRUPT;
            v = (int64_t)u;
        } else {
            /* sign-extend from n bytes */
            unsigned shift = (unsigned)(64 - 8 * n);
            v = (int64_t)(u << shift) >> shift;
        }
        return w ? put_i64(w, v) : RTLOG_OK;
    }
    switch (c) {
    case 0xc0:
    case 0xc2:
    case 0xc3: {
        r->p++;
        if (!w)
            return RTLOG_OK;
        const char *t = c == 0xc0 ? "null" : c == 0xc2 ? "false" : "true";
        size_t n = c == 0xc2 ? 5 : 4;
        if (room(w, n))
            return RTLOG_E_NOMEM;
        put(w, t, n);
        return RTLOG_OK;
    }
    case 0xcb: {
        if (left < 9)
            return RTLOG_E_CORRUPT;
        uint64_t bits = be(r->p + 1, 8);
        double d;
        memcpy(&d, &bits, sizeof d);
        r->p += 9;
        if (isnan(d) || isinf(d)) /* JSON cannot carry them, so we never stored one */
            return RTLOG_E_CORRUPT;
        if (!w)
            return RTLOG_OK;
        char tmp[40];
        size_t n = fmt_real(d, tmp);
        if (room(w, n))
            return RTLOG_E_NOMEM;
        put(w, tmp, n);
        return RTLOG_OK;
    }
    default:
        break;
    }

    int is_map = (c & 0xf0) == 0x80 || c == 0xde || c == 0xdf;
    int is_arr = (c & 0xf0) == 0x90 || c == 0xdc || c == 0xdd;
    if (!is_map && !is_arr) /* bin, ext, float32, 0xc1 */
        return RTLOG_E_CORRUPT;
    if (depth > SCHEMA_MAX_DEPTH)
        return RTLOG_E_CORRUPT;

    size_t n;
    if (is_map) {
        if (rd_map(r, &n))
            return RTLOG_E_CORRUPT;
    } else {
        size_t hl = (c & 0xf0) == 0x90 ? 1 : c == 0xdc ? 3 : 5;
        if (left < hl)
            return RTLOG_E_CORRUPT;
        n = hl == 1 ? (size_t)(c & 0x0f) : (size_t)be(r->p + 1, hl - 1);
        if (left - hl < n) /* every element takes at least one byte */
            return RTLOG_E_CORRUPT;
        r->p += hl;
    }
    if (w) {
        if (room(w, 1))
            return RTLOG_E_NOMEM;
        put(w, is_map ? "{" : "[", 1);
    }
    for (size_t i = 0; i < n; i++) {
        rtlog_err rc;
        if (w && i) {
            if (room(w, 1))
                return RTLOG_E_NOMEM;
            put(w, ",", 1);
        }
        if (is_map) {
            const uint8_t *k;
            size_t kn;
            if (rd_str(r, &k, &kn))
                return RTLOG_E_CORRUPT;
            if (w) {
                if ((rc = put_str(w, k, kn)) || (rc = room(w, 1)))
                    return rc;
                put(w, ":", 1);
            }
        }
        if ((rc = value(r, w, depth + 1)))
            return rc;
    }
    if (w) {
        if (room(w, 1))
            return RTLOG_E_NOMEM;
        put(w, is_map ? "}" : "]", 1);
    }
    return RTLOG_OK;
}

static int str_is(const uint8_t *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n == l && memcmp(s, lit, l) == 0;
}

/* Write the @i-th key of a map: a comma before all but the first, the quoted key, ':'. */
static rtlog_err put_key(rtlog_buf *w, size_t i, const uint8_t *k, size_t kn)
{
    rtlog_err rc;
    if (i) {
        if (room(w, 1))
            return RTLOG_E_NOMEM;
        put(w, ",", 1);
    }
    if ((rc = put_str(w, k, kn)) || (rc = room(w, 1)))
        return rc;
    put(w, ":", 1);
    return RTLOG_OK;
}

/* Render the `task` object of a task_assigned record with `credentials` replaced. The
 * credentials value is still stepped over with full validation, so a redacted render
 * fails on exactly the records an unredacted one fails on. */
static rtlog_err task_redacted(rd *r, rtlog_buf *w, int depth)
{
    size_t n;
    if (depth > SCHEMA_MAX_DEPTH || rd_map(r, &n))
        return RTLOG_E_CORRUPT;
    if (room(w, 1))
        return RTLOG_E_NOMEM;
    put(w, "{", 1);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *k;
        size_t kn;
        rtlog_err rc;
        if (rd_str(r, &k, &kn))
            return RTLOG_E_CORRUPT;
        if ((rc = put_key(w, i, k, kn)))
            return rc;
        if (str_is(k, kn, "credentials")) {
            if ((rc = value(r, NULL, depth + 1)))
                return rc;
            if (room(w, 12))
                return RTLOG_E_NOMEM;
            put(w, "\"[REDACTED]\"", 12);
        } else if ((rc = value(r, w, depth + 1))) {
            return rc;
        }
    }
    if (room(w, 1))
        return RTLOG_E_NOMEM;
    put(w, "}", 1);
    return RTLOG_OK;
}

/* Walk the top-level map for key @name; on success r->p is at its value. */
static rtlog_err find_key(rd *r, const char *name)
{
    size_t n, name_len = strlen(name);
    if (rd_map(r, &n) || n == 0)
        return RTLOG_E_CORRUPT;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *k;
        size_t kn;
        if (rd_str(r, &k, &kn))
            return RTLOG_E_CORRUPT;
        if (kn == name_len && memcmp(k, name, kn) == 0)
            return RTLOG_OK;
        rtlog_err rc = value(r, NULL, 2);
        if (rc)
            return rc;
    }
    return RTLOG_E_NOTFOUND;
}

static rtlog_err render_top(rd *r, uint64_t seq, int redact_task, rtlog_buf *w)
{
    size_t n;
    /* a record always has at least `type`; an empty map could not render with the seq
     * invariant ("{" + ",\"seq\":N}"), and we never write one */
    if (rd_map(r, &n) || n == 0)
        return RTLOG_E_CORRUPT;
    if (room(w, 1))
        return RTLOG_E_NOMEM;
    put(w, "{", 1);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *k;
        size_t kn;
        rtlog_err rc;
        if (rd_str(r, &k, &kn))
            return RTLOG_E_CORRUPT;
        if ((rc = put_key(w, i, k, kn)))
            return rc;
        if (redact_task && str_is(k, kn, "task") && rd_left(r) && r->p[0] >= 0x80 &&
            (r->p[0] <= 0x8f || r->p[0] == 0xde || r->p[0] == 0xdf))
            rc = task_redacted(r, w, 2);
        else
            rc = value(r, w, 2);
        if (rc)
            return rc;
    }
    if (r->p != r->end)
        return RTLOG_E_CORRUPT;
    if (seq) {
        char tmp[24], *e = tmp + sizeof tmp, *s = u64_digits(e, seq);
        if (room(w, 7 + (size_t)(e - s)))
            return RTLOG_E_NOMEM;
        put(w, ",\"seq\":", 7);
        put(w, s, (size_t)(e - s));
    }
    if (room(w, 1))
        return RTLOG_E_NOMEM;
    put(w, "}", 1);
    return RTLOG_OK;
}

rtlog_err rtlog_schema_render(const void *mp, size_t mp_len, uint64_t seq, uint32_t flags,
                              rtlog_buf *out)
{
    if (!out || (!mp && mp_len))
        return RTLOG_E_CORRUPT;
    int redact_task = 0;
    if (flags & RTLOG_JSON_REDACT) {
        const char *t;
        size_t tn;
        /* a record without a readable type cannot be a task_assigned; the render below
         * still validates every byte of it */
        if (rtlog_schema_rec_type(mp, mp_len, &t, &tn) == RTLOG_OK)
            redact_task = str_is((const uint8_t *)t, tn, "task_assigned");
    }
    size_t old = out->len;
    rd r = {mp, (const uint8_t *)mp + mp_len};
    rtlog_err rc = render_top(&r, seq, redact_task, out);
    if (rc)
        out->len = old;
    return rc;
}

rtlog_err rtlog_schema_rec_type(const void *mp, size_t mp_len, const char **type, size_t *type_len)
{
    const uint8_t *s;
    size_t n;
    if (!mp || !type || !type_len)
        return RTLOG_E_CORRUPT;
    rd r = {mp, (const uint8_t *)mp + mp_len};
    rtlog_err rc = find_key(&r, "type");
    if (rc == RTLOG_E_NOTFOUND)
        return RTLOG_E_CORRUPT; /* every stored event has a type */
    if (rc)
        return rc;
    if (rd_str(&r, &s, &n))
        return RTLOG_E_CORRUPT;
    *type = (const char *)s;
    *type_len = n;
    return RTLOG_OK;
}

rtlog_err rtlog_schema_rec_field_str(const void *mp, size_t mp_len, const char *name,
                                     const char **val, size_t *val_len)
{
    const uint8_t *s;
    size_t n;
    if (!mp || !name || !val || !val_len)
        return RTLOG_E_CORRUPT;
    rd r = {mp, (const uint8_t *)mp + mp_len};
    rtlog_err rc = find_key(&r, name);
    if (rc)
        return rc;
    if (rd_left(&r) == 0)
        return RTLOG_E_CORRUPT;
    uint8_t c = r.p[0];
    if (!((c & 0xe0) == 0xa0 || (c >= 0xd9 && c <= 0xdb))) {
        /* present but not a string: still make sure it is a well-formed value */
        rc = value(&r, NULL, 2);
        return rc ? rc : RTLOG_E_NOTFOUND;
    }
    if (rd_str(&r, &s, &n))
        return RTLOG_E_CORRUPT;
    *val = (const char *)s;
    *val_len = n;
    return RTLOG_OK;
}
