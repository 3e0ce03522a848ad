/*
 * main.c - mig-sandbox: run an executor in the built-in sandbox.
 *
 *   mig-sandbox --root DIR --uid UID --gid GID [options] -- PROGRAM [ARG...]
 *
 *   --root DIR       an empty directory the new root is mounted on
 *   --uid/--gid      host ids the function runs as (SANDBOX_INNER_ID inside)
 *   --ro PATH        show host PATH read-only at the same path (repeat)
 *   --hide PATH      show PATH empty (repeat)
 *   --cgroup DIR     join this cgroup first (repeat: one per v1 hierarchy)
 *   --tmp BYTES      size of the private /tmp
 *   --network        keep the host's network (default: none)
 *   --cwd DIR        working directory inside
 *   --hostname NAME
 *   --cpus LIST      run the executor on these CPUs ("0-3,8"; its
 *                    affinity, which the cgroup's cpuset, where the daemon
 *                    sets one, keeps it from widening)
 *   --fds N          fds 3..3+N-1 are the executor's (fd 3: the control
 *                    channel, which gets a FAILED frame if set-up fails)
 *   --pooled         join the --cgroup directories, then wait on fd 3 for
 *                    the rest of the command line and the executor's fds
 *                    (see receive_command(): the daemon starts keepers
 *                    ahead of time, so that no cold start waits for a
 *                    cgroup move)
 *
 * Started by mignificentd as root; see sandbox.h for the process tree.
 * Exit status: the executor's, mirrored (a signal re-raised), so that the
 * daemon explains a crash the same way with or without the sandbox; 125
 * when the sandbox could not be set up (the reason is on stderr and in a
 * FAILED frame on the control channel).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "cpulist.h"
#include "sandbox.h"

#define EXIT_SETUP 125
#define MAX_LIST 4096
#define MAX_FDS 16
#define MAX_MESSAGE (1 << 20) /* the command line sent to a pooled keeper */

/* What init tells the keeper before it exits. */
struct verdict {
	int kind;   /* VERDICT_EXITED: @status is the executor's wait status */
	int status;
};
#define VERDICT_EXITED 1
#define VERDICT_SETUP 2

/* Signals the keeper and init pass on to the executor. */
static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1,
				 SIGUSR2, 0 };

static int control_fd = -1; /* fd 3 while we hold it, else -1 */
static struct sandbox_filter filter; /* compiled before the clone */
static struct timespec t_start; /* for MIG_SANDBOX_TIMING */
static bool timing;

/* With MIG_SANDBOX_TIMING=1: how long each step took, on stderr (the
 * function's log), to see where a slow cold start goes. */
static void mark(const char *step)
{
	struct timespec t;

	if (!timing)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t);
	fprintf(stderr, "mig-sandbox: %8.3f ms %s\n",
		(double)(t.tv_sec - t_start.tv_sec) * 1e3 +
		(double)(t.tv_nsec - t_start.tv_nsec) / 1e6, step);
}

/* Tell the daemon why the executor will never be READY. */
static void send_failed(const char *msg)
{
	struct mig_ctl_hdr h = {
		.magic = MIG_CTL_MAGIC,
		.type = MIG_CTL_FAILED,
		.status = MIG_CTL_FAULT_SANDBOX,
		.len = (uint32_t)strlen(msg),
	};
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)msg, h.len } };

	/* If the daemon is gone there is nobody to tell: ignore errors. */
	if (control_fd >= 0 && writev(control_fd, iov, 2) < 0)
		return;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "mig-sandbox: %s\n", msg);
	send_failed(msg);
	_exit(EXIT_SETUP);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: mig-sandbox --root DIR --uid UID --gid GID [--ro PATH]... [--hide PATH]...\n"
		"                   [--cgroup DIR]... [--tmp BYTES] [--network] [--cwd DIR]\n"
		"                   [--hostname NAME] [--cpus LIST] [--fds N] -- PROGRAM [ARG...]\n"
		"       mig-sandbox --pooled [--cgroup DIR]...   (the rest then comes on fd 3)\n"
		"(started by mignificentd, as root)\n");
}

static unsigned long long number(const char *what, const char *s, unsigned long long max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v > max)
		die("%s: \"%s\" is not a number up to %llu", what, s, max);
	return v;
}

static void add(const char ***v, int *n, const char *s)
{
	const char **nv;

	if (*n >= MAX_LIST)
		die("more than %d paths in one list", MAX_LIST);
	nv = realloc(*v, (size_t)(*n + 1) * sizeof(**v));
	if (!nv)
		die("out of memory");
	nv[(*n)++] = s;
	*v = nv;
}

static void parse(int argc, char **argv, struct sandbox_opts *o)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "uid", required_argument, NULL, 'u' },
		{ "gid", required_argument, NULL, 'g' },
		{ "ro", required_argument, NULL, 'R' },
		{ "hide", required_argument, NULL, 'H' },
		{ "cgroup", required_argument, NULL, 'c' },
		{ "tmp", required_argument, NULL, 't' },
		{ "network", no_argument, NULL, 'n' },
		{ "cwd", required_argument, NULL, 'd' },
		{ "hostname", required_argument, NULL, 'h' },
		{ "fds", required_argument, NULL, 'f' },
		{ "pooled", no_argument, NULL, 'p' },
		{ "cpus", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_uid = false, have_gid = false;
	int c;

	o->hostname = "function";
	o->cwd = "/";
	optind = 0; /* glibc: a fresh scan, also for the second command line */
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'r': o->root = optarg; break;
		case 'u': o->uid = (uid_t)number("--uid", optarg, 0xfffffffe); have_uid = true; break;
		case 'g': o->gid = (gid_t)number("--gid", optarg, 0xfffffffe); have_gid = true; break;
		case 'R': add(&o->ro, &o->nro, optarg); break;
		case 'H': add(&o->hide, &o->nhide, optarg); break;
		case 'c': add(&o->cgroups, &o->ncgroups, optarg); break;
		case 't': o->tmp_bytes = number("--tmp", optarg, 1ull << 50); break;
		case 'n': o->network = true; break;
		case 'd': o->cwd = optarg; break;
		case 'h': o->hostname = optarg; break;
		case 'f': o->nfds = (int)number("--fds", optarg, MAX_FDS); break;
		case 'p': o->pooled = true; break;
		case 'C': o->cpus = optarg; break;
		default: usage(); _exit(2);
		}
	}
	if (o->pooled)
		return; /* the rest comes later, on fd 3 */
	if (o->nfds > 0)
		control_fd = 3;
	if (optind >= argc) {
		usage();
		die("no program to run");
	}
	if (!o->root || !have_uid || !have_gid)
		die("--root, --uid and --gid are required");
	/* An id of 0 would make the function root on the host. */
	if (!o->uid || !o->gid)
		die("the function's uid and gid must not be 0");
	o->argv = argv + optind;
}

/* --- the keeper (outside) ----------------------------------------------- */

static void join_cgroups(struct sandbox_opts *o)
{
	char path[PATH_MAX];

	for (int i = 0; i < o->ncgroups; i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/cgroup.procs", o->cgroups[i]);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0\n", 2) != 2)
			die("cannot join the cgroup %s: %s", o->cgroups[i], strerror(errno));
		close(fd);
	}
	o->ncgroups_joined = o->ncgroups;
}

/* Run on o->cpus from here on: init and the executor, forked below,
 * inherit the affinity, and with it every thread the function makes. */
static void place_on_cpus(const struct sandbox_opts *o)
{
	cpu_set_t set;

	if (!o->cpus)
		return;
	if (mig_cpulist_parse(o->cpus, &set))
		die("--cpus: \"%s\" is not a CPU list such as 0-3,8", o->cpus);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("cannot run on the CPUs %s: %s", o->cpus, strerror(errno));
	mark("placed on its CPUs");
}

/* End the way the executor ended: same exit code, or same signal. */
static void mirror(int status) __attribute__((noreturn));

static void mirror(int status)
{
	if (WIFSIGNALED(status)) {
		struct rlimit none = { 0, 0 };
		int sig = WTERMSIG(status);
		sigset_t set;

		setrlimit(RLIMIT_CORE, &none); /* init's core was not ours */
		signal(sig, SIG_DFL);
		sigemptyset(&set);
		sigaddset(&set, sig);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		raise(sig);
		_exit(128 + sig);
	}
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

static void keeper(pid_t init, int verdict_fd, const sigset_t *set)
{
	struct verdict v = { 0 };
	siginfo_t si;
	int status = 0;

	for (;;) {
		if (sigwaitinfo(set, &si) < 0)
			continue;
		if (si.si_signo != SIGCHLD) {
			kill(init, si.si_signo);
			continue;
		}
		if (waitpid(init, &status, WNOHANG) == init)
			break;
	}
	if (read(verdict_fd, &v, sizeof(v)) == (ssize_t)sizeof(v) &&
	    v.kind == VERDICT_EXITED)
		mirror(v.status);
	if (v.kind == VERDICT_SETUP)
		_exit(EXIT_SETUP);
	mirror(status); /* init itself was killed (e.g. the memory limit) */
}

/* --- init (pid 1 inside) ------------------------------------------------ */

static void on_signal(int sig)
{
	(void)sig; /* only so that the keeper's signals reach pid 1 */
}

static void loopback_up(void)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (!ioctl(s, SIOCGIFFLAGS, &ifr)) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	close(s);
}

static void write_proc(const char *file, const char *text)
{
	int fd = open(file, O_WRONLY | O_CLOEXEC);
	ssize_t n = (ssize_t)strlen(text);

	if (fd < 0 || write(fd, text, (size_t)n) != n)
		die("cannot write %s: %s", file, strerror(errno));
	close(fd);
}

/* Become SANDBOX_INNER_ID in a user namespace of our own, as host
 * @o->uid/@o->gid, with no capability left anywhere. */
static void drop_privileges(const struct sandbox_opts *o)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2] = { { 0 } };
	char map[64];

	if (setgroups(0, NULL) || setresgid(o->gid, o->gid, o->gid) ||
	    setresuid(o->uid, o->uid, o->uid))
		die("cannot become uid %u gid %u: %s", (unsigned)o->uid,
		    (unsigned)o->gid, strerror(errno));
	/* Changing uid made us undumpable, which leaves /proc/self owned by
	 * root; the maps below need it to be ours (an execve would make us
	 * dumpable again anyway). */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	if (unshare(CLONE_NEWUSER))
		die("cannot create a user namespace as uid %u: %s (is user.max_user_namespaces 0?)",
		    (unsigned)o->uid, strerror(errno));
	write_proc("/proc/self/setgroups", "deny");
	snprintf(map, sizeof(map), "%d %u 1\n", SANDBOX_INNER_ID, (unsigned)o->uid);
	write_proc("/proc/self/uid_map", map);
	snprintf(map, sizeof(map), "%d %u 1\n", SANDBOX_INNER_ID, (unsigned)o->gid);
	write_proc("/proc/self/gid_map", map);
	/* Init runs as the function's uid: undumpable again, its /proc
	 * entries (mem, fd, environ) are root's, so the function cannot reach
	 * into the process that reports its exit.  The executor becomes
	 * dumpable at its execve, as any process does. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* The new namespace gave us every capability in it: give them up,
	 * and make sure nothing can bring one back. */
	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) && errno == EINVAL)
			break;
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (syscall(SYS_capset, &hdr, data))
		die("cannot drop capabilities: %s", strerror(errno));
}

static void init_main(const struct sandbox_opts *o, int verdict_fd, int alive_fd,
		      const sigset_t *set) __attribute__((noreturn));

static void init_main(const struct sandbox_opts *o, int verdict_fd, int alive_fd,
		      const sigset_t *set)
{
	struct pollfd pfd = { .fd = alive_fd, .events = POLLIN };
	struct verdict v = { .kind = VERDICT_SETUP };
	struct rlimit no_core = { 0, 0 };
	struct sigaction sa = { .sa_handler = on_signal };
	char err[512];
	siginfo_t si;
	pid_t exec_pid;
	int status = 0;

	/* Die with the keeper: that is how the daemon's SIGKILL reaches us. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (poll(&pfd, 1, 0) > 0)
		_exit(EXIT_SETUP); /* the keeper died before PDEATHSIG was set */
	for (int i = 0; forwarded[i]; i++)
		sigaction(forwarded[i], &sa, NULL);
	if (sethostname(o->hostname, strlen(o->hostname)))
		die("sethostname: %s", strerror(errno));
	if (!o->network)
		loopback_up();
	mark("init running");
	if (sandbox_rootfs(o, err, sizeof(err)))
		goto setup_failed;
	mark("file system built");
	if (chdir(o->cwd))
		die("the working directory %s is not visible in the sandbox: %s",
		    o->cwd, strerror(errno));
	drop_privileges(o);
	setrlimit(RLIMIT_CORE, &no_core);
	mark("privileges dropped");
	if (sandbox_seccomp_install(&filter, err, sizeof(err)))
		goto setup_failed;
	mark("filter loaded");
	setenv("HOME", "/tmp", 1);
	setenv("TMPDIR", "/tmp", 1);
	setenv("USER", "function", 1);
	setenv("LOGNAME", "function", 1);

	exec_pid = fork();
	if (exec_pid < 0)
		die("fork: %s", strerror(errno));
	if (!exec_pid) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		close(verdict_fd);
		close(alive_fd);
		mark("executing the executor");
		execvp(o->argv[0], o->argv);
		snprintf(err, sizeof(err), "cannot run %s in the sandbox: %s",
			 o->argv[0], strerror(errno));
		fprintf(stderr, "mig-sandbox: %s\n", err);
		send_failed(err);
		_exit(127);
	}
	/* Only the executor may hold its channel and lifelines: the daemon
	 * and the GPU server see them close when it dies. */
	for (int fd = 3; fd < 3 + o->nfds; fd++)
		close(fd);
	control_fd = -1;
	for (;;) {
		pid_t p;

		if (sigwaitinfo(set, &si) < 0)
			continue;
		if (si.si_signo != SIGCHLD) {
			kill(exec_pid, si.si_signo);
			continue;
		}
		while ((p = waitpid(-1, &status, WNOHANG)) > 0)
			if (p == exec_pid)
				goto exited;
	}
exited:
	v.kind = VERDICT_EXITED;
	v.status = status;
	/* If the keeper is gone, so are we in a moment: ignore errors. */
	if (write(verdict_fd, &v, sizeof(v)) < 0)
		_exit(0);
	_exit(0); /* the kernel kills whatever else is left in here */

setup_failed:
	if (write(verdict_fd, &v, sizeof(v)) < 0)
		die("%s", err);
	die("%s", err);
}

/*
 * A pooled keeper: started ahead of time with --pooled and its cgroups,
 * it has joined them (the slow part of a start: moving a process into a
 * cgroup waits for an RCU grace period) and now waits on fd 3, a
 * SOCK_SEQPACKET socket, for one message with what a spawn would have
 * given it: "<N>", N arguments (the rest of its command line), then the
 * executor's environment, each NUL-terminated; and descriptors: the
 * executor's, which become fds 3, 4, ..., then one for stdout and stderr.
 * Returns the new argument vector (argv[0] kept); the environment
 * replaces ours.
 */
static char **receive_command(char *argv0)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE((MAX_FDS + 1) * sizeof(int))];
	} ctl;
	struct msghdr m = { 0 };
	struct iovec iov;
	struct cmsghdr *cm;
	int fds[MAX_FDS + 1], nfds = 0, nargs, nstr = 0, k = 0;
	char *msg = malloc(MAX_MESSAGE + 1), **strs, **argv, *end;
	ssize_t n;

	if (!msg)
		die("out of memory");
	iov.iov_base = msg;
	iov.iov_len = MAX_MESSAGE;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = ctl.buf;
	m.msg_controllen = sizeof(ctl.buf);
	while ((n = recvmsg(3, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (n <= 0)
		_exit(0); /* the daemon let go of us unused */
	for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int) &&
				   nfds < MAX_FDS + 1; i++)
			memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
	}
	if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		die("the command line sent to a pooled sandbox is too long");
	if (nfds < 1 || msg[n - 1])
		die("a pooled sandbox got a malformed command");
	close(3);
	/* stdout and stderr first (the last descriptor), so that what
	 * follows is logged where the function's output goes. */
	if (dup2(fds[nfds - 1], 1) < 0 || dup2(fds[nfds - 1], 2) < 0)
		die("dup2: %s", strerror(errno));
	close(fds[--nfds]);
	/* The executor's: into place at 3, 4, ... (out of the way first). */
	for (int i = 0; i < nfds; i++) {
		int hi = fcntl(fds[i], F_DUPFD_CLOEXEC, 4 + MAX_FDS);

		if (hi < 0)
			die("fcntl: %s", strerror(errno));
		close(fds[i]);
		fds[i] = hi;
	}
	for (int i = 0; i < nfds; i++) {
		if (dup2(fds[i], 3 + i) < 0)
			die("dup2: %s", strerror(errno));
		close(fds[i]);
	}
	for (ssize_t i = 0; i < n; i++)
		nstr += !msg[i];
	strs = calloc((size_t)nstr + 1, sizeof(*strs));
	argv = calloc((size_t)nstr + 2, sizeof(*argv));
	if (!strs || !argv)
		die("out of memory");
	for (char *a = msg; a < msg + n; a += strlen(a) + 1)
		strs[k++] = a;
	nargs = (int)strtol(strs[0], &end, 10);
	if (*end || nargs < 0 || nargs > nstr - 1)
		die("a pooled sandbox got a malformed command");
	argv[0] = argv0;
	memcpy(argv + 1, strs + 1, (size_t)nargs * sizeof(*argv));
	if (clearenv())
		die("clearenv failed");
	for (int i = 1 + nargs; i < nstr; i++)
		if (putenv(strs[i]))
			die("putenv: %s", strerror(errno));
	free(strs);
	return argv;
}

int main(int argc, char **argv)
{
	struct sandbox_opts o = { 0 };
	int verdict[2], alive[2];
	unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC |
			      CLONE_NEWUTS | CLONE_NEWCGROUP;
	sigset_t set;
	pid_t pid;

	clock_gettime(CLOCK_MONOTONIC, &t_start);
	timing = getenv("MIG_SANDBOX_TIMING") && *getenv("MIG_SANDBOX_TIMING") == '1';
	parse(argc, argv, &o);
	if (geteuid())
		die("mig-sandbox must be started as root (by mignificentd); use isolation \"bare\" for an unprivileged development daemon");
	mark("started");
	join_cgroups(&o);
	mark("cgroups joined");
	{
		char err[512];

		if (sandbox_seccomp_compile(&filter, err, sizeof(err)))
			die("%s", err);
	}
	mark("filter compiled");
	if (o.pooled) {
		char **rest = receive_command(argv[0]);
		int n = 0;

		while (rest[n])
			n++;
		clock_gettime(CLOCK_MONOTONIC, &t_start);
		mark("command received");
		o.pooled = false;
		parse(n, rest, &o);
		if (o.ncgroups != o.ncgroups_joined)
			die("a pooled sandbox joins its cgroups when it starts, not later");
	}
	place_on_cpus(&o);
	if (pipe2(verdict, O_CLOEXEC) || pipe2(alive, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	/* Block what we wait for before there is anyone to send it. */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	for (int i = 0; forwarded[i]; i++)
		sigaddset(&set, forwarded[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (!o.network)
		flags |= CLONE_NEWNET;
	pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid < 0)
		die("cannot create the namespaces: %s", strerror(errno));
	if (!pid) {
		close(verdict[0]);
		close(alive[1]);
		init_main(&o, verdict[1], alive[0], &set);
	}
	mark("namespaces created");
	close(verdict[1]);
	close(alive[0]);
	for (int fd = 3; fd < 3 + o.nfds; fd++)
		if (fd != verdict[0] && fd != alive[1])
			close(fd);
	control_fd = -1;
	keeper(pid, verdict[0], &set);
	return 0;
}
