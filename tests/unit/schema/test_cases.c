/* test_cases.c - golden validation cases: one directory per kind of input under
 * tests/unit/schema/cases/<name>/:
 *   input.json   the request body, bytes as sent (may hold invalid UTF-8, CRLF, ...)
 *   family.txt   "run" | "job" | "agent_task" | "agent_report" | "dashboard", then optional
 *                words: "ndjson", "max_event_bytes=N", "max_events=N"
 *   expect.txt   "ok", or the exact rtlog_errinfo text (one line; trailing newline ignored)
 *   code.txt     optional: the expected error when it is not RTLOG_E_INVAL ("TOOBIG")
 *   output.ndjson optional, for "ok": the exact lines render(mp, seq=1.., REDACT) gives
 * Every case runs with now = 2026-01-10T14:23:45.123Z. A new bug report about ingest
 * becomes a new directory here.
 */
#include "schema_test.h"

#include <dirent.h>

static int cases_run;

static char *read_case(const char *dir, const char *name, size_t *len, int required)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *p = slurp(path, len);
    if (!p && required)
        fail_msg("missing %s", path);
    return p;
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

static void run_case(const char *dir, const char *name)
{
    size_t in_len = 0, fl_len = 0, ex_len = 0, n = 0;
    char *input = read_case(dir, "input.json", &in_len, 1);
    char *fam = read_case(dir, "family.txt", &fl_len, 1);
    char *expect = read_case(dir, "expect.txt", &ex_len, 1);
    char *code = read_case(dir, "code.txt", &n, 0);
    size_t out_len = 0;
    char *output = read_case(dir, "output.ndjson", &out_len, 0);
    chomp(expect);

    rtlog_parse_opts o = {.now = TEST_NOW};
    char *save = NULL;
    for (char *w = strtok_r(fam, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
        if (!strcmp(w, "run"))
            o.family = RTLOG_FAM_RUN;
        else if (!strcmp(w, "job"))
            o.family = RTLOG_FAM_JOB;
        else if (!strcmp(w, "agent_task"))
            o.family = RTLOG_FAM_AGENT_TASK;
        else if (!strcmp(w, "agent_report"))
            o.family = RTLOG_FAM_AGENT_REPORT;
        else if (!strcmp(w, "dashboard"))
            o.family = RTLOG_FAM_DASHBOARD;
        else if (!strcmp(w, "ndjson"))
            o.ndjson = 1;
        else if (!strncmp(w, "max_event_bytes=", 16))
            o.max_event_bytes = strtoull(w + 16, NULL, 10);
        else if (!strncmp(w, "max_events=", 11))
            o.max_events = strtoull(w + 11, NULL, 10);
        else
            fail_msg("case %s: unknown word \"%s\" in family.txt", name, w);
    }
    if (!o.family)
        fail_msg("case %s: no family in family.txt", name);

    rtlog_batch b = {0};
    rtlog_errinfo ei;
    memset(&ei, 0, sizeof ei);
    rtlog_err rc = rtlog_schema_parse(&o, input, in_len, &b, &ei);
    if (!strcmp(expect, "ok")) {
        if (rc)
            fail_msg("case %s: expected ok, got %d: %s", name, (int)rc, ei.text);
        if (output) {
            rtlog_buf all = {0};
            for (size_t i = 0; i < b.n; i++) {
                assert_int_equal(rtlog_schema_render(b.recs[i].mp, b.recs[i].mp_len, i + 1,
                                                     RTLOG_JSON_REDACT, &all),
                                 RTLOG_OK);
                assert_int_equal(rtlog_buf_append(&all, "\n", 1), RTLOG_OK);
            }
            assert_int_equal(rtlog_buf_nul(&all), RTLOG_OK);
            if (all.len != out_len || memcmp(all.p, output, out_len) != 0)
                fail_msg("case %s: output differs\nwant:\n%s\ngot:\n%s", name, output, all.p);
            rtlog_buf_free(&all);
        }
        rtlog_batch_free(&b);
    } else {
        rtlog_err want = RTLOG_E_INVAL;
        if (code) {
            chomp(code);
            if (!strcmp(code, "TOOBIG"))
                want = RTLOG_E_TOOBIG;
            else
                fail_msg("case %s: unknown code.txt \"%s\"", name, code);
        }
        if (rc == RTLOG_OK)
            fail_msg("case %s: accepted, expected: %s", name, expect);
        if (strcmp(ei.text, expect) != 0)
            fail_msg("case %s:\nwant: %s\ngot:  %s", name, expect, ei.text);
        assert_int_equal(rc, want);
        assert_int_equal(ei.code, want);
        assert_null(b.recs);
    }
    free(input);
    free(fam);
    free(expect);
    free(code);
    free(output);
    cases_run++;
}

static void golden_cases(void **state)
{
    (void)state;
    DIR *d = opendir(SCHEMA_CASES_DIR);
    if (!d)
        fail_msg("cannot open %s", SCHEMA_CASES_DIR);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", SCHEMA_CASES_DIR, e->d_name);
        printf("case %s\n", e->d_name);
        run_case(dir, e->d_name);
    }
    closedir(d);
    printf("%d golden cases\n", cases_run);
    assert_true(cases_run >= 13);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(golden_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
