/* parse_pool.c - one thread that parses and validates large ingest bodies off the lws thread.
 *
 * Parsing is the largest cost of ingest (jansson builds a tree per event: half the lws
 * thread's time at 64 producers x 100-event batches, tools/bench/RESULTS.md "Ingest"), and
 * while the lws thread parses it serves no other socket. Bodies of at least
 * PARSE_OFFLOAD_BYTES are therefore handed here (http.c decides); this thread only runs
 * http_job_parse() and hands the job back through the same queue as finished appends
 * (http_job_queue_done(), then lws_cancel_service()), so everything about the connection
 * stays on the lws thread. Small bodies are parsed inline: for them the two thread hops
 * would cost more than the parse. Jobs are taken in order; the thread ends when stopped,
 * after finishing what was queued (their results are freed with the done queue).
 */
#define RTLOG_LOG_TAG "parse"
#include "server_int.h"

#include "log.h"

#include <string.h>

static void *parse_main(void *arg)
{
    struct srv *s = arg;
    pthread_mutex_lock(&s->plock);
    for (;;) {
        while (!s->parse_head && !s->parse_stop)
            pthread_cond_wait(&s->pcond, &s->plock);
        struct job *j = s->parse_head;
        if (!j)
            break; /* stopped and nothing left */
        s->parse_head = j->next;
        if (!s->parse_head)
            s->parse_tail = NULL;
        pthread_mutex_unlock(&s->plock);
        http_job_parse(j);
        http_job_queue_done(j);
        pthread_mutex_lock(&s->plock);
    }
    pthread_mutex_unlock(&s->plock);
    return NULL;
}

int parse_pool_start(struct srv *s)
{
    pthread_mutex_init(&s->plock, NULL);
    pthread_cond_init(&s->pcond, NULL);
    s->parse_inited = 1;
    if (pthread_create(&s->parse_th, NULL, parse_main, s) != 0) {
        LOG_ERR("cannot start the ingest parse thread");
        return -1;
    }
    s->parse_running = 1;
    return 0;
}

void parse_pool_submit(struct srv *s, struct job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&s->plock);
    if (s->parse_tail)
        s->parse_tail->next = j;
    else
        s->parse_head = j;
    s->parse_tail = j;
    pthread_cond_signal(&s->pcond);
    pthread_mutex_unlock(&s->plock);
}

void parse_pool_stop(struct srv *s)
{
    if (s->parse_running) {
        pthread_mutex_lock(&s->plock);
        s->parse_stop = 1;
        pthread_cond_signal(&s->pcond);
        pthread_mutex_unlock(&s->plock);
        pthread_join(s->parse_th, NULL);
        s->parse_running = 0;
    }
    if (s->parse_inited) {
        pthread_cond_destroy(&s->pcond);
        pthread_mutex_destroy(&s->plock);
        s->parse_inited = 0;
    }
}
