/* test_exact.c - exactness of JSON -> stored form -> JSON: numbers keep their kind and value
 * in the shortest form, strings keep every byte, key order is the producer's.
 *
 * Each case wraps a value as field "x" of a step_progress event (a type that gets no filled
 * timestamp) and states the exact line that must come back. Where the output differs from
 * the input text it is on purpose (escape spelling, exponent spelling), and the expected
 * text says so.
 */
#include "schema_test.h"

#define PRE "{\"type\":\"step_progress\",\"nodeId\":\"n\",\"progress\":1,\"x\":"

static void check(const char *value_in, const char *value_out)
{
    char in[512], want[512];
    snprintf(in, sizeof in, PRE "%s}", value_in);
    snprintf(want, sizeof want, PRE "%s}", value_out);
    rtlog_batch b = {0};
    parse_ok(RTLOG_FAM_RUN, 0, in, &b);
    assert_int_equal(b.n, 1);
    char *got = render_dup(&b.recs[0], 0, 0);
    if (strcmp(got, want) != 0)
        fail_msg("value %s\n want %s\n got  %s", value_in, want, got);
    /* rec.json is the same bytes */
    assert_int_equal(b.recs[0].json_len, strlen(want));
    assert_memory_equal(b.recs[0].json, want, strlen(want));
    /* and parsing the output again is a fixed point */
    rtlog_batch b2 = {0};
    parse_ok(RTLOG_FAM_RUN, 0, got, &b2);
    char *again = render_dup(&b2.recs[0], 0, 0);
    assert_string_equal(again, got);
    free(again);
    free(got);
    rtlog_batch_free(&b2);
    rtlog_batch_free(&b);
}

static void reals(void **state)
{
    (void)state;
    check("5.2", "5.2");
    check("1.0", "1.0");
    check("0.1", "0.1");
    check("1e-7", "1e-07"); /* same double; %g spells the exponent with two digits */
    check("-0.0", "-0.0");
    check("1.5e300", "1.5e+300");
    check("1e100", "1e+100");
    check("0.30000000000000004", "0.30000000000000004"); /* needs all 17 digits */
    check("100.0", "100.0");
    check("-2.5", "-2.5");
    check("125.5", "125.5");
    check("1e15", "1e+15");
    check("123456789012345.6", "123456789012345.6");
    check("2.2250738585072014e-308", "2.2250738585072014e-308");
    check("1.7976931348623157e308", "1.7976931348623157e+308");
    check("0.000123", "0.000123");
    check("1E2", "100.0"); /* a real stays a real even when written like an integer */
    /* subnormals: the shortest spelling, not 15 digits of a value that has fewer */
    check("4.9e-324", "5e-324");
    check("5e-324", "5e-324");
    check("2.225073858507201e-308", "2.225073858507201e-308");
}

static void integers(void **state)
{
    (void)state;
    check("123456789012345678", "123456789012345678");
    check("9007199254740993", "9007199254740993"); /* 2^53 + 1: no double on the way */
    check("0", "0");
    check("-0", "0"); /* jansson reads -0 as the integer 0 */
    check("-1", "-1");
    check("-32", "-32");
    check("-33", "-33");
    check("127", "127");
    check("128", "128");
    check("255", "255");
    check("256", "256");
    check("65535", "65535");
    check("65536", "65536");
    check("-129", "-129");
    check("-32769", "-32769");
    check("4294967296", "4294967296");
    check("-2147483649", "-2147483649");
    check("9223372036854775807", "9223372036854775807");
    check("-9223372036854775808", "-9223372036854775808");
}

static void strings(void **state)
{
    (void)state;
    check("\"\\u0000\"", "\"\\u0000\"");
    check("\"\\u001b[31mred\"", "\"\\u001b[31mred\"");
    check("\"a\\r\\nb\"", "\"a\\r\\nb\"");
    check("\"\\t\\b\\f\\u0001\\u001f\"", "\"\\t\\b\\f\\u0001\\u001f\"");
    check("\"\\u000B\"", "\"\\u000b\"");                 /* lowercase hex, like Python's json */
    check("\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""); /* astral char written raw */
    check("\"\xf0\x9f\x98\x80\"", "\"\xf0\x9f\x98\x80\"");
    check("\"caf\\u00e9\"", "\"caf\xc3\xa9\"");
    check("\"\\u007f\"", "\"\x7f\""); /* DEL is not a control char for JSON */
    check("\"\\/\"", "\"/\"");
    check("\"q\\\"b\\\\s\"", "\"q\\\"b\\\\s\"");
    check("\"\"", "\"\"");
    check("\"\\u2028\"", "\"\xe2\x80\xa8\"");
}

/* Reference escaper, written the slow obvious way, for the renderer's fast paths. */
static size_t ref_escape(const unsigned char *s, size_t n, char *out)
{
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f') {
            out[o++] = '\\';
            out[o++] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : c == '\b' ? 'b' : 'f';
        } else if (c < 0x20) {
            o += (size_t)sprintf(out + o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    return o;
}

/* Every byte value at every offset of a long run (the renderer scans 8 bytes at a time and
 * in 4 KiB chunks, so position matters), checked against the reference escaper. The input
 * JSON spells every special byte as \u00XX, so jansson gives us exactly these bytes. */
static void escape_positions(void **state)
{
    (void)state;
    rtlog_buf in = {0}, out = {0};
    unsigned char raw[40];
    char want[40 * 6 + 2];
    for (unsigned c = 0; c < 0x80; c++) {
        for (size_t pos = 0; pos < 24; pos++) {
            size_t n = 17 + pos % 9;
            memset(raw, 'a', sizeof raw);
            raw[pos % n] = (unsigned char)c;
            rtlog_buf_clear(&in);
            rtlog_buf_puts(&in,
                           "{\"type\":\"step_progress\",\"nodeId\":\"n\",\"progress\":1,\"x\":\"");
            for (size_t i = 0; i < n; i++) {
                if (raw[i] < 0x20 || raw[i] == '"' || raw[i] == '\\')
                    rtlog_buf_printf(&in, "\\u%04x", raw[i]);
                else
                    rtlog_buf_append(&in, &raw[i], 1);
            }
            rtlog_buf_puts(&in, "\"}");
            rtlog_parse_opts o = {.family = RTLOG_FAM_RUN, .now = TEST_NOW};
            rtlog_batch b = {0};
            rtlog_errinfo ei;
            if (rtlog_schema_parse(&o, in.p, in.len, &b, &ei))
                fail_msg("byte 0x%02x at %zu: %s", c, pos, ei.text);
            size_t wn = ref_escape(raw, n, want);
            const char *json = b.recs[0].json;
            size_t pre =
                strlen("{\"type\":\"step_progress\",\"nodeId\":\"n\",\"progress\":1,\"x\":");
            assert_int_equal(b.recs[0].json_len, pre + wn + 1);
            if (memcmp(json + pre, want, wn) != 0)
                fail_msg("byte 0x%02x at %zu: got %.*s want %.*s", c, pos, (int)wn, json + pre,
                         (int)wn, want);
            rtlog_batch_free(&b);
        }
    }
    /* a 10,000-byte run crosses the 4 KiB chunk edges with specials right at them */
    unsigned char *big = malloc(10000);
    char *bigwant = malloc(10000 * 6 + 2);
    for (size_t i = 0; i < 10000; i++)
        big[i] = (i % 4096 == 4095 || i % 4096 == 0 || i % 977 == 3)
                     ? (unsigned char)(i % 32)
                     : (unsigned char)('A' + i % 50);
    rtlog_buf_clear(&in);
    rtlog_buf_puts(&in, "{\"type\":\"step_progress\",\"nodeId\":\"n\",\"progress\":1,\"x\":\"");
    for (size_t i = 0; i < 10000; i++) {
        if (big[i] < 0x20 || big[i] == '"' || big[i] == '\\')
            rtlog_buf_printf(&in, "\\u%04x", big[i]);
        else
            rtlog_buf_append(&in, &big[i], 1);
    }
    rtlog_buf_puts(&in, "\"}");
    rtlog_batch b = {0};
    rtlog_parse_opts o = {.family = RTLOG_FAM_RUN, .now = TEST_NOW};
    rtlog_errinfo ei;
    assert_int_equal(rtlog_schema_parse(&o, in.p, in.len, &b, &ei), RTLOG_OK);
    size_t wn = ref_escape(big, 10000, bigwant);
    size_t pre = strlen("{\"type\":\"step_progress\",\"nodeId\":\"n\",\"progress\":1,\"x\":");
    assert_int_equal(b.recs[0].json_len, pre + wn + 1);
    assert_memory_equal(b.recs[0].json + pre, bigwant, wn);
    rtlog_batch_free(&b);
    free(big);
    free(bigwant);
    rtlog_buf_free(&in);
    rtlog_buf_free(&out);
}

static void structure(void **state)
{
    (void)state;
    check("{\"b\":1,\"a\":{\"z\":1,\"y\":2}}", "{\"b\":1,\"a\":{\"z\":1,\"y\":2}}");
    check("[1,2.5,null,true,false,\"s\",[],{}]", "[1,2.5,null,true,false,\"s\",[],{}]");
    check(" { \"k\" : [ 1 , 2 ] } ", "{\"k\":[1,2]}"); /* whitespace goes, order stays */
    check("{\"\":\"empty key\"}", "{\"\":\"empty key\"}");

    /* unknown extra fields, before and after known ones, keep their place */
    rtlog_batch b = {0};
    const char *in = "{\"zz\":1,\"type\":\"step_log\",\"extra\":{\"q\":[1]},\"nodeId\":\"n\","
                     "\"line\":\"l\",\"level\":\"info\",\"timestamp\":\"t\",\"after\":null}";
    parse_ok(RTLOG_FAM_RUN, 0, in, &b);
    char *got = render_dup(&b.recs[0], 7, 0);
    char want[512];
    snprintf(want, sizeof want, "%.*s,\"seq\":7}", (int)strlen(in) - 1, in);
    assert_string_equal(got, want);
    free(got);
    rtlog_batch_free(&b);
}

static void long_string(void **state)
{
    (void)state;
    /* a 450 KB log line with ESC and CR sprinkled in, like the real gha long line */
    size_t n = 450 * 1024;
    char *line = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        line[i] = (char)('a' + i % 26);
    for (size_t i = 0; i < n; i += 4099)
        line[i] = '\x1b';
    line[n - 1] = '\r';
    line[n] = '\0';

    /* the input JSON escapes ESC as \u001b and CR as \r, like log2events */
    size_t cap = n * 7 + 256, o = 0;
    char *in = malloc(cap);
    o += (size_t)snprintf(in, cap, "{\"type\":\"step_log\",\"nodeId\":\"n\",\"line\":\"");
    for (size_t i = 0; i < n; i++) {
        if (line[i] == '\x1b') {
            memcpy(in + o, "\\u001b", 6);
            o += 6;
        } else if (line[i] == '\r') {
            memcpy(in + o, "\\r", 2);
            o += 2;
        } else {
            in[o++] = line[i];
        }
    }
    o += (size_t)snprintf(in + o, cap - o, "\",\"level\":\"info\",\"timestamp\":\"t\"}");

    rtlog_parse_opts opt = {.family = RTLOG_FAM_RUN, .now = TEST_NOW};
    rtlog_batch b = {0};
    rtlog_errinfo ei;
    assert_int_equal(rtlog_schema_parse(&opt, in, o, &b, &ei), RTLOG_OK);
    assert_int_equal(b.recs[0].json_len, o);
    assert_memory_equal(b.recs[0].json, in, o);
    const char *v;
    size_t vl;
    assert_int_equal(rtlog_schema_rec_field_str(b.recs[0].mp, b.recs[0].mp_len, "line", &v, &vl),
                     RTLOG_OK);
    assert_int_equal(vl, n);
    assert_memory_equal(v, line, n);
    rtlog_batch_free(&b);
    free(in);
    free(line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reals),       cmocka_unit_test(integers),
        cmocka_unit_test(strings),     cmocka_unit_test(structure),
        cmocka_unit_test(long_string), cmocka_unit_test(escape_positions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
