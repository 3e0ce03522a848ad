/* device_query_kernels.c - host kernels of tests/cuda/device_query.cu. */
#include "test_kernels.h"

static int dq_touch(const struct mig_host_launch *l, void **params)
{
	(void)l;
	*ARG(int *, 0) = ARG(int, 1) * 3 + 1;
	return 0;
}

HOST_KERNEL_TABLE(device_query) = {
	{ "dq_touch", 2, { 8, 4 }, dq_touch, 0 },
	{ 0 },
};
