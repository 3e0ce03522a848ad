/* launch_gaps_kernels.c - host kernels of tests/cuda/launch_gaps.cu. */
#include "test_kernels.h"

static int lg_count(const struct mig_host_launch *l, void **params)
{
	int *count = ARG(int *, 0);

	(void)l;
	*count += 1;
	return 0;
}

HOST_KERNEL_TABLE(launch_gaps) = {
	{ "lg_count", 1, { 8 }, lg_count, 0 },
	{ 0 },
};
