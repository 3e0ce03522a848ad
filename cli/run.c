/*
 * run.c - `mig run`: one unmodified program against a fresh GPU server.
 *
 * We create the instance's sealed segment and three pipes, start mig-gpud
 * on it, wait until it has its context, then start the program with the
 * shim first on its library path.  The pipes are lifelines: the server
 * learns the program is gone when the program's end closes, and the
 * program's shim learns the server is gone the same way.  When the program
 * exits we collect the shim's summary and make sure the server exits too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "segment.h"

static pid_t program_pid;

static void forward_signal(int sig)
{
	if (program_pid > 0)
		kill(program_pid, sig);
}

/* Directory of this executable, to find mig-gpud and the shim beside it. */
static int self_dir(char *out, size_t n)
{
	ssize_t len = readlink("/proc/self/exe", out, n - 1);
	char *slash;

	if (len <= 0)
		return -1;
	out[len] = 0;
	slash = strrchr(out, '/');
	if (!slash)
		return -1;
	*slash = 0;
	return 0;
}

static void keep_open(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl >= 0)
		fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
}

static int wait_exit(pid_t pid, int timeout_ms)
{
	int st, waited = 0;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return st;
		if (r < 0)
			return -1;
		if (waited >= timeout_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return st;
		}
		usleep(10000);
		waited += 10;
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: mig run [--backend cuda|host] [--device UUID] [--segment-size BYTES]\n"
		"               [--module-cache DIR] [--quiet] -- PROGRAM ARGS...\n");
}

int mig_cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "backend", required_argument, NULL, 'b' },
		{ "device", required_argument, NULL, 'd' },
		{ "segment-size", required_argument, NULL, 's' },
		{ "module-cache", required_argument, NULL, 'm' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *backend = "cuda", *device = NULL, *modcache = NULL;
	char modcache_abs[PATH_MAX];
	uint64_t seg_size = MIG_SEGMENT_SIZE_DEFAULT;
	char dir[PATH_MAX], gpud[PATH_MAX + 32], shimdir[PATH_MAX + 32];
	char ldpath[2 * PATH_MAX], fdbuf[3][16], ready[600];
	int ready_p[2], srv_life[2], cli_life[2], sum_p[2];
	int seg, c, quiet = 0, st, gst, n;
	pid_t gpud_pid;
	struct timespec t0, t1;
	struct sigaction sa = { .sa_handler = forward_signal };

	optind = 1;
	while ((c = getopt_long(argc, argv, "+qh", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			backend = optarg;
			break;
		case 'd':
			device = optarg;
			break;
		case 's':
			seg_size = strtoull(optarg, NULL, 0);
			break;
		case 'm':
			/* The server wants it absolute; it must exist. */
			if (!realpath(optarg, modcache_abs)) {
				fprintf(stderr, "mig run: --module-cache %s: %s\n",
					optarg, strerror(errno));
				return 2;
			}
			modcache = modcache_abs;
			break;
		case 'q':
			quiet = 1;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (optind >= argc) {
		usage();
		return 2;
	}
	if (self_dir(dir, sizeof(dir)) < 0) {
		fprintf(stderr, "mig run: cannot find my own directory\n");
		return 1;
	}
	snprintf(gpud, sizeof(gpud), "%s",
		 getenv("MIG_GPUD") ? getenv("MIG_GPUD") : "");
	if (!*gpud)
		snprintf(gpud, sizeof(gpud), "%s/mig-gpud", dir);
	snprintf(shimdir, sizeof(shimdir), "%s",
		 getenv("MIG_SHIM_DIR") ? getenv("MIG_SHIM_DIR") : "");
	if (!*shimdir)
		snprintf(shimdir, sizeof(shimdir), "%s/../lib/shim", dir);

	seg = mig_segment_create(seg_size);
	if (seg < 0) {
		fprintf(stderr, "mig run: cannot create the shared segment: %s\n",
			strerror(-seg));
		return 1;
	}
	if (pipe2(ready_p, O_CLOEXEC) || pipe2(srv_life, O_CLOEXEC) ||
	    pipe2(cli_life, O_CLOEXEC) || pipe2(sum_p, O_CLOEXEC)) {
		perror("mig run: pipe");
		return 1;
	}

	/* The server: segment, ready pipe, its lifeline's write end, the
	 * client lifeline's read end. */
	gpud_pid = fork();
	if (gpud_pid < 0) {
		perror("mig run: fork");
		return 1;
	}
	if (gpud_pid == 0) {
		char a_seg[16], a_ready[16], a_life[16];

		keep_open(seg);
		keep_open(ready_p[1]);
		keep_open(srv_life[1]);
		keep_open(cli_life[0]);
		snprintf(a_seg, sizeof(a_seg), "%d", seg);
		snprintf(a_ready, sizeof(a_ready), "%d", ready_p[1]);
		snprintf(a_life, sizeof(a_life), "%d", cli_life[0]);
		const char *av[16] = { gpud, "--segment-fd", a_seg,
				       "--ready-fd", a_ready,
				       "--client-lifeline", a_life,
				       "--backend", backend };
		int ac = 9;

		if (device) {
			av[ac++] = "--device";
			av[ac++] = device;
		}
		if (modcache) {
			av[ac++] = "--module-cache";
			av[ac++] = modcache;
		}
		av[ac] = NULL;
		execv(gpud, (char *const *)av);
		fprintf(stderr, "mig run: cannot start %s: %s\n", gpud,
			strerror(errno));
		_exit(127);
	}
	close(ready_p[1]);
	close(srv_life[1]);
	close(cli_life[0]);
	n = (int)read(ready_p[0], ready, sizeof(ready) - 1);
	close(ready_p[0]);
	ready[n > 0 ? n : 0] = 0;
	if (strncmp(ready, "ok", 2)) {
		fprintf(stderr, "mig run: the GPU server did not start%s%s",
			*ready ? ": " : "\n", ready + (strncmp(ready, "error: ", 7) ? 0 : 7));
		wait_exit(gpud_pid, 2000);
		return 1;
	}

	clock_gettime(CLOCK_MONOTONIC, &t0);
	program_pid = fork();
	if (program_pid < 0) {
		perror("mig run: fork");
		kill(gpud_pid, SIGTERM);
		wait_exit(gpud_pid, 2000);
		return 1;
	}
	if (program_pid == 0) {
		const char *old = getenv("LD_LIBRARY_PATH");

		keep_open(seg);
		keep_open(srv_life[0]);
		keep_open(cli_life[1]);
		keep_open(sum_p[1]);
		snprintf(fdbuf[0], sizeof(fdbuf[0]), "%d", seg);
		snprintf(fdbuf[1], sizeof(fdbuf[1]), "%d", srv_life[0]);
		snprintf(fdbuf[2], sizeof(fdbuf[2]), "%d", sum_p[1]);
		setenv("MIG_SEGMENT_FD", fdbuf[0], 1);
		setenv("MIG_LIFELINE_FD", fdbuf[1], 1);
		setenv("MIG_SUMMARY_FD", fdbuf[2], 1);
		snprintf(ldpath, sizeof(ldpath), "%s%s%s", shimdir,
			 old && *old ? ":" : "", old ? old : "");
		setenv("LD_LIBRARY_PATH", ldpath, 1);
		execvp(argv[optind], argv + optind);
		fprintf(stderr, "mig run: cannot run %s: %s\n", argv[optind],
			strerror(errno));
		_exit(127);
	}
	close(seg);
	close(srv_life[0]);
	close(cli_life[1]);
	close(sum_p[1]);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	while (waitpid(program_pid, &st, 0) < 0 && errno == EINTR)
		;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* The program's lifeline closed: the server cleans up and exits. */
	gst = wait_exit(gpud_pid, 10000);

	if (!quiet) {
		char buf[8192];
		struct pollfd pfd = { .fd = sum_p[0], .events = POLLIN };

		fprintf(stderr, "--- mig run: %s", argv[optind]);
		if (WIFEXITED(st))
			fprintf(stderr, " exited with status %d", WEXITSTATUS(st));
		else if (WIFSIGNALED(st))
			fprintf(stderr, " killed by signal %d", WTERMSIG(st));
		fprintf(stderr, " after %.3f s (%s backend)\n",
			(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
			backend);
		while (poll(&pfd, 1, 100) > 0 &&
		       (n = (int)read(sum_p[0], buf, sizeof(buf) - 1)) > 0) {
			buf[n] = 0;
			fputs(buf, stderr);
		}
		if (!WIFEXITED(gst) || WEXITSTATUS(gst) != 0)
			fprintf(stderr, "GPU server exit status %d%s\n",
				WIFEXITED(gst) ? WEXITSTATUS(gst) : 128 + WTERMSIG(gst),
				WIFEXITED(gst) && WEXITSTATUS(gst) == 2 ?
					" (the program broke the call protocol)" : "");
	}
	close(sum_p[0]);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}
