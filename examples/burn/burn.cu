// burn.cu - a compute-bound GPU function, for throughput experiments across
// GPUs: every invocation runs one kernel that keeps all SMs busy with
// floating-point work for a fixed number of iterations.
//
// Request body: the iterations per thread (default 4194304, about 20 ms on
// an H100/H200), "fault" to write through a null pointer (a GPU fault that
// loses this instance's context, and only this instance's), or "spin" for a
// kernel that never ends (stopped by the invocation timeout).
// Answer: JSON with the iterations and a checksum of the result.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_runtime.h>

#include "mignificent.h"

extern "C" __global__ void burn_fma(float *out, int iters)
{
	float a = 1.0f + threadIdx.x * 1e-7f, b = 0.999999f, c = 1e-7f;

	for (int i = 0; i < iters; i++)
		a = fmaf(a, b, c);
	if (a == 12345.0f) // never true: keeps the loop
		out[0] = a;
	if (threadIdx.x == 0)
		out[blockIdx.x] = a;
}

extern "C" __global__ void burn_fault(int *p)
{
	*p = 1;
}

// Never ends: the invocation timeout has to stop it.
extern "C" __global__ void burn_spin(volatile int *flag)
{
	while (*flag == 0)
		;
}

static float *out;
static int blocks;

static int reply(struct mig_payload *o, const char *text, int status)
{
	o->data = strdup(text);
	o->len = o->data ? strlen(text) : 0;
	snprintf(o->content_type, sizeof(o->content_type), "application/json");
	return status;
}

extern "C" int burn(const struct mig_payload *in, struct mig_payload *o)
{
	char buf[160];
	cudaError_t e;
	int iters = 4194304, sms = 0;

	if (in->len == 4 && !memcmp(in->data, "spin", 4)) {
		int *flag;

		if ((e = cudaMalloc(&flag, sizeof(*flag))) ||
		    (e = cudaMemset(flag, 0, sizeof(*flag))))
			goto fail;
		burn_spin<<<1, 1>>>(flag);
		e = cudaDeviceSynchronize();
		snprintf(buf, sizeof(buf), "{\"spin\": \"%s\"}", cudaGetErrorName(e));
		return reply(o, buf, 1);
	}
	if (in->len == 5 && !memcmp(in->data, "fault", 5)) {
		burn_fault<<<1, 1>>>(nullptr);
		e = cudaDeviceSynchronize();
		snprintf(buf, sizeof(buf), "{\"fault\": \"%s\"}", cudaGetErrorName(e));
		return reply(o, buf, 1);
	}
	if (in->len && in->len < 16) {
		char n[16] = { 0 };

		memcpy(n, in->data, in->len);
		iters = atoi(n) > 0 ? atoi(n) : iters;
	}
	if (!out) {
		if ((e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0)) ||
		    (e = cudaMalloc(&out, 4096 * sizeof(float))))
			goto fail;
		blocks = sms * 4 < 4096 ? sms * 4 : 4096;
	}
	burn_fma<<<blocks, 256>>>(out, iters);
	if ((e = cudaGetLastError()) || (e = cudaDeviceSynchronize()))
		goto fail;
	float first;
	if ((e = cudaMemcpy(&first, out, sizeof(first), cudaMemcpyDeviceToHost)))
		goto fail;
	snprintf(buf, sizeof(buf), "{\"iters\": %d, \"blocks\": %d, \"value\": %.6g}",
		 iters, blocks, first);
	return reply(o, buf, 0);
fail:
	snprintf(buf, sizeof(buf), "{\"error\": \"%s\"}", cudaGetErrorName(e));
	return reply(o, buf, 2);
}
