/* err.c - messages, wire codes and HTTP statuses of rtlog_err: the one mapping from the
 * internal error vocabulary to what a client sees (realtime-api.md "Error Messages"). */
#include "rtlog_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *text;
    const char *wire;
    int http;
} table[RTLOG_E__COUNT] = {
    [RTLOG_OK] = {"ok", "ok", 200},
    [RTLOG_E_INVAL] = {"invalid input", "bad_request", 400},
    [RTLOG_E_NOTFOUND] = {"stream not found", "not_found", 404},
    [RTLOG_E_CONFLICT] = {"expectedSeq does not match the stream's last seq", "conflict", 409},
    [RTLOG_E_SEALED] = {"stream is sealed", "conflict", 409},
    [RTLOG_E_CURSOR] = {"cursor is not a sequence number", "bad_request", 400},
    [RTLOG_E_UNAUTH] = {"missing, invalid or expired token", "unauthorized", 401},
    [RTLOG_E_FORBIDDEN] = {"no access to this stream", "forbidden", 403},
    [RTLOG_E_LIMIT] = {"too many connections", "rate_limited", 429},
    [RTLOG_E_TOOBIG] = {"too large", "bad_request", 413},
    [RTLOG_E_AGAIN] = {"temporarily unavailable, retry", "internal_error", 500},
    [RTLOG_E_NOMEM] = {"out of memory", "internal_error", 500},
    [RTLOG_E_IO] = {"storage I/O error", "internal_error", 500},
    [RTLOG_E_FULL] = {"storage full", "internal_error", 500},
    [RTLOG_E_CORRUPT] = {"stored data is corrupt", "internal_error", 500},
};

const char *rtlog_strerror(rtlog_err e)
{
    if ((unsigned)e >= RTLOG_E__COUNT)
        return "unknown error";
    return table[e].text;
}

const char *rtlog_err_wire_code(rtlog_err e)
{
    if ((unsigned)e >= RTLOG_E__COUNT)
        return "internal_error";
    return table[e].wire;
}

int rtlog_err_http_status(rtlog_err e)
{
    if ((unsigned)e >= RTLOG_E__COUNT)
        return 500;
    return table[e].http;
}

rtlog_err rtlog_errinfo_set(rtlog_errinfo *ei, rtlog_err code, long event_index, const char *field,
                            const char *fmt, ...)
{
    if (!ei)
        return code;
    ei->code = code;
    ei->event_index = event_index;
    ei->field[0] = '\0';
    if (field)
        snprintf(ei->field, sizeof ei->field, "%s", field);

    char reason[sizeof ei->text];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);

    if (event_index >= 0 && ei->field[0])
        snprintf(ei->text, sizeof ei->text, "event %ld: field \"%s\": %s", event_index, ei->field,
                 reason);
    else if (event_index >= 0)
        snprintf(ei->text, sizeof ei->text, "event %ld: %s", event_index, reason);
    else if (ei->field[0])
        snprintf(ei->text, sizeof ei->text, "field \"%s\": %s", ei->field, reason);
    else
        snprintf(ei->text, sizeof ei->text, "%s", reason);
    return code;
}
