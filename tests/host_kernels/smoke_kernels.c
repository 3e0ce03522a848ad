/* smoke_kernels.c - host kernels of tests/cuda/smoke.cu. */
#include "test_kernels.h"

static int vec_add(const struct mig_host_launch *l, void **params)
{
	const float *a = ARG(const float *, 0), *b = ARG(const float *, 1);
	float *c = ARG(float *, 2);
	int n = ARG(int, 3);

	FOR_EACH_X(l, i)
		if ((long long)i < n)
			c[i] = a[i] + b[i];
	return 0;
}

HOST_KERNEL_TABLE(smoke) = {
	{ "vec_add", 4, { 8, 8, 8, 4 }, vec_add, 0 },
	{ 0 },
};
