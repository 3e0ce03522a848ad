/* modules_kernels.c - host kernels of tests/cuda/module_src/modules_module.cu
 * (loaded by tests/cuda/modules.cu). */
#include "test_kernels.h"

static int mod_fill(const struct mig_host_launch *l, void **params)
{
	int *out = ARG(int *, 0), v = ARG(int, 1), n = ARG(int, 2);

	FOR_EACH_X(l, i)
		if ((long long)i < n)
			out[i] = v + (int)i * 3;
	return 0;
}

static int mod_sum(const struct mig_host_launch *l, void **params)
{
	const int *p = ARG(const int *, 0);
	int n = ARG(int, 1);
	long long *out = ARG(long long *, 2), s = 0;

	(void)l;
	for (int i = 0; i < n; i++)
		s += p[i];
	*out = s;
	return 0;
}

static int mod_mix(const struct mig_host_launch *l, void **params)
{
	int a = ARG(int, 0), n = ARG(int, 3);
	double b = ARG(double, 1);
	float *out = ARG(float *, 2);

	FOR_EACH_X(l, i)
		if ((long long)i < n)
			out[i] = (float)(a * (int)i) + (float)b;
	return 0;
}

HOST_KERNEL_TABLE(modules) = {
	{ "mod_fill", 3, { 8, 4, 4 }, mod_fill, 0 },
	{ "mod_sum", 3, { 8, 4, 8 }, mod_sum, 0 },
	{ "mod_mix", 4, { 4, 8, 8, 4 }, mod_mix, 0 },
	{ 0 },
};
