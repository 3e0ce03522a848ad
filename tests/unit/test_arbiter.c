/*
 * test_arbiter.c - the partition's ticket lock (ipc/arbiter.c): order,
 * release of a waiting ticket, abandonment by a dead owner, a lock left by
 * a killed process, and mutual exclusion between real processes.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "arbiter.h"

static struct mig_arbiter *page(int model)
{
	struct mig_arbiter *a = mmap(NULL, sizeof(*a), PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(a != MAP_FAILED);
	mig_arb_init(a, model);
	return a;
}

static void test_models(void **state)
{
	(void)state;
	assert_int_equal(mig_sharing_parse("overlap-cpu-copy"), MIG_SHARING_OVERLAP_CPU_COPY);
	assert_int_equal(mig_sharing_parse("time-sharing"), MIG_SHARING_TIME);
	assert_int_equal(mig_sharing_parse("fifo"), -1);
	assert_int_equal(mig_sharing_parse(NULL), -1);
	assert_string_equal(mig_sharing_name(MIG_SHARING_SEQUENTIAL), "sequential");
	assert_int_equal(mig_sharing_exclusive(MIG_SHARING_OVERLAP_CPU),
			 MIG_CLASS_COPY | MIG_CLASS_COMPUTE);
	assert_int_equal(mig_sharing_exclusive(MIG_SHARING_OVERLAP_CPU_COPY), MIG_CLASS_COMPUTE);
	assert_int_equal(mig_sharing_exclusive(MIG_SHARING_TIME), 0);
	assert_int_equal(mig_sharing_exclusive(MIG_SHARING_SEQUENTIAL), 0);
}

static void test_order_and_release(void **state)
{
	struct mig_arbiter *a = page(MIG_SHARING_OVERLAP_CPU);
	uint32_t t1, t2, t3;

	(void)state;
	t1 = mig_arb_take(a, 1);
	t2 = mig_arb_take(a, 2);
	t3 = mig_arb_take(a, 3);
	assert_true(mig_arb_granted(a, t1, 1));
	assert_false(mig_arb_granted(a, t2, 2));
	assert_int_equal(a->holder, 1);
	assert_int_equal(mig_arb_waiting(a), 2);
	assert_false(mig_arb_wait(a, t2, 2, 1000000)); /* 1 ms: not yet */
	/* A waiting ticket given back is skipped when its turn comes. */
	mig_arb_release(a, t2);
	mig_arb_release(a, t1);
	assert_true(mig_arb_granted(a, t3, 3));
	assert_int_equal(mig_arb_waiting(a), 0);
	mig_arb_release(a, t3);
	assert_int_equal(a->serving, a->next); /* free */
	assert_int_equal(a->grants, 2);
	/* Two ended turns, the first one over 1 ms (the wait above). */
	assert_true(a->held_ns >= 1000000);
	/* Giving back a ticket twice, or one long served, changes nothing. */
	mig_arb_release(a, t3);
	mig_arb_release(a, t1);
	assert_int_equal(a->serving, a->next);
	munmap(a, sizeof(*a));
}

static void test_abandon(void **state)
{
	struct mig_arbiter *a = page(MIG_SHARING_OVERLAP_CPU_COPY);
	uint32_t t1, t2, t3, t4;

	(void)state;
	t1 = mig_arb_take(a, 7);   /* holds */
	t2 = mig_arb_take(a, 8);   /* waits: dies */
	t3 = mig_arb_take(a, 7);   /* a second ticket of the dead holder */
	t4 = mig_arb_take(a, 9);
	assert_true(mig_arb_granted(a, t1, 7));
	mig_arb_abandon(a, 7);     /* its turn and its waiting ticket pass on */
	assert_true(mig_arb_granted(a, t2, 8));
	mig_arb_abandon(a, 8);
	assert_true(mig_arb_granted(a, t4, 9));
	(void)t3;
	mig_arb_release(a, t4);
	assert_int_equal(a->serving, a->next);
	munmap(a, sizeof(*a));
}

/* Ticket numbers wrap (after 2^32 turns: weeks of a busy node): served in
 * order across the wrap, a dead owner's waiting ticket 2^32 - 1 skipped. */
static void test_ticket_numbers_wrap(void **state)
{
	struct mig_arbiter *a = page(MIG_SHARING_OVERLAP_CPU_COPY);
	uint32_t t1, t2, t3, t4;

	(void)state;
	a->next = a->serving = a->oldest = 0xfffffffdu;
	t1 = mig_arb_take(a, 1);
	t2 = mig_arb_take(a, 2);
	t3 = mig_arb_take(a, 3);   /* 2^32 - 1: its owner dies */
	t4 = mig_arb_take(a, 4);   /* 0 */
	assert_int_equal(t3, 0xffffffffu);
	assert_int_equal(t4, 0);
	assert_true(mig_arb_granted(a, t1, 1));
	assert_int_equal(mig_arb_waiting(a), 3);
	mig_arb_release(a, t1);
	assert_true(mig_arb_granted(a, t2, 2));
	mig_arb_abandon(a, 3);
	assert_int_equal(mig_arb_waiting(a), 1);
	mig_arb_release(a, t2);
	assert_true(mig_arb_granted(a, t4, 4));
	mig_arb_release(a, t4);
	assert_int_equal(a->serving, a->next);
	assert_int_equal(a->oldest, a->next);
	assert_int_equal(mig_arb_waiting(a), 0);
	munmap(a, sizeof(*a));
}

static void test_lock_of_a_killed_process_is_taken_over(void **state)
{
	struct mig_arbiter *a = page(MIG_SHARING_OVERLAP_CPU);
	pid_t pid = fork();
	int st;

	(void)state;
	if (pid == 0) {
		a->lock = (uint32_t)getpid(); /* dies holding the lock */
		_exit(0);
	}
	waitpid(pid, &st, 0);
	assert_int_equal(a->lock, (uint32_t)pid);
	assert_int_equal(mig_arb_take(a, 1), 0); /* returns: taken over */
	assert_int_equal(a->lock, 0);
	munmap(a, sizeof(*a));
}

/* Four processes, each 200 times: take a turn, check nobody else is inside,
 * stay a moment, leave.  Every turn is served (no starvation, no loss). */
static void test_exclusion_between_processes(void **state)
{
	struct mig_arbiter *a = page(MIG_SHARING_OVERLAP_CPU);
	uint32_t *inside = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pids[4];
	int st, bad = 0;

	(void)state;
	for (int p = 0; p < 4; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			for (int i = 0; i < 200; i++) {
				uint32_t t = mig_arb_take(a, (uint32_t)p + 1);

				while (!mig_arb_wait(a, t, (uint32_t)p + 1, 100000000))
					;
				if (__atomic_fetch_add(inside, 1, __ATOMIC_SEQ_CST))
					_exit(2);
				usleep(50);
				__atomic_fetch_sub(inside, 1, __ATOMIC_SEQ_CST);
				mig_arb_release(a, t);
			}
			_exit(0);
		}
	}
	for (int p = 0; p < 4; p++) {
		waitpid(pids[p], &st, 0);
		bad |= !WIFEXITED(st) || WEXITSTATUS(st);
	}
	assert_false(bad);
	assert_int_equal(a->grants, 800);
	assert_int_equal(a->serving, a->next);
	munmap(inside, 4096);
	munmap(a, sizeof(*a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_models),
		cmocka_unit_test(test_order_and_release),
		cmocka_unit_test(test_abandon),
		cmocka_unit_test(test_ticket_numbers_wrap),
		cmocka_unit_test(test_lock_of_a_killed_process_is_taken_over),
		cmocka_unit_test(test_exclusion_between_processes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
