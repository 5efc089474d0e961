/* cmd_serve.c - `rtlog serve`: load the configuration (flags > environment > file >
 * defaults, one table in server/config.c), then run the server until SIGTERM/SIGINT.
 * --help prints the settings table; --print-config prints the effective values and
 * where each came from. Exit codes: 0 after a clean drain or --help, 1 when the server
 * could not start, 2 for a configuration error. Source: CONTRACT.md "Tools".
 */
#include "cmds.h"

#include "rtlog_server.h"

#include <stdio.h>

int rtlog_cmd_serve(int argc, char **argv)
{
    rtlog_server_config cfg;
    rtlog_cfg_action action;
    rtlog_errinfo ei = {0};
    if (rtlog_config_load(argc, argv, NULL, &cfg, &action, &ei) != RTLOG_OK) {
        fprintf(stderr, "rtlog serve: %s\n", ei.text);
        return 2;
    }
    if (action == RTLOG_CFG_HELP) {
        rtlog_config_help(stdout);
        return 0;
    }
    if (action == RTLOG_CFG_PRINT) {
        rtlog_config_print(&cfg, stdout);
        return 0;
    }
    return rtlog_server_run(&cfg);
}
