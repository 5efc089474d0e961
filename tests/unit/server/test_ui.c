/* test_ui.c - the browser UI's pure parts: which embedded file a path names (and that
 * nothing outside the table is ever served), the ?kind=&limit= parser of GET
 * /api/v1/streams, and the list itself against a real store (newest first, limit,
 * truncated, kind filter, the caller's access filter, sealed streams).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server_int.h"
#include "ui.h"

static const char *page(const char *path)
{
    const char *redirect = NULL;
    const rtlog_ui_asset *a = rtlog_ui_page(path, strlen(path), &redirect);
    if (redirect)
        return redirect;
    return a ? a->name : NULL;
}

static void test_pages(void **state)
{
    (void)state;
    assert_string_equal(page("/"), "/ui/");
    assert_string_equal(page(""), "/ui/");
    assert_string_equal(page("/ui"), "/ui/");
    assert_string_equal(page("/ui/"), "index.html");
    assert_string_equal(page("/ui/dashboard"), "dashboard.html");
    assert_string_equal(page("/ui/runs/demo-1"), "run.html");
    assert_string_equal(page("/ui/runs/a.b:c_d-9"), "run.html");
    assert_string_equal(page("/ui/jobs/j1"), "job.html");
    assert_string_equal(page("/ui/rtlog-client.js"), "rtlog-client.js");
    assert_string_equal(page("/ui/app.css"), "app.css");
    assert_string_equal(page("ui/run.js"), "run.js");
    /* a bad id, a nested path, anything not in the table: not the UI's (404) */
    assert_null(page("/ui/runs/"));
    assert_null(page("/ui/runs/a b"));
    assert_null(page("/ui/runs/a/b"));
    assert_null(page("/ui/jobs/.."));
    char longid[200];
    memset(longid, 'a', sizeof longid);
    memcpy(longid, "/ui/runs/", 9);
    longid[9 + 129] = '\0';
    assert_null(page(longid));
    longid[9 + 128] = '\0';
    assert_string_equal(page(longid), "run.html");
    assert_null(page("/ui/../server/ui.c"));
    assert_null(page("/ui/embed.cmake"));
    assert_null(page("/ui/index.html/"));
    assert_null(page("/ui/dashboard/x"));
    assert_null(page("/uix"));
    assert_null(page("/ui//etc/passwd"));
    assert_null(page("/etc/passwd"));
    assert_null(page("/api/v1/streams"));
}

static void test_assets(void **state)
{
    (void)state;
    assert_true(rtlog_ui_n_assets >= 12);
    for (size_t i = 0; i < rtlog_ui_n_assets; i++) {
        const rtlog_ui_asset *a = &rtlog_ui_assets[i];
        assert_ptr_equal(rtlog_ui_asset_find(a->name, strlen(a->name)), a);
        assert_true(a->len > 0);
        assert_int_equal(strlen(a->etag), 18); /* "16 hex" */
        assert_non_null(strstr(a->content_type, "/"));
        if (strstr(a->name, ".html"))
            /* the CSP forbids inline scripts: every script is a file of this table */
            assert_null(strstr((const char *)a->data, "<script>"));
    }
    assert_string_equal(rtlog_ui_asset_find("run.js", 6)->content_type,
                        "text/javascript; charset=utf-8");
    assert_null(rtlog_ui_asset_find("run.j", 5));
}

static void query_ok(const char *kind, const char *limit, rtlog_kind k, unsigned n)
{
    rtlog_list_query q;
    const char *why = NULL;
    assert_int_equal(rtlog_list_query_parse(kind, limit, &q, &why), RTLOG_OK);
    assert_int_equal(q.kind, k);
    assert_int_equal(q.limit, n);
}

static void query_bad(const char *kind, const char *limit, const char *why_has)
{
    rtlog_list_query q;
    const char *why = NULL;
    assert_int_equal(rtlog_list_query_parse(kind, limit, &q, &why), RTLOG_E_INVAL);
    assert_non_null(why);
    assert_non_null(strstr(why, why_has));
}

static void test_query(void **state)
{
    (void)state;
    query_ok(NULL, NULL, RTLOG_KIND_NONE, RTLOG_LIST_DEFAULT);
    query_ok("workflow-runs", "1", RTLOG_KIND_RUN, 1);
    query_ok("deployment-jobs", "1000", RTLOG_KIND_JOB, 1000);
    query_ok("dashboard", "007", RTLOG_KIND_DASHBOARD, 7);
    query_ok("agents", NULL, RTLOG_KIND_AGENT, RTLOG_LIST_DEFAULT);
    query_bad("workflow-run", NULL, "kind");
    query_bad("", NULL, "kind");
    query_bad(NULL, "0", "limit");
    query_bad(NULL, "1001", "limit");
    query_bad(NULL, "", "limit");
    query_bad(NULL, "-1", "limit");
    query_bad(NULL, "1e3", "limit");
    query_bad(NULL, "99999999999999999999", "limit");
    query_bad(NULL, " 5", "limit");
}

static int allow_not_secret(void *ctx, const char *stream)
{
    (void)ctx;
    return strstr(stream, "secret") == NULL;
}

static json_t *list(rtlog_store *st, const char *kind, const char *limit)
{
    rtlog_list_query q;
    const char *why;
    assert_int_equal(rtlog_list_query_parse(kind, limit, &q, &why), RTLOG_OK);
    rtlog_buf b = {0};
    assert_int_equal(rtlog_list_json(st, &q, allow_not_secret, NULL, &b), RTLOG_OK);
    json_error_t je;
    json_t *doc = json_loadb(b.p, b.len, 0, &je);
    rtlog_buf_free(&b);
    assert_non_null(doc);
    return doc;
}

static const char *name_at(json_t *doc, size_t i)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(doc, "streams"), i),
                                             "stream"));
}

static void test_list(void **state)
{
    (void)state;
    char dir[] = "/tmp/rtlog-test-ui-XXXXXX";
    assert_non_null(mkdtemp(dir));
    rtlog_store_opts o = {.dir = dir};
    rtlog_store *st = NULL;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_open(&o, &st, &ei), RTLOG_OK);
    /* created in this order, a few ms apart: r1 oldest ... r4 newest */
    const char *names[] = {"workflow-runs/r1", "deployment-jobs/j1", "workflow-runs/r2",
                           "workflow-runs/secret", "workflow-runs/r3", "workflow-runs/r4"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        rtlog_append_req req = {.stream = names[i]};
        assert_int_equal(rtlog_store_append(st, &req, NULL, &ei), RTLOG_OK);
        usleep(3000);
    }
    assert_int_equal(rtlog_store_seal(st, "workflow-runs/r2", &ei), RTLOG_OK);

    json_t *all = list(st, NULL, NULL);
    assert_int_equal(json_array_size(json_object_get(all, "streams")), 5); /* secret hidden */
    assert_string_equal(name_at(all, 0), "workflow-runs/r4");
    assert_string_equal(name_at(all, 4), "workflow-runs/r1");
    assert_false(json_boolean_value(json_object_get(all, "truncated")));
    json_decref(all);

    json_t *runs = list(st, "workflow-runs", "2");
    assert_int_equal(json_array_size(json_object_get(runs, "streams")), 2);
    assert_string_equal(name_at(runs, 0), "workflow-runs/r4");
    assert_string_equal(name_at(runs, 1), "workflow-runs/r3");
    assert_true(json_boolean_value(json_object_get(runs, "truncated")));
    json_t *e = json_array_get(json_object_get(runs, "streams"), 0);
    assert_string_equal(json_string_value(json_object_get(e, "kind")), "workflow-runs");
    assert_string_equal(json_string_value(json_object_get(e, "id")), "r4");
    assert_int_equal(json_integer_value(json_object_get(e, "lastSeq")), 0);
    assert_false(json_boolean_value(json_object_get(e, "sealed")));
    assert_true(json_is_null(json_object_get(e, "status")));
    const char *ts = json_string_value(json_object_get(e, "createdAt"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24); /* 2026-01-10T14:23:45.123Z */
    json_decref(runs);

    json_t *r3 = list(st, "workflow-runs", "3");
    assert_string_equal(name_at(r3, 2), "workflow-runs/r2");
    e = json_array_get(json_object_get(r3, "streams"), 2);
    assert_true(json_boolean_value(json_object_get(e, "sealed")));
    json_decref(r3);

    json_t *jobs = list(st, "deployment-jobs", NULL);
    assert_int_equal(json_array_size(json_object_get(jobs, "streams")), 1);
    assert_string_equal(name_at(jobs, 0), "deployment-jobs/j1");
    json_decref(jobs);

    json_t *none = list(st, "agents", NULL);
    assert_int_equal(json_array_size(json_object_get(none, "streams")), 0);
    json_decref(none);

    rtlog_store_close(st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pages),
        cmocka_unit_test(test_assets),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
