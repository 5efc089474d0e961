/* test_stream.c - stream names: the valid/invalid matrix of CONTRACT.md "Streams and event
 * ids", kind names and the family each kind validates against. */
#include "schema_test.h"

static void check_ok(const char *name, size_t len, rtlog_kind want_kind, const char *want_id)
{
    rtlog_kind k = RTLOG_KIND_NONE;
    const char *id = NULL;
    size_t id_len = 999;
    rtlog_errinfo ei;
    rtlog_err rc = rtlog_stream_parse(name, len, &k, &id, &id_len, &ei);
    if (rc)
        fail_msg("\"%s\" refused: %s", name, ei.text);
    assert_int_equal(k, want_kind);
    assert_int_equal(id_len, strlen(want_id));
    assert_memory_equal(id, want_id, id_len);
    /* the id points into the name */
    assert_true(id >= name && id + id_len <= name + len);
}

static void check_bad(const char *name, size_t len, const char *want_text)
{
    rtlog_kind k = RTLOG_KIND_NONE;
    rtlog_errinfo ei;
    memset(&ei, 0, sizeof ei);
    rtlog_err rc = rtlog_stream_parse(name, len, &k, NULL, NULL, &ei);
    if (rc != RTLOG_E_INVAL)
        fail_msg("\"%.*s\" accepted (kind %d)", (int)len, name, (int)k);
    assert_int_equal(ei.code, RTLOG_E_INVAL);
    assert_int_equal(ei.event_index, -1);
    assert_string_equal(ei.field, "stream");
    if (!strstr(ei.text, want_text))
        fail_msg("\"%.*s\": text \"%s\" lacks \"%s\"", (int)len, name, ei.text, want_text);
}

#define OK(s, k, id) check_ok(s, sizeof(s) - 1, k, id)
#define BAD(s, t)    check_bad(s, sizeof(s) - 1, t)

static void valid_names(void **state)
{
    (void)state;
    OK("workflow-runs/run-0001", RTLOG_KIND_RUN, "run-0001");
    OK("deployment-jobs/job-0001", RTLOG_KIND_JOB, "job-0001");
    OK("agents/agent-a", RTLOG_KIND_AGENT, "agent-a");
    OK("dashboard", RTLOG_KIND_DASHBOARD, "");
    OK("workflow-runs/A.b_c:d-9", RTLOG_KIND_RUN, "A.b_c:d-9");
    OK("workflow-runs/a..b", RTLOG_KIND_RUN, "a..b"); /* dots inside an id are fine */
    OK("workflow-runs/...", RTLOG_KIND_RUN, "...");

    char name[14 + 128 + 1];
    memcpy(name, "workflow-runs/", 14);
    memset(name + 14, 'x', 128);
    name[14 + 128] = '\0';
    check_ok(name, 14 + 128, RTLOG_KIND_RUN, name + 14); /* 128 bytes: the limit */
}

static void invalid_names(void **state)
{
    (void)state;
    BAD("workflow-runs/", "empty");
    BAD("workflow-runs/a b", "outside [A-Za-z0-9._:-]");
    BAD("workflow-runs/..%2f", "outside");
    BAD("workflow-runs/..", "\"..\"");
    BAD("workflow-runs/.", "\".\"");
    BAD("workflow-runs/run-0001/", "outside");
    BAD("workflow-runs/run/0001", "outside");
    BAD("workflow-runs/run%0d%0aFAKE", "outside");
    BAD("workflow-runs/run\r\nX", "outside");
    BAD("workflow-runs/caf\xc3\xa9", "outside");
    BAD("dashboard/x", "unknown stream kind");
    BAD("dashboard/", "unknown stream kind");
    BAD("foo/x", "unknown stream kind");
    BAD("Workflow-runs/x", "unknown stream kind");
    BAD("workflow-runs", "unknown stream kind");
    BAD("/workflow-runs/x", "unknown stream kind");
    BAD("", "unknown stream kind");
    BAD("agents/", "empty");
    BAD("deployment-jobs/a+b", "outside");

    /* NUL inside the id (length-based API) */
    check_bad("workflow-runs/a\0b", 17, "outside");
    /* NUL right after "dashboard" */
    check_bad("dashboard\0", 10, "unknown stream kind");

    char name[14 + 129 + 1];
    memcpy(name, "workflow-runs/", 14);
    memset(name + 14, 'x', 129);
    check_bad(name, 14 + 129, "longer than 128");

    /* NULL name */
    rtlog_kind k;
    assert_int_equal(rtlog_stream_parse(NULL, 0, &k, NULL, NULL, NULL), RTLOG_E_INVAL);
}

static void kinds_and_families(void **state)
{
    (void)state;
    assert_string_equal(rtlog_kind_name(RTLOG_KIND_RUN), "workflow-runs");
    assert_string_equal(rtlog_kind_name(RTLOG_KIND_JOB), "deployment-jobs");
    assert_string_equal(rtlog_kind_name(RTLOG_KIND_AGENT), "agents");
    assert_string_equal(rtlog_kind_name(RTLOG_KIND_DASHBOARD), "dashboard");
    assert_string_equal(rtlog_kind_name(RTLOG_KIND_NONE), "");
    assert_int_equal(rtlog_kind_family(RTLOG_KIND_RUN), RTLOG_FAM_RUN);
    assert_int_equal(rtlog_kind_family(RTLOG_KIND_JOB), RTLOG_FAM_JOB);
    assert_int_equal(rtlog_kind_family(RTLOG_KIND_AGENT), RTLOG_FAM_AGENT_TASK);
    assert_int_equal(rtlog_kind_family(RTLOG_KIND_DASHBOARD), RTLOG_FAM_DASHBOARD);
    assert_int_equal(rtlog_kind_family(RTLOG_KIND_NONE), 0);

    /* kind name + "/" + id parses back to the same kind */
    const rtlog_kind ks[] = {RTLOG_KIND_RUN, RTLOG_KIND_JOB, RTLOG_KIND_AGENT};
    for (size_t i = 0; i < 3; i++) {
        char buf[RTLOG_STREAM_MAX];
        int n = snprintf(buf, sizeof buf, "%s/x", rtlog_kind_name(ks[i]));
        rtlog_kind k = RTLOG_KIND_NONE;
        assert_int_equal(rtlog_stream_parse(buf, (size_t)n, &k, NULL, NULL, NULL), RTLOG_OK);
        assert_int_equal(k, ks[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_names),
        cmocka_unit_test(invalid_names),
        cmocka_unit_test(kinds_and_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
