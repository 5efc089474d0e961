/* tcp_window.h - TCP_USER_TIMEOUT (dead peers) without ending live readers that paused. */
#ifndef RTLOG_TCP_WINDOW_H
#define RTLOG_TCP_WINDOW_H

/**
 * rtlog_tcp_uto_adjust() - keep a stream socket's TCP_USER_TIMEOUT for dead peers only.
 * Linux applies TCP_USER_TIMEOUT to zero-window probing too (tcp_probe_timer aborts once
 * probing has gone on for the user timeout), so a live client that only stopped reading,
 * whose kernel acknowledges every probe with a zero window, would be aborted after
 * --tcp-user-timeout instead of being closed by --stall-timeout. This sets @fd's
 * TCP_USER_TIMEOUT to @raised_ms (ms) while the peer advertises a zero receive window
 * (TCP_INFO tcpi_snd_wnd) and back to @base_ms (ms) once it does not.
 * @raised: in/out, owned by the caller per socket: 1 while @raised_ms is set.
 * Returns 0; -1 when getsockopt/setsockopt failed (errno set, *raised unchanged). On a
 * kernel whose TCP_INFO has no tcpi_snd_wnd (before 5.4) nothing is changed.
 * Context: the event loop's housekeeping tick; one getsockopt, a setsockopt on a change.
 * Source: handed.md C08 (stall timeout) and C09 d (dead peers); README "Dead peers".
 */
int rtlog_tcp_uto_adjust(int fd, unsigned base_ms, unsigned raised_ms, int *raised);

#endif
