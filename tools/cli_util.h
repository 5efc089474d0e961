/* cli_util.h - helpers shared by the `rtlog` subcommands (tools/ only; no other module
 * includes this header).
 *
 * Messages, argument checks, the data directory rule, opening the store, hex and human
 * formatting, the SHA-256 hash chain, the chunked chain walk over a stored stream, output
 * files that appear whole or not at all, and the terminal progress line.
 * Libraries below tools/ never print; these helpers are where tools/ prints.
 * Source: CONTRACT.md "Tools".
 */
#ifndef RTLOG_CLI_UTIL_H
#define RTLOG_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rtlog_err.h"
#include "rtlog_schema.h"
#include "rtlog_store.h"

#define RTLOG_CLI_DATA_DEFAULT "./rtlog-data" /* CONTRACT "Tools": default data directory */
#define RTLOG_CLI_DATA_ENV     "RTLOG_DATA"   /* environment fallback; --data wins */
#define RTLOG_CLI_CHUNK_EVENTS 1000           /* events per read transaction (export, verify) */
#define RTLOG_CLI_CHUNK_BYTES  (8u << 20)     /* record bytes per read transaction */
#define RTLOG_CLI_HASH_HEX     65             /* 64 hex digits + NUL */

/* ---- messages ------------------------------------------------------------------------ */

/**
 * rtlog_cli_err() - print "rtlog <cmd>: <message>" and a newline on stderr.
 * @cmd: subcommand name ("import"); @fmt: printf format. Control bytes and bytes of the
 * message that could forge extra lines (CR, LF, ESC) are written as \xNN, so a hostile
 * stream name or field name stays one line. Long messages are truncated (~1 KiB).
 */
void rtlog_cli_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * rtlog_cli_usage() - print a usage error ("rtlog <cmd>: <message>") and the hint
 * "Try 'rtlog <cmd> --help'." on stderr. Returns 2, the usage-error exit code.
 */
int rtlog_cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- arguments ----------------------------------------------------------------------- */

/**
 * rtlog_cli_opt_other() - the getopt_long cases every subcommand shares, for its switch's
 * default branch: 'h' (--help: calls @usage, returns 0), ':' (an option without its value)
 * and anything else (an unknown option): both print a usage error and return 2.
 * @c: what getopt_long returned; @argv: the subcommand's argv (for the option's name).
 * Returns the subcommand's exit code.
 */
int rtlog_cli_opt_other(const char *cmd, int c, char **argv, void (*usage)(void));

/**
 * rtlog_cli_data_dir() - the data directory a subcommand uses: @flag (the --data value)
 * when not NULL, else $RTLOG_DATA when set and non-empty, else "./rtlog-data".
 * Returns a borrowed string (@flag, the environment, or a literal).
 */
const char *rtlog_cli_data_dir(const char *flag);

/**
 * rtlog_cli_parse_u64() - strict decimal: digits only (no sign, no space, no 0x), at
 * least one digit, no overflow. @out untouched on failure. Returns 0 ok, -1 not a number.
 */
int rtlog_cli_parse_u64(const char *s, uint64_t *out);

/**
 * rtlog_cli_stream_arg() - check a stream name given on the command line.
 * @kind: out (may be NULL). On error prints "rtlog <cmd>: bad stream name "X": <why>"
 * and returns -1; 0 when the name is canonical (CONTRACT "Streams and event ids").
 */
int rtlog_cli_stream_arg(const char *cmd, const char *name, rtlog_kind *kind);

/**
 * rtlog_cli_one_stream() - the operands after getopt must be exactly one valid STREAM.
 * @stream: out, borrowed from @argv. Returns -1 when it is, else the exit code after
 * printing why (2: not exactly one operand, 1: a bad stream name).
 */
int rtlog_cli_one_stream(const char *cmd, int argc, char **argv, const char **stream);

/* ---- store --------------------------------------------------------------------------- */

/**
 * rtlog_cli_open_store() - open the store in @dir.
 * @readonly: 1 for readers (export, ls, stat, verify): they run beside `rtlog serve`, and
 *            a missing directory is reported as such instead of being created.
 * @out:      owned by the caller, close with rtlog_store_close().
 * Returns 0, or -1 after printing "rtlog <cmd>: ..." (no store there, open failed).
 */
int rtlog_cli_open_store(const char *cmd, const char *dir, int readonly, rtlog_store **out);

/**
 * rtlog_cli_describe() - rtlog_store_describe() that prints its failure.
 * Returns 0, 1 when the stream does not exist ("rtlog <cmd>: stream S not found" printed
 * unless @quiet_notfound), or -1 on any other error (printed).
 */
int rtlog_cli_describe(const char *cmd, rtlog_store *st, const char *stream, rtlog_stream_info *out,
                       int quiet_notfound);

/* ---- formatting ---------------------------------------------------------------------- */

/* Lower-case hex of @n bytes of @p into @out (2n+1 bytes, NUL-terminated). Returns @out. */
char *rtlog_cli_hex(const uint8_t *p, size_t n, char *out);

/* Parse exactly 2n hex digits (either case) of @s into @out. Returns 0 ok, -1 otherwise. */
int rtlog_cli_unhex(const char *s, uint8_t *out, size_t n);

/* "1.6 MiB", "512 B" (IEC units, one decimal above 1 KiB) into @out. Returns @out. */
char *rtlog_cli_human_bytes(uint64_t bytes, char out[32]);

/* RFC 3339 UTC with milliseconds ("2026-01-10T14:23:45.123Z") of Unix ms @ms. Returns @out. */
char *rtlog_cli_rfc3339_ms(uint64_t ms, char out[40]);

/* ---- the hash chain ------------------------------------------------------------------ */

/* The tamper-evidence chain of CONTRACT "Tools": h0 = 32 zero bytes,
 * h(n) = SHA-256(h(n-1) || line_n), line_n = the event's NDJSON export line without newline.
 * OpenSSL EVP; zero-initialise, then rtlog_cli_chain_init(). */
typedef struct rtlog_cli_chain {
    void *md;      /* owned EVP_MD_CTX; freed by rtlog_cli_chain_free() */
    uint8_t h[32]; /* current head h(n) */
    uint64_t n;    /* lines hashed so far */
} rtlog_cli_chain;

/* Start at h0. Returns RTLOG_OK or RTLOG_E_NOMEM. */
rtlog_err rtlog_cli_chain_init(rtlog_cli_chain *c);
/* h = SHA-256(h || @line[0..len)). Returns RTLOG_OK, or RTLOG_E_NOMEM if OpenSSL fails. */
rtlog_err rtlog_cli_chain_step(rtlog_cli_chain *c, const void *line, size_t len);
/* Free the digest context. NULL and a zeroed chain are no-ops. */
void rtlog_cli_chain_free(rtlog_cli_chain *c);

/* ---- walking a stored stream --------------------------------------------------------- */

/* Called for each stored event, in seq order, inside a short read transaction: must not
 * block (no writes to a pipe here: buffer and write in on_chunk). @line is the canonical
 * export line (redacted, with "seq"), borrowed for the call; @h is h(seq) recomputed.
 * Return 0 to continue, non-zero to stop the walk (reported as RTLOG_E_AGAIN). */
typedef int (*rtlog_cli_line_cb)(void *ctx, uint64_t seq, const char *line, size_t len,
                                 const uint8_t h[32]);
/* Called after each read transaction has closed, with events walked so far. May block
 * (write out). Non-zero stops the walk (reported as RTLOG_E_AGAIN). */
typedef int (*rtlog_cli_chunk_cb)(void *ctx, uint64_t done);

typedef struct rtlog_cli_walk {
    /* inputs */
    rtlog_store *st;             /* borrowed */
    const char *stream;          /* borrowed */
    uint64_t first_seq;          /* first seq to walk: the stream's first retained seq
                                  * (rtlog_stream_info.first_seq); 0 = 1 */
    uint8_t base[32];            /* h(first_seq - 1) the chain starts from (the stream's
                                  * base_hash); zeros for seq 1 */
    uint64_t last_seq;           /* snapshot point: events after it are not walked */
    rtlog_cli_line_cb on_line;   /* may be NULL */
    rtlog_cli_chunk_cb on_chunk; /* may be NULL */
    void *ctx;
    /* outputs */
    uint64_t events;      /* events walked */
    uint8_t head[32];     /* recomputed h(last event walked) */
    unsigned problems;    /* gaps, undecodable records, stored-hash mismatches */
    uint64_t problem_seq; /* seq of the first problem */
    char problem[320];    /* the first problem, e.g. "event seq 5 does not match
                           * (stored hash 0011.., computed 2233..)" */
} rtlog_cli_walk;

/**
 * rtlog_cli_walk_run() - read @w->stream from @w->first_seq (after retention trimmed the
 * stream; the chain starts from @w->base there) to @w->last_seq in bounded chunks
 * (RTLOG_CLI_CHUNK_EVENTS per read transaction, so no snapshot is held while on_chunk
 * writes), render every event with rtlog_schema_render(.., seq, RTLOG_JSON_REDACT),
 * extend the chain and compare each event's stored hash8. Gaps in seq, records that do
 * not render, stored hashes that differ, and events missing before last_seq are not
 * errors: they are counted in @w->problems and the first is described.
 * Errors: what rtlog_store_read returns (RTLOG_E_NOTFOUND, RTLOG_E_CORRUPT, RTLOG_E_IO...;
 * @ei has the detail), RTLOG_E_NOMEM, RTLOG_E_AGAIN when a callback stopped the walk.
 */
rtlog_err rtlog_cli_walk_run(rtlog_cli_walk *w, rtlog_errinfo *ei);

/* ---- output -------------------------------------------------------------------------- */

/* Where a subcommand writes: stdout, or a temp file beside -o FILE renamed at the end. */
typedef struct rtlog_cli_out {
    FILE *f;          /* write here */
    char *tmp;        /* owned temp path (NULL for stdout) */
    const char *path; /* borrowed final path (NULL for stdout) */
} rtlog_cli_out;

/**
 * rtlog_cli_out_open() - @path NULL or "-": stdout; else create a temp file in the same
 * directory (same filesystem, so the final rename is atomic). Returns 0, or -1 after
 * printing why.
 */
int rtlog_cli_out_open(const char *cmd, rtlog_cli_out *o, const char *path);

/**
 * rtlog_cli_out_commit() - flush; for a file: fsync, close, rename over @o->path. Returns
 * 0, or -1 after printing why (the temp file is removed). @o is released either way.
 */
int rtlog_cli_out_commit(const char *cmd, rtlog_cli_out *o);

/* Abandon: close and remove the temp file (stdout is only flushed). Never fails. */
void rtlog_cli_out_abort(rtlog_cli_out *o);

/* ---- progress ------------------------------------------------------------------------ */

/* A single updating line on stderr ("\rimport S: 12000/48000 events (25%)") for long
 * imports and exports; only when stderr is a terminal, and only once the job is big
 * (>= 10,000 events) or slow (>= 2 s). Zero-initialise, then rtlog_cli_progress_start. */
typedef struct rtlog_cli_progress {
    const char *verb;   /* "import"; borrowed */
    const char *stream; /* borrowed */
    int tty;            /* stderr is a terminal */
    int shown;          /* a line was printed: end with a newline */
    double t0;          /* start, seconds (monotonic) */
    double last;        /* last redraw */
} rtlog_cli_progress;

void rtlog_cli_progress_start(rtlog_cli_progress *p, const char *verb, const char *stream);
void rtlog_cli_progress_update(rtlog_cli_progress *p, uint64_t done, uint64_t total);
/* Final redraw at 100% if a line was shown, then the newline. */
void rtlog_cli_progress_end(rtlog_cli_progress *p, uint64_t done, uint64_t total);

#endif
