/* ui_list.c - GET /api/v1/streams: the newest streams a token may subscribe to.
 *
 * The index page of the browser UI needs "recent runs and jobs"; the store keeps streams
 * sorted by name only (rtlog_store_list()), so one pass over all of them keeps the best
 * `limit` by creation time in a small sorted array (binary search + memmove). Memory is
 * bounded by the limit, not by the number of streams; the store reads in bounded chunks,
 * so no LMDB snapshot is held for long. Pure: no lws, so it is unit-testable.
 */
#include "ui.h"

#include "rtlog_buf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

rtlog_err rtlog_list_query_parse(const char *kind, const char *limit, rtlog_list_query *q,
                                 const char **why)
{
    static const rtlog_kind kinds[] = {RTLOG_KIND_RUN, RTLOG_KIND_JOB, RTLOG_KIND_AGENT,
                                       RTLOG_KIND_DASHBOARD};
    q->kind = RTLOG_KIND_NONE;
    q->limit = RTLOG_LIST_DEFAULT;
    if (kind) {
        size_t k = 0;
        while (k < sizeof kinds / sizeof kinds[0] && strcmp(kind, rtlog_kind_name(kinds[k])))
            k++;
        if (k == sizeof kinds / sizeof kinds[0]) {
            *why = "kind must be workflow-runs, deployment-jobs, agents or dashboard";
            return RTLOG_E_INVAL;
        }
        q->kind = kinds[k];
    }
    if (limit) {
        unsigned v = 0;
        size_t n = strlen(limit);
        for (size_t i = 0; i < n; i++) {
            if (limit[i] < '0' || limit[i] > '9' || v > RTLOG_LIST_MAX) {
                v = 0;
                break;
            }
            v = v * 10 + (unsigned)(limit[i] - '0');
        }
        if (n == 0 || v < 1 || v > RTLOG_LIST_MAX) {
            *why = "limit must be a whole number from 1 to 1000";
            return RTLOG_E_INVAL;
        }
        q->limit = v;
    }
    return RTLOG_OK;
}

struct top {
    const rtlog_list_query *q;
    rtlog_list_filter allow;
    void *ctx;
    rtlog_stream_info *v; /* newest first; at most q->limit */
    size_t n;
    int truncated;
    int nomem;
};

/* Does @a come before @b in the answer? Newer first, then by name (stable pages). */
static int before(const rtlog_stream_info *a, const rtlog_stream_info *b)
{
    if (a->created_ms != b->created_ms)
        return a->created_ms > b->created_ms;
    return strcmp(a->stream, b->stream) < 0;
}

static int keep(void *ctx, const rtlog_stream_info *info)
{
    struct top *t = ctx;
    if (t->q->kind != RTLOG_KIND_NONE && info->kind != t->q->kind)
        return 0;
    if (!t->allow(t->ctx, info->stream))
        return 0;
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (before(&t->v[mid], info))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (t->n == t->q->limit) {
        t->truncated = 1;
        if (lo == t->n)
            return 0; /* older than every kept one */
        t->n--;       /* the oldest kept one drops out */
    }
    memmove(&t->v[lo + 1], &t->v[lo], (t->n - lo) * sizeof *t->v);
    t->v[lo] = *info;
    t->n++;
    return 0;
}

static void rfc3339_ms(uint64_t ms, char out[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(ms % 1000));
}

static json_t *entry(const rtlog_stream_info *s)
{
    char ts[32];
    const char *id = strchr(s->stream, '/');
    rfc3339_ms(s->created_ms, ts);
    /* the status is event data: json_string() is NULL for bytes that are not UTF-8 */
    json_t *status = s->final_status[0] ? json_string(s->final_status) : NULL;
    json_t *o = json_object();
    if (!o) {
        json_decref(status);
        return NULL;
    }
    int bad = json_object_set_new(o, "stream", json_string(s->stream)) ||
              json_object_set_new(o, "kind", json_string(rtlog_kind_name(s->kind))) ||
              json_object_set_new(o, "id", id ? json_string(id + 1) : json_null()) ||
              json_object_set_new(o, "createdAt", json_string(ts)) ||
              json_object_set_new(o, "lastSeq", json_integer((json_int_t)s->last_seq)) ||
              json_object_set_new(o, "events", json_integer((json_int_t)s->event_count)) ||
              json_object_set_new(o, "sealed", json_boolean(s->sealed)) ||
              json_object_set_new(o, "status", status ? status : json_null());
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

rtlog_err rtlog_list_json(rtlog_store *st, const rtlog_list_query *q, rtlog_list_filter allow,
                          void *ctx, rtlog_buf *out)
{
    struct top t = {.q = q, .allow = allow, .ctx = ctx};
    if (q->limit < 1 || q->limit > RTLOG_LIST_MAX)
        return RTLOG_E_INVAL;
    t.v = malloc(q->limit * sizeof *t.v);
    if (!t.v)
        return RTLOG_E_NOMEM;
    rtlog_errinfo ei = {0};
    rtlog_err rc = rtlog_store_list(st, keep, &t, &ei);
    if (rc != RTLOG_OK) {
        free(t.v);
        return rc;
    }
    json_t *arr = json_array();
    json_t *doc = json_object();
    rc = arr && doc ? RTLOG_OK : RTLOG_E_NOMEM;
    for (size_t i = 0; rc == RTLOG_OK && i < t.n; i++)
        if (json_array_append_new(arr, entry(&t.v[i])))
            rc = RTLOG_E_NOMEM;
    free(t.v);
    if (rc == RTLOG_OK && (json_object_set(doc, "streams", arr) ||
                           json_object_set_new(doc, "truncated", json_boolean(t.truncated))))
        rc = RTLOG_E_NOMEM;
    char *s = rc == RTLOG_OK ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(arr);
    json_decref(doc);
    if (rc == RTLOG_OK && !s)
        rc = RTLOG_E_NOMEM;
    if (rc == RTLOG_OK)
        rc = rtlog_buf_puts(out, s);
    free(s);
    return rc;
}
