/*
 * mig_exec.h - libmig_exec, the executor's end of the control channel
 * (ipc/control.h).
 *
 * An executor is started by the node daemon with its end of the control
 * socketpair in MIG_CONTROL_FD.  It loads the function, says READY, then
 * answers each INVOKE with one RESULT, ERROR or FAILED frame until SHUTDOWN
 * or until the daemon closes the channel.  mig-exec (C functions) and the
 * Python executor (python/mignificent/executor.py, through ctypes) share
 * this library, so there is one implementation of the frames.
 *
 * One channel per process; the calls are not thread-safe.  Every function
 * returns 0 (or 1, see mig_exec_next) on success and -errno on failure.
 */
#ifndef MIG_EXEC_H
#define MIG_EXEC_H

#include <stddef.h>
#include <stdint.h>

#define MIG_EXEC_API __attribute__((visibility("default")))

/*
 * mig_exec_open - take the channel from MIG_CONTROL_FD (and unset it, so
 * the function's children do not inherit it), and ask for SIGKILL should
 * the daemon die.  -EBADF when this process was not started by the daemon.
 * MIG_EXEC_POLL_US (the node's executor_poll_us; unset too): how long
 * mig_exec_next() polls for the next invocation before it sleeps.
 */
MIG_EXEC_API int mig_exec_open(void);

/* mig_exec_ready - the function is loaded and initialized. */
MIG_EXEC_API int mig_exec_ready(void);

/*
 * mig_exec_next - wait for the next invocation (polling first, yielding
 * the CPU, for up to MIG_EXEC_POLL_US).  Returns 1 with *@id, the
 * request body (*@data, *@len; followed by a NUL byte that is not counted,
 * valid until the next call) and its content type (@ctype, 64 bytes), or 0
 * when the daemon asked us to stop or closed the channel, or -EPROTO when
 * the daemon sent something we do not understand.
 */
MIG_EXEC_API int mig_exec_next(uint64_t *id, const void **data, uint64_t *len,
			       char *ctype);

/* mig_exec_result - the handler of invocation @id returned @status. */
MIG_EXEC_API int mig_exec_result(uint64_t id, int status, const void *data,
				 uint64_t len, const char *ctype);

/*
 * mig_exec_error - invocation @id failed for reason @fault (enum
 * mig_ctl_fault), described by @msg; the executor stays usable.
 */
MIG_EXEC_API int mig_exec_error(uint64_t id, int fault, const char *msg);

/*
 * mig_exec_fail - the executor cannot go on (@fault, @msg); the caller
 * exits after this.
 */
MIG_EXEC_API int mig_exec_fail(int fault, const char *msg);

/*
 * mig_exec_gpu_check - after a failed invocation: is the GPU context of
 * this process still usable?  Returns 0 if so (or if the process never
 * used CUDA), else MIG_CTL_FAULT_GPU (a sticky error such as an illegal
 * address: every later call would fail too) or MIG_CTL_FAULT_GPU_GONE (the
 * GPU server is gone), with a description in @msg.
 */
MIG_EXEC_API int mig_exec_gpu_check(char *msg, size_t msglen);
/* GPU out-of-memory answers the function got so far (see mignificent.h). */
MIG_EXEC_API unsigned long mig_exec_oom_count(void);

#endif /* MIG_EXEC_H */
