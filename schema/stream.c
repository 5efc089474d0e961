/* stream.c - stream names: which kinds exist, how a name splits into kind and id, and which
 * event family each kind validates against (CONTRACT.md "Streams and event ids").
 *
 * Every request path, token pattern and CLI argument that names a stream goes through
 * rtlog_stream_parse(), so this is the one place that decides what a stream name may be.
 * The check is deliberately strict and byte-based: an id is 1..128 bytes of
 * [A-Za-z0-9._:-], and "." / ".." are refused even though their bytes are allowed, so a
 * stream name can never become a path step, a URL escape or a log-injection vector.
 * Error texts never echo the name (it may hold CR/LF or a token-like secret).
 */
#include "rtlog_schema.h"

#include <string.h>

static const struct {
    const char *prefix; /* kind name plus '/' */
    size_t len;
    rtlog_kind kind;
} prefixed[] = {
    {"workflow-runs/", 14, RTLOG_KIND_RUN},
    {"deployment-jobs/", 16, RTLOG_KIND_JOB},
    {"agents/", 7, RTLOG_KIND_AGENT},
};

/* 1 for the bytes an id may hold: [A-Za-z0-9._:-]. A table, not ctype, so the locale can
 * never widen the set. */
static int id_byte_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
}

rtlog_err rtlog_stream_parse(const char *name, size_t len, rtlog_kind *kind, const char **id,
                             size_t *id_len, rtlog_errinfo *ei)
{
    if (!name || !kind)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, "stream", "no stream name given");

    if (len == 9 && memcmp(name, "dashboard", 9) == 0) {
        *kind = RTLOG_KIND_DASHBOARD;
        if (id)
            *id = name + len;
        if (id_len)
            *id_len = 0;
        return RTLOG_OK;
    }

    for (size_t k = 0; k < sizeof prefixed / sizeof prefixed[0]; k++) {
        if (len < prefixed[k].len || memcmp(name, prefixed[k].prefix, prefixed[k].len) != 0)
            continue;
        const char *p = name + prefixed[k].len;
        size_t n = len - prefixed[k].len;
        if (n == 0)
            return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, "stream", "stream id is empty");
        if (n > RTLOG_ID_MAX)
            return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, "stream", "id longer than %d bytes",
                                     RTLOG_ID_MAX);
        for (size_t i = 0; i < n; i++)
            if (!id_byte_ok((unsigned char)p[i]))
                return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, "stream",
                                         "id has a character outside [A-Za-z0-9._:-]");
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, "stream",
                                     "id may not be \".\" or \"..\"");
        *kind = prefixed[k].kind;
        if (id)
            *id = p;
        if (id_len)
            *id_len = n;
        return RTLOG_OK;
    }
    return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, "stream",
                             "unknown stream kind (expected workflow-runs/<id>, "
                             "deployment-jobs/<id>, agents/<id> or dashboard)");
}

const char *rtlog_kind_name(rtlog_kind kind)
{
    switch (kind) {
    case RTLOG_KIND_RUN:
        return "workflow-runs";
    case RTLOG_KIND_JOB:
        return "deployment-jobs";
    case RTLOG_KIND_AGENT:
        return "agents";
    case RTLOG_KIND_DASHBOARD:
        return "dashboard";
    case RTLOG_KIND_NONE:
        break;
    }
    return "";
}

rtlog_family rtlog_kind_family(rtlog_kind kind)
{
    switch (kind) {
    case RTLOG_KIND_RUN:
        return RTLOG_FAM_RUN;
    case RTLOG_KIND_JOB:
        return RTLOG_FAM_JOB;
    case RTLOG_KIND_AGENT:
        return RTLOG_FAM_AGENT_TASK;
    case RTLOG_KIND_DASHBOARD:
        return RTLOG_FAM_DASHBOARD;
    case RTLOG_KIND_NONE:
        break;
    }
    return (rtlog_family)0;
}
