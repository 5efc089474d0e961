/* agents.c - the agent task stream: assignments, cancellations, reports, leases, secrets.
 *
 * CONTRACT "Agents"; realtime-api.md "Agent Task Stream", "Deployment Job Stream".
 * - The orchestrator assigns (POST /api/v1/agents/<id>/tasks) and cancels
 *   (POST .../tasks/<taskId>/cancel): durable task_assigned / task_cancelled events in
 *   agents/<id>, which the agent reads with a cursor like any stream, so an agent back from
 *   an outage gets every assignment and cancellation it missed.
 * - What the agent sends on its WebSocket (task_progress, task_log, task_completed) is
 *   validated and stored as the deployment job's events; the agent's own stream is not
 *   written (it only ever holds what the agent is told).
 * - task_started is written to the job stream when the assignment is first delivered to
 *   the agent's own connection (or, if that never happened, in front of its first report);
 *   the completion's `duration` is the time from task_started to the completion, measured
 *   here.
 * - Lease: no report for `timeout` seconds after the assignment or the last report fails
 *   the task: task_cancelled (reason, "cause":"timeout") to the agent, task_completed
 *   (status "failed", reason) to the job. A cancellation also closes the task in the job
 *   stream (status "cancelled"). These two appends are ordered (agent stream first); a
 *   crash between them is repaired at the next start (agents_init).
 * - credentials: sealed with AES-256-GCM (secret.h) before the event is built, so the store,
 *   exports and every replay hold only the envelope (rendered "[REDACTED]"); the agent's own
 *   connection gets them opened, and only while the task is open.
 * The task table (tasks.h) is an index rebuilt from the streams at start.
 */
#define RTLOG_LOG_TAG "agents"
#include "server_int.h"

#include "log.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JFLAGS (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)
#define TIMEOUT_MAX_S 2592000.0      /* 30 days */
#define RETRY_MS 5000u               /* a failed lease/close append is retried after this */
#define SEALED_KEY "sealed"          /* credentials are stored as {"sealed": "<envelope>"} */

/* Leases run on the monotonic clock (srv_now_ms) so a wall-clock jump cannot expire them
 * all at once; durations and timestamps use the wall clock. */
static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The id part of "agents/<id>" / "deployment-jobs/<id>". */
static const char *id_of(const char *stream)
{
    const char *sl = strchr(stream, '/');
    return sl ? sl + 1 : stream;
}

/* Associated data of a sealed value: where it belongs. */
static int seal_aad(char *out, size_t cap, const char *agent, const char *task_id)
{
    int n = snprintf(out, cap, "%s\n%s", agent, task_id);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* ---- queueing appends ------------------------------------------------------------------ */

static void job_cb(void *ctx, rtlog_err rc, const rtlog_append_res *res, const rtlog_errinfo *ei)
{
    struct job *j = ctx; /* writer thread: record and hand back, nothing else */
    j->rc = rc;
    if (res)
        j->res = *res;
    if (ei)
        j->ei = *ei;
    http_job_queue_done(j);
}

/* Validate @evs for @stream and queue them as one atomic append. On success the job is
 * owned by the queue (agents_job_done() gets it back); on failure nothing is queued and
 * @why says why. */
static rtlog_err queue_events(struct srv *s, enum job_op op, const char *stream,
                              const rtlog_task *t, json_t *const *evs, size_t n,
                              struct job **out, char *why, size_t cap)
{
    rtlog_kind kind;
    rtlog_stream_parse(stream, strlen(stream), &kind, NULL, NULL, NULL);
    rtlog_parse_opts po = {.family = rtlog_kind_family(kind),
                           .max_event_bytes = (size_t)s->cfg.max_event_bytes};
    rtlog_errinfo ei = {0};
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(why, cap, "out of memory");
        return RTLOG_E_NOMEM;
    }
    rtlog_err rc = rtlog_schema_parse_values(&po, evs, n, &j->batch, &ei);
    if (rc != RTLOG_OK) {
        snprintf(why, cap, "%s", ei.text);
        free(j);
        return rc;
    }
    j->srv = s;
    j->op = op;
    j->nevents = j->batch.n;
    snprintf(j->stream, sizeof j->stream, "%s", stream);
    snprintf(j->task_id, sizeof j->task_id, "%s", t->task_id);
    rtlog_append_req req = {.stream = j->stream, .recs = j->batch.recs, .n = j->batch.n};
    s->jobs_inflight++;
    rc = rtlog_store_append_async(s->store, &req, job_cb, j);
    if (rc != RTLOG_OK) {
        s->jobs_inflight--;
        rtlog_batch_free(&j->batch);
        free(j);
        snprintf(why, cap, "cannot queue the append: %s", rtlog_strerror(rc));
        return rc;
    }
    *out = j;
    return RTLOG_OK;
}

/* Seconds with millisecond resolution, as a JSON real (45.2). */
static json_t *seconds(uint64_t ms)
{
    return json_real((double)ms / 1000.0);
}

static json_t *ev_new(const char *type, const rtlog_task *t)
{
    json_t *e = json_object();
    if (e) {
        json_object_set_new(e, "type", json_string(type));
        json_object_set_new(e, "taskId", json_string(t->task_id));
    }
    return e;
}

static json_t *ev_started(const rtlog_task *t)
{
    json_t *e = ev_new("task_started", t);
    if (!e)
        return NULL;
    json_object_set_new(e, "targetId", json_string(t->target_id));
    if (t->target_name[0])
        json_object_set_new(e, "targetName", json_string(t->target_name));
    json_object_set_new(e, "taskType", json_string(t->task_type));
    json_object_set_new(e, "agentId", json_string(id_of(t->agent)));
    return e;
}

/* task_completed in the job stream for a task the agent did not complete. */
static json_t *ev_closed(const rtlog_task *t, const char *status, const char *reason)
{
    json_t *e = ev_new("task_completed", t);
    if (!e)
        return NULL;
    json_object_set_new(e, "targetId", json_string(t->target_id));
    json_object_set_new(e, "status", json_string(status));
    if (t->started_ms) {
        uint64_t now = wall_ms();
        json_object_set_new(e, "duration",
                            seconds(now > t->started_ms ? now - t->started_ms : 0));
    }
    if (reason)
        json_object_set_new(e, "reason", json_string(reason));
    return e;
}

static void free_evs(json_t **evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(evs[i]);
}

/* Fault injection for the crash-repair test only: RTLOG_FAULT_SKIP_JOB_CLOSE=1 in the
 * environment makes the server behave as if it crashed between a cancellation (stored) and
 * its job-stream half (never queued), so the next start's repair can be tested without
 * racing a SIGKILL against a 1 ms window. Read once; logged loudly when set. */
static int fault_skip_close = -1;

/* Close @t in its job stream after a cancellation or timeout (JOB_CLOSE). */
static void queue_close(struct srv *s, rtlog_task *t, const char *reason)
{
    char why[256];
    struct job *j;
    if (fault_skip_close) {
        LOG_WARN("RTLOG_FAULT_SKIP_JOB_CLOSE: task %s not closed in %s (fault injection)",
                 t->task_id, t->job);
        return;
    }
    json_t *e = ev_closed(t, t->timed_out ? "failed" : "cancelled", reason);
    if (!e || queue_events(s, JOB_CLOSE, t->job, t, &e, 1, &j, why, sizeof why) != RTLOG_OK)
        LOG_ERR("task %s: cannot close it in %s: %s", t->task_id, t->job, e ? why : "no memory");
    json_decref(e);
}

/* ---- assignment and cancellation (HTTP) ----------------------------------------------- */

/* Overwrite the bytes of every string in @v (jansson owns them; they are about to be freed)
 * so a task's credentials do not linger in freed heap memory. */
static void cleanse_json(json_t *v)
{
    const char *k;
    json_t *x;
    size_t i;
    if (json_is_string(v)) {
        OPENSSL_cleanse((void *)json_string_value(v), json_string_length(v));
    } else if (json_is_object(v)) {
        json_object_foreach(v, k, x)
            cleanse_json(x);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x)
            cleanse_json(x);
    }
}

/* The credentials object as canonical JSON, byte-exact like every stored value (strings as
 * sent, reals in their shortest form: jansson's own dump would print 0.1 as
 * 0.10000000000000001). It goes through the schema's packer and renderer inside a
 * throw-away task_cancelled record whose last key is "credentials"; what follows that
 * key's colon, minus the closing brace, is the value. Appends to @out. */
static rtlog_err credentials_text(json_t *cred, rtlog_buf *out)
{
    static const char pre[] = "{\"type\":\"task_cancelled\",\"taskId\":\"x\",\"credentials\":";
    json_t *ev = json_object();
    rtlog_batch b = {0};
    rtlog_buf line = {0};
    rtlog_err rc = RTLOG_E_NOMEM;
    if (!ev || json_object_set_new(ev, "type", json_string("task_cancelled")) ||
        json_object_set_new(ev, "taskId", json_string("x")) ||
        json_object_set(ev, "credentials", cred))
        goto out;
    rtlog_parse_opts po = {.family = RTLOG_FAM_AGENT_TASK, .max_event_bytes = (size_t)1 << 30};
    if ((rc = rtlog_schema_parse_values(&po, &ev, 1, &b, NULL)) != RTLOG_OK)
        goto out;
    if ((rc = rtlog_schema_render(b.recs[0].mp, b.recs[0].mp_len, 0, 0, &line)) != RTLOG_OK)
        goto out;
    size_t pl = sizeof pre - 1;
    if (line.len < pl + 1 || memcmp(line.p, pre, pl) != 0 || line.p[line.len - 1] != '}') {
        rc = RTLOG_E_CORRUPT; /* cannot happen: the renderer keeps key order */
        goto out;
    }
    rc = rtlog_buf_append(out, line.p + pl, line.len - pl - 1);
out:
    if (line.p)
        OPENSSL_cleanse(line.p, line.len);
    rtlog_buf_free(&line);
    for (size_t i = 0; i < b.n; i++)
        OPENSSL_cleanse((void *)b.recs[i].mp, b.recs[i].mp_len);
    rtlog_batch_free(&b);
    if (ev)
        json_object_del(ev, "credentials"); /* the caller still owns @cred */
    json_decref(ev);
    return rc;
}

/* A string member of @o that must be present (or, with @optional, may be absent), at most
 * @max bytes, without NUL bytes. NULL and @why set when it is not acceptable. */
static const char *str_member(json_t *o, const char *name, int optional, size_t max, char *why,
                              size_t cap, int *bad)
{
    json_t *v = json_object_get(o, name);
    if (!v) {
        if (!optional) {
            snprintf(why, cap, "field \"%s\": missing required field", name);
            *bad = 1;
        }
        return NULL;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        snprintf(why, cap, "field \"%s\": expected a non-empty string of at most %zu bytes", name,
                 max);
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}

static rtlog_err build_assign(struct conn *c, const char *body, size_t len, rtlog_batch *out,
                              char task_id[RTLOG_ID_MAX + 1], char *msg, size_t cap)
{
    struct srv *s = c->srv;
    json_error_t je;
    json_t *task = json_loadb(body, len, JFLAGS, &je);
    json_t *ev = NULL, *sealed = NULL;
    rtlog_buf plain = {0}, env = {0};
    rtlog_err rc = RTLOG_E_INVAL;
    int bad = 0;
    if (!task || !json_is_object(task)) {
        snprintf(msg, cap, "body must be one JSON object: the task (taskId, taskType, jobId, "
                           "targetId, ...)");
        goto out;
    }
    const char *tid = str_member(task, "taskId", 0, RTLOG_ID_MAX, msg, cap, &bad);
    if (bad)
        goto out;
    if (!rtlog_task_id_valid(tid, strlen(tid))) {
        snprintf(msg, cap, "field \"taskId\": must be 1-%d characters of [A-Za-z0-9._:-]",
                 RTLOG_ID_MAX);
        goto out;
    }
    const char *ttype = str_member(task, "taskType", 0, RTLOG_TASK_STR - 1, msg, cap, &bad);
    const char *job = bad ? NULL : str_member(task, "jobId", 0, RTLOG_ID_MAX, msg, cap, &bad);
    const char *tgt = bad ? NULL : str_member(task, "targetId", 0, RTLOG_TASK_STR - 1, msg, cap,
                                              &bad);
    const char *tname = bad ? NULL : str_member(task, "targetName", 1, RTLOG_TASK_STR - 1, msg,
                                                cap, &bad);
    if (bad)
        goto out;
    char job_stream[RTLOG_STREAM_MAX];
    snprintf(job_stream, sizeof job_stream, "deployment-jobs/%s", job);
    rtlog_kind kind;
    if (rtlog_stream_parse(job_stream, strlen(job_stream), &kind, NULL, NULL, NULL) != RTLOG_OK) {
        snprintf(msg, cap, "field \"jobId\": must be 1-%d characters of [A-Za-z0-9._:-]",
                 RTLOG_ID_MAX);
        goto out;
    }
    double timeout_s = (double)s->cfg.task_timeout_ms / 1000.0;
    json_t *to = json_object_get(task, "timeout");
    if (to) {
        if (!json_is_number(to) || !(json_number_value(to) > 0) ||
            json_number_value(to) > TIMEOUT_MAX_S) {
            snprintf(msg, cap, "field \"timeout\": expected seconds, a number > 0 and <= %.0f",
                     TIMEOUT_MAX_S);
            goto out;
        }
        timeout_s = json_number_value(to);
    }
    json_t *cred = json_object_get(task, "credentials");
    if (cred && !json_is_object(cred)) {
        snprintf(msg, cap, "field \"credentials\": expected an object");
        goto out;
    }

    /* The job must still take events: its task_started/task_completed go there. */
    rtlog_stream_info ji;
    rtlog_errinfo ei = {0};
    rtlog_err drc = rtlog_store_describe(s->store, job_stream, &ji, &ei);
    if (drc == RTLOG_OK && ji.sealed) {
        snprintf(msg, cap, "deployment job %s is completed: no task can be assigned to it", job);
        rc = RTLOG_E_CONFLICT;
        goto out;
    }
    rtlog_task *old = rtlog_tasks_find(s->tasks, tid);
    if (old) {
        snprintf(msg, cap, "task %s exists already (taskId must be unique)", tid);
        rc = RTLOG_E_CONFLICT;
        goto out;
    }

    /* The event limit covers the task as the agent will receive it, credentials included
     * (the stored, sealed form is bigger still). */
    if (len > s->cfg.max_event_bytes) {
        snprintf(msg, cap, "task is %zu bytes as JSON, over the event limit of %" PRIu64, len,
                 s->cfg.max_event_bytes);
        rc = RTLOG_E_TOOBIG;
        goto out;
    }
    if (cred) {
        /* Sealed before anything else sees it: the event, the store and the logs only ever
         * hold the envelope. */
        char aad[RTLOG_STREAM_MAX + RTLOG_ID_MAX + 2];
        int al = seal_aad(aad, sizeof aad, c->stream, tid);
        rtlog_err src = al > 0 ? credentials_text(cred, &plain) : RTLOG_E_NOMEM;
        if (src == RTLOG_OK)
            src = rtlog_secret_seal(s->seal_key, aad, (size_t)al, plain.p, plain.len, &env);
        cleanse_json(cred);
        if (src != RTLOG_OK) {
            snprintf(msg, cap, "cannot seal the credentials: %s", rtlog_strerror(src));
            rc = src;
            goto out;
        }
        sealed = json_object();
        if (!sealed || json_object_set_new(sealed, SEALED_KEY, json_stringn(env.p, env.len)) ||
            json_object_set(task, "credentials", sealed)) {
            rc = RTLOG_E_NOMEM;
            snprintf(msg, cap, "out of memory");
            goto out;
        }
    }
    ev = json_object();
    if (!ev || json_object_set_new(ev, "type", json_string("task_assigned")) ||
        json_object_set(ev, "task", task)) {
        rc = RTLOG_E_NOMEM;
        snprintf(msg, cap, "out of memory");
        goto out;
    }
    rtlog_parse_opts po = {.family = RTLOG_FAM_AGENT_TASK,
                           .max_event_bytes = (size_t)s->cfg.max_event_bytes};
    rc = rtlog_schema_parse_values(&po, &ev, 1, out, &ei);
    if (rc != RTLOG_OK) {
        snprintf(msg, cap, "%s", ei.text);
        goto out;
    }
    if (drc == RTLOG_E_NOTFOUND) {
        /* The job's events will come from this task: make its stream now (an empty append,
         * one commit, once per job), so the orchestrator or a UI can follow the job as soon
         * as the assignment is answered instead of getting not_found. */
        rtlog_append_req cr = {.stream = job_stream, .n = 0};
        if (rtlog_store_append(s->store, &cr, NULL, &ei) != RTLOG_OK) {
            rtlog_batch_free(out);
            snprintf(msg, cap, "cannot create the job stream %s: %s", job_stream, ei.text);
            rc = ei.code == RTLOG_E_FULL ? RTLOG_E_FULL : RTLOG_E_IO;
            goto out;
        }
    }
    int exists;
    rtlog_task *t = rtlog_tasks_add(s->tasks, tid, &exists);
    if (!t) {
        rtlog_batch_free(out);
        rc = RTLOG_E_NOMEM;
        snprintf(msg, cap, "out of memory");
        goto out;
    }
    snprintf(t->agent, sizeof t->agent, "%s", c->stream);
    snprintf(t->job, sizeof t->job, "%s", job_stream);
    snprintf(t->target_id, sizeof t->target_id, "%s", tgt);
    snprintf(t->target_name, sizeof t->target_name, "%s", tname ? tname : "");
    snprintf(t->task_type, sizeof t->task_type, "%s", ttype);
    t->timeout_ms = (uint64_t)(timeout_s * 1000.0);
    snprintf(task_id, RTLOG_ID_MAX + 1, "%s", tid);
    rc = RTLOG_OK;
out:
    if (env.p)
        OPENSSL_cleanse(env.p, env.len);
    rtlog_buf_free(&env);
    if (plain.p)
        OPENSSL_cleanse(plain.p, plain.len);
    rtlog_buf_free(&plain);
    json_decref(sealed);
    json_decref(ev);
    json_decref(task);
    return rc;
}

static rtlog_err build_cancel(struct conn *c, const char *body, size_t len, rtlog_batch *out,
                              char task_id[RTLOG_ID_MAX + 1], char *msg, size_t cap)
{
    struct srv *s = c->srv;
    const char *tid = c->rare ? c->rare->task_id : "";
    json_t *b = NULL, *ev = NULL;
    rtlog_err rc = RTLOG_E_INVAL;
    const char *reason = NULL;
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i < len) {
        json_error_t je;
        b = json_loadb(body, len, JFLAGS, &je);
        if (!b || !json_is_object(b)) {
            snprintf(msg, cap, "body must be empty or a JSON object {\"reason\": \"...\"}");
            goto out;
        }
        int bad = 0;
        reason = str_member(b, "reason", 1, 4096, msg, cap, &bad);
        if (bad)
            goto out;
    }
    rtlog_task *t = rtlog_tasks_find(s->tasks, tid);
    if (!t || t->state == RTLOG_TASK_PENDING || strcmp(t->agent, c->stream) != 0) {
        snprintf(msg, cap, "no task %s assigned to this agent", tid);
        rc = RTLOG_E_NOTFOUND;
        goto out;
    }
    if (t->state == RTLOG_TASK_DONE || t->state == RTLOG_TASK_CANCELLED || t->busy) {
        snprintf(msg, cap, "task %s is %s: it cannot be cancelled", tid,
                 t->state == RTLOG_TASK_DONE        ? "already completed"
                 : t->state == RTLOG_TASK_CANCELLED ? "already cancelled"
                                                    : "being completed");
        rc = RTLOG_E_CONFLICT;
        goto out;
    }
    ev = ev_new("task_cancelled", t);
    if (!ev) {
        rc = RTLOG_E_NOMEM;
        snprintf(msg, cap, "out of memory");
        goto out;
    }
    if (reason)
        json_object_set_new(ev, "reason", json_string(reason));
    rtlog_parse_opts po = {.family = RTLOG_FAM_AGENT_TASK,
                           .max_event_bytes = (size_t)s->cfg.max_event_bytes};
    rtlog_errinfo ei = {0};
    rc = rtlog_schema_parse_values(&po, &ev, 1, out, &ei);
    if (rc != RTLOG_OK) {
        snprintf(msg, cap, "%s", ei.text);
        goto out;
    }
    t->busy = 1; /* reports behind the cancellation are refused */
    snprintf(task_id, RTLOG_ID_MAX + 1, "%s", tid);
out:
    json_decref(ev);
    json_decref(b);
    return rc;
}

rtlog_err agents_build(struct conn *c, const char *body, size_t len, rtlog_batch *out,
                       char task_id[RTLOG_ID_MAX + 1], char *msg, size_t cap)
{
    return c->amode == JOB_ASSIGN ? build_assign(c, body, len, out, task_id, msg, cap)
                                  : build_cancel(c, body, len, out, task_id, msg, cap);
}

void agents_ingest_done(struct srv *s, struct job *j, int queued)
{
    rtlog_task *t = rtlog_tasks_find(s->tasks, j->task_id);
    if (!t)
        return;
    int ok = queued && j->rc == RTLOG_OK;
    if (j->op == JOB_ASSIGN) {
        if (!ok) {
            rtlog_tasks_remove(s->tasks, t); /* the id is free again */
            return;
        }
        t->state = RTLOG_TASK_ASSIGNED;
        t->deadline_ms = srv_now_ms() + t->timeout_ms;
        LOG_INFO("task %s assigned to %s (job %s) seq=%" PRIu64, t->task_id, t->agent, t->job,
                 j->res.last_seq);
        return;
    }
    /* JOB_CANCEL */
    t->busy = 0;
    if (!ok)
        return;
    t->state = RTLOG_TASK_CANCELLED;
    LOG_INFO("task %s of %s cancelled", t->task_id, t->agent);
    /* the orchestrator's reason goes to the job as well (at most 4096 bytes: build_cancel,
     * so it is never cut inside a UTF-8 sequence here) */
    char reason[4100] = "cancelled by the orchestrator";
    const char *r;
    size_t rl;
    if (j->batch.n && rtlog_schema_rec_field_str(j->batch.recs[0].mp, j->batch.recs[0].mp_len,
                                                 "reason", &r, &rl) == RTLOG_OK &&
        rl < sizeof reason && !memchr(r, '\0', rl)) {
        memcpy(reason, r, rl);
        reason[rl] = '\0';
    }
    queue_close(s, t, reason);
}

/* ---- reports (WebSocket) ------------------------------------------------------------- */

static void reports_unlink(struct job *j)
{
    struct conn *c = j->conn;
    if (!c)
        return;
    for (struct job **pp = &c->reports; *pp; pp = &(*pp)->cnext)
        if (*pp == j) {
            *pp = j->cnext;
            c->nreports--;
            break;
        }
    j->conn = NULL;
    ws_rx_update(c);
}

void agents_conn_release(struct conn *c)
{
    while (c->reports) {
        struct job *j = c->reports;
        c->reports = j->cnext;
        j->conn = NULL;
    }
    c->nreports = 0;
}

static int report_kind(const char *type)
{
    if (!strcmp(type, "task_progress"))
        return 1;
    if (!strcmp(type, "task_log"))
        return 2;
    if (!strcmp(type, "task_completed"))
        return 3;
    return 0;
}

int agents_message(struct conn *c, const char *type, const char *p, size_t len)
{
    struct srv *s = c->srv;
    int kind = report_kind(type);
    if (!kind || strncmp(c->stream, "agents/", 7) != 0)
        return 0;
    char why[320];
    s->m_reports++;
    /* Identity comes from the token and the stream it opened, never from the message, and
     * only the agent itself reports: a token holding exactly agents/<id> in `subscribe`
     * (CONTRACT "Agents"). Wildcard grants (an orchestrator's or a viewer's) may watch the
     * stream but not speak for the agent, so no one can forge a completion for it. */
    if (!rtlog_principal_is_agent(c->pr, c->stream)) {
        s->m_reports_refused++;
        ws_ctl_error(c, RTLOG_E_FORBIDDEN,
                     "only the agent itself (a token with exactly this agents/<id> in subscribe) "
                     "may report on its tasks");
        return 1;
    }
    rtlog_parse_opts po = {.family = RTLOG_FAM_AGENT_REPORT,
                           .max_event_bytes = (size_t)s->cfg.max_event_bytes};
    rtlog_batch vb = {0};
    rtlog_errinfo ei = {0};
    if (rtlog_schema_parse(&po, p, len, &vb, &ei) != RTLOG_OK) {
        s->m_reports_refused++;
        ws_ctl_error(c, ei.code == RTLOG_E_TOOBIG ? RTLOG_E_TOOBIG : RTLOG_E_INVAL, ei.text);
        return 1;
    }
    rtlog_batch_free(&vb);
    json_error_t je;
    json_t *m = json_loadb(p, len, JFLAGS, &je); /* valid: the schema just parsed it */
    json_t *jt = json_object_get(m, "taskId");
    const char *tid = json_string_value(jt);
    rtlog_task *t = NULL;
    json_t *evs[2] = {NULL, NULL};
    size_t n = 0;
    rtlog_err code = RTLOG_OK;
    if (!tid || !rtlog_task_id_valid(tid, json_string_length(jt))) {
        /* never echoed: it is the client's bytes, and an id can only ever be of this form */
        code = RTLOG_E_INVAL;
        snprintf(why, sizeof why, "field \"taskId\": must be 1-%d characters of [A-Za-z0-9._:-]",
                 RTLOG_ID_MAX);
    } else if (!(t = rtlog_tasks_find(s->tasks, tid)) || t->state == RTLOG_TASK_PENDING ||
               strcmp(t->agent, c->stream) != 0) {
        /* unknown and foreign tasks get the same answer: no oracle on other agents' ids */
        code = RTLOG_E_FORBIDDEN;
        snprintf(why, sizeof why, "task %.128s is not assigned to this agent", tid ? tid : "");
    } else if (t->state == RTLOG_TASK_DONE || t->state == RTLOG_TASK_CANCELLED || t->busy) {
        code = RTLOG_E_CONFLICT;
        snprintf(why, sizeof why, "task %s is %s: report not stored", t->task_id,
                 t->state == RTLOG_TASK_DONE        ? "already completed"
                 : t->state == RTLOG_TASK_CANCELLED ? (t->timed_out ? "timed out" : "cancelled")
                                                    : "being completed or cancelled");
    } else if (c->nreports >= AGENT_REPORTS_MAX) {
        code = RTLOG_E_LIMIT;
        snprintf(why, sizeof why, "more than %d reports waiting to be stored: slow down",
                 AGENT_REPORTS_MAX);
    }
    if (code != RTLOG_OK) {
        s->m_reports_refused++;
        LOG_INFO("conn=%" PRIu64 " %s report from %s refused: %s", c->id, type, c->stream, why);
        ws_ctl_error(c, code, why);
        json_decref(m);
        return 1;
    }
    uint64_t now = wall_ms();
    int add_start = !t->start_queued;
    if (add_start)
        evs[n++] = ev_started(t);
    json_t *e = ev_new(type, t);
    evs[n++] = e;
    if (e && kind == 1) {
        json_object_set(e, "progress", json_object_get(m, "progress"));
        if (json_object_get(m, "message"))
            json_object_set(e, "message", json_object_get(m, "message"));
    } else if (e && kind == 2) {
        /* an agent's `message` is the job's `line` (CONTRACT "Agents") */
        json_object_set(e, "line", json_object_get(m, "message"));
        if (json_object_get(m, "level"))
            json_object_set(e, "level", json_object_get(m, "level"));
    } else if (e) {
        uint64_t start = add_start || !t->started_ms ? now : t->started_ms;
        json_object_set_new(e, "targetId", json_string(t->target_id));
        json_object_set_new(e, "status", json_string(json_is_true(json_object_get(m, "success"))
                                                         ? "succeeded"
                                                         : "failed"));
        json_object_set_new(e, "duration", seconds(now > start ? now - start : 0));
        if (json_object_get(m, "result"))
            json_object_set(e, "result", json_object_get(m, "result"));
    }
    json_decref(m);
    struct job *j = NULL;
    rtlog_err rc = evs[n - 1] && evs[0]
                       ? queue_events(s, JOB_REPORT, t->job, t, evs, n, &j, why, sizeof why)
                       : RTLOG_E_NOMEM;
    free_evs(evs, n);
    if (rc != RTLOG_OK) {
        s->m_reports_refused++;
        if (rc == RTLOG_E_TOOBIG || rc == RTLOG_E_INVAL) {
            /* the job event made of it is over the event limit (a huge result) */
            char msg[sizeof why + 64];
            snprintf(msg, sizeof msg, "report not stored: as a job event %s", why);
            ws_ctl_error(c, rc, msg);
            return 1;
        }
        LOG_ERR("conn=%" PRIu64 " report for task %s: %s", c->id, t->task_id, why);
        ws_ctl_error(c, rc == RTLOG_E_NOMEM ? RTLOG_E_NOMEM : RTLOG_E_IO,
                     "report not stored: internal error");
        return 1;
    }
    j->report = kind;
    j->started = add_start;
    j->conn = c;
    j->cnext = c->reports;
    c->reports = j;
    c->nreports++;
    if (add_start) {
        t->start_queued = 1;
        t->started_ms = now;
    }
    if (kind == 3)
        t->busy = 1;
    t->deadline_ms = srv_now_ms() + t->timeout_ms; /* any report renews the lease */
    return 1;
}

/* ---- completions ----------------------------------------------------------------------- */

static void report_done(struct srv *s, struct job *j, rtlog_task *t)
{
    struct conn *c = j->conn;
    reports_unlink(j);
    if (j->rc == RTLOG_OK) {
        if (j->started && t->state == RTLOG_TASK_ASSIGNED)
            t->state = RTLOG_TASK_STARTED;
        if (j->report == 3) {
            t->state = RTLOG_TASK_DONE;
            t->busy = 0;
            t->job_closed = 1;
            t->deadline_ms = 0;
            LOG_INFO("task %s completed by %s", t->task_id, t->agent);
        }
        return;
    }
    /* Not stored: nothing changed, undo what was assumed when it was queued. */
    if (j->started) {
        t->start_queued = 0;
        t->started_ms = 0;
    }
    if (j->report == 3)
        t->busy = 0;
    s->m_reports_refused++;
    const char *msg = j->rc == RTLOG_E_SEALED ? "the deployment job is completed: report not stored"
                      : j->rc == RTLOG_E_FULL ? "storage full: report not stored"
                                              : "report not stored: internal error";
    if (j->rc != RTLOG_E_SEALED)
        LOG_ERR("report for task %s to %s failed: %s", t->task_id, j->stream, j->ei.text);
    if (c)
        ws_ctl_error(c, j->rc == RTLOG_E_SEALED ? RTLOG_E_CONFLICT : j->rc, msg);
}

void agents_job_done(struct srv *s, struct job *j)
{
    s->jobs_inflight--;
    rtlog_task *t = rtlog_tasks_find(s->tasks, j->task_id);
    if (!t) {
        reports_unlink(j);
    } else if (j->op == JOB_REPORT) {
        report_done(s, j, t);
    } else if (j->op == JOB_START) {
        if (j->rc == RTLOG_OK) {
            if (t->state == RTLOG_TASK_ASSIGNED)
                t->state = RTLOG_TASK_STARTED;
        } else {
            t->start_queued = 0;
            t->started_ms = 0;
            LOG_WARN("task %s: task_started not stored in %s: %s", t->task_id, j->stream,
                     j->ei.text);
        }
    } else if (j->op == JOB_TIMEOUT) {
        t->busy = 0;
        if (j->rc == RTLOG_OK) {
            t->state = RTLOG_TASK_CANCELLED;
            t->timed_out = 1;
            t->deadline_ms = 0;
            char reason[160];
            snprintf(reason, sizeof reason, "timed out: no report from the agent within %.3g s",
                     (double)t->timeout_ms / 1000.0);
            LOG_INFO("task %s of %s %s", t->task_id, t->agent, reason);
            queue_close(s, t, reason);
        } else {
            t->deadline_ms = srv_now_ms() + RETRY_MS;
            LOG_ERR("task %s: cannot store its timeout: %s", t->task_id, j->ei.text);
        }
    } else if (j->op == JOB_CLOSE) {
        /* A sealed job takes no more events: the task stays closed in the task table. */
        t->job_closed = 1;
        if (j->rc != RTLOG_OK && j->rc != RTLOG_E_SEALED)
            LOG_ERR("task %s: cannot close it in %s: %s (repaired at the next start)",
                    t->task_id, j->stream, j->ei.text);
    }
    rtlog_batch_free(&j->batch);
    free(j);
}

/* ---- start-up repair (see agents_init) ------------------------------------------ */

struct repair_ctx {
    struct srv *s;
    uint64_t now;
    unsigned repaired, open;
    int queue; /* 0: count only (at init), 1: queue the closes (first tick) */
};

static void repair_one(void *ctx, rtlog_task *t)
{
    struct repair_ctx *rc = ctx;
    if (t->state == RTLOG_TASK_CANCELLED && !t->job_closed) {
        /* the cancellation is stored, its job-stream half was lost in a crash */
        if (rc->queue)
            queue_close(rc->s, t, t->timed_out ? "timed out (closed after a restart)"
                                               : "cancelled by the orchestrator");
        rc->repaired++;
        return;
    }
    if (rc->queue)
        return;
    if (t->state == RTLOG_TASK_ASSIGNED || t->state == RTLOG_TASK_STARTED) {
        /* agents could not report while the server was down: a full lease from now */
        t->deadline_ms = rc->now + t->timeout_ms;
        rc->open++;
    }
}

/* ---- leases ------------------------------------------------------------------------------ */

struct tick_ctx {
    struct srv *s;
    uint64_t now;
};

static void tick_one(void *ctx, rtlog_task *t)
{
    struct tick_ctx *tc = ctx;
    if (!rtlog_task_open(t) || !t->deadline_ms || tc->now < t->deadline_ms)
        return;
    char reason[160], why[256];
    snprintf(reason, sizeof reason, "timed out: no report from the agent within %.3g s",
             (double)t->timeout_ms / 1000.0);
    json_t *e = ev_new("task_cancelled", t);
    if (e) {
        json_object_set_new(e, "reason", json_string(reason));
        json_object_set_new(e, "cause", json_string("timeout"));
    }
    struct job *j;
    if (!e || queue_events(tc->s, JOB_TIMEOUT, t->agent, t, &e, 1, &j, why, sizeof why) !=
                  RTLOG_OK) {
        LOG_ERR("task %s: cannot queue its timeout: %s", t->task_id, e ? why : "no memory");
        t->deadline_ms = tc->now + RETRY_MS;
    } else {
        t->busy = 1;
        tc->s->m_task_timeouts++;
    }
    json_decref(e);
}

void agents_tick(struct srv *s)
{
    if (!s->tasks || s->draining)
        return;
    if (s->agents_repair) {
        /* Queued from the first tick, not from agents_init(): a completion wakes the lws
         * service, which does not exist yet while the server is starting. */
        s->agents_repair = 0;
        struct repair_ctx rp = {s, srv_now_ms(), 0, 0, 1};
        rtlog_tasks_each(s->tasks, repair_one, &rp);
    }
    struct tick_ctx tc = {s, srv_now_ms()};
    rtlog_tasks_each(s->tasks, tick_one, &tc);
}

/* ---- the agent's own connection: personal frames ----------------------------------- */

/* Where, in a rendered task_assigned line, is the value of task.credentials: the object
 * {"sealed":"<envelope>"} with @ev's own envelope (read by jansson from that very line, so
 * a look-alike elsewhere in the payload cannot be taken for it: the envelope holds a
 * random nonce). Returns 0 and the object's offset/length and the envelope, or -1. */
static int find_envelope(const char *json, size_t len, json_t *ev, size_t *obj_off,
                         size_t *obj_len, const char **env, size_t *env_len)
{
    json_t *cred = json_object_get(json_object_get(ev, "task"), "credentials");
    json_t *sv = json_object_get(cred, SEALED_KEY);
    if (!json_is_object(cred) || json_object_size(cred) != 1 || !json_is_string(sv))
        return -1;
    const char *e = json_string_value(sv);
    size_t el = json_string_length(sv);
    static const char open[] = "{\"" SEALED_KEY "\":\"";
    size_t ol = sizeof open - 1;
    /* the envelope is base64 and a prefix of printable ASCII: rendered without escapes */
    for (size_t i = 0; i + ol + el + 2 <= len; i++) {
        if (memcmp(json + i, open, ol) != 0 || memcmp(json + i + ol, e, el) != 0 ||
            memcmp(json + i + ol + el, "\"}", 2) != 0)
            continue;
        *obj_off = i;
        *obj_len = ol + el + 2;
        *env = json + i + ol;
        *env_len = el;
        return 0;
    }
    return -1;
}

static rtlog_err personal(void *ctx, void *user, uint64_t seq, const void *mp, size_t mp_len,
                          rtlog_buf *out, int *used)
{
    struct srv *s = ctx;
    struct conn *c = user;
    *used = 0;
    rtlog_buf line = {0}, plain = {0};
    rtlog_err rc = rtlog_schema_render(mp, mp_len, seq, 0, &line);
    if (rc != RTLOG_OK)
        return rc;
    json_error_t je;
    json_t *ev = json_loadb(line.p, line.len, JFLAGS, &je);
    const char *tid = json_string_value(json_object_get(json_object_get(ev, "task"), "taskId"));
    rtlog_task *t = tid ? rtlog_tasks_find(s->tasks, tid) : NULL;
    if (!t || strcmp(t->agent, c->stream) != 0 || !rtlog_task_open(t))
        goto out; /* closed, or not this agent's: the shared, redacted frame */

    /* First delivery to the agent itself: the task has started. */
    if (!t->start_queued) {
        char why[256];
        struct job *j;
        json_t *e = ev_started(t);
        if (e && queue_events(s, JOB_START, t->job, t, &e, 1, &j, why, sizeof why) == RTLOG_OK) {
            t->start_queued = 1;
            t->started_ms = wall_ms();
        } else {
            LOG_WARN("task %s: cannot queue task_started: %s", t->task_id, e ? why : "no memory");
        }
        json_decref(e);
    }

    const char *env;
    size_t env_len, obj_off, obj_len;
    if (find_envelope(line.p, line.len, ev, &obj_off, &obj_len, &env, &env_len) != 0)
        goto out; /* no credentials: nothing personal to add */
    char aad[RTLOG_STREAM_MAX + RTLOG_ID_MAX + 2];
    int al = seal_aad(aad, sizeof aad, t->agent, t->task_id);
    if (al < 0 || rtlog_secret_open(s->seal_key, aad, (size_t)al, env, env_len, &plain) !=
                      RTLOG_OK) {
        /* A wrong key (rotated without re-sealing) or damaged bytes: say so in the log, send
         * the redacted frame rather than fail the stream. */
        LOG_ERR("task %s: sealed credentials do not open with the configured secrets key",
                t->task_id);
        goto out;
    }
    /* The line with the envelope object replaced by the credentials object. */
    size_t pre = obj_off, post = obj_off + obj_len;
    if (rtlog_buf_append(out, line.p, pre) != RTLOG_OK ||
        rtlog_buf_append(out, plain.p, plain.len) != RTLOG_OK ||
        rtlog_buf_append(out, line.p + post, line.len - post) != RTLOG_OK) {
        rc = RTLOG_E_NOMEM;
        goto out;
    }
    *used = 1;
out:
    json_decref(ev);
    if (plain.p)
        OPENSSL_cleanse(plain.p, plain.len);
    rtlog_buf_free(&plain);
    if (line.p)
        OPENSSL_cleanse(line.p, line.len);
    rtlog_buf_free(&line);
    return rc;
}

void agents_stream_prepare(struct conn *c, rtlog_replay_req *req)
{
    struct srv *s = c->srv;
    if (strncmp(c->stream, "agents/", 7) != 0 || !rtlog_principal_is_agent(c->pr, c->stream))
        return;
    req->personal = personal;
    req->personal_ctx = s;
    req->personal_type = "task_assigned";
    /* An agent usually connects before its first task: its stream is made for it (an
     * empty append, one commit, rare) instead of answering not_found. */
    rtlog_stream_info info;
    rtlog_errinfo ei = {0};
    if (rtlog_store_describe(s->store, c->stream, &info, &ei) == RTLOG_E_NOTFOUND) {
        rtlog_append_req ar = {.stream = c->stream, .n = 0};
        if (rtlog_store_append(s->store, &ar, NULL, &ei) != RTLOG_OK)
            LOG_WARN("cannot create %s: %s", c->stream, ei.text);
    }
}

/* ---- start: key, and the task table from the streams --------------------------------- */

static rtlog_err load_key(struct srv *s)
{
    uint8_t *key = NULL;
    size_t len = 0;
    int created = 0;
    rtlog_errinfo ei = {0};
    rtlog_err rc = s->cfg.secrets_key[0]
                       ? rtlog_auth_key_load(s->cfg.secrets_key, RTLOG_JWT_HS256, &key, &len, &ei)
                       : rtlog_auth_named_secret_load_or_create(s->cfg.data, "secrets-key", &key,
                                                                &len, &created, &ei);
    if (rc == RTLOG_OK && len < RTLOG_SECRET_KEY_BYTES) {
        rc = RTLOG_E_IO;
        snprintf(ei.text, sizeof ei.text, "secrets key has %zu bytes, needs %d", len,
                 RTLOG_SECRET_KEY_BYTES);
    }
    if (rc != RTLOG_OK) {
        LOG_ERR("cannot load the secrets key (credentials of agent tasks): %s", ei.text);
        free(key);
        return rc;
    }
    memcpy(s->seal_key, key, RTLOG_SECRET_KEY_BYTES);
    OPENSSL_cleanse(key, len);
    free(key);
    if (created)
        LOG_INFO("created %s/secrets-key (seals agents' task credentials; back it up with the "
                 "data, keep it out of exports)",
                 s->cfg.data);
    return RTLOG_OK;
}

typedef void (*event_fn)(struct srv *s, const char *stream, json_t *ev, uint64_t seq);

struct scan {
    struct srv *s;
    const char *stream;
    event_fn fn;
    rtlog_err err;
};

static int scan_cb(void *ctx, const rtlog_event_view *ev)
{
    struct scan *sc = ctx;
    rtlog_buf b = {0};
    if (rtlog_schema_render(ev->mp, ev->mp_len, 0, RTLOG_JSON_REDACT, &b) != RTLOG_OK) {
        sc->err = RTLOG_E_CORRUPT;
        rtlog_buf_free(&b);
        return 1;
    }
    json_error_t je;
    json_t *o = json_loadb(b.p, b.len, JFLAGS, &je);
    rtlog_buf_free(&b);
    if (o)
        sc->fn(sc->s, sc->stream, o, ev->seq);
    json_decref(o);
    return 0;
}

/* Every event of @stream through @fn, in bounded reads (no long snapshot). */
static rtlog_err scan_stream(struct srv *s, const char *stream, event_fn fn)
{
    struct scan sc = {s, stream, fn, RTLOG_OK};
    uint64_t from = 1, next = 0;
    rtlog_errinfo ei = {0};
    for (;;) {
        rtlog_err rc = rtlog_store_read(s->store, stream, from, 1024, 4u << 20, scan_cb, &sc,
                                        &next, &ei);
        if (rc == RTLOG_E_NOTFOUND)
            return RTLOG_OK;
        if (rc != RTLOG_OK)
            return rc;
        if (sc.err != RTLOG_OK)
            return sc.err;
        if (next <= from)
            return RTLOG_OK;
        from = next;
    }
}

static void copy_str(char *dst, size_t cap, json_t *v)
{
    snprintf(dst, cap, "%s", json_is_string(v) ? json_string_value(v) : "");
}

static void load_agent_event(struct srv *s, const char *stream, json_t *ev, uint64_t seq)
{
    (void)seq;
    const char *type = json_string_value(json_object_get(ev, "type"));
    if (!type)
        return;
    if (!strcmp(type, "task_assigned")) {
        json_t *task = json_object_get(ev, "task");
        const char *tid = json_string_value(json_object_get(task, "taskId"));
        const char *job = json_string_value(json_object_get(task, "jobId"));
        int exists;
        if (!tid || !job || !rtlog_task_id_valid(tid, strlen(tid)))
            return;
        rtlog_task *t = rtlog_tasks_add(s->tasks, tid, &exists);
        if (!t)
            return;
        snprintf(t->agent, sizeof t->agent, "%s", stream);
        snprintf(t->job, sizeof t->job, "deployment-jobs/%s", job);
        copy_str(t->target_id, sizeof t->target_id, json_object_get(task, "targetId"));
        copy_str(t->target_name, sizeof t->target_name, json_object_get(task, "targetName"));
        copy_str(t->task_type, sizeof t->task_type, json_object_get(task, "taskType"));
        json_t *to = json_object_get(task, "timeout");
        t->timeout_ms = json_is_number(to) ? (uint64_t)(json_number_value(to) * 1000.0)
                                           : s->cfg.task_timeout_ms;
        t->state = RTLOG_TASK_ASSIGNED;
    } else if (!strcmp(type, "task_cancelled")) {
        const char *tid = json_string_value(json_object_get(ev, "taskId"));
        rtlog_task *t = tid ? rtlog_tasks_find(s->tasks, tid) : NULL;
        if (!t || strcmp(t->agent, stream) != 0)
            return;
        t->state = RTLOG_TASK_CANCELLED;
        const char *cause = json_string_value(json_object_get(ev, "cause"));
        t->timed_out = cause && !strcmp(cause, "timeout");
    }
}

static void load_job_event(struct srv *s, const char *stream, json_t *ev, uint64_t seq)
{
    (void)seq;
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *tid = json_string_value(json_object_get(ev, "taskId"));
    rtlog_task *t = tid ? rtlog_tasks_find(s->tasks, tid) : NULL;
    if (!type || !t || strcmp(t->job, stream) != 0)
        return;
    if (!strcmp(type, "task_started")) {
        t->start_queued = 1;
        json_t *ts = json_object_get(ev, "timestamp");
        uint64_t ms;
        if (json_is_string(ts) &&
            rtlog_rfc3339_ms(json_string_value(ts), json_string_length(ts), &ms) == 0)
            t->started_ms = ms;
        if (t->state == RTLOG_TASK_ASSIGNED)
            t->state = RTLOG_TASK_STARTED;
    } else if (!strcmp(type, "task_completed")) {
        t->job_closed = 1;
        if (t->state == RTLOG_TASK_ASSIGNED || t->state == RTLOG_TASK_STARTED)
            t->state = RTLOG_TASK_DONE;
    }
}

struct names {
    char (*v)[RTLOG_STREAM_MAX];
    size_t n, cap;
    int oom;
};

static void add_name(struct names *nm, const char *name)
{
    if (nm->n == nm->cap) {
        size_t cap = nm->cap ? nm->cap * 2 : 16;
        void *v = realloc(nm->v, cap * sizeof *nm->v);
        if (!v) {
            nm->oom = 1;
            return;
        }
        nm->v = v;
        nm->cap = cap;
    }
    snprintf(nm->v[nm->n++], RTLOG_STREAM_MAX, "%s", name);
}

static int list_agents(void *ctx, const rtlog_stream_info *info)
{
    if (info->kind == RTLOG_KIND_AGENT)
        add_name(ctx, info->stream);
    return 0;
}

static void collect_job(void *ctx, rtlog_task *t)
{
    add_name(ctx, t->job);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

int agents_init(struct srv *s)
{
    const char *f = getenv("RTLOG_FAULT_SKIP_JOB_CLOSE");
    fault_skip_close = f && !strcmp(f, "1");
    if (fault_skip_close)
        LOG_WARN("RTLOG_FAULT_SKIP_JOB_CLOSE=1: fault injection for tests, never in production");
    if (load_key(s) != RTLOG_OK)
        return -1;
    s->tasks = rtlog_tasks_new();
    if (!s->tasks) {
        LOG_ERR("out of memory");
        return -1;
    }
    struct names agents = {0}, jobs = {0};
    rtlog_errinfo ei = {0};
    rtlog_err rc = rtlog_store_list(s->store, list_agents, &agents, &ei);
    for (size_t i = 0; rc == RTLOG_OK && i < agents.n; i++)
        rc = scan_stream(s, agents.v[i], load_agent_event);
    if (rc == RTLOG_OK) {
        rtlog_tasks_each(s->tasks, collect_job, &jobs);
        if (jobs.n)
            qsort(jobs.v, jobs.n, sizeof *jobs.v, name_cmp);
        for (size_t i = 0; rc == RTLOG_OK && i < jobs.n; i++)
            if (i == 0 || strcmp(jobs.v[i], jobs.v[i - 1]) != 0)
                rc = scan_stream(s, jobs.v[i], load_job_event);
    }
    if (agents.oom || jobs.oom)
        rc = RTLOG_E_NOMEM;
    free(agents.v);
    free(jobs.v);
    if (rc != RTLOG_OK) {
        LOG_ERR("cannot load agent tasks from the store: %s (%s)", rtlog_strerror(rc), ei.text);
        return -1;
    }
    struct repair_ctx rp = {s, srv_now_ms(), 0, 0, 0};
    rtlog_tasks_each(s->tasks, repair_one, &rp);
    s->agents_repair = rp.repaired > 0;
    if (rtlog_tasks_count(s->tasks))
        LOG_INFO("agent tasks: %zu known, %u open, %u to close in their job after a restart",
                 rtlog_tasks_count(s->tasks), rp.open, rp.repaired);
    return 0;
}

void agents_free(struct srv *s)
{
    rtlog_tasks_free(s->tasks);
    s->tasks = NULL;
    OPENSSL_cleanse(s->seal_key, sizeof s->seal_key);
}
