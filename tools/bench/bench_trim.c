/* bench_trim.c - what dashboard retention costs (not a test: figures for
 * tools/bench/RESULTS.md "Dashboard retention").
 *
 * A trim runs in the store's writer thread: while it renders, re-hashes and deletes the
 * removed events, appends wait. This measures, on a dashboard stream of --events events
 * (~250-byte alerts and metric_updates, appended in batches of 100 = whole blocks, or one by
 * one = the live "tail"), how long one rtlog_store_trim takes for the step the server uses
 * (keep / 16 events with the default keep of 10000 = 625) and for one large trim, and the
 * time per removed event.
 * Usage: bench_trim [--dir DIR] [--events N] [--nosync]
 */
#include "rtlog_schema.h"
#include "rtlog_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const rtlog_errinfo *ei)
{
    fprintf(stderr, "bench_trim: %s: %s\n", what, ei ? ei->text : "");
    exit(1);
}

/* @n dashboard events, every 10th a metric_update (the snapshot), in one batch. */
static void make_batch(rtlog_batch *b, size_t n, size_t base)
{
    size_t cap = n * 320 + 16, len = 0;
    char *body = malloc(cap);
    if (!body)
        die("malloc", NULL);
    body[len++] = '[';
    for (size_t i = 0; i < n; i++) {
        size_t k = base + i;
        len += (size_t)snprintf(
            body + len, cap - len,
            k % 10 ? "%s{\"type\":\"alert\",\"alert\":{\"id\":\"a-%zu\",\"severity\":\"warning\","
                     "\"title\":\"Deployment Failed\",\"message\":\"Deployment %zu to Production "
                     "failed: health check timeout\",\"resourceType\":\"deployment\","
                     "\"resourceId\":\"r-%zu\",\"timestamp\":\"2026-01-10T14:23:45Z\"}}"
                   : "%s{\"type\":\"metric_update\",\"metrics\":{\"pendingApprovals\":%zu,"
                     "\"activeDeployments\":1,\"recentReleases\":%zu,\"systemHealth\":{"
                     "\"agentsOnline\":8,\"agentsTotal\":10,\"queueDepth\":%zu}},"
                     "\"timestamp\":\"2026-01-10T14:23:45Z\"}",
            i ? "," : "", k, k, k % 7);
    }
    body[len++] = ']';
    rtlog_parse_opts po = {.family = RTLOG_FAM_DASHBOARD};
    rtlog_errinfo ei = {0};
    if (rtlog_schema_parse(&po, body, len, b, &ei) != RTLOG_OK)
        die("parse", &ei);
    free(body);
}

static void fill(rtlog_store *st, size_t events, size_t per_append)
{
    for (size_t done = 0; done < events; done += per_append) {
        rtlog_batch b;
        make_batch(&b, per_append, done);
        rtlog_append_req req = {.stream = "dashboard", .recs = b.recs, .n = b.n};
        rtlog_errinfo ei = {0};
        if (rtlog_store_append(st, &req, NULL, &ei) != RTLOG_OK)
            die("append", &ei);
        rtlog_batch_free(&b);
    }
}

static void run(const char *dir, size_t events, size_t per_append, int nosync)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/bench-trim-%zu-%d", dir, per_append, (int)getpid());
    rtlog_store_opts o = {.dir = path, .nosync = nosync};
    rtlog_store *st;
    rtlog_errinfo ei = {0};
    if (rtlog_store_open(&o, &st, &ei) != RTLOG_OK)
        die("open", &ei);
    fill(st, events, per_append);
    /* Steps of 625 events (the server's step at the default keep of 10000), then the
     * rest in one trim. */
    double worst = 0, sum = 0;
    uint64_t removed = 0, steps = 0, before = 1;
    for (int i = 0; i < 8; i++) {
        rtlog_trim_res tr;
        double t0 = now_s();
        if (rtlog_store_trim(st, "dashboard", before + 625, &tr, &ei) != RTLOG_OK)
            die("trim", &ei);
        double dt = now_s() - t0;
        sum += dt;
        worst = dt > worst ? dt : worst;
        removed += tr.removed;
        steps++;
        before = tr.first_seq;
    }
    rtlog_trim_res big;
    double t0 = now_s();
    if (rtlog_store_trim(st, "dashboard", events - 1000, &big, &ei) != RTLOG_OK)
        die("trim", &ei);
    double dt_big = now_s() - t0;
    printf("| %s | %zu | %.2f ms (worst %.2f) | %" PRIu64 " | %.2f ms | %" PRIu64
           " | %.2f us |\n",
           per_append == 1 ? "one by one (tail)" : "batches of 100 (blocks)", events,
           1e3 * sum / (double)steps, 1e3 * worst, removed / steps, 1e3 * dt_big, big.removed,
           big.removed ? 1e6 * dt_big / (double)big.removed : 0.0);
    rtlog_store_close(st);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_trim: could not remove %s\n", path);
}

int main(int argc, char **argv)
{
    const char *dir = "/tmp";
    size_t events = 100000;
    int nosync = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--events") && i + 1 < argc)
            events = (size_t)strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--nosync"))
            nosync = 1;
        else {
            fprintf(stderr, "usage: bench_trim [--dir DIR] [--events N] [--nosync]\n");
            return 2;
        }
    }
    if (events < 20000)
        events = 20000;
    printf("| appended | events | trim of 625 (mean of 8) | removed per step | one trim | "
           "removed | per removed event |\n|---|---:|---:|---:|---:|---:|---:|\n");
    run(dir, events, 100, nosync);
    run(dir, events / 10, 1, 1); /* one-by-one appends: no fsync, or filling takes minutes */
    return 0;
}
