/* test_mapfull.c - the map reaches map_max_bytes (handed.md C12, MDB_MAP_FULL).
 *
 * Starts with a small map that grows by itself up to a 2 MiB limit, appends until
 * RTLOG_E_FULL, and checks: the message, that nothing of a failed append is stored, that the
 * store stays readable and consistent, that failures repeat without side effects, and that
 * after reopening with a bigger limit appends continue at last + 1.
 */
#include "storage_test.h"

/* Records that do not compress, so the map fills in a predictable number of appends. */
static void noisy_batch(tbatch *b, size_t n, int64_t first_counter, uint64_t *rng)
{
    b->n = n;
    b->t = calloc(n, sizeof *b->t);
    b->recs = calloc(n, sizeof *b->recs);
    char line[4097];
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

static void test_map_limit(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store_opts o = {.dir = dir, .map_bytes = 256u * 1024u, .map_max_bytes = 2u << 20};
    rtlog_store *st = NULL;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_open(&o, &st, &ei), RTLOG_OK);
    const char *s = "agents/agent-a";
    uint64_t rng = 88172645463325252ull, acked = 0;
    rtlog_err rc = RTLOG_OK;
    for (int i = 0; i < 5000 && rc == RTLOG_OK; i++) {
        tbatch b;
        noisy_batch(&b, 1, (int64_t)acked + 1, &rng);
        rtlog_append_res res;
        memset(&ei, 0, sizeof ei);
        rc = append_batch(st, s, &b, &res, &ei);
        if (rc == RTLOG_OK) {
            assert_int_equal(res.first_seq, acked + 1);
            acked = res.last_seq;
        }
        tbatch_free(&b);
    }
    assert_int_equal(rc, RTLOG_E_FULL);
    assert_string_equal(ei.text, "storage full: map limit 2 MiB reached");
    assert_true(acked > 100); /* the map did grow from 256 KiB before it hit the limit */
    print_message("full after %llu events of 4 KiB\n", (unsigned long long)acked);

    rtlog_store_stats stats;
    rtlog_store_get_stats(st, &stats);
    assert_int_equal(stats.full, 1);
    assert_true(stats.failed_commits >= 1);
    assert_int_equal(stats.map_bytes, 2u << 20);

    /* Nothing partial: the stream ends at the last acknowledged event, all of it readable. */
    rtlog_stream_info info;
    assert_int_equal(rtlog_store_describe(st, s, &info, &ei), RTLOG_OK);
    assert_int_equal(info.last_seq, acked);
    tevs all = {0};
    assert_int_equal(read_all(st, s, 1, 64, &all), RTLOG_OK);
    check_chain(st, s, &all);
    tevs_free(&all);

    /* Failing again (a batch this time) changes nothing and does not wedge the writer. */
    for (int i = 0; i < 5; i++) {
        tbatch b;
        noisy_batch(&b, 20, (int64_t)acked + 1, &rng);
        assert_int_equal(append_batch(st, s, &b, NULL, &ei), RTLOG_E_FULL);
        tbatch_free(&b);
    }
    rtlog_stream_info again;
    assert_int_equal(rtlog_store_describe(st, s, &again, &ei), RTLOG_OK);
    assert_memory_equal(&info, &again, sizeof info);
    rtlog_store_close(st);

    /* Reopen with room: appends continue at last + 1, no gap, no duplicate. */
    o.map_max_bytes = 16u << 20;
    assert_int_equal(rtlog_store_open(&o, &st, &ei), RTLOG_OK);
    for (int i = 0; i < 5; i++) {
        tbatch b;
        noisy_batch(&b, 1, (int64_t)acked + 1, &rng);
        rtlog_append_res res;
        assert_int_equal(append_batch(st, s, &b, &res, &ei), RTLOG_OK);
        assert_int_equal(res.first_seq, acked + 1);
        acked = res.last_seq;
        tbatch_free(&b);
    }
    rtlog_store_get_stats(st, &stats);
    assert_int_equal(stats.full, 0);
    all = (tevs){0};
    assert_int_equal(read_all(st, s, 1, 0, &all), RTLOG_OK);
    assert_int_equal(all.n, acked);
    check_chain(st, s, &all);
    tevs_free(&all);
    rtlog_store_close(st);
    tmpdir_remove(dir);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_map_limit)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
