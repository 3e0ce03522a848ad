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
 * The client's own physical allocations (cuMemCreate, mapped with
 * cuMemMap into its reservations: PyTorch's expandable segments) go too:
 * the bytes of each mapping are copied, the mappings unmapped and the
 * allocation released; swap-in creates a new one of the same size, maps
 * it at the same places with read-write access, and the client's handle
 * names the new one.  A mapping covers its whole allocation from offset 0
 * (the driver supports nothing else); an allocation stays resident when
 * one of its mappings is not read-write.  Never swapped: the driver's own
 * memory (modules, their globals, the context).
 *
 * A call from the client while swapped out swaps in first (server.c):
 * background GPU work of an idle function sees no difference.  Swap-in's
 * copies wait for the partition's turn where the sharing model makes
 * copies exclusive (overlap-cpu; under sequential the daemon swaps in
 * within the invocation's turn); swap-out does not: it runs on an idle
 * instance, often because another one needs the memory now.
 *
 * A swap-in that fails (no memory to create, a copy that failed) is final:
 * what it had made of an allocation is undone, the server tries no more
 * swap-ins and answers the sticky error where it checks it (allocations),
 * other calls fail or fault on the missing memory, and the daemon stops
 * the instance (an invocation that found it so starts anew on another).
 */
#include <stdlib.h>
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

static struct gpud_swap_phys *phys_of(struct gpud *g, unsigned long long mem)
{
	for (uint32_t j = 0; j < g->swap.nphys; j++)
		if (g->swap.phys[j].mem == mem)
			return &g->swap.phys[j];
	return NULL;
}

/*
 * The client's physical allocations behind its mappings, which of them can
 * go (g->swap.phys; each mapping's g->swap.map_out names its allocation,
 * .at nonzero if it goes) and the bytes that then move.  Allocations are
 * told apart by their handles' values here, while all are alive and so
 * distinct, and by index from then on.
 */
static CUresult phys_collect(struct gpud *g, uint64_t *bytes)
{
	struct gpud_vaspace *vs = &g->vs;
	uint32_t i;

	g->swap.nphys = 0;
	*bytes = 0;
	if (vs->nmaps > g->swap.cap_map_out) {
		struct gpud_swap_map *m = realloc(g->swap.map_out,
						  vs->nmaps * sizeof(*m));

		if (!m)
			return CUDA_ERROR_OUT_OF_MEMORY;
		g->swap.map_out = m;
		g->swap.cap_map_out = vs->nmaps;
	}
	for (i = 0; i < vs->nmaps; i++) {
		const struct gpud_map *mp = &vs->maps[i];
		struct gpud_swap_phys *p = phys_of(g, mp->mem);

		if (!p) {
			if (g->swap.nphys == g->swap.cap_phys) {
				uint32_t cap = g->swap.cap_phys ? 2 * g->swap.cap_phys : 16;
				void *v = realloc(g->swap.phys, cap * sizeof(*p));

				if (!v)
					return CUDA_ERROR_OUT_OF_MEMORY;
				g->swap.phys = v;
				g->swap.cap_phys = cap;
			}
			p = &g->swap.phys[g->swap.nphys++];
			memset(p, 0, sizeof(*p));
			p->mem = mp->mem;
			p->size = mp->size; /* the whole allocation */
			p->ok = true;
		}
		g->swap.map_out[i].phys = (uint32_t)(p - g->swap.phys);
		/* (a part of one, which no driver allowed so far, stays) */
		if (mp->access != CU_MEM_ACCESS_FLAGS_PROT_READWRITE || mp->offset ||
		    mp->size != p->size)
			p->ok = false;
	}
	for (i = 0; i < g->h.n; i++) {
		const struct gpud_handle *h = &g->h.v[i];
		struct gpud_swap_phys *p;

		if (h->type == H_MEM &&
		    (p = phys_of(g, (unsigned long long)(uintptr_t)h->ptr))) {
			p->handle_idx = i + 1;
			p->ok = p->ok && h->owner == p->size;
		}
	}
	for (i = 0; i < vs->nmaps; i++) {
		const struct gpud_swap_phys *p = &g->swap.phys[g->swap.map_out[i].phys];

		g->swap.map_out[i].at = p->ok;
		if (p->ok)
			*bytes += vs->maps[i].size;
	}
	return CUDA_SUCCESS;
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

/* Queue the copy of [@addr, +@size) and its place at @off in the pool, one
 * way, in chunks spread over the swap streams (@k: the next stream). */
static CUresult copy_queue(struct gpud *g, uint64_t addr, uint64_t size, uint64_t off,
			   bool out, unsigned int *k)
{
	CUresult r = CUDA_SUCCESS;

	for (uint64_t c = 0; c < size && r == CUDA_SUCCESS; c += SWAP_CHUNK) {
		uint64_t n = size - c < SWAP_CHUNK ? size - c : SWAP_CHUNK;
		uint8_t *h = (uint8_t *)g->swap.pool + off + c;
		CUstream s = g->swap.streams[(*k)++ % SWAP_STREAMS];

		r = out ? g->b->cuMemcpyDtoHAsync(h, addr + c, n, s) :
			  g->b->cuMemcpyHtoDAsync(addr + c, h, n, s);
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

/* New physical memory of @size on our device. */
static CUresult create(struct gpud *g, uint64_t size, unsigned long long *mem)
{
	CUmemAllocationProp prop = { 0 };

	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = g->dev;
	return g->b->cuMemCreate(mem, size, &prop, 0);
}

/* All of @mem at [@addr, +@size), read-write for our device. */
static CUresult map_rw(struct gpud *g, uint64_t addr, uint64_t size, unsigned long long mem)
{
	CUmemAccessDesc acc = { 0 };
	CUresult r = g->b->cuMemMap(addr, size, 0, mem, 0);

	if (r != CUDA_SUCCESS) {
		gpud_log(g, 0, "swap-in: cuMemMap(0x%llx, %llu) failed (%d)",
			 (unsigned long long)addr, (unsigned long long)size, r);
		return r;
	}
	acc.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	acc.location.id = g->dev;
	acc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	r = g->b->cuMemSetAccess(addr, size, &acc, 1);
	if (r != CUDA_SUCCESS) {
		gpud_log(g, 0, "swap-in: cuMemSetAccess(0x%llx, %llu) failed (%d)",
			 (unsigned long long)addr, (unsigned long long)size, r);
		g->b->cuMemUnmap(addr, size);
	}
	return r;
}

/* New physical memory under allocation @a, at its address. */
static CUresult remap(struct gpud *g, struct gpud_alloc *a)
{
	CUresult r = create(g, a->size, &a->mem);

	if (r == CUDA_SUCCESS && (r = map_rw(g, a->addr, a->size, a->mem))) {
		g->b->cuMemRelease(a->mem);
		a->mem = 0;
	}
	return r;
}

/*
 * The client's physical allocation @j back: created anew, mapped where it
 * was (its mappings' copies queued), its handle naming the new memory.
 * On failure nothing of it is mapped and the new memory is gone.
 */
static CUresult phys_back(struct gpud *g, uint32_t j, unsigned int *k,
			  struct mig_swap_report *rep)
{
	struct gpud_swap_phys *p = &g->swap.phys[j];
	unsigned long long mem;
	CUresult r = create(g, p->size, &mem);
	uint32_t i;

	if (r != CUDA_SUCCESS) {
		gpud_log(g, 0, "swap-in: cuMemCreate(%llu) failed (%d)",
			 (unsigned long long)p->size, r);
		return r;
	}
	/* Afterwards [0, i) holds every mapping of it that was made. */
	for (i = 0; i < g->vs.nmaps; i++) {
		const struct gpud_map *mp = &g->vs.maps[i];
		const struct gpud_swap_map *sm = &g->swap.map_out[i];

		if (!sm->at || sm->phys != j)
			continue;
		if ((r = map_rw(g, mp->addr, mp->size, mem)) != CUDA_SUCCESS)
			break;
		if ((r = copy_queue(g, mp->addr, mp->size, sm->at - 1, false, k))) {
			i++;
			break;
		}
	}
	if (r != CUDA_SUCCESS) {
		for (uint32_t u = 0; u < i; u++)
			if (g->swap.map_out[u].at && g->swap.map_out[u].phys == j)
				g->b->cuMemUnmap(g->vs.maps[u].addr, g->vs.maps[u].size);
		g->b->cuMemRelease(mem);
		return r;
	}
	for (i = 0; i < g->vs.nmaps; i++)
		if (g->swap.map_out[i].at && g->swap.map_out[i].phys == j) {
			g->vs.maps[i].mem = mem;
			rep->bytes += g->vs.maps[i].size;
		}
	if (p->handle_idx) /* the client's handle holds it, as before */
		g->h.v[p->handle_idx - 1].ptr = (void *)(uintptr_t)mem;
	else /* released by the client: it lives as long as its mappings */
		g->b->cuMemRelease(mem);
	p->mem = mem;
	rep->allocations++;
	return r;
}

CUresult gpud_swap_out(struct gpud *g, struct mig_swap_report *rep)
{
	uint64_t t0 = mig_now_ns(), bytes, mapped, off = 0;
	unsigned int k = 0;
	CUresult r;

	memset(rep, 0, sizeof(*rep));
	if (g->swap.out)
		return CUDA_SUCCESS;
	if (g->sticky_error != CUDA_SUCCESS)
		return g->sticky_error;
	if ((r = drain_gpu(g)) || (r = phys_collect(g, &mapped)))
		return r;
	bytes = swappable_bytes(g) + mapped;
	if ((r = streams_ready(g)) || (r = pool_reserve(g, bytes)))
		return r;
	for (uint32_t i = 0; i < g->vs.n && r == CUDA_SUCCESS; i++) {
		if (g->vs.v[i].kind == VA_ALLOC) {
			r = copy_queue(g, g->vs.v[i].addr, g->vs.v[i].size, off, true, &k);
			off += g->vs.v[i].size;
		}
	}
	for (uint32_t i = 0; i < g->vs.nmaps && r == CUDA_SUCCESS; i++) {
		if (g->swap.map_out[i].at) {
			g->swap.map_out[i].at = off + 1; /* where swap-in finds it */
			r = copy_queue(g, g->vs.maps[i].addr, g->vs.maps[i].size, off, true, &k);
			off += g->vs.maps[i].size;
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
	/* The client's allocations: unmapped everywhere, and the reference
	 * its handle holds dropped; the driver frees them then. */
	for (uint32_t i = 0; i < g->vs.nmaps; i++) {
		CUresult e;

		if (g->swap.map_out[i].at &&
		    (e = g->b->cuMemUnmap(g->vs.maps[i].addr, g->vs.maps[i].size)))
			gpud_log(g, 0, "swap-out: cuMemUnmap(0x%llx, %llu) failed (%d)",
				 (unsigned long long)g->vs.maps[i].addr,
				 (unsigned long long)g->vs.maps[i].size, e);
	}
	for (uint32_t j = 0; j < g->swap.nphys; j++) {
		struct gpud_swap_phys *p = &g->swap.phys[j];

		if (!p->ok)
			continue;
		if (p->handle_idx) { /* the handle names nothing until swap-in */
			g->b->cuMemRelease(p->mem);
			g->h.v[p->handle_idx - 1].ptr = NULL;
		}
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
	uint64_t t0, off = 0;
	unsigned int k = 0;
	CUresult r = CUDA_SUCCESS;

	memset(rep, 0, sizeof(*rep));
	if (!g->swap.out)
		return CUDA_SUCCESS;
	if (g->sticky_error != CUDA_SUCCESS)
		return g->sticky_error; /* lost, by an earlier try or otherwise */
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
			r = copy_queue(g, a->addr, a->size, off, false, &k);
		off += a->size;
		rep->allocations++;
		rep->bytes += a->size;
	}
	for (uint32_t j = 0; j < g->swap.nphys && r == CUDA_SUCCESS; j++)
		if (g->swap.phys[j].ok)
			r = phys_back(g, j, &k, rep);
	r = copies_done(g, r);
	if (r != CUDA_SUCCESS) {
		/* Its memory is lost: nothing the client holds can be trusted
		 * any more.  Like a lost context, every later call fails. */
		g->sticky_error = r == CUDA_ERROR_OUT_OF_MEMORY ?
					  CUDA_ERROR_OUT_OF_MEMORY : CUDA_ERROR_UNKNOWN;
		gpud_log(g, 0, "swap-in failed (%d): the instance's GPU memory is lost "
			 "(%u of its own physical allocations, %u mappings)", r,
			 g->swap.nphys, g->vs.nmaps);
		return r;
	}
	g->swap.out = false;
	rep->ns = mig_now_ns() - t0;
	gpud_log(g, 1, "swapped in %u allocations, %.1f MiB in %.2f ms",
		 rep->allocations, rep->bytes / 1048576.0, rep->ns / 1e6);
	return CUDA_SUCCESS;
}

void gpud_swap_pool_free(struct gpud *g)
{
	if (g->swap.out || !g->swap.pool)
		return;
	g->b->cuMemFreeHost(g->swap.pool);
	gpud_log(g, 1, "swap pool of %.1f MiB freed", g->swap.pool_size / 1048576.0);
	g->swap.pool = NULL;
	g->swap.pool_size = 0;
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
	free(g->swap.phys);
	free(g->swap.map_out);
	memset(&g->swap, 0, sizeof(g->swap));
}
