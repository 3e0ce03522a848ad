/*
 * oci.c - OCI runtime mode: the executor run by crun or runc (or, through
 * a command template, by an HPC runtime), walled off as the built-in
 * sandbox walls it off.
 *
 * oci_write_bundle() turns a struct mig_sandbox_plan into a bundle's
 * config.json (OCI runtime spec 1.0.2):
 *
 *   namespaces  user (container uid/gid 1000 = host plan->uid/gid, nothing
 *               else mapped), mount, pid, ipc, uts (hostname = instance
 *               id), cgroup, and network unless the plan shares the host's;
 *   process     the executor as uid/gid 1000, no capability in any set,
 *               no_new_privs, no core dumps, no terminal;
 *   files       a read-only root; /proc of its own; /dev a tmpfs with null,
 *               zero, full, random, urandom and tty only (no /dev/nvidia*,
 *               and a device cgroup that allows those six and nothing
 *               else); private /dev/shm and /tmp; every plan->ro_paths
 *               entry read-only at its host path; plan->hide and the usual
 *               /proc files masked; no /sys;
 *   limits      memory, CPU and pids of the plan, in the instance's cgroup;
 *   seccomp     the deny list of sandbox/denied_syscalls.h (EPERM), clone
 *               with a namespace flag (EPERM), clone3 (ENOSYS).
 *
 * The host's "/" cannot be a container's root as it is: runtimes enter the
 * root with pivot_root(2), which refuses the mount the caller already has
 * as its root.  For rootfs "/" the bundle therefore gets a root of its own,
 * <bundle>/rootfs, built like the sandbox's: /usr and /bin, /lib*, /sbin as
 * the host has them (symlinks, or read-only binds), a few files of /etc and
 * a passwd/group/hosts naming the function's user.  Any other rootfs (an
 * unpacked image) is the root as it is.
 *
 * Nothing of the container's root is mapped into its user namespace, so
 * the runtime, which mounts as that unmapped root, cannot create mount
 * points in root-owned directories: they are made here, beforehand (a path
 * through a symlink is left to the runtime, which resolves it inside the
 * root).
 *
 * oci_argv() makes the command line: `<runtime> run --bundle B
 * --preserve-fds N ID`, or the node's command template with its
 * placeholders replaced.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "daemon.h"
#include "denied_syscalls.h"
#include "etc_files.h"

#define OCI_VERSION "1.0.2"
#define INNER_ID 1000                 /* the function's uid/gid inside */
#define SHM_SIZE (64ull << 20)        /* /dev/shm, as in the sandbox */
#define DEV_SIZE (64ull << 10)        /* /dev holds device nodes only */
#define CPU_PERIOD 100000             /* microseconds, as isolation.c */
#define CGROUP_FS "/sys/fs/cgroup"
#define OWN_ROOT "rootfs"             /* under the bundle, for rootfs "/" */

/* --- building the configuration ------------------------------------------- */

/* One configuration being built; the first error is the one reported. */
struct spec {
	const struct mig_sandbox_plan *plan;
	char *err;
	size_t errlen;
	bool failed;
};

static void spec_fail(struct spec *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void spec_fail(struct spec *s, const char *fmt, ...)
{
	va_list ap;

	if (s->failed)
		return;
	s->failed = true;
	va_start(ap, fmt);
	vsnprintf(s->err, s->errlen, fmt, ap);
	va_end(ap);
}

static void spec_oom(struct spec *s)
{
	spec_fail(s, "out of memory while writing the OCI configuration");
}

/* A JSON string of @text; @what names it in the error if @text is not
 * UTF-8, which JSON (and so an OCI configuration) cannot carry. */
static json_t *jstr(struct spec *s, const char *what, const char *text)
{
	json_t *v = json_string(text), *raw;

	if (v)
		return v;
	raw = json_string_nocheck(text);
	if (raw)
		spec_fail(s, "%s is not UTF-8 text, which an OCI configuration "
			  "cannot carry: \"%.80s\"", what, text);
	else
		spec_oom(s);
	json_decref(raw);
	return NULL;
}

static json_t *jint(struct spec *s, long long n)
{
	json_t *v = json_integer(n);

	if (!v)
		spec_oom(s);
	return v;
}

/* Add @v (a new reference, NULL after an error) to object @o. */
static void set(struct spec *s, json_t *o, const char *key, json_t *v)
{
	/* json_object_set_new() releases @v when it fails, and fails
	 * without harm when @o or @v is NULL. */
	if (json_object_set_new(o, key, v))
		spec_oom(s);
}

static void push(struct spec *s, json_t *a, json_t *v)
{
	if (json_array_append_new(a, v))
		spec_oom(s);
}

static json_t *obj(struct spec *s)
{
	json_t *o = json_object();

	if (!o)
		spec_oom(s);
	return o;
}

static json_t *arr(struct spec *s)
{
	json_t *a = json_array();

	if (!a)
		spec_oom(s);
	return a;
}

/* An array of the NULL-ended @list; @what names an element in errors. */
static json_t *str_array(struct spec *s, const char *what, char *const *list)
{
	json_t *a = arr(s);
	char name[64];

	for (int i = 0; list && list[i]; i++) {
		snprintf(name, sizeof(name), "%s %d", what, i);
		push(s, a, jstr(s, name, list[i]));
	}
	return a;
}

/* --- process -------------------------------------------------------------- */

static json_t *process(struct spec *s)
{
	static const char *const sets[] = {
		"bounding", "effective", "inheritable", "permitted", "ambient",
	};
	const struct mig_sandbox_plan *p = s->plan;
	json_t *proc = obj(s), *user = obj(s), *caps = obj(s), *rl = obj(s),
	       *rlimits = arr(s);

	set(s, proc, "terminal", json_false());
	set(s, user, "uid", jint(s, INNER_ID));
	set(s, user, "gid", jint(s, INNER_ID));
	set(s, proc, "user", user);
	set(s, proc, "args", str_array(s, "executor argument", p->argv));
	set(s, proc, "env",
	    str_array(s, "executor environment entry", p->envp));
	set(s, proc, "cwd", jstr(s, "the working directory", p->cwd));
	/* Every set present and empty: a runtime's defaults do not apply. */
	for (size_t i = 0; i < sizeof(sets) / sizeof(*sets); i++)
		set(s, caps, sets[i], arr(s));
	set(s, proc, "capabilities", caps);
	set(s, rl, "type", jstr(s, "rlimit", "RLIMIT_CORE"));
	set(s, rl, "soft", jint(s, 0));
	set(s, rl, "hard", jint(s, 0));
	push(s, rlimits, rl);
	set(s, proc, "rlimits", rlimits);
	set(s, proc, "noNewPrivileges", json_true());
	return proc;
}

/* --- mounts --------------------------------------------------------------- */

static void mount_add(struct spec *s, json_t *mounts, const char *dst,
		      const char *type, const char *src,
		      const char *const *opts)
{
	json_t *m = obj(s), *o = arr(s);

	set(s, m, "destination", jstr(s, "a mount point", dst));
	set(s, m, "type", jstr(s, "a mount type", type));
	set(s, m, "source", jstr(s, "a mount source", src));
	for (int i = 0; opts[i]; i++)
		push(s, o, jstr(s, "a mount option", opts[i]));
	set(s, m, "options", o);
	push(s, mounts, m);
}

/* Host @path, read-only at the same path inside. */
static void bind_ro(struct spec *s, json_t *mounts, const char *path)
{
	static const char *const opts[] = {
		"rbind", "ro", "nosuid", "nodev", NULL,
	};

	mount_add(s, mounts, path, "bind", path, opts);
}

static void tmpfs(struct spec *s, json_t *mounts, const char *dst,
		  const char *flags, const char *mode, uint64_t size)
{
	const char *opts[8];
	char mode_opt[32], size_opt[48], buf[64];
	char *save = NULL, *tok;
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", flags);
	for (tok = strtok_r(buf, ",", &save); tok && n < 5;
	     tok = strtok_r(NULL, ",", &save))
		opts[n++] = tok;
	snprintf(mode_opt, sizeof(mode_opt), "mode=%s", mode);
	opts[n++] = mode_opt;
	if (size) { /* 0: the kernel's default, half the memory (and the
		     * cgroup's limit, which tmpfs pages count against) */
		snprintf(size_opt, sizeof(size_opt), "size=%llu",
			 (unsigned long long)size);
		opts[n++] = size_opt;
	}
	opts[n] = NULL;
	mount_add(s, mounts, dst, "tmpfs", "tmpfs", opts);
}

/* Is @path @dir or under it? */
static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(path, dir, n) && (path[n] == '/' || !path[n]);
}

/*
 * Make the mount point @path (absolute, as seen inside) in the root open as
 * @rootfd: directories 0755 and, for a file (@dir false), an empty 0644
 * file, all owned by whoever runs the daemon.  Components are opened
 * without following symlinks: a symlink (in an image, or /bin -> usr/bin)
 * stops the walk, and the runtime resolves it inside the root later.
 * 0, or -errno.
 */
static int mountpoint(int rootfd, const char *path, bool dir)
{
	char buf[PATH_MAX], *name, *next, *save = NULL;
	int fd = dup(rootfd), rc = 0;

	if (fd < 0)
		return -errno;
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
		close(fd);
		return -ENAMETOOLONG;
	}
	for (name = strtok_r(buf, "/", &save); name; name = next) {
		bool last;
		int sub;

		next = strtok_r(NULL, "/", &save);
		last = !next;
		if (!strcmp(name, ".") || !strcmp(name, "..")) {
			rc = -EINVAL;
			break;
		}
		if (last && !dir) {
			sub = openat(fd, name, O_WRONLY | O_CREAT | O_EXCL |
				     O_NOFOLLOW | O_CLOEXEC, 0644);
			if (sub >= 0)
				close(sub);
			else if (errno != EEXIST)
				rc = -errno;
			break;
		}
		if (mkdirat(fd, name, 0755) && errno != EEXIST) {
			rc = -errno;
			break;
		}
		sub = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW |
			     O_CLOEXEC);
		if (sub < 0) {
			/* A symlink or a file already there: the runtime's
			 * business (it fails clearly if it cannot use it). */
			if (errno != ELOOP && errno != ENOTDIR)
				rc = -errno;
			break;
		}
		close(fd);
		fd = sub;
	}
	close(fd);
	return rc;
}

/* Where the runtime mounts a fresh file system of its own making: mount
 * points under these are created by the runtime, inside that file system. */
static bool on_fresh_fs(const char *path)
{
	return under(path, "/proc") || under(path, "/dev") ||
	       under(path, "/tmp");
}

/* The root being prepared: the bundle's own (rootfs "/") or an image. */
struct root {
	int fd;
	bool own;        /* ours: every mount point must be made */
	char path[PATH_MAX];
};

/* A mount point for host @src at @dst inside.  Errors count for our own
 * root; in an image (which may be read-only) the runtime has the last
 * word. */
static void root_mountpoint(struct spec *s, struct root *r, const char *dst,
			    const char *src)
{
	struct stat st;
	int rc;

	if (on_fresh_fs(dst))
		return;
	if (stat(src, &st)) {
		spec_fail(s, "cannot show %s to the function: %s", src,
			  strerror(errno));
		return;
	}
	rc = mountpoint(r->fd, dst, S_ISDIR(st.st_mode));
	if (rc && r->own)
		spec_fail(s, "cannot make the mount point %s in %s: %s", dst,
			  r->path, strerror(-rc));
}

/* Write @text to @name in directory @dirfd (replacing what was there). */
static int write_at(int dirfd, const char *name, const char *text)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
			O_CLOEXEC, 0644);
	size_t n = strlen(text);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, text, n) != (ssize_t)n)
		rc = errno ? -errno : -EIO;
	if (close(fd) && !rc)
		rc = -errno;
	return rc;
}

/* Write @text as /etc/@name of our own root. */
static void etc_file(struct spec *s, struct root *r, int etcfd,
		     const char *name, const char *text)
{
	int rc;

	if (!s->failed && (rc = write_at(etcfd, name, text)))
		spec_fail(s, "cannot write %s/etc/%s: %s", r->path, name,
			  strerror(-rc));
}

/* Our own root for rootfs "/": system directories and /etc. */
static void own_root(struct spec *s, struct root *r, json_t *mounts)
{
	static const char *const top[] = {
		"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", NULL,
	};
	const struct mig_sandbox_plan *p = s->plan;
	char path[PATH_MAX], target[PATH_MAX], text[512];
	struct dirent *e;
	struct stat st;
	int etcfd;
	DIR *d;

	for (int i = 0; top[i] && !s->failed; i++) {
		snprintf(path, sizeof(path), "/%s", top[i]);
		if (lstat(path, &st))
			continue;
		if (S_ISLNK(st.st_mode)) { /* merged /usr: bin -> usr/bin */
			ssize_t n = readlink(path, target, sizeof(target) - 1);

			if (n < 0)
				continue;
			target[n] = 0;
			if (symlinkat(target, r->fd, top[i]) && errno != EEXIST)
				spec_fail(s, "cannot make the symlink %s in "
					  "%s: %s", path, r->path,
					  strerror(errno));
		} else if (S_ISDIR(st.st_mode)) {
			root_mountpoint(s, r, path, path);
			bind_ro(s, mounts, path);
		}
	}
	if (s->failed)
		return;
	if (mkdirat(r->fd, "etc", 0755) && errno != EEXIST) {
		spec_fail(s, "cannot make %s/etc: %s", r->path,
			  strerror(errno));
		return;
	}
	etcfd = openat(r->fd, "etc",
		       O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (etcfd < 0) {
		spec_fail(s, "cannot open %s/etc: %s", r->path,
			  strerror(errno));
		return;
	}
	d = opendir("/etc");
	while (d && !s->failed && (e = readdir(d))) {
		if (*e->d_name == '.' || !mig_etc_wanted(e->d_name, p->network))
			continue;
		snprintf(path, sizeof(path), "/etc/%s", e->d_name);
		if (lstat(path, &st))
			continue;
		if (S_ISLNK(st.st_mode)) { /* resolved inside, as on the host */
			ssize_t n = readlink(path, target, sizeof(target) - 1);

			if (n < 0)
				continue;
			target[n] = 0;
			if (symlinkat(target, etcfd, e->d_name) &&
			    errno != EEXIST)
				spec_fail(s, "cannot make the symlink %s in "
					  "%s: %s", path, r->path,
					  strerror(errno));
		} else if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
			root_mountpoint(s, r, path, path);
			bind_ro(s, mounts, path);
		}
	}
	if (d)
		closedir(d);
	/* Who the function is: getpwuid() and getpass.getuser() work. */
	snprintf(text, sizeof(text),
		 "root:x:0:0:root:/root:/usr/sbin/nologin\n"
		 "function:x:%d:%d:mignificent function:/tmp:/usr/sbin/nologin\n"
		 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		 INNER_ID, INNER_ID);
	etc_file(s, r, etcfd, "passwd", text);
	snprintf(text, sizeof(text),
		 "root:x:0:\nfunction:x:%d:\nnogroup:x:65534:\n", INNER_ID);
	etc_file(s, r, etcfd, "group", text);
	snprintf(text, sizeof(text), "%s\n", p->id);
	etc_file(s, r, etcfd, "hostname", text);
	snprintf(text, sizeof(text), "127.0.0.1 localhost %s\n::1 localhost\n",
		 p->id);
	etc_file(s, r, etcfd, "hosts", text);
	close(etcfd);
}

static json_t *mounts(struct spec *s, struct root *r)
{
	static const char *const proc_opts[] = {
		"nosuid", "noexec", "nodev", NULL,
	};
	static const char *const fresh[] = { "/proc", "/dev", "/tmp", NULL };
	const struct mig_sandbox_plan *p = s->plan;
	json_t *m = arr(s);

	/* Parents before children: the runtime mounts in this order. */
	mount_add(s, m, "/proc", "proc", "proc", proc_opts);
	tmpfs(s, m, "/dev", "nosuid,strictatime", "755", DEV_SIZE);
	tmpfs(s, m, "/dev/shm", "nosuid,nodev,noexec", "1777", SHM_SIZE);
	tmpfs(s, m, "/tmp", "nosuid,nodev", "1777", p->tmp);
	for (int i = 0; fresh[i] && !s->failed; i++) {
		int rc = mountpoint(r->fd, fresh[i], true);

		if (rc && r->own)
			spec_fail(s, "cannot make the mount point %s in %s: %s",
				  fresh[i], r->path, strerror(-rc));
	}
	if (r->own && !s->failed)
		own_root(s, r, m);
	for (char **x = p->ro_paths; x && *x && !s->failed; x++) {
		if (**x != '/') {
			spec_fail(s, "the read-only path \"%s\" is not "
				  "absolute", *x);
			break;
		}
		root_mountpoint(s, r, *x, *x);
		bind_ro(s, m, *x);
	}
	return m;
}

/* --- linux ---------------------------------------------------------------- */

static json_t *id_mapping(struct spec *s, unsigned int host)
{
	json_t *a = arr(s), *m = obj(s);

	set(s, m, "containerID", jint(s, INNER_ID));
	set(s, m, "hostID", jint(s, host));
	set(s, m, "size", jint(s, 1));
	push(s, a, m);
	return a;
}

static json_t *namespaces(struct spec *s)
{
	static const char *const ns[] = {
		"user", "mount", "pid", "ipc", "uts", "cgroup", "network", NULL,
	};
	json_t *a = arr(s);

	for (int i = 0; ns[i]; i++) {
		json_t *n;

		/* No network namespace entry: the host's network. */
		if (s->plan->network && !strcmp(ns[i], "network"))
			continue;
		n = obj(s);
		set(s, n, "type", jstr(s, "a namespace", ns[i]));
		push(s, a, n);
	}
	return a;
}

/* The only devices a function gets (character devices, major:minor as
 * Linux numbers them).  Nothing of /dev/nvidia*. */
static const struct {
	const char *path;
	int major, minor;
} devices[] = {
	{ "/dev/null", 1, 3 },    { "/dev/zero", 1, 5 },
	{ "/dev/full", 1, 7 },    { "/dev/random", 1, 8 },
	{ "/dev/urandom", 1, 9 }, { "/dev/tty", 5, 0 },
};
#define NDEVICES (sizeof(devices) / sizeof(*devices))

static json_t *device_nodes(struct spec *s)
{
	json_t *a = arr(s);

	for (size_t i = 0; i < NDEVICES; i++) {
		json_t *d = obj(s);

		set(s, d, "path", jstr(s, "a device", devices[i].path));
		set(s, d, "type", jstr(s, "a device type", "c"));
		set(s, d, "major", jint(s, devices[i].major));
		set(s, d, "minor", jint(s, devices[i].minor));
		set(s, d, "fileMode", jint(s, 0666));
		push(s, a, d);
	}
	return a;
}

static json_t *resources(struct spec *s)
{
	const struct mig_sandbox_plan *p = s->plan;
	json_t *r = obj(s), *dev = arr(s), *rule = obj(s);

	/* The device cgroup: deny everything, then allow the six. */
	set(s, rule, "allow", json_false());
	set(s, rule, "access", jstr(s, "access", "rwm"));
	push(s, dev, rule);
	for (size_t i = 0; i < NDEVICES; i++) {
		rule = obj(s);
		set(s, rule, "allow", json_true());
		set(s, rule, "type", jstr(s, "a device type", "c"));
		set(s, rule, "major", jint(s, devices[i].major));
		set(s, rule, "minor", jint(s, devices[i].minor));
		set(s, rule, "access", jstr(s, "access", "rwm"));
		push(s, dev, rule);
	}
	set(s, r, "devices", dev);
	if (p->memory) {
		json_t *mem = obj(s);
		unsigned long long lim = p->memory > (uint64_t)INT64_MAX ?
						 (unsigned long long)INT64_MAX :
						 (unsigned long long)p->memory;

		/* No "swap": isolation.c already set the cgroup's swap to 0
		 * where the kernel accounts swap; asking the runtime for it
		 * would fail on v1 kernels that do not. */
		set(s, mem, "limit", jint(s, (long long)lim));
		set(s, r, "memory", mem);
	}
	if (p->cpus > 0 || *p->cpu_list) {
		json_t *cpu = obj(s);

		if (p->cpus > 0) {
			set(s, cpu, "quota", jint(s, (long long)(p->cpus * CPU_PERIOD + 0.5)));
			set(s, cpu, "period", jint(s, CPU_PERIOD));
		}
		/* Exclusive placement: the instance's CPUs (a cpuset). */
		if (*p->cpu_list)
			set(s, cpu, "cpus", jstr(s, "the CPU list", p->cpu_list));
		set(s, r, "cpu", cpu);
	}
	if (p->pids) {
		json_t *pids = obj(s);

		set(s, pids, "limit", jint(s, p->pids));
		set(s, r, "pids", pids);
	}
	return r;
}

/*
 * linux.cgroupsPath of the plan's cgroup.  isolation.c gives the directory
 * it made (/sys/fs/cgroup/mignificent/<tag>/<id> on v2,
 * /sys/fs/cgroup/memory/mignificent/<tag>/<id> on v1); a runtime wants the
 * path below the hierarchy's root, which on v1 it uses in every
 * controller.  Anything else is passed as it is.
 */
static void cgroups_path(const char *dir, char *out, size_t n)
{
	const char *rel = dir;

	if (under(dir, CGROUP_FS) && dir[strlen(CGROUP_FS)] == '/') {
		rel = dir + strlen(CGROUP_FS);
		/* v1: past the controller's directory (memory, cpu,cpuacct) */
		if (access(CGROUP_FS "/cgroup.controllers", F_OK)) {
			const char *next = strchr(rel + 1, '/');

			rel = next ? next : "/";
		}
	}
	snprintf(out, n, "%s", rel);
}

/*
 * The deny list of denied_syscalls.h.  clone's flags are its first
 * argument on x86: one rule per namespace flag, each matching when
 * (flags & flag) == flag, since one comparison sees one masked value (a
 * single rule "masked-eq MIG_CLONE_NS_FLAGS, 0" would match the calls to
 * allow, not those to deny).
 */
static json_t *seccomp(struct spec *s)
{
	static const char *const archs[] = {
#if defined(__x86_64__)
		"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
#elif defined(__aarch64__)
		"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM",
#endif
		NULL,
	};
	json_t *sc = obj(s), *a = arr(s), *calls = arr(s), *rule = obj(s);

	set(s, sc, "defaultAction", jstr(s, "action", "SCMP_ACT_ALLOW"));
	for (int i = 0; archs[i]; i++)
		push(s, a, jstr(s, "architecture", archs[i]));
	set(s, sc, "architectures", a);

	set(s, rule, "names", str_array(s, "system call",
					(char *const *)mig_denied_syscalls));
	set(s, rule, "action", jstr(s, "action", "SCMP_ACT_ERRNO"));
	set(s, rule, "errnoRet", jint(s, EPERM));
	push(s, calls, rule);

	for (int bit = 0; bit < 64; bit++) {
		unsigned long long flag = 1ull << bit;
		json_t *names, *args, *arg;

		if (!(MIG_CLONE_NS_FLAGS & flag))
			continue;
		rule = obj(s);
		names = arr(s);
		push(s, names, jstr(s, "system call", "clone"));
		set(s, rule, "names", names);
		set(s, rule, "action", jstr(s, "action", "SCMP_ACT_ERRNO"));
		set(s, rule, "errnoRet", jint(s, EPERM));
		args = arr(s);
		arg = obj(s);
		set(s, arg, "index", jint(s, 0));
		set(s, arg, "value", jint(s, (long long)flag));
		set(s, arg, "valueTwo", jint(s, (long long)flag));
		set(s, arg, "op", jstr(s, "op", "SCMP_CMP_MASKED_EQ"));
		push(s, args, arg);
		set(s, rule, "args", args);
		push(s, calls, rule);
	}

	/* clone3 passes its flags in memory, out of a filter's sight: say
	 * it does not exist, and the C library falls back to clone(). */
	rule = obj(s);
	set(s, rule, "names", str_array(s, "system call",
					(char *const[]){ "clone3", NULL }));
	set(s, rule, "action", jstr(s, "action", "SCMP_ACT_ERRNO"));
	set(s, rule, "errnoRet", jint(s, ENOSYS));
	push(s, calls, rule);

	set(s, sc, "syscalls", calls);
	return sc;
}

static json_t *linux_section(struct spec *s)
{
	/* What every container runtime hides or freezes of /proc and /sys
	 * (only /proc is there, but a runtime skips what is missing). */
	static char *const masked[] = {
		"/proc/acpi", "/proc/asound", "/proc/driver", "/proc/kcore",
		"/proc/keys", "/proc/latency_stats", "/proc/timer_list",
		"/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap", NULL,
	};
	static char *const readonly[] = {
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
		"/proc/sysrq-trigger", NULL,
	};
	const struct mig_sandbox_plan *p = s->plan;
	json_t *l = obj(s), *mask;

	set(s, l, "uidMappings", id_mapping(s, p->uid));
	set(s, l, "gidMappings", id_mapping(s, p->gid));
	set(s, l, "namespaces", namespaces(s));
	set(s, l, "devices", device_nodes(s));
	set(s, l, "resources", resources(s));
	if (*p->cgroup) {
		char cg[PATH_MAX];

		cgroups_path(p->cgroup, cg, sizeof(cg));
		set(s, l, "cgroupsPath", jstr(s, "the cgroup", cg));
	}
	set(s, l, "seccomp", seccomp(s));
	mask = str_array(s, "a masked path", masked);
	for (char **x = p->hide; x && *x; x++) {
		if (**x != '/') {
			spec_fail(s, "the hidden path \"%s\" is not "
				  "absolute", *x);
			break;
		}
		push(s, mask, jstr(s, "a hidden path", *x));
	}
	set(s, l, "maskedPaths", mask);
	set(s, l, "readonlyPaths", str_array(s, "a read-only path", readonly));
	return l;
}

/* --- the bundle ----------------------------------------------------------- */

/* mkdir -p @path; directories made here get @mode.  0 or -errno. */
static int mkdirs(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	struct stat st;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *c = buf + 1;; c++) {
		char save = *c;

		if (save && save != '/')
			continue;
		*c = 0;
		if (mkdir(buf, mode) && errno != EEXIST)
			return -errno;
		*c = save;
		if (!save)
			break;
	}
	if (stat(path, &st))
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/*
 * Can the runtime reach @root from inside the user namespace?  crun sets
 * the root up as the function's uid (the only one mapped), to which
 * root-owned directories are "other": each directory on the way must let
 * others search it (o+x; reading is not needed).  Checked here so that
 * the error says what to change.
 */
static int root_reachable(const char *root, char *err, size_t errlen)
{
	char buf[PATH_MAX];
	struct stat st;

	snprintf(buf, sizeof(buf), "%s", root);
	for (char *c = buf + 1;; c++) {
		char save = *c;

		if (save && save != '/')
			continue;
		*c = 0;
		if (stat(buf, &st)) {
			snprintf(err, errlen, "OCI mode: %s: %s", buf,
				 strerror(errno));
			return -1;
		}
		if (!(st.st_mode & S_IXOTH)) {
			snprintf(err, errlen,
				 "OCI mode: the container runtime reaches the root file system %s as the function's unprivileged uid, but %s is not searchable by other users (mode %03o): chmod o+x %s, or keep bundles and images under directories that are",
				 root, buf, (unsigned)(st.st_mode & 07777),
				 buf);
			return -1;
		}
		*c = save;
		if (!save)
			return 0;
	}
}

/* Write @root to @dir/config.json through a temporary file and a rename:
 * a runtime never reads half a configuration. */
static int write_config(json_t *root, const char *dir, char *err, size_t errlen)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	int fd, rc = -1;

	if (snprintf(path, sizeof(path), "%s/config.json", dir) >=
		    (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/.config.json.XXXXXX", dir) >=
		    (int)sizeof(tmp)) {
		snprintf(err, errlen, "the bundle path %s is too long", dir);
		return -1;
	}
	fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
	if (fd < 0) {
		snprintf(err, errlen, "cannot create a file in the bundle %s: %s",
			 dir, strerror(errno));
		return -1;
	}
	errno = 0;
	if (json_dumpfd(root, fd, JSON_INDENT(2) | JSON_ENSURE_ASCII) ||
	    write(fd, "\n", 1) != 1) {
		snprintf(err, errlen, "cannot write %s: %s", tmp,
			 errno ? strerror(errno) : "write failed");
		close(fd);
		goto out;
	}
	if (close(fd)) {
		snprintf(err, errlen, "cannot write %s: %s", tmp,
			 strerror(errno));
		goto out;
	}
	if (rename(tmp, path)) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path,
			 strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (rc)
		unlink(tmp);
	return rc;
}

/* The first failure of remove_bundle(), as -errno (nftw's callback has
 * no argument of ours; one removal at a time, under the lock below). */
static int remove_rc;

static int remove_one(const char *path, const struct stat *st, int type,
		      struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	if (remove(path) && errno != ENOENT && !remove_rc)
		remove_rc = -errno;
	return 0; /* go on: remove as much as possible */
}

/**
 * oci_remove_bundle - remove what oci_write_bundle() made in @bundle
 *
 * config.json and, for rootfs "/", the bundle's own root (empty mount
 * points, symlinks and a few small files; the mounts on them existed in
 * the container's mount namespace only).  Stays on @bundle's file
 * system and never follows a symlink.  An image's mount points are left.
 * Returns 0, or -errno of the first thing that could not be removed (the
 * bundle is then worth another try later).
 *
 * Not declared in daemon.h yet: isolation_release() should call it
 * instead of unlink(config.json) + rmdir(bundle), which cannot remove the
 * own root.
 */
int oci_remove_bundle(const char *bundle)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	int rc;

	pthread_mutex_lock(&lock);
	remove_rc = 0;
	if (nftw(bundle, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) &&
	    errno != ENOENT && !remove_rc)
		remove_rc = -errno;
	rc = remove_rc;
	pthread_mutex_unlock(&lock);
	return rc;
}

/**
 * oci_write_bundle - write @bundle/config.json that runs @plan on @rootfs
 * @plan:   what the executor may see and use
 * @rootfs: an image's root directory, or "/" for the host's system
 *          directories (the bundle then gets a root of its own,
 *          @bundle/rootfs; see the top of this file)
 * @bundle: the bundle directory, made (0711, and its parents) if missing
 * @err:    why not, for the instance's log and the invocation's answer
 *
 * Mount points the runtime will need are made in the root beforehand.
 * Returns 0, or -1 with @err set.
 */
int oci_write_bundle(const struct mig_sandbox_plan *plan, const char *rootfs,
		     const char *bundle, char *err, size_t errlen)
{
	struct spec s = { .plan = plan, .err = err, .errlen = errlen };
	struct root r = { .fd = -1 };
	json_t *root = NULL, *rt;
	bool made;
	struct stat st;
	int rc;

	if (errlen)
		*err = 0;
	if (!plan->argv || !plan->argv[0]) {
		snprintf(err, errlen,
			 "OCI mode: the executor's command line is empty");
		return -1;
	}
	if (!*plan->id || strchr(plan->id, '/')) {
		snprintf(err, errlen, "OCI mode: \"%s\" cannot be a container id",
			 plan->id);
		return -1;
	}
	if (!plan->cwd || *plan->cwd != '/') {
		snprintf(err, errlen, "OCI mode: the working directory \"%s\" is not absolute",
			 plan->cwd ? plan->cwd : "");
		return -1;
	}
	if (!plan->uid || !plan->gid) {
		/* Host uid 0 would make the function root on the node. */
		snprintf(err, errlen, "OCI mode: the function cannot run as host uid/gid 0");
		return -1;
	}
	if (!rootfs || *rootfs != '/') {
		snprintf(err, errlen, "OCI mode: the root file system \"%s\" is not an absolute path",
			 rootfs ? rootfs : "");
		return -1;
	}
	if (stat(rootfs, &st)) {
		snprintf(err, errlen, "OCI mode: the root file system %s: %s",
			 rootfs, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "OCI mode: the root file system %s is not a directory",
			 rootfs);
		return -1;
	}
	/* Others may pass through (not list): the runtime reaches our own
	 * root through the bundle as the function's uid; config.json itself
	 * is 0600.  A bundle made here goes again if writing it fails. */
	made = lstat(bundle, &st) != 0;
	if ((rc = mkdirs(bundle, 0711)) ||
	    (chmod(bundle, 0711) && (rc = -errno))) {
		snprintf(err, errlen,
			 "cannot create the OCI bundle directory %s: %s",
			 bundle, strerror(-rc));
		goto fail;
	}

	r.own = !strcmp(rootfs, "/");
	if (r.own) {
		if (snprintf(r.path, sizeof(r.path), "%s/" OWN_ROOT, bundle) >=
		    (int)sizeof(r.path)) {
			snprintf(err, errlen, "the bundle path %s is too long",
				 bundle);
			goto fail;
		}
		if (mkdir(r.path, 0755) && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", r.path,
				 strerror(errno));
			goto fail;
		}
	} else {
		snprintf(r.path, sizeof(r.path), "%s", rootfs);
	}
	if (root_reachable(r.path, err, errlen))
		goto fail;
	r.fd = open(r.path, O_PATH | O_DIRECTORY | O_CLOEXEC |
		    (r.own ? O_NOFOLLOW : 0));
	if (r.fd < 0) {
		snprintf(err, errlen, "cannot open the root file system %s: %s",
			 r.path, strerror(errno));
		goto fail;
	}

	root = obj(&s);
	set(&s, root, "ociVersion", jstr(&s, "version", OCI_VERSION));
	set(&s, root, "process", process(&s));
	rt = obj(&s);
	set(&s, rt, "path", jstr(&s, "the root file system", r.path));
	set(&s, rt, "readonly", json_true());
	set(&s, root, "root", rt);
	set(&s, root, "hostname", jstr(&s, "the instance id", plan->id));
	set(&s, root, "mounts", mounts(&s, &r));
	set(&s, root, "linux", linux_section(&s));
	close(r.fd);

	rc = s.failed ? -1 : write_config(root, bundle, err, errlen);
	json_decref(root);
	if (!rc)
		return 0;
fail:
	if (made)
		oci_remove_bundle(bundle);
	return -1;
}

/* --- the command ---------------------------------------------------------- */

struct placeholder {
	const char *name;
	const char *value;
};

/* Copy @text with every placeholder replaced to @out (when not NULL);
 * returns the length of the result. */
static size_t substitute(const char *text, const struct placeholder *ph,
			 size_t n, char *out)
{
	size_t len = 0;

	while (*text) {
		size_t i, l = 1;
		const char *v = text;

		for (i = 0; i < n; i++)
			if (!strncmp(text, ph[i].name, strlen(ph[i].name)))
				break;
		if (i < n) {
			v = ph[i].value;
			l = strlen(v);
			text += strlen(ph[i].name);
		} else {
			text++;
		}
		if (out)
			memcpy(out + len, v, l);
		len += l;
	}
	if (out)
		out[len] = 0;
	return len;
}

/* @text with every placeholder replaced; NULL if out of memory. */
static char *expand(const char *text, const struct placeholder *ph, size_t n)
{
	char *out = malloc(substitute(text, ph, n, NULL) + 1);

	if (out)
		substitute(text, ph, n, out);
	return out;
}

/* Append @own (malloc'ed, taken over; NULL: out of memory) to the
 * NULL-ended vector *@v of *@n elements.  0 or -1. */
static int vec_push(char ***v, int *n, char *own)
{
	char **grown;

	if (!own)
		return -1;
	grown = realloc(*v, (size_t)(*n + 2) * sizeof(**v));
	if (!grown) {
		free(own);
		return -1;
	}
	*v = grown;
	grown[(*n)++] = own;
	grown[*n] = NULL;
	return 0;
}

/**
 * oci_argv - the command line that runs @bundle
 * @c:      the node's configuration: oci_command (a template), or else
 *          oci_runtime ("crun" when empty)
 * @plan:   the instance (its id, executor, number of descriptors)
 * @bundle: written by oci_write_bundle()
 * @rootfs: as given to oci_write_bundle()
 *
 * A runtime runs `RUNTIME run --bundle BUNDLE --preserve-fds N ID`: crun
 * and runc both keep descriptors 3..3+N-1 open for the container's process
 * (the executor's control socket, segment and lifelines).  In a template,
 * {bundle}, {rootfs}, {id}, {config} (the path of config.json) and {nfds}
 * are replaced wherever they occur, and an element that is exactly {argv}
 * becomes the executor's command line, one element per argument.
 *
 * Returns a malloc'ed NULL-ended vector (free with oci_argv_free()), or
 * NULL with @err set.
 */
char **oci_argv(const struct mig_config *c,
		const struct mig_sandbox_plan *plan, const char *bundle,
		const char *rootfs, char *err, size_t errlen)
{
	char config[PATH_MAX], nfds[16];
	const char *runtime = *c->oci_runtime ? c->oci_runtime : "crun";
	const char *const cmd[] = { runtime, "run", "--bundle", bundle,
				    "--preserve-fds", nfds, plan->id };
	const struct placeholder ph[] = {
		{ "{bundle}", bundle }, { "{rootfs}", rootfs },
		{ "{id}", plan->id },   { "{config}", config },
		{ "{nfds}", nfds },
	};
	const size_t nph = sizeof(ph) / sizeof(*ph);
	char **v = NULL;
	int n = 0;

	if (errlen)
		*err = 0;
	if (plan->nfds < 0) {
		snprintf(err, errlen, "OCI mode: %d descriptors to pass",
			 plan->nfds);
		return NULL;
	}
	if (snprintf(config, sizeof(config), "%s/config.json", bundle) >=
	    (int)sizeof(config)) {
		snprintf(err, errlen, "the bundle path %s is too long", bundle);
		return NULL;
	}
	snprintf(nfds, sizeof(nfds), "%d", plan->nfds);

	if (c->oci_command && c->oci_command[0]) {
		for (char **t = c->oci_command; *t; t++) {
			if (!strcmp(*t, "{argv}")) {
				if (!plan->argv || !plan->argv[0]) {
					snprintf(err, errlen,
						 "OCI mode: the command template has {argv} but the executor's command line is empty");
					goto fail;
				}
				for (char **a = plan->argv; *a; a++)
					if (vec_push(&v, &n, strdup(*a)))
						goto oom;
				continue;
			}
			if (strstr(*t, "{argv}")) {
				snprintf(err, errlen, "oci.command: \"%s\": {argv} must be an element of its own (it stands for several arguments)",
					 *t);
				goto fail;
			}
			if (vec_push(&v, &n, expand(*t, ph, nph)))
				goto oom;
		}
		return v;
	}
	for (size_t i = 0; i < sizeof(cmd) / sizeof(*cmd); i++)
		if (vec_push(&v, &n, strdup(cmd[i])))
			goto oom;
	return v;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	oci_argv_free(v);
	return NULL;
}

void oci_argv_free(char **argv)
{
	for (char **a = argv; a && *a; a++)
		free(*a);
	free(argv);
}
