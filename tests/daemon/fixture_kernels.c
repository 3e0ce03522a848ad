/*
 * fixture_kernels.c - host-test-double kernels of tests/daemon/fixture_fn.c
 * (gpud/host_kernels.h): fixture_fault stores to the address it is given,
 * which is 0, so it faults like the real kernel does on a GPU;
 * fixture_busy only keeps its stream busy; fixture_empty does nothing.
 */
#include <stdint.h>

#include "host_kernels.h"

static int fault(const struct mig_host_launch *l, void **params)
{
	(void)l;
	**(volatile uint32_t **)params[0] = 1;
	return 0;
}

/* fixture_busy keeps the GPU busy for its argument's nanoseconds; on the
 * test double, for 30 ms whatever it is given. */
static int busy(const struct mig_host_launch *l, void **params)
{
	(void)l;
	(void)params;
	return 0;
}

const struct mig_host_kernel mig_host_kernels[] = {
	{ "fixture_fault", 1, { 8 }, fault, 0 },
	{ "fixture_busy", 1, { 8 }, busy, 30000 },
	{ "fixture_empty", 1, { 8 }, busy, 0 },
	{ "fixture_hang", 1, { 8 }, busy, 60000000 },
	{ 0 },
};
