/* memcpy_matrix_kernels.c - host kernels of tests/cuda/memcpy_matrix.cu. */
#include "test_kernels.h"

static int mc_weighted_sum(const struct mig_host_launch *l, void **params)
{
	const unsigned char *p = ARG(const unsigned char *, 0);
	unsigned long long n = ARG(unsigned long long, 1), acc = 0;
	unsigned long long *out = ARG(unsigned long long *, 2);

	(void)l;
	for (unsigned long long i = 0; i < n; i++)
		acc += (unsigned long long)p[i] * ((i % 251) + 1);
	*out += acc;
	return 0;
}

HOST_KERNEL_TABLE(memcpy_matrix) = {
	{ "mc_weighted_sum", 3, { 8, 8, 8 }, mc_weighted_sum, 0 },
	{ 0 },
};
