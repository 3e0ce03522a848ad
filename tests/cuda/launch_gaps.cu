// launch_gaps.cu - a launch-bound client: N launches of a one-thread kernel,
// each after GAP microseconds of CPU work (a busy wait), then one
// synchronize; the kernel counts its runs, and the count must be N.
//
// Usage: launch_gaps [N [GAP_US]]   (default 200 launches, 120 us apart)
//
// It is the shape of a framework's GPU phase (Python between two launches):
// the remoting suite runs it through the GPU server with its profile on to
// see whether the server slept in those gaps (tests/test_remoting.py).
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "test_common.h"

extern "C" __global__ void lg_count(int *count)
{
	if (blockIdx.x == 0 && threadIdx.x == 0)
		*count += 1;
}

static void busy_wait_us(long us)
{
	auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(us);

	while (std::chrono::steady_clock::now() < end)
		;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 200;
	long gap = argc > 2 ? strtol(argv[2], NULL, 10) : 120;
	int *d = NULL, got = -1;

	if (n < 1 || n > 1000000 || gap < 0 || gap > 1000000) {
		fprintf(stderr, "usage: launch_gaps [N (1..1000000) [GAP_US (0..1000000)]]\n");
		return 2;
	}
	CHECK(cudaMalloc(&d, sizeof(int)));
	CHECK(cudaMemset(d, 0, sizeof(int)));
	CHECK(cudaDeviceSynchronize());
	for (long i = 0; i < n; i++) {
		busy_wait_us(gap);
		lg_count<<<1, 1>>>(d);
		CHECK(cudaGetLastError());
	}
	CHECK(cudaMemcpy(&got, d, sizeof(int), cudaMemcpyDeviceToHost));
	CHECK(cudaFree(d));
	if (got != n) {
		fprintf(stderr, "the kernel ran %d times, want %ld\n", got, n);
		return 1;
	}
	printf("launches %ld, %ld us apart\nOK\n", n, gap);
	return 0;
}
