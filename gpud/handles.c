/*
 * handles.c - ids the server hands to its client for driver objects.
 *
 * A client never sees a driver pointer.  It gets an id that encodes a
 * table index and a generation; every use is checked against both and the
 * expected type, so a forged, stale or mistyped id is an error, never a
 * dereference.  id = generation << 32 | (index + 16): the low values 0, 1
 * and 2 stay free for the special stream handles.
 */
#include <stdlib.h>
#include <string.h>

#include "gpud.h"

#define ID_BIAS 16u
/* Streams, events, modules and functions one client may hold at once: far
 * beyond what programs use (PyTorch: hundreds), low enough that a client
 * creating handles in a loop exhausts its own limit, not the node. */
#define HANDLES_MAX (1u << 20)

uint64_t handles_add(struct gpud_handles *t, uint32_t type, void *ptr)
{
	struct gpud_handle *e;
	uint32_t idx;

	if (t->live >= HANDLES_MAX)
		return 0;
	if (t->free_head) {
		idx = t->free_head - 1;
		e = &t->v[idx];
		t->free_head = (uint32_t)(uintptr_t)e->ptr;
	} else {
		if (t->n == t->cap) {
			uint32_t cap = t->cap ? t->cap * 2 : 256;
			struct gpud_handle *v;

			if (cap > (1u << 30))
				return 0;
			v = realloc(t->v, cap * sizeof(*v));
			if (!v)
				return 0;
			t->v = v;
			t->cap = cap;
		}
		idx = t->n++;
		e = &t->v[idx];
		e->gen = 0;
	}
	e->gen++;
	e->type = type;
	e->ptr = ptr;
	e->ptr2 = NULL;
	e->owner = 0;
	e->flags = 0;
	t->live++;
	return ((uint64_t)e->gen << 32) | (idx + ID_BIAS);
}

struct gpud_handle *handles_get(struct gpud_handles *t, uint64_t id,
				uint32_t type)
{
	uint32_t low = (uint32_t)id, gen = (uint32_t)(id >> 32);
	struct gpud_handle *e;

	if (low < ID_BIAS || low - ID_BIAS >= t->n)
		return NULL;
	e = &t->v[low - ID_BIAS];
	if (e->type != type || e->gen != gen)
		return NULL;
	return e;
}

void handles_del(struct gpud_handles *t, uint64_t id)
{
	uint32_t idx = (uint32_t)id - ID_BIAS;
	struct gpud_handle *e = &t->v[idx];

	e->type = H_FREE;
	e->ptr = (void *)(uintptr_t)t->free_head;
	t->free_head = idx + 1;
	t->live--;
}

void handles_free_all(struct gpud_handles *t)
{
	free(t->v);
	memset(t, 0, sizeof(*t));
}
