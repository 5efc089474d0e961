/* test_stale_reader.c - a reader process killed inside its read transaction beside a running
 * writer (a SIGKILLed `rtlog export` next to `rtlog serve`) must not keep its LMDB reader
 * slot, and with it every page of its snapshot, for longer than the writer's sweep interval
 * (writer.c reader_sweep, READER_SWEEP_MS; handed.md C08 and C12 family).
 *
 * The child opens the store read-only in its own process and blocks inside the read callback
 * (so its read txn is open); the parent sees the child's pid in the reader table (`mdb_stat
 * -r`, lmdb-utils: a plain listing that clears nothing itself), SIGKILLs the child, and
 * appends: once the sweep interval has passed, the dead pid is gone from the table.
 */
#include "storage_test.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

static const char *const stream = "workflow-runs/stale-1";

static int block_cb(void *ctx, const rtlog_event_view *ev)
{
    (void)ev;
    int fd = *(int *)ctx;
    if (write(fd, "r", 1) != 1)
        _exit(12);
    for (;;)
        pause(); /* inside the read txn, until SIGKILL */
}

static void child_main(const char *dir, int ready_fd, int inside_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char c;
    if (read(ready_fd, &c, 1) != 1)
        _exit(10);
    rtlog_store_opts o = {.dir = dir, .readonly = 1};
    rtlog_store *st = NULL;
    rtlog_errinfo ei;
    if (rtlog_store_open(&o, &st, &ei) != RTLOG_OK)
        _exit(11);
    uint64_t next = 1;
    rtlog_store_read(st, stream, 1, 10, 0, block_cb, &inside_fd, &next, &ei);
    _exit(13); /* not reached */
}

/* Is @pid listed in the store's reader table? Uses `mdb_stat -r` (one r: list only). */
static int in_reader_table(const char *dir, pid_t pid)
{
    char cmd[4200], line[512];
    snprintf(cmd, sizeof cmd, "mdb_stat -r '%s' 2>/dev/null", dir);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    int found = 0, table = 0;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "Reader Table Status"))
            table = 1;
        long p;
        if (sscanf(line, " %ld ", &p) == 1 && p == (long)pid)
            found = 1;
    }
    pclose(f);
    assert_true(table); /* mdb_stat ran: lmdb-utils is installed (tools/deps.sh) */
    return found;
}

static void append_some(rtlog_store *st, int64_t from)
{
    tbatch b;
    tbatch_init(&b, 20, 1, from, 200);
    rtlog_append_res res;
    rtlog_errinfo ei = {0};
    assert_int_equal(append_batch(st, stream, &b, &res, &ei), RTLOG_OK);
    tbatch_free(&b);
}

static void test_dead_reader_slot_is_cleared(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    int go[2], inside[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(inside), 0);
    pid_t pid = fork(); /* before the parent opens anything: no env crosses the fork */
    assert_true(pid >= 0);
    if (pid == 0) {
        close(go[1]);
        close(inside[0]);
        child_main(dir, go[0], inside[1]);
    }
    close(go[0]);
    close(inside[1]);

    rtlog_store_opts o = {.dir = dir};
    rtlog_store *st = NULL;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_open(&o, &st, &ei), RTLOG_OK);
    append_some(st, 1);
    assert_int_equal(write(go[1], "g", 1), 1);
    char c;
    assert_int_equal(read(inside[0], &c, 1), 1); /* the child is inside its read txn */
    assert_true(in_reader_table(dir, pid));

    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_true(in_reader_table(dir, pid)); /* LMDB itself does not notice */

    /* appends keep coming; after the sweep interval the next write txn clears the slot */
    int cleared = 0;
    for (int i = 0; i < 40 && !cleared; i++) {
        struct timespec d = {0, 100 * 1000 * 1000};
        nanosleep(&d, NULL);
        append_some(st, 21 + 20 * i);
        cleared = !in_reader_table(dir, pid);
    }
    assert_true(cleared);
    rtlog_store_close(st);
    close(go[1]);
    close(inside[0]);
    tmpdir_remove(dir);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_dead_reader_slot_is_cleared)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
