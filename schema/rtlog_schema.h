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
 * Errors:     RTLOG_E_INVAL with @ei naming what is wrong ("unknown stream kind", "id has a
 *             character outside [A-Za-z0-9._:-]", "id longer than 128 bytes").
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

/* The family that ingest validates against for a stream kind (agents: AGENT_TASK). */
rtlog_family rtlog_kind_family(rtlog_kind kind);

/* Record flags, set by validation from the event's type. */
#define RTLOG_REC_SEALS    0x1u /* workflow_completed / job_completed: seals the stream */
#define RTLOG_REC_SNAPSHOT 0x2u /* dashboard metric_update: a new subscriber starts here */
#define RTLOG_REC_SECRET   0x4u /* holds secrets (task_assigned.task.credentials) */

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
 * Checks:     valid UTF-8 JSON without duplicate keys; each event an object with a known
 *             `type` for @o->family and every required field with its JSON type; `timestamp`
 *             when present is a string; size limits. Unknown extra fields are kept in order.
 * Errors:     RTLOG_E_INVAL (bad JSON: position given; unknown type; missing or mistyped
 *             field: index and field given), RTLOG_E_TOOBIG (event over max_event_bytes or
 *             more than max_events), RTLOG_E_NOMEM. @ei gets the index, field and text.
 * Source:     CONTRACT.md "Ingest"; field tables: realtime-api.md message types.
 */
rtlog_err rtlog_schema_parse(const rtlog_parse_opts *o, const char *body, size_t len,
                             rtlog_batch *out, rtlog_errinfo *ei);

/* Free what a batch owns; the batch is empty afterwards. NULL is a no-op. */
void rtlog_batch_free(rtlog_batch *b);

#define RTLOG_JSON_REDACT 0x1u /* replace secrets (task.credentials) with "[REDACTED]" */

/**
 * rtlog_schema_render() - append the canonical JSON line of a stored record to @out.
 * @mp/@mp_len: stored form (msgpack map as made by rtlog_schema_parse); borrowed.
 * @seq:        appended last as "seq":N; 0 = no seq field.
 * @flags:      RTLOG_JSON_REDACT or 0.
 * Output:      compact JSON, no newline, no NUL (call rtlog_buf_nul if needed).
 * Errors:      RTLOG_E_CORRUPT (not a msgpack map we could have written: truncated, trailing
 *              bytes, non-string key, unsupported type), RTLOG_E_NOMEM. @out keeps its old
 *              length on error.
 */
rtlog_err rtlog_schema_render(const void *mp, size_t mp_len, uint64_t seq, uint32_t flags,
                              rtlog_buf *out);

/**
 * rtlog_schema_rec_type() - find the `type` string of a stored record without rendering.
 * @type/@type_len: out, borrowed pointer into @mp. Errors: RTLOG_E_CORRUPT.
 */
rtlog_err rtlog_schema_rec_type(const void *mp, size_t mp_len, const char **type,
                                size_t *type_len);

/**
 * rtlog_schema_rec_field_str() - find a top-level string field of a stored record
 * (e.g. "nodeId" for the viewer's filter). @val/@val_len: out, borrowed pointer into @mp.
 * Errors: RTLOG_E_NOTFOUND (absent or not a string), RTLOG_E_CORRUPT.
 */
rtlog_err rtlog_schema_rec_field_str(const void *mp, size_t mp_len, const char *name,
                                     const char **val, size_t *val_len);

/* Flags (RTLOG_REC_*) that an event of @type in @family carries; 0 for unknown types. */
uint32_t rtlog_schema_type_flags(rtlog_family family, const char *type);

/**
 * rtlog_schema_now() - write the current UTC time as RFC 3339 with milliseconds,
 * "2026-01-10T14:23:45.123Z", into @out (at least 25 bytes). Returns @out.
 */
char *rtlog_schema_now(char out[32]);

#endif
