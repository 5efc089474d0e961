/* rtlog_schema.h - the event vocabulary: stream names, event types by stream kind,
 * validation, and the exact JSON <-> stored-form (msgpack) conversion.
 *
 * Knows nothing of LMDB or the network. The stored form of an event is one msgpack map
 * holding the event's fields in the order the producer sent them (plus a server-filled
 * `timestamp` appended when missing). Rendering it back gives the canonical JSON line that
 * subscribers receive, `rtlog export` writes and the hash chain covers: compact, keys in
 * stored order, `"seq":N` appended last, integers as integers, reals in the shortest form
 * that reads back to the same double (5.2 stays 5.2; 1.0 stays 1.0), strings byte for byte.
 * Source: realtime-api.md (all message types), CONTRACT.md "Streams and event ids", "Ingest".
 */
#ifndef RTLOG_SCHEMA_H
#define RTLOG_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "rtlog_buf.h"
#include "rtlog_err.h"

/* ---- stream names ---------------------------------------------------------------------- */

typedef enum rtlog_kind {
    RTLOG_KIND_NONE = 0,
    RTLOG_KIND_RUN,       /* "workflow-runs/<id>"   */
    RTLOG_KIND_JOB,       /* "deployment-jobs/<id>" */
    RTLOG_KIND_AGENT,     /* "agents/<id>"          */
    RTLOG_KIND_DASHBOARD, /* "dashboard"            */
} rtlog_kind;

#define RTLOG_ID_MAX     128 /* bytes of a stream id: CONTRACT "Streams and event ids" */
#define RTLOG_STREAM_MAX 160 /* bytes of a canonical stream name, NUL included */

/**
 * rtlog_stream_parse() - check a stream name and split it.
 * @name/@len: "workflow-runs/<id>" | "deployment-jobs/<id>" | "agents/<id>" | "dashboard";
 *             borrowed. <id> is 1..128 bytes of [A-Za-z0-9._:-].
 * @kind:      out, the stream kind. @id/@id_len: out (may be NULL), borrowed pointer into
 *             @name (empty for "dashboard").
 * Errors:     RTLOG_E_INVAL with @ei (field "stream", event_index -1) naming what is wrong:
 *             "unknown stream kind (...)", "stream id is empty", "id has a character outside
 *             [A-Za-z0-9._:-]", "id longer than 128 bytes", "id may not be "." or ".."".
 *             The text never echoes @name (it may hold CR/LF or secrets). NULL @name or
 *             @kind is RTLOG_E_INVAL. Matching is exact and case-sensitive: "dashboard/x",
 *             "workflow-runs/", "Workflow-runs/x", a trailing "/" and any '%' are refused.
 * Context:    pure function, any thread.
 * Source:     CONTRACT.md "Streams and event ids".
 */
rtlog_err rtlog_stream_parse(const char *name, size_t len, rtlog_kind *kind, const char **id,
                             size_t *id_len, rtlog_errinfo *ei);

/* "workflow-runs", "deployment-jobs", "agents", "dashboard"; "" for RTLOG_KIND_NONE. */
const char *rtlog_kind_name(rtlog_kind kind);

/* ---- events ----------------------------------------------------------------------------- */

/* What a stream of a kind accepts. Agent streams hold the orchestrator's assignments and
 * cancellations and, separately, what the agent itself reports; the same type name
 * (task_progress) has different required fields in a job stream and in an agent report. */
typedef enum rtlog_family {
    RTLOG_FAM_RUN = 1,     /* step_started step_progress step_log step_completed workflow_completed */
    RTLOG_FAM_JOB,         /* task_started task_progress task_log task_completed job_completed */
    RTLOG_FAM_AGENT_TASK,  /* task_assigned task_cancelled (server to agent) */
    RTLOG_FAM_AGENT_REPORT,/* task_progress task_log task_completed (agent to server) */
    RTLOG_FAM_DASHBOARD,   /* metric_update alert promotion_update */
} rtlog_family;

/* The family that ingest validates against for a stream kind (agents: AGENT_TASK; what an
 * agent reports is validated with RTLOG_FAM_AGENT_REPORT by the caller that knows it is a
 * report). RTLOG_KIND_NONE gives 0, which no family has. */
rtlog_family rtlog_kind_family(rtlog_kind kind);

/* Record flags, set by validation from the event's type. */
#define RTLOG_REC_SEALS    0x1u /* workflow_completed / job_completed: seals the stream */
#define RTLOG_REC_SNAPSHOT 0x2u /* dashboard metric_update: a new subscriber starts here */
#define RTLOG_REC_SECRET   0x4u /* holds secrets: set on a task_assigned record whose
                                * task.credentials is present. mp holds them in clear (the
                                * agent needs them); rec.json and REDACT renders do not. */

/* One validated event. All pointers are owned by the rtlog_batch that holds it. */
typedef struct rtlog_rec {
    const uint8_t *mp; /* stored form: msgpack map, fields in producer order */
    size_t mp_len;     /* bytes */
    const char *json;  /* canonical compact JSON without seq and with secrets redacted,
                        * e.g. {"type":"step_log","line":"x"}; what the hash chain covers */
    size_t json_len;   /* bytes, no NUL counted */
    const char *type;  /* NUL-terminated event type, e.g. "step_log" */
    uint32_t flags;    /* RTLOG_REC_* */
    char status[32];   /* for SEALS records: the final `status` ("succeeded"), else "" */
} rtlog_rec;

typedef struct rtlog_batch {
    rtlog_rec *recs; /* owned; n entries */
    size_t n;
    void *priv;      /* owned storage behind the records; free with rtlog_batch_free() */
} rtlog_batch;

typedef struct rtlog_parse_opts {
    rtlog_family family;
    size_t max_event_bytes; /* per event, measured on its canonical JSON; 0 = 1 MiB */
    size_t max_events;      /* per batch; 0 = 100,000 */
    int ndjson;             /* 1: body is NDJSON (one event a line, blank lines skipped);
                             * 0: one JSON object or a JSON array of objects */
    const char *now;        /* RFC 3339 UTC timestamp to fill a missing `timestamp`;
                             * borrowed; NULL = take the clock (rtlog_schema_now()) */
} rtlog_parse_opts;

/**
 * rtlog_schema_parse() - parse and validate an ingest body into a batch of records.
 * @body/@len: the request body; borrowed; need not be NUL-terminated.
 * @out:       out, filled on success (may hold 0 records for "[]" or an empty NDJSON body);
 *             owned by the caller, free with rtlog_batch_free(). Untouched on error.
 * @o:         options; borrowed for the call. @o->family must be a valid rtlog_family.
 * Body forms: one JSON object (event 0); a JSON array of objects (read element by element,
 *             so a syntax error names its event); NDJSON when @o->ndjson (one event a line;
 *             a CR before LF is allowed, blank and whitespace-only lines are skipped, the
 *             last line needs no LF). "[]" and an empty NDJSON body give 0 records; an empty
 *             non-NDJSON body is bad JSON.
 * Checks:     valid UTF-8 JSON (no lone surrogates) without duplicate keys ("\u0000" is
 *             allowed inside strings); each event an object with a known `type` for
 *             @o->family and every required field with its JSON type (realtime-api.md; a
 *             "number" is an integer or a real, progress must be in [0,100]; optional fields,
 *             when present, must have their type too: null is not a string); `timestamp`
 *             when present is a string; no top-level `seq` (the server assigns it; a
 *             delivered line would otherwise carry two); nesting at most 128 levels (the
 *             event object is level 1); size limits. Unknown extra fields are kept in order.
 * Filled:     a missing `timestamp` is appended as the last key (@o->now, or the clock,
 *             same value for the whole batch) only for the types whose spec example has
 *             one: step_started step_log step_completed workflow_completed task_started
 *             task_completed(job) job_completed metric_update.
 * Records:    rec.type is a static string; rec.flags from the type (SEALS/SNAPSHOT) plus
 *             SECRET; rec.status for SEALS records (at most 31 bytes, cut at a UTF-8
 *             boundary and at an embedded NUL); rec.json == render(mp, 0, REDACT).
 * Errors:     RTLOG_E_INVAL, RTLOG_E_TOOBIG (event over max_event_bytes, event_index set;
 *             more than max_events, event_index -1), RTLOG_E_NOMEM. @ei gets the index,
 *             field and text, in these forms (text is printable ASCII only):
 *               event 3: invalid JSON at line 1 column 17: <jansson's text>
 *               event 0: field "nodeId": missing required field
 *               event 0: field "nodeId": expected a string, got an integer
 *               event 0: field "type": unknown event type "x" for a workflow-runs stream (...)
 *               event 1: expected a JSON object, got an array
 *               event 0: event is 1048600 bytes as JSON, over the limit of 1048576
 *             For NDJSON, line/column are within the event's line; for an array body they
 *             are in the body (column in bytes). On success @ei (if given) gets RTLOG_OK.
 * Context:    any thread; no shared state. Cost is mostly jansson's.
 * Source:     CONTRACT.md "Ingest"; field tables: realtime-api.md message types.
 */
rtlog_err rtlog_schema_parse(const rtlog_parse_opts *o, const char *body, size_t len,
                             rtlog_batch *out, rtlog_errinfo *ei);

struct json_t;

/**
 * rtlog_schema_parse_values() - validate events the caller already holds as jansson objects
 * (built by the server, e.g. an agent's task assignment or the job events made from an
 * agent's report) into a batch, exactly as rtlog_schema_parse() does for a body: same
 * checks, same stored form (values packed from the jansson values, so a real read from
 * JSON keeps its double and renders back in its shortest form), same filled `timestamp`.
 * @evs/@n: borrowed; each must be a JSON object (else RTLOG_E_INVAL naming its index).
 * @o:      @o->family, max_event_bytes, max_events and now are used; @o->ndjson is ignored.
 * @out:    as rtlog_schema_parse(). Errors: the same, with event indexes into @evs.
 * Context: any thread. Source: CONTRACT.md "Agents", "Ingest".
 */
rtlog_err rtlog_schema_parse_values(const rtlog_parse_opts *o, struct json_t *const *evs,
                                    size_t n, rtlog_batch *out, rtlog_errinfo *ei);

/* Free what a batch owns; the batch is empty afterwards. NULL is a no-op. */
void rtlog_batch_free(rtlog_batch *b);

#define RTLOG_JSON_REDACT 0x1u /* replace secrets (task.credentials) with "[REDACTED]" */

/**
 * rtlog_schema_render() - append the canonical JSON line of a stored record to @out.
 * @mp/@mp_len: stored form (msgpack map as made by rtlog_schema_parse); borrowed.
 * @seq:        appended last as "seq":N; 0 = no seq field.
 * @flags:      RTLOG_JSON_REDACT or 0.
 * Output:      compact JSON, no newline, no NUL (call rtlog_buf_nul if needed).
 * Format:      strings escape only `"`, `\` and bytes < 0x20 (\n \r \t \b \f, else \u00XX
 *              lowercase); all other bytes raw. Integers in decimal. Reals in the shortest of
 *              %.15g/%.16g/%.17g that reads back to the same double, with ".0" added when
 *              that looks like an integer (5.2, 1.0, 1e+100, -0.0). With RTLOG_JSON_REDACT
 *              the value of task.credentials in a task_assigned record is "[REDACTED]".
 * Invariant:   render(mp, N, f) == render(mp, 0, f) without its last '}' + ",\"seq\":N}"
 *              (storage and the hash chain rely on it).
 * Errors:      RTLOG_E_CORRUPT (not a msgpack map we could have written: truncated, trailing
 *              bytes, empty map, non-string key, bin/ext/float32, uint64 > INT64_MAX,
 *              NaN/Inf, nesting deeper than 128), RTLOG_E_NOMEM. @out keeps its old
 *              length on error. Never reads outside [@mp, @mp + @mp_len).
 * Context:    any thread; the catch-up hot path (about 0.3 us for a 200-byte event).
 */
rtlog_err rtlog_schema_render(const void *mp, size_t mp_len, uint64_t seq, uint32_t flags,
                              rtlog_buf *out);

/**
 * rtlog_schema_rec_type() - find the `type` string of a stored record without rendering.
 * @type/@type_len: out, borrowed pointer into @mp (not NUL-terminated).
 * Errors: RTLOG_E_CORRUPT (no `type`, not a string, or bad bytes before it). Only the part
 * of the record up to `type` is checked; render checks all of it.
 */
rtlog_err rtlog_schema_rec_type(const void *mp, size_t mp_len, const char **type,
                                size_t *type_len);

/**
 * rtlog_schema_rec_field_str() - find a top-level string field of a stored record
 * (e.g. "nodeId" for the viewer's filter). @name: NUL-terminated key, borrowed.
 * @val/@val_len: out, borrowed pointer into @mp (may hold NUL bytes; not NUL-terminated).
 * Errors: RTLOG_E_NOTFOUND (absent or not a string), RTLOG_E_CORRUPT (bad bytes met on the
 * way; the part after the field is not checked).
 */
rtlog_err rtlog_schema_rec_field_str(const void *mp, size_t mp_len, const char *name,
                                     const char **val, size_t *val_len);

/* Flags (RTLOG_REC_*) that every event of @type in @family carries: SEALS or SNAPSHOT;
 * 0 for other and unknown types (and NULL @type). SECRET is never returned here: it
 * depends on the event (task.credentials present) and is only in rtlog_rec.flags. */
uint32_t rtlog_schema_type_flags(rtlog_family family, const char *type);

/**
 * rtlog_schema_now() - write the current UTC time as RFC 3339 with milliseconds,
 * "2026-01-10T14:23:45.123Z", into @out (at least 25 bytes). Returns @out.
 * Clock: CLOCK_REALTIME, truncated (not rounded) to the millisecond. Any thread.
 */
char *rtlog_schema_now(char out[32]);

#endif
