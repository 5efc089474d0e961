/* log.c - sanitising logger for the server: one line per message on stderr.
 *
 * The only place the server writes diagnostics. Sanitising happens here, on the final
 * formatted text, so no call site can forget it: control bytes are escaped (no forged
 * lines from a stream id holding %0d%0a), and token-looking text is redacted (a token in a
 * query string, an Authorization value or a JSON auth message never reaches the log even
 * if a caller formats one by mistake). Single-threaded use is the norm (lws thread), but
 * a line is written with one fputs so lines from the writer thread never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

static int log_level = RTLOG_LOG_INFO;

void rtlog_log_set_level_name(const char *name)
{
    if (!name)
        log_level = RTLOG_LOG_INFO;
    else if (!strcmp(name, "error"))
        log_level = RTLOG_LOG_ERROR;
    else if (!strcmp(name, "warn"))
        log_level = RTLOG_LOG_WARN;
    else if (!strcmp(name, "debug"))
        log_level = RTLOG_LOG_DEBUG;
    else
        log_level = RTLOG_LOG_INFO;
}

int rtlog_log_level(void)
{
    return log_level;
}

static int b64url(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

/* Can byte @c be part of a credential as it appears in a log message? JWTs are base64url
 * and '.'; token68 (RFC 7235) adds "~+/="; '%' covers a percent-encoded query value. */
static int secret_byte(unsigned char c)
{
    return b64url(c) || c == '.' || c == '~' || c == '+' || c == '/' || c == '=' || c == '%';
}

/* Length of the secret value that starts at @p (up to @end): the run of bytes that can be
 * part of a credential. Whitespace and every delimiter ('&', ')', '"', ',', ...) end it,
 * so a redaction takes one value and never the rest of the line ("Bearer or ?token=)"
 * once lost the "or" and the ")" of the text around it). */
static size_t secret_len(const char *p, const char *end)
{
    const char *q = p;
    while (q < end && secret_byte((unsigned char)*q))
        q++;
    return (size_t)(q - p);
}

size_t rtlog_log_sanitize(const char *in, size_t len, char *out, size_t cap)
{
    static const char red[] = "[REDACTED]";
    const char *p = in, *end = in + len;
    size_t o = 0;
    if (cap == 0)
        return 0;
#define EMIT(s, n)                                                                               \
    do {                                                                                       \
        size_t n_ = (n);                                                                       \
        if (o + n_ + 4 > cap)                                                                  \
            goto cut;                                                                          \
        memcpy(out + o, (s), n_);                                                              \
        o += n_;                                                                               \
    } while (0)
    while (p < end) {
        size_t rest = (size_t)(end - p);
        /* token=VALUE (query strings, form bodies; also access_token=). An empty value
         * has nothing to hide: the text goes on as it is. */
        if (rest >= 6 && strncasecmp(p, "token=", 6) == 0) {
            size_t n = secret_len(p + 6, end);
            EMIT(p, 6);
            if (n)
                EMIT(red, sizeof red - 1);
            p += 6 + n;
            continue;
        }
        /* "token" : "VALUE" (a JSON auth message quoted in an error) */
        if (rest >= 7 && strncasecmp(p, "token\"", 6) == 0) {
            const char *q = p + 6;
            while (q < end && (*q == ' ' || *q == ':'))
                q++;
            if (q < end && *q == '"' && memchr(p + 6, ':', (size_t)(q - (p + 6)))) {
                size_t n = secret_len(q + 1, end);
                EMIT(p, (size_t)(q + 1 - p));
                if (n)
                    EMIT(red, sizeof red - 1);
                p = q + 1 + n;
                continue;
            }
        }
        /* Authorization: Bearer VALUE (the spaces before the value are folded into one) */
        if (rest >= 7 && strncasecmp(p, "bearer ", 7) == 0) {
            const char *q = p + 7;
            while (q < end && *q == ' ')
                q++;
            size_t n = secret_len(q, end);
            if (n) {
                EMIT(p, 7);
                EMIT(red, sizeof red - 1);
                p = q + n;
                continue;
            }
        }
        /* a JWT (or one of its parts) anywhere: base64url of '{"' starts with eyJ */
        if (rest >= 3 && !strncmp(p, "eyJ", 3) && (p == in || !b64url((unsigned char)p[-1]))) {
            EMIT(red, sizeof red - 1);
            while (p < end && (b64url((unsigned char)*p) || *p == '.'))
                p++;
            continue;
        }
        unsigned char c = (unsigned char)*p++;
        char esc[5];
        if (c == '\\') {
            EMIT("\\\\", 2);
        } else if (c == '\n') {
            EMIT("\\n", 2);
        } else if (c == '\r') {
            EMIT("\\r", 2);
        } else if (c == '\t') {
            EMIT("\\t", 2);
        } else if (c < 0x20 || c >= 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            EMIT(esc, 4);
        } else {
            EMIT(&c, 1);
        }
    }
#undef EMIT
    out[o] = '\0';
    return o;
cut:
    if (o + 4 <= cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return o;
}

void rtlog_log(int level, const char *tag, const char *fmt, ...)
{
    static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if (level > log_level)
        return;
    char raw[4096], clean[4096], line[4352];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t rl = (size_t)n < sizeof raw ? (size_t)n : sizeof raw - 1;
    rtlog_log_sanitize(raw, rl, clean, sizeof clean);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(line, sizeof line, "%s.%03ldZ rtlog[%s] %s %s\n", ts, (long)(tv.tv_usec / 1000),
             tag, names[level < 0 ? 0 : level > 3 ? 3 : level], clean);
    fputs(line, stderr);
    fflush(stderr);
}
