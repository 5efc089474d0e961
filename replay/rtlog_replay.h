/* rtlog_replay.h - catch-up then live delivery of one stream to many subscribers.
 *
 * Transport-agnostic: knows the store and the frame formats (SSE text, WebSocket JSON
 * message) but nothing of sockets or lws. A subscriber is a cursor (the last seq handed
 * out), a filter, a format and a follow flag; catching up and following live are the same
 * step ("deliver the events after the cursor that are committed"), so there is no hand-over
 * between history and live in which an event could be lost or repeated.
 *
 * Memory: per stream with subscribers, a bounded ring of recently rendered frames (so the
 * live fan-out of an event renders it once for every subscriber); per engine, a bounded
 * block cache of rendered segments far behind the head (so readers catching up the same
 * backlog render it once between them); per subscriber, a small constant struct however
 * far behind it is. A subscriber that is not filled (a slow socket)
 * simply stops advancing its cursor; nothing is queued for it.
 *
 * Threads: one engine per server, used from one thread only (the lws service thread).
 * Reads go through rtlog_store_read(): one short read transaction per chunk, none survives
 * a fill call (DESIGN.md invariant 3).
 * Source: CONTRACT.md "Resuming (catch-up, then live)", "Completion and sealing",
 *         "Errors and limits" (slow consumers); DESIGN.md "Frames encoded once",
 *         "Back-pressure without loss".
 */
#ifndef RTLOG_REPLAY_H
#define RTLOG_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "rtlog_buf.h"
#include "rtlog_err.h"
#include "rtlog_store.h"

typedef struct rtlog_replay rtlog_replay;         /* opaque: the engine */
typedef struct rtlog_replay_sub rtlog_replay_sub; /* opaque: one subscriber */

/* How frames are written for a subscriber. */
typedef enum rtlog_replay_fmt {
    RTLOG_REPLAY_SSE = 1, /* "id: N\nevent: TYPE\ndata: JSON\n\n"; control messages have no id */
    RTLOG_REPLAY_WS,      /* the JSON text; one frame = one WebSocket message */
    RTLOG_REPLAY_WS_FRAMED, /* the JSON text behind its RFC 6455 5.2 server frame header
                             * (FIN, text opcode, unmasked, 2/4/10-byte length): frames
                             * can be filled back to back and written raw, many messages
                             * in one send() for a subscriber that is behind */
} rtlog_replay_fmt;

/* What a fill call says about the subscriber after it returns. */
typedef enum rtlog_replay_state {
    RTLOG_REPLAY_MORE = 1, /* more is ready now: write what was filled, call again when
                            * the socket is writable */
    RTLOG_REPLAY_IDLE,     /* at the head: write what was filled, then wait for the wake
                            * callback (a commit, or the stream being sealed) */
    RTLOG_REPLAY_END,      /* nothing more will ever come (sealed stream fully delivered,
                            * or follow = 0 and caught up): write what was filled, then end
                            * the stream (WS close 1000, SSE end of response) */
} rtlog_replay_state;

/* Called (on the engine's thread, from inside rtlog_replay_notify) for a subscriber that was
 * IDLE and now has work; the transport arranges a fill (lws_callback_on_writable). @sub and
 * @user are borrowed. Must not close @sub or call rtlog_replay_notify. */
typedef void (*rtlog_replay_wake_cb)(void *ctx, rtlog_replay_sub *sub, void *user);

typedef struct rtlog_replay_opts {
    rtlog_store *store;        /* borrowed; must outlive the engine */
    rtlog_replay_wake_cb wake; /* may be NULL (then subscribers are polled by the caller) */
    void *wake_ctx;            /* passed to @wake */
    size_t ring_frames;        /* rendered frames kept per followed stream; 0 = 1024 */
    size_t ring_bytes;         /* bytes of rendered JSON kept per stream; 0 = 4 MiB */
    size_t chunk_events;       /* events per store read when catching up; 0 = 256 */
    size_t chunk_bytes;        /* record bytes per store read; 0 = 256 KiB */
    /* The block cache: rendered frames of stored events far behind the head, in segments of
     * @chunk_events events aligned on seq (1..256, 257..512, ...), kept for every subscriber
     * of the stream that passes the same position (many readers catching up the same
     * backlog render and decompress each event once, not once each). Bounded: at most
     * @cache_bytes in all (segments, their index and bookkeeping), least recently used
     * first out; a segment is freed with its stream's last subscriber. 0 = 32 MiB. A
     * subscriber gets the same bytes, in the same order and with the same budgets, as
     * without the cache; retention is honoured (the stream's first retained seq is re-read
     * whenever rtlog_store_generation() moved, and a cursor before it takes the store path,
     * which sends the reset). */
    size_t cache_bytes;
    int cache_off;             /* 1: no block cache (every far-behind read renders) */
} rtlog_replay_opts;

/**
 * rtlog_replay_new() - make an engine over an open store.
 * @o:     options; borrowed for the call (the store pointer is kept, see above).
 * @out:   owned by the caller; free with rtlog_replay_free() after closing every subscriber.
 * Errors: RTLOG_E_INVAL (no store), RTLOG_E_NOMEM.
 * Context: the thread that will use the engine.
 */
rtlog_err rtlog_replay_new(const rtlog_replay_opts *o, rtlog_replay **out);

/* Free the engine and any subscriber still open (their handles become invalid).
 * NULL is a no-op. */
void rtlog_replay_free(rtlog_replay *e);

/* What a subscriber asks for. */
typedef struct rtlog_replay_req {
    const char *stream;     /* canonical stream name (see rtlog_stream_parse); copied */
    int has_cursor;         /* 1: @cursor is the last seq the client has seen */
    uint64_t cursor;        /* deliver seq > cursor; 0 = from the first event */
    const char *node_id;    /* NULL or "": every event; else only events whose top-level
                             * "nodeId" string equals it; copied */
    const char *types;      /* NULL or "": every type; else a comma-separated list of event
                             * types ("step_log,step_completed"); copied */
    int follow;             /* 1: continue live after catching up; 0: end when caught up
                             * with what was stored when the subscriber opened */
    rtlog_replay_fmt fmt;
    void *user;             /* handed back to the wake callback; borrowed */
    /* Personal frames (an agent's own task assignments, with its credentials opened): for
     * events whose type equals @personal_type, @personal is asked first; it may append the
     * event's JSON for this subscriber (with "seq":N last, one line) to @out and set
     * *used = 1, or leave @out alone and *used = 0 to send the shared (redacted) frame.
     * Personal frames are never kept in the ring. @mp/@mp_len: the stored record, borrowed
     * for the call; @user: the subscriber's @user. Runs inside a store read callback: no
     * blocking and no store reads (queueing an rtlog_store_append_async() is fine: it only
     * queues). A non-OK return ends the fill with that error. */
    rtlog_err (*personal)(void *ctx, void *user, uint64_t seq, const void *mp, size_t mp_len,
                          rtlog_buf *out, int *used);
    void *personal_ctx;
    const char *personal_type; /* copied; NULL = no personal frames */
} rtlog_replay_req;

/**
 * rtlog_replay_open() - subscribe to a stream.
 * Start:  with a cursor, the first event delivered is cursor + 1. A cursor the stream
 *         cannot honour (beyond its head, e.g. after a restore, or older than retained
 *         history) is not an error: the first frame is the control message
 *         {"type":"reset","earliestSeq":F,"lastSeq":L} (SSE: `event: reset`, no id line),
 *         then delivery starts at F. Without a cursor delivery starts at the first retained
 *         seq (1 until retention trims the stream), except for "dashboard", which starts at
 *         its latest metric_update (the stream's snapshot) or, when it has none, with the
 *         next live event. A subscriber that retention overtakes later (rtlog_store_trim
 *         removed events after its cursor) gets the same reset, with F = the first event
 *         still there, before that event: never a silent gap.
 * @out:   owned by the caller; close with rtlog_replay_close().
 * Errors: RTLOG_E_NOTFOUND (stream never created), RTLOG_E_INVAL (bad request: no stream,
 *         bad format, empty type in @types), RTLOG_E_NOMEM, RTLOG_E_IO / RTLOG_E_CORRUPT
 *         (describing the stream failed). @ei (may be NULL) gets the text.
 * Context: the engine's thread; one short read transaction (rtlog_store_describe).
 * Source:  CONTRACT.md "Resuming (catch-up, then live)".
 */
rtlog_err rtlog_replay_open(rtlog_replay *e, const rtlog_replay_req *req, rtlog_replay_sub **out,
                            rtlog_errinfo *ei);

/**
 * rtlog_replay_fill() - append the subscriber's next frames to @out.
 * @out:        appended to (never cleared); its old contents are left alone.
 * @max_bytes:  stop before appending a frame that would take the appended part past this
 *              many bytes; 0 = no limit. A single frame larger than @max_bytes is still
 *              appended when nothing else was, so a big event never blocks a stream.
 * @max_frames: at most this many frames (events and control messages); 0 = no limit.
 *              WebSocket transports pass 1 (one message per write).
 * @state:      out: MORE, IDLE or END (see rtlog_replay_state).
 * @nframes:    out (may be NULL): frames appended.
 * Events the filter rejects advance the cursor without output. Frames come from the
 * stream's ring when there, else (far behind the head) from the block cache, whose
 * segments are one bounded store read each, else from one bounded store read (rendered
 * with rtlog_schema_render(..., seq, RTLOG_JSON_REDACT), kept in the ring when near the
 * head). Which of these served an event changes neither the bytes nor the budgets.
 * Errors:      RTLOG_E_NOMEM, RTLOG_E_IO, RTLOG_E_CORRUPT (a stored record could not be
 *              read or rendered; @ei names the seq), RTLOG_E_NOTFOUND (the stream vanished).
 *              On error @out keeps what was appended before the failing frame and the
 *              cursor stays at the last frame appended; the transport should end the stream
 *              with internal_error (the client resumes from its cursor).
 * Context:     the engine's thread. Never blocks beyond one short read transaction per
 *              chunk; no read transaction survives the call.
 */
rtlog_err rtlog_replay_fill(rtlog_replay_sub *s, rtlog_buf *out, size_t max_bytes,
                            size_t max_frames, rtlog_replay_state *state, size_t *nframes,
                            rtlog_errinfo *ei);

/**
 * rtlog_replay_notify() - a commit made @stream end at @last_seq (and maybe sealed it).
 * Updates the stream's state (monotonic: an older note never moves it back) and calls the
 * wake callback once for each subscriber that was IDLE and now has work. Notes for streams
 * nobody follows cost one hash lookup. @stream: borrowed for the call.
 * Context: the engine's thread (the server drains the writer thread's notes there).
 */
void rtlog_replay_notify(rtlog_replay *e, const char *stream, uint64_t last_seq, int sealed);

/**
 * rtlog_replay_refresh() - re-read the head of every stream that has subscribers and wake
 * the subscribers that now have work, as rtlog_replay_notify() would.
 * For commits that send no notes: appends by another process (`rtlog import` beside the
 * server), which the store's commit hook never reports. The caller polls
 * rtlog_store_generation() and calls this when it changed; a head the engine already has
 * changes nothing, so calling it after the process's own commits is harmless.
 * Cost: one short read transaction (rtlog_store_describe) per followed stream.
 * Errors: the first describe failure (RTLOG_E_IO, RTLOG_E_CORRUPT, RTLOG_E_NOTFOUND), with
 *         @ei (may be NULL) naming it; the other streams are still refreshed.
 * Context: the engine's thread.
 * Source:  README "Known limits" (appends by other processes).
 */
rtlog_err rtlog_replay_refresh(rtlog_replay *e, rtlog_errinfo *ei);

/* Unsubscribe and free @s; NULL is a no-op. The stream's ring is freed with its last
 * subscriber. */
void rtlog_replay_close(rtlog_replay_sub *s);

/* The last seq handed out to @s (0 = none yet): what a client would resume from. */
uint64_t rtlog_replay_cursor(const rtlog_replay_sub *s);

/* The stream name @s follows; borrowed, valid until rtlog_replay_close(). */
const char *rtlog_replay_stream(const rtlog_replay_sub *s);

/* Counters for /metrics and tests. */
typedef struct rtlog_replay_stats {
    uint64_t subscribers;      /* open now */
    uint64_t streams;          /* streams with at least one subscriber now */
    uint64_t ring_frames;      /* frames held in rings now */
    uint64_t ring_bytes;       /* bytes held in rings now */
    uint64_t ring_hits;        /* frames taken from a ring (total) */
    uint64_t ring_misses;      /* store reads made because the ring did not hold the next
                                * event (total) */
    uint64_t frames_rendered;  /* events rendered to JSON (total) */
    uint64_t frames_delivered; /* event frames appended by fill (total; no control msgs) */
    uint64_t resets;           /* reset control messages sent (total) */
    uint64_t refreshes;        /* rtlog_replay_refresh() calls (total) */
    uint64_t refresh_reads;    /* stream heads re-read by them (total) */
    uint64_t cache_segments;   /* block cache segments held now */
    uint64_t cache_bytes;      /* bytes they hold now (<= rtlog_replay_opts.cache_bytes) */
    uint64_t cache_hits;       /* fills served from a cached segment (total) */
    uint64_t cache_misses;     /* segments built: one store read and render each (total) */
    uint64_t cache_frames;     /* event frames appended from cached segments (total) */
} rtlog_replay_stats;

void rtlog_replay_get_stats(const rtlog_replay *e, rtlog_replay_stats *out);

#endif
