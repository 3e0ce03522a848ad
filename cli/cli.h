/* cli.h - the commands of `mig`. */
#ifndef MIG_CLI_H
#define MIG_CLI_H

int mig_cmd_run(int argc, char **argv);

#endif
