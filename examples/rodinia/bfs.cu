// bfs.cu - breadth-first search on the GPU, after Rodinia's BFS: a function
// for the experiments of the paper (fast function switching: BFS is its
// CPU-heavy, many-round-trip benchmark).
//
// At instance start (mignificent_init) a random graph is generated (seeded:
// every instance has the same one; BFS_NODES nodes, default 1048576, 2 to
// 10 edges each, about 6 on average, like Rodinia's graph1MW_6) and copied
// to the GPU, and its breadth-first levels from node 0 are computed once on
// the CPU as the reference.  An invocation runs the search on the GPU level
// by level (two kernels and a 4-byte read-back per level, as Rodinia does)
// and answers JSON: nodes, levels, nodes reached, the sum of the levels and
// "ok" (the GPU's levels equal the CPU's).  The request body is not used.
//
// BFS_INPUT=file (the default) makes a request do what a Rodinia run does
// first: read its graph from Rodinia's text format ("n", a "start degree"
// line per node, the source, "m", a "destination cost" line per edge; kept
// in memory, rendered at instance start, as a file in the page cache would
// be) and copy it to the GPU — the CPU-heavy part of the paper's BFS that
// fast function switching overlaps with the other clients' kernels.
// BFS_INPUT=resident keeps the graph on the GPU between requests.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_runtime.h>

#include "mignificent.h"

extern "C" __global__ void bfs_expand(const int *starts, const int *edges, char *frontier,
				      char *updating, const char *visited, int *cost, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;

	if (i >= n || !frontier[i])
		return;
	frontier[i] = 0;
	for (int e = starts[i]; e < starts[i + 1]; e++) {
		int j = edges[e];

		if (!visited[j]) {
			cost[j] = cost[i] + 1;
			updating[j] = 1;
		}
	}
}

extern "C" __global__ void bfs_update(char *frontier, char *updating, char *visited, int *more,
				      int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;

	if (i >= n || !updating[i])
		return;
	frontier[i] = 1;
	visited[i] = 1;
	*more = 1;
	updating[i] = 0;
}

static int n, m;
static int *d_starts, *d_edges, *d_cost, *d_more, *h_cost, *ref_cost;
static char *graph_text;         // BFS_INPUT=file: the graph, as Rodinia's file
static int *req_starts, *req_edges; // what a request parsed from it
static char *d_frontier, *d_updating, *d_visited;

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

// The reference: levels from node 0, on the CPU.
static void cpu_bfs(const int *starts, const int *edges)
{
	int *queue = (int *)malloc((size_t)n * sizeof(int)), head = 0, tail = 0;

	for (int i = 0; i < n; i++)
		ref_cost[i] = -1;
	ref_cost[0] = 0;
	queue[tail++] = 0;
	while (head < tail) {
		int i = queue[head++];

		for (int e = starts[i]; e < starts[i + 1]; e++)
			if (ref_cost[edges[e]] < 0) {
				ref_cost[edges[e]] = ref_cost[i] + 1;
				queue[tail++] = edges[e];
			}
	}
	free(queue);
}

// Rodinia's graph file for @starts/@edges (n nodes, m edges), in memory.
static char *render_graph(const int *starts, const int *edges)
{
	size_t cap = ((size_t)n + (size_t)m) * 24 + 64, len = 0;
	char *t = (char *)malloc(cap);

	if (!t)
		return NULL;
	len += (size_t)snprintf(t + len, cap - len, "%d\n", n);
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(t + len, cap - len, "%d %d\n", starts[i],
					starts[i + 1] - starts[i]);
	len += (size_t)snprintf(t + len, cap - len, "0\n%d\n", m);
	for (int e = 0; e < m; e++)
		len += (size_t)snprintf(t + len, cap - len, "%d 1\n", edges[e]);
	return t;
}

// Parse the next decimal integer at *p; false at the end or on garbage.
static bool next_int(const char **p, long *v)
{
	char *end;

	*v = strtol(*p, &end, 10);
	if (end == *p)
		return false;
	*p = end;
	return true;
}

// A request's input: the graph parsed from its text into req_starts and
// req_edges.  false if the text is not a graph of n nodes and m edges.
static bool read_graph(void)
{
	const char *p = graph_text;
	long v, deg, src;

	if (!next_int(&p, &v) || v != n)
		return false;
	for (int i = 0; i < n; i++) {
		if (!next_int(&p, &v) || !next_int(&p, &deg) || v < 0 || v > m)
			return false;
		req_starts[i] = (int)v;
	}
	req_starts[n] = m;
	if (!next_int(&p, &src) || !next_int(&p, &v) || v != m)
		return false;
	for (int e = 0; e < m; e++) {
		long cost;

		if (!next_int(&p, &v) || !next_int(&p, &cost) || v < 0 || v >= n)
			return false;
		req_edges[e] = (int)v;
	}
	return true;
}

extern "C" int mignificent_init(void)
{
	const char *env = getenv("BFS_NODES"), *input = getenv("BFS_INPUT");
	uint64_t seed = 6;
	int *starts, *edges;

	n = env ? atoi(env) : 1 << 20;
	if (n < 2 || n > (1 << 26))
		return 2;
	starts = (int *)malloc(((size_t)n + 1) * sizeof(int));
	edges = (int *)malloc((size_t)n * 10 * sizeof(int));
	h_cost = (int *)malloc((size_t)n * sizeof(int));
	ref_cost = (int *)malloc((size_t)n * sizeof(int));
	if (!starts || !edges || !h_cost || !ref_cost)
		return 3;
	m = 0;
	for (int i = 0; i < n; i++) {
		int deg = 2 + (int)(lcg(&seed) % 9);

		starts[i] = m;
		for (int k = 0; k < deg; k++)
			edges[m++] = (int)(lcg(&seed) % (uint64_t)n);
	}
	starts[n] = m;
	cpu_bfs(starts, edges);
	if (!input || strcmp(input, "resident")) {
		graph_text = render_graph(starts, edges);
		req_starts = (int *)malloc(((size_t)n + 1) * sizeof(int));
		req_edges = (int *)malloc((size_t)m * sizeof(int));
		if (!graph_text || !req_starts || !req_edges)
			return 3;
	}
	if (cudaMalloc(&d_starts, ((size_t)n + 1) * sizeof(int)) ||
	    cudaMalloc(&d_edges, (size_t)m * sizeof(int)) ||
	    cudaMalloc(&d_cost, (size_t)n * sizeof(int)) || cudaMalloc(&d_more, sizeof(int)) ||
	    cudaMalloc(&d_frontier, (size_t)n) || cudaMalloc(&d_updating, (size_t)n) ||
	    cudaMalloc(&d_visited, (size_t)n) ||
	    cudaMemcpy(d_starts, starts, ((size_t)n + 1) * sizeof(int), cudaMemcpyHostToDevice) ||
	    cudaMemcpy(d_edges, edges, (size_t)m * sizeof(int), cudaMemcpyHostToDevice))
		return 4;
	free(starts);
	free(edges);
	return 0;
}

static int answer(struct mig_payload *o, const char *text, int status)
{
	o->data = strdup(text);
	o->len = o->data ? strlen(text) : 0;
	snprintf(o->content_type, sizeof(o->content_type), "application/json");
	return status;
}

extern "C" int bfs(const struct mig_payload *in, struct mig_payload *o)
{
	const int zero = 0, threads = 256, blocks = (n + threads - 1) / threads;
	int more = 1, levels = 0, reached = 0;
	long long sum = 0;
	char buf[256];
	bool ok = true;
	cudaError_t e;

	(void)in;
	if (graph_text) { // read the input, as every Rodinia run does
		if (!read_graph())
			return answer(o, "{\"error\": \"the graph text does not parse\"}", 1);
		if ((e = cudaMemcpy(d_starts, req_starts, ((size_t)n + 1) * sizeof(int),
				    cudaMemcpyHostToDevice)) ||
		    (e = cudaMemcpy(d_edges, req_edges, (size_t)m * sizeof(int),
				    cudaMemcpyHostToDevice))) {
			snprintf(buf, sizeof(buf), "{\"error\": \"%s\"}", cudaGetErrorString(e));
			return answer(o, buf, 1);
		}
	}
	// Start: node 0 in the frontier and visited, every cost -1 but its 0.
	cudaMemset(d_frontier, 0, (size_t)n);
	cudaMemset(d_updating, 0, (size_t)n);
	cudaMemset(d_visited, 0, (size_t)n);
	cudaMemset(d_cost, 0xff, (size_t)n * sizeof(int));
	cudaMemset(d_frontier, 1, 1);
	cudaMemset(d_visited, 1, 1);
	cudaMemcpy(d_cost, &zero, sizeof(int), cudaMemcpyHostToDevice);
	while (more) {
		cudaMemcpy(d_more, &zero, sizeof(int), cudaMemcpyHostToDevice);
		bfs_expand<<<blocks, threads>>>(d_starts, d_edges, d_frontier, d_updating, d_visited,
						d_cost, n);
		bfs_update<<<blocks, threads>>>(d_frontier, d_updating, d_visited, d_more, n);
		if ((e = cudaMemcpy(&more, d_more, sizeof(int), cudaMemcpyDeviceToHost)))
			break;
		levels += more;
	}
	if (!e)
		e = cudaMemcpy(h_cost, d_cost, (size_t)n * sizeof(int), cudaMemcpyDeviceToHost);
	if (e) {
		snprintf(buf, sizeof(buf), "{\"error\": \"%s\"}", cudaGetErrorString(e));
		return answer(o, buf, 1);
	}
	for (int i = 0; i < n; i++) {
		ok &= h_cost[i] == ref_cost[i];
		if (h_cost[i] >= 0) {
			reached++;
			sum += h_cost[i];
		}
	}
	snprintf(buf, sizeof(buf),
		 "{\"nodes\": %d, \"edges\": %d, \"levels\": %d, \"reached\": %d, "
		 "\"level_sum\": %lld, \"ok\": %s}",
		 n, m, levels, reached, sum, ok ? "true" : "false");
	return answer(o, buf, ok ? 0 : 1);
}
