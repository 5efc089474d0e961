/* rtlog.c - the `rtlog` binary: finds the subcommand and hands it the rest of argv.
 *
 * Each subcommand lives in its own cmd_<name>.c (cmds.h) and owns its options and --help;
 * this file only holds the table below, `rtlog --help` / `rtlog help [CMD]`, and the
 * exit-status convention every subcommand follows (0 ok, 1 failure, 2 usage error).
 * Source: CONTRACT.md "Tools".
 */
#include "cmds.h"

#include <stdio.h>
#include <string.h>

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *args;
    const char *summary;
} subcommand;

static const subcommand cmds[] = {
    {"serve", rtlog_cmd_serve,
     "[--listen HOST:PORT] [--jwt-alg ALG --jwt-key FILE] [--config FILE]",
     "run the service: HTTP ingest, WebSocket and SSE streams"},
    {"token", rtlog_cmd_token, "[--sub NAME] [--subscribe P]... [--publish P]... [--ttl S]",
     "print a JWT signed with the configured (or the data directory's) secret"},
    {"import", rtlog_cmd_import, "STREAM FILE|- [--batch N] [--expected-seq N]",
     "append NDJSON events (all validated first, atomic per batch)"},
    {"export", rtlog_cmd_export, "STREAM [--ndjson] [-o FILE]",
     "write a stream as one JSON document or NDJSON, secrets redacted"},
    {"ls", rtlog_cmd_ls, "[--json]", "list the streams"},
    {"stat", rtlog_cmd_stat, "STREAM [--json]", "show one stream's metadata"},
    {"verify", rtlog_cmd_verify, "STREAM | --file FILE [STREAM] [--head HEX]",
     "recompute the hash chain of a stream or an export"},
};
#define NCMDS (sizeof cmds / sizeof cmds[0])

static void help(FILE *f)
{
    fprintf(f, "Usage: rtlog COMMAND [OPTIONS] [ARGS]\n"
               "\n"
               "rtlog: a durable event log with replayable real-time streams (WebSocket, SSE).\n"
               "Streams: workflow-runs/ID, deployment-jobs/ID, agents/ID, dashboard.\n"
               "\n"
               "Commands:\n");
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(f, "  %-7s %s\n          rtlog %s %s\n", cmds[i].name, cmds[i].summary,
                cmds[i].name, cmds[i].args);
    fprintf(f, "\n"
               "Every command takes --data DIR, the data directory (default ./rtlog-data; the\n"
               "environment variable RTLOG_DATA is used when --data is not given).\n"
               "`rtlog COMMAND --help` (or `rtlog help COMMAND`) explains a command.\n"
               "Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

static const subcommand *find(const char *name)
{
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(cmds[i].name, name) == 0)
            return &cmds[i];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        help(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        if (strcmp(name, "help") == 0 && argc > 2) {
            const subcommand *c = find(argv[2]);
            if (!c) {
                fprintf(stderr, "rtlog: unknown command '%s'; see 'rtlog --help'.\n", argv[2]);
                return 2;
            }
            char help_flag[] = "--help";
            char *sub_argv[] = {argv[2], help_flag, NULL};
            return c->run(2, sub_argv);
        }
        help(stdout);
        return 0;
    }
    const subcommand *c = find(name);
    if (!c) {
        fprintf(stderr, "rtlog: unknown command '%s'; see 'rtlog --help'.\n", name);
        return 2;
    }
    return c->run(argc - 1, argv + 1);
}
