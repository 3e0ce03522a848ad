/*
 * fixture_hostile.c - a function that attacks its own sandbox, for
 * tests/daemon/test_sandbox.py and tests/gpu/test_sandbox_gpu.py.
 *
 * One handler, attack().  The request body is one line, an attack and its
 * arguments separated by blanks:
 *
 *   open_dev /dev/nvidiactl /dev/nvidia0
 *
 * and the answer (text/plain, handler status 0) says how it went:
 *
 *   blocked REASON    every attempt failed (REASON: the errno name, or why)
 *   ESCAPED WHAT      at least one attempt worked: the sandbox let the
 *                     function do WHAT
 *   info FACTS        not an attack (whoami, cuda_call, nvml, ring,
 *                     kill_all): facts the test judges
 *
 * An attack it does not know, bad arguments, or an attack that refuses to
 * run (below) fail the handler with status 2 and "error ..." instead.
 * Attacks that kill their own instance (alloc over the memory limit,
 * kill_all) never answer: the test reads the daemon's error instead.
 *
 * Attacks (see the table at the end for the arguments):
 *   devices      open_dev, dev_extra, syscall mknod
 *   the driver   dlopen (absolute paths), dlopen_cuda (must be the shim),
 *                dlopen_nvml (must be ours), nvml (what it answers)
 *   files        read, list, exists, write_dir, open_write, proc_sys_write,
 *                shm, env_grep, leaked_fds
 *   processes    proc_peek, kill, kill_all, ptrace, oom_score_adj
 *   network      connect, unix_connect
 *   limits       alloc, fork_bomb, spin, fill_tmp, widen_cpus
 *   the kernel   syscall NAME... (mount, unshare, setns, bpf, ... run in a
 *                child process, so that one that works changes nothing
 *                of the executor)
 *   the GPU      ring MODE (scribble over the request ring of the shared
 *                segment, then call the driver through the shim),
 *                cuda_call (an honest call, as a control)
 *
 * Safety.  On a node whose isolation is broken this code runs as whatever
 * the executor runs as, root included.  Probes are chosen so that success
 * changes nothing outside the probing child (bad arguments that fail after
 * the permission check, a value written back unchanged, a file created and
 * removed).  What cannot be made harmless - signalling or tracing other
 * processes, kill(-1), sethostname, the fork bomb, opening every process's
 * files - refuses to run when the effective uid is 0: inside the sandbox
 * the function is uid 1000.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <link.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/fanotify.h>
#include <linux/futex.h>
#include <linux/if_ether.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cpulist.h"
#include "mignificent.h"
#include "wire.h"

#define MAX_WORDS 64
#define NOTE_MAX 3000
#define MiB (1024 * 1024)

/* --- the verdict -----------------------------------------------------------
 */

/*
 * What one attack found.  Attacks with several targets note every attempt:
 * one that worked goes to @escaped, one that failed to @blocked, and the
 * answer is ESCAPED if anything worked.
 */
struct verdict {
	char escaped[NOTE_MAX];
	char blocked[NOTE_MAX];
	char info[NOTE_MAX];
	char error[512]; /* set: the attack did not run (bad arguments, refused)
			  */
};

static void append(char *buf, const char *fmt, va_list ap)
{
	size_t n = strlen(buf);

	if (n && n + 2 < NOTE_MAX) {
		strcpy(buf + n, "; ");
		n += 2;
	}
	if (n < NOTE_MAX)
		vsnprintf(buf + n, NOTE_MAX - n, fmt, ap);
}

static void escaped(struct verdict *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void escaped(struct verdict *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	append(v->escaped, fmt, ap);
	va_end(ap);
}

static void blocked(struct verdict *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void blocked(struct verdict *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	append(v->blocked, fmt, ap);
	va_end(ap);
}

static void info(struct verdict *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void info(struct verdict *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	append(v->info, fmt, ap);
	va_end(ap);
}

static int refuse(struct verdict *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int refuse(struct verdict *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->error, sizeof(v->error), fmt, ap);
	va_end(ap);
	return -1;
}

/* "EPERM" for EPERM: what the test matches on. */
static const char *errname(int e)
{
	const char *n = strerrorname_np(e);

	return n ? n : "E?";
}

static bool is_root(void)
{
	return geteuid() == 0;
}

/* A number argument, or -1 with @v->error set. */
static long long number(struct verdict *v, const char *what, const char *s)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(s, &end, 0);
	if (errno || end == s || *end || n < 0)
		return refuse(v, "%s: \"%s\" is not a number", what, s);
	return n;
}

/* --- devices ------------------------------------------------------------- */

static void try_device(const char *path, struct verdict *v)
{
	int fd = open(path, O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	if (fd < 0 && (errno == EACCES || errno == EROFS))
		fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		escaped(v, "opened %s", path);
	} else if (errno == ENXIO || errno == ENODEV) {
		/* The node is there and we may open it: only the driver is
		 * missing (a machine without a GPU, a fake node). */
		escaped(v,
			"%s is a device node it may open (%s: no driver behind "
			"it)",
			path, errname(errno));
	} else {
		blocked(v, "%s: %s", path, errname(errno));
	}
}

/* open_dev PATH...: each may be a glob (/dev/nvidia-caps/nvidia-cap?). */
static int attack_open_dev(int argc, char **argv, struct verdict *v)
{
	for (int i = 0; i < argc; i++) {
		glob_t g;

		if (glob(argv[i], GLOB_NOCHECK, NULL, &g)) {
			blocked(v, "%s: no match", argv[i]);
			continue;
		}
		for (size_t k = 0; k < g.gl_pathc; k++)
			try_device(g.gl_pathv[k], v);
		globfree(&g);
	}
	return 0;
}

/* dev_extra: anything in /dev besides what the sandbox promises. */
static int attack_dev_extra(int argc, char **argv, struct verdict *v)
{
	static const char *const harmless[] = {
		"null", "zero", "full",	 "random", "urandom", "tty",
		"shm",	"fd",	"stdin", "stdout", "stderr",  NULL,
	};
	DIR *d = opendir("/dev");
	struct dirent *e;
	int extra = 0;

	(void)argc;
	(void)argv;
	if (!d) {
		blocked(v, "/dev: %s", errname(errno));
		return 0;
	}
	while ((e = readdir(d))) {
		bool ok = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");

		for (int i = 0; harmless[i] && !ok; i++)
			ok = !strcmp(e->d_name, harmless[i]);
		if (!ok && extra++ < 40)
			escaped(v, "/dev/%s is there", e->d_name);
	}
	closedir(d);
	if (!extra)
		blocked(v, "/dev has only the harmless devices");
	return 0;
}

/* --- the driver ---------------------------------------------------------- */

/* dlopen PATH...: a real driver library must be unreadable or empty. */
static int attack_dlopen(int argc, char **argv, struct verdict *v)
{
	for (int i = 0; i < argc; i++) {
		unsigned char magic[4];
		ssize_t n;
		void *h;
		int fd = open(argv[i], O_RDONLY | O_CLOEXEC);

		if (fd < 0) {
			blocked(v, "%s: %s", argv[i], errname(errno));
			continue;
		}
		n = read(fd, magic, sizeof(magic));
		close(fd);
		if (n != (ssize_t)sizeof(magic) ||
		    memcmp(magic, "\177ELF", 4)) {
			blocked(v, "%s: not an ELF file (%zd bytes read)",
				argv[i], n);
			continue;
		}
		h = dlopen(argv[i], RTLD_LAZY | RTLD_LOCAL);
		if (h && dlsym(h, "mignificent_malloc"))
			blocked(v, "%s is the shim", argv[i]);
		else if (h)
			escaped(v, "loaded %s", argv[i]);
		else
			escaped(v, "%s is a readable ELF file (dlopen: %s)",
				argv[i], dlerror());
		if (h)
			dlclose(h);
	}
	return 0;
}

/* dlopen_cuda: libcuda.so.1 by name must be the shim. */
static int attack_dlopen_cuda(int argc, char **argv, struct verdict *v)
{
	struct link_map *lm = NULL;
	void *h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);

	(void)argc;
	(void)argv;
	if (!h)
		return refuse(v, "libcuda.so.1 cannot be loaded at all: %s",
			      dlerror());
	dlinfo(h, RTLD_DI_LINKMAP, &lm);
	if (dlsym(h, "mignificent_malloc"))
		blocked(v, "libcuda.so.1 is the shim (%s)",
			lm ? lm->l_name : "?");
	else
		escaped(v, "libcuda.so.1 is %s, not the shim",
			lm ? lm->l_name : "?");
	dlclose(h);
	return 0;
}

/*
 * dlopen_nvml: libnvidia-ml.so.1 by name must be ours (nvml/nvml.c), which
 * shows one device, and the host's NVML must not be what loads.
 */
static int attack_dlopen_nvml(int argc, char **argv, struct verdict *v)
{
	struct link_map *lm = NULL;
	void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	int (*init)(void), (*version)(char *, unsigned int), (*count)(unsigned int *);
	char ver[96] = "";
	unsigned int n = 0;

	(void)argc;
	(void)argv;
	if (!h)
		return refuse(v, "libnvidia-ml.so.1 cannot be loaded at all: %s",
			      dlerror());
	dlinfo(h, RTLD_DI_LINKMAP, &lm);
	*(void **)&init = dlsym(h, "nvmlInit_v2");
	*(void **)&version = dlsym(h, "nvmlSystemGetNVMLVersion");
	*(void **)&count = dlsym(h, "nvmlDeviceGetCount_v2");
	if (!init || !version || !count || init() || version(ver, sizeof(ver)) ||
	    count(&n))
		escaped(v, "libnvidia-ml.so.1 is %s, which does not answer",
			lm ? lm->l_name : "?");
	else if (!strcmp(ver, "mignificent") && n == 1)
		blocked(v, "libnvidia-ml.so.1 is ours (%s): one device",
			lm ? lm->l_name : "?");
	else
		escaped(v, "libnvidia-ml.so.1 is %s: version %s, %u devices",
			lm ? lm->l_name : "?", ver, n);
	dlclose(h);
	return 0;
}

/*
 * nvml: what libnvidia-ml.so.1 by name answers in here, as KEY=VALUE words
 * for the test to judge: path (the file loaded), version, count, uuid (of
 * device 0), processes (entries) and self (1 when the one entry is this
 * process), total (NVML's memory total) and cuda_total (the shim's
 * cuDeviceTotalMem), util (what utilization answers).
 */
struct nvml_mem {
	unsigned long long total, free, used;
};

struct nvml_proc {
	unsigned int pid;
	unsigned long long used;
	unsigned int gi, ci;
};

static int attack_nvml(int argc, char **argv, struct verdict *v)
{
	struct link_map *lm = NULL;
	void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL), *cuda;
	int (*init)(void), (*version)(char *, unsigned int),
		(*count)(unsigned int *), (*by_index)(unsigned int, void **),
		(*uuid)(void *, char *, unsigned int),
		(*mem)(void *, struct nvml_mem *),
		(*procs)(void *, unsigned int *, struct nvml_proc *),
		(*util)(void *, unsigned int *), (*shutdown)(void);
	int (*total_mem)(size_t *, int);
	char ver[96] = "?", id[96] = "?";
	struct nvml_proc pr[4] = { { 0 } };
	struct nvml_mem m = { 0 };
	unsigned int n = 0, np = 0, u[2];
	size_t cuda_total = 0;
	void *dev = NULL;
	int rc_util = -1, ret = 0;

	(void)argc;
	(void)argv;
	if (!h)
		return refuse(v, "libnvidia-ml.so.1 cannot be loaded: %s",
			      dlerror());
	cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!cuda) {
		ret = refuse(v, "libcuda.so.1 cannot be loaded: %s",
			     dlerror());
		goto out;
	}
	dlinfo(h, RTLD_DI_LINKMAP, &lm);
	*(void **)&init = dlsym(h, "nvmlInit_v2");
	*(void **)&version = dlsym(h, "nvmlSystemGetNVMLVersion");
	*(void **)&count = dlsym(h, "nvmlDeviceGetCount_v2");
	*(void **)&by_index = dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
	*(void **)&uuid = dlsym(h, "nvmlDeviceGetUUID");
	*(void **)&mem = dlsym(h, "nvmlDeviceGetMemoryInfo");
	*(void **)&procs = dlsym(h, "nvmlDeviceGetComputeRunningProcesses_v3");
	*(void **)&util = dlsym(h, "nvmlDeviceGetUtilizationRates");
	*(void **)&shutdown = dlsym(h, "nvmlShutdown");
	*(void **)&total_mem = dlsym(cuda, "cuDeviceTotalMem_v2");
	if (!init || !version || !count || !by_index || !uuid || !mem ||
	    !procs || !util || !shutdown || !total_mem) {
		ret = refuse(v, "%s lacks an NVML entry point",
			     lm ? lm->l_name : "libnvidia-ml.so.1");
		goto out;
	}
	if (init() == 0) {
		version(ver, sizeof(ver));
		count(&n);
		if (n && by_index(0, &dev) == 0) {
			uuid(dev, id, sizeof(id));
			mem(dev, &m);
			np = 4;
			if (procs(dev, &np, pr))
				np = 0;
			rc_util = util(dev, u);
		}
		shutdown();
	}
	total_mem(&cuda_total, 0);
	info(v,
	     "path=%s version=%s count=%u uuid=%s processes=%u self=%d "
	     "total=%llu cuda_total=%zu util=%d",
	     lm ? lm->l_name : "?", ver, n, id, np,
	     np == 1 && pr[0].pid == (unsigned int)getpid(), m.total,
	     cuda_total, rc_util);
out:
	if (cuda)
		dlclose(cuda);
	dlclose(h);
	return ret;
}

/* --- files --------------------------------------------------------------- */

/* read PATH...: a regular file (or device) it can read from. */
static int attack_read(int argc, char **argv, struct verdict *v)
{
	for (int i = 0; i < argc; i++) {
		char buf[4096];
		struct stat st;
		ssize_t n;
		int fd = open(argv[i],
			      O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

		if (fd < 0) {
			blocked(v, "%s: %s", argv[i], errname(errno));
			continue;
		}
		if (!fstat(fd, &st) && S_ISDIR(st.st_mode)) {
			close(fd);
			return refuse(v, "%s is a directory: use list",
				      argv[i]);
		}
		n = read(fd, buf, sizeof(buf));
		close(fd);
		if (n < 0)
			blocked(v, "%s: read: %s", argv[i], errname(errno));
		else
			escaped(v, "read %zd bytes of %s", n, argv[i]);
	}
	return 0;
}

/* list DIR [NAME...]: with NAMEs, ESCAPED if the directory shows one of
 * them; without, if it shows anything at all. */
static int attack_list(int argc, char **argv, struct verdict *v)
{
	DIR *d = opendir(argv[0]);
	struct dirent *e;
	int shown = 0;

	if (!d) {
		blocked(v, "%s: %s", argv[0], errname(errno));
		return 0;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		for (int i = 1; i < argc; i++)
			if (!strcmp(e->d_name, argv[i]))
				escaped(v, "%s lists %s", argv[0], argv[i]);
		if (argc == 1 && shown++ < 20)
			escaped(v, "%s lists %s", argv[0], e->d_name);
	}
	closedir(d);
	if (!*v->escaped)
		blocked(v, "%s does not list %s", argv[0],
			argc > 1 ? "them" : "anything");
	return 0;
}

/* exists PATH...: stat() must fail. */
static int attack_exists(int argc, char **argv, struct verdict *v)
{
	struct stat st;

	for (int i = 0; i < argc; i++) {
		if (!stat(argv[i], &st))
			escaped(v, "%s exists", argv[i]);
		else
			blocked(v, "%s: %s", argv[i], errname(errno));
	}
	return 0;
}

/* write_dir DIR...: create (and remove) a file in each. */
static int attack_write_dir(int argc, char **argv, struct verdict *v)
{
	for (int i = 0; i < argc; i++) {
		char path[PATH_MAX];
		int fd;

		snprintf(path, sizeof(path), "%s/.mig-hostile-%d", argv[i],
			 (int)getpid());
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			blocked(v, "%s: %s", argv[i], errname(errno));
			continue;
		}
		close(fd);
		unlink(path);
		escaped(v, "created a file in %s", argv[i]);
	}
	return 0;
}

/* open_write PATH...: open an existing file for writing, write nothing. */
static int attack_open_write(int argc, char **argv, struct verdict *v)
{
	for (int i = 0; i < argc; i++) {
		int fd = open(argv[i], O_WRONLY | O_APPEND | O_NOCTTY |
					       O_NONBLOCK | O_CLOEXEC);

		if (fd >= 0) {
			close(fd);
			escaped(v, "opened %s for writing", argv[i]);
		} else if (errno == ETXTBSY) {
			/* Checked after the permissions: only running saved it.
			 */
			escaped(v,
				"%s passed the write permission check "
				"(ETXTBSY)",
				argv[i]);
		} else {
			blocked(v, "%s: %s", argv[i], errname(errno));
		}
	}
	return 0;
}

/* proc_sys_write PATH...: write a sysctl's own value back to it. */
static int attack_proc_sys_write(int argc, char **argv, struct verdict *v)
{
	for (int i = 0; i < argc; i++) {
		char value[512];
		ssize_t n;
		int fd = open(argv[i], O_RDWR | O_CLOEXEC);

		if (fd < 0) {
			blocked(v, "%s: %s", argv[i], errname(errno));
			continue;
		}
		n = read(fd, value, sizeof(value));
		if (n > 0 && lseek(fd, 0, SEEK_SET) == 0 &&
		    write(fd, value, (size_t)n) == n)
			escaped(v, "rewrote %s", argv[i]);
		else
			blocked(v, "%s: write: %s", argv[i], errname(errno));
		close(fd);
	}
	return 0;
}

/* shm [DIR]: open and map whatever is in /dev/shm. */
static int attack_shm(int argc, char **argv, struct verdict *v)
{
	const char *dir = argc ? argv[0] : "/dev/shm";
	DIR *d = opendir(dir);
	struct dirent *e;
	int seen = 0;

	if (!d) {
		blocked(v, "%s: %s", dir, errname(errno));
		return 0;
	}
	while ((e = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;
		void *p;
		int fd;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		seen++;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
						O_CLOEXEC);
		if (fd < 0) {
			blocked(v, "%s: %s", path, errname(errno));
			continue;
		}
		if (!fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_size > 0 &&
		    (p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0)) !=
			    MAP_FAILED) {
			munmap(p, 4096);
			escaped(v, "opened and mapped %s", path);
		} else {
			escaped(v, "opened %s", path);
		}
		close(fd);
	}
	closedir(d);
	if (!seen)
		blocked(v, "%s is empty", dir);
	return 0;
}

/* env_grep WORD...: secrets that reached the environment. */
static int attack_env_grep(int argc, char **argv, struct verdict *v)
{
	extern char **environ;

	for (int i = 0; i < argc; i++) {
		bool found = false;

		for (char **kv = environ; kv && *kv && !found; kv++)
			if (strstr(*kv, argv[i])) {
				escaped(v, "the environment has \"%s\" (%.*s)",
					argv[i], (int)strcspn(*kv, "="), *kv);
				found = true;
			}
		if (!found)
			blocked(v, "no \"%s\" in the environment", argv[i]);
	}
	return 0;
}

/* leaked_fds MAXFD: any descriptor above MAXFD came from outside. */
static int attack_leaked_fds(int argc, char **argv, struct verdict *v)
{
	long long max = number(v, "MAXFD", argv[0]);
	DIR *d;
	struct dirent *e;

	(void)argc;
	if (max < 0)
		return -1;
	d = opendir("/proc/self/fd");
	if (!d)
		return refuse(v, "/proc/self/fd: %s", strerror(errno));
	while ((e = readdir(d))) {
		char path[64], target[PATH_MAX];
		int fd = atoi(e->d_name);
		ssize_t n;

		if (*e->d_name == '.' || fd == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = 0;
		info(v, "%d=%s", fd, target);
		if (fd > max)
			escaped(v, "fd %d (%s) is open", fd, target);
	}
	closedir(d);
	if (!*v->escaped)
		blocked(v, "no descriptor above %lld (%s)", max, v->info);
	*v->info = 0;
	return 0;
}

/* --- other processes ----------------------------------------------------- */

/* Is @pid this process, or a child of it? */
static bool ours(pid_t pid)
{
	char path[64], buf[512], *p;
	int fd, ppid = -1;
	ssize_t n;

	if (pid == getpid())
		return true;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	p = strrchr(buf, ')'); /* the command name may hold blanks */
	if (p)
		sscanf(p + 1, " %*c %d", &ppid);
	return ppid == getpid();
}

/* Open each of @pid's descriptors through /proc/PID/fd. */
static void peek_fds(const char *proc_dir, struct verdict *v)
{
	char dir[96], path[PATH_MAX];
	int opened = 0, refused = 0, first_err = 0;
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/fd", proc_dir);
	d = opendir(dir);
	if (!d) {
		blocked(v, "%s: %s", dir, errname(errno));
		return;
	}
	while ((e = readdir(d))) {
		char target[PATH_MAX];
		ssize_t n;
		int fd;

		if (*e->d_name == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd < 0) {
			if (!refused++)
				first_err = errno;
			continue;
		}
		close(fd);
		n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = 0;
		if (opened++ < 8)
			escaped(v, "opened %s (%s)", path, target);
	}
	closedir(d);
	if (!opened)
		blocked(v, "%s: listed, %d opens refused (%s)", dir, refused,
			refused ? errname(first_err) : "none");
}

/* Another process's descriptors, memory and environment. */
static void peek_process(pid_t pid, struct verdict *v)
{
	char path[64], sub[96];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	peek_fds(path, v);
	/* Writable memory is another process's code: say which it was. */
	snprintf(sub, sizeof(sub), "%s/mem", path);
	fd = open(sub, O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		escaped(v, "opened %s for writing", sub);
	} else if ((fd = open(sub, O_RDONLY | O_CLOEXEC)) >= 0) {
		close(fd);
		escaped(v, "opened %s", sub);
	} else {
		blocked(v, "%s: %s", sub, errname(errno));
	}
	snprintf(sub, sizeof(sub), "%s/environ", path);
	fd = open(sub, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		char buf[256];
		ssize_t n = read(fd, buf, sizeof(buf));

		close(fd);
		if (n > 0)
			escaped(v, "read %s", sub);
		else
			blocked(v, "%s: read: %s", sub,
				n < 0 ? errname(errno) : "empty");
	} else {
		blocked(v, "%s: %s", sub, errname(errno));
	}
}

/* proc_peek [PID...]: other processes' files, memory and environment;
 * without PIDs every process this one can see that is not its own. */
static int attack_proc_peek(int argc, char **argv, struct verdict *v)
{
	int n = 0;

	if (argc) {
		for (int i = 0; i < argc; i++) {
			long long pid = number(v, "PID", argv[i]);

			if (pid < 0)
				return -1;
			peek_process((pid_t)pid, v);
		}
		return 0;
	}
	if (is_root())
		return refuse(
			v, "refusing to open every process's files as root "
			   "(device files have side effects): name the PIDs");
	DIR *d = opendir("/proc");
	struct dirent *e;

	if (!d)
		return refuse(v, "/proc: %s", strerror(errno));
	while ((e = readdir(d))) {
		pid_t pid = (pid_t)atoi(e->d_name);

		if (pid <= 0 || ours(pid))
			continue;
		n++;
		peek_process(pid, v);
	}
	closedir(d);
	if (!n)
		blocked(v, "no other process is visible");
	return 0;
}

static int signal_number(const char *s)
{
	static const struct {
		const char *name;
		int sig;
	} names[] = {
		{"KILL", SIGKILL}, {"TERM", SIGTERM}, {"STOP", SIGSTOP},
		{"0", 0},	   {NULL, 0},
	};

	for (int i = 0; names[i].name; i++)
		if (!strcmp(s, names[i].name))
			return names[i].sig;
	return atoi(s) > 0 && atoi(s) < 65 ? atoi(s) : -1;
}

/* kill PID [SIG]: SIG KILL (default), TERM, STOP, 0 or a number. */
static int attack_kill(int argc, char **argv, struct verdict *v)
{
	long long pid = number(v, "PID", argv[0]);
	int sig = argc > 1 ? signal_number(argv[1]) : SIGKILL;

	if (pid <= 0)
		return pid < 0 ? -1
			       : refuse(v,
					"PID must be positive (see kill_all)");
	if (sig < 0)
		return refuse(v, "%s is not a signal", argv[1]);
	if (sig && is_root())
		return refuse(v, "refusing to send signal %d to %lld as root",
			      sig, pid);
	if (!kill((pid_t)pid, sig))
		escaped(v, "sent signal %d to %lld", sig, pid);
	else
		blocked(v, "%s", errname(errno));
	return 0;
}

/* kill_all: kill(-1, SIGKILL) from a child.  In the sandbox it reaches
 * every process of the instance, this executor included, and nothing
 * else: the test reads the instance's death and checks everyone else. */
static int attack_kill_all(int argc, char **argv, struct verdict *v)
{
	struct {
		int ret, err;
	} res = {-1, 0};
	int pipefd[2], status;
	pid_t child;

	(void)argc;
	(void)argv;
	if (pipe2(pipefd, O_CLOEXEC))
		return refuse(v, "pipe: %s", strerror(errno));
	child = fork();
	if (child < 0)
		return refuse(v, "fork: %s", strerror(errno));
	if (!child) {
		res.ret = kill(-1, SIGKILL);
		res.err = errno;
		if (write(pipefd[1], &res, sizeof(res)) < 0)
			_exit(1);
		_exit(0);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &res, sizeof(res)) != (ssize_t)sizeof(res))
		res.err = EPIPE;
	close(pipefd[0]);
	waitpid(child, &status, 0);
	if (res.ret)
		blocked(v, "kill(-1): %s", errname(res.err));
	else
		info(v,
		     "kill(-1, SIGKILL) returned 0 and this executor survived");
	return 0;
}

/* ptrace PID|parent: PTRACE_ATTACH (and detach at once if it worked). */
static int attack_ptrace(int argc, char **argv, struct verdict *v)
{
	pid_t pid;

	(void)argc;
	if (!strcmp(argv[0], "parent")) {
		pid = getppid();
	} else {
		long long n = number(v, "PID", argv[0]);

		if (n <= 0)
			return n < 0 ? -1 : refuse(v, "PID must be positive");
		pid = (pid_t)n;
	}
	if (is_root())
		return refuse(v, "refusing to stop process %d as root",
			      (int)pid);
	if (syscall(SYS_ptrace, PTRACE_ATTACH, pid, NULL, NULL)) {
		blocked(v, "ptrace(PTRACE_ATTACH, %d): %s", (int)pid,
			errname(errno));
		return 0;
	}
	waitpid(pid, NULL, __WALL);
	syscall(SYS_ptrace, PTRACE_DETACH, pid, NULL, NULL);
	escaped(v, "attached to process %d", (int)pid);
	return 0;
}

/* oom_score_adj VALUE: make this process the last the OOM killer picks
 * (needs CAP_SYS_RESOURCE); the old value is put back. */
static int attack_oom_score_adj(int argc, char **argv, struct verdict *v)
{
	char old[32], now[32];
	ssize_t n;
	int fd = open("/proc/self/oom_score_adj", O_RDWR | O_CLOEXEC);

	(void)argc;
	if (fd < 0) {
		blocked(v, "/proc/self/oom_score_adj: %s", errname(errno));
		return 0;
	}
	n = pread(fd, old, sizeof(old) - 1, 0);
	old[n > 0 ? n : 0] = 0;
	if (pwrite(fd, argv[0], strlen(argv[0]), 0) < 0) {
		blocked(v, "%s", errname(errno));
		close(fd);
		return 0;
	}
	n = pread(fd, now, sizeof(now) - 1, 0);
	now[n > 0 ? n : 0] = 0;
	if (pwrite(fd, old, strlen(old), 0) < 0)
		info(v, "could not put %s back", old);
	close(fd);
	if (atoi(now) == atoi(argv[0]))
		escaped(v, "oom_score_adj is now %d (was %d)", atoi(now),
			atoi(old));
	else
		blocked(v, "the kernel kept %d", atoi(now));
	return 0;
}

/* --- network ------------------------------------------------------------- */

/* Connect @fd to @sa within 2 s; 0 or an errno. */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int err = 0;
	socklen_t elen = sizeof(err);

	if (!connect(fd, sa, len))
		return 0;
	if (errno != EINPROGRESS)
		return errno;
	if (poll(&p, 1, 2000) <= 0)
		return ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen))
		return errno;
	return err;
}

/* connect HOST PORT: TCP. */
static int attack_connect(int argc, char **argv, struct verdict *v)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	long long port = number(v, "PORT", argv[1]);
	int fd, err;

	(void)argc;
	if (port < 0 || port > 65535)
		return port < 0 ? -1 : refuse(v, "bad port %lld", port);
	if (inet_pton(AF_INET, argv[0], &sa.sin_addr) != 1)
		return refuse(v, "\"%s\" is not an IPv4 address", argv[0]);
	sa.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		blocked(v, "socket: %s", errname(errno));
		return 0;
	}
	err = connect_within(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (!err)
		escaped(v, "connected to %s:%lld", argv[0], port);
	else
		blocked(v, "%s", errname(err));
	return 0;
}

/* unix_connect PATH: a Unix socket; "@NAME" is in the abstract namespace
 * (which belongs to the network namespace). */
static int attack_unix_connect(int argc, char **argv, struct verdict *v)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(argv[0]);
	socklen_t len;
	int fd, err;

	(void)argc;
	if (n >= sizeof(sa.sun_path))
		return refuse(v, "the socket path is too long");
	memcpy(sa.sun_path, argv[0], n);
	if (*argv[0] == '@')
		sa.sun_path[0] = 0;
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
			  (*argv[0] != '@'));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		blocked(v, "socket: %s", errname(errno));
		return 0;
	}
	err = connect_within(fd, (struct sockaddr *)&sa, len);
	close(fd);
	if (!err)
		escaped(v, "connected to %s", argv[0]);
	else
		blocked(v, "%s", errname(err));
	return 0;
}

/* --- resource limits ----------------------------------------------------- */

/* alloc MIB: touch MIB MiB of memory, one page at a time. */
static int attack_alloc(int argc, char **argv, struct verdict *v)
{
	long long want = number(v, "MIB", argv[0]);
	long long got = 0;
	void **chunks;

	(void)argc;
	if (want < 0)
		return -1;
	chunks = calloc((size_t)want + 1, sizeof(*chunks));
	if (!chunks)
		return refuse(v, "calloc: %s", strerror(errno));
	for (; got < want; got++) {
		char *p = mmap(NULL, MiB, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			break;
		for (size_t off = 0; off < MiB; off += 4096)
			p[off] = (char)(got | 1);
		chunks[got] = p;
	}
	if (got < want)
		blocked(v, "mmap: %s after %lld MiB", errname(errno), got);
	else
		escaped(v, "touched %lld MiB", got);
	for (long long i = 0; i < got; i++)
		munmap(chunks[i], MiB);
	free(chunks);
	return 0;
}

/* fork_bomb [MAX]: fork until fork() fails (at most MAX children), then
 * kill and reap them all. */
static int attack_fork_bomb(int argc, char **argv, struct verdict *v)
{
	long long max = argc ? number(v, "MAX", argv[0]) : 4096;
	pid_t *kids;
	int n = 0, err = 0;

	if (max < 0)
		return -1;
	if (is_root())
		return refuse(v, "refusing to fork-bomb as root");
	kids = calloc((size_t)max + 1, sizeof(*kids));
	if (!kids)
		return refuse(v, "calloc: %s", strerror(errno));
	while (n < max) {
		pid_t pid = fork();

		if (pid < 0) {
			err = errno;
			break;
		}
		if (!pid) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			for (;;)
				pause();
		}
		kids[n++] = pid;
	}
	for (int i = 0; i < n; i++)
		kill(kids[i], SIGKILL);
	for (int i = 0; i < n; i++)
		while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
			;
	free(kids);
	if (err)
		blocked(v, "%s after %d forks", errname(err), n);
	else
		escaped(v, "forked %d processes", n);
	return 0;
}

static double seconds(const struct timeval *t)
{
	return (double)t->tv_sec + (double)t->tv_usec / 1e6;
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double spin_until;

static void *spin_thread(void *arg)
{
	volatile unsigned long x = 0;

	(void)arg;
	while (now_s() < spin_until)
		for (int i = 0; i < 100000; i++)
			x += (unsigned long)i;
	return NULL;
}

/* spin THREADS SECONDS MAXCPUS: busy threads; how many CPUs did we get? */
static int attack_spin(int argc, char **argv, struct verdict *v)
{
	long long threads = number(v, "THREADS", argv[0]);
	double secs = atof(argv[1]), max_cpus = atof(argv[2]), t0, wall, cpu,
	       cpus;
	struct rusage a, b;
	pthread_t tid[64];
	int started = 0;

	(void)argc;
	if (threads < 1 || threads > 64 || secs <= 0 || secs > 30 ||
	    max_cpus <= 0)
		return refuse(v,
			      "spin THREADS(1-64) SECONDS(<=30) MAXCPUS(>0)");
	getrusage(RUSAGE_SELF, &a);
	t0 = now_s();
	spin_until = t0 + secs;
	for (; started < threads; started++)
		if (pthread_create(&tid[started], NULL, spin_thread, NULL))
			break;
	for (int i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	wall = now_s() - t0;
	getrusage(RUSAGE_SELF, &b);
	cpu = seconds(&b.ru_utime) + seconds(&b.ru_stime) -
	      seconds(&a.ru_utime) - seconds(&a.ru_stime);
	cpus = cpu / wall;
	if (started < threads)
		info(v, "only %d threads started", started);
	if (cpus > max_cpus)
		escaped(v,
			"used %.2f CPUs (%.2f CPU-s in %.2f s), more than %.2f",
			cpus, cpu, wall, max_cpus);
	else
		blocked(v,
			"used %.2f CPUs (%.2f CPU-s in %.2f s), at most %.2f",
			cpus, cpu, wall, max_cpus);
	return 0;
}

/* widen_cpus: run on every CPU of the machine instead of the ones it was
 * given.  The answer names the CPUs before ("cpus=0-1") either way. */
static int attack_widen_cpus(int argc, char **argv, struct verdict *v)
{
	cpu_set_t before, all, after;
	char was[1024], now[1024];
	long n = sysconf(_SC_NPROCESSORS_CONF);
	int rc;

	(void)argc;
	(void)argv;
	if (sched_getaffinity(0, sizeof(before), &before))
		return refuse(v, "sched_getaffinity: %s", strerror(errno));
	CPU_ZERO(&all);
	for (long c = 0; c < n && c < CPU_SETSIZE; c++)
		CPU_SET((int)c, &all);
	rc = sched_setaffinity(0, sizeof(all), &all);
	if (sched_getaffinity(0, sizeof(after), &after))
		return refuse(v, "sched_getaffinity: %s", strerror(errno));
	mig_cpulist_format(&before, was, sizeof(was));
	mig_cpulist_format(&after, now, sizeof(now));
	if (!CPU_EQUAL(&before, &after))
		escaped(v, "cpus=%s widened to %s", was, now);
	else
		blocked(v, "cpus=%s kept (sched_setaffinity to all %ld: %s)", was, n,
			rc ? strerror(errno) : "no error, no more CPUs");
	return 0;
}

/* fill_tmp MAXMIB [DIR]: write until the disk (tmpfs) is full. */
static int attack_fill_tmp(int argc, char **argv, struct verdict *v)
{
	long long max = number(v, "MAXMIB", argv[0]);
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	unsigned long long total = 0;
	char path[PATH_MAX], *buf;
	int fd, err = 0;

	if (max < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/mig-hostile-fill-%d", dir,
		 (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		blocked(v, "cannot create a file in %s: %s", dir,
			errname(errno));
		return 0;
	}
	buf = malloc(MiB);
	if (!buf) {
		close(fd);
		unlink(path);
		return refuse(v, "malloc: %s", strerror(errno));
	}
	memset(buf, 'x', MiB);
	while (total < (unsigned long long)max * MiB) {
		ssize_t n = write(fd, buf, MiB);

		if (n < 0) {
			err = errno;
			break;
		}
		total += (unsigned long long)n;
	}
	free(buf);
	close(fd);
	unlink(path);
	if (err)
		blocked(v, "%s after %llu bytes", errname(err), total);
	else
		escaped(v, "wrote %llu bytes to %s without hitting a limit",
			total, dir);
	return 0;
}

/* --- system calls -------------------------------------------------------- */

/*
 * Each probe runs in a child of its own and returns the call's result
 * (errno set when negative).  Arguments are chosen so that a call that
 * gets past its permission check fails on them right after (EINVAL,
 * EBADF, ...) or does something the child's exit undoes.
 */
static char probe_dir[PATH_MAX]; /* an empty directory of ours */
static pid_t probe_parent;	 /* the executor's parent */

static long p_mount(void)
{
	long r = syscall(SYS_mount, "none", probe_dir, "tmpfs", 0UL, "size=1m");

	if (!r)
		syscall(SYS_umount2, probe_dir, 0);
	return r;
}

static long p_umount2(void)
{
	return syscall(SYS_umount2, probe_dir, 0);
}

static long p_pivot_root(void)
{
	return syscall(SYS_pivot_root, probe_dir, probe_dir);
}

static long p_chroot(void)
{
	return syscall(SYS_chroot, probe_dir);
}

static long p_unshare_user(void)
{
	return syscall(SYS_unshare, CLONE_NEWUSER);
}

static long p_unshare_mount(void)
{
	return syscall(SYS_unshare, CLONE_NEWNS);
}

static long p_unshare_net(void)
{
	return syscall(SYS_unshare, CLONE_NEWNET);
}

static long p_setns(void)
{
	int fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	return syscall(SYS_setns, fd, 0);
}

/* clone() with @flags; the new process exits at once. */
static long clone_with(unsigned long flags)
{
	long pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);

	if (pid == 0)
		_exit(0);
	if (pid > 0)
		waitpid((pid_t)pid, NULL, 0);
	return pid > 0 ? 0 : pid;
}

static long p_clone_newuser(void)
{
	return clone_with(CLONE_NEWUSER);
}

static long p_clone_newns(void)
{
	return clone_with(CLONE_NEWNS);
}

static long p_clone_newpid(void)
{
	return clone_with(CLONE_NEWPID);
}

static long p_clone_newnet(void)
{
	return clone_with(CLONE_NEWNET);
}

static long p_clone3_newuser(void)
{
	struct clone_args args = {.flags = CLONE_NEWUSER,
				  .exit_signal = SIGCHLD};
	long pid = syscall(SYS_clone3, &args, sizeof(args));

	if (pid == 0)
		_exit(0);
	if (pid > 0)
		waitpid((pid_t)pid, NULL, 0);
	return pid > 0 ? 0 : pid;
}

static long p_init_module(void)
{
	return syscall(SYS_init_module, NULL, 0UL, "");
}

static long p_finit_module(void)
{
	return syscall(SYS_finit_module, -1, "", 0);
}

static long p_delete_module(void)
{
	return syscall(SYS_delete_module, "mig_no_such_module", O_NONBLOCK);
}

/* More segments than the kernel takes: EINVAL once permitted. */
static long p_kexec_load(void)
{
	return syscall(SYS_kexec_load, 0UL, 1000000UL, NULL, 0UL);
}

/* No reboot magic: EINVAL once permitted. */
static long p_reboot(void)
{
	return syscall(SYS_reboot, 0, 0, 0, NULL);
}

static long p_bpf(void)
{
	union bpf_attr attr;
	long fd;

	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_ARRAY;
	attr.key_size = 4;
	attr.value_size = 4;
	attr.max_entries = 1;
	fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
	return fd;
}

static long p_perf_event_open(void)
{
	struct perf_event_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.type = PERF_TYPE_SOFTWARE;
	attr.size = sizeof(attr);
	attr.config = PERF_COUNT_SW_CPU_CLOCK;
	attr.disabled = 1;
	attr.exclude_kernel = 1;
	return syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0UL);
}

static long p_keyctl(void)
{
	return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING,
		       0);
}

static long p_io_uring_setup(void)
{
	struct io_uring_params params;

	memset(&params, 0, sizeof(params));
	return syscall(SYS_io_uring_setup, 4, &params);
}

/* User-mode-only faults: what an unprivileged process may ask for. */
static long p_userfaultfd(void)
{
	return syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
}

/* A file handle with room for the largest handle. */
union handle_buf {
	struct file_handle fh;
	char room[sizeof(struct file_handle) + MAX_HANDLE_SZ];
};

static long p_open_by_handle_at(void)
{
	union handle_buf h;

	memset(&h, 0, sizeof(h));
	h.fh.handle_bytes = 16; /* a handle to nothing: ESTALE once permitted */
	h.fh.handle_type = 1;
	return syscall(SYS_open_by_handle_at, AT_FDCWD, &h.fh, O_RDONLY);
}

static long p_name_to_handle_at(void)
{
	union handle_buf h;
	int mount_id;

	memset(&h, 0, sizeof(h));
	h.fh.handle_bytes = MAX_HANDLE_SZ;
	return syscall(SYS_name_to_handle_at, AT_FDCWD, "/", &h.fh, &mount_id,
		       0);
}

static long p_ptrace_traceme(void)
{
	return syscall(SYS_ptrace, PTRACE_TRACEME, 0, NULL, NULL);
}

/* Read from / write to address 8 of the executor's parent: EFAULT once
 * permitted, nothing changes. */
static long p_process_vm_readv(void)
{
	char buf[8];
	struct iovec local = {buf, sizeof(buf)},
		     remote = {(void *)8, sizeof(buf)};

	return syscall(SYS_process_vm_readv, probe_parent, &local, 1UL, &remote,
		       1UL, 0UL);
}

static long p_process_vm_writev(void)
{
	char buf[8] = {0};
	struct iovec local = {buf, sizeof(buf)},
		     remote = {(void *)8, sizeof(buf)};

	return syscall(SYS_process_vm_writev, probe_parent, &local, 1UL,
		       &remote, 1UL, 0UL);
}

static long p_kcmp(void)
{
	return syscall(SYS_kcmp, getpid(), probe_parent, 0 /* KCMP_FILE */, 0UL,
		       0UL);
}

static long p_pidfd_getfd(void)
{
	long pidfd = syscall(SYS_pidfd_open, probe_parent, 0);

	if (pidfd < 0)
		return pidfd;
	return syscall(SYS_pidfd_getfd, (int)pidfd, 0, 0);
}

static long p_sethostname(void)
{
	return syscall(SYS_sethostname, "mig-hostile", 11UL);
}

static long p_setdomainname(void)
{
	return syscall(SYS_setdomainname, "mig-hostile", 11UL);
}

/* SYSLOG_ACTION_SIZE_BUFFER: reading the kernel log's size. */
static long p_syslog(void)
{
	return syscall(SYS_syslog, 10, NULL, 0);
}

#ifdef SYS_iopl
static long p_iopl(void)
{
	return syscall(SYS_iopl, 3);
}

static long p_ioperm(void)
{
	return syscall(SYS_ioperm, 0x80UL, 1UL, 1);
}

#endif
static long p_fanotify_init(void)
{
	return syscall(SYS_fanotify_init,
		       FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_REPORT_FID,
		       O_RDONLY);
}

static long p_swapon(void)
{
	return syscall(SYS_swapon, "/nonexistent-swap", 0);
}

static long p_acct(void)
{
	return syscall(SYS_acct, "/nonexistent-acct");
}

/* A GPU device node of our own: needs CAP_MKNOD and a mount without nodev. */
static long p_mknod(void)
{
	char path[PATH_MAX + 16];
	long r;

	snprintf(path, sizeof(path), "%s/nvidiactl", probe_dir);
	r = syscall(SYS_mknodat, AT_FDCWD, path, (long)(S_IFCHR | 0666),
		    (long)makedev(195, 255));
	if (!r)
		unlink(path);
	return r;
}

static long p_setuid(void)
{
	long r = syscall(SYS_setuid, 0);

	if (!r && getuid() != 0) { /* "worked", but changed nothing */
		errno = EPERM;
		return -1;
	}
	return r;
}

static long p_capset(void)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -1;
	data[0].effective = data[0].permitted = data[0].inheritable = ~0u;
	data[1].effective = data[1].permitted = data[1].inheritable = ~0u;
	return syscall(SYS_capset, &hdr, data);
}

static long p_raw_socket(void)
{
	return socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
}

static long p_packet_socket(void)
{
	return socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
}

static long p_setrlimit(void)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_NOFILE, &r))
		return -1;
	if (r.rlim_max == RLIM_INFINITY) {
		errno = EINVAL;
		return -1;
	}
	r.rlim_max++;
	return setrlimit(RLIMIT_NOFILE, &r);
}

static long p_nice(void)
{
	return setpriority(PRIO_PROCESS, 0, -20);
}

/* Real-time scheduling: one such thread can starve a CPU of everyone. */
static long p_rt_sched(void)
{
	struct sched_param sp = {.sched_priority = 1};

	return sched_setscheduler(0, SCHED_FIFO, &sp);
}

struct probe {
	const char *name;
	long (*call)(void);
	bool harms_host;  /* refused as root */
	int also_blocked; /* an errno that means "not permitted" here too */
};

static const struct probe probes[] = {
	{"mount", p_mount, false, 0},
	{"umount2", p_umount2, false, 0},
	{"pivot_root", p_pivot_root, false, 0},
	{"chroot", p_chroot, false, 0},
	{"unshare", p_unshare_user, false, 0},
	{"unshare_mount", p_unshare_mount, false, 0},
	{"unshare_net", p_unshare_net, false, 0},
	{"setns", p_setns, false, 0},
	{"clone_newuser", p_clone_newuser, false, 0},
	{"clone_newns", p_clone_newns, false, 0},
	{"clone_newpid", p_clone_newpid, false, 0},
	{"clone_newnet", p_clone_newnet, false, 0},
	{"clone3_newuser", p_clone3_newuser, false, 0},
	{"init_module", p_init_module, false, 0},
	{"finit_module", p_finit_module, false, 0},
	{"delete_module", p_delete_module, false, 0},
	{"kexec_load", p_kexec_load, false, 0},
	{"reboot", p_reboot, false, 0},
	{"bpf", p_bpf, false, 0},
	{"perf_event_open", p_perf_event_open, false, 0},
	{"keyctl", p_keyctl, false, 0},
	{"io_uring_setup", p_io_uring_setup, false, 0},
	{"userfaultfd", p_userfaultfd, false, 0},
	{"open_by_handle_at", p_open_by_handle_at, false, 0},
	{"name_to_handle_at", p_name_to_handle_at, false, 0},
	{"ptrace_traceme", p_ptrace_traceme, false, 0},
	{"process_vm_readv", p_process_vm_readv, false, ESRCH},
	{"process_vm_writev", p_process_vm_writev, false, ESRCH},
	{"kcmp", p_kcmp, false, ESRCH},
	{"pidfd_getfd", p_pidfd_getfd, false, ESRCH},
	{"sethostname", p_sethostname, true, 0},
	{"setdomainname", p_setdomainname, true, 0},
	{"syslog", p_syslog, false, 0},
#ifdef SYS_iopl
	{"iopl", p_iopl, false, 0},
	{"ioperm", p_ioperm, false, 0},
#endif
	{"fanotify_init", p_fanotify_init, false, 0},
	{"swapon", p_swapon, false, 0},
	{"acct", p_acct, false, 0},
	{"mknod", p_mknod, false, 0},
	/* EINVAL: uid 0 does not exist in the function's user namespace. */
	{"setuid", p_setuid, false, EINVAL},
	{"capset", p_capset, false, 0},
	{"raw_socket", p_raw_socket, false, EAFNOSUPPORT},
	{"packet_socket", p_packet_socket, false, EAFNOSUPPORT},
	{"setrlimit", p_setrlimit, false, 0},
	{"nice", p_nice, false, 0},
	{"rt_sched", p_rt_sched, false, 0},
	{NULL, NULL, false, 0},
};

static const struct probe *find_probe(const char *name)
{
	for (const struct probe *p = probes; p->name; p++)
		if (!strcmp(p->name, name))
			return p;
	return NULL;
}

static void run_probe(const struct probe *p, struct verdict *v)
{
	struct {
		long ret;
		int err;
	} res = {-1, 0};
	int pipefd[2], status = 0;
	pid_t child;

	if (pipe2(pipefd, O_CLOEXEC)) {
		blocked(v, "%s: pipe: %s", p->name, errname(errno));
		return;
	}
	child = fork();
	if (child < 0) {
		blocked(v, "%s: fork: %s", p->name, errname(errno));
		close(pipefd[0]);
		close(pipefd[1]);
		return;
	}
	if (!child) {
		close(pipefd[0]);
		errno = 0;
		res.ret = p->call();
		res.err = errno;
		if (write(pipefd[1], &res, sizeof(res)) < 0)
			_exit(1);
		_exit(0);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &res, sizeof(res)) != (ssize_t)sizeof(res))
		res.ret = -2;
	close(pipefd[0]);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (res.ret == -2) /* the filter may kill instead of failing */
		blocked(v, "%s: the probe died (%s)", p->name,
			WIFSIGNALED(status) ? strsignal(WTERMSIG(status))
					    : "no answer");
	else if (res.ret >= 0)
		escaped(v, "%s succeeded", p->name);
	else if (res.err == EPERM || res.err == EACCES || res.err == ENOSYS ||
		 (p->also_blocked && res.err == p->also_blocked))
		blocked(v, "%s: %s", p->name, errname(res.err));
	else
		escaped(v, "%s got past the permission check (%s)", p->name,
			errname(res.err));
}

/* syscall NAME...: see probes[]. */
static int attack_syscall(int argc, char **argv, struct verdict *v)
{
	char tmpl[] = "/tmp/mig-hostile-XXXXXX";

	for (int i = 0; i < argc; i++) {
		const struct probe *p = find_probe(argv[i]);

		if (!p)
			return refuse(v, "no probe \"%s\"", argv[i]);
		if (p->harms_host && is_root())
			return refuse(v, "refusing to try %s as root", p->name);
	}
	if (!mkdtemp(tmpl))
		return refuse(v, "mkdtemp in /tmp: %s", strerror(errno));
	snprintf(probe_dir, sizeof(probe_dir), "%s", tmpl);
	probe_parent = getppid();
	for (int i = 0; i < argc; i++)
		run_probe(find_probe(argv[i]), v);
	rmdir(tmpl);
	return 0;
}

/* --- the GPU server ------------------------------------------------------ */

typedef int (*cu_init_fn)(unsigned int);
typedef int (*cu_device_get_fn)(int *, int);
typedef int (*cu_device_get_name_fn)(char *, int, int);

/* The instance's segment: mapped from MIG_SEGMENT_FD if the shim has not
 * taken it yet, else the shim's own mapping. */
static struct mig_seg_header *find_segment(void)
{
	const char *fdstr = getenv("MIG_SEGMENT_FD");
	char line[512];
	FILE *f;

	if (fdstr && *fdstr) {
		struct mig_seg_header h;
		int fd = atoi(fdstr);

		if (pread(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
		    h.magic == MIG_WIRE_MAGIC) {
			void *p = mmap(NULL, h.size, PROT_READ | PROT_WRITE,
				       MAP_SHARED, fd, 0);

			if (p != MAP_FAILED)
				return p;
		}
	}
	f = fopen("/proc/self/maps", "re");
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long start, end;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3 ||
		    perms[0] != 'r' || perms[1] != 'w' ||
		    !strstr(line, "memfd:") ||
		    end - start < sizeof(struct mig_seg_header))
			continue;
		if (((struct mig_seg_header *)start)->magic == MIG_WIRE_MAGIC) {
			fclose(f);
			return (struct mig_seg_header *)start;
		}
	}
	if (f)
		fclose(f);
	return NULL;
}

/* ring MODE: garbage, size, tail, op or header; then cuInit and
 * cuDeviceGet through the shim.  This instance may die or hang (the
 * invocation's timeout); the test checks that nobody else notices. */
static int attack_ring(int argc, char **argv, struct verdict *v)
{
	struct mig_seg_header *hdr = find_segment();
	const char *mode = argv[0];
	struct mig_msg_hdr m = {0};
	uint8_t *ring;
	uint32_t head, tail, mask;
	cu_init_fn cu_init;
	cu_device_get_fn cu_device_get;
	void *h;
	int dev = -1, r1, r2;

	(void)argc;
	if (!hdr)
		return refuse(v, "no segment: MIG_SEGMENT_FD is not set and no "
				 "mapping has the magic");
	if (hdr->req_size < 4096 || (hdr->req_size & (hdr->req_size - 1)) ||
	    hdr->req_off + hdr->req_size > hdr->size)
		return refuse(v, "the segment's layout is already broken");
	ring = (uint8_t *)hdr + hdr->req_off;
	mask = (uint32_t)hdr->req_size - 1;
	head = __atomic_load_n(&hdr->req_head.value, __ATOMIC_ACQUIRE);
	if (!strcmp(mode, "garbage")) {
		/* Random bytes everywhere, and 4 KiB of them announced. */
		for (size_t off = 0; off < hdr->req_size; off += 256)
			if (getrandom(ring + off, 256, 0) < 0)
				memset(ring + off, 0xa5, 256);
		tail = head + 4096;
	} else if (!strcmp(mode, "size")) {
		/* One message claiming to be almost 4 GiB long. */
		m.size = 0xfffffff0u;
		m.op = 1;
		memcpy(ring + (head & mask), &m, sizeof(m));
		tail = head + 64;
	} else if (!strcmp(mode, "tail")) {
		/* A tail 2 GiB ahead of the head, in a 4 MiB ring. */
		tail = head + 0x80000000u;
	} else if (!strcmp(mode, "op")) {
		/* Well framed, but no such operation or reply slot. */
		m.size = 64;
		m.op = 0xffff;
		m.slot = 0xffff;
		m.flags = 0xffffffffu;
		memset(ring + (head & mask), 0xff, 64);
		memcpy(ring + (head & mask), &m, sizeof(m));
		tail = head + 64;
	} else if (!strcmp(mode, "header")) {
		/* The layout the server read at start, scribbled over, then
		 * an absurd message. */
		hdr->req_off = ~0ull;
		hdr->req_size = 3;
		hdr->reply_off = ~0ull;
		hdr->heap_off = ~0ull;
		hdr->heap_size = ~0ull;
		hdr->size = 1;
		m.size = 0xfffffff0u;
		memcpy(ring + (head & mask), &m, sizeof(m));
		tail = head + 64;
	} else {
		return refuse(v,
			      "ring MODE: garbage, size, tail, op or header");
	}
	__atomic_store_n(&hdr->req_tail.value, tail, __ATOMIC_RELEASE);
	__atomic_fetch_add(&hdr->doorbell.value, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &hdr->doorbell.value, FUTEX_WAKE, INT_MAX, NULL,
		NULL, 0);
	usleep(200 * 1000);

	h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return refuse(v, "libcuda.so.1: %s", dlerror());
	cu_init = (cu_init_fn)dlsym(h, "cuInit");
	cu_device_get = (cu_device_get_fn)dlsym(h, "cuDeviceGet");
	if (!cu_init || !cu_device_get)
		return refuse(v, "libcuda.so.1 has no cuInit/cuDeviceGet");
	r1 = cu_init(0);
	r2 = cu_device_get(&dev, 0);
	info(v, "ring %s written; cuInit=%d cuDeviceGet=%d", mode, r1, r2);
	return 0;
}

/* cuda_call: cuInit, cuDeviceGet, cuDeviceGetName through the shim. */
static int attack_cuda_call(int argc, char **argv, struct verdict *v)
{
	cu_device_get_name_fn get_name;
	cu_device_get_fn get;
	cu_init_fn init;
	char name[256] = "?";
	int dev = -1, r1, r2, r3 = -1;
	void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);

	(void)argc;
	(void)argv;
	if (!h)
		return refuse(v, "libcuda.so.1: %s", dlerror());
	init = (cu_init_fn)dlsym(h, "cuInit");
	get = (cu_device_get_fn)dlsym(h, "cuDeviceGet");
	get_name = (cu_device_get_name_fn)dlsym(h, "cuDeviceGetName");
	if (!init || !get || !get_name)
		return refuse(v, "libcuda.so.1 lacks "
				 "cuInit/cuDeviceGet/cuDeviceGetName");
	r1 = init(0);
	r2 = r1 ? -1 : get(&dev, 0);
	if (!r1 && !r2)
		r3 = get_name(name, sizeof(name), dev);
	for (char *p = name; *p; p++) /* one word */
		if (*p == ' ')
			*p = '_';
	info(v, "cuInit=%d cuDeviceGet=%d cuDeviceGetName=%d name=%s", r1, r2,
	     r3, name);
	return 0;
}

/* --- who we are ---------------------------------------------------------- */

/* The value of "@key:" in /proc/self/status, blanks squeezed out. */
static void status_field(const char *key, char *out, size_t n)
{
	char line[256];
	size_t k = strlen(key);
	FILE *f = fopen("/proc/self/status", "re");

	snprintf(out, n, "?");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, k) && line[k] == ':') {
			char *p = line + k + 1;

			p += strspn(p, " \t");
			p[strcspn(p, "\n")] = 0;
			for (char *q = p; *q; q++)
				if (*q == '\t' || *q == ' ')
					*q = ',';
			snprintf(out, n, "%s", p);
			break;
		}
	if (f)
		fclose(f);
}

/* whoami: uid, pid, hostname, capabilities, filter; KEY=VALUE words. */
static int attack_whoami(int argc, char **argv, struct verdict *v)
{
	char host[256] = "?", cwd[PATH_MAX] = "?", cap[64], nnp[16],
	     seccomp[16];

	(void)argc;
	(void)argv;
	gethostname(host, sizeof(host));
	if (!getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), "?");
	status_field("CapEff", cap, sizeof(cap));
	status_field("NoNewPrivs", nnp, sizeof(nnp));
	status_field("Seccomp", seccomp, sizeof(seccomp));
	info(v,
	     "uid=%d euid=%d gid=%d pid=%d ppid=%d host=%s cwd=%s capeff=%s "
	     "no_new_privs=%s seccomp=%s",
	     (int)getuid(), (int)geteuid(), (int)getgid(), (int)getpid(),
	     (int)getppid(), host, cwd, cap, nnp, seccomp);
	return 0;
}

/* --- the handler --------------------------------------------------------- */

struct attack {
	const char *name;
	int min_args, max_args;
	bool harms_host; /* refused as root */
	int (*run)(int argc, char **argv, struct verdict *v);
};

static const struct attack attacks[] = {
	{"whoami", 0, 0, false, attack_whoami},
	{"open_dev", 1, MAX_WORDS, false, attack_open_dev},
	{"dev_extra", 0, 0, false, attack_dev_extra},
	{"dlopen", 1, MAX_WORDS, false, attack_dlopen},
	{"dlopen_cuda", 0, 0, false, attack_dlopen_cuda},
	{"dlopen_nvml", 0, 0, false, attack_dlopen_nvml},
	{"nvml", 0, 0, false, attack_nvml},
	{"read", 1, MAX_WORDS, false, attack_read},
	{"list", 1, MAX_WORDS, false, attack_list},
	{"exists", 1, MAX_WORDS, false, attack_exists},
	{"write_dir", 1, MAX_WORDS, false, attack_write_dir},
	{"open_write", 1, MAX_WORDS, false, attack_open_write},
	{"proc_sys_write", 1, MAX_WORDS, false, attack_proc_sys_write},
	{"shm", 0, 1, false, attack_shm},
	{"env_grep", 1, MAX_WORDS, false, attack_env_grep},
	{"leaked_fds", 1, 1, false, attack_leaked_fds},
	{"proc_peek", 0, MAX_WORDS, false, attack_proc_peek},
	{"kill", 1, 2, false, attack_kill},
	{"kill_all", 0, 0, true, attack_kill_all},
	{"ptrace", 1, 1, true, attack_ptrace},
	{"oom_score_adj", 1, 1, false, attack_oom_score_adj},
	{"connect", 2, 2, false, attack_connect},
	{"unix_connect", 1, 1, false, attack_unix_connect},
	{"alloc", 1, 1, false, attack_alloc},
	{"fork_bomb", 0, 1, true, attack_fork_bomb},
	{"spin", 3, 3, false, attack_spin},
	{"widen_cpus", 0, 0, false, attack_widen_cpus},
	{"fill_tmp", 1, 2, false, attack_fill_tmp},
	{"syscall", 1, MAX_WORDS, false, attack_syscall},
	{"ring", 1, 1, false, attack_ring},
	{"cuda_call", 0, 0, false, attack_cuda_call},
	{NULL, 0, 0, false, NULL},
};

static int reply(struct mig_payload *out, const char *kind, const char *text,
		 int status)
{
	size_t n = strlen(kind) + 1 + strlen(text);

	out->data = malloc(n + 1);
	if (!out->data)
		return 1;
	snprintf(out->data, n + 1, "%s %s", kind, text);
	out->len = n;
	strcpy(out->content_type, "text/plain");
	return status;
}

/* The handler: "NAME ARG..." in, "blocked/ESCAPED/info ..." out. */
int attack(const struct mig_payload *in, struct mig_payload *out)
{
	static struct verdict v;
	char line[8192], *words[MAX_WORDS + 1], *save = NULL;
	const struct attack *a;
	int n = 0;

	memset(&v, 0, sizeof(v));
	if (in->len >= sizeof(line))
		return reply(out, "error", "the request is longer than 8 KiB",
			     2);
	memcpy(line, in->data, in->len);
	line[in->len] = 0;
	for (char *w = strtok_r(line, " \t\r\n", &save); w && n <= MAX_WORDS;
	     w = strtok_r(NULL, " \t\r\n", &save))
		words[n++] = w;
	if (!n)
		return reply(out, "error",
			     "empty request: send \"ATTACK ARG...\"", 2);
	for (a = attacks; a->name && strcmp(a->name, words[0]); a++)
		;
	if (!a->name)
		return reply(out, "error", "no such attack", 2);
	if (n - 1 < a->min_args || n - 1 > a->max_args)
		return reply(out, "error", "wrong number of arguments", 2);
	if (a->harms_host && is_root())
		return reply(
			out, "error",
			"refusing to run this as root: it would hit the host",
			2);
	if (a->run(n - 1, words + 1, &v))
		return reply(out, "error", v.error, 2);
	if (*v.escaped)
		return reply(out, "ESCAPED", v.escaped, 0);
	if (*v.info)
		return reply(out, "info", v.info, 0);
	return reply(out, "blocked", v.blocked, 0);
}
