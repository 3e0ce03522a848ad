/*
 * seccomp.c - the system-call filter of the built-in sandbox.
 *
 * What is denied, and why, is in denied_syscalls.h (shared with the OCI
 * configuration of daemon/oci.c).  libseccomp builds the BPF program for
 * the native architecture and, since a 64-bit process can also enter the
 * kernel through the 32-bit ABIs, for those as well: a call the filter
 * does not know for an architecture it did not list is killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "denied_syscalls.h"
#include "sandbox.h"

static int fail(char *err, size_t errlen, int rc, const char *what)
{
	snprintf(err, errlen, "seccomp: %s: %s", what, strerror(-rc));
	return rc;
}

/*
 * Build the filter and compile it to BPF (through a memfd: libseccomp
 * 2.5 exports to a file descriptor only), so that the slow part happens
 * before the function is known (a pooled keeper waiting for its command)
 * and init only has to install it.
 */
int sandbox_seccomp_compile(struct sandbox_filter *f, char *err, size_t errlen)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	struct stat st;
	int rc = 0, fd = -1;

	if (!ctx)
		return fail(err, errlen, -ENOMEM, "seccomp_init");
	/* A binary tree over the call numbers: a function's every system
	 * call pays a few comparisons, not one per denied call. */
	seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	/* x86-64 processes can make x32 and i386 system calls too. */
#if defined(__x86_64__)
	if ((rc = seccomp_arch_add(ctx, SCMP_ARCH_X86)) && rc != -EEXIST)
		goto out_fail;
	if ((rc = seccomp_arch_add(ctx, SCMP_ARCH_X32)) && rc != -EEXIST)
		goto out_fail;
#endif
	for (int i = 0; mig_denied_syscalls[i]; i++) {
		int nr = seccomp_syscall_resolve_name(mig_denied_syscalls[i]);

		if (nr == __NR_SCMP_ERROR)
			continue; /* not a call of this kernel ABI */
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (rc && rc != -EDOM) /* -EDOM: not on some arch */
			goto out_fail;
	}
	/* New namespaces only through clone() flags, which the filter can
	 * see: one rule per flag, since a rule compares one masked value. */
	for (int bit = 0; bit < 64; bit++) {
		uint64_t flag = 1ull << bit;

		if (!(MIG_CLONE_NS_FLAGS & flag))
			continue;
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone),
				      1, SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
		if (rc)
			goto out_fail;
	}
	/* clone3 passes its flags in memory: say it does not exist, and the
	 * C library falls back to clone(). */
	rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (rc && rc != -EDOM)
		goto out_fail;
	fd = memfd_create("mig-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out_fail;
	}
	if ((rc = seccomp_export_bpf(ctx, fd)))
		goto out_fail;
	if (fstat(fd, &st) || st.st_size <= 0 ||
	    st.st_size % (off_t)sizeof(struct sock_filter) ||
	    st.st_size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
		rc = -EINVAL;
		goto out_fail;
	}
	f->len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
	f->insns = malloc((size_t)st.st_size);
	if (!f->insns) {
		rc = -ENOMEM;
		goto out_fail;
	}
	if (pread(fd, f->insns, (size_t)st.st_size, 0) != st.st_size) {
		rc = -EIO;
		free(f->insns);
		f->insns = NULL;
		goto out_fail;
	}
	goto out;
out_fail:
	fail(err, errlen, rc, "building the filter");
out:
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return rc;
}

int sandbox_seccomp_install(const struct sandbox_filter *f, char *err, size_t errlen)
{
	struct sock_fprog prog = { .len = f->len, .filter = f->insns };

	/* no_new_privs is what lets an unprivileged process install a
	 * filter, and keeps set-uid files powerless. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return fail(err, errlen, -errno, "no_new_privs");
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return fail(err, errlen, -errno, "installing the filter");
	return 0;
}
