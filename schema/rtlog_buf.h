/* rtlog_buf.h - a growable byte buffer shared by every module.
 *
 * Used to build JSON lines, msgpack records, SSE frames and HTTP bodies without each
 * module writing its own realloc loop. A buffer owns its bytes; zero-initialised is empty.
 */
#ifndef RTLOG_BUF_H
#define RTLOG_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "rtlog_err.h"

typedef struct rtlog_buf {
    char *p;    /* owned: free with rtlog_buf_free(); NULL while cap == 0 */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
} rtlog_buf;

/* Make room for @extra more bytes. RTLOG_E_NOMEM on failure (buffer unchanged). */
rtlog_err rtlog_buf_reserve(rtlog_buf *b, size_t extra);
/* Append @n bytes from @p (copied). RTLOG_E_NOMEM on failure (buffer unchanged). */
rtlog_err rtlog_buf_append(rtlog_buf *b, const void *p, size_t n);
/* Append a NUL-terminated string without its NUL. */
rtlog_err rtlog_buf_puts(rtlog_buf *b, const char *s);
/* Append printf output. RTLOG_E_NOMEM on failure. */
rtlog_err rtlog_buf_printf(rtlog_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append the decimal form of @v. */
rtlog_err rtlog_buf_put_u64(rtlog_buf *b, uint64_t v);
/* Make p[len] == '\0' (not counted in len) so p can be used as a C string. */
rtlog_err rtlog_buf_nul(rtlog_buf *b);
/* Forget the contents, keep the allocation. */
void rtlog_buf_clear(rtlog_buf *b);
/* Free the allocation; the buffer is empty and reusable afterwards. NULL is a no-op. */
void rtlog_buf_free(rtlog_buf *b);

#endif
