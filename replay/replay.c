/* replay.c - the catch-up engine: per-stream state, subscribers, the frame ring, the
 * block cache.
 *
 * A subscriber owns nothing but its cursor and filter. Filling it means "hand out the
 * committed events after the cursor": from the stream's ring of recently rendered frames
 * when they are there (the live fan-out case: one render serves every subscriber at the
 * head); far behind the head, from the block cache, segments of rendered frames that every
 * subscriber passing the same position copies from (many readers catching up one backlog);
 * otherwise from one bounded rtlog_store_read() whose events are rendered as they pass and
 * kept in the ring when they extend it near the head. Catch-up and live are the same loop,
 * so no event can fall between "history" and "live". The stream's head (last_seq, sealed)
 * only ever moves forward: commit notes, describe() at open and the events a read actually
 * returns all take the maximum. Commits made by another process send no notes:
 * rtlog_replay_refresh() re-reads the head of every followed stream when the caller has
 * seen the store's generation move.
 */
#include "rtlog_replay.h"

#include "rtlog_schema.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEF_RING_FRAMES  1024u
#define DEF_RING_BYTES   (4u << 20)
#define DEF_CHUNK_EVENTS 256u
#define DEF_CHUNK_BYTES  (256u << 10)
#define MAX_TYPES        32u /* entries in a ?types= filter */
#define MAX_READS_PER_FILL 4u /* bounds one fill's time when a filter skips most events */
#define DEF_CACHE_BYTES  (32u << 20)

/* What the filter and the frame need to know of an event before (or without) rendering
 * it. For an event being read these point into the stored record (valid during the read
 * callback only); in a ring frame they point into the frame's own block. */
struct evhead {
    const char *type;    /* not necessarily NUL-ended; @type_len stops at the first NUL, as
                          * the C-string copy the filter and the SSE event line used did */
    size_t type_len;
    const char *node_id; /* NULL when the event has no string nodeId */
    size_t node_len;     /* its length (the value itself may hold NUL bytes) */
    int seals;           /* the event seals its stream */
};

/* One rendered event, kept in a ring and shared by every subscriber. Allocated in one
 * block: the struct, the complete SSE frame, type, node id. The SSE frame is the same
 * bytes for every SSE subscriber, and its middle is the JSON (the WebSocket message), so
 * delivering it in either format is one memcpy. */
struct frame {
    uint64_t seq;
    const char *sse;  /* "id: N\nevent: T\ndata: JSON\n\n"; not NUL-ended */
    size_t sse_len;
    const char *json; /* canonical JSON with "seq" last, secrets redacted; inside @sse */
    size_t json_len;
    struct evhead h;  /* type and node id NUL-terminated copies */
};

struct seg;

struct stream {
    struct stream *hnext; /* hash chain */
    uint64_t hash;
    char *name;
    rtlog_family family;
    uint64_t first_seq;
    uint64_t last_seq;
    int sealed;
    rtlog_replay_sub *subs; /* doubly linked through sub->prev/next */
    size_t nsubs;
    /* ring: frames with seq in [lo, hi) are at slots[seq % cap]; empty when lo == hi */
    struct frame **slots;
    size_t cap;
    uint64_t lo, hi;
    size_t bytes;
    /* block cache: this stream's segments, and its first retained seq as last read (valid
     * while the store's generation is still cache_gen) */
    struct seg *segs;
    uint64_t cache_first;
    uint64_t cache_gen;
    int cache_known;
};

struct rtlog_replay_sub {
    rtlog_replay *e;
    struct stream *st;
    rtlog_replay_sub *prev, *next;
    uint64_t cursor; /* last seq handed out (or skipped by the filter) */
    uint64_t target; /* follow == 0: end once cursor reaches this */
    int follow;
    int waiting;     /* returned IDLE; the next notify with work wakes it */
    int ended;
    int reset_pending;
    uint64_t reset_first, reset_last;
    rtlog_replay_fmt fmt;
    void *user;
    char *node_id;   /* NULL = any */
    char **types;    /* NULL = any; ntypes entries pointing into one block */
    size_t ntypes;
    rtlog_err (*personal)(void *, void *, uint64_t, const void *, size_t, rtlog_buf *, int *);
    void *personal_ctx;
    char *personal_type; /* NULL = no personal frames */
};

struct rtlog_replay {
    rtlog_store *store;
    rtlog_replay_wake_cb wake;
    void *wake_ctx;
    size_t ring_frames, ring_bytes, chunk_events, chunk_bytes;
    struct stream **buckets;
    size_t nbuckets;
    size_t nstreams;
    rtlog_buf scratch; /* render buffer reused across events */
    rtlog_replay_stats stats;
    /* block cache: every stream's segments on one LRU list, most recently used first */
    int cache_off;
    size_t cache_max;
    size_t cache_bytes;
    struct seg *lru_head, *lru_tail;
    rtlog_buf seg_frames, seg_names; /* a segment being built */
};

/* ---- small helpers ------------------------------------------------------------------- */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static char *str_dup(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p)
        memcpy(p, s, n + 1);
    return p;
}

static struct stream *stream_find(const rtlog_replay *e, const char *name, uint64_t h)
{
    for (struct stream *st = e->buckets[h & (e->nbuckets - 1)]; st; st = st->hnext)
        if (st->hash == h && strcmp(st->name, name) == 0)
            return st;
    return NULL;
}

/* Keep the table at most 1 entry per bucket on average; growing is rare (subscribed
 * streams only) and cheap next to the subscriptions themselves. */
static void table_maybe_grow(rtlog_replay *e)
{
    if (e->nstreams < e->nbuckets)
        return;
    size_t nb = e->nbuckets * 2;
    struct stream **b = calloc(nb, sizeof *b);
    if (!b)
        return; /* a fuller table still works */
    for (size_t i = 0; i < e->nbuckets; i++) {
        struct stream *st = e->buckets[i];
        while (st) {
            struct stream *nx = st->hnext;
            st->hnext = b[st->hash & (nb - 1)];
            b[st->hash & (nb - 1)] = st;
            st = nx;
        }
    }
    free(e->buckets);
    e->buckets = b;
    e->nbuckets = nb;
}

/* ---- the ring ------------------------------------------------------------------------ */

static struct frame *ring_get(const struct stream *st, uint64_t seq)
{
    if (seq < st->lo || seq >= st->hi)
        return NULL;
    return st->slots[seq % st->cap];
}

static void ring_drop_oldest(rtlog_replay *e, struct stream *st)
{
    struct frame *f = st->slots[st->lo % st->cap];
    st->slots[st->lo % st->cap] = NULL;
    st->bytes -= f->json_len;
    e->stats.ring_bytes -= f->json_len;
    e->stats.ring_frames--;
    free(f);
    st->lo++;
}

static void ring_clear(rtlog_replay *e, struct stream *st)
{
    while (st->lo < st->hi)
        ring_drop_oldest(e, st);
    st->lo = st->hi = 0;
}

/* Would ring_offer() keep a frame for @seq? Asked before rendering, so an event the ring
 * would not keep is never put in a frame of its own. Must match ring_offer(). */
static int ring_wants(const rtlog_replay *e, const struct stream *st, uint64_t seq)
{
    size_t cap = st->slots ? st->cap : e->ring_frames;
    if (st->lo == st->hi || seq != st->hi)
        return seq + cap > st->last_seq && !(st->lo < st->hi && seq < st->hi);
    return 1;
}

/* Offer a freshly rendered frame to the ring. Returns 1 if the ring took ownership.
 * Only frames that extend the ring contiguously, or start it near the head, are kept:
 * a subscriber catching up far behind renders for itself and does not evict the frames
 * that the live subscribers are about to share. */
static int ring_offer(rtlog_replay *e, struct stream *st, struct frame *f)
{
    if (!st->slots) {
        st->slots = calloc(e->ring_frames, sizeof *st->slots);
        if (!st->slots)
            return 0;
        st->cap = e->ring_frames;
    }
    int near_head = f->seq + st->cap > st->last_seq;
    if (st->lo == st->hi || f->seq != st->hi) {
        if (!near_head || (st->lo < st->hi && f->seq < st->hi))
            return 0;
        ring_clear(e, st);
        st->lo = st->hi = f->seq;
    }
    while (st->hi - st->lo >= st->cap ||
           (st->lo < st->hi && st->bytes + f->json_len > e->ring_bytes))
        ring_drop_oldest(e, st);
    st->slots[f->seq % st->cap] = f;
    st->hi = f->seq + 1;
    st->bytes += f->json_len;
    e->stats.ring_bytes += f->json_len;
    e->stats.ring_frames++;
    return 1;
}

/* ---- rendering and delivery ---------------------------------------------------------- */

static rtlog_err evhead_read(const struct stream *st, const rtlog_event_view *ev,
                             struct evhead *h, rtlog_errinfo *ei)
{
    const char *type, *node = NULL;
    size_t type_len, node_len = 0;
    rtlog_err rc = rtlog_schema_rec_type(ev->mp, ev->mp_len, &type, &type_len);
    if (rc != RTLOG_OK)
        return rtlog_errinfo_set(ei, rc, -1, NULL, "seq %" PRIu64 ": stored record has no type",
                                 ev->seq);
    rc = rtlog_schema_rec_field_str(ev->mp, ev->mp_len, "nodeId", &node, &node_len);
    if (rc == RTLOG_E_NOTFOUND)
        node = NULL, node_len = 0;
    else if (rc != RTLOG_OK)
        return rtlog_errinfo_set(ei, rc, -1, NULL, "seq %" PRIu64 ": stored record unreadable",
                                 ev->seq);
    const char *nul = memchr(type, '\0', type_len);
    h->type = type;
    h->type_len = nul ? (size_t)(nul - type) : type_len;
    h->node_id = node;
    h->node_len = node_len;
    /* rtlog_schema_type_flags() wants a C string; event types are short, and a longer
     * one is no type that seals (0 flags), so it need not be copied at all */
    char tbuf[64];
    h->seals = 0;
    if (h->type_len < sizeof tbuf) {
        memcpy(tbuf, type, h->type_len);
        tbuf[h->type_len] = '\0';
        h->seals = (rtlog_schema_type_flags(st->family, tbuf) & RTLOG_REC_SEALS) != 0;
    }
    return RTLOG_OK;
}

static int filter_pass(const rtlog_replay_sub *s, const struct evhead *h)
{
    if (s->node_id && (!h->node_id || h->node_len != strlen(s->node_id) ||
                       memcmp(s->node_id, h->node_id, h->node_len) != 0))
        return 0;
    if (s->types) {
        for (size_t i = 0; i < s->ntypes; i++)
            if (strlen(s->types[i]) == h->type_len &&
                memcmp(s->types[i], h->type, h->type_len) == 0)
                return 1;
        return 0;
    }
    return 1;
}

/* Does @s render events of this type itself (rtlog_replay_req.personal)? */
static int personal_match(const rtlog_replay_sub *s, const struct evhead *h)
{
    return s->personal_type && strlen(s->personal_type) == h->type_len &&
           memcmp(s->personal_type, h->type, h->type_len) == 0;
}

/* Append the SSE lines before an event's JSON, "id: N\nevent: T\ndata: ", with a
 * hand-written decimal (a printf per frame was ~16% of the server). An SSE event name
 * must be one line; validated types always are, but a record is data from disk, so a
 * stray CR/LF (or an empty type) becomes "message" rather than splitting the frame. */
static rtlog_err sse_prefix(rtlog_buf *out, uint64_t seq, const char *type, size_t type_len)
{
    if (type_len == 0 || memchr(type, '\r', type_len) || memchr(type, '\n', type_len))
        type = "message", type_len = 7;
    char num[24], *end = num + sizeof num, *d = end;
    do {
        *--d = (char)('0' + seq % 10);
        seq /= 10;
    } while (seq);
    size_t nd = (size_t)(end - d);
    if (rtlog_buf_reserve(out, 4 + nd + 8 + type_len + 7) != RTLOG_OK)
        return RTLOG_E_NOMEM;
    char *p = out->p + out->len;
    memcpy(p, "id: ", 4);
    p += 4;
    memcpy(p, d, nd);
    p += nd;
    memcpy(p, "\nevent: ", 8);
    p += 8;
    memcpy(p, type, type_len);
    p += type_len;
    memcpy(p, "\ndata: ", 7);
    p += 7;
    out->len = (size_t)(p - out->p);
    return RTLOG_OK;
}

/* RFC 6455 5.2 header of an unfragmented, unmasked text frame of @len payload bytes into
 * @h (10 bytes of room); returns its size (2, 4 or 10). */
static size_t ws_header(unsigned char *h, size_t len)
{
    h[0] = 0x81; /* FIN + text */
    if (len < 126) {
        h[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

/* Put the WS frame header in front of the @len bytes that start at @at + 10 in @out (a
 * 10-byte slot was left there), closing up the unused part of the slot. */
static void ws_frame_close_slot(rtlog_buf *out, size_t at, size_t len)
{
    unsigned char h[10];
    size_t hl = ws_header(h, len);
    memmove(out->p + at + hl, out->p + at + 10, len);
    memcpy(out->p + at, h, hl);
    out->len = at + hl + len;
}

/* Append the frame of one event in format @fmt to @out: for SSE the prefix, the JSON and
 * the blank line, for WS the JSON alone (WS_FRAMED: behind its frame header). On error
 * @out is back at its old length. *json_len gets the JSON's length (the ring's byte budget
 * counts JSON). */
static rtlog_err event_render(rtlog_replay *e, rtlog_replay_fmt fmt, const rtlog_event_view *ev,
                              const struct evhead *h, rtlog_buf *out, size_t *json_len,
                              rtlog_errinfo *ei)
{
    size_t old = out->len;
    rtlog_err rc = fmt == RTLOG_REPLAY_SSE ? sse_prefix(out, ev->seq, h->type, h->type_len)
                                           : RTLOG_OK;
    if (rc == RTLOG_OK && fmt == RTLOG_REPLAY_WS_FRAMED) {
        rc = rtlog_buf_reserve(out, 10); /* the header's slot */
        if (rc == RTLOG_OK)
            out->len += 10;
    }
    if (rc != RTLOG_OK)
        return rtlog_errinfo_set(ei, rc, -1, NULL, "out of memory writing a frame");
    size_t js = out->len;
    rc = rtlog_schema_render(ev->mp, ev->mp_len, ev->seq, RTLOG_JSON_REDACT, out);
    if (rc != RTLOG_OK) {
        out->len = old;
        return rtlog_errinfo_set(ei, rc, -1, NULL, "seq %" PRIu64 ": cannot render: %s",
                                 ev->seq, rtlog_strerror(rc));
    }
    *json_len = out->len - js;
    if (fmt == RTLOG_REPLAY_WS_FRAMED)
        ws_frame_close_slot(out, old, *json_len);
    if (fmt == RTLOG_REPLAY_SSE && rtlog_buf_append(out, "\n\n", 2) != RTLOG_OK) {
        out->len = old;
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory writing a frame");
    }
    e->stats.frames_rendered++;
    return RTLOG_OK;
}

/* A frame for the ring: rendered once, in the SSE form, with the JSON (the WS form) being
 * the middle of it, so a delivery in either format is one memcpy. */
static rtlog_err frame_make(rtlog_replay *e, const rtlog_event_view *ev, const struct evhead *h,
                            struct frame **out, rtlog_errinfo *ei)
{
    rtlog_buf_clear(&e->scratch);
    size_t json_len;
    rtlog_err rc = event_render(e, RTLOG_REPLAY_SSE, ev, h, &e->scratch, &json_len, ei);
    if (rc != RTLOG_OK)
        return rc;
    size_t sse_len = e->scratch.len;
    size_t need = sizeof(struct frame) + sse_len + h->type_len + 1 +
                  (h->node_id ? h->node_len + 1 : 0);
    struct frame *f = malloc(need);
    if (!f)
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory rendering a frame");
    char *p = (char *)(f + 1);
    memcpy(p, e->scratch.p, sse_len);
    f->sse = p;
    f->sse_len = sse_len;
    f->json = p + sse_len - 2 - json_len;
    f->json_len = json_len;
    p += sse_len;
    memcpy(p, h->type, h->type_len);
    p[h->type_len] = '\0';
    f->h.type = p;
    f->h.type_len = h->type_len;
    p += h->type_len + 1;
    if (h->node_id) {
        memcpy(p, h->node_id, h->node_len);
        p[h->node_len] = '\0';
        f->h.node_id = p;
    } else {
        f->h.node_id = NULL;
    }
    f->h.node_len = h->node_len;
    f->h.seals = h->seals;
    f->seq = ev->seq;
    *out = f;
    return RTLOG_OK;
}

/* Bytes the fill budget charges for a frame: an upper bound of the SSE form ("id: " 20
 * digits "\nevent: " "\ndata: " "\n\n"), the same for a ring frame and a direct render so
 * where a fill stops does not depend on which path an event took. */
static size_t frame_out_size(const rtlog_replay_sub *s, size_t json_len, size_t type_len)
{
    if (s->fmt == RTLOG_REPLAY_WS)
        return json_len;
    if (s->fmt == RTLOG_REPLAY_WS_FRAMED)
        return json_len + 10;
    return json_len + type_len + 48;
}

/* Append one rendered event in @s's format: the SSE frame, the JSON inside it, or the JSON
 * behind its WebSocket frame header (ring frames and cached segments alike). */
static rtlog_err parts_emit(const rtlog_replay_sub *s, const char *sse, size_t sse_len,
                            const char *json, size_t json_len, rtlog_buf *out)
{
    if (s->fmt == RTLOG_REPLAY_WS)
        return rtlog_buf_append(out, json, json_len);
    if (s->fmt == RTLOG_REPLAY_WS_FRAMED) {
        unsigned char h[10];
        size_t hl = ws_header(h, json_len);
        if (rtlog_buf_reserve(out, hl + json_len) != RTLOG_OK)
            return RTLOG_E_NOMEM;
        memcpy(out->p + out->len, h, hl);
        memcpy(out->p + out->len + hl, json, json_len);
        out->len += hl + json_len;
        return RTLOG_OK;
    }
    return rtlog_buf_append(out, sse, sse_len);
}

static rtlog_err frame_emit(const rtlog_replay_sub *s, const struct frame *f, rtlog_buf *out)
{
    return parts_emit(s, f->sse, f->sse_len, f->json, f->json_len, out);
}

static rtlog_err reset_emit(const rtlog_replay_sub *s, rtlog_buf *out)
{
    /* A control message: no seq, and on SSE no id line, so it never moves a client's
     * resume position (CONTRACT "Only stored events carry an SSE id"). */
    const char *pre = s->fmt == RTLOG_REPLAY_SSE ? "event: reset\ndata: " : "";
    const char *post = s->fmt == RTLOG_REPLAY_SSE ? "\n\n" : "";
    size_t at = out->len;
    if (s->fmt == RTLOG_REPLAY_WS_FRAMED) {
        if (rtlog_buf_reserve(out, 10) != RTLOG_OK)
            return RTLOG_E_NOMEM;
        out->len += 10;
    }
    rtlog_err rc = rtlog_buf_printf(out, "%s{\"type\":\"reset\",\"earliestSeq\":%" PRIu64
                                         ",\"lastSeq\":%" PRIu64 "}%s",
                                    pre, s->reset_first, s->reset_last, post);
    if (rc != RTLOG_OK) {
        out->len = at;
        return rc;
    }
    if (s->fmt == RTLOG_REPLAY_WS_FRAMED)
        ws_frame_close_slot(out, at, out->len - at - 10);
    return RTLOG_OK;
}

/* State shared by one fill call and its store-read callback. */
struct fill {
    rtlog_replay_sub *s;
    rtlog_buf *out;
    size_t start;      /* out->len when the fill began */
    size_t max_bytes;  /* 0 = no limit */
    size_t max_frames; /* 0 = no limit */
    size_t frames;
    int full;          /* a limit was reached */
    rtlog_err err;
    rtlog_errinfo *ei;
    size_t seen;       /* events the current read passed */
};

/* Would a frame charged @next_size bytes, appended when @out held @at bytes, still fit? */
static int fill_fits_at(const struct fill *fl, size_t at, size_t next_size)
{
    if (fl->max_frames && fl->frames >= fl->max_frames)
        return 0;
    if (fl->max_bytes && at > fl->start && at - fl->start + next_size > fl->max_bytes)
        return 0;
    return 1;
}

static int fill_has_room(const struct fill *fl, size_t next_size)
{
    return fill_fits_at(fl, fl->out->len, next_size);
}

/* The subscriber has been handed (or has skipped) event @seq. */
static void fill_advance(rtlog_replay_sub *s, uint64_t seq, int seals)
{
    struct stream *st = s->st;
    s->cursor = seq;
    if (seq > st->last_seq)
        st->last_seq = seq;
    if (seals)
        st->sealed = 1;
}

/* Hand one ring frame to the subscriber (or skip it by filter). Returns 0 when it was
 * consumed, 1 when there was no room (cursor unchanged), -1 on error (fl->err set). */
static int fill_take(struct fill *fl, const struct frame *f)
{
    rtlog_replay_sub *s = fl->s;
    if (filter_pass(s, &f->h)) {
        if (!fill_has_room(fl, frame_out_size(s, f->json_len, f->h.type_len))) {
            fl->full = 1;
            return 1;
        }
        rtlog_err rc = frame_emit(s, f, fl->out);
        if (rc != RTLOG_OK) {
            fl->err = rtlog_errinfo_set(fl->ei, rc, -1, NULL, "out of memory writing a frame");
            return -1;
        }
        fl->frames++;
        s->e->stats.frames_delivered++;
    }
    fill_advance(s, f->seq, f->h.seals);
    return 0;
}

/* One event read from the store, not in the ring. Near the head it is rendered into a
 * frame the ring keeps (the live subscribers are about to share it); far behind, the
 * ring would not keep it, so it is rendered straight into the subscriber's buffer: no
 * malloc, no second copy. Both paths give the same bytes and charge the same budget. */
static int fill_read_cb(void *ctx, const rtlog_event_view *ev)
{
    struct fill *fl = ctx;
    rtlog_replay_sub *s = fl->s;
    rtlog_replay *e = s->e;
    fl->seen++;
    if (ev->seq > s->st->last_seq)
        s->st->last_seq = ev->seq; /* committed, its note is on the way */
    if (ev->seq <= s->cursor)
        return 0; /* defensive: never hand out an event twice */
    if (ev->seq > s->cursor + 1) {
        /* Retention removed events this subscriber had not yet seen (the store reads from
         * its first retained seq): never a silent gap. Say so in-band, then go on from
         * here (CONTRACT "Resuming"). The fill loop emits the reset and reads again. */
        s->reset_pending = 1;
        s->reset_first = ev->seq;
        s->reset_last = s->st->last_seq;
        s->cursor = ev->seq - 1;
        return 1;
    }
    if (!s->follow && ev->seq > s->target)
        return 1; /* follow=false: what was stored at open, nothing after */
    /* Do not render an event there is certainly no room for. */
    if ((fl->max_frames && fl->frames >= fl->max_frames) ||
        (fl->max_bytes && fl->out->len - fl->start >= fl->max_bytes)) {
        fl->full = 1;
        return 1;
    }
    struct evhead h;
    rtlog_err rc = evhead_read(s->st, ev, &h, fl->ei);
    if (rc != RTLOG_OK) {
        fl->err = rc;
        return 1;
    }
    if (personal_match(s, &h) && filter_pass(s, &h)) {
        /* Rendered for this subscriber alone, never shared through the ring. */
        size_t at = fl->out->len;
        int used = 0;
        if ((s->fmt == RTLOG_REPLAY_SSE && sse_prefix(fl->out, ev->seq, h.type, h.type_len)) ||
            (s->fmt == RTLOG_REPLAY_WS_FRAMED && rtlog_buf_reserve(fl->out, 10))) {
            fl->err = rtlog_errinfo_set(fl->ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
            return 1;
        }
        if (s->fmt == RTLOG_REPLAY_WS_FRAMED)
            fl->out->len += 10; /* the frame header's slot, closed below */
        size_t js = fl->out->len;
        rc = s->personal(s->personal_ctx, s->user, ev->seq, ev->mp, ev->mp_len, fl->out, &used);
        if (rc != RTLOG_OK) {
            fl->out->len = at;
            fl->err = rtlog_errinfo_set(fl->ei, rc, -1, NULL, "seq %" PRIu64 ": cannot render",
                                        ev->seq);
            return 1;
        }
        if (used) {
            size_t json_len = fl->out->len - js;
            if (s->fmt == RTLOG_REPLAY_WS_FRAMED)
                ws_frame_close_slot(fl->out, at, json_len);
            if (s->fmt == RTLOG_REPLAY_SSE && rtlog_buf_append(fl->out, "\n\n", 2)) {
                fl->out->len = at;
                fl->err = rtlog_errinfo_set(fl->ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
                return 1;
            }
            if (!fill_fits_at(fl, at, frame_out_size(s, json_len, h.type_len))) {
                fl->out->len = at;
                fl->full = 1;
                return 1;
            }
            fl->frames++;
            e->stats.frames_delivered++;
            fill_advance(s, ev->seq, h.seals);
            return 0;
        }
        fl->out->len = at; /* not personal after all: the shared frame below */
    }
    if (ring_wants(e, s->st, ev->seq)) {
        struct frame *f = NULL;
        if ((rc = frame_make(e, ev, &h, &f, fl->ei)) != RTLOG_OK) {
            fl->err = rc;
            return 1;
        }
        int kept = ring_offer(e, s->st, f);
        int r = fill_take(fl, f);
        if (!kept)
            free(f);
        return r == 0 ? 0 : 1;
    }
    size_t json_len;
    if (!filter_pass(s, &h)) {
        /* Still rendered (into scratch): a record that cannot be rendered is an error
         * whether or not this subscriber wants it, as it is on the ring path. */
        rtlog_buf_clear(&e->scratch);
        if ((rc = event_render(e, RTLOG_REPLAY_WS, ev, &h, &e->scratch, &json_len, fl->ei))) {
            fl->err = rc;
            return 1;
        }
        fill_advance(s, ev->seq, h.seals);
        return 0;
    }
    size_t at = fl->out->len;
    if ((rc = event_render(e, s->fmt, ev, &h, fl->out, &json_len, fl->ei)) != RTLOG_OK) {
        fl->err = rc;
        return 1;
    }
    if (!fill_fits_at(fl, at, frame_out_size(s, json_len, h.type_len))) {
        fl->out->len = at; /* rendered in vain, once per fill at most */
        fl->full = 1;
        return 1;
    }
    fl->frames++;
    e->stats.frames_delivered++;
    fill_advance(s, ev->seq, h.seals);
    return 0;
}

/* ---- the block cache ----------------------------------------------------------------- */

/* Where one event of a segment is in the segment's data. */
struct segev {
    uint32_t sse_off, sse_len;   /* its complete SSE frame */
    uint32_t json_off, json_len; /* the JSON (WebSocket message) inside that frame */
    uint32_t type_off, type_len; /* NUL-ended copy of the type (the filter's, not the SSE
                                  * event line's, which may say "message") */
    uint32_t node_off, node_len; /* NUL-ended copy of nodeId; node_off == UINT32_MAX: none */
    uint32_t seals;
};

/* Events [base, base + n) of one stream, rendered once (SSE form, as a ring frame is) and
 * shared by every subscriber whose cursor passes them. One allocation: the struct, n
 * segevs, the SSE frames back to back, then the type and node id copies. Stored events
 * never change, so a segment stays right until retention removes its events, which
 * cache_first_fresh() notices. */
struct seg {
    struct seg *snext;         /* the stream's list */
    struct seg *lprev, *lnext; /* the engine's LRU list */
    struct stream *st;
    uint64_t base;
    size_t n;
    size_t bytes; /* what it counts against cache_max: the whole allocation */
    const struct segev *ev;
    const char *data;
};

static void seg_unlink_lru(rtlog_replay *e, struct seg *g)
{
    if (g->lprev)
        g->lprev->lnext = g->lnext;
    else
        e->lru_head = g->lnext;
    if (g->lnext)
        g->lnext->lprev = g->lprev;
    else
        e->lru_tail = g->lprev;
    g->lprev = g->lnext = NULL;
}

static void seg_push_lru(rtlog_replay *e, struct seg *g)
{
    g->lprev = NULL;
    g->lnext = e->lru_head;
    if (e->lru_head)
        e->lru_head->lprev = g;
    e->lru_head = g;
    if (!e->lru_tail)
        e->lru_tail = g;
}

static void seg_free(rtlog_replay *e, struct seg *g)
{
    struct seg **pp = &g->st->segs;
    while (*pp != g)
        pp = &(*pp)->snext;
    *pp = g->snext;
    seg_unlink_lru(e, g);
    e->cache_bytes -= g->bytes;
    e->stats.cache_bytes -= g->bytes;
    e->stats.cache_segments--;
    free(g);
}

static void seg_drop_stream(rtlog_replay *e, struct stream *st)
{
    while (st->segs)
        seg_free(e, st->segs);
}

/* Is st->cache_first the stream's first retained seq now? Re-read (one describe) whenever
 * any commit happened since it was read: a trim is a commit, and sends no note. Returns 0
 * when it cannot be known (the caller then takes the store path, which reports the error
 * if there is one). Segments wholly before the first retained seq go at once. */
static int cache_first_fresh(rtlog_replay *e, struct stream *st)
{
    uint64_t g = rtlog_store_generation(e->store);
    if (st->cache_known && g != 0 && g == st->cache_gen)
        return 1;
    rtlog_stream_info info;
    if (rtlog_store_describe(e->store, st->name, &info, NULL) != RTLOG_OK) {
        st->cache_known = 0;
        return 0;
    }
    st->cache_first = info.first_seq ? info.first_seq : 1;
    st->cache_gen = g;
    st->cache_known = g != 0;
    for (struct seg *x = st->segs, *nx; x; x = nx) {
        nx = x->snext;
        if (x->base + x->n <= st->cache_first)
            seg_free(e, x);
    }
    return 1;
}

/* A segment being read from the store. */
struct segbuild {
    rtlog_replay *e;
    struct stream *st;
    struct segev *ev; /* room for @cap */
    size_t cap, n;
    uint64_t base, next;
    size_t max_bytes;
    int bad; /* a record could not be read or rendered, or a seq was missing */
};

static int segbuild_cb(void *ctx, const rtlog_event_view *ev)
{
    struct segbuild *b = ctx;
    rtlog_replay *e = b->e;
    if (b->n == 0)
        b->base = b->next = ev->seq; /* retention may have moved the start forward */
    if (ev->seq != b->next || b->n >= b->cap) {
        b->bad = ev->seq != b->next;
        return 1;
    }
    struct evhead h;
    rtlog_errinfo ei = {0};
    size_t at = e->seg_frames.len, json_len;
    if (evhead_read(b->st, ev, &h, &ei) != RTLOG_OK ||
        event_render(e, RTLOG_REPLAY_SSE, ev, &h, &e->seg_frames, &json_len, &ei) != RTLOG_OK) {
        b->bad = 1;
        return 1;
    }
    size_t sse_len = e->seg_frames.len - at;
    size_t t_at = e->seg_names.len;
    if (rtlog_buf_append(&e->seg_names, h.type, h.type_len) ||
        rtlog_buf_append(&e->seg_names, "", 1) ||
        (h.node_id && (rtlog_buf_append(&e->seg_names, h.node_id, h.node_len) ||
                       rtlog_buf_append(&e->seg_names, "", 1)))) {
        b->bad = 1;
        return 1;
    }
    if (e->seg_frames.len + e->seg_names.len > UINT32_MAX / 2) {
        b->bad = 1; /* offsets are 32-bit; max_bytes keeps segments far smaller */
        return 1;
    }
    struct segev *v = &b->ev[b->n++];
    v->sse_off = (uint32_t)at;
    v->sse_len = (uint32_t)sse_len;
    v->json_off = (uint32_t)(at + sse_len - 2 - json_len);
    v->json_len = (uint32_t)json_len;
    v->type_off = (uint32_t)t_at; /* into seg_names: moved behind the frames at the end */
    v->type_len = (uint32_t)h.type_len;
    v->node_off = h.node_id ? (uint32_t)(t_at + h.type_len + 1) : UINT32_MAX;
    v->node_len = (uint32_t)h.node_len;
    v->seals = (uint32_t)h.seals;
    b->next = ev->seq + 1;
    /* bounded: stop after the event that reached the segment's byte limit */
    return e->seg_frames.len + e->seg_names.len >= b->max_bytes;
}

/* Keep the segment @b read (its events rendered in e->seg_frames / e->seg_names) in the
 * cache, evicting least recently used segments to make room. NULL when it cannot be kept
 * (bigger than the cache, out of memory). */
static struct seg *seg_keep(rtlog_replay *e, struct stream *st, const struct segbuild *b)
{
    struct seg *g = NULL;
    size_t data = e->seg_frames.len + e->seg_names.len;
    size_t need = sizeof *g + b->n * sizeof(struct segev) + data;
    if (need > e->cache_max || !(g = malloc(need)))
        return NULL;
    struct segev *ev = (struct segev *)(g + 1);
    char *p = (char *)(ev + b->n);
    uint32_t names_at = (uint32_t)e->seg_frames.len;
    memcpy(p, e->seg_frames.p, e->seg_frames.len);
    if (e->seg_names.len)
        memcpy(p + names_at, e->seg_names.p, e->seg_names.len);
    for (size_t i = 0; i < b->n; i++) {
        ev[i] = b->ev[i];
        ev[i].type_off += names_at;
        if (ev[i].node_off != UINT32_MAX)
            ev[i].node_off += names_at;
    }
    g->st = st;
    g->base = b->base;
    g->n = b->n;
    g->bytes = need;
    g->ev = ev;
    g->data = p;
    /* a shorter segment from the same start (read when fewer events were stored) is
     * superseded */
    for (struct seg *x = st->segs, *nx; x; x = nx) {
        nx = x->snext;
        if (x->base == g->base)
            seg_free(e, x);
    }
    while (e->lru_tail && e->cache_bytes + need > e->cache_max)
        seg_free(e, e->lru_tail);
    g->snext = st->segs;
    st->segs = g;
    seg_push_lru(e, g);
    e->cache_bytes += need;
    e->stats.cache_bytes += need;
    e->stats.cache_segments++;
    e->stats.cache_misses++;
    return g;
}

/* Read, render and keep the segment holding @next. Segments tile the aligned blocks of
 * chunk_events events; one that reached its byte limit (cache_max / 4) before its block's
 * end is followed by the next piece from where it stopped, so a piece starts at the end
 * of the cached piece before it (never rebuilding that prefix: a subscriber past the cut
 * re-rendered it on every fill), at the block's start, or at the first retained seq when
 * retention cut into the block. NULL when it cannot be kept (out of memory, bigger than
 * the cache, a record that cannot be rendered, @next not in what was read): the caller
 * takes the store path, which does exactly what it did without the cache. */
static struct seg *seg_build(rtlog_replay *e, struct stream *st, uint64_t next)
{
    size_t cap = e->chunk_events;
    uint64_t block = next - (next - 1) % cap, end = block + cap; /* [block, end) */
    uint64_t start = block;
    if (start < st->cache_first)
        start = st->cache_first;
    for (struct seg *x = st->segs; x; x = x->snext)
        if (x->base >= start && x->base + x->n <= next && x->base + x->n > start)
            start = x->base + x->n;
    struct segbuild b = {.e = e, .st = st, .cap = cap, .max_bytes = e->cache_max / 4};
    b.ev = malloc(cap * sizeof *b.ev);
    if (!b.ev)
        return NULL;
    struct seg *g = NULL;
    /* bounded: every piece holds at least one event of the block */
    while (start <= next && start < end) {
        rtlog_buf_clear(&e->seg_frames);
        rtlog_buf_clear(&e->seg_names);
        b.n = 0;
        b.bad = 0;
        b.cap = (size_t)(end - start);
        b.base = b.next = start;
        uint64_t nseq = start;
        rtlog_err rc = rtlog_store_read(e->store, st->name, start, b.cap, 0, segbuild_cb, &b,
                                        &nseq, NULL);
        if (rc != RTLOG_OK || b.bad || !b.n || b.base > next)
            break;
        struct seg *x = seg_keep(e, st, &b);
        if (!x || next - b.base < b.n) {
            g = x;
            break;
        }
        start = b.base + b.n; /* cut by its byte limit before @next: the next piece */
    }
    free(b.ev);
    /* do not hold a segment's worth of scratch when segments are large */
    if (e->seg_frames.cap > (1u << 20))
        rtlog_buf_free(&e->seg_frames);
    return g;
}

/* The cached segment holding @next, built when missing; NULL: take the store path. */
static struct seg *cache_get(rtlog_replay *e, struct stream *st, uint64_t next)
{
    if (!cache_first_fresh(e, st) || next < st->cache_first)
        return NULL; /* retention: the store path sends the reset */
    for (struct seg *g = st->segs; g; g = g->snext) {
        if (g->base <= next && next - g->base < g->n) {
            seg_unlink_lru(e, g);
            seg_push_lru(e, g);
            return g;
        }
    }
    return seg_build(e, st, next);
}

/* Hand @s the events of @g from its cursor on, exactly as fill_read_cb() would hand them
 * from a store read: the same filter, budget checks and frames. Stops (cursor left on the
 * last event handed or skipped) at the segment's end, at an event near the head (the ring
 * takes those, as on the store path), at a personal frame (rendered by the store path),
 * at follow=false's target, or when the budget is spent (fl->full). */
/* seg_serve() for an SSE subscriber without filters or personal frames: the frames of
 * consecutive events lie back to back in the segment, so the run that fits is found with
 * the same checks, event by event, and appended with one copy. */
static rtlog_err seg_serve_run(struct fill *fl, const struct seg *g)
{
    rtlog_replay_sub *s = fl->s;
    rtlog_replay *e = s->e;
    uint64_t seq = s->cursor + 1;
    size_t i0 = (size_t)(seq - g->base), i = i0, at = fl->out->len, frames = fl->frames;
    int seals = 0;
    for (; i < g->n; i++, seq++) {
        if ((!s->follow && seq > s->target) || ring_wants(e, s->st, seq))
            break;
        const struct segev *v = &g->ev[i];
        size_t next_size = frame_out_size(s, v->json_len, v->type_len);
        if ((fl->max_frames && frames >= fl->max_frames) ||
            (fl->max_bytes && (at - fl->start >= fl->max_bytes ||
                               (at > fl->start && at - fl->start + next_size > fl->max_bytes)))) {
            fl->full = 1;
            break;
        }
        at += v->sse_len;
        frames++;
        seals |= (int)v->seals;
    }
    if (i == i0)
        return RTLOG_OK;
    const struct segev *a = &g->ev[i0], *b = &g->ev[i - 1];
    if (rtlog_buf_append(fl->out, g->data + a->sse_off, b->sse_off + b->sse_len - a->sse_off)) {
        fl->full = 0;
        return rtlog_errinfo_set(fl->ei, RTLOG_E_NOMEM, -1, NULL, "out of memory writing a frame");
    }
    fl->frames = frames;
    e->stats.frames_delivered += i - i0;
    e->stats.cache_frames += i - i0;
    fill_advance(s, g->base + i - 1, seals);
    return RTLOG_OK;
}

static rtlog_err seg_serve(struct fill *fl, const struct seg *g)
{
    rtlog_replay_sub *s = fl->s;
    rtlog_replay *e = s->e;
    struct stream *st = s->st;
    if (s->fmt == RTLOG_REPLAY_SSE && !s->node_id && !s->types && !s->personal_type)
        return seg_serve_run(fl, g);
    for (uint64_t seq = s->cursor + 1; seq >= g->base && seq - g->base < g->n; seq++) {
        if ((!s->follow && seq > s->target) || ring_wants(e, st, seq))
            return RTLOG_OK;
        if ((fl->max_frames && fl->frames >= fl->max_frames) ||
            (fl->max_bytes && fl->out->len - fl->start >= fl->max_bytes)) {
            fl->full = 1;
            return RTLOG_OK;
        }
        const struct segev *v = &g->ev[seq - g->base];
        struct evhead h = {.type = g->data + v->type_off,
                           .type_len = v->type_len,
                           .node_id = v->node_off == UINT32_MAX ? NULL : g->data + v->node_off,
                           .node_len = v->node_len,
                           .seals = (int)v->seals};
        int pass = filter_pass(s, &h);
        if (pass && personal_match(s, &h))
            return RTLOG_OK;
        if (pass) {
            if (!fill_has_room(fl, frame_out_size(s, v->json_len, v->type_len))) {
                fl->full = 1;
                return RTLOG_OK;
            }
            if (parts_emit(s, g->data + v->sse_off, v->sse_len, g->data + v->json_off,
                           v->json_len, fl->out) != RTLOG_OK)
                return rtlog_errinfo_set(fl->ei, RTLOG_E_NOMEM, -1, NULL,
                                         "out of memory writing a frame");
            fl->frames++;
            e->stats.frames_delivered++;
            e->stats.cache_frames++;
        }
        fill_advance(s, seq, h.seals);
    }
    return RTLOG_OK;
}

static rtlog_replay_state fill_state(rtlog_replay_sub *s)
{
    struct stream *st = s->st;
    if ((!s->follow && s->cursor >= s->target) || (st->sealed && s->cursor >= st->last_seq)) {
        s->ended = 1;
        return RTLOG_REPLAY_END;
    }
    if (s->cursor < st->last_seq)
        return RTLOG_REPLAY_MORE;
    s->waiting = 1;
    return RTLOG_REPLAY_IDLE;
}

/* ---- public API ---------------------------------------------------------------------- */

rtlog_err rtlog_replay_new(const rtlog_replay_opts *o, rtlog_replay **out)
{
    if (!o || !o->store || !out)
        return RTLOG_E_INVAL;
    rtlog_replay *e = calloc(1, sizeof *e);
    if (!e)
        return RTLOG_E_NOMEM;
    e->store = o->store;
    e->wake = o->wake;
    e->wake_ctx = o->wake_ctx;
    e->ring_frames = o->ring_frames ? o->ring_frames : DEF_RING_FRAMES;
    e->ring_bytes = o->ring_bytes ? o->ring_bytes : DEF_RING_BYTES;
    e->chunk_events = o->chunk_events ? o->chunk_events : DEF_CHUNK_EVENTS;
    e->chunk_bytes = o->chunk_bytes ? o->chunk_bytes : DEF_CHUNK_BYTES;
    e->cache_off = o->cache_off;
    e->cache_max = o->cache_bytes ? o->cache_bytes : DEF_CACHE_BYTES;
    e->nbuckets = 64;
    e->buckets = calloc(e->nbuckets, sizeof *e->buckets);
    if (!e->buckets) {
        free(e);
        return RTLOG_E_NOMEM;
    }
    *out = e;
    return RTLOG_OK;
}

static void seg_drop_stream(rtlog_replay *e, struct stream *st);

static void stream_free(rtlog_replay *e, struct stream *st)
{
    seg_drop_stream(e, st);
    if (st->slots)
        ring_clear(e, st);
    free(st->slots);
    free(st->name);
    free(st);
}

static void sub_free(rtlog_replay_sub *s)
{
    free(s->personal_type);
    free(s->node_id);
    free(s->types);
    free(s);
}

void rtlog_replay_free(rtlog_replay *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->nbuckets; i++) {
        struct stream *st = e->buckets[i];
        while (st) {
            struct stream *nx = st->hnext;
            rtlog_replay_sub *s = st->subs;
            while (s) {
                rtlog_replay_sub *sn = s->next;
                sub_free(s);
                s = sn;
            }
            stream_free(e, st);
            st = nx;
        }
    }
    free(e->buckets);
    rtlog_buf_free(&e->scratch);
    rtlog_buf_free(&e->seg_frames);
    rtlog_buf_free(&e->seg_names);
    free(e);
}

/* Split "a,b" into a NULL-free array in one allocation. Empty entries are an error: a
 * typo like "step_log,,x" should not silently mean something else. */
static rtlog_err types_parse(const char *list, char ***out, size_t *n, rtlog_errinfo *ei)
{
    size_t len = strlen(list), count = 1;
    for (const char *p = list; *p; p++)
        count += *p == ',';
    if (count > MAX_TYPES)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, "types", "more than %u types",
                                 MAX_TYPES);
    char **arr = malloc(count * sizeof *arr + len + 1);
    if (!arr)
        return RTLOG_E_NOMEM;
    char *copy = (char *)(arr + count);
    memcpy(copy, list, len + 1);
    size_t i = 0;
    for (char *tok = copy;; i++) {
        char *comma = strchr(tok, ',');
        if (comma)
            *comma = '\0';
        if (!*tok) {
            free(arr);
            return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, "types", "empty type in list");
        }
        arr[i] = tok;
        if (!comma)
            break;
        tok = comma + 1;
    }
    *out = arr;
    *n = i + 1;
    return RTLOG_OK;
}

rtlog_err rtlog_replay_open(rtlog_replay *e, const rtlog_replay_req *req, rtlog_replay_sub **out,
                            rtlog_errinfo *ei)
{
    if (!e || !req || !req->stream || !out ||
        (req->fmt != RTLOG_REPLAY_SSE && req->fmt != RTLOG_REPLAY_WS &&
         req->fmt != RTLOG_REPLAY_WS_FRAMED))
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "bad subscription request");

    rtlog_kind kind;
    rtlog_err rc = rtlog_stream_parse(req->stream, strlen(req->stream), &kind, NULL, NULL, ei);
    if (rc != RTLOG_OK)
        return rc;

    rtlog_stream_info info;
    rc = rtlog_store_describe(e->store, req->stream, &info, ei);
    if (rc != RTLOG_OK)
        return rc;

    rtlog_replay_sub *s = calloc(1, sizeof *s);
    if (!s)
        return RTLOG_E_NOMEM;
    if (req->node_id && req->node_id[0] && !(s->node_id = str_dup(req->node_id))) {
        sub_free(s);
        return RTLOG_E_NOMEM;
    }
    if (req->types && req->types[0] &&
        (rc = types_parse(req->types, &s->types, &s->ntypes, ei)) != RTLOG_OK) {
        sub_free(s);
        return rc;
    }
    if (req->personal && req->personal_type) {
        if (!(s->personal_type = str_dup(req->personal_type))) {
            sub_free(s);
            return RTLOG_E_NOMEM;
        }
        s->personal = req->personal;
        s->personal_ctx = req->personal_ctx;
    }

    uint64_t h = name_hash(req->stream);
    struct stream *st = stream_find(e, req->stream, h);
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st || !(st->name = str_dup(req->stream))) {
            free(st);
            sub_free(s);
            return RTLOG_E_NOMEM;
        }
        st->hash = h;
        st->family = rtlog_kind_family(kind);
        st->hnext = e->buckets[h & (e->nbuckets - 1)];
        e->buckets[h & (e->nbuckets - 1)] = st;
        e->nstreams++;
        e->stats.streams++;
        table_maybe_grow(e);
    }
    /* describe() is a fresh snapshot; notes drained later only move the head forward. */
    if (info.last_seq > st->last_seq)
        st->last_seq = info.last_seq;
    if (info.sealed)
        st->sealed = 1;
    st->first_seq = info.first_seq ? info.first_seq : 1;

    s->e = e;
    s->st = st;
    s->fmt = req->fmt;
    s->follow = req->follow;
    s->user = req->user;
    if (req->has_cursor) {
        if (req->cursor > st->last_seq || req->cursor + 1 < st->first_seq) {
            /* Cannot honour it: say so in-band, then start from the earliest event. */
            s->reset_pending = 1;
            s->reset_first = st->first_seq;
            s->reset_last = st->last_seq;
            s->cursor = st->first_seq - 1;
        } else {
            s->cursor = req->cursor;
        }
    } else if (kind == RTLOG_KIND_DASHBOARD) {
        s->cursor = info.snapshot_seq ? info.snapshot_seq - 1 : st->last_seq;
    } else {
        s->cursor = st->first_seq - 1;
    }
    s->target = st->last_seq;

    s->next = st->subs;
    if (st->subs)
        st->subs->prev = s;
    st->subs = s;
    st->nsubs++;
    e->stats.subscribers++;
    *out = s;
    return RTLOG_OK;
}

/* Write the pending reset message (it always fits: a control message is not charged to
 * the frame budget's byte limit, like the reset at open never was). */
static rtlog_err fill_reset(struct fill *fl)
{
    rtlog_replay_sub *s = fl->s;
    rtlog_err rc = reset_emit(s, fl->out);
    if (rc != RTLOG_OK)
        return rtlog_errinfo_set(fl->ei, rc, -1, NULL, "out of memory writing a frame");
    s->reset_pending = 0;
    fl->frames++;
    s->e->stats.resets++;
    return RTLOG_OK;
}

rtlog_err rtlog_replay_fill(rtlog_replay_sub *s, rtlog_buf *out, size_t max_bytes,
                            size_t max_frames, rtlog_replay_state *state, size_t *nframes,
                            rtlog_errinfo *ei)
{
    struct fill fl = {.s = s, .out = out, .start = out->len, .max_bytes = max_bytes,
                      .max_frames = max_frames, .ei = ei};
    rtlog_replay *e = s->e;
    struct stream *st = s->st;
    rtlog_err rc = RTLOG_OK;
    s->waiting = 0;
    if (nframes)
        *nframes = 0;
    if (s->ended) {
        *state = RTLOG_REPLAY_END;
        return RTLOG_OK;
    }
    if (s->reset_pending && (rc = fill_reset(&fl)) != RTLOG_OK) {
        *state = RTLOG_REPLAY_MORE;
        return rc;
    }

    unsigned reads = 0;
    uint64_t head = s->follow || s->target > st->last_seq ? st->last_seq : s->target;
    while (!fl.full && s->cursor < head && fill_has_room(&fl, 0) &&
           reads < MAX_READS_PER_FILL) {
        if (s->reset_pending) { /* a read found events removed by retention */
            if ((rc = fill_reset(&fl)) != RTLOG_OK)
                break;
            continue;
        }
        uint64_t next = s->cursor + 1;
        struct frame *f = ring_get(st, next);
        if (f && !(s->personal_type && personal_match(s, &f->h) && filter_pass(s, &f->h))) {
            e->stats.ring_hits++;
            int r = fill_take(&fl, f);
            if (r < 0) {
                rc = fl.err;
                break;
            }
            continue;
        }
        if (!f && !e->cache_off && !ring_wants(e, st, next)) {
            /* Far behind the head: from the block cache, which other subscribers at this
             * position share (one render, one decompression for all of them). Not for a
             * ring frame this subscriber renders itself (personal): that event is near the
             * head, and its segment, short and growing, would be rebuilt at every new
             * event; the store path renders it. */
            struct seg *g = cache_get(e, st, next);
            if (g) {
                uint64_t before = s->cursor;
                reads++;
                e->stats.cache_hits++;
                if ((rc = seg_serve(&fl, g)) != RTLOG_OK)
                    break;
                if (s->cursor != before || fl.full)
                    continue;
                if (reads >= MAX_READS_PER_FILL)
                    break;
                /* nothing taken (a personal frame): the store path renders it */
            }
        }
        e->stats.ring_misses++;
        reads++;
        uint64_t before = s->cursor;
        fl.seen = 0;
        fl.err = RTLOG_OK;
        uint64_t nseq = next;
        rc = rtlog_store_read(e->store, st->name, next, e->chunk_events, e->chunk_bytes,
                              fill_read_cb, &fl, &nseq, ei);
        if (rc == RTLOG_OK)
            rc = fl.err;
        if (rc != RTLOG_OK)
            break;
        if (fl.seen == 0 && nseq > next && !s->reset_pending) {
            /* Retention removed every event after the cursor (first_seq passed it with
             * nothing left to read): the same in-band reset, then wait at the head. */
            s->reset_pending = 1;
            s->reset_first = nseq;
            s->reset_last = st->last_seq;
            s->cursor = nseq - 1;
            continue;
        }
        if (s->cursor == before && !fl.full)
            break; /* the store has nothing after the cursor yet: wait for a note */
    }
    if (rc == RTLOG_OK && s->reset_pending)
        rc = fill_reset(&fl); /* retention left nothing after the cursor: the loop ended */
    if (nframes)
        *nframes = fl.frames;
    if (rc != RTLOG_OK) {
        *state = RTLOG_REPLAY_MORE;
        return rc;
    }
    *state = fill_state(s);
    return RTLOG_OK;
}

/* Move @st's head forward (never back) and wake the subscribers that now have work. */
static void stream_advance(rtlog_replay *e, struct stream *st, uint64_t last_seq, int sealed)
{
    if (last_seq > st->last_seq)
        st->last_seq = last_seq;
    if (sealed)
        st->sealed = 1;
    /* The wake callback may not close subscribers, so plain iteration is safe. */
    for (rtlog_replay_sub *s = st->subs; s; s = s->next) {
        if (!s->waiting || (s->cursor >= st->last_seq && !st->sealed))
            continue;
        s->waiting = 0;
        if (e->wake)
            e->wake(e->wake_ctx, s, s->user);
    }
}

void rtlog_replay_notify(rtlog_replay *e, const char *stream, uint64_t last_seq, int sealed)
{
    struct stream *st = stream_find(e, stream, name_hash(stream));
    if (st)
        stream_advance(e, st, last_seq, sealed);
}

rtlog_err rtlog_replay_refresh(rtlog_replay *e, rtlog_errinfo *ei)
{
    rtlog_err first = RTLOG_OK;
    e->stats.refreshes++;
    /* stream_advance() neither adds nor removes streams, so the table can be walked while
     * subscribers are woken. */
    for (size_t i = 0; i < e->nbuckets; i++) {
        for (struct stream *st = e->buckets[i]; st; st = st->hnext) {
            rtlog_stream_info info;
            rtlog_errinfo one = {0};
            rtlog_err rc = rtlog_store_describe(e->store, st->name, &info, &one);
            e->stats.refresh_reads++;
            if (rc != RTLOG_OK) {
                if (first == RTLOG_OK) {
                    first = rc;
                    if (ei)
                        *ei = one;
                }
                continue; /* the others are still worth refreshing */
            }
            stream_advance(e, st, info.last_seq, info.sealed);
        }
    }
    return first;
}

void rtlog_replay_close(rtlog_replay_sub *s)
{
    if (!s)
        return;
    rtlog_replay *e = s->e;
    struct stream *st = s->st;
    if (s->prev)
        s->prev->next = s->next;
    else
        st->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    st->nsubs--;
    e->stats.subscribers--;
    sub_free(s);
    if (st->nsubs)
        return;
    struct stream **pp = &e->buckets[st->hash & (e->nbuckets - 1)];
    while (*pp != st)
        pp = &(*pp)->hnext;
    *pp = st->hnext;
    e->nstreams--;
    e->stats.streams--;
    stream_free(e, st);
}

uint64_t rtlog_replay_cursor(const rtlog_replay_sub *s)
{
    return s->cursor;
}

const char *rtlog_replay_stream(const rtlog_replay_sub *s)
{
    return s->st->name;
}

void rtlog_replay_get_stats(const rtlog_replay *e, rtlog_replay_stats *out)
{
    *out = e->stats;
}
