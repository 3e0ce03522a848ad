/*
 * vaspace.c - the device virtual address range of one instance.
 *
 * The server reserves one range at start (cuMemAddressReserve) and places
 * everything the client gets inside it: cuMemAlloc allocations (backed by
 * cuMemCreate + cuMemMap) and the client's own cuMemAddressReserve
 * reservations, which are only carved out of the range here, never
 * reserved again with the driver.  Keeping the reservation separate from
 * the physical memory is what lets a later swap-out release the memory
 * and a swap-in map new memory at the very same addresses; the entries
 * (v[]) and the client's mappings inside its reservations (maps[]) are the
 * complete list of what is mapped.  Both arrays are kept sorted and
 * disjoint; placement is first fit.
 */
#include <stdlib.h>
#include <string.h>

#include "gpud.h"

/* Round @at up to @align (a power of 2); 0 on overflow. */
static uint64_t align_up(uint64_t at, uint64_t align)
{
	uint64_t r;

	if (__builtin_add_overflow(at, align - 1, &r))
		return 0;
	return r & ~(align - 1);
}

uint64_t vaspace_find(const struct gpud_vaspace *vs, uint64_t size,
		      uint64_t align)
{
	uint64_t end = vs->base + vs->size, at;
	uint32_t i;

	for (i = 0; i <= vs->n; i++) {
		uint64_t gap_end = i < vs->n ? vs->v[i].addr : end;

		at = align_up(i ? vs->v[i - 1].addr + vs->v[i - 1].size :
				  vs->base, align);
		if (at && at <= gap_end && gap_end - at >= size)
			return at;
	}
	return 0;
}

bool vaspace_is_free(const struct gpud_vaspace *vs, uint64_t addr,
		     uint64_t size)
{
	uint32_t i;

	if (addr < vs->base || size > vs->size ||
	    addr - vs->base > vs->size - size)
		return false;
	for (i = 0; i < vs->n; i++)
		if (vs->v[i].addr < addr + size &&
		    addr < vs->v[i].addr + vs->v[i].size)
			return false;
	return true;
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
	if (a->kind == VA_ALLOC)
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

int vaspace_containing(const struct gpud_vaspace *vs, uint64_t addr,
		       uint64_t size)
{
	uint32_t lo = 0, hi = vs->n;
	const struct gpud_alloc *a;

	/* The last entry starting at or below @addr. */
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;

		if (vs->v[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return -1;
	a = &vs->v[lo - 1];
	if (size > a->size || addr - a->addr > a->size - size)
		return -1;
	return (int)(lo - 1);
}

void vaspace_remove(struct gpud_vaspace *vs, int idx)
{
	if (vs->v[idx].kind == VA_ALLOC)
		vs->mapped -= vs->v[idx].size;
	memmove(&vs->v[idx], &vs->v[idx + 1],
		(vs->n - (uint32_t)idx - 1) * sizeof(vs->v[0]));
	vs->n--;
}

uint32_t vaspace_map_after(const struct gpud_vaspace *vs, uint64_t addr)
{
	uint32_t lo = 0, hi = vs->nmaps;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;

		if (vs->maps[mid].addr + vs->maps[mid].size <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int vaspace_map_insert(struct gpud_vaspace *vs, const struct gpud_map *m)
{
	uint32_t i;

	if (vs->nmaps == vs->cap_maps) {
		uint32_t cap = vs->cap_maps ? vs->cap_maps * 2 : 64;
		struct gpud_map *v = realloc(vs->maps, cap * sizeof(*v));

		if (!v)
			return -1;
		vs->maps = v;
		vs->cap_maps = cap;
	}
	i = vaspace_map_after(vs, m->addr);
	memmove(&vs->maps[i + 1], &vs->maps[i], (vs->nmaps - i) * sizeof(*m));
	vs->maps[i] = *m;
	vs->nmaps++;
	return 0;
}

void vaspace_map_remove(struct gpud_vaspace *vs, uint32_t idx)
{
	memmove(&vs->maps[idx], &vs->maps[idx + 1],
		(vs->nmaps - idx - 1) * sizeof(vs->maps[0]));
	vs->nmaps--;
}

uint32_t vaspace_map_tiling(const struct gpud_vaspace *vs, uint64_t addr,
			    uint64_t size, uint32_t *first)
{
	uint64_t at = addr, end;
	uint32_t i, n = 0;

	if (!size || __builtin_add_overflow(addr, size, &end))
		return 0;
	i = vaspace_map_after(vs, addr);
	if (i == vs->nmaps || vs->maps[i].addr != addr)
		return 0;
	*first = i;
	for (; i < vs->nmaps && at < end; i++, n++) {
		if (vs->maps[i].addr != at)
			return 0;
		at += vs->maps[i].size;
	}
	return at == end ? n : 0;
}
