/*
 * rootfs.c - the file system a sandboxed function sees.
 *
 * A fresh tmpfs becomes "/", and only what a function needs is put on it:
 *
 *   /usr, and /bin /sbin /lib* as the host has them (symlinks or binds)
 *   /etc         a few host files (the loader cache, time zone, TLS
 *                roots, ...) and a passwd/group naming the function's user
 *   /tmp         private tmpfs of the size the node allows
 *   /dev         tmpfs with null, zero, full, random, urandom, tty and a
 *                private /dev/shm; no /dev/nvidia* whatever the host has
 *   /proc        of the sandbox's own pid namespace
 *   --ro paths   the function's code, the daemon's executor, the shim, the
 *                Python environment: each at the same path as on the host
 *
 * Everything but /tmp and /dev/shm is read-only, nosuid and nodev, and
 * the root tmpfs itself is made read-only last.  Host paths to hide (the
 * real driver libraries, which would otherwise be visible under /usr) are
 * covered after the pivot, so that symlinks resolve as the function would
 * resolve them: a file by an empty file it may not read, a directory by an
 * empty read-only tmpfs.  /sys is not there at all.
 *
 * All of this runs in init as root in the new mount namespace, before it
 * drops to the function's uid: mounts made by a more privileged user
 * namespace are locked, so the function cannot undo them even where the
 * seccomp filter would let it try.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "etc_files.h"
#include "sandbox.h"

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
struct mount_attr {
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

/* /etc files up to this size are copied rather than mounted. */
#define ETC_COPY_MAX (1 << 20)

/* Where hidden files point: an empty file nobody but root may open. */
#define HIDDEN_FILE "/.mig-hidden"

struct ctx {
	const struct sandbox_opts *o;
	char *err;
	size_t errlen;
};

static int fail(struct ctx *c, int e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct ctx *c, int e, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	n = strlen(c->err);
	snprintf(c->err + n, c->errlen - n, ": %s", strerror(e));
	return -e;
}

/* @c->o->root followed by @path (absolute). */
static int in_root(struct ctx *c, const char *path, char *out, size_t n)
{
	if ((size_t)snprintf(out, n, "%s%s", c->o->root, path) >= n)
		return fail(c, ENAMETOOLONG, "%s", path);
	return 0;
}

/* mkdir -p @path (a path inside the new root). */
static int mkdirs(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);

	if (n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

/* An empty file at @path (its directories made), to mount a file on. */
static int make_file(const char *path, mode_t mode)
{
	char dir[PATH_MAX];
	char *slash;
	int fd, rc;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if ((rc = mkdirs(dir, 0755)))
			return rc;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	size_t n = strlen(text);

	if (fd < 0)
		return -errno;
	if (write(fd, text, n) != (ssize_t)n) {
		int e = errno ? errno : EIO;

		close(fd);
		return -e;
	}
	return close(fd) ? -errno : 0;
}

/* Make the mount at @path (and every mount under it) read-only, nosuid,
 * nodev.  mount_setattr() does it for a whole tree at once; older kernels
 * get the top mount only. */
static int seal(const char *path)
{
	struct mount_attr a = {
		.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
	};

	if (!syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &a, sizeof(a)))
		return 0;
	if (errno != ENOSYS)
		return -errno;
	if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID |
		  MS_NODEV, NULL))
		return -errno;
	return 0;
}

/* Show host @src read-only at @dst (inside the new root). */
static int bind_ro(struct ctx *c, const char *src, const char *dst)
{
	struct stat st;
	int rc;

	if (stat(src, &st))
		return fail(c, errno, "cannot show %s in the sandbox", src);
	rc = S_ISDIR(st.st_mode) ? mkdirs(dst, 0755) : make_file(dst, 0644);
	if (rc)
		return fail(c, -rc, "cannot make the mount point for %s", src);
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL))
		return fail(c, errno, "cannot bind %s", src);
	if ((rc = seal(dst)))
		return fail(c, -rc, "cannot make %s read-only", src);
	return 0;
}

/* /usr, and /bin, /lib, ... as the host has them: symlinks into /usr on a
 * merged-/usr system, read-only binds otherwise. */
static int system_dirs(struct ctx *c)
{
	static const char *const top[] = {
		"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", NULL,
	};
	char dst[PATH_MAX], target[PATH_MAX];
	struct stat st;
	int rc;

	for (int i = 0; top[i]; i++) {
		if (lstat(top[i], &st))
			continue;
		if ((rc = in_root(c, top[i], dst, sizeof(dst))))
			return rc;
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = readlink(top[i], target, sizeof(target) - 1);

			if (n < 0)
				return fail(c, errno, "readlink %s", top[i]);
			target[n] = 0;
			if (symlink(target, dst))
				return fail(c, errno, "symlink %s", top[i]);
		} else if (S_ISDIR(st.st_mode) && (rc = bind_ro(c, top[i], dst))) {
			return rc;
		}
	}
	return 0;
}

/* Copy host file @src to @dst (mode 0644). */
static int copy_file(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY | O_CLOEXEC), out, rc = 0;
	ssize_t n;

	if (in < 0)
		return -errno;
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	while ((n = copy_file_range(in, NULL, out, NULL, 1 << 20, 0)) > 0)
		;
	if (n < 0) { /* across file systems on old kernels: by hand */
		char buf[16384];

		lseek(in, 0, SEEK_SET);
		lseek(out, 0, SEEK_SET);
		while ((n = read(in, buf, sizeof(buf))) > 0)
			if (write(out, buf, (size_t)n) != n) {
				n = -1;
				break;
			}
	}
	if (n < 0)
		rc = errno ? -errno : -EIO;
	close(in);
	close(out);
	return rc;
}

static int etc(struct ctx *c)
{
	char dst[PATH_MAX], src[PATH_MAX], target[PATH_MAX], text[512];
	DIR *d = opendir("/etc");
	struct dirent *e;
	struct stat st;
	int rc = 0;

	if ((rc = in_root(c, "/etc", dst, sizeof(dst))) || (rc = mkdirs(dst, 0755)))
		return rc < 0 && rc != -ENAMETOOLONG ? fail(c, -rc, "mkdir /etc") : rc;
	while (d && (e = readdir(d))) {
		if (*e->d_name == '.' || !mig_etc_wanted(e->d_name, c->o->network))
			continue;
		snprintf(src, sizeof(src), "/etc/%s", e->d_name);
		snprintf(dst, sizeof(dst), "%s/etc/%s", c->o->root, e->d_name);
		if (lstat(src, &st))
			continue;
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = readlink(src, target, sizeof(target) - 1);

			if (n < 0)
				continue;
			target[n] = 0;
			if (symlink(target, dst)) {
				rc = fail(c, errno, "symlink %s", src);
				break;
			}
		} else if (S_ISREG(st.st_mode) && st.st_size <= ETC_COPY_MAX) {
			/* A copy costs less than a mount, and the root is
			 * made read-only at the end anyway. */
			if ((rc = copy_file(src, dst))) {
				rc = fail(c, -rc, "copy %s", src);
				break;
			}
		} else if ((rc = bind_ro(c, src, dst))) {
			break;
		}
	}
	if (d)
		closedir(d);
	if (rc)
		return rc;
	/* Who the function is: getpwuid() and getpass.getuser() work. */
	snprintf(dst, sizeof(dst), "%s/etc/passwd", c->o->root);
	snprintf(text, sizeof(text),
		 "root:x:0:0:root:/root:/usr/sbin/nologin\n"
		 "function:x:%d:%d:mignificent function:/tmp:/usr/sbin/nologin\n"
		 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		 SANDBOX_INNER_ID, SANDBOX_INNER_ID);
	if ((rc = write_file(dst, text)))
		return fail(c, -rc, "write /etc/passwd");
	snprintf(dst, sizeof(dst), "%s/etc/group", c->o->root);
	snprintf(text, sizeof(text), "root:x:0:\nfunction:x:%d:\nnogroup:x:65534:\n",
		 SANDBOX_INNER_ID);
	if ((rc = write_file(dst, text)))
		return fail(c, -rc, "write /etc/group");
	snprintf(dst, sizeof(dst), "%s/etc/hostname", c->o->root);
	snprintf(text, sizeof(text), "%s\n", c->o->hostname);
	if ((rc = write_file(dst, text)))
		return fail(c, -rc, "write /etc/hostname");
	snprintf(dst, sizeof(dst), "%s/etc/hosts", c->o->root);
	snprintf(text, sizeof(text), "127.0.0.1 localhost %s\n::1 localhost\n",
		 c->o->hostname);
	if ((rc = write_file(dst, text)))
		return fail(c, -rc, "write /etc/hosts");
	return 0;
}

static int mount_tmpfs(struct ctx *c, const char *path, unsigned long flags,
		       const char *opts)
{
	char dst[PATH_MAX];
	int rc;

	if ((rc = in_root(c, path, dst, sizeof(dst))))
		return rc;
	if ((rc = mkdirs(dst, 0755)))
		return fail(c, -rc, "mkdir %s", path);
	if (mount("tmpfs", dst, "tmpfs", flags, opts))
		return fail(c, errno, "mount tmpfs on %s (%s)", path, opts);
	return 0;
}

/* A /dev with the harmless character devices only. */
static int dev(struct ctx *c)
{
	static const char *const nodes[] = {
		"null", "zero", "full", "random", "urandom", "tty", NULL,
	};
	static const char *const links[][2] = {
		{ "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
		{ "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" },
		{ NULL, NULL },
	};
	char src[64], dst[PATH_MAX];
	int rc;

	if ((rc = mount_tmpfs(c, "/dev", MS_NOSUID | MS_NOEXEC,
			      "mode=0755,size=64k,nr_inodes=64")))
		return rc;
	for (int i = 0; nodes[i]; i++) {
		snprintf(src, sizeof(src), "/dev/%s", nodes[i]);
		snprintf(dst, sizeof(dst), "%s/dev/%s", c->o->root, nodes[i]);
		if (access(src, F_OK))
			continue;
		if ((rc = make_file(dst, 0666)))
			return fail(c, -rc, "mknod placeholder %s", src);
		if (mount(src, dst, NULL, MS_BIND, NULL))
			return fail(c, errno, "bind %s", src);
	}
	for (int i = 0; links[i][0]; i++) {
		snprintf(dst, sizeof(dst), "%s/dev/%s", c->o->root, links[i][0]);
		if (symlink(links[i][1], dst))
			return fail(c, errno, "symlink /dev/%s", links[i][0]);
	}
	/* Python's multiprocessing wants a POSIX shm directory; this one is
	 * the function's own (its segment comes as a file descriptor). */
	return mount_tmpfs(c, "/dev/shm", MS_NOSUID | MS_NODEV | MS_NOEXEC,
			  "mode=1777,size=64m");
}

static int cmp_len(const void *a, const void *b)
{
	size_t x = strlen(*(const char *const *)a), y = strlen(*(const char *const *)b);

	return x < y ? -1 : x > y;
}

/* Is @path @dir or below it? */
static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (n == 1 && *dir == '/')
		return true;
	return !strncmp(path, dir, n) && (path[n] == '/' || !path[n]);
}

/* The --ro paths: shortest first, so a parent is mounted before anything
 * below it; one already shown (under /usr, or under another --ro) is
 * skipped. */
static int user_paths(struct ctx *c)
{
	static const char *const system[] = {
		"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", NULL,
	};
	static const char *const refused[] = { "/proc", "/dev", "/sys", NULL };
	const char **v;
	char dst[PATH_MAX];
	int rc = 0, n = c->o->nro;

	if (!n)
		return 0;
	v = malloc((size_t)n * sizeof(*v));
	if (!v)
		return fail(c, ENOMEM, "read-only paths");
	memcpy(v, c->o->ro, (size_t)n * sizeof(*v));
	qsort(v, (size_t)n, sizeof(*v), cmp_len);
	for (int i = 0; i < n && !rc; i++) {
		bool shown = false;

		if (*v[i] != '/' || strstr(v[i], "/../") || !strcmp(v[i], "/")) {
			rc = fail(c, EINVAL, "read-only path \"%s\" must be absolute, not /", v[i]);
			break;
		}
		for (int k = 0; refused[k]; k++)
			if (under(v[i], refused[k])) {
				rc = fail(c, EPERM, "%s cannot be shown in a sandbox", v[i]);
				break;
			}
		for (int k = 0; system[k] && !shown; k++)
			shown = under(v[i], system[k]);
		for (int k = 0; k < i && !shown; k++)
			shown = under(v[i], v[k]);
		if (rc || shown)
			continue;
		if (!(rc = in_root(c, v[i], dst, sizeof(dst))))
			rc = bind_ro(c, v[i], dst);
	}
	free(v);
	return rc;
}

/* What /proc tells about the host's hardware and kernel beyond what a
 * process needs: the NVIDIA driver's view of the GPUs above all. */
static const char *const proc_hidden[] = {
	"/proc/driver", "/proc/acpi", "/proc/scsi", "/proc/bus", "/proc/irq",
	"/proc/kcore", "/proc/keys", "/proc/key-users", "/proc/timer_list",
	"/proc/sched_debug", "/proc/sysrq-trigger", "/proc/kallsyms", NULL,
};

/* After the pivot: cover every --hide path that the new root shows. */
static int hide_paths(struct ctx *c)
{
	struct stat st;
	int n = 0;

	while (proc_hidden[n])
		n++;
	for (int i = -n; i < c->o->nhide; i++) {
		const char *p = i < 0 ? proc_hidden[n + i] : c->o->hide[i];

		if (*p != '/' || stat(p, &st))
			continue; /* not visible in here: nothing to hide */
		if (S_ISDIR(st.st_mode)) {
			if (mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID |
				  MS_NODEV | MS_NOEXEC, "mode=0000,size=4k,nr_inodes=1"))
				return fail(c, errno, "cannot hide %s", p);
		} else if (mount(HIDDEN_FILE, p, NULL, MS_BIND, NULL)) {
			return fail(c, errno, "cannot hide %s", p);
		}
	}
	return 0;
}

int sandbox_rootfs(const struct sandbox_opts *o, char *err, size_t errlen)
{
	struct ctx c = { .o = o, .err = err, .errlen = errlen };
	char path[PATH_MAX], opts[64];
	int rc;

	/* Nothing we mount may leak back to the host, nor the host's later
	 * mounts into here. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return fail(&c, errno, "make the mount namespace private");
	if (mount("tmpfs", o->root, "tmpfs", MS_NOSUID | MS_NODEV,
		  "mode=0755,size=16m,nr_inodes=4096"))
		return fail(&c, errno, "mount the root tmpfs on %s", o->root);
	if ((rc = system_dirs(&c)) || (rc = etc(&c)))
		return rc;
	snprintf(opts, sizeof(opts), "mode=1777,size=%llu",
		 (unsigned long long)(o->tmp_bytes ? o->tmp_bytes : 64ull << 20));
	if ((rc = mount_tmpfs(&c, "/tmp", MS_NOSUID | MS_NODEV, opts)) ||
	    (rc = dev(&c)))
		return rc;
	if ((rc = in_root(&c, "/proc", path, sizeof(path))))
		return rc;
	if ((rc = mkdirs(path, 0555)))
		return fail(&c, -rc, "mkdir /proc");
	if (mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		return fail(&c, errno, "mount /proc");
	if ((rc = user_paths(&c)))
		return rc;
	if ((rc = in_root(&c, HIDDEN_FILE, path, sizeof(path))))
		return rc;
	if ((rc = make_file(path, 0000)))
		return fail(&c, -rc, "create %s", HIDDEN_FILE);

	/* Into the new root; the old one goes away entirely. */
	if (chdir(o->root))
		return fail(&c, errno, "chdir %s", o->root);
	if (syscall(SYS_pivot_root, ".", "."))
		return fail(&c, errno, "pivot_root");
	if (umount2(".", MNT_DETACH))
		return fail(&c, errno, "detach the host's root");
	if (chdir("/"))
		return fail(&c, errno, "chdir /");
	if ((rc = hide_paths(&c)))
		return rc;
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID |
		  MS_NODEV, NULL))
		return fail(&c, errno, "make / read-only");
	return 0;
}
