/*
 * bench_kernels.c - host implementations of the kernels in
 * remoting_bench.cu, for the `host` test-double backend of mig-gpud (see
 * gpud/host_kernels.h).  Built as build/lib/libmig_bench_kernels.so; run.py
 * names it in MIG_HOST_KERNELS when it runs with --host.
 *
 * Numbers measured on the host double say nothing about a GPU: it exists so
 * the benchmark's whole path can be exercised on a machine without one.
 */
#include "host_kernels.h"

/* empty_kernel<<<g, b>>>(): nothing to do, whatever the grid. */
static int empty_kernel(const struct mig_host_launch *l, void **params)
{
	(void)l;
	(void)params;
	return 0;
}

const struct mig_host_kernel mig_host_kernels[] = {
	{ "empty_kernel", 0, { 0 }, empty_kernel, 0 },
	{ 0 },
};
