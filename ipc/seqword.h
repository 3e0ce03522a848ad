/*
 * seqword.h - memory ordering, futexes and publishing for the shared words
 * of the call channel (the client's spin-then-sleep wait on them is
 * shim_wait_server() in shim/channel.c; the server's, on its doorbell and
 * the arbiter, are in gpud/server.c and ipc/arbiter.c).
 *
 * Rule (as in liburing's barrier.h): a producer writes its data, then
 * publishes with mig_store_release(); a consumer reads the published word
 * with mig_load_acquire() and only then reads the data.  Sleeping uses a
 * shared (not private) futex, since the peer is another process.
 */
#ifndef MIG_IPC_SEQWORD_H
#define MIG_IPC_SEQWORD_H

#include <errno.h>
#include <linux/futex.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

#define mig_load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define mig_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define mig_load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define mig_store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define mig_smp_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)

static inline void mig_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

static inline long mig_futex_wait(uint32_t *addr, uint32_t val,
				  const struct timespec *timeout)
{
	return syscall(SYS_futex, addr, FUTEX_WAIT, val, timeout, NULL, 0);
}

static inline long mig_futex_wake(uint32_t *addr, int n)
{
	return syscall(SYS_futex, addr, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* Publish @v in @w and wake a sleeping peer, if any. */
static inline void mig_seqword_publish(struct mig_seqword *w, uint32_t v)
{
	mig_store_release(&w->value, v);
	/* Order the store above before the load of waiters below; pairs with
	 * the fence in the waiter (shim_wait_server() in shim/channel.c)
	 * between raising waiters and its re-check of value. */
	mig_smp_mb();
	if (mig_load_relaxed(&w->waiters))
		mig_futex_wake(&w->value, 0x7fffffff);
}

static inline uint64_t mig_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif /* MIG_IPC_SEQWORD_H */
