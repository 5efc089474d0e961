/* writer.c - appends: the queue, the writer thread and its group commit.
 *
 * rtlog_store_append_async() validates and encodes a batch in the caller's thread, then
 * queues it. One writer thread owns every LMDB write txn: it takes all queued requests (up
 * to max_batch_events events), and in ONE txn, for each request in order, reads the
 * stream's metadata inside the txn (another process may have appended), checks sealed /
 * expectedSeq, assigns seqs, extends the SHA-256 hash chain, writes the entries, packs the
 * stream's tail into a block when it is due, and updates the metadata; then one commit (one
 * fsync) and only then the completions and the commit hook. A refused request writes nothing
 * (every check happens before its first put). An LMDB failure in the middle of request i
 * aborts the txn: requests before i are redone alone (they fit), request i fails alone, so
 * one bad request never takes others with it. MDB_MAP_FULL grows the map and redoes the txn;
 * at map_max_bytes, or on ENOSPC, the requests get RTLOG_E_FULL and nothing is half-written.
 */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <time.h>

/* One single entry of a stream's tail, collected for compaction. */
struct st_titem {
    uint64_t seq;
    size_t off, len; /* raw record in st->wraw */
    size_t vlen;     /* stored value size */
    uint8_t hash8[8];
};

/* ---- the hash chain ----------------------------------------------------------------------- */

static size_t u64_dec(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* head = SHA-256(head || line) where line is rec.json without its final '}' followed by
 * ,"seq":N} (CONTRACT "Tools"). Returns the line's length, 0 on an OpenSSL failure. */
static size_t chain_step(rtlog_store *st, uint8_t head[32], const rtlog_rec *r, uint64_t seq)
{
    char tail[40];
    size_t t = 0;
    if (r->json_len > 2)
        tail[t++] = ',';
    memcpy(tail + t, "\"seq\":", 6);
    t += 6;
    t += u64_dec(tail + t, seq);
    tail[t++] = '}';
    if (!EVP_DigestInit_ex(st->mdctx, st->sha256, NULL) || !EVP_DigestUpdate(st->mdctx, head, 32) ||
        !EVP_DigestUpdate(st->mdctx, r->json, r->json_len - 1) ||
        !EVP_DigestUpdate(st->mdctx, tail, t) || !EVP_DigestFinal_ex(st->mdctx, head, NULL))
        return 0;
    return r->json_len - 1 + t;
}

/* ---- streams touched by the current txn ---------------------------------------------------- */

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* Size the table for @nreq requests and empty it. 0 or ENOMEM. */
static int wtab_reset(rtlog_store *st, size_t nreq)
{
    if (nreq > st->wtab_cap) {
        st_wstream *t = realloc(st->wtab, nreq * sizeof *t);
        if (!t)
            return ENOMEM;
        st->wtab = t;
        st->wtab_cap = nreq;
    }
    size_t slots = 16;
    while (slots < 2 * nreq)
        slots *= 2;
    if (slots > st->wslots_cap) {
        uint32_t *s = realloc(st->wslots, slots * sizeof *s);
        if (!s)
            return ENOMEM;
        st->wslots = s;
        st->wslots_cap = slots;
    }
    memset(st->wslots, 0, st->wslots_cap * sizeof *st->wslots);
    st->wtab_n = 0;
    st->next_id_loaded = st->next_id_dirty = 0;
    return 0;
}

/* Find or load a stream's metadata in @txn. Returns 0 (*out set; ->exists tells whether the
 * stream exists), an LMDB error, or -1 when the stored metadata is corrupt. */
static int wtab_get(rtlog_store *st, MDB_txn *txn, const char *name, size_t len, st_wstream **out)
{
    uint32_t h = name_hash(name, len);
    size_t mask = st->wslots_cap - 1, i = h & mask;
    for (; st->wslots[i]; i = (i + 1) & mask) {
        st_wstream *w = &st->wtab[st->wslots[i] - 1];
        if (w->hash == h && w->len == len && !memcmp(w->name, name, len)) {
            *out = w;
            return 0;
        }
    }
    st_wstream *w = &st->wtab[st->wtab_n];
    memset(w, 0, sizeof *w);
    memcpy(w->name, name, len);
    w->len = len;
    w->hash = h;
    MDB_val k = {len, (void *)name}, d;
    int rc = mdb_get(txn, st->dbi_streams, &k, &d);
    if (rc == 0) {
        if (st_meta_decode(d.mv_data, d.mv_size, &w->m))
            return -1;
        w->exists = 1;
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    }
    st->wslots[i] = (uint32_t)(++st->wtab_n);
    *out = w;
    return 0;
}

static int next_id_take(rtlog_store *st, MDB_txn *txn, uint64_t *id)
{
    if (!st->next_id_loaded) {
        MDB_val k = {7, "next_id"}, d;
        int rc = mdb_get(txn, st->dbi_meta, &k, &d);
        if (rc)
            return rc;
        if (d.mv_size != 8)
            return MDB_CORRUPTED;
        uint8_t b[8];
        memcpy(b, d.mv_data, 8);
        st->next_id = get_be64(b);
        st->next_id_loaded = 1;
    }
    *id = st->next_id++;
    st->next_id_dirty = 1;
    return 0;
}

/* Write every changed stream's metadata and the id counter. */
static int wtab_flush(rtlog_store *st, MDB_txn *txn)
{
    for (size_t i = 0; i < st->wtab_n; i++) {
        st_wstream *w = &st->wtab[i];
        if (!w->dirty)
            continue;
        uint8_t b[META_MAX];
        size_t blen = st_meta_encode(&w->m, b);
        MDB_val k = {w->len, w->name}, d = {blen, b};
        int rc = mdb_put(txn, st->dbi_streams, &k, &d, 0);
        if (rc)
            return rc;
    }
    if (st->next_id_dirty) {
        uint8_t b[8];
        put_be64(b, st->next_id);
        MDB_val k = {7, "next_id"}, d = {8, b};
        return mdb_put(txn, st->dbi_meta, &k, &d, 0);
    }
    return 0;
}

/* ---- tail compaction ------------------------------------------------------------------------ */

static int titems_reserve(rtlog_store *st, size_t n)
{
    if (n <= st->titems_cap)
        return 0;
    size_t cap = st->titems_cap ? st->titems_cap * 2 : 128;
    while (cap < n)
        cap *= 2;
    struct st_titem *t = realloc(st->titems, cap * sizeof *t);
    if (!t)
        return ENOMEM;
    st->titems = t;
    st->titems_cap = cap;
    return 0;
}

/* Pack the stream's trailing single entries into blocks (same chunking as callers use; a
 * chunk of one, or a big record, stays as it is). Runs inside the write txn, so a crash
 * either keeps the singles or the block, never both or neither. */
static int compact_tail(rtlog_store *st, MDB_txn *txn, st_wstream *w)
{
    st_meta *m = &w->m;
    if (m->tail_count < 2) {
        m->tail_first = m->tail_count = m->tail_bytes = 0;
        return 0;
    }
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, st->dbi_events, &cur);
    if (rc)
        return rc;
    uint8_t kb[KEY_SIZE];
    key_encode(kb, m->id, m->tail_first);
    MDB_val k = {KEY_SIZE, kb}, d;
    size_t n = 0;
    st->wraw.len = 0;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        uint8_t key[KEY_SIZE];
        if (k.mv_size != KEY_SIZE)
            break;
        memcpy(key, k.mv_data, KEY_SIZE);
        uint64_t id = get_be64(key), seq = get_be64(key + 8);
        if (id != m->id || seq > m->last_seq)
            break;
        st_decoded dec;
        const char *why;
        int drc = st_entry_decode(d.mv_data, d.mv_size, st->wdctx, &st->wdec, 0, &dec, &why);
        if (drc || dec.k != 1 || seq != m->tail_first + n) {
            rc = drc == -2 ? ENOMEM : MDB_CORRUPTED;
            break;
        }
        if (titems_reserve(st, n + 1) ||
            rtlog_buf_append(&st->wraw, dec.payload, dec.payload_len)) {
            rc = ENOMEM;
            break;
        }
        struct st_titem *t = &st->titems[n++];
        t->seq = seq;
        t->off = st->wraw.len - dec.payload_len;
        t->len = dec.payload_len;
        t->vlen = d.mv_size;
        memcpy(t->hash8, dec.hashes, 8);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    if (rc)
        return rc;
    if (n != m->tail_count)
        return MDB_CORRUPTED;

    size_t i = 0;
    while (i < n) {
        size_t j = i, bytes = 0;
        while (j < n && j - i < BLOCK_MAX_EVENTS && st->titems[j].len <= BIG_RECORD &&
               bytes + st->titems[j].len <= BLOCK_MAX_RAW)
            bytes += st->titems[j++].len;
        if (j - i < 2) {
            i = j > i ? j : i + 1;
            continue;
        }
        const uint8_t *mps[BLOCK_MAX_EVENTS];
        size_t lens[BLOCK_MAX_EVENTS];
        uint64_t old_bytes = 0;
        for (size_t t = i; t < j; t++) {
            mps[t - i] = (const uint8_t *)st->wraw.p + st->titems[t].off;
            lens[t - i] = st->titems[t].len;
            old_bytes += st->titems[t].vlen;
        }
        uint32_t hoff;
        st->wblk.len = 0;
        if (st_encode_block(st->wcctx, mps, lens, j - i, &st->wscratch, &st->wblk, &hoff))
            return ENOMEM;
        for (size_t t = i; t < j; t++)
            memcpy(st->wblk.p + hoff + 8 * (t - i), st->titems[t].hash8, 8);
        for (size_t t = i; t + 1 < j; t++) {
            key_encode(kb, m->id, st->titems[t].seq);
            MDB_val dk = {KEY_SIZE, kb};
            if ((rc = mdb_del(txn, st->dbi_events, &dk, NULL)))
                return rc;
        }
        key_encode(kb, m->id, st->titems[j - 1].seq);
        MDB_val bk = {KEY_SIZE, kb}, bv = {st->wblk.len, st->wblk.p};
        if ((rc = mdb_put(txn, st->dbi_events, &bk, &bv, 0)))
            return rc;
        m->stored_bytes = m->stored_bytes - old_bytes + st->wblk.len;
        i = j;
    }
    m->tail_first = m->tail_count = m->tail_bytes = 0;
    w->dirty = 1;
    return 0;
}

/* ---- applying one request inside the txn ---------------------------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Apply @r. Returns 0 when @r is done (applied, or refused with r->rc set; nothing written
 * for a refusal), or an LMDB/errno code that must abort the txn. */
static int apply(rtlog_store *st, MDB_txn *txn, st_req *r)
{
    st_wstream *w;
    r->rc = RTLOG_OK;
    r->touched = 0;
    int rc = wtab_get(st, txn, r->stream, r->stream_len, &w);
    if (rc == -1) {
        r->rc = rtlog_errinfo_set(&r->ei, RTLOG_E_CORRUPT, -1, NULL,
                                  "stream %s: stored metadata is corrupt", r->stream);
        return 0;
    }
    if (rc)
        return rc;
    st_meta *m = &w->m;
    uint64_t last = w->exists ? m->last_seq : 0;
    r->res.first_seq = last + 1;
    r->res.last_seq = last;
    r->res.sealed = w->exists && m->sealed;

    if (r->op == OP_TRIM) {
        if (!w->exists) {
            r->rc = rtlog_errinfo_set(&r->ei, RTLOG_E_NOTFOUND, -1, NULL,
                                      "stream %s does not exist", r->stream);
            return 0;
        }
        int changed = 0;
        if ((rc = st_trim_apply(st, txn, m, r, &changed)))
            return rc;
        if (changed)
            w->dirty = 1; /* not touched: last_seq did not move, no commit note */
        return 0;
    }
    if (r->op == OP_SEAL) {
        if (!w->exists) {
            r->rc = rtlog_errinfo_set(&r->ei, RTLOG_E_NOTFOUND, -1, NULL,
                                      "stream %s does not exist", r->stream);
            return 0;
        }
        if (!m->sealed) {
            if ((rc = compact_tail(st, txn, w)))
                return rc;
            m->sealed = 1;
            w->dirty = w->touched = 1;
        }
        r->res.sealed = 1;
        return 0;
    }
    if (r->has_expected && r->expected != last) {
        r->rc =
            rtlog_errinfo_set(&r->ei, RTLOG_E_CONFLICT, -1, NULL,
                              "expectedSeq %llu does not match: stream %s is at seq %llu",
                              (unsigned long long)r->expected, r->stream, (unsigned long long)last);
        return 0;
    }
    if (w->exists && m->sealed) {
        if (r->n == 0)
            return 0; /* creating an existing stream changes nothing */
        r->rc = rtlog_errinfo_set(&r->ei, RTLOG_E_SEALED, -1, NULL,
                                  "stream %s is sealed (completed at seq %llu)", r->stream,
                                  (unsigned long long)last);
        return 0;
    }
    if (r->bad_seal) {
        const char *type = r->recs[r->bad_seal - 2].type;
        r->rc = rtlog_errinfo_set(&r->ei, RTLOG_E_SEALED, (long)r->bad_seal - 1, NULL,
                                  "the %s event before it seals the stream; no event may follow "
                                  "it in the same batch",
                                  type ? type : "sealing");
        return 0;
    }
    if (!w->exists) {
        memset(m, 0, sizeof *m);
        if ((rc = next_id_take(st, txn, &m->id)))
            return rc;
        m->kind = (uint8_t)r->kind;
        m->created_ms = now_ms();
        m->first_seq = 1;
        w->exists = 1;
        w->dirty = w->touched = 1;
    }
    r->touched = w->touched; /* a create is a change worth a note */
    if (r->n == 0)
        return 0;

    uint64_t seq = last + 1;
    for (size_t x = 0; x < r->nent; x++) {
        const st_entry *e = &r->ent[x];
        if (e->k > 1 && m->tail_count) {
            /* Keep the invariant that single entries only trail a stream. */
            if ((rc = compact_tail(st, txn, w)))
                return rc;
        }
        uint8_t kb[KEY_SIZE];
        key_encode(kb, m->id, seq + e->k - 1);
        MDB_val k = {KEY_SIZE, kb}, d = {e->len, NULL};
        rc = mdb_put(txn, st->dbi_events, &k, &d, MDB_NOOVERWRITE | MDB_RESERVE);
        if (rc)
            return rc;
        uint8_t *v = d.mv_data;
        memcpy(v, r->vals.p + e->off, e->len);
        for (uint32_t t = 0; t < e->k; t++) {
            const rtlog_rec *rec = &r->recs[e->first_rec + t];
            size_t line = chain_step(st, m->head, rec, seq + t);
            if (!line)
                return ENOMEM; /* OpenSSL digest failure: nothing else can be meant */
            memcpy(v + e->hash_off + 8 * t, m->head, 8);
            m->raw_bytes += line;
            if (rec->flags & RTLOG_REC_SNAPSHOT)
                m->snapshot_seq = seq + t;
            if (rec->flags & RTLOG_REC_SEALS) {
                m->sealed = 1;
                snprintf(m->status, sizeof m->status, "%s", rec->status);
            }
        }
        if (e->k == 1) {
            if (!m->tail_count)
                m->tail_first = seq;
            m->tail_count++;
            m->tail_bytes += e->mp_bytes;
        }
        m->stored_bytes += e->len;
        seq += e->k;
        m->last_seq = seq - 1; /* compact_tail may run before the next entry */
    }
    m->count += r->n;
    w->dirty = w->touched = 1;
    r->touched = 1;
    if (m->tail_count &&
        (m->sealed || m->tail_count >= BLOCK_MAX_EVENTS || m->tail_bytes >= BLOCK_MAX_RAW)) {
        if ((rc = compact_tail(st, txn, w)))
            return rc;
    }
    r->res.last_seq = m->last_seq;
    r->res.sealed = m->sealed;
    return 0;
}

/* ---- one group commit ----------------------------------------------------------------------- */

enum round_result { R_OK, R_RETRY, R_PREFIX, R_FAIL_ONE, R_FAIL_ALL };

static void fmt_size(char *out, size_t cap, size_t v)
{
    if (v % (1024u * 1024u) == 0)
        snprintf(out, cap, "%zu MiB", v / (1024u * 1024u));
    else
        snprintf(out, cap, "%zu bytes", v);
}

/* Grow the map after MDB_MAP_FULL. 1 = grown (redo), 0 = at its limit (text in @ei).
 * map_size is read and written under the exclusive gate: a reader thread may be adopting a
 * size another process set at the same moment. */
static int grow_map(rtlog_store *st, rtlog_errinfo *ei)
{
    char lim[48];
    pthread_rwlock_wrlock(&st->gate);
    size_t cur = st->map_size, want = cur > SIZE_MAX / 2 ? SIZE_MAX : cur * 2;
    if (st->map_max && want > st->map_max)
        want = st->map_max;
    int rc = -1;
    if (want > cur && (rc = mdb_env_set_mapsize(st->env, want)) == 0) {
        MDB_envinfo info;
        if (!mdb_env_info(st->env, &info))
            st->map_size = info.me_mapsize;
    }
    size_t now = st->map_size;
    pthread_rwlock_unlock(&st->gate);
    if (rc == -1) {
        fmt_size(lim, sizeof lim, st->map_max);
        rtlog_errinfo_set(ei, RTLOG_E_FULL, -1, NULL, "storage full: map limit %s reached", lim);
        return 0;
    }
    if (rc) {
        fmt_size(lim, sizeof lim, want);
        rtlog_errinfo_set(ei, RTLOG_E_FULL, -1, NULL, "storage full: cannot grow the map to %s: %s",
                          lim, mdb_strerror(rc));
        return 0;
    }
    pthread_mutex_lock(&st->stats_mu);
    st->stats.map_bytes = now;
    pthread_mutex_unlock(&st->stats_mu);
    return 1;
}

/* LMDB reports a short write (the file system filled up mid-write) as EIO, not ENOSPC: treat
 * EIO as "disk full" when the file system has less room left than the txn wanted to add. */
static int disk_full(rtlog_store *st, st_req **r, size_t n)
{
    struct statvfs vs;
    if (statvfs(st->dir, &vs))
        return 0;
    uint64_t want = 1024u * 1024u;
    for (size_t i = 0; i < n; i++)
        want += r[i]->value_bytes;
    return (uint64_t)vs.f_bavail * vs.f_frsize < want;
}

/* Run requests @r[0..n) in one write txn. On R_PREFIX *at is the request that failed (> 0);
 * on R_FAIL_ONE / R_FAIL_ALL @ei holds the error to report. */
static enum round_result round_once(rtlog_store *st, st_req **r, size_t n, size_t *at,
                                    rtlog_errinfo *ei)
{
    MDB_txn *txn = NULL;
    int rc;
    const char *what = "mdb_txn_begin";
    size_t i = n;

    if (wtab_reset(st, n)) {
        st_lmdb_err(st, ENOMEM, "writer tables", ei);
        return R_FAIL_ALL;
    }
    pthread_rwlock_rdlock(&st->gate);
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc) {
        txn = NULL;
        pthread_rwlock_unlock(&st->gate);
        if (rc == MDB_MAP_RESIZED && st_adopt_mapsize(st) == 0)
            return R_RETRY;
        st_lmdb_err(st, rc, what, ei);
        return R_FAIL_ALL;
    }
    for (i = 0; i < n; i++) {
        if ((rc = apply(st, txn, r[i]))) {
            what = "mdb_put";
            goto fail;
        }
    }
    what = "mdb_put(streams)";
    if ((rc = wtab_flush(st, txn)))
        goto fail;
    what = "mdb_txn_commit";
    rc = mdb_txn_commit(txn); /* frees the txn, also on failure */
    txn = NULL;
    pthread_rwlock_unlock(&st->gate);
    if (rc)
        goto failed;
    return R_OK;

fail:
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&st->gate);
failed:
    /* Classify. i < n: the failure is request i's; otherwise it belongs to the whole txn. */
    if (rc == MDB_MAP_FULL) {
        if (grow_map(st, ei))
            return R_RETRY;
    } else if (rc == ENOSPC || rc == EDQUOT || (rc == EIO && disk_full(st, r, n))) {
        rtlog_errinfo_set(ei, RTLOG_E_FULL, -1, NULL, "storage full: no space left on device");
        return R_FAIL_ALL;
    } else if (rc == MDB_KEYEXIST) {
        rtlog_errinfo_set(ei, RTLOG_E_CORRUPT, -1, NULL,
                          "stream %s: an event already exists after its recorded last seq",
                          i < n ? r[i]->stream : "?");
    } else if (rc == MDB_TXN_FULL) {
        rtlog_errinfo_set(ei, RTLOG_E_TOOBIG, -1, NULL,
                          "batch too large for one write transaction");
    } else {
        st_lmdb_err(st, rc, what, ei);
    }
    if (i >= n)
        return R_FAIL_ALL;
    if (i > 0) {
        *at = i;
        return R_PREFIX;
    }
    return R_FAIL_ONE;
}

static void finish(rtlog_store *st, st_req *r)
{
    r->cb(r->ctx, r->rc, &r->res, &r->ei);
    rtlog_buf_free(&r->vals);
    free(r->ent);
    free(r);
    (void)st;
}

static void note_commit(rtlog_store *st, st_req **r, size_t n, int failed, int full)
{
    pthread_mutex_lock(&st->stats_mu);
    if (failed) {
        st->stats.failed_commits++;
        st->stats.full = full;
    } else {
        uint64_t b = 0, e = 0;
        for (size_t i = 0; i < n; i++)
            if (r[i]->rc == RTLOG_OK && r[i]->op == OP_APPEND) {
                b++;
                e += r[i]->n;
            }
        st->stats.commits++;
        st->stats.batches += b;
        st->stats.events += e;
        st->stats.full = 0;
    }
    pthread_mutex_unlock(&st->stats_mu);
}

/* Commit @r[0..n) in as few txns as the failures allow, then complete each request. */
static void process(rtlog_store *st, st_req **r, size_t n)
{
    size_t start = 0;
    while (start < n) {
        size_t end = n, at = 0;
        rtlog_errinfo ei = {0};
        enum round_result rr;
        int retries = 0;
        for (;;) {
            rr = round_once(st, r + start, end - start, &at, &ei);
            if (rr == R_RETRY && retries++ < 64)
                continue;
            if (rr == R_PREFIX) {
                end = start + at;
                continue;
            }
            break;
        }
        if (rr == R_RETRY) /* the map kept changing under us: give up on these */
            rr = R_FAIL_ALL;
        if (rr == R_OK) {
            int wrote = 0;
            for (size_t i = start; i < end; i++)
                wrote |= r[i]->touched;
            if (wrote)
                note_commit(st, r + start, end - start, 0, 0);
            /* Notes for the commit hook: every stream the txn changed. */
            size_t nn = 0;
            if (st->wtab_n > st->notes_cap) {
                rtlog_commit_note *nb = realloc(st->notes, st->wtab_n * sizeof *nb);
                if (nb) {
                    st->notes = nb;
                    st->notes_cap = st->wtab_n;
                }
            }
            for (size_t i = 0; i < st->wtab_n && nn < st->notes_cap; i++) {
                st_wstream *w = &st->wtab[i];
                if (!w->touched)
                    continue;
                w->name[w->len] = '\0';
                st->notes[nn++] = (rtlog_commit_note){w->name, w->m.last_seq, w->m.sealed};
            }
            for (size_t i = start; i < end; i++)
                finish(st, r[i]);
            pthread_mutex_lock(&st->qmu);
            rtlog_commit_cb hook = st->on_commit;
            void *hctx = st->on_commit_ctx;
            pthread_mutex_unlock(&st->qmu);
            if (hook && nn)
                hook(hctx, st->notes, nn);
        } else if (rr == R_FAIL_ONE) {
            note_commit(st, NULL, 0, 1, ei.code == RTLOG_E_FULL);
            r[start]->rc = ei.code;
            r[start]->ei = ei;
            memset(&r[start]->res, 0, sizeof r[start]->res);
            finish(st, r[start]);
            end = start + 1;
        } else {
            note_commit(st, NULL, 0, 1, ei.code == RTLOG_E_FULL);
            for (size_t i = start; i < end; i++) {
                r[i]->rc = ei.code;
                r[i]->ei = ei;
                memset(&r[i]->res, 0, sizeof r[i]->res);
                finish(st, r[i]);
            }
        }
        start = end;
    }
}

/* A reader process that dies inside a read txn (a SIGKILLed `rtlog export`, or a server
 * killed mid-read while an export ran beside it) leaves its slot in the lock file, and LMDB
 * keeps every page that snapshot could see: data.mdb then grows with every commit until
 * someone runs mdb_reader_check. Opening the store clears such slots once; the writer does
 * it again before a write txn, at most every READER_SWEEP_MS (the check is one pass over the
 * reader table and a kill(pid, 0) per reader process), so a crash beside a running server
 * pins nothing for longer than that (handed.md C08, C12 family). */
static void reader_sweep(rtlog_store *st)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    if (st->reader_sweep_ms && now - st->reader_sweep_ms < READER_SWEEP_MS)
        return;
    st->reader_sweep_ms = now;
    int dead = 0;
    mdb_reader_check(st->env, &dead);
}

static void *writer_main(void *arg)
{
    rtlog_store *st = arg;
    for (;;) {
        pthread_mutex_lock(&st->qmu);
        while (!st->qhead && !st->stopping) {
            st->writer_waiting = 1;
            pthread_cond_wait(&st->qcv, &st->qmu);
            st->writer_waiting = 0;
        }
        if (!st->qhead) {
            pthread_mutex_unlock(&st->qmu);
            break;
        }
        /* Take a group: at least one request, then while events and bytes fit. */
        size_t n = 0;
        uint64_t events = 0, bytes = 0;
        while (st->qhead) {
            st_req *q = st->qhead;
            if (n && (events + q->n > st->max_batch || bytes + q->value_bytes > TXN_VALUE_BYTES ||
                      n >= 8192))
                break;
            if (n == st->group_cap) {
                size_t cap = st->group_cap ? st->group_cap * 2 : 256;
                st_req **g = realloc(st->group, cap * sizeof *g);
                if (!g)
                    break;
                st->group = g;
                st->group_cap = cap;
            }
            st->qhead = q->next;
            st->group[n++] = q;
            events += q->n;
            bytes += q->value_bytes;
        }
        st_req *one = NULL;
        if (n == 0) { /* no memory for a group: commit the first request alone */
            one = st->qhead;
            st->qhead = one->next;
        }
        if (!st->qhead)
            st->qtail = &st->qhead;
        pthread_mutex_unlock(&st->qmu);
        reader_sweep(st);
        if (n)
            process(st, st->group, n);
        else
            process(st, &one, 1);
    }
    return NULL;
}

int st_writer_start(rtlog_store *st)
{
    if (pthread_create(&st->writer, NULL, writer_main, st))
        return -1;
    st->writer_started = 1;
    return 0;
}

void st_writer_stop(rtlog_store *st)
{
    if (!st->writer_started)
        return;
    pthread_mutex_lock(&st->qmu);
    st->stopping = 1;
    pthread_cond_signal(&st->qcv);
    pthread_mutex_unlock(&st->qmu);
    pthread_join(st->writer, NULL);
    st->writer_started = 0;
}

/* ---- the public append calls ---------------------------------------------------------------- */

static rtlog_err enqueue(rtlog_store *st, st_req *r, rtlog_errinfo *ei)
{
    pthread_mutex_lock(&st->qmu);
    if (st->stopping) {
        pthread_mutex_unlock(&st->qmu);
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "store is closing");
    }
    r->next = NULL;
    *st->qtail = r;
    st->qtail = &r->next;
    if (st->writer_waiting)
        pthread_cond_signal(&st->qcv);
    pthread_mutex_unlock(&st->qmu);
    return RTLOG_OK;
}

static rtlog_err req_new(rtlog_store *st, const char *stream, st_req **out, rtlog_errinfo *ei)
{
    if (st->readonly)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "store is open read-only");
    if (!stream)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "no stream name");
    size_t len = strnlen(stream, RTLOG_STREAM_MAX);
    rtlog_kind kind;
    rtlog_err rc = rtlog_stream_parse(stream, len, &kind, NULL, NULL, ei);
    if (rc)
        return rc;
    if (len >= RTLOG_STREAM_MAX)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "stream name too long");
    st_req *r = calloc(1, sizeof *r);
    if (!r)
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
    memcpy(r->stream, stream, len);
    r->stream_len = len;
    r->kind = kind;
    *out = r;
    return RTLOG_OK;
}

static void req_free(st_req *r)
{
    rtlog_buf_free(&r->vals);
    free(r->ent);
    free(r);
}

/* Same contract as the public function, with an errinfo for the synchronous caller. */
static rtlog_err append_async(rtlog_store *st, const rtlog_append_req *req, rtlog_append_cb cb,
                              void *ctx, rtlog_errinfo *ei)
{
    if (!st || !req || !cb)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "missing argument");
    if (req->n && !req->recs)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "records missing");
    for (size_t i = 0; i < req->n; i++) {
        const rtlog_rec *rec = &req->recs[i];
        if (!rec->mp || !rec->mp_len || !rec->json || rec->json_len < 2 || rec->json[0] != '{' ||
            rec->json[rec->json_len - 1] != '}')
            return rtlog_errinfo_set(ei, RTLOG_E_INVAL, (long)i, NULL,
                                     "record has no stored form or no JSON object");
    }
    st_req *r;
    rtlog_err rc = req_new(st, req->stream, &r, ei);
    if (rc)
        return rc;
    r->op = OP_APPEND;
    r->recs = req->recs;
    r->n = req->n;
    r->expected = req->expected_seq;
    r->has_expected = req->has_expected != 0;
    r->cb = cb;
    r->ctx = ctx;
    for (size_t i = 0; i + 1 < req->n; i++)
        if (req->recs[i].flags & RTLOG_REC_SEALS) {
            r->bad_seal = i + 2;
            break;
        }
    if (!r->bad_seal && (rc = st_encode_request(st, r, ei))) {
        req_free(r);
        return rc;
    }
    if ((rc = enqueue(st, r, ei)))
        req_free(r);
    return rc;
}

rtlog_err rtlog_store_append_async(rtlog_store *st, const rtlog_append_req *req, rtlog_append_cb cb,
                                   void *ctx)
{
    return append_async(st, req, cb, ctx, NULL);
}

/* A synchronous caller waits on its own condvar, signalled by the completion. */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    rtlog_err rc;
    rtlog_append_res res;
    rtlog_errinfo ei;
} waiter;

static void wake(void *ctx, rtlog_err rc, const rtlog_append_res *res, const rtlog_errinfo *ei)
{
    waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    if (res)
        w->res = *res;
    if (ei)
        w->ei = *ei;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static rtlog_err wait_for(waiter *w, rtlog_append_res *res, rtlog_errinfo *ei)
{
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    if (res)
        *res = w->res;
    if (w->rc && ei)
        *ei = w->ei;
    return w->rc;
}

rtlog_err rtlog_store_append(rtlog_store *st, const rtlog_append_req *req, rtlog_append_res *res,
                             rtlog_errinfo *ei)
{
    waiter w = {.done = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    rtlog_err rc = append_async(st, req, wake, &w, ei);
    if (rc) {
        pthread_mutex_destroy(&w.mu);
        pthread_cond_destroy(&w.cv);
        return rc;
    }
    return wait_for(&w, res, ei);
}

rtlog_err rtlog_store_trim(rtlog_store *st, const char *stream, uint64_t before_seq,
                           rtlog_trim_res *res, rtlog_errinfo *ei)
{
    if (!st)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "missing argument");
    st_req *r;
    rtlog_err rc = req_new(st, stream, &r, ei);
    if (rc)
        return rc;
    rtlog_trim_res out = {0};
    waiter w = {.done = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    r->op = OP_TRIM;
    r->before = before_seq;
    r->trim_out = &out;
    r->cb = wake;
    r->ctx = &w;
    if ((rc = enqueue(st, r, ei))) {
        req_free(r);
        pthread_mutex_destroy(&w.mu);
        pthread_cond_destroy(&w.cv);
        return rc;
    }
    rc = wait_for(&w, NULL, ei);
    if (res) /* a failed txn may have filled @out before it was rolled back */
        *res = rc ? (rtlog_trim_res){0, 0} : out;
    return rc;
}

rtlog_err rtlog_store_seal(rtlog_store *st, const char *stream, rtlog_errinfo *ei)
{
    if (!st)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "missing argument");
    st_req *r;
    rtlog_err rc = req_new(st, stream, &r, ei);
    if (rc)
        return rc;
    waiter w = {.done = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    r->op = OP_SEAL;
    r->cb = wake;
    r->ctx = &w;
    if ((rc = enqueue(st, r, ei))) {
        req_free(r);
        pthread_mutex_destroy(&w.mu);
        pthread_cond_destroy(&w.cv);
        return rc;
    }
    return wait_for(&w, NULL, ei);
}
