/*
 * sandbox.h - mig-sandbox, the built-in sandbox an executor runs in.
 *
 *   main.c     the command line, the process tree, signals, exit status
 *   rootfs.c   the file system the function sees
 *   seccomp.c  the system-call filter (sandbox/denied_syscalls.h)
 *
 * Process tree (every arrow is a fork; the daemon supervises the first):
 *
 *   mignificentd -> mig-sandbox (the "keeper": stays outside, mirrors the
 *                   executor's exit status, forwards signals)
 *                -> init (pid 1 of the new pid namespace: builds the file
 *                   system as root, drops to the function's uid in a user
 *                   namespace of its own, loads the filter, reaps)
 *                -> the executor (pid 2), exec'ed unprivileged.
 *
 * The keeper's death (the daemon's SIGKILL) kills init (PDEATHSIG), and
 * init's death kills everything in its pid namespace: one kill, nothing
 * left behind.
 */
#ifndef MIG_SANDBOX_H
#define MIG_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sock_filter;

struct sandbox_opts {
	const char *root;        /* empty directory to build the root on */
	uid_t uid;               /* host ids of the function */
	gid_t gid;
	const char **ro;         /* host paths shown read-only, same place */
	int nro;
	const char **hide;       /* host paths shown empty */
	int nhide;
	const char **cgroups;    /* cgroup directories to join */
	int ncgroups;
	int ncgroups_joined;
	uint64_t tmp_bytes;      /* size of the private /tmp */
	bool network;            /* keep the host's network */
	const char *cwd;
	const char *hostname;
	int nfds;                /* fds 3..3+nfds-1 go to the executor */
	bool pooled;             /* the rest of the command line comes on fd 3 */
	const char *cpus;        /* CPU list the executor runs on (NULL: any) */
	char **argv;             /* the executor */
};

/* uid and gid the function has inside its user namespace. */
#define SANDBOX_INNER_ID 1000

/* rootfs.c: build the root at o->root, pivot into it, mask o->hide.
 * Runs in init, as root, in the new mount namespace.  0, or -errno with
 * @err saying which step failed. */
int sandbox_rootfs(const struct sandbox_opts *o, char *err, size_t errlen);

/* seccomp.c: the filter as BPF, built before it is needed. */
struct sandbox_filter {
	struct sock_filter *insns;
	unsigned short len;
};
/* Build it (libseccomp).  0, or -errno with @err. */
int sandbox_seccomp_compile(struct sandbox_filter *f, char *err, size_t errlen);
/* Install it on the calling thread (sets no_new_privs).  0, or -errno. */
int sandbox_seccomp_install(const struct sandbox_filter *f, char *err, size_t errlen);

#endif /* MIG_SANDBOX_H */
