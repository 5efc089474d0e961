/* test_auth_secret.c - the data directory's HS256 secret and --jwt-key files.
 *
 * rtlog_auth_secret_load_or_create() in a fresh temporary directory: directories made
 * 0700, the file 0600 holding 64 hex digits and a newline, the same bytes on every later
 * load, refusal (with a message that says how to fix it and never shows the secret) when
 * group/others can read it or when it is garbage, and several processes racing on a fresh
 * directory all ending up with one secret. rtlog_auth_key_load() for HS256 secret files
 * and PEM files. Source: CONTRACT.md "Tools" (rtlog serve creates the secret on first
 * start, rtlog token uses it).
 */
#include "auth.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char root[256]; /* a fresh temporary directory per test */

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
    snprintf(root, sizeof root, "%s/rtlog-auth-secret-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    chmod(root, 0700);
    return nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void path_of(char *buf, size_t n, const char *rel)
{
    snprintf(buf, n, "%s/%s", root, rel);
}

static void write_file(const char *path, const char *content, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, mode), 0);
    size_t n = strlen(content);
    assert_int_equal(write(fd, content, n), (ssize_t)n);
    close(fd);
}

static size_t read_text(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t r = fread(buf, 1, n - 1, f);
    buf[r] = '\0';
    fclose(f);
    return r;
}

static void hex_of(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_create_then_load(void **state)
{
    (void)state;
    char dir[512], file[600], text[256];
    path_of(dir, sizeof dir, "data/nested");
    uint8_t *s1 = NULL, *s2 = NULL;
    size_t l1 = 0, l2 = 0;
    int created = -1;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_auth_secret_load_or_create(dir, &s1, &l1, &created, &ei), RTLOG_OK);
    assert_int_equal(created, 1);
    assert_int_equal(l1, 32);

    /* the directories made here are 0700, the file 0600 */
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    path_of(file, sizeof file, "data");
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    snprintf(file, sizeof file, "%s/jwt-secret", dir);
    assert_int_equal(stat(file, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);

    /* content: the 32 bytes as 64 lowercase hex digits and a newline */
    char want[80];
    hex_of(s1, l1, want);
    strcat(want, "\n");
    assert_int_equal(read_text(file, text, sizeof text), 65);
    assert_string_equal(text, want);

    /* nothing else left in the directory (no temporary file) */
    int entries = 0;
    FILE *ls;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls -A '%s'", dir);
    ls = popen(cmd, "r");
    assert_non_null(ls);
    char line[256];
    while (fgets(line, sizeof line, ls)) {
        entries++;
        assert_string_equal(line, "jwt-secret\n");
    }
    assert_int_equal(pclose(ls), 0);
    assert_int_equal(entries, 1);

    /* later loads: same bytes, created = 0 */
    assert_int_equal(rtlog_auth_secret_load_or_create(dir, &s2, &l2, &created, &ei), RTLOG_OK);
    assert_int_equal(created, 0);
    assert_int_equal(l2, 32);
    assert_memory_equal(s1, s2, 32);
    free(s2);
    s2 = NULL;
    assert_int_equal(rtlog_auth_secret_load_or_create(dir, &s2, &l2, NULL, &ei), RTLOG_OK);
    assert_memory_equal(s1, s2, 32);
    free(s2);

    /* another directory gets another secret */
    path_of(dir, sizeof dir, "other");
    assert_int_equal(rtlog_auth_secret_load_or_create(dir, &s2, &l2, &created, &ei), RTLOG_OK);
    assert_int_equal(created, 1);
    assert_memory_not_equal(s1, s2, 32);
    free(s2);
    free(s1);
}

/* The secret works end to end: mint with it, verify with a verifier built from it. */
static void test_secret_signs_and_verifies(void **state)
{
    (void)state;
    uint8_t *s = NULL;
    size_t l = 0;
    assert_int_equal(rtlog_auth_secret_load_or_create(root, &s, &l, NULL, NULL), RTLOG_OK);
    const char *subs[] = {"dashboard"};
    rtlog_mint_opts m = {.alg = RTLOG_JWT_HS256,
                         .key = s,
                         .key_len = l,
                         .subscribe = subs,
                         .n_subscribe = 1,
                         .ttl_s = 60,
                         .now = 1700000000};
    char *tok = NULL;
    assert_int_equal(rtlog_auth_mint(&m, &tok, NULL), RTLOG_OK);
    rtlog_auth_opts o = {.alg = RTLOG_JWT_HS256, .key = s, .key_len = l};
    rtlog_auth *a = NULL;
    assert_int_equal(rtlog_auth_new(&o, &a, NULL), RTLOG_OK);
    rtlog_principal *p = NULL;
    assert_int_equal(rtlog_auth_verify(a, tok, strlen(tok), 1700000000, &p, NULL), RTLOG_OK);
    assert_true(rtlog_principal_can(p, 0, "dashboard"));
    rtlog_principal_free(p);
    rtlog_auth_free(a);
    free(tok);
    free(s);
}

static void expect_io(const char *dir, const char *must_contain, const char *must_not_contain)
{
    uint8_t *s = (uint8_t *)0x1;
    size_t l = 99;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_auth_secret_load_or_create(dir, &s, &l, NULL, &ei), RTLOG_E_IO);
    assert_null(s);
    assert_int_equal(l, 0);
    if (must_contain && !strstr(ei.text, must_contain))
        fail_msg("message \"%s\" lacks \"%s\"", ei.text, must_contain);
    if (must_not_contain)
        assert_null(strstr(ei.text, must_not_contain));
}

static void test_permissions_refused(void **state)
{
    (void)state;
    uint8_t *s = NULL;
    size_t l = 0;
    assert_int_equal(rtlog_auth_secret_load_or_create(root, &s, &l, NULL, NULL), RTLOG_OK);
    char file[600], hex[80];
    path_of(file, sizeof file, "jwt-secret");
    hex_of(s, l, hex);
    const mode_t bad[] = {0640, 0604, 0644, 0660, 0602, 0620};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(file, bad[i]), 0);
        expect_io(root, "chmod 600", hex);
        expect_io(root, "group/others", hex);
    }
    assert_int_equal(chmod(file, 0400), 0); /* read-only for the owner is fine */
    uint8_t *s2 = NULL;
    assert_int_equal(rtlog_auth_secret_load_or_create(root, &s2, &l, NULL, NULL), RTLOG_OK);
    assert_memory_equal(s, s2, 32);
    free(s2);
    free(s);
}

static void test_bad_content_refused(void **state)
{
    (void)state;
    char file[600];
    path_of(file, sizeof file, "jwt-secret");
    const char *hex64 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const char *bad[] = {
        "",
        "hello\n",
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddee\n",    /* 62 digits */
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0\n", /* odd */
        "0x112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        " 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        "00112233445566778899aabbccddeeff 00112233445566778899aabbccddeeff\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(file, bad[i], 0600);
        expect_io(root, "hex digits", NULL);
    }
    /* accepted forms: trailing CR/LF/spaces, upper case, longer secrets */
    const char *good[] = {"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                          "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF\r\n",
                          "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff \t\n"};
    for (size_t i = 0; i < 3; i++) {
        write_file(file, good[i], 0600);
        uint8_t *s = NULL;
        size_t l = 0;
        int created = -1;
        assert_int_equal(rtlog_auth_secret_load_or_create(root, &s, &l, &created, NULL), RTLOG_OK);
        assert_int_equal(created, 0);
        assert_int_equal(l, 32);
        char hex[80];
        hex_of(s, l, hex);
        assert_string_equal(hex, hex64);
        free(s);
    }
    char longer[200];
    snprintf(longer, sizeof longer, "%s%s\n", hex64, hex64);
    write_file(file, longer, 0600);
    uint8_t *s = NULL;
    size_t l = 0;
    assert_int_equal(rtlog_auth_secret_load_or_create(root, &s, &l, NULL, NULL), RTLOG_OK);
    assert_int_equal(l, 64);
    free(s);

    /* a directory where the file should be; a file where the directory should be */
    assert_int_equal(unlink(file), 0);
    assert_int_equal(mkdir(file, 0700), 0);
    expect_io(root, "not a regular file", NULL);
    assert_int_equal(rmdir(file), 0);
    char notdir[600];
    path_of(notdir, sizeof notdir, "plain-file");
    write_file(notdir, "x", 0600);
    expect_io(notdir, NULL, NULL);
    strcat(notdir, "/below");
    expect_io(notdir, NULL, NULL);

    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_auth_secret_load_or_create(NULL, &s, &l, NULL, &ei), RTLOG_E_INVAL);
    assert_int_equal(rtlog_auth_secret_load_or_create("", &s, &l, NULL, &ei), RTLOG_E_INVAL);
}

/* A umask that strips the owner's own bits must not leave an unreadable secret behind;
 * a symlinked secret (as Kubernetes mounts them) is followed and its target checked. */
static void test_umask_and_symlink(void **state)
{
    (void)state;
    char dir[512], file[600], target[600];
    path_of(dir, sizeof dir, "masked");
    mode_t old = umask(0277);
    uint8_t *s = NULL, *s2 = NULL;
    size_t l = 0;
    rtlog_err rc = rtlog_auth_secret_load_or_create(dir, &s, &l, NULL, NULL);
    umask(old);
    assert_int_equal(rc, RTLOG_OK);
    snprintf(file, sizeof file, "%s/jwt-secret", dir);
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(rtlog_auth_secret_load_or_create(dir, &s2, &l, NULL, NULL), RTLOG_OK);
    assert_memory_equal(s, s2, 32);
    free(s2);
    chmod(dir, 0700);

    /* symlink: root/linked/jwt-secret -> root/masked/jwt-secret */
    path_of(dir, sizeof dir, "linked");
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(target, sizeof target, "%s/jwt-secret", dir);
    assert_int_equal(symlink(file, target), 0);
    int created = -1;
    assert_int_equal(rtlog_auth_secret_load_or_create(dir, &s2, &l, &created, NULL), RTLOG_OK);
    assert_int_equal(created, 0);
    assert_memory_equal(s, s2, 32);
    free(s2);
    assert_int_equal(chmod(file, 0644), 0); /* the target's mode is what counts */
    expect_io(dir, "group/others", NULL);
    free(s);
}

/* Several processes start on the same fresh directory at once: all end up with the one
 * secret that is on disk, whoever created it. */
static void test_concurrent_first_start(void **state)
{
    (void)state;
    enum { N = 6 };
    char dir[512];
    path_of(dir, sizeof dir, "race/data");
    int fds[N][2];
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(pipe(fds[i]), 0);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(fds[i][0]);
            uint8_t *s = NULL;
            size_t l = 0;
            int created = 0;
            char out[80] = "error";
            if (rtlog_auth_secret_load_or_create(dir, &s, &l, &created, NULL) == RTLOG_OK &&
                l == 32) {
                hex_of(s, l, out);
                out[64] = created ? '1' : '0';
                out[65] = '\0';
            }
            free(s);
            ssize_t w = write(fds[i][1], out, strlen(out));
            _exit(w > 0 ? 0 : 1);
        }
        close(fds[i][1]);
    }
    char got[N][80];
    int creators = 0;
    for (int i = 0; i < N; i++) {
        ssize_t r = read(fds[i][0], got[i], sizeof got[i] - 1);
        assert_true(r > 0);
        got[i][r] = '\0';
        close(fds[i][0]);
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(strlen(got[i]), 65);
        creators += got[i][64] == '1';
        assert_memory_equal(got[i], got[0], 64);
    }
    assert_int_equal(creators, 1);
    char file[600], text[128];
    snprintf(file, sizeof file, "%s/jwt-secret", dir);
    assert_int_equal(read_text(file, text, sizeof text), 65);
    assert_memory_equal(text, got[0], 64);
}

static void test_key_load(void **state)
{
    (void)state;
    char file[600];
    uint8_t *k = NULL;
    size_t l = 0;
    rtlog_errinfo ei = {0};

    /* HS256: the jwt-secret format, permissions checked */
    uint8_t *s = NULL;
    size_t sl = 0;
    assert_int_equal(rtlog_auth_secret_load_or_create(root, &s, &sl, NULL, NULL), RTLOG_OK);
    path_of(file, sizeof file, "jwt-secret");
    assert_int_equal(rtlog_auth_key_load(file, RTLOG_JWT_HS256, &k, &l, &ei), RTLOG_OK);
    assert_int_equal(l, 32);
    assert_memory_equal(k, s, 32);
    free(k);
    free(s);
    assert_int_equal(chmod(file, 0644), 0);
    assert_int_equal(rtlog_auth_key_load(file, RTLOG_JWT_HS256, &k, &l, &ei), RTLOG_E_IO);
    assert_non_null(strstr(ei.text, "chmod 600"));

    /* RS256/ES256: PEM text returned as is, NUL-terminated; no permission rule */
    const char *pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    path_of(file, sizeof file, "key.pem");
    write_file(file, pem, 0644);
    assert_int_equal(rtlog_auth_key_load(file, RTLOG_JWT_RS256, &k, &l, &ei), RTLOG_OK);
    assert_int_equal(l, strlen(pem));
    assert_string_equal((char *)k, pem);
    free(k);
    /* the same PEM is no HS256 secret */
    assert_int_equal(chmod(file, 0600), 0);
    assert_int_equal(rtlog_auth_key_load(file, RTLOG_JWT_HS256, &k, &l, &ei), RTLOG_E_IO);

    /* too big, missing, wrong arguments */
    char *big = malloc(70 * 1024);
    assert_non_null(big);
    memset(big, 'A', 70 * 1024 - 1);
    big[70 * 1024 - 1] = '\0';
    write_file(file, big, 0644);
    free(big);
    assert_int_equal(rtlog_auth_key_load(file, RTLOG_JWT_ES256, &k, &l, &ei), RTLOG_E_IO);
    path_of(file, sizeof file, "missing.pem");
    assert_int_equal(rtlog_auth_key_load(file, RTLOG_JWT_ES256, &k, &l, &ei), RTLOG_E_IO);
    assert_non_null(strstr(ei.text, "missing.pem"));
    assert_int_equal(rtlog_auth_key_load(NULL, RTLOG_JWT_ES256, &k, &l, &ei), RTLOG_E_INVAL);
    assert_int_equal(rtlog_auth_key_load(file, (rtlog_jwt_alg)0, &k, &l, &ei), RTLOG_E_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_then_load, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_secret_signs_and_verifies, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_permissions_refused, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_bad_content_refused, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_umask_and_symlink, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_concurrent_first_start, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_key_load, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
