/*
 * daemon.h - shared state and the interfaces between the parts of
 * mignificentd, the node daemon.
 *
 *   main.c       configuration, start-up, signals, shutdown
 *   config.c     embedded defaults, config file (JSON), flags
 *   http.c       the HTTP API (libmicrohttpd + jansson), tenancy, errors
 *   registry.c   deployed functions, per tenant, persisted in the data dir
 *   devices.c    GPUs and MIG instances through NVML -> partitions
 *   instances.c  executors + GPU servers: placement, warm reuse, keep-alive,
 *                queueing, scale-out, pre-initialized GPU server pool,
 *                supervision and clean-up
 *   metrics.c    counters and histograms, Prometheus text
 *   isolation.c  sandbox, OCI runtime or bare: uids, cgroups, command lines
 *   oci.c        OCI bundles and runtime command lines
 *   files.c      file-system helpers
 *
 * Threads: libmicrohttpd runs handlers on a pool of threads; a handler that
 * invokes a function blocks in instances_invoke() until the result (or a
 * timeout).  Each part guards its own state with its own lock.
 */
#ifndef MIG_DAEMON_H
#define MIG_DAEMON_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* --- configuration (config.c) -------------------------------------------- */

struct mig_tenant {
	char name[64];
	char token[128];
};

struct mig_config {
	char listen_addr[64];   /* default 127.0.0.1 */
	int listen_port;        /* default 10000 */
	char data_dir[PATH_MAX];
	char backend[16];       /* "cuda" (default) or "host" */
	char nvml_path[PATH_MAX]; /* default libnvidia-ml.so.1 */
	char bin_dir[PATH_MAX]; /* where mig-gpud and mig-exec live */
	char shim_dir[PATH_MAX];
	char lib_dir[PATH_MAX]; /* libmig_exec.so, python package */
	struct mig_tenant tenants[64];
	int ntenants;
	int pool_per_partition;  /* pre-initialized GPU servers; default 1 */
	uint64_t max_payload;    /* bytes; default 64 MiB */
	int http_threads;        /* 0 (default): a thread per connection;
				  * N: a pool of N threads (http.c) */
	uint64_t segment_size;   /* per instance; default 2 GiB */
	/* How the instances on a partition share its GPU (ipc/arbiter.h):
	 * enum mig_sharing for every partition, unless listed. */
	int sharing;
	struct mig_sharing_override {
		char uuid[96];
		int model;
	} sharing_part[32];
	int nsharing_part;
	unsigned int sharing_max_hold_ms; /* a holder this long is hung; 0 never */
	/* Executors poll this long for their next invocation before they
	 * sleep (exec/control.c); 0: they sleep at once. */
	unsigned int executor_poll_us;
	/* Lukewarm instances (gpud/swap.c): swap an instance idle this long
	 * (0: never); host memory they may hold, node-wide (0: a quarter of
	 * the machine's); swap idle instances out, rather than stop them,
	 * when another instance needs their partition's memory. */
	unsigned int lukewarm_after_ms;
	uint64_t lukewarm_host_memory;
	bool lukewarm_on_pressure;
	uint64_t module_cache;   /* bytes of GPU code images kept per deployed
				  * version for its next instances; 0: none */
	int verbose;
	uint64_t max_artifact;   /* bytes of one deployed artifact; 256 MiB */
	char devices[1024];      /* comma-separated GPU/MIG UUIDs to use (or
				  * GPU indices); "" for every partition */
	bool metrics_public;     /* GET /metrics without a token: all tenants */
	/* How executors are isolated (isolation.c): "sandbox" (default),
	 * "oci" or "bare" (development only: no isolation at all). */
	char isolation[16];
	bool allow_bare;         /* deployments may ask for "bare" */
	struct mig_sandbox_config {
		unsigned int uid_base;   /* host uids uid_base.. for functions */
		unsigned int uid_count;
		uint64_t memory;         /* default memory limit per instance */
		double cpus;             /* default CPU limit (0: none) */
		unsigned int pids;       /* default pids limit */
		uint64_t tmp;            /* size of the private /tmp */
		char **ro_paths;         /* extra read-only host paths (NULL-ended) */
		char **hide;             /* extra host files/dirs to hide */
		char cgroup_parent[PATH_MAX]; /* "" = auto */
		int pool;                /* sandboxes started ahead of time */
		bool cpus_exclusive;     /* cpu_placement "exclusive": an
					  * instance with a CPU limit gets
					  * that many CPUs of its own */
		char cpu_pool[512];      /* CPU list for functions ("": those
					  * the daemon may run on) */
	} sandbox;
	char oci_runtime[PATH_MAX];  /* "crun" (default) or "runc" or a path */
	char **oci_command;          /* command template instead of a runtime
				      * (NULL-ended; see docs/isolation.md) */
};

/* Defaults, then the file (if any), then flags.  0 or -1 with @err set. */
int config_load(struct mig_config *c, int argc, char **argv, char *err,
		size_t errlen);
/* Free what config_load() allocated (path lists). */
void config_free(struct mig_config *c);

/* --- partitions (devices.c) ---------------------------------------------- */

struct mig_partition {
	char uuid[96];        /* GPU-... or MIG-... : what mig-gpud binds to */
	char gpu_uuid[96];    /* the physical GPU */
	int gpu_index;
	char gpu_name[96];
	char profile[32];     /* "7g.141gb"-style MIG profile, or "whole" */
	int mig;              /* 1 if a MIG instance */
	uint64_t mem_total;   /* bytes */
	int sms;
	/* Book-keeping of instances.c (under devices lock): */
	uint64_t mem_reserved;
	int instances;
	int present;          /* cleared when a reload no longer finds it */
};

struct mig_devices {
	pthread_mutex_t lock;
	struct mig_partition *p;
	int n;
	char driver_version[32];
	char error[256];      /* why discovery found nothing, if it did */
};

/*
 * Discover partitions through NVML (dlopen'ed @nvml_path).  On a reload,
 * partitions still present keep their book-keeping; new ones are added;
 * vanished ones are marked !present (running instances keep running).
 * With backend "host": one partition, the host test double.
 */
int devices_discover(struct mig_devices *d, const char *nvml_path,
		     const char *backend);

/* --- isolation (isolation.c, oci.c) ------------------------------------ */

/*
 * Everything that decides what one executor can see and use, whatever
 * runs it (the built-in sandbox, an OCI runtime).  The executor runs as
 * host uid/gid @uid/@gid, which is uid/gid 1000 inside its user namespace.
 */
struct mig_sandbox_plan {
	char id[64];              /* instance id: hostname, container name */
	unsigned int uid, gid;
	char **ro_paths;          /* host paths visible read-only, at the same
				   * path inside (NULL-ended) */
	char **hide;              /* host files and directories made empty */
	bool network;             /* share the host's network */
	uint64_t memory;          /* bytes (0: no limit) */
	double cpus;              /* CPUs (0: no limit) */
	unsigned int pids;        /* 0: no limit */
	uint64_t tmp;             /* bytes of the private /tmp */
	const char *cwd;
	char **argv, **envp;      /* the executor */
	int nfds;                 /* fds 3..3+nfds-1 go to the executor */
	char cgroup[PATH_MAX];    /* the instance's cgroup ("" if none) */
	char cpu_list[512];       /* CPUs it runs on ("" : any) */
};

/* What one instance's isolation holds until its processes are gone. */
struct mig_jail {
	char mode[16];            /* "sandbox", "oci" or "bare" */
	unsigned int uid;         /* 0 for bare */
	char cgroups[4][PATH_MAX]; /* v2: one; v1: memory, cpu, pids (cpuset) */
	int ncgroups;
	char bundle[PATH_MAX];    /* OCI mode */
	bool pooled;              /* a pre-started sandbox: uid and cgroups
				   * made before the function was known */
	char cpus[512];           /* CPU list it runs on ("": any) */
	bool cpus_own;            /* held for it alone until its processes
				   * are gone (exclusive placement) */
};

/* The executor as it would run bare. */
struct mig_isolation_input {
	const char *id;           /* the instance's */
	char **argv, **envp;
	const char *cwd;          /* the function's code directory */
	const char *const *ro;    /* the executor, shim, libraries (NULL-ended) */
	int nfds;
};

struct mig_daemon;
struct mig_function;
/* Find the driver files, set up this daemon's cgroups, check that the
 * node's isolation mode can work.  0, or -1 with @err. */
int isolation_init(struct mig_daemon *d, const char *bin_dir,
		   const char *shim_dir, char *err, size_t errlen);
void isolation_shutdown(struct mig_daemon *d);
/* "sandbox", "oci" or "bare" for @f on this node. */
const char *isolation_mode(const struct mig_daemon *d,
			   const struct mig_function *f);
/* Take a uid, create the cgroup and make the command line (*@argv_out, a
 * NULL-ended malloc'ed vector; NULL for bare: run @in->argv).  0, or
 * -errno with @err; on success isolation_release() undoes it later. */
int isolation_prepare(struct mig_daemon *d, const struct mig_function *f,
		      const struct mig_isolation_input *in, struct mig_jail *j,
		      char ***argv_out, char *err, size_t errlen);
/* The instance's processes are gone: remove its cgroup, free its uid. */
void isolation_release(struct mig_daemon *d, struct mig_jail *j);
/* Stop the executor @pid of @j at once: the keeper of a sandbox; the
 * container's processes in OCI mode (the runtime then cleans up its state
 * and exits by itself). */
void isolation_kill(const struct mig_jail *j, pid_t pid);
/* Did the memory limit kill something in @j? */
bool isolation_memory_exceeded(const struct mig_jail *j);
/* The CPU list @j runs on now, into @buf ("" : any CPU); its length. */
size_t isolation_cpus(const struct mig_jail *j, char *buf, size_t n);
/* How many sandboxes to keep started ahead of time (0: none). */
int isolation_pool_size(const struct mig_daemon *d);
/* A pre-started sandbox named @id: uid, cgroups with the node's default
 * limits, and the command line of a `mig-sandbox --pooled` that joins
 * them.  isolation_prepare() with this @j later sets the function's
 * limits and gives the rest of the command line, to send it. */
int isolation_pool_prepare(struct mig_daemon *d, const char *id,
			   struct mig_jail *j, char ***argv_out, char *err,
			   size_t errlen);
/* Retry removing cgroups whose processes were still exiting. */
void isolation_sweep(void);

/* OCI runtime mode (oci.c).  Write @bundle/config.json running @plan on
 * @rootfs ("/" for the host's file system); 0, or -1 with @err. */
int oci_write_bundle(const struct mig_sandbox_plan *plan, const char *rootfs,
		     const char *bundle, char *err, size_t errlen);
/* The command that runs the bundle (malloc'ed NULL-ended vector, free
 * with oci_argv_free): the runtime of @c, or its command template with
 * {bundle}, {rootfs}, {id} and {config} replaced.  NULL with @err. */
char **oci_argv(const struct mig_config *c, const struct mig_sandbox_plan *plan,
		const char *bundle, const char *rootfs, char *err, size_t errlen);
void oci_argv_free(char **argv);
/* Remove a bundle oci_write_bundle() made (its own root included). */
int oci_remove_bundle(const char *bundle);

/* --- functions (registry.c) ---------------------------------------------- */

struct mig_function {
	char tenant[64];
	char name[128];
	char language[8];       /* "c" or "python" */
	char artifact[PATH_MAX]; /* stored copy, inside the data dir */
	char handler[128];      /* C symbol, or "module:function" for Python */
	char python[PATH_MAX];  /* interpreter for Python functions */
	uint64_t gpu_memory;    /* bytes requested */
	char profile[32];       /* MIG profile or "" for any */
	unsigned int timeout_ms;
	unsigned int keep_alive_ms;
	unsigned int max_instances;
	char **env;             /* NULL-terminated "K=V" strings */
	char log_path[PATH_MAX]; /* its executors' output (stdout and stderr) */
	unsigned int version;   /* bumped by every update */
	/* isolation (all optional; defaults from the node) */
	char isolation[16];     /* "" (node's), "sandbox", "oci", "bare" */
	char rootfs[PATH_MAX];  /* OCI mode: the root file system */
	bool network;           /* the function may use the host's network */
	uint64_t mem_limit;     /* bytes of host memory (0: node default) */
	double cpus;            /* 0: node default */
	unsigned int pids;      /* 0: node default */
	uint64_t tmp;           /* 0: node default */
};

struct mig_registry;
struct mig_registry *registry_open(const char *data_dir, char *err,
				   size_t errlen);
/* Copy of a function (free with function_free), or NULL. */
struct mig_function *registry_get(struct mig_registry *r, const char *tenant,
				  const char *name);
void function_free(struct mig_function *f);
/*
 * Deploy or update @name of @tenant from @spec, the parsed body of
 * PUT /v1/functions/{name} (a jansson json_t *): validate it, store the
 * artifact, bump the version, persist.  0 with *@version (and *@created
 * for a new function); else -EINVAL (bad spec), -EFBIG (artifact larger
 * than @max_artifact) or another -errno (storage), with @err saying why.
 */
int registry_put(struct mig_registry *r, const char *tenant, const char *name,
		 void *spec, uint64_t max_artifact, unsigned int *version,
		 bool *created, char *err, size_t errlen);
/* 0, or -ENOENT. */
int registry_delete(struct mig_registry *r, const char *tenant,
		    const char *name);
/* One function as JSON (json_t *), or NULL; the tenant's as an array. */
void *registry_describe(struct mig_registry *r, const char *tenant,
			const char *name);
void *registry_list(struct mig_registry *r, const char *tenant);
void registry_close(struct mig_registry *r);
/* mkdir -p @path; 0 or -errno. */
int daemon_mkdir_p(const char *path, mode_t mode);
/* [A-Za-z0-9_.-]{1,100}, not "." or "..". */
bool function_name_ok(const char *name);

/* A function's log is kept to about this size: past it, at the start of
 * an instance, the file moves to "<log>.1" (replacing the older one). */
#define MIG_FUNCTION_LOG_MAX (8u << 20)

/* --- instances (instances.c) --------------------------------------------- */

struct mig_daemon;

struct mig_invoke_result {
	int http_status;        /* 200, or the error status */
	int fn_status;          /* handler's return value */
	void *body;             /* malloc'ed; result or JSON error */
	size_t len;
	char content_type[64];
	char instance[64];      /* instance id that served it */
	uint64_t queued_us, cold_start_us, run_us, swap_in_us;
	int cold;               /* 1 if this invocation started an instance */
};

int instances_init(struct mig_daemon *d);
/* Run one invocation of @f; blocks.  Always fills @r (errors included). */
void instances_invoke(struct mig_daemon *d, const struct mig_function *f,
		      const void *payload, size_t len, const char *ctype,
		      struct mig_invoke_result *r);
/* JSON array (jansson json_t *) of the tenant's instances. */
void *instances_list(struct mig_daemon *d, const char *tenant);
/* A partition's GPU arbiter (ipc/arbiter.h), for /metrics: 0, or -1 if
 * the daemon has none for @uuid yet. */
struct mig_gpu_turns {
	int model;                /* enum mig_sharing */
	unsigned long long grants; /* turns given so far */
	unsigned long long held_ns; /* their time, ended turns */
	unsigned int waiting;     /* instances waiting for a turn now */
	bool held;                /* someone holds it now */
};
int instances_gpu_turns(struct mig_daemon *d, const char *uuid,
			struct mig_gpu_turns *out);

/* A partition's pre-initialized GPU servers (pool_per_partition), for
 * /metrics and /v1/devices: 0, or -1 if the daemon has none for @uuid. */
struct mig_server_pool {
	unsigned int ready;       /* started and initialized, not taken */
	unsigned int starting;    /* started, not ready yet */
	unsigned long long failures; /* servers that failed to start, ever */
	char error[256];          /* why the last one failed; "" once one
				   * was ready again */
};
int instances_server_pool(struct mig_daemon *d, const char *uuid,
			  struct mig_server_pool *out);

/* Lukewarm functions, node-wide: swaps done since the start, and now. */
struct mig_swap_stats {
	uint64_t outs, ins, bytes_out, bytes_in, ns_out, ns_in;
	uint64_t failures;       /* refused by a server or not answered */
	uint64_t stopped;        /* lukewarm instances stopped over the limit */
	uint64_t pools_freed;    /* warm instances' swap pools freed over it */
	uint64_t pool_bytes;     /* pinned host memory of all swap pools now */
	uint64_t lukewarm_bytes; /* host memory lukewarm instances hold now */
	uint32_t lukewarm;       /* instances swapped out now */
};
void instances_swap_stats(struct mig_daemon *d, struct mig_swap_stats *out);
int instances_kill(struct mig_daemon *d, const char *tenant, const char *id);
/* Swap an idle instance's GPU memory out to host memory, or back in
 * (gpud/swap.c); under "sequential" a swap-in first waits for the
 * partition, as an invocation does.  0 with @rep filled; -ENOENT, -EBUSY
 * (not idle), -ETIMEDOUT (the partition stayed in use), -EPIPE (its
 * server exited), or another negative errno with @err saying why. */
struct mig_swap_report;
int instances_swap(struct mig_daemon *d, const char *tenant, const char *id,
		   bool out, struct mig_swap_report *rep, char *err, size_t errlen);
/* Test hook (tests/daemon/instances_harness.c, "delay_swap_answers"): a
 * swap's answer is taken this many ms after it came, as a busy daemon may
 * take it late.  0 (the default) everywhere else. */
extern unsigned int instances_swap_answer_delay_ms;
/* The function was updated or deleted: retire its instances. */
void instances_retire(struct mig_daemon *d, const char *tenant,
		      const char *name);
/* Drain in-flight invocations, then stop every process we started. */
void instances_shutdown(struct mig_daemon *d);

/* --- metrics (metrics.c) ------------------------------------------------- */

/* @cold: 1 cold, 0 warm, -1 no instance served it (it failed before). */
void metrics_invocation(const char *tenant, const char *function,
			int http_status, int cold, uint64_t total_us,
			uint64_t queued_us, uint64_t cold_us, uint64_t run_us,
			uint64_t swap_in_us);
/* Prometheus text exposition; malloc'ed. */
char *metrics_render(struct mig_daemon *d);
/* The same, with only @tenant's series (NULL: every tenant's). */
char *metrics_render_for(struct mig_daemon *d, const char *tenant);

/* --- the HTTP API (http.c) ----------------------------------------------- */

/* Listen and serve; 0, or -1 with @err saying why. */
int http_start(struct mig_daemon *d, char *err, size_t errlen);
/* Stop accepting connections (requests in flight go on). */
void http_quiesce(void);
/* Wait until no request is in flight, at most @timeout_ms. */
void http_drain(unsigned int timeout_ms);
void http_stop(void);

/* --- the daemon ---------------------------------------------------------- */

struct mig_daemon {
	struct mig_config cfg;
	struct mig_devices devices;
	struct mig_registry *registry;
	void *instances;        /* private to instances.c */
	volatile int stopping;
};

/* log.c: to stderr, level 0 always, 1 with -v, 2 with -vv. */
void daemon_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void daemon_log_level(int verbose);

/* main.c: find the partitions again (SIGHUP, POST /v1/devices/reload). */
int daemon_reload(struct mig_daemon *d);

#endif /* MIG_DAEMON_H */
