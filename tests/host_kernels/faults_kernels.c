/* faults_kernels.c - host kernels of tests/cuda/faults.cu. */
#include "test_kernels.h"

static int ft_fill(const struct mig_host_launch *l, void **params)
{
	int *p = ARG(int *, 0), v = ARG(int, 1), n = ARG(int, 2);

	FOR_EACH_X(l, i)
		if ((long long)i < n)
			p[i] = v ^ (int)((unsigned int)i * 2654435761u);
	return 0;
}

/* The GPU kernel stores through a wild pointer: an illegal address. */
static int ft_wild(const struct mig_host_launch *l, void **params)
{
	(void)l;
	(void)params;
	return CUDA_ERROR_ILLEGAL_ADDRESS_;
}

HOST_KERNEL_TABLE(faults) = {
	{ "ft_fill", 3, { 8, 4, 4 }, ft_fill, 0 },
	{ "ft_wild", 2, { 8, 4 }, ft_wild, 0 },
	{ 0 },
};
