/*
 * interference.cu - what one context's GPU calls cost another context's
 * kernels on a GPU without MPS, where contexts are time-sliced.
 *
 * Under overlap-cpu-copy a function that does not hold the partition's
 * turn may still copy while the holder's kernels run.  On a whole GPU or a
 * MIG slice without MPS the two are different contexts, and whatever the
 * second one puts on an engine that the first is using makes the GPU
 * switch between them.  This program measures the price, per call:
 *
 *   the holder (this process) launches back-to-back kernels of about
 *   --kernel-us each, --kernels of them, and times them with events;
 *   the other (a child process, its own context) issues one call of the
 *   given kind every --period-us and waits for it, during that time.
 *
 * For each kind it prints the holder's time against the child idle (its
 * context made, nothing issued) and the extra time per call of the child,
 * median of --reps; and the child's own time per call, issued to
 * synchronized, during those runs ("call us") and with the holder idle
 * ("alone us", over 40 periods before them).  A benchmark, not a test: it prints a table and exits 0
 * unless the GPU could not be used.
 *
 * Usage: interference [--kernels N] [--kernel-us U] [--period-us P] [--reps R]
 */
#include <cuda_runtime.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#define CHECK(call)                                                             \
	do {                                                                    \
		cudaError_t e_ = (call);                                        \
		if (e_ != cudaSuccess) {                                        \
			fprintf(stderr, "interference: %s: %s (line %d)\n", #call, \
				cudaGetErrorString(e_), __LINE__);               \
			exit(2);                                                \
		}                                                               \
	} while (0)

/* What the other context issues, once per period: a call of one kind, of
 * one size. */
enum call_op {
	IDLE,
	H2D_PINNED,
	H2D_PAGEABLE,
	H2D_2D_PINNED,
	H2D_2D_ROW,      /* one row of the whole size, from pinned memory */
	H2D_2D_HALVES,   /* two contiguous rows of half the size each */
	D2H_PINNED,
	D2H_PAGEABLE,
	D2D,
	D2D_2D_ROW,      /* one row */
	D2D_2D_PITCHED,  /* rows of 1 KiB, pitched 2 KiB on both sides */
	MEMSET,
	MEMSET_2D_ROW,
	MEMSET_2D_PITCHED,
	EMPTY_KERNEL,
	SYNC_ONLY,
	/* The same copies as one-element batches (cudaMemcpyBatchAsync) with
	 * the hint cudaMemcpyFlagPreferOverlapWithCompute: whether the driver
	 * then puts a small one on a copy engine, beside the holder's kernels,
	 * instead of on the compute engine that preempts them. */
	H2D_PINNED_HINT,
	H2D_PAGEABLE_HINT,
	D2D_HINT
};

struct call_kind {
	const char *name;
	enum call_op op;
	size_t bytes;
};

#define KIB 1024u
#define MIB (1024u * 1024u)
#define LARGE (16 * MIB) /* the largest size below; 2D rows are pitched 2x */

static const struct call_kind kinds[] = {
	{"(idle)", IDLE, 0},
	{"H2D pinned", H2D_PINNED, 4 * KIB},
	{"H2D pinned", H2D_PINNED, 8 * KIB},
	{"H2D pinned", H2D_PINNED, 16 * KIB},
	{"H2D pinned", H2D_PINNED, 24 * KIB},
	{"H2D pinned", H2D_PINNED, 32 * KIB},
	{"H2D pinned", H2D_PINNED, 48 * KIB},
	{"H2D pinned", H2D_PINNED, 64 * KIB},
	{"H2D pinned", H2D_PINNED, 1 * MIB},
	{"H2D pageable", H2D_PAGEABLE, 4 * KIB},
	{"H2D pageable", H2D_PAGEABLE, 64 * KIB},
	{"H2D pageable", H2D_PAGEABLE, 65 * KIB},
	{"H2D pageable", H2D_PAGEABLE, 256 * KIB},
	{"H2D pageable", H2D_PAGEABLE, 1 * MIB},
	{"H2D 2D pinned", H2D_2D_PINNED, 4 * KIB},
	{"H2D 2D pinned", H2D_2D_PINNED, 1 * MIB},
	{"H2D 2D one row", H2D_2D_ROW, 4 * KIB},
	{"H2D 2D one row", H2D_2D_ROW, 16 * KIB},
	{"H2D 2D two halves", H2D_2D_HALVES, 8},
	{"H2D 2D two halves", H2D_2D_HALVES, 4 * KIB},
	{"H2D 2D two halves", H2D_2D_HALVES, 4 * KIB + 2}, /* rows of an odd width */
	{"H2D 2D two halves", H2D_2D_HALVES, 30 * KIB},
	{"D2H pinned", D2H_PINNED, 4 * KIB},
	{"D2H pinned", D2H_PINNED, 16 * MIB},
	{"D2H pageable", D2H_PAGEABLE, 4 * KIB},
	{"D2D", D2D, 4 * KIB},
	{"D2D", D2D, 16 * MIB},
	{"D2D 2D one row", D2D_2D_ROW, 4 * KIB},
	{"D2D 2D pitched", D2D_2D_PITCHED, 4 * KIB},
	{"memset", MEMSET, 4 * KIB},
	{"memset", MEMSET, 16 * MIB},
	{"memset 2D one row", MEMSET_2D_ROW, 4 * KIB},
	{"memset 2D pitched", MEMSET_2D_PITCHED, 4 * KIB},
	{"empty kernel", EMPTY_KERNEL, 0},
	{"stream sync, no work", SYNC_ONLY, 0},
	{"H2D pinned, batch+hint", H2D_PINNED_HINT, 4 * KIB},
	{"H2D pinned, batch+hint", H2D_PINNED_HINT, 16 * KIB},
	{"H2D pageable, batch+hint", H2D_PAGEABLE_HINT, 4 * KIB},
	{"D2D, batch+hint", D2D_HINT, 4 * KIB},
	{"D2D, batch+hint", D2D_HINT, 16 * MIB},
};
#define NKINDS (int)(sizeof(kinds) / sizeof(kinds[0]))

/* Shared between the two processes (an anonymous shared mapping). */
struct control {
	int kind;          /* what the other issues now; -1: stop */
	int acked;         /* the kind the other has switched to */
	long calls;        /* calls the other completed */
	long long call_ns; /* and the time they took, issue to synchronized */
	int ready;         /* the other's context exists */
	int failed;
	int refused;       /* a hinted kind the driver refused (-1: none), and */
	int refused_err;   /* its cudaError_t */
};

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000ll + t.tv_nsec;
}

__global__ void spin(long long cycles)
{
	long long t0 = clock64();
	while (clock64() - t0 < cycles)
		;
}

__global__ void empty(void)
{
}

/* One copy as a batch of one, with the hint to overlap compute work. */
static cudaError_t hinted_copy(void *dst, const void *src, size_t bytes, cudaStream_t s)
{
	struct cudaMemcpyAttributes attr;
	size_t first = 0;

	memset(&attr, 0, sizeof(attr));
	attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
	attr.flags = cudaMemcpyFlagPreferOverlapWithCompute;
	return cudaMemcpyBatchAsync(&dst, &src, &bytes, 1, &attr, &first, 1, s);
}

/* The other context: issue calls of the current kind until told to stop. */
static void other(struct control *c, long period_ns)
{
	void *dev, *pinned, *pageable;
	cudaStream_t s;

	if (cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) != cudaSuccess ||
	    cudaMalloc(&dev, 2 * LARGE) != cudaSuccess ||
	    cudaMallocHost(&pinned, 2 * LARGE) != cudaSuccess ||
	    !(pageable = calloc(1, LARGE))) {
		__atomic_store_n(&c->failed, 1, __ATOMIC_RELEASE);
		_exit(2);
	}
	__atomic_store_n(&c->ready, 1, __ATOMIC_RELEASE);
	for (;;) {
		int kind = __atomic_load_n(&c->kind, __ATOMIC_ACQUIRE);
		long long next = now_ns() + period_ns;

		if (kind < 0)
			break;
		__atomic_store_n(&c->acked, kind, __ATOMIC_RELEASE);
		const struct call_kind *k = &kinds[kind];
		char *d = (char *)dev;
		long long t0 = now_ns();
		cudaError_t e = cudaSuccess;
		switch (k->op) {
		case IDLE:
		case SYNC_ONLY:
			break;
		case H2D_PINNED:
			e = cudaMemcpyAsync(dev, pinned, k->bytes, cudaMemcpyHostToDevice, s);
			break;
		case H2D_PAGEABLE:
			e = cudaMemcpyAsync(dev, pageable, k->bytes, cudaMemcpyHostToDevice, s);
			break;
		case H2D_2D_PINNED: /* rows of 1 KiB, pitched 2 KiB on the host */
			e = cudaMemcpy2DAsync(dev, KIB, pinned, 2 * KIB, KIB, k->bytes / KIB,
					      cudaMemcpyHostToDevice, s);
			break;
		case H2D_2D_ROW:
			e = cudaMemcpy2DAsync(dev, k->bytes, pinned, k->bytes, k->bytes, 1,
					      cudaMemcpyHostToDevice, s);
			break;
		case H2D_2D_HALVES:
			e = cudaMemcpy2DAsync(dev, k->bytes / 2, pinned, k->bytes / 2, k->bytes / 2,
					      2, cudaMemcpyHostToDevice, s);
			break;
		case D2H_PINNED:
			e = cudaMemcpyAsync(pinned, dev, k->bytes, cudaMemcpyDeviceToHost, s);
			break;
		case D2H_PAGEABLE:
			e = cudaMemcpyAsync(pageable, dev, k->bytes, cudaMemcpyDeviceToHost, s);
			break;
		case D2D:
			e = cudaMemcpyAsync(d + LARGE, d, k->bytes, cudaMemcpyDeviceToDevice, s);
			break;
		case D2D_2D_ROW:
			e = cudaMemcpy2DAsync(d + LARGE, k->bytes, d, k->bytes, k->bytes, 1,
					      cudaMemcpyDeviceToDevice, s);
			break;
		case D2D_2D_PITCHED:
			e = cudaMemcpy2DAsync(d + LARGE, 2 * KIB, d, 2 * KIB, KIB, k->bytes / KIB,
					      cudaMemcpyDeviceToDevice, s);
			break;
		case MEMSET:
			e = cudaMemsetAsync(dev, 0, k->bytes, s);
			break;
		case MEMSET_2D_ROW:
			e = cudaMemset2DAsync(dev, k->bytes, 0, k->bytes, 1, s);
			break;
		case MEMSET_2D_PITCHED:
			e = cudaMemset2DAsync(dev, 2 * KIB, 0, KIB, k->bytes / KIB, s);
			break;
		case EMPTY_KERNEL:
			empty<<<1, 32, 0, s>>>();
			e = cudaGetLastError();
			break;
		case H2D_PINNED_HINT:
			e = hinted_copy(dev, pinned, k->bytes, s);
			break;
		case H2D_PAGEABLE_HINT:
			e = hinted_copy(dev, pageable, k->bytes, s);
			break;
		case D2D_HINT:
			e = hinted_copy(d + LARGE, d, k->bytes, s);
			break;
		}
		if (k->op != IDLE && e == cudaSuccess)
			e = cudaStreamSynchronize(s);
		if (e != cudaSuccess && k->op >= H2D_PINNED_HINT) {
			/* A driver may not take the batch or its hint: say so, go on. */
			__atomic_store_n(&c->refused_err, (int)e, __ATOMIC_RELAXED);
			__atomic_store_n(&c->refused, kind, __ATOMIC_RELEASE);
			cudaGetLastError();
			while (now_ns() < next)
				;
			continue;
		}
		if (e != cudaSuccess) {
			__atomic_store_n(&c->failed, 1, __ATOMIC_RELEASE);
			_exit(2);
		}
		if (k->op != IDLE) {
			__atomic_add_fetch(&c->call_ns, now_ns() - t0, __ATOMIC_ACQ_REL);
			__atomic_add_fetch(&c->calls, 1, __ATOMIC_ACQ_REL);
		}
		while (now_ns() < next)
			; /* a spinning wait: the period stays the period */
	}
	_exit(0);
}

/* The holder's kernels, timed: @n back-to-back spins of @cycles. */
static float holder_ms(int n, long long cycles, int blocks, cudaStream_t s, cudaEvent_t a,
		       cudaEvent_t b)
{
	float ms;

	CHECK(cudaEventRecord(a, s));
	for (int i = 0; i < n; i++)
		spin<<<blocks, 256, 0, s>>>(cycles);
	CHECK(cudaEventRecord(b, s));
	CHECK(cudaEventSynchronize(b));
	CHECK(cudaEventElapsedTime(&ms, a, b));
	return ms;
}

static void switch_other(struct control *c, int kind)
{
	__atomic_store_n(&c->kind, kind, __ATOMIC_RELEASE);
	while (__atomic_load_n(&c->acked, __ATOMIC_ACQUIRE) != kind) {
		if (__atomic_load_n(&c->failed, __ATOMIC_ACQUIRE)) {
			fprintf(stderr, "interference: the other context failed\n");
			exit(2);
		}
		usleep(100);
	}
	usleep(2000); /* a few periods in the new kind before timing */
}

int main(int argc, char **argv)
{
	int kernels = 4000, reps = 5;
	double kernel_us = 20, period_us = 500;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--kernels"))
			kernels = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--kernel-us"))
			kernel_us = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--period-us"))
			period_us = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--reps"))
			reps = atoi(argv[i + 1]);
		else {
			fprintf(stderr, "usage: %s [--kernels N] [--kernel-us U] [--period-us P] [--reps R]\n",
				argv[0]);
			return 2;
		}
	}
	if (argc % 2 == 0 || kernels < 1 || reps < 1 || kernel_us <= 0 || period_us <= 0) {
		fprintf(stderr, "usage: %s [--kernels N] [--kernel-us U] [--period-us P] [--reps R]\n",
			argv[0]);
		return 2;
	}

	/* Before any CUDA call: the child gets a context of its own. */
	struct control *c = (struct control *)mmap(NULL, sizeof(*c), PROT_READ | PROT_WRITE,
						   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c == MAP_FAILED) {
		perror("interference: mmap");
		return 2;
	}
	memset(c, 0, sizeof(*c));
	c->acked = -2;
	c->refused = -1;
	pid_t pid = fork();
	if (pid < 0) {
		perror("interference: fork");
		return 2;
	}
	if (pid == 0)
		other(c, (long)(period_us * 1e3));

	cudaStream_t s;
	cudaEvent_t a, b;
	cudaDeviceProp prop;
	CHECK(cudaGetDeviceProperties(&prop, 0));
	CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
	CHECK(cudaEventCreate(&a));
	CHECK(cudaEventCreate(&b));
	while (!__atomic_load_n(&c->ready, __ATOMIC_ACQUIRE)) {
		if (__atomic_load_n(&c->failed, __ATOMIC_ACQUIRE) || waitpid(pid, NULL, WNOHANG) == pid) {
			fprintf(stderr, "interference: the other context could not start\n");
			return 2;
		}
		usleep(1000);
	}

	/* Kernels of about kernel_us: two blocks per multiprocessor. */
	int blocks = 2 * prop.multiProcessorCount, khz = 0;
	CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0));
	long long cycles = (long long)(kernel_us * khz / 1e3);
	switch_other(c, IDLE);
	holder_ms(200, cycles, blocks, s, a, b); /* warm-up */
	float probe = holder_ms(200, cycles, blocks, s, a, b);
	cycles = (long long)(cycles * kernel_us / (probe * 1e3 / 200));

	int drv = 0;
	cudaDriverGetVersion(&drv);
	printf("interference: %s, driver API %d; holder: %d kernels of %.0f us (%d blocks x 256), "
	       "the other: one call every %.0f us, waited for; median of %d\n",
	       prop.name, drv, kernels, kernel_us, blocks, period_us, reps);
	printf("%-26s %8s %8s %12s %10s %14s %10s %10s\n", "the other issues", "bytes", "calls",
	       "holder [ms]", "vs idle", "holder us/call", "call us", "alone us");

	float idle = 0;
	for (int kind = IDLE; kind < NKINDS; kind++) {
		std::vector<float> t, n;
		switch_other(c, kind);
		/* The other's calls alone first: what one takes, issued to
		 * synchronized, with nothing of ours on the GPU. */
		long calls0 = __atomic_load_n(&c->calls, __ATOMIC_ACQUIRE);
		long long ns0 = __atomic_load_n(&c->call_ns, __ATOMIC_ACQUIRE);
		usleep((useconds_t)(40 * period_us));
		long alone_calls = __atomic_load_n(&c->calls, __ATOMIC_ACQUIRE) - calls0;
		double alone_us = alone_calls ? (__atomic_load_n(&c->call_ns, __ATOMIC_ACQUIRE) - ns0)
						       / 1e3 / alone_calls : 0;
		calls0 = __atomic_load_n(&c->calls, __ATOMIC_ACQUIRE);
		ns0 = __atomic_load_n(&c->call_ns, __ATOMIC_ACQUIRE);
		for (int r = 0; r < reps; r++) {
			long before = __atomic_load_n(&c->calls, __ATOMIC_ACQUIRE);
			t.push_back(holder_ms(kernels, cycles, blocks, s, a, b));
			n.push_back((float)(__atomic_load_n(&c->calls, __ATOMIC_ACQUIRE) - before));
		}
		long busy_calls = __atomic_load_n(&c->calls, __ATOMIC_ACQUIRE) - calls0;
		double busy_us = busy_calls ? (__atomic_load_n(&c->call_ns, __ATOMIC_ACQUIRE) - ns0)
						      / 1e3 / busy_calls : 0;
		std::sort(t.begin(), t.end());
		std::sort(n.begin(), n.end());
		float ms = t[t.size() / 2], calls = n[n.size() / 2];
		if (kind == IDLE)
			idle = ms;
		char size[24] = "-";
		if (kinds[kind].bytes >= MIB)
			snprintf(size, sizeof(size), "%zu MiB", kinds[kind].bytes / MIB);
		else if (kinds[kind].bytes && kinds[kind].bytes % KIB == 0)
			snprintf(size, sizeof(size), "%zu KiB", kinds[kind].bytes / KIB);
		else if (kinds[kind].bytes)
			snprintf(size, sizeof(size), "%zu B", kinds[kind].bytes);
		if (__atomic_load_n(&c->refused, __ATOMIC_ACQUIRE) == kind) {
			printf("%-26s %8s   refused by the driver: %s\n", kinds[kind].name, size,
			       cudaGetErrorName((cudaError_t)__atomic_load_n(&c->refused_err,
									__ATOMIC_RELAXED)));
			continue;
		}
		printf("%-26s %8s %8.0f %12.2f %9.3fx", kinds[kind].name, size, calls, ms, ms / idle);
		if (kind != IDLE && calls > 0)
			printf(" %14.1f %10.1f %10.1f\n", (ms - idle) * 1e3 / calls, busy_us, alone_us);
		else
			printf(" %14s %10s %10s\n", "-", "-", "-");
	}
	__atomic_store_n(&c->kind, -1, __ATOMIC_RELEASE);
	int status = 0;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 2;
}
