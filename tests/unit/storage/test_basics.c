/* test_basics.c - the store's contract on one thread: create, append, read from any seq,
 * gapless seqs, describe, list, sealing, expectedSeq, reopen, the hash chain, the commit hook.
 * Source: rtlog_store.h; CONTRACT.md "Streams and event ids", "Completion and sealing",
 * "Ingest", "Tools".
 */
#include "storage_test.h"

#include <pthread.h>

/* nosync: these tests are about the contract, not durability (test_crash is). */
static rtlog_store *open_store(const char *dir, int readonly)
{
    rtlog_store_opts o = {.dir = dir, .readonly = readonly, .nosync = 1};
    rtlog_store *st = NULL;
    rtlog_errinfo ei = {0};
    rtlog_err rc = rtlog_store_open(&o, &st, &ei);
    if (rc)
        fail_msg("open %s: %s", dir, ei.text);
    return st;
}

static void test_create_empty(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store *st = open_store(dir, 0);
    rtlog_errinfo ei = {0};
    rtlog_append_res res = {0};
    rtlog_append_req req = {.stream = "workflow-runs/run-0001", .n = 0};
    assert_int_equal(rtlog_store_append(st, &req, &res, &ei), RTLOG_OK);
    assert_int_equal(res.first_seq, 1);
    assert_int_equal(res.last_seq, 0);
    assert_int_equal(res.sealed, 0);

    rtlog_stream_info info;
    assert_int_equal(rtlog_store_describe(st, "workflow-runs/run-0001", &info, &ei), RTLOG_OK);
    assert_string_equal(info.stream, "workflow-runs/run-0001");
    assert_int_equal(info.kind, RTLOG_KIND_RUN);
    assert_true(info.created_ms > 1600000000000ull);
    assert_int_equal(info.first_seq, 1);
    assert_int_equal(info.last_seq, 0);
    assert_int_equal(info.event_count, 0);
    assert_int_equal(info.stored_bytes, 0);
    assert_int_equal(info.sealed, 0);
    assert_string_equal(info.final_status, "");
    uint8_t zero[32] = {0};
    assert_memory_equal(info.head_hash, zero, 32);

    /* Creating again changes nothing. */
    assert_int_equal(rtlog_store_append(st, &req, &res, &ei), RTLOG_OK);
    assert_int_equal(res.last_seq, 0);

    tevs all = {0};
    uint64_t next = 0;
    assert_int_equal(
        rtlog_store_read(st, "workflow-runs/run-0001", 1, 0, 0, collect_cb, &all, &next, &ei),
        RTLOG_OK);
    assert_int_equal(all.n, 0);
    assert_int_equal(next, 1);

    /* Never created: not found, for reads and describe alike. */
    assert_int_equal(
        rtlog_store_read(st, "workflow-runs/nope", 1, 0, 0, collect_cb, &all, &next, &ei),
        RTLOG_E_NOTFOUND);
    assert_int_equal(rtlog_store_describe(st, "workflow-runs/nope", &info, &ei), RTLOG_E_NOTFOUND);

    /* A bad name is refused before anything is queued. */
    rtlog_append_req bad = {.stream = "workflow-runs/a b", .n = 0};
    assert_int_equal(rtlog_store_append(st, &bad, &res, &ei), RTLOG_E_INVAL);
    bad.stream = "nosuchkind/x";
    assert_int_equal(rtlog_store_append(st, &bad, &res, &ei), RTLOG_E_INVAL);
    assert_int_equal(rtlog_store_describe(st, "nosuchkind/x", &info, &ei), RTLOG_E_NOTFOUND);

    /* Kinds come from the name. */
    const char *names[] = {"deployment-jobs/job-0001", "agents/agent-a", "dashboard"};
    const rtlog_kind kinds[] = {RTLOG_KIND_JOB, RTLOG_KIND_AGENT, RTLOG_KIND_DASHBOARD};
    for (int i = 0; i < 3; i++) {
        req.stream = names[i];
        assert_int_equal(rtlog_store_append(st, &req, &res, &ei), RTLOG_OK);
        assert_int_equal(rtlog_store_describe(st, names[i], &info, &ei), RTLOG_OK);
        assert_int_equal(info.kind, kinds[i]);
    }
    rtlog_store_close(st);
    tmpdir_remove(dir);
}

/* The mixed shapes an append path sees: singles (the tail, packed at 256 events or 256 KiB),
 * batches (packed by the caller), batches below the block minimum, batches bigger than one
 * block, and records too big for a block. */
static size_t append_mixture(rtlog_store *st, const char *stream, uint64_t *raw_bytes)
{
    size_t total = 0;
    const size_t shapes[] = {1, 1, 1, 100, 7, 1, 256, 300, 3, 8, 1};
    rtlog_errinfo ei = {0};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        tbatch b;
        tbatch_init(&b, shapes[s], 1, (int64_t)total + 1, 40 + s * 20);
        rtlog_append_res res;
        assert_int_equal(append_batch(st, stream, &b, &res, &ei), RTLOG_OK);
        assert_int_equal(res.first_seq, total + 1);
        assert_int_equal(res.last_seq, total + b.n);
        for (size_t i = 0; i < b.n; i++)
            *raw_bytes +=
                b.recs[i].json_len - 1 + (size_t)snprintf(NULL, 0, ",\"seq\":%zu}", total + 1 + i);
        total += b.n;
        tbatch_free(&b);
    }
    /* 300 singles one by one: the tail gets packed on the way (at 256). */
    for (int i = 0; i < 300; i++) {
        tbatch b;
        tbatch_init(&b, 1, 1, (int64_t)total + 1, 120);
        assert_int_equal(append_batch(st, stream, &b, NULL, &ei), RTLOG_OK);
        *raw_bytes +=
            b.recs[0].json_len - 1 + (size_t)snprintf(NULL, 0, ",\"seq\":%zu}", total + 1);
        total++;
        tbatch_free(&b);
    }
    /* Big records (a 450 KB CI log line exists in the real data), alone and inside a batch. */
    for (int k = 0; k < 2; k++) {
        tbatch b;
        /* k = 1: 4 singles, the big one, then a block: the tail is packed mid-batch. */
        tbatch_init(&b, k ? 30 : 1, 1, (int64_t)total + 1, k ? 30 : 460000);
        if (k) {
            trec_free(&b.t[4]);
            char *big = malloc(100001);
            memset(big, 'x', 100000);
            big[100000] = 0;
            trec_init(&b.t[4], "step_log", big, 1, (int64_t)total + 5);
            free(big);
            b.recs[4] = b.t[4].rec;
        }
        assert_int_equal(append_batch(st, stream, &b, NULL, &ei), RTLOG_OK);
        for (size_t i = 0; i < b.n; i++)
            *raw_bytes +=
                b.recs[i].json_len - 1 + (size_t)snprintf(NULL, 0, ",\"seq\":%zu}", total + 1 + i);
        total += b.n;
        tbatch_free(&b);
    }
    return total;
}

static int stop_after_cb(void *ctx, const rtlog_event_view *ev)
{
    uint64_t *stop_at = ctx;
    return ev->seq >= *stop_at ? 7 : 0;
}

static void test_append_read(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store *st = open_store(dir, 0);
    const char *s = "workflow-runs/run-0001";
    uint64_t raw = 0;
    size_t total = append_mixture(st, s, &raw);

    tevs all = {0};
    assert_int_equal(read_all(st, s, 1, 0, &all), RTLOG_OK);
    assert_int_equal(all.n, total);
    for (size_t i = 0; i < all.n; i++)
        assert_int_equal(mp_int(all.v[i].mp, all.v[i].mp_len, "counter"), (int64_t)i + 1);
    check_chain(st, s, &all);

    rtlog_stream_info info;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_describe(st, s, &info, &ei), RTLOG_OK);
    assert_int_equal(info.raw_bytes, raw);
    assert_true(info.stored_bytes > 0);
    assert_true(info.stored_bytes < raw); /* blocks compress */

    /* From any seq, one event at a time and in chunks: the same events. */
    for (uint64_t from = 1; from <= total + 1; from++) {
        tevs one = {0};
        uint64_t next = 0;
        assert_int_equal(rtlog_store_read(st, s, from, 1, 0, collect_cb, &one, &next, &ei),
                         RTLOG_OK);
        if (from <= total) {
            assert_int_equal(one.n, 1);
            assert_int_equal(one.v[0].seq, from);
            assert_int_equal(one.v[0].mp_len, all.v[from - 1].mp_len);
            assert_memory_equal(one.v[0].mp, all.v[from - 1].mp, one.v[0].mp_len);
            assert_memory_equal(one.v[0].hash8, all.v[from - 1].hash8, 8);
            assert_int_equal(next, from + 1);
        } else {
            assert_int_equal(one.n, 0);
            assert_int_equal(next, total + 1);
        }
        tevs_free(&one);
    }
    for (size_t chunk = 2; chunk < 150; chunk += 37) {
        tevs part = {0};
        assert_int_equal(read_all(st, s, 1, chunk, &part), RTLOG_OK);
        assert_int_equal(part.n, total);
        for (size_t i = 0; i < part.n; i++)
            assert_int_equal(part.v[i].seq, i + 1);
        tevs_free(&part);
    }
    /* from 0 means from the start. */
    tevs z = {0};
    assert_int_equal(read_all(st, s, 0, 0, &z), RTLOG_OK);
    assert_int_equal(z.n, total);
    tevs_free(&z);

    /* max_bytes: stops once that many record bytes were passed, but always passes one. */
    tevs mb = {0};
    uint64_t next = 0;
    assert_int_equal(rtlog_store_read(st, s, 5, 0, 1, collect_cb, &mb, &next, &ei), RTLOG_OK);
    assert_int_equal(mb.n, 1);
    assert_int_equal(next, 6);
    tevs_free(&mb);
    size_t want = all.v[9].mp_len + all.v[10].mp_len + 1; /* seq 10, 11 and part of 12 */
    assert_int_equal(rtlog_store_read(st, s, 10, 0, want, collect_cb, &mb, &next, &ei), RTLOG_OK);
    assert_int_equal(mb.n, 3);
    assert_int_equal(next, 13);
    tevs_free(&mb);

    /* The callback stops the read: that event counts as passed. */
    uint64_t stop_at = 120;
    assert_int_equal(rtlog_store_read(st, s, 100, 0, 0, stop_after_cb, &stop_at, &next, &ei),
                     RTLOG_OK);
    assert_int_equal(next, 121);

    tevs_free(&all);
    rtlog_store_close(st);
    tmpdir_remove(dir);
}

static void test_seal(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store *st = open_store(dir, 0);
    rtlog_errinfo ei = {0};
    rtlog_append_res res;
    const char *s = "workflow-runs/run-0001";

    tbatch b;
    tbatch_init(&b, 5, 1, 1, 50);
    assert_int_equal(append_batch(st, s, &b, &res, &ei), RTLOG_OK);
    tbatch_free(&b);
    assert_int_equal(rtlog_store_seal(st, s, &ei), RTLOG_OK);
    rtlog_stream_info before, after;
    assert_int_equal(rtlog_store_describe(st, s, &before, &ei), RTLOG_OK);
    assert_int_equal(before.sealed, 1);

    tbatch_init(&b, 3, 1, 6, 50);
    memset(&ei, 0, sizeof ei);
    assert_int_equal(append_batch(st, s, &b, &res, &ei), RTLOG_E_SEALED);
    assert_int_equal(ei.code, RTLOG_E_SEALED);
    assert_non_null(strstr(ei.text, "sealed"));
    tbatch_free(&b);
    assert_int_equal(rtlog_store_describe(st, s, &after, &ei), RTLOG_OK);
    assert_memory_equal(&before, &after, sizeof before);

    /* Sealing twice is fine; sealing what does not exist is not found; creating a sealed
     * stream again changes nothing and says it is sealed. */
    assert_int_equal(rtlog_store_seal(st, s, &ei), RTLOG_OK);
    assert_int_equal(rtlog_store_seal(st, "workflow-runs/none", &ei), RTLOG_E_NOTFOUND);
    rtlog_append_req empty = {.stream = s};
    assert_int_equal(rtlog_store_append(st, &empty, &res, &ei), RTLOG_OK);
    assert_int_equal(res.sealed, 1);
    assert_int_equal(res.last_seq, 5);

    /* The sealing event: workflow_completed seals with its status. */
    const char *s2 = "workflow-runs/run-0002";
    trec t[3];
    trec_init(&t[0], "step_log", "one", 2, 1);
    trec_init(&t[1], "step_log", "two", 2, 2);
    trec_init(&t[2], "workflow_completed", "", 2, 3);
    rtlog_rec recs[3] = {t[0].rec, t[1].rec, t[2].rec};
    rtlog_append_req req = {.stream = s2, .recs = recs, .n = 3};
    assert_int_equal(rtlog_store_append(st, &req, &res, &ei), RTLOG_OK);
    assert_int_equal(res.sealed, 1);
    assert_int_equal(res.last_seq, 3);
    assert_int_equal(rtlog_store_describe(st, s2, &after, &ei), RTLOG_OK);
    assert_int_equal(after.sealed, 1);
    assert_string_equal(after.final_status, "succeeded");
    req.n = 1;
    assert_int_equal(rtlog_store_append(st, &req, &res, &ei), RTLOG_E_SEALED);
    tevs all = {0};
    assert_int_equal(read_all(st, s2, 1, 0, &all), RTLOG_OK);
    check_chain(st, s2, &all);
    tevs_free(&all);

    /* A record after the sealing record in the same batch: the whole batch is refused and a
     * new stream is not even created. */
    const char *s3 = "workflow-runs/run-0003";
    rtlog_rec bad[3] = {t[0].rec, t[2].rec, t[1].rec};
    rtlog_append_req breq = {.stream = s3, .recs = bad, .n = 3};
    memset(&ei, 0, sizeof ei);
    assert_int_equal(rtlog_store_append(st, &breq, &res, &ei), RTLOG_E_SEALED);
    assert_int_equal(ei.event_index, 2);
    assert_int_equal(rtlog_store_describe(st, s3, &after, &ei), RTLOG_E_NOTFOUND);
    /* ... and on an existing stream it changes nothing. */
    rtlog_append_req mk = {.stream = s3};
    assert_int_equal(rtlog_store_append(st, &mk, &res, &ei), RTLOG_OK);
    assert_int_equal(rtlog_store_append(st, &breq, &res, &ei), RTLOG_E_SEALED);
    assert_int_equal(rtlog_store_describe(st, s3, &after, &ei), RTLOG_OK);
    assert_int_equal(after.last_seq, 0);
    assert_int_equal(after.sealed, 0);

    for (int i = 0; i < 3; i++)
        trec_free(&t[i]);
    rtlog_store_close(st);
    tmpdir_remove(dir);
}

static void test_expected_seq(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store *st = open_store(dir, 0);
    rtlog_errinfo ei = {0};
    rtlog_append_res res;
    const char *s = "deployment-jobs/job-0001";

    tbatch b;
    tbatch_init(&b, 4, 1, 1, 30);
    rtlog_append_req req = {
        .stream = s, .recs = b.recs, .n = b.n, .has_expected = 1, .expected_seq = 0};
    assert_int_equal(rtlog_store_append(st, &req, &res, &ei), RTLOG_OK); /* creates at 0 */
    assert_int_equal(res.last_seq, 4);

    rtlog_stream_info before, after;
    assert_int_equal(rtlog_store_describe(st, s, &before, &ei), RTLOG_OK);
    req.expected_seq = 3;
    memset(&res, 0, sizeof res);
    memset(&ei, 0, sizeof ei);
    assert_int_equal(rtlog_store_append(st, &req, &res, &ei), RTLOG_E_CONFLICT);
    assert_int_equal(res.last_seq, 4);
    assert_non_null(strstr(ei.text, "seq 4"));
    assert_int_equal(rtlog_store_describe(st, s, &after, &ei), RTLOG_OK);
    assert_memory_equal(&before, &after, sizeof before);

    req.expected_seq = 4;
    assert_int_equal(rtlog_store_append(st, &req, &res, &ei), RTLOG_OK);
    assert_int_equal(res.first_seq, 5);
    assert_int_equal(res.last_seq, 8);
    /* A retry of the same request after a lost answer is refused, not written twice. */
    assert_int_equal(rtlog_store_append(st, &req, &res, &ei), RTLOG_E_CONFLICT);
    assert_int_equal(res.last_seq, 8);

    /* Expecting a seq on a stream that does not exist: conflict at 0, nothing created. */
    req.stream = "deployment-jobs/job-0002";
    req.expected_seq = 2;
    assert_int_equal(rtlog_store_append(st, &req, &res, &ei), RTLOG_E_CONFLICT);
    assert_int_equal(res.last_seq, 0);
    assert_int_equal(rtlog_store_describe(st, req.stream, &after, &ei), RTLOG_E_NOTFOUND);

    tbatch_free(&b);
    rtlog_store_close(st);
    tmpdir_remove(dir);
}

static void test_reopen(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store *st = open_store(dir, 0);
    uint64_t raw = 0;
    const char *s = "agents/agent-a";
    size_t total = append_mixture(st, s, &raw);
    rtlog_stream_info before, after;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_describe(st, s, &before, &ei), RTLOG_OK);
    tevs a1 = {0};
    assert_int_equal(read_all(st, s, 1, 0, &a1), RTLOG_OK);
    rtlog_store_close(st);

    /* A second open in the same process is refused (LMDB would lose its locks). */
    st = open_store(dir, 0);
    rtlog_store_opts o = {.dir = dir, .readonly = 1};
    rtlog_store *st2 = NULL;
    assert_int_equal(rtlog_store_open(&o, &st2, &ei), RTLOG_E_INVAL);
    assert_null(st2);

    assert_int_equal(rtlog_store_describe(st, s, &after, &ei), RTLOG_OK);
    assert_memory_equal(&before, &after, sizeof before);
    tevs a2 = {0};
    assert_int_equal(read_all(st, s, 1, 0, &a2), RTLOG_OK);
    assert_int_equal(a2.n, total);
    for (size_t i = 0; i < a2.n; i++) {
        assert_int_equal(a1.v[i].mp_len, a2.v[i].mp_len);
        assert_memory_equal(a1.v[i].mp, a2.v[i].mp, a1.v[i].mp_len);
    }
    check_chain(st, s, &a2);
    tbatch b;
    tbatch_init(&b, 2, 1, (int64_t)total + 1, 20);
    rtlog_append_res res;
    assert_int_equal(append_batch(st, s, &b, &res, &ei), RTLOG_OK);
    assert_int_equal(res.first_seq, total + 1);
    rtlog_store_close(st);

    /* Read-only: same data, no appends. */
    st = open_store(dir, 1);
    tevs a3 = {0};
    assert_int_equal(read_all(st, s, 1, 0, &a3), RTLOG_OK);
    assert_int_equal(a3.n, total + 2);
    check_chain(st, s, &a3);
    assert_int_equal(append_batch(st, s, &b, &res, &ei), RTLOG_E_INVAL);
    assert_int_equal(rtlog_store_seal(st, s, &ei), RTLOG_E_INVAL);
    rtlog_store_close(st);

    /* Read-only on a directory without a store: not found, and nothing is created. */
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/none", dir);
    o.dir = missing;
    assert_int_equal(rtlog_store_open(&o, &st2, &ei), RTLOG_E_NOTFOUND);
    assert_int_equal(access(missing, F_OK), -1);

    tbatch_free(&b);
    tevs_free(&a1);
    tevs_free(&a2);
    tevs_free(&a3);
    tmpdir_remove(dir);
}

typedef struct list_ctx {
    char names[200][RTLOG_STREAM_MAX];
    uint64_t last[200];
    size_t n, stop_at;
} list_ctx;

static int list_cb(void *ctx, const rtlog_stream_info *info)
{
    list_ctx *l = ctx;
    assert_true(l->n < 200);
    snprintf(l->names[l->n], RTLOG_STREAM_MAX, "%s", info->stream);
    l->last[l->n] = info->last_seq;
    l->n++;
    return l->stop_at && l->n >= l->stop_at;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_list(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store *st = open_store(dir, 0);
    rtlog_errinfo ei = {0};
    static char want[150][RTLOG_STREAM_MAX];
    for (int i = 0; i < 150; i++) {
        /* Created out of order; listed by name. */
        int k = (i * 37) % 150;
        snprintf(want[i], RTLOG_STREAM_MAX, "workflow-runs/r%03d", k);
        tbatch b;
        tbatch_init(&b, (size_t)(k % 3), 1, 1, 10);
        assert_int_equal(append_batch(st, want[i], &b, NULL, &ei), RTLOG_OK);
        tbatch_free(&b);
    }
    qsort(want, 150, RTLOG_STREAM_MAX, cmp_str);
    list_ctx *l = calloc(1, sizeof *l);
    assert_int_equal(rtlog_store_list(st, list_cb, l, &ei), RTLOG_OK);
    assert_int_equal(l->n, 150);
    for (int i = 0; i < 150; i++) {
        assert_string_equal(l->names[i], want[i]);
        int k = atoi(want[i] + strlen("workflow-runs/r"));
        assert_int_equal(l->last[i], (uint64_t)(k % 3));
    }
    memset(l, 0, sizeof *l);
    l->stop_at = 70;
    assert_int_equal(rtlog_store_list(st, list_cb, l, &ei), RTLOG_OK);
    assert_int_equal(l->n, 70);
    free(l);
    rtlog_store_close(st);
    tmpdir_remove(dir);
}

/* ---- the async path and the commit hook ---------------------------------------------------- */

typedef struct hook_log {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int completions, hooks;
    uint64_t last_seen;
    char stream[RTLOG_STREAM_MAX];
    rtlog_err rc;
    rtlog_append_res res;
    int order_ok; /* the completion ran before the hook of its commit */
} hook_log;

static void on_done(void *ctx, rtlog_err rc, const rtlog_append_res *res, const rtlog_errinfo *ei)
{
    hook_log *h = ctx;
    (void)ei;
    pthread_mutex_lock(&h->mu);
    h->completions++;
    h->rc = rc;
    h->res = *res;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static void on_commit(void *ctx, const rtlog_commit_note *notes, size_t n)
{
    hook_log *h = ctx;
    pthread_mutex_lock(&h->mu);
    h->hooks++;
    for (size_t i = 0; i < n; i++) {
        snprintf(h->stream, sizeof h->stream, "%s", notes[i].stream);
        h->last_seen = notes[i].last_seq;
        h->order_ok = h->completions > 0;
    }
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static void test_async_hook_stats(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store *st = open_store(dir, 0);
    hook_log h = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    rtlog_store_on_commit(st, on_commit, &h);
    tbatch b;
    tbatch_init(&b, 10, 1, 1, 30);
    rtlog_append_req req = {.stream = "dashboard", .recs = b.recs, .n = b.n};
    assert_int_equal(rtlog_store_append_async(st, &req, on_done, &h), RTLOG_OK);
    pthread_mutex_lock(&h.mu);
    while (h.completions < 1 || h.hooks < 1)
        pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    assert_int_equal(h.rc, RTLOG_OK);
    assert_int_equal(h.res.first_seq, 1);
    assert_int_equal(h.res.last_seq, 10);
    assert_string_equal(h.stream, "dashboard");
    assert_int_equal(h.last_seen, 10);
    assert_true(h.order_ok);

    /* A refused append: completion with the error, no hook (nothing changed). */
    req.has_expected = 1;
    req.expected_seq = 99;
    assert_int_equal(rtlog_store_append_async(st, &req, on_done, &h), RTLOG_OK);
    pthread_mutex_lock(&h.mu);
    while (h.completions < 2)
        pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    assert_int_equal(h.rc, RTLOG_E_CONFLICT);
    assert_int_equal(h.res.last_seq, 10);

    rtlog_store_stats stats;
    rtlog_store_get_stats(st, &stats);
    assert_int_equal(stats.commits, 1);
    assert_int_equal(stats.batches, 1);
    assert_int_equal(stats.events, 10);
    assert_int_equal(stats.failed_commits, 0);
    assert_int_equal(stats.full, 0);
    assert_true(stats.map_bytes >= 64u * 1024u * 1024u);

    /* Records without a stored form are refused at once and the callback never runs. */
    rtlog_rec broken = b.recs[0];
    broken.json = "not json";
    broken.json_len = 8;
    rtlog_append_req breq = {.stream = "dashboard", .recs = &broken, .n = 1};
    assert_int_equal(rtlog_store_append_async(st, &breq, on_done, &h), RTLOG_E_INVAL);

    rtlog_store_close(st);
    assert_int_equal(h.completions, 2);
    tbatch_free(&b);
    tmpdir_remove(dir);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_empty),
        cmocka_unit_test(test_append_read),
        cmocka_unit_test(test_seal),
        cmocka_unit_test(test_expected_seq),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_async_hook_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
