/* rtlog_err.h - the one error vocabulary of rtlog and its mapping to the wire.
 *
 * Every public rtlog function returns an rtlog_err. The enum is append-only (values are
 * never renumbered) because tools print the numbers in debug output. The mapping to HTTP
 * status and to the wire `code` string of the spec's error table lives here, in one place.
 * Source: realtime-api.md "Error Messages", CONTRACT.md "Errors and limits".
 */
#ifndef RTLOG_ERR_H
#define RTLOG_ERR_H

#include <stddef.h>

typedef enum rtlog_err {
    RTLOG_OK = 0,
    RTLOG_E_INVAL,     /* malformed input (JSON, field, id)  -> 400 bad_request    */
    RTLOG_E_NOTFOUND,  /* stream never created               -> 404 not_found      */
    RTLOG_E_CONFLICT,  /* expectedSeq mismatch               -> 409 conflict       */
    RTLOG_E_SEALED,    /* stream already completed           -> 409 conflict       */
    RTLOG_E_CURSOR,    /* cursor is not a number             -> 400 bad_request    */
    RTLOG_E_UNAUTH,    /* missing, bad or expired token      -> 401 unauthorized   */
    RTLOG_E_FORBIDDEN, /* valid token, no access             -> 403 forbidden      */
    RTLOG_E_LIMIT,     /* too many connections               -> 429 rate_limited   */
    RTLOG_E_TOOBIG,    /* event or body beyond its limit     -> 413 bad_request    */
    RTLOG_E_AGAIN,     /* transient; retry                   -> 500 internal_error */
    RTLOG_E_NOMEM,     /* allocation failed                  -> 500 internal_error */
    RTLOG_E_IO,        /* disk or OS error                   -> 500 internal_error */
    RTLOG_E_FULL,      /* storage full (map or disk)         -> 500 internal_error */
    RTLOG_E_CORRUPT,   /* stored bytes fail their checks     -> 500 internal_error */
    RTLOG_E__COUNT     /* not an error; keeps tables sized */
} rtlog_err;

/**
 * rtlog_strerror() - a short human sentence for @e, e.g. "stream is sealed".
 * Returns a static string; never NULL (unknown values give "unknown error").
 */
const char *rtlog_strerror(rtlog_err e);

/**
 * rtlog_err_wire_code() - the `code` of the spec's error message for @e:
 * "bad_request" | "unauthorized" | "forbidden" | "not_found" | "conflict" |
 * "rate_limited" | "internal_error". Static string; RTLOG_OK gives "ok".
 * Source: realtime-api.md "Error Messages" plus CONTRACT.md's bad_request and conflict.
 */
const char *rtlog_err_wire_code(rtlog_err e);

/**
 * rtlog_err_http_status() - HTTP status for @e before a stream starts (400, 401, 403, 404,
 * 409, 413, 429, 500); 200 for RTLOG_OK. On an open WebSocket the close code is
 * 4000 + this status, except 500 which closes with 1011 (CONTRACT.md "Errors and limits").
 */
int rtlog_err_http_status(rtlog_err e);

/* Detail of a failure, filled by validation and storage so a 400 can say which event and
 * which field. Plain data, caller-owned (usually on the stack). */
typedef struct rtlog_errinfo {
    rtlog_err code;
    long event_index; /* 0-based index of the event in its batch; -1 = not about one event */
    char field[64];   /* JSON field name ("nodeId", "outputs.x"); "" = not about a field */
    char text[256];   /* full message, e.g. "event 3: field \"nodeId\": expected a string" */
} rtlog_errinfo;

/**
 * rtlog_errinfo_set() - fill @ei (NULL is a no-op) and return @code, so callers can write
 * `return rtlog_errinfo_set(ei, RTLOG_E_INVAL, i, "nodeId", "expected a string");`.
 * @event_index: -1 when the error is not about one event. @field: NULL or "" for none.
 * @fmt: printf format of the reason; text is "event I: field \"F\": <reason>" when
 * index/field are given, else just the reason. Truncated to fit, never overflows.
 */
rtlog_err rtlog_errinfo_set(rtlog_errinfo *ei, rtlog_err code, long event_index, const char *field,
                            const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
