/* bench_idle.c - memory per idle subscriber: open many SSE or WebSocket streams, hold them.
 *
 * The cost that decides how many dashboards one box serves is what an idle, open stream
 * keeps resident in the server. This client opens --conns streams on one epoll loop
 * (non-blocking connects, at most MAX_PENDING handshakes at once so the listen backlog never
 * overflows and no SYN waits a 1 s retransmit), waits until every one is established (SSE:
 * a 200 header; WS: the 101 of a minimal RFC 6455 handshake), keeps reading whatever the
 * server sends while it holds them, and reads the server's VmRSS (and its anon/file/shmem
 * parts) from /proc/<pid>/status before opening and after holding. The figure is
 * (after - before) / conns. --auth-msg (WS) authenticates each socket the way the browser
 * client does (server/ui/rtlog-client.js): no ?token=, a first {"type":"auth","token":...}
 * text frame right after the 101. Sockets close with RST so 10,000 client ports do not linger in
 * TIME_WAIT between runs. Bounded: it gives up after --connect-secs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { S_CONNECTING, S_HDRWAIT, S_OPEN, S_DEAD };
#define MAX_PENDING 256

struct conn {
    int fd;
    int state;
    unsigned hlen;
    char hbuf[1024]; /* response header (only its start matters) */
};

struct mem {
    long rss, anon, file, shmem; /* KiB */
};

static const char *host = "127.0.0.1", *path, *token, *mode = "sse";
static int port = 8080, server_pid, ep;
static unsigned nconns = 10000;
static double hold_secs = 5, connect_secs = 120;
static struct conn *conns;
static char req[8192], auth_frame[8192];
static size_t req_len, auth_len;
static unsigned open_ok, failed;
static uint64_t bytes_in;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int mem_read(int pid, struct mem *m)
{
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    memset(m, 0, sizeof *m);
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "VmRSS: %ld", &m->rss);
        sscanf(line, "RssAnon: %ld", &m->anon);
        sscanf(line, "RssFile: %ld", &m->file);
        sscanf(line, "RssShmem: %ld", &m->shmem);
    }
    fclose(f);
    return 0;
}

static void close_rst(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void conn_fail(struct conn *c, const char *why)
{
    if (c->state == S_DEAD)
        return;
    if (failed < 5)
        fprintf(stderr, "bench_idle: connection %ld: %s\n", (long)(c - conns), why);
    failed++;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close_rst(c->fd);
    c->state = S_DEAD;
}

static void conn_start(unsigned i)
{
    struct conn *c = &conns[i];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fprintf(stderr, "bench_idle: socket: %s (raise ulimit -n)\n", strerror(errno));
        exit(2);
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    c->state = S_CONNECTING;
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        c->state = S_HDRWAIT; /* so conn_fail closes it */
        conn_fail(c, strerror(errno));
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void conn_event(unsigned i, uint32_t events)
{
    struct conn *c = &conns[i];
    if (c->state == S_DEAD)
        return;
    if (c->state == S_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (events & EPOLLERR)) {
            conn_fail(c, err ? strerror(err) : "connect failed");
            return;
        }
        if (write(c->fd, req, req_len) != (ssize_t)req_len) {
            conn_fail(c, "request write");
            return;
        }
        c->state = S_HDRWAIT;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        return;
    }
    char buf[16384];
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_fail(c, n == 0 ? "server closed the connection" : strerror(errno));
        return;
    }
    bytes_in += (uint64_t)n;
    if (c->state == S_HDRWAIT) {
        size_t room = sizeof c->hbuf - 1 - c->hlen;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(c->hbuf + c->hlen, buf, take);
        c->hlen += (unsigned)take;
        c->hbuf[c->hlen] = 0;
        if (!strstr(c->hbuf, "\r\n\r\n")) {
            if (c->hlen == sizeof c->hbuf - 1)
                conn_fail(c, "response header too large");
            return;
        }
        int want = strcmp(mode, "ws") == 0 ? 101 : 200;
        if (c->hlen < 12 || atoi(c->hbuf + 9) != want) {
            char *cr = strchr(c->hbuf, '\r');
            if (cr)
                *cr = 0;
            conn_fail(c, c->hbuf);
            return;
        }
        if (auth_len && write(c->fd, auth_frame, auth_len) != (ssize_t)auth_len) {
            conn_fail(c, "auth message write");
            return;
        }
        c->state = S_OPEN;
        open_ok++;
    }
}

/* Service sockets for ms milliseconds (or until every connection is open when open_only). */
static void pump(double secs, int open_only, unsigned *opened, unsigned *pending)
{
    struct epoll_event evs[1024];
    uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
    while (now_ns() < end) {
        while (opened && *opened < nconns && *pending < MAX_PENDING) {
            conn_start((*opened)++);
            (*pending)++;
        }
        if (open_only && open_ok + failed >= nconns)
            return;
        int n = epoll_wait(ep, evs, 1024, 20);
        for (int j = 0; j < n; j++) {
            unsigned i = evs[j].data.u32;
            int before = conns[i].state;
            conn_event(i, evs[j].events);
            if (pending && before != S_OPEN && before != S_DEAD &&
                (conns[i].state == S_OPEN || conns[i].state == S_DEAD))
                (*pending)--;
        }
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_idle --port N --path P --server-pid PID [--mode sse|ws]\n"
            "         [--host 127.0.0.1] [--token JWT (Authorization: Bearer; for WS put\n"
            "         ?token= in --path)] [--auth-msg JWT (WS: a first auth message instead)]\n"
            "         [--conns 10000] [--hold-secs 5]\n"
            "Subscribe to an empty stream (or give a cursor at its head): otherwise every\n"
            "connection first replays the history and is not idle.\n"
            "Prints one `idle key=value ...` line; exit 0 only if every connection opened\n"
            "and stayed open.\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'h'},      {"port", 1, 0, 'p'},       {"path", 1, 0, 'P'},
        {"token", 1, 0, 't'},     {"mode", 1, 0, 'm'},       {"conns", 1, 0, 'n'},
        {"hold-secs", 1, 0, 'H'}, {"server-pid", 1, 0, 'x'}, {"connect-secs", 1, 0, 'c'},
        {"auth-msg", 1, 0, 'a'},  {0, 0, 0, 0}};
    const char *auth_tok = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'P': path = optarg; break;
        case 't': token = optarg; break;
        case 'm': mode = optarg; break;
        case 'n': nconns = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'H': hold_secs = atof(optarg); break;
        case 'x': server_pid = atoi(optarg); break;
        case 'c': connect_secs = atof(optarg); break;
        case 'a': auth_tok = optarg; break;
        default: usage();
        }
    }
    if (!path || !server_pid || !nconns || (strcmp(mode, "sse") && strcmp(mode, "ws")))
        usage();
    int n;
    if (!strcmp(mode, "ws"))
        n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                     path, host, token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "");
    else
        n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%s%s%s\r\n",
                     path, host, token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "");
    req_len = (size_t)n;
    if (auth_tok) {
        /* one masked text frame (RFC 6455 5.2; a client must mask), 16-bit length form */
        char msg[6000];
        int ml = snprintf(msg, sizeof msg, "{\"type\":\"auth\",\"token\":\"%s\"}", auth_tok);
        if (strcmp(mode, "ws") || ml < 126 || ml >= (int)sizeof msg)
            usage();
        static const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
        unsigned char *f = (unsigned char *)auth_frame;
        f[0] = 0x81;
        f[1] = 0x80 | 126;
        f[2] = (unsigned char)(ml >> 8);
        f[3] = (unsigned char)ml;
        memcpy(f + 4, key, 4);
        for (int i = 0; i < ml; i++)
            f[8 + i] = (unsigned char)msg[i] ^ key[i & 3];
        auth_len = 8 + (size_t)ml;
    }
    conns = calloc(nconns, sizeof *conns);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || ep < 0)
        return 2;

    struct mem before, after, closed;
    if (mem_read(server_pid, &before)) {
        fprintf(stderr, "bench_idle: cannot read /proc/%d/status\n", server_pid);
        return 2;
    }
    unsigned opened = 0, pending = 0;
    uint64_t t0 = now_ns();
    pump(connect_secs, 1, &opened, &pending);
    double open_s = (double)(now_ns() - t0) / 1e9;
    if (open_ok < nconns) {
        fprintf(stderr, "bench_idle: %u of %u opened (%u failed)\n", open_ok, nconns, failed);
        return 1;
    }
    pump(hold_secs, 0, NULL, NULL);
    mem_read(server_pid, &after);
    unsigned still_open = open_ok - failed;
    for (unsigned i = 0; i < nconns; i++)
        if (conns[i].state != S_DEAD)
            close_rst(conns[i].fd);
    usleep(1000000); /* let the server notice the closes */
    mem_read(server_pid, &closed);
    printf("idle mode=%s conns=%u open_s=%.2f held_s=%.1f still_open=%u rss_before_kib=%ld "
           "rss_after_kib=%ld rss_closed_kib=%ld per_conn_bytes=%.0f per_conn_anon_bytes=%.0f "
           "per_conn_file_bytes=%.0f per_conn_shmem_bytes=%.0f bytes_from_server=%" PRIu64 "\n",
           mode, nconns, open_s, hold_secs, still_open, before.rss, after.rss, closed.rss,
           (double)(after.rss - before.rss) * 1024.0 / nconns,
           (double)(after.anon - before.anon) * 1024.0 / nconns,
           (double)(after.file - before.file) * 1024.0 / nconns,
           (double)(after.shmem - before.shmem) * 1024.0 / nconns, bytes_in);
    return still_open == nconns ? 0 : 1;
}
