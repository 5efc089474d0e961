/* fuzz_params.c - libFuzzer target for everything the server reads from a request line or
 * header before any store work: path routing, resume cursors (Last-Event-ID /
 * lastEventId), expectedSeq, follow=, the Authorization Bearer value, the Origin
 * allowlist, and the error JSON that may quote client bytes (server/params.c).
 *
 * The first input byte picks the function; the rest is the field, copied into an exactly
 * sized buffer so ASan sees a read one past it. Beyond "no crash, no over-read" each result
 * is checked against an independent reading of the same bytes (digits parsed here with
 * strtoull-free arithmetic, token68 bytes re-checked, the error JSON re-parsed by jansson),
 * so a parser that accepts "-1" or drops a byte aborts. Corpus: corpus/params/.
 */
#include "server_int.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_params: property failed: %s (line %d)\n", #c, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Reference decimal reader: 1 if @s is 1..19 digits with value <= 2^63-1. */
static int ref_digits(const char *s, size_t n, uint64_t *v)
{
    if (n == 0 || n > 19)
        return 0;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        x = x * 10 + (uint64_t)(s[i] - '0'); /* 19 digits fit in uint64 */
    }
    if (x > 9223372036854775807ull)
        return 0;
    *v = x;
    return 1;
}

static void fuzz_cursor(const char *s, size_t n)
{
    int present = 7;
    uint64_t v = 0, want;
    rtlog_err rc = rtlog_cursor_parse(s, n, &present, &v);
    size_t a = 0, b = n;
    while (a < b && (s[a] == ' ' || s[a] == '\t'))
        a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
        b--;
    size_t z = a; /* leading zeros are fine ("007" is 7), however many */
    while (z + 1 < b && s[z] == '0')
        z++;
    if (a == b)
        CHECK(rc == RTLOG_OK && present == 0);
    else if (ref_digits(s + z, b - z, &want))
        CHECK(rc == RTLOG_OK && present == 1 && v == want);
    else
        CHECK(rc == RTLOG_E_CURSOR && present == 0);
}

static void fuzz_seq(const char *s, size_t n)
{
    uint64_t v = 0, want;
    rtlog_err rc = rtlog_seq_param_parse(s, n, &v);
    size_t z = 0;
    while (z + 1 < n && s[z] == '0')
        z++;
    int all = n > 0;
    for (size_t i = 0; i < n; i++)
        all = all && s[i] >= '0' && s[i] <= '9';
    if (all && ref_digits(s + z, n - z, &want))
        CHECK(rc == RTLOG_OK && v == want);
    else
        CHECK(rc == RTLOG_E_INVAL);
}

static void fuzz_bool(const char *s, size_t n)
{
    int v = 7;
    rtlog_err rc = rtlog_bool_param_parse(s, n, &v);
    if (n == 0 || (n == 4 && !memcmp(s, "true", 4)) || (n == 1 && s[0] == '1'))
        CHECK(rc == RTLOG_OK && v == 1);
    else if ((n == 5 && !memcmp(s, "false", 5)) || (n == 1 && s[0] == '0'))
        CHECK(rc == RTLOG_OK && v == 0);
    else
        CHECK(rc == RTLOG_E_INVAL && v == 7);
}

static void fuzz_bearer(const char *s, size_t n)
{
    const char *tok = NULL;
    size_t tl = 0;
    rtlog_err rc = rtlog_bearer_parse(s, n, &tok, &tl);
    if (rc != RTLOG_OK) {
        CHECK(rc == RTLOG_E_UNAUTH);
        return;
    }
    CHECK(n >= 8 && strncasecmp(s, "bearer ", 7) == 0);
    CHECK(tok >= s + 7 && tl > 0 && tok + tl <= s + n);
    for (size_t i = 0; i < tl; i++) {
        unsigned char c = (unsigned char)tok[i];
        CHECK((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              strchr("-._~+/=", c) != NULL);
    }
    for (const char *p = s + 7; p < tok; p++)
        CHECK(*p == ' ');
    for (const char *p = tok + tl; p < s + n; p++)
        CHECK(*p == ' ' || *p == '\t');
}

static void fuzz_route(const char *s, size_t n)
{
    route r;
    rtlog_route_parse(s, n, &r);
    CHECK(memchr(r.stream, '\0', sizeof r.stream) != NULL);
    CHECK(memchr(r.stream_why, '\0', sizeof r.stream_why) != NULL);
    CHECK(r.stream_err == RTLOG_OK || r.stream_err == RTLOG_E_INVAL);
    if (r.kind == ROUTE_TASK_CANCEL && r.stream_err == RTLOG_OK) {
        /* the task id is a valid id and a byte-exact slice of the path */
        CHECK(rtlog_task_id_valid(r.task_id, strlen(r.task_id)));
        CHECK(memmem(s, n, r.task_id, strlen(r.task_id)) != NULL);
    } else {
        CHECK(r.task_id[0] == '\0');
    }
    if (r.kind == ROUTE_STREAM || r.kind == ROUTE_EVENTS || r.kind == ROUTE_TASKS ||
        r.kind == ROUTE_TASK_CANCEL) {
        if (r.stream_err == RTLOG_OK) {
            /* whatever routing accepted, the schema's own check accepts too, and the name
             * is a byte-exact slice of the path */
            rtlog_kind k;
            CHECK(r.stream[0] != '\0');
            rtlog_errinfo ei;
            CHECK(rtlog_stream_parse(r.stream, strlen(r.stream), &k, NULL, NULL, &ei) ==
                  RTLOG_OK);
            CHECK(memmem(s, n, r.stream, strlen(r.stream)) != NULL);
        } else {
            CHECK(r.stream[0] == '\0' && r.stream_why[0] != '\0');
        }
    } else {
        CHECK(r.stream[0] == '\0' && r.stream_err == RTLOG_OK);
    }
}

static void fuzz_origin(const char *s, size_t n)
{
    /* "<allowlist>\n<origin>": the allowlist is a NUL-terminated config string */
    const char *nl = memchr(s, '\n', n);
    size_t al = nl ? (size_t)(nl - s) : n;
    char *list = malloc(al + 1);
    CHECK(list);
    memcpy(list, s, al);
    list[al] = '\0';
    size_t ol = nl ? n - al - 1 : 0;
    char *origin = malloc(ol ? ol : 1);
    CHECK(origin);
    if (ol)
        memcpy(origin, nl + 1, ol);
    int ok = rtlog_origin_allowed(list, origin, ol);
    CHECK(ok == 0 || ok == 1);
    if (list[0] == '\0')
        CHECK(ok == 1);
    free(list);
    free(origin);
}

static void fuzz_error_json(const char *s, size_t n, uint8_t sel)
{
    char *msg = malloc(n + 1);
    CHECK(msg);
    memcpy(msg, s, n);
    msg[n] = '\0';
    static const rtlog_err codes[] = {RTLOG_E_INVAL, RTLOG_E_UNAUTH, RTLOG_E_CURSOR,
                                      RTLOG_E_TOOBIG, RTLOG_E_CORRUPT, RTLOG_E_NOTFOUND};
    rtlog_err code = codes[(sel >> 4) % (sizeof codes / sizeof codes[0])];
    rtlog_buf out = {0};
    CHECK(rtlog_error_json(&out, code, msg, sel & 8, (uint64_t)n * 1000003u) == RTLOG_OK);
    /* the frame a client gets must be one JSON object, whatever bytes the message had */
    json_error_t je;
    json_t *o = json_loadb((const char *)out.p, out.len, JSON_REJECT_DUPLICATES, &je);
    CHECK(o && json_is_object(o));
    CHECK(!strcmp(json_string_value(json_object_get(o, "type")), "error"));
    CHECK(json_is_string(json_object_get(o, "message")));
    CHECK(((sel & 8) != 0) == (json_object_get(o, "lastSeq") != NULL));
    json_decref(o);
    rtlog_buf_free(&out);
    free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    size_t n = size - 1;
    char *s = malloc(n ? n : 1); /* exactly sized: a read past the field is an ASan error */
    if (!s)
        return 0;
    memcpy(s, data + 1, n);
    switch (sel & 7) {
    case 0: fuzz_cursor(s, n); break;
    case 1: fuzz_seq(s, n); break;
    case 2: fuzz_bool(s, n); break;
    case 3: fuzz_bearer(s, n); break;
    case 4: fuzz_route(s, n); break;
    case 5: fuzz_origin(s, n); break;
    case 6: fuzz_error_json(s, n, sel); break;
    default:
        /* everything at once on the same bytes (as a hostile client would reuse them) */
        fuzz_cursor(s, n);
        fuzz_seq(s, n);
        fuzz_bearer(s, n);
        fuzz_route(s, n);
        break;
    }
    free(s);
    return 0;
}
