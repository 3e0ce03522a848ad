/*
 * isolation.c - how an executor is walled off: the built-in sandbox
 * (mig-sandbox), an OCI runtime (oci.c), or nothing ("bare", development
 * only).
 *
 * The daemon's part of it, for every instance:
 *   - a host uid of its own, from the node's range (uid_base, uid_count);
 *   - a cgroup with the function's memory, CPU and pids limits (cgroup v2,
 *     or the v1 memory, cpu and pids hierarchies), under a directory of
 *     this daemon (<parent>/<tag>, the tag derived from the data dir, so
 *     that two daemons on one node never touch each other's cgroups);
 *   - the list of host paths the function may see (its code, the executor,
 *     the shim, the Python environment, the node's extra paths) and of
 *     paths it must not (the real driver libraries, found at start);
 *   - with sandbox.cpu_placement "exclusive", the CPUs it runs on: an
 *     instance with a CPU limit gets that many CPUs (rounded up) of the
 *     node's pool for itself alone, as long as enough are free; the others
 *     share the pool's CPUs that none holds, and follow them as instances
 *     take and give back theirs (its cgroup's cpuset where the controller
 *     is available, else its affinity at start);
 *   - the command line that runs the executor that way.
 * When the instance's processes are gone, its cgroup is removed and the
 * uid and its CPUs go back to their pools; a cgroup whose processes are
 * still exiting is retried by isolation_sweep().  Cgroups left by a daemon that crashed are
 * emptied and removed at start.
 *
 * Locking: one mutex for the uid and CPU pools, the sharing instances and
 * the sweep list; everything else is fixed after isolation_init().
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cpulist.h"
#include "daemon.h"

/* Messages that name a long path may be cut short, which is fine; a path
 * built here is at most a PATH_MAX directory plus a short name, and a
 * cut one fails to open rather than naming something else. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define CGROUP_FS "/sys/fs/cgroup"
#define V1_CONTROLLERS 3     /* memory, cpu, pids; cpuset for placement */

struct iso {
	bool sandbox_ok;          /* mig-sandbox can run here (root, binary) */
	char sandbox_why[256];    /* why not */
	char sandbox_bin[PATH_MAX];
	char root_dir[PATH_MAX];  /* mount point of sandboxes' roots */
	char **hide;              /* driver files found at start + config */
	int nhide;
	char tag[32];             /* this daemon's, from its data dir */
	unsigned int epoch;       /* this daemon's start (OCI container names) */
	/* cgroups */
	int cg_version;           /* 2, 1, or 0 (none usable) */
	char cg_why[256];
	char cg_dirs[V1_CONTROLLERS + 1][PATH_MAX]; /* this daemon's: 1 for v2 */
	int ncg;
	/* uids */
	pthread_mutex_t lock;
	unsigned char *uid_used;  /* one byte per uid of the range */
	unsigned int uid_next;
	/* cgroups still to remove */
	/* Jails of instances whose processes are gone: their cgroups,
	 * bundle and uid, released by isolation_sweep() (supervisor thread,
	 * no lock of the instance manager held). */
	struct mig_jail *sweep;
	int nsweep, sweep_cap;
	const struct mig_config *cfg;
	/* CPU placement (sandbox.cpu_placement "exclusive") */
	bool placing;
	bool cpuset_ok;           /* instances get a cpuset (v2 controller,
				   * or v1 hierarchy cg_dirs[V1_CONTROLLERS]) */
	cpu_set_t cpu_pool;       /* the CPUs functions run on */
	cpu_set_t cpus_held;      /* held by one instance each (lock) */
	char cpu_pool_list[512];
	char **shared;            /* cpuset directories of the instances
				   * without CPUs of their own (lock) */
	int nshared, shared_cap;
};

static struct iso iso_state;

static bool is_root(void)
{
	return geteuid() == 0;
}

/* --- small file helpers ------------------------------------------------- */

static int write_text(const char *dir, const char *file, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int write_text(const char *dir, const char *file, const char *fmt, ...)
{
	char path[PATH_MAX], text[640];
	va_list ap;
	ssize_t n;
	int fd, rc = 0;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	if (n != (ssize_t)strlen(text))
		rc = n < 0 ? -errno : -EIO;
	close(fd);
	return rc;
}

/* The first line of @dir/@file, without its newline, into @buf.  0 or
 * -errno (-EIO: empty or too long). */
static int read_text(const char *dir, const char *file, char *buf, size_t n)
{
	char path[PATH_MAX];
	ssize_t got;
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	got = read(fd, buf, n - 1);
	if (got < 0)
		rc = -errno;
	else if (got == 0 || (size_t)got == n - 1)
		rc = -EIO;
	close(fd);
	if (rc)
		return rc;
	buf[got] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return *buf ? 0 : -EIO;
}

/* The number after @key in file @dir/@file ("oom_kill 3"), or 0. */
static unsigned long long read_key(const char *dir, const char *file,
				   const char *key)
{
	char path[PATH_MAX], line[256];
	unsigned long long v = 0;
	size_t n = strlen(key);
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ' ')
			v = strtoull(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

static int push(char ***v, int *n, const char *s)
{
	char **nv = realloc(*v, (size_t)(*n + 2) * sizeof(**v));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -ENOMEM;
	nv[++*n] = NULL;
	return 0;
}

static void free_vec(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

/* --- cgroups ------------------------------------------------------------ */

/* Kill what is left in cgroup @dir and remove it.  0, or -errno
 * (-EBUSY: processes still exiting; try again later). */
static int cgroup_remove(const char *dir)
{
	char path[PATH_MAX];
	FILE *f;

	if (!rmdir(dir) || errno == ENOENT)
		return 0;
	if (errno != EBUSY)
		return -errno;
	if (write_text(dir, "cgroup.kill", "1")) {
		/* v1, or v2 before 5.14: one process at a time */
		snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
		if ((f = fopen(path, "re"))) {
			long pid;

			while (fscanf(f, "%ld", &pid) == 1)
				if (pid > 0)
					kill((pid_t)pid, SIGKILL);
			fclose(f);
		}
	}
	if (!rmdir(dir) || errno == ENOENT)
		return 0;
	return -errno;
}

/* Remove every cgroup under @dir (left by an earlier run of this daemon). */
static void cgroup_clear_children(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);

	while (d && (e = readdir(d))) {
		if (e->d_type != DT_DIR || *e->d_name == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		for (int tries = 0; cgroup_remove(path) == -EBUSY && tries < 50; tries++)
			usleep(2000);
		daemon_log(1, "isolation: removed the cgroup %s left by an earlier run", path);
	}
	if (d)
		closedir(d);
}

/* A short, stable name for this daemon: its data directory's hash. */
static void daemon_tag(const char *data_dir, char *out, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (const char *p = data_dir; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	snprintf(out, n, "d-%012llx", (unsigned long long)(h & 0xffffffffffffull));
}

static int cgroup_setup_v2(struct iso *s, const struct mig_config *c,
			   const char *tag)
{
	char parent[PATH_MAX], up[PATH_MAX];
	int rc;

	snprintf(parent, sizeof(parent), "%s", *c->sandbox.cgroup_parent ?
		 c->sandbox.cgroup_parent : CGROUP_FS "/mignificent");
	if ((rc = daemon_mkdir_p(parent, 0755))) {
		snprintf(s->cg_why, sizeof(s->cg_why), "cannot create %s: %s",
			 parent, strerror(-rc));
		return -1;
	}
	/* The controllers must be enabled on the way down to the instances:
	 * in the parent's parent, the parent, and this daemon's directory. */
	snprintf(up, sizeof(up), "%s", parent);
	*strrchr(up, '/') = 0;
	write_text(up, "cgroup.subtree_control", "+cpu +memory +pids");
	if ((rc = write_text(parent, "cgroup.subtree_control", "+cpu +memory +pids"))) {
		snprintf(s->cg_why, sizeof(s->cg_why),
			 "cannot enable the cpu, memory and pids controllers in %s: %s (is it a delegated cgroup with no processes of its own?)",
			 parent, strerror(-rc));
		return -1;
	}
	snprintf(s->cg_dirs[0], sizeof(s->cg_dirs[0]), "%s/%s", parent, tag);
	if ((rc = daemon_mkdir_p(s->cg_dirs[0], 0755)) ||
	    (rc = write_text(s->cg_dirs[0], "cgroup.subtree_control",
			     "+cpu +memory +pids"))) {
		snprintf(s->cg_why, sizeof(s->cg_why), "cannot set up %s: %s",
			 s->cg_dirs[0], strerror(-rc));
		return -1;
	}
	s->ncg = 1;
	/* Exclusive CPU placement writes each instance's cpuset.cpus; without
	 * the controller an instance's CPUs are its affinity alone. */
	if (c->sandbox.cpus_exclusive) {
		int e1 = write_text(up, "cgroup.subtree_control", "+cpuset");
		int e2 = write_text(parent, "cgroup.subtree_control", "+cpuset");
		int e3 = write_text(s->cg_dirs[0], "cgroup.subtree_control", "+cpuset");

		s->cpuset_ok = !e2 && !e3;
		if (!s->cpuset_ok)
			daemon_log(0, "isolation: cannot enable the cpuset controller in %s (%s): an instance's CPUs are only its affinity, which its code could widen",
				   parent, strerror(-(e2 ? e2 : e3 ? e3 : e1)));
	}
	return 0;
}

/* v1's cpuset hierarchy for exclusive placement: a new cpuset cgroup
 * starts with no CPUs and no memory nodes, so each level down to this
 * daemon's directory gets its parent's. */
static int cpuset_setup_v1(struct iso *s, const char *tag)
{
	static const char *const files[] = { "cpuset.mems", "cpuset.cpus" };
	char dir[PATH_MAX], up[PATH_MAX], text[640];

	snprintf(up, sizeof(up), CGROUP_FS "/cpuset");
	for (int level = 0; level < 2; level++) {
		snprintf(dir, sizeof(dir), "%s/%s", up, level ? tag : "mignificent");
		if (mkdir(dir, 0755) && errno != EEXIST)
			return -errno;
		for (int f = 0; f < 2; f++) {
			int rc = read_text(up, files[f], text, sizeof(text));

			if (rc || (rc = write_text(dir, files[f], "%s", text)))
				return rc;
		}
		snprintf(up, sizeof(up), "%s", dir);
	}
	snprintf(s->cg_dirs[V1_CONTROLLERS], sizeof(s->cg_dirs[0]), "%s", dir);
	return 0;
}

static int cgroup_setup_v1(struct iso *s, const struct mig_config *c,
			   const char *tag)
{
	static const char *const ctl[V1_CONTROLLERS][2] = {
		{ "memory", NULL }, { "cpu", "cpu,cpuacct" }, { "pids", NULL },
	};
	char dir[PATH_MAX];
	int rc;

	for (int i = 0; i < V1_CONTROLLERS; i++) {
		snprintf(dir, sizeof(dir), CGROUP_FS "/%s", ctl[i][0]);
		if (access(dir, F_OK) && ctl[i][1])
			snprintf(dir, sizeof(dir), CGROUP_FS "/%s", ctl[i][1]);
		if (access(dir, W_OK)) {
			snprintf(s->cg_why, sizeof(s->cg_why),
				 "the cgroup v1 %s hierarchy is not mounted writable at %s",
				 ctl[i][0], dir);
			return -1;
		}
		snprintf(s->cg_dirs[i], sizeof(s->cg_dirs[i]), "%s/mignificent/%s",
			 dir, tag);
		if ((rc = daemon_mkdir_p(s->cg_dirs[i], 0755))) {
			snprintf(s->cg_why, sizeof(s->cg_why), "cannot create %s: %s",
				 s->cg_dirs[i], strerror(-rc));
			return -1;
		}
	}
	s->ncg = V1_CONTROLLERS;
	if (c->sandbox.cpus_exclusive) {
		if ((rc = cpuset_setup_v1(s, tag)))
			daemon_log(0, "isolation: cannot set up the cgroup v1 cpuset hierarchy under %s (%s): an instance's CPUs are only its affinity, which its code could widen",
				   CGROUP_FS "/cpuset", strerror(-rc));
		else
			s->ncg = V1_CONTROLLERS + 1;
		s->cpuset_ok = !rc;
	}
	return 0;
}

static void cgroup_setup(struct iso *s, const struct mig_config *c)
{
	const char *tag = s->tag;

	if (!is_root()) {
		snprintf(s->cg_why, sizeof(s->cg_why), "the daemon is not root");
		return;
	}
	if (!access(CGROUP_FS "/cgroup.controllers", F_OK)) {
		if (!cgroup_setup_v2(s, c, tag))
			s->cg_version = 2;
	} else if (!cgroup_setup_v1(s, c, tag)) {
		s->cg_version = 1;
	}
	for (int i = 0; s->cg_version && i < s->ncg; i++)
		cgroup_clear_children(s->cg_dirs[i]);
}

/* --- the driver libraries to hide ---------------------------------------- */

static bool driver_file(const char *name)
{
	static const char *const pat[] = {
		"libcuda.so*", "libcudadebugger.so*", "libnvidia-*.so*",
		"libnvcuvid.so*", "libnvoptix.so*", NULL,
	};

	for (int i = 0; pat[i]; i++)
		if (!fnmatch(pat[i], name, 0))
			return true;
	return false;
}

static bool listed(char **v, int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

static void scan_dir(struct iso *s, const char *dir, const char *shim_real)
{
	char path[PATH_MAX], real[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);

	while (d && (e = readdir(d))) {
		if (!driver_file(e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (!realpath(path, real))
			continue;
		/* The shim directory holds the libcuda.so.1 and the
		 * libnvidia-ml.so.1 a function may load: ours. */
		if (*shim_real && !strncmp(real, shim_real, strlen(shim_real)))
			continue;
		if (!listed(s->hide, s->nhide, real))
			push(&s->hide, &s->nhide, real);
	}
	if (d)
		closedir(d);
}

/* Directories named in /etc/ld.so.conf and the files it includes. */
static void ld_conf_dirs(const char *conf, char ***dirs, int *n, int depth)
{
	char line[PATH_MAX];
	FILE *f = fopen(conf, "re");

	while (f && fgets(line, sizeof(line), f)) {
		char *p = line + strspn(line, " \t");

		p[strcspn(p, "\n#")] = 0;
		for (char *q = p + strlen(p); q > p && (q[-1] == ' ' || q[-1] == '\t'); q--)
			q[-1] = 0;
		if (!strncmp(p, "include", 7) && (p[7] == ' ' || p[7] == '\t')) {
			glob_t g;

			p += 8 + strspn(p + 8, " \t");
			if (depth < 4 && !glob(p, 0, NULL, &g)) {
				for (size_t i = 0; i < g.gl_pathc; i++)
					ld_conf_dirs(g.gl_pathv[i], dirs, n, depth + 1);
				globfree(&g);
			}
		} else if (*p == '/') {
			push(dirs, n, p);
		}
	}
	if (f)
		fclose(f);
}

static void find_driver_files(struct iso *s, const struct mig_config *c,
			      const char *shim_dir)
{
	static const char *const dirs[] = {
		"/lib", "/lib64", "/usr/lib", "/usr/lib64",
		"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
		"/usr/local/lib", "/usr/local/lib/x86_64-linux-gnu",
		"/usr/local/nvidia/lib", "/usr/local/nvidia/lib64",
		"/usr/lib/wsl/lib", NULL,
	};
	static const char *const globs[] = {
		"/usr/local/cuda*/compat", "/usr/local/cuda*/lib64/stubs",
		"/usr/local/cuda*/targets/*/lib/stubs", NULL,
	};
	char shim_real[PATH_MAX] = "", **more = NULL;
	int nmore = 0;

	if (!realpath(shim_dir, shim_real))
		*shim_real = 0;
	for (int i = 0; dirs[i]; i++)
		scan_dir(s, dirs[i], shim_real);
	for (int i = 0; globs[i]; i++) {
		glob_t g;

		if (glob(globs[i], GLOB_ONLYDIR, NULL, &g))
			continue;
		for (size_t k = 0; k < g.gl_pathc; k++)
			scan_dir(s, g.gl_pathv[k], shim_real);
		globfree(&g);
	}
	ld_conf_dirs("/etc/ld.so.conf", &more, &nmore, 0);
	for (int i = 0; i < nmore; i++)
		scan_dir(s, more[i], shim_real);
	free_vec(more);
	for (char **p = c->sandbox.hide; p && *p; p++)
		if (!listed(s->hide, s->nhide, *p))
			push(&s->hide, &s->nhide, *p);
}

/* --- CPU placement ------------------------------------------------------ */

/* The pool of exclusive placement: sandbox.cpu_pool (config.c checked
 * that this daemon may run on its CPUs), or every CPU it may run on. */
static int cpu_placement_init(struct iso *s, const struct mig_config *c,
			      char *err, size_t errlen)
{
	if (!c->sandbox.cpus_exclusive)
		return 0;
	if (!strcmp(c->isolation, "bare")) {
		daemon_log(0, "isolation: \"bare\" places no function on CPUs of its own (sandbox.cpu_placement needs the sandbox or an OCI runtime)");
		return 0;
	}
	if (*c->sandbox.cpu_pool) {
		mig_cpulist_parse(c->sandbox.cpu_pool, &s->cpu_pool);
	} else if (sched_getaffinity(0, sizeof(s->cpu_pool), &s->cpu_pool)) {
		snprintf(err, errlen, "sandbox.cpu_placement: cannot read the CPUs this daemon may run on: %s",
			 strerror(errno));
		return -1;
	}
	if (mig_cpulist_format(&s->cpu_pool, s->cpu_pool_list, sizeof(s->cpu_pool_list)) >=
	    sizeof(s->cpu_pool_list)) {
		snprintf(err, errlen, "sandbox.cpu_pool: the list of its CPUs is too long");
		return -1;
	}
	s->placing = true;
	daemon_log(1, "isolation: exclusive CPU placement over CPUs %s (%d)",
		   s->cpu_pool_list, CPU_COUNT(&s->cpu_pool));
	return 0;
}

static void cpus_reshare(struct iso *s);

/* The CPUs of the instances without CPUs of their own: the pool's that
 * none holds, or all of the pool when every one is held (s->lock held). */
static void cpus_shared(const struct iso *s, cpu_set_t *set)
{
	mig_cpulist_minus(set, &s->cpu_pool, &s->cpus_held);
	if (!CPU_COUNT(set))
		*set = s->cpu_pool;
}

/* Choose @j's CPUs for a CPU limit of @cpus (0: none): ceil(@cpus) free
 * CPUs of its own, else the pool's free CPUs, shared (all of the pool when
 * every one is held). */
static void cpus_place(struct iso *s, struct mig_jail *j, double cpus,
		       const char *id)
{
	cpu_set_t free, got;
	int want = cpus > 0 ? (int)ceil(cpus - 1e-9) : 0;

	*j->cpus = 0;
	j->cpus_own = false;
	if (!s->placing)
		return;
	pthread_mutex_lock(&s->lock);
	mig_cpulist_minus(&free, &s->cpu_pool, &s->cpus_held);
	if (want && !mig_cpulist_pick(&free, want, &got)) {
		CPU_OR(&s->cpus_held, &s->cpus_held, &got);
		j->cpus_own = true;
		cpus_reshare(s);
	} else {
		cpus_shared(s, &got);
	}
	pthread_mutex_unlock(&s->lock);
	mig_cpulist_format(&got, j->cpus, sizeof(j->cpus));
	if (want && !j->cpus_own)
		daemon_log(1, "isolation: %s: %d CPUs of its own asked, %d free: it shares CPUs %s",
			   id, want, CPU_COUNT(&free), j->cpus);
}


/* The cpuset directory of @j's cgroups ("" if none). */
static const char *cpuset_dir(const struct iso *s, const struct mig_jail *j)
{
	int i = s->cg_version == 2 ? 0 : V1_CONTROLLERS;

	return s->cpuset_ok && j->ncgroups > i ? j->cgroups[i] : "";
}

/* Write the shared CPUs into every sharing instance's cpuset, after an
 * instance took or gave back CPUs of its own (s->lock held).  The kernel
 * moves their threads at once. */
static void cpus_reshare(struct iso *s)
{
	cpu_set_t set;
	char list[512];

	cpus_shared(s, &set);
	mig_cpulist_format(&set, list, sizeof(list));
	for (int i = 0; i < s->nshared; i++) {
		int rc = write_text(s->shared[i], "cpuset.cpus", "%s", list);

		if (rc)
			daemon_log(1, "isolation: cannot set the CPUs of %s to %s: %s",
				   s->shared[i], list, strerror(-rc));
	}
}

/* @j (placed, not on CPUs of its own, its cgroups made) follows the shared
 * CPUs from now on. */
static void cpus_share(struct iso *s, struct mig_jail *j)
{
	const char *dir = cpuset_dir(s, j);
	char *copy = NULL;

	if (!s->placing || j->cpus_own || !*dir)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->nshared == s->shared_cap) {
		int cap = s->shared_cap ? 2 * s->shared_cap : 16;
		char **v = realloc(s->shared, (size_t)cap * sizeof(*v));

		if (!v)
			goto out;
		s->shared = v;
		s->shared_cap = cap;
	}
	if ((copy = strdup(dir))) {
		s->shared[s->nshared++] = copy;
		cpus_reshare(s); /* its own cpuset too: others may have moved */
	}
out:
	if (!copy)
		daemon_log(0, "isolation: out of memory: %s keeps CPUs %s", dir, j->cpus);
	pthread_mutex_unlock(&s->lock);
}

/* @j no longer follows the shared CPUs (s->lock held). */
static void cpus_unshare(struct iso *s, const struct mig_jail *j)
{
	const char *dir = cpuset_dir(s, j);

	for (int i = 0; *dir && i < s->nshared; i++)
		if (!strcmp(s->shared[i], dir)) {
			free(s->shared[i]);
			s->shared[i] = s->shared[--s->nshared];
			return;
		}
}

/* Give back @j's own CPUs (s->lock held). */
static void cpus_give(struct iso *s, struct mig_jail *j)
{
	cpu_set_t mine;

	if (j->cpus_own && !mig_cpulist_parse(j->cpus, &mine)) {
		mig_cpulist_minus(&s->cpus_held, &s->cpus_held, &mine);
		cpus_reshare(s);
	}
	j->cpus_own = false;
}

size_t isolation_cpus(const struct mig_jail *j, char *buf, size_t n)
{
	struct iso *s = &iso_state;
	cpu_set_t set;

	if (j->cpus_own || !*j->cpus || !*cpuset_dir(s, j))
		return (size_t)snprintf(buf, n, "%s", j->cpus);
	pthread_mutex_lock(&s->lock);
	cpus_shared(s, &set);
	pthread_mutex_unlock(&s->lock);
	return mig_cpulist_format(&set, buf, n);
}

/* --- set-up and teardown ------------------------------------------------ */

int isolation_init(struct mig_daemon *d, const char *bin_dir,
		   const char *shim_dir, char *err, size_t errlen)
{
	struct iso *s = &iso_state;
	const struct mig_config *c = &d->cfg;

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->uid_used = calloc(c->sandbox.uid_count ? c->sandbox.uid_count : 1, 1);
	if (!s->uid_used) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->uid_next = 0;
	s->cfg = c;
	daemon_tag(c->data_dir, s->tag, sizeof(s->tag));
	s->epoch = (unsigned int)time(NULL);
	if (!strcmp(c->isolation, "bare")) {
		daemon_log(0, "isolation: \"bare\": functions run as plain processes of the daemon's user, with NO isolation (development only)");
		return 0;
	}
	snprintf(s->sandbox_bin, sizeof(s->sandbox_bin), "%.*s/mig-sandbox",
		 PATH_MAX - 16, bin_dir);
	snprintf(s->root_dir, sizeof(s->root_dir), "%.*s/sandbox-root",
		 PATH_MAX - 16, c->data_dir);
	if (!is_root())
		snprintf(s->sandbox_why, sizeof(s->sandbox_why),
			 "the daemon does not run as root");
	else if (access(s->sandbox_bin, X_OK))
		snprintf(s->sandbox_why, sizeof(s->sandbox_why), "%s is missing: %s",
			 s->sandbox_bin, strerror(errno));
	else if (mkdir(s->root_dir, 0755) && errno != EEXIST)
		snprintf(s->sandbox_why, sizeof(s->sandbox_why), "cannot create %s: %s",
			 s->root_dir, strerror(errno));
	else
		s->sandbox_ok = true;
	find_driver_files(s, c, shim_dir);
	cgroup_setup(s, c);
	if (!strcmp(c->isolation, "sandbox") && !s->sandbox_ok) {
		snprintf(err, errlen,
			 "isolation \"sandbox\" is not possible here: %s; run mignificentd as root, or choose --isolation oci or (development only) bare",
			 s->sandbox_why);
		return -1;
	}
	if (strcmp(c->isolation, "bare") && !s->cg_version)
		daemon_log(0, "isolation: no cgroup limits (memory, CPU, pids) for functions: %s",
			   s->cg_why);
	if (cpu_placement_init(s, c, err, errlen))
		return -1;
	daemon_log(1, "isolation: %s; cgroup v%d; %d driver files hidden",
		   c->isolation, s->cg_version, s->nhide);
	return 0;
}

static void uid_give(const struct mig_config *c, unsigned int uid);

/* Append @j to the sweep list (s->lock held).  Out of memory, the jail is
 * dropped: a stale cgroup is removed at the next start, a uid is lost. */
static void sweep_add(struct iso *s, const struct mig_jail *j)
{
	if (s->nsweep == s->sweep_cap) {
		int cap = s->sweep_cap ? s->sweep_cap * 2 : 16;
		struct mig_jail *v = realloc(s->sweep, (size_t)cap * sizeof(*v));

		if (!v) {
			daemon_log(0, "isolation: out of memory; the cgroups of %s stay until the next start",
				   j->ncgroups ? j->cgroups[0] : "an instance");
			return;
		}
		s->sweep = v;
		s->sweep_cap = cap;
	}
	s->sweep[s->nsweep++] = *j;
}

void isolation_shutdown(struct mig_daemon *d)
{
	struct iso *s = &iso_state;

	(void)d;
	for (int tries = 0; tries < 100 && s->nsweep; tries++) {
		isolation_sweep();
		if (s->nsweep)
			usleep(10000);
	}
	for (int i = 0; i < s->ncg; i++)
		rmdir(s->cg_dirs[i]);
	free_vec(s->hide);
	for (int i = 0; i < s->nshared; i++)
		free(s->shared[i]);
	free(s->shared);
	s->shared = NULL;
	s->nshared = s->shared_cap = 0;
	free(s->sweep);
	free(s->uid_used);
	s->hide = NULL;
	s->sweep = NULL;
	s->sweep_cap = 0;
	s->uid_used = NULL;
	s->nhide = s->nsweep = 0;
}

/* Retry removing the cgroups of instances whose processes were exiting. */
void isolation_sweep(void)
{
	struct iso *s = &iso_state;
	struct mig_jail *batch;
	int n, left = 0;

	/* Take the list, work on it unlocked (rmdir, cgroup.kill and file
	 * removal may block), give back what is still busy. */
	pthread_mutex_lock(&s->lock);
	batch = s->sweep;
	n = s->nsweep;
	s->sweep = NULL;
	s->nsweep = s->sweep_cap = 0;
	pthread_mutex_unlock(&s->lock);
	for (int i = 0; i < n; i++) {
		struct mig_jail *j = &batch[i];
		int busy = 0;

		for (int c = 0; c < j->ncgroups; c++)
			if (cgroup_remove(j->cgroups[c]) == -EBUSY)
				memcpy(j->cgroups[busy++], j->cgroups[c], sizeof(j->cgroups[c]));
		j->ncgroups = busy;
		if (*j->bundle) {
			oci_remove_bundle(j->bundle);
			*j->bundle = 0;
		}
		if (busy) {
			batch[left++] = *j;
			continue;
		}
		/* Its processes are all gone: the uid and its CPUs may serve
		 * again. */
		if (j->uid)
			uid_give(s->cfg, j->uid);
		if (j->cpus_own) {
			pthread_mutex_lock(&s->lock);
			cpus_give(s, j);
			pthread_mutex_unlock(&s->lock);
		}
	}
	if (!left) {
		free(batch);
		return;
	}
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < left; i++)
		sweep_add(s, &batch[i]);
	pthread_mutex_unlock(&s->lock);
	free(batch);
}

/* --- one instance ------------------------------------------------------- */

const char *isolation_mode(const struct mig_daemon *d, const struct mig_function *f)
{
	return *f->isolation ? f->isolation : d->cfg.isolation;
}

static int uid_take(const struct mig_config *c, unsigned int *uid)
{
	struct iso *s = &iso_state;
	unsigned int n = c->sandbox.uid_count;
	int rc = -EAGAIN;

	pthread_mutex_lock(&s->lock);
	for (unsigned int k = 0; k < n; k++) {
		unsigned int i = (s->uid_next + k) % n;

		if (!s->uid_used[i]) {
			s->uid_used[i] = 1;
			s->uid_next = (i + 1) % n;
			*uid = c->sandbox.uid_base + i;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static void uid_give(const struct mig_config *c, unsigned int uid)
{
	struct iso *s = &iso_state;

	if (uid < c->sandbox.uid_base || uid - c->sandbox.uid_base >= c->sandbox.uid_count)
		return;
	pthread_mutex_lock(&s->lock);
	s->uid_used[uid - c->sandbox.uid_base] = 0;
	pthread_mutex_unlock(&s->lock);
}

/* Set @p's limits on @j's cgroups (which exist). */
static int cgroup_limits(struct mig_jail *j, const struct mig_sandbox_plan *p,
			 char *err, size_t errlen)
{
	struct iso *s = &iso_state;
	int rc = 0;

	if (s->cg_version == 2) {
		const char *dir = j->cgroups[0];

		if ((rc = p->memory ? write_text(dir, "memory.max", "%llu",
						 (unsigned long long)p->memory) :
				      write_text(dir, "memory.max", "max")))
			goto fail;
		write_text(dir, "memory.swap.max", "0");
		if ((rc = p->cpus > 0 ?
			  write_text(dir, "cpu.max", "%llu 100000",
				     (unsigned long long)(p->cpus * 100000.0 + 0.5)) :
			  write_text(dir, "cpu.max", "max 100000")))
			goto fail;
		if ((rc = p->pids ? write_text(dir, "pids.max", "%u", p->pids) :
				    write_text(dir, "pids.max", "max")))
			goto fail;
		/* The whole instance dies on OOM, not one of its threads. */
		write_text(dir, "memory.oom.group", "1");
		if (s->cpuset_ok &&
		    (rc = write_text(dir, "cpuset.cpus", "%s",
				     *p->cpu_list ? p->cpu_list : s->cpu_pool_list)))
			goto fail;
	} else if (s->cg_version == 1) {
		/* memsw (absent without swap accounting) must stay >= the
		 * limit: lift it first, set it last. */
		write_text(j->cgroups[0], "memory.memsw.limit_in_bytes", "-1");
		if ((rc = p->memory ? write_text(j->cgroups[0], "memory.limit_in_bytes", "%llu",
						 (unsigned long long)p->memory) :
				      write_text(j->cgroups[0], "memory.limit_in_bytes", "-1")))
			goto fail;
		if (p->memory)
			write_text(j->cgroups[0], "memory.memsw.limit_in_bytes", "%llu",
				   (unsigned long long)p->memory);
		if ((rc = write_text(j->cgroups[1], "cpu.cfs_period_us", "100000")) ||
		    (rc = write_text(j->cgroups[1], "cpu.cfs_quota_us", "%lld",
				     p->cpus > 0 ? (long long)(p->cpus * 100000.0 + 0.5) : -1ll)))
			goto fail;
		if ((rc = p->pids ? write_text(j->cgroups[2], "pids.max", "%u", p->pids) :
				    write_text(j->cgroups[2], "pids.max", "max")))
			goto fail;
		if (s->cpuset_ok) {
			char mems[640];

			if ((rc = read_text(s->cg_dirs[V1_CONTROLLERS], "cpuset.mems",
					    mems, sizeof(mems))) ||
			    (rc = write_text(j->cgroups[V1_CONTROLLERS], "cpuset.mems", "%s", mems)) ||
			    (rc = write_text(j->cgroups[V1_CONTROLLERS], "cpuset.cpus", "%s",
					     *p->cpu_list ? p->cpu_list : s->cpu_pool_list)))
				goto fail;
		}
	}
	return 0;
fail:
	snprintf(err, errlen, "cannot set the limits of the cgroup of %s: %s",
		 p->id, strerror(-rc));
	return rc;
}

/* Create @j's cgroups, named @p->id, with @p's limits. */
static int cgroup_create(struct mig_jail *j, const struct mig_sandbox_plan *p,
			 char *err, size_t errlen)
{
	struct iso *s = &iso_state;

	for (int i = 0; i < s->ncg; i++) {
		snprintf(j->cgroups[i], sizeof(j->cgroups[i]), "%s/%s",
			 s->cg_dirs[i], p->id);
		if (mkdir(j->cgroups[i], 0755) && errno != EEXIST) {
			int rc = -errno;

			snprintf(err, errlen, "cannot create the cgroup %s: %s",
				 j->cgroups[i], strerror(errno));
			return rc;
		}
		j->ncgroups = i + 1;
	}
	return cgroup_limits(j, p, err, errlen);
}

static void add_ro(struct mig_sandbox_plan *p, int *n, const char *path)
{
	char dir[PATH_MAX], real[PATH_MAX], out[PATH_MAX];
	const char *base;
	char *slash;

	if (!path || *path != '/' || access(path, F_OK))
		return;
	/* The directory part canonical (no "..", no symlinks), the last
	 * component as the executor names it. */
	snprintf(dir, sizeof(dir), "%s", path);
	while ((slash = strrchr(dir, '/')) && !slash[1] && slash != dir)
		*slash = 0; /* trailing slashes */
	slash = strrchr(dir, '/');
	base = slash + 1;
	if (!strcmp(base, "..") || !strcmp(base, ".")) {
		if (!realpath(path, out))
			return;
	} else {
		*slash = 0;
		if (!realpath(*dir ? dir : "/", real))
			return;
		snprintf(out, sizeof(out), "%s/%s", strcmp(real, "/") ? real : "",
			 path + (base - dir));
	}
	if (!listed(p->ro_paths, *n, out))
		push(&p->ro_paths, n, out);
}

/* The installation @exe belongs to: the directory above its bin/, or
 * its directory.  Nothing for what is under /usr (always shown). */
static void add_prefix(struct mig_sandbox_plan *p, int *n, const char *exe)
{
	char path[PATH_MAX], *slash;

	snprintf(path, sizeof(path), "%s", exe);
	if (!(slash = strrchr(path, '/')) || slash == path)
		return;
	*slash = 0;
	if ((slash = strrchr(path, '/')) && !strcmp(slash, "/bin") && slash != path)
		*slash = 0;
	if (!strcmp(path, "/usr") || !strncmp(path, "/usr/", 5) || !strcmp(path, "/"))
		return;
	add_ro(p, n, path);
}

static bool is_elf(const char *path)
{
	char magic[4];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool elf = fd >= 0 && read(fd, magic, 4) == 4 && !memcmp(magic, "\177ELF", 4);

	if (fd >= 0)
		close(fd);
	return elf;
}

/*
 * Show the Python interpreter a function runs with: the installation of
 * the path it is named by (a virtual environment: its site-packages) and
 * that of the binary it resolves to (a venv's python is a symlink to a
 * base interpreter).  A bare name is looked up on the daemon's PATH, as
 * the executor will; a wrapper script there (pyenv's shims) is passed
 * over, as the executor will pass over what it cannot see.
 */
static void add_python(struct mig_sandbox_plan *p, int *n, const char *python)
{
	char found[PATH_MAX], real[PATH_MAX];

	if (!*python)
		python = "python3";
	if (strchr(python, '/')) {
		snprintf(found, sizeof(found), "%s", python);
	} else {
		const char *d = getenv("PATH");
		bool ok = false;

		for (d = d ? d : "/usr/bin:/bin"; *d && !ok;) {
			size_t len = strcspn(d, ":");

			snprintf(found, sizeof(found), "%.*s/%s", (int)len, d, python);
			ok = len && *d == '/' && !access(found, X_OK) &&
			     realpath(found, real) && is_elf(real);
			d += len + (d[len] == ':');
		}
		if (!ok)
			return;
	}
	add_prefix(p, n, found);
	if (realpath(found, real) && strcmp(real, found))
		add_prefix(p, n, real);
}

int isolation_prepare(struct mig_daemon *d, const struct mig_function *f,
		      const struct mig_isolation_input *in, struct mig_jail *j,
		      char ***argv_out, char *err, size_t errlen)
{
	const struct mig_config *c = &d->cfg;
	struct iso *s = &iso_state;
	struct mig_sandbox_plan p = { 0 };
	const char *mode = isolation_mode(d, f);
	char **argv = NULL, num[64];
	int nro = 0, nargv = 0, rc = -ENOMEM;

	if (!j->pooled)
		memset(j, 0, sizeof(*j));
	snprintf(j->mode, sizeof(j->mode), "%s", mode);
	*argv_out = NULL;
	if (!strcmp(mode, "bare")) {
		if (strcmp(c->isolation, "bare") && !c->allow_bare) {
			snprintf(err, errlen, "isolation \"bare\" is not allowed on this node");
			return -EPERM;
		}
		return 0; /* the caller runs in->argv as it is */
	}
	if (!strcmp(c->isolation, "bare")) {
		snprintf(err, errlen, "this node runs functions bare (development mode, no isolation); it cannot give \"%s\"",
			 mode);
		return -ENOTSUP;
	}
	if (!strcmp(mode, "sandbox") && !s->sandbox_ok) {
		snprintf(err, errlen, "the sandbox is not available on this node: %s",
			 s->sandbox_why);
		return -ENOTSUP;
	}
	if (j->pooled && strcmp(mode, "sandbox")) {
		snprintf(err, errlen, "a pre-started sandbox cannot run isolation \"%s\"", mode);
		return -EINVAL;
	}
	if (!j->pooled && (rc = uid_take(c, &j->uid))) {
		snprintf(err, errlen, "all %u sandbox uids are in use",
			 c->sandbox.uid_count);
		return rc;
	}
	rc = -ENOMEM;
	snprintf(p.id, sizeof(p.id), "%s", in->id);
	p.uid = p.gid = j->uid;
	p.network = f->network;
	p.memory = f->mem_limit ? f->mem_limit : c->sandbox.memory;
	p.cpus = f->cpus > 0 ? f->cpus : c->sandbox.cpus;
	p.pids = f->pids ? f->pids : c->sandbox.pids;
	p.tmp = f->tmp ? f->tmp : c->sandbox.tmp;
	cpus_place(s, j, p.cpus, in->id);
	snprintf(p.cpu_list, sizeof(p.cpu_list), "%s", j->cpus);
	p.cwd = in->cwd;
	p.argv = in->argv;
	p.envp = in->envp;
	p.nfds = in->nfds;
	p.hide = s->hide;
	add_ro(&p, &nro, in->cwd);          /* the function's code */
	for (int i = 0; in->ro && in->ro[i]; i++)
		add_ro(&p, &nro, in->ro[i]); /* executor, shim, libraries */
	if (!strcmp(f->language, "python"))
		add_python(&p, &nro, f->python);
	for (char **x = c->sandbox.ro_paths; x && *x; x++)
		add_ro(&p, &nro, *x);
	if (j->pooled && j->ncgroups && (rc = cgroup_limits(j, &p, err, errlen)))
		goto fail;
	if (!j->pooled && s->cg_version && (rc = cgroup_create(j, &p, err, errlen)))
		goto fail;
	if (j->ncgroups)
		snprintf(p.cgroup, sizeof(p.cgroup), "%s", j->cgroups[0]);
	cpus_share(s, j);
	rc = -ENOMEM;

	if (!strcmp(mode, "oci")) {
		const char *rootfs = *f->rootfs ? f->rootfs : "/";

		/* The runtime's container names are node-wide and outlive us:
		 * this daemon's tag and its start make them unique. */
		snprintf(p.id, sizeof(p.id), "mig-%s-%x-%s", s->tag, s->epoch, in->id);

		snprintf(j->bundle, sizeof(j->bundle), "%.*s/bundles/%s",
			 PATH_MAX - 100, c->data_dir, in->id);
		if (oci_write_bundle(&p, rootfs, j->bundle, err, errlen)) {
			rc = -EIO;
			goto fail;
		}
		argv = oci_argv(c, &p, j->bundle, rootfs, err, errlen);
		if (!argv) {
			rc = -EINVAL;
			goto fail;
		}
		*argv_out = argv;
		free_vec(p.ro_paths);
		return 0;
	}

	/* The built-in sandbox. */
#define ARG(s) do { if (push(&argv, &nargv, (s))) goto fail; } while (0)
	ARG(s->sandbox_bin);
	ARG("--root");
	ARG(s->root_dir);
	snprintf(num, sizeof(num), "%u", j->uid);
	ARG("--uid");
	ARG(num);
	ARG("--gid");
	ARG(num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)p.tmp);
	ARG("--tmp");
	ARG(num);
	snprintf(num, sizeof(num), "%d", p.nfds);
	ARG("--fds");
	ARG(num);
	ARG("--cwd");
	ARG(p.cwd);
	ARG("--hostname");
	ARG(p.id);
	if (p.network)
		ARG("--network");
	/* Its CPUs as its affinity, where they are its own or no cpuset
	 * follows the shared ones (an affinity would outlast a cpuset's
	 * widening). */
	if (*j->cpus && (j->cpus_own || !*cpuset_dir(s, j))) {
		ARG("--cpus");
		ARG(j->cpus);
	}
	for (int i = 0; i < j->ncgroups && !j->pooled; i++) {
		ARG("--cgroup");
		ARG(j->cgroups[i]);
	}
	for (char **x = p.ro_paths; x && *x; x++) {
		ARG("--ro");
		ARG(*x);
	}
	for (int i = 0; i < s->nhide; i++) {
		ARG("--hide");
		ARG(s->hide[i]);
	}
	ARG("--");
	for (char **x = in->argv; x && *x; x++)
		ARG(*x);
#undef ARG
	free_vec(p.ro_paths);
	*argv_out = argv;
	return 0;
fail:
	if (rc == -ENOMEM && !*err)
		snprintf(err, errlen, "out of memory");
	free_vec(argv);
	free_vec(p.ro_paths);
	isolation_release(d, j);
	return rc;
}

/* Queue @j for isolation_sweep(); its cgroups, bundle and uid are
 * released there, off the caller's locks. */
void isolation_release(struct mig_daemon *d, struct mig_jail *j)
{
	struct iso *s = &iso_state;

	(void)d;
	if (j->ncgroups || *j->bundle || j->uid || j->cpus_own) {
		pthread_mutex_lock(&s->lock);
		cpus_unshare(s, j);
		sweep_add(s, j);
		pthread_mutex_unlock(&s->lock);
	}
	memset(j, 0, sizeof(*j));
}

void isolation_kill(const struct mig_jail *j, pid_t pid)
{
	char path[PATH_MAX];
	FILE *f;

	if (strcmp(j->mode, "oci") || !j->ncgroups) {
		if (pid > 0)
			kill(pid, SIGKILL);
		return;
	}
	/* Killing the runtime would leave its container (and state) behind:
	 * kill what runs in the container instead. */
	if (iso_state.cg_version == 2 && !write_text(j->cgroups[0], "cgroup.kill", "1"))
		return;
	snprintf(path, sizeof(path), "%s/cgroup.procs", j->cgroups[0]);
	if ((f = fopen(path, "re"))) {
		long p;

		while (fscanf(f, "%ld", &p) == 1)
			if (p > 0)
				kill((pid_t)p, SIGKILL);
		fclose(f);
	} else if (pid > 0) {
		kill(pid, SIGKILL);
	}
}

bool isolation_memory_exceeded(const struct mig_jail *j)
{
	if (!j->ncgroups)
		return false;
	if (iso_state.cg_version == 2)
		return read_key(j->cgroups[0], "memory.events", "oom_kill") > 0 ||
		       read_key(j->cgroups[0], "memory.events", "oom_group_kill") > 0;
	return read_key(j->cgroups[0], "memory.oom_control", "oom_kill") > 0;
}

/* --- pre-started sandboxes ----------------------------------------------- */

int isolation_pool_size(const struct mig_daemon *d)
{
	if (strcmp(d->cfg.isolation, "sandbox") || !iso_state.sandbox_ok)
		return 0;
	return d->cfg.sandbox.pool;
}

int isolation_pool_prepare(struct mig_daemon *d, const char *id,
			   struct mig_jail *j, char ***argv_out, char *err,
			   size_t errlen)
{
	const struct mig_config *c = &d->cfg;
	struct iso *s = &iso_state;
	struct mig_sandbox_plan p = { 0 };
	char **argv = NULL;
	int n = 0, rc;

	memset(j, 0, sizeof(*j));
	*argv_out = NULL;
	if ((rc = uid_take(c, &j->uid))) {
		snprintf(err, errlen, "all %u sandbox uids are in use", c->sandbox.uid_count);
		return rc;
	}
	j->pooled = true;
	snprintf(j->mode, sizeof(j->mode), "sandbox");
	snprintf(p.id, sizeof(p.id), "%s", id);
	p.memory = c->sandbox.memory;
	p.cpus = c->sandbox.cpus;
	p.pids = c->sandbox.pids;
	if (s->cg_version && (rc = cgroup_create(j, &p, err, errlen)))
		goto fail;
	rc = -ENOMEM;
	if (push(&argv, &n, s->sandbox_bin) || push(&argv, &n, "--pooled"))
		goto fail;
	for (int i = 0; i < j->ncgroups; i++)
		if (push(&argv, &n, "--cgroup") || push(&argv, &n, j->cgroups[i]))
			goto fail;
	*argv_out = argv;
	return 0;
fail:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	free_vec(argv);
	isolation_release(d, j);
	return rc;
}
