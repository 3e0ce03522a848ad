/*
 * arbiter.c - the partition's ticket lock (arbiter.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arbiter.h"
#include "seqword.h"

static const char *const names[] = {
	[MIG_SHARING_TIME] = "time-sharing",
	[MIG_SHARING_SEQUENTIAL] = "sequential",
	[MIG_SHARING_OVERLAP_CPU] = "overlap-cpu",
	[MIG_SHARING_OVERLAP_CPU_COPY] = "overlap-cpu-copy",
};

int mig_sharing_parse(const char *s)
{
	for (int i = 0; s && i < (int)(sizeof(names) / sizeof(names[0])); i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

const char *mig_sharing_name(int model)
{
	return model >= 0 && model < (int)(sizeof(names) / sizeof(names[0])) ?
		       names[model] : "?";
}

unsigned int mig_sharing_exclusive(int model)
{
	switch (model) {
	case MIG_SHARING_OVERLAP_CPU:
		return MIG_CLASS_COPY | MIG_CLASS_COMPUTE;
	case MIG_SHARING_OVERLAP_CPU_COPY:
		return MIG_CLASS_COMPUTE;
	default:
		return 0; /* time-sharing; sequential is the daemon's */
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Held for a few dozen instructions; a lock whose owner was killed inside
 * them is taken over. */
static void lock(struct mig_arbiter *a)
{
	uint32_t me = (uint32_t)getpid(), cur;
	unsigned int spins = 0;

	for (;;) {
		cur = 0;
		if (__atomic_compare_exchange_n(&a->lock, &cur, me, false,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return;
		if (++spins % 4096 == 0 && cur && kill((pid_t)cur, 0) < 0 &&
		    errno == ESRCH &&
		    __atomic_compare_exchange_n(&a->lock, &cur, me, false,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return;
		mig_cpu_relax();
		if (spins % 64 == 0)
			sched_yield();
	}
}

static void unlock(struct mig_arbiter *a)
{
	__atomic_store_n(&a->lock, 0, __ATOMIC_RELEASE);
}

void mig_arb_init(struct mig_arbiter *a, int model)
{
	memset(a, 0, sizeof(*a));
	a->magic = MIG_ARB_MAGIC;
	a->version = MIG_ARB_VERSION;
	a->model = (uint32_t)model;
}

#define SLOT(a, t) (&(a)->ticket[(t) % MIG_ARB_SLOTS])

static bool outstanding(const struct mig_arbiter *a, uint32_t t)
{
	return SLOT(a, t)->live && SLOT(a, t)->num == t;
}

/* @waiting is read without the lock (mig_arb_waiting()). */
static void add_waiting(struct mig_arbiter *a, int32_t d)
{
	mig_store_relaxed(&a->waiting, a->waiting + (uint32_t)d);
}

/* A waiting resume ticket @t is granted or given back.  Under the lock. */
static void resume_done(struct mig_arbiter *a, uint32_t t)
{
	if (SLOT(a, t)->resume) {
		SLOT(a, t)->resume = 0;
		a->resuming--;
	}
}

/* Forget outstanding ticket @t; @oldest moves past the tickets no longer
 * outstanding.  true if @t was the one served (the caller grants the next),
 * else it stops counting as waiting.  Under the lock. */
static bool retire(struct mig_arbiter *a, uint32_t t)
{
	resume_done(a, t);
	SLOT(a, t)->live = 0;
	while (a->oldest != a->next && !outstanding(a, a->oldest))
		a->oldest++;
	if (t == a->serving)
		return true;
	add_waiting(a, -1);
	return false;
}

uint32_t mig_arb_take(struct mig_arbiter *a, uint32_t id, const uint32_t *gave_way,
		      bool *resumed)
{
	uint32_t t;

	if (resumed)
		*resumed = false;
	lock(a);
	t = a->next;
	if (t - a->oldest >= MIG_ARB_SLOTS) {
		unlock(a);
		return ~0u;
	}
	SLOT(a, t)->owner = id;
	SLOT(a, t)->num = t;
	SLOT(a, t)->live = 1;
	SLOT(a, t)->resume = 0;
	a->next = t + 1;
	if (a->serving != t) { /* else none was granted: @serving names ours */
		add_waiting(a, 1);
		if (gave_way && a->serving == *gave_way &&
		    outstanding(a, *gave_way)) {
			SLOT(a, t)->resume = 1;
			a->resuming++;
			if (resumed)
				*resumed = true;
		}
	}
	unlock(a);
	return t;
}

bool mig_arb_granted(struct mig_arbiter *a, uint32_t t, uint32_t id)
{
	if (mig_load_acquire(&a->serving) != t)
		return false;
	if (mig_load_relaxed(&a->holder) != id) {
		a->grant_ns = now_ns();
		__atomic_fetch_add(&a->grants, 1, __ATOMIC_RELAXED);
		mig_store_relaxed(&a->holder, id);
	}
	return true;
}

/* Under the lock: the ticket a release would grant now, @next if none:
 * the oldest resume ticket, else the oldest outstanding one besides the
 * one served. */
static uint32_t next_in_line(const struct mig_arbiter *a)
{
	uint32_t t;

	if (a->resuming)
		for (t = a->oldest; t != a->next; t++)
			if (outstanding(a, t) && SLOT(a, t)->resume)
				return t;
	for (t = a->oldest; t != a->next; t++)
		if (outstanding(a, t) && t != a->serving)
			return t;
	return a->next;
}

/* Spin until ticket @v is no longer served, or until the time announced
 * for its release or @end passes; returns the time spun. */
static uint64_t spin_for_release(struct mig_arbiter *a, uint32_t v,
				 uint64_t until, uint64_t end)
{
	uint64_t start = now_ns(), now = start;
	unsigned int i = 0;

	if (end < until)
		until = end;
	while (mig_load_acquire(&a->serving) == v && now < until) {
		mig_cpu_relax();
		if ((++i & 63) == 0) {
			now = now_ns();
			if (__atomic_load_n(&a->soon_until_ns, __ATOMIC_ACQUIRE) == 0)
				break; /* withdrawn: the holder keeps the turn */
		}
	}
	return now_ns() - start;
}

bool mig_arb_wait_spin(struct mig_arbiter *a, uint32_t t, uint32_t id,
		       uint64_t timeout_ns, uint64_t *spun_ns)
{
	uint64_t end = now_ns() + timeout_ns;

	for (;;) {
		uint32_t v = mig_load_acquire(&a->serving);
		uint64_t now, until;
		struct timespec ts;
		bool live, next;

		if (v == t)
			return mig_arb_granted(a, t, id);
		lock(a);
		live = outstanding(a, t);
		next = live && next_in_line(a) == t;
		unlock(a);
		if (!live)
			return false; /* given back by another (its server gone) */
		now = now_ns();
		if (now >= end)
			return false;
		/* The holder announced its release, and it is ours: spin. */
		until = __atomic_load_n(&a->soon_until_ns, __ATOMIC_ACQUIRE);
		if (next && until > now && __atomic_load_n(&a->soon, __ATOMIC_RELAXED) == v) {
			uint64_t spun = spin_for_release(a, v, until, end);

			if (spun_ns)
				*spun_ns += spun;
			continue;
		}
		ts.tv_sec = (time_t)((end - now) / 1000000000ull);
		ts.tv_nsec = (long)((end - now) % 1000000000ull);
		mig_futex_wait(&a->serving, v, &ts);
	}
}

bool mig_arb_wait(struct mig_arbiter *a, uint32_t t, uint32_t id,
		  uint64_t timeout_ns)
{
	return mig_arb_wait_spin(a, t, id, timeout_ns, NULL);
}

/*
 * The waiters sleep on @serving; an announcement wakes them without
 * changing it.  Each looks whether it is next in line: that one spins,
 * the others sleep again.  A withdrawal wakes nobody: the spinning waiter
 * sees @soon_until_ns cleared.
 */
bool mig_arb_announce(struct mig_arbiter *a, uint32_t t, uint64_t within_ns)
{
	if (mig_load_acquire(&a->serving) != t)
		return false;
	if (!within_ns) {
		__atomic_store_n(&a->soon_until_ns, 0, __ATOMIC_RELEASE);
		return true;
	}
	/* Only the holder announces: @soon_count is its own to count.  A
	 * waiter reads @soon only under a live @soon_until_ns, which the
	 * last grant cleared. */
	if (mig_load_relaxed(&a->soon) != t) {
		__atomic_store_n(&a->soon, t, __ATOMIC_RELAXED);
		a->soon_count = 0;
	}
	if (a->soon_count >= MIG_ARB_ANNOUNCE_PER_TURN)
		return false;
	a->soon_count++;
	__atomic_store_n(&a->soon_until_ns, now_ns() + within_ns, __ATOMIC_RELEASE);
	if (mig_arb_waiting(a))
		mig_futex_wake(&a->serving, 0x7fffffff);
	return true;
}

bool mig_arb_outstanding(struct mig_arbiter *a, uint32_t t)
{
	bool live;

	lock(a);
	live = outstanding(a, t);
	unlock(a);
	return live;
}

uint32_t mig_arb_waiting(const struct mig_arbiter *a)
{
	return mig_load_relaxed(&a->waiting);
}

/* The granted ticket is gone (retired): grant the oldest resume ticket,
 * else the oldest outstanding one, or none; true if one was granted.
 * Under the lock. */
static bool grant_next(struct mig_arbiter *a)
{
	uint32_t t = next_in_line(a);

	if (a->holder)
		__atomic_fetch_add(&a->held_ns, now_ns() - a->grant_ns, __ATOMIC_RELAXED);
	a->holder = 0;
	__atomic_store_n(&a->soon_until_ns, 0, __ATOMIC_RELAXED);
	if (t != a->next) {
		add_waiting(a, -1);
		resume_done(a, t);
		a->passed_ns = now_ns();
	}
	mig_store_release(&a->serving, t);
	return t != a->next;
}

bool mig_arb_release(struct mig_arbiter *a, uint32_t t, uint32_t *granted)
{
	bool passed = false;

	lock(a);
	if (outstanding(a, t) && retire(a, t))
		passed = grant_next(a);
	if (passed && granted)
		*granted = a->serving;
	unlock(a);
	mig_futex_wake(&a->serving, 0x7fffffff);
	return passed;
}

void mig_arb_abandon(struct mig_arbiter *a, uint32_t id)
{
	bool served = false;

	lock(a);
	for (uint32_t t = a->oldest; t != a->next; t++) {
		if (outstanding(a, t) && SLOT(a, t)->owner == id && retire(a, t))
			served = true;
	}
	if (served)
		grant_next(a);
	unlock(a);
	mig_futex_wake(&a->serving, 0x7fffffff);
}
