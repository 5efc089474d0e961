/* cli_util.c - what every `rtlog` subcommand needs besides its own logic: one-line error
 * messages that stay one line whatever the input, strict number parsing, the data
 * directory rule (--data beats $RTLOG_DATA beats ./rtlog-data), opening the store with a
 * clear message, hex/size/time formatting, output files that appear whole or not at all
 * (temp file + rename), and the terminal progress line.
 * The store and schema libraries never print; this file is where tools/ turns their
 * rtlog_errinfo into text. Source: CONTRACT.md "Tools".
 */
#include "cli_util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Copy @in to @f escaping bytes that would break the one-line promise or drive a terminal
 * (control bytes, DEL); UTF-8 text passes through unchanged. */
static void put_escaped(FILE *f, const char *in)
{
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
}

static void vmsg(const char *cmd, const char *fmt, va_list ap)
{
    char text[1024];
    vsnprintf(text, sizeof text, fmt, ap);
    fprintf(stderr, "rtlog %s: ", cmd);
    put_escaped(stderr, text);
    fputc('\n', stderr);
}

void rtlog_cli_err(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(cmd, fmt, ap);
    va_end(ap);
}

int rtlog_cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(cmd, fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'rtlog %s --help'.\n", cmd);
    return 2;
}

int rtlog_cli_opt_other(const char *cmd, int c, char **argv, void (*usage)(void))
{
    if (c == 'h') {
        usage();
        return 0;
    }
    if (c == ':')
        return rtlog_cli_usage(cmd, "option %s needs a value", argv[optind - 1]);
    return rtlog_cli_usage(cmd, "unknown option %s", argv[optind - 1]);
}

int rtlog_cli_one_stream(const char *cmd, int argc, char **argv, const char **stream)
{
    if (argc - optind != 1)
        return rtlog_cli_usage(cmd, "expected one STREAM");
    *stream = argv[optind];
    return rtlog_cli_stream_arg(cmd, *stream, NULL) != 0 ? 1 : -1;
}

const char *rtlog_cli_data_dir(const char *flag)
{
    if (flag)
        return flag;
    const char *env = getenv(RTLOG_CLI_DATA_ENV);
    if (env && *env)
        return env;
    return RTLOG_CLI_DATA_DEFAULT;
}

int rtlog_cli_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int rtlog_cli_stream_arg(const char *cmd, const char *name, rtlog_kind *kind)
{
    rtlog_errinfo ei = {0};
    rtlog_kind k = RTLOG_KIND_NONE;
    rtlog_err rc = rtlog_stream_parse(name, strlen(name), &k, NULL, NULL, &ei);
    if (rc != RTLOG_OK) {
        rtlog_cli_err(cmd, "bad stream name \"%s\": %s", name,
                      ei.text[0] ? ei.text : rtlog_strerror(rc));
        return -1;
    }
    if (kind)
        *kind = k;
    return 0;
}

int rtlog_cli_open_store(const char *cmd, const char *dir, int readonly, rtlog_store **out)
{
    struct stat sb;
    if (readonly && stat(dir, &sb) != 0) {
        /* A reader must not create an empty store where the user mistyped a path. */
        rtlog_cli_err(cmd, "no rtlog data directory at %s (%s); use --data DIR or %s", dir,
                      strerror(errno), RTLOG_CLI_DATA_ENV);
        return -1;
    }
    rtlog_store_opts o = {0};
    o.dir = dir;
    o.readonly = readonly;
    rtlog_errinfo ei = {0};
    rtlog_err rc = rtlog_store_open(&o, out, &ei);
    if (rc != RTLOG_OK) {
        rtlog_cli_err(cmd, "cannot open the store in %s: %s", dir,
                      ei.text[0] ? ei.text : rtlog_strerror(rc));
        return -1;
    }
    return 0;
}

int rtlog_cli_describe(const char *cmd, rtlog_store *st, const char *stream, rtlog_stream_info *out,
                       int quiet_notfound)
{
    rtlog_errinfo ei = {0};
    rtlog_err rc = rtlog_store_describe(st, stream, out, &ei);
    if (rc == RTLOG_OK)
        return 0;
    if (rc == RTLOG_E_NOTFOUND) {
        if (!quiet_notfound)
            rtlog_cli_err(cmd, "stream %s not found", stream);
        return 1;
    }
    rtlog_cli_err(cmd, "cannot read stream %s: %s", stream,
                  ei.text[0] ? ei.text : rtlog_strerror(rc));
    return -1;
}

char *rtlog_cli_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int rtlog_cli_unhex(const char *s, uint8_t *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

char *rtlog_cli_human_bytes(uint64_t bytes, char out[32])
{
    static const char *units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (bytes < 1024) {
        snprintf(out, 32, "%llu B", (unsigned long long)bytes);
        return out;
    }
    double v = (double)bytes / 1024.0;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    snprintf(out, 32, "%.1f %s", v, units[u]);
    return out;
}

char *rtlog_cli_rfc3339_ms(uint64_t ms, char out[40])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm)) {
        snprintf(out, 40, "-");
        return out;
    }
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 40, "%s.%03uZ", date, (unsigned)(ms % 1000));
    return out;
}

/* ---- output files ------------------------------------------------------------------------ */

int rtlog_cli_out_open(const char *cmd, rtlog_cli_out *o, const char *path)
{
    memset(o, 0, sizeof *o);
    if (!path || strcmp(path, "-") == 0) {
        o->f = stdout;
        return 0;
    }
    size_t n = strlen(path);
    o->tmp = malloc(n + 16);
    if (!o->tmp) {
        rtlog_cli_err(cmd, "out of memory");
        return -1;
    }
    /* Same directory as the target so rename() is atomic: readers of @path see the old
     * file or the complete new one, never a half export. */
    snprintf(o->tmp, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        rtlog_cli_err(cmd, "cannot create %s: %s", o->tmp, strerror(errno));
        free(o->tmp);
        o->tmp = NULL;
        return -1;
    }
    /* mkstemp makes 0600; an export is an ordinary file: 0666 minus the umask. */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0) {
        /* Not fatal: the file is still correct, only more private than usual. */
    }
    o->f = fdopen(fd, "w");
    if (!o->f) {
        rtlog_cli_err(cmd, "cannot open %s: %s", o->tmp, strerror(errno));
        close(fd);
        unlink(o->tmp);
        free(o->tmp);
        o->tmp = NULL;
        return -1;
    }
    o->path = path;
    /* Large buffer: exports are written in chunks of up to a few MiB. */
    setvbuf(o->f, NULL, _IOFBF, 1u << 16);
    return 0;
}

int rtlog_cli_out_commit(const char *cmd, rtlog_cli_out *o)
{
    if (!o->tmp) {
        int bad = fflush(o->f) != 0 || ferror(o->f);
        o->f = NULL;
        if (bad) {
            rtlog_cli_err(cmd, "cannot write to standard output: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    int rc = 0;
    if (fflush(o->f) != 0 || ferror(o->f) || fsync(fileno(o->f)) != 0) {
        rtlog_cli_err(cmd, "cannot write %s: %s", o->tmp, strerror(errno));
        rc = -1;
    }
    if (fclose(o->f) != 0 && rc == 0) {
        rtlog_cli_err(cmd, "cannot write %s: %s", o->tmp, strerror(errno));
        rc = -1;
    }
    o->f = NULL;
    if (rc == 0 && rename(o->tmp, o->path) != 0) {
        rtlog_cli_err(cmd, "cannot rename %s to %s: %s", o->tmp, o->path, strerror(errno));
        rc = -1;
    }
    if (rc != 0)
        unlink(o->tmp);
    free(o->tmp);
    o->tmp = NULL;
    return rc;
}

void rtlog_cli_out_abort(rtlog_cli_out *o)
{
    if (!o->f)
        return;
    if (!o->tmp) {
        fflush(o->f);
        o->f = NULL;
        return;
    }
    fclose(o->f);
    o->f = NULL;
    unlink(o->tmp);
    free(o->tmp);
    o->tmp = NULL;
}

/* ---- progress ---------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void rtlog_cli_progress_start(rtlog_cli_progress *p, const char *verb, const char *stream)
{
    memset(p, 0, sizeof *p);
    p->verb = verb;
    p->stream = stream;
    p->tty = isatty(STDERR_FILENO);
    p->t0 = now_s();
}

static void progress_draw(rtlog_cli_progress *p, uint64_t done, uint64_t total)
{
    unsigned pct = total ? (unsigned)(done * 100 / total) : 100;
    fprintf(stderr, "\r%s %s: %llu/%llu events (%u%%)", p->verb, p->stream,
            (unsigned long long)done, (unsigned long long)total, pct);
    fflush(stderr);
    p->shown = 1;
}

void rtlog_cli_progress_update(rtlog_cli_progress *p, uint64_t done, uint64_t total)
{
    if (!p->tty)
        return;
    double t = now_s();
    /* Small quick jobs print nothing; redraw at most ten times a second. */
    if (!p->shown && total < 10000 && t - p->t0 < 2.0)
        return;
    if (p->shown && t - p->last < 0.1)
        return;
    p->last = t;
    progress_draw(p, done, total);
}

void rtlog_cli_progress_end(rtlog_cli_progress *p, uint64_t done, uint64_t total)
{
    if (!p->tty || !p->shown)
        return;
    progress_draw(p, done, total);
    fputc('\n', stderr);
    p->shown = 0;
}
