/* test_trim.c - retention (rtlog_store_trim): whole entries go, seqs are never reused, the
 * latest snapshot stays, counters follow, the chain stays verifiable from the stored
 * base_hash, the metadata survives a reopen, and bad calls change nothing.
 * Source: rtlog_store.h "rtlog_store_trim"; CONTRACT.md "Resuming".
 */
#include "storage_test.h"

#include <lmdb.h>

static rtlog_store *open_store(const char *dir, int readonly)
{
    rtlog_store_opts o = {.dir = dir, .readonly = readonly, .nosync = 1};
    rtlog_store *st = NULL;
    rtlog_errinfo ei = {0};
    if (rtlog_store_open(&o, &st, &ei))
        fail_msg("open %s: %s", dir, ei.text);
    return st;
}

/* Append @n events one request each, so each is a single entry (the "tail"); @snap: index
 * (1-based seq offset from the first) of the one to flag RTLOG_REC_SNAPSHOT, 0 = none. */
static void append_singles(rtlog_store *st, const char *stream, size_t n, int64_t counter0,
                           size_t snap)
{
    for (size_t i = 0; i < n; i++) {
        tbatch b;
        tbatch_init(&b, 1, 7, counter0 + (int64_t)i, 40);
        if (snap && i + 1 == snap)
            b.recs[0].flags |= RTLOG_REC_SNAPSHOT;
        rtlog_errinfo ei = {0};
        assert_int_equal(append_batch(st, stream, &b, NULL, &ei), RTLOG_OK);
        tbatch_free(&b);
    }
}

/* The retained events: seqs first_seq..last_seq, each hash8 equal to a chain recomputed here
 * from base_hash, the head equal to the stored head, count and raw_bytes consistent. */
static void check_retained(rtlog_store *st, const char *stream)
{
    rtlog_stream_info info;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_describe(st, stream, &info, &ei), RTLOG_OK);
    tevs all = {0};
    assert_int_equal(read_all(st, stream, 1, 50, &all), RTLOG_OK);
    assert_int_equal(all.n, info.last_seq - info.first_seq + 1);
    assert_int_equal(info.event_count, all.n);
    uint8_t h[32];
    memcpy(h, info.base_hash, 32);
    rtlog_buf json = {0};
    uint64_t raw = 0;
    for (size_t i = 0; i < all.n; i++) {
        assert_int_equal(all.v[i].seq, info.first_seq + i);
        json.len = 0;
        mp_json(all.v[i].mp, all.v[i].mp_len, &json);
        chain_next(h, json.p, json.len, all.v[i].seq);
        assert_memory_equal(h, all.v[i].hash8, 8);
        /* the line with ,"seq":N} */
        raw += json.len + (json.len > 2 ? 1 : 0) + 6 + (size_t)snprintf(NULL, 0, "%" PRIu64,
                                                                        all.v[i].seq);
    }
    if (all.n)
        assert_memory_equal(h, info.head_hash, 32);
    assert_int_equal(info.raw_bytes, raw);
    rtlog_buf_free(&json);
    tevs_free(&all);
}

/* h(n) of the untrimmed stream, from its own records (read before trimming). */
static void chain_upto(rtlog_store *st, const char *stream, uint64_t n, uint8_t out[32])
{
    tevs all = {0};
    assert_int_equal(read_all(st, stream, 1, 0, &all), RTLOG_OK);
    memset(out, 0, 32);
    rtlog_buf json = {0};
    for (size_t i = 0; i < all.n && all.v[i].seq <= n; i++) {
        json.len = 0;
        mp_json(all.v[i].mp, all.v[i].mp_len, &json);
        chain_next(out, json.p, json.len, all.v[i].seq);
    }
    rtlog_buf_free(&json);
    tevs_free(&all);
}

static void test_trim_singles(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store *st = open_store(dir, 0);
    const char *s = "workflow-runs/t1";
    append_singles(st, s, 10, 0, 0);
    rtlog_stream_info before;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_describe(st, s, &before, &ei), RTLOG_OK);
    uint8_t h4[32];
    chain_upto(st, s, 4, h4);

    rtlog_trim_res tr = {0};
    assert_int_equal(rtlog_store_trim(st, s, 5, &tr, &ei), RTLOG_OK);
    assert_int_equal(tr.first_seq, 5);
    assert_int_equal(tr.removed, 4);
    rtlog_stream_info info;
    assert_int_equal(rtlog_store_describe(st, s, &info, &ei), RTLOG_OK);
    assert_int_equal(info.first_seq, 5);
    assert_int_equal(info.last_seq, 10);
    assert_int_equal(info.event_count, 6);
    assert_true(info.stored_bytes < before.stored_bytes);
    assert_memory_equal(info.base_hash, h4, 32);
    assert_memory_equal(info.head_hash, before.head_hash, 32);
    check_retained(st, s);

    /* A read from before the retained history starts at first_seq. */
    tevs all = {0};
    uint64_t next = 0;
    assert_int_equal(rtlog_store_read(st, s, 1, 1, 0, collect_cb, &all, &next, &ei), RTLOG_OK);
    assert_int_equal(all.n, 1);
    assert_int_equal(all.v[0].seq, 5);
    assert_int_equal(next, 6);
    tevs_free(&all);

    /* Nothing due: not an error, nothing changes. */
    assert_int_equal(rtlog_store_trim(st, s, 3, &tr, &ei), RTLOG_OK);
    assert_int_equal(tr.first_seq, 5);
    assert_int_equal(tr.removed, 0);

    /* Seqs are never reused; the tail keeps packing into blocks past the trim. */
    append_singles(st, s, 300, 100, 0);
    assert_int_equal(rtlog_store_describe(st, s, &info, &ei), RTLOG_OK);
    assert_int_equal(info.first_seq, 5);
    assert_int_equal(info.last_seq, 310);
    check_retained(st, s);

    /* Reopen: the version-2 metadata (first_seq, base_hash) is read back, also read-only. */
    rtlog_store_close(st);
    st = open_store(dir, 1);
    rtlog_stream_info again;
    assert_int_equal(rtlog_store_describe(st, s, &again, &ei), RTLOG_OK);
    assert_int_equal(again.first_seq, 5);
    assert_memory_equal(again.base_hash, h4, 32);
    check_retained(st, s);
    rtlog_store_close(st);
    tmpdir_remove(dir);
}

static void test_trim_whole_blocks(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store *st = open_store(dir, 0);
    const char *s = "deployment-jobs/j1";
    tbatch b;
    tbatch_init(&b, 600, 3, 0, 60); /* stored as blocks 1..256, 257..512, 513..600 */
    rtlog_errinfo ei = {0};
    assert_int_equal(append_batch(st, s, &b, NULL, &ei), RTLOG_OK);
    tbatch_free(&b);
    uint8_t h256[32];
    chain_upto(st, s, 256, h256);

    /* The cut falls inside the first block: the block stays whole. */
    rtlog_trim_res tr = {0};
    assert_int_equal(rtlog_store_trim(st, s, 100, &tr, &ei), RTLOG_OK);
    assert_int_equal(tr.first_seq, 1);
    assert_int_equal(tr.removed, 0);
    /* Past its last event: it goes, the next block straddles and stays. */
    assert_int_equal(rtlog_store_trim(st, s, 300, &tr, &ei), RTLOG_OK);
    assert_int_equal(tr.first_seq, 257);
    assert_int_equal(tr.removed, 256);
    rtlog_stream_info info;
    assert_int_equal(rtlog_store_describe(st, s, &info, &ei), RTLOG_OK);
    assert_memory_equal(info.base_hash, h256, 32);
    check_retained(st, s);
    rtlog_store_close(st);
    tmpdir_remove(dir);
}

static void test_trim_keeps_snapshot(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store *st = open_store(dir, 0);
    append_singles(st, "dashboard", 8, 0, 3); /* seq 3 is the latest snapshot */
    rtlog_errinfo ei = {0};
    rtlog_trim_res tr = {0};
    assert_int_equal(rtlog_store_trim(st, "dashboard", 8, &tr, &ei), RTLOG_OK);
    assert_int_equal(tr.first_seq, 3);
    assert_int_equal(tr.removed, 2);
    rtlog_stream_info info;
    assert_int_equal(rtlog_store_describe(st, "dashboard", &info, &ei), RTLOG_OK);
    assert_int_equal(info.snapshot_seq, 3);
    check_retained(st, "dashboard");

    /* A newer snapshot lets the older one go. */
    append_singles(st, "dashboard", 2, 50, 2); /* seq 10 */
    assert_int_equal(rtlog_store_trim(st, "dashboard", UINT64_MAX, &tr, &ei), RTLOG_OK);
    assert_int_equal(tr.first_seq, 10);
    assert_int_equal(tr.removed, 7);
    check_retained(st, "dashboard");
    rtlog_store_close(st);
    tmpdir_remove(dir);
}

static void test_trim_everything(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store *st = open_store(dir, 0);
    const char *s = "workflow-runs/all";
    append_singles(st, s, 5, 0, 0);
    rtlog_stream_info before;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_describe(st, s, &before, &ei), RTLOG_OK);
    rtlog_trim_res tr = {0};
    assert_int_equal(rtlog_store_trim(st, s, UINT64_MAX, &tr, &ei), RTLOG_OK);
    assert_int_equal(tr.first_seq, 6);
    assert_int_equal(tr.removed, 5);
    rtlog_stream_info info;
    assert_int_equal(rtlog_store_describe(st, s, &info, &ei), RTLOG_OK);
    assert_int_equal(info.event_count, 0);
    assert_int_equal(info.stored_bytes, 0);
    assert_int_equal(info.raw_bytes, 0);
    assert_int_equal(info.last_seq, 5);
    /* Nothing retained: the base is the head. */
    assert_memory_equal(info.base_hash, before.head_hash, 32);
    tevs all = {0};
    assert_int_equal(read_all(st, s, 1, 0, &all), RTLOG_OK);
    assert_int_equal(all.n, 0);
    tevs_free(&all);
    append_singles(st, s, 2, 10, 0);
    assert_int_equal(rtlog_store_describe(st, s, &info, &ei), RTLOG_OK);
    assert_int_equal(info.first_seq, 6);
    assert_int_equal(info.last_seq, 7);
    check_retained(st, s);
    rtlog_store_close(st);
    tmpdir_remove(dir);
}

static void test_trim_errors(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store *st = open_store(dir, 0);
    rtlog_errinfo ei = {0};
    rtlog_trim_res tr = {99, 99};
    assert_int_equal(rtlog_store_trim(st, "workflow-runs/none", 5, &tr, &ei), RTLOG_E_NOTFOUND);
    assert_int_equal(tr.removed, 0);
    assert_int_equal(rtlog_store_trim(st, "nope/x", 5, &tr, &ei), RTLOG_E_INVAL);
    append_singles(st, "workflow-runs/r", 3, 0, 0);
    rtlog_store_close(st);
    st = open_store(dir, 1);
    assert_int_equal(rtlog_store_trim(st, "workflow-runs/r", 2, &tr, &ei), RTLOG_E_INVAL);
    rtlog_stream_info info;
    assert_int_equal(rtlog_store_describe(st, "workflow-runs/r", &info, &ei), RTLOG_OK);
    assert_int_equal(info.first_seq, 1);
    assert_int_equal(info.event_count, 3);
    rtlog_store_close(st);
    tmpdir_remove(dir);
}

/* Change the last byte of the stored entry holding @seq (a raw single: its msgpack ends with
 * the "counter" fixint) behind the store's back, as an attacker with the file would. */
static void tamper_single(const char *dir, const char *stream, uint64_t seq)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi streams, events;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "streams", 0, &streams), 0);
    assert_int_equal(mdb_dbi_open(txn, "events", 0, &events), 0);
    MDB_val k = {strlen(stream), (void *)stream}, d;
    assert_int_equal(mdb_get(txn, streams, &k, &d), 0);
    uint8_t key[16];
    memcpy(key, (const uint8_t *)d.mv_data + 4, 8); /* the stream id, big-endian */
    for (int i = 0; i < 8; i++)
        key[8 + i] = (uint8_t)(seq >> (56 - 8 * i));
    MDB_val ek = {16, key}, ev;
    assert_int_equal(mdb_get(txn, events, &ek, &ev), 0);
    uint8_t *copy = malloc(ev.mv_size);
    assert_non_null(copy);
    memcpy(copy, ev.mv_data, ev.mv_size);
    assert_int_equal(copy[0] & 0x0f, 0); /* CODEC_RAW */
    assert_true(copy[ev.mv_size - 1] < 0x7f);
    copy[ev.mv_size - 1]++;
    MDB_val nv = {ev.mv_size, copy};
    assert_int_equal(mdb_put(txn, events, &ek, &nv, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    free(copy);
}

/* A removed event must match its stored hash: a tampered one makes the trim fail and
 * nothing is removed, so retention cannot erase the evidence. */
static void test_trim_refuses_tampered(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store *st = open_store(dir, 0);
    const char *s = "workflow-runs/tampered";
    append_singles(st, s, 5, 0, 0);
    rtlog_store_close(st);
    tamper_single(dir, s, 2);
    st = open_store(dir, 0);
    rtlog_errinfo ei = {0};
    rtlog_trim_res tr = {0};
    assert_int_equal(rtlog_store_trim(st, s, 4, &tr, &ei), RTLOG_E_CORRUPT);
    if (!strstr(ei.text, "seq 2") || !strstr(ei.text, "nothing was trimmed"))
        fail_msg("unexpected text: %s", ei.text);
    rtlog_stream_info info;
    assert_int_equal(rtlog_store_describe(st, s, &info, &ei), RTLOG_OK);
    assert_int_equal(info.first_seq, 1);
    assert_int_equal(info.event_count, 5);
    tevs all = {0};
    assert_int_equal(read_all(st, s, 1, 0, &all), RTLOG_OK);
    assert_int_equal(all.n, 5);
    tevs_free(&all);
    /* Before the tampered event a trim still works. */
    assert_int_equal(rtlog_store_trim(st, s, 2, &tr, &ei), RTLOG_OK);
    assert_int_equal(tr.first_seq, 2);
    rtlog_store_close(st);
    tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trim_singles),
        cmocka_unit_test(test_trim_whole_blocks),
        cmocka_unit_test(test_trim_keeps_snapshot),
        cmocka_unit_test(test_trim_everything),
        cmocka_unit_test(test_trim_errors),
        cmocka_unit_test(test_trim_refuses_tampered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
