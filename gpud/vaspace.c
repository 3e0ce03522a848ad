/*
 * vaspace.c - the device virtual address range of one instance.
 *
 * The server reserves one range at start (cuMemAddressReserve) and places
 * every allocation inside it, backed by cuMemCreate + cuMemMap.  Keeping
 * the reservation separate from the physical memory is what lets a later
 * swap-out release the memory and a swap-in map new memory at the very
 * same addresses.  Allocations are kept sorted; placement is first fit.
 */
#include <stdlib.h>
#include <string.h>

#include "gpud.h"

uint64_t vaspace_find(const struct gpud_vaspace *vs, uint64_t size)
{
	uint64_t at = vs->base;
	uint32_t i;

	for (i = 0; i < vs->n; i++) {
		if (vs->v[i].addr - at >= size)
			return at;
		at = vs->v[i].addr + vs->v[i].size;
	}
	if (vs->base + vs->size - at >= size)
		return at;
	return 0;
}

int vaspace_insert(struct gpud_vaspace *vs, const struct gpud_alloc *a)
{
	uint32_t i;

	if (vs->n == vs->cap) {
		uint32_t cap = vs->cap ? vs->cap * 2 : 64;
		struct gpud_alloc *v = realloc(vs->v, cap * sizeof(*v));

		if (!v)
			return -1;
		vs->v = v;
		vs->cap = cap;
	}
	for (i = 0; i < vs->n && vs->v[i].addr < a->addr; i++)
		;
	memmove(&vs->v[i + 1], &vs->v[i], (vs->n - i) * sizeof(*a));
	vs->v[i] = *a;
	vs->n++;
	vs->mapped += a->size;
	return 0;
}

int vaspace_lookup(const struct gpud_vaspace *vs, uint64_t addr)
{
	uint32_t lo = 0, hi = vs->n;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;

		if (vs->v[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < vs->n && vs->v[lo].addr == addr)
		return (int)lo;
	return -1;
}

void vaspace_remove(struct gpud_vaspace *vs, int idx)
{
	vs->mapped -= vs->v[idx].size;
	memmove(&vs->v[idx], &vs->v[idx + 1],
		(vs->n - (uint32_t)idx - 1) * sizeof(vs->v[0]));
	vs->n--;
}
