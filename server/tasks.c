/* tasks.c - the task table (see tasks.h): a chained hash table keyed by task id. */
#include "tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rtlog_tasks {
    rtlog_task **b;
    size_t nb, n;
};

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

rtlog_tasks *rtlog_tasks_new(void)
{
    rtlog_tasks *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->nb = 256;
    t->b = calloc(t->nb, sizeof *t->b);
    if (!t->b) {
        free(t);
        return NULL;
    }
    return t;
}

void rtlog_tasks_free(rtlog_tasks *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nb; i++) {
        rtlog_task *x = t->b[i];
        while (x) {
            rtlog_task *nx = x->hnext;
            free(x);
            x = nx;
        }
    }
    free(t->b);
    free(t);
}

rtlog_task *rtlog_tasks_find(rtlog_tasks *t, const char *id)
{
    for (rtlog_task *x = t->b[hash_id(id) & (t->nb - 1)]; x; x = x->hnext)
        if (!strcmp(x->task_id, id))
            return x;
    return NULL;
}

/* Keep chains short; a failed grow leaves a longer-chained table that still works. */
static void grow(rtlog_tasks *t)
{
    size_t nb = t->nb * 2;
    rtlog_task **b = calloc(nb, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < t->nb; i++) {
        rtlog_task *x = t->b[i];
        while (x) {
            rtlog_task *nx = x->hnext;
            size_t k = hash_id(x->task_id) & (nb - 1);
            x->hnext = b[k];
            b[k] = x;
            x = nx;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

rtlog_task *rtlog_tasks_add(rtlog_tasks *t, const char *id, int *exists)
{
    *exists = 0;
    if (rtlog_tasks_find(t, id)) {
        *exists = 1;
        return NULL;
    }
    rtlog_task *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    snprintf(x->task_id, sizeof x->task_id, "%s", id);
    x->state = RTLOG_TASK_PENDING;
    if (t->n >= t->nb)
        grow(t);
    size_t k = hash_id(x->task_id) & (t->nb - 1);
    x->hnext = t->b[k];
    t->b[k] = x;
    t->n++;
    return x;
}

void rtlog_tasks_remove(rtlog_tasks *t, rtlog_task *task)
{
    rtlog_task **pp = &t->b[hash_id(task->task_id) & (t->nb - 1)];
    while (*pp && *pp != task)
        pp = &(*pp)->hnext;
    if (!*pp)
        return;
    *pp = task->hnext;
    t->n--;
    free(task);
}

void rtlog_tasks_each(rtlog_tasks *t, void (*fn)(void *ctx, rtlog_task *task), void *ctx)
{
    for (size_t i = 0; i < t->nb; i++)
        for (rtlog_task *x = t->b[i]; x; x = x->hnext)
            fn(ctx, x);
}

size_t rtlog_tasks_count(const rtlog_tasks *t)
{
    return t->n;
}

int rtlog_task_id_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > RTLOG_ID_MAX)
        return 0;
    /* "." and ".." would be collapsed away by the HTTP path normalisation of the cancel URL */
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

int rtlog_task_open(const rtlog_task *task)
{
    return task && !task->busy &&
           (task->state == RTLOG_TASK_ASSIGNED || task->state == RTLOG_TASK_STARTED);
}

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int rtlog_rfc3339_ms(const char *s, size_t len, uint64_t *out)
{
    int Y, M, D, h, m, sec, ms = 0;
    if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':' || s[len - 1] != 'Z')
        return -1;
    if (digits(s, 4, &Y) || digits(s + 5, 2, &M) || digits(s + 8, 2, &D) ||
        digits(s + 11, 2, &h) || digits(s + 14, 2, &m) || digits(s + 17, 2, &sec))
        return -1;
    if (len > 20) {
        size_t fl = len - 21; /* digits between '.' and 'Z' */
        if (s[19] != '.' || fl == 0 || fl > 9)
            return -1;
        int f;
        if (digits(s + 20, fl, &f))
            return -1;
        for (size_t i = fl; i < 3; i++)
            f *= 10;
        for (size_t i = 3; i < fl; i++)
            f /= 10;
        ms = f;
    }
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60 || Y < 1970)
        return -1;
    /* days from civil (H. Hinnant's algorithm), no timezone or locale involved */
    int y = Y - (M <= 2);
    int era = y / 400;
    int yoe = y - era * 400;
    int doy = (153 * (M + (M > 2 ? -3 : 9)) + 2) / 5 + D - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = (int64_t)era * 146097 + doe - 719468;
    *out = (uint64_t)(((days * 24 + h) * 60 + m) * 60 + sec) * 1000u + (uint64_t)ms;
    return 0;
}
