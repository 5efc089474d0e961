/* cli_chain.c - the hash chain as tools/ recomputes it, and the chunked walk over a
 * stored stream that export and verify share.
 *
 * The chain is CONTRACT.md "Tools": h0 = 32 zero bytes, h(n) = SHA-256(h(n-1) || line_n),
 * line_n being the event exactly as `rtlog export --ndjson` writes it (redacted, "seq"
 * last) without the newline. It is recomputed here from the stored records, independently
 * of the hashes the store keeps, so a record changed on disk shows up as a mismatch
 * against the stored hash8 and head. The walk reads in bounded chunks: each
 * rtlog_store_read call is one short read transaction, and the caller's on_chunk (which
 * may block writing to a pipe) runs only after that transaction is closed (handed.md C08).
 */
#include "cli_util.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include <openssl/evp.h>

rtlog_err rtlog_cli_chain_init(rtlog_cli_chain *c)
{
    memset(c->h, 0, sizeof c->h);
    c->n = 0;
    if (!c->md)
        c->md = EVP_MD_CTX_new();
    return c->md ? RTLOG_OK : RTLOG_E_NOMEM;
}

rtlog_err rtlog_cli_chain_step(rtlog_cli_chain *c, const void *line, size_t len)
{
    EVP_MD_CTX *md = c->md;
    unsigned int out_len = 0;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, c->h, sizeof c->h) != 1 ||
        (len && EVP_DigestUpdate(md, line, len) != 1) ||
        EVP_DigestFinal_ex(md, c->h, &out_len) != 1 || out_len != sizeof c->h)
        return RTLOG_E_NOMEM;
    c->n++;
    return RTLOG_OK;
}

void rtlog_cli_chain_free(rtlog_cli_chain *c)
{
    if (!c)
        return;
    EVP_MD_CTX_free(c->md);
    c->md = NULL;
}

/* ---- walk -------------------------------------------------------------------------------- */

typedef struct walk_state {
    rtlog_cli_walk *w;
    rtlog_cli_chain chain;
    rtlog_buf line;    /* render buffer, reused */
    uint64_t next;     /* seq expected next */
    uint64_t in_chunk; /* events seen in the current read */
    rtlog_err fail;    /* fatal error inside the callback */
    int stopped;       /* a caller callback asked to stop */
    int beyond;        /* reached an event after the snapshot point */
} walk_state;

static void problem(rtlog_cli_walk *w, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Count a problem; describe only the first (later ones are usually its consequences:
 * after one changed record every later hash differs as well). */
static void problem(rtlog_cli_walk *w, uint64_t seq, const char *fmt, ...)
{
    if (w->problems++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->problem, sizeof w->problem, fmt, ap);
        va_end(ap);
        w->problem_seq = seq;
    }
}

static int on_event(void *ctx, const rtlog_event_view *ev)
{
    walk_state *s = ctx;
    rtlog_cli_walk *w = s->w;
    if (ev->seq > w->last_seq) {
        s->beyond = 1;
        return 1;
    }
    s->in_chunk++;
    if (ev->seq != s->next)
        problem(w, s->next,
                "events %" PRIu64 "..%" PRIu64 " are missing (seq jumps from %" PRIu64
                " to %" PRIu64 ")",
                s->next, ev->seq - 1, s->next - 1, ev->seq);
    s->next = ev->seq + 1;

    rtlog_buf_clear(&s->line);
    rtlog_err rc = rtlog_schema_render(ev->mp, ev->mp_len, ev->seq, RTLOG_JSON_REDACT, &s->line);
    if (rc == RTLOG_E_NOMEM) {
        s->fail = rc;
        return 1;
    }
    if (rc != RTLOG_OK) {
        /* Not hashed: the recomputed chain then differs from here on, as it should. */
        problem(w, ev->seq, "event seq %" PRIu64 " cannot be decoded (%s)", ev->seq,
                rtlog_strerror(rc));
        return 0;
    }
    if (rtlog_cli_chain_step(&s->chain, s->line.p, s->line.len) != RTLOG_OK) {
        s->fail = RTLOG_E_NOMEM;
        return 1;
    }
    if (memcmp(s->chain.h, ev->hash8, sizeof ev->hash8) != 0) {
        char stored[17], computed[17];
        problem(w, ev->seq, "event seq %" PRIu64 " does not match (stored hash %s, computed %s)",
                ev->seq, rtlog_cli_hex(ev->hash8, 8, stored),
                rtlog_cli_hex(s->chain.h, 8, computed));
    }
    w->events++;
    if (w->on_line && w->on_line(w->ctx, ev->seq, s->line.p, s->line.len, s->chain.h) != 0) {
        s->stopped = 1;
        return 1;
    }
    return 0;
}

rtlog_err rtlog_cli_walk_run(rtlog_cli_walk *w, rtlog_errinfo *ei)
{
    walk_state s;
    memset(&s, 0, sizeof s);
    s.w = w;
    s.next = w->first_seq ? w->first_seq : 1;
    w->events = 0;
    w->problems = 0;
    w->problem_seq = 0;
    w->problem[0] = '\0';
    rtlog_err rc = rtlog_cli_chain_init(&s.chain);
    if (rc != RTLOG_OK)
        goto out;
    memcpy(s.chain.h, w->base, sizeof s.chain.h); /* h(first_seq - 1): zeros at seq 1 */

    while (s.next <= w->last_seq && !s.beyond) {
        uint64_t left = w->last_seq - s.next + 1;
        size_t max = left < RTLOG_CLI_CHUNK_EVENTS ? (size_t)left : RTLOG_CLI_CHUNK_EVENTS;
        s.in_chunk = 0;
        /* Continue from our own position rather than the store's next_seq: the walk's
         * bookkeeping then does not depend on how a backend reports the end. */
        rc = rtlog_store_read(w->st, w->stream, s.next, max, RTLOG_CLI_CHUNK_BYTES, on_event, &s,
                              NULL, ei);
        if (rc != RTLOG_OK)
            goto out;
        if (s.fail != RTLOG_OK) {
            rc = s.fail;
            goto out;
        }
        if (s.stopped) {
            rc = RTLOG_E_AGAIN;
            goto out;
        }
        if (w->on_chunk && w->on_chunk(w->ctx, w->events) != 0) {
            rc = RTLOG_E_AGAIN;
            goto out;
        }
        if (s.in_chunk == 0)
            break; /* the stream ends before last_seq */
    }
    if (s.next <= w->last_seq)
        problem(w, s.next,
                "events %" PRIu64 "..%" PRIu64 " are missing (the stream ends at seq %" PRIu64 ")",
                s.next, w->last_seq, s.next - 1);
    memcpy(w->head, s.chain.h, sizeof w->head);
out:
    rtlog_buf_free(&s.line);
    rtlog_cli_chain_free(&s.chain);
    return rc;
}
