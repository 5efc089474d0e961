/* retention.h - the dashboard's retention worker (server-internal).
 *
 * A small thread that, every interval, looks at one stream's metadata and, when it holds
 * more events than the count limit or events appended longer ago than the age limit, calls
 * rtlog_store_trim(). It runs beside the lws thread, so the service thread never waits for
 * the trim's fsync, and talks to nobody else: subscribers learn of a trim from their next
 * read (replay's in-band reset), new subscribers from describe.
 * Source: README "Dashboard retention"; CONTRACT.md "Resuming".
 */
#ifndef RTLOG_RETENTION_H
#define RTLOG_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "rtlog_err.h"
#include "rtlog_store.h"

typedef struct rtlog_retention rtlog_retention; /* opaque */

typedef struct rtlog_retention_opts {
    rtlog_store *store;   /* borrowed; must outlive the worker (stop it before closing) */
    const char *stream;   /* canonical stream name; copied */
    uint64_t keep_events; /* count limit; 0 = none. Trimmed back to this once the stream
                           * holds more than keep_events + keep_events / 16 (one write txn
                           * per 1/16th rather than one per append) */
    uint64_t keep_ms;     /* age limit in ms; 0 = none. Age = time since the event was
                           * appended, as the worker saw it (see retention.c); events already
                           * stored when the worker starts count as appended then */
    uint64_t interval_ms; /* time between checks; 0 = 10 s */
} rtlog_retention_opts;

/* Counters for /metrics (read under the worker's lock). */
typedef struct rtlog_retention_stats {
    uint64_t trims;         /* trims that removed events */
    uint64_t events;        /* events removed in total */
    uint64_t failures;      /* checks or trims that failed (logged) */
    uint64_t first_seq;     /* the stream's earliest retained seq at the last check */
} rtlog_retention_stats;

/**
 * rtlog_retention_start() - start the worker when a limit is set.
 * @out: NULL when both limits are 0 (nothing to do, no thread); else owned, stop with
 *       rtlog_retention_stop(). Errors: RTLOG_E_NOMEM (no memory or no thread).
 */
rtlog_err rtlog_retention_start(const rtlog_retention_opts *o, rtlog_retention **out);

/* Copy the counters. NULL @r gives zeros. Any thread. */
void rtlog_retention_get_stats(rtlog_retention *r, rtlog_retention_stats *out);

/* Stop and join the worker (waits for a trim in progress), free it. NULL is a no-op. */
void rtlog_retention_stop(rtlog_retention *r);

#endif
