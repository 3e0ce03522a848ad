/*
 * mig.c - the mignificent command-line client.
 *
 *   mig run [options] -- PROGRAM ARGS...   run one program through the shim
 *   mig deploy|invoke|ls|logs|devices|kill|reload|bench ...
 *                                          talk to the node daemon (HTTP)
 *
 * --server URL and --token T may also come before the command; they then
 * stand for MIG_SERVER and MIG_TOKEN.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mig [--server URL] [--token T] COMMAND [ARGS]\n"
		"\n"
		"commands:\n"
		"  run [--backend cuda|host] [--device UUID] [--segment-size BYTES] [--quiet]\n"
		"      -- PROGRAM ARGS...   run an unmodified CUDA program on a fresh GPU\n"
		"                           server and print a summary of its calls\n"
		"\n"
		"  deploy NAME --language c|python --artifact FILE --handler H\n"
		"      [--gpu-memory 1GiB] [--profile P] [--timeout-ms N] [--keep-alive-ms N]\n"
		"      [--max-instances N] [--env K=V]... [--python PATH]\n"
		"                           deploy (or update) a function\n"
		"  invoke NAME [--data STRING | --file FILE] [-v]\n"
		"                           invoke it; the result goes to stdout\n"
		"  ls                       functions and their instances\n"
		"  logs NAME                a function's log\n"
		"  devices                  the node's GPU partitions\n"
		"  kill INSTANCE            stop one instance\n"
		"  swap-out INSTANCE        move an idle instance's GPU memory to host memory\n"
		"  swap-in INSTANCE         and back (the next invocation does it by itself)\n"
		"  reload                   find the GPUs and MIG instances again\n"
		"  bench FUNCTION[,FUNCTION2] -c CLIENTS -n REQUESTS [--warmup N]\n"
		"      [--csv FILE] [--data STRING | --file FILE]\n"
		"                           concurrent clients: latency and throughput\n"
		"\n"
		"The daemon is at --server, else $MIG_SERVER, else http://127.0.0.1:10000;\n"
		"the token is --token, else $MIG_TOKEN, else the file $MIG_DATA_DIR/token\n"
		"(default /var/lib/mignificent/token).  `mig COMMAND --help` for more.\n");
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} commands[] = {
	{ "run", mig_cmd_run },
	{ "deploy", mig_cmd_deploy },
	{ "invoke", mig_cmd_invoke },
	{ "ls", mig_cmd_ls },
	{ "logs", mig_cmd_logs },
	{ "devices", mig_cmd_devices },
	{ "kill", mig_cmd_kill },
	{ "swap-out", mig_cmd_swap_out },
	{ "swap-in", mig_cmd_swap_in },
	{ "reload", mig_cmd_reload },
	{ "bench", mig_cmd_bench },
};

int main(int argc, char **argv)
{
	size_t i;

	/* Options before the command: where the daemon is, who we are. */
	while (argc > 2 && (!strcmp(argv[1], "--server") ||
			    !strcmp(argv[1], "--token"))) {
		setenv(!strcmp(argv[1], "--server") ? "MIG_SERVER" : "MIG_TOKEN",
		       argv[2], 1);
		argc -= 2;
		argv += 2;
	}
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "mig: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}
