/* cmd_verify.c - `rtlog verify STREAM` and `rtlog verify --file F [STREAM]`: recompute the
 * hash chain and name the first event that does not match.
 *
 * STREAM: walk the store in chunks (cli_chain.c), re-render every record, recompute the
 * chain, compare each stored hash8, the seqs (gapless) and the stored head.
 * --file: F is an export; which kind is detected from its first line (an NDJSON export
 * starts with a complete event object, a document with its header). The chain is
 * recomputed from the file's own bytes, never from a re-rendering: an NDJSON line is used
 * as it is (without its newline), and a document is read in the fixed layout
 * `rtlog export` writes (header line, one event a line byte-identical to its NDJSON line,
 * "hashes" one a line, "]}"), so each event's exact bytes are its line minus the
 * separating comma. A document reformatted by another tool (jq, a pretty printer) cannot
 * be verified byte-exactly and is refused with that reason. The file is streamed line by
 * line; only the 32-byte hash of each event is kept. The first failure wins: the earliest
 * position among seq gaps, malformed events, and hashes that differ from the document's
 * "hashes" or from the store's stored hash8 (when the stream is in --data).
 * Retention: a trimmed stream (the dashboard) starts at firstSeq > 1 and its chain at
 * baseHash = h(firstSeq - 1): the document header carries both, an NDJSON export starts
 * with the event firstSeq and takes the base from --base (or from the store when the
 * stream there still starts at that seq). Positions stay 1-based in the file; seqs are
 * first + position - 1.
 * Source: CONTRACT.md "Tools"; README "Dashboard retention".
 */
#include "cli_util.h"
#include "cmds.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#define CMD            "verify"
#define DOC_EVENTS_END "],\"hashes\":["
#define DOC_END        "]}"
#define DOC_HEAD_TAIL  "\"events\":["

static void usage_text(void)
{
    printf("Usage: rtlog verify [OPTIONS] STREAM\n"
           "       rtlog verify [OPTIONS] --file FILE [STREAM]\n"
           "\n"
           "Check tamper evidence. The chain: h0 = 32 zero bytes, h(n) = SHA-256(h(n-1) || the\n"
           "event's line as `rtlog export --ndjson` writes it, without the newline).\n"
           "\n"
           "STREAM alone: read the stream from the store, re-render and re-hash every event,\n"
           "check that seqs are 1,2,3... without gaps (from the first retained seq, chained\n"
           "from the stored base hash, once retention trimmed the stream), that each event's\n"
           "stored hash and the\n"
           "stored head match. Prints \"ok: STREAM N events, head <hex>\", or names the first\n"
           "event that does not match and exits 1.\n"
           "\n"
           "--file FILE: check an export (detected: a JSON document or an NDJSON export). Each\n"
           "event must be an object with an integer seq, seqs 1,2,3... in order (or F,F+1,...\n"
           "for an export of a trimmed stream: a document's \"firstSeq\" and \"baseHash\", or\n"
           "an NDJSON export whose first event has seq F, chained from --base). The chain is\n"
           "recomputed from the file's own bytes: NDJSON lines as they are; a JSON document\n"
           "must keep the layout `rtlog export` writes (one event a line), since a reformatted\n"
           "document no longer has the hashed bytes. A document's \"hashes\" (h(n) of every\n"
           "event), \"headHash\" and \"lastSeq\" are compared. When STREAM (or the document's\n"
           "own stream) exists in the store at --data, each event is also compared with the\n"
           "store's stored hash, so a file whose hashes were all rewritten is still caught.\n"
           "\n"
           "Options:\n"
           "  --data DIR     data directory (default ./rtlog-data; environment RTLOG_DATA;\n"
           "                 the flag wins); with --file it is used only if it exists, unless\n"
           "                 given explicitly\n"
           "  --file FILE    verify an export file (\"-\": standard input) instead of the store\n"
           "  --head HEX     the expected head hash (64 hex digits), e.g. one published\n"
           "                 earlier; compared with the recomputed head\n"
           "  --base HEX     with --file: h(F-1) for an export that starts at seq F > 1 (the\n"
           "                 document's baseHash; `rtlog stat`'s base hash); needed for such\n"
           "                 an NDJSON export unless the store at --data starts at F too\n"
           "  -h, --help     show this help\n"
           "\n"
           "Exit status: 0 ok, 1 a mismatch or an unreadable input, 2 usage error.\n");
}

/* ---- verify STREAM ----------------------------------------------------------------------- */

static int verify_store(const char *data, const char *stream, const uint8_t *want_head)
{
    rtlog_store *st = NULL;
    if (rtlog_cli_open_store(CMD, data, 1, &st) != 0)
        return 1;
    int ret = 1;
    rtlog_stream_info info;
    if (rtlog_cli_describe(CMD, st, stream, &info, 0) != 0)
        goto out;
    rtlog_cli_walk w;
    memset(&w, 0, sizeof w);
    w.st = st;
    w.stream = stream;
    w.first_seq = info.first_seq;
    memcpy(w.base, info.base_hash, sizeof w.base);
    w.last_seq = info.last_seq;
    rtlog_errinfo ei = {0};
    rtlog_err rc = rtlog_cli_walk_run(&w, &ei);
    if (rc != RTLOG_OK) {
        rtlog_cli_err(CMD, "%s: reading failed: %s", stream,
                      ei.text[0] ? ei.text : rtlog_strerror(rc));
        goto out;
    }
    char a[RTLOG_CLI_HASH_HEX], b[RTLOG_CLI_HASH_HEX];
    if (w.problems) {
        if (w.problems > 1)
            rtlog_cli_err(CMD, "%s: %s (%u problems in all)", stream, w.problem, w.problems);
        else
            rtlog_cli_err(CMD, "%s: %s", stream, w.problem);
        goto out;
    }
    if (memcmp(w.head, info.head_hash, 32) != 0) {
        rtlog_cli_err(CMD, "%s: head does not match (stored %s, computed %s)", stream,
                      rtlog_cli_hex(info.head_hash, 32, a), rtlog_cli_hex(w.head, 32, b));
        goto out;
    }
    if (want_head && memcmp(w.head, want_head, 32) != 0) {
        rtlog_cli_err(CMD, "%s: head does not match --head (given %s, computed %s)", stream,
                      rtlog_cli_hex(want_head, 32, a), rtlog_cli_hex(w.head, 32, b));
        goto out;
    }
    printf("ok: %s %" PRIu64 " events, head %s\n", stream, w.events, rtlog_cli_hex(w.head, 32, a));
    ret = fflush(stdout) == 0 ? 0 : 1;
out:
    rtlog_store_close(st);
    return ret;
}

/* ---- verify --file ----------------------------------------------------------------------- */

typedef struct fv {
    const char *path;
    FILE *f;
    char *line; /* getline buffer, owned */
    size_t line_cap;
    size_t len; /* current line, without '\n' */
    size_t lineno;
    int is_doc;

    rtlog_cli_chain chain;
    uint8_t (*h)[32]; /* h(1)..h(nh), owned */
    size_t nh, cap;
    size_t events;    /* event lines read */
    int stop_hashing; /* after the first malformed or out-of-order event */

    size_t bad_pos; /* position of the earliest problem, 0 = none */
    char bad[448];  /* its description */

    uint64_t first;      /* seq of position 1: 1, or the export's firstSeq */
    int have_base;       /* base below is known (--base, the store, or the header) */
    uint8_t base[32];    /* h(first - 1) */
    int base_opt;        /* base came from --base */
    uint64_t base_for;   /* from the store: the first seq it belongs to (0: --base/header) */

    /* document header */
    char stream[RTLOG_STREAM_MAX];
    int sealed;
    uint64_t last_seq;
    uint8_t head_hash[32];
    size_t nhashes; /* entries of "hashes" */
} fv;

static void fv_problem(fv *v, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Keep the problem at the smallest position: that is the first event that does not match. */
static void fv_problem(fv *v, size_t pos, const char *fmt, ...)
{
    if (v->bad_pos && v->bad_pos <= pos)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->bad, sizeof v->bad, fmt, ap);
    va_end(ap);
    v->bad_pos = pos;
}

/* Next line into v->line/v->len (newline removed). 1 = got one, 0 = end, -1 = error. */
static int fv_next(fv *v)
{
    errno = 0;
    ssize_t n = getline(&v->line, &v->line_cap, v->f);
    if (n < 0)
        return ferror(v->f) ? -1 : 0;
    v->len = (size_t)n;
    if (v->len && v->line[v->len - 1] == '\n')
        v->len--;
    v->lineno++;
    return 1;
}

static size_t fv_line_of(const fv *v, size_t pos)
{
    return v->is_doc ? pos + 1 : pos; /* a document's line 1 is its header */
}

/* One event's exact bytes at 1-based position @pos: parse for its seq, extend the chain. */
static int fv_event(fv *v, const char *p, size_t len)
{
    size_t pos = ++v->events;
    if (v->stop_hashing)
        return 0;
    size_t ln = fv_line_of(v, pos);
    json_error_t jerr;
    json_t *j = len ? json_loadb(p, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr) : NULL;
    json_t *seq = j && json_is_object(j) ? json_object_get(j, "seq") : NULL;
    if (pos == 1 && !v->is_doc && json_is_integer(seq) && json_integer_value(seq) > 1) {
        /* An NDJSON export of a trimmed stream: its chain starts from h(seq - 1). */
        v->first = (uint64_t)json_integer_value(seq);
        if (!v->have_base || (v->base_for && v->base_for != v->first)) {
            json_decref(j);
            v->stop_hashing = 1;
            fv_problem(v, pos,
                       "the export starts at seq %" PRIu64 " (retention trimmed the stream): "
                       "give --base HEX, h(%" PRIu64 ") (the document export's baseHash or "
                       "`rtlog stat`'s base hash), or STREAM with a --data that starts there",
                       v->first, v->first - 1);
            return 0;
        }
        memcpy(v->chain.h, v->base, 32);
    }
    uint64_t want = v->first + pos - 1;
    if (!len)
        fv_problem(v, pos, "line %zu is empty where the event at position %zu belongs", ln, pos);
    else if (!j)
        fv_problem(v, pos, "event at position %zu (line %zu) is not valid JSON: %s (column %d)",
                   pos, ln, jerr.text, jerr.column);
    else if (!json_is_object(j))
        fv_problem(v, pos, "event at position %zu (line %zu) is not a JSON object", pos, ln);
    else if (!json_is_integer(seq))
        fv_problem(v, pos, "event at position %zu (line %zu) has no integer \"seq\"", pos, ln);
    else if (json_integer_value(seq) != (json_int_t)want)
        fv_problem(v, pos,
                   "event at position %zu (line %zu) has seq %" JSON_INTEGER_FORMAT
                   ", expected seq %" PRIu64,
                   pos, ln, json_integer_value(seq), want);
    else {
        json_decref(j);
        if (v->nh == v->cap) {
            size_t cap = v->cap ? v->cap * 2 : 1024;
            uint8_t(*nv)[32] = realloc(v->h, cap * sizeof *nv);
            if (!nv)
                return -1;
            v->h = nv;
            v->cap = cap;
        }
        if (rtlog_cli_chain_step(&v->chain, p, len) != RTLOG_OK)
            return -1;
        memcpy(v->h[v->nh++], v->chain.h, 32);
        return 0;
    }
    json_decref(j);
    v->stop_hashing = 1; /* the chain past a broken position means nothing */
    return 0;
}

static int ends_with(const char *p, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(p + n - k, suffix, k) == 0;
}

static int is_line(const fv *v, const char *s)
{
    return v->len == strlen(s) && memcmp(v->line, s, v->len) == 0;
}

/* Header line of a document: `{"stream":..,"sealed":..,"lastSeq":..,"headHash":..,"events":[`
 * closed with "]}" it is a JSON object we can read the fields from. */
static int fv_header(fv *v)
{
    char *text = malloc(v->len + 3);
    if (!text)
        return -1;
    memcpy(text, v->line, v->len);
    memcpy(text + v->len, "]}", 3);
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    json_t *stream = json_object_get(j, "stream"), *sealed = json_object_get(j, "sealed");
    json_t *last = json_object_get(j, "lastSeq"), *head = json_object_get(j, "headHash");
    rtlog_kind kind;
    int ok = j && json_is_object(j) && json_is_string(stream) && json_is_boolean(sealed) &&
             json_is_integer(last) && json_integer_value(last) >= 0 && json_is_string(head) &&
             json_string_length(stream) < sizeof v->stream &&
             rtlog_stream_parse(json_string_value(stream), json_string_length(stream), &kind, NULL,
                                NULL, NULL) == RTLOG_OK &&
             rtlog_cli_unhex(json_string_value(head), v->head_hash, 32) == 0;
    /* Present only for a trimmed stream: both, firstSeq > 1 and at most lastSeq + 1. */
    json_t *first = json_object_get(j, "firstSeq"), *base = json_object_get(j, "baseHash");
    uint8_t bh[32];
    if (ok && (first || base))
        ok = json_is_integer(first) && json_integer_value(first) > 1 && json_is_string(base) &&
             json_integer_value(first) <= json_integer_value(last) + 1 &&
             rtlog_cli_unhex(json_string_value(base), bh, 32) == 0;
    if (ok) {
        snprintf(v->stream, sizeof v->stream, "%s", json_string_value(stream));
        v->sealed = json_is_true(sealed);
        v->last_seq = (uint64_t)json_integer_value(last);
        if (first) {
            v->first = (uint64_t)json_integer_value(first);
            if (v->base_opt && memcmp(v->base, bh, 32) != 0)
                fv_problem(v, 1, "\"baseHash\" differs from --base");
            memcpy(v->base, bh, 32);
            v->have_base = 1;
            memcpy(v->chain.h, bh, 32);
        }
    }
    json_decref(j);
    return ok ? 0 : 1;
}

static int layout_error(fv *v, const char *what)
{
    rtlog_cli_err(CMD,
                  "%s: line %zu: %s; not in the layout `rtlog export` writes (one event a line), "
                  "so its bytes cannot be verified: use the original file or an --ndjson export",
                  v->path, v->lineno, what);
    return 1;
}

static int truncated(fv *v, const char *inside)
{
    rtlog_cli_err(CMD, "%s: the file ends at line %zu inside %s: it is truncated", v->path,
                  v->lineno, inside);
    return 1;
}

/* Document body: event lines up to DOC_EVENTS_END, hash lines up to DOC_END, then EOF. */
static int fv_read_doc(fv *v)
{
    int r, prev_comma = 0;
    for (;;) {
        if ((r = fv_next(v)) <= 0)
            return r < 0 ? -1 : truncated(v, "\"events\"");
        if (is_line(v, DOC_EVENTS_END))
            break;
        if (v->events && !prev_comma)
            return layout_error(v, "an event line follows one without a trailing comma");
        prev_comma = v->len && v->line[v->len - 1] == ',';
        if (fv_event(v, v->line, v->len - (prev_comma ? 1 : 0)) != 0)
            return -1;
    }
    if (prev_comma)
        return layout_error(v, "the last event line ends with a comma");
    prev_comma = 0;
    for (;;) {
        if ((r = fv_next(v)) <= 0)
            return r < 0 ? -1 : truncated(v, "\"hashes\"");
        if (is_line(v, DOC_END))
            break;
        if (v->nhashes && !prev_comma)
            return layout_error(v, "a hash line follows one without a trailing comma");
        prev_comma = v->len && v->line[v->len - 1] == ',';
        size_t n = v->len - (prev_comma ? 1 : 0);
        char hex[RTLOG_CLI_HASH_HEX];
        uint8_t h[32];
        if (n != 66 || v->line[0] != '"' || v->line[65] != '"')
            return layout_error(v, "a \"hashes\" entry is not a quoted 64-digit hex string");
        memcpy(hex, v->line + 1, 64);
        hex[64] = '\0';
        if (rtlog_cli_unhex(hex, h, 32) != 0)
            return layout_error(v, "a \"hashes\" entry is not a quoted 64-digit hex string");
        size_t pos = ++v->nhashes;
        if (pos <= v->nh && memcmp(h, v->h[pos - 1], 32) != 0) {
            char c[17];
            fv_problem(v, pos,
                       "event seq %" PRIu64 " (line %zu) does not match (export hash %.16s, "
                       "computed %s)",
                       v->first + pos - 1, fv_line_of(v, pos), hex,
                       rtlog_cli_hex(v->h[pos - 1], 8, c));
        }
    }
    if (prev_comma)
        return layout_error(v, "the last hash line ends with a comma");
    if ((r = fv_next(v)) != 0)
        return r < 0 ? -1 : layout_error(v, "text after the closing ]}");
    return 0;
}

static int fv_read_ndjson(fv *v)
{
    /* The first line is already in v->line. */
    int r = 1;
    while (r == 1) {
        if (fv_event(v, v->line, v->len) != 0)
            return -1;
        r = fv_next(v);
    }
    return r < 0 ? -1 : 0;
}

/* First line: a complete event object (NDJSON) or a document header. */
static int fv_detect_and_read(fv *v)
{
    int r = fv_next(v);
    if (r < 0)
        return -1;
    if (r == 0)
        return 0; /* empty file: an NDJSON export of an empty stream */
    json_error_t jerr;
    json_t *j = json_loadb(v->line, v->len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
    int whole_doc = j && json_is_object(j) && json_object_get(j, "events");
    int event = j && json_is_object(j) && !whole_doc;
    json_decref(j);
    if (whole_doc) {
        v->is_doc = 1;
        return layout_error(v, "the whole document is on one line");
    }
    if (event)
        return fv_read_ndjson(v);
    if (ends_with(v->line, v->len, DOC_HEAD_TAIL)) {
        v->is_doc = 1;
        if (fv_header(v) != 0) {
            rtlog_cli_err(CMD,
                          "%s: line 1: the document header lacks a valid \"stream\" (a stream "
                          "name), \"sealed\", \"lastSeq\" or \"headHash\" (or has a bad "
                          "\"firstSeq\"/\"baseHash\" pair)",
                          v->path);
            return 1;
        }
        return fv_read_doc(v);
    }
    rtlog_cli_err(CMD,
                  "%s: neither an rtlog export document nor an NDJSON export: line 1 is not an "
                  "event object (%s) nor a document header (a reformatted document cannot be "
                  "verified byte-exactly: use the original file or an --ndjson export)",
                  v->path, j ? "not an object" : jerr.text);
    return 1;
}

typedef struct store_cmp {
    fv *v;
    const char *stream;
    uint64_t next;
    size_t in_chunk;
} store_cmp;

static int store_cmp_cb(void *ctx, const rtlog_event_view *ev)
{
    store_cmp *s = ctx;
    fv *v = s->v;
    s->in_chunk++;
    s->next = ev->seq + 1;
    if (ev->seq < v->first || ev->seq - v->first >= v->nh)
        return 1;
    size_t pos = (size_t)(ev->seq - v->first) + 1;
    const uint8_t *mine = v->h[pos - 1];
    if (memcmp(mine, ev->hash8, 8) != 0) {
        char a[17], b[17];
        fv_problem(v, pos,
                   "event seq %" PRIu64 " (line %zu) does not match the store's %s (stored hash "
                   "%s, computed %s)",
                   ev->seq, fv_line_of(v, pos), s->stream,
                   rtlog_cli_hex(ev->hash8, 8, a), rtlog_cli_hex(mine, 8, b));
        return 1;
    }
    return 0;
}

/* Compare the file's h(first)..h(first + nh - 1) with the store's stored hash8 of the same
 * seqs that the store still retains, chunk by chunk. */
static rtlog_err compare_with_store(fv *v, rtlog_store *st, const char *stream,
                                    const rtlog_stream_info *info, rtlog_errinfo *ei)
{
    store_cmp s = {v, stream, v->first > info->first_seq ? v->first : info->first_seq, 0};
    uint64_t file_last = v->first + v->nh - 1;
    uint64_t upto = info->last_seq < file_last ? info->last_seq : file_last;
    size_t before = v->bad_pos;
    while (s.next <= upto) {
        uint64_t left = upto - s.next + 1;
        size_t max = left < RTLOG_CLI_CHUNK_EVENTS ? (size_t)left : RTLOG_CLI_CHUNK_EVENTS;
        s.in_chunk = 0;
        rtlog_err rc = rtlog_store_read(st, stream, s.next, max, RTLOG_CLI_CHUNK_BYTES,
                                        store_cmp_cb, &s, NULL, ei);
        if (rc != RTLOG_OK)
            return rc;
        if (s.in_chunk == 0 || v->bad_pos != before)
            break;
    }
    return RTLOG_OK;
}

typedef struct verify_args {
    const char *data;
    int data_explicit;
    const char *file;
    const char *stream;
    uint8_t head[32];
    int has_head;
    uint8_t base[32];
    int has_base;
} verify_args;

/* Before reading an NDJSON export of a trimmed stream: the store's base hash, when STREAM
 * is named and in the store (used only if the file starts where the store does). */
static void base_from_store(const verify_args *a, fv *v)
{
    struct stat sb;
    if (a->has_base || !a->stream || !(a->data_explicit || stat(a->data, &sb) == 0))
        return;
    rtlog_store *st = NULL;
    rtlog_store_opts o = {.dir = a->data, .readonly = 1};
    rtlog_stream_info info;
    if (rtlog_store_open(&o, &st, NULL) != RTLOG_OK)
        return; /* reported later, where the store is opened for the comparison */
    if (rtlog_store_describe(st, a->stream, &info, NULL) == RTLOG_OK && info.first_seq > 1) {
        memcpy(v->base, info.base_hash, 32);
        v->base_for = info.first_seq;
        v->have_base = 1;
    }
    rtlog_store_close(st);
}

static int verify_file(const verify_args *a)
{
    fv v;
    memset(&v, 0, sizeof v);
    v.path = a->file;
    v.first = 1;
    if (a->has_base) {
        memcpy(v.base, a->base, 32);
        v.have_base = v.base_opt = 1;
    } else {
        base_from_store(a, &v);
    }
    rtlog_store *st = NULL;
    int ret = 1;
    char x[RTLOG_CLI_HASH_HEX], y[RTLOG_CLI_HASH_HEX];

    v.f = strcmp(a->file, "-") == 0 ? stdin : fopen(a->file, "rb");
    if (!v.f) {
        rtlog_cli_err(CMD, "cannot open %s: %s", a->file, strerror(errno));
        return 1;
    }
    if (rtlog_cli_chain_init(&v.chain) != RTLOG_OK) {
        rtlog_cli_err(CMD, "out of memory");
        goto out;
    }
    int r = fv_detect_and_read(&v);
    if (r < 0) {
        rtlog_cli_err(CMD, "cannot read %s: %s", a->file, errno ? strerror(errno) : "error");
        goto out;
    }
    if (r > 0)
        goto out;

    /* The store, when it holds the stream: the reference nobody can rewrite with the file. */
    const char *stream = a->stream ? a->stream : (v.is_doc ? v.stream : NULL);
    if (a->stream && v.is_doc && strcmp(a->stream, v.stream) != 0) {
        rtlog_cli_err(CMD, "%s is an export of %s, not %s", a->file, v.stream, a->stream);
        goto out;
    }
    rtlog_stream_info info;
    int in_store = 0;
    const char *note = "";
    char note_buf[RTLOG_STREAM_MAX + 256];
    struct stat sb;
    if (stream && (a->data_explicit || stat(a->data, &sb) == 0)) {
        if (rtlog_cli_open_store(CMD, a->data, 1, &st) != 0)
            goto out;
        int d = rtlog_cli_describe(CMD, st, stream, &info, 1);
        if (d < 0)
            goto out;
        if (d == 0) {
            rtlog_errinfo ei = {0};
            rtlog_err rc = compare_with_store(&v, st, stream, &info, &ei);
            if (rc != RTLOG_OK) {
                rtlog_cli_err(CMD, "%s: reading the store failed: %s", stream,
                              ei.text[0] ? ei.text : rtlog_strerror(rc));
                goto out;
            }
            in_store = 1;
        } else {
            snprintf(note_buf, sizeof note_buf, "; %s is not in the store, not compared", stream);
            note = note_buf;
        }
    } else if (a->stream) {
        snprintf(note_buf, sizeof note_buf, "; no store at %.*s, not compared", 200, a->data);
        note = note_buf;
    }

    if (v.bad_pos) {
        rtlog_cli_err(CMD, "%s: %s", a->file, v.bad);
        goto out;
    }
    if (v.is_doc && v.nhashes != v.events) {
        rtlog_cli_err(CMD, "%s: \"hashes\" has %zu entries for %zu events", a->file, v.nhashes,
                      v.events);
        goto out;
    }
    uint64_t file_last = v.first + v.events - 1; /* seq of the last event in the file */
    if (v.is_doc && v.last_seq != file_last) {
        rtlog_cli_err(CMD,
                      "%s: \"lastSeq\" is %" PRIu64 " but the document's events end at seq %" PRIu64,
                      a->file, v.last_seq, file_last);
        goto out;
    }
    if (in_store && v.first > 1 && info.first_seq == v.first &&
        memcmp(info.base_hash, v.base, 32) != 0) {
        rtlog_cli_err(CMD, "%s: the base h(%" PRIu64 ") differs from the store's %s (%s, stored %s)",
                      a->file, v.first - 1, stream, rtlog_cli_hex(v.base, 32, x),
                      rtlog_cli_hex(info.base_hash, 32, y));
        goto out;
    }
    if (v.is_doc && memcmp(v.head_hash, v.chain.h, 32) != 0) {
        rtlog_cli_err(CMD, "%s: head does not match (headHash %s, computed %s)", a->file,
                      rtlog_cli_hex(v.head_hash, 32, x), rtlog_cli_hex(v.chain.h, 32, y));
        goto out;
    }
    if (a->has_head && memcmp(a->head, v.chain.h, 32) != 0) {
        rtlog_cli_err(CMD, "%s: head does not match --head (given %s, computed %s)", a->file,
                      rtlog_cli_hex(a->head, 32, x), rtlog_cli_hex(v.chain.h, 32, y));
        goto out;
    }
    if (in_store && file_last > info.last_seq) {
        rtlog_cli_err(CMD, "%s: ends at seq %" PRIu64 " but %s in the store ends at seq %" PRIu64,
                      a->file, file_last, stream, info.last_seq);
        goto out;
    }
    if (in_store && file_last == info.last_seq && memcmp(info.head_hash, v.chain.h, 32) != 0) {
        rtlog_cli_err(CMD, "%s: head does not match the store's %s (stored %s, computed %s)",
                      a->file, stream, rtlog_cli_hex(info.head_hash, 32, x),
                      rtlog_cli_hex(v.chain.h, 32, y));
        goto out;
    }

    /* A prefix of a chain is a valid chain: an export taken while the stream was growing
     * verifies. What must agree with the store is the document's own claim about the end. */
    if (in_store && v.is_doc && v.sealed &&
        (!info.sealed || file_last != info.last_seq)) {
        rtlog_cli_err(CMD,
                      "%s: says the stream is sealed at seq %" PRIu64 ", but %s in the store %s "
                      "at seq %" PRIu64,
                      a->file, file_last, stream, info.sealed ? "is sealed" : "is open and ends",
                      info.last_seq);
        goto out;
    }
    if (in_store && v.is_doc && !v.sealed && info.sealed && file_last == info.last_seq) {
        rtlog_cli_err(CMD,
                      "%s: says the stream is open, but %s in the store is sealed at seq %" PRIu64,
                      a->file, stream, file_last);
        goto out;
    }

    printf("ok: %s: %zu events, head %s", a->file, v.events, rtlog_cli_hex(v.chain.h, 32, x));
    if (v.is_doc)
        printf("; document hashes and headHash match");
    if (a->has_head)
        printf("; matches --head");
    if (v.first > 1)
        printf("; seq %" PRIu64 "..%" PRIu64 " chained from base %s", v.first, file_last,
               rtlog_cli_hex(v.base, 32, y));
    if (in_store) {
        uint64_t from = v.first > info.first_seq ? v.first : info.first_seq;
        if (from <= file_last)
            printf("; matches the store's %s (seq %" PRIu64 "..%" PRIu64 ")", stream, from,
                   file_last);
        else
            printf("; the store's %s no longer holds these events (first seq %" PRIu64
                   "), not compared",
                   stream, info.first_seq);
    }
    if (in_store && file_last < info.last_seq)
        printf("; NOTE: a prefix: the store's %s has %" PRIu64 " events%s", stream,
               info.last_seq, info.sealed ? " and is sealed" : "");
    printf("%s", note);
    if (!v.is_doc && !a->has_head && !in_store)
        printf("; nothing to compare the head with (give --head HEX, or STREAM with --data)");
    printf("\n");
    ret = fflush(stdout) == 0 ? 0 : 1;
out:
    rtlog_store_close(st);
    if (v.f && v.f != stdin)
        fclose(v.f);
    free(v.line);
    free(v.h);
    rtlog_cli_chain_free(&v.chain);
    return ret;
}

int rtlog_cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"file", required_argument, NULL, 'f'},
        {"head", required_argument, NULL, 'H'},
        {"base", required_argument, NULL, 'B'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    verify_args a;
    memset(&a, 0, sizeof a);
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            a.data = optarg;
            a.data_explicit = 1;
            break;
        case 'f':
            a.file = optarg;
            break;
        case 'H':
            if (rtlog_cli_unhex(optarg, a.head, 32) != 0)
                return rtlog_cli_usage(CMD, "--head wants 64 hex digits, not \"%s\"", optarg);
            a.has_head = 1;
            break;
        case 'B':
            if (rtlog_cli_unhex(optarg, a.base, 32) != 0)
                return rtlog_cli_usage(CMD, "--base wants 64 hex digits, not \"%s\"", optarg);
            a.has_base = 1;
            break;
        default: /* --help, a missing value, an unknown option */
            return rtlog_cli_opt_other(CMD, c, argv, usage_text);
        }
    }
    int nargs = argc - optind;
    if (nargs > 1 || (nargs == 0 && !a.file))
        return rtlog_cli_usage(CMD, a.file ? "expected at most one STREAM with --file"
                                           : "expected one STREAM, or --file FILE");
    if (nargs == 1) {
        a.stream = argv[optind];
        if (rtlog_cli_stream_arg(CMD, a.stream, NULL) != 0)
            return 1;
    }
    if (!a.data_explicit && getenv(RTLOG_CLI_DATA_ENV) && *getenv(RTLOG_CLI_DATA_ENV))
        a.data_explicit = 1; /* the user named it: a missing store is then an error */
    a.data = rtlog_cli_data_dir(a.data);
    if (a.has_base && !a.file)
        return rtlog_cli_usage(CMD, "--base goes with --file (the store keeps its own base)");
    if (a.file)
        return verify_file(&a);
    return verify_store(a.data, a.stream, a.has_head ? a.head : NULL);
}
