/*
 * seqword.h - memory ordering and the spin-then-sleep wait used on every
 * shared word of the call channel.
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
	 * the fence in mig_seqword_wait() between setting waiters and the
	 * re-check of value. */
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

/*
 * Wait until @done(w->value, arg) holds.  Spin for @spin_ns first (cheap
 * when the peer answers within microseconds), then sleep in slices of
 * @slice_ns, calling @alive(arg2) between slices; returns false when @alive
 * says the peer is gone.
 */
static inline bool mig_seqword_wait(struct mig_seqword *w,
				    bool (*done)(uint32_t v, const void *arg),
				    const void *arg, uint64_t spin_ns,
				    uint64_t slice_ns, bool (*alive)(void *),
				    void *arg2)
{
	uint32_t v = mig_load_acquire(&w->value);
	uint64_t start;
	unsigned int i = 0;

	if (done(v, arg))
		return true;
	start = mig_now_ns();
	for (;;) {
		v = mig_load_acquire(&w->value);
		if (done(v, arg))
			return true;
		mig_cpu_relax();
		if ((++i & 63) == 0 && mig_now_ns() - start > spin_ns)
			break;
	}
	for (;;) {
		struct timespec ts = {
			.tv_sec = (time_t)(slice_ns / 1000000000ull),
			.tv_nsec = (long)(slice_ns % 1000000000ull),
		};

		__atomic_fetch_add(&w->waiters, 1, __ATOMIC_RELAXED);
		mig_smp_mb();
		v = mig_load_acquire(&w->value);
		if (!done(v, arg))
			mig_futex_wait(&w->value, v, &ts);
		__atomic_fetch_sub(&w->waiters, 1, __ATOMIC_RELAXED);
		v = mig_load_acquire(&w->value);
		if (done(v, arg))
			return true;
		if (alive && !alive(arg2))
			return false;
	}
}

#endif /* MIG_IPC_SEQWORD_H */
