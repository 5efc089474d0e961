/* test_params.c - the request parsers of server/params.c against hostile input:
 * handed.md C03 (every cursor form), expectedSeq, follow=, Bearer values, Origin
 * allowlists, path routing with bad ids (C03 family, C16 h), and the error body shape.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "server_int.h"

static void cursor_ok(const char *s, size_t len, int present, uint64_t want)
{
    int p = -1;
    uint64_t v = 12345;
    if (rtlog_cursor_parse(s, len, &p, &v) != RTLOG_OK)
        fail_msg("cursor \"%.*s\" refused", (int)len, s);
    assert_int_equal(p, present);
    if (present)
        assert_int_equal(v, want);
}

static void cursor_bad(const char *s, size_t len)
{
    int p;
    uint64_t v;
    if (rtlog_cursor_parse(s, len, &p, &v) != RTLOG_E_CURSOR)
        fail_msg("cursor \"%.*s\" accepted", (int)len, s);
}

#define OK(s, present, want) cursor_ok(s, sizeof(s) - 1, present, want)
#define BAD(s)               cursor_bad(s, sizeof(s) - 1)

static void test_cursor_c03(void **state)
{
    (void)state;
    OK("5", 1, 5);
    OK(" 5", 1, 5);
    OK("5 ", 1, 5);
    OK("\t5\t", 1, 5);
    OK("007", 1, 7);
    OK("0", 1, 0);
    OK("9223372036854775807", 1, 9223372036854775807ull);
    OK("", 0, 0);
    OK("   ", 0, 0);
    BAD("1:");
    BAD("+5");
    BAD("-1");
    BAD("0x0A");
    BAD("1e3");
    BAD("5.0");
    BAD("18446744073709551615");
    BAD("18446744073709551616");
    BAD("9223372036854775808");
    BAD("99999999999999999999999999");
    BAD("abc");
    BAD("\xef\xbc\x95"); /* U+FF15 FULLWIDTH DIGIT FIVE */
    BAD("5\0");          /* raw NUL after the digit */
    BAD("5 6");
    BAD("5\r");
    char nines[8192];
    memset(nines, '9', sizeof nines);
    cursor_bad(nines, sizeof nines);
    memset(nines, '0', sizeof nines); /* 8 KB of zeros is a (silly) valid 0 */
    cursor_ok(nines, sizeof nines, 1, 0);
    int p;
    uint64_t v;
    assert_int_equal(rtlog_cursor_parse(NULL, 0, &p, &v), RTLOG_OK);
    assert_int_equal(p, 0);
}

static void test_seq_and_bool(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(rtlog_seq_param_parse("12", 2, &v), RTLOG_OK);
    assert_int_equal(v, 12);
    assert_int_equal(rtlog_seq_param_parse("", 0, &v), RTLOG_E_INVAL);
    assert_int_equal(rtlog_seq_param_parse(" 1", 2, &v), RTLOG_E_INVAL);
    assert_int_equal(rtlog_seq_param_parse("-1", 2, &v), RTLOG_E_INVAL);
    assert_int_equal(rtlog_seq_param_parse("9223372036854775808", 19, &v), RTLOG_E_INVAL);
    int b = -1;
    assert_int_equal(rtlog_bool_param_parse("false", 5, &b), RTLOG_OK);
    assert_int_equal(b, 0);
    assert_int_equal(rtlog_bool_param_parse("0", 1, &b), RTLOG_OK);
    assert_int_equal(b, 0);
    assert_int_equal(rtlog_bool_param_parse("true", 4, &b), RTLOG_OK);
    assert_int_equal(b, 1);
    assert_int_equal(rtlog_bool_param_parse("", 0, &b), RTLOG_OK);
    assert_int_equal(b, 1);
    assert_int_equal(rtlog_bool_param_parse("False", 5, &b), RTLOG_E_INVAL);
    assert_int_equal(rtlog_bool_param_parse("no", 2, &b), RTLOG_E_INVAL);
}

static void test_bearer(void **state)
{
    (void)state;
    const char *tok;
    size_t n;
    const char *h = "Bearer abc.def-_.ghi";
    assert_int_equal(rtlog_bearer_parse(h, strlen(h), &tok, &n), RTLOG_OK);
    assert_int_equal(n, 13);
    assert_memory_equal(tok, "abc.def-_.ghi", 13);
    h = "bearer   x.y.z  ";
    assert_int_equal(rtlog_bearer_parse(h, strlen(h), &tok, &n), RTLOG_OK);
    assert_int_equal(n, 5);
    const char *bad[] = {"Bearer", "Bearer ", "Basic abc", "Bearer  a.b.c extra", "Bearer a\"b",
                         "Bearer a,b", "Token a.b.c", "Bearera.b.c"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (rtlog_bearer_parse(bad[i], strlen(bad[i]), &tok, &n) != RTLOG_E_UNAUTH)
            fail_msg("accepted \"%s\"", bad[i]);
}

static void test_origin(void **state)
{
    (void)state;
    assert_true(rtlog_origin_allowed("", "https://evil.example", 20));
    const char *list = "https://app.example.com, http://localhost:3000/";
    assert_true(rtlog_origin_allowed(list, "https://app.example.com", 23));
    assert_true(rtlog_origin_allowed(list, "http://localhost:3000", 21));
    assert_false(rtlog_origin_allowed(list, "https://app.example.com.evil", 28));
    assert_false(rtlog_origin_allowed(list, "https://app.example.co", 22));
    assert_false(rtlog_origin_allowed(list, "http://localhost:300", 20));
    assert_false(rtlog_origin_allowed(list, "null", 4));
    assert_false(rtlog_origin_allowed(list, "", 0));
}

static void route_is(const char *path, route_kind k, const char *stream, rtlog_err err)
{
    route r;
    rtlog_route_parse(path, strlen(path), &r);
    if (r.kind != k)
        fail_msg("%s: kind %d, want %d", path, r.kind, k);
    assert_int_equal(r.stream_err, err);
    if (stream)
        assert_string_equal(r.stream, stream);
}

static void test_routes(void **state)
{
    (void)state;
    route_is("/api/v1/workflow-runs/run-0001/stream", ROUTE_STREAM, "workflow-runs/run-0001",
             RTLOG_OK);
    route_is("api/v1/workflow-runs/run-0001/events", ROUTE_EVENTS, "workflow-runs/run-0001",
             RTLOG_OK);
    route_is("/api/v1/deployment-jobs/job:1.a_b/stream", ROUTE_STREAM,
             "deployment-jobs/job:1.a_b", RTLOG_OK);
    route_is("/api/v1/dashboard/stream", ROUTE_STREAM, "dashboard", RTLOG_OK);
    route_is("/api/v1/dashboard/events", ROUTE_EVENTS, "dashboard", RTLOG_OK);
    route_is("/metrics", ROUTE_METRICS, NULL, RTLOG_OK);
    route_is("/health/live", ROUTE_LIVE, NULL, RTLOG_OK);
    route_is("/health/ready", ROUTE_READY, NULL, RTLOG_OK);
    /* bad ids: a 400, never a stray stream */
    route_is("/api/v1/workflow-runs//stream", ROUTE_STREAM, NULL, RTLOG_E_INVAL);
    route_is("/api/v1/workflow-runs/a/b/stream", ROUTE_STREAM, NULL, RTLOG_E_INVAL);
    route_is("/api/v1/workflow-runs/../stream", ROUTE_STREAM, NULL, RTLOG_E_INVAL);
    route_is("/api/v1/workflow-runs/run\r\nFAKE/stream", ROUTE_STREAM, NULL, RTLOG_E_INVAL);
    route_is("/api/v1/workflow-runs/run-0001/../run-0002/stream", ROUTE_STREAM, NULL,
             RTLOG_E_INVAL);
    char big[600];
    snprintf(big, sizeof big, "/api/v1/workflow-runs/%0500d/stream", 7);
    route_is(big, ROUTE_STREAM, NULL, RTLOG_E_INVAL);
    snprintf(big, sizeof big, "/api/v1/workflow-runs/%0128d/stream", 7);
    route_is(big, ROUTE_STREAM, NULL, RTLOG_OK);
    snprintf(big, sizeof big, "/api/v1/workflow-runs/%0129d/stream", 7);
    route_is(big, ROUTE_STREAM, NULL, RTLOG_E_INVAL);
    /* not ours */
    route_is("/", ROUTE_NONE, NULL, RTLOG_OK);
    route_is("/api/v1/workflow-runs/x", ROUTE_NONE, NULL, RTLOG_OK);
    route_is("/api/v1/unknown/x/stream", ROUTE_NONE, NULL, RTLOG_OK);
    route_is("/api/v2/workflow-runs/x/stream", ROUTE_NONE, NULL, RTLOG_OK);
    route_is("/api/v1/dashboard/streams", ROUTE_NONE, NULL, RTLOG_OK);
    route_is("/api/v1/agents/agent-a/task-stream", ROUTE_STREAM, "agents/agent-a", RTLOG_OK);
    route_is("/metrics/x", ROUTE_NONE, NULL, RTLOG_OK);
}

static void test_error_json(void **state)
{
    (void)state;
    rtlog_buf b = {0};
    assert_int_equal(rtlog_error_json(&b, RTLOG_E_CONFLICT, "say \"hi\"\n", 1, 42), RTLOG_OK);
    json_error_t je;
    json_t *o = json_loadb(b.p, b.len, 0, &je);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "error");
    assert_string_equal(json_string_value(json_object_get(o, "code")), "conflict");
    assert_string_equal(json_string_value(json_object_get(o, "message")), "say \"hi\"\n");
    assert_int_equal(json_integer_value(json_object_get(o, "lastSeq")), 42);
    assert_non_null(json_string_value(json_object_get(o, "timestamp")));
    assert_int_equal(memcmp(b.p, "{\"type\":\"error\",\"code\":", 23), 0);
    json_decref(o);
    rtlog_buf_clear(&b);
    /* invalid UTF-8 in a message never reaches the wire */
    assert_int_equal(rtlog_error_json(&b, RTLOG_E_INVAL, "bad \xff", 0, 0), RTLOG_OK);
    o = json_loadb(b.p, b.len, 0, &je);
    assert_non_null(o);
    assert_null(json_object_get(o, "lastSeq"));
    assert_string_equal(json_string_value(json_object_get(o, "code")), "bad_request");
    json_decref(o);
    rtlog_buf_free(&b);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_c03),   cmocka_unit_test(test_seq_and_bool),
        cmocka_unit_test(test_bearer),       cmocka_unit_test(test_origin),
        cmocka_unit_test(test_routes),       cmocka_unit_test(test_error_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
