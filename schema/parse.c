/* parse.c - ingest bodies (one object, an array, or NDJSON) to validated, stored-form
 * records: the only way an event gets into rtlog (CONTRACT.md "Ingest").
 *
 * jansson does the JSON work (UTF-8 checks, duplicate keys, numbers), then each event is
 * checked against its type's field table (realtime-api.md message types), packed with
 * msgpack-c in producer key order, and rendered once with render.c to get rec.json, so the
 * JSON that the hash chain covers is by construction what every later render gives back.
 * A batch is all or nothing: on any error nothing is returned and @ei names the event
 * index and the field. All records of a batch live in one arena (batch->priv) so the
 * caller frees a batch with two free() calls, however many events it holds.
 */
#include "rtlog_schema.h"
#include "schema_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <msgpack.h>

/* ---- field tables (realtime-api.md, one table per family) ------------------------------ */

enum ftype { F_STR, F_NUM, F_INT, F_OBJ, F_BOOL };
#define F_REQ 0x1u /* required */
#define F_PCT 0x2u /* a number in [0, 100] */

struct fdef {
    const char *name; /* "nodeId", or "task.taskId" for a field of a (required) object */
    unsigned char type;
    unsigned char flags;
};

struct tdef {
    const char *name;
    uint32_t flags; /* RTLOG_REC_SEALS / _SNAPSHOT */
    int fill_ts;    /* 1: the spec's example has a top-level timestamp; fill when missing */
    const struct fdef *f;
    size_t nf;
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct fdef run_started[] = {{"nodeId", F_STR, F_REQ}, {"stepType", F_STR, F_REQ}};
static const struct fdef run_progress[] = {
    {"nodeId", F_STR, F_REQ}, {"progress", F_NUM, F_REQ | F_PCT}, {"message", F_STR, 0}};
static const struct fdef run_log[] = {
    {"nodeId", F_STR, F_REQ}, {"line", F_STR, F_REQ}, {"level", F_STR, F_REQ}};
static const struct fdef run_completed[] = {{"nodeId", F_STR, F_REQ},
                                            {"status", F_STR, F_REQ},
                                            {"outputs", F_OBJ, 0},
                                            {"duration", F_NUM, 0}};
static const struct fdef wf_completed[] = {
    {"status", F_STR, F_REQ}, {"duration", F_NUM, 0}, {"outputs", F_OBJ, 0}};

static const struct tdef run_types[] = {
    {"step_started", 0, 1, run_started, N(run_started)},
    {"step_progress", 0, 0, run_progress, N(run_progress)},
    {"step_log", 0, 1, run_log, N(run_log)},
    {"step_completed", 0, 1, run_completed, N(run_completed)},
    {"workflow_completed", RTLOG_REC_SEALS, 1, wf_completed, N(wf_completed)},
};

static const struct fdef job_started[] = {{"taskId", F_STR, F_REQ},
                                          {"targetId", F_STR, F_REQ},
                                          {"taskType", F_STR, F_REQ},
                                          {"targetName", F_STR, 0}};
static const struct fdef job_progress[] = {
    {"taskId", F_STR, F_REQ}, {"progress", F_NUM, F_REQ | F_PCT}, {"message", F_STR, 0}};
static const struct fdef job_log[] = {
    {"taskId", F_STR, F_REQ}, {"line", F_STR, F_REQ}, {"level", F_STR, 0}};
static const struct fdef job_task_completed[] = {{"taskId", F_STR, F_REQ},
                                                 {"status", F_STR, F_REQ},
                                                 {"targetId", F_STR, 0},
                                                 {"duration", F_NUM, 0},
                                                 {"result", F_OBJ, 0}};
static const struct fdef job_completed[] = {{"status", F_STR, F_REQ},
                                            {"targetsDeployed", F_INT, 0},
                                            {"targetsFailed", F_INT, 0},
                                            {"duration", F_NUM, 0}};

static const struct tdef job_types[] = {
    {"task_started", 0, 1, job_started, N(job_started)},
    {"task_progress", 0, 0, job_progress, N(job_progress)},
    {"task_log", 0, 0, job_log, N(job_log)},
    {"task_completed", 0, 1, job_task_completed, N(job_task_completed)},
    {"job_completed", RTLOG_REC_SEALS, 1, job_completed, N(job_completed)},
};

static const struct fdef ag_assigned[] = {
    {"task", F_OBJ, F_REQ},     {"task.taskId", F_STR, F_REQ},  {"task.taskType", F_STR, F_REQ},
    {"task.payload", F_OBJ, 0}, {"task.credentials", F_OBJ, 0}, {"task.timeout", F_NUM, 0},
    {"jobId", F_STR, 0},        {"targetId", F_STR, 0},         {"targetName", F_STR, 0}};
static const struct fdef ag_cancelled[] = {{"taskId", F_STR, F_REQ}, {"reason", F_STR, 0}};

static const struct tdef agent_task_types[] = {
    {"task_assigned", 0, 0, ag_assigned, N(ag_assigned)},
    {"task_cancelled", 0, 0, ag_cancelled, N(ag_cancelled)},
};

static const struct fdef rep_progress[] = {
    {"taskId", F_STR, F_REQ}, {"progress", F_NUM, F_REQ | F_PCT}, {"message", F_STR, 0}};
static const struct fdef rep_log[] = {
    {"taskId", F_STR, F_REQ}, {"message", F_STR, F_REQ}, {"level", F_STR, 0}};
static const struct fdef rep_completed[] = {
    {"taskId", F_STR, F_REQ}, {"success", F_BOOL, F_REQ}, {"result", F_OBJ, 0}};

static const struct tdef agent_report_types[] = {
    {"task_progress", 0, 0, rep_progress, N(rep_progress)},
    {"task_log", 0, 0, rep_log, N(rep_log)},
    {"task_completed", 0, 0, rep_completed, N(rep_completed)},
};

static const struct fdef dash_metric[] = {{"metrics", F_OBJ, F_REQ}};
static const struct fdef dash_alert[] = {{"alert", F_OBJ, F_REQ}, {"alert.severity", F_STR, F_REQ}};
static const struct fdef dash_promo[] = {{"promotion", F_OBJ, F_REQ},
                                         {"promotion.id", F_STR, F_REQ},
                                         {"promotion.status", F_STR, F_REQ}};

static const struct tdef dash_types[] = {
    {"metric_update", RTLOG_REC_SNAPSHOT, 1, dash_metric, N(dash_metric)},
    {"alert", 0, 0, dash_alert, N(dash_alert)},
    {"promotion_update", 0, 0, dash_promo, N(dash_promo)},
};

static const struct {
    const struct tdef *t;
    size_t n;
    const char *what; /* for "unknown event type" messages */
} families[] = {
    [RTLOG_FAM_RUN] = {run_types, N(run_types), "a workflow-runs stream"},
    [RTLOG_FAM_JOB] = {job_types, N(job_types), "a deployment-jobs stream"},
    [RTLOG_FAM_AGENT_TASK] = {agent_task_types, N(agent_task_types), "an agent task stream"},
    [RTLOG_FAM_AGENT_REPORT] = {agent_report_types, N(agent_report_types), "an agent report"},
    [RTLOG_FAM_DASHBOARD] = {dash_types, N(dash_types), "the dashboard stream"},
};

static int family_ok(rtlog_family f)
{
    return (unsigned)f < N(families) && families[f].t != NULL;
}

static const struct tdef *find_type(rtlog_family fam, const char *type, size_t len)
{
    if (!family_ok(fam))
        return NULL;
    for (size_t i = 0; i < families[fam].n; i++) {
        const struct tdef *t = &families[fam].t[i];
        if (strlen(t->name) == len && memcmp(t->name, type, len) == 0)
            return t;
    }
    return NULL;
}

uint32_t rtlog_schema_type_flags(rtlog_family family, const char *type)
{
    if (!type)
        return 0;
    const struct tdef *t = find_type(family, type, strlen(type));
    return t ? t->flags : 0;
}

/* ---- small helpers ---------------------------------------------------------------------- */

void schema_ascii_excerpt(char *dst, size_t cap, const char *s, size_t n)
{
    if (cap == 0)
        return;
    size_t take = n, o = 0;
    int cut = n > cap - 1 && cap >= 4;
    if (n > cap - 1)
        take = cut ? cap - 4 : cap - 1;
    for (size_t i = 0; i < take; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    if (cut) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

char *rtlog_schema_now(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    return out;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "an unknown value";
}

static const char *ftype_name(unsigned char t)
{
    switch (t) {
    case F_STR:
        return "a string";
    case F_NUM:
        return "a number";
    case F_INT:
        return "an integer";
    case F_OBJ:
        return "an object";
    default:
        return "a boolean";
    }
}

static int ftype_ok(unsigned char t, const json_t *v)
{
    switch (t) {
    case F_STR:
        return json_is_string(v);
    case F_NUM:
        return json_is_number(v);
    case F_INT:
        return json_is_integer(v);
    case F_OBJ:
        return json_is_object(v);
    default:
        return json_is_boolean(v);
    }
}

/* The value at "a" or "a.b" (b inside object a), or NULL. */
static json_t *get_path(json_t *obj, const char *name)
{
    const char *dot = strchr(name, '.');
    if (!dot)
        return json_object_get(obj, name);
    json_t *parent = json_object_getn(obj, name, (size_t)(dot - name));
    return json_is_object(parent) ? json_object_get(parent, dot + 1) : NULL;
}

/* ---- packing ------------------------------------------------------------------------------ */

enum { PK_OK = 0, PK_NOMEM = -1, PK_DEEP = -2 };

/* Pack @v; a container here would be at nesting level @depth (event object = 1). */
static int pack_value(msgpack_packer *pk, json_t *v, int depth)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (depth > SCHEMA_MAX_DEPTH)
            return PK_DEEP;
        const char *k;
        size_t kl;
        json_t *x;
        if (msgpack_pack_map(pk, json_object_size(v)))
            return PK_NOMEM;
        json_object_keylen_foreach(v, k, kl, x)
        {
            if (msgpack_pack_str(pk, kl) || msgpack_pack_str_body(pk, k, kl))
                return PK_NOMEM;
            int rc = pack_value(pk, x, depth + 1);
            if (rc)
                return rc;
        }
        return PK_OK;
    }
    case JSON_ARRAY: {
        if (depth > SCHEMA_MAX_DEPTH)
            return PK_DEEP;
        size_t n = json_array_size(v);
        if (msgpack_pack_array(pk, n))
            return PK_NOMEM;
        for (size_t i = 0; i < n; i++) {
            int rc = pack_value(pk, json_array_get(v, i), depth + 1);
            if (rc)
                return rc;
        }
        return PK_OK;
    }
    case JSON_STRING: {
        size_t n = json_string_length(v);
        return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, json_string_value(v), n)
                   ? PK_NOMEM
                   : PK_OK;
    }
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, (int64_t)json_integer_value(v)) ? PK_NOMEM : PK_OK;
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(v)) ? PK_NOMEM : PK_OK;
    case JSON_TRUE:
        return msgpack_pack_true(pk) ? PK_NOMEM : PK_OK;
    case JSON_FALSE:
        return msgpack_pack_false(pk) ? PK_NOMEM : PK_OK;
    case JSON_NULL:
        return msgpack_pack_nil(pk) ? PK_NOMEM : PK_OK;
    }
    return PK_NOMEM;
}

/* ---- the batch being built ----------------------------------------------------------- */

struct pstate {
    const rtlog_parse_opts *o;
    size_t max_event_bytes, max_events;
    const char *now; /* filled timestamp, same for the whole batch */
    size_t now_len;
    rtlog_buf arena; /* every record's mp and json bytes, back to back */
    rtlog_rec *recs;
    size_t *offs; /* per record: mp offset, json offset (pointers are set at the end,
                   * once the arena has stopped moving) */
    size_t n, cap;
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static rtlog_err grow_recs(struct pstate *st)
{
    if (st->n < st->cap)
        return RTLOG_OK;
    size_t cap = st->cap ? st->cap * 2 : 16;
    rtlog_rec *r = realloc(st->recs, cap * sizeof *r);
    if (!r)
        return RTLOG_E_NOMEM;
    st->recs = r;
    size_t *o = realloc(st->offs, cap * 2 * sizeof *o);
    if (!o)
        return RTLOG_E_NOMEM;
    st->offs = o;
    st->cap = cap;
    return RTLOG_OK;
}

/* Copy @s (@n bytes) into @dst[32] for rec.status: at most 31 bytes, stopping at an embedded
 * NUL, and never ending inside a UTF-8 sequence. */
static void copy_status(char dst[32], const char *s, size_t n)
{
    size_t len = 0;
    while (len < n && len < 31 && s[len] != '\0')
        len++;
    if (len < n && s[len] != '\0') {
        /* cut: step back over a partial multi-byte sequence at the end */
        size_t k = len;
        while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
            k--;
        len = k;
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
}

/* Validate one event object and append its record. @idx names it in errors. */
static rtlog_err add_event(struct pstate *st, json_t *ev, long idx, rtlog_errinfo *ei)
{
    rtlog_family fam = st->o->family;
    if (st->n >= st->max_events)
        return rtlog_errinfo_set(ei, RTLOG_E_TOOBIG, -1, NULL, "more than %zu events in one batch",
                                 st->max_events);
    if (!json_is_object(ev))
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, idx, NULL, "expected a JSON object, got %s",
                                 json_kind(ev));

    json_t *jt = json_object_get(ev, "type");
    if (!jt)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, idx, "type", "missing required field");
    if (!json_is_string(jt))
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, idx, "type", "expected a string, got %s",
                                 json_kind(jt));
    const struct tdef *t = find_type(fam, json_string_value(jt), json_string_length(jt));
    if (!t) {
        char ex[40], list[160];
        size_t o = 0;
        schema_ascii_excerpt(ex, sizeof ex, json_string_value(jt), json_string_length(jt));
        list[0] = '\0';
        for (size_t i = 0; i < families[fam].n; i++)
            o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "",
                                  families[fam].t[i].name);
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, idx, "type",
                                 "unknown event type \"%s\" for %s (expected one of: %s)", ex,
                                 families[fam].what, list);
    }

    for (size_t i = 0; i < t->nf; i++) {
        const struct fdef *f = &t->f[i];
        json_t *v = get_path(ev, f->name);
        if (!v) {
            if (f->flags & F_REQ)
                return rtlog_errinfo_set(ei, RTLOG_E_INVAL, idx, f->name, "missing required field");
            continue;
        }
        if (!ftype_ok(f->type, v))
            return rtlog_errinfo_set(ei, RTLOG_E_INVAL, idx, f->name, "expected %s, got %s",
                                     ftype_name(f->type), json_kind(v));
        if ((f->flags & F_PCT) && !(json_number_value(v) >= 0 && json_number_value(v) <= 100))
            return rtlog_errinfo_set(ei, RTLOG_E_INVAL, idx, f->name,
                                     "must be a number from 0 to 100, got %g",
                                     json_number_value(v));
    }
    json_t *ts = json_object_get(ev, "timestamp");
    if (ts && !json_is_string(ts))
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, idx, "timestamp", "expected a string, got %s",
                                 json_kind(ts));
    /* Delivered events gain "seq" as their last key; a producer's own "seq" would make
     * that line carry the key twice. */
    if (json_object_get(ev, "seq"))
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, idx, "seq",
                                 "is reserved: the server assigns each event's seq");

    /* stored form: producer keys in order, then the filled timestamp */
    int fill = t->fill_ts && !ts;
    msgpack_sbuffer_clear(&st->sb);
    if (msgpack_pack_map(&st->pk, json_object_size(ev) + (fill ? 1 : 0)))
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, idx, NULL, "out of memory");
    const char *k;
    size_t kl;
    json_t *x;
    json_object_keylen_foreach(ev, k, kl, x)
    {
        int rc = msgpack_pack_str(&st->pk, kl) || msgpack_pack_str_body(&st->pk, k, kl)
                     ? PK_NOMEM
                     : pack_value(&st->pk, x, 2);
        if (rc == PK_DEEP) {
            char fname[48];
            schema_ascii_excerpt(fname, sizeof fname, k, kl);
            return rtlog_errinfo_set(ei, RTLOG_E_INVAL, idx, fname, "nested deeper than %d levels",
                                     SCHEMA_MAX_DEPTH);
        }
        if (rc)
            return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, idx, NULL, "out of memory");
    }
    if (fill && (msgpack_pack_str(&st->pk, 9) || msgpack_pack_str_body(&st->pk, "timestamp", 9) ||
                 msgpack_pack_str(&st->pk, st->now_len) ||
                 msgpack_pack_str_body(&st->pk, st->now, st->now_len)))
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, idx, NULL, "out of memory");

    rtlog_err rc = grow_recs(st);
    if (rc)
        return rtlog_errinfo_set(ei, rc, idx, NULL, "out of memory");
    size_t json_off = st->arena.len;
    rc = rtlog_schema_render(st->sb.data, st->sb.size, 0, RTLOG_JSON_REDACT, &st->arena);
    if (rc == RTLOG_E_NOMEM)
        return rtlog_errinfo_set(ei, rc, idx, NULL, "out of memory");
    if (rc) /* cannot happen for what we just packed; refuse rather than store it */
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, idx, NULL, "event cannot be stored: %s",
                                 rtlog_strerror(rc));
    size_t json_len = st->arena.len - json_off;
    if (json_len > st->max_event_bytes)
        return rtlog_errinfo_set(ei, RTLOG_E_TOOBIG, idx, NULL,
                                 "event is %zu bytes as JSON, over the limit of %zu", json_len,
                                 st->max_event_bytes);
    size_t mp_off = st->arena.len;
    if (rtlog_buf_append(&st->arena, st->sb.data, st->sb.size))
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, idx, NULL, "out of memory");

    rtlog_rec *r = &st->recs[st->n];
    memset(r, 0, sizeof *r);
    r->mp_len = st->sb.size;
    r->json_len = json_len;
    r->type = t->name; /* static string: outlives every batch */
    r->flags = t->flags;
    /* the one secret the spec has; render.c redacts exactly this (type task_assigned) */
    if (t->f == ag_assigned && json_object_get(json_object_get(ev, "task"), "credentials"))
        r->flags |= RTLOG_REC_SECRET;
    if (t->flags & RTLOG_REC_SEALS) {
        json_t *s = json_object_get(ev, "status");
        copy_status(r->status, json_string_value(s), json_string_length(s));
    }
    st->offs[2 * st->n] = mp_off;
    st->offs[2 * st->n + 1] = json_off;
    st->n++;
    return RTLOG_OK;
}

/* jansson's error as our text. @line/@col: where to point the reader (1-based line). */
static rtlog_err json_error(rtlog_errinfo *ei, long idx, int line, int col, const json_error_t *je)
{
    char text[JSON_ERROR_TEXT_LENGTH];
    schema_ascii_excerpt(text, sizeof text, je->text, strnlen(je->text, sizeof je->text - 1));
    return rtlog_errinfo_set(ei, RTLOG_E_INVAL, idx, NULL, "invalid JSON at line %d column %d: %s",
                             line, col, text);
}

/* Line (1-based) and column (bytes consumed on that line, as jansson counts them for ASCII)
 * of absolute byte offset @abs: the error lies in the byte just before @abs. */
static void line_col(const char *body, size_t abs, int *line, int *col)
{
    int l = 1;
    size_t start = 0;
    for (size_t i = 0; i + 1 < abs; i++)
        if (body[i] == '\n') {
            l++;
            start = i + 1;
        }
    *line = l;
    *col = (int)(abs - start);
}

#define JFLAGS (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY)

static rtlog_err parse_ndjson(struct pstate *st, const char *body, size_t len, rtlog_errinfo *ei)
{
    const char *p = body, *end = body + len;
    long idx = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        if (le > p && le[-1] == '\r')
            le--;
        const char *q = p;
        while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q == le) { /* blank line */
            p = next;
            continue;
        }
        json_error_t je;
        json_t *ev = json_loadb(p, (size_t)(le - p), JFLAGS, &je);
        if (!ev) /* the event is one line: jansson's line/column are within it */
            return json_error(ei, idx, je.line, je.column, &je);
        rtlog_err rc = add_event(st, ev, idx, ei);
        json_decref(ev);
        if (rc)
            return rc;
        idx++;
        p = next;
    }
    return RTLOG_OK;
}

static size_t skip_ws(const char *body, size_t len, size_t off)
{
    while (off < len &&
           (body[off] == ' ' || body[off] == '\t' || body[off] == '\n' || body[off] == '\r'))
        off++;
    return off;
}

/* A JSON array body is read one element at a time (JSON_DISABLE_EOF_CHECK stops jansson
 * after each value), so a syntax error names the event it is in and the whole array never
 * exists as one jansson tree next to its records. */
static rtlog_err parse_array(struct pstate *st, const char *body, size_t len, size_t off,
                             rtlog_errinfo *ei)
{
    int line, col;
    long idx = 0;
    off = skip_ws(body, len, off + 1); /* past '[' */
    if (off < len && body[off] == ']')
        goto end;
    for (;;) {
        json_error_t je;
        json_t *ev = json_loadb(body + off, len - off, JFLAGS | JSON_DISABLE_EOF_CHECK, &je);
        if (!ev) {
            line_col(body, off + (size_t)je.position, &line, &col);
            return json_error(ei, idx, line, col, &je);
        }
        rtlog_err rc = add_event(st, ev, idx, ei);
        json_decref(ev);
        if (rc)
            return rc;
        /* only objects get here, and jansson stops right after their '}' */
        off = skip_ws(body, len, off + (size_t)je.position);
        if (off < len && body[off] == ',') {
            off = skip_ws(body, len, off + 1);
            idx++;
            continue;
        }
        if (off < len && body[off] == ']')
            break;
        line_col(body, off + 1, &line, &col);
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, idx, NULL,
                                 "invalid JSON at line %d column %d: ',' or ']' expected "
                                 "after the event",
                                 line, col);
    }
end:
    off = skip_ws(body, len, off + 1); /* past ']' */
    if (off < len) {
        line_col(body, off + 1, &line, &col);
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL,
                                 "invalid JSON at line %d column %d: end of file expected "
                                 "after the array",
                                 line, col);
    }
    return RTLOG_OK;
}

static rtlog_err parse_doc(struct pstate *st, const char *body, size_t len, rtlog_errinfo *ei)
{
    size_t off = skip_ws(body, len, 0);
    if (off < len && body[off] == '[')
        return parse_array(st, body, len, off, ei);

    json_error_t je;
    int is_obj = off < len && body[off] == '{';
    json_t *doc = json_loadb(body, len, JFLAGS, &je);
    if (!doc)
        return json_error(ei, is_obj ? 0 : -1, je.line, je.column, &je);
    rtlog_err rc;
    if (json_is_object(doc))
        rc = add_event(st, doc, 0, ei);
    else
        rc = rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL,
                               "body must be a JSON object or an array of objects, got %s",
                               json_kind(doc));
    json_decref(doc);
    return rc;
}

/* Set up @st for one batch. Returns RTLOG_OK or RTLOG_E_INVAL (with @ei). */
static rtlog_err pstate_init(struct pstate *st, const rtlog_parse_opts *o, char nowbuf[32],
                             rtlog_errinfo *ei)
{
    if (!family_ok(o->family))
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "unknown event family %d",
                                 (int)o->family);
    memset(st, 0, sizeof *st);
    st->o = o;
    st->max_event_bytes = o->max_event_bytes ? o->max_event_bytes : (size_t)1 << 20;
    st->max_events = o->max_events ? o->max_events : 100000;
    st->now = o->now ? o->now : rtlog_schema_now(nowbuf);
    st->now_len = strlen(st->now);
    msgpack_sbuffer_init(&st->sb);
    msgpack_packer_init(&st->pk, &st->sb, msgpack_sbuffer_write);
    return RTLOG_OK;
}

/* Hand the records of @st to @out (rc == RTLOG_OK) or free them. Returns @rc. */
static rtlog_err pstate_finish(struct pstate *st, rtlog_err rc, rtlog_batch *out,
                               rtlog_errinfo *ei)
{
    msgpack_sbuffer_destroy(&st->sb);
    if (rc) {
        free(st->recs);
        free(st->offs);
        rtlog_buf_free(&st->arena);
        return rc;
    }
    /* the arena no longer moves: turn offsets into pointers */
    for (size_t i = 0; i < st->n; i++) {
        st->recs[i].mp = (const uint8_t *)st->arena.p + st->offs[2 * i];
        st->recs[i].json = st->arena.p + st->offs[2 * i + 1];
    }
    free(st->offs);
    out->recs = st->recs;
    out->n = st->n;
    out->priv = st->arena.p;
    if (ei)
        rtlog_errinfo_set(ei, RTLOG_OK, -1, NULL, "ok");
    return RTLOG_OK;
}

rtlog_err rtlog_schema_parse(const rtlog_parse_opts *o, const char *body, size_t len,
                             rtlog_batch *out, rtlog_errinfo *ei)
{
    if (!o || !out || (!body && len))
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "no body");
    if (!body)
        body = "";
    struct pstate st;
    char nowbuf[32];
    rtlog_err rc = pstate_init(&st, o, nowbuf, ei);
    if (rc)
        return rc;
    rc = o->ndjson ? parse_ndjson(&st, body, len, ei) : parse_doc(&st, body, len, ei);
    return pstate_finish(&st, rc, out, ei);
}

rtlog_err rtlog_schema_parse_values(const rtlog_parse_opts *o, json_t *const *evs, size_t n,
                                    rtlog_batch *out, rtlog_errinfo *ei)
{
    if (!o || !out || (!evs && n))
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "no events");
    struct pstate st;
    char nowbuf[32];
    rtlog_err rc = pstate_init(&st, o, nowbuf, ei);
    if (rc)
        return rc;
    for (size_t i = 0; rc == RTLOG_OK && i < n; i++) {
        if (!json_is_object(evs[i]))
            rc = rtlog_errinfo_set(ei, RTLOG_E_INVAL, (long)i, NULL,
                                   "expected a JSON object, got %s", json_kind(evs[i]));
        else
            rc = add_event(&st, evs[i], (long)i, ei);
    }
    return pstate_finish(&st, rc, out, ei);
}

void rtlog_batch_free(rtlog_batch *b)
{
    if (!b)
        return;
    free(b->recs);
    free(b->priv);
    b->recs = NULL;
    b->priv = NULL;
    b->n = 0;
}
