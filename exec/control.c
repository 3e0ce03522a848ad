/*
 * control.c - libmig_exec: the executor's end of the control channel.
 *
 * Frames are a struct mig_ctl_hdr and @len bytes (ipc/control.h).  We read
 * through one buffer that grows to the largest frame seen, so a warm
 * invocation costs one recv() and one sendmsg() and no allocation.  The
 * daemon is trusted more than the function but still checked: a frame with
 * a bad magic, type or length ends the executor rather than being guessed
 * at.
 */
#define _GNU_SOURCE
#include <cuda.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <linux/close_range.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "mig_exec.h"

#define RX_INITIAL (64u << 10)

static int ctl_fd = -1;
static uint8_t *rx;       /* frames as received */
static size_t rx_cap;     /* bytes allocated */
static size_t rx_start;   /* first byte of the unconsumed data */
static size_t rx_end;     /* one past the last received byte */
static uint64_t poll_ns;  /* MIG_EXEC_POLL_US: how long to poll for the next invocation */

MIG_EXEC_API int mig_exec_open(void)
{
	const char *s = getenv("MIG_CONTROL_FD");
	char *end;
	long fd;

	if (!s || !*s)
		return -EBADF;
	errno = 0;
	fd = strtol(s, &end, 10);
	if (errno || *end || fd < 0 || fd > 1 << 20 ||
	    fcntl((int)fd, F_GETFD) < 0)
		return -EBADF;
	ctl_fd = (int)fd;
	/*
	 * The function's own children must not inherit the channel, the
	 * segment or the lifelines: a child holding the client lifeline would
	 * keep the GPU server waiting for a client that is gone.  This process
	 * keeps using them; only exec() drops them.
	 */
	if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC))
		for (int i = 3; i < 64; i++)
			fcntl(i, F_SETFD, FD_CLOEXEC);
	unsetenv("MIG_CONTROL_FD");
	s = getenv("MIG_EXEC_POLL_US");
	if (s && *s) {
		unsigned long us = strtoul(s, &end, 10);

		if (!*end && us <= MIG_EXEC_POLL_US_MAX)
			poll_ns = (uint64_t)us * 1000;
	}
	unsetenv("MIG_EXEC_POLL_US");
	/* Never outlive the daemon, even inside a handler that never returns. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	rx = malloc(RX_INITIAL + 1);
	if (!rx)
		return -ENOMEM;
	rx_cap = RX_INITIAL;
	return 0;
}

/* Send one frame: header and body in one sendmsg() where the socket takes it. */
static int send_frame(uint16_t type, uint64_t id, int32_t status,
		      const void *body, uint64_t len, const char *aux)
{
	struct mig_ctl_hdr h = {
		.magic = MIG_CTL_MAGIC,
		.type = type,
		.id = id,
		.status = status,
		.len = (uint32_t)len,
	};
	struct iovec iov[2] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = (void *)body, .iov_len = body ? len : 0 },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };

	if (ctl_fd < 0)
		return -EBADF;
	if (len > MIG_CTL_MAX_BODY)
		return -EMSGSIZE;
	if (!body)
		h.len = 0;
	if (aux)
		snprintf(h.aux, sizeof(h.aux), "%s", aux);
	while (msg.msg_iovlen) {
		ssize_t n = sendmsg(ctl_fd, &msg, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
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

MIG_EXEC_API int mig_exec_ready(void)
{
	return send_frame(MIG_CTL_READY, 0, 0, NULL, 0, NULL);
}

MIG_EXEC_API int mig_exec_result(uint64_t id, int status, const void *data,
				 uint64_t len, const char *ctype)
{
	return send_frame(MIG_CTL_RESULT, id, status, data, len,
			  ctype && *ctype ? ctype : "application/octet-stream");
}

MIG_EXEC_API int mig_exec_error(uint64_t id, int fault, const char *msg)
{
	return send_frame(MIG_CTL_ERROR, id, fault, msg, msg ? strlen(msg) : 0,
			  "text/plain");
}

MIG_EXEC_API int mig_exec_fail(int fault, const char *msg)
{
	return send_frame(MIG_CTL_FAILED, 0, fault, msg, msg ? strlen(msg) : 0,
			  "text/plain");
}

/* Make room for @need bytes from rx_start; keeps what was received. */
static int rx_reserve(size_t need)
{
	uint8_t *p;

	if (rx_start && rx_start == rx_end)
		rx_start = rx_end = 0;
	if (rx_start + need <= rx_cap)
		return 0;
	if (rx_start) {
		memmove(rx, rx + rx_start, rx_end - rx_start);
		rx_end -= rx_start;
		rx_start = 0;
		if (need <= rx_cap)
			return 0;
	}
	p = realloc(rx, need + 1); /* +1: the NUL after a body */
	if (!p)
		return -ENOMEM;
	rx = p;
	rx_cap = need;
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Wait up to poll_ns for the next invocation's first bytes without
 * sleeping, yielding the CPU to any other runnable thread in between.
 * A process that sleeps between requests starts each one slower than one
 * that never stops: its CPU went idle (in a VM the virtual CPU halts)
 * and comes back with cold caches and predictors; measured on the H200
 * machine and on a CI-class VM alike (docs/benchmarks.md).  When the
 * next request comes within the window, as under a steady stream of
 * them, the function never leaves its CPU; when it does not, the poll
 * costs at most the window once, yielding to any other runnable thread
 * throughout it.
 */
static void rx_poll(void)
{
	uint64_t until = now_ns() + poll_ns;

	do {
		ssize_t n = recv(ctl_fd, rx + rx_end, rx_cap - rx_end, MSG_DONTWAIT);

		if (n > 0) {
			rx_end += (size_t)n;
			return;
		}
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			return; /* the blocking receive sees it again and says it */
		sched_yield();
	} while (now_ns() < until);
}

/* Receive until @need bytes are buffered, polling first if @poll.  0, or
 * -errno (-EPIPE at EOF). */
static int rx_fill(size_t need, bool poll)
{
	int r = rx_reserve(need);

	if (r)
		return r;
	if (poll && poll_ns && rx_end - rx_start < need)
		rx_poll();
	while (rx_end - rx_start < need) {
		ssize_t n = recv(ctl_fd, rx + rx_end, rx_cap - rx_end, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		rx_end += (size_t)n;
	}
	return 0;
}

MIG_EXEC_API int mig_exec_next(uint64_t *id, const void **data, uint64_t *len,
			       char *ctype)
{
	struct mig_ctl_hdr h;
	int r;

	if (ctl_fd < 0)
		return -EBADF;
	r = rx_fill(sizeof(h), true);
	if (r)
		return r == -EPIPE ? 0 : r;
	memcpy(&h, rx + rx_start, sizeof(h));
	if (h.magic != MIG_CTL_MAGIC || h.len > MIG_CTL_MAX_BODY)
		return -EPROTO;
	if (h.type == MIG_CTL_SHUTDOWN)
		return 0;
	if (h.type != MIG_CTL_INVOKE)
		return -EPROTO;
	r = rx_fill(sizeof(h) + h.len, false);
	if (r)
		return r == -EPIPE ? 0 : r;
	rx_start += sizeof(h);
	*data = rx + rx_start;
	*len = h.len;
	*id = h.id;
	rx_start += h.len;
	/* A NUL after the body lets handlers treat text as a C string.  The
	 * byte it overwrites (the start of a next frame) never exists: the
	 * daemon sends one INVOKE and waits for our answer. */
	if (rx_start == rx_end)
		rx[rx_start] = 0;
	else
		return -EPROTO;
	if (ctype) {
		memcpy(ctype, h.aux, sizeof(h.aux));
		ctype[sizeof(h.aux) - 1] = 0;
	}
	return 1;
}

/* Errors after which a CUDA context is unusable (the driver's "sticky"). */
static int is_sticky(CUresult r)
{
	switch (r) {
	case CUDA_ERROR_ILLEGAL_ADDRESS:
	case CUDA_ERROR_LAUNCH_TIMEOUT:
	case CUDA_ERROR_HARDWARE_STACK_ERROR:
	case CUDA_ERROR_ILLEGAL_INSTRUCTION:
	case CUDA_ERROR_MISALIGNED_ADDRESS:
	case CUDA_ERROR_INVALID_ADDRESS_SPACE:
	case CUDA_ERROR_INVALID_PC:
	case CUDA_ERROR_LAUNCH_FAILED:
	case CUDA_ERROR_ECC_UNCORRECTABLE:
	case CUDA_ERROR_CONTEXT_IS_DESTROYED:
		return 1;
	default:
		return 0;
	}
}

/*
 * The shim's count of GPU out-of-memory answers, or 0 when the function
 * never loaded the driver (our shim).  Compared around an invocation.
 */
MIG_EXEC_API unsigned long mig_exec_oom_count(void)
{
	unsigned long (*count)(void);
	unsigned long n = 0;
	void *dl = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);

	if (!dl)
		return 0;
	count = (unsigned long (*)(void))dlsym(dl, "mignificent_gpu_oom_count");
	if (count)
		n = count();
	dlclose(dl);
	return n;
}

MIG_EXEC_API int mig_exec_gpu_check(char *msg, size_t msglen)
{
	CUresult (*get_current)(CUcontext *);
	CUresult (*sync)(void);
	CUresult (*err_name)(CUresult, const char **);
	CUresult (*err_string)(CUresult, const char **);
	const char *name = NULL, *text = NULL;
	CUcontext ctx = NULL;
	CUresult r;
	void *dl;

	if (msglen)
		*msg = 0;
	/* Only if the function loaded the driver (our shim) at all. */
	dl = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
	if (!dl)
		return 0;
	get_current = (CUresult(*)(CUcontext *))dlsym(dl, "cuCtxGetCurrent");
	sync = (CUresult(*)(void))dlsym(dl, "cuCtxSynchronize");
	err_name = (CUresult(*)(CUresult, const char **))dlsym(dl, "cuGetErrorName");
	err_string = (CUresult(*)(CUresult, const char **))dlsym(dl, "cuGetErrorString");
	if (!get_current || !sync || get_current(&ctx) != CUDA_SUCCESS || !ctx) {
		dlclose(dl);
		return 0;
	}
	r = sync();
	if (r != CUDA_ERROR_DEVICE_UNAVAILABLE && !is_sticky(r)) {
		dlclose(dl);
		return 0;
	}
	if (err_name)
		err_name(r, &name);
	if (err_string)
		err_string(r, &text);
	snprintf(msg, msglen, "%s (%d)%s%s", name ? name : "CUDA error", (int)r,
		 text ? ": " : "", text ? text : "");
	dlclose(dl);
	return r == CUDA_ERROR_DEVICE_UNAVAILABLE ? MIG_CTL_FAULT_GPU_GONE :
						    MIG_CTL_FAULT_GPU;
}
