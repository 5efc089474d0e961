/* tasks.h - the agents' task table: which task belongs to which agent and job, and where
 * it is in its life (CONTRACT "Agents"; realtime-api.md "Agent Task Stream").
 *
 * Pure bookkeeping (no lws, no store): the server's agents.c drives it from the HTTP
 * endpoints, the agents' reports, deliveries and the housekeeping tick, and rebuilds it
 * from the agent and job streams at start (the streams are the truth; this is an index).
 *
 * Life of a task:
 *   PENDING   assignment validated, its append not yet durable (the id is reserved so a
 *             second POST with the same taskId is a 409, not a duplicate)
 *   ASSIGNED  task_assigned is in agents/<id>
 *   STARTED   task_started is in deployment-jobs/<jobId> (or queued there: `start_queued`)
 *   DONE      the agent's task_completed is in the job stream (status from `success`)
 *   CANCELLED task_cancelled is in the agent stream (by the orchestrator, or by the server
 *             when the lease ran out: `timed_out`)
 * `busy` marks an append that will end the task (completion, cancellation, timeout) in
 * flight: reports behind it are refused, so exactly one ending is ever stored.
 * Lease: a task with no report for `timeout_ms` after its assignment (or its last report)
 * is failed by the server.
 * Threads: one thread (the lws service thread).
 */
#ifndef RTLOG_TASKS_H
#define RTLOG_TASKS_H

#include <stddef.h>
#include <stdint.h>

#include "rtlog_schema.h"

typedef enum rtlog_task_state {
    RTLOG_TASK_PENDING = 1,
    RTLOG_TASK_ASSIGNED,
    RTLOG_TASK_STARTED,
    RTLOG_TASK_DONE,
    RTLOG_TASK_CANCELLED,
} rtlog_task_state;

#define RTLOG_TASK_STR 257 /* bytes kept of targetId / targetName / taskType, NUL included */

typedef struct rtlog_task {
    struct rtlog_task *hnext;            /* table chain (private) */
    char task_id[RTLOG_ID_MAX + 1];      /* [A-Za-z0-9._:-]{1,128} */
    char agent[RTLOG_STREAM_MAX];        /* "agents/<id>" */
    char job[RTLOG_STREAM_MAX];          /* "deployment-jobs/<jobId>" */
    char target_id[RTLOG_TASK_STR];
    char target_name[RTLOG_TASK_STR];    /* "" when the assignment had none */
    char task_type[RTLOG_TASK_STR];
    rtlog_task_state state;
    int busy;                            /* an ending append is in flight */
    int start_queued;                    /* task_started appended or queued */
    int timed_out;                       /* CANCELLED by the lease */
    int job_closed;                      /* the job stream has this task's task_completed */
    uint64_t timeout_ms;                 /* lease length */
    uint64_t deadline_ms;                /* monotonic ms (CLOCK_MONOTONIC); the lease ends
                                          * here (0 = none) */
    uint64_t started_ms;                 /* Unix ms of task_started (0 = not started) */
} rtlog_task;

typedef struct rtlog_tasks rtlog_tasks; /* opaque */

/* A new empty table; NULL when out of memory. Free with rtlog_tasks_free(). */
rtlog_tasks *rtlog_tasks_new(void);
void rtlog_tasks_free(rtlog_tasks *t); /* NULL is a no-op */

/* The task with this id, or NULL. @id: NUL-terminated, borrowed. */
rtlog_task *rtlog_tasks_find(rtlog_tasks *t, const char *id);

/**
 * rtlog_tasks_add() - insert a new task with id @id (zeroed but for the id, state PENDING).
 * Returns the task (owned by the table), or NULL: the id exists already (*exists = 1), or
 * out of memory (*exists = 0). @id must be a valid task id (rtlog_task_id_valid()).
 */
rtlog_task *rtlog_tasks_add(rtlog_tasks *t, const char *id, int *exists);

/* Remove and free @task (a PENDING assignment whose append failed). */
void rtlog_tasks_remove(rtlog_tasks *t, rtlog_task *task);

/* Call @fn for every task (in no particular order); @fn may not add or remove tasks. */
void rtlog_tasks_each(rtlog_tasks *t, void (*fn)(void *ctx, rtlog_task *task), void *ctx);

/* Tasks in the table. */
size_t rtlog_tasks_count(const rtlog_tasks *t);

/* Is @s/@len a task id: 1-128 bytes of [A-Za-z0-9._:-] (the stream id alphabet, so a task
 * id can be used in a path and a log line as is), and not "." or ".."? Returns 1 or 0. */
int rtlog_task_id_valid(const char *s, size_t len);

/* Is the task open (ASSIGNED or STARTED, no ending in flight)? Reports, cancellation and
 * the agent's access to its credentials need this. */
int rtlog_task_open(const rtlog_task *task);

/* Parse an RFC 3339 UTC timestamp as rtlog writes them ("2026-01-10T14:23:45Z" or with
 * ".123" milliseconds) into Unix ms. Returns 0 on success, -1 when it is not one. */
int rtlog_rfc3339_ms(const char *s, size_t len, uint64_t *out);

#endif
