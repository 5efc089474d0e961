/* store_int.h - what the files of storage/ share; no other module includes it.
 *
 * On-disk layout (one LMDB environment per data directory, DESIGN.md "Storage layout"):
 *   streams: canonical stream name -> st_meta, fixed-size big-endian record (META_SIZE bytes,
 *            or META_MAX once retention trimmed the stream: codec.c)
 *   events:  stream id (u64 BE) || seq (u64 BE) -> one "entry" holding 1..256 events; the key's
 *            seq is the LAST seq of the entry, so MDB_SET_RANGE(id, s) lands on the entry that
 *            holds s (blocks never overlap and are contiguous).
 *   meta:    "format" -> u32 BE (ST_FORMAT), "next_id" -> u64 BE (next stream id).
 * Entry value, first byte = VAL_VERSION << 4 | codec:
 *   CODEC_RAW   [b0][hash8][msgpack record]
 *   CODEC_ZSTD  [b0][hash8][zstd frame of the msgpack record]
 *   CODEC_BLOCK [b0][varint k][k x hash8][zstd frame of k x (varint len, msgpack record)]
 * Why blocks: measured on the real CI runs, one record compressed alone keeps ~60% of its
 * NDJSON size (~39% with a dictionary trained on the store's first 1 MiB), blocks of
 * consecutive records ~9-11% (tools/bench/RESULTS.md "Storage"). Blocks of up to 256 events /
 * 256 KiB rather than 64 / 64 KiB because LMDB stores such values on whole overflow pages:
 * bigger blocks waste less of their last page (data.mdb 13% of the NDJSON instead of 23%).
 * Live appends of single events are stored one per entry (the "tail") and the writer packs
 * the tail into blocks once it holds 256 events or 256 KiB, or when the stream is sealed;
 * batches of >= 8 events arrive already packed by the caller.
 */
#ifndef RTLOG_STORE_INT_H
#define RTLOG_STORE_INT_H

#include <lmdb.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <zstd.h>

#include "rtlog_buf.h"
#include "rtlog_store.h"

#define ST_FORMAT   1u /* meta "format"; refuse to open anything newer */
#define VAL_VERSION 1u /* high nibble of an entry's first byte */
#define CODEC_RAW   0u
#define CODEC_ZSTD  1u
#define CODEC_BLOCK 2u

#define BLOCK_MAX_EVENTS 256u           /* events per block */
#define BLOCK_MAX_RAW    (256u * 1024u) /* msgpack bytes per block */
#define BLOCK_MIN_EVENTS 8u             /* a caller's chunk smaller than this goes to the tail */
#define BIG_RECORD       (16u * 1024u)  /* a record larger than this is never put in a block */
#define SINGLE_ZSTD_MIN  1024u          /* a single record this large is compressed alone */
#define ZSTD_LEVEL       1              /* blocks: level 1 and 3 differ by < 1% on the real runs */
#define RECORD_MAX       (256u * 1024u * 1024u) /* sanity cap on a stored size read back */
#define TXN_VALUE_BYTES  (64u * 1024u * 1024u)  /* writer: value bytes per write txn */
#define KEY_SIZE         16u
#define META_SIZE        160u /* metadata version 1 */
#define META_MAX         192u /* metadata version 2: + base hash (codec.c) */
#define ST_MAX_READERS   256u  /* LMDB reader slots (store.c explains the number) */
#define READER_SWEEP_MS  1000u /* writer: clear crashed readers' slots at most this often */

/* Stream metadata as stored in `streams` (decoded). */
typedef struct st_meta {
    uint64_t id;           /* numeric stream id, prefix of its event keys */
    uint64_t created_ms;   /* Unix ms */
    uint64_t first_seq;    /* earliest retained seq: 1 until trimmed (trim.c) */
    uint64_t last_seq;     /* 0 = empty */
    uint64_t count;        /* events */
    uint64_t stored_bytes; /* sum of entry value sizes */
    uint64_t raw_bytes;    /* sum of canonical JSON line sizes (with seq) */
    uint64_t snapshot_seq; /* last RTLOG_REC_SNAPSHOT event, 0 = none */
    uint64_t tail_first;   /* first seq of the trailing single entries (0 = none) */
    uint64_t tail_count;   /* number of trailing single entries */
    uint64_t tail_bytes;   /* msgpack bytes in them */
    uint8_t kind;          /* rtlog_kind */
    uint8_t sealed;
    char status[32];  /* NUL-terminated final status */
    uint8_t head[32]; /* h(last_seq) */
    uint8_t base[32]; /* h(first_seq - 1): where the retained chain starts; zeros at 1 */
} st_meta;

/* A reader context: a reset read txn with its cursor, a decompression context and a buffer.
 * Pooled so a read call costs no malloc and no reader-slot search once warm. */
typedef struct st_reader {
    struct st_reader *next;
    MDB_txn *txn;    /* reset while pooled; NULL until first use */
    MDB_cursor *cur; /* on `events`, renewed with the txn */
    ZSTD_DCtx *dctx;
    rtlog_buf buf; /* decompressed block or record */
    /* buf holds the payload of the block at (cache_id, cache_key) when cache_ok: a reader
     * that goes through a block one call at a time decompresses it once. */
    uint64_t cache_id, cache_key;
    int cache_ok;
} st_reader;

/* A compression context for callers' threads (append_async packs batches in the caller). */
typedef struct st_cctx {
    struct st_cctx *next;
    ZSTD_CCtx *cctx;
    rtlog_buf scratch; /* a block's uncompressed payload */
} st_cctx;

/* One value to put for a request: @k events starting at record index @first_rec. */
typedef struct st_entry {
    size_t off, len;   /* bytes in the request's value buffer */
    size_t first_rec;  /* index into recs */
    uint32_t k;        /* events in this entry; 1 = single */
    uint32_t hash_off; /* offset of the first hash8 slot inside the value */
    uint64_t mp_bytes; /* msgpack bytes of its records */
} st_entry;

enum { OP_APPEND = 1, OP_SEAL, OP_TRIM };

/* One queued append (or seal). Owned by the queue, then by the writer, freed after its
 * completion ran. */
typedef struct st_req {
    struct st_req *next;
    int op;
    char stream[RTLOG_STREAM_MAX];
    size_t stream_len;
    rtlog_kind kind;
    const rtlog_rec *recs; /* borrowed from the caller until the completion runs */
    size_t n;
    uint64_t expected;
    int has_expected;
    size_t bad_seal; /* 0, or 1 + index of a record that follows the sealing record */
    uint64_t before;          /* OP_TRIM: remove seqs below this */
    rtlog_trim_res *trim_out; /* OP_TRIM: filled by the writer before the completion runs;
                               * borrowed from the waiting caller */
    rtlog_append_cb cb;
    void *ctx;
    rtlog_buf vals; /* encoded entries back to back (hash slots zero) */
    st_entry *ent;  /* nent entries */
    size_t nent;
    uint64_t value_bytes;
    /* result, filled by the writer */
    rtlog_err rc;
    rtlog_append_res res;
    rtlog_errinfo ei;
    int touched; /* the stream changed in the committed txn */
} st_req;

/* The writer's view of one stream during a write txn (cached so a stream touched by many
 * batches in one txn is read and written once). */
typedef struct st_wstream {
    char name[RTLOG_STREAM_MAX];
    size_t len;
    uint32_t hash;
    int used, exists, dirty, touched;
    st_meta m;
} st_wstream;

struct rtlog_store {
    MDB_env *env;
    MDB_dbi dbi_streams, dbi_events, dbi_meta;
    int readonly, nosync;
    char dir[4096];  /* data directory, for statvfs when a commit fails */
    size_t map_size; /* current map size (writer's view) */
    size_t map_max;  /* 0 = no limit */
    unsigned max_batch;

    /* Readers hold this shared for the length of one read txn; the writer holds it shared
     * for the length of its write txn. mdb_env_set_mapsize (growing the map, or adopting a
     * size another process set) needs no txn of this process alive, so it takes it
     * exclusive. Writer-preferring, so a resize is not starved by a stream of reads. */
    pthread_rwlock_t gate;

    /* queue to the writer */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    st_req *qhead, **qtail;
    int stopping, writer_waiting, writer_started;
    /* writer thread only: CLOCK_MONOTONIC ms of the last stale-reader sweep (writer.c) */
    uint64_t reader_sweep_ms;
    pthread_t writer;
    rtlog_commit_cb on_commit;
    void *on_commit_ctx;

    /* pools */
    pthread_mutex_t pool_mu;
    st_reader *readers;
    st_cctx *cctxs;

    /* writer-owned state (only the writer thread touches these after open) */
    ZSTD_CCtx *wcctx;
    ZSTD_DCtx *wdctx;
    EVP_MD *sha256;
    EVP_MD_CTX *mdctx;
    rtlog_buf wraw;          /* compaction: raw records of the tail */
    rtlog_buf wdec;          /* compaction: one decompressed tail entry */
    rtlog_buf wscratch;      /* compaction: a block's uncompressed payload */
    rtlog_buf wblk;          /* compaction: a block value */
    rtlog_buf wline;         /* trim: one removed event's JSON line */
    struct st_titem *titems; /* compaction: the tail's entries */
    size_t titems_cap;
    st_req **group; /* the requests taken for the current group commit */
    size_t group_cap;
    uint32_t *wslots; /* hash slots into wtab (index + 1; 0 = empty) */
    size_t wtab_n;    /* streams in wtab */
    st_wstream *wtab; /* streams touched in the current txn (wtab_n used, wtab_cap allocated) */
    size_t wtab_cap, wslots_cap;
    rtlog_commit_note *notes;
    size_t notes_cap;
    uint64_t next_id; /* valid inside a write txn once next_id_loaded */
    int next_id_loaded, next_id_dirty;

    /* stats */
    pthread_mutex_t stats_mu;
    rtlog_store_stats stats;
};

/* ---- byte helpers (values in the map are unaligned: always memcpy) ---------------------- */

static inline void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xffu);
        v >>= 8;
    }
}

static inline uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static inline void key_encode(uint8_t k[KEY_SIZE], uint64_t id, uint64_t seq)
{
    put_be64(k, id);
    put_be64(k + 8, seq);
}

/* LEB128 varint; returns bytes written (at most 10). */
static inline size_t varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80u) {
        p[n++] = (uint8_t)(v | 0x80u);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Returns bytes read, 0 when truncated or longer than 10 bytes. */
static inline size_t varint_get(const uint8_t *p, size_t avail, uint64_t *v)
{
    uint64_t r = 0;
    for (size_t i = 0; i < avail && i < 10; i++) {
        r |= (uint64_t)(p[i] & 0x7fu) << (7 * i);
        if (!(p[i] & 0x80u)) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

/* ---- shared functions (codec.c, store.c) ----------------------------------------------- */

/* Encode/decode stream metadata. encode returns the record's size (META_SIZE or META_MAX);
 * decode returns 0, or -1 if the bytes are not a record of a known version. */
size_t st_meta_encode(const st_meta *m, uint8_t out[META_MAX]);
int st_meta_decode(const void *p, size_t len, st_meta *m);
void st_meta_to_info(const char *name, size_t len, const st_meta *m, rtlog_stream_info *out);

/* Translate an LMDB/errno code into rtlog_err + text in @ei, once, where the call was made.
 * @what: which operation ("mdb_txn_commit"). Returns the rtlog_err. */
rtlog_err st_lmdb_err(rtlog_store *st, int rc, const char *what, rtlog_errinfo *ei);

/* A decoded entry: @k events with seqs key_seq-k+1 .. key_seq. For blocks, @payload is the
 * decompressed k x (varint len, record); for singles the record itself. */
typedef struct st_decoded {
    uint32_t codec;
    uint32_t k;
    const uint8_t *hashes; /* k x 8 bytes, inside the value */
    const uint8_t *payload;
    size_t payload_len;
} st_decoded;

/* Decode (and decompress into @buf when needed) one entry value. 0 or -1 (corrupt: @why set
 * to a static text) or -2 (out of memory). @reuse: @buf already holds this block's payload
 * (blocks never change once written), so only the header is decoded. */
int st_entry_decode(const void *val, size_t len, ZSTD_DCtx *dctx, rtlog_buf *buf, int reuse,
                    st_decoded *d, const char **why);

/* Walk the records of a decoded block: returns 0 and sets *mp and *mp_len, or -1 if corrupt.
 * @pos: in/out offset into d->payload. */
int st_block_next(const st_decoded *d, size_t *pos, const uint8_t **mp, size_t *mp_len);

/* Plan and encode a request's entries from its records (caller's thread), using a pooled
 * compression context. Fills req->vals, req->ent, req->nent, req->value_bytes. */
rtlog_err st_encode_request(rtlog_store *st, st_req *req, rtlog_errinfo *ei);

/* Encode one block value from @k records (@mps/@lens) into @out (appended): header, k zero
 * hash slots, compressed payload. @scratch holds the uncompressed payload. */
rtlog_err st_encode_block(ZSTD_CCtx *cctx, const uint8_t *const *mps, const size_t *lens, size_t k,
                          rtlog_buf *scratch, rtlog_buf *out, uint32_t *hash_off);

/* Pools; return NULL on allocation failure. */
st_cctx *st_cctx_get(rtlog_store *st);
void st_cctx_put(rtlog_store *st, st_cctx *c);
st_reader *st_reader_get(rtlog_store *st);
void st_reader_put(rtlog_store *st, st_reader *r);
void st_pools_free(rtlog_store *st);

/* Begin a read txn on @r (renewing its reset txn) with the gate held shared; handles
 * MDB_MAP_RESIZED by adopting the new map size. On success the gate is held; release with
 * st_read_end(). */
rtlog_err st_read_begin(rtlog_store *st, st_reader *r, rtlog_errinfo *ei);
void st_read_end(rtlog_store *st, st_reader *r);

/* Adopt a map size grown by another process (gate taken exclusive inside). */
int st_adopt_mapsize(rtlog_store *st);

/* trim.c: apply an OP_TRIM request to stream metadata @m inside the writer's @txn. Returns 0
 * when done (r->rc set on a refusal, nothing written then; *changed = 1 when @m changed and
 * must be stored) or an LMDB/errno code that must abort the txn. */
int st_trim_apply(rtlog_store *st, MDB_txn *txn, st_meta *m, st_req *r, int *changed);

/* writer.c */
int st_writer_start(rtlog_store *st);
void st_writer_stop(rtlog_store *st);

#endif
