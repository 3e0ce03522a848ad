/*
 * host_kernels.h - kernels for the `host` test-double backend.
 *
 * The host backend has no GPU.  A test suite supplies a shared library
 * (named by MIG_HOST_KERNELS, colon-separated list allowed) exporting
 * `mig_host_kernels`, an array of these entries terminated by name == NULL.
 * When a program loads a module or library, every kernel name in it that
 * has an entry becomes a function; launching it calls @run once per launch
 * with the grid and block sizes and the kernel's parameter values, in the
 * server process.  Device pointers in the parameters are addresses in the
 * server's emulated device memory and can be dereferenced directly.
 */
#ifndef MIG_HOST_KERNELS_H
#define MIG_HOST_KERNELS_H

#include <stdint.h>

struct mig_host_launch {
	unsigned int grid[3];
	unsigned int block[3];
	unsigned int shared_mem;
};

struct mig_host_kernel {
	const char *name;          /* mangled name, as in the cubin */
	unsigned int nparams;
	unsigned short param_size[32]; /* bytes of each parameter */
	/* Run the whole grid.  Return 0, or a CUresult (e.g. 700 for an
	 * illegal address) that becomes the context's sticky error. */
	int (*run)(const struct mig_host_launch *l, void **params);
	/* Optional: microseconds the stream stays busy after this launch
	 * (lets tests observe asynchrony on the host double). */
	unsigned int busy_us;
};

#endif /* MIG_HOST_KERNELS_H */
