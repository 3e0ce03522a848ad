/*
 * rodinia_kernels.c - host implementations of the kernels of bfs.cu and
 * hotspot.cu for the `host` test-double backend (gpud/host_kernels.h):
 * deploy the functions with MIG_HOST_KERNELS=<build>/examples/
 * librodinia_kernels.so in their env to run them without a GPU.
 */
#include <stdint.h>

#include "host_kernels.h"

static uint64_t threads_x(const struct mig_host_launch *l)
{
	return (uint64_t)l->grid[0] * l->block[0];
}

static int bfs_expand(const struct mig_host_launch *l, void **p)
{
	const int *starts = *(const int **)p[0], *edges = *(const int **)p[1];
	char *frontier = *(char **)p[2], *updating = *(char **)p[3];
	const char *visited = *(const char **)p[4];
	int *cost = *(int **)p[5], n = *(int *)p[6];

	for (uint64_t i = 0; i < threads_x(l) && i < (uint64_t)n; i++) {
		if (!frontier[i])
			continue;
		frontier[i] = 0;
		for (int e = starts[i]; e < starts[i + 1]; e++)
			if (!visited[edges[e]]) {
				cost[edges[e]] = cost[i] + 1;
				updating[edges[e]] = 1;
			}
	}
	return 0;
}

static int bfs_update(const struct mig_host_launch *l, void **p)
{
	char *frontier = *(char **)p[0], *updating = *(char **)p[1];
	char *visited = *(char **)p[2];
	int *more = *(int **)p[3], n = *(int *)p[4];

	for (uint64_t i = 0; i < threads_x(l) && i < (uint64_t)n; i++) {
		if (!updating[i])
			continue;
		frontier[i] = 1;
		visited[i] = 1;
		*more = 1;
		updating[i] = 0;
	}
	return 0;
}

struct coeffs {
	float step_over_cap, rx_1, ry_1, rz_1;
};

static int hotspot_step(const struct mig_host_launch *l, void **p)
{
	const float *power = *(const float **)p[0], *in = *(const float **)p[1];
	float *out = *(float **)p[2];
	int rows = *(int *)p[3], cols = *(int *)p[4];
	const struct coeffs *k = (const struct coeffs *)p[5];

	(void)l;
	for (int r = 0; r < rows; r++)
		for (int c = 0; c < cols; c++) {
			int i = r * cols + c;
			float t = in[i];
			float n = r > 0 ? in[i - cols] : t, s = r < rows - 1 ? in[i + cols] : t;
			float w = c > 0 ? in[i - 1] : t, e = c < cols - 1 ? in[i + 1] : t;

			out[i] = t + k->step_over_cap * (power[i] + (s + n - 2.0f * t) * k->ry_1 +
							 (e + w - 2.0f * t) * k->rx_1 +
							 (80.0f - t) * k->rz_1);
		}
	return 0;
}

const struct mig_host_kernel mig_host_kernels[] = {
	{ "bfs_expand", 7, { 8, 8, 8, 8, 8, 8, 4 }, bfs_expand, 0 },
	{ "bfs_update", 5, { 8, 8, 8, 8, 4 }, bfs_update, 0 },
	{ "hotspot_step", 6, { 8, 8, 8, 4, 4, 16 }, hotspot_step, 0 },
	{ 0 },
};
