/* log.h - the server's logger (server module only; libraries never log).
 *
 * One line per message on stderr: "2026-01-10T14:23:45.123Z rtlog[TAG] LEVEL message".
 * Every message is sanitised before it is written, whatever the caller passed: control
 * characters (CR, LF, ...) and non-ASCII bytes are escaped as \r, \n, \xNN so no value can
 * forge a log line; anything that looks like a JWT (three base64url parts starting "eyJ"),
 * the value of a `token=` parameter, of a JSON "token" member and the credentials after
 * "Bearer " are replaced with [REDACTED]. A redacted value is the run of credential bytes
 * (base64url, '.', '~', '+', '/', '=', '%'): whitespace and any delimiter end it, so the text
 * around it survives; an empty value is left alone. Callers still never pass tokens on
 * purpose (STYLE.md "Logging") and word messages so that they never read like one ("Bearer"
 * followed by a word is redacted); this is the second line of defence (handed.md C15).
 * Usage: #define RTLOG_LOG_TAG "sse" before including, then LOG_WARN("conn=%u ...", ...).
 */
#ifndef RTLOG_SERVER_LOG_H
#define RTLOG_SERVER_LOG_H

#include <stddef.h>

enum { RTLOG_LOG_ERROR = 0, RTLOG_LOG_WARN, RTLOG_LOG_INFO, RTLOG_LOG_DEBUG };

/* Set the most verbose level written ("error" | "warn" | "info" | "debug"; else info). */
void rtlog_log_set_level_name(const char *name);
int rtlog_log_level(void);

/* Write one sanitised line (see above). @tag: short static string. */
void rtlog_log(int level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * rtlog_log_sanitize() - the transformation rtlog_log applies, exposed for tests and for
 * building log values: escape control and non-ASCII bytes, redact tokens.
 * @in/@len: borrowed. @out/@cap: NUL-terminated result, truncated to fit ("..." marks a cut).
 * Returns the length written (without NUL).
 */
size_t rtlog_log_sanitize(const char *in, size_t len, char *out, size_t cap);

#ifndef RTLOG_LOG_TAG
#define RTLOG_LOG_TAG "server"
#endif
#define LOG_ERR(...)   rtlog_log(RTLOG_LOG_ERROR, RTLOG_LOG_TAG, __VA_ARGS__)
#define LOG_WARN(...)  rtlog_log(RTLOG_LOG_WARN, RTLOG_LOG_TAG, __VA_ARGS__)
#define LOG_INFO(...)  rtlog_log(RTLOG_LOG_INFO, RTLOG_LOG_TAG, __VA_ARGS__)
#define LOG_DEBUG(...) rtlog_log(RTLOG_LOG_DEBUG, RTLOG_LOG_TAG, __VA_ARGS__)

#endif
