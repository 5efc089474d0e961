/* schema_int.h - helpers shared by the .c files of schema/ only; no other module includes it.
 *
 * The nesting cap lives here because parse.c (which refuses deeper input) and render.c (which
 * refuses deeper stored records) must agree on it: the renderer has to accept everything the
 * parser lets through, so both use the same number and the same way of counting.
 */
#ifndef RTLOG_SCHEMA_INT_H
#define RTLOG_SCHEMA_INT_H

#include <stddef.h>

/* Deepest container nesting an event may have. The event object itself is level 1, an
 * object or array directly inside it level 2, and so on. jansson alone would allow 2048;
 * we cap lower so the recursive packer and renderer have a small, fixed stack bound (they
 * also run on the lws thread) and so one event cannot be a 2048-deep bracket bomb. */
#define SCHEMA_MAX_DEPTH 128

/* Copy up to @n bytes of @s into @dst (size @cap, NUL-terminated), replacing every byte
 * that is not printable ASCII with '?', and ending with "..." when cut. Used so that error
 * texts built from client bytes stay plain ASCII: safe for logs and for any JSON encoder. */
void schema_ascii_excerpt(char *dst, size_t cap, const char *s, size_t n);

#endif
