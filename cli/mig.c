/*
 * mig.c - the mignificent command-line client.
 *
 *   mig run [options] -- PROGRAM ARGS...   run one program through the shim
 *
 * Later commands (deploy, invoke, ls, devices, bench) talk to the node
 * daemon over HTTP.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mig COMMAND [ARGS]\n"
		"\n"
		"commands:\n"
		"  run [--backend cuda|host] [--device UUID] [--segment-size BYTES] [--quiet]\n"
		"      -- PROGRAM ARGS...   run an unmodified CUDA program on a fresh GPU\n"
		"                           server and print a summary of its calls\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "run"))
		return mig_cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "mig: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}
