/* cmd_export.c - `rtlog export STREAM [--ndjson] [-o FILE]`: a stream as one JSON document
 * or as NDJSON, secrets redacted, with the hash chain recomputed on the way.
 *
 * Snapshot point: the stream is described first and exactly seq 1..lastSeq of that moment
 * is written, so an export of a stream being appended is a consistent prefix. Events are
 * read in chunks (one short read transaction each, handed.md C08) into a bounded buffer
 * that is written only after the transaction closed; the whole stream is never in memory.
 * The document layout is fixed so that `rtlog verify --file` can take each event's exact
 * bytes back out of it: every event on its own line, byte-identical to its --ndjson line,
 * then a "hashes" array with h(n) of each event, one per line. The per-event hashes go to
 * an unnamed temp file while the events are written (they come after the events).
 * Source: CONTRACT.md "Tools".
 */
#include "cli_util.h"
#include "cmds.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define CMD "export"

static void usage_text(void)
{
    printf("Usage: rtlog export [OPTIONS] STREAM\n"
           "\n"
           "Write STREAM's events, secrets redacted (task credentials become \"[REDACTED]\").\n"
           "It works beside a running `rtlog serve`; events appended while exporting are not\n"
           "included: the export is the stream up to its last seq at the start.\n"
           "\n"
           "Default output, one JSON document laid out one event a line:\n"
           "  {\"stream\":\"workflow-runs/x\",\"sealed\":true,\"lastSeq\":2,\"headHash\":\"<hex>\","
           "\"events\":[\n"
           "  {...,\"seq\":1},\n"
           "  {...,\"seq\":2}\n"
           "  ],\"hashes\":[\n"
           "  \"<hex h(1)>\",\n"
           "  \"<hex h(2)>\"\n"
           "  ]}\n"
           "Each event line is byte for byte the event's --ndjson line. headHash is the chain\n"
           "head h(lastSeq) the store recorded; \"hashes\" holds h(n) of every event as this\n"
           "export recomputed it, so `rtlog verify --file` can name the first event that does\n"
           "not match. The chain: h0 = 32 zero bytes, h(n) = SHA-256(h(n-1) || line n of the\n"
           "--ndjson export without its newline).\n"
           "\n"
           "A stream that retention trimmed (the dashboard) starts after seq 1: the document\n"
           "then also has \"firstSeq\" (its first event's seq) and \"baseHash\" (hex of\n"
           "h(firstSeq-1), where its chain starts) right before \"events\", and \"hashes\"\n"
           "holds h(firstSeq)..h(lastSeq). Verify an --ndjson export of it with\n"
           "`rtlog verify --file F --base HEX` (or with the stream still in --data).\n"
           "\n"
           "Options:\n"
           "  --data DIR     data directory (default ./rtlog-data; environment RTLOG_DATA;\n"
           "                 the flag wins)\n"
           "  --ndjson       write exactly one event a line and nothing else; anyone can\n"
           "                 recompute the chain from it (tools/verify_chain.py)\n"
           "  -o FILE        write FILE (through a temp file renamed at the end: no half file\n"
           "                 on error) instead of standard output\n"
           "  -h, --help     show this help\n"
           "\n"
           "If the recomputed chain differs from the store's stored hashes (a tampered or corrupt\n"
           "store), the export is still written, a warning goes to standard error and the exit\n"
           "status is 1. Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

typedef struct export_state {
    int ndjson;
    uint64_t written; /* events appended to the chunk so far */
    uint64_t total;   /* snapshot last seq */
    rtlog_buf chunk;  /* rendered lines of the current read, written after it */
    FILE *out;
    FILE *hashes; /* JSON document: "<hex>" lines, copied after the events */
    int write_failed;
    rtlog_cli_progress prog;
} export_state;

static int on_line(void *ctx, uint64_t seq, const char *line, size_t len, const uint8_t h[32])
{
    (void)seq;
    export_state *s = ctx;
    rtlog_err rc = RTLOG_OK;
    if (s->ndjson) {
        rc = rtlog_buf_append(&s->chunk, line, len);
        if (!rc)
            rc = rtlog_buf_append(&s->chunk, "\n", 1);
    } else {
        rc = rtlog_buf_append(&s->chunk, s->written ? ",\n" : "\n", s->written ? 2 : 1);
        if (!rc)
            rc = rtlog_buf_append(&s->chunk, line, len);
        char hex[RTLOG_CLI_HASH_HEX];
        rtlog_cli_hex(h, 32, hex);
        if (fprintf(s->hashes, "%s\"%s\"", s->written ? ",\n" : "\n", hex) < 0)
            s->write_failed = 1;
    }
    s->written++;
    return rc != RTLOG_OK || s->write_failed;
}

/* After each read transaction: write the chunk (may block on a slow reader; no snapshot is
 * held now). */
static int on_chunk(void *ctx, uint64_t done)
{
    export_state *s = ctx;
    if (s->chunk.len && fwrite(s->chunk.p, 1, s->chunk.len, s->out) != s->chunk.len)
        s->write_failed = 1;
    rtlog_buf_clear(&s->chunk);
    rtlog_cli_progress_update(&s->prog, done, s->total);
    return s->write_failed;
}

static int copy_hashes(FILE *from, FILE *to)
{
    if (fflush(from) != 0 || fseek(from, 0, SEEK_SET) != 0)
        return -1;
    char buf[1 << 14];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, from)) > 0)
        if (fwrite(buf, 1, n, to) != n)
            return -1;
    return ferror(from) ? -1 : 0;
}

int rtlog_cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"ndjson", no_argument, NULL, 'n'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *data = NULL, *outpath = NULL;
    int ndjson = 0, c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            data = optarg;
            break;
        case 'n':
            ndjson = 1;
            break;
        case 'o':
            outpath = optarg;
            break;
        default: /* --help, a missing value, an unknown option */
            return rtlog_cli_opt_other(CMD, c, argv, usage_text);
        }
    }
    const char *stream;
    int bad = rtlog_cli_one_stream(CMD, argc, argv, &stream);
    if (bad >= 0)
        return bad;
    data = rtlog_cli_data_dir(data);

    int ret = 1;
    rtlog_store *st = NULL;
    rtlog_cli_out out = {0};
    export_state s;
    memset(&s, 0, sizeof s);
    s.ndjson = ndjson;

    if (rtlog_cli_open_store(CMD, data, 1, &st) != 0)
        goto out;
    rtlog_stream_info info;
    if (rtlog_cli_describe(CMD, st, stream, &info, 0) != 0)
        goto out;
    if (!ndjson && !(s.hashes = tmpfile())) {
        rtlog_cli_err(CMD, "cannot create a temporary file: %s", strerror(errno));
        goto out;
    }
    if (rtlog_cli_out_open(CMD, &out, outpath) != 0)
        goto out;
    s.out = out.f;
    s.total = info.last_seq;

    char head_hex[RTLOG_CLI_HASH_HEX];
    rtlog_cli_hex(info.head_hash, 32, head_hex);
    /* A trimmed stream (retention) says where its events start and the chain value before
     * them; an untrimmed one is written exactly as before retention existed. */
    char base_hex[RTLOG_CLI_HASH_HEX], trimmed[32 + RTLOG_CLI_HASH_HEX] = "";
    if (info.first_seq > 1)
        snprintf(trimmed, sizeof trimmed, ",\"firstSeq\":%" PRIu64 ",\"baseHash\":\"%s\"",
                 info.first_seq, rtlog_cli_hex(info.base_hash, 32, base_hex));
    if (!ndjson)
        fprintf(out.f,
                "{\"stream\":\"%s\",\"sealed\":%s,\"lastSeq\":%" PRIu64
                ",\"headHash\":\"%s\"%s,\"events\":[",
                info.stream, info.sealed ? "true" : "false", info.last_seq, head_hex, trimmed);

    rtlog_cli_progress_start(&s.prog, CMD, stream);
    rtlog_cli_walk w;
    memset(&w, 0, sizeof w);
    w.st = st;
    w.stream = stream;
    w.first_seq = info.first_seq;
    memcpy(w.base, info.base_hash, sizeof w.base);
    w.last_seq = info.last_seq;
    w.on_line = on_line;
    w.on_chunk = on_chunk;
    w.ctx = &s;
    rtlog_errinfo ei = {0};
    rtlog_err rc = rtlog_cli_walk_run(&w, &ei);
    rtlog_cli_progress_end(&s.prog, w.events, s.total);
    if (rc != RTLOG_OK) {
        if (s.write_failed)
            rtlog_cli_err(CMD, "cannot write the export%s%s: %s", outpath ? " to " : "",
                          outpath ? outpath : "", strerror(errno));
        else
            rtlog_cli_err(CMD, "reading %s failed: %s", stream,
                          ei.text[0] ? ei.text : rtlog_strerror(rc));
        goto out;
    }

    if (!ndjson) {
        fputs("\n],\"hashes\":[", out.f);
        if (copy_hashes(s.hashes, out.f) != 0) {
            rtlog_cli_err(CMD, "cannot copy the hashes: %s", strerror(errno));
            goto out;
        }
        fputs("\n]}\n", out.f);
    }
    if (rtlog_cli_out_commit(CMD, &out) != 0)
        goto out;

    ret = 0;
    if (w.problems) {
        rtlog_cli_err(CMD,
                      "warning: %s is tampered or corrupt: %s (%u problem%s); the export was "
                      "written as stored",
                      stream, w.problem, w.problems, w.problems == 1 ? "" : "s");
        ret = 1;
    } else if (memcmp(w.head, info.head_hash, 32) != 0) {
        char comp[RTLOG_CLI_HASH_HEX];
        rtlog_cli_err(CMD,
                      "warning: %s is tampered or corrupt: head does not match (stored %s, "
                      "computed %s); the export was written as stored",
                      stream, head_hex, rtlog_cli_hex(w.head, 32, comp));
        ret = 1;
    }
out:
    rtlog_cli_out_abort(&out);
    if (s.hashes)
        fclose(s.hashes);
    rtlog_buf_free(&s.chunk);
    rtlog_store_close(st);
    return ret;
}
