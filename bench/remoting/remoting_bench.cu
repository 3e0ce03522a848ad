/*
 * remoting_bench.cu - what remoting costs a CUDA program, measured from
 * inside the program.
 *
 * One binary, built with nvcc against the static CUDA runtime, run twice by
 * bench/remoting/run.py: once on the real libcuda.so.1 ("native") and once
 * under `mig run` ("mignificent"), where the shim is libcuda.so.1 and every
 * driver call crosses the shared-memory channel to mig-gpud.  The program
 * does not need to know which; it only looks for mignificent_malloc to
 * decide what its third host memory kind is.
 *
 * Output is one line per result, for machines:
 *
 *   info <key> <text...>
 *   metric <name> <value> <unit> [note...]
 *   error <name> <message...>
 *
 * Latencies are in microseconds ("us"), bandwidths in GB/s (1e9 bytes per
 * second).  All times are host wall-clock (CLOCK_MONOTONIC) around the
 * calls a user would make, because that is what a user sees.  A copy
 * metric that cannot be measured (allocation or copy failed) gets an
 * `error` line instead and the run goes on, so one broken size does not
 * hide the rest; the exit status is then 3.  Failures of the latency
 * metrics, which every other metric depends on, end the run (status 1).
 *
 * Metrics:
 *   launch_async_us      N launches of an empty kernel and one trailing
 *                        cudaDeviceSynchronize, divided by N: the sustained
 *                        launch rate (median of several batches).  The
 *                        trailing sync is inside the timed region so that a
 *                        path that only queues launches cannot look faster
 *                        than one that executes them.
 *   launch_enqueue_us    the same batches without the trailing sync: how
 *                        long the program is blocked per launch
 *                        (informational).
 *   launch_sync_us       one launch + cudaStreamSynchronize (median).
 *   device_sync_idle_us  cudaDeviceSynchronize with nothing queued (median).
 *   memcpy_1B_pair_us    1-byte H->D then 1-byte D->H cudaMemcpy from
 *                        pageable memory (median of the pair).
 *   h2d_pageable_588KiB_after_cpu_us, launch_sync_after_cpu_us
 *                        a synchronous copy of a vision model's input
 *                        tensor (224 x 224 x 3 floats) from pageable
 *                        memory, and one launch + cudaStreamSynchronize,
 *                        each after CPU work (5 ms, 2 ms with --quick):
 *                        what a function's request meets after its CPU
 *                        phase, every helper thread and server asleep
 *                        (median; informational).
 *   {h2d,d2h}_{pageable,pinned,mignificent_malloc}_<size>
 *                        synchronous cudaMemcpy bandwidth, GB/s, from the
 *                        median time of >= MIN_REPS copies and >= ~50 ms.
 *
 * Host memory kinds: "pageable" is malloc'ed and touched first; "pinned" is
 * cudaMallocHost; "mignificent_malloc" is mignificent_malloc when the
 * program runs under mignificent, and cudaMallocHost otherwise (its line
 * then says "(native: cudaMallocHost)"), the native baseline for it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <algorithm>
#include <vector>

#include <cuda_runtime.h>

#define KIB (1ull << 10)
#define MIB (1ull << 20)

#define CHECK(x)                                                               \
	do {                                                                   \
		cudaError_t e_ = (x);                                          \
		if (e_ != cudaSuccess) {                                       \
			fprintf(stderr, "remoting_bench: %s:%d: %s: %s\n",     \
				__FILE__, __LINE__, #x,                        \
				cudaGetErrorString(e_));                       \
			exit(1);                                               \
		}                                                              \
	} while (0)

/*
 * The kernel every launch metric uses.  extern "C" keeps its name plain, so
 * the `host` test-double backend can bind it to the host function of the
 * same name in libmig_bench_kernels.so (bench_kernels.c).
 */
extern "C" __global__ void empty_kernel(void)
{
}

/* Set when an `error` line was printed: main() then exits with 3. */
static int soft_errors;

/* Run-time parameters; --quick shrinks them for a CI smoke run. */
struct params {
	int quick;
	unsigned long long max_size;
	int launch_batches;     /* batches of async launches */
	int launch_batch;       /* launches per batch */
	int lat_warmup;         /* untimed reps before a latency metric */
	int lat_reps;           /* timed reps of a latency metric */
	double bw_min_seconds;  /* timed copies per bandwidth point, at least */
	int bw_min_reps;
	int bw_max_reps;
	int cpu_reps;           /* timed reps of an after-CPU metric */
	double cpu_us;          /* the CPU work before each */
};

static const unsigned long long sizes[] = {
	4 * KIB, 64 * KIB, 1 * MIB, 4 * MIB, 16 * MIB, 64 * MIB, 256 * MIB,
};
/* Sizes a --quick run measures (a subset of sizes[]). */
static const unsigned long long quick_sizes[] = {
	4 * KIB, 1 * MIB, 4 * MIB, 16 * MIB,
};

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Median of @v (which it sorts). */
static double median(std::vector<double> &v)
{
	size_t n = v.size();

	std::sort(v.begin(), v.end());
	if (!n)
		return 0;
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void size_name(unsigned long long n, char *buf, size_t len)
{
	if (n >= MIB && n % MIB == 0)
		snprintf(buf, len, "%lluMiB", n / MIB);
	else if (n >= KIB && n % KIB == 0)
		snprintf(buf, len, "%lluKiB", n / KIB);
	else
		snprintf(buf, len, "%lluB", n);
}

/* --- launch and synchronization latency --------------------------------- */

static void bench_launch_async(const struct params *p)
{
	std::vector<double> total, enqueue;
	int b, i;

	for (b = 0; b < p->launch_batches + 1; b++) {
		double t0, t1, t2;

		CHECK(cudaDeviceSynchronize());
		t0 = now();
		for (i = 0; i < p->launch_batch; i++)
			empty_kernel<<<1, 1>>>();
		t1 = now();
		CHECK(cudaDeviceSynchronize());
		t2 = now();
		CHECK(cudaGetLastError());
		if (b == 0)
			continue; /* the first batch is the warm-up */
		enqueue.push_back((t1 - t0) * 1e6 / p->launch_batch);
		total.push_back((t2 - t0) * 1e6 / p->launch_batch);
	}
	printf("metric launch_async_us %.3f us\n", median(total));
	printf("metric launch_enqueue_us %.3f us\n", median(enqueue));
}

static void bench_launch_sync(const struct params *p)
{
	std::vector<double> v;
	int i;

	for (i = 0; i < p->lat_warmup + p->lat_reps; i++) {
		double t0 = now();

		empty_kernel<<<1, 1>>>();
		CHECK(cudaStreamSynchronize(0));
		if (i >= p->lat_warmup)
			v.push_back((now() - t0) * 1e6);
	}
	CHECK(cudaGetLastError());
	printf("metric launch_sync_us %.3f us\n", median(v));
}

static void bench_idle_sync(const struct params *p)
{
	std::vector<double> v;
	int i;

	CHECK(cudaDeviceSynchronize());
	for (i = 0; i < p->lat_warmup + p->lat_reps; i++) {
		double t0 = now();

		CHECK(cudaDeviceSynchronize());
		if (i >= p->lat_warmup)
			v.push_back((now() - t0) * 1e6);
	}
	printf("metric device_sync_idle_us %.3f us\n", median(v));
}

static void bench_byte_pair(const struct params *p)
{
	std::vector<double> v;
	unsigned char *h = (unsigned char *)malloc(64), *d;
	int i;

	if (!h) {
		fprintf(stderr, "remoting_bench: out of memory\n");
		exit(1);
	}
	memset(h, 0x5a, 64);
	CHECK(cudaMalloc(&d, 64));
	for (i = 0; i < p->lat_warmup + p->lat_reps; i++) {
		double t0 = now();

		CHECK(cudaMemcpy(d, h, 1, cudaMemcpyHostToDevice));
		CHECK(cudaMemcpy(h + 1, d, 1, cudaMemcpyDeviceToHost));
		if (i >= p->lat_warmup)
			v.push_back((now() - t0) * 1e6);
	}
	if (h[1] != 0x5a) {
		fprintf(stderr, "remoting_bench: 1-byte round trip returned 0x%02x, want 0x5a\n",
			h[1]);
		exit(1);
	}
	CHECK(cudaFree(d));
	free(h);
	printf("metric memcpy_1B_pair_us %.3f us\n", median(v));
}

/* --- after CPU work ------------------------------------------------------ */

/* Busy for @us, writing @buf's @n bytes as a transform writes its output. */
static void cpu_work(unsigned char *buf, size_t n, double us, int round)
{
	double end = now() + us * 1e-6;

	memset(buf, round & 0xff, n);
	while (now() < end)
		;
}

static void bench_after_cpu(const struct params *p)
{
	const size_t n = 224 * 224 * 3 * sizeof(float); /* 588 KiB */
	std::vector<double> copy, launch;
	unsigned char *h = (unsigned char *)malloc(n), *d;
	int i;

	if (!h) {
		fprintf(stderr, "remoting_bench: out of memory\n");
		exit(1);
	}
	CHECK(cudaMalloc(&d, n));
	for (i = 0; i < 2 + p->cpu_reps; i++) {
		double t0, t1;

		cpu_work(h, n, p->cpu_us, i);
		t0 = now();
		CHECK(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice));
		t1 = now();
		cpu_work(h, n, p->cpu_us, i);
		if (i >= 2) /* two warm-ups */
			copy.push_back((t1 - t0) * 1e6);
		t0 = now();
		empty_kernel<<<1, 1>>>();
		CHECK(cudaStreamSynchronize(0));
		t1 = now();
		if (i >= 2)
			launch.push_back((t1 - t0) * 1e6);
	}
	CHECK(cudaGetLastError());
	CHECK(cudaFree(d));
	free(h);
	printf("metric h2d_pageable_588KiB_after_cpu_us %.3f us\n", median(copy));
	printf("metric launch_sync_after_cpu_us %.3f us\n", median(launch));
}

/* --- copy bandwidth ------------------------------------------------------ */

/* mignificent_malloc/free when the program runs under mignificent. */
typedef void *(*mig_malloc_fn)(size_t);
typedef void (*mig_free_fn)(void *);
static mig_malloc_fn mig_malloc;
static mig_free_fn mig_free;

/*
 * Look for the shim's allocator.  It must be called after the runtime has
 * loaded libcuda.so.1.  RTLD_DEFAULT finds it when libcuda.so.1 is in the
 * global scope; the static runtime may have loaded it RTLD_LOCAL, so also
 * ask the already-loaded libcuda.so.1 itself (RTLD_NOLOAD loads nothing).
 */
static void find_mignificent(void)
{
	void *lib;

	mig_malloc = (mig_malloc_fn)dlsym(RTLD_DEFAULT, "mignificent_malloc");
	mig_free = (mig_free_fn)dlsym(RTLD_DEFAULT, "mignificent_free");
	if (mig_malloc && mig_free)
		return;
	lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
	if (lib) {
		mig_malloc = (mig_malloc_fn)dlsym(lib, "mignificent_malloc");
		mig_free = (mig_free_fn)dlsym(lib, "mignificent_free");
		/* Keep our reference: the runtime holds one anyway. */
	}
	if (!mig_malloc || !mig_free)
		mig_malloc = NULL, mig_free = NULL;
}

enum host_kind { HOST_PAGEABLE, HOST_PINNED, HOST_MIGNIFICENT, HOST_KINDS };

static const char *const kind_name[HOST_KINDS] = {
	"pageable", "pinned", "mignificent_malloc",
};

/*
 * Allocate @*size bytes of @kind.  The shim's segment is finite: when a
 * mignificent_malloc of @*size fails, halve until one succeeds and lower
 * @*size to what we got (larger sizes then get `error` lines).  Returns
 * NULL when nothing could be allocated.
 */
static void *host_alloc(enum host_kind kind, unsigned long long *size)
{
	void *p = NULL;

	switch (kind) {
	case HOST_PAGEABLE:
		p = malloc(*size);
		break;
	case HOST_PINNED:
		if (cudaMallocHost(&p, *size) != cudaSuccess)
			p = NULL;
		break;
	case HOST_MIGNIFICENT:
		if (!mig_malloc) {
			if (cudaMallocHost(&p, *size) != cudaSuccess)
				p = NULL;
			break;
		}
		while (!(p = mig_malloc(*size)) && *size > 4 * KIB) {
			fprintf(stderr, "remoting_bench: mignificent_malloc(%llu): %s; trying half\n",
				*size, strerror(errno));
			*size /= 2;
		}
		break;
	default:
		break;
	}
	if (!p) {
		fprintf(stderr, "remoting_bench: cannot allocate %llu bytes of %s memory\n",
			*size, kind_name[kind]);
		cudaGetLastError(); /* clear it: not a sticky error */
		*size = 0;
		return NULL;
	}
	/* Touch every page, so first-touch faults are not timed. */
	memset(p, 0x11, *size);
	return p;
}

static void host_free(enum host_kind kind, void *p)
{
	if (!p)
		return;
	if (kind == HOST_PAGEABLE)
		free(p);
	else if (kind == HOST_MIGNIFICENT && mig_malloc)
		mig_free(p);
	else
		CHECK(cudaFreeHost(p));
}

/*
 * Time synchronous copies of @n bytes, one at a time, until both
 * bw_min_reps copies and bw_min_seconds have passed (or bw_max_reps), and
 * print metric @name in GB/s from the median copy time, or an `error` line
 * when a copy fails.
 */
static void copy_bw(const struct params *p, const char *name, const char *note,
		    void *dst, const void *src, unsigned long long n,
		    enum cudaMemcpyKind dir)
{
	std::vector<double> v;
	double spent = 0;
	cudaError_t e;

	e = cudaMemcpy(dst, src, n, dir); /* warm-up */
	while (!e && (int)v.size() < p->bw_max_reps &&
	       ((int)v.size() < p->bw_min_reps || spent < p->bw_min_seconds)) {
		double t0 = now(), dt;

		e = cudaMemcpy(dst, src, n, dir);
		dt = now() - t0;
		v.push_back(dt);
		spent += dt;
	}
	if (e) {
		printf("error %s cudaMemcpy: %s\n", name, cudaGetErrorString(e));
		fprintf(stderr, "remoting_bench: %s: cudaMemcpy(%llu bytes): %s\n",
			name, n, cudaGetErrorString(e));
		cudaGetLastError(); /* clear it, if it is not sticky */
		soft_errors = 1;
		return;
	}
	printf("metric %s %.3f GB/s%s\n", name, (double)n / 1e9 / median(v), note);
}

static void bench_bandwidth(const struct params *p)
{
	const unsigned long long *sz = p->quick ? quick_sizes : sizes;
	size_t nsz = p->quick ? sizeof(quick_sizes) / sizeof(quick_sizes[0]) :
				sizeof(sizes) / sizeof(sizes[0]);
	unsigned long long dmax = 0;
	void *dev;
	size_t i;
	int k;

	for (i = 0; i < nsz; i++)
		if (sz[i] <= p->max_size)
			dmax = std::max(dmax, sz[i]);
	if (!dmax)
		return;
	CHECK(cudaMalloc(&dev, dmax));
	CHECK(cudaMemset(dev, 0x22, dmax));
	CHECK(cudaDeviceSynchronize());

	for (k = 0; k < HOST_KINDS; k++) {
		enum host_kind kind = (enum host_kind)k;
		unsigned long long have = dmax;
		const char *note = kind == HOST_MIGNIFICENT && !mig_malloc ?
					   " (native: cudaMallocHost)" : "";
		void *host = host_alloc(kind, &have);

		for (i = 0; i < nsz; i++) {
			char sn[32], h2d[96], d2h[96];

			if (sz[i] > p->max_size)
				continue;
			size_name(sz[i], sn, sizeof(sn));
			snprintf(h2d, sizeof(h2d), "h2d_%s_%s", kind_name[kind], sn);
			snprintf(d2h, sizeof(d2h), "d2h_%s_%s", kind_name[kind], sn);
			if (sz[i] > have) {
				printf("error %s only %llu bytes of host memory\n", h2d, have);
				printf("error %s only %llu bytes of host memory\n", d2h, have);
				soft_errors = 1;
				continue;
			}
			copy_bw(p, h2d, note, dev, host, sz[i], cudaMemcpyHostToDevice);
			copy_bw(p, d2h, note, host, dev, sz[i], cudaMemcpyDeviceToHost);
		}
		host_free(kind, host);
	}
	CHECK(cudaFree(dev));
}

/* --- main ----------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: remoting_bench [--quick] [--max-size BYTES]\n"
		"  --quick           fewer repetitions and sizes (CI smoke run)\n"
		"  --max-size BYTES  skip copy sizes above BYTES (default 256 MiB;\n"
		"                    K, M, G suffixes are binary)\n");
}

static unsigned long long parse_size(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return 0;
	switch (*end) {
	case 'k': case 'K':
		v <<= 10, end++;
		break;
	case 'm': case 'M':
		v <<= 20, end++;
		break;
	case 'g': case 'G':
		v <<= 30, end++;
		break;
	}
	if (*end == 'i' || *end == 'B')
		end += *end == 'i' && end[1] == 'B' ? 2 : 1;
	return *end ? 0 : v;
}

int main(int argc, char **argv)
{
	struct params p = {};
	cudaDeviceProp prop;
	int i, drv = 0, rt = 0;

	p.max_size = 256 * MIB;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			p.quick = 1;
		} else if (!strcmp(argv[i], "--max-size") && i + 1 < argc) {
			p.max_size = parse_size(argv[++i]);
			if (!p.max_size) {
				fprintf(stderr, "remoting_bench: bad size '%s'\n", argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (p.quick) {
		p.launch_batches = 3;
		p.launch_batch = 200;
		p.lat_warmup = 50;
		p.lat_reps = 300;
		p.bw_min_seconds = 0.005;
		p.bw_min_reps = 3;
		p.bw_max_reps = 1000;
		p.cpu_reps = 20;
		p.cpu_us = 2000;
	} else {
		p.launch_batches = 9;
		p.launch_batch = 2000;
		p.lat_warmup = 200;
		p.lat_reps = 2000;
		p.bw_min_seconds = 0.05;
		p.bw_min_reps = 5;
		p.bw_max_reps = 20000;
		p.cpu_reps = 100;
		p.cpu_us = 5000;
	}
	/* A partial run still leaves every finished line behind. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	CHECK(cudaSetDevice(0));
	CHECK(cudaFree(0)); /* create the context: not part of any metric */
	find_mignificent();
	CHECK(cudaGetDeviceProperties(&prop, 0));
	CHECK(cudaDriverGetVersion(&drv));
	CHECK(cudaRuntimeGetVersion(&rt));
	printf("info mode %s\n", mig_malloc ? "mignificent" : "native");
	printf("info device %s\n", prop.name);
	printf("info driver_api %d\n", drv);
	printf("info runtime %d\n", rt);
	printf("info quick %d\n", p.quick);

	bench_launch_async(&p);
	bench_launch_sync(&p);
	bench_idle_sync(&p);
	bench_byte_pair(&p);
	bench_after_cpu(&p);
	bench_bandwidth(&p);

	CHECK(cudaDeviceSynchronize());
	printf("info done\n");
	return soft_errors ? 3 : 0;
}
