/* rtlog_store.h - the durable stream log: the one narrow interface every backend implements.
 *
 * Operations: append a batch (atomic, gapless seqs, expectedSeq checked in the same write
 * transaction), read forward from any seq, seal, describe, list, and a wake-up hook called
 * after each durable commit. The embedded backend is LMDB (one environment per data
 * directory, group commit on a writer thread); a Redis Streams backend can implement the
 * same functions later. Knows nothing of the network.
 *
 * Threads: every function is safe to call from any thread, except where noted. Appends
 * from many threads are committed together (one write transaction, one fsync); an append
 * is reported only after its commit is durable. Reads open one short read transaction per
 * call and close it before returning: no snapshot outlives one call.
 * Source: CONTRACT.md "Streams and event ids", "Completion and sealing", "Ingest", "Tools".
 */
#ifndef RTLOG_STORE_H
#define RTLOG_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "rtlog_err.h"
#include "rtlog_schema.h"

typedef struct rtlog_store rtlog_store; /* opaque */

typedef struct rtlog_store_opts {
    const char *dir;      /* data directory, created if missing; borrowed for the call */
    size_t map_bytes;     /* initial LMDB map size in bytes; 0 = 64 MiB; grows by itself
                           * (doubling). An existing store keeps the larger map it grew to;
                           * this only raises it */
    size_t map_max_bytes; /* the map never grows past this; 0 = no limit but the disk */
    int readonly;         /* 1: a reader beside a running server (rtlog export/ls/stat/verify):
                           * no writer thread, appends fail with RTLOG_E_INVAL */
    int nosync;           /* 1: skip fsync (tests and benchmarks of the non-durable path
                           * only; never the default) */
    unsigned max_batch_events; /* group commit: at most this many events in one write txn;
                                * 0 = 65536 */
} rtlog_store_opts;

/**
 * rtlog_store_open() - open (or create) the store in @o->dir.
 * @out:   owned by the caller, close with rtlog_store_close().
 * Errors: RTLOG_E_IO (directory not creatable, LMDB open failed: @ei says which file and
 *         why), RTLOG_E_CORRUPT (not an rtlog store, or a newer format), RTLOG_E_NOMEM,
 *         RTLOG_E_NOTFOUND (readonly and there is no store in @o->dir; nothing is created),
 *         RTLOG_E_INVAL (this store is already open in this process: LMDB allows one open
 *         environment per process; share the handle instead).
 * A process may open a store read-only while another process writes it (and two processes
 * may both write: LMDB serialises their write txns). Never use a store across fork(): the
 * child opens its own.
 */
rtlog_err rtlog_store_open(const rtlog_store_opts *o, rtlog_store **out, rtlog_errinfo *ei);

/* Finish queued appends (each gets its completion), stop the writer, close the env.
 * NULL is a no-op. No other call on @st may be running or follow. */
void rtlog_store_close(rtlog_store *st);

/* ---- appending ---------------------------------------------------------------------------- */

typedef struct rtlog_append_req {
    const char *stream;      /* canonical stream name; copied */
    const rtlog_rec *recs;   /* validated records; borrowed until the completion runs
                              * (async) or the call returns (sync) */
    size_t n;                /* 0 = only create the stream (CONTRACT "empty batch") */
    uint64_t expected_seq;   /* used when has_expected: append only if last seq == this */
    int has_expected;
} rtlog_append_req;

typedef struct rtlog_append_res {
    uint64_t first_seq; /* seq of recs[0]; when n == 0: last_seq + 1 */
    uint64_t last_seq;  /* seq of recs[n-1]; when n == 0: the stream's current last seq */
    int sealed;         /* the stream is sealed after this append */
} rtlog_append_res;

/* Completion of an async append. Runs on the writer thread after the commit is durable
 * (or the batch was refused); must not block and must not call into @st. @res and @ei are
 * borrowed for the call. */
typedef void (*rtlog_append_cb)(void *ctx, rtlog_err rc, const rtlog_append_res *res,
                                const rtlog_errinfo *ei);

/**
 * rtlog_store_append_async() - queue a batch for the next group commit.
 * The batch is atomic: all of it is stored with seqs last+1..last+n, or none of it.
 * Returns RTLOG_OK when queued; @cb is then called exactly once. Any other return means
 * @cb will not be called: RTLOG_E_INVAL (readonly store, bad stream name),
 * RTLOG_E_NOMEM.
 * Errors given to @cb: RTLOG_E_SEALED (stream sealed, or a record after the sealing record
 *         in the same batch: @ei->event_index names that record), RTLOG_E_CONFLICT
 *         (expected_seq differs: @ei->text has the current last seq and res->last_seq holds
 *         it; a stream that does not exist is at 0 and is not created), RTLOG_E_FULL (map at
 *         map_max_bytes or disk full: nothing written, later appends may succeed; @ei->text
 *         is "storage full: map limit 2 MiB reached" or "storage full: no space left on
 *         device"), RTLOG_E_TOOBIG (one batch too large for one LMDB write txn),
 *         RTLOG_E_CORRUPT (this stream's stored state is damaged), RTLOG_E_IO, RTLOG_E_NOMEM.
 * An empty batch (n == 0) on an existing stream, sealed or not, changes nothing and succeeds
 * (res->sealed tells). A refused batch changes nothing, also not other batches committed in
 * the same write txn. @ei given to @cb is never NULL (zeroed on success).
 */
rtlog_err rtlog_store_append_async(rtlog_store *st, const rtlog_append_req *req,
                                   rtlog_append_cb cb, void *ctx);

/**
 * rtlog_store_append() - the same, waiting for the durable commit. Same errors, returned.
 * @res: out, may be NULL. Context: any thread except the completion callbacks.
 */
rtlog_err rtlog_store_append(rtlog_store *st, const rtlog_append_req *req, rtlog_append_res *res,
                             rtlog_errinfo *ei);

/**
 * rtlog_store_seal() - seal a stream without an event (admin / tests). Later appends get
 * RTLOG_E_SEALED. Errors: RTLOG_E_NOTFOUND, RTLOG_E_IO, RTLOG_E_INVAL (readonly store, bad
 * name). Sealing twice is not an error. Waits for the durable commit like append.
 */
rtlog_err rtlog_store_seal(rtlog_store *st, const char *stream, rtlog_errinfo *ei);

/* What a trim did. */
typedef struct rtlog_trim_res {
    uint64_t first_seq; /* earliest retained seq after the call */
    uint64_t removed;   /* events this call removed (0: nothing was due) */
} rtlog_trim_res;

/**
 * rtlog_store_trim() - retention: remove the oldest events of @stream, those with
 * seq < @before_seq, so the stream cannot grow without bound.
 * What goes: a prefix of the stream, never an event with seq >= @before_seq, never the
 * stream's latest RTLOG_REC_SNAPSHOT event (snapshot_seq; a new dashboard subscriber
 * starts there) nor anything after it, never more than up to last_seq (first_seq becomes
 * at most last_seq + 1). A backend may keep more than asked: the LMDB backend removes whole
 * stored entries only (a block of up to 256 events goes when its last event is before
 * @before_seq), so up to 255 events below @before_seq can stay; a Redis Streams backend
 * maps this to XTRIM MINID. Seqs are never reused: appends continue at last_seq + 1.
 * Hash chain: the store keeps base_hash = h(first_seq - 1) (rtlog_stream_info), recomputed
 * from the removed events, each checked against its stored hash first: the retained events
 * stay verifiable from it, and a removed event that does not match its hash makes the trim
 * fail (RTLOG_E_CORRUPT naming the seq) and removes nothing, so tampering is not erased.
 * @res: out (may be NULL). @before_seq <= first_seq is not an error: nothing is removed.
 * Errors: RTLOG_E_NOTFOUND (never created), RTLOG_E_CORRUPT, RTLOG_E_INVAL (readonly store,
 *         bad name), RTLOG_E_FULL, RTLOG_E_IO, RTLOG_E_NOMEM. On any error nothing changed.
 * Runs in the writer thread's next write txn, like an append, and returns once the commit
 * is durable: call it from a thread that may wait for an fsync (not an event loop), never
 * from a completion callback. Subscribers get no commit note (last_seq does not move);
 * a subscriber whose cursor falls before the new first_seq sees a gap on its next read,
 * which replay turns into a `reset` (CONTRACT "Resuming").
 * Source: CONTRACT.md "Resuming" (older than retained history); README "Dashboard retention".
 */
rtlog_err rtlog_store_trim(rtlog_store *st, const char *stream, uint64_t before_seq,
                           rtlog_trim_res *res, rtlog_errinfo *ei);

/* One stream touched by a commit: what a subscriber needs to know to wake up. */
typedef struct rtlog_commit_note {
    const char *stream; /* borrowed for the call */
    uint64_t last_seq;  /* the stream's last seq after the commit */
    int sealed;
} rtlog_commit_note;

/* Called on the writer thread after every durable commit that changed streams, once per
 * commit with every touched stream. Must not block or call into @st (server: queue a note
 * and lws_cancel_service()). */
typedef void (*rtlog_commit_cb)(void *ctx, const rtlog_commit_note *notes, size_t n);

/* Install the wake-up hook (NULL to remove). Call before appending begins. */
void rtlog_store_on_commit(rtlog_store *st, rtlog_commit_cb cb, void *ctx);

/* ---- reading ------------------------------------------------------------------------------ */

/* One stored event handed to a reader. */
typedef struct rtlog_event_view {
    uint64_t seq;
    const void *mp;     /* stored form (msgpack), decompressed; borrowed until the callback
                         * returns */
    size_t mp_len;      /* bytes */
    uint8_t hash8[8];   /* first 8 bytes of the chain hash h(seq) stored with the event */
} rtlog_event_view;

/* Return 0 to continue, non-zero to stop the read early (that value is not an error; the
 * event just passed counts as read: next_seq is after it). Runs inside the read txn, so it
 * must be short, must not block on the network and must not call into the store. */
typedef int (*rtlog_read_cb)(void *ctx, const rtlog_event_view *ev);

/**
 * rtlog_store_read() - call @cb for events of @stream with seq >= @from_seq, in order,
 * stopping after @max_events (0 = no limit) or once @max_bytes of records were passed
 * (0 = no limit; at least one event is always passed).
 * One read transaction, opened and closed inside this call; long reads (export) call this
 * repeatedly in bounded chunks so no snapshot is pinned for long.
 * @next_seq: out (may be NULL), the seq to continue from.
 * @from_seq 0 means 1; a @from_seq before the stream's first retained seq (retention,
 * rtlog_store_trim) starts there: the first event passed then has a larger seq than asked,
 * which a caller resuming a cursor must treat as a gap (replay sends a reset). Seqs are
 * checked to be gapless as they are read.
 * Errors: RTLOG_E_NOTFOUND (stream never created), RTLOG_E_CORRUPT (a record fails its
 *         checks: @ei names the seq), RTLOG_E_NOMEM, RTLOG_E_IO.
 */
rtlog_err rtlog_store_read(rtlog_store *st, const char *stream, uint64_t from_seq,
                           size_t max_events, size_t max_bytes, rtlog_read_cb cb, void *ctx,
                           uint64_t *next_seq, rtlog_errinfo *ei);

typedef struct rtlog_stream_info {
    char stream[RTLOG_STREAM_MAX]; /* canonical name */
    rtlog_kind kind;
    uint64_t created_ms;    /* Unix ms of creation */
    uint64_t first_seq;     /* earliest retained seq: 1 until rtlog_store_trim() removed the
                             * events before it; last_seq + 1 when all were removed */
    uint64_t last_seq;      /* 0 = empty */
    uint64_t event_count;
    uint64_t stored_bytes;  /* bytes of stored values (compressed records and headers) */
    uint64_t raw_bytes;     /* bytes of the canonical JSON lines (with seq) */
    uint64_t snapshot_seq;  /* last RTLOG_REC_SNAPSHOT event (dashboard), 0 = none */
    int sealed;
    char final_status[32];  /* status of the sealing event, "" if none */
    uint8_t head_hash[32];  /* h(last_seq); 32 zero bytes for an empty stream */
    uint8_t base_hash[32];  /* h(first_seq - 1): the chain of the retained events starts
                             * from it; 32 zero bytes (h0) while first_seq is 1 */
} rtlog_stream_info;

/**
 * rtlog_store_describe() - metadata of one stream. Errors: RTLOG_E_NOTFOUND, RTLOG_E_IO.
 */
rtlog_err rtlog_store_describe(rtlog_store *st, const char *stream, rtlog_stream_info *out,
                               rtlog_errinfo *ei);

/* Return 0 to continue, non-zero to stop. */
typedef int (*rtlog_list_cb)(void *ctx, const rtlog_stream_info *info);

/**
 * rtlog_store_list() - every stream, sorted by name, each with its metadata.
 * Reads in bounded chunks (no long snapshot). Errors: RTLOG_E_IO.
 */
rtlog_err rtlog_store_list(rtlog_store *st, rtlog_list_cb cb, void *ctx, rtlog_errinfo *ei);

/**
 * rtlog_store_generation() - a number that changes whenever any process commits to the
 * store: the LMDB environment's last committed write transaction id (mdb_env_info()
 * me_last_txnid), read from the shared meta page with no transaction.
 * Use: the on_commit hook reports this process's commits only; a caller that must also
 * notice appends by another process (`rtlog import` beside `rtlog serve`) polls this
 * cheaply and, when it moved, describes the streams it cares about. Equal values mean no
 * commit happened in between (by anyone); a larger one says only that something was
 * committed, not which streams. Returns 0 if the environment cannot be queried.
 * Context: any thread; waits only while this process is growing the map.
 * Source: DESIGN.md "One event's way through" (notify); README "Known limits".
 */
uint64_t rtlog_store_generation(rtlog_store *st);

/* Process-wide counters for /metrics and benchmarks. */
typedef struct rtlog_store_stats {
    uint64_t commits;         /* durable write transactions */
    uint64_t batches;         /* append requests committed */
    uint64_t events;          /* events committed */
    uint64_t failed_commits;  /* commits that failed (full disk etc.) */
    uint64_t map_bytes;       /* current map size */
    int full;                 /* 1 while the last commit failed for lack of space */
} rtlog_store_stats;
void rtlog_store_get_stats(rtlog_store *st, rtlog_store_stats *out);

#endif
