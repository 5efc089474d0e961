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
 * the --expect'th event. ttfb is the time to the first response byte, ttfe the time to the
 * first complete event frame (what a user waits before the run view starts filling).
 * --parallel N starts N replays at once (one thread and connection each; the clock runs
 * from the common start to the last one's end) and --repeat rounds of that are made;
 * --last-event-id sends that header (the resume a reconnecting EventSource makes).
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
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bench_scan.h"

#define RBUF (1u << 20)

struct result {
    double secs, ttfb, ttfe;
    uint64_t events, bytes, cpu_ticks;
    int ok;
};

static const char *host = "127.0.0.1";
static int port = 8080, server_pid;
static const char *path, *token;
static uint64_t expect, first_id = 1;
static unsigned repeat = 5, parallel = 1;
static const char *last_event_id;
static double timeout_s = 120; /* a replay not done by then counts as failed */
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
                      "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%s%s%s"
                      "%s%s%s\r\n",
                      path, host, token ? "Authorization: Bearer " : "", token ? token : "",
                      token ? "\r\n" : "", last_event_id ? "Last-Event-ID: " : "",
                      last_event_id ? last_event_id : "", last_event_id ? "\r\n" : "");
    uint64_t cpu0 = server_pid ? proc_cpu_ticks(server_pid) : 0;
    uint64_t t0 = now_ns();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval rto = {.tv_sec = 1}; /* reads wake up at least every second: --timeout */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rto, sizeof rto);
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
        if ((double)(now_ns() - t0) / 1e9 > timeout_s) {
            fprintf(stderr, "bench_catchup: %" PRIu64 " events after %.0f s: timed out\n",
                    r->events, timeout_s);
            break;
        }
        ssize_t n = read(fd, buf + len, RBUF - len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
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
            /* an SSE frame ends at a blank line */
            char *f = (char *)find_rare(buf + off, len - off, "\n\n", 2, 0);
            if (!f)
                break;
            const char *p = buf + off;
            if (!r->events && (ids_any ? memmem(p, (size_t)(f - p), "data:", 5) != NULL
                                           : (size_t)(f - p) > 4 && memcmp(p, "id: ", 4) == 0))
                r->ttfe = (double)(now_ns() - t0) / 1e9;
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

struct job {
    pthread_t th;
    char *buf;
    struct result r;
    int rc;
};

static void *job_run(void *arg)
{
    struct job *j = arg;
    j->rc = run_once(j->buf, &j->r);
    return NULL;
}

/* --parallel: N replays at once, one thread each. Returns the number that failed. */
static int run_parallel(struct job *jobs, double *all_s, double *min_s, double *max_s,
                        double *ttfe_max, uint64_t *cpu_ticks)
{
    uint64_t cpu0 = server_pid ? proc_cpu_ticks(server_pid) : 0;
    uint64_t t0 = now_ns();
    int fails = 0;
    for (unsigned i = 0; i < parallel; i++)
        if (pthread_create(&jobs[i].th, NULL, job_run, &jobs[i]) != 0) {
            fprintf(stderr, "bench_catchup: pthread_create failed\n");
            exit(2);
        }
    *min_s = 1e9;
    *max_s = *ttfe_max = 0;
    for (unsigned i = 0; i < parallel; i++) {
        pthread_join(jobs[i].th, NULL);
        if (jobs[i].rc)
            fails++;
        if (jobs[i].r.secs < *min_s)
            *min_s = jobs[i].r.secs;
        if (jobs[i].r.secs > *max_s)
            *max_s = jobs[i].r.secs;
        if (jobs[i].r.ttfe > *ttfe_max)
            *ttfe_max = jobs[i].r.ttfe;
    }
    *all_s = (double)(now_ns() - t0) / 1e9;
    *cpu_ticks = server_pid ? proc_cpu_ticks(server_pid) - cpu0 : 0;
    return fails;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
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
                    "         [--parallel N] [--last-event-id ID] [--timeout 120]\n"
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
        {"parallel", 1, 0, 'n'}, {"last-event-id", 1, 0, 'l'}, {"timeout", 1, 0, 'T'},
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
        case 'n': parallel = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'l': last_event_id = optarg; break;
        case 'T': timeout_s = atof(optarg); break;
        default: usage();
        }
    }
    if (!path || !repeat || repeat > 100 || !parallel || parallel > 1000)
        usage();
    if (parallel > 1) {
        struct job *jobs = calloc(parallel, sizeof *jobs);
        double *all = calloc(repeat, sizeof *all);
        if (!jobs || !all)
            return 2;
        for (unsigned i = 0; i < parallel; i++)
            if (!(jobs[i].buf = malloc(RBUF)))
                return 2;
        int fails = 0;
        double min_s = 0, max_s = 0, ttfe_max = 0, med_ttfe = 0;
        uint64_t ticks = 0, events = 0;
        for (unsigned k = 0; k < repeat; k++) {
            double a, mn, mx, tf;
            uint64_t t;
            fails += run_parallel(jobs, &a, &mn, &mx, &tf, &t);
            all[k] = a;
            if (k == 0 || a < min_s)
                min_s = a;
            if (a > max_s)
                max_s = a;
            if (tf > ttfe_max)
                ttfe_max = tf;
            med_ttfe += tf / repeat;
            ticks += t;
            for (unsigned i = 0; i < parallel; i++)
                events += jobs[i].r.events;
        }
        qsort(all, repeat, sizeof *all, cmp_double);
        double med = all[repeat / 2], tot = 0;
        for (unsigned k = 0; k < repeat; k++)
            tot += all[k];
        double cpu_s = (double)ticks / (double)sysconf(_SC_CLK_TCK);
        printf("catchup parallel=%u events_each=%" PRIu64 " rounds=%u fails=%d"
               " all_done_median_s=%.4f all_done_min_s=%.4f all_done_max_s=%.4f"
               " total_events_per_s=%.0f ttfe_max_ms=%.2f ttfe_mean_of_max_ms=%.2f"
               " server_cpu_ns_per_event=%.0f\n",
               parallel, jobs[0].r.events, repeat, fails, med, min_s, max_s,
               (double)events / tot, ttfe_max * 1e3, med_ttfe * 1e3,
               events ? cpu_s * 1e9 / (double)events : 0.0);
        for (unsigned i = 0; i < parallel; i++)
            free(jobs[i].buf);
        free(jobs);
        free(all);
        return fails ? 1 : 0;
    }
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
           "median_ttfb_ms=%.2f median_ttfe_ms=%.2f median_server_cpu_s=%.2f"
           " median_server_cpu_ns_per_event=%.0f\n",
           best->events, best->bytes, repeat, best->secs, (double)best->events / best->secs,
           med->secs, (double)med->events / med->secs, (double)med->bytes / med->secs / 1e6,
           med->ttfb * 1e3, med->ttfe * 1e3, cpu_s, med->events ? cpu_s * 1e9 / (double)med->events : 0.0);
    free(res);
    free(buf);
    return 0;
}
