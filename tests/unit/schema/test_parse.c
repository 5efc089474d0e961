/* test_parse.c - what parsing promises besides the golden error texts: record flags and
 * status, the filled timestamp, secrets redaction, the seq invariant storage relies on, size
 * and count limits at their exact edges, NDJSON line handling, the record lookups, and that
 * a failed parse leaves the caller's batch untouched. */
#include "schema_test.h"

#include <time.h>

/* render(mp, seq, REDACT) == rec.json minus '}' + ",\"seq\":N}" and rec.json == render(mp,0) */
static void check_invariant(const rtlog_rec *r)
{
    char *zero = render_dup(r, 0, RTLOG_JSON_REDACT);
    assert_int_equal(strlen(zero), r->json_len);
    assert_memory_equal(zero, r->json, r->json_len);
    const uint64_t seqs[] = {1, 9, 10, 12345, 9007199254740993ull, UINT64_MAX};
    for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
        char *with = render_dup(r, seqs[i], RTLOG_JSON_REDACT);
        char want[4096];
        snprintf(want, sizeof want, "%.*s,\"seq\":%llu}", (int)r->json_len - 1, r->json,
                 (unsigned long long)seqs[i]);
        assert_string_equal(with, want);
        free(with);
    }
    free(zero);
}

static void flags_and_status(void **state)
{
    (void)state;
    rtlog_batch b = {0};
    parse_ok(RTLOG_FAM_RUN, 1,
             "{\"type\":\"step_started\",\"nodeId\":\"a\",\"stepType\":\"x\"}\n"
             "{\"type\":\"workflow_completed\",\"status\":\"succeeded\",\"duration\":1.5}\n",
             &b);
    assert_int_equal(b.n, 2);
    assert_string_equal(b.recs[0].type, "step_started");
    assert_int_equal(b.recs[0].flags, 0);
    assert_string_equal(b.recs[0].status, "");
    assert_string_equal(b.recs[1].type, "workflow_completed");
    assert_int_equal(b.recs[1].flags, RTLOG_REC_SEALS);
    assert_string_equal(b.recs[1].status, "succeeded");
    check_invariant(&b.recs[0]);
    check_invariant(&b.recs[1]);
    rtlog_batch_free(&b);
    rtlog_batch_free(&b); /* freeing twice is harmless: the batch is empty after the first */
    rtlog_batch_free(NULL);

    parse_ok(RTLOG_FAM_JOB, 0, "{\"type\":\"job_completed\",\"status\":\"failed\"}", &b);
    assert_int_equal(b.recs[0].flags, RTLOG_REC_SEALS);
    assert_string_equal(b.recs[0].status, "failed");
    rtlog_batch_free(&b);

    parse_ok(RTLOG_FAM_DASHBOARD, 0, "{\"type\":\"metric_update\",\"metrics\":{}}", &b);
    assert_int_equal(b.recs[0].flags, RTLOG_REC_SNAPSHOT);
    rtlog_batch_free(&b);

    /* a long status is cut to 31 bytes, never inside a UTF-8 sequence, never past a NUL */
    parse_ok(RTLOG_FAM_RUN, 0,
             "{\"type\":\"workflow_completed\",\"status\":\"0123456789012345678901234567890123\"}",
             &b);
    assert_string_equal(b.recs[0].status, "0123456789012345678901234567890");
    rtlog_batch_free(&b);
    /* 30 ASCII bytes then "é" (2 bytes): byte 31 would split it */
    parse_ok(RTLOG_FAM_RUN, 0,
             "{\"type\":\"workflow_completed\",\"status\":\"012345678901234567890123456789"
             "\xc3\xa9xyz\"}",
             &b);
    assert_string_equal(b.recs[0].status, "012345678901234567890123456789");
    rtlog_batch_free(&b);
    parse_ok(RTLOG_FAM_RUN, 0, "{\"type\":\"workflow_completed\",\"status\":\"ok\\u0000hidden\"}",
             &b);
    assert_string_equal(b.recs[0].status, "ok");
    rtlog_batch_free(&b);

    assert_int_equal(rtlog_schema_type_flags(RTLOG_FAM_RUN, "workflow_completed"), RTLOG_REC_SEALS);
    assert_int_equal(rtlog_schema_type_flags(RTLOG_FAM_JOB, "job_completed"), RTLOG_REC_SEALS);
    assert_int_equal(rtlog_schema_type_flags(RTLOG_FAM_DASHBOARD, "metric_update"),
                     RTLOG_REC_SNAPSHOT);
    assert_int_equal(rtlog_schema_type_flags(RTLOG_FAM_RUN, "step_log"), 0);
    assert_int_equal(rtlog_schema_type_flags(RTLOG_FAM_JOB, "workflow_completed"), 0);
    assert_int_equal(rtlog_schema_type_flags(RTLOG_FAM_RUN, "nope"), 0);
    assert_int_equal(rtlog_schema_type_flags((rtlog_family)0, "step_log"), 0);
    assert_int_equal(rtlog_schema_type_flags((rtlog_family)99, "step_log"), 0);
    assert_int_equal(rtlog_schema_type_flags(RTLOG_FAM_RUN, NULL), 0);
}

static void secrets(void **state)
{
    (void)state;
    const char *in =
        "{\"type\":\"task_assigned\",\"task\":{\"taskId\":\"t1\",\"taskType\":\"docker.pull\","
        "\"credentials\":{\"registry.password\":\"hunter2\"},\"timeout\":300},"
        "\"jobId\":\"job-0001\",\"credentials\":\"top-level is not a secret\"}";
    rtlog_batch b = {0};
    parse_ok(RTLOG_FAM_AGENT_TASK, 0, in, &b);
    const rtlog_rec *r = &b.recs[0];
    assert_int_equal(r->flags, RTLOG_REC_SECRET);
    /* the hash-chained JSON never holds the secret */
    assert_null(memmem(r->json, r->json_len, "hunter2", 7));
    const char *want = "{\"type\":\"task_assigned\",\"task\":{\"taskId\":\"t1\",\"taskType\":"
                       "\"docker.pull\",\"credentials\":\"[REDACTED]\",\"timeout\":300},"
                       "\"jobId\":\"job-0001\",\"credentials\":\"top-level is not a secret\"}";
    assert_int_equal(r->json_len, strlen(want));
    assert_memory_equal(r->json, want, r->json_len);
    /* the agent itself gets the clear form */
    char *clear = render_dup(r, 3, 0);
    char want_clear[1024];
    snprintf(want_clear, sizeof want_clear, "%.*s,\"seq\":3}", (int)strlen(in) - 1, in);
    assert_string_equal(clear, want_clear);
    free(clear);
    check_invariant(r);
    rtlog_batch_free(&b);

    /* no credentials: no flag, nothing redacted */
    parse_ok(RTLOG_FAM_AGENT_TASK, 0,
             "{\"type\":\"task_assigned\",\"task\":{\"taskId\":\"t1\",\"taskType\":\"x\"}}", &b);
    assert_int_equal(b.recs[0].flags, 0);
    assert_int_equal(rtlog_schema_type_flags(RTLOG_FAM_AGENT_TASK, "task_assigned"), 0);
    rtlog_batch_free(&b);

    /* other types never get redacted, even with a task.credentials-shaped field */
    parse_ok(RTLOG_FAM_RUN, 0,
             "{\"type\":\"step_started\",\"nodeId\":\"a\",\"stepType\":\"x\","
             "\"task\":{\"credentials\":{\"k\":\"v\"}},\"timestamp\":\"t\"}",
             &b);
    assert_int_equal(b.recs[0].flags, 0);
    assert_non_null(memmem(b.recs[0].json, b.recs[0].json_len, "\"k\":\"v\"", 7));
    rtlog_batch_free(&b);
}

static void timestamps(void **state)
{
    (void)state;
    /* from the clock when opts.now is NULL: RFC 3339 UTC with milliseconds */
    rtlog_parse_opts o = {.family = RTLOG_FAM_RUN};
    const char *in = "{\"type\":\"step_log\",\"nodeId\":\"a\",\"line\":\"x\",\"level\":\"info\"}";
    rtlog_batch b = {0};
    rtlog_errinfo ei;
    char before[32], after[32];
    rtlog_schema_now(before);
    assert_int_equal(rtlog_schema_parse(&o, in, strlen(in), &b, &ei), RTLOG_OK);
    rtlog_schema_now(after);
    const char *v;
    size_t vl;
    assert_int_equal(
        rtlog_schema_rec_field_str(b.recs[0].mp, b.recs[0].mp_len, "timestamp", &v, &vl), RTLOG_OK);
    assert_int_equal(vl, 24);
    char ts[32];
    memcpy(ts, v, vl);
    ts[vl] = '\0';
    assert_true(strcmp(before, ts) <= 0 && strcmp(ts, after) <= 0);
    /* appended as the last key */
    char want[256];
    snprintf(want, sizeof want, "%.*s,\"timestamp\":\"%s\"}", (int)strlen(in) - 1, in, ts);
    assert_int_equal(b.recs[0].json_len, strlen(want));
    assert_memory_equal(b.recs[0].json, want, b.recs[0].json_len);
    rtlog_batch_free(&b);

    /* rtlog_schema_now's shape: 2026-01-10T14:23:45.123Z */
    char now[32];
    assert_ptr_equal(rtlog_schema_now(now), now);
    assert_int_equal(strlen(now), 24);
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < 24; i++) {
        if (shape[i] == 'd')
            assert_true(now[i] >= '0' && now[i] <= '9');
        else
            assert_int_equal(now[i], shape[i]);
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    assert_non_null(strptime(now, "%Y-%m-%dT%H:%M:%S", &tm));
    time_t t = timegm(&tm);
    assert_true(llabs((long long)(t - time(NULL))) <= 2);

    /* only types whose spec example has a timestamp get one */
    struct {
        rtlog_family fam;
        const char *in;
        int filled;
    } cases[] = {
        {RTLOG_FAM_RUN, "{\"type\":\"step_started\",\"nodeId\":\"a\",\"stepType\":\"x\"}", 1},
        {RTLOG_FAM_RUN, "{\"type\":\"step_progress\",\"nodeId\":\"a\",\"progress\":0}", 0},
        {RTLOG_FAM_RUN, "{\"type\":\"step_completed\",\"nodeId\":\"a\",\"status\":\"x\"}", 1},
        {RTLOG_FAM_RUN, "{\"type\":\"workflow_completed\",\"status\":\"x\"}", 1},
        {RTLOG_FAM_JOB,
         "{\"type\":\"task_started\",\"taskId\":\"t\",\"targetId\":\"g\",\"taskType\":\"x\"}", 1},
        {RTLOG_FAM_JOB, "{\"type\":\"task_progress\",\"taskId\":\"t\",\"progress\":100}", 0},
        {RTLOG_FAM_JOB, "{\"type\":\"task_log\",\"taskId\":\"t\",\"line\":\"l\"}", 0},
        {RTLOG_FAM_JOB, "{\"type\":\"task_completed\",\"taskId\":\"t\",\"status\":\"x\"}", 1},
        {RTLOG_FAM_JOB, "{\"type\":\"job_completed\",\"status\":\"x\"}", 1},
        {RTLOG_FAM_AGENT_TASK, "{\"type\":\"task_cancelled\",\"taskId\":\"t\"}", 0},
        {RTLOG_FAM_AGENT_REPORT, "{\"type\":\"task_completed\",\"taskId\":\"t\",\"success\":false}",
         0},
        {RTLOG_FAM_AGENT_REPORT, "{\"type\":\"task_log\",\"taskId\":\"t\",\"message\":\"m\"}", 0},
        {RTLOG_FAM_DASHBOARD, "{\"type\":\"metric_update\",\"metrics\":{}}", 1},
        {RTLOG_FAM_DASHBOARD, "{\"type\":\"alert\",\"alert\":{\"severity\":\"warning\"}}", 0},
        {RTLOG_FAM_DASHBOARD,
         "{\"type\":\"promotion_update\",\"promotion\":{\"id\":\"p\",\"status\":\"s\"}}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parse_ok(cases[i].fam, 0, cases[i].in, &b);
        rtlog_err rc =
            rtlog_schema_rec_field_str(b.recs[0].mp, b.recs[0].mp_len, "timestamp", &v, &vl);
        if (cases[i].filled) {
            assert_int_equal(rc, RTLOG_OK);
            assert_int_equal(vl, strlen(TEST_NOW));
            assert_memory_equal(v, TEST_NOW, vl);
        } else if (rc != RTLOG_E_NOTFOUND) {
            fail_msg("timestamp filled for %s", cases[i].in);
        }
        check_invariant(&b.recs[0]);
        rtlog_batch_free(&b);
    }
}

static void limits(void **state)
{
    (void)state;
    const char *ev =
        "{\"type\":\"step_started\",\"nodeId\":\"a\",\"stepType\":\"x\",\"timestamp\":\"t\"}";
    size_t n = strlen(ev); /* already canonical: its JSON size is its length */
    rtlog_parse_opts o = {.family = RTLOG_FAM_RUN, .now = TEST_NOW, .max_event_bytes = n};
    rtlog_batch b = {0};
    rtlog_errinfo ei;
    assert_int_equal(rtlog_schema_parse(&o, ev, n, &b, &ei), RTLOG_OK);
    rtlog_batch_free(&b);
    o.max_event_bytes = n - 1;
    assert_int_equal(rtlog_schema_parse(&o, ev, n, &b, &ei), RTLOG_E_TOOBIG);
    assert_int_equal(ei.event_index, 0);

    /* the default limit is 1 MiB of canonical JSON */
    o.max_event_bytes = 0;
    const char *pre =
        "{\"type\":\"step_log\",\"nodeId\":\"a\",\"level\":\"info\",\"timestamp\":\"t\","
        "\"line\":\"";
    size_t fixed = strlen(pre) + 2;
    char *big = malloc((1u << 20) + 16);
    memcpy(big, pre, strlen(pre));
    memset(big + strlen(pre), 'x', (1u << 20) - fixed);
    memcpy(big + (1u << 20) - 2, "\"}", 2);
    assert_int_equal(rtlog_schema_parse(&o, big, 1u << 20, &b, &ei), RTLOG_OK);
    assert_int_equal(b.recs[0].json_len, 1u << 20);
    rtlog_batch_free(&b);
    /* one more byte of content is over */
    memcpy(big, pre, strlen(pre));
    memset(big + strlen(pre), 'x', (1u << 20) - fixed + 1);
    memcpy(big + (1u << 20) - 1, "\"}", 2);
    assert_int_equal(rtlog_schema_parse(&o, big, (1u << 20) + 1, &b, &ei), RTLOG_E_TOOBIG);
    /* the limit applies to the canonical JSON: escapes count as they are written out, so
     * whitespace in the body does not count */
    free(big);

    /* max_events, array and NDJSON */
    o.max_events = 2;
    const char *two = "[{\"type\":\"step_started\",\"nodeId\":\"a\",\"stepType\":\"x\"},"
                      "{\"type\":\"step_started\",\"nodeId\":\"b\",\"stepType\":\"x\"}]";
    assert_int_equal(rtlog_schema_parse(&o, two, strlen(two), &b, &ei), RTLOG_OK);
    assert_int_equal(b.n, 2);
    rtlog_batch_free(&b);
    o.ndjson = 1;
    const char *three = "{\"type\":\"step_started\",\"nodeId\":\"a\",\"stepType\":\"x\"}\n\n"
                        "{\"type\":\"step_started\",\"nodeId\":\"b\",\"stepType\":\"x\"}\n"
                        "{\"type\":\"step_started\",\"nodeId\":\"c\",\"stepType\":\"x\"}\n";
    assert_int_equal(rtlog_schema_parse(&o, three, strlen(three), &b, &ei), RTLOG_E_TOOBIG);
    assert_int_equal(ei.event_index, -1);

    /* the default event count is 100,000 */
    o.max_events = 0;
    size_t line_len = strlen("{\"type\":\"step_progress\",\"nodeId\":\"a\",\"progress\":1}\n");
    char *many = malloc(line_len * 100001 + 1);
    for (size_t i = 0; i < 100001; i++)
        memcpy(many + i * line_len,
               "{\"type\":\"step_progress\",\"nodeId\":\"a\",\"progress\":1}\n", line_len);
    assert_int_equal(rtlog_schema_parse(&o, many, line_len * 100000, &b, &ei), RTLOG_OK);
    assert_int_equal(b.n, 100000);
    rtlog_batch_free(&b);
    assert_int_equal(rtlog_schema_parse(&o, many, line_len * 100001, &b, &ei), RTLOG_E_TOOBIG);
    free(many);
}

static void ndjson_lines(void **state)
{
    (void)state;
    rtlog_batch b = {0};
    /* CRLF, blank and whitespace-only lines, no final newline, CR inside a string kept */
    parse_ok(RTLOG_FAM_RUN, 1,
             "\r\n  \t \r\n{\"type\":\"step_progress\",\"nodeId\":\"a\",\"progress\":1}\r\n\n"
             "{\"type\":\"step_progress\",\"nodeId\":\"a\\r\",\"progress\":2}",
             &b);
    assert_int_equal(b.n, 2);
    const char *v;
    size_t vl;
    assert_int_equal(rtlog_schema_rec_field_str(b.recs[1].mp, b.recs[1].mp_len, "nodeId", &v, &vl),
                     RTLOG_OK);
    assert_int_equal(vl, 2);
    assert_memory_equal(v, "a\r", 2);
    rtlog_batch_free(&b);

    /* empty NDJSON and "[]" give an empty batch; an empty JSON body is an error */
    rtlog_parse_opts o = {.family = RTLOG_FAM_RUN, .ndjson = 1, .now = TEST_NOW};
    rtlog_errinfo ei;
    b.n = 5;
    assert_int_equal(rtlog_schema_parse(&o, "", 0, &b, &ei), RTLOG_OK);
    assert_int_equal(b.n, 0);
    rtlog_batch_free(&b);
    assert_int_equal(rtlog_schema_parse(&o, NULL, 0, &b, &ei), RTLOG_OK);
    assert_int_equal(b.n, 0);
    o.ndjson = 0;
    assert_int_equal(rtlog_schema_parse(&o, " [ ] ", 5, &b, &ei), RTLOG_OK);
    assert_int_equal(b.n, 0);
    parse_err(RTLOG_FAM_RUN, 0, "", 0, RTLOG_E_INVAL);

    /* a body need not be NUL-terminated: only @len bytes are read */
    const char *s = "{\"type\":\"step_progress\",\"nodeId\":\"a\",\"progress\":1}GARBAGE";
    size_t n = strlen(s) - 7;
    char *exact = malloc(n);
    memcpy(exact, s, n);
    assert_int_equal(rtlog_schema_parse(&o, exact, n, &b, &ei), RTLOG_OK);
    rtlog_batch_free(&b);
    o.ndjson = 1;
    assert_int_equal(rtlog_schema_parse(&o, exact, n, &b, &ei), RTLOG_OK);
    rtlog_batch_free(&b);
    free(exact);

    /* a NUL byte in the body (outside a string) is bad JSON, not a truncation */
    static const char nulbody[] = "{\"type\":\"step_progress\",\"nodeId\":\"a\",\"progress\":1}\0x";
    rtlog_errinfo e2 = parse_err(RTLOG_FAM_RUN, 1, nulbody, sizeof nulbody - 1, RTLOG_E_INVAL);
    assert_int_equal(e2.event_index, 0);
}

static void errinfo_fields(void **state)
{
    (void)state;
    const char *two = "[{\"type\":\"step_progress\",\"nodeId\":\"a\",\"progress\":1},"
                      "{\"type\":\"step_progress\",\"nodeId\":\"a\",\"progress\":101}]";
    rtlog_errinfo ei = parse_err(RTLOG_FAM_RUN, 0, two, strlen(two), RTLOG_E_INVAL);
    assert_int_equal(ei.event_index, 1);
    assert_string_equal(ei.field, "progress");

    /* hostile bytes in a type name come back as plain ASCII */
    const char *bad = "{\"type\":\"x\\u001b[2J\\r\\nFAKE\xc3\xa9\"}";
    ei = parse_err(RTLOG_FAM_RUN, 0, bad, strlen(bad), RTLOG_E_INVAL);
    for (const char *p = ei.text; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
    assert_non_null(strstr(ei.text, "\"x?[2J??FAKE??\""));

    /* a very long type name is cut */
    char longtype[600];
    int k = snprintf(longtype, sizeof longtype, "{\"type\":\"");
    memset(longtype + k, 'y', 500);
    snprintf(longtype + k + 500, sizeof longtype - (size_t)k - 500, "\"}");
    ei = parse_err(RTLOG_FAM_RUN, 0, longtype, strlen(longtype), RTLOG_E_INVAL);
    assert_non_null(strstr(ei.text, "yyy...\""));

    /* bad family and NULL arguments */
    rtlog_parse_opts o = {.family = (rtlog_family)42};
    rtlog_batch b = {0};
    assert_int_equal(rtlog_schema_parse(&o, "{}", 2, &b, &ei), RTLOG_E_INVAL);
    assert_int_equal(rtlog_schema_parse(NULL, "{}", 2, &b, &ei), RTLOG_E_INVAL);
    o.family = RTLOG_FAM_RUN;
    assert_int_equal(rtlog_schema_parse(&o, "{}", 2, NULL, NULL), RTLOG_E_INVAL);
    assert_int_equal(rtlog_schema_parse(&o, NULL, 2, &b, NULL), RTLOG_E_INVAL);

    /* an error in a later event of a batch drops the whole batch (ASan: nothing leaks) */
    const char *third_bad = "{\"type\":\"step_progress\",\"nodeId\":\"a\",\"progress\":1}\n"
                            "{\"type\":\"step_progress\",\"nodeId\":\"a\",\"progress\":1}\n"
                            "{\"type\":\"step_progress\",\"nodeId\":\"a\"}\n";
    ei = parse_err(RTLOG_FAM_RUN, 1, third_bad, strlen(third_bad), RTLOG_E_INVAL);
    assert_int_equal(ei.event_index, 2);
    assert_string_equal(ei.field, "progress");
}

static void lookups(void **state)
{
    (void)state;
    rtlog_batch b = {0};
    parse_ok(RTLOG_FAM_RUN, 0,
             "{\"nodeId\":\"deploy\",\"n\":5,\"o\":{\"type\":\"inner\"},\"type\":\"step_progress\","
             "\"progress\":5,\"empty\":\"\",\"nul\":\"a\\u0000b\"}",
             &b);
    const rtlog_rec *r = &b.recs[0];
    const char *v;
    size_t vl;
    assert_int_equal(rtlog_schema_rec_type(r->mp, r->mp_len, &v, &vl), RTLOG_OK);
    assert_int_equal(vl, 13);
    assert_memory_equal(v, "step_progress", 13);
    assert_int_equal(rtlog_schema_rec_field_str(r->mp, r->mp_len, "nodeId", &v, &vl), RTLOG_OK);
    assert_int_equal(vl, 6);
    assert_memory_equal(v, "deploy", 6);
    assert_int_equal(rtlog_schema_rec_field_str(r->mp, r->mp_len, "empty", &v, &vl), RTLOG_OK);
    assert_int_equal(vl, 0);
    assert_int_equal(rtlog_schema_rec_field_str(r->mp, r->mp_len, "nul", &v, &vl), RTLOG_OK);
    assert_int_equal(vl, 3);
    assert_memory_equal(v, "a\0b", 3);
    assert_int_equal(rtlog_schema_rec_field_str(r->mp, r->mp_len, "n", &v, &vl), RTLOG_E_NOTFOUND);
    assert_int_equal(rtlog_schema_rec_field_str(r->mp, r->mp_len, "o", &v, &vl), RTLOG_E_NOTFOUND);
    assert_int_equal(rtlog_schema_rec_field_str(r->mp, r->mp_len, "absent", &v, &vl),
                     RTLOG_E_NOTFOUND);
    assert_int_equal(rtlog_schema_rec_field_str(r->mp, r->mp_len, "node", &v, &vl),
                     RTLOG_E_NOTFOUND);
    rtlog_batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flags_and_status), cmocka_unit_test(secrets),
        cmocka_unit_test(timestamps),       cmocka_unit_test(limits),
        cmocka_unit_test(ndjson_lines),     cmocka_unit_test(errinfo_fields),
        cmocka_unit_test(lookups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
