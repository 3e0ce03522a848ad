/*
 * instances.c - function instances: an executor (mig-exec, or the Python
 * executor) and its GPU server (mig-gpud) on one partition, joined by one
 * shared segment; placement, warm reuse, keep-alive, queueing, scale-out,
 * the pool of pre-initialized GPU servers, supervision and clean-up.
 *
 * Threads.  Invocations run on the caller's thread (an HTTP handler): it
 * finds an idle instance, writes one INVOKE frame on the instance's control
 * socket and reads one answer, with no lock held and no fork.  One
 * supervisor thread does everything else: it starts every child process
 * (posix_spawn; mig-gpud and mig-exec ask for PR_SET_PDEATHSIG, which
 * follows the *thread* that started them, so that thread must live as long
 * as the daemon), reaps every child through its pidfd, expires idle
 * instances, escalates kills and keeps the GPU server pool filled.
 *
 * Ownership.  An instance is owned by exactly one party: the invoking
 * thread while STARTING or BUSY (only it reads or writes the control
 * socket), the tables while IDLE, the supervisor while DYING.  The
 * supervisor reaps only processes of DYING instances and of pooled
 * servers; for the others it just notes that they exited, so an owner can
 * still read a child's exit status (waitid with WNOWAIT) to say why an
 * invocation failed.  doom() hands an instance to the supervisor.
 *
 * Locks.  One mutex (im->lock) guards all of this file's state; it is
 * never held across a system call that can block.  The partitions'
 * book-keeping (mem_reserved, instances) is under the devices lock, taken
 * inside im->lock, never the other way round.
 *
 * Queues.  An invocation that finds no idle instance of its function
 * starts one if its function is below max_instances and a partition has
 * room (free memory, profile), else it waits: on its function's FIFO (an
 * instance of the function that goes idle is handed to the oldest waiter)
 * and, if it could start an instance, on the FIFO of one partition (room
 * that frees up there goes to the oldest waiter, whatever its function).
 * Nobody overtakes a partition's queue, and an instance going idle while
 * an older invocation of another function waits for room on its partition
 * is stopped to make that room, so no function starves another.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arbiter.h"
#include "control.h"
#include "daemon.h"
#include "segment.h"

extern char **environ;

#define START_TIMEOUT_MS 60000u      /* GPU server and executor up to READY */
#define TIMEOUT_DEFAULT_MS 60000u    /* timeout_ms 0 */
#define KEEP_ALIVE_DEFAULT_MS 600000u /* keep_alive_ms 0 */
#define KILL_GRACE_NS 2000000000ull  /* SIGTERM (or SHUTDOWN) -> SIGKILL */
#define EXIT_WAIT_MS 1000            /* for a status: executor EOF, server lifeline */
#define POOL_BACKOFF_MIN_MS 1000u
#define POOL_BACKOFF_MAX_MS 60000u
#define SUP_MAX_SLEEP_NS 1000000000ull /* notice new partitions this often */
#define SWAP_TIMEOUT_MS 120000   /* a swap of 100+ GiB at PCIe speed */
#define FN_BUCKETS 1024u
#define RX_BUF 16384u
#define SPIN_NS 50000ull             /* for an answer, while few wait */
#define MiB (1024.0 * 1024.0)

/* --- lists --------------------------------------------------------------- */

struct list {
	struct list *prev, *next;
};

#define container_of(p, type, member) \
	((type *)((char *)(p) - offsetof(type, member)))
#define list_entry(l, type, member) container_of(l, type, member)
#define list_first(head, type, member) \
	((head)->next == (head) ? NULL : list_entry((head)->next, type, member))
#define list_for_each_safe(pos, n, head) \
	for (pos = (head)->next, n = pos->next; pos != (head); pos = n, n = pos->next)

static void list_init(struct list *l)
{
	l->prev = l->next = l;
}

static bool list_empty(const struct list *l)
{
	return l->next == l;
}

static void list_add_tail(struct list *l, struct list *head)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

static void list_add_head(struct list *l, struct list *head)
{
	list_add_tail(l, head->next);
}

static void list_del(struct list *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	list_init(l);
}

/* --- types --------------------------------------------------------------- */

/* What an epoll event is about. */
enum watch_kind { W_KICK, W_EXEC, W_GPUD, W_READY, W_KEEPER };

struct watch {
	enum watch_kind kind;
	void *obj;
};

struct fn;
struct part;
struct inst;

/* A child process: started by the supervisor, reaped by it. */
struct proc {
	pid_t pid;      /* 0: never started */
	int pidfd;      /* -1 once reaped (or never started) */
	int status;     /* wait status once reaped */
	bool exited;    /* its pidfd fired */
};

/* A mig-gpud and its segment: pooled, or the GPU server of an instance. */
struct server {
	struct watch w_pid, w_ready;
	struct proc p;
	char id[32];
	uint32_t num;   /* its id in the partition's arbiter */
	int seg;        /* segment memfd, until handed to the executor */
	int cli_w;      /* client lifeline, write end: the executor's to hold */
	int srv_r;      /* server lifeline, read end: HUP when the server is gone */
	int ctl_w;      /* control socket to the server (ipc/control.h) */
	int ready_r;    /* "ok" or "error: ..." once its context exists */
	char *kernels;  /* MIG_HOST_KERNELS it runs with ("" for none) */
	struct part *part;
	struct inst *inst;      /* NULL while pooled */
	struct list link;       /* part->pool, or im->dying_srv */
	bool ready;
	int kill_stage;         /* of a pooled server being stopped */
	uint64_t kill_at;
};

/*
 * A sandbox started ahead of time (isolation_pool_prepare()): it has
 * joined its cgroups, the slow part of a sandbox's start (moving a process
 * into a cgroup waits for an RCU grace period, 5-25 ms), and waits on
 * @sock for the rest of its command line.  start_executor() hands it to an
 * instance, whose executor it becomes (its pid and pidfd move to inst->p).
 */
struct keeper {
	struct watch w;         /* W_KEEPER: its pidfd while pooled */
	struct proc p;
	int sock;               /* the command line and the fds go here */
	struct mig_jail jail;
	struct inst *inst;      /* who took it */
	struct list link;       /* im->keepers, then im->grave_keepers */
};

enum inst_state { ST_STARTING, ST_IDLE, ST_BUSY, ST_DYING };
struct inst;
struct im;
static struct keeper *keeper_take(struct im *im, struct inst *in);
static void keeper_done(struct im *im, struct keeper *k);
static int keeper_send(struct keeper *k, char **argv, char **envp, const int *fds,
		       int nfds, int log);
static int open_log(const char *path);

static const char *const state_names[] = {
	[ST_STARTING] = "starting", [ST_IDLE] = "idle",
	[ST_BUSY] = "busy", [ST_DYING] = "stopping",
};

struct inst {
	struct watch w_pid;
	struct proc p;                  /* the executor */
	char id[24];
	enum inst_state state;
	struct fn *fn;
	struct part *part;
	struct server *srv;
	int ctl;                        /* our end of the control socketpair */
	uint64_t mem;                   /* GPU memory reserved */
	uint64_t next_call;             /* id of the next INVOKE */
	uint64_t invocations;
	uint64_t created_ns, last_used_ns, expire_ns, cold_us;
	time_t created_wall;
	bool pooled;                    /* started on a pre-initialized server */
	bool killed;                    /* by instances_kill() */
	bool swapping;                  /* a swap request is in flight */
	bool taken_swapping;            /* an invocation took it while a
					   swap-out of it was in flight */
	bool swapped;                   /* its GPU memory is in host memory */
	bool lost;                      /* a swap-in failed: that memory is
					   gone, the instance is stopped */
	uint64_t swapped_bytes;
	uint64_t released;              /* swapped: reservation given back
					   (mem is what it still holds) */
	uint64_t pressure_mem;          /* counted in its part's swapping_mem:
					   the swapper is to swap it out */
	uint64_t pool_bytes;            /* pinned host memory its server keeps
					   from its swaps (gpud/swap.c) */
	int kill_stage;
	uint64_t kill_at;
	struct list all_link;           /* im->insts */
	struct list fn_link;            /* fn->idle while idle */
	struct list part_link;          /* part->idle while idle */
	struct list dying_link;         /* im->dying while dying */
	struct mig_jail jail;           /* uid, cgroup: released in finish() */
};

/* One deployed version of a function, as far as instances go. */
struct fn {
	struct fn *hnext;
	uint32_t hash;
	char tenant[64];
	char name[128];
	unsigned int version;
	unsigned int max_instances;     /* 0: bounded by memory only */
	unsigned int keep_alive_ms;
	int refs;                       /* instances + invocations using it */
	int ninst;                      /* instances not dying, and rooms granted */
	struct list idle;               /* most recently used first */
	struct list waiters;            /* FIFO */
	bool retired;
};

/* This file's book-keeping of a partition of struct mig_devices. */
struct part {
	char uuid[96];
	struct list idle;               /* idle instances, least recently used first */
	struct list room_waiters;       /* FIFO of invocations waiting for room */
	struct list pool;               /* pre-initialized GPU servers */
	int pool_n;
	char *pool_kernels;             /* what the pool is filled with */
	uint64_t pool_retry_ns;
	unsigned int pool_backoff_ms;
	uint64_t pool_failures;         /* pooled servers that failed, ever */
	char pool_error[256];           /* why the last one failed; "" once
					 * one is ready again */
	uint64_t dying_mem;             /* reserved by dying instances */
	uint64_t swapping_mem;          /* ... by instances to be swapped out */
	int arb_fd;                     /* its arbiter page (ipc/arbiter.h) */
	struct mig_arbiter *arb;        /* NULL: could not be made (time-sharing) */
};

enum wait_outcome { WAIT_PENDING, WAIT_GOT_INST, WAIT_GOT_ROOM };

/* An invocation waiting for an instance, on its invoking thread's stack. */
struct waiter {
	struct list fn_link, room_link;
	bool on_fn, on_room;
	uint64_t seq;
	struct fn *fn;
	const struct mig_function *f;
	pthread_cond_t cond;
	enum wait_outcome outcome;
	struct inst *inst;
	struct part *part;       /* the room granted */
	struct part *room_part;  /* the queue it waits on for room */
};

/* A process for the supervisor to start. */
#define SPAWN_FDS_MAX 6

struct spawn {
	struct list link;
	const char *path;
	char **argv, **envp;
	const char *cwd;
	bool search_path;
	int fds[SPAWN_FDS_MAX];         /* become fds 3, 4, ... of the child */
	const char *log_path;           /* stdout+stderr there, else ours */
	int nfds;
	struct proc *p;                 /* filled in */
	struct watch *w;                /* registered for its pidfd */
	int err;
	bool done;
	pthread_cond_t cond;
};

struct im {
	struct mig_daemon *d;
	pthread_mutex_t lock;
	pthread_cond_t changed;         /* shutdown waits on it */
	pthread_condattr_t cattr;       /* CLOCK_MONOTONIC, for waiters */
	struct fn *fns[FN_BUCKETS];
	struct part **parts;
	int nparts;
	struct list insts, dying, dying_srv, spawnq;
	struct list grave_inst, grave_srv; /* freed after the supervisor's batch */
	struct list keepers, grave_keepers;
	int nkeepers;                   /* pooled, not taken */
	uint64_t keeper_ids, keeper_retry_ns;
	int nprocs;                     /* children not reaped yet */
	int inflight;
	int running;                    /* invocations waiting for an answer */
	int spin_max;                   /* how many of those may spin */
	bool stopping, sup_exit;
	pthread_t swapper;              /* the lukewarm policy (swapper()) */
	struct mig_swap_stats swaps;    /* counters; the gauges are counted */
	pthread_cond_t swapper_wake;
	bool swapper_running;
	int epfd, evfd;
	struct watch w_kick;
	pthread_t sup;
	bool sup_running;
	uint64_t seq, ids, server_ids, sup_wake_ns;
	char gpud[PATH_MAX], exec[PATH_MAX], shim_dir[PATH_MAX];
	char lib_dir[PATH_MAX], exec_lib[PATH_MAX + 32], pypath[PATH_MAX + 32];
	char *base_kernels;
};

/* --- small helpers ------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static unsigned int timeout_ms(const struct mig_function *f)
{
	return f->timeout_ms ? f->timeout_ms : TIMEOUT_DEFAULT_MS;
}

static void kick(struct im *im)
{
	uint64_t one = 1;

	if (write(im->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		daemon_log(0, "instances: cannot wake the supervisor: %s",
			   strerror(errno));
}

static const char *sig_name(int sig)
{
	const char *s = sigabbrev_np(sig);

	return s ? s : "?";
}

static bool crash_signal(int sig)
{
	return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL ||
	       sig == SIGFPE || sig == SIGABRT || sig == SIGSYS || sig == SIGTRAP;
}

/* A copy of @s with anything but printable ASCII replaced: JSON-safe. */
static void ascii_copy(char *dst, size_t n, const char *s, size_t len)
{
	size_t i, j = 0;

	for (i = 0; i < len && j + 1 < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n' && j && i + 1 < len)
			dst[j++] = ' ';
		else if (c >= 0x20 && c < 0x7f)
			dst[j++] = (char)c;
		else if (c != '\n')
			dst[j++] = '?';
	}
	dst[j] = 0;
}

/* r gets the JSON error {"error": {"code", "message"}}. */
static void set_error(struct mig_invoke_result *r, int status, const char *code,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void set_error(struct mig_invoke_result *r, int status, const char *code,
		      const char *fmt, ...)
{
	char msg[1024];
	json_t *j, *m;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	m = json_string(msg);
	if (!m) { /* not UTF-8: the function's own text may not be */
		char safe[1024];

		ascii_copy(safe, sizeof(safe), msg, strlen(msg));
		m = json_string(safe);
	}
	j = json_pack("{s:{s:s,s:o}}", "error", "code", code, "message", m);
	free(r->body);
	r->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	r->len = r->body ? strlen(r->body) : 0;
	json_decref(j);
	r->http_status = status;
	snprintf(r->content_type, sizeof(r->content_type), "application/json");
}

/* The value of @key in a NULL-terminated "K=V" list, or NULL. */
static const char *env_get(char **env, const char *key)
{
	size_t n = strlen(key);

	for (; env && *env; env++)
		if (!strncmp(*env, key, n) && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}

/* MIG_HOST_KERNELS for the GPU server of @f: "" unless the test double. */
static const char *kernels_for(struct im *im, const struct mig_function *f)
{
	const char *k;

	if (strcmp(im->d->cfg.backend, "host"))
		return "";
	k = env_get(f->env, "MIG_HOST_KERNELS");
	return k ? k : im->base_kernels;
}

/* --- environment and argument vectors ------------------------------------ */

struct strv {
	char **v;
	int n, cap;
	bool oom;
};

static void strv_add(struct strv *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void strv_add(struct strv *s, const char *fmt, ...)
{
	va_list ap;
	char *str;

	if (s->oom)
		return;
	if (s->n + 2 > s->cap) {
		int cap = s->cap ? 2 * s->cap : 32;
		char **v = realloc(s->v, (size_t)cap * sizeof(*v));

		if (!v) {
			s->oom = true;
			return;
		}
		s->v = v;
		s->cap = cap;
	}
	va_start(ap, fmt);
	if (vasprintf(&str, fmt, ap) < 0) {
		s->oom = true;
		str = NULL;
	}
	va_end(ap);
	if (!str)
		return;
	s->v[s->n++] = str;
	s->v[s->n] = NULL;
}

static void strv_free(struct strv *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* Variables we set for the child; the function's env cannot override them. */
static bool ours(const char *kv)
{
	static const char *const names[] = {
		"MIG_CONTROL_FD=", "MIG_SEGMENT_FD=", "MIG_LIFELINE_FD=",
		"MIG_SUMMARY_FD=", "MIG_EXEC_LIB=", "MIG_HANDLER=",
		"MIG_ARTIFACT=", "MIG_INSTANCE=", "MIG_FUNCTION=",
		"MIG_EXEC_POLL_US=", "LD_LIBRARY_PATH=", "PYTHONPATH=", NULL,
	};

	for (int i = 0; names[i]; i++)
		if (!strncmp(kv, names[i], strlen(names[i])))
			return true;
	return false;
}

/*
 * The executor's environment: a few of the daemon's variables, the
 * function's env, then ours.  Library and Python paths put ours first and
 * keep the function's after them.
 */
static void exec_env(struct im *im, const struct mig_function *f,
		     const struct inst *in, bool python, struct strv *e)
{
	static const char *const pass[] = { "PATH", "HOME", "LANG", "LC_ALL",
					    "TMPDIR", "MIG_SHIM_LOG", "MIG_SANDBOX_TIMING", NULL };
	const char *v;

	for (int i = 0; pass[i]; i++)
		if ((v = getenv(pass[i])) && !env_get(f->env, pass[i]))
			strv_add(e, "%s=%s", pass[i], v);
	for (char **kv = f->env; kv && *kv; kv++)
		if (strchr(*kv, '=') && !ours(*kv))
			strv_add(e, "%s", *kv);
	v = env_get(f->env, "LD_LIBRARY_PATH");
	strv_add(e, "LD_LIBRARY_PATH=%s%s%s", im->shim_dir, v && *v ? ":" : "",
		 v ? v : "");
	strv_add(e, "MIG_CONTROL_FD=3");
	strv_add(e, "MIG_SEGMENT_FD=4");
	strv_add(e, "MIG_LIFELINE_FD=5");
	strv_add(e, "MIG_INSTANCE=%s", in->id);
	strv_add(e, "MIG_FUNCTION=%s", f->name);
	if (im->d->cfg.executor_poll_us)
		strv_add(e, "MIG_EXEC_POLL_US=%u", im->d->cfg.executor_poll_us);
	if (python) {
		v = env_get(f->env, "PYTHONPATH");
		strv_add(e, "PYTHONPATH=%s%s%s", im->pypath, v && *v ? ":" : "",
			 v ? v : "");
		strv_add(e, "MIG_EXEC_LIB=%s", im->exec_lib);
		strv_add(e, "MIG_HANDLER=%s", f->handler);
		strv_add(e, "MIG_ARTIFACT=%s", f->artifact);
	}
}

/* The GPU server's environment: the daemon's, with our MIG_HOST_KERNELS. */
static void gpud_env(const char *kernels, struct strv *e)
{
	for (char **kv = environ; kv && *kv; kv++)
		if (strncmp(*kv, "MIG_HOST_KERNELS=", 17) && !ours(*kv))
			strv_add(e, "%s", *kv);
	if (*kernels)
		strv_add(e, "MIG_HOST_KERNELS=%s", kernels);
}

/* --- starting processes (supervisor thread) ------------------------------ */

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/*
 * posix_spawn @sp: stdin from /dev/null, stdout to our stderr, sp->fds as
 * 3, 4, ..., nothing else open; default signal dispositions and an empty
 * mask (whatever the daemon's threads block), its own process group (a
 * terminal's ^C is for the daemon, which then stops its children itself).
 */
/*
 * Open @path for a child's output, moving it to "<path>.1" first when it
 * has grown past MIG_FUNCTION_LOG_MAX.  -1 when it cannot be opened: the
 * child then writes to our stderr, which is no reason to fail its start.
 */
static int open_log(const char *path)
{
	struct stat st;
	char old[PATH_MAX + 4];

	if (!stat(path, &st) && (uint64_t)st.st_size > MIG_FUNCTION_LOG_MAX) {
		snprintf(old, sizeof(old), "%s.1", path);
		rename(path, old);
	}
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static int do_spawn(struct spawn *sp, pid_t *pid)
{
	int src[SPAWN_FDS_MAX], tmp[SPAWN_FDS_MAX], ntmp = 0, top = 3 + sp->nfds;
	int r, i, log = -1;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, deflt;

	/* Sources inside the target range would be overwritten by dup2. */
	for (i = 0; i < sp->nfds; i++) {
		src[i] = sp->fds[i];
		if (src[i] < top) {
			src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, top);
			if (src[i] < 0) {
				r = errno;
				goto out_tmp;
			}
			tmp[ntmp++] = src[i];
		}
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (sp->log_path && (log = open_log(sp->log_path)) >= 0) {
		posix_spawn_file_actions_adddup2(&fa, log, 1);
		posix_spawn_file_actions_adddup2(&fa, log, 2);
	} else {
		posix_spawn_file_actions_adddup2(&fa, 2, 1);
	}
	for (i = 0; i < sp->nfds; i++)
		posix_spawn_file_actions_adddup2(&fa, src[i], 3 + i);
	posix_spawn_file_actions_addclosefrom_np(&fa, top);
	if (sp->cwd)
		posix_spawn_file_actions_addchdir_np(&fa, sp->cwd);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigfillset(&deflt);
	sigdelset(&deflt, SIGKILL);
	sigdelset(&deflt, SIGSTOP);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &deflt);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
	if (sp->search_path)
		r = posix_spawnp(pid, sp->path, &fa, &at, sp->argv, sp->envp);
	else
		r = posix_spawn(pid, sp->path, &fa, &at, sp->argv, sp->envp);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	if (log >= 0)
		close(log);
out_tmp:
	while (ntmp)
		close(tmp[--ntmp]);
	return r;
}

static void watch_add(struct im *im, int fd, struct watch *w)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.ptr = w };

	if (epoll_ctl(im->epfd, EPOLL_CTL_ADD, fd, &ev))
		daemon_log(0, "instances: epoll_ctl: %s", strerror(errno));
}

/* Re-arm a one-shot watch: it fires at once if the process already exited. */
static void watch_rearm(struct im *im, int fd, struct watch *w)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.ptr = w };

	if (fd >= 0)
		epoll_ctl(im->epfd, EPOLL_CTL_MOD, fd, &ev);
}

/* Start @sp here (the supervisor); then, under the lock, publish it. */
static void spawn_run(struct im *im, struct spawn *sp)
{
	pid_t pid = 0;
	int pidfd = -1;

	sp->err = do_spawn(sp, &pid);
	if (!sp->err) {
		pidfd = pidfd_open_(pid);
		if (pidfd < 0) {
			/* Cannot supervise it: do not let it run. */
			sp->err = errno;
			kill(pid, SIGKILL);
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
	}
	pthread_mutex_lock(&im->lock);
	if (!sp->err) {
		sp->p->pid = pid;
		sp->p->pidfd = pidfd;
		im->nprocs++;
		watch_add(im, pidfd, sp->w);
	}
	sp->done = true;
	pthread_cond_signal(&sp->cond);
	pthread_mutex_unlock(&im->lock);
}

/* From any thread but the supervisor: have the supervisor start @sp. */
static int spawn_via_supervisor(struct im *im, struct spawn *sp)
{
	pthread_cond_init(&sp->cond, NULL);
	pthread_mutex_lock(&im->lock);
	list_add_tail(&sp->link, &im->spawnq);
	kick(im);
	while (!sp->done)
		pthread_cond_wait(&sp->cond, &im->lock);
	pthread_mutex_unlock(&im->lock);
	pthread_cond_destroy(&sp->cond);
	return sp->err;
}

static __thread bool on_supervisor;

static int spawn_proc(struct im *im, struct spawn *sp)
{
	if (on_supervisor) {
		pthread_cond_init(&sp->cond, NULL);
		spawn_run(im, sp);
		pthread_cond_destroy(&sp->cond);
		return sp->err;
	}
	return spawn_via_supervisor(im, sp);
}

/* --- partitions and memory book-keeping (under im->lock) ----------------- */

/* The sharing model the configuration gives partition @uuid. */
static int sharing_of(const struct mig_config *c, const char *uuid)
{
	for (int i = 0; i < c->nsharing_part; i++)
		if (!strcmp(c->sharing_part[i].uuid, uuid))
			return c->sharing_part[i].model;
	return c->sharing;
}

/*
 * @p's arbiter page: a memfd every GPU server of the partition maps.
 * Without one (no memory) the partition falls back to time-sharing.
 */
static void arbiter_open(struct im *im, struct part *p)
{
	int model = sharing_of(&im->d->cfg, p->uuid);

	p->arb_fd = memfd_create("mignificent-arbiter", MFD_CLOEXEC);
	if (p->arb_fd >= 0 && !ftruncate(p->arb_fd, sizeof(*p->arb))) {
		p->arb = mmap(NULL, sizeof(*p->arb), PROT_READ | PROT_WRITE,
			      MAP_SHARED, p->arb_fd, 0);
		if (p->arb == MAP_FAILED)
			p->arb = NULL;
	}
	if (!p->arb) {
		daemon_log(0, "partition %s: no arbiter page (%s); its instances share it as with time-sharing",
			   *p->uuid ? p->uuid : "(default)", strerror(errno));
		close_fd(&p->arb_fd);
		return;
	}
	mig_arb_init(p->arb, model);
	daemon_log(1, "partition %s: sharing model %s",
		   *p->uuid ? p->uuid : "(default)", mig_sharing_name(model));
}

/* The book-keeping of partition @uuid, or NULL if the daemon has none
 * yet (im->lock held). */
static struct part *part_find(struct im *im, const char *uuid)
{
	for (int i = 0; i < im->nparts; i++)
		if (!strcmp(im->parts[i]->uuid, uuid))
			return im->parts[i];
	return NULL;
}

/* The same, made if there is none (NULL when out of memory). */
static struct part *part_get(struct im *im, const char *uuid)
{
	struct part *p = part_find(im, uuid), **v;

	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	v = realloc(im->parts, (size_t)(im->nparts + 1) * sizeof(*v));
	if (v)
		im->parts = v;
	if (p)
		p->pool_kernels = strdup(im->base_kernels);
	if (!p || !v || !p->pool_kernels) {
		if (p)
			free(p->pool_kernels);
		free(p);
		return NULL;
	}
	snprintf(p->uuid, sizeof(p->uuid), "%s", uuid);
	arbiter_open(im, p);
	list_init(&p->idle);
	list_init(&p->room_waiters);
	list_init(&p->pool);
	p->pool_backoff_ms = POOL_BACKOFF_MIN_MS;
	im->parts[im->nparts++] = p;
	return p;
}

/* The devices entry of @part, or NULL; devices lock held. */
static struct mig_partition *dev_of(struct im *im, const struct part *part)
{
	struct mig_devices *dv = &im->d->devices;

	for (int i = 0; i < dv->n; i++)
		if (!strcmp(dv->p[i].uuid, part->uuid))
			return &dv->p[i];
	return NULL;
}

/*
 * Book @mem bytes on @part (@sign +1) or give them back (-1); @instances:
 * an instance comes or goes with them (a swap moves only memory: a
 * swapped-out instance gives back what its swap freed and takes it again
 * to swap in).
 */
static void book_mem(struct im *im, struct part *part, uint64_t mem, int sign,
		     bool instances)
{
	struct mig_partition *p;

	pthread_mutex_lock(&im->d->devices.lock);
	p = dev_of(im, part);
	if (p && sign > 0) {
		p->mem_reserved += mem;
		p->instances += instances;
	} else if (p) {
		p->mem_reserved -= mem < p->mem_reserved ? mem : p->mem_reserved;
		p->instances -= instances && p->instances > 0;
	}
	pthread_mutex_unlock(&im->d->devices.lock);
}

static void book(struct im *im, struct part *part, uint64_t mem, int sign)
{
	book_mem(im, part, mem, sign, true);
}

/* Free memory on @part now (devices lock held by the caller: see free_mem). */
static uint64_t free_locked(struct im *im, struct part *part, bool *present)
{
	struct mig_partition *p = dev_of(im, part);

	*present = p && p->present;
	if (!p || p->mem_reserved >= p->mem_total)
		return 0;
	return p->mem_total - p->mem_reserved;
}

static uint64_t free_mem(struct im *im, struct part *part, bool *present)
{
	uint64_t f;

	pthread_mutex_lock(&im->d->devices.lock);
	f = free_locked(im, part, present);
	pthread_mutex_unlock(&im->d->devices.lock);
	return f;
}

/* --- functions (under im->lock) ------------------------------------------ */

static uint32_t fn_hash(const char *tenant, const char *name, unsigned int v)
{
	uint32_t h = 2166136261u;

	for (const char *s = tenant; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	h = (h ^ 0xff) * 16777619u;
	for (const char *s = name; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return (h ^ v) * 16777619u;
}

static struct fn *fn_find(struct im *im, const char *tenant, const char *name,
			  unsigned int version, uint32_t h)
{
	struct fn *fn;

	for (fn = im->fns[h % FN_BUCKETS]; fn; fn = fn->hnext)
		if (fn->hash == h && fn->version == version &&
		    !strcmp(fn->name, name) && !strcmp(fn->tenant, tenant))
			return fn;
	return NULL;
}

/* The record of @f's version, made if need be; takes a reference. */
static struct fn *fn_get(struct im *im, const struct mig_function *f)
{
	uint32_t h = fn_hash(f->tenant, f->name, f->version);
	struct fn *fn = fn_find(im, f->tenant, f->name, f->version, h);

	if (!fn) {
		fn = calloc(1, sizeof(*fn));
		if (!fn)
			return NULL;
		fn->hash = h;
		snprintf(fn->tenant, sizeof(fn->tenant), "%s", f->tenant);
		snprintf(fn->name, sizeof(fn->name), "%s", f->name);
		fn->version = f->version;
		list_init(&fn->idle);
		list_init(&fn->waiters);
		fn->hnext = im->fns[h % FN_BUCKETS];
		im->fns[h % FN_BUCKETS] = fn;
	}
	fn->max_instances = f->max_instances;
	fn->keep_alive_ms = f->keep_alive_ms ? f->keep_alive_ms : KEEP_ALIVE_DEFAULT_MS;
	fn->refs++;
	return fn;
}

/* Take @fn out of the table: later lookups make a new record. */
static void fn_unlink(struct im *im, struct fn *fn)
{
	struct fn **pp;

	for (pp = &im->fns[fn->hash % FN_BUCKETS]; *pp; pp = &(*pp)->hnext) {
		if (*pp == fn) {
			*pp = fn->hnext;
			break;
		}
	}
	fn->hnext = NULL;
}

static void fn_put(struct im *im, struct fn *fn)
{
	if (--fn->refs > 0)
		return;
	if (!fn->retired)
		fn_unlink(im, fn);
	free(fn);
}

static bool fn_at_max(const struct fn *fn)
{
	return fn->max_instances && fn->ninst >= (int)fn->max_instances;
}

/* --- placement (under im->lock) ------------------------------------------ */

enum place { PLACE_NOW, PLACE_WAIT, PLACE_NEVER };

static uint64_t idle_mem(const struct part *part)
{
	uint64_t m = 0;
	struct list *l;

	for (l = part->idle.next; l != &part->idle; l = l->next)
		m += list_entry(l, struct inst, part_link)->mem;
	return m;
}

static bool pool_has(const struct part *part, const char *kernels)
{
	struct list *l;

	for (l = part->pool.next; l != &part->pool; l = l->next) {
		struct server *s = list_entry(l, struct server, link);

		if (s->ready && !strcmp(s->kernels, kernels))
			return true;
	}
	return false;
}

static void doom_(struct im *im, struct inst *in, bool force, const char *why,
		  bool grow);

/*
 * Make room for @need bytes on @part (@free now): idle instances are
 * swapped out by the swapper thread (lukewarm.on_pressure; they stay
 * ready to run), or stopped, least recently used first, until the memory
 * on its way covers @need.  Who waits for it is served when it comes.
 */
static void evict(struct im *im, struct part *part, uint64_t need, uint64_t free)
{
	bool swap = im->d->cfg.lukewarm_on_pressure && im->swapper_running;
	struct list *l, *next;

	for (l = part->idle.next; l != &part->idle &&
	     free + part->dying_mem + part->swapping_mem < need; l = l->next) {
		struct inst *in = list_entry(l, struct inst, part_link);

		if (!swap || in->swapped || in->swapping || in->pressure_mem ||
		    in->killed || !in->srv || in->srv->ctl_w < 0 || !in->mem)
			continue;
		in->pressure_mem = in->mem;
		part->swapping_mem += in->mem;
		pthread_cond_signal(&im->swapper_wake);
	}
	for (l = part->idle.next; l != &part->idle &&
	     free + part->dying_mem + part->swapping_mem < need; l = next) {
		struct inst *in = list_entry(l, struct inst, part_link);

		next = l->next;
		if (!in->pressure_mem && !in->swapping)
			doom_(im, in, false, "its memory is needed by another function", false);
	}
}

/* Reserve @need bytes on @part for a new instance of @fn. */
static void grant_room(struct im *im, struct fn *fn, struct part *part,
		       uint64_t need)
{
	book(im, part, need, +1);
	fn->ninst++;
}

/*
 * Where can a new instance of @f start?  PLACE_NOW: room was reserved on
 * *@out.  PLACE_WAIT: queue for room on *@out (NULL: only for an instance
 * of the function to go idle).  PLACE_NEVER: no partition will ever do;
 * @r says why.
 */
static enum place place(struct im *im, struct fn *fn,
			const struct mig_function *f, struct part **out,
			struct mig_invoke_result *r)
{
	struct mig_devices *dv = &im->d->devices;
	struct part *best = NULL, *later = NULL;
	uint64_t need = f->gpu_memory, largest = 0, best_free = 0;
	const char *kernels = kernels_for(im, f);
	int best_score = -1, best_load = 0, later_q = INT_MAX, matching = 0,
	    present = 0;
	bool best_now = false;

	*out = NULL;
	if (fn_at_max(fn))
		return PLACE_WAIT;
	pthread_mutex_lock(&dv->lock);
	for (int i = 0; i < dv->n; i++) {
		struct mig_partition *p = &dv->p[i];
		struct part *part;
		uint64_t free, evictable;
		int score, queued = 0;
		struct list *l;

		if (!p->present)
			continue;
		present++;
		if (*f->profile && strcmp(f->profile, p->profile))
			continue;
		matching++;
		if (p->mem_total > largest)
			largest = p->mem_total;
		if (p->mem_total < need)
			continue;
		part = part_get(im, p->uuid);
		if (!part)
			continue;
		free = p->mem_reserved < p->mem_total ? p->mem_total - p->mem_reserved : 0;
		for (l = part->room_waiters.next; l != &part->room_waiters; l = l->next)
			queued++;
		if (queued) { /* first come, first served: join the queue */
			if (queued < later_q) {
				later = part;
				later_q = queued;
			}
			continue;
		}
		evictable = idle_mem(part);
		if (free < need && free + evictable + part->dying_mem < need) {
			if (!later || later_q > 0) {
				later = part;
				later_q = 0;
			}
			continue;
		}
		/* Room now beats room after evictions; then a ready GPU
		 * server, then load, then the tightest fit. */
		score = (free >= need ? 4 : 0) + (pool_has(part, kernels) ? 2 : 0);
		if (score > best_score ||
		    (score == best_score && p->instances < best_load) ||
		    (score == best_score && p->instances == best_load &&
		     free < best_free)) {
			best = part;
			best_score = score;
			best_load = p->instances;
			best_free = free;
			best_now = free >= need;
		}
	}
	pthread_mutex_unlock(&dv->lock);

	if (best && best_now) {
		grant_room(im, fn, best, need);
		*out = best;
		return PLACE_NOW;
	}
	if (best) {
		evict(im, best, need, best_free);
		*out = best;
		return PLACE_WAIT;
	}
	if (later) {
		*out = later;
		return PLACE_WAIT;
	}
	if (!present)
		set_error(r, 503, "no_gpu",
			  "this node has no GPU partition to run function \"%s\" on%s%s",
			  f->name, *dv->error ? ": " : "", dv->error);
	else if (!matching)
		set_error(r, 503, "no_partition",
			  "function \"%s\" asks for MIG profile \"%s\" and this node has no partition of that profile: deploy it with another profile or none",
			  f->name, f->profile);
	else
		set_error(r, 507, "insufficient_gpu_memory",
			  "function \"%s\" needs %.0f MiB of GPU memory and the largest partition%s%s%s has %.0f MiB: deploy it with a smaller gpu_memory",
			  f->name, (double)need / MiB, *f->profile ? " of profile \"" : "",
			  f->profile, *f->profile ? "\"" : "", (double)largest / MiB);
	return PLACE_NEVER;
}

/* --- waiters (under im->lock) -------------------------------------------- */

static void waiter_unqueue(struct waiter *w)
{
	if (w->on_fn)
		list_del(&w->fn_link);
	if (w->on_room)
		list_del(&w->room_link);
	w->on_fn = w->on_room = false;
}

static void waiter_wake(struct waiter *w, enum wait_outcome o,
			struct inst *in, struct part *part)
{
	waiter_unqueue(w);
	w->outcome = o;
	w->inst = in;
	w->part = part;
	pthread_cond_signal(&w->cond);
}

/*
 * Give room on @part to the waiters at the head of its queue, oldest
 * first.  A head that does not fit yet stops the queue (nobody overtakes
 * it); idle instances are stopped to make its room.
 */
static void serve_room(struct im *im, struct part *part)
{
	struct waiter *w;
	uint64_t free;
	bool present;

	while ((w = list_first(&part->room_waiters, struct waiter, room_link))) {
		uint64_t need = w->f->gpu_memory;

		if (fn_at_max(w->fn)) { /* it waits for its own instances now */
			list_del(&w->room_link);
			w->on_room = false;
			continue;
		}
		free = free_mem(im, part, &present);
		if (!present)
			return;
		if (free >= need) {
			grant_room(im, w->fn, part, need);
			waiter_wake(w, WAIT_GOT_ROOM, NULL, part);
			continue;
		}
		evict(im, part, need, free);
		return;
	}
}

/*
 * @fn can have one more instance (one of its instances stopped): its
 * oldest waiters that are not yet waiting for room look for some.
 */
static void fn_grow(struct im *im, struct fn *fn)
{
	while (!fn_at_max(fn)) {
		struct mig_invoke_result ignore = { 0 };
		struct waiter *w = NULL;
		struct part *part;
		struct list *l;

		/* From the head each time: a wake-up changes the list. */
		for (l = fn->waiters.next; l != &fn->waiters; l = l->next) {
			w = list_entry(l, struct waiter, fn_link);
			if (!w->on_room)
				break;
			w = NULL;
		}
		if (!w)
			return;
		switch (place(im, fn, w->f, &part, &ignore)) {
		case PLACE_NOW:
			waiter_wake(w, WAIT_GOT_ROOM, NULL, part);
			break;
		case PLACE_WAIT:
			if (part) {
				list_add_tail(&w->room_link, &part->room_waiters);
				w->on_room = true;
				w->room_part = part;
			}
			return;
		case PLACE_NEVER:
			free(ignore.body); /* it times out with its own answer */
			return;
		}
	}
}

/* --- instance life cycle (under im->lock) -------------------------------- */

static struct inst *inst_new(struct im *im, struct fn *fn, struct part *part,
			     uint64_t mem)
{
	struct inst *in = calloc(1, sizeof(*in));

	if (!in)
		return NULL;
	snprintf(in->id, sizeof(in->id), "i-%llu", (unsigned long long)++im->ids);
	in->w_pid = (struct watch){ W_EXEC, in };
	in->p.pidfd = -1;
	in->ctl = -1;
	in->state = ST_STARTING;
	in->fn = fn;
	fn->refs++;
	in->part = part;
	in->mem = mem;
	in->created_ns = now_ns();
	in->created_wall = time(NULL);
	list_init(&in->fn_link);
	list_init(&in->part_link);
	list_init(&in->dying_link);
	list_add_tail(&in->all_link, &im->insts);
	return in;
}

static void server_free(struct server *s)
{
	close_fd(&s->seg);
	close_fd(&s->cli_w);
	close_fd(&s->srv_r);
	close_fd(&s->ready_r);
	close_fd(&s->ctl_w);
	free(s->kernels);
	free(s);
}

/* Both processes of a dying instance are reaped: release everything. */
static void finish(struct im *im, struct inst *in)
{
	struct part *part = in->part;
	struct fn *fn = in->fn;

	close_fd(&in->ctl);
	list_del(&in->dying_link);
	list_del(&in->all_link);
	part->dying_mem -= in->mem;
	book(im, part, in->mem, -1);
	isolation_release(im->d, &in->jail);
	daemon_log(2, "instance %s: stopped", in->id);
	if (in->srv)
		list_add_tail(&in->srv->link, &im->grave_srv);
	in->srv = NULL;
	list_add_tail(&in->all_link, &im->grave_inst);
	in->fn = NULL;
	serve_room(im, part);
	fn_put(im, fn);
	pthread_cond_broadcast(&im->changed);
	kick(im);
}

static bool reaped(const struct proc *p)
{
	return p->pidfd < 0;
}

static void maybe_finish(struct im *im, struct inst *in)
{
	if (in->state == ST_DYING && reaped(&in->p) &&
	    (!in->srv || reaped(&in->srv->p)))
		finish(im, in);
}

/*
 * Hand @in to the supervisor to stop: gracefully (SHUTDOWN, then the
 * executor's exit closes the server's lifeline) or by force (SIGKILL the
 * executor, SIGTERM the server); SIGKILL follows after KILL_GRACE_NS.
 */
static void doom_(struct im *im, struct inst *in, bool force, const char *why,
		  bool grow)
{
	struct fn *fn = in->fn;

	if (in->state == ST_DYING)
		return;
	daemon_log(in->state == ST_IDLE && !force ? 2 : 1,
		   "instance %s (%s/%s): stopping: %s", in->id, fn->tenant,
		   fn->name, why);
	if (in->state == ST_IDLE) {
		list_del(&in->fn_link);
		list_del(&in->part_link);
	}
	in->state = ST_DYING;
	fn->ninst--;
	in->part->dying_mem += in->mem;
	if (in->pressure_mem) { /* its memory comes back by this way now */
		in->part->swapping_mem -= in->pressure_mem;
		in->pressure_mem = 0;
	}
	list_add_tail(&in->dying_link, &im->dying);
	if (in->ctl >= 0 && !force) {
		struct mig_ctl_hdr h = { .magic = MIG_CTL_MAGIC,
					 .type = MIG_CTL_SHUTDOWN };

		send(in->ctl, &h, sizeof(h), MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	close_fd(&in->ctl);
	if (in->srv) /* if the executor never got it, the server must see EOF */
		close_fd(&in->srv->cli_w);
	if (force) {
		if (in->p.pid && !reaped(&in->p))
			isolation_kill(&in->jail, in->p.pid);
		if (in->srv && in->srv->p.pid && !reaped(&in->srv->p))
			kill(in->srv->p.pid, SIGTERM);
	}
	in->kill_stage = force ? 1 : 0;
	in->kill_at = now_ns() + KILL_GRACE_NS;
	watch_rearm(im, in->p.pidfd, &in->w_pid);
	if (in->srv)
		watch_rearm(im, in->srv->p.pidfd, &in->srv->w_pid);
	maybe_finish(im, in);
	/* Placement itself evicts (grow false): no recursion into it. */
	if (grow)
		fn_grow(im, fn);
	kick(im);
}

static void doom(struct im *im, struct inst *in, bool force, const char *why)
{
	doom_(im, in, force, why, true);
}

/*
 * The invocation on @in is over and @in is healthy: hand it to the oldest
 * waiter of its function, or make it idle.  An older waiter of another
 * function that needs room on this partition goes first: then @in stops.
 */
static void release(struct im *im, struct inst *in)
{
	struct fn *fn = in->fn;
	struct part *part = in->part;
	struct waiter *fw, *rw;
	uint64_t now = now_ns();

	in->last_used_ns = now;
	if (in->p.exited || in->srv->p.exited) {
		doom(im, in, true, "a process of the instance exited");
		return;
	}
	fw = list_first(&fn->waiters, struct waiter, fn_link);
	rw = list_first(&part->room_waiters, struct waiter, room_link);
	if (rw && rw->fn != fn && !fn_at_max(rw->fn) && (!fw || rw->seq < fw->seq)) {
		doom(im, in, false, "an older invocation of another function needs room");
		return;
	}
	if (fw) {
		waiter_wake(fw, WAIT_GOT_INST, in, NULL);
		return;
	}
	if (fn->retired || im->stopping) {
		doom(im, in, false, fn->retired ? "the function was updated or deleted" :
						  "the daemon is stopping");
		return;
	}
	in->state = ST_IDLE;
	in->expire_ns = now + fn->keep_alive_ms * 1000000ull;
	list_add_head(&in->fn_link, &fn->idle);
	list_add_tail(&in->part_link, &part->idle);
	if (in->expire_ns < im->sup_wake_ns)
		kick(im);
	if (rw)
		serve_room(im, part);
}

/* --- the control channel (owner thread, no lock) ------------------------- */

static __thread uint8_t rxbuf[RX_BUF];

/* Wait until @fd is ready for @ev or @deadline passes. */
static int wait_fd(int fd, short ev, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = ev };
		uint64_t now = now_ns();
		uint64_t ms;
		int n;

		if (now >= deadline)
			return -ETIMEDOUT;
		ms = (deadline - now + 999999) / 1000000;
		n = poll(&p, 1, ms > INT_MAX ? INT_MAX : (int)ms);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int ctl_send(int fd, uint16_t type, uint64_t id, const void *body,
		    size_t len, const char *aux, uint64_t deadline)
{
	struct mig_ctl_hdr h = { .magic = MIG_CTL_MAGIC, .type = type, .id = id,
				 .len = (uint32_t)len };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)body, len } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (aux)
		snprintf(h.aux, sizeof(h.aux), "%s", aux);
	while (msg.msg_iovlen) {
		ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			int r;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return errno == ECONNRESET ? -EPIPE : -errno;
			r = wait_fd(fd, POLLOUT, deadline);
			if (r)
				return r;
			continue;
		}
		while (msg.msg_iovlen && (size_t)n >= msg.msg_iov->iov_len) {
			n -= (ssize_t)msg.msg_iov->iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
		if (msg.msg_iovlen) {
			msg.msg_iov->iov_base = (uint8_t *)msg.msg_iov->iov_base + n;
			msg.msg_iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/*
 * Receive into @buf until @want bytes; -EPIPE at EOF.  With @spin, poll
 * the socket for SPIN_NS before sleeping: on an idle machine the wake-up
 * of a sleeping thread (an idle virtual CPU above all) costs more than a
 * warm invocation itself.
 */
static int ctl_read(int fd, uint8_t *buf, size_t *got, size_t want, size_t cap,
		    bool spin, uint64_t deadline)
{
	uint64_t spin_until = spin ? now_ns() + SPIN_NS : 0;

	while (*got < want) {
		ssize_t n;
		int r = 0;

		if (now_ns() >= spin_until)
			r = wait_fd(fd, POLLIN, deadline);
		if (r)
			return r;
		n = recv(fd, buf + *got, cap - *got, MSG_DONTWAIT);
		if (n > 0)
			*got += (size_t)n;
		else if (n == 0 || errno == ECONNRESET)
			return -EPIPE;
		else if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
	return 0;
}

/*
 * One frame from the executor: its header in @h, its body (malloc'ed,
 * NUL-terminated) in *@body.  A frame that is malformed, too large, or
 * followed by another (the executor speaks out of turn) is -EPROTO.
 */
static int ctl_recv(int fd, struct mig_ctl_hdr *h, char **body, bool spin,
		    uint64_t deadline)
{
	size_t got = 0, have;
	char *b;
	int r;

	*body = NULL;
	r = ctl_read(fd, rxbuf, &got, sizeof(*h), RX_BUF, spin, deadline);
	if (r)
		return r;
	memcpy(h, rxbuf, sizeof(*h));
	h->aux[sizeof(h->aux) - 1] = 0;
	if (h->magic != MIG_CTL_MAGIC || h->len > MIG_CTL_MAX_BODY ||
	    got > sizeof(*h) + h->len)
		return -EPROTO;
	b = malloc((size_t)h->len + 1);
	if (!b)
		return -ENOMEM;
	have = got - sizeof(*h);
	memcpy(b, rxbuf + sizeof(*h), have);
	r = ctl_read(fd, (uint8_t *)b, &have, h->len, h->len, false, deadline);
	if (r) {
		free(b);
		return r;
	}
	b[h->len] = 0;
	*body = b;
	return 0;
}

/* The executor's exit status, without reaping it; -1 if it did not exit
 * within @wait_ms. */
static int peek_exit(const struct proc *p, int wait_ms)
{
	struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };
	siginfo_t si;

	if (p->pidfd < 0 || poll(&pfd, 1, wait_ms) <= 0)
		return -1;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOWAIT | WNOHANG) < 0 ||
	    si.si_pid != p->pid)
		return -1;
	return si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) :
					  W_EXITCODE(0, si.si_status & 0x7f);
}

/*
 * Did the GPU server go away on its own?  Its lifeline says so at once;
 * a server that exited 0 left because its client (the executor) did.
 * The lifeline closes while the server exits, a moment before its status
 * can be read (the kernel releases a process's files first), so a closed
 * lifeline waits up to EXIT_WAIT_MS for the status: read at once, a server
 * leaving after its client would be taken for a dead one.
 */
static bool server_died(const struct server *s)
{
	struct pollfd pfd = { .fd = s->srv_r, .events = POLLIN };
	int st;

	if (s->srv_r < 0 || poll(&pfd, 1, 0) <= 0)
		return false;
	st = peek_exit(&s->p, EXIT_WAIT_MS);
	return !(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Why did the executor of @in stop talking (EOF)?  Fills @r. */
static void explain_exit(struct inst *in, const struct mig_function *f,
			 bool starting, struct mig_invoke_result *r)
{
	const char *when = starting ? "while it started" : "during the invocation";
	bool gone = in->srv && server_died(in->srv);
	int st = peek_exit(&in->p, EXIT_WAIT_MS);

	if (st < 0 && in->p.pid) { /* it closed the channel but lives on */
		isolation_kill(&in->jail, in->p.pid);
		st = peek_exit(&in->p, EXIT_WAIT_MS);
	}
	if (in->killed)
		set_error(r, 502, "instance_killed",
			  "instance %s of function \"%s\" was stopped by a kill request %s",
			  in->id, f->name, when);
	else if (gone || (in->srv && server_died(in->srv)))
		set_error(r, 502, "gpu_server_died",
			  "the GPU server of instance %s (function \"%s\") exited %s; the instance was discarded, retry the invocation",
			  in->id, f->name, when);
	else if (st >= 0 && WIFSIGNALED(st) && isolation_memory_exceeded(&in->jail))
		set_error(r, 500, "memory_limit",
			  "function \"%s\" went over its host memory limit and was killed %s; the instance was discarded (raise \"limits.memory\")",
			  f->name, when);
	else if (st >= 0 && WIFSIGNALED(st) && crash_signal(WTERMSIG(st)))
		set_error(r, 500, "function_crashed",
			  "function \"%s\" crashed with SIG%s (%s) %s; the instance was discarded",
			  f->name, sig_name(WTERMSIG(st)), strsignal(WTERMSIG(st)), when);
	else if (st >= 0 && WIFSIGNALED(st))
		set_error(r, 502, "executor_killed",
			  "the executor of instance %s (function \"%s\") was killed by SIG%s %s (out of host memory, or another process killed it)",
			  in->id, f->name, sig_name(WTERMSIG(st)), when);
	else if (st >= 0)
		set_error(r, 502, "executor_exited",
			  "the executor of function \"%s\" exited with status %d %s (does the function call exit()?)",
			  f->name, WEXITSTATUS(st), when);
	else
		set_error(r, 502, "executor_lost",
			  "the executor of instance %s (function \"%s\") closed its control channel %s",
			  in->id, f->name, when);
}

/* A FAILED frame (@h, message @msg) becomes the invocation's error. */
static void explain_failed(struct inst *in, const struct mig_function *f,
			   const struct mig_ctl_hdr *h, const char *msg,
			   struct mig_invoke_result *r)
{
	switch (h->status) {
	case MIG_CTL_FAULT_ARTIFACT:
		set_error(r, 500, "artifact_invalid",
			  "function \"%s\" cannot be loaded: %s", f->name, msg);
		break;
	case MIG_CTL_FAULT_HANDLER:
		set_error(r, 500, "handler_missing", "function \"%s\": %s",
			  f->name, msg);
		break;
	case MIG_CTL_FAULT_INIT:
		set_error(r, 500, "init_failed",
			  "function \"%s\" failed to initialize: %s", f->name, msg);
		break;
	case MIG_CTL_FAULT_GPU:
		set_error(r, 500, "gpu_fault",
			  "function \"%s\" faulted on the GPU: %s; its context is lost and the instance was discarded",
			  f->name, msg);
		break;
	case MIG_CTL_FAULT_GPU_GONE:
		set_error(r, 502, "gpu_server_died",
			  "the GPU server of instance %s (function \"%s\") went away: %s; retry the invocation",
			  in->id, f->name, msg);
		break;
	case MIG_CTL_FAULT_RESULT:
		set_error(r, 500, "bad_result", "function \"%s\": %s", f->name, msg);
		break;
	case MIG_CTL_FAULT_SANDBOX:
		set_error(r, 500, "sandbox_failed",
			  "the sandbox of function \"%s\" could not start it: %s",
			  f->name, msg);
		break;
	default:
		set_error(r, 500, "executor_failed",
			  "the executor of function \"%s\" failed: %s", f->name, msg);
		break;
	}
}

/* Timed out: kill the executor, then ask the server to go. */
static void kill_for_timeout(struct inst *in)
{
	if (in->p.pid)
		isolation_kill(&in->jail, in->p.pid);
	if (in->srv && in->srv->p.pid)
		kill(in->srv->p.pid, SIGTERM);
}

/* --- GPU servers --------------------------------------------------------- */

static struct server *server_new(struct im *im, struct part *part,
				 const char *kernels)
{
	struct server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->kernels = strdup(kernels);
	if (!s->kernels) {
		free(s);
		return NULL;
	}
	s->w_pid = (struct watch){ W_GPUD, s };
	s->w_ready = (struct watch){ W_READY, s };
	s->p.pidfd = -1;
	s->seg = s->cli_w = s->srv_r = s->ready_r = s->ctl_w = -1;
	s->part = part;
	snprintf(s->id, sizeof(s->id), "s-%llu", (unsigned long long)++im->server_ids);
	s->num = (uint32_t)im->server_ids ? (uint32_t)im->server_ids : 1;
	list_init(&s->link);
	return s;
}

/*
 * Create @s's segment and pipes and start its mig-gpud (without waiting
 * for it to be ready).  0, or -1 with @err set.
 */
static int server_launch(struct im *im, struct server *s, const char *name,
			 char *err, size_t errlen)
{
	struct mig_config *cfg = &im->d->cfg;
	int ready[2] = { -1, -1 }, srv_life[2] = { -1, -1 }, cli_life[2] = { -1, -1 };
	int ctl[2] = { -1, -1 };
	uint64_t size = cfg->segment_size ? cfg->segment_size : MIG_SEGMENT_SIZE_DEFAULT;
	struct strv argv = { 0 }, env = { 0 };
	struct spawn sp = { 0 };
	int r;

	s->seg = mig_segment_create(size);
	if (s->seg < 0) {
		snprintf(err, errlen, "cannot create the shared segment (%.0f MiB): %s",
			 (double)size / MiB, strerror(-s->seg));
		s->seg = -1;
		return -1;
	}
	if (pipe2(ready, O_CLOEXEC) || pipe2(srv_life, O_CLOEXEC) ||
	    pipe2(cli_life, O_CLOEXEC) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl)) {
		snprintf(err, errlen, "cannot create its pipes: %s", strerror(errno));
		goto fail;
	}
	strv_add(&argv, "%s", im->gpud);
	strv_add(&argv, "--segment-fd");
	strv_add(&argv, "3");
	strv_add(&argv, "--ready-fd");
	strv_add(&argv, "4");
	strv_add(&argv, "--client-lifeline");
	strv_add(&argv, "5");
	strv_add(&argv, "--control-fd");
	strv_add(&argv, "7");
	if (s->part->arb) {
		strv_add(&argv, "--arbiter-fd");
		strv_add(&argv, "8");
		strv_add(&argv, "--arbiter-id");
		strv_add(&argv, "%u", s->num);
	}
	strv_add(&argv, "--backend");
	strv_add(&argv, "%s", *cfg->backend ? cfg->backend : "cuda");
	if (*s->part->uuid) {
		strv_add(&argv, "--device");
		strv_add(&argv, "%s", s->part->uuid);
	}
	strv_add(&argv, "--instance");
	strv_add(&argv, "%s", name);
	gpud_env(s->kernels, &env);
	if (argv.oom || env.oom) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	sp.path = im->gpud;
	sp.argv = argv.v;
	sp.envp = env.v;
	sp.fds[0] = s->seg;
	sp.fds[1] = ready[1];
	sp.fds[2] = cli_life[0];
	sp.fds[3] = srv_life[1]; /* held only: its closing tells the client */
	sp.fds[4] = ctl[0];
	sp.fds[5] = s->part->arb_fd;
	sp.nfds = s->part->arb ? 6 : 5;
	sp.p = &s->p;
	sp.w = &s->w_pid;
	r = spawn_proc(im, &sp);
	if (r) {
		snprintf(err, errlen, "cannot start %.300s: %s", im->gpud, strerror(r));
		goto fail;
	}
	strv_free(&argv);
	strv_free(&env);
	close(ready[1]);
	close(cli_life[0]);
	close(srv_life[1]);
	close(ctl[0]);
	s->ctl_w = ctl[1];
	s->ready_r = ready[0];
	s->cli_w = cli_life[1];
	s->srv_r = srv_life[0];
	return 0;
fail:
	strv_free(&argv);
	strv_free(&env);
	for (int i = 0; i < 2; i++) {
		close_fd(&ready[i]);
		close_fd(&srv_life[i]);
		close_fd(&cli_life[i]);
		close_fd(&ctl[i]);
	}
	close_fd(&s->seg);
	return -1;
}

/*
 * Read the server's ready line.  1: "ok"; 0: not yet (pooled servers'
 * pipes are nonblocking); -1: it failed, with its reason in @err.
 */
static int server_ready_line(struct server *s, char *err, size_t errlen)
{
	char buf[600];
	ssize_t n;

	while ((n = read(s->ready_r, buf, sizeof(buf) - 1)) < 0 && errno == EINTR)
		;
	if (n < 0 && errno == EAGAIN)
		return 0;
	buf[n > 0 ? n : 0] = 0;
	close_fd(&s->ready_r);
	if (!strncmp(buf, "ok", 2)) {
		s->ready = true;
		return 1;
	}
	buf[strcspn(buf, "\n")] = 0;
	snprintf(err, errlen, "%.400s", n <= 0 ? "it exited before it was ready (see the daemon's log)" :
			      !strncmp(buf, "error: ", 7) ? buf + 7 : buf);
	return -1;
}

/* --- starting an instance (owner thread, no lock) ------------------------ */

static bool file_exists(const char *path)
{
	struct stat st;

	return !stat(path, &st);
}

/*
 * A GPU server for @in: a ready one from the partition's pool, else a new
 * one, waited for.  0, or -1 with @r filled.
 */
static int get_server(struct im *im, struct inst *in, const char *kernels,
		      uint64_t deadline, struct mig_invoke_result *r)
{
	struct part *part = in->part;
	struct server *s = NULL;
	struct list *l;
	char err[512];
	int rc;

	pthread_mutex_lock(&im->lock);
	for (l = part->pool.next; l != &part->pool; l = l->next) {
		struct server *c = list_entry(l, struct server, link);

		if (c->ready && !c->p.exited && !strcmp(c->kernels, kernels)) {
			s = c;
			break;
		}
	}
	if (s) {
		list_del(&s->link);
		part->pool_n--;
		in->pooled = true;
	} else if (strcmp(part->pool_kernels, kernels)) {
		/* The pool follows what cold starts here ask for. */
		char *k = strdup(kernels);

		if (k) {
			free(part->pool_kernels);
			part->pool_kernels = k;
		}
	}
	if (s || im->d->cfg.pool_per_partition > 0)
		kick(im); /* refill */
	if (s) {
		s->inst = in;
		in->srv = s;
		pthread_mutex_unlock(&im->lock);
		return 0;
	}
	s = server_new(im, part, kernels);
	if (s) {
		s->inst = in;
		in->srv = s;
	}
	pthread_mutex_unlock(&im->lock);
	if (!s) {
		set_error(r, 503, "out_of_memory", "the daemon is out of memory");
		return -1;
	}
	if (server_launch(im, s, in->id, err, sizeof(err)) < 0) {
		set_error(r, 503, "gpu_unavailable",
			  "the GPU server for function \"%s\" could not start: %s",
			  in->fn->name, err);
		return -1;
	}
	rc = wait_fd(s->ready_r, POLLIN, deadline);
	if (rc == -ETIMEDOUT) {
		set_error(r, 504, "start_timeout",
			  "the GPU server for function \"%s\" did not get a GPU context within %u ms",
			  in->fn->name, START_TIMEOUT_MS);
		return -1;
	}
	if (server_ready_line(s, err, sizeof(err)) < 0) {
		set_error(r, 503, "gpu_unavailable",
			  "the GPU server for function \"%s\" on partition %s could not start: %s",
			  in->fn->name, *part->uuid ? part->uuid : "(default)", err);
		return -1;
	}
	return 0;
}

/*
 * Tell @s where @f's module cache is (gpud/modcache.c): a directory beside
 * the version's code, so that it goes with the version.  It is the
 * daemon's (0700): the function's sandboxed uid cannot read or plant
 * images there.  Without it the instance simply loads everything itself.
 */
static void name_module_cache(struct im *im, struct server *s,
			      const struct mig_function *f)
{
	struct {
		struct mig_ctl_hdr h;
		char path[PATH_MAX];
	} fr;
	char *slash;
	size_t n;
	int rc;

	if (!im->d->cfg.module_cache || s->ctl_w < 0)
		return;
	memset(&fr.h, 0, sizeof(fr.h));
	n = (size_t)snprintf(fr.path, sizeof(fr.path), "%s", f->artifact);
	slash = strrchr(fr.path, '/');
	if (!slash || n >= sizeof(fr.path) - 16)
		return;
	snprintf(slash, sizeof(fr.path) - (size_t)(slash - fr.path), "/module-cache");
	rc = daemon_mkdir_p(fr.path, 0700);
	if (rc) {
		daemon_log(1, "module cache %s: %s; instances load everything themselves",
			   fr.path, strerror(rc));
		return;
	}
	fr.h.magic = MIG_CTL_MAGIC;
	fr.h.type = MIG_CTL_MODULE_CACHE;
	fr.h.id = im->d->cfg.module_cache;
	fr.h.len = (uint32_t)strlen(fr.path) + 1;
	/* One packet, before the client exists. */
	if (write(s->ctl_w, &fr, sizeof(fr.h) + fr.h.len) < 0)
		daemon_log(1, "module cache: cannot tell the GPU server: %s",
			   strerror(errno));
}

/*
 * Tell @s how much device memory its client may hold: the instance's
 * reservation.  The server refuses allocations past it and reports it as
 * the device's size (cuMemGetInfo, NVML), so that a tenant neither takes
 * what was promised to its neighbours nor sees what they use.  Sent, like
 * the module cache, before the client exists (the write fails only when
 * the server is gone, and then the start fails anyway).
 */
static void tell_memory_limit(struct server *s, uint64_t bytes)
{
	struct mig_ctl_hdr h;

	if (s->ctl_w < 0)
		return;
	memset(&h, 0, sizeof(h));
	h.magic = MIG_CTL_MAGIC;
	h.type = MIG_CTL_MEMORY_LIMIT;
	h.id = bytes;
	if (write(s->ctl_w, &h, sizeof(h)) < 0)
		daemon_log(0, "memory limit: cannot tell the GPU server: %s", strerror(errno));
}

/* Start the executor of @in on its server.  0, or -1 with @r filled. */
static int start_executor(struct im *im, struct inst *in,
			  const struct mig_function *f, struct mig_invoke_result *r)
{
	bool python = !strcmp(f->language, "python");
	struct strv argv = { 0 }, env = { 0 };
	struct spawn sp = { 0 };
	char dir[PATH_MAX], *slash, **jailed = NULL, why[512] = "";
	/* What the executor needs of the node besides the function's code. */
	const char *const ro_c[] = { im->exec, im->shim_dir, NULL };
	const char *const ro_py[] = { im->exec_lib, im->pypath, im->shim_dir, NULL };
	struct mig_isolation_input iso = { 0 };
	struct keeper *k = NULL;
	int sv[2], rc;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		set_error(r, 503, "out_of_resources",
			  "cannot create the control channel: %s", strerror(errno));
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s", f->artifact);
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = 0;
	else
		snprintf(dir, sizeof(dir), "%s", slash ? "/" : ".");
	if (python) {
		strv_add(&argv, "%s", *f->python ? f->python : "python3");
		strv_add(&argv, "-m");
		strv_add(&argv, "mignificent.executor");
	} else {
		strv_add(&argv, "%s", im->exec);
		strv_add(&argv, "%s", f->artifact);
		strv_add(&argv, "%s", f->handler);
	}
	exec_env(im, f, in, python, &env);
	if (argv.oom || env.oom) {
		close(sv[0]);
		close(sv[1]);
		strv_free(&argv);
		strv_free(&env);
		set_error(r, 503, "out_of_memory", "the daemon is out of memory");
		return -1;
	}
	iso.id = in->id;
	iso.argv = argv.v;
	iso.envp = env.v;
	iso.cwd = dir;
	iso.ro = python ? ro_py : ro_c;
	iso.nfds = 4;
	/* A pre-started sandbox if one is ready: it has joined its cgroups. */
	if (!strcmp(isolation_mode(im->d, f), "sandbox")) {
		pthread_mutex_lock(&im->lock);
		k = keeper_take(im, in);
		pthread_mutex_unlock(&im->lock);
	}
	rc = isolation_prepare(im->d, f, &iso, &in->jail, &jailed, why, sizeof(why));
	if (rc && k)
		keeper_done(im, k);
	if (rc) {
		close(sv[0]);
		close(sv[1]);
		strv_free(&argv);
		strv_free(&env);
		set_error(r, 503, "isolation_failed",
			  "cannot isolate an instance of function \"%s\": %s",
			  f->name, why);
		return -1;
	}
	sp.path = jailed ? jailed[0] : argv.v ? argv.v[0] : NULL;
	/* An interpreter or a runtime named without a directory: on PATH. */
	sp.search_path = !strchr(sp.path ? sp.path : "", '/');
	sp.argv = jailed ? jailed : argv.v;
	sp.envp = env.v;
	sp.cwd = dir;
	sp.log_path = *f->log_path ? f->log_path : NULL;
	sp.fds[0] = sv[1];
	sp.fds[1] = in->srv->seg;
	sp.fds[2] = in->srv->srv_r;
	sp.fds[3] = in->srv->cli_w;
	sp.nfds = 4;
	sp.p = &in->p;
	sp.w = &in->w_pid;
	if (k) {
		int log = sp.log_path ? open_log(sp.log_path) : -1;

		rc = -keeper_send(k, jailed, env.v, sp.fds, sp.nfds, log >= 0 ? log : 2);
		if (log >= 0)
			close(log);
		keeper_done(im, k);
	} else {
		rc = spawn_proc(im, &sp);
	}
	close(sv[1]);
	for (char **x = jailed; x && *x; x++)
		free(*x);
	free(jailed);
	if (rc) {
		close(sv[0]);
		set_error(r, 500, "executor_start_failed",
			  "cannot start the executor of function \"%s\" (%s in %s): %s",
			  f->name, argv.v ? argv.v[0] : "?", dir, strerror(rc));
		strv_free(&argv);
		strv_free(&env);
		return -1;
	}
	strv_free(&argv);
	strv_free(&env);
	/* Only the executor may hold these now: the server must see its
	 * client's end close when the executor dies. */
	pthread_mutex_lock(&im->lock);
	in->ctl = sv[0];
	close_fd(&in->srv->seg);
	close_fd(&in->srv->cli_w);
	pthread_mutex_unlock(&im->lock);
	return 0;
}

/* Wait for the executor's READY.  0, or -1 with @r filled. */
static int wait_ready(struct inst *in, const struct mig_function *f,
		      uint64_t deadline, struct mig_invoke_result *r)
{
	struct mig_ctl_hdr h;
	char *msg = NULL;
	int rc = ctl_recv(in->ctl, &h, &msg, false, deadline);

	if (!rc && h.type == MIG_CTL_READY) {
		free(msg);
		return 0;
	}
	if (!rc && h.type == MIG_CTL_FAILED)
		explain_failed(in, f, &h, msg, r);
	else if (rc == -ETIMEDOUT) {
		kill_for_timeout(in);
		set_error(r, 504, "start_timeout",
			  "function \"%s\" did not finish initializing within %u ms; the instance was stopped",
			  f->name, START_TIMEOUT_MS);
	} else if (rc == -EPIPE)
		explain_exit(in, f, true, r);
	else
		set_error(r, 502, "protocol_error",
			  "the executor of function \"%s\" sent %s while starting",
			  f->name, rc ? strerror(-rc) : "an unexpected frame");
	free(msg);
	return -1;
}

/* Bring @in (STARTING, room reserved) to BUSY.  0, or -1 with @r filled. */
static int start_instance(struct im *im, struct inst *in,
			  const struct mig_function *f, struct mig_invoke_result *r)
{
	uint64_t t0 = now_ns(), deadline = t0 + START_TIMEOUT_MS * 1000000ull;
	int rc;

	r->cold = 1; /* this invocation starts an instance, or tries to */
	if (strcmp(f->language, "c") && strcmp(f->language, "python")) {
		set_error(r, 500, "bad_language",
			  "function \"%s\" is in language \"%s\"; this daemon runs \"c\" and \"python\"",
			  f->name, f->language);
		return -1;
	}
	if (!file_exists(f->artifact)) {
		set_error(r, 500, "artifact_missing",
			  "the code of function \"%s\" (%s) is missing: deploy the function again",
			  f->name, f->artifact);
		return -1;
	}
	if (!strcmp(f->language, "python") && !file_exists(im->exec_lib)) {
		set_error(r, 500, "python_unavailable",
			  "this daemon cannot run Python functions: %s is missing (set lib_dir to where libmig_exec.so and python/mignificent are)",
			  im->exec_lib);
		return -1;
	}
	rc = get_server(im, in, kernels_for(im, f), deadline, r);
	if (!rc) {
		tell_memory_limit(in->srv, in->mem);
		name_module_cache(im, in->srv, f);
	}
	if (!rc)
		rc = start_executor(im, in, f, r);
	if (!rc)
		rc = wait_ready(in, f, deadline, r);
	if (!rc && in->killed) {
		set_error(r, 502, "instance_killed",
			  "instance %s of function \"%s\" was stopped by a kill request while it started",
			  in->id, f->name);
		rc = -1;
	}
	in->cold_us = (now_ns() - t0) / 1000;
	r->cold_start_us = in->cold_us;
	if (rc)
		return -1;
	pthread_mutex_lock(&im->lock);
	in->state = ST_BUSY;
	pthread_mutex_unlock(&im->lock);
	daemon_log(1, "instance %s (%s/%s v%u): started in %.1f ms%s on %s",
		   in->id, f->tenant, f->name, f->version, in->cold_us / 1e3,
		   in->pooled ? " with a pre-initialized GPU server" : "",
		   *in->part->uuid ? in->part->uuid : "the default device");
	return 0;
}

/* --- one invocation on an instance (owner thread, no lock) --------------- */

/* Why an instance whose swap-in failed is stopped. */
#define LOST_MEMORY "its GPU memory did not come back from host memory"

enum run_end {
	RUN_KEEP,     /* the instance is fine: release it */
	RUN_DISCARD,  /* stop it gracefully */
	RUN_KILL,     /* stop it by force (already signalled if need be) */
	RUN_RETRY,    /* it was dead before the invocation reached it */
	RUN_NO_ROOM,  /* lukewarm, and its memory has no room to come back:
			 stop it; the invocation starts anew (queued for room) */
	RUN_LOST,     /* lukewarm, and its memory did not come back: stop
			 it; the invocation starts anew on another instance */
};

static void set_result(struct mig_invoke_result *r, char *body, uint32_t len,
		       const char *ctype)
{
	const char *c = ctype;

	for (; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			break;
	r->http_status = 200;
	r->body = body;
	r->len = len;
	snprintf(r->content_type, sizeof(r->content_type), "%s",
		 *ctype && !*c ? ctype : "application/octet-stream");
}

static int swap_request(int fd, uint16_t type, struct mig_swap_report *rep,
			int32_t *status);

static int swap_claimed(struct im *im, struct inst *in, int fd, bool out,
			struct mig_swap_report *rep, int32_t *status);
static void enforce_lukewarm_limit(struct im *im);

/*
 * A lukewarm instance takes back the reservation its swap-out gave up
 * (under the lock).  false: the partition has no room for it now.
 */
static bool take_back(struct im *im, struct inst *in)
{
	bool present;

	if (!in->released)
		return true;
	if (free_mem(im, in->part, &present) < in->released || !present)
		return false;
	book_mem(im, in->part, in->released, +1, false);
	in->mem += in->released;
	in->released = 0;
	return true;
}

enum swap_in {
	SWAP_IN_DONE,    /* in, or the server's business at its first call */
	SWAP_IN_NO_ROOM, /* no room for it on the partition: nothing done */
	SWAP_IN_LOST,    /* it failed: the server cannot serve it any more */
};

/* A lukewarm instance: its memory back before the invocation, timed. */
static enum swap_in swap_in_for(struct im *im, struct inst *in,
				struct mig_invoke_result *r)
{
	struct mig_swap_report rep;
	int32_t status = 0;
	uint64_t t0;
	int fd = -1, rc;

	pthread_mutex_lock(&im->lock);
	/* A swap-in asked for by request is under way: its outcome is ours. */
	while (in->swapped && in->swapping)
		pthread_cond_wait(&im->changed, &im->lock);
	if (in->lost) {
		pthread_mutex_unlock(&im->lock);
		return SWAP_IN_LOST;
	}
	if (in->swapped && !take_back(im, in)) {
		pthread_mutex_unlock(&im->lock);
		return SWAP_IN_NO_ROOM;
	}
	if (in->swapped && !in->swapping && in->srv && in->srv->ctl_w >= 0) {
		in->swapping = true;
		fd = in->srv->ctl_w;
	}
	pthread_mutex_unlock(&im->lock);
	if (fd < 0)
		return SWAP_IN_DONE; /* the server swaps in by itself at the first call */
	t0 = now_ns();
	rc = swap_claimed(im, in, fd, false, &rep, &status);
	r->swap_in_us = (now_ns() - t0) / 1000;
	if (rc || status) {
		daemon_log(0, "instance %s: swap-in failed (%s %d): its GPU memory is lost",
			   in->id, rc ? "no answer," : "CUDA error", rc ? rc : (int)status);
		return SWAP_IN_LOST;
	}
	return SWAP_IN_DONE;
}

/*
 * "sequential": a ticket of server @num on the partition's page @seq,
 * waited for up to @wait_ns.  0 with *@ticket held (~0u: none could be
 * taken, which cannot happen with < 1024 servers: go on without), or
 * -ETIMEDOUT, or -EPIPE: the server died meanwhile and the daemon gave its
 * tickets back.
 */
static int seq_turn(struct mig_arbiter *seq, uint32_t num, uint64_t wait_ns,
		    uint32_t *ticket)
{
	*ticket = mig_arb_take(seq, num, NULL, NULL);
	if (*ticket == ~0u || mig_arb_wait(seq, *ticket, num, wait_ns))
		return 0;
	if (!mig_arb_outstanding(seq, *ticket)) {
		*ticket = ~0u;
		return -EPIPE;
	}
	mig_arb_release(seq, *ticket, NULL);
	*ticket = ~0u;
	return -ETIMEDOUT;
}

static enum run_end run(struct im *im, struct inst *in,
			const struct mig_function *f, const void *payload,
			size_t len, const char *ctype, struct mig_invoke_result *r)
{
	uint64_t t0 = now_ns(), deadline = t0 + timeout_ms(f) * 1000000ull;
	uint64_t id = ++in->next_call;
	struct mig_ctl_hdr h;
	char *body = NULL;
	struct mig_arbiter *seq = NULL;
	uint32_t ticket = 0;
	enum swap_in swap;
	int rc;

	/* "sequential": the invocation owns the partition from start to end,
	 * its swap-in included. */
	if (in->part->arb && in->srv &&
	    in->part->arb->model == MIG_SHARING_SEQUENTIAL) {
		seq = in->part->arb;
		rc = seq_turn(seq, in->srv->num,
			      deadline > now_ns() ? deadline - now_ns() : 0, &ticket);
		if (rc == -EPIPE)
			return RUN_RETRY; /* its server died meanwhile: nothing was delivered */
		if (rc) {
			r->run_us = (now_ns() - t0) / 1000;
			set_error(r, 504, "timeout",
				  "function \"%s\" waited its whole timeout of %u ms for its partition (sharing model sequential)",
				  f->name, timeout_ms(f));
			return RUN_KEEP;
		}
		if (ticket == ~0u)
			seq = NULL;
	}
	swap = swap_in_for(im, in, r);
	if (swap != SWAP_IN_DONE) {
		if (seq)
			mig_arb_release(seq, ticket, NULL);
		return swap == SWAP_IN_NO_ROOM ? RUN_NO_ROOM : RUN_LOST;
	}
	rc = ctl_send(in->ctl, MIG_CTL_INVOKE, id, payload, len, ctype, deadline);
	if (rc == -EPIPE && in->invocations && !r->cold) {
		if (seq)
			mig_arb_release(seq, ticket, NULL);
		return RUN_RETRY; /* died idle; nothing was delivered */
	}
	if (!rc) {
		bool spin = __atomic_add_fetch(&im->running, 1, __ATOMIC_RELAXED) <= im->spin_max;
		rc = ctl_recv(in->ctl, &h, &body, spin, deadline);
		__atomic_sub_fetch(&im->running, 1, __ATOMIC_RELAXED);
	}
	if (seq)
		mig_arb_release(seq, ticket, NULL);
	r->run_us = (now_ns() - t0) / 1000;
	in->invocations++;
	if (rc == -ETIMEDOUT) {
		kill_for_timeout(in);
		set_error(r, 504, "timeout",
			  "function \"%s\" did not finish within its timeout of %u ms; instance %s was stopped",
			  f->name, timeout_ms(f), in->id);
		return RUN_KILL;
	}
	if (rc == -EPIPE) {
		explain_exit(in, f, false, r);
		return RUN_KILL;
	}
	if (rc || (h.type != MIG_CTL_FAILED && h.id != id)) {
		free(body);
		set_error(r, 502, "protocol_error",
			  "the executor of function \"%s\" broke the control protocol (%s); the instance was stopped",
			  f->name, rc ? strerror(-rc) : "an answer to another invocation");
		return RUN_KILL;
	}
	switch (h.type) {
	case MIG_CTL_RESULT:
		if (h.status == 0) {
			set_result(r, body, h.len, h.aux);
			return in->srv && server_died(in->srv) ? RUN_KILL : RUN_KEEP;
		}
		r->fn_status = h.status;
		if (in->srv && server_died(in->srv)) {
			set_error(r, 502, "gpu_server_died",
				  "the GPU server of instance %s (function \"%s\") exited during the invocation; retry the invocation",
				  in->id, f->name);
			free(body);
			return RUN_KILL;
		}
		if (h.len)
			set_error(r, 500, "function_error",
				  "function \"%s\" returned error %d: %.800s", f->name,
				  h.status, body);
		else
			set_error(r, 500, "function_error",
				  "function \"%s\" returned error %d", f->name, h.status);
		free(body);
		return RUN_KEEP;
	case MIG_CTL_ERROR:
		if (h.status == MIG_CTL_FAULT_GPU_OOM)
			set_error(r, 507, "gpu_out_of_memory",
				  "function \"%s\" ran out of GPU memory (it may hold its gpu_memory, %llu MiB; deploy it with more): %.600s",
				  f->name, (unsigned long long)(f->gpu_memory >> 20), body);
		else if (h.status == MIG_CTL_FAULT_EXCEPTION)
			set_error(r, 500, "function_exception",
				  "function \"%s\" raised %.800s", f->name, body);
		else
			set_error(r, 500, "bad_result", "function \"%s\": %.800s",
				  f->name, body);
		free(body);
		return RUN_KEEP;
	case MIG_CTL_FAILED:
		explain_failed(in, f, &h, body, r);
		free(body);
		return RUN_KILL;
	default:
		free(body);
		set_error(r, 502, "protocol_error",
			  "the executor of function \"%s\" sent frame type %u during an invocation",
			  f->name, h.type);
		return RUN_KILL;
	}
}

/* --- getting an instance (under im->lock) -------------------------------- */

/*
 * An instance for one invocation of @f: an idle one (BUSY when returned),
 * or a new one with its room reserved (STARTING), waiting in the queues
 * until @deadline if need be.  NULL with @r filled if there is none.
 */
static struct inst *acquire(struct im *im, struct fn *fn,
			    const struct mig_function *f, uint64_t deadline,
			    struct mig_invoke_result *r)
{
	struct waiter w = { .fn = fn, .f = f };
	struct inst *in;
	struct part *part;
	struct timespec ts;
	bool timed_out = false;

	in = list_first(&fn->idle, struct inst, fn_link);
	if (in && list_empty(&fn->waiters)) {
		list_del(&in->fn_link);
		list_del(&in->part_link);
		in->state = ST_BUSY;
		in->taken_swapping |= in->swapping;
		return in;
	}
	switch (place(im, fn, f, &part, r)) {
	case PLACE_NOW:
		in = inst_new(im, fn, part, f->gpu_memory);
		if (!in) {
			book(im, part, f->gpu_memory, -1);
			fn->ninst--;
			set_error(r, 503, "out_of_memory", "the daemon is out of memory");
		}
		return in;
	case PLACE_NEVER:
		return NULL;
	case PLACE_WAIT:
		break;
	}

	pthread_cond_init(&w.cond, &im->cattr);
	w.seq = ++im->seq;
	list_add_tail(&w.fn_link, &fn->waiters);
	w.on_fn = true;
	if (part) {
		list_add_tail(&w.room_link, &part->room_waiters);
		w.on_room = true;
		w.room_part = part;
	}
	ts.tv_sec = (time_t)(deadline / 1000000000ull);
	ts.tv_nsec = (long)(deadline % 1000000000ull);
	while (w.outcome == WAIT_PENDING && !timed_out)
		timed_out = pthread_cond_timedwait(&w.cond, &im->lock, &ts) == ETIMEDOUT;
	part = w.on_room ? w.room_part : NULL;
	waiter_unqueue(&w);
	pthread_cond_destroy(&w.cond);
	if (part) /* those behind us may fit where we did not */
		serve_room(im, part);
	switch (w.outcome) {
	case WAIT_GOT_INST:
		w.inst->state = ST_BUSY;
		return w.inst;
	case WAIT_GOT_ROOM:
		in = inst_new(im, fn, w.part, f->gpu_memory);
		if (!in) {
			book(im, w.part, f->gpu_memory, -1);
			fn->ninst--;
			set_error(r, 503, "out_of_memory", "the daemon is out of memory");
		}
		return in;
	case WAIT_PENDING:
		break;
	}
	if (fn_at_max(fn))
		set_error(r, 503, "queue_timeout",
			  "function \"%s\" got no free instance within %u ms: all %u of its instances (max_instances) stayed busy; retry later or raise max_instances",
			  f->name, timeout_ms(f), fn->max_instances);
	else
		set_error(r, 503, "queue_timeout",
			  "function \"%s\" got no GPU room within %u ms: the partitions it fits on stayed full (it needs %.0f MiB); retry later",
			  f->name, timeout_ms(f), (double)f->gpu_memory / MiB);
	return NULL;
}

/* --- the public interface ------------------------------------------------ */

void instances_invoke(struct mig_daemon *d, const struct mig_function *f,
		      const void *payload, size_t len, const char *ctype,
		      struct mig_invoke_result *r)
{
	struct im *im = d->instances;
	uint64_t t0 = now_ns();
	struct fn *fn;
	int attempt;

	memset(r, 0, sizeof(*r));
	if (!im) {
		set_error(r, 503, "not_ready", "the daemon's instance manager is not running");
		return;
	}
	if (len > MIG_CTL_MAX_BODY) {
		set_error(r, 413, "payload_too_large",
			  "the request body has %zu bytes; at most %u are accepted",
			  len, MIG_CTL_MAX_BODY);
		return;
	}
	pthread_mutex_lock(&im->lock);
	if (im->stopping || d->stopping) {
		pthread_mutex_unlock(&im->lock);
		set_error(r, 503, "shutting_down",
			  "the daemon is shutting down; retry on another node or later");
		return;
	}
	fn = fn_get(im, f);
	if (!fn) {
		pthread_mutex_unlock(&im->lock);
		set_error(r, 503, "out_of_memory", "the daemon is out of memory");
		return;
	}
	im->inflight++;
	for (attempt = 0;; attempt++) {
		struct inst *in = acquire(im, fn, f, t0 + timeout_ms(f) * 1000000ull, r);
		enum run_end end;
		bool cold;

		if (!in)
			break;
		cold = in->state == ST_STARTING;
		pthread_mutex_unlock(&im->lock);
		r->queued_us = (now_ns() - t0) / 1000;
		snprintf(r->instance, sizeof(r->instance), "%s", in->id);
		if (cold && start_instance(im, in, f, r) < 0)
			end = RUN_KILL;
		else
			end = run(im, in, f, payload, len, ctype ? ctype : "", r);
		pthread_mutex_lock(&im->lock);
		switch (end) {
		case RUN_KEEP:
			if (in->lost) /* by a swap-in asked for meanwhile */
				doom(im, in, true, LOST_MEMORY);
			else
				release(im, in);
			break;
		case RUN_DISCARD:
			doom(im, in, false, "discarded");
			break;
		case RUN_KILL:
			doom(im, in, true, r->body ? (const char *)r->body : "failed");
			break;
		case RUN_RETRY:
			doom(im, in, true, "it was found dead");
			break;
		case RUN_NO_ROOM:
			doom(im, in, false, "lukewarm, and its partition has no room for its memory now");
			break;
		case RUN_LOST:
			doom(im, in, true, LOST_MEMORY);
			break;
		}
		if ((end != RUN_RETRY && end != RUN_NO_ROOM && end != RUN_LOST) ||
		    attempt >= 2)
			break;
		free(r->body);
		memset(r, 0, sizeof(*r));
	}
	if (!r->http_status) /* the last of the attempts above ended so */
		set_error(r, 503, "instances_lost",
			  "function \"%s\": %d instances in a row could not take the invocation (found dead, or lukewarm with no room or no memory to come back); retry later",
			  f->name, attempt + 1);
	fn_put(im, fn);
	if (--im->inflight == 0)
		pthread_cond_broadcast(&im->changed);
	pthread_mutex_unlock(&im->lock);
}

void instances_swap_stats(struct mig_daemon *d, struct mig_swap_stats *out)
{
	struct im *im = d->instances;

	memset(out, 0, sizeof(*out));
	if (!im)
		return;
	pthread_mutex_lock(&im->lock);
	*out = im->swaps;
	out->lukewarm = 0;
	out->lukewarm_bytes = 0;
	out->pool_bytes = 0;
	for (struct list *l = im->insts.next; l != &im->insts; l = l->next) {
		struct inst *in = list_entry(l, struct inst, all_link);

		if (in->swapped && in->state != ST_DYING) {
			out->lukewarm++;
			out->lukewarm_bytes += in->swapped_bytes;
		}
		if (in->state != ST_DYING)
			out->pool_bytes += in->pool_bytes;
	}
	pthread_mutex_unlock(&im->lock);
}

int instances_gpu_turns(struct mig_daemon *d, const char *uuid,
			struct mig_gpu_turns *out)
{
	struct im *im = d->instances;
	const struct part *part;
	struct mig_arbiter *a;

	if (!im)
		return -1;
	pthread_mutex_lock(&im->lock);
	part = part_find(im, uuid);
	a = part ? part->arb : NULL;
	if (a) {
		out->model = (int)a->model;
		out->grants = __atomic_load_n(&a->grants, __ATOMIC_RELAXED);
		out->held_ns = __atomic_load_n(&a->held_ns, __ATOMIC_RELAXED);
		out->waiting = mig_arb_waiting(a);
		out->held = __atomic_load_n(&a->holder, __ATOMIC_RELAXED) != 0;
	}
	pthread_mutex_unlock(&im->lock);
	return a ? 0 : -1;
}

int instances_server_pool(struct mig_daemon *d, const char *uuid,
			  struct mig_server_pool *out)
{
	struct im *im = d->instances;
	const struct part *part;

	if (!im)
		return -1;
	pthread_mutex_lock(&im->lock);
	part = part_find(im, uuid);
	if (part) {
		memset(out, 0, sizeof(*out));
		for (const struct list *l = part->pool.next; l != &part->pool; l = l->next) {
			const struct server *s = list_entry(l, struct server, link);

			if (s->ready)
				out->ready++;
			else
				out->starting++;
		}
		out->failures = part->pool_failures;
		snprintf(out->error, sizeof(out->error), "%s", part->pool_error);
	}
	pthread_mutex_unlock(&im->lock);
	return part ? 0 : -1;
}

void *instances_list(struct mig_daemon *d, const char *tenant)
{
	struct im *im = d->instances;
	json_t *a = json_array();
	uint64_t now = now_ns();
	struct list *l;

	if (!im || !a)
		return a;
	pthread_mutex_lock(&im->lock);
	for (l = im->insts.next; l != &im->insts; l = l->next) {
		struct inst *in = list_entry(l, struct inst, all_link);
		json_t *o;

		if (tenant && strcmp(tenant, in->fn->tenant))
			continue;
		o = json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:I,s:I,s:I,s:I,s:b,s:I,s:I,s:I}",
			      "id", in->id, "tenant", in->fn->tenant,
			      "function", in->fn->name,
			      "version", (json_int_t)in->fn->version,
			      "state", state_names[in->state],
			      "partition", in->part->uuid,
			      "gpu_memory", (json_int_t)in->mem,
			      "exec_pid", (json_int_t)in->p.pid,
			      "gpud_pid", (json_int_t)(in->srv ? in->srv->p.pid : 0),
			      "invocations", (json_int_t)in->invocations,
			      "preinitialized", in->pooled,
			      "cold_start_us", (json_int_t)in->cold_us,
			      "created", (json_int_t)in->created_wall,
			      "idle_ms", (json_int_t)(in->state == ST_IDLE ?
				      (now - in->last_used_ns) / 1000000 : 0));
		if (o) {
			json_object_set_new(o, "swapped", json_boolean(in->swapped));
			json_object_set_new(o, "swapping", json_boolean(in->swapping));
			if (in->swapped)
				json_object_set_new(o, "swapped_bytes",
						    json_integer((json_int_t)in->swapped_bytes));
		}
		if (o && *in->jail.mode) {
			json_object_set_new(o, "isolation", json_string(in->jail.mode));
			if (in->jail.uid)
				json_object_set_new(o, "uid", json_integer(in->jail.uid));
			char cpus[512];

			if (isolation_cpus(&in->jail, cpus, sizeof(cpus)) && *cpus) {
				json_object_set_new(o, "cpus", json_string(cpus));
				json_object_set_new(o, "cpus_exclusive",
						    json_boolean(in->jail.cpus_own));
			}
		}
		if (o)
			json_array_append_new(a, o);
	}
	pthread_mutex_unlock(&im->lock);
	return a;
}

/* Send @type on server socket @fd and wait for its SWAPPED answer. */
static int swap_request(int fd, uint16_t type, struct mig_swap_report *rep,
			int32_t *status)
{
	struct {
		struct mig_ctl_hdr h;
		struct mig_swap_report r;
	} f;
	static uint64_t swap_ids; /* its own numbers: next_call is the invoker's */
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint64_t id = __atomic_add_fetch(&swap_ids, 1, __ATOMIC_RELAXED);
	ssize_t n;

	memset(&f, 0, sizeof(f));
	f.h.magic = MIG_CTL_MAGIC;
	f.h.type = type;
	f.h.id = id;
	if (write(fd, &f.h, sizeof(f.h)) != (ssize_t)sizeof(f.h))
		return -EPIPE;
	for (;;) {
		int r = poll(&pfd, 1, SWAP_TIMEOUT_MS);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r ? -errno : -ETIMEDOUT;
		n = read(fd, &f, sizeof(f));
		if (n <= 0)
			return -EPIPE;
		if ((size_t)n < sizeof(f.h) || f.h.magic != MIG_CTL_MAGIC)
			return -EPROTO;
		if (f.h.type == MIG_CTL_SWAPPED && f.h.id == id)
			break; /* (an answer to an abandoned request is skipped) */
	}
	if (f.h.len != sizeof(f.r) || (size_t)n != sizeof(f))
		return -EPROTO;
	*rep = f.r;
	*status = f.h.status;
	return 0;
}

/*
 * The swap request of a caller that set @in->swapping: sent on @fd, waited
 * for; then the flag is cleared and @in->swapped says where its memory is.
 * 0 with @status (a CUresult) set, or a negative errno.
 */
unsigned int instances_swap_answer_delay_ms;

static int swap_claimed(struct im *im, struct inst *in, int fd, bool out,
			struct mig_swap_report *rep, int32_t *status)
{
	int rc = swap_request(fd, out ? MIG_CTL_SWAP_OUT : MIG_CTL_SWAP_IN, rep, status);
	/* Taken by an invocation while the swap-out ran: its server swaps in
	 * at the first call, within the memory it kept.  The invocation may
	 * be over by now (the server answers us before it serves that call,
	 * and we may read the answer later than the invocation ends), so what
	 * counts is that one took it.  One that made no call leaves the
	 * server swapped out and the memory counted: too much, never too
	 * little.  (Read before the flag is cleared below.) */
	bool taken;

	if (instances_swap_answer_delay_ms)
		usleep(instances_swap_answer_delay_ms * 1000u);
	pthread_mutex_lock(&im->lock);
	taken = out && (in->state == ST_BUSY || in->taken_swapping);
	in->swapping = false;
	in->taken_swapping = false;
	if (!rc && !*status) {
		bool moved = in->swapped != out; /* (or it was there already) */

		in->swapped = out && !taken;
		in->swapped_bytes = in->swapped ? rep->bytes : 0;
		if (moved && out && rep->bytes > in->pool_bytes)
			in->pool_bytes = rep->bytes;
		if (moved && out && !taken && in->state != ST_DYING) {
			/* What the swap freed is the partition's again. */
			in->released = rep->bytes < in->mem ? rep->bytes : in->mem;
			in->mem -= in->released;
			book_mem(im, in->part, in->released, -1, false);
			serve_room(im, in->part);
		}
		if (moved && out) /* explicit swaps are bounded too */
			enforce_lukewarm_limit(im);
		if (moved) {
			*(out ? &im->swaps.outs : &im->swaps.ins) += 1;
			*(out ? &im->swaps.bytes_out : &im->swaps.bytes_in) += rep->bytes;
			*(out ? &im->swaps.ns_out : &im->swaps.ns_in) += rep->ns;
		}
	} else {
		im->swaps.failures++;
		/* A failed swap-in leaves the server without the client's
		 * memory for good (gpud/swap.c): an idle instance goes now,
		 * an invoked one when its invocation starts anew (RUN_LOST). */
		in->lost |= !out;
		if (!out && in->state == ST_IDLE)
			doom(im, in, true, LOST_MEMORY);
	}
	pthread_cond_broadcast(&im->changed); /* swapping is over (swap_in_for) */
	pthread_mutex_unlock(&im->lock);
	return rc;
}

/* An instance by its id (under the lock), or NULL. */
static struct inst *inst_by_id(struct im *im, const char *id)
{
	for (struct list *l = im->insts.next; l != &im->insts; l = l->next) {
		struct inst *in = list_entry(l, struct inst, all_link);

		if (!strcmp(in->id, id))
			return in;
	}
	return NULL;
}

int instances_swap(struct mig_daemon *d, const char *tenant, const char *id,
		   bool out, struct mig_swap_report *rep, char *err, size_t errlen)
{
	struct im *im = d->instances;
	struct mig_arbiter *seq = NULL;
	uint32_t ticket = ~0u;
	struct inst *in;
	int32_t status = 0;
	int fd, rc;

	if (!im)
		return -ENOENT;
	pthread_mutex_lock(&im->lock);
	for (;;) {
		uint32_t num;

		in = inst_by_id(im, id);
		if (!in || (tenant && strcmp(tenant, in->fn->tenant))) {
			rc = -ENOENT;
			goto refuse;
		}
		/* Never under an invocation (swap-in happens by itself then)
		 * nor while starting, stopping or already swapping. */
		if (in->state != ST_IDLE || in->swapping || !in->srv || in->srv->ctl_w < 0) {
			snprintf(err, errlen, "instance %s is %s", id,
				 in->swapping ? "being swapped already" : state_names[in->state]);
			rc = -EBUSY;
			goto refuse;
		}
		if (out || !in->swapped || seq || !in->part->arb ||
		    in->part->arb->model != MIG_SHARING_SEQUENTIAL)
			break;
		/* Under "sequential" an invocation owns the partition from
		 * start to end (run(), its swap-in included), so a swap-in
		 * asked for by request waits for it too.  (Swap-outs never
		 * wait, in any model: they run on idle instances, often
		 * because another function needs the room.)  Then look
		 * again: an invocation may have taken the instance (and
		 * swapped it in) meanwhile. */
		seq = in->part->arb;
		num = in->srv->num;
		pthread_mutex_unlock(&im->lock);
		rc = seq_turn(seq, num, SWAP_TIMEOUT_MS * 1000000ull, &ticket);
		if (rc == -EPIPE)
			snprintf(err, errlen, "instance %s: its GPU server exited while the swap-in waited", id);
		else if (rc)
			snprintf(err, errlen,
				 "instance %s: its partition (sharing model sequential) stayed in use for %d s",
				 id, SWAP_TIMEOUT_MS / 1000);
		if (rc)
			return rc;
		pthread_mutex_lock(&im->lock);
	}
	if (!out && in->swapped && !take_back(im, in)) {
		snprintf(err, errlen, "instance %s: its partition has no room for its %.0f MiB now",
			 id, in->released / 1048576.0);
		rc = -ENOSPC;
		goto refuse;
	}
	in->swapping = true;
	fd = in->srv->ctl_w;
	pthread_mutex_unlock(&im->lock);

	rc = swap_claimed(im, in, fd, out, rep, &status);
	if (ticket != ~0u)
		mig_arb_release(seq, ticket, NULL);
	if (!rc && status) {
		snprintf(err, errlen, "the GPU server could not swap %s: CUDA error %d",
			 out ? "out" : "in", (int)status);
		rc = -EIO;
	} else if (rc) {
		snprintf(err, errlen, "the GPU server did not answer the swap request: %s",
			 strerror(-rc));
	}
	if (!rc)
		daemon_log(1, "instance %s swapped %s: %.1f MiB in %.2f ms", id,
			   out ? "out" : "in", rep->bytes / 1048576.0, rep->ns / 1e6);
	return rc;
refuse:
	pthread_mutex_unlock(&im->lock);
	if (ticket != ~0u)
		mig_arb_release(seq, ticket, NULL);
	return rc;
}

int instances_kill(struct mig_daemon *d, const char *tenant, const char *id)
{
	struct im *im = d->instances;
	struct list *l;
	int rc = -ENOENT;

	if (!im)
		return -ENOENT;
	pthread_mutex_lock(&im->lock);
	for (l = im->insts.next; l != &im->insts; l = l->next) {
		struct inst *in = list_entry(l, struct inst, all_link);

		if (strcmp(in->id, id) || (tenant && strcmp(tenant, in->fn->tenant)))
			continue;
		rc = 0;
		in->killed = true;
		if (in->state == ST_IDLE)
			doom(im, in, true, "killed on request");
		else if (in->state != ST_DYING && in->p.pid)
			isolation_kill(&in->jail, in->p.pid); /* its owner sees EOF */
		break;
	}
	pthread_mutex_unlock(&im->lock);
	return rc;
}

void instances_retire(struct mig_daemon *d, const char *tenant, const char *name)
{
	struct im *im = d->instances;

	if (!im)
		return;
	pthread_mutex_lock(&im->lock);
	for (unsigned int b = 0; b < FN_BUCKETS; b++) {
		struct fn *fn = im->fns[b], *next;

		for (; fn; fn = next) {
			struct inst *in;

			next = fn->hnext;
			if (strcmp(fn->tenant, tenant) || strcmp(fn->name, name))
				continue;
			/* Invocations already waiting still get this version;
			 * new ones (even of a version number used again after
			 * a delete) get a new record. */
			fn->retired = true;
			fn_unlink(im, fn);
			fn->refs++;
			while ((in = list_first(&fn->idle, struct inst, fn_link)))
				doom(im, in, false, "the function was updated or deleted");
			fn_put(im, fn);
		}
	}
	pthread_mutex_unlock(&im->lock);
}

/* --- the supervisor ------------------------------------------------------ */

/* Reap @p, whose pidfd fired (supervisor, under the lock). */
static void reap(struct im *im, struct proc *p)
{
	int st = 0;
	pid_t r;

	if (reaped(p))
		return;
	while ((r = waitpid(p->pid, &st, WNOHANG)) < 0 && errno == EINTR)
		;
	if (r == 0)
		return; /* not yet: the watch is re-armed by our caller */
	epoll_ctl(im->epfd, EPOLL_CTL_DEL, p->pidfd, NULL);
	close_fd(&p->pidfd);
	p->status = r == p->pid ? st : -1; /* -1: someone else reaped it */
	im->nprocs--;
	pthread_cond_broadcast(&im->changed);
}

static void stop_pooled(struct im *im, struct server *s, const char *why)
{
	daemon_log(2, "GPU server %s: stopping (%s)", s->id, why);
	list_del(&s->link);
	s->part->pool_n--;
	close_fd(&s->cli_w); /* its client lifeline: it exits at once */
	close_fd(&s->ready_r);
	if (s->p.pid && !reaped(&s->p))
		kill(s->p.pid, SIGTERM);
	s->kill_stage = 1;
	s->kill_at = now_ns() + KILL_GRACE_NS;
	if (reaped(&s->p))
		list_add_tail(&s->link, &im->grave_srv);
	else
		list_add_tail(&s->link, &im->dying_srv);
}

/* A pooled server on @part failed (@why): count it, say so, and start the
 * next one later, twice as late each time. */
static void pool_failed(struct part *part, const char *why)
{
	size_t i;

	daemon_log(0, "a pre-initialized GPU server on %s failed: %s; retrying in %u ms",
		   *part->uuid ? part->uuid : "the default device", why,
		   part->pool_backoff_ms);
	part->pool_failures++;
	/* Shown by /v1/devices: printable ASCII only (the reason may quote
	 * a driver's message, and a cut one must not split a character). */
	for (i = 0; why[i] && i < sizeof(part->pool_error) - 1; i++)
		part->pool_error[i] = why[i] >= 0x20 && why[i] < 0x7f ? why[i] : '?';
	part->pool_error[i] = 0;
	part->pool_retry_ns = now_ns() + part->pool_backoff_ms * 1000000ull;
	part->pool_backoff_ms = part->pool_backoff_ms * 2 > POOL_BACKOFF_MAX_MS ?
				POOL_BACKOFF_MAX_MS : part->pool_backoff_ms * 2;
}

static void on_gpud_exit(struct im *im, struct server *s)
{
	s->p.exited = true;
	/* Its turn on the GPU, held or awaited, passes on. */
	if (s->part->arb)
		mig_arb_abandon(s->part->arb, s->num);
	if (!s->inst) {
		bool in_pool = s->kill_stage == 0;

		reap(im, &s->p);
		if (!reaped(&s->p)) {
			watch_rearm(im, s->p.pidfd, &s->w_pid);
			return;
		}
		if (in_pool) {
			char why[512];

			/* One that failed to start said why on its ready line,
			 * which may not have been read yet. */
			if (s->ready_r < 0 || server_ready_line(s, why, sizeof(why)) >= 0)
				snprintf(why, sizeof(why), "it exited unexpectedly (status %d)",
					 s->p.status);
			stop_pooled(im, s, "exited");
			pool_failed(s->part, why);
		} else {
			list_del(&s->link);
			list_add_tail(&s->link, &im->grave_srv);
		}
		return;
	}
	switch (s->inst->state) {
	case ST_IDLE:
		doom(im, s->inst, true, "its GPU server exited");
		break;
	case ST_DYING:
		reap(im, &s->p);
		if (!reaped(&s->p))
			watch_rearm(im, s->p.pidfd, &s->w_pid);
		maybe_finish(im, s->inst);
		break;
	default:
		break; /* its owner finds out */
	}
}

static void on_exec_exit(struct im *im, struct inst *in)
{
	in->p.exited = true;
	switch (in->state) {
	case ST_IDLE:
		doom(im, in, true, "its executor exited");
		break;
	case ST_DYING:
		reap(im, &in->p);
		if (!reaped(&in->p))
			watch_rearm(im, in->p.pidfd, &in->w_pid);
		maybe_finish(im, in);
		break;
	default:
		break;
	}
}

static void on_ready(struct im *im, struct server *s)
{
	char err[512];
	int rc;

	if (s->ready_r < 0 || s->inst)
		return;
	rc = server_ready_line(s, err, sizeof(err));
	if (rc == 0) {
		watch_rearm(im, s->ready_r, &s->w_ready);
		return;
	}
	if (rc > 0) {
		s->part->pool_backoff_ms = POOL_BACKOFF_MIN_MS;
		*s->part->pool_error = 0;
		daemon_log(2, "GPU server %s: ready (pre-initialized)", s->id);
		return;
	}
	stop_pooled(im, s, "failed");
	pool_failed(s->part, err);
}

/* Escalate the stops that are taking too long; returns the next deadline. */
static uint64_t escalate(struct im *im, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	struct list *l;

	for (l = im->dying.next; l != &im->dying; l = l->next) {
		struct inst *in = list_entry(l, struct inst, dying_link);

		if (in->kill_at <= now) {
			/* The container's processes first (OCI mode); the
			 * runtime itself if it still lives a grace period
			 * later. */
			if (in->p.pid && !reaped(&in->p) && in->kill_stage < 2)
				isolation_kill(&in->jail, in->p.pid);
			else if (in->p.pid && !reaped(&in->p))
				kill(in->p.pid, SIGKILL);
			if (in->srv && in->srv->p.pid && !reaped(&in->srv->p))
				kill(in->srv->p.pid, in->kill_stage ? SIGKILL : SIGTERM);
			in->kill_stage++;
			in->kill_at = now + KILL_GRACE_NS;
		}
		next = in->kill_at < next ? in->kill_at : next;
	}
	for (l = im->dying_srv.next; l != &im->dying_srv; l = l->next) {
		struct server *s = list_entry(l, struct server, link);

		if (s->kill_at <= now) {
			if (!reaped(&s->p))
				kill(s->p.pid, SIGKILL);
			s->kill_at = now + KILL_GRACE_NS;
		}
		next = s->kill_at < next ? s->kill_at : next;
	}
	return next;
}

/*
 * A holder of a partition's GPU (exclusive sharing models) that has not
 * given it back within sharing_max_hold_ms while others wait is hung (a
 * kernel that never ends, a server that stopped serving): its instance is
 * stopped, and its server's exit passes the turn on.
 */
static void stop_hung_holders(struct im *im, uint64_t now)
{
	uint64_t limit = (uint64_t)im->d->cfg.sharing_max_hold_ms * 1000000ull;
	struct list *l;

	if (!limit)
		return;
	for (int i = 0; i < im->nparts; i++) {
		struct mig_arbiter *a = im->parts[i]->arb;
		uint32_t holder;

		if (!a || !mig_sharing_exclusive((int)a->model) ||
		    !mig_arb_waiting(a) ||
		    !(holder = __atomic_load_n(&a->holder, __ATOMIC_RELAXED)) ||
		    now - a->grant_ns < limit)
			continue;
		for (l = im->insts.next; l != &im->insts; l = l->next) {
			struct inst *in = list_entry(l, struct inst, all_link);

			if (!in->srv || in->srv->num != holder ||
			    in->srv->part != im->parts[i] || in->state == ST_DYING)
				continue;
			daemon_log(0, "instance %s (function \"%s\") held the GPU of partition %s for %llu ms while %u waited: stopping it",
				   in->id, in->fn->name,
				   *im->parts[i]->uuid ? im->parts[i]->uuid : "(default)",
				   (unsigned long long)((now - a->grant_ns) / 1000000),
				   mig_arb_waiting(a));
			if (in->p.pid)
				isolation_kill(&in->jail, in->p.pid);
			if (in->srv->p.pid && !in->srv->p.exited)
				kill(in->srv->p.pid, SIGKILL);
			break;
		}
	}
}

/* Stop idle instances past their keep-alive; returns the next expiry. */
static uint64_t expire(struct im *im, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	for (int i = 0; i < im->nparts; i++) {
		struct list *l, *n;

		list_for_each_safe(l, n, &im->parts[i]->idle) {
			struct inst *in = list_entry(l, struct inst, part_link);

			/* An idle instance's function has no waiters to
			 * grow for, so nothing else leaves this list. */
			if (in->expire_ns <= now || im->stopping)
				doom_(im, in, false, "keep-alive expired", false);
			else if (in->expire_ns < next)
				next = in->expire_ns;
		}
	}
	return next;
}

/*
 * Keep pool_per_partition ready GPU servers on every present partition,
 * started with what cold starts there last asked for.  Drops the lock
 * while it starts processes.
 */
static void pool_fill(struct im *im, uint64_t now)
{
	struct mig_devices *dv = &im->d->devices;
	int want = im->d->cfg.pool_per_partition;

	for (int i = 0; i < im->nparts; i++) {
		struct part *part = im->parts[i];
		bool present;
		struct list *l, *n;

		free_mem(im, part, &present);
		list_for_each_safe(l, n, &part->pool) {
			struct server *s = list_entry(l, struct server, link);

			if (!present || im->stopping || want <= 0 ||
			    strcmp(s->kernels, part->pool_kernels))
				stop_pooled(im, s, "not needed any more");
		}
	}
	if (im->stopping || want <= 0)
		return;
	pthread_mutex_lock(&dv->lock);
	for (int i = 0; i < dv->n; i++)
		if (dv->p[i].present)
			part_get(im, dv->p[i].uuid);
	pthread_mutex_unlock(&dv->lock);

	for (int i = 0; i < im->nparts; i++) {
		struct part *part = im->parts[i];
		struct server *s;
		char err[512];
		bool present;
		int rc;

		free_mem(im, part, &present);
		if (!present || part->pool_n >= want || part->pool_retry_ns > now)
			continue;
		s = server_new(im, part, part->pool_kernels);
		if (!s)
			return;
		list_add_tail(&s->link, &part->pool);
		part->pool_n++;
		pthread_mutex_unlock(&im->lock);
		rc = server_launch(im, s, s->id, err, sizeof(err));
		pthread_mutex_lock(&im->lock);
		if (rc < 0) {
			list_del(&s->link);
			part->pool_n--;
			server_free(s);
			pool_failed(part, err);
			continue;
		}
		fcntl(s->ready_r, F_SETFL, O_NONBLOCK);
		watch_add(im, s->ready_r, &s->w_ready);
		i--; /* this partition may want more */
	}
}

/* --- pre-started sandboxes (supervisor thread) ----------------------------- */

/* A pooled keeper's process exited (or, taken, its instance's did). */
static void on_keeper_exit(struct im *im, struct keeper *k)
{
	if (k->inst) {
		/* Taken after this event was fetched: it is the instance's
		 * now, and so is the event. */
		watch_rearm(im, k->inst->p.pidfd, &k->inst->w_pid);
		return;
	}
	k->p.exited = true;
	reap(im, &k->p);
	if (!reaped(&k->p)) {
		watch_rearm(im, k->p.pidfd, &k->w);
		return;
	}
	if (!im->stopping)
		daemon_log(0, "instances: a pre-started sandbox exited with status %d before use (see the log above)",
			   k->p.status);
	list_del(&k->link);
	im->nkeepers--;
	close_fd(&k->sock);
	isolation_release(im->d, &k->jail);
	list_add_tail(&k->link, &im->grave_keepers);
	if (!im->stopping)
		im->keeper_retry_ns = now_ns() + POOL_BACKOFF_MIN_MS * 1000000ull;
	kick(im);
}

/* Keep isolation_pool_size() sandboxes started; let them go when
 * stopping (they exit when their socket closes). */
static void keeper_fill(struct im *im, uint64_t now)
{
	int want = im->stopping ? 0 : isolation_pool_size(im->d);
	struct list *l, *n;

	list_for_each_safe(l, n, &im->keepers) {
		struct keeper *k = list_entry(l, struct keeper, link);

		if (im->nkeepers > want && k->sock >= 0) {
			close_fd(&k->sock);
			want++; /* counted until it is reaped */
		}
	}
	while (im->nkeepers < want && now >= im->keeper_retry_ns) {
		struct keeper *k = calloc(1, sizeof(*k));
		struct spawn sp = { 0 };
		char id[32], err[512], **argv = NULL;
		int sv[2] = { -1, -1 }, rc;

		if (!k)
			return;
		k->sock = -1;
		k->p.pidfd = -1;
		k->w = (struct watch){ W_KEEPER, k };
		snprintf(id, sizeof(id), "k-%llu", (unsigned long long)++im->keeper_ids);
		list_add_tail(&k->link, &im->keepers);
		im->nkeepers++;
		pthread_mutex_unlock(&im->lock);
		rc = isolation_pool_prepare(im->d, id, &k->jail, &argv, err, sizeof(err));
		if (!rc && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
			rc = -errno;
			snprintf(err, sizeof(err), "socketpair: %s", strerror(errno));
		}
		if (!rc) {
			sp.path = argv[0];
			sp.argv = argv;
			sp.envp = environ;
			sp.fds[0] = sv[1];
			sp.nfds = 1;
			sp.p = &k->p;
			sp.w = &k->w;
			pthread_cond_init(&sp.cond, NULL);
			spawn_run(im, &sp);
			pthread_cond_destroy(&sp.cond);
			if ((rc = -sp.err))
				snprintf(err, sizeof(err), "cannot start %s: %s", argv[0],
					 strerror(sp.err));
			close(sv[1]);
		}
		for (char **x = argv; x && *x; x++)
			free(*x);
		free(argv);
		if (rc) {
			if (sv[0] >= 0)
				close(sv[0]);
			isolation_release(im->d, &k->jail);
		}
		pthread_mutex_lock(&im->lock);
		if (rc) {
			daemon_log(0, "instances: cannot pre-start a sandbox: %s", err);
			list_del(&k->link);
			im->nkeepers--;
			free(k);
			im->keeper_retry_ns = now_ns() + POOL_BACKOFF_MAX_MS * 1000000ull / 4;
			return;
		}
		k->sock = sv[0];
	}
}

/* The taker is done with @k (sent, or given up): freed after the
 * supervisor's batch, which may still hold an event of it. */
static void keeper_done(struct im *im, struct keeper *k)
{
	close_fd(&k->sock); /* an unsent keeper exits; its instance reaps it */
	pthread_mutex_lock(&im->lock);
	list_add_tail(&k->link, &im->grave_keepers);
	pthread_mutex_unlock(&im->lock);
}

/* Under im->lock: a pre-started sandbox for @in, whose executor it will
 * be (its process is in->p from now on), or NULL. */
static struct keeper *keeper_take(struct im *im, struct inst *in)
{
	struct list *l;

	for (l = im->keepers.next; l != &im->keepers; l = l->next) {
		struct keeper *k = list_entry(l, struct keeper, link);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT,
					  .data.ptr = &in->w_pid };

		if (k->p.exited || k->sock < 0 || k->p.pidfd < 0)
			continue;
		list_del(&k->link);
		im->nkeepers--;
		k->inst = in;
		in->jail = k->jail;
		memset(&k->jail, 0, sizeof(k->jail));
		in->p.pid = k->p.pid;
		in->p.pidfd = k->p.pidfd;
		epoll_ctl(im->epfd, EPOLL_CTL_MOD, in->p.pidfd, &ev);
		kick(im); /* refill */
		return k; /* the caller's until keeper_done() */
	}
	return NULL;
}

/*
 * Send @k what a spawn would have given it: the rest of its command line
 * (@argv[1]...), the executor's environment @envp, the executor's @fds and
 * @log for its stdout and stderr.  One message (sandbox/main.c,
 * receive_command()): "<number of arguments>", the arguments, the
 * environment, each NUL-terminated; the descriptors, @log last.
 */
static int keeper_send(struct keeper *k, char **argv, char **envp, const int *fds,
		       int nfds, int log)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(8 * sizeof(int))];
	} ctl;
	int all[8], nargs = 0;
	struct msghdr m = { 0 };
	struct iovec iov;
	struct cmsghdr *cm;
	size_t len = 0, off = 0;
	char count[16], *msg;
	ssize_t r;

	if (nfds + 1 > 8)
		return -EINVAL;
	for (char **a = argv + 1; *a; a++, nargs++)
		len += strlen(*a) + 1;
	for (char **e = envp; e && *e; e++)
		len += strlen(*e) + 1;
	snprintf(count, sizeof(count), "%d", nargs);
	len += strlen(count) + 1;
	msg = malloc(len);
	if (!msg)
		return -ENOMEM;
#define PUT(str) do { size_t n_ = strlen(str) + 1; memcpy(msg + off, (str), n_); off += n_; } while (0)
	PUT(count);
	for (char **a = argv + 1; *a; a++)
		PUT(*a);
	for (char **e = envp; e && *e; e++)
		PUT(*e);
#undef PUT
	memcpy(all, fds, (size_t)nfds * sizeof(int));
	all[nfds] = log;
	iov.iov_base = msg;
	iov.iov_len = len;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	memset(&ctl, 0, sizeof(ctl));
	m.msg_control = ctl.buf;
	m.msg_controllen = CMSG_SPACE((size_t)(nfds + 1) * sizeof(int));
	cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN((size_t)(nfds + 1) * sizeof(int));
	memcpy(CMSG_DATA(cm), all, (size_t)(nfds + 1) * sizeof(int));
	while ((r = sendmsg(k->sock, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	free(msg);
	return r == (ssize_t)len ? 0 : r < 0 ? -errno : -EIO;
}

static void bury(struct im *im)
{
	struct list *l, *n;

	list_for_each_safe(l, n, &im->grave_inst) {
		list_del(l);
		free(list_entry(l, struct inst, all_link));
	}
	list_for_each_safe(l, n, &im->grave_keepers) {
		list_del(l);
		free(list_entry(l, struct keeper, link));
	}
	list_for_each_safe(l, n, &im->grave_srv) {
		list_del(l);
		server_free(list_entry(l, struct server, link));
	}
}

static void run_spawns(struct im *im)
{
	struct spawn *sp;

	while ((sp = list_first(&im->spawnq, struct spawn, link))) {
		list_del(&sp->link);
		pthread_mutex_unlock(&im->lock);
		spawn_run(im, sp);
		pthread_mutex_lock(&im->lock);
	}
}

static bool all_stopped(struct im *im)
{
	return im->sup_exit && im->nprocs == 0 && list_empty(&im->insts) &&
	       list_empty(&im->spawnq);
}

static void *supervisor(void *arg)
{
	struct im *im = arg;
	struct epoll_event ev[64];
	sigset_t all;

	on_supervisor = true;
	/* Signals are for the daemon's main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&im->lock);
	for (;;) {
		uint64_t now = now_ns(), next, t;
		int n, ms;

		run_spawns(im);
		pool_fill(im, now);
		keeper_fill(im, now);
		next = now + SUP_MAX_SLEEP_NS;
		if (im->keeper_retry_ns > now && im->keeper_retry_ns < next)
			next = im->keeper_retry_ns;
		t = expire(im, now);
		next = t < next ? t : next;
		stop_hung_holders(im, now);
		t = escalate(im, now);
		next = t < next ? t : next;
		for (int i = 0; i < im->nparts; i++)
			if (im->parts[i]->pool_retry_ns > now &&
			    im->parts[i]->pool_retry_ns < next)
				next = im->parts[i]->pool_retry_ns;
		bury(im);
		if (all_stopped(im))
			break;
		im->sup_wake_ns = next;
		pthread_mutex_unlock(&im->lock);
		isolation_sweep(); /* cgroups whose processes were still exiting */

		ms = (int)((next - now + 999999) / 1000000);
		n = epoll_wait(im->epfd, ev, 64, ms);

		pthread_mutex_lock(&im->lock);
		for (int i = 0; i < n; i++) {
			struct watch *w = ev[i].data.ptr;
			uint64_t v;

			switch (w->kind) {
			case W_KICK:
				if (read(im->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					daemon_log(0, "instances: eventfd: %s", strerror(errno));
				watch_rearm(im, im->evfd, &im->w_kick);
				break;
			case W_EXEC:
				on_exec_exit(im, w->obj);
				break;
			case W_GPUD:
				on_gpud_exit(im, w->obj);
				break;
			case W_READY:
				on_ready(im, w->obj);
				break;
			case W_KEEPER:
				on_keeper_exit(im, w->obj);
				break;
			}
		}
	}
	im->sup_running = false;
	pthread_cond_broadcast(&im->changed);
	pthread_mutex_unlock(&im->lock);
	return NULL;
}

/* --- start and stop ------------------------------------------------------ */

/* The directory of this executable, for defaults of unset paths. */
static void self_dir(char *out, size_t n)
{
	ssize_t len = readlink("/proc/self/exe", out, n - 1);
	char *slash;

	out[len > 0 ? len : 0] = 0;
	slash = strrchr(out, '/');
	if (slash)
		*slash = 0;
}

static void canonical(char *path, size_t n)
{
	char real[PATH_MAX];

	if (realpath(path, real) && strlen(real) < n)
		memcpy(path, real, strlen(real) + 1);
}

static int find_programs(struct im *im)
{
	struct mig_config *cfg = &im->d->cfg;
	char self[PATH_MAX], bin[PATH_MAX];

	self_dir(self, sizeof(self));
	snprintf(bin, sizeof(bin), "%s", *cfg->bin_dir ? cfg->bin_dir : self);
	snprintf(im->gpud, sizeof(im->gpud), "%.*s/mig-gpud", PATH_MAX - 10, bin);
	snprintf(im->exec, sizeof(im->exec), "%.*s/mig-exec", PATH_MAX - 10, bin);
	if (*cfg->shim_dir)
		snprintf(im->shim_dir, sizeof(im->shim_dir), "%s", cfg->shim_dir);
	else
		snprintf(im->shim_dir, sizeof(im->shim_dir), "%.*s/../lib/shim",
			 PATH_MAX - 20, bin);
	if (*cfg->lib_dir)
		snprintf(im->lib_dir, sizeof(im->lib_dir), "%s", cfg->lib_dir);
	else
		snprintf(im->lib_dir, sizeof(im->lib_dir), "%.*s/../lib",
			 PATH_MAX - 20, bin);
	/* Canonical: a sandboxed executor sees these paths and nothing around
	 * them, so "bin/../lib" would not resolve in there. */
	canonical(im->shim_dir, sizeof(im->shim_dir));
	canonical(im->lib_dir, sizeof(im->lib_dir));
	snprintf(im->exec_lib, sizeof(im->exec_lib), "%s/libmig_exec.so", im->lib_dir);
	snprintf(im->pypath, sizeof(im->pypath), "%s/python", im->lib_dir);

	if (access(im->gpud, X_OK) || access(im->exec, X_OK)) {
		daemon_log(0, "instances: %s or %s is missing: build them (ninja -C build) or set bin_dir",
			   im->gpud, im->exec);
		return -1;
	}
	if (access(im->shim_dir, R_OK))
		daemon_log(0, "instances: the shim directory %s is missing: functions will not reach the GPU (set shim_dir)",
			   im->shim_dir);
	if (access(im->exec_lib, R_OK))
		daemon_log(0, "instances: %s is missing: Python functions will fail (set lib_dir)",
			   im->exec_lib);
	return 0;
}

/* Release everything but the lock and flags, which late callers read. */
static void im_release(struct im *im)
{
	close_fd(&im->epfd);
	close_fd(&im->evfd);
	for (int i = 0; i < im->nparts; i++) {
		free(im->parts[i]->pool_kernels);
		if (im->parts[i]->arb)
			munmap(im->parts[i]->arb, sizeof(*im->parts[i]->arb));
		close_fd(&im->parts[i]->arb_fd);
		free(im->parts[i]);
	}
	free(im->parts);
	im->parts = NULL;
	im->nparts = 0;
	free(im->base_kernels);
	im->base_kernels = NULL;
}

static void im_free(struct im *im)
{
	im_release(im);
	pthread_mutex_destroy(&im->lock);
	pthread_cond_destroy(&im->changed);
	pthread_condattr_destroy(&im->cattr);
	free(im);
}

/* --- the lukewarm policy ------------------------------------------------- */

/* Bytes of host memory lukewarm instances may hold, node-wide. */
static uint64_t lukewarm_limit(const struct mig_config *c)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

	if (c->lukewarm_host_memory)
		return c->lukewarm_host_memory;
	return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz / 4 : 0;
}

/*
 * Host memory of swaps, node-wide: every server's pinned pool (a lukewarm
 * instance's holds its memory; a warm one's is kept for its next swap).
 * Over lukewarm.host_memory: the pools of instances not swapped out are
 * freed first (their next swap pins one again), least recently used
 * first; then the least recently used lukewarm instances are stopped.
 * Under the lock.
 */
static void enforce_lukewarm_limit(struct im *im)
{
	uint64_t limit = lukewarm_limit(&im->d->cfg), total;

	for (;;) {
		struct inst *pool = NULL, *lru = NULL;
		struct list *l;

		total = 0;
		for (l = im->insts.next; l != &im->insts; l = l->next) {
			struct inst *in = list_entry(l, struct inst, all_link);

			if (in->state == ST_DYING)
				continue;
			total += in->pool_bytes;
			if (!in->swapped && !in->swapping && in->pool_bytes && in->srv &&
			    in->srv->ctl_w >= 0 &&
			    (!pool || in->last_used_ns < pool->last_used_ns))
				pool = in;
			if (in->swapped && in->state == ST_IDLE && !in->swapping &&
			    (!lru || in->last_used_ns < lru->last_used_ns))
				lru = in;
		}
		if (total <= limit)
			return;
		if (pool) {
			struct mig_ctl_hdr h = { .magic = MIG_CTL_MAGIC,
						 .type = MIG_CTL_SWAP_POOL_FREE };

			daemon_log(1, "swap pools hold %.1f MiB of host memory, over the limit of %.1f MiB: instance %s frees its %.1f MiB",
				   total / 1048576.0, limit / 1048576.0, pool->id,
				   pool->pool_bytes / 1048576.0);
			send(pool->srv->ctl_w, &h, sizeof(h), MSG_NOSIGNAL | MSG_DONTWAIT);
			pool->pool_bytes = 0;
			im->swaps.pools_freed++;
			continue;
		}
		if (!lru)
			return;
		daemon_log(0, "lukewarm instances hold %.1f MiB of host memory, over the limit of %.1f MiB: stopping %s (function \"%s\"), the least recently used",
			   total / 1048576.0, limit / 1048576.0, lru->id, lru->fn->name);
		lru->swapped = false; /* its memory goes with it */
		im->swaps.stopped++;
		doom(im, lru, true, "lukewarm host memory limit");
	}
}

/*
 * Swap out one instance evict() picked to make room on its partition (under
 * the lock, dropped meanwhile); one that could not be swapped is stopped
 * instead.  false: none was waiting.
 */
static bool swap_for_room(struct im *im)
{
	struct mig_swap_report rep;
	struct inst *pick = NULL, *in;
	struct part *part;
	char id[24], err[300] = "";
	uint64_t mem;
	struct list *l;
	int rc;

	for (l = im->insts.next; l != &im->insts && !pick; l = l->next) {
		in = list_entry(l, struct inst, all_link);
		if (in->pressure_mem)
			pick = in;
	}
	if (!pick)
		return false;
	snprintf(id, sizeof(id), "%s", pick->id);
	part = pick->part;
	mem = pick->pressure_mem;
	pthread_mutex_unlock(&im->lock);
	rc = instances_swap(im->d, NULL, id, true, &rep, err, sizeof(err));
	pthread_mutex_lock(&im->lock);
	in = inst_by_id(im, id);
	if (in && in->pressure_mem) { /* (doom_ took it back otherwise) */
		part->swapping_mem -= mem;
		in->pressure_mem = 0;
		if (rc && in->state == ST_IDLE)
			doom_(im, in, false, "its memory is needed and it could not be swapped out",
			      false);
	}
	if (rc && rc != -EBUSY)
		daemon_log(1, "lukewarm: making room: %s", err);
	else if (!rc)
		daemon_log(2, "instance %s swapped out to make room on its partition", id);
	serve_room(im, part);
	enforce_lukewarm_limit(im);
	return true;
}

/*
 * The swapper thread: instances evict() picked to make room are swapped
 * out first, at once; then an instance idle for lukewarm.swap_after_ms has
 * its GPU memory swapped to host memory (one at a time, the longest idle
 * first); after each, the node-wide limit is enforced.  A swap never runs on an
 * invocation's path.
 */
static void *swapper(void *arg)
{
	struct im *im = arg;
	const struct mig_config *c = &im->d->cfg;

	pthread_mutex_lock(&im->lock);
	while (!im->stopping) {
		uint64_t now = now_ns(), after = (uint64_t)c->lukewarm_after_ms * 1000000ull;
		struct inst *pick = NULL;
		struct mig_swap_report rep;
		struct timespec ts;
		char id[24], err[300];
		struct list *l;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 100000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (!swap_for_room(im))
			pthread_cond_timedwait(&im->swapper_wake, &im->lock, &ts);
		if (im->stopping || !after)
			continue;
		for (l = im->insts.next; l != &im->insts; l = l->next) {
			struct inst *in = list_entry(l, struct inst, all_link);

			if (in->state != ST_IDLE || in->swapped || in->swapping ||
			    in->killed || now - in->last_used_ns < after)
				continue;
			if (!pick || in->last_used_ns < pick->last_used_ns)
				pick = in;
		}
		if (!pick)
			continue;
		snprintf(id, sizeof(id), "%s", pick->id);
		pthread_mutex_unlock(&im->lock);
		if (instances_swap(im->d, NULL, id, true, &rep, err, sizeof(err)) &&
		    *err)
			daemon_log(1, "lukewarm: %s", err);
		pthread_mutex_lock(&im->lock);
		enforce_lukewarm_limit(im);
	}
	pthread_mutex_unlock(&im->lock);
	return NULL;
}

int instances_init(struct mig_daemon *d)
{
	struct im *im = calloc(1, sizeof(*im));
	const char *k = getenv("MIG_HOST_KERNELS");

	if (!im)
		return -1;
	im->d = d;
	im->epfd = im->evfd = -1;
	pthread_mutex_init(&im->lock, NULL);
	/* Deadlines are CLOCK_MONOTONIC like everything here. */
	pthread_condattr_init(&im->cattr);
	pthread_condattr_setclock(&im->cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&im->changed, &im->cattr);
	list_init(&im->insts);
	list_init(&im->dying);
	list_init(&im->dying_srv);
	list_init(&im->spawnq);
	list_init(&im->grave_inst);
	list_init(&im->grave_srv);
	list_init(&im->keepers);
	list_init(&im->grave_keepers);
	im->base_kernels = strdup(k ? k : "");
	/* Spinning pays only while CPUs are left over for the executors. */
	im->spin_max = (int)(sysconf(_SC_NPROCESSORS_ONLN) / 4);
	if (im->spin_max < 1)
		im->spin_max = 1;
	im->epfd = epoll_create1(EPOLL_CLOEXEC);
	im->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!im->base_kernels || im->epfd < 0 || im->evfd < 0) {
		daemon_log(0, "instances: cannot set up: %s", strerror(errno));
		im_free(im);
		return -1;
	}
	if (find_programs(im) < 0) {
		im_free(im);
		return -1;
	}
	{
		char bin[PATH_MAX], err[512];

		snprintf(bin, sizeof(bin), "%s", im->exec);
		*strrchr(bin, '/') = 0;
		if (isolation_init(d, bin, im->shim_dir, err, sizeof(err))) {
			daemon_log(0, "%s", err);
			isolation_shutdown(d);
			im_free(im);
			return -1;
		}
	}
	im->w_kick = (struct watch){ W_KICK, im };
	watch_add(im, im->evfd, &im->w_kick);
	im->sup_wake_ns = UINT64_MAX;
	im->sup_running = true;
	if (pthread_create(&im->sup, NULL, supervisor, im)) {
		daemon_log(0, "instances: cannot start the supervisor thread");
		im_free(im);
		return -1;
	}
	pthread_cond_init(&im->swapper_wake, &im->cattr);
	im->swapper_running = !pthread_create(&im->swapper, NULL, swapper, im);
	if (!im->swapper_running)
		daemon_log(0, "instances: cannot start the swapper thread: idle instances stay warm");
	d->instances = im;
	return 0;
}

void instances_shutdown(struct mig_daemon *d)
{
	struct im *im = d->instances;
	struct list *l, *n;

	if (!im)
		return;
	pthread_mutex_lock(&im->lock);
	if (im->sup_exit) { /* a second call */
		pthread_mutex_unlock(&im->lock);
		return;
	}
	im->stopping = true;
	while (im->inflight > 0)
		pthread_cond_wait(&im->changed, &im->lock);
	list_for_each_safe(l, n, &im->insts) {
		struct inst *in = list_entry(l, struct inst, all_link);

		if (in->state == ST_IDLE)
			doom_(im, in, false, "the daemon is stopping", false);
	}
	im->sup_exit = true;
	kick(im);
	pthread_cond_broadcast(&im->swapper_wake);
	pthread_mutex_unlock(&im->lock);
	if (im->swapper_running)
		pthread_join(im->swapper, NULL);
	pthread_join(im->sup, NULL);
	daemon_log(1, "instances: every executor and GPU server stopped");
	/* Invocations that arrive now (the HTTP server may still be up) find
	 * im->stopping and get 503: keep the core, release the rest. */
	pthread_mutex_lock(&im->lock);
	im_release(im);
	pthread_mutex_unlock(&im->lock);
	isolation_shutdown(d);
}
