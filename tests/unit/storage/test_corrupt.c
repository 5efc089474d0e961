/* test_corrupt.c - damaged stored bytes are reported, never crash and never go unnoticed
 * (rtlog_store.h: "RTLOG_E_CORRUPT (a record fails its checks: @ei names the seq)").
 *
 * White-box: the store is closed, then its LMDB environment is edited directly (an entry's
 * version byte, a truncated block, a deleted entry, garbage metadata, metadata that lags the
 * events), and the store is opened again. Reads before the damage still work; reads across it
 * fail with the seq named; appends to a damaged stream fail alone while others succeed.
 */
#include "storage_test.h"

#include <lmdb.h>

static rtlog_store *open_store(const char *dir)
{
    rtlog_store_opts o = {.dir = dir, .nosync = 1};
    rtlog_store *st = NULL;
    rtlog_errinfo ei = {0};
    if (rtlog_store_open(&o, &st, &ei))
        fail_msg("open: %s", ei.text);
    return st;
}

/* Streams a..e: 20 singles then a block of 100 then 10 singles each. */
static const char *const names[] = {"workflow-runs/a", "workflow-runs/b", "workflow-runs/c",
                                    "workflow-runs/d", "workflow-runs/e"};

static void fill(rtlog_store *st)
{
    rtlog_errinfo ei = {0};
    for (int k = 0; k < 5; k++) {
        int64_t c = 1;
        const size_t shapes[] = {1, 1, 1, 1, 1,   1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                 1, 1, 1, 1, 100, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            tbatch b;
            tbatch_init(&b, shapes[s], k, c, 60);
            assert_int_equal(append_batch(st, names[k], &b, NULL, &ei), RTLOG_OK);
            c += (int64_t)b.n;
            tbatch_free(&b);
        }
    }
}

typedef struct raw {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi streams, events;
} raw;

static void raw_open(raw *r, const char *dir)
{
    assert_int_equal(mdb_env_create(&r->env), 0);
    mdb_env_set_maxdbs(r->env, 8);
    assert_int_equal(mdb_env_open(r->env, dir, MDB_NOTLS, 0644), 0);
    assert_int_equal(mdb_txn_begin(r->env, NULL, 0, &r->txn), 0);
    assert_int_equal(mdb_dbi_open(r->txn, "streams", 0, &r->streams), 0);
    assert_int_equal(mdb_dbi_open(r->txn, "events", 0, &r->events), 0);
}

static void raw_close(raw *r)
{
    assert_int_equal(mdb_txn_commit(r->txn), 0);
    mdb_env_close(r->env);
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* The stream's numeric id: the first 8 bytes after the 4-byte metadata header. */
static uint64_t stream_id(raw *r, const char *name)
{
    MDB_val k = {strlen(name), (void *)name}, d;
    assert_int_equal(mdb_get(r->txn, r->streams, &k, &d), 0);
    return be64((const uint8_t *)d.mv_data + 4);
}

/* The n-th entry (0-based) of a stream: key seq and a copy of the value. */
static uint64_t nth_entry(raw *r, uint64_t id, int n, uint8_t **val, size_t *len)
{
    MDB_cursor *c;
    assert_int_equal(mdb_cursor_open(r->txn, r->events, &c), 0);
    uint8_t kb[16] = {0};
    for (int i = 0; i < 8; i++)
        kb[i] = (uint8_t)(id >> (56 - 8 * i));
    MDB_val k = {16, kb}, d;
    int rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
    for (int i = 0; i < n && rc == 0; i++)
        rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
    assert_int_equal(rc, 0);
    uint64_t seq = be64((const uint8_t *)k.mv_data + 8);
    *len = d.mv_size;
    *val = malloc(d.mv_size);
    memcpy(*val, d.mv_data, d.mv_size);
    mdb_cursor_close(c);
    return seq;
}

static void put_entry(raw *r, uint64_t id, uint64_t seq, const void *val, size_t len)
{
    uint8_t kb[16];
    for (int i = 0; i < 8; i++) {
        kb[i] = (uint8_t)(id >> (56 - 8 * i));
        kb[8 + i] = (uint8_t)(seq >> (56 - 8 * i));
    }
    MDB_val k = {16, kb}, d = {len, (void *)val};
    if (val)
        assert_int_equal(mdb_put(r->txn, r->events, &k, &d, 0), 0);
    else
        assert_int_equal(mdb_del(r->txn, r->events, &k, NULL), 0);
}

static void expect_corrupt(rtlog_store *st, const char *name, uint64_t bad_seq)
{
    tevs all = {0};
    rtlog_errinfo ei = {0};
    uint64_t next = 0;
    rtlog_err rc = rtlog_store_read(st, name, 1, 0, 0, collect_cb, &all, &next, &ei);
    assert_int_equal(rc, RTLOG_E_CORRUPT);
    char want[64];
    snprintf(want, sizeof want, "seq %llu", (unsigned long long)bad_seq);
    if (!strstr(ei.text, want))
        fail_msg("%s: expected \"%s\" in \"%s\"", name, want, ei.text);
    /* Everything before the damage is still readable. */
    tevs_free(&all);
    if (bad_seq > 1) {
        assert_int_equal(
            rtlog_store_read(st, name, 1, bad_seq - 1, 0, collect_cb, &all, &next, &ei), RTLOG_OK);
        assert_int_equal(all.n, bad_seq - 1);
        tevs_free(&all);
    }
}

static void test_damage(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store *st = open_store(dir);
    fill(st);
    rtlog_store_close(st);

    raw r;
    raw_open(&r, dir);
    uint8_t *v;
    size_t len;
    /* a: the 3rd single gets an unknown version. */
    uint64_t ida = stream_id(&r, names[0]);
    uint64_t sa = nth_entry(&r, ida, 2, &v, &len);
    v[0] = 0x70;
    put_entry(&r, ida, sa, v, len);
    free(v);
    /* b: the block loses its last 5 bytes. */
    uint64_t idb = stream_id(&r, names[1]);
    uint64_t sb = nth_entry(&r, idb, 1, &v, &len); /* entry 0 = block of the 20 packed singles */
    put_entry(&r, idb, sb, v, len - 5);
    free(v);
    uint64_t sb_first;
    {
        uint8_t *v0;
        size_t l0;
        sb_first = nth_entry(&r, idb, 0, &v0, &l0) + 1;
        free(v0);
    }
    /* c: an entry disappears (a gap). */
    uint64_t idc = stream_id(&r, names[2]);
    uint64_t sc = nth_entry(&r, idc, 3, &v, &len);
    put_entry(&r, idc, sc, NULL, 0);
    free(v);
    /* d: garbage metadata. */
    MDB_val k = {strlen(names[3]), (void *)names[3]}, d = {5, "junk!"};
    assert_int_equal(mdb_put(r.txn, r.streams, &k, &d, 0), 0);
    raw_close(&r);

    st = open_store(dir);
    expect_corrupt(st, names[0], sa);
    expect_corrupt(st, names[1], sb_first);
    expect_corrupt(st, names[2], sc);
    rtlog_stream_info info;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_describe(st, names[3], &info, &ei), RTLOG_E_CORRUPT);
    tevs all = {0};
    assert_int_equal(rtlog_store_read(st, names[3], 1, 0, 0, collect_cb, &all, NULL, &ei),
                     RTLOG_E_CORRUPT);

    /* Appending to the stream with damaged metadata fails alone; e is fine. */
    tbatch b;
    tbatch_init(&b, 1, 9, 1000, 30);
    assert_int_equal(append_batch(st, names[3], &b, NULL, &ei), RTLOG_E_CORRUPT);
    rtlog_append_res res;
    assert_int_equal(append_batch(st, names[4], &b, &res, &ei), RTLOG_OK);
    assert_int_equal(res.first_seq, 131);
    tbatch_free(&b);
    rtlog_store_close(st);

    /* e: metadata that lags the events (last_seq one too low): the next append would reuse
     * a seq; it is refused as corrupt instead of overwriting an event. */
    raw_open(&r, dir);
    k = (MDB_val){strlen(names[4]), (void *)names[4]};
    assert_int_equal(mdb_get(r.txn, r.streams, &k, &d), 0);
    uint8_t meta[256];
    assert_true(d.mv_size <= sizeof meta);
    memcpy(meta, d.mv_data, d.mv_size);
    uint64_t last = be64(meta + 4 + 8 * 3);
    assert_int_equal(last, 131);
    for (int i = 0; i < 8; i++)
        meta[4 + 8 * 3 + i] = (uint8_t)((last - 1) >> (56 - 8 * i));
    d.mv_data = meta;
    assert_int_equal(mdb_put(r.txn, r.streams, &k, &d, 0), 0);
    raw_close(&r);
    st = open_store(dir);
    tbatch_init(&b, 1, 9, 1000, 30);
    memset(&ei, 0, sizeof ei);
    assert_int_equal(append_batch(st, names[4], &b, NULL, &ei), RTLOG_E_CORRUPT);
    assert_non_null(strstr(ei.text, "already exists"));
    tbatch_free(&b);
    rtlog_store_close(st);
    tmpdir_remove(dir);
}

/* Not an rtlog store, and a store of a newer format: refused at open. */
static void test_foreign_env(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    MDB_val k = {3, "foo"}, d = {3, "bar"};
    assert_int_equal(mdb_put(txn, dbi, &k, &d, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    rtlog_store_opts o = {.dir = dir};
    rtlog_store *st = NULL;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_open(&o, &st, &ei), RTLOG_E_CORRUPT);
    assert_non_null(strstr(ei.text, "not an rtlog store"));
    tmpdir_remove(dir);

    dir = tmpdir_make();
    o.dir = dir;
    assert_int_equal(rtlog_store_open(&o, &st, &ei), RTLOG_OK);
    rtlog_store_close(st);
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    uint8_t fmt[4] = {0, 0, 0, 99};
    k = (MDB_val){6, "format"};
    d = (MDB_val){4, fmt};
    assert_int_equal(mdb_put(txn, dbi, &k, &d, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    assert_int_equal(rtlog_store_open(&o, &st, &ei), RTLOG_E_CORRUPT);
    assert_non_null(strstr(ei.text, "format 99"));
    tmpdir_remove(dir);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_damage),
                                       cmocka_unit_test(test_foreign_env)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
