/* cmd_serve.c - `rtlog serve`: not built yet in this version; refuses clearly. */
#include "cmds.h"

#include <stdio.h>

int rtlog_cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "rtlog serve: not available in this build yet\n");
    return 2;
}
