/* cli.h - the commands of `mig`. */
#ifndef MIG_CLI_H
#define MIG_CLI_H

#include <stddef.h>
#include <stdint.h>

int mig_cmd_run(int argc, char **argv);

/* commands.c: talk to the node daemon over HTTP. */
int mig_cmd_deploy(int argc, char **argv);
int mig_cmd_invoke(int argc, char **argv);
int mig_cmd_ls(int argc, char **argv);
int mig_cmd_logs(int argc, char **argv);
int mig_cmd_devices(int argc, char **argv);
int mig_cmd_kill(int argc, char **argv);
int mig_cmd_swap_out(int argc, char **argv);
int mig_cmd_swap_in(int argc, char **argv);
int mig_cmd_reload(int argc, char **argv);

/* bench.c */
int mig_cmd_bench(int argc, char **argv);

/* Helpers shared by the HTTP commands (commands.c). */
void *mig_read_file(const char *cmd, const char *path, size_t *len);

#endif
