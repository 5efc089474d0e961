/* bench_limits.c - what this machine can do at all, without any server: the "physical
 * limit" column of issue 5's table, measured on the same machine and in the same minutes as
 * the server figures it is compared with (tools/bench/RESULTS.md).
 *
 *   bench_limits sends [--conns 1000] [--bytes 250] [--rate R] [--secs 5]
 *       One thread writes one --bytes message to every one of --conns TCP loopback
 *       connections in turn (a "round": one event fanned out, one send() per connection, as
 *       a fan-out server does when nothing is queued), as fast as it can or --rate rounds/s;
 *       a second thread is the subscribers' side: one epoll loop that reads everything, like
 *       tools/bench/bench_fanout. Prints sends/s, the sending thread's CPU per send (us,
 *       RUSAGE_THREAD: on loopback it includes the receiving half of TCP, which the kernel
 *       runs in the sender's context) and, paced, how long one round takes (p50/p99 ms): the
 *       least time after which the last of --conns subscribers can have an event.
 *   bench_limits fsync [--dir /tmp] [--secs 5]
 *       pwrite 4 KiB + fdatasync in a loop on a file in --dir (the durable-commit floor; an
 *       LMDB commit is two such syncs): syncs/s and us per sync.
 *
 * Loopback only, bounded by --secs, every socket and file it opens is its own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static unsigned nconns = 1000, msg_bytes = 250;
static double secs = 5, rate = 0;
static const char *dir = "/tmp";

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double thread_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* ---- sends ---------------------------------------------------------------------------- */

static int *snd_fd, *rcv_fd;
static atomic_int stop_rx;
static uint64_t rx_bytes;
static double rx_cpu;

static void *rx_main(void *arg)
{
    (void)arg;
    int ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    for (unsigned i = 0; i < nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, rcv_fd[i], &ev))
            die("epoll_ctl");
    }
    static char buf[65536];
    struct epoll_event evs[256];
    while (!atomic_load(&stop_rx)) {
        int n = epoll_wait(ep, evs, 256, 50);
        for (int k = 0; k < n; k++) {
            ssize_t r;
            while ((r = recv(rcv_fd[evs[k].data.u32], buf, sizeof buf, MSG_DONTWAIT)) > 0)
                rx_bytes += (uint64_t)r;
        }
    }
    rx_cpu = thread_cpu_s();
    close(ep);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int run_sends(void)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096) ||
        getsockname(ls, (struct sockaddr *)&a, &al))
        die("listen");
    snd_fd = calloc(nconns, sizeof *snd_fd);
    rcv_fd = calloc(nconns, sizeof *rcv_fd);
    if (!snd_fd || !rcv_fd)
        die("calloc");
    for (unsigned i = 0; i < nconns; i++) {
        rcv_fd[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (rcv_fd[i] < 0 || connect(rcv_fd[i], (struct sockaddr *)&a, sizeof a))
            die("connect");
        snd_fd[i] = accept(ls, NULL, NULL);
        if (snd_fd[i] < 0)
            die("accept");
        int one = 1; /* as lws does for its sockets */
        setsockopt(snd_fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(snd_fd[i], F_SETFL, fcntl(snd_fd[i], F_GETFL) | O_NONBLOCK);
    }
    pthread_t rx;
    if (pthread_create(&rx, NULL, rx_main, NULL))
        die("pthread_create");
    char *msg = malloc(msg_bytes);
    if (!msg)
        die("malloc");
    memset(msg, 'x', msg_bytes);
    size_t cap = rate > 0 ? (size_t)(rate * secs) + 16 : 1u << 20;
    uint64_t *round_ns = malloc(cap * sizeof *round_ns);
    if (!round_ns)
        die("malloc");
    size_t rounds = 0;
    uint64_t sends = 0, eagain = 0;
    usleep(100000);
    double cpu0 = thread_cpu_s();
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9), next = t0;
    for (;;) {
        uint64_t t = now_ns();
        if (t >= end)
            break;
        if (rate > 0) {
            if (t < next) {
                uint64_t w = (next - t) / 1000;
                usleep(w > 0 ? (useconds_t)w : 1);
                continue;
            }
            next += (uint64_t)(1e9 / rate);
        }
        for (unsigned i = 0; i < nconns; i++) {
            ssize_t r = send(snd_fd[i], msg, msg_bytes, MSG_NOSIGNAL);
            if (r == (ssize_t)msg_bytes)
                sends++;
            else
                eagain++; /* the reader fell behind: the kernel buffer is full */
        }
        if (rounds < cap)
            round_ns[rounds++] = now_ns() - t;
    }
    double wall = (double)(now_ns() - t0) / 1e9, cpu = thread_cpu_s() - cpu0;
    atomic_store(&stop_rx, 1);
    pthread_join(rx, NULL);
    qsort(round_ns, rounds, sizeof *round_ns, cmp_u64);
    printf("limits sends conns=%u bytes=%u rate=%g secs=%.2f rounds=%zu sends=%" PRIu64
           " not_sent=%" PRIu64 " sends_per_s=%.0f sender_cpu_pct=%.1f sender_cpu_us_per_send=%.3f"
           " receiver_cpu_pct=%.1f round_p50_ms=%.3f round_p99_ms=%.3f\n",
           nconns, msg_bytes, rate, wall, rounds, sends, eagain, (double)sends / wall,
           100.0 * cpu / wall, sends ? cpu * 1e6 / (double)sends : 0, 100.0 * rx_cpu / wall,
           rounds ? (double)round_ns[rounds / 2] / 1e6 : 0,
           rounds ? (double)round_ns[rounds * 99 / 100] / 1e6 : 0);
    for (unsigned i = 0; i < nconns; i++) {
        close(snd_fd[i]);
        close(rcv_fd[i]);
    }
    close(ls);
    free(round_ns);
    free(msg);
    free(snd_fd);
    free(rcv_fd);
    return 0;
}

/* ---- fsync ---------------------------------------------------------------------------- */

static int run_fsync(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/bench_limits.XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0)
        die("mkstemp");
    unlink(path); /* gone when closed, whatever happens */
    static char page[4096];
    memset(page, 'x', sizeof page);
    /* preallocate 64 MiB so every sync is a data sync, not a file-size change */
    const off_t span = 64 << 20;
    int frc = posix_fallocate(fd, 0, span); /* returns the error, errno is not set */
    if (frc) {
        errno = frc;
        die("posix_fallocate");
    }
    fdatasync(fd);
    uint64_t n = 0, t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9);
    off_t off = 0;
    while (now_ns() < end) {
        if (pwrite(fd, page, sizeof page, off) != (ssize_t)sizeof page || fdatasync(fd))
            die("pwrite/fdatasync");
        off = (off + (off_t)sizeof page) % span;
        n++;
    }
    double wall = (double)(now_ns() - t0) / 1e9;
    printf("limits fsync dir=%s secs=%.2f syncs=%" PRIu64 " syncs_per_s=%.0f us_per_sync=%.1f\n",
           dir, wall, n, (double)n / wall, wall * 1e6 / (double)(n ? n : 1));
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "sends") && strcmp(argv[1], "fsync"))) {
        fprintf(stderr, "usage: bench_limits sends [--conns N] [--bytes B] [--rate R] [--secs S]\n"
                        "       bench_limits fsync [--dir DIR] [--secs S]\n");
        return 2;
    }
    static const struct option lo[] = {{"conns", 1, 0, 'c'}, {"bytes", 1, 0, 'b'},
                                       {"rate", 1, 0, 'r'},  {"secs", 1, 0, 's'},
                                       {"dir", 1, 0, 'd'},   {0, 0, 0, 0}};
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'c': nconns = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'b': msg_bytes = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'r': rate = atof(optarg); break;
        case 's': secs = atof(optarg); break;
        case 'd': dir = optarg; break;
        default: return 2;
        }
    }
    if (nconns < 1 || nconns > 9000 || msg_bytes < 1 || msg_bytes > 65536 || secs <= 0 ||
        secs > 600 || rate < 0) {
        fprintf(stderr, "bench_limits: --conns 1..9000, --bytes 1..65536, --secs (0, 600]\n");
        return 2;
    }
    return strcmp(argv[1], "sends") == 0 ? run_sends() : run_fsync();
}
