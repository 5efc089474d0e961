/* test_concurrency.c - 8 producer threads append to 100 streams at once. Every stream must end
 * up gapless with a valid hash chain, each producer's events in the order it sent them, and
 * the writer must have committed several appends per write txn (group commit).
 * Source: rtlog_store.h "Threads"; DESIGN.md "Threads" (group commit).
 */
#include "storage_test.h"

#include <pthread.h>

#define THREADS    8
#define STREAMS    100
#define PER_THREAD 300

typedef struct prod {
    rtlog_store *st;
    int id;
    unsigned seed;
    uint64_t sent; /* events acknowledged */
    int failures;
    char why[256];
} prod;

static void stream_name(char *out, size_t cap, int k)
{
    snprintf(out, cap, "workflow-runs/c-%03d", k);
}

static void *producer(void *arg)
{
    prod *p = arg;
    int64_t counter = 0;
    for (int i = 0; i < PER_THREAD; i++) {
        int k = (int)(rand_r(&p->seed) % STREAMS);
        char name[64];
        stream_name(name, sizeof name, k);
        /* Mostly single events (the live shape), some batches that get packed as blocks. */
        int r = (int)(rand_r(&p->seed) % 10);
        size_t n = r < 7 ? 1 : r < 9 ? 3 : 12;
        tbatch b;
        tbatch_init(&b, n, p->id, counter + 1, 40 + (size_t)(rand_r(&p->seed) % 200));
        rtlog_errinfo ei = {0};
        rtlog_append_res res;
        rtlog_err rc = append_batch(p->st, name, &b, &res, &ei);
        if (rc != RTLOG_OK || res.last_seq - res.first_seq + 1 != n) {
            p->failures++;
            snprintf(p->why, sizeof p->why, "%s: %s", name, ei.text);
        } else {
            counter += (int64_t)n;
            p->sent += n;
        }
        tbatch_free(&b);
    }
    return NULL;
}

static void test_eight_producers(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store_opts o = {.dir = dir};
    rtlog_store *st = NULL;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_open(&o, &st, &ei), RTLOG_OK);

    pthread_t th[THREADS];
    prod p[THREADS];
    for (int i = 0; i < THREADS; i++) {
        p[i] = (prod){.st = st, .id = i + 1, .seed = 1234u + (unsigned)i * 7919u};
        assert_int_equal(pthread_create(&th[i], NULL, producer, &p[i]), 0);
    }
    uint64_t sent = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        if (p[i].failures)
            fail_msg("producer %d: %d failures, last: %s", p[i].id, p[i].failures, p[i].why);
        sent += p[i].sent;
    }

    uint64_t seen = 0;
    for (int k = 0; k < STREAMS; k++) {
        char name[64];
        stream_name(name, sizeof name, k);
        tevs all = {0};
        rtlog_err rc = read_all(st, name, 1, 50, &all);
        if (rc == RTLOG_E_NOTFOUND)
            continue; /* no producer picked it */
        assert_int_equal(rc, RTLOG_OK);
        check_chain(st, name, &all); /* gapless 1..last and the chain */
        int64_t last[THREADS + 1] = {0};
        for (size_t i = 0; i < all.n; i++) {
            int64_t pid = mp_int(all.v[i].mp, all.v[i].mp_len, "producer");
            int64_t c = mp_int(all.v[i].mp, all.v[i].mp_len, "counter");
            assert_true(pid >= 1 && pid <= THREADS);
            assert_true(c > last[pid]); /* this producer's events in its order */
            last[pid] = c;
        }
        seen += all.n;
        tevs_free(&all);
    }
    assert_int_equal(seen, sent);

    rtlog_store_stats stats;
    rtlog_store_get_stats(st, &stats);
    assert_int_equal(stats.events, sent);
    assert_int_equal(stats.batches, THREADS * PER_THREAD);
    print_message("commits %llu for %llu appends (%llu events)\n",
                  (unsigned long long)stats.commits, (unsigned long long)stats.batches,
                  (unsigned long long)stats.events);
    assert_true(stats.commits < stats.batches); /* group commit happened */
    rtlog_store_close(st);
    tmpdir_remove(dir);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_eight_producers)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
