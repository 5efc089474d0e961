/* bench_catchup.c - catch-up throughput: one SSE subscriber replays a stored stream to its end.
 *
 * An auditor or a reconnecting viewer asks for a whole run with follow=false; what matters is
 * how fast the server turns stored events into SSE frames on one connection. The client is
 * deliberately plain (blocking socket, 1 MiB reads, frames split on the blank line) so it
 * costs less than the server it measures; it checks what it times: every frame's `id:` is
 * the previous one + 1 starting at --first, and the count equals --expect, so a fast but
 * wrong stream never produces a figure. Time runs from just before connect() to EOF (the
 * server ends a follow=false stream by closing the response). Each repeat is a fresh
 * connection; the best and the median are printed, with the server's CPU per event from
 * /proc/<pid>/stat when --server-pid is given. For servers whose streams never end (nchan's
 * EventSource) --ids any counts `data:` frames without checking ids and the clock stops at
 * the --expect'th event.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF (1u << 20)

struct result {
    double secs, ttfb;
    uint64_t events, bytes, cpu_ticks;
    int ok;
};

static const char *host = "127.0.0.1";
static int port = 8080, server_pid;
static const char *path, *token;
static uint64_t expect, first_id = 1;
static unsigned repeat = 5;
static int ids_any; /* --ids any: ids are opaque (nchan "time:tag"); count data frames */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t proc_cpu_ticks(int pid)
{
    char p[64], buf[2048];
    snprintf(p, sizeof p, "/proc/%d/stat", pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *q = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (!q || sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (uint64_t)(ut + st);
}

/* One replay; fills r. Returns 0 when the stream was complete and in order. */
static int run_once(char *buf, struct result *r)
{
    memset(r, 0, sizeof *r);
    char req[8192];
    int rl = snprintf(req, sizeof req,
                      "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%s%s%s\r\n",
                      path, host, token ? "Authorization: Bearer " : "", token ? token : "",
                      token ? "\r\n" : "");
    uint64_t cpu0 = server_pid ? proc_cpu_ticks(server_pid) : 0;
    uint64_t t0 = now_ns();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 || write(fd, req, (size_t)rl) != rl) {
        fprintf(stderr, "bench_catchup: connect/write: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    size_t len = 0;
    int in_body = 0, bad = 0;
    uint64_t next_id = first_id;
    for (;;) {
        ssize_t n = read(fd, buf + len, RBUF - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (!r->bytes)
            r->ttfb = (double)(now_ns() - t0) / 1e9;
        r->bytes += (uint64_t)n;
        len += (size_t)n;
        size_t off = 0;
        if (!in_body) {
            char *h = memmem(buf, len, "\r\n\r\n", 4);
            if (!h)
                continue;
            if (len < 12 || atoi(buf + 9) != 200) {
                buf[len < 200 ? len : 200] = 0;
                fprintf(stderr, "bench_catchup: response: %s\n", buf);
                close(fd);
                return -1;
            }
            in_body = 1;
            off = (size_t)(h - buf) + 4;
        }
        for (;;) {
            char *f = memmem(buf + off, len - off, "\n\n", 2);
            if (!f)
                break;
            const char *p = buf + off;
            if (ids_any) {
                if (memmem(p, (size_t)(f - p), "data:", 5))
                    r->events++;
            } else if ((size_t)(f - p) > 4 && memcmp(p, "id: ", 4) == 0) {
                uint64_t id = strtoull(p + 4, NULL, 10);
                if (id != next_id && !bad) {
                    fprintf(stderr, "bench_catchup: id %" PRIu64 " where %" PRIu64 " was due\n",
                            id, next_id);
                    bad = 1;
                }
                next_id = id + 1;
                r->events++;
            }
            off = (size_t)(f - buf) + 2;
        }
        memmove(buf, buf + off, len - off);
        len -= off;
        if (expect && r->events >= expect)
            break; /* a never-ending stream: stop the clock at the last expected event */
        if (len == RBUF) {
            fprintf(stderr, "bench_catchup: frame larger than %u bytes\n", RBUF);
            close(fd);
            return -1;
        }
    }
    r->secs = (double)(now_ns() - t0) / 1e9;
    close(fd);
    r->cpu_ticks = server_pid ? proc_cpu_ticks(server_pid) - cpu0 : 0;
    r->ok = !bad && (!expect || r->events == expect);
    if (expect && r->events != expect)
        fprintf(stderr, "bench_catchup: %" PRIu64 " events, expected %" PRIu64 "\n", r->events,
                expect);
    return r->ok ? 0 : -1;
}

static int cmp_rate(const void *a, const void *b)
{
    const struct result *x = a, *y = b;
    double rx = (double)x->events / x->secs, ry = (double)y->events / y->secs;
    return rx < ry ? 1 : rx > ry ? -1 : 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_catchup --port N --path '/api/v1/workflow-runs/ID/stream"
                    "?follow=false' [--host 127.0.0.1]\n"
                    "         [--token JWT] [--expect N] [--first-id 1] [--repeat 5]"
                    " [--server-pid PID] [--ids seq|any]\n"
                    "Prints one `catchup key=value ...` line; exit 0 only if every repeat got\n"
                    "--expect events with consecutive ids.\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'h'},   {"port", 1, 0, 'p'},     {"path", 1, 0, 'P'},
        {"token", 1, 0, 't'},  {"expect", 1, 0, 'e'},   {"first-id", 1, 0, 'f'},
        {"repeat", 1, 0, 'r'}, {"server-pid", 1, 0, 'x'}, {"ids", 1, 0, 'i'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'P': path = optarg; break;
        case 't': token = optarg; break;
        case 'e': expect = strtoull(optarg, NULL, 10); break;
        case 'f': first_id = strtoull(optarg, NULL, 10); break;
        case 'r': repeat = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'x': server_pid = atoi(optarg); break;
        case 'i': ids_any = !strcmp(optarg, "any"); break;
        default: usage();
        }
    }
    if (!path || !repeat || repeat > 100)
        usage();
    char *buf = malloc(RBUF);
    struct result *res = calloc(repeat, sizeof *res);
    if (!buf || !res)
        return 2;
    int fails = 0;
    for (unsigned i = 0; i < repeat; i++)
        if (run_once(buf, &res[i]) != 0)
            fails++;
    if (fails) {
        fprintf(stderr, "bench_catchup: %d of %u replays were incomplete or out of order\n",
                fails, repeat);
        free(res);
        free(buf);
        return 1;
    }
    qsort(res, repeat, sizeof *res, cmp_rate);
    const struct result *best = &res[0], *med = &res[repeat / 2];
    long tck = sysconf(_SC_CLK_TCK);
    double cpu_s = (double)med->cpu_ticks / (double)tck;
    printf("catchup events=%" PRIu64 " bytes=%" PRIu64 " repeat=%u best_s=%.4f "
           "best_events_per_s=%.0f median_s=%.4f median_events_per_s=%.0f median_MB_per_s=%.1f "
           "median_ttfb_ms=%.2f median_server_cpu_s=%.2f median_server_cpu_ns_per_event=%.0f\n",
           best->events, best->bytes, repeat, best->secs, (double)best->events / best->secs,
           med->secs, (double)med->events / med->secs, (double)med->bytes / med->secs / 1e6,
           med->ttfb * 1e3, cpu_s, med->events ? cpu_s * 1e9 / (double)med->events : 0.0);
    free(res);
    free(buf);
    return 0;
}
