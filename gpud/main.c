/*
 * main.c - mig-gpud, the GPU server of one function instance.
 *
 *   mig-gpud --segment-fd N [--backend cuda|host] [--device UUID]
 *            [--client-lifeline FD] [--ready-fd FD] [--segment-base ADDR]
 *            [--dev-va-base ADDR] [--dev-va-size BYTES] [--instance NAME]
 *            [--control-fd FD] [--module-cache DIR [--module-cache-max BYTES]]
 *            [--arbiter-fd FD --arbiter-id N] [-v]
 *
 * --control-fd is the read end of the daemon's pipe (ipc/control.h), which
 * names the module cache of a pooled server once it is given to a function;
 * --module-cache names it at the start instead (modcache.c).  --arbiter-fd
 * is the partition's arbiter page (ipc/arbiter.h): with a sharing model
 * that makes calls exclusive, they wait for this server's turn.
 * The parent (the node daemon, or `mig run`) creates the segment and the
 * lifeline pipe.  We write "ok" or "error: <cause>" to --ready-fd once the
 * context exists, serve until the client's lifeline closes, clean up and
 * exit.  Exit status: 0 normal, 1 set-up failed, 2 client broke protocol.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "gpud.h"
#include "segment.h"
#include "units.h"

volatile int gpud_stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	gpud_stop_requested = 1;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: mig-gpud --segment-fd N [--backend cuda|host] [--device UUID]\n"
		"                [--client-lifeline FD] [--ready-fd FD] [--segment-base ADDR]\n"
		"                [--dev-va-base ADDR] [--dev-va-size BYTES] [--instance NAME]\n"
		"                [--control-fd FD] [--module-cache DIR [--module-cache-max BYTES]]\n"
		"                [--arbiter-fd FD --arbiter-id N] [-v]\n");
}

static void say_ready(int fd, const char *msg)
{
	if (fd < 0)
		return;
	if (write(fd, msg, strlen(msg)) < 0)
		perror("mig-gpud: ready pipe");
	close(fd);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "segment-fd", required_argument, NULL, 's' },
		{ "backend", required_argument, NULL, 'b' },
		{ "device", required_argument, NULL, 'd' },
		{ "client-lifeline", required_argument, NULL, 'l' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "segment-base", required_argument, NULL, 'B' },
		{ "dev-va-base", required_argument, NULL, 'V' },
		{ "dev-va-size", required_argument, NULL, 'S' },
		{ "instance", required_argument, NULL, 'i' },
		{ "control-fd", required_argument, NULL, 'c' },
		{ "module-cache", required_argument, NULL, 'm' },
		{ "module-cache-max", required_argument, NULL, 'M' },
		{ "arbiter-fd", required_argument, NULL, 'a' },
		{ "arbiter-id", required_argument, NULL, 'A' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct gpud g; /* large: keep it off the stack */
	struct gpud_backend b;
	const char *backend = "cuda", *uuid = NULL, *modcache = NULL;
	uint64_t modcache_max = 0;
	int arb_fd = -1;
	uint32_t arb_id = 0;
	uint64_t seg_base = MIG_SEGMENT_BASE_DEFAULT;
	uint64_t va_base = MIG_DEV_VA_BASE_DEFAULT, va_size = 0;
	int seg_fd = -1, ready_fd = -1, c, rc;
	char err[512], msg[600];
	struct sigaction sa = { .sa_handler = on_signal };

	g.client_lifeline = -1;
	g.control_fd = -1;
	snprintf(g.instance, sizeof(g.instance), "%d", (int)getpid());
	g.profile = getenv("MIG_GPUD_PROFILE") && *getenv("MIG_GPUD_PROFILE") == '1';
	if (getenv("MIG_GPUD_PROFILE_LINE_DELAY_US"))
		g.profile_line_delay_us =
			(unsigned)strtoul(getenv("MIG_GPUD_PROFILE_LINE_DELAY_US"), NULL, 10);
	if (mig_parse_phase_spin(getenv("MIG_GPUD_PHASE_SPIN_US"), &g.phase_spin_ns, err,
				 sizeof(err)) < 0) {
		fprintf(stderr, "mig-gpud: %s\n", err);
		return 1;
	}
	/* For comparisons: cut turns wait in order of asking. */
	g.arb_no_resume = getenv("MIG_GPUD_RESUME") && *getenv("MIG_GPUD_RESUME") == '0';
	g.prof_turn_back_len = -1;
	if (getenv("MIG_GPUD_VERBOSE"))
		g.verbose = atoi(getenv("MIG_GPUD_VERBOSE"));
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			seg_fd = atoi(optarg);
			break;
		case 'b':
			backend = optarg;
			break;
		case 'd':
			uuid = optarg;
			break;
		case 'l':
			g.client_lifeline = atoi(optarg);
			break;
		case 'r':
			ready_fd = atoi(optarg);
			break;
		case 'B':
			seg_base = strtoull(optarg, NULL, 0);
			break;
		case 'V':
			va_base = strtoull(optarg, NULL, 0);
			break;
		case 'S':
			va_size = strtoull(optarg, NULL, 0);
			break;
		case 'i':
			snprintf(g.instance, sizeof(g.instance), "%s", optarg);
			break;
		case 'c':
			g.control_fd = atoi(optarg);
			if (g.control_fd < 0 ||
			    fcntl(g.control_fd, F_SETFL, O_NONBLOCK) < 0) {
				fprintf(stderr, "mig-gpud: --control-fd %s: not an open descriptor\n",
					optarg);
				return 1;
			}
			break;
		case 'm':
			modcache = optarg;
			break;
		case 'M':
			modcache_max = strtoull(optarg, NULL, 0);
			break;
		case 'a':
			arb_fd = atoi(optarg);
			break;
		case 'A':
			arb_id = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'v':
			g.verbose++;
			break;
		default:
			usage();
			return 1;
		}
	}
	if (seg_fd < 0) {
		usage();
		return 1;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* If our parent dies, so do we: never leave a server behind. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	/* Timed sleeps in the loop want microseconds, not the default 50. */
	prctl(PR_SET_TIMERSLACK, 1000UL);

	if (gpud_backend_open(backend, &b, err, sizeof(err)) < 0) {
		snprintf(msg, sizeof(msg), "error: %s\n", err);
		say_ready(ready_fd, msg);
		fprintf(stderr, "mig-gpud: %s\n", err);
		return 1;
	}
	g.b = &b;
	if (arb_fd >= 0) {
		if (gpud_arbiter_attach(&g, arb_fd, arb_id, err, sizeof(err)) < 0) {
			snprintf(msg, sizeof(msg), "error: %s\n", err);
			say_ready(ready_fd, msg);
			fprintf(stderr, "mig-gpud: %s\n", err);
			return 1;
		}
		close(arb_fd);
	}
	if (gpud_setup(&g, seg_fd, seg_base, va_base, va_size, uuid, err,
		       sizeof(err)) < 0) {
		snprintf(msg, sizeof(msg), "error: %s\n", err);
		say_ready(ready_fd, msg);
		fprintf(stderr, "mig-gpud: %s\n", err);
		gpud_teardown(&g);
		return 1;
	}
	close(seg_fd);
	if (modcache)
		modcache_open(&g, modcache, modcache_max);
	say_ready(ready_fd, "ok\n");
	gpud_log(&g, 1, "serving on %s (%s backend)", g.hdr->dev.name, b.name);
	rc = gpud_serve(&g);
	gpud_profile_report(&g);
	gpud_teardown(&g);
	return rc ? 2 : 0;
}
