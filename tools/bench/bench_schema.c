/* bench_schema.c - how fast schema/ turns stored records back into JSON lines (the catch-up
 * hot path) and how fast it parses ingest bodies, on the real CI runs.
 *
 * A benchmark, not a test: it asserts nothing about time. Single thread.
 * Build (Release library, -O2):
 *   cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release && cmake --build build-rel --target
 * rtlog_schema
 *   gcc -O2 -std=c17 -D_GNU_SOURCE -Ischema tools/bench/bench_schema.c \
 *       build-rel/schema/librtlog_schema.a -ljansson -lmsgpackc -o /tmp/bench_schema
 *   /tmp/bench_schema ../shared/data/real-runs
 * Prints, per phase: events/s, MB/s of JSON, and ns per event; plus ns per render of one
 * typical ~200-byte step_log event.
 */
#include "rtlog_schema.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    *len = fread(p, 1, (size_t)n, f);
    fclose(f);
    return p;
}

#define MAXF 64

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "../shared/data/real-runs";
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 2;
    }
    char *bodies[MAXF];
    size_t lens[MAXF], nf = 0, total_bytes = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nf < MAXF) {
        size_t n = strlen(e->d_name);
        if (n < 7 || strcmp(e->d_name + n - 7, ".ndjson"))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        bodies[nf] = slurp(path, &lens[nf]);
        if (bodies[nf])
            total_bytes += lens[nf++];
    }
    closedir(d);
    if (nf == 0) {
        fprintf(stderr, "no .ndjson files in %s\n", dir);
        return 2;
    }

    /* parse */
    rtlog_batch batches[MAXF];
    rtlog_parse_opts o = {.family = RTLOG_FAM_RUN, .ndjson = 1, .now = "2026-01-10T14:23:45.123Z"};
    size_t events = 0;
    int parse_rounds = 5;
    double t0 = now_s();
    for (int round = 0; round < parse_rounds; round++) {
        for (size_t i = 0; i < nf; i++) {
            rtlog_errinfo ei;
            if (round)
                rtlog_batch_free(&batches[i]);
            if (rtlog_schema_parse(&o, bodies[i], lens[i], &batches[i], &ei)) {
                fprintf(stderr, "parse: %s\n", ei.text);
                return 1;
            }
            if (round == 0)
                events += batches[i].n;
        }
    }
    double tp = now_s() - t0;
    printf("parse : %zu files, %zu events, %.1f MB; %.0f events/s, %.0f MB/s, %.0f ns/event\n", nf,
           events, (double)total_bytes / 1e6, (double)events * parse_rounds / tp,
           (double)total_bytes * parse_rounds / tp / 1e6,
           tp * 1e9 / ((double)events * parse_rounds));

    /* render every record with its seq, as catch-up does */
    rtlog_buf out = {0};
    size_t json_bytes = 0;
    int rounds = 20;
    t0 = now_s();
    for (int round = 0; round < rounds; round++) {
        for (size_t i = 0; i < nf; i++) {
            for (size_t k = 0; k < batches[i].n; k++) {
                const rtlog_rec *r = &batches[i].recs[k];
                rtlog_buf_clear(&out);
                if (rtlog_schema_render(r->mp, r->mp_len, k + 1, RTLOG_JSON_REDACT, &out))
                    return 1;
                json_bytes += out.len;
            }
        }
    }
    double tr = now_s() - t0;
    printf("render: %.0f events/s, %.0f MB/s of JSON, %.0f ns/event (avg %.0f bytes/event)\n",
           (double)events * rounds / tr, (double)json_bytes / tr / 1e6,
           tr * 1e9 / ((double)events * rounds), (double)json_bytes / ((double)events * rounds));

    /* one typical small event: the first step_log of about 150-250 bytes */
    const rtlog_rec *small = NULL;
    for (size_t i = 0; i < nf && !small; i++)
        for (size_t k = 0; k < batches[i].n && !small; k++)
            if (!strcmp(batches[i].recs[k].type, "step_log") &&
                batches[i].recs[k].json_len >= 150 && batches[i].recs[k].json_len <= 250)
                small = &batches[i].recs[k];
    if (small) {
        int n = 2000000;
        t0 = now_s();
        for (int i = 0; i < n; i++) {
            rtlog_buf_clear(&out);
            rtlog_schema_render(small->mp, small->mp_len, (uint64_t)i + 1, RTLOG_JSON_REDACT, &out);
        }
        double ts = now_s() - t0;
        printf("render one %zu-byte step_log: %.0f ns/event\n", small->json_len, ts * 1e9 / n);
    }
    rtlog_buf_free(&out);
    for (size_t i = 0; i < nf; i++) {
        rtlog_batch_free(&batches[i]);
        free(bodies[i]);
    }
    return 0;
}
