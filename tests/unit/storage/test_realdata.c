/* test_realdata.c - the six real CI runs (shared/data/real-runs: ANSI escapes, CR, a 450 KB
 * line) through rtlog_schema_parse into the store and back.
 *
 * Each run becomes one workflow-runs stream, imported in batches of 500 lines as
 * `rtlog import` would. Read back, every stored record is rendered (rtlog_schema_render,
 * secrets redacted) and the chain recomputed from the rendered lines must equal every stored
 * hash8 and the head: the store hashed rec.json + seq, so this pins that both are the same
 * line. Also pins the storage aim measured in tools/bench/RESULTS.md: stored bytes <= 40%
 * of the NDJSON bytes.
 */
#include "storage_test.h"

#include "rtlog_schema.h"

static const char *const runs[] = {
    "buildkite-buildah-build",     "buildkite-docker-compose-pull",
    "gha-pytorch-linux-job-error", "gha-pytorch-signal-crash-longline",
    "gitlab-runner-trace-rspec",   "npm-install-verbose-ansi",
};

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    p[n] = 0;
    *len = (size_t)n;
    return p;
}

/* Append the NDJSON body in batches of @per lines; returns events appended. */
static size_t import(rtlog_store *st, const char *stream, const char *body, size_t len, size_t per)
{
    size_t pos = 0, total = 0;
    while (pos < len) {
        size_t end = pos, lines = 0;
        while (end < len && lines < per) {
            const char *nl = memchr(body + end, '\n', len - end);
            end = nl ? (size_t)(nl - body) + 1 : len;
            lines++;
        }
        rtlog_parse_opts po = {.family = RTLOG_FAM_RUN, .ndjson = 1};
        rtlog_batch b = {0};
        rtlog_errinfo ei = {0};
        if (rtlog_schema_parse(&po, body + pos, end - pos, &b, &ei))
            fail_msg("%s: parse: %s", stream, ei.text);
        rtlog_append_req req = {.stream = stream, .recs = b.recs, .n = b.n};
        rtlog_append_res res;
        if (rtlog_store_append(st, &req, &res, &ei))
            fail_msg("%s: append: %s", stream, ei.text);
        assert_int_equal(res.first_seq, total + 1);
        total += b.n;
        rtlog_batch_free(&b);
        pos = end;
    }
    return total;
}

typedef struct verify_ctx {
    uint8_t h[32];
    uint64_t expect;
    rtlog_buf line;
    size_t bad;
} verify_ctx;

static int verify_cb(void *ctx, const rtlog_event_view *ev)
{
    verify_ctx *v = ctx;
    v->line.len = 0;
    if (ev->seq != v->expect ||
        rtlog_schema_render(ev->mp, ev->mp_len, ev->seq, RTLOG_JSON_REDACT, &v->line)) {
        v->bad++;
        return 1;
    }
    /* h(n) = SHA-256(h(n-1) || line_n), line_n exactly as export --ndjson writes it. */
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    EVP_DigestUpdate(c, v->h, 32);
    EVP_DigestUpdate(c, v->line.p, v->line.len);
    EVP_DigestFinal_ex(c, v->h, NULL);
    EVP_MD_CTX_free(c);
    if (memcmp(v->h, ev->hash8, 8))
        v->bad++;
    v->expect++;
    return 0;
}

static void test_real_runs(void **state)
{
    (void)state;
    char *dir = tmpdir_make();
    rtlog_store_opts o = {.dir = dir};
    rtlog_store *st = NULL;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_open(&o, &st, &ei), RTLOG_OK);
    uint64_t ndjson = 0, stored = 0;
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        char path[512], stream[RTLOG_STREAM_MAX];
        snprintf(path, sizeof path, "%s/data/real-runs/%s.ndjson", RTLOG_SHARED_DIR, runs[r]);
        snprintf(stream, sizeof stream, "workflow-runs/%s", runs[r]);
        size_t len = 0;
        char *body = slurp(path, &len);
        if (!body)
            fail_msg("cannot read %s", path);
        size_t n = import(st, stream, body, len, 500);

        verify_ctx v = {.expect = 1};
        uint64_t next = 1;
        while (v.expect <= n) {
            uint64_t before = v.expect;
            assert_int_equal(rtlog_store_read(st, stream, next, 1000, 0, verify_cb, &v, &next, &ei),
                             RTLOG_OK);
            assert_true(v.expect > before);
        }
        assert_int_equal(v.bad, 0);

        rtlog_stream_info info;
        assert_int_equal(rtlog_store_describe(st, stream, &info, &ei), RTLOG_OK);
        assert_int_equal(info.last_seq, n);
        assert_memory_equal(info.head_hash, v.h, 32);

        /* raw_bytes counts the canonical lines with seq, as the chain saw them. */
        rtlog_parse_opts po = {.family = RTLOG_FAM_RUN, .ndjson = 1};
        rtlog_batch b = {0};
        assert_int_equal(rtlog_schema_parse(&po, body, len, &b, &ei), RTLOG_OK);
        assert_int_equal(b.n, n);
        uint64_t raw = 0;
        for (size_t i = 0; i < b.n; i++)
            raw += b.recs[i].json_len - 1 + (size_t)snprintf(NULL, 0, ",\"seq\":%zu}", i + 1);
        assert_int_equal(info.raw_bytes, raw);
        rtlog_batch_free(&b);

        print_message("%-36s %6zu events  ndjson %8zu  stored %8llu  %5.1f%%\n", runs[r], n, len,
                      (unsigned long long)info.stored_bytes,
                      100.0 * (double)info.stored_bytes / (double)len);
        ndjson += len;
        stored += info.stored_bytes;
        rtlog_buf_free(&v.line);
        free(body);
    }
    print_message("total: ndjson %llu stored %llu (%.1f%%)\n", (unsigned long long)ndjson,
                  (unsigned long long)stored, 100.0 * (double)stored / (double)ndjson);
    assert_true(stored * 100 <= ndjson * 40);
    rtlog_store_close(st);
    tmpdir_remove(dir);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_real_runs)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
