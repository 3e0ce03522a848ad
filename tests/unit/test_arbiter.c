/*
 * test_arbiter.c - the partition's ticket lock (ipc/arbiter.c): order,
 * resume tickets, release of a waiting ticket, abandonment by a dead owner
 * (and its waiter's wait ending with it), a lock left by
 * a killed process, announced releases (the next waiter spins for one,
 * the others sleep on, a withdrawal puts it back to sleep, a turn makes
 * a bounded number), and mutual exclusion between real processes.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
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

/* Nobody holds the GPU, nobody waits, nothing is left of any ticket. */
static void assert_free(const struct mig_arbiter *a)
{
	assert_int_equal(a->serving, a->next);
	assert_int_equal(a->oldest, a->next);
	assert_int_equal(mig_arb_waiting(a), 0);
	assert_int_equal(a->resuming, 0);
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
	t1 = mig_arb_take(a, 1, NULL, NULL);
	t2 = mig_arb_take(a, 2, NULL, NULL);
	t3 = mig_arb_take(a, 3, NULL, NULL);
	assert_true(mig_arb_granted(a, t1, 1));
	assert_false(mig_arb_granted(a, t2, 2));
	assert_int_equal(a->holder, 1);
	assert_int_equal(mig_arb_waiting(a), 2);
	assert_false(mig_arb_wait(a, t2, 2, 1000000)); /* 1 ms: not yet */
	/* A waiting ticket given back is skipped when its turn comes. */
	mig_arb_release(a, t2, NULL);
	mig_arb_release(a, t1, NULL);
	assert_true(mig_arb_granted(a, t3, 3));
	assert_int_equal(mig_arb_waiting(a), 0);
	mig_arb_release(a, t3, NULL);
	assert_free(a);
	assert_int_equal(a->grants, 2);
	/* Two ended turns, the first one over 1 ms (the wait above). */
	assert_true(a->held_ns >= 1000000);
	/* Giving back a ticket twice, or one long served, changes nothing. */
	mig_arb_release(a, t3, NULL);
	mig_arb_release(a, t1, NULL);
	assert_free(a);
	munmap(a, sizeof(*a));
}

static void test_abandon(void **state)
{
	struct mig_arbiter *a = page(MIG_SHARING_OVERLAP_CPU_COPY);
	uint32_t t1, t2, t3, t4;

	(void)state;
	t1 = mig_arb_take(a, 7, NULL, NULL);   /* holds */
	t2 = mig_arb_take(a, 8, NULL, NULL);   /* waits: dies */
	t3 = mig_arb_take(a, 7, NULL, NULL);   /* a second ticket of the dead holder */
	t4 = mig_arb_take(a, 9, NULL, NULL);
	assert_true(mig_arb_granted(a, t1, 7));
	mig_arb_abandon(a, 7);     /* its turn and its waiting ticket pass on */
	assert_true(mig_arb_granted(a, t2, 8));
	mig_arb_abandon(a, 8);
	assert_true(mig_arb_granted(a, t4, 9));
	(void)t3;
	mig_arb_release(a, t4, NULL);
	assert_free(a);
	munmap(a, sizeof(*a));
}

/* A waiter whose ticket is given back by another (the daemon, its server
 * dead) stops waiting at once, not at its timeout; a child process waits. */
static void test_wait_ends_when_the_ticket_is_abandoned(void **state)
{
	struct mig_arbiter *a = page(MIG_SHARING_SEQUENTIAL);
	uint32_t held = mig_arb_take(a, 1, NULL, NULL);
	uint32_t t = mig_arb_take(a, 2, NULL, NULL);
	int status;
	pid_t pid;

	(void)state;
	assert_true(mig_arb_granted(a, held, 1));
	assert_true(mig_arb_outstanding(a, t));
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) /* 0: returned early and not granted; 1: anything else */
		_exit(mig_arb_wait(a, t, 2, 20000000000ull) || mig_arb_outstanding(a, t));
	usleep(100000);
	mig_arb_abandon(a, 2);
	assert_false(mig_arb_outstanding(a, t));
	alarm(5); /* a wait to its 20 s timeout fails the test */
	assert_int_equal(waitpid(pid, &status, 0), pid);
	alarm(0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	mig_arb_release(a, held, NULL);
	assert_free(a);
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
	t1 = mig_arb_take(a, 1, NULL, NULL);
	t2 = mig_arb_take(a, 2, NULL, NULL);
	t3 = mig_arb_take(a, 3, NULL, NULL);   /* 2^32 - 1: its owner dies */
	t4 = mig_arb_take(a, 4, NULL, NULL);   /* 0 */
	assert_int_equal(t3, 0xffffffffu);
	assert_int_equal(t4, 0);
	assert_true(mig_arb_granted(a, t1, 1));
	assert_int_equal(mig_arb_waiting(a), 3);
	mig_arb_release(a, t1, NULL);
	assert_true(mig_arb_granted(a, t2, 2));
	mig_arb_abandon(a, 3);
	assert_int_equal(mig_arb_waiting(a), 1);
	mig_arb_release(a, t2, NULL);
	assert_true(mig_arb_granted(a, t4, 4));
	mig_arb_release(a, t4, NULL);
	assert_free(a);
	munmap(a, sizeof(*a));
}

/* A resume ticket, taken while the turn its owner gave way to is served,
 * goes next when that turn ends, before older tickets; several in the
 * order taken; then the rest in order.  Taken after that turn ended, or
 * when nobody holds the GPU, a ticket is an ordinary one. */
static void test_resume_ticket_goes_next(void **state)
{
	struct mig_arbiter *a = page(MIG_SHARING_OVERLAP_CPU_COPY);
	uint32_t hold, b, c, d, r1, r2, gave = 12345;
	bool resumed = true;

	(void)state;
	hold = mig_arb_take(a, 1, &gave, &resumed);  /* granted at once */
	assert_false(resumed);
	assert_true(mig_arb_granted(a, hold, 1));
	assert_int_equal(a->resuming, 0);
	b = mig_arb_take(a, 2, NULL, NULL);
	c = mig_arb_take(a, 3, NULL, NULL);
	assert_false(mig_arb_release(a, c, &gave)); /* a waiting one: no grant */
	assert_int_equal(gave, 12345);
	c = mig_arb_take(a, 3, NULL, NULL);
	assert_true(mig_arb_release(a, hold, &gave)); /* cut: b goes */
	assert_int_equal(gave, b);
	assert_true(mig_arb_granted(a, b, 2));
	r1 = mig_arb_take(a, 1, &gave, &resumed); /* the cut holder, back during b */
	assert_true(resumed);
	r2 = mig_arb_take(a, 4, &gave, NULL);
	assert_int_equal(a->resuming, 2);
	assert_int_equal(mig_arb_waiting(a), 3);
	assert_true(mig_arb_release(a, b, NULL));
	assert_true(mig_arb_granted(a, r1, 1)); /* before c, which is older */
	assert_false(mig_arb_granted(a, c, 3));
	assert_int_equal(a->resuming, 1);
	assert_int_equal(mig_arb_waiting(a), 2);
	d = mig_arb_take(a, 5, &b, &resumed);     /* b's turn is over: in order */
	assert_false(resumed);
	assert_int_equal(a->resuming, 1);
	mig_arb_release(a, r1, NULL);
	assert_true(mig_arb_granted(a, r2, 4));
	mig_arb_release(a, r2, NULL);
	assert_true(mig_arb_granted(a, c, 3));
	mig_arb_release(a, c, NULL);
	assert_true(mig_arb_granted(a, d, 5));
	assert_false(mig_arb_release(a, d, &gave)); /* nobody waits */
	assert_free(a);
	munmap(a, sizeof(*a));
}

/* A resume ticket given back or abandoned while it waits is forgotten:
 * the turn goes to the oldest; and the order holds across the wrap. */
static void test_resume_ticket_given_back_or_abandoned(void **state)
{
	struct mig_arbiter *a = page(MIG_SHARING_OVERLAP_CPU_COPY);
	uint32_t hold, b, r1, r2;

	(void)state;
	a->next = a->serving = a->oldest = 0xfffffffeu;
	hold = mig_arb_take(a, 1, NULL, NULL);
	b = mig_arb_take(a, 2, NULL, NULL);       /* 2^32 - 1 */
	r1 = mig_arb_take(a, 3, &hold, NULL);     /* 0 */
	r2 = mig_arb_take(a, 4, &hold, NULL);
	assert_int_equal(r1, 0);
	assert_int_equal(a->resuming, 2);
	assert_true(mig_arb_granted(a, hold, 1));
	mig_arb_release(a, r1, NULL);       /* given back while waiting */
	mig_arb_abandon(a, 4);              /* its owner died */
	assert_int_equal(a->resuming, 0);
	assert_int_equal(mig_arb_waiting(a), 1);
	mig_arb_release(a, hold, NULL);
	assert_true(mig_arb_granted(a, b, 2));
	r1 = mig_arb_take(a, 3, &b, NULL);
	mig_arb_abandon(a, 2);              /* the holder died: the resume goes */
	assert_true(mig_arb_granted(a, r1, 3));
	mig_arb_release(a, r1, NULL);
	assert_free(a);
	(void)r2;
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
	assert_int_equal(mig_arb_take(a, 1, NULL, NULL), 0); /* returns: taken over */
	assert_int_equal(a->lock, 0);
	munmap(a, sizeof(*a));
}

/* A process's scheduler state ('R' running, 'S' asleep...), from /proc. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return '?';
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

/* Wait up to 5 s for @pid to be in state @want; true if it was. */
static bool await_state(pid_t pid, char want)
{
	for (int i = 0; i < 5000; i++) {
		if (proc_state(pid) == want)
			return true;
		usleep(1000);
	}
	return false;
}

struct wait_result {
	uint64_t spun_ns;
	int granted;
};

static pid_t wait_in_child(struct mig_arbiter *a, uint32_t t, uint32_t id,
			   struct wait_result *r)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (!pid) {
		r->granted = mig_arb_wait_spin(a, t, id, 20000000000ull, &r->spun_ns);
		_exit(0);
	}
	return pid;
}

static void reap(pid_t pid)
{
	int status;

	alarm(10); /* a wait to its 20 s timeout fails the test */
	assert_int_equal(waitpid(pid, &status, 0), pid);
	alarm(0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/*
 * The holder announces its release: the waiter next in line wakes and
 * spins for it (on a CPU when it comes, not asleep); the one behind it
 * sleeps on.  An announcement by a ticket not served changes nothing, and
 * a release ends the announcement: the next holder's waiter sleeps.
 */
static void test_announced_release_is_spun_for_by_the_next_waiter(void **state)
{
	struct mig_arbiter *a = page(MIG_SHARING_OVERLAP_CPU_COPY);
	struct wait_result *r = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint32_t t1, t2, t3;
	pid_t next, behind;

	(void)state;
	assert_true(r != MAP_FAILED);
	t1 = mig_arb_take(a, 1, NULL, NULL);
	t2 = mig_arb_take(a, 2, NULL, NULL);
	t3 = mig_arb_take(a, 3, NULL, NULL);
	assert_true(mig_arb_granted(a, t1, 1));
	mig_arb_announce(a, t2, 5000000000ull); /* not served: ignored */
	assert_int_equal(a->soon_until_ns, 0);
	next = wait_in_child(a, t2, 2, &r[0]);
	behind = wait_in_child(a, t3, 3, &r[1]);
	assert_true(await_state(next, 'S'));
	assert_true(await_state(behind, 'S'));

	mig_arb_announce(a, t1, 5000000000ull);
	assert_true(await_state(next, 'R'));
	usleep(20000);
	assert_int_equal(proc_state(behind), 'S');
	mig_arb_release(a, t1, NULL);
	reap(next);
	assert_true(r[0].granted);
	assert_true(r[0].spun_ns >= 10000000ull);  /* the 20 ms at least, */
	assert_true(r[0].spun_ns < 4000000000ull); /* not to the announced end */
	assert_int_equal(a->soon_until_ns, 0);

	/* t2's turn (its process gone: given back here) passes to t3, which
	 * never spun: it was never next in line at an announcement. */
	mig_arb_release(a, t2, NULL);
	reap(behind);
	assert_true(r[1].granted);
	assert_int_equal(r[1].spun_ns, 0);
	mig_arb_release(a, t3, NULL);
	assert_free(a);
	munmap(r, 4096);
	munmap(a, sizeof(*a));
}

/* A turn makes MIG_ARB_ANNOUNCE_PER_TURN announcements at most (each
 * wakes every waiter; a client decides how often its server would make
 * one); withdrawals always go through; the next turn counts anew. */
static void test_announcements_per_turn_are_bounded(void **state)
{
	struct mig_arbiter *a = page(MIG_SHARING_OVERLAP_CPU_COPY);
	uint32_t t1, t2;

	(void)state;
	t1 = mig_arb_take(a, 1, NULL, NULL);
	t2 = mig_arb_take(a, 2, NULL, NULL);
	assert_true(mig_arb_granted(a, t1, 1));
	for (unsigned int i = 0; i < MIG_ARB_ANNOUNCE_PER_TURN; i++) {
		assert_true(mig_arb_announce(a, t1, 1000000));
		assert_true(a->soon_until_ns != 0);
		assert_true(mig_arb_announce(a, t1, 0));
		assert_int_equal(a->soon_until_ns, 0);
	}
	assert_false(mig_arb_announce(a, t1, 1000000));
	assert_int_equal(a->soon_until_ns, 0);
	assert_true(mig_arb_announce(a, t1, 0));
	assert_false(mig_arb_announce(a, t2, 1000000)); /* not served */
	mig_arb_release(a, t1, NULL);
	assert_true(mig_arb_granted(a, t2, 2));
	assert_true(mig_arb_announce(a, t2, 1000000));
	mig_arb_release(a, t2, NULL);
	assert_int_equal(a->soon_until_ns, 0);
	assert_free(a);
	munmap(a, sizeof(*a));
}

/* A holder whose client called again withdraws its announcement: the
 * spinning waiter goes back to sleep, long before the announced time. */
static void test_withdrawn_announcement_puts_the_waiter_back_to_sleep(void **state)
{
	struct mig_arbiter *a = page(MIG_SHARING_OVERLAP_CPU_COPY);
	struct wait_result *r = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint32_t t1, t2;
	pid_t pid;

	(void)state;
	assert_true(r != MAP_FAILED);
	t1 = mig_arb_take(a, 1, NULL, NULL);
	t2 = mig_arb_take(a, 2, NULL, NULL);
	assert_true(mig_arb_granted(a, t1, 1));
	pid = wait_in_child(a, t2, 2, r);
	assert_true(await_state(pid, 'S'));
	mig_arb_announce(a, t1, 60000000000ull); /* a minute */
	assert_true(await_state(pid, 'R'));
	usleep(20000); /* spinning, not just woken */
	assert_int_equal(proc_state(pid), 'R');
	mig_arb_announce(a, t1, 0);
	assert_int_equal(a->soon_until_ns, 0);
	assert_true(await_state(pid, 'S'));
	mig_arb_release(a, t1, NULL);
	reap(pid);
	assert_true(r->granted);
	assert_true(r->spun_ns >= 10000000ull && r->spun_ns < 30000000000ull);
	mig_arb_release(a, t2, NULL);
	assert_free(a);
	munmap(r, 4096);
	munmap(a, sizeof(*a));
}

/* Four processes, each 200 times: take a turn, check nobody else is inside,
 * stay a moment, leave (every other time announcing it first, as a holder
 * whose client went quiet does).  Every turn is served (no starvation, no
 * loss). */
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
			uint32_t gave = 0;
			bool cut = false;

			for (int i = 0; i < 200; i++) {
				/* Every third turn, if the last one passed to a
				 * waiter, asks to resume (after it, if still on). */
				uint32_t t = mig_arb_take(a, (uint32_t)p + 1,
							  cut && i % 3 == 1 ? &gave : NULL,
							  NULL);

				while (!mig_arb_wait(a, t, (uint32_t)p + 1, 100000000))
					;
				if (__atomic_fetch_add(inside, 1, __ATOMIC_SEQ_CST))
					_exit(2);
				usleep(50);
				if (i % 2)
					mig_arb_announce(a, t, 100000);
				__atomic_fetch_sub(inside, 1, __ATOMIC_SEQ_CST);
				cut = mig_arb_release(a, t, &gave);
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
	assert_free(a);
	munmap(inside, 4096);
	munmap(a, sizeof(*a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_models),
		cmocka_unit_test(test_order_and_release),
		cmocka_unit_test(test_abandon),
		cmocka_unit_test(test_wait_ends_when_the_ticket_is_abandoned),
		cmocka_unit_test(test_ticket_numbers_wrap),
		cmocka_unit_test(test_resume_ticket_goes_next),
		cmocka_unit_test(test_resume_ticket_given_back_or_abandoned),
		cmocka_unit_test(test_lock_of_a_killed_process_is_taken_over),
		cmocka_unit_test(test_announced_release_is_spun_for_by_the_next_waiter),
		cmocka_unit_test(test_withdrawn_announcement_puts_the_waiter_back_to_sleep),
		cmocka_unit_test(test_announcements_per_turn_are_bounded),
		cmocka_unit_test(test_exclusion_between_processes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
