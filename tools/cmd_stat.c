/* cmd_stat.c - `rtlog stat STREAM`: every field of one stream's metadata (rtlog_stream_info),
 * as "name: value" lines or one JSON object (--json, built with jansson). Reads no events.
 * Tests use it to show that a refused import left a stream unchanged.
 * Source: CONTRACT.md "Tools".
 */
#include "cli_util.h"
#include "cmds.h"

#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include <jansson.h>

#define CMD "stat"

static void usage_text(void)
{
    printf("Usage: rtlog stat [OPTIONS] STREAM\n"
           "\n"
           "Show one stream's metadata: name, kind, created (RFC 3339, UTC), first and last\n"
           "seq, events, sealed/open and the final status of the sealing event, the latest\n"
           "snapshot seq (dashboard metric_update), raw bytes (canonical JSON lines) vs stored\n"
           "bytes (after compression) and their ratio, the hash-chain head h(last seq), and\n"
           "the base hash h(first seq - 1) the retained events' chain starts from (zeros\n"
           "until retention trims the stream: the dashboard).\n"
           "\n"
           "Options:\n"
           "  --data DIR   data directory (default ./rtlog-data; environment RTLOG_DATA;\n"
           "               the flag wins)\n"
           "  --json       one JSON object: {\"stream\",\"kind\",\"created\",\"createdMs\",\n"
           "               \"firstSeq\",\"lastSeq\",\"events\",\"sealed\",\"finalStatus\",\n"
           "               \"snapshotSeq\",\"rawBytes\",\"storedBytes\",\"ratio\",\"headHash\",\n"
           "               \"baseHash\"}\n"
           "  -h, --help   show this help\n"
           "\n"
           "Exit status: 0 ok, 1 failure (e.g. stream not found), 2 usage error.\n");
}

static int print_json(const rtlog_stream_info *s, const char *head, const char *base,
                      const char *created, double ratio)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:b, s:s, s:I, s:I, s:I, s:o, "
                          "s:s, s:s}",
                          "stream", s->stream, "kind", rtlog_kind_name(s->kind), "created", created,
                          "createdMs", (json_int_t)s->created_ms, "firstSeq",
                          (json_int_t)s->first_seq, "lastSeq", (json_int_t)s->last_seq, "events",
                          (json_int_t)s->event_count, "sealed", s->sealed, "finalStatus",
                          s->final_status, "snapshotSeq", (json_int_t)s->snapshot_seq, "rawBytes",
                          (json_int_t)s->raw_bytes, "storedBytes", (json_int_t)s->stored_bytes,
                          "ratio", ratio > 0 ? json_real(ratio) : json_null(), "headHash", head,
                          "baseHash", base);
    if (!o)
        return -1;
    int rc = json_dumpf(o, stdout, JSON_COMPACT);
    json_decref(o);
    if (rc != 0)
        return -1;
    putchar('\n');
    return 0;
}

int rtlog_cmd_stat(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *data = NULL;
    int json = 0, c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            data = optarg;
            break;
        case 'j':
            json = 1;
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

    rtlog_store *st = NULL;
    if (rtlog_cli_open_store(CMD, data, 1, &st) != 0)
        return 1;
    int ret = 1;
    rtlog_stream_info s;
    if (rtlog_cli_describe(CMD, st, stream, &s, 0) != 0)
        goto out;

    char head[RTLOG_CLI_HASH_HEX], base[RTLOG_CLI_HASH_HEX], created[40], raw[32], stored[32];
    rtlog_cli_hex(s.head_hash, 32, head);
    rtlog_cli_hex(s.base_hash, 32, base);
    rtlog_cli_rfc3339_ms(s.created_ms, created);
    double ratio = s.stored_bytes ? (double)s.raw_bytes / (double)s.stored_bytes : 0.0;
    if (json) {
        if (print_json(&s, head, base, created, ratio) != 0) {
            rtlog_cli_err(CMD, "cannot write the JSON output");
            goto out;
        }
    } else {
        printf("stream:        %s\n", s.stream);
        printf("kind:          %s\n", rtlog_kind_name(s.kind));
        printf("created:       %s\n", created);
        printf("first seq:     %" PRIu64 "\n", s.first_seq);
        printf("last seq:      %" PRIu64 "\n", s.last_seq);
        printf("events:        %" PRIu64 "\n", s.event_count);
        printf("state:         %s\n", s.sealed ? "sealed" : "open");
        printf("final status:  %s\n", s.final_status[0] ? s.final_status : "-");
        printf("snapshot seq:  %" PRIu64 "\n", s.snapshot_seq);
        printf("raw bytes:     %" PRIu64 " (%s)\n", s.raw_bytes,
               rtlog_cli_human_bytes(s.raw_bytes, raw));
        printf("stored bytes:  %" PRIu64 " (%s)\n", s.stored_bytes,
               rtlog_cli_human_bytes(s.stored_bytes, stored));
        if (ratio > 0)
            printf("ratio:         %.2f (raw / stored)\n", ratio);
        else
            printf("ratio:         -\n");
        printf("head hash:     %s\n", head);
        printf("base hash:     %s (h(first seq - 1): the retained chain starts here)\n", base);
    }
    ret = fflush(stdout) == 0 ? 0 : 1;
out:
    rtlog_store_close(st);
    return ret;
}
