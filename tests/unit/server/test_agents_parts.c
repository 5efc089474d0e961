/* test_agents_parts.c - the pure parts behind the agent task stream: sealing credentials
 * (server/secret.c: round trip, associated data binding, tampering, bad envelopes), the
 * task table (server/tasks.c) and its timestamp parser, and the agent routes of
 * server/params.c (CONTRACT "Agents"; handed.md C16 h for the path forms).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "server_int.h"

static const uint8_t key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static void test_seal_roundtrip(void **state)
{
    (void)state;
    const char *plain = "{\"registry.password\":\"hunter2\"}";
    rtlog_buf env = {0}, env2 = {0}, out = {0};
    assert_int_equal(rtlog_secret_seal(key, "agents/a\nt1", 11, plain, strlen(plain), &env),
                     RTLOG_OK);
    assert_true(env.len > strlen(RTLOG_SECRET_PREFIX));
    assert_memory_equal(env.p, RTLOG_SECRET_PREFIX, strlen(RTLOG_SECRET_PREFIX));
    assert_null(strstr(env.p, "hunter2"));
    /* a fresh nonce each time: the same plaintext never seals to the same bytes */
    assert_int_equal(rtlog_secret_seal(key, "agents/a\nt1", 11, plain, strlen(plain), &env2),
                     RTLOG_OK);
    assert_true(env.len != env2.len || memcmp(env.p, env2.p, env.len) != 0);
    assert_int_equal(rtlog_secret_open(key, "agents/a\nt1", 11, env.p, env.len, &out), RTLOG_OK);
    assert_int_equal(out.len, strlen(plain));
    assert_memory_equal(out.p, plain, out.len);
    /* bound to where it belongs: another task or agent does not open it */
    rtlog_buf_clear(&out);
    assert_int_equal(rtlog_secret_open(key, "agents/a\nt2", 11, env.p, env.len, &out),
                     RTLOG_E_CORRUPT);
    assert_int_equal(rtlog_secret_open(key, "agents/b\nt1", 11, env.p, env.len, &out),
                     RTLOG_E_CORRUPT);
    assert_int_equal(out.len, 0);
    /* another key does not open it */
    uint8_t k2[32];
    memcpy(k2, key, 32);
    k2[31] ^= 1;
    assert_int_equal(rtlog_secret_open(k2, "agents/a\nt1", 11, env.p, env.len, &out),
                     RTLOG_E_CORRUPT);
    /* every single altered byte of the envelope is detected */
    size_t pre = strlen(RTLOG_SECRET_PREFIX);
    for (size_t i = pre; i < env.len; i++) {
        char saved = env.p[i];
        env.p[i] = saved == 'A' ? 'B' : 'A';
        rtlog_err rc = rtlog_secret_open(key, "agents/a\nt1", 11, env.p, env.len, &out);
        assert_int_equal(rc, RTLOG_E_CORRUPT);
        env.p[i] = saved;
    }
    rtlog_buf_free(&env);
    rtlog_buf_free(&env2);
    rtlog_buf_free(&out);
}

static void test_open_bad_envelopes(void **state)
{
    (void)state;
    rtlog_buf out = {0};
    const char *bad[] = {"", "rtlog-sealed:v1:", "rtlog-sealed:v2:AAAA", "rtlog-sealed:v1:AAA",
                         "rtlog-sealed:v1:AAAA", "rtlog-sealed:v1:!!!!!!!!",
                         "rtlog-sealed:v1:A=AA", "[REDACTED]",
                         "rtlog-sealed:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(rtlog_secret_open(key, "x", 1, bad[i], strlen(bad[i]), &out),
                         RTLOG_E_CORRUPT);
    assert_int_equal(out.len, 0);
    /* empty plaintext round-trips */
    rtlog_buf env = {0};
    assert_int_equal(rtlog_secret_seal(key, NULL, 0, "", 0, &env), RTLOG_OK);
    assert_int_equal(rtlog_secret_open(key, NULL, 0, env.p, env.len, &out), RTLOG_OK);
    assert_int_equal(out.len, 0);
    rtlog_buf_free(&env);
    rtlog_buf_free(&out);
}

static void test_task_table(void **state)
{
    (void)state;
    rtlog_tasks *t = rtlog_tasks_new();
    assert_non_null(t);
    char id[32];
    for (int i = 0; i < 2000; i++) { /* past several table growths */
        snprintf(id, sizeof id, "task-%d", i);
        int exists = -1;
        rtlog_task *x = rtlog_tasks_add(t, id, &exists);
        assert_non_null(x);
        assert_int_equal(exists, 0);
        assert_int_equal(x->state, RTLOG_TASK_PENDING);
        assert_false(rtlog_task_open(x));
    }
    assert_int_equal(rtlog_tasks_count(t), 2000);
    int exists = 0;
    assert_null(rtlog_tasks_add(t, "task-7", &exists));
    assert_int_equal(exists, 1);
    rtlog_task *x = rtlog_tasks_find(t, "task-1999");
    assert_non_null(x);
    assert_string_equal(x->task_id, "task-1999");
    x->state = RTLOG_TASK_ASSIGNED;
    assert_true(rtlog_task_open(x));
    x->busy = 1;
    assert_false(rtlog_task_open(x));
    x->busy = 0;
    x->state = RTLOG_TASK_DONE;
    assert_false(rtlog_task_open(x));
    rtlog_tasks_remove(t, x);
    assert_null(rtlog_tasks_find(t, "task-1999"));
    assert_non_null(rtlog_tasks_find(t, "task-1998"));
    assert_int_equal(rtlog_tasks_count(t), 1999);
    rtlog_tasks_free(t);

    assert_true(rtlog_task_id_valid("550e8400-e29b-41d4-a716-446655440000", 36));
    assert_true(rtlog_task_id_valid("a.b_c:d-e", 9));
    assert_false(rtlog_task_id_valid("", 0));
    assert_false(rtlog_task_id_valid("a b", 3));
    assert_false(rtlog_task_id_valid("a/b", 3));
    assert_false(rtlog_task_id_valid("a\0b", 3));
    assert_false(rtlog_task_id_valid(".", 1));
    assert_false(rtlog_task_id_valid("..", 2));
    assert_true(rtlog_task_id_valid("...", 3));
    char big[130];
    memset(big, 'x', sizeof big);
    assert_true(rtlog_task_id_valid(big, 128));
    assert_false(rtlog_task_id_valid(big, 129));
}

static void test_rfc3339(void **state)
{
    (void)state;
    uint64_t ms = 0;
    assert_int_equal(rtlog_rfc3339_ms("1970-01-01T00:00:00Z", 20, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(rtlog_rfc3339_ms("2026-01-10T14:23:45Z", 20, &ms), 0);
    assert_int_equal(ms, 1768055025000ull);
    assert_int_equal(rtlog_rfc3339_ms("2026-01-10T14:23:45.123Z", 24, &ms), 0);
    assert_int_equal(ms, 1768055025123ull);
    assert_int_equal(rtlog_rfc3339_ms("2024-02-29T23:59:59.5Z", 22, &ms), 0);
    assert_int_equal(ms, 1709251199500ull);
    const char *bad[] = {"2026-01-10 14:23:45Z", "2026-01-10T14:23:45", "2026-13-10T14:23:45Z",
                         "2026-01-10T14:23:45.Z", "2026-01-10T14:23:45+01:00", "x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(rtlog_rfc3339_ms(bad[i], strlen(bad[i]), &ms), -1);
}

static void route_is(const char *path, route_kind kind, const char *stream, const char *task,
                     rtlog_err err)
{
    route r;
    rtlog_route_parse(path, strlen(path), &r);
    if (r.kind != kind || r.stream_err != err)
        fail_msg("%s: kind %d err %d", path, (int)r.kind, (int)r.stream_err);
    if (stream)
        assert_string_equal(r.stream, stream);
    if (task)
        assert_string_equal(r.task_id, task);
}

static void test_agent_routes(void **state)
{
    (void)state;
    route_is("/api/v1/agents/a1/task-stream", ROUTE_STREAM, "agents/a1", "", RTLOG_OK);
    route_is("/api/v1/agents/a1/tasks", ROUTE_TASKS, "agents/a1", "", RTLOG_OK);
    route_is("/api/v1/agents/a1/tasks/t-9/cancel", ROUTE_TASK_CANCEL, "agents/a1", "t-9",
             RTLOG_OK);
    route_is("/api/v1/agents/a%201/tasks", ROUTE_TASKS, "", NULL, RTLOG_E_INVAL);
    route_is("/api/v1/agents/a1/tasks/t%2f9/cancel", ROUTE_TASK_CANCEL, "", "", RTLOG_E_INVAL);
    route_is("/api/v1/agents/a1/tasks/a/b/cancel", ROUTE_TASK_CANCEL, "", "", RTLOG_E_INVAL);
    route_is("/api/v1/agents/a1/tasks//cancel", ROUTE_NONE, "", "", RTLOG_OK);
    route_is("/api/v1/agents/a1/stream", ROUTE_NONE, "", "", RTLOG_OK);
    route_is("/api/v1/agents/a1/events", ROUTE_NONE, "", "", RTLOG_OK);
    route_is("/api/v1/agents/a1", ROUTE_NONE, "", "", RTLOG_OK);
    route_is("/api/v1/agents/a1/task-stream/", ROUTE_NONE, "", "", RTLOG_OK);
    route_is("/api/v1/agents//task-stream", ROUTE_STREAM, "", "", RTLOG_E_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_roundtrip), cmocka_unit_test(test_open_bad_envelopes),
        cmocka_unit_test(test_task_table),     cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_agent_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
