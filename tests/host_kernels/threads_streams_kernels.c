/* threads_streams_kernels.c - host kernels of tests/cuda/threads_streams.cu.
 * ts_sleep and ts_slow do nothing but keep their stream busy (busy_us),
 * the host double's stand-in for spinning on the GPU's timer. */
#include "test_kernels.h"

static int ts_sleep(const struct mig_host_launch *l, void **params)
{
	(void)l;
	(void)params;
	return 0;
}

static int ts_slow(const struct mig_host_launch *l, void **params)
{
	(void)l;
	*ARG(int *, 1) = 1;
	return 0;
}

static int ts_scale(const struct mig_host_launch *l, void **params)
{
	float *out = ARG(float *, 0), a = ARG(float, 2);
	const float *in = ARG(const float *, 1);
	int n = ARG(int, 3);

	FOR_EACH_X(l, i)
		if ((long long)i < n)
			out[i] = in[i] * a;
	return 0;
}

static int ts_add(const struct mig_host_launch *l, void **params)
{
	float *out = ARG(float *, 0);
	const float *x = ARG(const float *, 1), *y = ARG(const float *, 2);
	int n = ARG(int, 3);

	FOR_EACH_X(l, i)
		if ((long long)i < n)
			out[i] = x[i] + y[i];
	return 0;
}

/* Durations match SLEEP_NS and SLOW_NS in threads_streams.cu. */
HOST_KERNEL_TABLE(threads_streams) = {
	{ "ts_sleep", 1, { 8 }, ts_sleep, 50000 },
	{ "ts_slow", 2, { 8, 8 }, ts_slow, 1500000 },
	{ "ts_scale", 4, { 8, 8, 4, 4 }, ts_scale, 0 },
	{ "ts_add", 4, { 8, 8, 8, 4 }, ts_add, 0 },
	{ 0 },
};
