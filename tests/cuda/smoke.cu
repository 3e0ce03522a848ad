// smoke.cu - the smallest end-to-end check: device query, copies both ways,
// one kernel, synchronize.  Prints "OK" and exits 0 when every value is right.
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

#define CHECK(x)                                                              \
	do {                                                                  \
		cudaError_t e_ = (x);                                         \
		if (e_ != cudaSuccess) {                                      \
			fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, \
				cudaGetErrorString(e_));                      \
			return 1;                                             \
		}                                                             \
	} while (0)

extern "C" __global__ void vec_add(const float *a, const float *b, float *c, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		c[i] = a[i] + b[i];
}

int main()
{
	int count = 0;
	CHECK(cudaGetDeviceCount(&count));
	cudaDeviceProp p;
	CHECK(cudaGetDeviceProperties(&p, 0));
	printf("device: %s, %d SMs, cc %d.%d, %zu MiB\n", p.name, p.multiProcessorCount,
	       p.major, p.minor, p.totalGlobalMem >> 20);
	const int n = 1 << 20;
	float *a = (float *)malloc(n * sizeof(float)), *b = (float *)malloc(n * sizeof(float)),
	      *c = (float *)malloc(n * sizeof(float));
	for (int i = 0; i < n; i++) {
		a[i] = (float)i;
		b[i] = 2.0f * i;
	}
	float *da, *db, *dc;
	CHECK(cudaMalloc(&da, n * sizeof(float)));
	CHECK(cudaMalloc(&db, n * sizeof(float)));
	CHECK(cudaMalloc(&dc, n * sizeof(float)));
	CHECK(cudaMemcpy(da, a, n * sizeof(float), cudaMemcpyHostToDevice));
	CHECK(cudaMemcpy(db, b, n * sizeof(float), cudaMemcpyHostToDevice));
	vec_add<<<(n + 255) / 256, 256>>>(da, db, dc, n);
	CHECK(cudaGetLastError());
	CHECK(cudaDeviceSynchronize());
	CHECK(cudaMemcpy(c, dc, n * sizeof(float), cudaMemcpyDeviceToHost));
	for (int i = 0; i < n; i++) {
		if (c[i] != 3.0f * i) {
			fprintf(stderr, "c[%d] = %f, want %f\n", i, c[i], 3.0f * i);
			return 1;
		}
	}
	CHECK(cudaFree(da));
	CHECK(cudaFree(db));
	CHECK(cudaFree(dc));
	printf("OK\n");
	return 0;
}
