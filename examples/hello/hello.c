/*
 * hello.c - an example mignificent function in C: adds two vectors on the
 * GPU through the CUDA runtime API.
 *
 *   request   the vector length n as decimal text (empty: 1024)
 *   response  {"n": 1024, "sum": 1571328, "ok": true}, application/json
 *
 * mignificent_init() creates the CUDA context once per instance, so warm
 * invocations pay only for their own work.  The kernel is in
 * hello_kernel.cu; examples/CMakeLists.txt links both with nvcc into
 * build/examples/libhello.so.  Deploy it with the handler "hello".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "mignificent.h"

#define N_DEFAULT 1024
#define N_MAX (1 << 24)

/* The host stub nvcc generates for the kernel in hello_kernel.cu. */
void hello_vec_add(const float *a, const float *b, float *c, int n);

int mignificent_init(void)
{
	/* The first runtime call creates the context: do it before traffic. */
	return cudaFree(NULL) == cudaSuccess ? 0 : 1;
}

/* Answer with @fmt as the error message; returns the error code. */
static int fail(struct mig_payload *out, cudaError_t e, const char *what)
{
	char *msg = malloc(256);

	if (msg) {
		snprintf(msg, 256, "%s: %s (%s)", what, cudaGetErrorString(e),
			 cudaGetErrorName(e));
		out->data = msg;
		out->len = strlen(msg);
		strcpy(out->content_type, "text/plain");
	}
	return (int)e;
}

/* Run c = a + b for n elements on the GPU; 0 or a CUDA error. */
static cudaError_t vec_add(const float *a, const float *b, float *c, int n,
			   const char **what)
{
	size_t bytes = (size_t)n * sizeof(float);
	float *da = NULL, *db = NULL, *dc = NULL;
	void *args[] = { &da, &db, &dc, &n };
	dim3 grid = { (unsigned int)(n + 255) / 256, 1, 1 };
	dim3 block = { 256, 1, 1 };
	cudaError_t e;

	*what = "cudaMalloc";
	if ((e = cudaMalloc((void **)&da, bytes)) ||
	    (e = cudaMalloc((void **)&db, bytes)) ||
	    (e = cudaMalloc((void **)&dc, bytes)))
		goto out;
	*what = "cudaMemcpy to the GPU";
	if ((e = cudaMemcpy(da, a, bytes, cudaMemcpyHostToDevice)) ||
	    (e = cudaMemcpy(db, b, bytes, cudaMemcpyHostToDevice)))
		goto out;
	*what = "cudaLaunchKernel";
	if ((e = cudaLaunchKernel((const void *)hello_vec_add, grid, block,
				  args, 0, NULL)))
		goto out;
	*what = "cudaMemcpy from the GPU";
	e = cudaMemcpy(c, dc, bytes, cudaMemcpyDeviceToHost);
out:
	cudaFree(da);
	cudaFree(db);
	cudaFree(dc);
	return e;
}

int hello(const struct mig_payload *in, struct mig_payload *out)
{
	long n = in->len ? strtol((const char *)in->data, NULL, 10) : N_DEFAULT;
	float *a, *b, *c;
	const char *what = "";
	double sum = 0;
	cudaError_t e;
	int ok = 1;
	char *json;

	if (n <= 0 || n > N_MAX)
		n = N_DEFAULT;
	a = malloc(3 * (size_t)n * sizeof(float));
	if (!a)
		return fail(out, cudaErrorMemoryAllocation, "malloc");
	b = a + n;
	c = b + n;
	for (long i = 0; i < n; i++) {
		a[i] = (float)i;
		b[i] = (float)(2 * i);
	}
	e = vec_add(a, b, c, (int)n, &what);
	if (e) {
		free(a);
		return fail(out, e, what);
	}
	for (long i = 0; i < n; i++) {
		ok &= c[i] == (float)(3 * i);
		sum += c[i];
	}
	free(a);
	json = malloc(128);
	if (!json)
		return fail(out, cudaErrorMemoryAllocation, "malloc");
	out->len = (size_t)snprintf(json, 128, "{\"n\": %ld, \"sum\": %.0f, \"ok\": %s}",
				    n, sum, ok ? "true" : "false");
	out->data = json;
	strcpy(out->content_type, "application/json");
	return ok ? 0 : 1;
}
