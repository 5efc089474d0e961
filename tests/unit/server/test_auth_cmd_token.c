/* test_auth_cmd_token.c - `rtlog token` (tools/cmd_token.c) run in-process.
 *
 * The command's source is compiled into this test (it only needs rtlog_auth), and
 * rtlog_cmd_token() is called with real argument vectors while stdout and stderr go to
 * temporary files. Checked: stdout is exactly the token and a newline; the token verifies
 * with the data directory's secret (or the RS256/ES256 public key) and carries the asked
 * sub, grants and lifetime (exp - iat, read with libjwt: no clock in the assertions); the
 * "*" default comes with a note on stderr; usage errors exit 2 without touching the data
 * directory; key problems exit 1; nothing on stdout when it fails.
 * Source: CONTRACT.md "Tools".
 */
#include "../../../tools/cmd_token.c"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>

#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];
static char out_text[16384], err_text[16384];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup_dir(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/rtlog-cmd-token-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    return nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void slurp(int fd, char *buf, size_t n)
{
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    ssize_t r = read(fd, buf, n - 1);
    assert_true(r >= 0);
    buf[r] = '\0';
}

/* Runs `rtlog token ARGS...` (NULL-terminated); fills out_text/err_text; returns the
 * exit code. */
static int run(const char *first, ...)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"token";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        assert_true(argc < 63);
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    argv[argc] = NULL;

    char p[512];
    snprintf(p, sizeof p, "%s/.out-XXXXXX", root);
    int ofd = mkstemp(p);
    assert_true(ofd >= 0);
    unlink(p);
    snprintf(p, sizeof p, "%s/.err-XXXXXX", root);
    int efd = mkstemp(p);
    assert_true(efd >= 0);
    unlink(p);

    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    assert_true(so >= 0 && se >= 0);
    dup2(ofd, 1);
    dup2(efd, 2);
    int rc = rtlog_cmd_token(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    slurp(ofd, out_text, sizeof out_text);
    slurp(efd, err_text, sizeof err_text);
    close(ofd);
    close(efd);
    return rc;
}

static char *data_dir(const char *name)
{
    static char d[512];
    snprintf(d, sizeof d, "%s/%s", root, name);
    return d;
}

/* stdout must be one line: the token. Returns it (without the newline), malloc'd. */
static char *stdout_token(void)
{
    size_t n = strlen(out_text);
    assert_true(n > 10);
    assert_int_equal(out_text[n - 1], '\n');
    assert_null(memchr(out_text, '\n', n - 1));
    assert_null(strchr(out_text, ' '));
    return strndup(out_text, n - 1);
}

static rtlog_principal *verify_with(rtlog_jwt_alg alg, const void *key, size_t kl, const char *tok)
{
    rtlog_auth_opts o = {.alg = alg, .key = key, .key_len = kl};
    rtlog_auth *a = NULL;
    assert_int_equal(rtlog_auth_new(&o, &a, NULL), RTLOG_OK);
    rtlog_principal *p = NULL;
    rtlog_errinfo ei = {0};
    /* verified at the token's own iat, so no wall clock is involved */
    jwt_t *j = NULL;
    assert_int_equal(jwt_decode(&j, tok, NULL, 0), 0);
    long iat = jwt_get_grant_int(j, "iat");
    jwt_free(j);
    if (rtlog_auth_verify(a, tok, strlen(tok), (int64_t)iat, &p, &ei) != RTLOG_OK)
        fail_msg("minted token refused: %s", ei.text);
    rtlog_auth_free(a);
    return p;
}

static rtlog_principal *verify_data_dir(const char *dir, const char *tok)
{
    uint8_t *s = NULL;
    size_t l = 0;
    assert_int_equal(rtlog_auth_secret_load_or_create(dir, &s, &l, NULL, NULL), RTLOG_OK);
    rtlog_principal *p = verify_with(RTLOG_JWT_HS256, s, l, tok);
    free(s);
    return p;
}

static long lifetime(const char *tok)
{
    jwt_t *j = NULL;
    assert_int_equal(jwt_decode(&j, tok, NULL, 0), 0);
    long life = jwt_get_grant_int(j, "exp") - jwt_get_grant_int(j, "iat");
    jwt_free(j);
    return life;
}

static void test_token_with_grants(void **state)
{
    (void)state;
    char *d = data_dir("data");
    assert_int_equal(run("--data", d, "--sub", "viewer-1", "--subscribe", "workflow-runs/*",
                         "--subscribe", "dashboard", "--publish", "agents/agent-7", "--ttl", "600",
                         NULL),
                     0);
    char *tok = stdout_token();
    assert_non_null(strstr(err_text, "created a new HS256 secret")); /* first use */
    assert_null(strstr(err_text, tok));
    rtlog_principal *p = verify_data_dir(d, tok);
    assert_string_equal(p->sub, "viewer-1");
    assert_int_equal(p->n_subscribe, 2);
    assert_string_equal(p->subscribe[0], "workflow-runs/*");
    assert_string_equal(p->subscribe[1], "dashboard");
    assert_int_equal(p->n_publish, 1);
    assert_string_equal(p->publish[0], "agents/agent-7");
    assert_int_equal(lifetime(tok), 600);
    rtlog_principal_free(p);
    free(tok);

    /* second run: same secret, no creation note; --opt=value form; defaults */
    char arg[600];
    snprintf(arg, sizeof arg, "--data=%s", d);
    assert_int_equal(run(arg, "--publish=dashboard", NULL), 0);
    tok = stdout_token();
    assert_string_equal(err_text, "");
    p = verify_data_dir(d, tok);
    assert_string_equal(p->sub, "rtlog-cli");
    assert_int_equal(p->n_subscribe, 0);
    assert_int_equal(p->n_publish, 1);
    assert_int_equal(lifetime(tok), 3600);
    rtlog_principal_free(p);
    free(tok);
}

static void test_default_grants_everything_with_note(void **state)
{
    (void)state;
    char *d = data_dir("data");
    assert_int_equal(run("--data", d, NULL), 0);
    char *tok = stdout_token();
    assert_non_null(strstr(err_text, "full access"));
    rtlog_principal *p = verify_data_dir(d, tok);
    assert_int_equal(p->n_subscribe, 1);
    assert_string_equal(p->subscribe[0], "*");
    assert_int_equal(p->n_publish, 1);
    assert_string_equal(p->publish[0], "*");
    assert_true(rtlog_principal_can(p, 0, "workflow-runs/run-0001"));
    assert_true(rtlog_principal_can(p, 1, "dashboard"));
    rtlog_principal_free(p);
    free(tok);
}

static void test_help(void **state)
{
    (void)state;
    assert_int_equal(run("--help", NULL), 0);
    assert_non_null(strstr(out_text, "usage: rtlog token"));
    assert_non_null(strstr(out_text, "--subscribe PATTERN"));
    assert_non_null(strstr(out_text, "full access"));
    assert_int_equal(run("-h", NULL), 0);
    assert_non_null(strstr(out_text, "usage: rtlog token"));
}

static void test_usage_errors(void **state)
{
    (void)state;
    char *d = data_dir("untouched");
    const char *cases[][6] = {
        {"--ttl", "0"},
        {"--ttl", "-5"},
        {"--ttl", "abc"},
        {"--ttl", "60s"},
        {"--ttl", "315360001"},
        {"--subscribe", "bogus"},
        {"--publish", "workflow-runs/"},
        {"--subscribe", "workflow-runs/a b"},
        {"--sub", "two\nlines"},
        {"--jwt-alg", "none"},
        {"--jwt-alg", "HS384"},
        {"--jwt-alg", "RS256"},
        {"--jwt-key", "/nonexistent"},
        {"--frobnicate"},
        {"extra-argument"},
        {"--ttl"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = cases[i][1] ? run("--data", d, cases[i][0], cases[i][1], NULL)
                             : run("--data", d, cases[i][0], NULL);
        if (rc != 2)
            fail_msg("case %zu (%s): exit %d, stderr: %s", i, cases[i][0], rc, err_text);
        assert_string_equal(out_text, "");
        assert_true(strlen(err_text) > 0);
        struct stat st;
        assert_int_not_equal(stat(d, &st), 0); /* no data directory was created */
    }
}

static void test_secret_problems_exit_1(void **state)
{
    (void)state;
    char *d = data_dir("data");
    assert_int_equal(run("--data", d, "--subscribe", "dashboard", NULL), 0);
    char file[600];
    snprintf(file, sizeof file, "%s/jwt-secret", d);
    assert_int_equal(chmod(file, 0644), 0);
    assert_int_equal(run("--data", d, "--subscribe", "dashboard", NULL), 1);
    assert_string_equal(out_text, "");
    assert_non_null(strstr(err_text, "chmod 600"));
}

static char *write_pem(const char *name, EVP_PKEY *k, int priv)
{
    static char path[2][600];
    static int slot;
    char *p = path[slot++ % 2];
    snprintf(p, sizeof path[0], "%s/%s", root, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    if (priv)
        assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    else
        assert_int_equal(PEM_write_PUBKEY(f, k), 1);
    fclose(f);
    return p;
}

static void test_asymmetric_and_key_files(void **state)
{
    (void)state;
    /* run from the temporary directory, so the default ./rtlog-data would land there */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(root), 0);
    EVP_PKEY *keys[] = {EVP_RSA_gen(2048), EVP_EC_gen("P-256")};
    const char *algs[] = {"RS256", "ES256"};
    for (size_t i = 0; i < 2; i++) {
        assert_non_null(keys[i]);
        char *priv = write_pem("priv.pem", keys[i], 1);
        char *pub = write_pem("pub.pem", keys[i], 0);
        assert_int_equal(run("--jwt-alg", algs[i], "--jwt-key", priv, "--sub", "agent-a",
                             "--subscribe", "agents/agent-a", "--iss", "me", "--aud", "rtlog",
                             NULL),
                         0);
        char *tok = stdout_token();
        uint8_t *pk = NULL;
        size_t pl = 0;
        assert_int_equal(rtlog_auth_key_load(pub, rtlog_jwt_alg_parse(algs[i]), &pk, &pl, NULL),
                         RTLOG_OK);
        rtlog_principal *p = verify_with(rtlog_jwt_alg_parse(algs[i]), pk, pl, tok);
        assert_string_equal(p->sub, "agent-a");
        assert_true(rtlog_principal_can(p, 1, "agents/agent-a"));
        rtlog_principal_free(p);
        jwt_t *j = NULL;
        assert_int_equal(jwt_decode(&j, tok, NULL, 0), 0);
        assert_string_equal(jwt_get_header(j, "alg"), algs[i]);
        assert_string_equal(jwt_get_grant(j, "iss"), "me");
        assert_string_equal(jwt_get_grant(j, "aud"), "rtlog");
        jwt_free(j);
        free(pk);
        free(tok);

        /* a public key cannot sign; the other family's key does not fit */
        assert_int_equal(run("--jwt-alg", algs[i], "--jwt-key", pub, NULL), 1);
        assert_string_equal(out_text, "");
        assert_int_equal(run("--jwt-alg", algs[1 - i], "--jwt-key", priv, NULL), 1);
        assert_string_equal(out_text, "");
        EVP_PKEY_free(keys[i]);
    }

    /* HS256 with a key file in the jwt-secret format */
    char hexfile[600];
    snprintf(hexfile, sizeof hexfile, "%s/hs.key", root);
    int fd = open(hexfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    const char *hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
    assert_int_equal(write(fd, hex, strlen(hex)), (ssize_t)strlen(hex));
    close(fd);
    assert_int_equal(run("--jwt-alg", "HS256", "--jwt-key", hexfile, "--subscribe", "*", NULL), 0);
    char *tok = stdout_token();
    uint8_t raw[32];
    for (int i = 0; i < 32; i++)
        raw[i] = (uint8_t)(((i % 16) << 4) | (i % 16));
    rtlog_principal_free(verify_with(RTLOG_JWT_HS256, raw, 32, tok));
    free(tok);
    /* with --jwt-key the data directory is not used (not even created) */
    struct stat st;
    assert_int_not_equal(stat("rtlog-data", &st), 0);
    assert_int_equal(chdir(cwd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_token_with_grants, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_default_grants_everything_with_note, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_help, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_usage_errors, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_secret_problems_exit_1, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_asymmetric_and_key_files, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
