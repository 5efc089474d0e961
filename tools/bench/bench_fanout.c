/* bench_fanout.c - fan-out load generator: N SSE or WebSocket subscribers and a paced
 * publisher, one process.
 *
 * Measures what a live run view costs the server: one stream, many subscribers, a steady
 * event rate. Everything is one epoll loop on non-blocking sockets so the load generator
 * costs little next to the server it measures (2-core machine): subscribers do a minimal
 * HTTP/SSE parse (headers once, then frames split on the blank line), and the publisher is
 * a timerfd that posts one batch per tick on a small pool of keep-alive connections (a POST
 * is only acknowledged after its commit, so one connection alone could not keep the pace).
 * Each event carries in its `line` its publish time (CLOCK_REALTIME ns, taken just before the
 * POST is written), its scheduled time (start + index * period) and its index; a subscriber
 * takes the receive time once per read() and records now - publish ("lat") and now -
 * scheduled ("e2e") in 1 us histograms. e2e includes the time an event waited in the
 * publisher because every connection still waited for its 201: when the server slows its
 * acks, lat alone would hide that (coordinated omission). Per subscriber a bitmap of indexes
 * counts missing and duplicate events, and for rtlog the SSE `id:` must grow by exactly 1
 * (order, no gap).
 * The same tool drives nchan (target nchan: no token, one event per POST) so the two servers
 * are measured by the same code. Server CPU comes from /proc/<pid>/stat over the measured
 * interval. The run is bounded: it stops after rate*secs events (or at --pub-deadline, which
 * lets a saturated server be measured in bounded time) and a drain timeout.
 * --proto ws speaks RFC 6455 instead (upgrade, unmasked server frames, masked replies to
 * pings and heartbeats); for rtlog the order check then reads the event's trailing "seq".
 * --storm-at S is the reconnect storm: S seconds into publishing every subscriber drops its
 * connection (RST) and all reconnect at once, resuming from the last id each one saw
 * (Last-Event-ID for SSE, ?lastEventId= for WS). A subscriber is "live again" when its new
 * stream is open and it holds every event published before it sent its new request; the
 * time from the drop to that moment is reported per subscriber (p50/p99/max).
 * --slow N / --stalled M make the last N+M subscribers slow and stalled consumers (issue 6
 * hardening, CONTRACT "Errors and limits"): a slow one reads at most --slow-bps bytes/s
 * (small reads every 100 ms), a stalled one reads nothing after its response headers; both
 * ask for a small SO_RCVBUF (--slow-rcvbuf) so the server's socket really fills. When the
 * server closes one of them (its stall timeout: the socket accepted no bytes for that long),
 * it reconnects at once with its Last-Event-ID (?lastEventId= for WS) and goes on as before.
 * Once publishing is over both kinds read at full speed: a stalled one must then find its
 * stream closed by the server (EOF once the queued bytes are read: a server that had not
 * closed it would have nothing more to send), resume, and in the end every subscriber must
 * hold every acknowledged event exactly once, in seq order. lat/e2e are then the fast
 * subscribers' alone. The server's socket buffer (Linux autotunes it up to 4 MiB) must fill
 * before its stall clock starts, so --secs must exceed that fill time plus the server's
 * --stall-timeout; --backlog N stores N events first, which the fast subscribers skip
 * (Last-Event-ID: N) and the slow and stalled ones read from seq 1, filling it at once. A
 * slow reader learns of its close only after reading what was queued before the FIN.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "bench_scan.h"

enum { TARGET_RTLOG, TARGET_NCHAN };
enum { PROTO_SSE, PROTO_WS };
enum { S_CONNECTING, S_HDRWAIT, S_OPEN, S_DEAD, S_IDLE };
enum { R_FAST, R_SLOW, R_STALLED };

#define SUB_BUF     (64 * 1024)
#define HIST_US     (2 * 1000 * 1000) /* 1 us bins below 2 s ... */
#define HIST_MS     (118 * 1000)      /* ... then 1 ms bins up to 120 s; later: the last bin */
#define HIST_BINS   (HIST_US + HIST_MS + 1)
#define TAG_SUB     (1ull << 62)
#define TAG_PUB     (1ull << 61)
#define TAG_TIMER   (1ull << 60)
#define TAG_MASK    (TAG_SUB | TAG_PUB | TAG_TIMER)
#define MAX_PENDING 256 /* subscribers connecting at once (listen backlog stays small) */
#define PACE_MS     100 /* slow readers' tick */

struct sub {
    int fd;
    int state;
    size_t len;
    char *buf;
    uint64_t last_id;
    char last_id_str[64]; /* the last SSE id: as sent (nchan's are "time:tag") */
    uint64_t unique, dups, order_errs;
    uint64_t next_k;      /* every event below this index has arrived */
    uint8_t *seen;        /* bit k: event k arrived */
    /* reconnect storm */
    int resumed;          /* reconnected after the storm */
    uint64_t need_k;      /* live again once next_k >= need_k (events sent before resuming) */
    int live;             /* counted as live again */
    /* slow and stalled consumers */
    int role;             /* R_FAST, R_SLOW, R_STALLED */
    int paced;            /* reads are driven by the tick (slow) or stopped (stalled) */
    uint64_t tokens;      /* slow: bytes it may still read */
    uint64_t paced_bytes; /* slow: bytes read while paced */
    uint64_t closes;      /* times the server closed it */
    uint64_t start_k;     /* it holds every event from this index on (fast: after --backlog) */
};

struct pubc {
    int fd;
    int busy;           /* a POST is in flight */
    uint64_t sent_ns;   /* CLOCK_REALTIME when it was written */
    size_t rlen;
    char rbuf[8192];
};

struct opts {
    int target, proto;
    const char *host;
    int port;
    const char *sub_path, *pub_path, *create_path, *token;
    unsigned subs, rate, secs, batch, event_bytes, pub_conns;
    int server_pid;
    double drain_secs, connect_secs, pub_deadline, storm_at;
    unsigned storm_pending; /* 0: every reconnect at once; else at most this many
                             * handshakes in flight (the rest start as those finish) */
    unsigned slow, stalled, slow_bps, slow_rcvbuf;
    unsigned backlog; /* events stored before anyone subscribes (rtlog) */
};

struct hist {
    uint32_t *bin;
    uint64_t n, max;
};

static struct opts o = {
    .target = TARGET_RTLOG, .proto = PROTO_SSE, .host = "127.0.0.1", .port = 8080, .subs = 1000, .rate = 1000,
    .secs = 10, .batch = 1, .event_bytes = 200, .pub_conns = 16, .server_pid = 0,
    .drain_secs = 10.0, .connect_secs = 60.0, .slow_bps = 1024, .slow_rcvbuf = 4096,
};

static struct sub *subs;
static struct pubc *pubs;
static int ep;
static uint64_t total_events, acked_events, sent_events, post_errors, sub_failures;
static uint64_t delivered_all; /* unique events received, every subscriber */
static uint64_t fast_bytes;    /* bytes the fast subscribers read (frame size = / events) */
static int rcvbuf_eff;         /* SO_RCVBUF the kernel gave a slow/stalled socket */
static uint64_t max_backlog;
static struct hist lat, e2e, ack;
static struct hist storm_open, storm_live; /* drop -> 200/101 again; drop -> live again */
static uint64_t storm_ns;                  /* CLOCK_MONOTONIC of the drop; 0 = none yet */
static uint64_t storm_live_n;
static unsigned storm_next; /* paced storm: the next subscriber to reconnect */
static uint64_t sched0_ns, period_ns; /* CLOCK_REALTIME of event 0; ns between batches */
static uint64_t first_post_ns, last_post_ns;
static char *pubbuf;
static size_t pubbuf_cap;

static uint64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_fanout: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void hist_init(struct hist *h)
{
    h->bin = calloc(HIST_BINS, sizeof *h->bin);
    if (!h->bin)
        die("calloc");
}

static void hist_add(struct hist *h, int64_t ns)
{
    uint64_t us = ns < 0 ? 0 : (uint64_t)ns / 1000u;
    if (us > h->max)
        h->max = us;
    uint64_t b = us < HIST_US ? us : HIST_US + (us - HIST_US) / 1000u;
    h->bin[b < HIST_BINS ? b : HIST_BINS - 1]++;
    h->n++;
}

/* The value (us) below which a fraction q of the samples lie. */
static uint64_t hist_q(const struct hist *h, double q)
{
    if (!h->n)
        return 0;
    uint64_t want = (uint64_t)((double)h->n * q);
    if (want >= h->n)
        want = h->n - 1;
    uint64_t acc = 0;
    for (uint64_t i = 0; i < HIST_BINS; i++) {
        acc += h->bin[i];
        if (acc > want)
            return i < HIST_US ? i : HIST_US + (i - HIST_US) * 1000u;
    }
    return h->max;
}

/* utime + stime of a process in clock ticks; 0 when it cannot be read. */
static uint64_t proc_cpu_ticks(int pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may contain spaces */
    if (!p)
        return 0;
    unsigned long long ut = 0, st = 0;
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (uint64_t)(ut + st);
}

/* Machine-wide busy and total time (all CPUs, clock ticks) from the first line of /proc/stat:
 * the loopback network stack runs partly in softirq context, charged to no process. */
static void machine_ticks(uint64_t *busy, uint64_t *total)
{
    unsigned long long v[8] = {0};
    *busy = *total = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return;
    for (int i = 0; i < 8; i++)
        *total += v[i];
    *busy = *total - v[3] - v[4]; /* minus idle and iowait */
}

/* @rcvbuf: SO_RCVBUF to ask for before connecting (the window is fixed then); 0 = default. */
static int tcp_connect(int nonblock, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (rcvbuf > 0) {
        socklen_t l = sizeof rcvbuf_eff;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_eff, &l);
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
    if (inet_pton(AF_INET, o.host, &a.sin_addr) != 1) {
        fprintf(stderr, "bench_fanout: bad host %s\n", o.host);
        exit(2);
    }
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS)
        die("connect");
    return fd;
}

/* Close with RST so 1,000s of client sockets do not sit in TIME_WAIT between runs. */
static void close_rst(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void ep_add(int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl add");
}

static void ep_mod(int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0)
        die("epoll_ctl mod");
}

static void write_all_blocking(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            die("write");
        p += w;
        n -= (size_t)w;
    }
}

/* Blocking one-shot request (setup only): returns the HTTP status, or -1. */
static int http_once(const char *method, const char *path, const char *ctype, const char *body)
{
    char resp[4096];
    size_t cap = strlen(body) + strlen(path) + (o.token ? strlen(o.token) : 0) + 1024;
    char *req = malloc(cap);
    if (!req)
        die("malloc");
    int fd = tcp_connect(0, 0);
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%sContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, path, o.host, o.token ? "Authorization: Bearer " : "",
                     o.token ? o.token : "", o.token ? "\r\n" : "", ctype, strlen(body), body);
    write_all_blocking(fd, req, (size_t)n);
    free(req);
    ssize_t r = read(fd, resp, sizeof resp - 1);
    close(fd);
    if (r < 12)
        return -1;
    resp[r] = 0;
    return atoi(resp + 9);
}

/* ---- subscribers ---------------------------------------------------------------------- */

static void sub_fail(struct sub *s, const char *why)
{
    if (s->state != S_DEAD) {
        if (sub_failures < 5)
            fprintf(stderr, "bench_fanout: subscriber %ld: %s\n", (long)(s - subs), why);
        sub_failures++;
        epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
        close_rst(s->fd);
        s->state = S_DEAD;
    }
}

static void sub_start(unsigned i);
static int paced_over; /* publishing is over: slow and stalled subscribers read freely */

/* The server ended the stream. A fast subscriber has failed; a slow or stalled one was
 * closed by the stall timeout, as the contract allows: it reconnects at once from its last
 * id (resumed: Last-Event-ID / ?lastEventId=) and goes on as the same kind of reader. */
static void sub_lost(struct sub *s, const char *why)
{
    if (s->role == R_FAST || s->state != S_OPEN) {
        sub_fail(s, why);
        return;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
    close_rst(s->fd);
    s->state = S_IDLE;
    s->closes++;
    s->resumed = 1;
    sub_start((unsigned)(s - subs));
}

/* The subscriber's request: the stream path, plus its resume point after a storm
 * (Last-Event-ID for SSE; ?lastEventId= for rtlog WS: browsers cannot set headers there). */
static size_t sub_request(const struct sub *s, char *req, size_t cap)
{
    char resume[128] = "", path[4096];
    const char *p = o.sub_path;
    /* a resume point: after a storm or a close, or a fast subscriber skipping --backlog */
    if (o.proto == PROTO_SSE && s->last_id_str[0])
        snprintf(resume, sizeof resume, "Last-Event-ID: %s\r\n", s->last_id_str);
    if ((s->resumed || s->last_id) && o.proto == PROTO_WS && o.target == TARGET_RTLOG) {
        snprintf(path, sizeof path, "%s%slastEventId=%" PRIu64, o.sub_path,
                 strchr(o.sub_path, '?') ? "&" : "?", s->last_id);
        p = path;
    }
    int n;
    if (o.proto == PROTO_WS)
        n = snprintf(req, cap,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     p, o.host);
    else
        n = snprintf(req, cap,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%s%s%s%s\r\n",
                     p, o.host, o.token ? "Authorization: Bearer " : "", o.token ? o.token : "",
                     o.token ? "\r\n" : "", resume);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "bench_fanout: request too long\n");
        exit(2);
    }
    return (size_t)n;
}

static void sub_start(unsigned i)
{
    struct sub *s = &subs[i];
    s->fd = tcp_connect(1, s->role == R_FAST ? 0 : (int)o.slow_rcvbuf);
    s->state = S_CONNECTING;
    s->len = 0;
    ep_add(s->fd, EPOLLOUT, TAG_SUB | i);
}

/* The subscriber holds every event published before it resumed: live again. */
static void sub_check_live(struct sub *s)
{
    if (s->resumed && !s->live && s->state == S_OPEN && s->next_k >= s->need_k) {
        s->live = 1;
        storm_live_n++;
        hist_add(&storm_live, (int64_t)(now_ns(CLOCK_MONOTONIC) - storm_ns));
    }
}

/* One event or control message [p, p+n): an SSE frame without its blank line, or one WS
 * text message. @id: the SSE id / the event's seq when @has_id (rtlog). */
static void sub_frame(struct sub *s, const char *p, size_t n, int has_id, uint64_t id,
                      uint64_t rx_ns)
{
    static const char key[] = "\"line\":\"t=";
    const char *d = find_rare(p, n, key, sizeof key - 1, sizeof key - 2); /* the '=' */
    if (!d)
        return; /* retry:, comments, heartbeats */
    const char *e = p + n;
    d += sizeof key - 1;
    uint64_t t = 0, k = 0, sch = 0;
    while (d < e && *d >= '0' && *d <= '9')
        t = t * 10 + (uint64_t)(*d++ - '0');
    if (e - d < 3 || memcmp(d, " s=", 3) != 0)
        return;
    d += 3;
    while (d < e && *d >= '0' && *d <= '9')
        sch = sch * 10 + (uint64_t)(*d++ - '0');
    if (e - d < 3 || memcmp(d, " k=", 3) != 0)
        return;
    d += 3;
    while (d < e && *d >= '0' && *d <= '9')
        k = k * 10 + (uint64_t)(*d++ - '0');
    if (k >= total_events)
        return;
    if (o.target == TARGET_RTLOG) {
        /* the stream was created empty, so event k is seq k+1, and seqs grow by one, also
         * across a resume */
        if (!has_id || id != s->last_id + 1)
            s->order_errs++;
        s->last_id = id;
    }
    if (s->seen[k >> 3] & (1u << (k & 7))) {
        s->dups++;
        return;
    }
    s->seen[k >> 3] = (uint8_t)(s->seen[k >> 3] | (1u << (k & 7)));
    s->unique++;
    delivered_all++;
    while (s->next_k < total_events && (s->seen[s->next_k >> 3] & (1u << (s->next_k & 7))))
        s->next_k++;
    if (s->role != R_FAST)
        return; /* latency is the fast subscribers' (a slow one's is its own choice) */
    hist_add(&lat, (int64_t)(rx_ns - t));
    hist_add(&e2e, (int64_t)(rx_ns - sch));
}

/* An SSE frame: remember its id line, then the event. */
static void sub_sse_frame(struct sub *s, const char *p, size_t n, uint64_t rx_ns)
{
    int has_id = 0;
    uint64_t id = 0;
    if (n > 4 && memcmp(p, "id: ", 4) == 0) {
        const char *q = p + 4, *e = memchr(q, '\n', n - 4);
        size_t l = e ? (size_t)(e - q) : n - 4;
        if (l < sizeof s->last_id_str) {
            memcpy(s->last_id_str, q, l);
            s->last_id_str[l] = 0;
        }
        has_id = 1;
        for (size_t j = 0; j < l && q[j] >= '0' && q[j] <= '9'; j++)
            id = id * 10 + (uint64_t)(q[j] - '0');
    }
    sub_frame(s, p, n, has_id, id, rx_ns);
}

/* Write a masked client frame (pong or a {"type":"pong"} reply); small, so whole or fail. */
static void ws_send(struct sub *s, int opcode, const char *p, size_t n)
{
    unsigned char f[2 + 4 + 125];
    if (n > 125)
        n = 125;
    f[0] = (unsigned char)(0x80 | opcode);
    f[1] = (unsigned char)(0x80 | n);
    memset(f + 2, 0, 4); /* a zero mask is a valid mask and leaves the payload as is */
    memcpy(f + 6, p, n);
    if (write(s->fd, f, 6 + n) != (ssize_t)(6 + n))
        sub_fail(s, "ws reply write");
}

/* Split s->buf into WS frames from @off; returns the offset of the first incomplete one. */
static size_t sub_ws_parse(struct sub *s, size_t off, uint64_t rx_ns)
{
    while (s->state == S_OPEN && s->len - off >= 2) {
        const unsigned char *h = (const unsigned char *)s->buf + off;
        int fin = h[0] & 0x80, op = h[0] & 0x0f;
        uint64_t plen = h[1] & 0x7f;
        size_t hl = 2;
        if (h[1] & 0x80) {
            sub_fail(s, "masked server frame");
            return off;
        }
        if (plen == 126) {
            if (s->len - off < 4)
                break;
            plen = (uint64_t)h[2] << 8 | h[3];
            hl = 4;
        } else if (plen == 127) {
            if (s->len - off < 10)
                break;
            plen = 0;
            for (int j = 0; j < 8; j++)
                plen = plen << 8 | h[2 + j];
            hl = 10;
        }
        if (plen > SUB_BUF - hl) {
            sub_fail(s, "WS message larger than the client buffer");
            return off;
        }
        if (s->len - off < hl + plen)
            break;
        const char *pl = (const char *)h + hl;
        if (!fin || op == 0) {
            sub_fail(s, "fragmented WS message (not expected from the servers measured)");
            return off;
        } else if (op == 1) {
            int has_id = 0;
            uint64_t id = 0;
            /* rtlog: "seq" is the event's last field */
            const char *q = NULL;
            for (const char *x = pl + plen; x - 7 >= pl; x--)
                if (memcmp(x - 7, "\"seq\":", 6) == 0) {
                    q = x - 1;
                    break;
                }
            if (q) {
                has_id = 1;
                while (q < pl + plen && *q >= '0' && *q <= '9')
                    id = id * 10 + (uint64_t)(*q++ - '0');
            }
            if (!has_id && memmem(pl, plen, "\"type\":\"heartbeat\"", 18)) /* no seq */
                ws_send(s, 1, "{\"type\":\"pong\"}", 15);
            else
                sub_frame(s, pl, plen, has_id, id, rx_ns);
        } else if (op == 9) {
            ws_send(s, 10, pl, plen);
        } else if (op == 8) {
            sub_lost(s, "server closed the WebSocket");
            return off;
        }
        off += hl + plen;
    }
    return off;
}

static void sub_parse(struct sub *s, uint64_t rx_ns)
{
    size_t off = 0;
    if (s->state == S_HDRWAIT) {
        char *h = memmem(s->buf, s->len, "\r\n\r\n", 4);
        if (!h) {
            if (s->len == SUB_BUF)
                sub_fail(s, "response headers too large");
            return;
        }
        int want = o.proto == PROTO_WS ? 101 : 200;
        if (s->len < 12 || memcmp(s->buf, "HTTP/1.", 7) != 0 || atoi(s->buf + 9) != want) {
            /* the first bytes, control characters escaped: a refusal names itself */
            char line[256];
            size_t at = 0;
            for (size_t j = 0; j < s->len && j < 80 && at + 5 < sizeof line; j++) {
                unsigned char ch = (unsigned char)s->buf[j];
                at += (size_t)snprintf(line + at, sizeof line - at,
                                       ch >= 32 && ch < 127 ? "%c" : "\\x%02x", ch);
            }
            snprintf(line + at, sizeof line - at, " (%zu bytes)", s->len);
            sub_fail(s, line);
            return;
        }
        off = (size_t)(h - s->buf) + 4;
        s->state = S_OPEN;
        if (s->role != R_FAST && !paced_over) {
            /* from now on the tick reads it (slow) or nothing does (stalled); epoll still
             * reports an error or a hang-up */
            s->paced = 1;
            s->tokens = 0;
            ep_mod(s->fd, 0, TAG_SUB | (uint64_t)(s - subs));
        }
        if (s->resumed)
            hist_add(&storm_open, (int64_t)(now_ns(CLOCK_MONOTONIC) - storm_ns));
    }
    if (o.proto == PROTO_WS) {
        off = sub_ws_parse(s, off, rx_ns);
    } else {
        for (;;) {
            char *f = (char *)find_rare(s->buf + off, s->len - off, "\n\n", 2, 0);
            if (!f)
                break;
            sub_sse_frame(s, s->buf + off, (size_t)(f - (s->buf + off)), rx_ns);
            off = (size_t)(f - s->buf) + 2;
        }
    }
    if (s->state == S_DEAD)
        return;
    if (off) {
        memmove(s->buf, s->buf + off, s->len - off);
        s->len -= off;
    }
    sub_check_live(s);
    if (s->len == SUB_BUF)
        sub_fail(s, "SSE frame larger than the client buffer");
}

static void sub_event(unsigned i, uint32_t events)
{
    struct sub *s = &subs[i];
    if (s->state == S_DEAD || s->state == S_IDLE)
        return;
    if (s->state == S_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            errno = err;
            sub_fail(s, "connect failed");
            return;
        }
        /* What was published before this request must come back as catch-up. */
        s->need_k = sent_events;
        /* A fresh socket's send buffer takes the whole request. */
        char req[8192];
        size_t rl = sub_request(s, req, sizeof req);
        if (write(s->fd, req, rl) != (ssize_t)rl) {
            sub_fail(s, "request write");
            return;
        }
        s->state = S_HDRWAIT;
        ep_mod(s->fd, EPOLLIN, TAG_SUB | i);
        return;
    }
    if (s->paced) { /* only an error or hang-up wakes a paced subscriber: the server left */
        sub_lost(s, "connection lost");
        return;
    }
    for (int loops = 0; loops < 4; loops++) {
        /* a slow or stalled one reads its headers in small pieces: what follows them is
         * for its pace */
        size_t want = s->role != R_FAST && s->state == S_HDRWAIT && !paced_over ? 256
                                                                                 : SUB_BUF - s->len;
        if (want > SUB_BUF - s->len)
            want = SUB_BUF - s->len;
        ssize_t r = read(s->fd, s->buf + s->len, want);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (r <= 0) {
            sub_lost(s, r == 0 ? "server closed the stream" : "read error");
            return;
        }
        s->len += (size_t)r;
        if (s->role == R_FAST)
            fast_bytes += (uint64_t)r;
        sub_parse(s, now_ns(CLOCK_REALTIME));
        if (s->state != S_OPEN && s->state != S_HDRWAIT)
            return;
        if (s->paced || (size_t)r < want / 2 + 1)
            return;
    }
}

/* The pace tick (every PACE_MS): each slow subscriber reads what its byte rate allows. */
static void pace_tick(void)
{
    uint64_t add = (uint64_t)o.slow_bps * PACE_MS / 1000;
    for (unsigned i = 0; i < o.subs; i++) {
        struct sub *s = &subs[i];
        if (!s->paced || s->state != S_OPEN || s->role != R_SLOW)
            continue;
        s->tokens += add;
        if (s->tokens > o.slow_bps) /* at most 1 s of credit */
            s->tokens = o.slow_bps;
        size_t want = SUB_BUF - s->len < s->tokens ? SUB_BUF - s->len : (size_t)s->tokens;
        if (!want)
            continue;
        ssize_t r = read(s->fd, s->buf + s->len, want);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0) {
            sub_lost(s, r == 0 ? "server closed the stream" : "read error");
            continue;
        }
        s->tokens -= (uint64_t)r;
        s->paced_bytes += (uint64_t)r;
        s->len += (size_t)r;
        sub_parse(s, now_ns(CLOCK_REALTIME));
    }
}

/* Publishing is over: slow and stalled subscribers read at full speed from now on (a
 * stalled one first learns here whether the server closed it: EOF after the queued bytes). */
static void pace_end(void)
{
    paced_over = 1;
    for (unsigned i = 0; i < o.subs; i++) {
        struct sub *s = &subs[i];
        if (s->paced && s->state == S_OPEN)
            ep_mod(s->fd, EPOLLIN, TAG_SUB | i);
        s->paced = 0;
    }
}

/* Paced storm (--storm-pending): start reconnects while fewer than that many handshakes
 * are in flight. */
static void storm_pace(void)
{
    unsigned pending = 0;
    for (unsigned i = 0; i < storm_next; i++)
        pending += subs[i].state == S_CONNECTING || subs[i].state == S_HDRWAIT;
    while (storm_next < o.subs && pending < o.storm_pending) {
        if (subs[storm_next].state == S_IDLE) {
            sub_start(storm_next);
            pending++;
        }
        storm_next++;
    }
}

/* The storm: every open subscriber drops its connection at once (RST, as a network failure
 * or a crashed proxy would), then all reconnect at once with their resume point (or as
 * fast as --storm-pending handshakes in flight allow). */
static void storm(void)
{
    storm_ns = now_ns(CLOCK_MONOTONIC);
    for (unsigned i = 0; i < o.subs; i++) {
        struct sub *s = &subs[i];
        if (s->state != S_OPEN)
            continue;
        epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
        close_rst(s->fd);
        s->state = S_IDLE;
        s->resumed = 1;
    }
    if (o.storm_pending) {
        storm_pace();
        return;
    }
    for (unsigned i = 0; i < o.subs; i++)
        if (subs[i].state == S_IDLE)
            sub_start(i);
}

/* ---- publisher ------------------------------------------------------------------------ */

static void pub_connect(unsigned i)
{
    struct pubc *p = &pubs[i];
    p->fd = tcp_connect(0, 0);
    int fl = fcntl(p->fd, F_GETFL);
    fcntl(p->fd, F_SETFL, fl | O_NONBLOCK);
    p->busy = 0;
    p->rlen = 0;
    ep_add(p->fd, EPOLLIN, TAG_PUB | i);
}

/* Write events [k0, k0+n) into @body (room for n * (event_bytes + 64)): one JSON object, or
 * NDJSON when n > 1. @t: publish time, @sch: scheduled time (CLOCK_REALTIME ns). Returns
 * the length. */
static size_t build_events(char *body, uint64_t t, uint64_t sch, uint64_t k0, unsigned n)
{
    size_t blen = 0;
    for (unsigned j = 0; j < n; j++) {
        int m = snprintf(body + blen, o.event_bytes + 64,
                         "{\"type\":\"step_log\",\"nodeId\":\"bench\",\"level\":\"info\","
                         "\"line\":\"t=%019" PRIu64 " s=%019" PRIu64 " k=%08" PRIu64 " ",
                         t, sch, k0 + j);
        size_t used = (size_t)m;
        /* pad the line so the posted event is event_bytes long ("\"}" closes it) */
        while (used + 2 < o.event_bytes)
            body[blen + used++] = 'x';
        memcpy(body + blen + used, "\"}", 2);
        used += 2;
        blen += used;
        if (n > 1)
            body[blen++] = '\n';
    }
    return blen;
}

/* --backlog: store events [0, backlog) before anyone subscribes, 500 per POST. */
static void post_backlog(void)
{
    char *body = malloc((size_t)500 * (o.event_bytes + 64) + 1);
    if (!body)
        die("malloc");
    for (uint64_t k = 0; k < o.backlog; k += 500) {
        unsigned n = o.backlog - k < 500 ? (unsigned)(o.backlog - k) : 500;
        uint64_t t = now_ns(CLOCK_REALTIME);
        size_t blen = build_events(body, t, t, k, n);
        body[blen] = 0;
        int st = http_once("POST", o.pub_path, n > 1 ? "application/x-ndjson" : "application/json",
                           body);
        if (st < 200 || st >= 300) {
            fprintf(stderr, "bench_fanout: posting the backlog answered %d\n", st);
            exit(2);
        }
    }
    free(body);
}

/* Build and write one POST carrying events [k0, k0+n). */
static void pub_send(unsigned i, uint64_t k0, unsigned n)
{
    struct pubc *p = &pubs[i];
    size_t need = 1024 + (size_t)n * (o.event_bytes + 64) + (o.token ? strlen(o.token) : 0);
    if (need > pubbuf_cap) {
        free(pubbuf);
        pubbuf_cap = need * 2;
        pubbuf = malloc(pubbuf_cap);
        if (!pubbuf)
            die("malloc");
    }
    char *body = pubbuf + 1024 + (o.token ? strlen(o.token) : 0);
    uint64_t t = now_ns(CLOCK_REALTIME);
    uint64_t sch = sched0_ns + ((k0 - o.backlog) / o.batch) * period_ns;
    if (!first_post_ns)
        first_post_ns = t;
    last_post_ns = t;
    size_t blen = build_events(body, t, sch, k0, n);
    char hdr[1024 + 4096];
    int hl = snprintf(hdr, sizeof hdr,
                      "POST %s HTTP/1.1\r\nHost: %s\r\n%s%s%sContent-Type: %s\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      o.pub_path, o.host, o.token ? "Authorization: Bearer " : "",
                      o.token ? o.token : "", o.token ? "\r\n" : "",
                      n > 1 ? "application/x-ndjson" : "application/json", blen);
    char *start = body - hl;
    memcpy(start, hdr, (size_t)hl);
    size_t len = (size_t)hl + blen;
    /* Small requests on an idle keep-alive socket: the send buffer takes them whole; a
     * short write would be a bench bug, so it is reported as a post error. */
    ssize_t w = write(p->fd, start, len);
    if (w != (ssize_t)len) {
        post_errors++;
        return;
    }
    p->busy = 1;
    p->sent_ns = t;
    sent_events += n;
}

/* Parse one complete response in rbuf; returns 1 when complete (and consumes it). */
static int pub_response(struct pubc *p, int *status, int *close_after)
{
    char *h = memmem(p->rbuf, p->rlen, "\r\n\r\n", 4);
    if (!h)
        return 0;
    size_t hlen = (size_t)(h - p->rbuf) + 4;
    *h = 0;
    *status = p->rlen > 12 ? atoi(p->rbuf + 9) : 0;
    size_t body = 0;
    int chunked = 0;
    *close_after = 0;
    for (char *l = strstr(p->rbuf, "\r\n"); l; l = strstr(l + 2, "\r\n")) {
        if (!strncasecmp(l + 2, "content-length:", 15))
            body = (size_t)strtoul(l + 17, NULL, 10);
        else if (!strncasecmp(l + 2, "transfer-encoding:", 18) && strcasestr(l, "chunked"))
            chunked = 1;
        else if (!strncasecmp(l + 2, "connection:", 11) && strcasestr(l + 13, "close"))
            *close_after = 1;
    }
    *h = '\r';
    size_t total;
    if (chunked) {
        char *end = memmem(p->rbuf + hlen - 2, p->rlen - (hlen - 2), "\r\n0\r\n\r\n", 7);
        if (!end)
            return 0;
        total = (size_t)(end - p->rbuf) + 7;
    } else {
        total = hlen + body;
        if (p->rlen < total)
            return 0;
    }
    memmove(p->rbuf, p->rbuf + total, p->rlen - total);
    p->rlen -= total;
    return 1;
}

static void pub_event(unsigned i)
{
    struct pubc *p = &pubs[i];
    ssize_t r = read(p->fd, p->rbuf + p->rlen, sizeof p->rbuf - p->rlen);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, p->fd, NULL);
        close(p->fd);
        if (p->busy) {
            post_errors++;
            fprintf(stderr, "bench_fanout: publisher connection closed mid-request\n");
        }
        pub_connect(i);
        return;
    }
    p->rlen += (size_t)r;
    int status, close_after;
    while (p->busy && pub_response(p, &status, &close_after)) {
        p->busy = 0;
        hist_add(&ack, (int64_t)(now_ns(CLOCK_REALTIME) - p->sent_ns));
        if (status >= 200 && status < 300) {
            acked_events += o.batch;
        } else {
            post_errors++;
            if (post_errors < 5)
                fprintf(stderr, "bench_fanout: POST answered %d\n", status);
        }
        if (close_after) {
            epoll_ctl(ep, EPOLL_CTL_DEL, p->fd, NULL);
            close(p->fd);
            pub_connect(i);
            return;
        }
    }
}

/* ---- main ----------------------------------------------------------------------------- */

/* Events the subscribers should hold by now (@all: every one; else the live ones): the
 * acknowledged ones, plus the backlog for those that started from the beginning. */
static uint64_t expected_now(int all)
{
    uint64_t e = 0;
    for (unsigned i = 0; i < o.subs; i++)
        if (all || subs[i].state != S_DEAD)
            e += o.backlog + acked_events - subs[i].start_k;
    return e;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_fanout --target rtlog|nchan --port N --sub-path P --pub-path P\n"
            "         [--proto sse|ws] [--host 127.0.0.1] [--token JWT] [--create-path P]\n"
            "         [--subs 1000] [--rate 1000] [--secs 10] [--batch 1] [--event-bytes 200]\n"
            "         [--pub-conns 16] [--server-pid PID] [--drain-secs 10]\n"
            "         [--pub-deadline SECS] [--storm-at SECS] [--storm-pending N]\n"
            "         [--slow N] [--slow-bps 1024] [--stalled M] [--slow-rcvbuf 4096]\n"
            "         [--backlog N]\n"
            "One stream, --subs SSE (or WS) subscribers, --rate events/s for --secs seconds,\n"
            "posted --batch events per POST every batch/rate seconds (batch > 1: NDJSON, rtlog\n"
            "only). --pub-deadline: stop posting that many seconds after the first POST even if\n"
            "the server fell behind (saturation runs). --storm-at: every subscriber drops and\n"
            "resumes at once that many seconds into publishing (--storm-pending: at most N\n"
            "handshakes in flight, the rest as those finish). For WS the token goes in the\n"
            "--sub-path (?token=). --slow/--stalled: the last N subscribers read --slow-bps\n"
            "bytes/s, the M after them nothing after the headers (both with SO_RCVBUF\n"
            "--slow-rcvbuf); closed ones resume from their last id; after publishing all read\n"
            "freely; every stalled one must have been closed by the server (so --secs must\n"
            "exceed its socket's fill time plus --stall-timeout). --backlog N (rtlog): N events\n"
            "are stored first; fast subscribers start after them (Last-Event-ID), slow and\n"
            "stalled ones at seq 1. Prints one `fanout key=value ...` line; exit 0 only if every\n"
            "acknowledged event reached every subscriber exactly once (rtlog: in seq order).\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        {"target", 1, 0, 'T'},      {"host", 1, 0, 'h'},        {"port", 1, 0, 'p'},
        {"sub-path", 1, 0, 'S'},    {"pub-path", 1, 0, 'P'},    {"token", 1, 0, 't'},
        {"create-path", 1, 0, 'C'}, {"subs", 1, 0, 'n'},        {"rate", 1, 0, 'r'},
        {"secs", 1, 0, 's'},        {"batch", 1, 0, 'b'},       {"event-bytes", 1, 0, 'e'},
        {"pub-conns", 1, 0, 'c'},   {"server-pid", 1, 0, 'x'},  {"drain-secs", 1, 0, 'd'},
        {"proto", 1, 0, 'w'},       {"pub-deadline", 1, 0, 'D'}, {"storm-at", 1, 0, 'R'},
        {"storm-pending", 1, 0, 'N'}, {"slow", 1, 0, 'L'},        {"slow-bps", 1, 0, 'B'},
        {"stalled", 1, 0, 'Z'},     {"slow-rcvbuf", 1, 0, 'F'}, {"backlog", 1, 0, 'K'},
        {"help", 0, 0, '?'},        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'T':
            if (!strcmp(optarg, "rtlog"))
                o.target = TARGET_RTLOG;
            else if (!strcmp(optarg, "nchan"))
                o.target = TARGET_NCHAN;
            else
                usage();
            break;
        case 'h': o.host = optarg; break;
        case 'p': o.port = atoi(optarg); break;
        case 'S': o.sub_path = optarg; break;
        case 'P': o.pub_path = optarg; break;
        case 't': o.token = optarg; break;
        case 'C': o.create_path = optarg; break;
        case 'n': o.subs = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'r': o.rate = (unsigned)strtoul(optarg, NULL, 10); break;
        case 's': o.secs = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'b': o.batch = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'e': o.event_bytes = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'c': o.pub_conns = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'x': o.server_pid = atoi(optarg); break;
        case 'd': o.drain_secs = atof(optarg); break;
        case 'D': o.pub_deadline = atof(optarg); break;
        case 'R': o.storm_at = atof(optarg); break;
        case 'N': o.storm_pending = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'L': o.slow = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'B': o.slow_bps = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'Z': o.stalled = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'F': o.slow_rcvbuf = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'K': o.backlog = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'w':
            if (!strcmp(optarg, "sse"))
                o.proto = PROTO_SSE;
            else if (!strcmp(optarg, "ws"))
                o.proto = PROTO_WS;
            else
                usage();
            break;
        default: usage();
        }
    }
    if (!o.sub_path || !o.pub_path || !o.subs || !o.rate || !o.secs || !o.batch ||
        !o.pub_conns || o.event_bytes < 96 || o.event_bytes > 60000 ||
        (o.batch > 1 && o.target == TARGET_NCHAN) || o.slow + o.stalled >= o.subs ||
        ((o.slow || o.stalled) && o.storm_at > 0) ||
        (o.backlog && (o.target != TARGET_RTLOG || !o.create_path || o.storm_at > 0)) || (o.slow && o.slow_bps < 1000 / PACE_MS))
        usage();
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    total_events = (uint64_t)o.rate * o.secs;
    total_events -= total_events % o.batch;
    uint64_t total_posts = total_events / o.batch;
    total_events += o.backlog; /* indexes [0, backlog) are the backlog's */
    hist_init(&lat);
    hist_init(&e2e);
    hist_init(&ack);
    hist_init(&storm_open);
    hist_init(&storm_live);

    if (o.create_path) { /* rtlog: an empty batch creates the stream (CONTRACT "Ingest") */
        int st = http_once("POST", o.create_path, "application/json", "[]");
        if (st < 200 || st >= 300) {
            fprintf(stderr, "bench_fanout: creating the stream answered %d\n", st);
            return 2;
        }
    }
    if (o.backlog)
        post_backlog();

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    subs = calloc(o.subs, sizeof *subs);
    pubs = calloc(o.pub_conns, sizeof *pubs);
    if (!subs || !pubs)
        die("calloc");
    size_t seen_bytes = (size_t)(total_events + 7) / 8;
    for (unsigned i = 0; i < o.subs; i++) {
        subs[i].buf = malloc(SUB_BUF);
        subs[i].seen = calloc(seen_bytes, 1);
        if (!subs[i].buf || !subs[i].seen)
            die("malloc");
        subs[i].role = i >= o.subs - o.stalled            ? R_STALLED
                       : i >= o.subs - o.stalled - o.slow ? R_SLOW
                                                          : R_FAST;
        if (subs[i].role == R_FAST && o.backlog) { /* from the head: live only */
            subs[i].start_k = subs[i].next_k = o.backlog;
            subs[i].last_id = o.backlog; /* seq = index + 1 */
            snprintf(subs[i].last_id_str, sizeof subs[i].last_id_str, "%u", o.backlog);
        }
    }

    /* 1. Open every subscriber (at most MAX_PENDING handshakes at once) and wait for the
     *    200 of each: from then on the server has registered it. */
    struct epoll_event evs[1024];
    unsigned opened = 0, pending = 0, open_ok = 0;
    uint64_t t_conn = now_ns(CLOCK_MONOTONIC);
    while (open_ok + sub_failures < o.subs) {
        while (opened < o.subs && pending < MAX_PENDING) {
            sub_start(opened++);
            pending++;
        }
        int n = epoll_wait(ep, evs, 1024, 100);
        for (int j = 0; j < n; j++) {
            unsigned i = (unsigned)(evs[j].data.u64 & ~TAG_MASK);
            int before = subs[i].state;
            sub_event(i, evs[j].events);
            if (before != S_OPEN && (subs[i].state == S_OPEN || subs[i].state == S_DEAD)) {
                pending--;
                if (subs[i].state == S_OPEN)
                    open_ok++;
            }
        }
        if ((double)(now_ns(CLOCK_MONOTONIC) - t_conn) / 1e9 > o.connect_secs) {
            fprintf(stderr, "bench_fanout: only %u of %u subscribers connected\n", open_ok, o.subs);
            return 2;
        }
    }
    double connect_s = (double)(now_ns(CLOCK_MONOTONIC) - t_conn) / 1e9;
    if (sub_failures) {
        fprintf(stderr, "bench_fanout: %" PRIu64 " subscribers failed to connect\n", sub_failures);
        return 2;
    }
    for (unsigned i = 0; i < o.pub_conns; i++)
        pub_connect(i);

    /* 2. Settle briefly (let any initial bytes drain), then start the paced publisher. */
    uint64_t settle_end = now_ns(CLOCK_MONOTONIC) + 300000000ull;
    while (now_ns(CLOCK_MONOTONIC) < settle_end) {
        int n = epoll_wait(ep, evs, 1024, 50);
        for (int j = 0; j < n; j++)
            if (evs[j].data.u64 & TAG_SUB)
                sub_event((unsigned)(evs[j].data.u64 & ~TAG_MASK), evs[j].events);
    }

    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0)
        die("timerfd_create");
    period_ns = (uint64_t)o.batch * 1000000000ull / o.rate;
    struct itimerspec its = {
        .it_interval = {(time_t)(period_ns / 1000000000ull), (long)(period_ns % 1000000000ull)},
        .it_value = {0, 1000},
    };
    ep_add(tfd, EPOLLIN, TAG_TIMER);
    int pfd = -1; /* the pace tick of slow and stalled subscribers */
    if (o.slow || o.stalled) {
        pfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (pfd < 0)
            die("timerfd_create");
        struct itimerspec pit = {.it_interval = {0, PACE_MS * 1000000L},
                                 .it_value = {0, PACE_MS * 1000000L}};
        timerfd_settime(pfd, 0, &pit, NULL);
        ep_add(pfd, EPOLLIN, TAG_TIMER | 1);
    }
    double paced_s = 0;
    uint64_t t_pub_done = 0;

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t cpu0 = o.server_pid ? proc_cpu_ticks(o.server_pid) : 0;
    uint64_t mbusy0, mtotal0, mbusy1, mtotal1;
    machine_ticks(&mbusy0, &mtotal0);
    uint64_t t0 = now_ns(CLOCK_MONOTONIC), t_last_ack = 0, t_last_rx = t0;
    sched0_ns = now_ns(CLOCK_REALTIME) + 1000; /* the timer's first expiry */
    uint64_t pub_start_ms = sched0_ns / 1000000u;
    timerfd_settime(tfd, 0, &its, NULL);

    uint64_t due = 0, posts = 0, expected_delivered = 0;
    unsigned pub_next = 0; /* the connection to try first */
    int timer_on = 1, stormed = 0;
    for (;;) {
        int n = epoll_wait(ep, evs, 1024, 20);
        uint64_t delivered_before = delivered_all;
        for (int j = 0; j < n; j++) {
            uint64_t tag = evs[j].data.u64;
            unsigned i = (unsigned)(tag & ~TAG_MASK);
            if (tag & TAG_SUB) {
                sub_event(i, evs[j].events);
            } else if (tag & TAG_PUB) {
                pub_event(i);
            } else if ((tag & TAG_TIMER) && i == 1) {
                uint64_t exp = 0;
                if (read(pfd, &exp, sizeof exp) == (ssize_t)sizeof exp)
                    pace_tick();
            } else if (tag & TAG_TIMER) {
                uint64_t exp = 0;
                if (read(tfd, &exp, sizeof exp) == (ssize_t)sizeof exp)
                    due += exp;
            }
        }
        if (delivered_all != delivered_before)
            t_last_rx = now_ns(CLOCK_MONOTONIC);
        if (o.storm_at > 0 && !stormed &&
            (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9 >= o.storm_at) {
            stormed = 1;
            storm();
        }
        if (stormed && o.storm_pending && storm_next < o.subs)
            storm_pace();
        if (o.pub_deadline > 0 && posts < total_posts &&
            (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9 >= o.pub_deadline)
            total_posts = posts; /* saturated: stop offering, deliver what was accepted */
        /* Post every due batch on a free connection; what waits is the backlog. Free
         * connections are taken in turn: at a low rate the first one alone would do, and
         * the others would sit idle until the server's keep-alive timeout closed one just
         * as a POST was written to it. */
        for (unsigned j = 0; j < o.pub_conns && due && posts < total_posts; j++) {
            unsigned i = (pub_next + j) % o.pub_conns;
            if (!pubs[i].busy) {
                pub_send(i, o.backlog + posts * o.batch, o.batch);
                pub_next = i + 1;
                posts++;
                due--;
            }
        }
        uint64_t left = total_posts - posts, backlog = due < left ? due : left;
        if (backlog > max_backlog)
            max_backlog = backlog;
        if (posts == total_posts && timer_on) {
            timerfd_settime(tfd, 0, &(struct itimerspec){{0, 0}, {0, 0}}, NULL);
            timer_on = 0;
        }
        int inflight = 0;
        for (unsigned i = 0; i < o.pub_conns; i++)
            inflight |= pubs[i].busy;
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        if (posts == total_posts && !inflight) {
            if (!t_last_ack)
                t_last_ack = now;
            if (!t_pub_done) {
                t_pub_done = now;
                paced_s = (double)(now - t0) / 1e9;
                if (pfd >= 0)
                    pace_end();
            }
            expected_delivered = expected_now(0);
            if (delivered_all >= expected_delivered && (!stormed || storm_live_n >= o.subs))
                break;
            if ((double)(now - t_last_ack) / 1e9 > o.drain_secs)
                break;
        }
        if ((double)(now - t0) / 1e9 > (double)o.secs * 10 + 60) { /* bounded even when slow */
            fprintf(stderr, "bench_fanout: publishing did not finish in time\n");
            break;
        }
    }
    uint64_t t_end = t_last_rx;
    uint64_t cpu1 = o.server_pid ? proc_cpu_ticks(o.server_pid) : 0;
    getrusage(RUSAGE_SELF, &ru1);
    machine_ticks(&mbusy1, &mtotal1);
    double wall = (double)(t_end - t0) / 1e9;
    /* publishing span: from the first to the last POST, plus one period (the last batch's) */
    double pub_s = (double)(last_post_ns - first_post_ns + period_ns) / 1e9;

    uint64_t uniq = 0, dups = 0, order = 0;
    uint64_t slow_closes = 0, slow_closed_subs = 0, stalled_closed_subs = 0, slow_bytes = 0;
    uint64_t paced_missing = 0, fast_uniq = 0;
    for (unsigned i = 0; i < o.subs; i++) {
        if (subs[i].role == R_SLOW) {
            slow_closes += subs[i].closes;
            slow_closed_subs += subs[i].closes > 0;
            slow_bytes += subs[i].paced_bytes;
        }
        if (subs[i].role == R_FAST)
            fast_uniq += subs[i].unique;
        if (subs[i].role == R_STALLED)
            stalled_closed_subs += subs[i].closes > 0;
        if (subs[i].role != R_FAST && subs[i].unique < o.backlog + acked_events)
            paced_missing += o.backlog + acked_events - subs[i].unique;
        uniq += subs[i].unique;
        dups += subs[i].dups;
        order += subs[i].order_errs;
        if (subs[i].state != S_DEAD)
            close_rst(subs[i].fd);
    }
    for (unsigned i = 0; i < o.pub_conns; i++)
        close(pubs[i].fd);
    expected_delivered = expected_now(1);
    long tck = sysconf(_SC_CLK_TCK);
    double srv_cpu_s = (double)(cpu1 - cpu0) / (double)tck;
    double cli_cpu_s = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                       (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                       (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                       (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    /* busy share of all CPUs, in percent of one core (200 = two cores saturated) */
    double machine_pct = mtotal1 > mtotal0 ? 100.0 * (double)ncpu * (double)(mbusy1 - mbusy0) /
                                                 (double)(mtotal1 - mtotal0)
                                           : 0.0;
    uint64_t missing = expected_delivered > uniq ? expected_delivered - uniq : 0;

    /* One line of key=value pairs: run_server_bench.sh picks fields by name. */
    printf("fanout target=%s proto=%s subs=%u rate=%u secs=%u batch=%u event_bytes=%u"
           " pub_conns=%u offered=%" PRIu64,
           o.target == TARGET_RTLOG ? "rtlog" : "nchan", o.proto == PROTO_WS ? "ws" : "sse",
           o.subs, o.rate, o.secs, o.batch, o.event_bytes, o.pub_conns,
           total_events - o.backlog);
    if (o.backlog)
        printf(" backlog=%u", o.backlog);
    printf(" connect_s=%.2f published=%" PRIu64 " acked=%" PRIu64 " post_errors=%" PRIu64
           " max_backlog=%" PRIu64,
           connect_s, sent_events, acked_events, post_errors, max_backlog);
    printf(" expected=%" PRIu64 " delivered=%" PRIu64 " missing=%" PRIu64 " dups=%" PRIu64
           " order_errors=%" PRIu64,
           expected_delivered, uniq, missing, dups, order);
    printf(" pub_s=%.3f pub_rate=%.0f wall_s=%.3f delivered_per_s=%.0f", pub_s,
           pub_s > 0 ? (double)sent_events / pub_s : 0.0, wall,
           wall > 0 ? (double)uniq / wall : 0.0);
    printf(" lat_p50_us=%" PRIu64 " lat_p90_us=%" PRIu64 " lat_p99_us=%" PRIu64
           " lat_p999_us=%" PRIu64 " lat_max_us=%" PRIu64,
           hist_q(&lat, 0.50), hist_q(&lat, 0.90), hist_q(&lat, 0.99), hist_q(&lat, 0.999),
           lat.max);
    printf(" e2e_p50_us=%" PRIu64 " e2e_p99_us=%" PRIu64 " e2e_max_us=%" PRIu64
           " ack_p50_us=%" PRIu64 " ack_p99_us=%" PRIu64,
           hist_q(&e2e, 0.50), hist_q(&e2e, 0.99), e2e.max, hist_q(&ack, 0.50),
           hist_q(&ack, 0.99));
    if (stormed)
        printf(" storm_pending=%u storm_subs=%u storm_live=%" PRIu64 " storm_open_p50_us=%" PRIu64
               " storm_open_p99_us=%" PRIu64 " storm_live_p50_us=%" PRIu64
               " storm_live_p99_us=%" PRIu64 " storm_live_max_us=%" PRIu64,
               o.storm_pending, o.subs, storm_live_n, hist_q(&storm_open, 0.5), hist_q(&storm_open, 0.99),
               hist_q(&storm_live, 0.5), hist_q(&storm_live, 0.99), storm_live.max);
    if (o.slow || o.stalled)
        printf(" fast=%u slow=%u stalled=%u slow_bps=%u rcvbuf=%d slow_rx_Bps=%.0f"
               " slow_closed_subs=%" PRIu64 " slow_closes=%" PRIu64 " stalled_closed_subs=%" PRIu64
               " paced_s=%.2f catchup_s=%.2f paced_missing=%" PRIu64
               " frame_bytes=%.0f",
               o.subs - o.slow - o.stalled, o.slow, o.stalled, o.slow_bps, rcvbuf_eff,
               o.slow && paced_s > 0 ? (double)slow_bytes / o.slow / paced_s : 0.0,
               slow_closed_subs, slow_closes, stalled_closed_subs, paced_s,
               t_pub_done && t_end > t_pub_done ? (double)(t_end - t_pub_done) / 1e9 : 0.0,
               paced_missing,
               fast_uniq ? (double)fast_bytes / (double)fast_uniq : 0.0);
    printf(" server_cpu_s=%.2f server_cpu_pct=%.1f server_cpu_us_per_delivery=%.3f"
           " client_cpu_pct=%.1f machine_busy_pct=%.0f ncpu=%ld pub_start_ms=%" PRIu64 "\n",
           srv_cpu_s, wall > 0 ? 100.0 * srv_cpu_s / wall : 0.0,
           uniq ? srv_cpu_s * 1e6 / (double)uniq : 0.0, wall > 0 ? 100.0 * cli_cpu_s / wall : 0.0,
           machine_pct, ncpu, pub_start_ms);
    int ok = missing == 0 && dups == 0 && order == 0 && post_errors == 0 && sub_failures == 0 &&
             acked_events == sent_events && (!stormed || storm_live_n == o.subs) &&
             stalled_closed_subs == o.stalled;
    return ok ? 0 : 1;
}
