/* params.c - everything the server reads from a request line or header, parsed strictly.
 *
 * Paths, cursors (Last-Event-ID / lastEventId), expectedSeq, follow=, Bearer values and
 * Origin checks are all client input; each is parsed here by a small pure function with
 * no lws dependency so the whole hostile matrix of handed.md C03 is a unit test. Nothing
 * here trusts strtoull: every number is parsed digit by digit with an explicit overflow
 * check, so "-1", "+5", "0x0A", "1e3", "5.0", 20-digit and 8 KB values are refused rather
 * than wrapped or reinterpreted.
 */
#include "server_int.h"

#include <jansson.h>
#include <string.h>
#include <strings.h>

#define SEQ_MAX 9223372036854775807ull /* 2^63 - 1 */

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Digits only, at least one, value <= SEQ_MAX. */
static int parse_digits(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < '0' || c > '9')
            return -1;
        uint64_t d = (uint64_t)(c - '0');
        if (v > (SEQ_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

rtlog_err rtlog_cursor_parse(const char *s, size_t len, int *present, uint64_t *out)
{
    *present = 0;
    if (!s)
        return RTLOG_OK;
    while (len && is_ows(s[0])) {
        s++;
        len--;
    }
    while (len && is_ows(s[len - 1]))
        len--;
    if (len == 0)
        return RTLOG_OK;
    if (parse_digits(s, len, out))
        return RTLOG_E_CURSOR;
    *present = 1;
    return RTLOG_OK;
}

rtlog_err rtlog_seq_param_parse(const char *s, size_t len, uint64_t *out)
{
    return parse_digits(s, len, out) ? RTLOG_E_INVAL : RTLOG_OK;
}

rtlog_err rtlog_bool_param_parse(const char *s, size_t len, int *out)
{
    if (len == 0 || (len == 4 && !memcmp(s, "true", 4)) || (len == 1 && s[0] == '1'))
        *out = 1;
    else if ((len == 5 && !memcmp(s, "false", 5)) || (len == 1 && s[0] == '0'))
        *out = 0;
    else
        return RTLOG_E_INVAL;
    return RTLOG_OK;
}

/* token68 (RFC 7235): ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" then "="* */
static int token68_byte(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

rtlog_err rtlog_bearer_parse(const char *s, size_t len, const char **tok, size_t *tok_len)
{
    if (len < 8 || strncasecmp(s, "bearer ", 7) != 0)
        return RTLOG_E_UNAUTH;
    size_t i = 7;
    while (i < len && s[i] == ' ')
        i++;
    size_t start = i;
    while (i < len && token68_byte((unsigned char)s[i]))
        i++;
    size_t end = i;
    while (i < len && is_ows(s[i]))
        i++;
    if (end == start || i != len)
        return RTLOG_E_UNAUTH; /* empty, or something after the token ("<t> extra") */
    *tok = s + start;
    *tok_len = end - start;
    return RTLOG_OK;
}

int rtlog_origin_allowed(const char *allowlist, const char *origin, size_t origin_len)
{
    if (!allowlist || !allowlist[0])
        return 1;
    while (origin_len && origin[origin_len - 1] == '/')
        origin_len--;
    const char *p = allowlist;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '/'))
            t--;
        if ((size_t)(t - p) == origin_len && origin_len && !memcmp(p, origin, origin_len))
            return 1;
        p = e;
    }
    return 0;
}

static int has_prefix(const char *s, size_t len, const char *pre)
{
    size_t n = strlen(pre);
    return len >= n && !memcmp(s, pre, n);
}

static int has_suffix(const char *s, size_t len, const char *suf)
{
    size_t n = strlen(suf);
    return len >= n && !memcmp(s + len - n, suf, n);
}

/* "agents/<id>/task-stream" (WS or SSE), "agents/<id>/tasks" (POST) and
 * "agents/<id>/tasks/<taskId>/cancel" (POST); anything else under agents/ is ROUTE_NONE.
 * @path/@len start at "agents/". */
static void route_agent(const char *path, size_t len, route *r)
{
    const char *slash = memchr(path + 7, '/', len - 7);
    if (!slash)
        return;
    size_t name_len = (size_t)(slash - path);
    const char *rest = slash + 1;
    size_t rl = len - name_len - 1;
    if (rl == 11 && !memcmp(rest, "task-stream", 11))
        r->kind = ROUTE_STREAM;
    else if (rl == 5 && !memcmp(rest, "tasks", 5))
        r->kind = ROUTE_TASKS;
    else if (rl > 13 && !memcmp(rest, "tasks/", 6) && has_suffix(rest, rl, "/cancel"))
        r->kind = ROUTE_TASK_CANCEL;
    else
        return;
    rtlog_kind kind;
    rtlog_errinfo ei = {0};
    if (name_len >= sizeof r->stream) {
        r->stream_err = RTLOG_E_INVAL;
        snprintf(r->stream_why, sizeof r->stream_why, "stream id longer than %d bytes",
                 RTLOG_ID_MAX);
        return;
    }
    if (rtlog_stream_parse(path, name_len, &kind, NULL, NULL, &ei) != RTLOG_OK) {
        r->stream_err = RTLOG_E_INVAL;
        snprintf(r->stream_why, sizeof r->stream_why, "%s", ei.text);
        return;
    }
    memcpy(r->stream, path, name_len);
    r->stream[name_len] = '\0';
    if (r->kind == ROUTE_TASK_CANCEL) {
        const char *tid = rest + 6;
        size_t tl = rl - 6 - 7;
        if (!rtlog_task_id_valid(tid, tl)) {
            r->stream[0] = '\0';
            r->stream_err = RTLOG_E_INVAL;
            snprintf(r->stream_why, sizeof r->stream_why,
                     "task id must be 1-%d characters of [A-Za-z0-9._:-]", RTLOG_ID_MAX);
            return;
        }
        memcpy(r->task_id, tid, tl);
        r->task_id[tl] = '\0';
    }
}

void rtlog_route_parse(const char *path, size_t len, route *r)
{
    static const char *const kinds[] = {"workflow-runs/", "deployment-jobs/"};
    memset(r, 0, sizeof *r);
    /* lws hands the path with or without the leading '/' depending on the mount */
    if (len && path[0] == '/') {
        path++;
        len--;
    }
    if (len == 7 && !memcmp(path, "metrics", 7)) {
        r->kind = ROUTE_METRICS;
        return;
    }
    if (len == 11 && !memcmp(path, "health/live", 11)) {
        r->kind = ROUTE_LIVE;
        return;
    }
    if (len == 12 && !memcmp(path, "health/ready", 12)) {
        r->kind = ROUTE_READY;
        return;
    }
    if (!has_prefix(path, len, "api/v1/"))
        return;
    path += 7;
    len -= 7;

    if (has_prefix(path, len, "agents/")) {
        route_agent(path, len, r);
        return;
    }
    route_kind rk;
    size_t body_len;
    if (has_suffix(path, len, "/stream")) {
        rk = ROUTE_STREAM;
        body_len = len - 7;
    } else if (has_suffix(path, len, "/events")) {
        rk = ROUTE_EVENTS;
        body_len = len - 7;
    } else {
        return;
    }
    if (body_len == 9 && !memcmp(path, "dashboard", 9)) {
        r->kind = rk;
        memcpy(r->stream, "dashboard", 10);
        return;
    }
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (!has_prefix(path, body_len, kinds[k]))
            continue;
        r->kind = rk;
        rtlog_kind kind;
        rtlog_errinfo ei = {0};
        if (body_len >= sizeof r->stream) {
            r->stream_err = RTLOG_E_INVAL;
            snprintf(r->stream_why, sizeof r->stream_why, "stream id longer than %d bytes",
                     RTLOG_ID_MAX);
            return;
        }
        if (rtlog_stream_parse(path, body_len, &kind, NULL, NULL, &ei) != RTLOG_OK) {
            r->stream_err = RTLOG_E_INVAL;
            snprintf(r->stream_why, sizeof r->stream_why, "%s", ei.text);
            return;
        }
        memcpy(r->stream, path, body_len);
        r->stream[body_len] = '\0';
        return;
    }
}

rtlog_err rtlog_error_json(rtlog_buf *out, rtlog_err code, const char *message,
                           int last_seq_present, uint64_t last_seq)
{
    char ts[32];
    rtlog_schema_now(ts);
    json_t *msg = json_string(message ? message : rtlog_strerror(code));
    if (!msg) /* not UTF-8: never echo raw client bytes */
        msg = json_string(rtlog_strerror(code));
    json_t *o = json_object();
    if (!o || !msg) {
        json_decref(o);
        json_decref(msg);
        return RTLOG_E_NOMEM;
    }
    json_object_set_new(o, "type", json_string("error"));
    json_object_set_new(o, "code", json_string(rtlog_err_wire_code(code)));
    json_object_set_new(o, "message", msg);
    json_object_set_new(o, "timestamp", json_string(ts));
    if (last_seq_present)
        json_object_set_new(o, "lastSeq", json_integer((json_int_t)last_seq));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s)
        return RTLOG_E_NOMEM;
    rtlog_err rc = rtlog_buf_puts(out, s);
    free(s);
    return rc;
}
