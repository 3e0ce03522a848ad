/*
 * denied_syscalls.h - what a function may never ask the kernel for.
 *
 * One list for both ways of isolating an executor: the built-in sandbox
 * (sandbox/seccomp.c loads it through libseccomp) and OCI runtime mode
 * (daemon/oci.c writes it into config.json's linux.seccomp).  Every call
 * here fails with EPERM; everything else is allowed (a deny list: Python,
 * PyTorch and the CUDA runtime use a wide and changing set of calls, and
 * namespaces, the read-only file system and the cgroup already bound what
 * the rest can reach).
 *
 * Why each group: debugging another process (ptrace, process_vm_*,
 * kcmp, pidfd_getfd), changing the mount table or namespaces (mount and
 * the new mount API, pivot_root, chroot, unshare, setns), the kernel
 * itself (modules, kexec, bpf, perf events, keyrings, swap, reboot, clocks,
 * syslog, quotas, accounting, raw I/O ports), handles that bypass path
 * checks (open_by_handle_at), userfaultfd (a classic exploit aid),
 * and io_uring (a large and frequently exploited attack
 * surface).
 *
 * clone() with any namespace flag is denied separately (the flags are an
 * argument); clone3() fails with ENOSYS so that the C library falls back
 * to clone(), whose flags a filter can see.
 */
#ifndef MIG_DENIED_SYSCALLS_H
#define MIG_DENIED_SYSCALLS_H

static const char *const mig_denied_syscalls[] = {
	/* other processes */
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
	"pidfd_getfd",
	/* mounts and namespaces */
	"mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
	"fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
	"mount_setattr",
	/* the kernel */
	"init_module", "finit_module", "delete_module", "kexec_load",
	"kexec_file_load", "bpf", "perf_event_open", "add_key", "request_key",
	"keyctl", "swapon", "swapoff", "reboot", "settimeofday",
	"clock_settime", "clock_adjtime", "adjtimex", "syslog", "quotactl",
	"quotactl_fd", "acct", "iopl", "ioperm", "lookup_dcookie", "vhangup",
	"sethostname", "setdomainname", "fanotify_init",
	/* path checks and exploit aids */
	"open_by_handle_at", "name_to_handle_at", "userfaultfd",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"uselib",
	NULL,
};

/* Namespace flags of clone(2) (CLONE_NEWNS | CLONE_NEWCGROUP | NEWUTS |
 * NEWIPC | NEWUSER | NEWPID | NEWNET): a clone asking for any is denied. */
#define MIG_CLONE_NS_FLAGS 0x7E020000ull

#endif /* MIG_DENIED_SYSCALLS_H */
