/* ui.c - the browser UI's HTTP side: embedded pages and the stream list.
 *
 * Pages and scripts are compiled in (rtlog_ui_assets[], server/ui/embed.cmake); a URL is
 * only ever compared with that table's names, so there is no filesystem access and paths
 * outside it are 404. Every UI response carries a strict Content-Security-Policy (scripts,
 * styles and connections from this origin only, no inline script, no framing),
 * nosniff and no-referrer, and is revalidated by ETag (Cache-Control: no-cache, 304 on a
 * matching If-None-Match) so an upgraded server never runs with a stale client script.
 * The pages hold no data and need no token. GET /api/v1/streams needs a Bearer token and
 * lists only streams it may subscribe to (ui_list.c). Hooks: http.c calls ui_request() for
 * paths no other route takes.
 */
#define RTLOG_LOG_TAG "ui"
#include "ui.h"

#include "log.h"
#include "server_int.h"

#include <inttypes.h>
#include <libwebsockets.h>
#include <string.h>

#define CSP                                                                                    \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "           \
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const rtlog_ui_asset *rtlog_ui_asset_find(const char *name, size_t len)
{
    for (size_t i = 0; i < rtlog_ui_n_assets; i++)
        if (strlen(rtlog_ui_assets[i].name) == len && !memcmp(rtlog_ui_assets[i].name, name, len))
            return &rtlog_ui_assets[i];
    return NULL;
}

static int starts(const char *s, size_t len, const char *pre)
{
    size_t n = strlen(pre);
    return len >= n && !memcmp(s, pre, n);
}

/* "/ui/<prefix><id>" with a valid id for stream kind @kind: serve @page. */
static const rtlog_ui_asset *id_page(const char *p, size_t len, const char *prefix,
                                     const char *kind, const char *page)
{
    char name[RTLOG_STREAM_MAX + 32];
    size_t pl = strlen(prefix), kl = strlen(kind);
    rtlog_kind k;
    if (len - pl + kl + 1 >= sizeof name)
        return NULL;
    memcpy(name, kind, kl);
    name[kl] = '/';
    memcpy(name + kl + 1, p + pl, len - pl);
    if (rtlog_stream_parse(name, kl + 1 + len - pl, &k, NULL, NULL, NULL) != RTLOG_OK)
        return NULL;
    return rtlog_ui_asset_find(page, strlen(page));
}

const rtlog_ui_asset *rtlog_ui_page(const char *path, size_t len, const char **redirect)
{
    *redirect = NULL;
    if (len && path[0] == '/') {
        path++;
        len--;
    }
    if (len == 0 || (len == 2 && !memcmp(path, "ui", 2))) {
        *redirect = "/ui/";
        return NULL;
    }
    if (!starts(path, len, "ui/"))
        return NULL;
    path += 3;
    len -= 3;
    if (len == 0)
        return rtlog_ui_asset_find("index.html", 10);
    if (len == 9 && !memcmp(path, "dashboard", 9))
        return rtlog_ui_asset_find("dashboard.html", 14);
    if (starts(path, len, "runs/"))
        return id_page(path, len, "runs/", "workflow-runs", "run.html");
    if (starts(path, len, "jobs/"))
        return id_page(path, len, "jobs/", "deployment-jobs", "job.html");
    if (memchr(path, '/', len))
        return NULL;
    return rtlog_ui_asset_find(path, len);
}

/* resp_hdrs hook of a UI response (http.c calls it while writing the headers). */
static int ui_headers(struct conn *c, unsigned char **p, unsigned char *end)
{
    const rtlog_ui_asset *a = c->resp_hdrs_arg;
    static const struct {
        const char *name, *value;
    } fixed[] = {
        {"content-security-policy:", CSP},
        {"x-content-type-options:", "nosniff"},
        {"referrer-policy:", "no-referrer"},
        {"x-frame-options:", "DENY"},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (lws_add_http_header_by_name(c->wsi, (const unsigned char *)fixed[i].name,
                                        (const unsigned char *)fixed[i].value,
                                        (int)strlen(fixed[i].value), p, end))
            return -1;
    if (c->resp_status == 302)
        return lws_add_http_header_by_token(c->wsi, WSI_TOKEN_HTTP_LOCATION,
                                            (const unsigned char *)"/ui/", 4, p, end) ||
               lws_add_http_header_by_token(c->wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                            (const unsigned char *)"no-store", 8, p, end);
    return lws_add_http_header_by_token(c->wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                        (const unsigned char *)"no-cache", 8, p, end) ||
           lws_add_http_header_by_token(c->wsi, WSI_TOKEN_HTTP_ETAG,
                                        (const unsigned char *)a->etag,
                                        (int)strlen(a->etag), p, end);
}

/* Does If-None-Match list @etag (or "*")? Weak validators compare equal too (RFC 9110
 * 13.1.2 uses the weak comparison for If-None-Match). */
static int etag_matches(struct lws *wsi, const char *etag)
{
    char v[512];
    int n = lws_hdr_copy(wsi, v, (int)sizeof v, WSI_TOKEN_HTTP_IF_NONE_MATCH);
    if (n <= 0)
        return 0;
    size_t el = strlen(etag);
    for (char *s = v; *s;) {
        while (*s == ' ' || *s == ',' || *s == '\t')
            s++;
        if (!strncmp(s, "W/", 2))
            s += 2;
        if (*s == '*' || (!strncmp(s, etag, el) && (s[el] == ',' || s[el] == ' ' || !s[el])))
            return 1;
        while (*s && *s != ',')
            s++;
    }
    return 0;
}

static int list_allow(void *ctx, const char *stream)
{
    return rtlog_principal_can(ctx, 0, stream);
}

/* GET /api/v1/streams?kind=&limit= (Bearer). */
static void list_request(struct conn *c)
{
    struct lws *wsi = c->wsi;
    char buf[8448], kind[32], limit[16];
    const char *tok, *why = "";
    size_t tok_len;
    rtlog_principal *pr = NULL;
    int n = lws_hdr_copy(wsi, buf, (int)sizeof buf, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n <= 0 || rtlog_bearer_parse(buf, (size_t)n, &tok, &tok_len) != RTLOG_OK) {
        http_respond_error(c, RTLOG_E_UNAUTH,
                           "missing or malformed Authorization header (expected \"Bearer\" "
                           "and a token)",
                           0);
        return;
    }
    rtlog_err rc = srv_auth_token(c, tok, tok_len, &pr);
    memset(buf, 0, sizeof buf);
    if (rc != RTLOG_OK) {
        http_respond_error(c, rc, rc == RTLOG_E_UNAUTH ? "invalid or expired token" : NULL, 0);
        return;
    }
    int hk = srv_get_arg(wsi, "kind", kind, sizeof kind, NULL);
    int hl = srv_get_arg(wsi, "limit", limit, sizeof limit, NULL);
    rtlog_list_query q;
    if (hk < 0 || hl < 0) {
        rc = RTLOG_E_INVAL;
        why = hk < 0 ? "kind must be workflow-runs, deployment-jobs, agents or dashboard"
                     : "limit must be a whole number from 1 to 1000";
    } else {
        rc = rtlog_list_query_parse(hk ? kind : NULL, hl ? limit : NULL, &q, &why);
    }
    if (rc != RTLOG_OK) {
        rtlog_principal_free(pr);
        http_respond_error(c, rc, why, 0);
        return;
    }
    rtlog_buf b = {0};
    rc = rtlog_list_json(c->srv->store, &q, list_allow, pr, &b);
    LOG_DEBUG("conn=%" PRIu64 " list sub=%s: %s", c->id, pr->sub, rtlog_strerror(rc));
    rtlog_principal_free(pr);
    if (rc == RTLOG_OK)
        http_respond(c, 200, b.p, b.len, 0);
    else {
        LOG_ERR("conn=%" PRIu64 " stream list failed: %s", c->id, rtlog_strerror(rc));
        http_respond_error(c, rc, "internal error: cannot list streams", 0);
    }
    rtlog_buf_free(&b);
}

int ui_request(struct conn *c, const char *path, int is_get)
{
    size_t len = strlen(path);
    const char *p = len && path[0] == '/' ? path + 1 : path;
    if (!strcmp(p, "api/v1/streams")) {
        if (!is_get)
            http_respond_status(c, 405, RTLOG_E_INVAL, "method not allowed on this path", 1);
        else
            list_request(c);
        return 1;
    }
    const char *redirect;
    const rtlog_ui_asset *a = rtlog_ui_page(path, len, &redirect);
    if (!a && !redirect)
        return 0;
    if (!is_get) {
        http_respond_status(c, 405, RTLOG_E_INVAL, "method not allowed on this path", 1);
        return 1;
    }
    if (redirect) {
        http_respond_type(c, 302, "text/plain; charset=utf-8", "", 0, 0);
    } else if (etag_matches(c->wsi, a->etag)) {
        http_respond_type(c, 304, a->content_type, "", 0, 0);
    } else {
        http_respond_type(c, 200, a->content_type, (const char *)a->data, a->len, 0);
    }
    c->resp_hdrs = ui_headers;
    c->resp_hdrs_arg = a;
    return 1;
}
