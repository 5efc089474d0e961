/* retention.c - the dashboard's retention worker: where to cut, and its thread.
 *
 * The cut is the larger of the count cut (keep the newest keep_events) and the age cut.
 * Age is time since append, which the store does not record per event (adding it would
 * change the stored format of every event); producers' `timestamp` fields are not used
 * because they are optional (promotion_update has none), nested (alert), or set by clocks
 * we do not control, so a stale producer clock would empty the dashboard. Instead the
 * worker keeps a small in-memory list of arrival marks: (seq, time) meaning "every event up
 * to seq had been appended by then", taken at its checks on CLOCK_MONOTONIC (no wall-clock
 * jumps). An event is too old once a mark covering it is older than keep_ms, so it goes at
 * most one interval (or keep_ms / 512) late, never early. After a restart the stored
 * events are marked as appended at the restart (a restart can only lengthen their stay).
 * Marks are spaced at least max(interval, keep_ms / 512) apart, so there are at most a few
 * hundred. The store enforces the rest (whole entries, never the latest metric_update).
 * The thread owns no socket and never touches lws: the lws thread never waits for a
 * trim's fsync (DESIGN invariant 4).
 */
#define RTLOG_LOG_TAG "retention"
#include "retention.h"

#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEF_INTERVAL_MS 10000u
#define MARK_SPREAD     512u /* marks per keep_ms at most */

struct mark {
    uint64_t seq;  /* every event with seq <= this ... */
    uint64_t t_ms; /* ... had been appended by this time (CLOCK_MONOTONIC ms) */
};

struct rtlog_retention {
    rtlog_retention_opts o;
    char stream[RTLOG_STREAM_MAX];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    int stop;
    rtlog_retention_stats stats;
    /* worker-thread only */
    struct mark *marks; /* oldest first */
    size_t nmarks, cap;
    uint64_t gap_ms;    /* least time between two marks */
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Record that events up to @last_seq had arrived by @now. A mark is added only when
 * @last_seq moved and the newest mark is at least gap_ms old: events appended in between are
 * covered by the next mark, i.e. counted as younger than they are (kept longer). */
static void mark_arrivals(rtlog_retention *r, uint64_t last_seq, uint64_t now)
{
    struct mark *top = r->nmarks ? &r->marks[r->nmarks - 1] : NULL;
    if (top && (last_seq <= top->seq || now - top->t_ms < r->gap_ms))
        return;
    if (r->nmarks == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct mark *m = realloc(r->marks, cap * sizeof *m);
        if (!m)
            return; /* the next check tries again; until then these events just stay */
        r->marks = m;
        r->cap = cap;
    }
    r->marks[r->nmarks++] = (struct mark){last_seq, now};
}

/* The age cut: one past the newest mark older than keep_ms (first_seq when none). The
 * expired marks are folded into that newest one: only it matters for the cut, and while a
 * trim cannot go as far (the latest metric_update is kept) they would otherwise pile up
 * for as long as the stream lives. Marks are seq-ordered, so the last expired is the max. */
static uint64_t age_cut(rtlog_retention *r, uint64_t first_seq, uint64_t now)
{
    uint64_t cut = first_seq;
    size_t k = 0;
    while (k < r->nmarks && now - r->marks[k].t_ms >= r->o.keep_ms)
        k++;
    if (k > 1) {
        memmove(r->marks, r->marks + k - 1, (r->nmarks - k + 1) * sizeof *r->marks);
        r->nmarks -= k - 1;
        k = 1;
    }
    if (k && r->marks[0].seq + 1 > cut)
        cut = r->marks[0].seq + 1;
    return cut;
}

/* Forget marks that cover only removed events. */
static void drop_marks(rtlog_retention *r, uint64_t first_seq)
{
    size_t k = 0;
    while (k < r->nmarks && r->marks[k].seq < first_seq)
        k++;
    if (k) {
        memmove(r->marks, r->marks + k, (r->nmarks - k) * sizeof *r->marks);
        r->nmarks -= k;
    }
}

/* ---- the worker ----------------------------------------------------------------------- */

static void check_once(rtlog_retention *r)
{
    rtlog_stream_info info;
    rtlog_errinfo ei = {0};
    rtlog_err rc = rtlog_store_describe(r->o.store, r->stream, &info, &ei);
    if (rc == RTLOG_E_NOTFOUND)
        return; /* not created yet (the server creates the dashboard at start) */
    rtlog_trim_res tr = {0, 0};
    if (rc == RTLOG_OK) {
        uint64_t now = mono_ms(), cut = info.first_seq;
        tr.first_seq = info.first_seq;
        if (r->o.keep_events && info.event_count > r->o.keep_events + r->o.keep_events / 16)
            cut = info.last_seq - r->o.keep_events + 1; /* count <= last - first + 1 */
        if (r->o.keep_ms) {
            mark_arrivals(r, info.last_seq, now);
            uint64_t a = age_cut(r, info.first_seq, now);
            if (a > cut)
                cut = a;
        }
        if (cut > info.first_seq)
            rc = rtlog_store_trim(r->o.store, r->stream, cut, &tr, &ei);
        if (rc == RTLOG_OK)
            drop_marks(r, tr.first_seq);
    }
    pthread_mutex_lock(&r->mu);
    if (rc != RTLOG_OK) {
        r->stats.failures++;
    } else {
        r->stats.first_seq = tr.first_seq;
        if (tr.removed) {
            r->stats.trims++;
            r->stats.events += tr.removed;
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (rc != RTLOG_OK)
        LOG_WARN("stream=%s retention failed: %s", r->stream, ei.text);
    else if (tr.removed)
        LOG_INFO("stream=%s retention removed %" PRIu64 " events; first seq now %" PRIu64,
                 r->stream, tr.removed, tr.first_seq);
}

static void *worker_main(void *arg)
{
    rtlog_retention *r = arg;
    check_once(r); /* marks what is stored now as appended now; applies the count limit */
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += (time_t)(r->o.interval_ms / 1000);
        dl.tv_nsec += (long)(r->o.interval_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        int w = 0;
        while (!r->stop && w != ETIMEDOUT)
            w = pthread_cond_timedwait(&r->cv, &r->mu, &dl);
        if (r->stop)
            break;
        pthread_mutex_unlock(&r->mu);
        check_once(r);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

rtlog_err rtlog_retention_start(const rtlog_retention_opts *o, rtlog_retention **out)
{
    *out = NULL;
    if (!o || !o->store || !o->stream)
        return RTLOG_E_INVAL;
    if (!o->keep_events && !o->keep_ms)
        return RTLOG_OK;
    rtlog_retention *r = calloc(1, sizeof *r);
    if (!r)
        return RTLOG_E_NOMEM;
    r->o = *o;
    snprintf(r->stream, sizeof r->stream, "%s", o->stream);
    r->o.stream = r->stream;
    if (!r->o.interval_ms)
        r->o.interval_ms = DEF_INTERVAL_MS;
    r->gap_ms = r->o.keep_ms / MARK_SPREAD > r->o.interval_ms ? r->o.keep_ms / MARK_SPREAD
                                                               : r->o.interval_ms;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&r->mu, NULL);
    if (pthread_create(&r->thread, NULL, worker_main, r)) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return RTLOG_E_NOMEM;
    }
    *out = r;
    return RTLOG_OK;
}

void rtlog_retention_get_stats(rtlog_retention *r, rtlog_retention_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    *out = r->stats;
    pthread_mutex_unlock(&r->mu);
}

void rtlog_retention_stop(rtlog_retention *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r->marks);
    free(r);
}
