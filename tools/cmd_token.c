/* cmd_token.c - `rtlog token`: not built yet in this version; refuses clearly. */
#include "cmds.h"

#include <stdio.h>

int rtlog_cmd_token(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "rtlog token: not available in this build yet\n");
    return 2;
}
