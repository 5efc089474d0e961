/* test_log.c - handed.md C15: the logger never writes a token or a forged line, whatever
 * a call site formats: JWTs, token= values, Bearer credentials and JSON auth messages are
 * redacted, and a redaction ends at whitespace or a delimiter so the text around it
 * survives; CR/LF and other control or non-ASCII bytes are escaped; long input is cut.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static const char *TOKEN =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjk5OTk5OTk5OTl9."
    "c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl";
static const char *PAYLOAD = "eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjk5OTk5OTk5OTl9";
static const char *SIG = "c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl";

static void clean(const char *in, char *out, size_t cap)
{
    rtlog_log_sanitize(in, strlen(in), out, cap);
    assert_null(strstr(out, PAYLOAD));
    assert_null(strstr(out, SIG));
    assert_null(strchr(out, '\n'));
    assert_null(strchr(out, '\r'));
}

static void test_redaction(void **state)
{
    (void)state;
    char in[1024], out[1024];
    snprintf(in, sizeof in, "GET /api/v1/x/stream?lastEventId=4&token=%s&follow=1", TOKEN);
    clean(in, out, sizeof out);
    assert_string_equal(out, "GET /api/v1/x/stream?lastEventId=4&token=[REDACTED]&follow=1");

    snprintf(in, sizeof in, "Authorization: Bearer  %s extra", TOKEN);
    clean(in, out, sizeof out);
    assert_string_equal(out, "Authorization: Bearer [REDACTED] extra");

    snprintf(in, sizeof in, "msg {\"type\":\"auth\",\"token\": \"%s\"} bad", TOKEN);
    clean(in, out, sizeof out);
    assert_string_equal(out, "msg {\"type\":\"auth\",\"token\": \"[REDACTED]\"} bad");

    /* a bare JWT or just its payload, anywhere */
    snprintf(in, sizeof in, "x=%s.", TOKEN);
    clean(in, out, sizeof out);
    assert_string_equal(out, "x=[REDACTED]");
    snprintf(in, sizeof in, "(%s)", PAYLOAD);
    clean(in, out, sizeof out);
    assert_string_equal(out, "([REDACTED])");
    /* access_token= is covered by token= */
    snprintf(in, sizeof in, "?access_token=%s", SIG);
    clean(in, out, sizeof out);
    assert_string_equal(out, "?access_token=[REDACTED]");
}

/* A redaction takes the credential and nothing else: whitespace and delimiters end it, an
 * empty value is left alone, and the text around it survives (a log line once read
 * "Bearer [REDACTED] ?token=[REDACTED]" for "Bearer or ?token=)", losing "or" and ")"). */
static void test_redaction_bounds(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        /* the line that lost text: "or" still reads as a Bearer credential, ")" survives */
        {"sse refused: unauthorized (a token is required (Authorization: Bearer or ?token=)",
         "sse refused: unauthorized (a token is required (Authorization: Bearer [REDACTED] "
         "?token=)"},
        /* the server's messages are worded so that nothing in them reads as a credential */
        {"sse refused: unauthorized (a token is required: Authorization header or token query "
         "parameter)",
         "sse refused: unauthorized (a token is required: Authorization header or token query "
         "parameter)"},
        {"ingest rejected: missing or malformed Authorization header (expected \"Bearer\" and a "
         "token)",
         "ingest rejected: missing or malformed Authorization header (expected \"Bearer\" and a "
         "token)"},
        {"ws error: bad_request (expected {\"type\":\"auth\",\"token\":...})",
         "ws error: bad_request (expected {\"type\":\"auth\",\"token\":...})"},
        /* delimiters end a value */
        {"(token=abc.def) tail", "(token=[REDACTED]) tail"},
        {"?token=a%2Bb&x=1", "?token=[REDACTED]&x=1"},
        {"Bearer abc.def, next", "Bearer [REDACTED], next"},
        {"Bearer abc\tnext", "Bearer [REDACTED]\\tnext"},
        {"Bearer abc\nFORGED", "Bearer [REDACTED]\\nFORGED"},
        {"{\"token\":\"abc\"} after", "{\"token\":\"[REDACTED]\"} after"},
        {"{\"token\": \"abc\\u0041\"}", "{\"token\": \"[REDACTED]\\\\u0041\"}"},
        /* empty values: nothing to hide, nothing eaten */
        {"token= x", "token= x"},
        {"token=&follow=1", "token=&follow=1"},
        {"Bearer (none)", "Bearer (none)"},
        {"Bearer    ", "Bearer    "},
        {"{\"token\":\"\"}", "{\"token\":\"\"}"},
        /* at the end of the input */
        {"?token=abc", "?token=[REDACTED]"},
        {"Bearer abc", "Bearer [REDACTED]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[512];
        size_t n = rtlog_log_sanitize(cases[i].in, strlen(cases[i].in), out, sizeof out);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("case %zu: %s\n  got  %s\n  want %s", i, cases[i].in, out, cases[i].want);
        assert_int_equal(n, strlen(out));
    }
}

static void test_escaping(void **state)
{
    (void)state;
    char out[256];
    const char *in = "stream=run\r\nFAKE-LOG-LINE\t\x01\x7f\xce\xba\\";
    rtlog_log_sanitize(in, strlen(in), out, sizeof out);
    assert_string_equal(out, "stream=run\\r\\nFAKE-LOG-LINE\\t\\x01\\x7f\\xce\\xba\\\\");
    /* an embedded NUL is escaped, not a terminator */
    rtlog_log_sanitize("a\0b", 3, out, sizeof out);
    assert_string_equal(out, "a\\x00b");
    /* truncation keeps the output terminated and marked */
    char small[16];
    rtlog_log_sanitize("0123456789abcdefghijklmnop", 26, small, sizeof small);
    assert_true(strlen(small) < sizeof small);
    assert_non_null(strstr(small, "..."));
}

static void test_log_line(void **state)
{
    (void)state;
    /* the real logger writes one sanitised line to stderr */
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(2);
    assert_true(saved >= 0);
    dup2(fileno(tmp), 2);
    rtlog_log_set_level_name("info");
    rtlog_log(RTLOG_LOG_INFO, "test", "uri=/x?token=%s id=a\r\nb", TOKEN);
    rtlog_log(RTLOG_LOG_DEBUG, "test", "hidden at info level");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    buf[n] = '\0';
    fclose(tmp);
    assert_non_null(strstr(buf, " rtlog[test] INFO uri=/x?token=[REDACTED] id=a\\r\\nb\n"));
    assert_null(strstr(buf, "hidden"));
    assert_null(strstr(buf, PAYLOAD));
    assert_int_equal(strchr(buf, '\n') - buf + 1, (long)n); /* exactly one line */
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redaction),
        cmocka_unit_test(test_redaction_bounds),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_log_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
