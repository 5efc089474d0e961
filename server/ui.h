/* ui.h - the browser UI served by `rtlog serve` itself (server module only).
 *
 * The pages, styles and the reusable JavaScript client live in server/ui/ and are compiled
 * into the binary (server/ui/embed.cmake writes them as byte arrays at build time), so the
 * UI works wherever the server is started from and no URL ever reads a file. The pages hold
 * no data: they need no token; every byte of data comes through the API with the token the
 * user pasted (README "Browser UI"). GET /api/v1/streams lists streams for the index page.
 */
#ifndef RTLOG_UI_H
#define RTLOG_UI_H

#include "rtlog_schema.h"
#include "rtlog_store.h"

#include <stddef.h>
#include <stdint.h>

struct conn;

/* One embedded file (generated table, see embed.cmake). All pointers are static. */
typedef struct rtlog_ui_asset {
    const char *name;          /* file name under server/ui/, e.g. "rtlog-client.js" */
    const char *content_type;  /* with charset for text */
    const char *etag;          /* quoted strong validator: first 16 hex of its SHA-256 */
    const unsigned char *data; /* the bytes */
    size_t len;                /* bytes */
} rtlog_ui_asset;

extern const rtlog_ui_asset rtlog_ui_assets[];
extern const size_t rtlog_ui_n_assets;

/* The embedded file called @name (exact, no path), or NULL. */
const rtlog_ui_asset *rtlog_ui_asset_find(const char *name, size_t len);

/**
 * rtlog_ui_page() - which embedded file answers a GET of @path (no query; leading '/'
 * optional), without touching any socket (unit-tested).
 * Returns the asset, or NULL for a path outside the UI (the caller answers 404).
 * *@redirect is set to a static Location instead ("/ui/") for "/" and "/ui", with NULL
 * returned. Paths: "/ui/" index.html, "/ui/runs/<id>" run.html, "/ui/jobs/<id>" job.html,
 * "/ui/dashboard" dashboard.html, "/ui/<file>" any embedded file; <id> as in CONTRACT
 * "Streams and event ids" (a bad id is NULL: 404).
 */
const rtlog_ui_asset *rtlog_ui_page(const char *path, size_t len, const char **redirect);

/**
 * ui_request() - answer a GET for the UI or the stream list, if @path is one of theirs.
 * @c: the request's connection (lws thread). @path: as lws hands it, no query.
 * @is_get: the method is GET (other methods on these paths get 405).
 * Returns 1 when a response was queued on @c, 0 when @path is not the UI's (the caller
 * answers 404).
 */
int ui_request(struct conn *c, const char *path, int is_get);

/* ---- the stream list (ui_list.c) -------------------------------------------------------- */

/** Query of GET /api/v1/streams. */
typedef struct rtlog_list_query {
    rtlog_kind kind;   /* RTLOG_KIND_NONE = every kind */
    unsigned limit;    /* 1..RTLOG_LIST_MAX */
} rtlog_list_query;

#define RTLOG_LIST_DEFAULT 50
#define RTLOG_LIST_MAX 1000

/**
 * rtlog_list_query_parse() - the ?kind= and ?limit= values (NULL = absent).
 * kind: "workflow-runs" | "deployment-jobs" | "agents" | "dashboard"; limit: decimal
 * 1..RTLOG_LIST_MAX, default RTLOG_LIST_DEFAULT. Errors: RTLOG_E_INVAL with @why (a static
 * message naming the parameter).
 */
rtlog_err rtlog_list_query_parse(const char *kind, const char *limit, rtlog_list_query *q,
                                 const char **why);

/* May the caller see this stream? (a subscribe grant: rtlog_principal_can(p, 0, stream)) */
typedef int (*rtlog_list_filter)(void *ctx, const char *stream);

/**
 * rtlog_list_json() - the newest @q->limit streams of @q->kind that @allow accepts, as
 * {"streams":[{"stream","kind","id","createdAt","lastSeq","events","sealed","status"}...],
 *  "truncated":bool} appended to @out. Newest first by creation time, then by name;
 * "status" is the sealing event's status or null; "truncated" says more streams matched.
 * Cost: one pass over every stream in the store (rtlog_store_list(), bounded read
 * chunks) keeping the best @limit in a sorted array: O(streams x log limit) time,
 * O(limit) memory. Errors: RTLOG_E_IO (store), RTLOG_E_NOMEM.
 * Source: README "Browser UI" (an rtlog addition; realtime-api.md has no list).
 */
rtlog_err rtlog_list_json(rtlog_store *st, const rtlog_list_query *q, rtlog_list_filter allow,
                          void *ctx, rtlog_buf *out);

#endif
