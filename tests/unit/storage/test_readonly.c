/* test_readonly.c - a read-only second process reads while the writer appends (`rtlog
 * export` beside `rtlog serve`: CONTRACT "Tools").
 *
 * The child opens the store read-only in its own process and reads the stream over and
 * over in bounded chunks; every pass must be gapless from seq 1, carry the right records,
 * and never see the stream shrink. The parent appends singles and batches meanwhile from a
 * small map that has to grow several times, so the child also meets MDB_MAP_RESIZED and
 * the tail being packed into blocks under its feet.
 */
#include "storage_test.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define TOTAL 4000u
static const char *const stream = "workflow-runs/ro-1";

typedef struct pass_ctx {
    uint64_t expect;
    int bad;
} pass_ctx;

static int pass_cb(void *ctx, const rtlog_event_view *ev)
{
    pass_ctx *p = ctx;
    if (ev->seq != p->expect || mp_int(ev->mp, ev->mp_len, "counter") != (int64_t)ev->seq)
        p->bad = 1;
    p->expect = ev->seq + 1;
    return 0;
}

/* Exit codes: 0 ok (saw all TOTAL events), 10+ the check that failed. Never returns. */
static void child_main(const char *dir, int ready_fd)
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
    rtlog_store_stats s0, s1;
    rtlog_store_get_stats(st, &s0);
    uint64_t seen_last = 0;
    for (long pass = 0; pass < 1000000; pass++) {
        rtlog_stream_info info;
        if (rtlog_store_describe(st, stream, &info, &ei) != RTLOG_OK)
            _exit(12);
        if (info.last_seq < seen_last)
            _exit(13); /* went backwards */
        pass_ctx p = {.expect = 1};
        uint64_t next = 1;
        for (;;) {
            uint64_t before = p.expect;
            if (rtlog_store_read(st, stream, next, 97, 0, pass_cb, &p, &next, &ei) != RTLOG_OK)
                _exit(14);
            if (p.bad)
                _exit(15);
            if (p.expect == before)
                break;
        }
        if (p.expect - 1 < info.last_seq)
            _exit(16); /* fewer events than the stream had when the pass began */
        seen_last = p.expect - 1;
        if (seen_last >= TOTAL) {
            /* It opened on the writer's first 64 KiB map and must have adopted the grown
             * map (MDB_MAP_RESIZED) to read everything. */
            rtlog_store_get_stats(st, &s1);
            rtlog_store_close(st);
            _exit(s1.map_bytes > s0.map_bytes ? 0 : 18);
        }
    }
    _exit(17);
}

static void test_reader_beside_writer(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork(); /* before the parent opens anything: no env crosses the fork */
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[1]);
        child_main(dir, p[0]);
    }
    close(p[0]);

    rtlog_store_opts o = {.dir = dir, .map_bytes = 64u * 1024u};
    rtlog_store *st = NULL;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_open(&o, &st, &ei), RTLOG_OK);
    rtlog_append_req mk = {.stream = stream};
    assert_int_equal(rtlog_store_append(st, &mk, NULL, &ei), RTLOG_OK);
    rtlog_store_stats s0;
    rtlog_store_get_stats(st, &s0);
    assert_int_equal(write(p[1], "go", 1), 1);
    close(p[1]);

    uint64_t last = 0;
    unsigned seed = 7;
    while (last < TOTAL) {
        int r = (int)(rand_r(&seed) % 10);
        size_t n = r < 6 ? 1 : r < 9 ? 4 : 40;
        if (last + n > TOTAL)
            n = TOTAL - last;
        tbatch b;
        tbatch_init(&b, n, 1, (int64_t)last + 1, 100 + (size_t)(rand_r(&seed) % 400));
        rtlog_append_res res;
        assert_int_equal(append_batch(st, stream, &b, &res, &ei), RTLOG_OK);
        assert_int_equal(res.first_seq, last + 1);
        last = res.last_seq;
        tbatch_free(&b);
    }
    rtlog_store_stats s1;
    rtlog_store_get_stats(st, &s1);
    assert_true(s1.map_bytes > s0.map_bytes); /* the map grew while the reader read */

    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("reader process failed check %d", WEXITSTATUS(status));
    rtlog_store_close(st);
    tmpdir_remove(dir);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_reader_beside_writer)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
