/* cmd_ls.c - `rtlog ls`: every stream of a data directory, one line each, or --json.
 *
 * Reads only stream metadata (rtlog_store_list, bounded chunks inside the store), never
 * events, so it is cheap beside a running server. The rows are collected first because
 * the text table sizes its columns to the longest value; metadata is a few hundred bytes a
 * stream. --json output is built with jansson. Source: CONTRACT.md "Tools".
 */
#include "cli_util.h"
#include "cmds.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define CMD "ls"

static void usage_text(void)
{
    printf("Usage: rtlog ls [OPTIONS]\n"
           "\n"
           "List every stream, sorted by name, one line each: name, kind, last seq,\n"
           "sealed/open, final status (of the sealing event, \"-\" if none), events, stored\n"
           "bytes (after compression, human units) and when it was created (RFC 3339, UTC).\n"
           "\n"
           "Options:\n"
           "  --data DIR   data directory (default ./rtlog-data; environment RTLOG_DATA;\n"
           "               the flag wins)\n"
           "  --json       one JSON array instead: [{\"stream\",\"kind\",\"lastSeq\",\"sealed\",\n"
           "               \"finalStatus\",\"events\",\"storedBytes\",\"rawBytes\",\"created\",\n"
           "               \"createdMs\"}, ...]\n"
           "  -h, --help   show this help\n"
           "\n"
           "Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

typedef struct rows {
    rtlog_stream_info *v;
    size_t n, cap;
    int nomem;
} rows;

static int collect(void *ctx, const rtlog_stream_info *info)
{
    rows *r = ctx;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        rtlog_stream_info *nv = realloc(r->v, cap * sizeof *nv);
        if (!nv) {
            r->nomem = 1;
            return 1;
        }
        r->v = nv;
        r->cap = cap;
    }
    r->v[r->n++] = *info;
    return 0;
}

static int print_json(const rows *r)
{
    json_t *arr = json_array();
    if (!arr)
        return -1;
    for (size_t i = 0; i < r->n; i++) {
        const rtlog_stream_info *s = &r->v[i];
        char created[40];
        json_t *o = json_pack(
            "{s:s, s:s, s:I, s:b, s:s, s:I, s:I, s:I, s:s, s:I}", "stream", s->stream, "kind",
            rtlog_kind_name(s->kind), "lastSeq", (json_int_t)s->last_seq, "sealed", s->sealed,
            "finalStatus", s->final_status, "events", (json_int_t)s->event_count, "storedBytes",
            (json_int_t)s->stored_bytes, "rawBytes", (json_int_t)s->raw_bytes, "created",
            rtlog_cli_rfc3339_ms(s->created_ms, created), "createdMs", (json_int_t)s->created_ms);
        if (json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return -1;
        }
    }
    int rc = json_dumpf(arr, stdout, JSON_COMPACT);
    json_decref(arr);
    if (rc != 0)
        return -1;
    putchar('\n');
    return 0;
}

static int width(int w, const char *s)
{
    int n = (int)strlen(s);
    return n > w ? n : w;
}

static void print_table(const rows *r)
{
    int wname = 6, wkind = 4, wseq = 8, wstatus = 6, wev = 6, wsize = 6;
    char tmp[40];
    for (size_t i = 0; i < r->n; i++) {
        const rtlog_stream_info *s = &r->v[i];
        wname = width(wname, s->stream);
        wkind = width(wkind, rtlog_kind_name(s->kind));
        snprintf(tmp, sizeof tmp, "%" PRIu64, s->last_seq);
        wseq = width(wseq, tmp);
        wstatus = width(wstatus, s->final_status[0] ? s->final_status : "-");
        snprintf(tmp, sizeof tmp, "%" PRIu64, s->event_count);
        wev = width(wev, tmp);
        wsize = width(wsize, rtlog_cli_human_bytes(s->stored_bytes, tmp));
    }
    printf("%-*s  %-*s  %*s  %-6s  %-*s  %*s  %*s  %s\n", wname, "STREAM", wkind, "KIND", wseq,
           "LAST SEQ", "STATE", wstatus, "STATUS", wev, "EVENTS", wsize, "STORED", "CREATED");
    for (size_t i = 0; i < r->n; i++) {
        const rtlog_stream_info *s = &r->v[i];
        char size[32], created[40];
        printf("%-*s  %-*s  %*" PRIu64 "  %-6s  %-*s  %*" PRIu64 "  %*s  %s\n", wname, s->stream,
               wkind, rtlog_kind_name(s->kind), wseq, s->last_seq, s->sealed ? "sealed" : "open",
               wstatus, s->final_status[0] ? s->final_status : "-", wev, s->event_count, wsize,
               rtlog_cli_human_bytes(s->stored_bytes, size),
               rtlog_cli_rfc3339_ms(s->created_ms, created));
    }
}

int rtlog_cmd_ls(int argc, char **argv)
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
    if (argc - optind != 0)
        return rtlog_cli_usage(CMD, "unexpected argument %s", argv[optind]);
    data = rtlog_cli_data_dir(data);

    rtlog_store *st = NULL;
    if (rtlog_cli_open_store(CMD, data, 1, &st) != 0)
        return 1;
    rows r = {0};
    rtlog_errinfo ei = {0};
    int ret = 1;
    rtlog_err rc = rtlog_store_list(st, collect, &r, &ei);
    if (r.nomem)
        rc = RTLOG_E_NOMEM;
    if (rc != RTLOG_OK) {
        rtlog_cli_err(CMD, "cannot list streams in %s: %s", data,
                      ei.text[0] ? ei.text : rtlog_strerror(rc));
        goto out;
    }
    if (json) {
        if (print_json(&r) != 0) {
            rtlog_cli_err(CMD, "cannot write the JSON output");
            goto out;
        }
    } else if (r.n == 0) {
        printf("no streams in %s\n", data);
    } else {
        print_table(&r);
    }
    ret = fflush(stdout) == 0 ? 0 : 1;
out:
    free(r.v);
    rtlog_store_close(st);
    return ret;
}
