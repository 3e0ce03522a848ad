/*
 * hello_kernels.c - the host implementation of hello_vec_add for the `host`
 * test-double backend (gpud/host_kernels.h).  Deploy examples/hello with
 * MIG_HOST_KERNELS=<build>/examples/libhello_kernels.so in its env and the
 * daemon starts its GPU server with this library when it uses the test
 * double.
 */
#include <stdint.h>

#include "host_kernels.h"

static int vec_add(const struct mig_host_launch *l, void **params)
{
	const float *a = *(const float **)params[0];
	const float *b = *(const float **)params[1];
	float *c = *(float **)params[2];
	int n = *(int *)params[3];
	uint64_t threads = (uint64_t)l->grid[0] * l->block[0];

	for (uint64_t i = 0; i < threads && i < (uint64_t)n; i++)
		c[i] = a[i] + b[i];
	return 0;
}

const struct mig_host_kernel mig_host_kernels[] = {
	{ "hello_vec_add", 4, { 8, 8, 8, 4 }, vec_add, 0 },
	{ 0 },
};
