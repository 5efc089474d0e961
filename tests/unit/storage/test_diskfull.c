/* test_diskfull.c - the file system fills up while the map has room (handed.md C12 family:
 * "Filesystem full while the map is not").
 *
 * Mounts a 4 MiB tmpfs (needs root; exits 77 = skipped when the mount is refused), puts a
 * store on it, fills the rest with filler files, appends until RTLOG_E_FULL, checks the
 * message, deletes a filler and checks that appends work again and that every acknowledged
 * event is still there.
 */
#include "storage_test.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/wait.h>

static void noisy_batch(tbatch *b, size_t n, int64_t first_counter, uint64_t *rng)
{
    b->n = n;
    b->t = calloc(n, sizeof *b->t);
    b->recs = calloc(n, sizeof *b->recs);
    char line[2049];
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < sizeof line - 1; j++) {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            line[j] = alpha[*rng % 64];
        }
        line[sizeof line - 1] = '\0';
        trec_init(&b->t[i], "step_log", line, 1, first_counter + (int64_t)i);
        b->recs[i] = b->t[i].rec;
    }
}

/* Write 256 KiB filler files until the file system refuses; returns how many were made. */
static int fill(const char *mnt)
{
    static char chunk[64 * 1024];
    memset(chunk, 'f', sizeof chunk);
    for (int i = 0; i < 100; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/filler-%02d", mnt, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            return i;
        for (int k = 0; k < 4; k++) {
            if (write(fd, chunk, sizeof chunk) != (ssize_t)sizeof chunk) {
                close(fd);
                return i + 1;
            }
        }
        close(fd);
    }
    return 100;
}

static char *mnt;

static void test_disk_full(void **state)
{
    (void)state;
    char store_dir[4200];
    snprintf(store_dir, sizeof store_dir, "%s/store", mnt);
    rtlog_store_opts o = {.dir = store_dir};
    rtlog_store *st = NULL;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_open(&o, &st, &ei), RTLOG_OK);
    const char *s = "workflow-runs/disk";
    uint64_t rng = 0x9e3779b97f4a7c15ull, acked = 0;
    for (int i = 0; i < 50; i++) {
        tbatch b;
        noisy_batch(&b, 2, (int64_t)acked + 1, &rng);
        rtlog_append_res res;
        assert_int_equal(append_batch(st, s, &b, &res, &ei), RTLOG_OK);
        acked = res.last_seq;
        tbatch_free(&b);
    }
    int fillers = fill(mnt);
    assert_true(fillers > 0);

    rtlog_err rc = RTLOG_OK;
    for (int i = 0; i < 4000 && rc == RTLOG_OK; i++) {
        tbatch b;
        noisy_batch(&b, 1, (int64_t)acked + 1, &rng);
        rtlog_append_res res;
        memset(&ei, 0, sizeof ei);
        rc = append_batch(st, s, &b, &res, &ei);
        if (rc == RTLOG_OK)
            acked = res.last_seq;
        tbatch_free(&b);
    }
    assert_int_equal(rc, RTLOG_E_FULL);
    assert_non_null(strstr(ei.text, "no space left on device"));
    rtlog_store_stats stats;
    rtlog_store_get_stats(st, &stats);
    assert_int_equal(stats.full, 1);
    print_message("full after %llu events: %s\n", (unsigned long long)acked, ei.text);

    /* Still full: fails again, changes nothing. */
    rtlog_stream_info before, after;
    assert_int_equal(rtlog_store_describe(st, s, &before, &ei), RTLOG_OK);
    assert_int_equal(before.last_seq, acked);
    tbatch b;
    noisy_batch(&b, 3, (int64_t)acked + 1, &rng);
    assert_int_equal(append_batch(st, s, &b, NULL, &ei), RTLOG_E_FULL);
    tbatch_free(&b);
    assert_int_equal(rtlog_store_describe(st, s, &after, &ei), RTLOG_OK);
    assert_memory_equal(&before, &after, sizeof before);

    /* Room again: appends continue at last + 1. */
    char path[4200];
    snprintf(path, sizeof path, "%s/filler-%02d", mnt, 0);
    assert_int_equal(unlink(path), 0);
    for (int i = 0; i < 3; i++) {
        noisy_batch(&b, 1, (int64_t)acked + 1, &rng);
        rtlog_append_res res;
        memset(&ei, 0, sizeof ei);
        rc = append_batch(st, s, &b, &res, &ei);
        if (rc)
            fail_msg("append after freeing space: %s", ei.text);
        assert_int_equal(res.first_seq, acked + 1);
        acked = res.last_seq;
        tbatch_free(&b);
    }
    rtlog_store_get_stats(st, &stats);
    assert_int_equal(stats.full, 0);
    tevs all = {0};
    assert_int_equal(read_all(st, s, 1, 64, &all), RTLOG_OK);
    assert_int_equal(all.n, acked);
    check_chain(st, s, &all);
    tevs_free(&all);
    rtlog_store_close(st);

    /* And after a reopen. */
    assert_int_equal(rtlog_store_open(&o, &st, &ei), RTLOG_OK);
    all = (tevs){0};
    assert_int_equal(read_all(st, s, 1, 0, &all), RTLOG_OK);
    assert_int_equal(all.n, acked);
    check_chain(st, s, &all);
    tevs_free(&all);
    rtlog_store_close(st);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    char tmpl[] = "/tmp/rtlog-diskfull-XXXXXX";
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    if (mount("tmpfs", tmpl, "tmpfs", 0, "size=4m")) {
        printf("SKIP: cannot mount a tmpfs on %s: %s (needs root)\n", tmpl, strerror(errno));
        rmdir(tmpl);
        return 77;
    }
    mnt = tmpl;
    /* The tests run in a child so the mount is removed however they end (a crash, an
     * abort from a sanitizer): this process only waits and unmounts. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_disk_full)};
        exit(cmocka_run_group_tests(tests, NULL, NULL));
    }
    int status = 0, rc = 1;
    if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status))
        rc = WEXITSTATUS(status);
    else if (pid > 0 && WIFSIGNALED(status))
        printf("test process killed by signal %d\n", WTERMSIG(status));
    /* Lazy: in case anything still holds the store's map. */
    if (umount2(tmpl, MNT_DETACH))
        perror("umount");
    rmdir(tmpl);
    return rc;
}
