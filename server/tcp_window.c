/* tcp_window.c - see tcp_window.h. A file of its own because the peer's advertised window
 * (tcpi_snd_wnd) is only in <linux/tcp.h>'s struct tcp_info, which cannot be included in
 * the same file as <netinet/tcp.h> (server.c's). */
#include "tcp_window.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

int rtlog_tcp_uto_adjust(int fd, unsigned base_ms, unsigned raised_ms, int *raised)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return -1;
    if (len < offsetof(struct tcp_info, tcpi_snd_wnd) + sizeof ti.tcpi_snd_wnd)
        return 0; /* the kernel does not say: keep what is set */
    int want = ti.tcpi_snd_wnd == 0; /* alive, acknowledging probes, not reading */
    if (want == *raised)
        return 0;
    unsigned v = want ? raised_ms : base_ms;
    if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, sizeof v) != 0)
        return -1;
    *raised = want;
    return 0;
}
