/* storage_test.h - helpers shared by the storage unit tests: temp directories, test records
 * built with msgpack-c (stored form) plus their canonical JSON (what the hash chain covers),
 * an independent SHA-256 chain, and reading a whole stream back.
 *
 * The records are built here, not with rtlog_schema_parse, so these tests depend only on the
 * store's contract: rec.mp is opaque bytes, rec.json is the line the chain covers.
 */
#ifndef STORAGE_TEST_H
#define STORAGE_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <msgpack.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rtlog_buf.h"
#include "rtlog_store.h"

/* ---- temp directories ------------------------------------------------------------------- */

static inline char *tmpdir_make(void)
{
    char tmpl[] = "/tmp/rtlog-storage-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    char *out = strdup(d);
    assert_non_null(out);
    return out;
}

static inline int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void tmpdir_remove(char *dir)
{
    if (!dir)
        return;
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* ---- test records -------------------------------------------------------------------------- */

/* A run event {"type":T,"nodeId":N,"line":L,"producer":P,"counter":C[,"status":S]}. */
typedef struct trec {
    rtlog_rec rec;
    msgpack_sbuffer sb;
    rtlog_buf json;
} trec;

static inline void json_str(rtlog_buf *b, const char *s, size_t n)
{
    assert_int_equal(rtlog_buf_append(b, "\"", 1), RTLOG_OK);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            assert_int_equal(rtlog_buf_append(b, e, 2), RTLOG_OK);
        } else if (c < 0x20) {
            assert_int_equal(rtlog_buf_printf(b, "\\u%04x", c), RTLOG_OK);
        } else {
            assert_int_equal(rtlog_buf_append(b, &s[i], 1), RTLOG_OK);
        }
    }
    assert_int_equal(rtlog_buf_append(b, "\"", 1), RTLOG_OK);
}

static inline void mp_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static inline void trec_init_n(trec *t, const char *type, const char *node, const char *line,
                               size_t line_len, int64_t producer, int64_t counter)
{
    memset(t, 0, sizeof *t);
    int seals = !strcmp(type, "workflow_completed");
    msgpack_sbuffer_init(&t->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &t->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, seals ? 6 : 5);
    const char *keys[] = {"type", "nodeId", "line"};
    const char *vals[] = {type, node, line};
    size_t lens[] = {strlen(type), strlen(node), line_len};
    assert_int_equal(rtlog_buf_append(&t->json, "{", 1), RTLOG_OK);
    for (int i = 0; i < 3; i++) {
        mp_str(&pk, keys[i], strlen(keys[i]));
        mp_str(&pk, vals[i], lens[i]);
        if (i)
            assert_int_equal(rtlog_buf_append(&t->json, ",", 1), RTLOG_OK);
        json_str(&t->json, keys[i], strlen(keys[i]));
        assert_int_equal(rtlog_buf_append(&t->json, ":", 1), RTLOG_OK);
        json_str(&t->json, vals[i], lens[i]);
    }
    mp_str(&pk, "producer", 8);
    msgpack_pack_int64(&pk, producer);
    mp_str(&pk, "counter", 7);
    msgpack_pack_int64(&pk, counter);
    assert_int_equal(rtlog_buf_printf(&t->json, ",\"producer\":%" PRId64 ",\"counter\":%" PRId64,
                                      producer, counter),
                     RTLOG_OK);
    if (seals) {
        mp_str(&pk, "status", 6);
        mp_str(&pk, "succeeded", 9);
        assert_int_equal(rtlog_buf_puts(&t->json, ",\"status\":\"succeeded\""), RTLOG_OK);
        t->rec.flags = RTLOG_REC_SEALS;
        snprintf(t->rec.status, sizeof t->rec.status, "succeeded");
    }
    assert_int_equal(rtlog_buf_append(&t->json, "}", 1), RTLOG_OK);
    t->rec.mp = (const uint8_t *)t->sb.data;
    t->rec.mp_len = t->sb.size;
    t->rec.json = t->json.p;
    t->rec.json_len = t->json.len;
    t->rec.type = seals ? "workflow_completed" : "step_log";
}

static inline void trec_init(trec *t, const char *type, const char *line, int64_t producer,
                             int64_t counter)
{
    trec_init_n(t, type, "step-1", line, strlen(line), producer, counter);
}

static inline void trec_free(trec *t)
{
    msgpack_sbuffer_destroy(&t->sb);
    rtlog_buf_free(&t->json);
}

/* A batch of n step_log records; rec[] is contiguous for rtlog_append_req. */
typedef struct tbatch {
    trec *t;
    rtlog_rec *recs;
    size_t n;
} tbatch;

static inline void tbatch_init(tbatch *b, size_t n, int64_t producer, int64_t first_counter,
                               size_t line_bytes)
{
    b->n = n;
    b->t = calloc(n ? n : 1, sizeof *b->t);
    b->recs = calloc(n ? n : 1, sizeof *b->recs);
    assert_non_null(b->t);
    assert_non_null(b->recs);
    char *line = malloc(line_bytes + 1);
    assert_non_null(line);
    for (size_t i = 0; i < n; i++) {
        /* Vary the text a little so blocks compress like logs, not like zeros. */
        for (size_t j = 0; j < line_bytes; j++)
            line[j] = (char)('a' + (char)((j * 7 + i * 13 + (size_t)producer) % 26));
        if (line_bytes > 10)
            snprintf(line, 11, "%010zu", i);
        line[line_bytes] = '\0';
        trec_init_n(&b->t[i], "step_log", "build", line, line_bytes, producer,
                    first_counter + (int64_t)i);
        b->recs[i] = b->t[i].rec;
    }
    free(line);
}

static inline void tbatch_free(tbatch *b)
{
    for (size_t i = 0; i < b->n; i++)
        trec_free(&b->t[i]);
    free(b->t);
    free(b->recs);
    memset(b, 0, sizeof *b);
}

static inline rtlog_err append_batch(rtlog_store *st, const char *stream, const tbatch *b,
                                     rtlog_append_res *res, rtlog_errinfo *ei)
{
    rtlog_append_req req = {.stream = stream, .recs = b->recs, .n = b->n};
    return rtlog_store_append(st, &req, res, ei);
}

/* ---- reading the stored form back ----------------------------------------------------------- */

/* Value of an integer field of one of our records, or INT64_MIN. */
static inline int64_t mp_int(const void *mp, size_t len, const char *key)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int64_t v = INT64_MIN;
    if (msgpack_unpack_next(&u, mp, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len &&
        u.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            msgpack_object *k = &u.data.via.map.ptr[i].key, *val = &u.data.via.map.ptr[i].val;
            if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
                !memcmp(k->via.str.ptr, key, k->via.str.size)) {
                if (val->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                    v = (int64_t)val->via.u64;
                else if (val->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                    v = val->via.i64;
            }
        }
    }
    msgpack_unpacked_destroy(&u);
    return v;
}

/* Canonical JSON of one of our records (strings and integers only), as trec_init made it. */
static inline void mp_json(const void *mp, size_t len, rtlog_buf *out)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, mp, len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len);
    assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
    rtlog_buf_append(out, "{", 1);
    for (uint32_t i = 0; i < u.data.via.map.size; i++) {
        msgpack_object *k = &u.data.via.map.ptr[i].key, *v = &u.data.via.map.ptr[i].val;
        if (i)
            rtlog_buf_append(out, ",", 1);
        assert_int_equal(k->type, MSGPACK_OBJECT_STR);
        json_str(out, k->via.str.ptr, k->via.str.size);
        rtlog_buf_append(out, ":", 1);
        if (v->type == MSGPACK_OBJECT_STR)
            json_str(out, v->via.str.ptr, v->via.str.size);
        else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            rtlog_buf_printf(out, "%" PRIu64, v->via.u64);
        else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            rtlog_buf_printf(out, "%" PRId64, v->via.i64);
        else
            fail_msg("unexpected msgpack type %d", (int)v->type);
    }
    rtlog_buf_append(out, "}", 1);
    msgpack_unpacked_destroy(&u);
}

/* h = SHA-256(h || json-without-'}' || ,"seq":N}) computed here independently of the store. */
static inline void chain_next(uint8_t h[32], const char *json, size_t len, uint64_t seq)
{
    char tail[48];
    int tl = snprintf(tail, sizeof tail, "%s\"seq\":%" PRIu64 "}", len > 2 ? "," : "", seq);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    assert_non_null(c);
    assert_true(EVP_DigestInit_ex(c, EVP_sha256(), NULL));
    assert_true(EVP_DigestUpdate(c, h, 32));
    assert_true(EVP_DigestUpdate(c, json, len - 1));
    assert_true(EVP_DigestUpdate(c, tail, (size_t)tl));
    assert_true(EVP_DigestFinal_ex(c, h, NULL));
    EVP_MD_CTX_free(c);
}

/* Every event of a stream, copied out. */
typedef struct tev {
    uint64_t seq;
    uint8_t *mp;
    size_t mp_len;
    uint8_t hash8[8];
} tev;

typedef struct tevs {
    tev *v;
    size_t n, cap;
} tevs;

static inline int collect_cb(void *ctx, const rtlog_event_view *ev)
{
    tevs *all = ctx;
    if (all->n == all->cap) {
        all->cap = all->cap ? all->cap * 2 : 64;
        all->v = realloc(all->v, all->cap * sizeof *all->v);
        assert_non_null(all->v);
    }
    tev *e = &all->v[all->n++];
    e->seq = ev->seq;
    e->mp_len = ev->mp_len;
    e->mp = malloc(ev->mp_len);
    assert_non_null(e->mp);
    memcpy(e->mp, ev->mp, ev->mp_len);
    memcpy(e->hash8, ev->hash8, 8);
    return 0;
}

static inline void tevs_free(tevs *all)
{
    for (size_t i = 0; i < all->n; i++)
        free(all->v[i].mp);
    free(all->v);
    memset(all, 0, sizeof *all);
}

/* Read a whole stream from @from in chunks of @chunk events (0 = one call). */
static inline rtlog_err read_all(rtlog_store *st, const char *stream, uint64_t from, size_t chunk,
                                 tevs *out)
{
    rtlog_errinfo ei = {0};
    uint64_t next = from;
    for (;;) {
        size_t before = out->n;
        rtlog_err rc = rtlog_store_read(st, stream, next, chunk, 0, collect_cb, out, &next, &ei);
        if (rc) {
            print_message("read %s from %" PRIu64 ": %s\n", stream, next, ei.text);
            return rc;
        }
        if (out->n == before || chunk == 0)
            return RTLOG_OK;
    }
}

/* Check a stream read back: seqs 1..n gapless, hash8 of every event and the head hash equal
 * a chain recomputed here from the stored records. */
static inline void check_chain(rtlog_store *st, const char *stream, const tevs *all)
{
    rtlog_stream_info info;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_store_describe(st, stream, &info, &ei), RTLOG_OK);
    assert_int_equal(all->n, info.last_seq);
    assert_int_equal(info.event_count, info.last_seq);
    uint8_t h[32] = {0};
    rtlog_buf json = {0};
    for (size_t i = 0; i < all->n; i++) {
        assert_int_equal(all->v[i].seq, i + 1);
        json.len = 0;
        mp_json(all->v[i].mp, all->v[i].mp_len, &json);
        chain_next(h, json.p, json.len, all->v[i].seq);
        assert_memory_equal(h, all->v[i].hash8, 8);
    }
    assert_memory_equal(h, info.head_hash, 32);
    rtlog_buf_free(&json);
}

#endif
