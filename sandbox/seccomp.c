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
#include <seccomp.h>
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

int sandbox_seccomp(char *err, size_t errlen)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int rc = 0;

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
	/* no_new_privs (libseccomp's default) is what lets an unprivileged
	 * process load a filter, and keeps set-uid files powerless. */
	rc = seccomp_load(ctx);
	if (rc)
		goto out_fail;
	goto out;
out_fail:
	fail(err, errlen, rc, "building the filter");
out:
	seccomp_release(ctx);
	return rc;
}
