/*
 * main.c - mignificentd, the node daemon: start-up, signals, shutdown.
 *
 * Start: configuration (config.c), the data directory (locked, so two
 * daemons never share one), the tenants (with no configured tenant, the
 * tenant "default" with a token made at first start and kept in
 * <data_dir>/token), the GPU partitions, the registry, the instance
 * manager, then the HTTP API.  A node without a GPU still starts: the
 * API works and invocations say why they cannot run until a reload finds
 * partitions.
 *
 * Signals are blocked in every thread and taken by the main thread with
 * sigwaitinfo(), so no handler runs in the middle of anything: SIGHUP
 * finds the partitions again; SIGTERM or SIGINT stops accepting requests,
 * drains the invocations in flight (instances_shutdown), lets their
 * answers go out, and exits 0.  A second SIGTERM or SIGINT during the
 * drain exits at once (the children die with us: PR_SET_PDEATHSIG).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "units.h"

#define DRAIN_ANSWERS_MS 5000   /* for answers to leave after the drain */

static struct mig_daemon daemon_;

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2),
							 noreturn));

static void fatal(const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	daemon_log(0, "%s", msg);
	exit(1);
}

/* --- the data directory ------------------------------------------------- */

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX], *p;
	int n = snprintf(tmp, sizeof(tmp), "%s", path);

	if (n < 0 || n >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	/* The last level holds the token: only we may read it. */
	if (mkdir(tmp, 0700) && errno != EEXIST)
		return -1;
	return 0;
}

/* Create and lock @dir; the lock lasts as long as the process. */
static void data_dir_open(const char *dir)
{
	char path[PATH_MAX + 16];
	int fd, n;

	if (mkdir_p(dir) || access(dir, W_OK | X_OK))
		fatal("cannot use the data directory %s: %s: run as a user that "
		      "may write there, or choose another with --data-dir", dir,
		      strerror(errno));
	n = snprintf(path, sizeof(path), "%s/lock", dir);
	fd = n > 0 && n < (int)sizeof(path) ?
	     open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
	if (fd < 0)
		fatal("cannot create the lock file %s/lock: %s", dir,
		      strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB))
		fatal("another mignificentd uses the data directory %s: stop it, "
		      "or give this one its own --data-dir", dir);
	/* fd stays open: the lock is ours until we exit. */
}

/* --- the default tenant ------------------------------------------------- */

static bool token_ok(const char *t)
{
	size_t n = strlen(t), i;

	if (n < 16 || n >= sizeof(((struct mig_tenant *)0)->token))
		return false;
	for (i = 0; i < n; i++)
		if (t[i] < 0x21 || t[i] > 0x7e)
			return false;
	return true;
}

static int read_token(const char *path, char *out, size_t n)
{
	struct stat st;
	FILE *f = fopen(path, "re");

	if (!f)
		return -1;
	if (!fgets(out, (int)n, f))
		*out = 0;
	out[strcspn(out, "\r\n")] = 0;
	if (!fstat(fileno(f), &st) && (st.st_mode & 077))
		daemon_log(0, "warning: %s can be read by other users: chmod 600 "
			   "it", path);
	fclose(f);
	return 0;
}

/* 32 random bytes as hex, written to @path if it does not exist yet. */
static int make_token(const char *path, char *out, size_t n)
{
	unsigned char raw[32];
	char line[2 * sizeof(raw) + 2];
	size_t i, got = 0;
	ssize_t r;
	int fd;

	while (got < sizeof(raw)) {
		r = getrandom(raw + got, sizeof(raw) - got, 0);
		if (r < 0 && errno != EINTR)
			return -1;
		got += r > 0 ? (size_t)r : 0;
	}
	for (i = 0; i < sizeof(raw); i++)
		snprintf(line + 2 * i, 3, "%02x", raw[i]);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	strcat(line, "\n");
	if (write(fd, line, strlen(line)) != (ssize_t)strlen(line) || fsync(fd)) {
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	line[strlen(line) - 1] = 0;
	snprintf(out, n, "%s", line);
	return 0;
}

static void default_tenant(struct mig_config *c)
{
	struct mig_tenant *t = &c->tenants[0];
	char path[PATH_MAX + 16];
	int n;

	n = snprintf(path, sizeof(path), "%s/token", c->data_dir);
	if (n < 0 || n >= (int)sizeof(path))
		fatal("the data directory's name is too long: %s", c->data_dir);
	snprintf(t->name, sizeof(t->name), "default");
	if (read_token(path, t->token, sizeof(t->token))) {
		if (errno != ENOENT || make_token(path, t->token,
						  sizeof(t->token)))
			fatal("cannot read or create the token file %s: %s",
			      path, strerror(errno));
		/* Printed once, at the first start; the file keeps it. */
		printf("mignificentd: tenant \"default\" has the token %s "
		       "(kept in %s; `mig` reads it from there with "
		       "MIG_DATA_DIR=%s)\n", t->token, path, c->data_dir);
		fflush(stdout);
	}
	if (!token_ok(t->token))
		fatal("the token file %s does not hold a token (16 to 127 "
		      "printable characters): fix it, or delete it and a new "
		      "one is made", path);
	c->ntenants = 1;
}

/* --- partitions --------------------------------------------------------- */

/* Is partition @p named by the --devices list (UUID, its GPU's UUID or
 * its GPU's index)?  An empty list names every partition. */
static bool device_selected(const char *list, const struct mig_partition *p)
{
	char buf[sizeof(((struct mig_config *)0)->devices)], *tok, *save;
	char idx[16];

	if (!*list)
		return true;
	snprintf(buf, sizeof(buf), "%s", list);
	snprintf(idx, sizeof(idx), "%d", p->gpu_index);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
		if (!strcmp(tok, p->uuid) || !strcmp(tok, p->gpu_uuid) ||
		    !strcmp(tok, idx))
			return true;
	return false;
}

int daemon_reload(struct mig_daemon *d)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	int rc, present = 0, i;

	pthread_mutex_lock(&lock); /* one discovery at a time */
	rc = devices_discover(&d->devices, d->cfg.nvml_path, d->cfg.backend);
	pthread_mutex_unlock(&lock);
	pthread_mutex_lock(&d->devices.lock);
	for (i = 0; i < d->devices.n; i++) {
		/* Left out by --devices: as if absent, for new instances. */
		if (!device_selected(d->cfg.devices, &d->devices.p[i]))
			d->devices.p[i].present = 0;
		present += d->devices.p[i].present != 0;
	}
	if (!rc && !present) {
		rc = -1;
		snprintf(d->devices.error, sizeof(d->devices.error),
			 "--devices %.160s names none of the partitions found",
			 d->cfg.devices);
	}
	if (rc)
		daemon_log(0, "no GPU partition: %s; invocations fail with 503 "
			   "until a reload (SIGHUP or `mig reload`) finds one",
			   d->devices.error);
	else
		daemon_log(0, "%d GPU partition%s (driver %s)", present,
			   present == 1 ? "" : "s", d->devices.driver_version);
	pthread_mutex_unlock(&d->devices.lock);
	return rc;
}

/* --- signals ------------------------------------------------------------ */

static void stop_signals(sigset_t *s, bool with_hup)
{
	sigemptyset(s);
	sigaddset(s, SIGTERM);
	sigaddset(s, SIGINT);
	if (with_hup)
		sigaddset(s, SIGHUP);
}

/* During the drain: a second stop signal means now. */
static void *second_signal(void *arg)
{
	sigset_t s;
	int sig = 0;

	(void)arg;
	stop_signals(&s, false);
	while (sigwait(&s, &sig))
		;
	daemon_log(0, "%s again: exiting without waiting for the invocations "
		   "in flight", strsignal(sig));
	_exit(1);
	return NULL;
}

static int wait_for_stop(struct mig_daemon *d)
{
	siginfo_t si;
	sigset_t s;
	int sig;

	stop_signals(&s, true);
	for (;;) {
		sig = sigwaitinfo(&s, &si);
		if (sig < 0)
			continue; /* EINTR: a stop signal, e.g. SIGCONT */
		if (sig == SIGHUP) {
			daemon_log(0, "SIGHUP: finding the GPU partitions again");
			daemon_reload(d);
			continue;
		}
		return sig;
	}
}

int main(int argc, char **argv)
{
	struct mig_daemon *d = &daemon_;
	char err[2048];
	pthread_t t;
	sigset_t s;
	uint64_t spin_ns;
	int sig;

	if (config_load(&d->cfg, argc, argv, err, sizeof(err))) {
		fprintf(stderr, "mignificentd: %s\n", err);
		return 2;
	}
	/* The GPU servers inherit our environment: one that none of them
	 * would start with is refused here, not at every cold start. */
	if (mig_parse_phase_spin(getenv("MIG_GPUD_PHASE_SPIN_US"), &spin_ns, err, sizeof(err))) {
		fprintf(stderr, "mignificentd: %s (read by the GPU servers)\n", err);
		return 2;
	}
	daemon_log_level(d->cfg.verbose);
	/* Before any thread exists, so that every thread inherits it. */
	stop_signals(&s, true);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	signal(SIGPIPE, SIG_IGN); /* a client that hangs up is not fatal */

	data_dir_open(d->cfg.data_dir);
	if (!d->cfg.ntenants)
		default_tenant(&d->cfg);
	pthread_mutex_init(&d->devices.lock, NULL);
	daemon_reload(d);
	d->registry = registry_open(d->cfg.data_dir, err, sizeof(err));
	if (!d->registry)
		fatal("cannot open the function registry: %s", err);
	if (instances_init(d))
		fatal("%s", "cannot start the instance manager (see above); "
		      "the daemon stops");
	if (http_start(d, err, sizeof(err))) {
		instances_shutdown(d);
		fatal("%s", err);
	}

	sig = wait_for_stop(d);
	daemon_log(0, "%s: stopping; draining the invocations in flight",
		   strsignal(sig));
	if (pthread_create(&t, NULL, second_signal, NULL) == 0)
		pthread_detach(t);
	d->stopping = 1;
	http_quiesce();
	instances_shutdown(d);
	http_drain(DRAIN_ANSWERS_MS);
	http_stop();
	registry_close(d->registry);
	config_free(&d->cfg);
	daemon_log(0, "stopped");
	return 0;
}
