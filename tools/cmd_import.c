/* cmd_import.c - `rtlog import STREAM FILE|-`: append NDJSON events to a stream.
 *
 * All-or-nothing where it matters: the whole input is read and validated with
 * rtlog_schema_parse() before the store is even opened, so a bad line anywhere (named by
 * its 1-based physical line, field and reason) writes nothing and creates no stream.
 * Also refused up front: events after a sealing event in the same input, because batches
 * are committed one by one and the store would only refuse them after the earlier batches
 * were durable. Valid input is appended in batches (--batch, each atomic through
 * rtlog_store_append); --expected-seq is checked by the store inside the first batch's
 * write transaction. Source: CONTRACT.md "Tools", "Ingest", "Completion and sealing".
 */
#include "cli_util.h"
#include "cmds.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define CMD           "import"
#define BATCH_DEFAULT 1000
#define BATCH_MAX     65536 /* the store's default group-commit cap (rtlog_store_opts) */

static void usage_text(void)
{
    printf("Usage: rtlog import [OPTIONS] STREAM FILE|-\n"
           "\n"
           "Append the NDJSON events of FILE (\"-\": standard input) to STREAM: one event object\n"
           "a line, blank lines skipped. STREAM is workflow-runs/ID, deployment-jobs/ID or\n"
           "dashboard (ID: 1-128 of [A-Za-z0-9._:-]). Agent streams (agents/ID) are written\n"
           "only by the server (POST /api/v1/agents/ID/tasks), which seals task credentials\n"
           "and keeps its task table; they cannot be imported.\n"
           "\n"
           "The whole input is read and validated first against the event types of the\n"
           "stream's kind. A bad line anywhere stops the import with one line naming the line\n"
           "number, the field and the reason, and NOTHING is written (no stream is created).\n"
           "Then events are appended in batches of --batch events; each batch is atomic: all\n"
           "of it is stored durably with gapless seqs, or none of it. An empty input creates\n"
           "the stream. A stream sealed by workflow_completed / job_completed accepts nothing\n"
           "more, and an input with events after its own sealing event is refused.\n"
           "Events without a timestamp get the time of the import.\n"
           "\n"
           "Options:\n"
           "  --data DIR         data directory (default ./rtlog-data; environment RTLOG_DATA;\n"
           "                     the flag wins)\n"
           "  --batch N          events per atomic batch, 1..%d (default %d)\n"
           "  --expected-seq N   import only if the stream's last seq is N (0: new or empty\n"
           "                     stream); checked atomically with the first batch\n"
           "  -h, --help         show this help\n"
           "\n"
           "On success prints \"imported N events into STREAM (seq A..B)\". Exit status: 0 ok,\n"
           "1 failure (nothing imported unless the message says how much was), 2 usage error.\n"
           "The input is held in memory while it is validated.\n",
           BATCH_MAX, BATCH_DEFAULT);
}

/* One non-blank input line: where an event came from. */
typedef struct line_ref {
    size_t lineno; /* 1-based physical line */
    size_t off;    /* byte offset of the line in the input */
    size_t len;    /* bytes, without the newline */
} line_ref;

static int read_all(FILE *f, rtlog_buf *b)
{
    for (;;) {
        if (rtlog_buf_reserve(b, 1u << 16) != RTLOG_OK) {
            errno = ENOMEM;
            return -1;
        }
        size_t n = fread(b->p + b->len, 1, b->cap - b->len - 1, f);
        b->len += n;
        if (n == 0)
            return ferror(f) ? -1 : 0;
    }
}

/* A line that NDJSON parsing skips: only JSON whitespace (CR included, for CRLF files). */
static int blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return 0;
    return 1;
}

/* Split @in into lines; remember the non-blank ones (the events, in order). */
static int index_lines(const rtlog_buf *in, line_ref **out, size_t *n_out)
{
    size_t cap = 0, n = 0, lineno = 0, off = 0;
    line_ref *v = NULL;
    while (off < in->len) {
        const char *nl = memchr(in->p + off, '\n', in->len - off);
        size_t len = nl ? (size_t)(nl - (in->p + off)) : in->len - off;
        lineno++;
        if (!blank(in->p + off, len)) {
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                line_ref *nv = realloc(v, cap * sizeof *v);
                if (!nv) {
                    free(v);
                    return -1;
                }
                v = nv;
            }
            v[n++] = (line_ref){lineno, off, len};
        }
        off += len + (nl ? 1 : 0);
    }
    *out = v;
    *n_out = n;
    return 0;
}

/* ei->text without its "event N: " prefix: the line number replaces the index. A JSON
 * position "at line 1 column C" is inside the one-line event: keep only the column.
 * Returns @buf or a static string. */
static const char *reason_of(const rtlog_errinfo *ei, rtlog_err rc, char *buf, size_t cap)
{
    const char *t = ei->text;
    if (!t[0])
        return rtlog_strerror(rc);
    if (strncmp(t, "event ", 6) == 0) {
        const char *p = t + 6;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p > t + 6 && p[0] == ':' && p[1] == ' ')
            t = p + 2;
    }
    static const char inner[] = " at line 1 column ";
    const char *at = strstr(t, inner);
    if (at)
        snprintf(buf, cap, "%.*s at column %s", (int)(at - t), t, at + sizeof inner - 1);
    else
        snprintf(buf, cap, "%s", t);
    return buf;
}

static rtlog_err parse_one(const rtlog_parse_opts *base, const char *p, size_t len,
                           rtlog_errinfo *ei)
{
    rtlog_parse_opts o = *base;
    o.max_events = 1;
    rtlog_batch b = {0};
    rtlog_err rc = rtlog_schema_parse(&o, p, len, &b, ei);
    rtlog_batch_free(&b);
    return rc;
}

/* Name the physical line of a validation failure. The event index maps to the index-th
 * non-blank line; that guess is confirmed by validating the line alone, and if it does not
 * fail alone (an error not tied to one event, or a different idea of "blank") every line is
 * validated alone until one fails, so the message never names the wrong line. */
static void report_invalid(const char *label, const rtlog_buf *in, const line_ref *lines,
                           size_t nlines, const rtlog_parse_opts *o, rtlog_err rc,
                           const rtlog_errinfo *ei)
{
    rtlog_errinfo one = {0};
    char why[sizeof ei->text + 16];
    if (ei->event_index >= 0 && (size_t)ei->event_index < nlines) {
        const line_ref *l = &lines[ei->event_index];
        if (parse_one(o, in->p + l->off, l->len, &one) != RTLOG_OK) {
            rtlog_cli_err(CMD, "%s line %zu: %s; nothing imported", label, l->lineno,
                          reason_of(ei, rc, why, sizeof why));
            return;
        }
    }
    size_t off = 0, lineno = 0;
    while (off < in->len) {
        const char *nl = memchr(in->p + off, '\n', in->len - off);
        size_t len = nl ? (size_t)(nl - (in->p + off)) : in->len - off;
        lineno++;
        memset(&one, 0, sizeof one);
        rtlog_err r1 = parse_one(o, in->p + off, len, &one);
        if (r1 != RTLOG_OK) {
            rtlog_cli_err(CMD, "%s line %zu: %s; nothing imported", label, lineno,
                          reason_of(&one, r1, why, sizeof why));
            return;
        }
        off += len + (nl ? 1 : 0);
    }
    rtlog_cli_err(CMD, "%s: %s; nothing imported", label, reason_of(ei, rc, why, sizeof why));
}

typedef struct type_probe {
    char type[64];
} type_probe;

static int probe_type(void *ctx, const rtlog_event_view *ev)
{
    type_probe *tp = ctx;
    const char *t = NULL;
    size_t n = 0;
    if (rtlog_schema_rec_type(ev->mp, ev->mp_len, &t, &n) == RTLOG_OK && n < sizeof tp->type) {
        memcpy(tp->type, t, n);
        tp->type[n] = '\0';
    }
    return 1;
}

/* "stream workflow-runs/x is sealed (workflow_completed at seq 153); nothing imported" */
static void report_sealed(rtlog_store *st, const char *stream, rtlog_kind kind)
{
    rtlog_stream_info info;
    rtlog_errinfo ei = {0};
    if (rtlog_store_describe(st, stream, &info, &ei) != RTLOG_OK) {
        rtlog_cli_err(CMD, "stream %s is sealed; nothing imported", stream);
        return;
    }
    type_probe tp = {{0}};
    if (info.last_seq > 0)
        (void)rtlog_store_read(st, stream, info.last_seq, 1, 0, probe_type, &tp, NULL, &ei);
    if (tp.type[0] && (rtlog_schema_type_flags(rtlog_kind_family(kind), tp.type) & RTLOG_REC_SEALS))
        rtlog_cli_err(CMD, "stream %s is sealed (%s at seq %" PRIu64 "); nothing imported", stream,
                      tp.type, info.last_seq);
    else
        rtlog_cli_err(CMD, "stream %s is sealed (at seq %" PRIu64 "); nothing imported", stream,
                      info.last_seq);
}

typedef struct import_args {
    const char *data;
    const char *stream;
    const char *file;
    uint64_t batch;
    uint64_t expected;
    int has_expected;
} import_args;

static int parse_args(int argc, char **argv, import_args *a)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"batch", required_argument, NULL, 'b'},
        {"expected-seq", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->batch = BATCH_DEFAULT;
    opterr = 0;
    optind = 0; /* full re-initialisation of getopt (glibc) */
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            a->data = optarg;
            break;
        case 'b':
            if (rtlog_cli_parse_u64(optarg, &a->batch) != 0 || a->batch < 1 || a->batch > BATCH_MAX)
                return rtlog_cli_usage(CMD, "--batch wants a number from 1 to %d, not \"%s\"",
                                       BATCH_MAX, optarg);
            break;
        case 'e':
            if (rtlog_cli_parse_u64(optarg, &a->expected) != 0)
                return rtlog_cli_usage(CMD, "--expected-seq wants a sequence number, not \"%s\"",
                                       optarg);
            a->has_expected = 1;
            break;
        default: /* --help, a missing value, an unknown option */
            return rtlog_cli_opt_other(CMD, c, argv, usage_text);
        }
    }
    if (argc - optind != 2)
        return rtlog_cli_usage(CMD, "expected STREAM and FILE (or - for standard input)");
    a->stream = argv[optind];
    a->file = argv[optind + 1];
    a->data = rtlog_cli_data_dir(a->data);
    return -1; /* go on */
}

int rtlog_cmd_import(int argc, char **argv)
{
    import_args a;
    int ret = parse_args(argc, argv, &a);
    if (ret >= 0)
        return ret;

    rtlog_kind kind;
    if (rtlog_cli_stream_arg(CMD, a.stream, &kind) != 0)
        return 1;
    if (kind == RTLOG_KIND_AGENT) {
        /* Imported assignments would store credentials in clear and bypass the server's task
         * table (CONTRACT "Agents"): agent streams are the server's to write. */
        rtlog_cli_err(CMD, "%s: agent streams cannot be imported; assign tasks with POST "
                           "/api/v1/agents/ID/tasks",
                      a.stream);
        return 2;
    }

    ret = 1;
    rtlog_buf in = {0};
    line_ref *lines = NULL;
    size_t nlines = 0;
    rtlog_batch batch = {0};
    rtlog_store *st = NULL;
    const char *label = strcmp(a.file, "-") == 0 ? "stdin" : a.file;

    FILE *f = strcmp(a.file, "-") == 0 ? stdin : fopen(a.file, "rb");
    if (!f) {
        rtlog_cli_err(CMD, "cannot open %s: %s", a.file, strerror(errno));
        goto out;
    }
    int rd = read_all(f, &in);
    int rd_errno = errno;
    if (f != stdin)
        fclose(f);
    if (rd != 0) {
        rtlog_cli_err(CMD, "cannot read %s: %s", label, strerror(rd_errno));
        goto out;
    }
    if (index_lines(&in, &lines, &nlines) != 0) {
        rtlog_cli_err(CMD, "out of memory");
        goto out;
    }

    /* Validate everything before touching the store. */
    char now[32];
    rtlog_parse_opts po = {0};
    po.family = rtlog_kind_family(kind);
    po.ndjson = 1;
    po.max_events = nlines + 1; /* the file's own size is the limit, not the HTTP default */
    po.now = rtlog_schema_now(now);
    rtlog_errinfo ei = {0};
    rtlog_err rc = rtlog_schema_parse(&po, in.p ? in.p : "", in.len, &batch, &ei);
    if (rc != RTLOG_OK) {
        report_invalid(label, &in, lines, nlines, &po, rc, &ei);
        goto out;
    }
    if (batch.n != nlines) {
        /* The schema skipped or split lines differently than we counted: line numbers in
         * later messages could be wrong, so refuse rather than guess. */
        rtlog_cli_err(CMD, "%s: %zu events parsed from %zu non-blank lines; nothing imported",
                      label, batch.n, nlines);
        goto out;
    }
    for (size_t i = 0; i + 1 < batch.n; i++) {
        if (batch.recs[i].flags & RTLOG_REC_SEALS) {
            rtlog_cli_err(CMD,
                          "%s line %zu: event after the %s on line %zu, which seals the stream; "
                          "nothing imported",
                          label, lines[i + 1].lineno, batch.recs[i].type, lines[i].lineno);
            goto out;
        }
    }

    if (rtlog_cli_open_store(CMD, a.data, 0, &st) != 0)
        goto out;
    rtlog_stream_info info;
    int d = rtlog_cli_describe(CMD, st, a.stream, &info, 1);
    if (d < 0)
        goto out;
    int existed = d == 0;
    if (existed && info.sealed) {
        report_sealed(st, a.stream, kind);
        goto out;
    }

    rtlog_cli_progress prog;
    rtlog_cli_progress_start(&prog, CMD, a.stream);
    uint64_t first = 0, last = 0;
    size_t off = 0;
    do {
        size_t cnt = batch.n - off < a.batch ? batch.n - off : (size_t)a.batch;
        rtlog_append_req req = {0};
        req.stream = a.stream;
        req.recs = batch.recs + off;
        req.n = cnt;
        if (off == 0 && a.has_expected) {
            req.expected_seq = a.expected;
            req.has_expected = 1;
        }
        rtlog_append_res res = {0};
        memset(&ei, 0, sizeof ei);
        rc = rtlog_store_append(st, &req, &res, &ei);
        if (rc != RTLOG_OK) {
            rtlog_cli_progress_end(&prog, off, batch.n);
            if (off > 0) {
                rtlog_cli_err(CMD,
                              "%s: imported %zu events (seq %" PRIu64 "..%" PRIu64 "), then the "
                              "batch from %s line %zu failed: %s; the rest was not imported",
                              a.stream, off, first, last, label, lines[off].lineno,
                              ei.text[0] ? ei.text : rtlog_strerror(rc));
            } else if (rc == RTLOG_E_SEALED) {
                report_sealed(st, a.stream, kind);
            } else if (rc == RTLOG_E_CONFLICT) {
                uint64_t cur = res.last_seq;
                if (cur == 0 && rtlog_cli_describe(CMD, st, a.stream, &info, 1) == 0)
                    cur = info.last_seq;
                rtlog_cli_err(
                    CMD, "expected seq %" PRIu64 " but %s is at seq %" PRIu64 "; nothing imported",
                    a.expected, a.stream, cur);
            } else {
                rtlog_cli_err(CMD, "cannot append to %s: %s; nothing imported", a.stream,
                              ei.text[0] ? ei.text : rtlog_strerror(rc));
            }
            goto out;
        }
        if (off == 0)
            first = res.first_seq;
        last = res.last_seq;
        off += cnt;
        rtlog_cli_progress_update(&prog, off, batch.n);
    } while (off < batch.n);
    rtlog_cli_progress_end(&prog, off, batch.n);

    if (batch.n == 0)
        printf("imported 0 events into %s (%s, last seq %" PRIu64 ")\n", a.stream,
               existed ? "unchanged" : "created", last);
    else if (last - first + 1 == batch.n)
        printf("imported %zu events into %s (seq %" PRIu64 "..%" PRIu64 ")\n", batch.n, a.stream,
               first, last);
    else
        printf("imported %zu events into %s (seq %" PRIu64 "..%" PRIu64
               ", interleaved with other writers)\n",
               batch.n, a.stream, first, last);
    ret = fflush(stdout) == 0 ? 0 : 1;
out:
    rtlog_store_close(st);
    rtlog_batch_free(&batch);
    free(lines);
    rtlog_buf_free(&in);
    return ret;
}
