/* codec.c - the bytes of the store: stream metadata records, entry values (single records
 * and compressed blocks of records), and the pooled zstd contexts that make them.
 *
 * Encoding happens in the appending caller's thread (st_encode_request) so the writer thread,
 * which is the one serial path of the store, only copies prepared values, fills in chain
 * hashes and writes. Decoding is shared by reads and by the writer's tail compaction. Every
 * size read back from the map is checked before it is used to allocate or index: a damaged
 * value gives -1 (RTLOG_E_CORRUPT for the caller), never a crash. Layout: store_int.h.
 */
#include "store_int.h"

#include <stdlib.h>

/* ---- stream metadata ---------------------------------------------------------------------- */

/* Version 1 (160 bytes) is every stream's record until retention first trims it; version 2
 * (192 bytes) adds base_hash = h(first_seq - 1) at offset 160. A stream that was never
 * trimmed keeps writing version 1, so stores stay readable by builds that predate
 * retention; only trimmed streams need this build. */
#define META_V1 1u
#define META_V2 2u

size_t st_meta_encode(const st_meta *m, uint8_t out[META_MAX])
{
    int v2 = m->first_seq > 1;
    memset(out, 0, META_MAX);
    out[0] = v2 ? META_V2 : META_V1;
    out[1] = m->kind;
    out[2] = m->sealed;
    const uint64_t v[11] = {m->id,         m->created_ms,   m->first_seq, m->last_seq,
                            m->count,      m->stored_bytes, m->raw_bytes, m->snapshot_seq,
                            m->tail_first, m->tail_count,   m->tail_bytes};
    for (size_t i = 0; i < 11; i++)
        put_be64(out + 4 + 8 * i, v[i]);
    size_t sl = strnlen(m->status, sizeof m->status - 1);
    memcpy(out + 92, m->status, sl);
    memcpy(out + 124, m->head, 32);
    if (!v2)
        return META_SIZE;
    memcpy(out + META_SIZE, m->base, 32);
    return META_MAX;
}

int st_meta_decode(const void *p, size_t len, st_meta *m)
{
    const uint8_t *b = p;
    if (len < 1 || !((len == META_SIZE && b[0] == META_V1) || (len == META_MAX && b[0] == META_V2)))
        return -1;
    memset(m, 0, sizeof *m);
    m->kind = b[1];
    m->sealed = b[2];
    uint64_t *v[11] = {&m->id,         &m->created_ms,   &m->first_seq, &m->last_seq,
                       &m->count,      &m->stored_bytes, &m->raw_bytes, &m->snapshot_seq,
                       &m->tail_first, &m->tail_count,   &m->tail_bytes};
    for (size_t i = 0; i < 11; i++)
        *v[i] = get_be64(b + 4 + 8 * i);
    memcpy(m->status, b + 92, 31);
    m->status[31] = '\0';
    memcpy(m->head, b + 124, 32);
    if (b[0] == META_V2)
        memcpy(m->base, b + META_SIZE, 32);
    if (m->kind > RTLOG_KIND_DASHBOARD || m->sealed > 1 || m->id == 0)
        return -1;
    /* first_seq may pass last_seq by one (everything trimmed), never more; v1 means 1. */
    if (m->first_seq == 0 || m->first_seq > m->last_seq + 1 || (b[0] == META_V1 && m->first_seq != 1))
        return -1;
    return 0;
}

void st_meta_to_info(const char *name, size_t len, const st_meta *m, rtlog_stream_info *out)
{
    memset(out, 0, sizeof *out);
    if (len >= sizeof out->stream)
        len = sizeof out->stream - 1;
    memcpy(out->stream, name, len);
    out->kind = (rtlog_kind)m->kind;
    out->created_ms = m->created_ms;
    out->first_seq = m->first_seq;
    out->last_seq = m->last_seq;
    out->event_count = m->count;
    out->stored_bytes = m->stored_bytes;
    out->raw_bytes = m->raw_bytes;
    out->snapshot_seq = m->snapshot_seq;
    out->sealed = m->sealed;
    memcpy(out->final_status, m->status, sizeof out->final_status);
    memcpy(out->head_hash, m->head, 32);
    memcpy(out->base_hash, m->base, 32);
}

/* ---- entry values --------------------------------------------------------------------------- */

/* Decompress one zstd frame whose content size must be known and sane. */
static int unzstd(ZSTD_DCtx *dctx, const uint8_t *src, size_t len, rtlog_buf *buf, const char **why)
{
    unsigned long long fcs = ZSTD_getFrameContentSize(src, len);
    if (fcs == ZSTD_CONTENTSIZE_ERROR || fcs == ZSTD_CONTENTSIZE_UNKNOWN || fcs > RECORD_MAX) {
        *why = "bad zstd frame header";
        return -1;
    }
    buf->len = 0;
    if (rtlog_buf_reserve(buf, (size_t)fcs + 1))
        return -2;
    size_t got = ZSTD_decompressDCtx(dctx, buf->p, (size_t)fcs, src, len);
    if (ZSTD_isError(got) || got != fcs) {
        *why = "zstd frame does not decompress";
        return -1;
    }
    buf->len = got;
    return 0;
}

int st_entry_decode(const void *val, size_t len, ZSTD_DCtx *dctx, rtlog_buf *buf, int reuse,
                    st_decoded *d, const char **why)
{
    const uint8_t *p = val;
    if (len < 1 || (p[0] >> 4) != VAL_VERSION) {
        *why = "unknown entry version";
        return -1;
    }
    d->codec = p[0] & 0x0fu;
    switch (d->codec) {
    case CODEC_RAW:
    case CODEC_ZSTD:
        if (len < 10) {
            *why = "entry too short";
            return -1;
        }
        d->k = 1;
        d->hashes = p + 1;
        if (d->codec == CODEC_RAW) {
            d->payload = p + 9;
            d->payload_len = len - 9;
            return 0;
        }
        break;
    case CODEC_BLOCK: {
        uint64_t k;
        size_t vn = varint_get(p + 1, len - 1, &k);
        if (!vn || k < 1 || k > 65536 || 1 + vn + 8 * k >= len) {
            *why = "bad block header";
            return -1;
        }
        d->k = (uint32_t)k;
        d->hashes = p + 1 + vn;
        p = d->hashes + 8 * k;
        len = (size_t)((const uint8_t *)val + len - p);
        int rc = reuse ? 0 : unzstd(dctx, p, len, buf, why);
        if (rc)
            return rc;
        d->payload = (const uint8_t *)buf->p;
        d->payload_len = buf->len;
        return 0;
    }
    default:
        *why = "unknown entry codec";
        return -1;
    }
    /* CODEC_ZSTD single record */
    int rc = unzstd(dctx, p + 9, len - 9, buf, why);
    if (rc)
        return rc;
    d->payload = (const uint8_t *)buf->p;
    d->payload_len = buf->len;
    return 0;
}

int st_block_next(const st_decoded *d, size_t *pos, const uint8_t **mp, size_t *mp_len)
{
    uint64_t l;
    size_t vn = varint_get(d->payload + *pos, d->payload_len - *pos, &l);
    if (!vn || l == 0 || l > d->payload_len - *pos - vn)
        return -1;
    *mp = d->payload + *pos + vn;
    *mp_len = (size_t)l;
    *pos += vn + (size_t)l;
    return 0;
}

rtlog_err st_encode_block(ZSTD_CCtx *cctx, const uint8_t *const *mps, const size_t *lens, size_t k,
                          rtlog_buf *scratch, rtlog_buf *out, uint32_t *hash_off)
{
    scratch->len = 0;
    for (size_t i = 0; i < k; i++) {
        uint8_t vb[10];
        size_t vn = varint_put(vb, lens[i]);
        if (rtlog_buf_append(scratch, vb, vn) || rtlog_buf_append(scratch, mps[i], lens[i]))
            return RTLOG_E_NOMEM;
    }
    size_t bound = ZSTD_compressBound(scratch->len);
    if (rtlog_buf_reserve(out, 11 + 8 * k + bound))
        return RTLOG_E_NOMEM;
    uint8_t *p = (uint8_t *)out->p + out->len;
    size_t h = 0;
    p[h++] = (uint8_t)(VAL_VERSION << 4 | CODEC_BLOCK);
    h += varint_put(p + h, k);
    *hash_off = (uint32_t)h;
    memset(p + h, 0, 8 * k);
    h += 8 * k;
    size_t z = ZSTD_compress2(cctx, p + h, bound, scratch->p, scratch->len);
    if (ZSTD_isError(z))
        return RTLOG_E_NOMEM; /* with a bound-sized buffer only allocation can fail */
    out->len += h + z;
    return RTLOG_OK;
}

/* A single record: raw, or zstd when the record is large and compression pays. */
static rtlog_err encode_single(st_cctx **cc, rtlog_store *st, const rtlog_rec *r, rtlog_buf *out)
{
    size_t bound = r->mp_len >= SINGLE_ZSTD_MIN ? ZSTD_compressBound(r->mp_len) : 0;
    size_t room = 9 + (bound > r->mp_len ? bound : r->mp_len);
    if (rtlog_buf_reserve(out, room))
        return RTLOG_E_NOMEM;
    uint8_t *p = (uint8_t *)out->p + out->len;
    memset(p + 1, 0, 8);
    if (bound) {
        if (!*cc && !(*cc = st_cctx_get(st)))
            return RTLOG_E_NOMEM;
        size_t z = ZSTD_compress2((*cc)->cctx, p + 9, bound, r->mp, r->mp_len);
        if (ZSTD_isError(z))
            return RTLOG_E_NOMEM;
        if (z < r->mp_len) {
            p[0] = (uint8_t)(VAL_VERSION << 4 | CODEC_ZSTD);
            out->len += 9 + z;
            return RTLOG_OK;
        }
    }
    p[0] = (uint8_t)(VAL_VERSION << 4 | CODEC_RAW);
    memcpy(p + 9, r->mp, r->mp_len);
    out->len += 9 + r->mp_len;
    return RTLOG_OK;
}

rtlog_err st_encode_request(rtlog_store *st, st_req *req, rtlog_errinfo *ei)
{
    req->nent = 0;
    req->value_bytes = 0;
    if (req->n == 0)
        return RTLOG_OK;
    req->ent = malloc(req->n * sizeof *req->ent);
    if (!req->ent)
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory encoding a batch");

    st_cctx *cc = NULL;
    rtlog_err rc = RTLOG_OK;
    const rtlog_rec *recs = req->recs;
    size_t i = 0;
    while (i < req->n && rc == RTLOG_OK) {
        /* The chunk that starts at i: consecutive records that may share a block. */
        size_t j = i, bytes = 0;
        while (j < req->n && j - i < BLOCK_MAX_EVENTS && recs[j].mp_len <= BIG_RECORD &&
               bytes + recs[j].mp_len <= BLOCK_MAX_RAW)
            bytes += recs[j++].mp_len;
        if (j == i)
            j = i + 1; /* a big record: alone */
        st_entry *e;
        if (j - i >= BLOCK_MIN_EVENTS) {
            const uint8_t *mps[BLOCK_MAX_EVENTS];
            size_t lens[BLOCK_MAX_EVENTS];
            for (size_t t = i; t < j; t++) {
                mps[t - i] = recs[t].mp;
                lens[t - i] = recs[t].mp_len;
            }
            if (!cc && !(cc = st_cctx_get(st))) {
                rc = RTLOG_E_NOMEM;
                break;
            }
            e = &req->ent[req->nent++];
            e->off = req->vals.len;
            e->first_rec = i;
            e->k = (uint32_t)(j - i);
            e->mp_bytes = bytes;
            rc =
                st_encode_block(cc->cctx, mps, lens, j - i, &cc->scratch, &req->vals, &e->hash_off);
            e->len = req->vals.len - e->off;
        } else {
            for (size_t t = i; t < j && rc == RTLOG_OK; t++) {
                e = &req->ent[req->nent++];
                e->off = req->vals.len;
                e->first_rec = t;
                e->k = 1;
                e->hash_off = 1;
                e->mp_bytes = recs[t].mp_len;
                rc = encode_single(&cc, st, &recs[t], &req->vals);
                e->len = req->vals.len - e->off;
            }
        }
        i = j;
    }
    if (cc)
        st_cctx_put(st, cc);
    if (rc)
        return rtlog_errinfo_set(ei, rc, -1, NULL, "out of memory encoding a batch");
    req->value_bytes = req->vals.len;
    return RTLOG_OK;
}

/* ---- pools -------------------------------------------------------------------------------- */

st_cctx *st_cctx_get(rtlog_store *st)
{
    pthread_mutex_lock(&st->pool_mu);
    st_cctx *c = st->cctxs;
    if (c)
        st->cctxs = c->next;
    pthread_mutex_unlock(&st->pool_mu);
    if (c)
        return c;
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cctx = ZSTD_createCCtx();
    if (!c->cctx ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL))) {
        ZSTD_freeCCtx(c->cctx);
        free(c);
        return NULL;
    }
    return c;
}

void st_cctx_put(rtlog_store *st, st_cctx *c)
{
    /* Keep pooled scratch buffers from pinning a huge batch's memory forever. */
    if (c->scratch.cap > 4u * BLOCK_MAX_RAW)
        rtlog_buf_free(&c->scratch);
    pthread_mutex_lock(&st->pool_mu);
    c->next = st->cctxs;
    st->cctxs = c;
    pthread_mutex_unlock(&st->pool_mu);
}

st_reader *st_reader_get(rtlog_store *st)
{
    pthread_mutex_lock(&st->pool_mu);
    st_reader *r = st->readers;
    if (r)
        st->readers = r->next;
    pthread_mutex_unlock(&st->pool_mu);
    if (r)
        return r;
    r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->dctx = ZSTD_createDCtx();
    if (!r->dctx) {
        free(r);
        return NULL;
    }
    return r;
}

void st_reader_put(rtlog_store *st, st_reader *r)
{
    if (r->buf.cap > 4u * BLOCK_MAX_RAW) {
        rtlog_buf_free(&r->buf);
        r->cache_ok = 0;
    }
    pthread_mutex_lock(&st->pool_mu);
    r->next = st->readers;
    st->readers = r;
    pthread_mutex_unlock(&st->pool_mu);
}

void st_pools_free(rtlog_store *st)
{
    while (st->cctxs) {
        st_cctx *c = st->cctxs;
        st->cctxs = c->next;
        ZSTD_freeCCtx(c->cctx);
        rtlog_buf_free(&c->scratch);
        free(c);
    }
    while (st->readers) {
        st_reader *r = st->readers;
        st->readers = r->next;
        if (r->cur)
            mdb_cursor_close(r->cur);
        if (r->txn)
            mdb_txn_abort(r->txn);
        ZSTD_freeDCtx(r->dctx);
        rtlog_buf_free(&r->buf);
        free(r);
    }
}
