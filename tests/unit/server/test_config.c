/* test_config.c - the one settings table (server/config.c): defaults, precedence
 * flag > environment > file > default, units, ranges, file syntax errors with line
 * numbers, --help / --print-config, and HOST:PORT parsing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rtlog_server.h"

/* A fake environment for rtlog_config_load. */
static const char *env_names[8], *env_values[8];
static size_t env_n;

static const char *fake_env(const char *name)
{
    for (size_t i = 0; i < env_n; i++)
        if (!strcmp(env_names[i], name))
            return env_values[i];
    return NULL;
}

static void env_set(const char *n, const char *v)
{
    env_names[env_n] = n;
    env_values[env_n++] = v;
}

static rtlog_err load(rtlog_server_config *cfg, rtlog_errinfo *ei, int argc, ...)
{
    char *argv[32] = {"serve"};
    va_list ap;
    va_start(ap, argc);
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    rtlog_cfg_action act;
    return rtlog_config_load(argc, argv, fake_env, cfg, &act, ei);
}

static char *write_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/rtlog-cfg-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_defaults(void **state)
{
    (void)state;
    env_n = 0;
    rtlog_server_config c;
    rtlog_errinfo ei = {0};
    assert_int_equal(load(&c, &ei, 1), RTLOG_OK);
    assert_string_equal(c.listen, "127.0.0.1:8080");
    assert_string_equal(c.data, "./rtlog-data");
    assert_string_equal(c.jwt_alg, "HS256");
    assert_string_equal(c.jwt_key, "");
    assert_int_equal(c.jwt_leeway_ms, 60000);
    assert_int_equal(c.heartbeat_ms, 15000);
    assert_int_equal(c.pong_timeout_ms, 30000);
    assert_int_equal(c.tcp_user_timeout_ms, 0); /* = the pong timeout (server.c) */
    assert_int_equal(c.stream_sndbuf, 256 * 1024);
    assert_int_equal(c.auth_timeout_ms, 10000);
    assert_int_equal(c.stall_timeout_ms, 60000);
    assert_int_equal(c.max_event_bytes, 1 << 20);
    assert_int_equal(c.max_ws_message, 1 << 20);
    assert_int_equal(c.max_preauth_bytes, 8 << 10);
    assert_int_equal(c.max_body_bytes, 64 << 20);
    assert_int_equal(c.nosync, 0);
    assert_int_equal(c.source[0], RTLOG_CFG_DEFAULT);
}

static void test_precedence(void **state)
{
    (void)state;
    const char *file = write_file("# comment\n"
                                  "heartbeat = 5\n"
                                  "pong_timeout = \"7s\"\n"
                                  "auth-timeout = 500ms\n"
                                  "\n"
                                  "max-ws-message = 64KiB\n");
    env_n = 0;
    env_set("RTLOG_PONG_TIMEOUT", "8");
    env_set("RTLOG_AUTH_TIMEOUT", "9");
    rtlog_server_config c;
    rtlog_errinfo ei = {0};
    rtlog_err rc = load(&c, &ei, 7, "--config", file, "--auth-timeout=1.5", "--nosync",
                        "--tcp-user-timeout=20s", "--stream-sndbuf=64KiB");
    if (rc)
        fail_msg("%s", ei.text);
    assert_int_equal(c.heartbeat_ms, 5000);     /* file */
    assert_int_equal(c.pong_timeout_ms, 8000);  /* env beats file */
    assert_int_equal(c.auth_timeout_ms, 1500);  /* flag beats env and file */
    assert_int_equal(c.max_ws_message, 65536);  /* file, with a unit */
    assert_int_equal(c.nosync, 1);              /* bare boolean flag */
    assert_int_equal(c.tcp_user_timeout_ms, 20000);
    assert_int_equal(c.stream_sndbuf, 65536);
    assert_string_equal(c.config_file, file);

    /* the file may also come from RTLOG_CONFIG */
    env_n = 0;
    env_set("RTLOG_CONFIG", file);
    assert_int_equal(load(&c, &ei, 1), RTLOG_OK);
    assert_int_equal(c.heartbeat_ms, 5000);
    FILE *f = tmpfile();
    rtlog_config_print(&c, f);
    rewind(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_non_null(strstr(buf, "heartbeat = 5s  # file\n"));
    assert_non_null(strstr(buf, "listen = 127.0.0.1:8080  # default\n"));
    unlink(file);
}

static void expect_error(const char *needle, int argc, ...)
{
    char *argv[32] = {"serve"};
    va_list ap;
    va_start(ap, argc);
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    rtlog_server_config c;
    rtlog_errinfo ei = {0};
    rtlog_cfg_action act;
    assert_int_equal(rtlog_config_load(argc, argv, fake_env, &c, &act, &ei), RTLOG_E_INVAL);
    if (!strstr(ei.text, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", ei.text, needle);
}

static void test_errors(void **state)
{
    (void)state;
    env_n = 0;
    expect_error("unknown option", 2, "--nope");
    expect_error("needs a value", 2, "--heartbeat");
    expect_error("heartbeat", 3, "--heartbeat", "fast");
    expect_error("heartbeat", 3, "--heartbeat", "-1");
    expect_error("out of range", 3, "--heartbeat", "0");
    expect_error("out of range", 3, "--max-ws-message", "2GiB");
    expect_error("listen", 3, "--listen", "localhost");
    expect_error("listen", 3, "--listen", "::1:80");
    expect_error("listen", 3, "--listen", "127.0.0.1:65536");
    expect_error("jwt-alg", 3, "--jwt-alg", "none");
    expect_error("jwt-alg", 3, "--jwt-alg", "hs256");
    expect_error("log-level", 3, "--log-level", "trace");
    expect_error("unexpected argument", 2, "stray");
    expect_error("cannot read", 3, "--config", "/nonexistent/rtlog.conf");
    env_set("RTLOG_HEARTBEAT", "soon");
    expect_error("RTLOG_HEARTBEAT", 1);
    env_n = 0;
    const char *file = write_file("heartbeat = 5\nbogus = 1\n");
    expect_error(":2: unknown setting", 3, "--config", file);
    unlink(file);
    file = write_file("heartbeat 5\n");
    expect_error(":1: expected `key = value`", 3, "--config", file);
    unlink(file);
}

static void test_help_and_listen(void **state)
{
    (void)state;
    env_n = 0;
    rtlog_server_config c;
    rtlog_errinfo ei = {0};
    char *argv[] = {"serve", "--heartbeat", "bad", "--help"};
    rtlog_cfg_action act;
    /* --help wins even over a bad value elsewhere */
    assert_int_equal(rtlog_config_load(4, argv, fake_env, &c, &act, &ei), RTLOG_OK);
    assert_int_equal(act, RTLOG_CFG_HELP);
    char *argv2[] = {"serve", "--print-config"};
    assert_int_equal(rtlog_config_load(2, argv2, fake_env, &c, &act, &ei), RTLOG_OK);
    assert_int_equal(act, RTLOG_CFG_PRINT);
    FILE *f = tmpfile();
    rtlog_config_help(f);
    assert_true(ftell(f) > 1000);
    fclose(f);

    char host[64];
    int port;
    assert_int_equal(rtlog_listen_parse("127.0.0.1:0", host, sizeof host, &port), RTLOG_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 0);
    assert_int_equal(rtlog_listen_parse("[::1]:8080", host, sizeof host, &port), RTLOG_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 8080);
    assert_int_equal(rtlog_listen_parse(":80", host, sizeof host, &port), RTLOG_E_INVAL);
    assert_int_equal(rtlog_listen_parse("h:", host, sizeof host, &port), RTLOG_E_INVAL);
    assert_int_equal(rtlog_listen_parse("h:8o", host, sizeof host, &port), RTLOG_E_INVAL);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_help_and_listen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
