/*
 * burn_kernels.c - host implementations of examples/burn's kernels for the
 * `host` test double (gpud/host_kernels.h): the same arithmetic on one
 * thread per block, and an illegal address as a sticky error.
 */
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "host_kernels.h"

static int burn_fma(const struct mig_host_launch *l, void **params)
{
	float *out = *(float **)params[0];
	int iters = *(int *)params[1];
	unsigned int b;

	for (b = 0; b < l->grid[0]; b++) {
		float a = 1.0f, m = 0.999999f, c = 1e-7f;
		int i;

		for (i = 0; i < iters && i < 4096; i++)
			a = fmaf(a, m, c);
		out[b] = a;
	}
	return 0;
}

static int burn_fault(const struct mig_host_launch *l, void **params)
{
	(void)l;
	(void)params;
	return 700; /* CUDA_ERROR_ILLEGAL_ADDRESS */
}

/* The host double runs kernels in the server's thread: this one blocks it
 * for an hour, which the invocation timeout has to end. */
static int burn_spin(const struct mig_host_launch *l, void **params)
{
	(void)l;
	(void)params;
	sleep(3600);
	return 0;
}

const struct mig_host_kernel mig_host_kernels[] = {
	{ "burn_spin", 1, { 8 }, burn_spin, 0 },
	{ "burn_fma", 2, { 8, 4 }, burn_fma, 0 },
	{ "burn_fault", 1, { 8 }, burn_fault, 0 },
	{ 0 },
};
