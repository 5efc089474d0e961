/* read.c - reading: events of a stream from any seq, one stream's metadata, all streams.
 *
 * Every call runs in one short read txn taken from the reader pool (a reset txn renewed, its
 * cursor renewed, a zstd context and a buffer kept warm), so a warm read costs no malloc
 * and no snapshot outlives the call (DESIGN invariant 3). Entries are found with
 * MDB_SET_RANGE on (stream id, seq): an entry's key is its last seq, so the first key >= the
 * wanted seq is the entry that holds it. Singles stored raw are handed out straight from the
 * map; blocks are decompressed once into the reader's buffer. Seqs are checked to be gapless
 * as they are read: a hole or overlap is RTLOG_E_CORRUPT naming the seq, never a silent skip.
 */
#include "store_int.h"

#include <stdlib.h>

/* Look a stream up in the reader's txn: 0, MDB_NOTFOUND, -1 (corrupt), or an LMDB error. */
static int get_meta(rtlog_store *st, st_reader *r, const char *name, size_t len, st_meta *m)
{
    MDB_val k = {len, (void *)name}, d;
    int rc = mdb_get(r->txn, st->dbi_streams, &k, &d);
    if (rc)
        return rc;
    return st_meta_decode(d.mv_data, d.mv_size, m) ? -1 : 0;
}

static rtlog_err meta_err(rtlog_store *st, int rc, const char *name, rtlog_errinfo *ei)
{
    if (rc == MDB_NOTFOUND)
        return rtlog_errinfo_set(ei, RTLOG_E_NOTFOUND, -1, NULL, "stream %s not found", name);
    if (rc == -1)
        return rtlog_errinfo_set(ei, RTLOG_E_CORRUPT, -1, NULL,
                                 "stream %s: stored metadata is corrupt", name);
    return st_lmdb_err(st, rc, "mdb_get(streams)", ei);
}

rtlog_err rtlog_store_read(rtlog_store *st, const char *stream, uint64_t from_seq,
                           size_t max_events, size_t max_bytes, rtlog_read_cb cb, void *ctx,
                           uint64_t *next_seq, rtlog_errinfo *ei)
{
    if (next_seq)
        *next_seq = from_seq ? from_seq : 1;
    if (!st || !stream || !cb)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "missing argument");
    size_t len = strnlen(stream, RTLOG_STREAM_MAX);
    if (len == 0 || len >= RTLOG_STREAM_MAX)
        return rtlog_errinfo_set(ei, RTLOG_E_NOTFOUND, -1, NULL, "stream not found");

    st_reader *r = st_reader_get(st);
    if (!r)
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
    rtlog_err err = st_read_begin(st, r, ei);
    if (err) {
        st_reader_put(st, r);
        return err;
    }

    st_meta m;
    int rc = get_meta(st, r, stream, len, &m);
    if (rc) {
        err = meta_err(st, rc, stream, ei);
        goto out;
    }
    uint64_t want = from_seq < m.first_seq ? m.first_seq : from_seq; /* next seq to pass */
    if (next_seq)
        *next_seq = want;
    if (want > m.last_seq)
        goto out;

    uint8_t kb[KEY_SIZE];
    key_encode(kb, m.id, want);
    MDB_val k = {KEY_SIZE, kb}, d;
    size_t passed = 0, bytes = 0;
    int stop = 0, first = 1;
    for (rc = mdb_cursor_get(r->cur, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(r->cur, &k, &d, MDB_NEXT)) {
        uint8_t key[KEY_SIZE];
        if (k.mv_size != KEY_SIZE)
            break;
        memcpy(key, k.mv_data, KEY_SIZE);
        uint64_t kseq = get_be64(key + 8);
        if (get_be64(key) != m.id || kseq < want)
            break;
        st_decoded dec;
        const char *why = "";
        uint8_t b0 = 0;
        memcpy(&b0, d.mv_data, d.mv_size ? 1 : 0);
        int block = d.mv_size && (b0 & 0x0fu) == CODEC_BLOCK;
        int reuse = block && r->cache_ok && r->cache_id == m.id && r->cache_key == kseq;
        int drc = st_entry_decode(d.mv_data, d.mv_size, r->dctx, &r->buf, reuse, &dec, &why);
        if (!reuse && (block || (d.mv_size && (b0 & 0x0fu) == CODEC_ZSTD))) {
            /* buf was overwritten: it now holds this block, or no block at all */
            r->cache_ok = block && drc == 0;
            r->cache_id = m.id;
            r->cache_key = kseq;
        }
        if (drc == -2) {
            err = rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
            goto out;
        }
        if (drc || dec.k > kseq || kseq - dec.k + 1 > want ||
            (!first && kseq - dec.k + 1 != want)) {
            err = rtlog_errinfo_set(ei, RTLOG_E_CORRUPT, -1, NULL, "stream %s: seq %llu: %s",
                                    stream, (unsigned long long)want, drc ? why : "missing");
            goto out;
        }
        uint64_t seq = kseq - dec.k + 1;
        size_t pos = 0;
        first = 0;
        for (uint32_t t = 0; t < dec.k; t++, seq++) {
            const uint8_t *mp;
            size_t mp_len;
            if (dec.codec == CODEC_BLOCK) {
                if (st_block_next(&dec, &pos, &mp, &mp_len)) {
                    err = rtlog_errinfo_set(ei, RTLOG_E_CORRUPT, -1, NULL,
                                            "stream %s: seq %llu: block record is truncated",
                                            stream, (unsigned long long)seq);
                    goto out;
                }
            } else {
                mp = dec.payload;
                mp_len = dec.payload_len;
            }
            if (seq < want)
                continue;
            rtlog_event_view ev = {.seq = seq, .mp = mp, .mp_len = mp_len};
            memcpy(ev.hash8, dec.hashes + 8 * t, 8);
            int c = cb(ctx, &ev);
            want = seq + 1;
            passed++;
            bytes += mp_len;
            if (c || (max_events && passed >= max_events) || (max_bytes && bytes >= max_bytes) ||
                seq >= m.last_seq) {
                stop = 1;
                break;
            }
        }
        if (stop)
            break;
        if (dec.codec == CODEC_BLOCK && pos != dec.payload_len) {
            err = rtlog_errinfo_set(ei, RTLOG_E_CORRUPT, -1, NULL,
                                    "stream %s: block ending at seq %llu has trailing bytes",
                                    stream, (unsigned long long)kseq);
            goto out;
        }
    }
    if (rc && rc != MDB_NOTFOUND) {
        err = st_lmdb_err(st, rc, "mdb_cursor_get(events)", ei);
        goto out;
    }
    if (!stop && want <= m.last_seq) {
        err = rtlog_errinfo_set(ei, RTLOG_E_CORRUPT, -1, NULL, "stream %s: seq %llu: missing",
                                stream, (unsigned long long)want);
        goto out;
    }
    if (next_seq)
        *next_seq = want;
out:
    st_read_end(st, r);
    st_reader_put(st, r);
    return err;
}

rtlog_err rtlog_store_describe(rtlog_store *st, const char *stream, rtlog_stream_info *out,
                               rtlog_errinfo *ei)
{
    if (!st || !stream || !out)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "missing argument");
    size_t len = strnlen(stream, RTLOG_STREAM_MAX);
    if (len == 0 || len >= RTLOG_STREAM_MAX)
        return rtlog_errinfo_set(ei, RTLOG_E_NOTFOUND, -1, NULL, "stream not found");
    st_reader *r = st_reader_get(st);
    if (!r)
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
    rtlog_err err = st_read_begin(st, r, ei);
    if (!err) {
        st_meta m;
        int rc = get_meta(st, r, stream, len, &m);
        if (rc)
            err = meta_err(st, rc, stream, ei);
        else
            st_meta_to_info(stream, len, &m, out);
        st_read_end(st, r);
    }
    st_reader_put(st, r);
    return err;
}

#define LIST_CHUNK 64

rtlog_err rtlog_store_list(rtlog_store *st, rtlog_list_cb cb, void *ctx, rtlog_errinfo *ei)
{
    if (!st || !cb)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "missing argument");
    rtlog_stream_info *chunk = malloc(LIST_CHUNK * sizeof *chunk);
    st_reader *r = st_reader_get(st);
    rtlog_err err = RTLOG_OK;
    if (!chunk || !r) {
        err = rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
        goto done;
    }
    char after[RTLOG_STREAM_MAX];
    size_t after_len = 0;
    int more = 1, started = 0;
    while (more) {
        /* One short read txn per chunk; the callbacks run with no txn open. */
        if ((err = st_read_begin(st, r, ei)))
            goto done;
        MDB_cursor *cur;
        int rc = mdb_cursor_open(r->txn, st->dbi_streams, &cur);
        if (rc) {
            st_read_end(st, r);
            err = st_lmdb_err(st, rc, "mdb_cursor_open(streams)", ei);
            goto done;
        }
        MDB_val k = {after_len, after}, d;
        rc = started ? mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE)
                     : mdb_cursor_get(cur, &k, &d, MDB_FIRST);
        if (!rc && started && k.mv_size == after_len && !memcmp(k.mv_data, after, after_len))
            rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
        size_t n = 0;
        for (; rc == 0 && n < LIST_CHUNK; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
            st_meta m;
            if (k.mv_size == 0 || k.mv_size >= RTLOG_STREAM_MAX ||
                st_meta_decode(d.mv_data, d.mv_size, &m)) {
                err = rtlog_errinfo_set(ei, RTLOG_E_CORRUPT, -1, NULL,
                                        "a stream's stored metadata is corrupt");
                break;
            }
            st_meta_to_info(k.mv_data, k.mv_size, &m, &chunk[n++]);
            memcpy(after, k.mv_data, k.mv_size);
            after_len = k.mv_size;
        }
        mdb_cursor_close(cur);
        st_read_end(st, r);
        if (err)
            goto done;
        if (rc && rc != MDB_NOTFOUND) {
            err = st_lmdb_err(st, rc, "mdb_cursor_get(streams)", ei);
            goto done;
        }
        more = rc == 0; /* stopped because the chunk is full */
        started = 1;
        for (size_t i = 0; i < n; i++)
            if (cb(ctx, &chunk[i])) {
                more = 0;
                break;
            }
    }
done:
    if (r)
        st_reader_put(st, r);
    free(chunk);
    return err;
}
