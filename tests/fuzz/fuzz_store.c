/* fuzz_store.c - libFuzzer target for the store's own codec (storage/codec.c): the entry
 * values and stream metadata records LMDB hands back, as if read from a damaged or hostile
 * data.mdb. fuzz_render covers the msgpack record inside; this target covers the layer
 * around it: entry header, varint block count, hash slots, zstd frame, block walk.
 *
 * The first input byte picks the mode; the rest is the bytes:
 *   mode 0: an entry value -> st_entry_decode, then every record of the entry through
 *           st_block_next and rtlog_schema_render. Promises checked: the answer is 0 (ok) or
 *           -1 (corrupt, with a reason); hashes lie inside the value; a block never yields
 *           more than k records, each inside the decompressed payload; a decode with
 *           @reuse of the buffer just filled gives the same answer.
 *   mode 1: a stream metadata record -> st_meta_decode; if accepted, encode + decode is the
 *           identity (no field silently truncated).
 *   mode 2: an NDJSON body of run events -> rtlog_schema_parse, then st_encode_block of its
 *           records and st_entry_decode back: the same k records, byte for byte.
 * Seeds (corpus/store/) are entries and metadata taken from a store filled with the real runs
 * (shared/data/real-runs), plus truncations of them.
 */
#include "store_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_store: property failed: %s (line %d)\n", #c, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static ZSTD_DCtx *dctx;
static ZSTD_CCtx *cctx;

static int inside(const void *base, size_t n, const void *p, size_t len)
{
    const uint8_t *b = base, *q = p;
    return q >= b && len <= n && (size_t)(q - b) <= n - len;
}

/* Walk and render every record of a decoded entry; returns how many records decoded. */
static uint32_t walk(const st_decoded *d)
{
    uint32_t got = 0;
    rtlog_buf out = {0};
    if (d->codec != CODEC_BLOCK) {
        rtlog_err rc = rtlog_schema_render(d->payload, d->payload_len, 7, 0, &out);
        CHECK(rc == RTLOG_OK || rc == RTLOG_E_CORRUPT);
        rtlog_buf_free(&out);
        return 1;
    }
    size_t pos = 0;
    const uint8_t *mp;
    size_t mp_len;
    while (got < d->k && pos < d->payload_len && st_block_next(d, &pos, &mp, &mp_len) == 0) {
        CHECK(inside(d->payload, d->payload_len, mp, mp_len));
        CHECK(pos <= d->payload_len);
        out.len = 0;
        rtlog_err rc = rtlog_schema_render(mp, mp_len, got + 1, RTLOG_JSON_REDACT, &out);
        CHECK(rc == RTLOG_OK || rc == RTLOG_E_CORRUPT);
        got++;
    }
    rtlog_buf_free(&out);
    return got;
}

static void entry(const uint8_t *data, size_t size)
{
    /* exactly sized copy so ASan sees a read one past the value */
    uint8_t *v = malloc(size ? size : 1);
    if (!v)
        return;
    memcpy(v, data, size);
    rtlog_buf buf = {0};
    st_decoded d;
    const char *why = NULL;
    int rc = st_entry_decode(v, size, dctx, &buf, 0, &d, &why);
    CHECK(rc == 0 || rc == -1);
    if (rc == -1) {
        CHECK(why && *why);
    } else {
        CHECK(d.k >= 1 && d.k <= 65536);
        CHECK(inside(v, size, d.hashes, 8 * (size_t)d.k));
        CHECK(d.codec == CODEC_BLOCK || d.codec == CODEC_ZSTD || d.codec == CODEC_RAW);
        if (d.codec == CODEC_RAW)
            CHECK(inside(v, size, d.payload, d.payload_len));
        else
            CHECK(inside(buf.p, buf.len, d.payload, d.payload_len));
        uint32_t got = walk(&d);
        CHECK(got <= d.k);
        /* the reader's cache path: same block, payload already in @buf */
        if (d.codec == CODEC_BLOCK) {
            st_decoded d2;
            CHECK(st_entry_decode(v, size, dctx, &buf, 1, &d2, &why) == 0);
            CHECK(d2.k == d.k && d2.payload_len == d.payload_len && d2.hashes == d.hashes);
        }
    }
    rtlog_buf_free(&buf);
    free(v);
}

static void meta(const uint8_t *data, size_t size)
{
    uint8_t *v = malloc(size ? size : 1);
    if (!v)
        return;
    memcpy(v, data, size);
    st_meta m, m2;
    if (st_meta_decode(v, size, &m) == 0) {
        uint8_t enc[META_MAX];
        size_t el = st_meta_encode(&m, enc);
        CHECK(el == META_SIZE || el == META_MAX);
        CHECK(st_meta_decode(enc, el, &m2) == 0);
        CHECK(m2.first_seq == m.first_seq && memcmp(m2.base, m.base, 32) == 0);
        CHECK(m2.id == m.id && m2.last_seq == m.last_seq && m2.count == m.count &&
              m2.kind == m.kind && m2.sealed == m.sealed && m2.tail_first == m.tail_first &&
              m2.tail_count == m.tail_count && m2.snapshot_seq == m.snapshot_seq);
        CHECK(memcmp(m2.head, m.head, 32) == 0 && strcmp(m2.status, m.status) == 0);
    }
    free(v);
}

static void roundtrip(const uint8_t *data, size_t size)
{
    rtlog_parse_opts o = {.family = RTLOG_FAM_RUN, .ndjson = 1, .max_events = 300,
                          .now = "2026-01-10T14:23:45.123Z"};
    rtlog_batch b = {0};
    rtlog_errinfo ei;
    if (rtlog_schema_parse(&o, (const char *)data, size, &b, &ei) != RTLOG_OK)
        return;
    if (b.n == 0) {
        rtlog_batch_free(&b);
        return;
    }
    const uint8_t **mps = calloc(b.n, sizeof *mps);
    size_t *lens = calloc(b.n, sizeof *lens);
    CHECK(mps && lens);
    for (size_t i = 0; i < b.n; i++) {
        mps[i] = b.recs[i].mp;
        lens[i] = b.recs[i].mp_len;
    }
    rtlog_buf scratch = {0}, out = {0}, dec = {0};
    uint32_t hash_off = 0;
    CHECK(st_encode_block(cctx, mps, lens, b.n, &scratch, &out, &hash_off) == RTLOG_OK);
    st_decoded d;
    const char *why = NULL;
    CHECK(st_entry_decode(out.p, out.len, dctx, &dec, 0, &d, &why) == 0);
    CHECK(d.codec == CODEC_BLOCK && d.k == b.n);
    CHECK(d.hashes == (const uint8_t *)out.p + hash_off);
    size_t pos = 0;
    for (size_t i = 0; i < b.n; i++) {
        const uint8_t *mp;
        size_t ml;
        CHECK(st_block_next(&d, &pos, &mp, &ml) == 0);
        CHECK(ml == lens[i] && memcmp(mp, mps[i], ml) == 0);
    }
    CHECK(pos == d.payload_len);
    rtlog_buf_free(&scratch);
    rtlog_buf_free(&out);
    rtlog_buf_free(&dec);
    free(mps);
    free(lens);
    rtlog_batch_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dctx) {
        dctx = ZSTD_createDCtx();
        cctx = ZSTD_createCCtx();
        CHECK(dctx && cctx);
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL);
    }
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        entry(data + 1, size - 1);
        break;
    case 1:
        meta(data + 1, size - 1);
        break;
    default:
        roundtrip(data + 1, size - 1);
        break;
    }
    return 0;
}
