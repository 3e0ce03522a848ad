/*
 * oci_run.c - test_oci_run: run a command the way OCI mode runs an
 * executor: write a bundle with daemon/oci.c, then exec the runtime's
 * command line that oci_argv() makes.  tests/daemon/test_oci.py drives it.
 *
 *	test_oci_run --bundle DIR --id ID --uid N [--rootfs DIR]
 *		[--pass-fd FD]... [--network] [--cgroup DIR] [--memory BYTES]
 *		[--cpus N] [--pids N] [--tmp BYTES] [--cwd DIR] [--ro PATH]...
 *		[--hide PATH]... [--runtime R] [--dry-run] -- COMMAND...
 *
 * Each --pass-fd FD becomes descriptor 3, 4, ... of the command, in order
 * (the executor's control socket, segment and lifelines in the daemon).
 * --dry-run prints the command line, one argument a line, instead of
 * running it.  The command runs with PATH=/usr/bin:/bin only.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"

#define MAX_PATHS 32

static void usage(void)
{
	fprintf(stderr, "usage: test_oci_run --bundle DIR --id ID --uid N [options] -- COMMAND...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bundle", required_argument, NULL, 'b' },
		{ "id", required_argument, NULL, 'i' },
		{ "uid", required_argument, NULL, 'u' },
		{ "rootfs", required_argument, NULL, 'r' },
		{ "pass-fd", required_argument, NULL, 'f' },
		{ "network", no_argument, NULL, 'N' },
		{ "cgroup", required_argument, NULL, 'g' },
		{ "memory", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "pids", required_argument, NULL, 'p' },
		{ "tmp", required_argument, NULL, 't' },
		{ "cwd", required_argument, NULL, 'w' },
		{ "ro", required_argument, NULL, 'R' },
		{ "hide", required_argument, NULL, 'H' },
		{ "runtime", required_argument, NULL, 'T' },
		{ "dry-run", no_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	static struct mig_config cfg;
	struct mig_sandbox_plan plan = { .cwd = "/tmp", .tmp = 64ull << 20 };
	char *ro[MAX_PATHS + 1] = { NULL }, *hide[MAX_PATHS + 1] = { NULL };
	char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	const char *bundle = NULL, *rootfs = "/";
	int nro = 0, nhide = 0, o, dry = 0, fds[MAX_PATHS], nfds = 0;
	char err[512], **cmd;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'b': bundle = optarg; break;
		case 'i': snprintf(plan.id, sizeof(plan.id), "%s", optarg); break;
		case 'u': plan.uid = plan.gid = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': rootfs = optarg; break;
		case 'f':
			if (nfds < MAX_PATHS)
				fds[nfds++] = atoi(optarg);
			break;
		case 'N': plan.network = true; break;
		case 'g': snprintf(plan.cgroup, sizeof(plan.cgroup), "%s", optarg); break;
		case 'm': plan.memory = strtoull(optarg, NULL, 10); break;
		case 'c': plan.cpus = strtod(optarg, NULL); break;
		case 'p': plan.pids = (unsigned)strtoul(optarg, NULL, 10); break;
		case 't': plan.tmp = strtoull(optarg, NULL, 10); break;
		case 'w': plan.cwd = optarg; break;
		case 'R': if (nro < MAX_PATHS) ro[nro++] = optarg; break;
		case 'H': if (nhide < MAX_PATHS) hide[nhide++] = optarg; break;
		case 'T': snprintf(cfg.oci_runtime, sizeof(cfg.oci_runtime), "%s", optarg); break;
		case 'D': dry = 1; break;
		default: usage();
		}
	}
	if (!bundle || !*plan.id || optind >= argc)
		usage();
	plan.nfds = nfds;
	plan.argv = argv + optind;
	plan.envp = envp;
	plan.ro_paths = ro;
	plan.hide = hide;
	if (oci_write_bundle(&plan, rootfs, bundle, err, sizeof(err))) {
		fprintf(stderr, "oci_run: %s\n", err);
		return 1;
	}
	cmd = oci_argv(&cfg, &plan, bundle, rootfs, err, sizeof(err));
	if (!cmd) {
		fprintf(stderr, "oci_run: %s\n", err);
		return 1;
	}
	if (dry) {
		for (char **a = cmd; *a; a++)
			printf("%s\n", *a);
		oci_argv_free(cmd);
		return 0;
	}
	/* Descriptors to 3, 4, ...: first out of the way (above the range),
	 * then into place, so that none overwrites another still needed. */
	for (int i = 0; i < nfds; i++)
		if ((fds[i] = fcntl(fds[i], F_DUPFD, 3 + nfds)) < 0) {
			perror("oci_run: --pass-fd");
			return 1;
		}
	for (int i = 0; i < nfds; i++)
		if (dup2(fds[i], 3 + i) < 0 || close(fds[i])) {
			perror("oci_run: --pass-fd");
			return 1;
		}
	execvp(cmd[0], cmd);
	fprintf(stderr, "oci_run: cannot run %s: %m\n", cmd[0]);
	oci_argv_free(cmd);
	return 127;
}
