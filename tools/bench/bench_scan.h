/* bench_scan.h - the bench clients' substring search (header-only: each client is one
 * plain C file that links nothing of rtlog).
 *
 * find_rare(h, n, needle, nl, rare): the first occurrence of @needle (@nl bytes) in @h (@n
 * bytes), or NULL; memchr for needle[rare], a byte that is rare in the haystack, then memcmp
 * around it. glibc's memmem walks short needles about a byte at a time: it was 29% of
 * bench_fanout's CPU at 1,000 subscribers x 1,000 ev/s, and in bench_catchup with 100
 * readers it took 2.5-3.1 s of client CPU against the server's 0.7 s and set the figure
 * (tools/bench/RESULTS.md "Sitting 4"). */
#ifndef RTLOG_BENCH_SCAN_H
#define RTLOG_BENCH_SCAN_H

#include <stddef.h>
#include <string.h>

static inline const char *find_rare(const char *h, size_t n, const char *needle, size_t nl,
                                    size_t rare)
{
    if (n < nl)
        return NULL;
    const char *p = h + rare, *end = h + n - (nl - 1 - rare);
    while (p < end && (p = memchr(p, needle[rare], (size_t)(end - p))) != NULL) {
        if (memcmp(p - rare, needle, nl) == 0)
            return p - rare;
        p++;
    }
    return NULL;
}

#endif
