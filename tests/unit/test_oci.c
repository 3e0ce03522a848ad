/*
 * test_oci.c - unit test of OCI runtime mode (daemon/oci.c): write a
 * bundle, read config.json back with jansson and check every wall the
 * built-in sandbox also builds; the runtime's command line and its
 * template; and the errors.  No runtime is run (tests/daemon/test_oci.py
 * runs bundles through crun).
 *
 * Standalone build, from the repository root:
 *
 *	gcc -std=gnu11 -Wall -Wextra -Werror -Idaemon -Isandbox \
 *	    tests/unit/test_oci.c daemon/oci.c -ljansson -lcmocka -o test_oci
 *	./test_oci
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "daemon.h"
#include "denied_syscalls.h"

/* The paths built here are short (under /tmp); a cut one would fail a
 * check rather than pass one. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define UID 1700000042u
#define GID 1700000043u

static char top[PATH_MAX];       /* this run's directory */
static char code_dir[PATH_MAX];  /* a function's code (read-only path) */
static char hidden[PATH_MAX];    /* a file to hide */
static int nbundle;

static char *argv_default[] = { "/usr/bin/mig-exec", "--control", "3", NULL };
static char *envp_default[] = { "PATH=/usr/bin:/bin", "MIG_SEGMENT_FD=4", NULL };

/* --- fixtures ------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int type,
		  struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path) && errno != ENOENT ? -1 : 0;
}

static int setup(void **state)
{
	char path[PATH_MAX];
	int fd;

	(void)state;
	snprintf(top, sizeof(top), "/tmp/test_oci.XXXXXX");
	if (!mkdtemp(top) || chmod(top, 0711))
		return -1;
	snprintf(code_dir, sizeof(code_dir), "%s/code", top);
	snprintf(hidden, sizeof(hidden), "%s/code/secret.so", top);
	if (mkdir(code_dir, 0755))
		return -1;
	snprintf(path, sizeof(path), "%s/handler.py", code_dir);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	if (fd < 0)
		return -1;
	close(fd);
	fd = open(hidden, O_WRONLY | O_CREAT, 0644);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A plan as isolation.c makes one. */
static void plan_init(struct mig_sandbox_plan *p)
{
	static char *ro[3], *hide[3];

	memset(p, 0, sizeof(*p));
	ro[0] = code_dir;
	ro[1] = "/usr/bin";      /* under /usr, shown anyway */
	ro[2] = NULL;
	hide[0] = hidden;
	hide[1] = "/usr/lib/x86_64-linux-gnu/libcuda.so.1";
	hide[2] = NULL;
	snprintf(p->id, sizeof(p->id), "i-7");
	p->uid = UID;
	p->gid = GID;
	p->ro_paths = ro;
	p->hide = hide;
	p->memory = 4ull << 30;
	p->cpus = 1.5;
	p->pids = 256;
	p->tmp = 128ull << 20;
	p->cwd = code_dir;
	p->argv = argv_default;
	p->envp = envp_default;
	p->nfds = 4;
}

static void new_bundle(char *bundle, size_t n)
{
	snprintf(bundle, n, "%s/bundles/b%d", top, ++nbundle);
}

/* Write a bundle for @p and read its config.json back. */
static json_t *write_read(const struct mig_sandbox_plan *p, const char *rootfs,
			  char *bundle, size_t n)
{
	char err[512] = "", path[PATH_MAX];
	json_error_t jerr;
	json_t *j;

	new_bundle(bundle, n);
	if (oci_write_bundle(p, rootfs, bundle, err, sizeof(err)))
		fail_msg("oci_write_bundle: %s", err);
	snprintf(path, sizeof(path), "%s/config.json", bundle);
	j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		fail_msg("config.json: %s (line %d)", jerr.text, jerr.line);
	return j;
}

static json_t *config(const struct mig_sandbox_plan *p)
{
	char bundle[PATH_MAX];

	return write_read(p, "/", bundle, sizeof(bundle));
}

/* --- JSON helpers ----------------------------------------------------------- */

static json_t *at(json_t *j, const char *path)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *k = strtok_r(buf, ".", &save); k && j; k = strtok_r(NULL, ".", &save))
		j = json_object_get(j, k);
	return j;
}

static const char *str_at(json_t *j, const char *path)
{
	json_t *v = at(j, path);

	if (!json_is_string(v))
		fail_msg("%s is not a string", path);
	return json_string_value(v);
}

static long long int_at(json_t *j, const char *path)
{
	json_t *v = at(j, path);

	if (!json_is_integer(v))
		fail_msg("%s is not an integer", path);
	return json_integer_value(v);
}

static bool has_string(json_t *a, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(a, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), s))
			return true;
	return false;
}

static json_t *mount_at(json_t *j, const char *dst)
{
	size_t i;
	json_t *m;

	json_array_foreach(json_object_get(j, "mounts"), i, m)
		if (!strcmp(str_at(m, "destination"), dst))
			return m;
	return NULL;
}

static int mount_index(json_t *j, const char *dst)
{
	size_t i;
	json_t *m;

	json_array_foreach(json_object_get(j, "mounts"), i, m)
		if (!strcmp(str_at(m, "destination"), dst))
			return (int)i;
	return -1;
}

static void assert_strv(json_t *a, char **expect)
{
	size_t n = 0;

	while (expect[n])
		n++;
	assert_true(json_is_array(a));
	assert_int_equal(json_array_size(a), n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(json_string_value(json_array_get(a, i)), expect[i]);
}

/* --- process ---------------------------------------------------------------- */

static void test_process(void **state)
{
	static const char *const sets[] = {
		"bounding", "effective", "inheritable", "permitted", "ambient",
	};
	struct mig_sandbox_plan p;
	json_t *j, *rl;

	(void)state;
	plan_init(&p);
	j = config(&p);
	assert_string_equal(str_at(j, "ociVersion"), "1.0.2");
	assert_strv(at(j, "process.args"), argv_default);
	assert_strv(at(j, "process.env"), envp_default);
	assert_string_equal(str_at(j, "process.cwd"), code_dir);
	assert_int_equal(int_at(j, "process.user.uid"), 1000);
	assert_int_equal(int_at(j, "process.user.gid"), 1000);
	assert_null(at(j, "process.user.additionalGids"));
	assert_true(json_is_true(at(j, "process.noNewPrivileges")));
	assert_true(json_is_false(at(j, "process.terminal")));
	/* Every capability set present and empty. */
	for (size_t i = 0; i < sizeof(sets) / sizeof(*sets); i++) {
		json_t *c = json_object_get(at(j, "process.capabilities"), sets[i]);

		assert_true(json_is_array(c));
		assert_int_equal(json_array_size(c), 0);
	}
	rl = at(j, "process.rlimits");
	assert_int_equal(json_array_size(rl), 1);
	assert_string_equal(str_at(json_array_get(rl, 0), "type"), "RLIMIT_CORE");
	assert_int_equal(int_at(json_array_get(rl, 0), "soft"), 0);
	assert_int_equal(int_at(json_array_get(rl, 0), "hard"), 0);
	assert_string_equal(str_at(j, "hostname"), "i-7");
	json_decref(j);
}

/* --- namespaces ------------------------------------------------------------- */

static void assert_mapping(json_t *a, unsigned int host)
{
	assert_int_equal(json_array_size(a), 1);
	assert_int_equal(int_at(json_array_get(a, 0), "containerID"), 1000);
	assert_int_equal(int_at(json_array_get(a, 0), "hostID"), host);
	assert_int_equal(int_at(json_array_get(a, 0), "size"), 1);
}

static bool has_ns(json_t *j, const char *type)
{
	size_t i;
	json_t *n;

	json_array_foreach(at(j, "linux.namespaces"), i, n) {
		assert_null(json_object_get(n, "path")); /* new, never joined */
		if (!strcmp(str_at(n, "type"), type))
			return true;
	}
	return false;
}

static void test_namespaces(void **state)
{
	static const char *const want[] = {
		"user", "mount", "pid", "ipc", "uts", "cgroup", "network",
	};
	struct mig_sandbox_plan p;
	json_t *j;

	(void)state;
	plan_init(&p);
	j = config(&p);
	assert_mapping(at(j, "linux.uidMappings"), UID);
	assert_mapping(at(j, "linux.gidMappings"), GID);
	for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++)
		assert_true(has_ns(j, want[i]));
	assert_int_equal(json_array_size(at(j, "linux.namespaces")), 7);
	json_decref(j);

	/* Shared network: no network namespace at all; the rest stays. */
	p.network = true;
	j = config(&p);
	assert_false(has_ns(j, "network"));
	assert_true(has_ns(j, "user"));
	assert_int_equal(json_array_size(at(j, "linux.namespaces")), 6);
	json_decref(j);
}

/* --- files -------------------------------------------------------------------- */

static void assert_options(json_t *m, const char *const *want)
{
	json_t *o = json_object_get(m, "options");

	for (int i = 0; want[i]; i++)
		if (!has_string(o, want[i]))
			fail_msg("%s: option %s missing", str_at(m, "destination"),
				 want[i]);
}

static void test_mounts(void **state)
{
	static const char *const ro[] = { "rbind", "ro", "nosuid", "nodev", NULL };
	struct mig_sandbox_plan p;
	json_t *j, *m;
	size_t i;

	(void)state;
	plan_init(&p);
	j = config(&p);
	m = mount_at(j, "/proc");
	assert_non_null(m);
	assert_string_equal(str_at(m, "type"), "proc");
	m = mount_at(j, "/dev");
	assert_non_null(m);
	assert_string_equal(str_at(m, "type"), "tmpfs");
	assert_options(m, (const char *const[]){ "nosuid", "mode=755", NULL });
	m = mount_at(j, "/dev/shm");
	assert_non_null(m);
	assert_string_equal(str_at(m, "type"), "tmpfs");
	assert_options(m, (const char *const[]){ "nosuid", "nodev", "noexec",
						 "size=67108864", NULL });
	m = mount_at(j, "/tmp");
	assert_non_null(m);
	assert_string_equal(str_at(m, "type"), "tmpfs");
	assert_options(m, (const char *const[]){ "nosuid", "nodev",
						 "size=134217728", NULL });
	/* Each read-only path at its own path, read-only. */
	for (char **x = p.ro_paths; *x; x++) {
		m = mount_at(j, *x);
		assert_non_null(m);
		assert_string_equal(str_at(m, "type"), "bind");
		assert_string_equal(str_at(m, "source"), *x);
		assert_options(m, ro);
	}
	/* Parents first: the runtime mounts in order. */
	assert_true(mount_index(j, "/dev") < mount_index(j, "/dev/shm"));
	assert_true(mount_index(j, "/tmp") < mount_index(j, code_dir));
	assert_true(mount_index(j, "/usr") < mount_index(j, "/usr/bin"));
	/* No /sys, nothing of the GPU, and every bind read-only. */
	json_array_foreach(json_object_get(j, "mounts"), i, m) {
		const char *dst = str_at(m, "destination");

		assert_false(!strcmp(dst, "/sys") || !strncmp(dst, "/sys/", 5));
		assert_null(strstr(dst, "nvidia"));
		if (!strcmp(str_at(m, "type"), "bind"))
			assert_options(m, ro);
	}
	json_decref(j);
}

static void test_root_own(void **state)
{
	struct mig_sandbox_plan p;
	char bundle[PATH_MAX], path[PATH_MAX], text[512] = "";
	struct stat st;
	json_t *j;
	FILE *f;

	(void)state;
	plan_init(&p);
	j = write_read(&p, "/", bundle, sizeof(bundle));
	snprintf(path, sizeof(path), "%s/rootfs", bundle);
	/* The host's / cannot be pivoted into: the bundle's own root. */
	assert_string_equal(str_at(j, "root.path"), path);
	assert_true(json_is_true(at(j, "root.readonly")));
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	/* Mount points exist beforehand (the runtime's root is unmapped). */
	for (const char *const *d = (const char *const[]){ "proc", "dev", "tmp",
							  "usr", "etc", NULL };
	     *d; d++) {
		snprintf(path, sizeof(path), "%s/rootfs/%s", bundle, *d);
		assert_int_equal(stat(path, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
	}
	/* ...for the read-only paths too (under /tmp: the runtime makes
	 * them in its fresh tmpfs). */
	snprintf(path, sizeof(path), "%s/rootfs/usr/bin", bundle);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	snprintf(path, sizeof(path), "%s/rootfs%s", bundle, code_dir);
	assert_int_not_equal(stat(path, &st), 0);
	/* /usr read-only; /bin as the host has it. */
	assert_non_null(mount_at(j, "/usr"));
	if (!lstat("/bin", &st) && S_ISLNK(st.st_mode)) {
		snprintf(path, sizeof(path), "%s/rootfs/bin", bundle);
		assert_int_equal(lstat(path, &st), 0);
		assert_true(S_ISLNK(st.st_mode));
	}
	/* The function's own passwd, not the host's. */
	snprintf(path, sizeof(path), "%s/rootfs/etc/passwd", bundle);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_true(fread(text, 1, sizeof(text) - 1, f) > 0);
	fclose(f);
	assert_non_null(strstr(text, "function:x:1000:1000:"));
	assert_null(mount_at(j, "/etc/passwd"));
	assert_null(mount_at(j, "/etc"));
	/* resolv.conf only with the network. */
	if (!access("/etc/resolv.conf", F_OK)) {
		snprintf(path, sizeof(path), "%s/rootfs/etc/resolv.conf", bundle);
		assert_int_not_equal(lstat(path, &st), 0);
	}
	json_decref(j);
}

static void test_root_image(void **state)
{
	struct mig_sandbox_plan p;
	char bundle[PATH_MAX], image[PATH_MAX], path[PATH_MAX], outside[PATH_MAX];
	char *ro[] = { code_dir, "/usr/share", NULL };
	struct stat st;
	json_t *j;

	(void)state;
	snprintf(image, sizeof(image), "%s/image", top);
	assert_int_equal(mkdir(image, 0755), 0);
	plan_init(&p);
	p.ro_paths = ro;
	j = write_read(&p, image, bundle, sizeof(bundle));
	/* An image is the root as it is. */
	assert_string_equal(str_at(j, "root.path"), image);
	assert_true(json_is_true(at(j, "root.readonly")));
	/* Only the plan's mounts, nothing of the host's system. */
	assert_null(mount_at(j, "/usr"));
	assert_non_null(mount_at(j, "/usr/share"));
	/* Mount points made in the image (not under /tmp: a fresh tmpfs). */
	snprintf(path, sizeof(path), "%s/usr/share", image);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	snprintf(path, sizeof(path), "%s/proc", image);
	assert_int_equal(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s%s", image, code_dir);
	assert_int_not_equal(stat(path, &st), 0);
	/* No own root in the bundle. */
	snprintf(path, sizeof(path), "%s/rootfs", bundle);
	assert_int_not_equal(stat(path, &st), 0);
	json_decref(j);

	/* An image's symlink (usr -> a host directory) must not lead the
	 * mount points out of the image: the walk stops at it. */
	snprintf(image, sizeof(image), "%s/image2", top);
	snprintf(outside, sizeof(outside), "%s/outside", top);
	assert_int_equal(mkdir(image, 0755), 0);
	assert_int_equal(mkdir(outside, 0755), 0);
	snprintf(path, sizeof(path), "%s/usr", image);
	assert_int_equal(symlink(outside, path), 0);
	j = write_read(&p, image, bundle, sizeof(bundle));
	assert_non_null(mount_at(j, "/usr/share"));
	json_decref(j);
	snprintf(path, sizeof(path), "%s/share", outside);
	assert_int_not_equal(lstat(path, &st), 0);
}

static void test_masked(void **state)
{
	static char *const masked[] = {
		"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware",
	};
	static char *const readonly[] = {
		"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus",
	};
	struct mig_sandbox_plan p;
	json_t *j;

	(void)state;
	plan_init(&p);
	j = config(&p);
	for (size_t i = 0; i < sizeof(masked) / sizeof(*masked); i++)
		assert_true(has_string(at(j, "linux.maskedPaths"), masked[i]));
	for (char **x = p.hide; *x; x++)
		assert_true(has_string(at(j, "linux.maskedPaths"), *x));
	for (size_t i = 0; i < sizeof(readonly) / sizeof(*readonly); i++)
		assert_true(has_string(at(j, "linux.readonlyPaths"), readonly[i]));
	json_decref(j);
}

/* --- devices ------------------------------------------------------------------ */

static void test_devices(void **state)
{
	static const struct {
		const char *path;
		int major, minor;
	} want[] = {
		{ "/dev/null", 1, 3 },    { "/dev/zero", 1, 5 },
		{ "/dev/full", 1, 7 },    { "/dev/random", 1, 8 },
		{ "/dev/urandom", 1, 9 }, { "/dev/tty", 5, 0 },
	};
	struct mig_sandbox_plan p;
	json_t *j, *d, *r;
	size_t i;

	(void)state;
	plan_init(&p);
	j = config(&p);
	d = at(j, "linux.devices");
	assert_int_equal(json_array_size(d), 6);
	for (i = 0; i < 6; i++) {
		json_t *e = json_array_get(d, i);

		assert_string_equal(str_at(e, "path"), want[i].path);
		assert_string_equal(str_at(e, "type"), "c");
		assert_int_equal(int_at(e, "major"), want[i].major);
		assert_int_equal(int_at(e, "minor"), want[i].minor);
		assert_int_equal(int_at(e, "fileMode"), 0666);
	}
	/* The device cgroup: deny all first, then exactly those six. */
	r = at(j, "linux.resources.devices");
	assert_int_equal(json_array_size(r), 7);
	assert_true(json_is_false(json_object_get(json_array_get(r, 0), "allow")));
	assert_string_equal(str_at(json_array_get(r, 0), "access"), "rwm");
	assert_null(json_object_get(json_array_get(r, 0), "major"));
	for (i = 1; i < 7; i++) {
		json_t *e = json_array_get(r, i);

		assert_true(json_is_true(json_object_get(e, "allow")));
		assert_string_equal(str_at(e, "type"), "c");
		assert_int_equal(int_at(e, "major"), want[i - 1].major);
		assert_int_equal(int_at(e, "minor"), want[i - 1].minor);
		/* 195 is the NVIDIA devices' major: never. */
		assert_int_not_equal(int_at(e, "major"), 195);
	}
	json_decref(j);
}

/* --- limits ------------------------------------------------------------------- */

static void test_resources(void **state)
{
	struct mig_sandbox_plan p;
	json_t *j;

	(void)state;
	plan_init(&p);
	j = config(&p);
	assert_int_equal(int_at(j, "linux.resources.memory.limit"), 4ll << 30);
	assert_int_equal(int_at(j, "linux.resources.cpu.quota"), 150000);
	assert_int_equal(int_at(j, "linux.resources.cpu.period"), 100000);
	assert_int_equal(int_at(j, "linux.resources.pids.limit"), 256);
	assert_null(at(j, "linux.cgroupsPath"));
	assert_null(at(j, "linux.resources.cpu.cpus"));
	json_decref(j);

	/* Exclusive CPU placement: the instance's CPUs as a cpuset, with or
	 * without a quota. */
	snprintf(p.cpu_list, sizeof(p.cpu_list), "4-7");
	j = config(&p);
	assert_string_equal(str_at(j, "linux.resources.cpu.cpus"), "4-7");
	assert_int_equal(int_at(j, "linux.resources.cpu.quota"), 150000);
	json_decref(j);
	p.cpus = 0;
	j = config(&p);
	assert_string_equal(str_at(j, "linux.resources.cpu.cpus"), "4-7");
	assert_null(at(j, "linux.resources.cpu.quota"));
	json_decref(j);
	*p.cpu_list = 0;

	/* No limits asked: none written. */
	p.memory = 0;
	p.cpus = 0;
	p.pids = 0;
	p.tmp = 0;
	j = config(&p);
	assert_null(at(j, "linux.resources.memory"));
	assert_null(at(j, "linux.resources.cpu"));
	assert_null(at(j, "linux.resources.pids"));
	assert_non_null(at(j, "linux.resources.devices"));
	{
		json_t *o = json_object_get(mount_at(j, "/tmp"), "options");
		size_t i;
		json_t *v;

		json_array_foreach(o, i, v)
			assert_true(strncmp(json_string_value(v), "size=", 5));
	}
	json_decref(j);
}

static void test_cgroups_path(void **state)
{
	bool v2 = !access("/sys/fs/cgroup/cgroup.controllers", F_OK);
	struct mig_sandbox_plan p;
	json_t *j;

	(void)state;
	plan_init(&p);
	/* What isolation.c makes on this host's cgroup version. */
	snprintf(p.cgroup, sizeof(p.cgroup), "%s",
		 v2 ? "/sys/fs/cgroup/mignificent/d-0123/i-7" :
		      "/sys/fs/cgroup/memory/mignificent/d-0123/i-7");
	j = config(&p);
	assert_string_equal(str_at(j, "linux.cgroupsPath"), "/mignificent/d-0123/i-7");
	json_decref(j);
	/* Anything else (a runtime's own form) as it is. */
	snprintf(p.cgroup, sizeof(p.cgroup), "/mig/i-7");
	j = config(&p);
	assert_string_equal(str_at(j, "linux.cgroupsPath"), "/mig/i-7");
	json_decref(j);
	snprintf(p.cgroup, sizeof(p.cgroup), "machine.slice:mig:i-7");
	j = config(&p);
	assert_string_equal(str_at(j, "linux.cgroupsPath"), "machine.slice:mig:i-7");
	json_decref(j);
}

/* --- seccomp ------------------------------------------------------------------ */

/* Would the filter of @j deny clone(@flags)?  The OCI semantics: a rule
 * applies when all its argument conditions hold. */
static bool clone_denied(json_t *j, unsigned long long flags)
{
	size_t i, k;
	json_t *r, *a;

	json_array_foreach(at(j, "linux.seccomp.syscalls"), i, r) {
		bool match = true;

		if (!has_string(json_object_get(r, "names"), "clone"))
			continue;
		json_array_foreach(json_object_get(r, "args"), k, a) {
			unsigned long long v = (unsigned long long)int_at(a, "value");
			unsigned long long v2 = (unsigned long long)int_at(a, "valueTwo");

			assert_int_equal(int_at(a, "index"), 0);
			assert_string_equal(str_at(a, "op"), "SCMP_CMP_MASKED_EQ");
			if ((flags & v) != v2)
				match = false;
		}
		if (match && !strcmp(str_at(r, "action"), "SCMP_ACT_ERRNO"))
			return true;
	}
	return false;
}

static void test_seccomp(void **state)
{
	struct mig_sandbox_plan p;
	json_t *j, *calls, *r;
	size_t i;
	bool clone3 = false;

	(void)state;
	plan_init(&p);
	j = config(&p);
	assert_string_equal(str_at(j, "linux.seccomp.defaultAction"), "SCMP_ACT_ALLOW");
#if defined(__x86_64__)
	assert_true(has_string(at(j, "linux.seccomp.architectures"), "SCMP_ARCH_X86_64"));
	assert_true(has_string(at(j, "linux.seccomp.architectures"), "SCMP_ARCH_X86"));
#endif
	calls = at(j, "linux.seccomp.syscalls");
	/* Every denied name, unconditionally, with EPERM. */
	for (int n = 0; mig_denied_syscalls[n]; n++) {
		bool found = false;

		json_array_foreach(calls, i, r) {
			if (!has_string(json_object_get(r, "names"), mig_denied_syscalls[n]))
				continue;
			found = true;
			assert_string_equal(str_at(r, "action"), "SCMP_ACT_ERRNO");
			assert_int_equal(int_at(r, "errnoRet"), EPERM);
			assert_null(json_object_get(r, "args"));
		}
		if (!found)
			fail_msg("%s is not denied", mig_denied_syscalls[n]);
	}
	/* clone3: ENOSYS, so that the C library falls back to clone. */
	json_array_foreach(calls, i, r) {
		if (!has_string(json_object_get(r, "names"), "clone3"))
			continue;
		clone3 = true;
		assert_string_equal(str_at(r, "action"), "SCMP_ACT_ERRNO");
		assert_int_equal(int_at(r, "errnoRet"), ENOSYS);
	}
	assert_true(clone3);
	/* clone: denied with any namespace flag, alone or with others... */
	for (int bit = 0; bit < 64; bit++) {
		unsigned long long f = 1ull << bit;

		if (MIG_CLONE_NS_FLAGS & f) {
			assert_true(clone_denied(j, f | 0x11));  /* | SIGCHLD */
			assert_true(clone_denied(j, f | 0x3d0f00));
		}
	}
	assert_true(clone_denied(j, MIG_CLONE_NS_FLAGS));
	/* ...and allowed for threads (pthread_create) and fork. */
	assert_false(clone_denied(j, 0x3d0f00));
	assert_false(clone_denied(j, 0x01200011));
	assert_false(clone_denied(j, 0));
	json_array_foreach(calls, i, r)
		if (has_string(json_object_get(r, "names"), "clone"))
			assert_int_equal(int_at(r, "errnoRet"), EPERM);
	json_decref(j);
}

/* --- the bundle's files -------------------------------------------------------- */

static void test_files(void **state)
{
	struct mig_sandbox_plan p;
	char bundle[PATH_MAX], path[PATH_MAX];
	struct stat st;
	json_t *j;
	int n = 0;

	(void)state;
	plan_init(&p);
	j = write_read(&p, "/", bundle, sizeof(bundle));
	json_decref(j);
	assert_int_equal(stat(bundle, &st), 0);
	/* Others may pass (the runtime reaches rootfs/ as the function's
	 * uid), not list; config.json is the daemon's alone. */
	assert_int_equal(st.st_mode & 07777, 0711);
	snprintf(path, sizeof(path), "%s/config.json", bundle);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* Written again in place (a rename): the new content, no debris. */
	p.pids = 99;
	assert_int_equal(oci_write_bundle(&p, "/", bundle, path, sizeof(path)), 0);
	{
		char cfg[PATH_MAX];
		json_error_t jerr;
		DIR *d;
		struct dirent *e;

		snprintf(cfg, sizeof(cfg), "%s/config.json", bundle);
		j = json_load_file(cfg, 0, &jerr);
		assert_non_null(j);
		assert_int_equal(int_at(j, "linux.resources.pids.limit"), 99);
		json_decref(j);
		d = opendir(bundle);
		assert_non_null(d);
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				n++;
		closedir(d);
	}
	assert_int_equal(n, 2); /* config.json and rootfs */
}

/* Not in daemon.h yet (see oci.c). */
int oci_remove_bundle(const char *bundle);

static void test_remove(void **state)
{
	struct mig_sandbox_plan p;
	char bundle[PATH_MAX], image[PATH_MAX], path[PATH_MAX];
	struct stat st;
	json_t *j;

	(void)state;
	plan_init(&p);
	j = write_read(&p, "/", bundle, sizeof(bundle));
	json_decref(j);
	assert_int_equal(oci_remove_bundle(bundle), 0);
	assert_int_not_equal(lstat(bundle, &st), 0);
	/* Gone already: nothing to do. */
	assert_int_equal(oci_remove_bundle(bundle), 0);

	/* An image keeps its files (and its mount points). */
	snprintf(image, sizeof(image), "%s/image3", top);
	assert_int_equal(mkdir(image, 0755), 0);
	j = write_read(&p, image, bundle, sizeof(bundle));
	json_decref(j);
	assert_int_equal(oci_remove_bundle(bundle), 0);
	assert_int_not_equal(lstat(bundle, &st), 0);
	snprintf(path, sizeof(path), "%s/proc", image);
	assert_int_equal(stat(path, &st), 0);
	/* The host's /usr, shown through a symlink-free bind, untouched. */
	assert_int_equal(stat("/usr/bin", &st), 0);
}

/* --- errors ---------------------------------------------------------------------- */

static void expect_error(const struct mig_sandbox_plan *p, const char *rootfs,
			 const char *bundle, const char *words)
{
	char err[512] = "";

	assert_int_equal(oci_write_bundle(p, rootfs, bundle, err, sizeof(err)), -1);
	if (!strstr(err, words))
		fail_msg("error \"%s\" does not say \"%s\"", err, words);
}

static void test_errors(void **state)
{
	struct mig_sandbox_plan p;
	char bundle[PATH_MAX], file[PATH_MAX], path[PATH_MAX], closed[PATH_MAX];
	char *bad_argv[] = { "/bin/sh", "-c", "\xff\xfe", NULL };
	char *empty[] = { NULL };
	char *rel[] = { "relative/dir", NULL };
	char *missing[] = { "/nonexistent/mignificent/path", NULL };
	int fd;

	(void)state;
	snprintf(file, sizeof(file), "%s/a-file", top);
	fd = open(file, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);

	/* The bundle cannot be made: its parent is a file. */
	plan_init(&p);
	snprintf(bundle, sizeof(bundle), "%s/b", file);
	expect_error(&p, "/", bundle, "cannot create the OCI bundle directory");
	expect_error(&p, "/", bundle, file);

	new_bundle(bundle, sizeof(bundle));
	/* Root file systems that are not there. */
	expect_error(&p, "/nonexistent/rootfs", bundle, "/nonexistent/rootfs");
	expect_error(&p, file, bundle, "is not a directory");
	expect_error(&p, "relative", bundle, "not an absolute path");
	/* A root the runtime could not reach as the function's uid. */
	snprintf(closed, sizeof(closed), "%s/closed", top);
	assert_int_equal(mkdir(closed, 0700), 0);
	snprintf(path, sizeof(path), "%s/image", closed);
	assert_int_equal(mkdir(path, 0755), 0);
	expect_error(&p, path, bundle, "chmod o+x");
	snprintf(path, sizeof(path), "%s/bundle", closed);
	expect_error(&p, "/", path, "chmod o+x");
	/* A bundle made for nothing is removed again. */
	assert_int_not_equal(access(path, F_OK), 0);

	/* Plans that cannot be run. */
	p.argv = empty;
	expect_error(&p, "/", bundle, "command line is empty");
	plan_init(&p);
	p.argv = bad_argv;
	expect_error(&p, "/", bundle, "not UTF-8");
	plan_init(&p);
	p.cwd = "relative";
	expect_error(&p, "/", bundle, "not absolute");
	plan_init(&p);
	p.uid = 0;
	expect_error(&p, "/", bundle, "uid/gid 0");
	plan_init(&p);
	p.ro_paths = rel;
	expect_error(&p, "/", bundle, "relative/dir");
	plan_init(&p);
	p.ro_paths = missing;
	expect_error(&p, "/", bundle, "/nonexistent/mignificent/path");
	plan_init(&p);
	p.hide = rel;
	expect_error(&p, "/", bundle, "not absolute");
	plan_init(&p);
	snprintf(p.id, sizeof(p.id), "a/b");
	expect_error(&p, "/", bundle, "container id");

	/* No configuration left behind by the failures. */
	snprintf(path, sizeof(path), "%s/config.json", bundle);
	assert_int_not_equal(access(path, F_OK), 0);
}

/* Every allocation jansson makes for the configuration may fail: the
 * answer is then an error, nothing half-written, nothing leaked (the
 * sanitizer build checks the last part). */
static long alloc_budget = -1; /* -1: no limit */

static void *limited_malloc(size_t n)
{
	if (alloc_budget == 0)
		return NULL;
	if (alloc_budget > 0)
		alloc_budget--;
	return malloc(n);
}

static void test_out_of_memory(void **state)
{
	struct mig_sandbox_plan p;
	char bundle[PATH_MAX], path[PATH_MAX], err[512];
	long budget;
	int rc = -1;

	(void)state;
	plan_init(&p);
	new_bundle(bundle, sizeof(bundle));
	/* A bundle that exists stays after a failure (one made for the
	 * call goes): its root is reused, and the loop stays fast. */
	snprintf(path, sizeof(path), "%s/bundles", top);
	mkdir(path, 0711);
	assert_int_equal(mkdir(bundle, 0711), 0);
	snprintf(path, sizeof(path), "%s/config.json", bundle);
	json_set_alloc_funcs(limited_malloc, free);
	for (budget = 0; budget < 100000 && rc; budget++) {
		alloc_budget = budget;
		*err = 0;
		rc = oci_write_bundle(&p, "/", bundle, err, sizeof(err));
		alloc_budget = -1;
		if (rc) {
			if (!strstr(err, "out of memory") && !strstr(err, "cannot write"))
				fail_msg("allocation %ld failing: \"%s\"", budget, err);
			assert_int_not_equal(access(path, F_OK), 0);
		}
	}
	json_set_alloc_funcs(malloc, free);
	assert_int_equal(rc, 0);
	assert_true(budget > 100); /* the failures were really tried */
	assert_int_equal(access(path, F_OK), 0);
	/* No temporary file left by the failed writes. */
	{
		DIR *d = opendir(bundle);
		struct dirent *e;

		assert_non_null(d);
		while ((e = readdir(d)))
			assert_true(strncmp(e->d_name, ".config.json.", 13));
		closedir(d);
	}
}

/* --- the command line ---------------------------------------------------------- */

static void assert_argv(char **got, const char *const *want)
{
	int i;

	assert_non_null(got);
	for (i = 0; want[i]; i++) {
		assert_non_null(got[i]);
		assert_string_equal(got[i], want[i]);
	}
	assert_null(got[i]);
}

static void test_argv_runtime(void **state)
{
	static struct mig_config c; /* large: not on the stack */
	struct mig_sandbox_plan p;
	char err[256];
	char **v;

	(void)state;
	plan_init(&p);
	memset(&c, 0, sizeof(c));
	v = oci_argv(&c, &p, "/data/bundles/i-7", "/", err, sizeof(err));
	assert_argv(v, (const char *const[]){ "crun", "run", "--bundle",
					      "/data/bundles/i-7", "--preserve-fds",
					      "4", "i-7", NULL });
	oci_argv_free(v);
	snprintf(c.oci_runtime, sizeof(c.oci_runtime), "/usr/local/sbin/runc");
	p.nfds = 0;
	v = oci_argv(&c, &p, "/b", "/", err, sizeof(err));
	assert_argv(v, (const char *const[]){ "/usr/local/sbin/runc", "run",
					      "--bundle", "/b", "--preserve-fds",
					      "0", "i-7", NULL });
	oci_argv_free(v);
	oci_argv_free(NULL);
}

static void test_argv_template(void **state)
{
	static struct mig_config c;
	char *tmpl[] = { "/opt/wrap", "--bundle={bundle}", "--config", "{config}",
			 "{rootfs}", "--name={id}-{id}", "--fds", "{nfds}",
			 "{unknown}", "{argv}", "--", "{argv}", "{", NULL };
	struct mig_sandbox_plan p;
	char err[256];
	char **v;

	(void)state;
	plan_init(&p);
	memset(&c, 0, sizeof(c));
	c.oci_command = tmpl;
	v = oci_argv(&c, &p, "/data/bundles/i-7", "/images/py", err, sizeof(err));
	assert_argv(v, (const char *const[]){
		"/opt/wrap", "--bundle=/data/bundles/i-7", "--config",
		"/data/bundles/i-7/config.json", "/images/py", "--name=i-7-i-7",
		"--fds", "4", "{unknown}", "/usr/bin/mig-exec", "--control", "3",
		"--", "/usr/bin/mig-exec", "--control", "3", "{", NULL });
	oci_argv_free(v);
}

static void test_argv_errors(void **state)
{
	static struct mig_config c;
	char *inside[] = { "sh", "-c", "exec {argv}", NULL };
	char *plain[] = { "run", "{argv}", NULL };
	char *empty[] = { NULL };
	struct mig_sandbox_plan p;
	char err[256] = "";

	(void)state;
	plan_init(&p);
	memset(&c, 0, sizeof(c));
	c.oci_command = inside;
	assert_null(oci_argv(&c, &p, "/b", "/", err, sizeof(err)));
	assert_non_null(strstr(err, "{argv} must be an element of its own"));
	c.oci_command = plain;
	p.argv = empty;
	assert_null(oci_argv(&c, &p, "/b", "/", err, sizeof(err)));
	assert_non_null(strstr(err, "empty"));
	plan_init(&p);
	p.nfds = -1;
	assert_null(oci_argv(&c, &p, "/b", "/", err, sizeof(err)));
	assert_non_null(strstr(err, "descriptors"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_process),
		cmocka_unit_test(test_namespaces),
		cmocka_unit_test(test_mounts),
		cmocka_unit_test(test_root_own),
		cmocka_unit_test(test_root_image),
		cmocka_unit_test(test_masked),
		cmocka_unit_test(test_devices),
		cmocka_unit_test(test_resources),
		cmocka_unit_test(test_cgroups_path),
		cmocka_unit_test(test_seccomp),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_out_of_memory),
		cmocka_unit_test(test_argv_runtime),
		cmocka_unit_test(test_argv_template),
		cmocka_unit_test(test_argv_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
