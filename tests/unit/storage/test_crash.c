/* test_crash.c - kill -9 during appends loses nothing acknowledged (CONTRACT "Streams and
 * event ids": an event is acknowledged only after it is durable; handed.md C12 family).
 *
 * A forked child opens its OWN store (never an env across fork) and appends in a loop from
 * two threads, writing every acknowledged (stream, last seq) to a pipe. The parent SIGKILLs
 * it at a random moment, 24 times; after each kill it opens the store and checks that every
 * acknowledged event is there, seqs are gapless 1..last, the head hash equals a chain
 * recomputed from the stored records, and that appends work again at last+1.
 */
#include "storage_test.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#define ROUNDS  24
#define NSTREAM 2

static const char *const names[NSTREAM] = {"workflow-runs/crash-a", "deployment-jobs/crash-b"};

typedef struct ack {
    uint64_t stream, last;
} ack;

typedef struct child_arg {
    rtlog_store *st;
    int k;
    int fd;
    unsigned seed;
} child_arg;

static void *child_appender(void *arg)
{
    child_arg *a = arg;
    rtlog_stream_info info;
    rtlog_errinfo ei;
    uint64_t last = 0;
    if (rtlog_store_describe(a->st, names[a->k], &info, &ei) == RTLOG_OK)
        last = info.last_seq;
    for (;;) {
        int r = (int)(rand_r(&a->seed) % 10);
        size_t n = r < 6 ? 1 : r < 8 ? 5 : 20;
        tbatch b;
        tbatch_init(&b, n, a->k, (int64_t)last + 1, 30 + (size_t)(rand_r(&a->seed) % 300));
        rtlog_append_res res;
        rtlog_err rc = append_batch(a->st, names[a->k], &b, &res, &ei);
        tbatch_free(&b);
        if (rc != RTLOG_OK || res.first_seq != last + 1)
            _exit(3); /* the parent sees a child that died on its own */
        last = res.last_seq;
        ack m = {(uint64_t)a->k, last};
        if (write(a->fd, &m, sizeof m) != (ssize_t)sizeof m)
            _exit(4);
    }
    return NULL;
}

static void child_main(const char *dir, int fd, unsigned seed)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    rtlog_store_opts o = {.dir = dir};
    rtlog_store *st = NULL;
    rtlog_errinfo ei;
    if (rtlog_store_open(&o, &st, &ei) != RTLOG_OK)
        _exit(2);
    pthread_t th[NSTREAM];
    child_arg args[NSTREAM];
    for (int k = 0; k < NSTREAM; k++) {
        args[k] = (child_arg){st, k, fd, seed + (unsigned)k};
        pthread_create(&th[k], NULL, child_appender, &args[k]);
    }
    for (;;)
        pause(); /* until SIGKILL */
}

static void check_store(const char *dir, const uint64_t acked[NSTREAM])
{
    rtlog_store_opts o = {.dir = dir};
    rtlog_store *st = NULL;
    rtlog_errinfo ei = {0};
    if (rtlog_store_open(&o, &st, &ei))
        fail_msg("reopen after kill: %s", ei.text);
    for (int k = 0; k < NSTREAM; k++) {
        rtlog_stream_info info;
        rtlog_err rc = rtlog_store_describe(st, names[k], &info, &ei);
        if (rc == RTLOG_E_NOTFOUND && acked[k] == 0)
            continue;
        assert_int_equal(rc, RTLOG_OK);
        assert_true(info.last_seq >= acked[k]); /* nothing acknowledged is lost */
        tevs all = {0};
        assert_int_equal(read_all(st, names[k], 1, 100, &all), RTLOG_OK);
        check_chain(st, names[k], &all); /* gapless, hashes and head */
        for (size_t i = 0; i < all.n; i++)
            assert_int_equal(mp_int(all.v[i].mp, all.v[i].mp_len, "counter"), (int64_t)i + 1);
        tevs_free(&all);
        /* Appends work again, at last + 1. */
        tbatch b;
        tbatch_init(&b, 1, k, (int64_t)info.last_seq + 1, 20);
        rtlog_append_res res;
        assert_int_equal(append_batch(st, names[k], &b, &res, &ei), RTLOG_OK);
        assert_int_equal(res.first_seq, info.last_seq + 1);
        tbatch_free(&b);
    }
    rtlog_store_close(st);
}

static void test_kill_during_appends(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    unsigned seed = (unsigned)time(NULL);
    print_message("seed %u\n", seed);
    uint64_t acked[NSTREAM] = {0};
    for (int round = 0; round < ROUNDS; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child_main(dir, p[1], seed + (unsigned)round * 101u);
        }
        close(p[1]);
        /* Let it acknowledge a random number of appends, then kill it at a random moment
         * (possibly inside a commit). */
        int want = 1 + (int)(rand_r(&seed) % 60), got = 0;
        ack m;
        while (got < want && read(p[0], &m, sizeof m) == (ssize_t)sizeof m) {
            if (m.last > acked[m.stream])
                acked[m.stream] = m.last;
            got++;
        }
        struct timespec ts = {0, (long)(rand_r(&seed) % 3000) * 1000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status))
            fail_msg("child exited by itself (status %d) in round %d", WEXITSTATUS(status), round);
        /* Acks written before the kill are still in the pipe. */
        ssize_t r;
        while ((r = read(p[0], &m, sizeof m)) == (ssize_t)sizeof m)
            if (m.last > acked[m.stream])
                acked[m.stream] = m.last;
        close(p[0]);
        assert_true(got > 0);
        check_store(dir, acked);
        /* check_store appended one more event to each stream. */
        for (int k = 0; k < NSTREAM; k++) {
            rtlog_store_opts o = {.dir = dir, .readonly = 1};
            rtlog_store *st;
            rtlog_errinfo ei;
            rtlog_stream_info info;
            assert_int_equal(rtlog_store_open(&o, &st, &ei), RTLOG_OK);
            if (rtlog_store_describe(st, names[k], &info, &ei) == RTLOG_OK)
                acked[k] = info.last_seq;
            rtlog_store_close(st);
        }
    }
    print_message("after %d kills: %llu and %llu events\n", ROUNDS, (unsigned long long)acked[0],
                  (unsigned long long)acked[1]);
    tmpdir_remove(dir);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill_during_appends)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
