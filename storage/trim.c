/* trim.c - retention: removing the oldest entries of a stream inside the writer's txn.
 *
 * A trim removes whole stored entries (a single event, or a block of up to 256), never part
 * of one: rewriting the block that straddles the cut would cost a decompress and a
 * recompress in the one serial path of the store for the sake of at most 255 events, and
 * retention is a bound, not an exact count. Two passes over the entries to remove: the
 * first decodes each one, renders every event's export line (schema, redacted, "seq" last),
 * extends the chain from the stored base_hash and compares it with the stored hash8, so
 * the new base_hash = h(first_seq - 1) is the real chain and a tampered event refuses the
 * trim instead of vanishing unnoticed; only when all of that holds does the second pass
 * delete. A refusal therefore writes nothing. The latest snapshot event is never removed.
 */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>

/* What the first pass learnt about the entries below the cut. */
struct trim_plan {
    uint64_t new_first;   /* first seq that stays */
    uint64_t last_key;    /* key seq of the last entry to delete */
    uint64_t value_bytes; /* stored bytes of the entries to delete */
    uint64_t raw_bytes;   /* JSON line bytes of their events */
    uint64_t tail_events; /* of them, single entries at or after tail_first */
    uint64_t tail_mp;     /* msgpack bytes of those singles */
    uint8_t base[32];     /* h(new_first - 1) */
};

static int sha_step(rtlog_store *st, uint8_t h[32], const void *line, size_t len)
{
    return EVP_DigestInit_ex(st->mdctx, st->sha256, NULL) &&
           EVP_DigestUpdate(st->mdctx, h, 32) && EVP_DigestUpdate(st->mdctx, line, len) &&
           EVP_DigestFinal_ex(st->mdctx, h, NULL);
}

#define REFUSED (-1) /* not an LMDB code (those are below -30000) nor an errno */

/* Refuse the trim (nothing written; the txn goes on for other requests). */
static int refuse(st_req *r, uint64_t seq, const char *why)
{
    r->rc = rtlog_errinfo_set(&r->ei, RTLOG_E_CORRUPT, -1, NULL,
                              "stream %s: seq %llu: %s; nothing was trimmed", r->stream,
                              (unsigned long long)seq, why);
    return REFUSED;
}

/* Pass 1: walk the entries whose last seq is below @cut. Returns 0 (plan filled; plan->
 * new_first == m->first_seq when no entry is due), REFUSED (r->rc set), or an LMDB/errno
 * code. */
static int plan_trim(rtlog_store *st, MDB_txn *txn, const st_meta *m, uint64_t cut, st_req *r,
                     struct trim_plan *p)
{
    memset(p, 0, sizeof *p);
    p->new_first = m->first_seq;
    memcpy(p->base, m->base, 32);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, st->dbi_events, &cur);
    if (rc)
        return rc;
    uint8_t kb[KEY_SIZE];
    key_encode(kb, m->id, m->first_seq);
    MDB_val k = {KEY_SIZE, kb}, d;
    uint64_t next = m->first_seq; /* seq the next event must have */
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        uint8_t key[KEY_SIZE];
        if (k.mv_size != KEY_SIZE)
            break;
        memcpy(key, k.mv_data, KEY_SIZE);
        uint64_t kseq = get_be64(key + 8);
        if (get_be64(key) != m->id || kseq >= cut)
            break;
        st_decoded dec;
        const char *why = "";
        int drc = st_entry_decode(d.mv_data, d.mv_size, st->wdctx, &st->wdec, 0, &dec, &why);
        if (drc == -2) {
            rc = ENOMEM;
            break;
        }
        if (drc || dec.k > kseq || kseq - dec.k + 1 != next) {
            mdb_cursor_close(cur);
            return refuse(r, next, drc ? why : "stored entries are not contiguous");
        }
        size_t pos = 0;
        for (uint32_t t = 0; t < dec.k; t++) {
            uint64_t seq = next + t;
            const uint8_t *mp = dec.payload;
            size_t mp_len = dec.payload_len;
            if (dec.codec == CODEC_BLOCK && st_block_next(&dec, &pos, &mp, &mp_len)) {
                mdb_cursor_close(cur);
                return refuse(r, seq, "block record is truncated");
            }
            rtlog_buf_clear(&st->wline);
            rtlog_err e = rtlog_schema_render(mp, mp_len, seq, RTLOG_JSON_REDACT, &st->wline);
            if (e == RTLOG_E_NOMEM) {
                rc = ENOMEM;
                goto out;
            }
            if (e) {
                mdb_cursor_close(cur);
                return refuse(r, seq, "record cannot be decoded");
            }
            if (!sha_step(st, p->base, st->wline.p, st->wline.len)) {
                rc = ENOMEM; /* OpenSSL digest failure: nothing else can be meant */
                goto out;
            }
            if (memcmp(p->base, dec.hashes + 8 * t, 8)) {
                mdb_cursor_close(cur);
                return refuse(r, seq, "stored hash does not match the record");
            }
            p->raw_bytes += st->wline.len;
        }
        if (dec.k == 1 && m->tail_count && next >= m->tail_first) {
            p->tail_events++;
            p->tail_mp += dec.payload_len;
        }
        p->value_bytes += d.mv_size;
        p->last_key = kseq;
        next = kseq + 1;
        p->new_first = next;
    }
out:
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int st_trim_apply(rtlog_store *st, MDB_txn *txn, st_meta *m, st_req *r, int *changed)
{
    *changed = 0;
    uint64_t cut = r->before;
    if (cut > m->last_seq + 1)
        cut = m->last_seq + 1;
    if (m->snapshot_seq && cut > m->snapshot_seq)
        cut = m->snapshot_seq; /* a new subscriber of the dashboard starts there */
    if (r->trim_out)
        *r->trim_out = (rtlog_trim_res){m->first_seq, 0};
    if (cut <= m->first_seq)
        return 0;

    struct trim_plan p;
    int rc = plan_trim(st, txn, m, cut, r, &p);
    if (rc == REFUSED)
        return 0;
    if (rc)
        return rc;
    uint64_t removed = p.new_first - m->first_seq;
    if (removed == 0)
        return 0;
    if (removed > m->count || p.tail_events > m->tail_count) {
        refuse(r, m->first_seq, "stored counts do not match the entries");
        return 0;
    }

    /* Pass 2: the plan holds; delete exactly the entries it walked (each found afresh with
     * SET_RANGE rather than trusting a cursor's position after a delete). */
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, st->dbi_events, &cur)))
        return rc;
    for (uint64_t n = 0; n <= removed; n++) { /* at most one entry per removed event */
        uint8_t kb[KEY_SIZE], key[KEY_SIZE];
        key_encode(kb, m->id, m->first_seq);
        MDB_val k = {KEY_SIZE, kb}, d;
        if ((rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE)))
            break;
        if (k.mv_size != KEY_SIZE)
            break;
        memcpy(key, k.mv_data, KEY_SIZE);
        if (get_be64(key) != m->id || get_be64(key + 8) > p.last_key)
            break;
        if ((rc = mdb_cursor_del(cur, 0)))
            break;
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND)
        return rc;

    m->first_seq = p.new_first;
    memcpy(m->base, p.base, 32);
    m->count -= removed;
    m->stored_bytes = m->stored_bytes > p.value_bytes ? m->stored_bytes - p.value_bytes : 0;
    m->raw_bytes = m->raw_bytes > p.raw_bytes ? m->raw_bytes - p.raw_bytes : 0;
    if (p.tail_events) {
        m->tail_count -= p.tail_events;
        m->tail_bytes = m->tail_bytes > p.tail_mp ? m->tail_bytes - p.tail_mp : 0;
        m->tail_first = m->tail_count ? p.new_first : 0;
        if (!m->tail_count)
            m->tail_bytes = 0;
    }
    if (r->trim_out)
        *r->trim_out = (rtlog_trim_res){m->first_seq, removed};
    *changed = 1;
    return 0;
}
