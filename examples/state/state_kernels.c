/*
 * state_kernels.c - host implementations of examples/state's kernels for
 * the `host` test-double backend (gpud/host_kernels.h): the same pattern
 * and the same position-weighted sum, one pass over the words on the
 * server's thread.  Deploy examples/state with MIG_HOST_KERNELS=<build>/
 * examples/libstate_kernels.so in its env to run it without a GPU.
 */
#include <stdint.h>

#include "host_kernels.h"

/* As in state.cu: word i of the state is i * PAT_MUL + PAT_ADD. */
#define PAT_MUL 0x9e3779b97f4a7c15ull
#define PAT_ADD 0x2545f4914f6cdd1dull

static int state_fill(const struct mig_host_launch *l, void **params)
{
	uint64_t *p = *(uint64_t **)params[0];
	uint64_t n = *(uint64_t *)params[1], first = *(uint64_t *)params[2];

	(void)l; /* a grid-stride loop: every word, whatever the grid */
	for (uint64_t j = 0; j < n; j++)
		p[j] = (first + j) * PAT_MUL + PAT_ADD;
	return 0;
}

static int state_sum(const struct mig_host_launch *l, void **params)
{
	const uint64_t *p = *(const uint64_t **)params[0];
	uint64_t n = *(uint64_t *)params[1], first = *(uint64_t *)params[2];
	uint64_t *total = *(uint64_t **)params[3], acc = 0;

	(void)l;
	for (uint64_t j = 0; j < n; j++)
		acc += p[j] * (first + j + 1);
	*total += acc;
	return 0;
}

const struct mig_host_kernel mig_host_kernels[] = {
	{ "state_fill", 3, { 8, 8, 8 }, state_fill, 0 },
	{ "state_sum", 4, { 8, 8, 8, 8 }, state_sum, 0 },
	{ 0 },
};
