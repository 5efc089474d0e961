/* retention.c - the dashboard's retention worker: policy (where to cut) and its thread.
 *
 * The cut is the larger of the count cut (keep the newest keep_events) and the age cut
 * (the prefix of events older than keep_ms). The age scan reads forward from the first
 * retained event and stops at the first event that is known to be young enough, so it
 * touches only what is about to go plus one event; times come from the events themselves
 * because the store keeps none. The store enforces the rest (whole entries, never the
 * latest metric_update). The thread owns no socket and never touches lws: the lws thread
 * never waits for a trim's fsync (DESIGN invariant 4).
 */
#define RTLOG_LOG_TAG "retention"
#include "retention.h"

#include "log.h"
#include "rtlog_schema.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEF_INTERVAL_MS 10000u
#define DEF_SCAN_MAX    4096u
#define SCAN_CHUNK      256u

struct rtlog_retention {
    rtlog_retention_opts o;
    char stream[RTLOG_STREAM_MAX];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    int stop;
    rtlog_retention_stats stats;
};

/* ---- event times ---------------------------------------------------------------------- */

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int rtlog_retention_time_ms(const char *s, size_t len, int64_t *out)
{
    int Y, M, D, h, m, sec;
    if (len < 20 || digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-' ||
        digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &m) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return -1;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return -1;
    size_t i = 19;
    int ms = 0;
    if (s[i] == '.') {
        size_t f = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (i - f < 3)
                ms = ms * 10 + (s[i] - '0');
            i++;
        }
        if (i == f)
            return -1;
        for (size_t k = i - f; k < 3; k++)
            ms *= 10;
    }
    int64_t off_s = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        off_s = (int64_t)(oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
        i += 6;
    } else {
        return -1;
    }
    if (i != len)
        return -1;
    struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h,
                    .tm_min = m, .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = ((int64_t)t - off_s) * 1000 + ms;
    return 0;
}

/* An event's time: its top-level `timestamp` (every metric_update has one, the server fills
 * it), else an alert's alert.timestamp (the spec's alert carries it there). -1 = none. */
static int event_time(const rtlog_event_view *ev, rtlog_buf *scratch, int64_t *out)
{
    const char *v;
    size_t vl;
    if (rtlog_schema_rec_field_str(ev->mp, ev->mp_len, "timestamp", &v, &vl) == RTLOG_OK)
        return rtlog_retention_time_ms(v, vl, out);
    const char *type;
    size_t tl;
    if (rtlog_schema_rec_type(ev->mp, ev->mp_len, &type, &tl) != RTLOG_OK || tl != 5 ||
        memcmp(type, "alert", 5))
        return -1;
    rtlog_buf_clear(scratch);
    if (rtlog_schema_render(ev->mp, ev->mp_len, 0, 0, scratch) != RTLOG_OK)
        return -1;
    json_t *doc = json_loadb(scratch->p, scratch->len, JSON_ALLOW_NUL, NULL);
    json_t *ts = json_object_get(json_object_get(doc, "alert"), "timestamp");
    int rc = json_is_string(ts)
                 ? rtlog_retention_time_ms(json_string_value(ts), json_string_length(ts), out)
                 : -1;
    json_decref(doc);
    return rc;
}

/* ---- the cut -------------------------------------------------------------------------- */

struct scan {
    int64_t cutoff_ms; /* events with a time before this are too old */
    uint64_t cut;      /* trim before this */
    size_t seen, max;
    int done;          /* met a young enough event, or the scan limit */
    rtlog_buf scratch;
};

static int scan_cb(void *ctx, const rtlog_event_view *ev)
{
    struct scan *sc = ctx;
    int64_t t;
    sc->seen++;
    if (event_time(ev, &sc->scratch, &t) == 0) {
        if (t >= sc->cutoff_ms) {
            sc->done = 1;
            return 1;
        }
        sc->cut = ev->seq + 1; /* this one and every event before it are too old */
    }
    if (sc->seen >= sc->max) {
        sc->done = 1;
        return 1;
    }
    return 0;
}

rtlog_err rtlog_retention_cut(rtlog_store *st, const rtlog_stream_info *info,
                              const rtlog_retention_opts *o, uint64_t now_ms, size_t scan_max,
                              uint64_t *cut, rtlog_errinfo *ei)
{
    uint64_t c = info->first_seq;
    if (o->keep_events && info->event_count > o->keep_events + o->keep_events / 16 &&
        info->last_seq >= o->keep_events)
        c = info->last_seq - o->keep_events + 1;
    if (o->keep_ms && now_ms > o->keep_ms) {
        struct scan sc = {.cutoff_ms = (int64_t)(now_ms - o->keep_ms),
                          .cut = info->first_seq,
                          .max = scan_max ? scan_max : DEF_SCAN_MAX};
        uint64_t from = c > info->first_seq ? c : info->first_seq; /* the count cut goes anyway */
        sc.cut = from;
        rtlog_err rc = RTLOG_OK;
        while (!sc.done && from <= info->last_seq) {
            uint64_t next = from;
            rc = rtlog_store_read(st, info->stream, from, SCAN_CHUNK, 0, scan_cb, &sc, &next, ei);
            if (rc != RTLOG_OK || next <= from)
                break;
            from = next;
        }
        rtlog_buf_free(&sc.scratch);
        if (rc != RTLOG_OK)
            return rc;
        if (sc.cut > c)
            c = sc.cut;
    }
    *cut = c;
    return RTLOG_OK;
}

/* ---- the worker ----------------------------------------------------------------------- */

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void check_once(rtlog_retention *r)
{
    rtlog_stream_info info;
    rtlog_errinfo ei = {0};
    uint64_t cut = 0;
    rtlog_err rc = rtlog_store_describe(r->o.store, r->stream, &info, &ei);
    if (rc == RTLOG_E_NOTFOUND)
        return; /* not created yet (the server creates the dashboard at start) */
    if (rc == RTLOG_OK)
        rc = rtlog_retention_cut(r->o.store, &info, &r->o, wall_ms(), 0, &cut, &ei);
    rtlog_trim_res tr = {info.first_seq, 0};
    if (rc == RTLOG_OK && cut > info.first_seq)
        rc = rtlog_store_trim(r->o.store, r->stream, cut, &tr, &ei);
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
    free(r);
}
