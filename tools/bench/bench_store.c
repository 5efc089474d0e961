/* bench_store.c - how fast and how small the store is (not a test: figures for
 * tools/bench/RESULTS.md "Storage").
 *
 * 1. The machine's fsync rate: a loop of small write + fdatasync on the data directory's
 *    file system. Durable appends/s can only beat it by committing many appends per fsync.
 * 2. Durable appends/s of ~200-byte events with 1, 8 and 64 producer threads, each
 *    appending single events or batches of 100 to its own stream (group commit).
 * 3. Replay: events/s read back in chunks of 1000 (catch-up) and one at a time (live tail).
 * 4. Stored bytes of the six real CI runs vs their NDJSON bytes: per-record encodings
 *    (none, zstd 1/3, zstd 3 with a dictionary trained on the first 1 MiB of records, as a
 *    store would train it), blocks, and what the store actually keeps.
 * Usage: bench_store [--dir DIR] [--seconds S] [--shared SHARED_DIR] [--sizes-only] [--nosync]
 *        [--only PRODUCERS,BATCH]
 * (--nosync: the append figures without fsync, to tell disk-bound from CPU-bound;
 *  --only: one append configuration and nothing else, for profiling.)
 */
#include "rtlog_schema.h"
#include "rtlog_store.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zdict.h>
#include <zstd.h>

#ifndef RTLOG_SHARED_DIR
#define RTLOG_SHARED_DIR "../shared"
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const rtlog_errinfo *ei)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, ei ? ei->text : "");
    exit(1);
}

/* ---- 1. fsync rate --------------------------------------------------------------------- */

static double fsync_rate(const char *dir, double seconds)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/fsync-probe", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die("open fsync probe", NULL);
    char buf[256];
    memset(buf, 'x', sizeof buf);
    long n = 0;
    double t0 = now_s(), t;
    do {
        if (pwrite(fd, buf, sizeof buf, (off_t)(n % 64) * 4096) != (ssize_t)sizeof buf ||
            fdatasync(fd))
            die("write+fdatasync", NULL);
        n++;
    } while ((t = now_s()) - t0 < seconds);
    close(fd);
    unlink(path);
    return (double)n / (t - t0);
}

/* ---- 2. durable appends ---------------------------------------------------------------- */

/* A pool of distinct ~200-byte step_log events (canonical JSON incl. seq ~ 200 bytes),
 * parsed by the schema module like real ingest, in batches of 100. */
#define POOL_BATCHES 100
static rtlog_batch pool[POOL_BATCHES];

static void make_pool(void)
{
    static const char *words[] = {"compiling", "linking",  "fetching", "resolving", "module",
                                  "src/core",  "pkg/util", "done",     "warning:",  "cache",
                                  "layer",     "sha256",   "test",     "passed",    "retry"};
    unsigned seed = 42;
    char body[40000];
    for (int b = 0; b < POOL_BATCHES; b++) {
        size_t len = 0;
        for (int i = 0; i < 100; i++) {
            char line[256];
            size_t l = (size_t)snprintf(line, sizeof line, "[%04d/%03d]", b, i);
            while (l < 92) {
                const char *w = words[rand_r(&seed) % 15];
                l += (size_t)snprintf(line + l, sizeof line - l, " %s%u", w, rand_r(&seed) % 1000);
            }
            line[92] = '\0';
            len += (size_t)snprintf(
                body + len, sizeof body - len,
                "{\"type\":\"step_log\",\"nodeId\":\"build-%d\",\"line\":\"%s\","
                "\"level\":\"info\",\"timestamp\":\"2026-01-10T14:23:%02d.%03dZ\"}\n",
                b % 7, line, i % 60, (b * 100 + i) % 1000);
        }
        rtlog_parse_opts po = {.family = RTLOG_FAM_RUN, .ndjson = 1};
        rtlog_errinfo ei;
        if (rtlog_schema_parse(&po, body, len, &pool[b], &ei))
            die("parse pool", &ei);
    }
}

typedef struct prod {
    rtlog_store *st;
    int id;
    size_t batch;
    atomic_int *stop;
    uint64_t events;
} prod;

static void *producer(void *arg)
{
    prod *p = arg;
    char stream[64];
    snprintf(stream, sizeof stream, "workflow-runs/bench-%zu-%d", p->batch, p->id);
    int b = p->id % POOL_BATCHES, i = 0;
    while (!atomic_load(p->stop)) {
        rtlog_append_req req = {.stream = stream};
        if (p->batch == 1) {
            req.recs = &pool[b].recs[i];
            req.n = 1;
            if (++i == 100) {
                i = 0;
                b = (b + 1) % POOL_BATCHES;
            }
        } else {
            req.recs = pool[b].recs;
            req.n = 100;
            b = (b + 1) % POOL_BATCHES;
        }
        rtlog_errinfo ei;
        if (rtlog_store_append(p->st, &req, NULL, &ei))
            die("append", &ei);
        p->events += req.n;
    }
    return NULL;
}

static void run_appends(rtlog_store *st, int producers, size_t batch, double seconds)
{
    pthread_t th[64];
    prod p[64];
    atomic_int stop = 0;
    rtlog_store_stats s0, s1;
    rtlog_store_get_stats(st, &s0);
    double t0 = now_s();
    for (int i = 0; i < producers; i++) {
        p[i] = (prod){.st = st, .id = i, .batch = batch, .stop = &stop};
        pthread_create(&th[i], NULL, producer, &p[i]);
    }
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stop, 1);
    uint64_t ev = 0;
    for (int i = 0; i < producers; i++) {
        pthread_join(th[i], NULL);
        ev += p[i].events;
    }
    double dt = now_s() - t0;
    rtlog_store_get_stats(st, &s1);
    uint64_t commits = s1.commits - s0.commits, batches = s1.batches - s0.batches;
    printf("| %2d | %3zu | %10.0f | %8.0f | %6.1f | %7.1f |\n", producers, batch, (double)ev / dt,
           (double)commits / dt, (double)batches / (double)(commits ? commits : 1),
           (double)(s1.events - s0.events) / (double)(commits ? commits : 1));
    fflush(stdout);
}

/* ---- 3. replay ------------------------------------------------------------------------- */

static int count_cb(void *ctx, const rtlog_event_view *ev)
{
    uint64_t *sum = ctx;
    *sum += ev->mp_len + ((const uint8_t *)ev->mp)[0];
    return 0;
}

static void run_reads(rtlog_store *st, const char *stream, size_t chunk, const char *label)
{
    rtlog_stream_info info;
    rtlog_errinfo ei;
    if (rtlog_store_describe(st, stream, &info, &ei))
        die("describe", &ei);
    uint64_t sum = 0, next = 1, n = 0, limit = chunk == 1 ? 200000 : info.last_seq;
    double t0 = now_s();
    while (next <= info.last_seq && n < limit) {
        uint64_t from = next;
        if (rtlog_store_read(st, stream, from, chunk, 0, count_cb, &sum, &next, &ei))
            die("read", &ei);
        n += next - from;
    }
    double dt = now_s() - t0;
    printf("| %-44s | %8" PRIu64 " | %5zu | %11.0f |\n", label, n, chunk, (double)n / dt);
}

/* A subscriber at the head: the same newest event read again and again, one call each. */
static void run_tail(rtlog_store *st, const char *stream, const char *label)
{
    rtlog_stream_info info;
    rtlog_errinfo ei;
    if (rtlog_store_describe(st, stream, &info, &ei))
        die("describe", &ei);
    uint64_t sum = 0, next, n = 200000;
    double t0 = now_s();
    for (uint64_t i = 0; i < n; i++)
        if (rtlog_store_read(st, stream, info.last_seq, 1, 0, count_cb, &sum, &next, &ei))
            die("read", &ei);
    double dt = now_s() - t0;
    printf("| %-44s | %8" PRIu64 " | %5d | %11.0f |\n", label, n, 1, (double)n / dt);
}

/* ---- 4. bytes of the real runs ------------------------------------------------------------ */

static const char *const runs[] = {
    "buildkite-buildah-build",     "buildkite-docker-compose-pull",
    "gha-pytorch-linux-job-error", "gha-pytorch-signal-crash-longline",
    "gitlab-runner-trace-rspec",   "npm-install-verbose-ansi",
};
#define NRUNS 6

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (!p || fread(p, 1, (size_t)n, f) != (size_t)n)
        die("read run", NULL);
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* Per-record value size: 9-byte header (codec + hash8) + the smaller of raw and @z. */
static size_t rec_cost(size_t mp, size_t z)
{
    return 9 + (z < mp ? z : mp);
}

static void run_sizes(const char *dir, const char *shared)
{
    rtlog_batch b[NRUNS];
    size_t nd[NRUNS];
    char *body[NRUNS];
    for (int r = 0; r < NRUNS; r++) {
        char path[512];
        snprintf(path, sizeof path, "%s/data/real-runs/%s.ndjson", shared, runs[r]);
        body[r] = slurp(path, &nd[r]);
        if (!body[r])
            die(path, NULL);
        rtlog_parse_opts po = {.family = RTLOG_FAM_RUN, .ndjson = 1};
        rtlog_errinfo ei;
        if (rtlog_schema_parse(&po, body[r], nd[r], &b[r], &ei))
            die("parse run", &ei);
    }
    /* The dictionary a store would train from its own first 1 MiB of records (import
     * order), and the time it takes. */
    size_t cap = 1u << 20, used = 0, ns = 0;
    char *samples = malloc(cap + (1u << 16));
    size_t *sizes = malloc(sizeof *sizes * 20000);
    for (int r = 0; r < NRUNS && used < cap; r++)
        for (size_t i = 0; i < b[r].n && used < cap; i++) {
            if (b[r].recs[i].mp_len > 65536)
                continue;
            memcpy(samples + used, b[r].recs[i].mp, b[r].recs[i].mp_len);
            used += b[r].recs[i].mp_len;
            sizes[ns++] = b[r].recs[i].mp_len;
        }
    char dict[32768];
    double t0 = now_s();
    size_t dl = ZDICT_trainFromBuffer(dict, sizeof dict, samples, sizes, (unsigned)ns);
    double train = now_s() - t0;
    if (ZDICT_isError(dl))
        die("ZDICT_trainFromBuffer", NULL);
    ZSTD_CDict *cd = ZSTD_createCDict(dict, dl, 3);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    size_t zcap = 1u << 21;
    char *z = malloc(zcap);
    printf("Dictionary: %zu bytes trained from the first %zu records (%zu bytes) in %.2f s.\n\n",
           dl, ns, used, train);

    /* The store itself: import every run in batches of 500 lines, as rtlog import does. */
    char sdir[4200];
    snprintf(sdir, sizeof sdir, "%s/sizes", dir);
    rtlog_store_opts o = {.dir = sdir};
    rtlog_store *st;
    rtlog_errinfo ei;
    if (rtlog_store_open(&o, &st, &ei))
        die("open", &ei);

    printf("| run | events | NDJSON | msgpack | none | zstd-1 | zstd-3 | zstd-3+dict | store | "
           "store %% |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    uint64_t T[8] = {0};
    for (int r = 0; r < NRUNS; r++) {
        uint64_t mp = 0, none = 0, z1 = 0, z3 = 0, zd = 0;
        for (size_t i = 0; i < b[r].n; i++) {
            const rtlog_rec *rec = &b[r].recs[i];
            mp += rec->mp_len;
            none += 9 + rec->mp_len;
            size_t c1 = ZSTD_compressCCtx(cc, z, zcap, rec->mp, rec->mp_len, 1);
            size_t c3 = ZSTD_compressCCtx(cc, z, zcap, rec->mp, rec->mp_len, 3);
            size_t cdd = ZSTD_compress_usingCDict(cc, z, zcap, rec->mp, rec->mp_len, cd);
            if (ZSTD_isError(c1) || ZSTD_isError(c3) || ZSTD_isError(cdd))
                die("ZSTD_compress", NULL);
            z1 += rec_cost(rec->mp_len, c1);
            z3 += rec_cost(rec->mp_len, c3);
            zd += rec_cost(rec->mp_len, cdd) + 1; /* + a dictionary id byte */
        }
        char stream[RTLOG_STREAM_MAX];
        snprintf(stream, sizeof stream, "workflow-runs/%s", runs[r]);
        for (size_t i = 0; i < b[r].n; i += 500) {
            rtlog_append_req req = {
                .stream = stream, .recs = b[r].recs + i, .n = b[r].n - i < 500 ? b[r].n - i : 500};
            if (rtlog_store_append(st, &req, NULL, &ei))
                die("append run", &ei);
        }
        rtlog_stream_info info;
        if (rtlog_store_describe(st, stream, &info, &ei))
            die("describe", &ei);
        double pct = 100.0 * (double)info.stored_bytes / (double)nd[r];
        printf("| %s | %zu | %zu | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %" PRIu64
               " | %" PRIu64 " | %.1f%% |\n",
               runs[r], b[r].n, nd[r], mp, none, z1, z3, zd, info.stored_bytes, pct);
        uint64_t v[8] = {b[r].n, nd[r], mp, none, z1, z3, zd, info.stored_bytes};
        for (int k = 0; k < 8; k++)
            T[k] += v[k];
    }
    printf("| **total** | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %" PRIu64
           " | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %.1f%% |\n",
           T[0], T[1], T[2], T[3], T[4], T[5], T[6], T[7], 100.0 * (double)T[7] / (double)T[1]);
    printf(
        "| share of NDJSON | | 100%% | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.1f%% | |\n",
        100.0 * (double)T[2] / (double)T[1], 100.0 * (double)T[3] / (double)T[1],
        100.0 * (double)T[4] / (double)T[1], 100.0 * (double)T[5] / (double)T[1],
        100.0 * (double)T[6] / (double)T[1], 100.0 * (double)T[7] / (double)T[1]);
    rtlog_store_close(st);
    char dpath[4300];
    snprintf(dpath, sizeof dpath, "%s/data.mdb", sdir);
    struct stat sb;
    if (!stat(dpath, &sb))
        printf("\ndata.mdb after importing all six runs: %lld bytes (%.1f%% of NDJSON; includes "
               "B-tree pages, free pages and LMDB's two meta pages).\n",
               (long long)sb.st_size, 100.0 * (double)sb.st_size / (double)T[1]);

    /* The live shape: the same runs appended one event per append (the tail, packed by the
     * writer every 256 events). nosync: only the bytes matter here. */
    snprintf(sdir, sizeof sdir, "%s/sizes-live", dir);
    rtlog_store_opts lo = {.dir = sdir, .nosync = 1};
    if (rtlog_store_open(&lo, &st, &ei))
        die("open", &ei);
    uint64_t live = 0;
    double l0 = now_s();
    for (int r = 0; r < NRUNS; r++) {
        char stream[RTLOG_STREAM_MAX];
        snprintf(stream, sizeof stream, "workflow-runs/%s", runs[r]);
        for (size_t i = 0; i < b[r].n; i++) {
            rtlog_append_req req = {.stream = stream, .recs = b[r].recs + i, .n = 1};
            if (rtlog_store_append(st, &req, NULL, &ei))
                die("append live", &ei);
        }
        rtlog_stream_info info;
        if (rtlog_store_describe(st, stream, &info, &ei))
            die("describe", &ei);
        live += info.stored_bytes;
    }
    double l1 = now_s();
    rtlog_store_close(st);
    snprintf(dpath, sizeof dpath, "%s/data.mdb", sdir);
    if (!stat(dpath, &sb))
        printf("\nThe same runs appended one event per append (%.0f appends/s without fsync): "
               "stored %" PRIu64 " bytes (%.1f%% of NDJSON), data.mdb %lld bytes (%.1f%%).\n",
               (double)T[0] / (l1 - l0), live, 100.0 * (double)live / (double)T[1],
               (long long)sb.st_size, 100.0 * (double)sb.st_size / (double)T[1]);
    for (int r = 0; r < NRUNS; r++) {
        rtlog_batch_free(&b[r]);
        free(body[r]);
    }
    ZSTD_freeCDict(cd);
    ZSTD_freeCCtx(cc);
    free(z);
    free(samples);
    free(sizes);
}

/* Durable (or --nosync) appends for every configuration, then the replay figures. */
static void run_all_appends(const char *dir, double seconds, int nosync)
{
    char adir[4200];
    snprintf(adir, sizeof adir, "%s/appends", dir);
    rtlog_store_opts o = {.dir = adir, .map_bytes = 1ull << 30, .nosync = nosync};
    rtlog_store *st;
    rtlog_errinfo ei;
    if (rtlog_store_open(&o, &st, &ei))
        die("open", &ei);
    printf("## %s appends (~200-byte events, each producer its own stream, %.0f s each)\n\n"
           "| producers | events per append | events/s | commits/s | appends per commit | "
           "events per commit |\n|---:|---:|---:|---:|---:|---:|\n",
           nosync ? "NOT durable (nosync)" : "durable", seconds);
    fflush(stdout);
    const int prods[] = {1, 8, 64};
    for (size_t batch = 1; batch <= 100; batch += 99)
        for (int k = 0; k < 3; k++)
            run_appends(st, prods[k], batch, seconds);

    printf("\n## replay (read back in one process, chunked read txns)\n\n"
           "| stream | events | chunk | events/s |\n|---|---:|---:|---:|\n");
    run_reads(st, "workflow-runs/bench-100-0", 1000, "batches of 100 (blocks), catch-up");
    run_reads(st, "workflow-runs/bench-1-0", 1000, "single appends (packed tail), catch-up");
    run_reads(st, "workflow-runs/bench-100-0", 1, "batches of 100, one event per read call");
    run_tail(st, "workflow-runs/bench-1-0", "newest event again and again (live tail)");
    rtlog_store_close(st);
}

/* One append configuration and nothing else (for perf). */
static void run_one(const char *dir, double seconds, int nosync, int producers, size_t batch)
{
    char odir[4200];
    snprintf(odir, sizeof odir, "%s/only", dir);
    rtlog_store_opts o = {.dir = odir, .map_bytes = 1ull << 30, .nosync = nosync};
    rtlog_store *st;
    rtlog_errinfo ei;
    if (rtlog_store_open(&o, &st, &ei))
        die("open", &ei);
    printf("| producers | events per append | events/s | commits/s | appends per commit | "
           "events per commit |\n|---:|---:|---:|---:|---:|---:|\n");
    run_appends(st, producers, batch, seconds);
    rtlog_store_close(st);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *shared = RTLOG_SHARED_DIR;
    double seconds = 3.0;
    int sizes_only = 0, nosync = 0, only_p = 0, only_b = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--shared") && i + 1 < argc)
            shared = argv[++i];
        else if (!strcmp(argv[i], "--sizes-only"))
            sizes_only = 1;
        else if (!strcmp(argv[i], "--nosync"))
            nosync = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc &&
                 sscanf(argv[i + 1], "%d,%d", &only_p, &only_b) == 2 && only_p >= 1 &&
                 only_p <= 64 && only_b >= 1 && only_b <= 100)
            i++;
        else {
            fprintf(stderr, "usage: bench_store [--dir DIR] [--seconds S] [--shared DIR] "
                            "[--sizes-only] [--nosync] [--only P,B]\n");
            return 2;
        }
    }
    char tmpl[] = "/tmp/rtlog-bench-XXXXXX";
    if (!dir && !(dir = mkdtemp(tmpl)))
        die("mkdtemp", NULL);
    printf("Data directory: %s\n\n", dir);
    if (only_p || !sizes_only)
        make_pool();
    if (only_p) {
        run_one(dir, seconds, nosync, only_p, (size_t)only_b);
    } else {
        if (!sizes_only) {
            printf("## fsync rate\n\n%.0f write+fdatasync per second (256-byte writes, same "
                   "file system)\n\n",
                   fsync_rate(dir, seconds));
            run_all_appends(dir, seconds, nosync);
        }
        printf("\n## stored bytes of the real runs\n\n");
        run_sizes(dir, shared);
    }
    for (int b = 0; b < POOL_BATCHES; b++)
        rtlog_batch_free(&pool[b]);
    if (dir == tmpl) {
        char cmd[4300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return 0;
}
