/*
 * heap.c - pinned host memory from the shared segment.
 *
 * mignificent_malloc, cuMemAllocHost and cuMemHostAlloc all come from the
 * segment's heap, so a copy from or to them is a zero-copy DMA.  The
 * bookkeeping lives in the client's private memory (the server never reads
 * it); the server only learns which 64 MiB granules to pin, the first time
 * a block lands in one.  First fit over a sorted free list; blocks are
 * page aligned, like the driver's pinned allocations.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mignificent.h"
#include "segment.h"
#include "shim.h"

#define HEAP_ALIGN 4096u
#define MAX_GRANULES 4096u

struct block {
	uint64_t off, size;
};

static pthread_mutex_t heap_lock = PTHREAD_MUTEX_INITIALIZER;
static struct block *free_v, *used_v;
static uint32_t nfree, nused, cap_free, cap_used;
static int heap_ready;
static uint8_t pinned[MAX_GRANULES];

static int push(struct block **v, uint32_t *n, uint32_t *cap, uint32_t at,
		struct block b)
{
	if (*n == *cap) {
		uint32_t c = *cap ? *cap * 2 : 64;
		struct block *nv = realloc(*v, c * sizeof(*nv));

		if (!nv)
			return -1;
		*v = nv;
		*cap = c;
	}
	memmove(&(*v)[at + 1], &(*v)[at], (*n - at) * sizeof(b));
	(*v)[at] = b;
	(*n)++;
	return 0;
}

static void drop(struct block *v, uint32_t *n, uint32_t at)
{
	memmove(&v[at], &v[at + 1], (*n - at - 1) * sizeof(*v));
	(*n)--;
}

/* Ask the server to pin the granules under [off, off + size). */
static int pin_range(uint64_t off, uint64_t size)
{
	uint64_t g0 = (off - shim.heap_off) / MIG_PIN_GRANULE;
	uint64_t g1 = (off - shim.heap_off + size - 1) / MIG_PIN_GRANULE;
	uint64_t g;

	for (g = g0; g <= g1; g++) {
		struct mig_host_pin a;

		if (g >= MAX_GRANULES)
			return -1;
		if (pinned[g])
			continue;
		a.offset = shim.heap_off + g * MIG_PIN_GRANULE;
		a.size = MIG_PIN_GRANULE;
		if (a.offset + a.size > shim.seg_size)
			a.size = shim.seg_size - a.offset;
		if (shim_call(MIG_OP_HOST_PIN, &a, sizeof(a), MIG_MSGF_REPLY,
			      NULL, 0) != CUDA_SUCCESS)
			return -1;
		pinned[g] = 1;
	}
	return 0;
}

void *shim_heap_alloc(size_t size)
{
	uint64_t need;
	uint32_t i, at;
	struct block b;

	if (size == 0)
		size = 1;
	if (size > shim.heap_size)
		return NULL;
	need = (size + HEAP_ALIGN - 1) & ~(uint64_t)(HEAP_ALIGN - 1);
	pthread_mutex_lock(&heap_lock);
	if (!heap_ready) {
		push(&free_v, &nfree, &cap_free, 0,
		     (struct block){ shim.heap_off, shim.heap_size });
		heap_ready = 1;
	}
	for (i = 0; i < nfree && free_v[i].size < need; i++)
		;
	if (i == nfree)
		goto fail;
	b.off = free_v[i].off;
	b.size = need;
	if (pin_range(b.off, b.size) < 0)
		goto fail;
	for (at = 0; at < nused && used_v[at].off < b.off; at++)
		;
	if (push(&used_v, &nused, &cap_used, at, b) < 0)
		goto fail;
	free_v[i].off += need;
	free_v[i].size -= need;
	if (free_v[i].size == 0)
		drop(free_v, &nfree, i);
	pthread_mutex_unlock(&heap_lock);
	return shim.seg + b.off;
fail:
	pthread_mutex_unlock(&heap_lock);
	return NULL;
}

static int find_used(uint64_t off)
{
	uint32_t lo = 0, hi = nused;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;

		if (used_v[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < nused && used_v[lo].off == off ? (int)lo : -1;
}

size_t shim_heap_size_of(const void *p)
{
	size_t n = 0;
	int i;

	if (!shim_in_segment(p, 1))
		return 0;
	pthread_mutex_lock(&heap_lock);
	i = find_used((uint64_t)((const uint8_t *)p - shim.seg));
	if (i >= 0)
		n = used_v[i].size;
	pthread_mutex_unlock(&heap_lock);
	return n;
}

void shim_heap_free(void *p)
{
	uint64_t off;
	struct block b;
	uint32_t at;
	int i;

	if (!p || !shim_in_segment(p, 1))
		return;
	off = (uint64_t)((uint8_t *)p - shim.seg);
	pthread_mutex_lock(&heap_lock);
	i = find_used(off);
	if (i < 0)
		goto out;
	b = used_v[i];
	drop(used_v, &nused, (uint32_t)i);
	for (at = 0; at < nfree && free_v[at].off < b.off; at++)
		;
	/* Coalesce with the neighbours. */
	if (at > 0 && free_v[at - 1].off + free_v[at - 1].size == b.off) {
		free_v[at - 1].size += b.size;
		if (at < nfree && b.off + b.size == free_v[at].off) {
			free_v[at - 1].size += free_v[at].size;
			drop(free_v, &nfree, at);
		}
	} else if (at < nfree && b.off + b.size == free_v[at].off) {
		free_v[at].off = b.off;
		free_v[at].size += b.size;
	} else {
		push(&free_v, &nfree, &cap_free, at, b);
	}
out:
	pthread_mutex_unlock(&heap_lock);
}

SHIM_API void *mignificent_malloc(size_t size)
{
	void *p;

	if (shim_ensure_init() != CUDA_SUCCESS) {
		errno = ENODEV;
		return NULL;
	}
	p = shim_heap_alloc(size);
	if (!p)
		errno = ENOMEM;
	return p;
}

SHIM_API void mignificent_free(void *ptr)
{
	shim_heap_free(ptr);
}
