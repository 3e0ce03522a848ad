/*
 * fixture_fn.c - C functions that misbehave on purpose, for
 * tests/daemon/test_instances.py.  Built twice by the test: plain (no
 * CUDA) and with -DFIXTURE_GPU, linked against the shim, for the GPU
 * failure modes (the driver API, so no nvcc is needed).
 *
 * Handlers: empty echo fail crash sleep hang exit exit_late pid; with FIXTURE_GPU
 * also gpu_fault (a kernel that stores to address 0: an illegal address on
 * a GPU, and on the host test double through fixture_kernels.c) and
 * gpu_sleep (sleeps, then allocates device memory: to kill its GPU server
 * meanwhile).  mignificent_init fails when FIXTURE_FAIL_INIT is set.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mignificent.h"

#ifdef FIXTURE_GPU
#include <cuda.h>
#endif

static int reply(struct mig_payload *out, const char *s)
{
	out->len = strlen(s);
	out->data = malloc(out->len + 1);
	memcpy(out->data, s, out->len + 1);
	strcpy(out->content_type, "text/plain");
	return 0;
}

int mignificent_init(void)
{
	return getenv("FIXTURE_FAIL_INIT") ? 5 : 0;
}

int empty(const struct mig_payload *in, struct mig_payload *out)
{
	(void)in;
	(void)out;
	return 0;
}

int echo(const struct mig_payload *in, struct mig_payload *out)
{
	out->data = malloc(in->len + 1);
	memcpy(out->data, in->data, in->len);
	out->len = in->len;
	strcpy(out->content_type, "application/x-echo");
	return 0;
}

int fail(const struct mig_payload *in, struct mig_payload *out)
{
	(void)in;
	reply(out, "the fixture failed on purpose");
	return 3;
}

int crash(const struct mig_payload *in, struct mig_payload *out)
{
	(void)in;
	(void)out;
	raise(SIGSEGV); /* what a stray pointer does, without the UB */
	return 0;
}

int sleep_ms(const struct mig_payload *in, struct mig_payload *out)
{
	usleep((useconds_t)atoi(in->data) * 1000);
	return reply(out, "slept");
}

int hang(const struct mig_payload *in, struct mig_payload *out)
{
	(void)in;
	(void)out;
	for (;;)
		pause();
}

int exit_7(const struct mig_payload *in, struct mig_payload *out)
{
	(void)in;
	(void)out;
	exit(7);
}

/*
 * exit_late MS: what a process that dies slowly looks like from outside:
 * its descriptors (the control channel, the client lifeline) close first,
 * then, MS milliseconds later, it exits with status 7.
 */
int exit_late(const struct mig_payload *in, struct mig_payload *out)
{
	int ms = in->len ? atoi(in->data) : 0;

	(void)out;
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	usleep((useconds_t)ms * 1000);
	_exit(7);
}

int pid(const struct mig_payload *in, struct mig_payload *out)
{
	char buf[64];

	(void)in;
	snprintf(buf, sizeof(buf), "%d", (int)getpid());
	return reply(out, buf);
}

#ifdef FIXTURE_GPU
static const char fault_ptx[] =
	".version 8.0\n"
	".target sm_75\n"
	".address_size 64\n"
	".visible .entry fixture_fault(.param .u64 p)\n"
	"{\n"
	"	.reg .b64 %rd<2>;\n"
	"	.reg .b32 %r<2>;\n"
	"	ld.param.u64 %rd1, [p];\n"
	"	mov.u32 %r1, 1;\n"
	"	st.global.u32 [%rd1], %r1;\n"
	"	ret;\n"
	"}\n";

static int cu_fail(struct mig_payload *out, const char *what, CUresult r)
{
	char buf[160];
	const char *name = NULL;

	cuGetErrorName(r, &name);
	snprintf(buf, sizeof(buf), "%s: %s", what, name ? name : "?");
	reply(out, buf);
	return (int)r;
}

static CUresult context(void)
{
	static CUcontext ctx;
	CUdevice dev;
	CUresult r;

	if (ctx)
		return cuCtxSetCurrent(ctx);
	if ((r = cuInit(0)) || (r = cuDeviceGet(&dev, 0)) ||
	    (r = cuDevicePrimaryCtxRetain(&ctx, dev)))
		return r;
	return cuCtxSetCurrent(ctx);
}

/*
 * Load @ptx, launch its kernel @name on one thread with the 64-bit
 * argument @arg and synchronize; the driver's errors become the answer,
 * else @done.
 */
static int one_kernel(struct mig_payload *out, const char *ptx, const char *name,
		      uint64_t arg, const char *done)
{
	void *args[] = { &arg };
	CUmodule mod;
	CUfunction fn;
	CUresult r;

	if ((r = context()))
		return cu_fail(out, "context", r);
	if ((r = cuModuleLoadData(&mod, ptx)))
		return cu_fail(out, "cuModuleLoadData", r);
	if ((r = cuModuleGetFunction(&fn, mod, name)))
		return cu_fail(out, "cuModuleGetFunction", r);
	if ((r = cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL)))
		return cu_fail(out, "cuLaunchKernel", r);
	if ((r = cuCtxSynchronize()))
		return cu_fail(out, "cuCtxSynchronize", r);
	return reply(out, done);
}

/* A store to address 0. */
int gpu_fault(const struct mig_payload *in, struct mig_payload *out)
{
	(void)in;
	return one_kernel(out, fault_ptx, "fixture_fault", 0, "no fault?");
}

/* Ask for far more GPU memory than any partition has. */
int gpu_oom(const struct mig_payload *in, struct mig_payload *out)
{
	CUdeviceptr p;
	CUresult r;

	(void)in;
	if ((r = context()))
		return cu_fail(out, "context", r);
	if ((r = cuMemAlloc(&p, (size_t)1 << 50)))
		return cu_fail(out, "cuMemAlloc of 1 PiB", r);
	cuMemFree(p);
	return reply(out, "allocated 1 PiB?");
}

/* Spins for its argument's nanoseconds of %globaltimer. */
static const char busy_ptx[] =
	".version 8.0\n"
	".target sm_75\n"
	".address_size 64\n"
	".visible .entry fixture_busy(.param .u64 ns)\n"
	"{\n"
	"	.reg .b64 %rd<5>;\n"
	"	.reg .pred %p;\n"
	"	ld.param.u64 %rd1, [ns];\n"
	"	mov.u64 %rd2, %globaltimer;\n"
	"	add.u64 %rd3, %rd2, %rd1;\n"
	"LOOP:\n"
	"	mov.u64 %rd4, %globaltimer;\n"
	"	setp.lt.u64 %p, %rd4, %rd3;\n"
	"	@%p bra LOOP;\n"
	"	ret;\n"
	"}\n"
	".visible .entry fixture_empty(.param .u64 ns)\n"
	"{\n"
	"	ret;\n"
	"}\n";

static uint64_t clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Kernel @name (fixture_busy or fixture_empty) of busy_ptx, loaded once. */
static CUresult fixture_kernel(const char *name, CUfunction *out)
{
	static CUmodule mod;
	CUresult r;

	if (!mod && (r = cuModuleLoadData(&mod, busy_ptx)))
		return r;
	return cuModuleGetFunction(out, mod, name);
}

/*
 * gpu_phases "N GPU_MS CPU_MS [late]": N times a kernel busy for GPU_MS (30
 * ms on the test double), a synchronize, then CPU_MS of CPU work (a sleep);
 * with "late", the CPU work comes between the launch and the synchronize
 * (the client makes no call while its kernel runs and after).
 * Answers {"start": ns, "end": ns} (CLOCK_MONOTONIC, comparable between
 * instances).
 */
int gpu_phases(const struct mig_payload *in, struct mig_payload *out)
{
	CUfunction fn;
	unsigned int n = 0, gpu_ms = 0, cpu_ms = 0;
	uint64_t ns, start, end;
	void *args[] = { &ns };
	char buf[96], late[8] = "";
	CUresult r;

	if (sscanf(in->data ? in->data : "", "%u %u %u %7s", &n, &gpu_ms, &cpu_ms,
		   late) < 3 || (*late && strcmp(late, "late")))
		return reply(out, "payload: N GPU_MS CPU_MS [late]");
	ns = (uint64_t)gpu_ms * 1000000ull;
	if ((r = context()))
		return cu_fail(out, "context", r);
	if ((r = fixture_kernel("fixture_busy", &fn)))
		return cu_fail(out, "loading fixture_busy", r);
	start = clock_ns(CLOCK_MONOTONIC);
	for (unsigned int i = 0; i < n; i++) {
		if ((r = cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL)))
			return cu_fail(out, "cuLaunchKernel", r);
		if (*late)
			usleep(cpu_ms * 1000);
		if ((r = cuCtxSynchronize()))
			return cu_fail(out, "cuCtxSynchronize", r);
		if (!*late)
			usleep(cpu_ms * 1000);
	}
	end = clock_ns(CLOCK_MONOTONIC);
	snprintf(buf, sizeof(buf), "{\"start\": %llu, \"end\": %llu}",
		 (unsigned long long)start, (unsigned long long)end);
	return reply(out, buf);
}

/*
 * gpu_launches "N GAP_US": a GPU phase whose launcher lags behind the GPU,
 * as a framework's on a slow CPU: N launches of fixture_empty, each
 * followed by GAP_US of CPU work (a spin, not a sleep, so that the gap is
 * as long as asked) with no call, then one synchronize.  Answers "ok"
 * (the arbiter's count of turns is what tests look at).
 */
int gpu_launches(const struct mig_payload *in, struct mig_payload *out)
{
	CUfunction fn;
	unsigned int n = 0, gap_us = 0;
	uint64_t ns = 0;
	void *args[] = { &ns };
	CUresult r;

	if (sscanf(in->data ? in->data : "", "%u %u", &n, &gap_us) != 2)
		return reply(out, "payload: N GAP_US");
	if ((r = context()))
		return cu_fail(out, "context", r);
	if ((r = fixture_kernel("fixture_empty", &fn)))
		return cu_fail(out, "loading fixture_empty", r);
	for (unsigned int i = 0; i < n; i++) {
		uint64_t until;

		if ((r = cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL)))
			return cu_fail(out, "cuLaunchKernel", r);
		until = clock_ns(CLOCK_MONOTONIC) + gap_us * 1000ull;
		while (clock_ns(CLOCK_MONOTONIC) < until)
			;
	}
	if ((r = cuCtxSynchronize()))
		return cu_fail(out, "cuCtxSynchronize", r);
	return reply(out, "ok");
}

/*
 * gpu_cut "GAP_US": a GPU phase cut early, as a framework's that checks a
 * value on the CPU: an empty kernel, a synchronize, GAP_US of CPU work (a
 * spin) with no call, then a kernel busy 30 ms and a synchronize.  Answers
 * {"start": ns, "end": ns} of that second kernel, from its launch to the
 * end of its synchronize (CLOCK_MONOTONIC).
 */
int gpu_cut(const struct mig_payload *in, struct mig_payload *out)
{
	CUfunction empty, busy;
	unsigned int gap_us = 0;
	uint64_t ns = 30000000ull, until, start, end;
	void *args[] = { &ns };
	char buf[96];
	CUresult r;

	if (sscanf(in->data ? in->data : "", "%u", &gap_us) != 1)
		return reply(out, "payload: GAP_US");
	if ((r = context()))
		return cu_fail(out, "context", r);
	if ((r = fixture_kernel("fixture_empty", &empty)) ||
	    (r = fixture_kernel("fixture_busy", &busy)))
		return cu_fail(out, "loading the kernels", r);
	if ((r = cuLaunchKernel(empty, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL)) ||
	    (r = cuCtxSynchronize()))
		return cu_fail(out, "the empty kernel", r);
	until = clock_ns(CLOCK_MONOTONIC) + gap_us * 1000ull;
	while (clock_ns(CLOCK_MONOTONIC) < until)
		;
	start = clock_ns(CLOCK_MONOTONIC);
	if ((r = cuLaunchKernel(busy, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL)) ||
	    (r = cuCtxSynchronize()))
		return cu_fail(out, "the busy kernel", r);
	end = clock_ns(CLOCK_MONOTONIC);
	snprintf(buf, sizeof(buf), "{\"start\": %llu, \"end\": %llu}",
		 (unsigned long long)start, (unsigned long long)end);
	return reply(out, buf);
}

/*
 * gpu_copies "N [KIND]": N synchronous copies, no kernel.  KIND (default
 * roundtrip): roundtrip, 1 MiB host to device and back; h2d-small, 4 KiB
 * host to device; h2d-odd, 4095 bytes host to device; h2d-2d-row, 4 KiB
 * host to device as a 2D copy of one row; h2d-large, 1 MiB host to
 * device; d2h, 1 MiB device to host; dtod, 1 MiB device to device;
 * memset, 4 KiB.  Answers {"ms":
 * elapsed, "cpu_ms": the CPU time the calling thread used meanwhile}.
 */
int gpu_copies(const struct mig_payload *in, struct mig_payload *out)
{
	static char buf[1 << 20];
	unsigned int n = 0;
	char kind[16] = "roundtrip";
	CUdeviceptr d;
	uint64_t t0, cpu;
	char msg[64];
	CUresult r = CUDA_SUCCESS;

	if (sscanf(in->data ? in->data : "", "%u %15s", &n, kind) < 1)
		return reply(out, "payload: N [roundtrip|h2d-small|h2d-odd|h2d-2d-row|h2d-large|d2h|dtod|memset]");
	if ((r = context()) || (r = cuMemAlloc(&d, 2 * sizeof(buf))))
		return cu_fail(out, "context or cuMemAlloc", r);
	t0 = clock_ns(CLOCK_MONOTONIC);
	cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	for (unsigned int i = 0; i < n && r == CUDA_SUCCESS; i++) {
		if (!strcmp(kind, "roundtrip")) {
			if (!(r = cuMemcpyHtoD(d, buf, sizeof(buf))))
				r = cuMemcpyDtoH(buf, d, sizeof(buf));
		} else if (!strcmp(kind, "h2d-small")) {
			r = cuMemcpyHtoD(d, buf, 4096);
		} else if (!strcmp(kind, "h2d-odd")) {
			r = cuMemcpyHtoD(d, buf, 4095);
		} else if (!strcmp(kind, "h2d-2d-row")) {
			CUDA_MEMCPY2D c = {
				.srcMemoryType = CU_MEMORYTYPE_HOST, .srcHost = buf,
				.srcPitch = 4096, .dstMemoryType = CU_MEMORYTYPE_DEVICE,
				.dstDevice = d, .dstPitch = 4096, .WidthInBytes = 4096,
				.Height = 1,
			};

			r = cuMemcpy2D(&c);
		} else if (!strcmp(kind, "h2d-large")) {
			r = cuMemcpyHtoD(d, buf, sizeof(buf));
		} else if (!strcmp(kind, "d2h")) {
			r = cuMemcpyDtoH(buf, d, sizeof(buf));
		} else if (!strcmp(kind, "dtod")) {
			r = cuMemcpyDtoD(d + sizeof(buf), d, sizeof(buf));
		} else if (!strcmp(kind, "memset")) {
			r = cuMemsetD8(d, 0, 4096);
		} else {
			cuMemFree(d);
			return reply(out, "payload: unknown copy kind");
		}
	}
	if (r) {
		cuMemFree(d);
		return cu_fail(out, kind, r);
	}
	snprintf(msg, sizeof(msg), "{\"ms\": %.3f, \"cpu_ms\": %.3f}",
		 (clock_ns(CLOCK_MONOTONIC) - t0) / 1e6,
		 (clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu) / 1e6);
	cuMemFree(d);
	return reply(out, msg);
}

/*
 * swap_check: on the first call 37 allocations of odd sizes (1 byte to
 * about 2 MiB), each filled with its own pattern; on every call each is read
 * back and compared.  Answers {"ok": ..., "buffers": 37, "bytes": N,
 * "ptrs": "<sum of the pointers>"}: a swapped-out-and-in instance must
 * answer exactly what it answered before.
 */
#define SWAP_BUFS 37
int swap_check(const struct mig_payload *in, struct mig_payload *out)
{
	static CUdeviceptr p[SWAP_BUFS];
	static size_t sz[SWAP_BUFS];
	static unsigned char *want, *got;
	unsigned long long sum = 0, bytes = 0;
	char msg[160];
	bool ok = true;
	CUresult r;

	(void)in;
	if ((r = context()))
		return cu_fail(out, "context", r);
	if (!want) {
		want = malloc(3u << 20);
		got = malloc(3u << 20);
		if (!want || !got)
			return reply(out, "out of memory");
		for (int i = 0; i < SWAP_BUFS; i++) {
			sz[i] = 1 + (size_t)i * 57331u % (2u << 20);
			for (size_t k = 0; k < sz[i]; k++)
				want[k] = (unsigned char)(k * 31u + (unsigned)i * 7u);
			if ((r = cuMemAlloc(&p[i], sz[i])) ||
			    (r = cuMemcpyHtoD(p[i], want, sz[i])))
				return cu_fail(out, "cuMemAlloc/cuMemcpyHtoD", r);
		}
	}
	for (int i = 0; i < SWAP_BUFS; i++) {
		for (size_t k = 0; k < sz[i]; k++)
			want[k] = (unsigned char)(k * 31u + (unsigned)i * 7u);
		if ((r = cuMemcpyDtoH(got, p[i], sz[i])))
			return cu_fail(out, "cuMemcpyDtoH", r);
		ok &= !memcmp(got, want, sz[i]);
		sum += p[i];
		bytes += sz[i];
	}
	snprintf(msg, sizeof(msg), "{\"ok\": %s, \"buffers\": %d, \"bytes\": %llu, \"ptrs\": \"%llu\"}",
		 ok ? "true" : "false", SWAP_BUFS, bytes, sum);
	return reply(out, msg);
}

/* Physical allocations of the virtual memory API on the device, and
 * (@acc not NULL) read-write access to their mappings. */
static void device_memory(CUmemAllocationProp *prop, CUmemAccessDesc *acc)
{
	prop->type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop->location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	if (acc) {
		acc->location = prop->location;
		acc->flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	}
}

/*
 * swap_check_vmm: the client's own physical allocations (the virtual memory
 * API, as PyTorch's expandable segments use it), made on the first call in
 * one reservation of 9 granules, 8 of them mapped back to back: A (2
 * granules, handle kept), B (1, handle released), C (2, handle kept, never
 * made accessible: stays resident in a swap), then D (1, released), E (1,
 * released) and D again (one allocation behind two mappings, another
 * between).  A mapping always covers its whole allocation from offset 0:
 * the driver (580, H200) answers CUDA_ERROR_NOT_SUPPORTED to anything else.
 * Every call checks each accessible byte.  Answers {"ok", "swappable": the
 * bytes of the mappings of A, B, D (twice) and E, "va": "<reservation>"};
 * payload "free" unmaps and releases everything (the handles must still
 * name memory after a swap), "wait" answers 300 ms late.
 */
int swap_check_vmm(const struct mig_payload *in, struct mig_payload *out)
{
	static CUdeviceptr va;
	static CUmemGenericAllocationHandle ha, hc;
	static size_t gran;
	static unsigned char *want, *got;
	CUmemAllocationProp prop = { 0 };
	CUmemAccessDesc acc = { 0 };
	CUmemGenericAllocationHandle hb, hd, he;
	char msg[200];
	bool ok = true;
	CUresult r;

	if ((r = context()))
		return cu_fail(out, "context", r);
	device_memory(&prop, &acc);
	if (!va) {
		if ((r = cuMemGetAllocationGranularity(&gran, &prop,
						       CU_MEM_ALLOC_GRANULARITY_MINIMUM)) ||
		    (r = cuMemAddressReserve(&va, 9 * gran, 0, 0, 0)) ||
		    (r = cuMemCreate(&ha, 2 * gran, &prop, 0)) ||
		    (r = cuMemCreate(&hb, gran, &prop, 0)) ||
		    (r = cuMemCreate(&hc, 2 * gran, &prop, 0)) ||
		    (r = cuMemCreate(&hd, gran, &prop, 0)) ||
		    (r = cuMemCreate(&he, gran, &prop, 0)) ||
		    (r = cuMemMap(va, 2 * gran, 0, ha, 0)) ||
		    (r = cuMemMap(va + 2 * gran, gran, 0, hb, 0)) ||
		    (r = cuMemMap(va + 3 * gran, 2 * gran, 0, hc, 0)) ||
		    (r = cuMemMap(va + 5 * gran, gran, 0, hd, 0)) ||
		    (r = cuMemMap(va + 6 * gran, gran, 0, he, 0)) ||
		    (r = cuMemMap(va + 7 * gran, gran, 0, hd, 0)) ||
		    (r = cuMemSetAccess(va, 3 * gran, &acc, 1)) ||
		    (r = cuMemSetAccess(va + 5 * gran, 3 * gran, &acc, 1)) ||
		    (r = cuMemRelease(hb)) || (r = cuMemRelease(hd)) || (r = cuMemRelease(he)))
			return cu_fail(out, "virtual memory set-up", r);
		if (!want) {
			want = malloc(6 * gran);
			got = malloc(6 * gran);
		}
		if (!want || !got)
			return reply(out, "out of memory");
		/* [A A B][D E D]: the accessible granules, C left out */
		for (size_t k = 0; k < 6 * gran; k++)
			want[k] = (unsigned char)(k * 13u + k / 4096u);
		memcpy(want + 5 * gran, want + 3 * gran, gran); /* D, twice */
		if ((r = cuMemcpyHtoD(va, want, 3 * gran)) ||
		    (r = cuMemcpyHtoD(va + 5 * gran, want + 3 * gran, 3 * gran)))
			return cu_fail(out, "cuMemcpyHtoD", r);
	}
	if ((r = cuMemcpyDtoH(got, va, 3 * gran)) ||
	    (r = cuMemcpyDtoH(got + 3 * gran, va + 5 * gran, 3 * gran)))
		return cu_fail(out, "cuMemcpyDtoH", r);
	ok = !memcmp(got, want, 6 * gran);
	if (in->len == 4 && !memcmp(in->data, "wait", 4))
		usleep(300000); /* so that others start instances of their own */
	if (in->len == 4 && !memcmp(in->data, "free", 4)) {
		if ((r = cuMemUnmap(va, 8 * gran)) || (r = cuMemRelease(ha)) ||
		    (r = cuMemRelease(hc)) || (r = cuMemAddressFree(va, 9 * gran)))
			return cu_fail(out, "virtual memory tear-down", r);
		va = 0;
	}
	snprintf(msg, sizeof(msg), "{\"ok\": %s, \"swappable\": %zu, \"va\": \"%llu\"}",
		 ok ? "true" : "false", 6 * gran, (unsigned long long)va);
	return reply(out, msg);
}

/*
 * mem_cap "A B C [keep]": cuMemGetInfo, then cuMemAlloc of A MiB and
 * cuMemCreate of B and then C MiB (whole granules), cuMemGetInfo again, and
 * everything freed (with "keep": held until the instance ends).  Answers
 * {"total", "free0", "alloc", "create_b", "create_c", "free1",
 * "dev_total"}: the two infos (bytes), the three CUresults and
 * cuDeviceTotalMem.
 */
int mem_cap(const struct mig_payload *in, struct mig_payload *out)
{
	CUmemAllocationProp prop = { 0 };
	CUmemGenericAllocationHandle hb = 0, hc = 0;
	CUdeviceptr p = 0;
	size_t free0 = 0, free1 = 0, total = 0, t = 0, dev_total = 0;
	unsigned int a = 0, b = 0, c = 0;
	CUresult r, ra, rb, rc;
	char msg[256], keep[8] = "";

	if (sscanf(in->data ? in->data : "", "%u %u %u %7s", &a, &b, &c, keep) < 3)
		return reply(out, "payload: A B C (MiB) [keep]");
	if ((r = context()))
		return cu_fail(out, "context", r);
	device_memory(&prop, NULL);
	if ((r = cuMemGetInfo(&free0, &total)) || (r = cuDeviceTotalMem(&dev_total, 0)))
		return cu_fail(out, "cuMemGetInfo/cuDeviceTotalMem", r);
	ra = cuMemAlloc(&p, (size_t)a << 20);
	rb = cuMemCreate(&hb, (size_t)b << 20, &prop, 0);
	rc = cuMemCreate(&hc, (size_t)c << 20, &prop, 0);
	if ((r = cuMemGetInfo(&free1, &t)))
		return cu_fail(out, "cuMemGetInfo", r);
	if (ra == CUDA_SUCCESS && strcmp(keep, "keep"))
		cuMemFree(p);
	if (rb == CUDA_SUCCESS && strcmp(keep, "keep"))
		cuMemRelease(hb);
	if (rc == CUDA_SUCCESS && strcmp(keep, "keep"))
		cuMemRelease(hc);
	snprintf(msg, sizeof(msg),
		 "{\"total\": %zu, \"free0\": %zu, \"alloc\": %d, \"create_b\": %d, "
		 "\"create_c\": %d, \"free1\": %zu, \"dev_total\": %zu}",
		 total, free0, (int)ra, (int)rb, (int)rc, free1, dev_total);
	return reply(out, msg);
}

/*
 * mem_count: what the instance's memory limit counts of physical
 * allocations (virtual memory API) that are mapped several times or held
 * only by their mappings.  In granules: X (2) held and mapped twice, Y (1)
 * mapped once and released, Z (1) mapped twice and released.  Answers
 * {"gran", "free0", "mapped" (free after all that), "one_z" (after one of
 * Z's mappings went), "no_z" (after both)}; everything is freed.
 */
int mem_count(const struct mig_payload *in, struct mig_payload *out)
{
	CUmemAllocationProp prop = { 0 };
	CUmemAccessDesc acc = { 0 };
	CUmemGenericAllocationHandle hx, hy, hz;
	CUdeviceptr va;
	size_t gran = 0, t, free0, mapped, one_z, no_z;
	char msg[192];
	CUresult r;

	(void)in;
	if ((r = context()))
		return cu_fail(out, "context", r);
	device_memory(&prop, &acc);
	if ((r = cuMemGetAllocationGranularity(&gran, &prop,
					       CU_MEM_ALLOC_GRANULARITY_MINIMUM)) ||
	    (r = cuMemGetInfo(&free0, &t)) ||
	    (r = cuMemAddressReserve(&va, 8 * gran, 0, 0, 0)) ||
	    (r = cuMemCreate(&hx, 2 * gran, &prop, 0)) ||
	    (r = cuMemCreate(&hy, gran, &prop, 0)) ||
	    (r = cuMemCreate(&hz, gran, &prop, 0)) ||
	    (r = cuMemMap(va, 2 * gran, 0, hx, 0)) ||
	    (r = cuMemMap(va + 2 * gran, 2 * gran, 0, hx, 0)) ||
	    (r = cuMemMap(va + 4 * gran, gran, 0, hy, 0)) ||
	    (r = cuMemMap(va + 5 * gran, gran, 0, hz, 0)) ||
	    (r = cuMemMap(va + 6 * gran, gran, 0, hz, 0)) ||
	    (r = cuMemSetAccess(va, 7 * gran, &acc, 1)) ||
	    (r = cuMemRelease(hy)) || (r = cuMemRelease(hz)) ||
	    (r = cuMemGetInfo(&mapped, &t)) ||
	    (r = cuMemUnmap(va + 5 * gran, gran)) ||
	    (r = cuMemGetInfo(&one_z, &t)) ||
	    (r = cuMemUnmap(va + 6 * gran, gran)) ||
	    (r = cuMemGetInfo(&no_z, &t)) ||
	    (r = cuMemUnmap(va, 5 * gran)) || (r = cuMemRelease(hx)) ||
	    (r = cuMemAddressFree(va, 8 * gran)))
		return cu_fail(out, "mem_count", r);
	snprintf(msg, sizeof(msg),
		 "{\"gran\": %zu, \"free0\": %zu, \"mapped\": %zu, \"one_z\": %zu, \"no_z\": %zu}",
		 gran, free0, mapped, one_z, no_z);
	return reply(out, msg);
}

/* A kernel that never ends (the test double's stays busy for a minute). */
static const char hang_ptx[] =
	".version 8.0\n"
	".target sm_75\n"
	".address_size 64\n"
	".visible .entry fixture_hang(.param .u64 unused)\n"
	"{\n"
	"LOOP:\n"
	"	bra LOOP;\n"
	"}\n";

/*
 * gpu_leave "MIB N": holds MIB MiB of device memory (allocated on the first
 * call) and returns with N launches of fixture_busy still queued (30 ms
 * each on the test double): its GPU work outlives the invocation.
 */
int gpu_leave(const struct mig_payload *in, struct mig_payload *out)
{
	static CUdeviceptr held;
	unsigned int mib = 0, n = 0;
	uint64_t ns = 30000000ull;
	void *args[] = { &ns };
	CUfunction fn;
	CUresult r;

	if (sscanf(in->data ? in->data : "", "%u %u", &mib, &n) != 2 || !mib)
		return reply(out, "payload: MIB N");
	if ((r = context()))
		return cu_fail(out, "context", r);
	if (!held && (r = cuMemAlloc(&held, (size_t)mib << 20)))
		return cu_fail(out, "cuMemAlloc", r);
	if ((r = fixture_kernel("fixture_busy", &fn)))
		return cu_fail(out, "loading fixture_busy", r);
	for (unsigned int i = 0; i < n; i++)
		if ((r = cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL)))
			return cu_fail(out, "cuLaunchKernel", r);
	return reply(out, "left");
}

int gpu_hang(const struct mig_payload *in, struct mig_payload *out)
{
	(void)in;
	return one_kernel(out, hang_ptx, "fixture_hang", 0, "the endless kernel ended?");
}

int gpu_sleep(const struct mig_payload *in, struct mig_payload *out)
{
	CUdeviceptr p;
	CUresult r;

	if ((r = context()))
		return cu_fail(out, "context", r);
	usleep((useconds_t)atoi(in->data) * 1000);
	if ((r = cuMemAlloc(&p, 1 << 20)))
		return cu_fail(out, "cuMemAlloc", r);
	cuMemFree(p);
	return reply(out, "allocated");
}
#endif
