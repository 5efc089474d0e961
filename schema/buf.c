/* buf.c - the growable byte buffer (rtlog_buf.h). Grows by doubling so appends are
 * amortised O(1); keeps one spare byte so rtlog_buf_nul() never has to reallocate. */
#include "rtlog_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rtlog_err rtlog_buf_reserve(rtlog_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        return RTLOG_E_NOMEM;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return RTLOG_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return RTLOG_E_NOMEM;
    b->p = p;
    b->cap = cap;
    return RTLOG_OK;
}

rtlog_err rtlog_buf_append(rtlog_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return RTLOG_OK;
    rtlog_err rc = rtlog_buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return RTLOG_OK;
}

rtlog_err rtlog_buf_puts(rtlog_buf *b, const char *s)
{
    return rtlog_buf_append(b, s, strlen(s));
}

rtlog_err rtlog_buf_printf(rtlog_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return RTLOG_E_INVAL;
    rtlog_err rc = rtlog_buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return RTLOG_OK;
}

rtlog_err rtlog_buf_put_u64(rtlog_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return rtlog_buf_append(b, tmp + i, sizeof tmp - i);
}

rtlog_err rtlog_buf_nul(rtlog_buf *b)
{
    rtlog_err rc = rtlog_buf_reserve(b, 0);
    if (rc)
        return rc;
    b->p[b->len] = '\0';
    return RTLOG_OK;
}

void rtlog_buf_clear(rtlog_buf *b)
{
    b->len = 0;
}

void rtlog_buf_free(rtlog_buf *b)
{
    if (!b)
        return;
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
