/*
 * swap.c - an idle instance's device memory to host memory and back,
 * pointer-stable ("lukewarm" instances).
 *
 * Every cuMemAlloc of the client is our own reserve-create-map (server.c,
 * op_mem_alloc), so its physical memory can go while its address stays:
 * swap-out waits for the GPU work in flight, copies each allocation into a
 * pinned host pool (chunks over several streams, so that the copies run at
 * the link's speed), unmaps it and releases its physical memory; swap-in
 * creates new physical memory, maps it at the same address and copies
 * back.  Device pointers, modules, streams and events stay what they were:
 * the client cannot tell, except by time.  The pool is kept and reused by
 * the next swap; it grows when the instance has grown.
 *
 * Not swapped (they stay resident): memory the client maps itself through
 * the virtual memory API (cuMemCreate/cuMemMap: PyTorch's expandable
 * segments), the driver's own memory (modules, their globals, the context).
 *
 * A call from the client while swapped out swaps in first (server.c):
 * background GPU work of an idle function sees no difference.  Swap-in's
 * copies wait for the partition's turn where the sharing model makes
 * copies exclusive (overlap-cpu; under sequential the daemon swaps in
 * within the invocation's turn); swap-out does not: it runs on an idle
 * instance, often because another one needs the memory now.
 */
#include <string.h>

#include "arbiter.h"
#include "gpud.h"
#include "seqword.h"

#define SWAP_STREAMS 4
#define SWAP_CHUNK (64ull << 20)

/* Wait until the GPU has done everything the client asked of it. */
static CUresult drain_gpu(struct gpud *g)
{
	uint64_t t0 = mig_now_ns();

	while (!gpud_streams_idle(g)) {
		if (mig_now_ns() - t0 > 60000000000ull)
			return CUDA_ERROR_TIMEOUT;
		mig_cpu_relax();
	}
	return CUDA_SUCCESS;
}

static uint64_t swappable_bytes(const struct gpud *g)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < g->vs.n; i++)
		if (g->vs.v[i].kind == VA_ALLOC)
			n += g->vs.v[i].size;
	return n;
}

/* The pool, at least @bytes large; reused between swaps. */
static CUresult pool_reserve(struct gpud *g, uint64_t bytes)
{
	void *p;
	CUresult r;

	if (g->swap.pool_size >= bytes)
		return CUDA_SUCCESS;
	if (g->swap.pool)
		g->b->cuMemFreeHost(g->swap.pool);
	g->swap.pool = NULL;
	g->swap.pool_size = 0;
	r = g->b->cuMemHostAlloc(&p, bytes ? bytes : 1, 0);
	if (r != CUDA_SUCCESS)
		return r;
	g->swap.pool = p;
	g->swap.pool_size = bytes;
	return CUDA_SUCCESS;
}

static CUresult streams_ready(struct gpud *g)
{
	for (int i = 0; i < SWAP_STREAMS; i++) {
		CUresult r;

		if (g->swap.streams[i])
			continue;
		r = g->b->cuStreamCreateWithPriority(&g->swap.streams[i],
						     CU_STREAM_NON_BLOCKING, 0);
		if (r == CUDA_SUCCESS)
			r = g->b->cuEventCreate(&g->swap.events[i],
						CU_EVENT_DISABLE_TIMING);
		if (r != CUDA_SUCCESS)
			return r;
	}
	return CUDA_SUCCESS;
}

/* Queue the copy of allocation @a and its place at @off in the pool, one
 * way, in chunks spread over the swap streams (@k: the next stream). */
static CUresult copy_queue(struct gpud *g, const struct gpud_alloc *a, uint64_t off,
			   bool out, unsigned int *k)
{
	CUresult r = CUDA_SUCCESS;

	for (uint64_t c = 0; c < a->size && r == CUDA_SUCCESS; c += SWAP_CHUNK) {
		uint64_t n = a->size - c < SWAP_CHUNK ? a->size - c : SWAP_CHUNK;
		uint8_t *h = (uint8_t *)g->swap.pool + off + c;
		CUstream s = g->swap.streams[(*k)++ % SWAP_STREAMS];

		r = out ? g->b->cuMemcpyDtoHAsync(h, a->addr + c, n, s) :
			  g->b->cuMemcpyHtoDAsync(a->addr + c, h, n, s);
	}
	return r;
}

/* Wait for every queued copy; @r: how queueing went. */
static CUresult copies_done(struct gpud *g, CUresult r)
{
	for (int i = 0; i < SWAP_STREAMS; i++) {
		CUresult e = g->b->cuEventRecordWithFlags(g->swap.events[i],
							  g->swap.streams[i], 0);

		if (e == CUDA_SUCCESS)
			e = g->b->cuEventSynchronize(g->swap.events[i]);
		if (r == CUDA_SUCCESS)
			r = e;
	}
	return r;
}

/* New physical memory under allocation @a, at its address. */
static CUresult remap(struct gpud *g, struct gpud_alloc *a)
{
	CUmemAllocationProp prop = { 0 };
	CUmemAccessDesc acc = { 0 };
	CUresult r;

	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = g->dev;
	r = g->b->cuMemCreate(&a->mem, a->size, &prop, 0);
	if (r != CUDA_SUCCESS)
		return r;
	r = g->b->cuMemMap(a->addr, a->size, 0, a->mem, 0);
	if (r == CUDA_SUCCESS) {
		acc.location = prop.location;
		acc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
		r = g->b->cuMemSetAccess(a->addr, a->size, &acc, 1);
		if (r != CUDA_SUCCESS)
			g->b->cuMemUnmap(a->addr, a->size);
	}
	if (r != CUDA_SUCCESS) {
		g->b->cuMemRelease(a->mem);
		a->mem = 0;
	}
	return r;
}

CUresult gpud_swap_out(struct gpud *g, struct mig_swap_report *rep)
{
	uint64_t t0 = mig_now_ns(), bytes, off = 0;
	unsigned int k = 0;
	CUresult r;

	memset(rep, 0, sizeof(*rep));
	if (g->swap.out)
		return CUDA_SUCCESS;
	if (g->sticky_error != CUDA_SUCCESS)
		return g->sticky_error;
	bytes = swappable_bytes(g);
	if ((r = drain_gpu(g)) || (r = streams_ready(g)) || (r = pool_reserve(g, bytes)))
		return r;
	for (uint32_t i = 0; i < g->vs.n && r == CUDA_SUCCESS; i++) {
		if (g->vs.v[i].kind == VA_ALLOC) {
			r = copy_queue(g, &g->vs.v[i], off, true, &k);
			off += g->vs.v[i].size;
		}
	}
	if ((r = copies_done(g, r)))
		return r;
	for (uint32_t i = 0; i < g->vs.n; i++) {
		struct gpud_alloc *a = &g->vs.v[i];

		if (a->kind != VA_ALLOC)
			continue;
		g->b->cuMemUnmap(a->addr, a->size);
		g->b->cuMemRelease(a->mem);
		a->mem = 0;
		rep->allocations++;
	}
	g->swap.out = true;
	rep->bytes = bytes;
	rep->ns = mig_now_ns() - t0;
	gpud_log(g, 1, "swapped out %u allocations, %.1f MiB in %.2f ms",
		 rep->allocations, bytes / 1048576.0, rep->ns / 1e6);
	return CUDA_SUCCESS;
}

CUresult gpud_swap_in(struct gpud *g, struct mig_swap_report *rep)
{
	uint64_t t0 = mig_now_ns(), off = 0;
	unsigned int k = 0;
	CUresult r = CUDA_SUCCESS;

	memset(rep, 0, sizeof(*rep));
	if (!g->swap.out)
		return CUDA_SUCCESS;
	/* The copies are the client's work done early: under a model that
	 * makes copies exclusive they wait for the partition's turn. */
	gpud_arbiter_hold(g, MIG_CLASS_COPY);
	t0 = mig_now_ns();
	/* Each allocation's copies start as soon as it is mapped again, so
	 * that making the next one overlaps them. */
	for (uint32_t i = 0; i < g->vs.n && r == CUDA_SUCCESS; i++) {
		struct gpud_alloc *a = &g->vs.v[i];

		if (a->kind != VA_ALLOC)
			continue;
		if (!a->mem)
			r = remap(g, a);
		if (r == CUDA_SUCCESS)
			r = copy_queue(g, a, off, false, &k);
		off += a->size;
		rep->allocations++;
		rep->bytes += a->size;
	}
	r = copies_done(g, r);
	if (r != CUDA_SUCCESS) {
		/* Its memory is lost: nothing the client holds can be trusted
		 * any more.  Like a lost context, every later call fails. */
		g->sticky_error = r == CUDA_ERROR_OUT_OF_MEMORY ?
					  CUDA_ERROR_OUT_OF_MEMORY : CUDA_ERROR_UNKNOWN;
		gpud_log(g, 0, "swap-in failed (%d): the instance's GPU memory is lost", r);
		return r;
	}
	g->swap.out = false;
	rep->ns = mig_now_ns() - t0;
	gpud_log(g, 1, "swapped in %u allocations, %.1f MiB in %.2f ms",
		 rep->allocations, rep->bytes / 1048576.0, rep->ns / 1e6);
	return CUDA_SUCCESS;
}

void gpud_swap_free(struct gpud *g)
{
	for (int i = 0; i < SWAP_STREAMS; i++) {
		if (g->swap.events[i])
			g->b->cuEventDestroy(g->swap.events[i]);
		if (g->swap.streams[i])
			g->b->cuStreamDestroy(g->swap.streams[i]);
	}
	if (g->swap.pool)
		g->b->cuMemFreeHost(g->swap.pool);
	memset(&g->swap, 0, sizeof(g->swap));
}
