/* cmds.h - the subcommands of the `rtlog` binary, one function each (tools/rtlog.c
 * dispatches). Each takes the arguments after the subcommand name (argv[0] is the
 * subcommand) and returns the process exit code: 0 ok, 1 failure, 2 usage error.
 * Source: CONTRACT.md "Tools". */
#ifndef RTLOG_CMDS_H
#define RTLOG_CMDS_H

int rtlog_cmd_serve(int argc, char **argv);  /* cmd_serve.c  */
int rtlog_cmd_token(int argc, char **argv);  /* cmd_token.c  */
int rtlog_cmd_import(int argc, char **argv); /* cmd_import.c */
int rtlog_cmd_export(int argc, char **argv); /* cmd_export.c */
int rtlog_cmd_ls(int argc, char **argv);     /* cmd_ls.c     */
int rtlog_cmd_stat(int argc, char **argv);   /* cmd_stat.c   */
int rtlog_cmd_verify(int argc, char **argv); /* cmd_verify.c */

#endif
