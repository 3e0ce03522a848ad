/*
 * cpu_probe - what a node's CPUs give functions that run side by side.
 *
 * Fast function switching overlaps one function's CPU phase with other
 * functions' phases, and hands the GPU from one to the next.  What that
 * gains is bounded by the CPUs as much as by the GPU: a CPU phase that runs
 * slower when others run beside it caps the throughput of two clients below
 * 2x whatever the GPU allows, and a hand-off to a thread that sleeps costs
 * its wake-up.  On a virtual machine the guest sees N equal CPUs that are
 * neither equal nor free; this program measures what they give, as ratios
 * against a baseline taken in the same run:
 *
 *   speed  each CPU's time for a fixed compute loop, sampled over time,
 *          against the median of all samples: CPUs that are slower than
 *          the others, and for how long (a process whose thread stays on
 *          such a CPU is slower for its whole life)
 *   load   one loop's time (compute, then memory reads) while K other CPUs
 *          run the same loop, against the same CPU alone just before:
 *          what K phases at once cost each of them
 *   wake   a futex wake-up's latency after the woken thread slept D, against
 *          a hand-off to a thread that spins: what a server or helper that
 *          went to sleep costs its client's next call
 *
 * Usage: cpu_probe [speed|load|wake|all] [--quick]   (default: all)
 * --quick takes a second or two (the test suite runs it so); the full run
 * takes about 45 s on 16 CPUs.  It measures the CPUs it may run on (its
 * affinity: run it under taskset, or in an instance's cgroup, to measure
 * those); load needs two of them, wake two.  Linux only (futex, affinity).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_CPUS 1024
#define MEM_BYTES (64u << 20) /* per thread: well past any L2 */

static bool quick;
static int ncpus;
static int cpus[MAX_CPUS]; /* the CPUs this process may run on */
static volatile double sink;

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The @q quantile (0..1) of @v[@n]; sorts @v. */
static uint64_t quantile(uint64_t *v, size_t n, double q)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[(size_t)(q * (double)(n - 1) + 0.5)];
}

/* --- the loops ----------------------------------------------------------- */

/*
 * Eight independent multiply-add chains: the core's floating-point units,
 * nothing from memory.  The empty asm statements keep the compiler from
 * moving the work across the clock reads around it.
 */
static double compute_loop(long iters)
{
	double a = 1.0, b = 1.1, c = 1.2, d = 1.3, e = 1.4, f = 1.5, g = 1.6,
	       h = 1.7;

	__asm__ volatile("" : "+r"(iters)::"memory");
	for (long i = 0; i < iters; i++) {
		a = a * 1.0000001 + 0.1;
		b = b * 0.9999999 + 0.2;
		c = c * 1.0000002 + 0.3;
		d = d * 0.9999998 + 0.4;
		e = e * 1.0000003 + 0.1;
		f = f * 0.9999997 + 0.2;
		g = g * 1.0000001 + 0.3;
		h = h * 0.9999999 + 0.4;
	}
	a += b + c + d + e + f + g + h;
	__asm__ volatile("" : "+x"(a)::"memory");
	return a;
}

/* Reads @bytes of @buf, 64 bits at a time: the memory system's share. */
static double memory_loop(const uint64_t *buf, size_t bytes)
{
	uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	size_t n = bytes / sizeof(*buf);

	__asm__ volatile("" : "+r"(buf)::"memory");
	for (size_t i = 0; i + 3 < n; i += 4) {
		s0 += buf[i];
		s1 += buf[i + 1];
		s2 += buf[i + 2];
		s3 += buf[i + 3];
	}
	s0 += s1 + s2 + s3;
	__asm__ volatile("" : "+r"(s0)::"memory");
	return (double)s0;
}

enum kind { COMPUTE, MEMORY };
static long compute_iters; /* calibrated: one loop takes loop_ms */

static uint64_t *new_buffer(void)
{
	uint64_t *b = malloc(MEM_BYTES);

	if (!b) {
		fprintf(stderr, "cpu_probe: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < MEM_BYTES / sizeof(*b); i++)
		b[i] = i;
	return b;
}

/* One loop of @kind on the calling thread, in nanoseconds. */
static uint64_t timed_loop(enum kind kind, const uint64_t *buf)
{
	uint64_t t = now_ns();

	sink = kind == COMPUTE ? compute_loop(compute_iters)
			       : memory_loop(buf, MEM_BYTES);
	return now_ns() - t;
}

static void calibrate(double loop_ms)
{
	uint64_t t;

	pin_self(cpus[0]);
	compute_iters = 100000;
	for (;;) {
		t = timed_loop(COMPUTE, NULL);
		if (t > 1000000 || compute_iters > (1l << 40))
			break;
		compute_iters *= 4;
	}
	compute_iters = (long)((double)compute_iters * loop_ms * 1e6 / (double)t);
	if (compute_iters < 1000)
		compute_iters = 1000;
}

/* --- speed: each CPU over time ------------------------------------------ */

static void probe_speed(void)
{
	int samples = quick ? 3 : 20;
	unsigned int pause_us = quick ? 0 : 250000;
	size_t total = (size_t)samples * (size_t)ncpus;
	uint64_t *t = calloc(total, sizeof(*t));
	uint64_t *all = calloc(total, sizeof(*all));
	uint64_t *mine = calloc((size_t)samples, sizeof(*mine));
	uint64_t median;
	int slow_cpus = 0, slow_samples = 0;

	if (!t || !all || !mine) {
		fprintf(stderr, "cpu_probe: out of memory\n");
		exit(1);
	}
	for (int s = 0; s < samples; s++) {
		for (int i = 0; i < ncpus; i++) {
			pin_self(cpus[i]);
			t[(size_t)s * (size_t)ncpus + (size_t)i] =
				timed_loop(COMPUTE, NULL);
		}
		if (pause_us)
			usleep(pause_us);
	}
	memcpy(all, t, total * sizeof(*t));
	median = quantile(all, total, 0.5);

	printf("\nspeed: one compute loop per CPU, %d samples, %s; "
	       "time / the median of all samples (%.2f ms)\n",
	       samples, quick ? "back to back" : "0.25 s apart", (double)median / 1e6);
	printf("  cpu     min  median     max  slow samples (> 1.25x)\n");
	for (int i = 0; i < ncpus; i++) {
		int slow = 0;

		for (int s = 0; s < samples; s++) {
			mine[s] = t[(size_t)s * (size_t)ncpus + (size_t)i];
			slow += (double)mine[s] > 1.25 * (double)median;
		}
		slow_cpus += slow > 0;
		slow_samples += slow;
		printf("  %3d  %5.2fx  %5.2fx  %5.2fx  %d of %d\n", cpus[i],
		       (double)quantile(mine, (size_t)samples, 0.0) / (double)median,
		       (double)quantile(mine, (size_t)samples, 0.5) / (double)median,
		       (double)quantile(mine, (size_t)samples, 1.0) / (double)median,
		       slow, samples);
	}
	printf("  CPUs slow in at least one sample: %d of %d; slow samples: "
	       "%d of %zu\n", slow_cpus, ncpus, slow_samples, total);
	free(t);
	free(all);
	free(mine);
}

/* --- load: K busy CPUs beside one ---------------------------------------- */

struct busy {
	pthread_t th;
	int cpu;
	enum kind kind;
	volatile int *stop;
};

static void *busy_main(void *arg)
{
	struct busy *b = arg;
	uint64_t *buf = b->kind == MEMORY ? new_buffer() : NULL;

	pin_self(b->cpu);
	while (!*b->stop)
		sink = b->kind == COMPUTE ? compute_loop(compute_iters / 8 + 1)
					  : memory_loop(buf, MEM_BYTES / 8);
	free(buf);
	return NULL;
}

/*
 * For each rep: one CPU's loop alone, then the same CPU's loop with the K
 * CPUs after it busy.  The pair is taken back to back, so that a CPU that
 * is slow at the moment is slow in both halves; the reps go round the
 * CPUs.
 */
static void probe_load(void)
{
	static const int ks[] = { 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64 };
	int reps = quick ? 3 : 16;
	uint64_t *buf = new_buffer();
	uint64_t *ratio_x1000 = calloc((size_t)reps, sizeof(*ratio_x1000));

	if (!ratio_x1000) {
		fprintf(stderr, "cpu_probe: out of memory\n");
		exit(1);
	}
	printf("\nload: one loop with K other CPUs running the same loop, "
	       "/ the same CPU alone just before (median and p90 of %d)\n",
	       reps);
	printf("     K   compute (p90)    memory (p90)\n");
	for (size_t j = 0; j < sizeof(ks) / sizeof(ks[0]); j++) {
		int k = ks[j] < ncpus ? ks[j] : ncpus - 1;

		if (k < 1 || (j > 0 && ks[j - 1] >= ncpus - 1))
			break;
		printf("  %4d", k);
		for (int kind = COMPUTE; kind <= MEMORY; kind++) {
			for (int r = 0; r < reps; r++) {
				int at = r % ncpus;
				volatile int stop = 0;
				struct busy *b = calloc((size_t)k, sizeof(*b));
				uint64_t alone, loaded;

				if (!b) {
					fprintf(stderr, "cpu_probe: out of memory\n");
					exit(1);
				}
				pin_self(cpus[at]);
				alone = timed_loop((enum kind)kind, buf);
				for (int i = 0; i < k; i++) {
					b[i].cpu = cpus[(at + 1 + i) % ncpus];
					b[i].kind = (enum kind)kind;
					b[i].stop = &stop;
					if (pthread_create(&b[i].th, NULL, busy_main,
							   &b[i])) {
						fprintf(stderr, "cpu_probe: no thread\n");
						exit(1);
					}
				}
				usleep(kind == MEMORY ? 100000 : 2000);
				loaded = timed_loop((enum kind)kind, buf);
				stop = 1;
				for (int i = 0; i < k; i++)
					pthread_join(b[i].th, NULL);
				free(b);
				ratio_x1000[r] = loaded * 1000 / (alone ? alone : 1);
			}
			printf("  %7.3fx (%5.2f)",
			       (double)quantile(ratio_x1000, (size_t)reps, 0.5) / 1e3,
			       (double)quantile(ratio_x1000, (size_t)reps, 0.9) / 1e3);
		}
		printf("\n");
		fflush(stdout);
	}
	free(buf);
	free(ratio_x1000);
}

/* --- wake: a sleeping thread's wake-up ----------------------------------- */

/*
 * One hand-off at a time: the waiter says it is ready, the waker (after
 * the sleep asked for) sets @word and wakes it, the waiter stamps @seen.
 * Only the waker writes @word: it clears it before it lets the waiter go
 * round again, and its last store (quit) cannot be overwritten.
 */
struct handoff {
	int word;             /* the futex: 1 = go */
	volatile int ready;   /* the waiter waits (again) */
	volatile int quit;
	volatile uint64_t sent, seen;
	bool spin;            /* the waiter spins instead of sleeping */
	int cpu;
};

static void *waiter_main(void *arg)
{
	struct handoff *h = arg;

	pin_self(h->cpu);
	while (!h->quit) {
		h->ready = 1;
		while (!__atomic_load_n(&h->word, __ATOMIC_ACQUIRE)) {
			if (h->spin)
				continue;
			syscall(SYS_futex, &h->word, FUTEX_WAIT_PRIVATE, 0,
				NULL, NULL, 0);
		}
		h->seen = now_ns();
		while (h->ready && !h->quit)
			; /* until the waker has read @seen */
	}
	return NULL;
}

/* Median and p90 wake-up latency (ns) after the waiter slept @sleep_ns. */
static void handoffs(uint64_t sleep_ns, bool spin, int reps, int waker_cpu,
		     int waiter_cpu, uint64_t *med, uint64_t *p90)
{
	struct handoff h = { .spin = spin, .cpu = waiter_cpu };
	uint64_t *lat = calloc((size_t)reps, sizeof(*lat));
	pthread_t th;

	if (!lat || pthread_create(&th, NULL, waiter_main, &h)) {
		fprintf(stderr, "cpu_probe: no thread\n");
		exit(1);
	}
	pin_self(waker_cpu);
	for (int r = 0; r < reps; r++) {
		uint64_t until;

		while (!h.ready)
			;
		/* The waker stays busy meanwhile, as a client in its CPU
		 * phase: only the waiter's CPU goes idle. */
		until = now_ns() + sleep_ns;
		while (now_ns() < until)
			;
		h.sent = now_ns();
		__atomic_store_n(&h.word, 1, __ATOMIC_RELEASE);
		if (!spin)
			syscall(SYS_futex, &h.word, FUTEX_WAKE_PRIVATE, 1,
				NULL, NULL, 0);
		while (!h.seen)
			;
		lat[r] = h.seen - h.sent;
		h.seen = 0;
		__atomic_store_n(&h.word, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&h.ready, 0, __ATOMIC_RELEASE);
	}
	h.quit = 1;
	__atomic_store_n(&h.word, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &h.word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	pthread_join(th, NULL);
	*p90 = quantile(lat, (size_t)reps, 0.9);
	*med = quantile(lat, (size_t)reps, 0.5);
	free(lat);
}

static void probe_wake(void)
{
	static const uint64_t sleep_us[] = { 20, 100, 1000, 5000, 20000 };
	int waker = cpus[ncpus > 2 ? 1 : 0]; /* CPU 0 takes most interrupts */
	int waiter = cpus[ncpus > 2 ? 2 : 1];
	uint64_t spin_med, spin_p90;

	handoffs(0, true, quick ? 50 : 2000, waker, waiter, &spin_med, &spin_p90);
	printf("\nwake: a futex wake-up after the woken thread slept D (waker on "
	       "CPU %d, busy meanwhile; waiter on CPU %d)\n", waker, waiter);
	printf("  against a hand-off to a spinning thread: %.2f us median, "
	       "%.2f us p90\n", (double)spin_med / 1e3, (double)spin_p90 / 1e3);
	printf("        D    median       p90   median - spinning\n");
	for (size_t j = 0; j < sizeof(sleep_us) / sizeof(sleep_us[0]); j++) {
		uint64_t d = sleep_us[j] * 1000, med, p90;
		/* about a second per D, at least 10 (quick: 5) wake-ups */
		int reps = (int)(1000000000ull / (d + 20000));

		if (quick && sleep_us[j] > 5000)
			break;
		if (quick)
			reps = reps < 5 ? 5 : reps > 20 ? 20 : reps;
		else
			reps = reps < 10 ? 10 : reps;
		handoffs(d, false, reps, waker, waiter, &med, &p90);
		printf("  %5llu us  %6.1f us  %6.1f us  %+8.1f us\n",
		       (unsigned long long)sleep_us[j], (double)med / 1e3,
		       (double)p90 / 1e3, ((double)med - (double)spin_med) / 1e3);
		fflush(stdout);
	}
}

/* --- main ---------------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr, "usage: cpu_probe [speed|load|wake|all] [--quick]\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *what = "all";
	cpu_set_t set;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return usage() - 2;
		else if (!strcmp(argv[i], "speed") || !strcmp(argv[i], "load") ||
			 !strcmp(argv[i], "wake") || !strcmp(argv[i], "all"))
			what = argv[i];
		else
			return usage();
	}
	if (sched_getaffinity(0, sizeof(set), &set)) {
		fprintf(stderr, "cpu_probe: sched_getaffinity: %s\n",
			strerror(errno));
		return 1;
	}
	for (int c = 0; c < CPU_SETSIZE && ncpus < MAX_CPUS; c++)
		if (CPU_ISSET(c, &set))
			cpus[ncpus++] = c;
	calibrate(quick ? 1.0 : 5.0);
	printf("cpu_probe: %d CPUs to run on; compute loop %.1f ms, memory loop "
	       "%u MiB per thread%s\n", ncpus, quick ? 1.0 : 5.0, MEM_BYTES >> 20,
	       quick ? " (--quick)" : "");
	if (!strcmp(what, "speed") || !strcmp(what, "all"))
		probe_speed();
	if (ncpus > 1 && (!strcmp(what, "load") || !strcmp(what, "all")))
		probe_load();
	if (!strcmp(what, "wake") || !strcmp(what, "all")) {
		if (ncpus > 1)
			probe_wake();
		else /* a spinning waiter would hold the waker's one CPU */
			printf("\nwake: needs two CPUs to run on\n");
	}
	return 0;
}
