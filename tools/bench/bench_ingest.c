/* bench_ingest.c - ingest load generator: N keep-alive connections, one POST in flight each.
 *
 * Measures how many events per second a server accepts when producers wait for each answer
 * before the next POST (what a CI runner streaming its log does). For rtlog an answer (201)
 * means the events are durable (the commit was fsync'ed); nchan keeps messages in memory
 * only, so its figure is an upper bound for a non-durable broker. One epoll loop drives every
 * connection; a request is written whole or continued on EPOLLOUT, the answer is parsed
 * (Content-Length or chunked) and the next POST follows at once, or when --rate (events/s
 * over all connections, 0 = as fast as the server answers) allows. Events are ~--event-bytes
 * of JSON (a step_log whose line carries the connection, the post index and padding);
 * --batch > 1 posts NDJSON (rtlog only). Connections spread over --streams streams, named
 * by --path (a printf pattern with one %u: the stream index). The run is bounded by --secs;
 * answers still in flight at the end are awaited (bounded) and counted. Prints one
 * `ingest key=value ...` line; exit 0 only if every POST was answered 2xx.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIST_US (10 * 1000 * 1000) /* 1 us bins up to 10 s; later: the last bin */

struct conn {
    int fd;
    unsigned stream;
    int busy;          /* a POST is in flight */
    uint64_t sent_ns;  /* CLOCK_MONOTONIC when its first byte was written */
    char *out;         /* the request being written */
    size_t out_len, out_off, out_cap;
    size_t rlen;
    char rbuf[8192];
    uint64_t posts;
};

static const char *host = "127.0.0.1", *path_fmt, *token, *target = "rtlog";
static int port = 8080, server_pid;
static unsigned nconns = 64, batch = 1, secs = 10, nstreams, event_bytes = 200;
static double rate;
static int ep;
static struct conn *conns;
static uint32_t *hist;
static uint64_t hist_n, hist_max;
static uint64_t posts_sent, posts_ok, posts_err, events_ok;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_ingest: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void hist_add(uint64_t ns)
{
    uint64_t us = ns / 1000u;
    if (us > hist_max)
        hist_max = us;
    hist[us < HIST_US ? us : HIST_US]++;
    hist_n++;
}

static uint64_t hist_q(double q)
{
    if (!hist_n)
        return 0;
    uint64_t want = (uint64_t)((double)hist_n * q), acc = 0;
    if (want >= hist_n)
        want = hist_n - 1;
    for (uint64_t i = 0; i <= HIST_US; i++) {
        acc += hist[i];
        if (acc > want)
            return i;
    }
    return hist_max;
}

static uint64_t proc_cpu_ticks(int pid)
{
    char p[64], buf[2048];
    snprintf(p, sizeof p, "/proc/%d/stat", pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *q = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (!q || sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (uint64_t)(ut + st);
}

static int tcp_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "bench_ingest: bad host %s\n", host);
        exit(2);
    }
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void ep_set(struct conn *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)(c - conns)};
    if (epoll_ctl(ep, op, c->fd, &ev) < 0)
        die("epoll_ctl");
}

static void conn_open(struct conn *c)
{
    c->fd = tcp_connect();
    c->busy = 0;
    c->rlen = 0;
    ep_set(c, EPOLL_CTL_ADD, EPOLLIN);
}

static void conn_reopen(struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conn_open(c);
}

static void stream_path(unsigned stream, char *buf, size_t cap)
{
    /* path_fmt was checked to hold exactly one %u and no other conversion */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(buf, cap, path_fmt, stream);
#pragma GCC diagnostic pop
}

/* Continue writing the current request; EPOLLOUT while the socket is full. */
static void conn_flush(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            ep_set(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
            return;
        }
        if (w < 0) {
            posts_err++;
            c->busy = 0;
            conn_reopen(c);
            return;
        }
        c->out_off += (size_t)w;
    }
    ep_set(c, EPOLL_CTL_MOD, EPOLLIN);
}

static void conn_post(struct conn *c)
{
    char path[512];
    stream_path(c->stream, path, sizeof path);
    size_t need = 2048 + strlen(path) + (token ? strlen(token) : 0) +
                  (size_t)batch * (event_bytes + 96);
    if (need > c->out_cap) {
        free(c->out);
        c->out_cap = need;
        c->out = malloc(need);
        if (!c->out)
            die("malloc");
    }
    /* body first, at a fixed offset, then the header in front of it */
    size_t hroom = 1024 + strlen(path) + (token ? strlen(token) : 0);
    char *body = c->out + hroom;
    size_t blen = 0;
    unsigned idx = (unsigned)(c - conns);
    for (unsigned j = 0; j < batch; j++) {
        int m = snprintf(body + blen, event_bytes + 96,
                         "{\"type\":\"step_log\",\"nodeId\":\"bench\",\"level\":\"info\","
                         "\"line\":\"c=%u p=%" PRIu64 " e=%u ",
                         idx, c->posts, j);
        size_t used = (size_t)m;
        while (used + 2 < event_bytes)
            body[blen + used++] = 'x';
        memcpy(body + blen + used, "\"}", 2);
        blen += used + 2;
        if (batch > 1)
            body[blen++] = '\n';
    }
    char hdr[1024 + 4096 + 512];
    int hl = snprintf(hdr, sizeof hdr,
                      "POST %s HTTP/1.1\r\nHost: %s\r\n%s%s%sContent-Type: %s\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      path, host, token ? "Authorization: Bearer " : "", token ? token : "",
                      token ? "\r\n" : "", batch > 1 ? "application/x-ndjson" : "application/json",
                      blen);
    if (hl < 0 || (size_t)hl > hroom)
        die("request header too long");
    memcpy(body - hl, hdr, (size_t)hl);
    memmove(c->out, body - hl, (size_t)hl + blen);
    c->out_len = (size_t)hl + blen;
    c->out_off = 0;
    c->busy = 1;
    c->posts++;
    c->sent_ns = now_ns();
    posts_sent++;
    conn_flush(c);
}

/* One complete response in rbuf? Consumes it and returns 1. */
static int conn_response(struct conn *c, int *status, int *close_after)
{
    char *h = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (!h)
        return 0;
    size_t hlen = (size_t)(h - c->rbuf) + 4, body = 0, total;
    int chunked = 0;
    *h = 0;
    *status = c->rlen > 12 ? atoi(c->rbuf + 9) : 0;
    *close_after = 0;
    for (char *l = strstr(c->rbuf, "\r\n"); l; l = strstr(l + 2, "\r\n")) {
        if (!strncasecmp(l + 2, "content-length:", 15))
            body = (size_t)strtoul(l + 17, NULL, 10);
        else if (!strncasecmp(l + 2, "transfer-encoding:", 18) && strcasestr(l, "chunked"))
            chunked = 1;
        else if (!strncasecmp(l + 2, "connection:", 11) && strcasestr(l + 13, "close"))
            *close_after = 1;
    }
    *h = '\r';
    if (chunked) {
        char *end = memmem(c->rbuf + hlen - 2, c->rlen - (hlen - 2), "\r\n0\r\n\r\n", 7);
        if (!end)
            return 0;
        total = (size_t)(end - c->rbuf) + 7;
    } else {
        total = hlen + body;
        if (c->rlen < total)
            return 0;
    }
    memmove(c->rbuf, c->rbuf + total, c->rlen - total);
    c->rlen -= total;
    return 1;
}

static void conn_read(struct conn *c)
{
    ssize_t r = read(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        if (c->busy) {
            posts_err++;
            fprintf(stderr, "bench_ingest: connection closed with a POST in flight\n");
        }
        conn_reopen(c);
        return;
    }
    c->rlen += (size_t)r;
    int status, close_after;
    if (c->busy && conn_response(c, &status, &close_after)) {
        c->busy = 0;
        hist_add(now_ns() - c->sent_ns);
        if (status >= 200 && status < 300) {
            posts_ok++;
            events_ok += batch;
        } else if (posts_err++ < 5) {
            fprintf(stderr, "bench_ingest: POST answered %d\n", status);
        }
        if (close_after)
            conn_reopen(c);
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_ingest --port N --path '/api/v1/workflow-runs/ing-%%u/events'\n"
            "         [--target rtlog|nchan] [--host 127.0.0.1] [--token JWT] [--conns 64]\n"
            "         [--streams N (default: one per connection)] [--batch 1] [--secs 10]\n"
            "         [--rate EVENTS_PER_S (0 = closed loop)] [--event-bytes 200]\n"
            "         [--server-pid PID]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'h'},    {"port", 1, 0, 'p'},  {"path", 1, 0, 'P'},
        {"token", 1, 0, 't'},   {"conns", 1, 0, 'c'}, {"streams", 1, 0, 'S'},
        {"batch", 1, 0, 'b'},   {"secs", 1, 0, 's'},  {"rate", 1, 0, 'r'},
        {"event-bytes", 1, 0, 'e'}, {"server-pid", 1, 0, 'x'}, {"target", 1, 0, 'T'},
        {0, 0, 0, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'P': path_fmt = optarg; break;
        case 't': token = optarg; break;
        case 'c': nconns = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'S': nstreams = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'b': batch = (unsigned)strtoul(optarg, NULL, 10); break;
        case 's': secs = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'r': rate = atof(optarg); break;
        case 'e': event_bytes = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'x': server_pid = atoi(optarg); break;
        case 'T': target = optarg; break;
        default: usage();
        }
    }
    /* the path pattern is a format string: exactly one %u, no other conversion */
    const char *pc = path_fmt ? strchr(path_fmt, '%') : NULL;
    if (!path_fmt || !pc || pc[1] != 'u' || strchr(pc + 2, '%') || !nconns || nconns > 10000 ||
        !batch || !secs || event_bytes < 96 || event_bytes > 60000 ||
        (batch > 1 && strcmp(target, "rtlog") != 0))
        usage();
    if (!nstreams || nstreams > nconns)
        nstreams = nconns;

    hist = calloc(HIST_US + 1, sizeof *hist);
    conns = calloc(nconns, sizeof *conns);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (!hist || !conns || ep < 0)
        die("setup");
    for (unsigned i = 0; i < nconns; i++) {
        conns[i].stream = i % nstreams;
        conn_open(&conns[i]);
    }

    uint64_t cpu0 = server_pid ? proc_cpu_ticks(server_pid) : 0;
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)secs * 1000000000ull;
    struct epoll_event evs[1024];
    uint64_t now = t0;
    int stopping = 0;
    for (;;) {
        now = now_ns();
        if (!stopping && now >= end)
            stopping = 1;
        if (!stopping) {
            /* start a POST on every free connection the rate allows */
            for (unsigned i = 0; i < nconns; i++) {
                if (conns[i].busy)
                    continue;
                if (rate > 0 &&
                    (double)(posts_sent * batch) >= rate * (double)(now - t0) / 1e9)
                    break;
                conn_post(&conns[i]);
            }
        }
        int busy = 0;
        for (unsigned i = 0; i < nconns && !busy; i++)
            busy = conns[i].busy;
        if (stopping && !busy)
            break;
        if (stopping && now > end + 30000000000ull) {
            fprintf(stderr, "bench_ingest: answers still missing 30 s after the end\n");
            break;
        }
        int n = epoll_wait(ep, evs, 1024, rate > 0 ? 1 : 100);
        for (int j = 0; j < n; j++) {
            struct conn *c = &conns[evs[j].data.u32];
            if (evs[j].events & EPOLLOUT)
                conn_flush(c);
            if (evs[j].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                conn_read(c);
        }
    }
    uint64_t t1 = now_ns();
    uint64_t cpu1 = server_pid ? proc_cpu_ticks(server_pid) : 0;
    double wall = (double)(t1 - t0) / 1e9;
    double cpu_s = (double)(cpu1 - cpu0) / (double)sysconf(_SC_CLK_TCK);
    uint64_t missing = posts_sent - posts_ok - posts_err;
    printf("ingest target=%s conns=%u streams=%u batch=%u event_bytes=%u rate=%.0f secs=%u"
           " wall_s=%.3f posts=%" PRIu64 " posts_ok=%" PRIu64 " post_errors=%" PRIu64
           " unanswered=%" PRIu64 " events_ok=%" PRIu64 " events_per_s=%.0f posts_per_s=%.0f"
           " ack_p50_us=%" PRIu64 " ack_p99_us=%" PRIu64 " ack_max_us=%" PRIu64
           " server_cpu_s=%.2f server_cpu_pct=%.1f server_cpu_us_per_event=%.3f\n",
           target, nconns, nstreams, batch, event_bytes, rate, secs, wall, posts_sent, posts_ok,
           posts_err, missing, events_ok, (double)events_ok / wall, (double)posts_ok / wall,
           hist_q(0.5), hist_q(0.99), hist_max, cpu_s, 100.0 * cpu_s / wall,
           events_ok ? cpu_s * 1e6 / (double)events_ok : 0.0);
    for (unsigned i = 0; i < nconns; i++)
        close(conns[i].fd);
    return posts_err == 0 && missing == 0 ? 0 : 1;
}
