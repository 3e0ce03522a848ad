/*
 * server.c - mig-gpud's dispatch loop: decode the request ring, issue the
 * driver calls, answer the client.
 *
 * Every message is hostile input.  The loop copies a message's header and
 * fixed arguments out of the ring before looking at them, checks every
 * size, offset, slot and handle, and resolves host pointers only inside
 * the client's own segment.  A message that breaks the framing ends the
 * session (the client can only hurt itself); a message with bad arguments
 * gets an error code.
 *
 * Calls run in ring order.  A call whose answer depends on GPU progress (a
 * synchronize, a device-to-host copy) becomes a pending wait: its events
 * are polled between messages, so other client threads keep flowing while
 * one waits.  Before the loop sleeps it hands one pending event to the
 * waiter thread, which blocks in the driver and rings the doorbell when
 * the event completes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "arbiter.h"
#include "gpud.h"
#include "image.h"
#include "launch_attrs.h"
#include "segment.h"
#include "seqword.h"
#include "units.h"

#define SPIN_IDLE_NS 50000ull     /* spin on an empty ring before sleeping */
#define SPIN_PENDING_NS 2000000ull /* poll pending work before handing off:
					     a client thread is waiting, and a
					     wake-up costs tens of microseconds */
#define SLEEP_IDLE_NS 50000000ull /* sleep slice: check the client's life */
#define SLEEP_POLL_NS 100000ull   /* sleep slice when the waiter is busy */
#define BOUNCE_SIZE (16u << 20)
#define MAX_LAUNCH_ATTRS 32u

void gpud_log(const struct gpud *g, int level, const char *fmt, ...)
{
	va_list ap;

	if (level > g->verbose)
		return;
	fprintf(stderr, "mig-gpud[%s]: ", g->instance);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* --- small helpers ------------------------------------------------------- */

static bool in_segment(const struct gpud *g, uint64_t addr, uint64_t len)
{
	uint64_t base = (uint64_t)(uintptr_t)g->seg;

	return addr >= base && len <= g->seg_size &&
	       addr - base <= g->seg_size - len;
}

/*
 * The segment is pinned as several registrations (the fixed regions, then
 * one per heap granule), and one DMA must not cross from one registration
 * into the next.  Bytes of [addr, addr + len) up to the next boundary.
 */
static uint64_t pinned_piece(const struct gpud *g, uint64_t addr, uint64_t len)
{
	uint64_t off = addr - (uint64_t)(uintptr_t)g->seg;
	uint64_t end;

	if (off < g->heap_off)
		end = g->heap_off;
	else
		end = g->heap_off +
		      ((off - g->heap_off) / MIG_PIN_GRANULE + 1) * MIG_PIN_GRANULE;
	return end - off < len ? end - off : len;
}

/* Errors after which the context is unusable (cuda.h: "the process must
 * be terminated and relaunched"). */
static bool is_sticky(CUresult r)
{
	switch (r) {
	case CUDA_ERROR_ILLEGAL_ADDRESS:
	case CUDA_ERROR_LAUNCH_FAILED:
	case CUDA_ERROR_MISALIGNED_ADDRESS:
	case CUDA_ERROR_ILLEGAL_INSTRUCTION:
	case CUDA_ERROR_HARDWARE_STACK_ERROR:
	case CUDA_ERROR_INVALID_ADDRESS_SPACE:
	case CUDA_ERROR_INVALID_PC:
	case CUDA_ERROR_ASSERT:
	case CUDA_ERROR_ECC_UNCORRECTABLE:
	case CUDA_ERROR_LAUNCH_TIMEOUT:
	case CUDA_ERROR_CONTEXT_IS_DESTROYED:
		return true;
	default:
		return false;
	}
}

static void note_sticky(struct gpud *g, CUresult r)
{
	if (g->sticky_error == CUDA_SUCCESS && is_sticky(r)) {
		g->sticky_error = r;
		gpud_log(g, 1, "context error %d: the instance's context is lost", (int)r);
	}
}

static void defer_error(struct gpud *g, CUresult r)
{
	note_sticky(g, r);
	if (r != CUDA_SUCCESS && g->deferred_error == CUDA_SUCCESS)
		g->deferred_error = r;
}

/* Answer @m in its slot, or remember an error of a fire-and-forget call. */
static void reply(struct gpud *g, const struct mig_msg_hdr *m, CUresult r,
		  const void *data, uint32_t len)
{
	struct mig_reply_slot *s;

	note_sticky(g, r);
	if (!(m->flags & MIG_MSGF_REPLY)) {
		defer_error(g, r);
		return;
	}
	s = &g->slots[m->slot];
	s->result = r;
	s->len = len;
	if (len)
		memcpy(s->data, data, len);
	mig_seqword_publish(&s->seq, m->seq);
}

/* Synchronizing calls also return the error of an earlier async call. */
static CUresult take_deferred(struct gpud *g, CUresult r)
{
	if (r == CUDA_SUCCESS && g->deferred_error != CUDA_SUCCESS) {
		r = g->deferred_error;
		g->deferred_error = CUDA_SUCCESS;
	}
	return r;
}

static CUevent event_get(struct gpud *g)
{
	CUevent ev;

	if (g->nevpool)
		return g->evpool[--g->nevpool];
	if (g->b->cuEventCreate(&ev, CU_EVENT_DISABLE_TIMING) != CUDA_SUCCESS)
		return NULL;
	return ev;
}

static void event_put(struct gpud *g, CUevent ev)
{
	pthread_mutex_lock(&g->wlock);
	if (g->wait_ev == ev) {
		/* The waiter still blocks on it: it returns it when done. */
		pthread_mutex_unlock(&g->wlock);
		return;
	}
	pthread_mutex_unlock(&g->wlock);
	if (g->nevpool == g->evpool_cap) {
		uint32_t cap = g->evpool_cap ? g->evpool_cap * 2 : 64;
		CUevent *v = realloc(g->evpool, cap * sizeof(*v));

		if (!v) {
			g->b->cuEventDestroy(ev);
			return;
		}
		g->evpool = v;
		g->evpool_cap = cap;
	}
	g->evpool[g->nevpool++] = ev;
}

/*
 * Map a client stream value to a driver stream.  0 is the legacy stream,
 * or this thread's per-thread stream when the call came through a _ptsz
 * entry point; 1 and 2 are CU_STREAM_LEGACY and CU_STREAM_PER_THREAD.
 */
static CUresult resolve_stream(struct gpud *g, const struct mig_msg_hdr *m,
			       uint64_t id, CUstream *out)
{
	struct gpud_handle *h;

	if (id == MIG_STREAM_NULL && !(m->flags & MIG_MSGF_PER_THREAD)) {
		*out = NULL;
		return CUDA_SUCCESS;
	}
	if (id == MIG_STREAM_LEGACY) {
		*out = CU_STREAM_LEGACY;
		return CUDA_SUCCESS;
	}
	if (id == MIG_STREAM_NULL || id == MIG_STREAM_PER_THREAD) {
		CUstream *s = &g->ptds[m->slot];

		if (!*s) {
			CUresult r = g->b->cuStreamCreateWithPriority(s, 0, 0);

			if (r != CUDA_SUCCESS) {
				*s = NULL;
				return r;
			}
		}
		*out = *s;
		return CUDA_SUCCESS;
	}
	h = handles_get(&g->h, id, H_STREAM);
	if (!h)
		return CUDA_ERROR_INVALID_HANDLE;
	*out = h->ptr;
	return CUDA_SUCCESS;
}

/* --- pending waits ------------------------------------------------------ */

static struct gpud_pending *pending_new(struct gpud *g,
					const struct mig_msg_hdr *m,
					uint32_t action)
{
	struct gpud_pending *p;

	if (g->npend == g->pend_cap) {
		uint32_t cap = g->pend_cap ? g->pend_cap * 2 : 32;
		struct gpud_pending *v = realloc(g->pend, cap * sizeof(*v));

		if (!v)
			return NULL;
		g->pend = v;
		g->pend_cap = cap;
	}
	p = &g->pend[g->npend++];
	memset(p, 0, sizeof(*p));
	p->slot = m->slot;
	p->seq = m->seq;
	p->action = action;
	if (!(m->flags & MIG_MSGF_REPLY) && action == ACT_REPLY)
		p->slot = 0xffff;
	return p;
}

/* Record an event on @s and make @p wait for it. */
static CUresult pending_add_event(struct gpud *g, struct gpud_pending *p,
				  CUstream s)
{
	CUevent ev;
	CUresult r;

	if (p->nev == GPUD_PENDING_EVENTS)
		return CUDA_ERROR_OUT_OF_MEMORY;
	ev = event_get(g);
	if (!ev)
		return CUDA_ERROR_OUT_OF_MEMORY;
	r = g->b->cuEventRecordWithFlags(ev, s, 0);
	if (r != CUDA_SUCCESS) {
		event_put(g, ev);
		return r;
	}
	p->ev[p->nev++] = ev;
	return CUDA_SUCCESS;
}

static void pending_finish(struct gpud *g, struct gpud_pending *p, CUresult r)
{
	struct mig_reply_slot *s;
	uint32_t i;

	for (i = 0; i < p->nev; i++)
		event_put(g, p->ev[i]);
	p->nev = 0;

	switch (p->action) {
	case ACT_STAGING_DONE:
		g->hdr->staging_result[p->arg0] = r;
		mig_seqword_publish(&g->hdr->staging_done[p->arg0],
				    (uint32_t)p->arg1);
		return;
	case ACT_FREE:
		if (r == CUDA_SUCCESS) {
			int idx = vaspace_lookup(&g->vs, p->arg0);

			if (idx < 0 || g->vs.v[idx].kind != VA_ALLOC) {
				r = CUDA_ERROR_INVALID_VALUE;
			} else {
				struct gpud_alloc a = g->vs.v[idx];

				r = g->b->cuMemUnmap(a.addr, a.size);
				if (r == CUDA_SUCCESS)
					r = g->b->cuMemRelease(a.mem);
				vaspace_remove(&g->vs, idx);
			}
		}
		break;
	default:
		break;
	}
	if (p->sync_point)
		r = take_deferred(g, r);
	note_sticky(g, r);
	if (p->slot == 0xffff) {
		defer_error(g, r);
		return;
	}
	s = &g->slots[p->slot];
	s->result = r;
	s->len = r == CUDA_SUCCESS ? p->reply_len : 0;
	mig_seqword_publish(&s->seq, p->seq);
}

static CUresult pending_add_busy_streams(struct gpud *g,
					 struct gpud_pending *p);

/* Poll every pending wait once; finish those that completed. */
static bool poll_pending(struct gpud *g)
{
	bool progress = false;
	uint32_t i = 0;

	while (i < g->npend) {
		struct gpud_pending *p = &g->pend[i];
		CUresult r = CUDA_SUCCESS;

		while (p->nstream) {
			r = g->b->cuStreamQuery(p->stream[p->nstream - 1]);
			if (r == CUDA_ERROR_NOT_READY)
				break;
			p->nstream--;
			if (r != CUDA_SUCCESS)
				break;
		}
		if (r == CUDA_SUCCESS && p->user_event) {
			struct gpud_handle *e =
				handles_get(&g->h, p->user_event, H_EVENT);

			r = e ? g->b->cuEventQuery(e->ptr) : CUDA_SUCCESS;
			if (r != CUDA_ERROR_NOT_READY)
				p->user_event = 0;
		}
		while (r == CUDA_SUCCESS && p->nev) {
			r = g->b->cuEventQuery(p->ev[p->nev - 1]);
			if (r == CUDA_ERROR_NOT_READY)
				break;
			event_put(g, p->ev[--p->nev]);
		}
		if (r == CUDA_SUCCESS && p->ctx_rescan) {
			r = pending_add_busy_streams(g, p);
			if (r == CUDA_SUCCESS && p->nev)
				r = CUDA_ERROR_NOT_READY;
		}
		if (r == CUDA_ERROR_NOT_READY) {
			i++;
			continue;
		}
		pending_finish(g, p, r);
		g->pend[i] = g->pend[--g->npend];
		progress = true;
	}
	return progress;
}

/* Finish @p at once if its work is already done (the common fast path). */
static void pending_try_now(struct gpud *g)
{
	poll_pending(g);
}

/* --- bounce buffer for inline host-to-device data ----------------------- */

static bool poll_bounce(struct gpud *g)
{
	bool progress = false;

	while (g->bq_head != g->bq_tail) {
		uint32_t i = g->bq_head % 1024;

		if (g->b->cuEventQuery(g->bounce_q[i].ev) == CUDA_ERROR_NOT_READY)
			break;
		g->bounce_tail = g->bounce_q[i].end;
		event_put(g, g->bounce_q[i].ev);
		g->bq_head++;
		progress = true;
	}
	return progress;
}

/*
 * Take @len bytes of the bounce ring.  The ring is released in FIFO order
 * as the copies that read it complete; when it is full we wait for the
 * oldest copy.
 */
static uint8_t *bounce_take(struct gpud *g, uint64_t len)
{
	uint64_t at;

	for (;;) {
		uint64_t used = g->bounce_head - g->bounce_tail;
		uint64_t off = g->bounce_head % g->bounce_size;
		uint64_t skip = off + len > g->bounce_size ?
					g->bounce_size - off : 0;

		if (g->bq_tail - g->bq_head < 1024 &&
		    used + skip + len <= g->bounce_size) {
			g->bounce_head += skip;
			at = g->bounce_head % g->bounce_size;
			g->bounce_head += len;
			return g->bounce + at;
		}
		if (g->bq_head == g->bq_tail)
			return NULL; /* cannot happen: len <= size */
		g->b->cuEventSynchronize(g->bounce_q[g->bq_head % 1024].ev);
		poll_bounce(g);
	}
}

static void bounce_fence(struct gpud *g, CUstream s)
{
	CUevent ev = event_get(g);
	uint32_t i = g->bq_tail % 1024;

	if (!ev || g->b->cuEventRecordWithFlags(ev, s, 0) != CUDA_SUCCESS) {
		/* Cannot track the copy: wait until the stream drained it. */
		if (ev)
			event_put(g, ev);
		while (g->b->cuStreamQuery(s) == CUDA_ERROR_NOT_READY)
			mig_cpu_relax();
		g->bounce_tail = g->bounce_head;
		return;
	}
	g->bounce_q[i].ev = ev;
	g->bounce_q[i].end = g->bounce_head;
	g->bq_tail++;
}

/* --- handlers ------------------------------------------------------------ */

typedef void (*handler_fn)(struct gpud *g, const struct mig_msg_hdr *m,
			   const uint8_t *body, uint32_t len);

#define ARGS(type, name)                \
	type name;                      \
	memcpy(&name, body, sizeof(name))

static void op_hello(struct gpud *g, const struct mig_msg_hdr *m,
		     const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_hello, a);
	(void)len;
	gpud_log(g, 1, "client pid %u attached", a.pid);
	reply(g, m, CUDA_SUCCESS, NULL, 0);
}

/*
 * Make @p wait for every stream of the context that has work in flight:
 * the legacy stream (which also waits for the blocking streams), every
 * created stream and every per-thread stream.  Streams found idle cost
 * one query and no event.  When more streams are busy than @p can hold
 * events for, @p rescans once those complete (ctx_rescan), which may wait
 * for a little more work than asked, never for less.
 */
static CUresult pending_add_busy_stream(struct gpud *g, struct gpud_pending *p,
					CUstream s)
{
	CUresult r = g->b->cuStreamQuery(s);

	/* An error here (a fault) is the answer: the driver reports it on
	 * the next synchronize too. */
	return r == CUDA_ERROR_NOT_READY ? pending_add_event(g, p, s) : r;
}

static CUresult pending_add_busy_streams(struct gpud *g, struct gpud_pending *p)
{
	CUresult r;
	uint32_t i;

	p->ctx_rescan = 0;
	r = pending_add_busy_stream(g, p, NULL);
	for (i = 0; r == CUDA_SUCCESS && i < g->h.n; i++)
		if (g->h.v[i].type == H_STREAM)
			r = pending_add_busy_stream(g, p, g->h.v[i].ptr);
	for (i = 0; r == CUDA_SUCCESS && i < MIG_REPLY_SLOTS; i++)
		if (g->ptds[i])
			r = pending_add_busy_stream(g, p, g->ptds[i]);
	if (r == CUDA_ERROR_OUT_OF_MEMORY && p->nev == GPUD_PENDING_EVENTS) {
		p->ctx_rescan = 1;
		r = CUDA_SUCCESS;
	}
	return r;
}

/* Wait for every stream we know of; reply when all are idle. */
static void op_ctx_sync(struct gpud *g, const struct mig_msg_hdr *m,
			const uint8_t *body, uint32_t len)
{
	struct gpud_pending *p = pending_new(g, m, ACT_REPLY);
	CUresult r;
	uint32_t i;

	(void)body;
	(void)len;
	if (!p) {
		reply(g, m, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
		return;
	}
	r = pending_add_busy_streams(g, p);
	if (r != CUDA_SUCCESS || p->nev == 0) {
		g->npend--; /* p is the last entry */
		for (i = 0; i < p->nev; i++)
			event_put(g, p->ev[i]);
		reply(g, m, take_deferred(g, r), NULL, 0);
		return;
	}
	p->sync_point = 1;
}

static void op_ctx_get_limit(struct gpud *g, const struct mig_msg_hdr *m,
			     const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_ctx_limit, a);
	size_t v = 0;
	uint64_t out;
	CUresult r = g->b->cuCtxGetLimit(&v, (CUlimit)a.limit);

	(void)len;
	out = v;
	reply(g, m, r, &out, r == CUDA_SUCCESS ? sizeof(out) : 0);
}

static void op_ctx_set_limit(struct gpud *g, const struct mig_msg_hdr *m,
			     const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_ctx_limit, a);
	(void)len;
	reply(g, m, g->b->cuCtxSetLimit((CUlimit)a.limit, (size_t)a.value),
	      NULL, 0);
}

static int by_mem(const void *x, const void *y)
{
	unsigned long long a = ((const struct gpud_map_mem *)x)->mem;
	unsigned long long b = ((const struct gpud_map_mem *)y)->mem;

	return (a > b) - (a < b);
}

/*
 * Device memory the client holds: our allocations for its cuMemAlloc and
 * its own physical allocations (virtual memory API), each counted once
 * however often it is mapped, whether its handle is kept or only its
 * mappings hold it.  Kept handles are a running sum; an allocation whose
 * handle was released (PyTorch releases each right after mapping it)
 * lives in its mappings, which are sorted by their allocation to count
 * each once: O(mappings log mappings), whatever the client's number of
 * other handles.
 */
static uint64_t client_bytes(struct gpud *g)
{
	uint64_t n = g->vs.mapped + g->mem_handle_bytes;
	uint32_t i, k = 0;

	if (g->vs.nmaps > g->cap_map_mems) {
		struct gpud_map_mem *v = realloc(g->map_mems, g->vs.nmaps * sizeof(*v));

		if (v) {
			g->map_mems = v;
			g->cap_map_mems = g->vs.nmaps;
		}
	}
	for (i = 0; i < g->vs.nmaps; i++) {
		const struct gpud_map *mp = &g->vs.maps[i];
		struct gpud_handle *h = handles_get(&g->h, mp->handle, H_MEM);

		if (h && (uintptr_t)h->ptr == (uintptr_t)mp->mem)
			continue; /* its handle is counted */
		if (k < g->cap_map_mems) /* a mapping covers its allocation */
			g->map_mems[k++] = (struct gpud_map_mem){ mp->mem, mp->size };
		else
			n += mp->size; /* no memory for the scratch: counted
					  per mapping, never less than held */
	}
	if (k > 1)
		qsort(g->map_mems, k, sizeof(*g->map_mems), by_mem);
	for (i = 0; i < k; i++)
		if (!i || g->map_mems[i].mem != g->map_mems[i - 1].mem)
			n += g->map_mems[i].size;
	return n;
}

/*
 * May the client hold @size more bytes?  Its limit is the daemon's
 * MEMORY_LIMIT frame, sent before the client existed: read before the
 * first allocation is judged.
 */
static bool within_limit(struct gpud *g, uint64_t size)
{
	if (!g->mem_limit_read) {
		while (gpud_control_poll(g))
			;
		g->mem_limit_read = true;
	}
	return !g->mem_limit || (size <= g->mem_limit &&
				 client_bytes(g) <= g->mem_limit - size);
}

/* With a limit the device is as large as the limit: free is what is left
 * of it (or less, if the partition has less), and other tenants' use is
 * not seen. */
static void op_mem_get_info(struct gpud *g, const struct mig_msg_hdr *m,
			    const uint8_t *body, uint32_t len)
{
	struct mig_mem_info mi;
	size_t f = 0, t = 0;
	CUresult r = g->b->cuMemGetInfo(&f, &t);

	(void)body;
	(void)len;
	within_limit(g, 0); /* the limit known */
	mi.client_used = client_bytes(g);
	mi.free = f;
	mi.total = t;
	if (g->mem_limit) {
		uint64_t left = mi.client_used < g->mem_limit ?
					g->mem_limit - mi.client_used : 0;

		mi.total = g->mem_limit < t ? g->mem_limit : t;
		mi.free = left < f ? left : f;
	}
	reply(g, m, r, &mi, r == CUDA_SUCCESS ? sizeof(mi) : 0);
}

/* Reserve-create-map: the address stays ours across a later swap. */
static void op_mem_alloc(struct gpud *g, const struct mig_msg_hdr *m,
			 const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_mem_alloc, a);
	CUmemAllocationProp prop = { 0 };
	CUmemAccessDesc acc = { 0 };
	struct gpud_alloc al = { 0 };
	CUresult r;

	(void)len;
	if (g->sticky_error != CUDA_SUCCESS) {
		reply(g, m, g->sticky_error, NULL, 0);
		return;
	}
	if (a.size == 0 || a.size > g->vs.size) {
		reply(g, m, a.size ? CUDA_ERROR_OUT_OF_MEMORY :
				     CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	al.size = (a.size + g->granularity - 1) & ~(g->granularity - 1);
	if (!within_limit(g, al.size)) {
		reply(g, m, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
		return;
	}
	al.addr = vaspace_find(&g->vs, al.size, g->granularity);
	if (!al.addr) {
		reply(g, m, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
		return;
	}
	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = g->dev;
	r = g->b->cuMemCreate(&al.mem, al.size, &prop, 0);
	if (r != CUDA_SUCCESS)
		goto out;
	r = g->b->cuMemMap(al.addr, al.size, 0, al.mem, 0);
	if (r != CUDA_SUCCESS)
		goto release;
	acc.location = prop.location;
	acc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	r = g->b->cuMemSetAccess(al.addr, al.size, &acc, 1);
	if (r != CUDA_SUCCESS)
		goto unmap;
	if (vaspace_insert(&g->vs, &al) < 0) {
		r = CUDA_ERROR_OUT_OF_MEMORY;
		goto unmap;
	}
	reply(g, m, CUDA_SUCCESS, &al.addr, sizeof(al.addr));
	return;
unmap:
	g->b->cuMemUnmap(al.addr, al.size);
release:
	g->b->cuMemRelease(al.mem);
out:
	reply(g, m, r, NULL, 0);
}

/* Like cuMemFree, wait for work in flight before the memory goes. */
static void op_mem_free(struct gpud *g, const struct mig_msg_hdr *m,
			const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_mem_free, a);
	struct gpud_pending *p;
	CUresult r;
	int idx;

	(void)len;
	idx = vaspace_lookup(&g->vs, a.dptr);
	/* A reservation is freed with cuMemAddressFree, never cuMemFree. */
	if (idx < 0 || g->vs.v[idx].kind != VA_ALLOC) {
		reply(g, m, CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	p = pending_new(g, m, ACT_FREE);
	if (!p) {
		reply(g, m, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
		return;
	}
	p->arg0 = a.dptr;
	r = pending_add_busy_streams(g, p);
	if (r != CUDA_SUCCESS || p->nev == 0) {
		struct gpud_pending done = *p;

		g->npend--;
		pending_finish(g, &done, r);
	}
}

static void op_host_pin(struct gpud *g, const struct mig_msg_hdr *m,
			const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_host_pin, a);
	uint64_t gi, first, last;
	CUresult r = CUDA_SUCCESS;

	(void)len;
	if (a.size == 0 || a.offset < g->heap_off ||
	    a.offset - g->heap_off > g->heap_size ||
	    a.size > g->heap_size - (a.offset - g->heap_off)) {
		reply(g, m, CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	first = (a.offset - g->heap_off) / MIG_PIN_GRANULE;
	last = (a.offset - g->heap_off + a.size - 1) / MIG_PIN_GRANULE;
	for (gi = first; gi <= last && r == CUDA_SUCCESS; gi++) {
		uint64_t off = g->heap_off + gi * MIG_PIN_GRANULE;
		uint64_t sz = MIG_PIN_GRANULE;

		if (gi >= sizeof(g->pinned_granule)) {
			r = CUDA_ERROR_INVALID_VALUE;
			break;
		}
		if (g->pinned_granule[gi])
			continue;
		if (off + sz > g->seg_size)
			sz = g->seg_size - off;
		r = g->b->cuMemHostRegister(g->seg + off, sz,
					    CU_MEMHOSTREGISTER_PORTABLE |
						    CU_MEMHOSTREGISTER_DEVICEMAP);
		if (r == CUDA_SUCCESS)
			g->pinned_granule[gi] = 1;
	}
	reply(g, m, r, NULL, 0);
}

/* After issuing async work for @m: answer now, or when it completes. */
static void finish_issue(struct gpud *g, const struct mig_msg_hdr *m,
			 CUstream s, CUresult r, uint32_t reply_len)
{
	struct gpud_pending *p;

	if (r != CUDA_SUCCESS || !(m->flags & MIG_MSGF_COMPLETE) ||
	    !(m->flags & MIG_MSGF_REPLY)) {
		if (m->flags & MIG_MSGF_COMPLETE)
			r = take_deferred(g, r);
		reply(g, m, r, NULL, 0);
		return;
	}
	p = pending_new(g, m, ACT_REPLY);
	if (!p) {
		reply(g, m, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
		return;
	}
	p->reply_len = reply_len;
	p->sync_point = 1;
	r = pending_add_event(g, p, s);
	if (r != CUDA_SUCCESS) {
		g->npend--;
		reply(g, m, r, NULL, 0);
		return;
	}
	pending_try_now(g);
}

/*
 * A host-to-device copy from pinned memory (ours all are).  The driver
 * writes one under 32 KiB into the command stream of the GPU's compute
 * engine: without MPS it then waits for a time slice while another
 * context's kernels run (2.4 ms on the H200, against 8 us alone) and
 * preempts them, about 300 us each time (call_class()).  The same bytes
 * as a 2D copy of two rows go to a copy engine instead, beside another's
 * kernels at no cost to either, in 10 us alone (bench/sharing/
 * interference, driver 580; a 2D copy of one row is taken as a 1D one and
 * written into the stream).  So an even-sized small copy goes as two
 * rows; an odd-sized one as it is, and call_class() counts it for the
 * compute engine.
 */
#define H2D_ON_COMPUTE_BELOW (32u << 10)

static bool htod_in_two_rows(uint64_t size)
{
	return size && size < H2D_ON_COMPUTE_BELOW && !(size & 1);
}

/* Whether the GPU runs an upload of @size from pinned memory, as we issue
 * it, on its compute engine: only an odd-sized small one. */
static bool htod_on_compute_engine(uint64_t size)
{
	return size < H2D_ON_COMPUTE_BELOW && !htod_in_two_rows(size);
}

static CUresult htod_async(struct gpud *g, CUdeviceptr dst, const void *src, uint64_t size,
			   CUstream s)
{
	CUDA_MEMCPY2D c;

	if (!htod_in_two_rows(size))
		return g->b->cuMemcpyHtoDAsync(dst, src, size, s);
	memset(&c, 0, sizeof(c));
	c.srcMemoryType = CU_MEMORYTYPE_HOST;
	c.srcHost = src;
	c.srcPitch = size / 2;
	c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
	c.dstDevice = dst;
	c.dstPitch = size / 2;
	c.WidthInBytes = size / 2;
	c.Height = 2;
	g->htod_rows++;
	return g->b->cuMemcpy2DAsync(&c, s);
}

static void op_memcpy_htod(struct gpud *g, const struct mig_msg_hdr *m,
			   const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_memcpy_htod, a);
	CUstream s;
	CUresult r = resolve_stream(g, m, a.stream, &s);

	if (r != CUDA_SUCCESS)
		goto out;
	if (a.src) {
		if (!in_segment(g, a.src, a.size)) {
			r = CUDA_ERROR_INVALID_VALUE;
			goto out;
		}
		uint64_t done = 0;

		while (r == CUDA_SUCCESS && done < a.size) {
			uint64_t n = pinned_piece(g, a.src + done, a.size - done);

			r = htod_async(g, a.dst + done, (void *)(uintptr_t)(a.src + done), n, s);
			done += n;
		}
	} else {
		uint8_t *bb;

		if (a.size > MIG_INLINE_MAX || a.size > len - sizeof(a)) {
			r = CUDA_ERROR_INVALID_VALUE;
			goto out;
		}
		bb = bounce_take(g, a.size);
		if (!bb) {
			r = CUDA_ERROR_OUT_OF_MEMORY;
			goto out;
		}
		memcpy(bb, body + sizeof(a), a.size);
		r = htod_async(g, a.dst, bb, a.size, s);
		bounce_fence(g, s);
	}
	g->stats.bytes_htod += a.size;
out:
	finish_issue(g, m, s, r, 0);
}

static void op_memcpy_dtoh(struct gpud *g, const struct mig_msg_hdr *m,
			   const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_memcpy_dtoh, a);
	CUstream s = NULL;
	CUresult r = resolve_stream(g, m, a.stream, &s);
	void *dst;
	uint32_t rlen = 0;

	(void)len;
	if (r != CUDA_SUCCESS)
		goto out;
	if (a.dst) {
		if (!in_segment(g, a.dst, a.size)) {
			r = CUDA_ERROR_INVALID_VALUE;
			goto out;
		}
		dst = (void *)(uintptr_t)a.dst;
	} else {
		/* Into the reply slot: only for a call that waits for it. */
		if (a.size > MIG_REPLY_DATA || !(m->flags & MIG_MSGF_REPLY)) {
			r = CUDA_ERROR_INVALID_VALUE;
			goto out;
		}
		dst = g->slots[m->slot].data;
		rlen = (uint32_t)a.size;
		/* Data must be there before we answer. */
		((struct mig_msg_hdr *)m)->flags |= MIG_MSGF_COMPLETE;
	}
	if (a.dst) {
		uint64_t done = 0;

		while (r == CUDA_SUCCESS && done < a.size) {
			uint64_t n = pinned_piece(g, a.dst + done, a.size - done);

			r = g->b->cuMemcpyDtoHAsync((uint8_t *)dst + done,
						    a.src + done, n, s);
			done += n;
		}
	} else {
		r = g->b->cuMemcpyDtoHAsync(dst, a.src, a.size, s);
	}
	g->stats.bytes_dtoh += a.size;
out:
	finish_issue(g, m, s, r, rlen);
}

static void op_memcpy_dtod(struct gpud *g, const struct mig_msg_hdr *m,
			   const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_memcpy_dtod, a);
	CUstream s = NULL;
	CUresult r = resolve_stream(g, m, a.stream, &s);

	(void)len;
	if (r == CUDA_SUCCESS)
		r = g->b->cuMemcpyDtoDAsync(a.dst, a.src, a.size, s);
	g->stats.bytes_dtod += a.size;
	finish_issue(g, m, s, r, 0);
}

static void op_memcpy_staged(struct gpud *g, const struct mig_msg_hdr *m,
			     const uint8_t *body, uint32_t len, bool htod)
{
	ARGS(struct mig_memcpy_staged, a);
	struct gpud_pending *p;
	uint8_t *chunk;
	CUstream s = NULL;
	CUresult r;

	(void)len;
	if (a.chunk >= MIG_STAGING_CHUNKS || a.size > MIG_STAGING_CHUNK) {
		reply(g, m, CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	chunk = g->staging + (uint64_t)a.chunk * MIG_STAGING_CHUNK;
	r = resolve_stream(g, m, a.stream, &s);
	if (r == CUDA_SUCCESS) {
		r = htod ? htod_async(g, a.dev, chunk, a.size, s) :
			   g->b->cuMemcpyDtoHAsync(chunk, a.dev, a.size, s);
	}
	if (htod)
		g->stats.bytes_htod += a.size;
	else
		g->stats.bytes_dtoh += a.size;
	p = pending_new(g, m, ACT_STAGING_DONE);
	if (!p) {
		r = CUDA_ERROR_OUT_OF_MEMORY;
		goto now;
	}
	p->arg0 = a.chunk;
	p->arg1 = a.ticket;
	p->slot = 0xffff;
	if (r == CUDA_SUCCESS)
		r = pending_add_event(g, p, s);
	if (r != CUDA_SUCCESS) {
		g->npend--;
		goto now;
	}
	/* Any reply asked for means "issued"; completion is the ticket. */
	if (m->flags & MIG_MSGF_REPLY)
		reply(g, m, CUDA_SUCCESS, NULL, 0);
	return;
now:
	g->hdr->staging_result[a.chunk] = r;
	mig_seqword_publish(&g->hdr->staging_done[a.chunk], a.ticket);
	reply(g, m, r, NULL, 0);
}

static void op_staged_htod(struct gpud *g, const struct mig_msg_hdr *m,
			   const uint8_t *body, uint32_t len)
{
	op_memcpy_staged(g, m, body, len, true);
}

static void op_staged_dtoh(struct gpud *g, const struct mig_msg_hdr *m,
			   const uint8_t *body, uint32_t len)
{
	op_memcpy_staged(g, m, body, len, false);
}

static void op_memcpy_2d(struct gpud *g, const struct mig_msg_hdr *m,
			 const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_memcpy_2d, a);
	CUDA_MEMCPY2D c = { 0 };
	CUstream s = NULL;
	CUresult r;
	uint64_t span_src, span_dst;

	(void)len;
	r = resolve_stream(g, m, a.stream, &s);
	if (r != CUDA_SUCCESS)
		goto out;
	if (a.height == 0 || a.width == 0) {
		finish_issue(g, m, s, CUDA_SUCCESS, 0);
		return;
	}
	if (a.src_pitch < a.width || a.dst_pitch < a.width ||
	    a.height > (1ull << 32) || a.src_pitch > (1ull << 40) ||
	    a.dst_pitch > (1ull << 40)) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	span_src = a.src_pitch * (a.height - 1) + a.width;
	span_dst = a.dst_pitch * (a.height - 1) + a.width;
	if ((a.src_is_host && !in_segment(g, a.src, span_src)) ||
	    (a.dst_is_host && !in_segment(g, a.dst, span_dst))) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	c.srcMemoryType = a.src_is_host ? CU_MEMORYTYPE_HOST : CU_MEMORYTYPE_DEVICE;
	c.dstMemoryType = a.dst_is_host ? CU_MEMORYTYPE_HOST : CU_MEMORYTYPE_DEVICE;
	if (a.src_is_host)
		c.srcHost = (const void *)(uintptr_t)a.src;
	else
		c.srcDevice = a.src;
	if (a.dst_is_host)
		c.dstHost = (void *)(uintptr_t)a.dst;
	else
		c.dstDevice = a.dst;
	c.srcPitch = a.src_pitch;
	c.dstPitch = a.dst_pitch;
	c.WidthInBytes = a.width;
	c.Height = a.height;
	r = g->b->cuMemcpy2DAsync(&c, s);
out:
	finish_issue(g, m, s, r, 0);
}

static void op_memset(struct gpud *g, const struct mig_msg_hdr *m,
		      const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_memset, a);
	CUstream s = NULL;
	CUresult r = resolve_stream(g, m, a.stream, &s);

	(void)len;
	if (r != CUDA_SUCCESS)
		goto out;
	if (a.height <= 1 && a.pitch == 0) {
		switch (a.elem) {
		case 1:
			r = g->b->cuMemsetD8Async(a.dst, (unsigned char)a.value,
						  a.width, s);
			break;
		case 2:
			r = g->b->cuMemsetD16Async(a.dst,
						   (unsigned short)a.value,
						   a.width, s);
			break;
		case 4:
			r = g->b->cuMemsetD32Async(a.dst, a.value, a.width, s);
			break;
		default:
			r = CUDA_ERROR_INVALID_VALUE;
		}
	} else {
		switch (a.elem) {
		case 1:
			r = g->b->cuMemsetD2D8Async(a.dst, a.pitch,
						    (unsigned char)a.value,
						    a.width, a.height, s);
			break;
		case 2:
			r = g->b->cuMemsetD2D16Async(a.dst, a.pitch,
						     (unsigned short)a.value,
						     a.width, a.height, s);
			break;
		case 4:
			r = g->b->cuMemsetD2D32Async(a.dst, a.pitch, a.value,
						     a.width, a.height, s);
			break;
		default:
			r = CUDA_ERROR_INVALID_VALUE;
		}
	}
out:
	finish_issue(g, m, s, r, 0);
}

/* Copy the image out of the segment: the client could change it under
 * the driver's parser otherwise. */
static void *image_copy(struct gpud *g, const struct mig_image_load *a)
{
	void *img;

	if (a->size == 0 || a->size > MIG_MAX_IMAGE ||
	    !in_segment(g, a->image, a->size))
		return NULL;
	/* Zero padding: PTX is terminated, and a parser that peeks at a
	 * header just past a structure stays inside our allocation. */
	img = calloc(1, a->size + 64);
	if (!img)
		return NULL;
	memcpy(img, (const void *)(uintptr_t)a->image, a->size);
	if (mig_image_check(img, a->size + 1) == MIG_IMAGE_BAD) {
		free(img);
		return NULL;
	}
	return img;
}

/*
 * Our copy of a library image lives as long as the library (the handle
 * owns it), so the driver need not make its own: the binary-is-preserved
 * option saves it a copy, a third of the load time for large fatbins.
 */
CUresult gpud_library_load(struct gpud *g, void **lib, const void *img)
{
	CUlibraryOption opt = CU_LIBRARY_BINARY_IS_PRESERVED;
	void *val = (void *)(uintptr_t)1;

	return g->b->cuLibraryLoadData((CUlibrary *)lib, img, NULL, NULL, 0,
				       &opt, &val, 1);
}

static void op_image_load(struct gpud *g, const struct mig_msg_hdr *m,
			  const uint8_t *body, uint32_t len, bool library)
{
	ARGS(struct mig_image_load, a);
	void *img = image_copy(g, &a);
	void *obj = NULL, *cached = NULL;
	uint64_t id, key = 0;
	uint32_t entry;
	CUresult r = CUDA_SUCCESS;

	(void)len;
	if (!img) {
		reply(g, m, CUDA_ERROR_INVALID_IMAGE, NULL, 0);
		return;
	}
	g->prof_images++;
	g->prof_image_bytes += a.size;
	gpud_control_poll(g); /* the module cache may just have been named */
	entry = modcache_claim(g, img, a.size, library, &obj, &cached, &key);
	if (obj) {
		free(img); /* the same bytes, loaded ahead */
		img = cached;
	} else if (library) {
		r = gpud_library_load(g, &obj, img);
	} else {
		r = g->b->cuModuleLoadData((CUmodule *)&obj, img);
	}
	if (r != CUDA_SUCCESS) {
		free(img);
		reply(g, m, r, NULL, 0);
		return;
	}
	if (!entry && key)
		entry = modcache_keep(g, img, a.size, library, key);
	id = handles_add(&g->h, library ? H_LIBRARY : H_MODULE, obj);
	if (!id) {
		if (library)
			g->b->cuLibraryUnload(obj);
		else
			g->b->cuModuleUnload(obj);
		free(img);
		reply(g, m, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
		return;
	}
	/* Keep our copy for as long as the driver may look at it. */
	handles_get(&g->h, id, library ? H_LIBRARY : H_MODULE)->ptr2 = img;
	handles_get(&g->h, id, library ? H_LIBRARY : H_MODULE)->flags = entry;
	reply(g, m, CUDA_SUCCESS, &id, sizeof(id));
}

static void op_module_load(struct gpud *g, const struct mig_msg_hdr *m,
			   const uint8_t *body, uint32_t len)
{
	op_image_load(g, m, body, len, false);
}

static void op_library_load(struct gpud *g, const struct mig_msg_hdr *m,
			    const uint8_t *body, uint32_t len)
{
	op_image_load(g, m, body, len, true);
}

static void drop_children(struct gpud *g, uint64_t owner)
{
	uint32_t i;

	for (i = 0; i < g->h.n; i++) {
		struct gpud_handle *h = &g->h.v[i];

		if ((h->type == H_FUNC || h->type == H_KERNEL) &&
		    h->owner == owner)
			handles_del(&g->h, ((uint64_t)h->gen << 32) | (i + 16));
	}
}

static void op_image_unload(struct gpud *g, const struct mig_msg_hdr *m,
			    const uint8_t *body, uint32_t len, bool library)
{
	ARGS(struct mig_handle_arg, a);
	struct gpud_handle *h =
		handles_get(&g->h, a.handle, library ? H_LIBRARY : H_MODULE);
	CUresult r;

	(void)len;
	if (!h) {
		reply(g, m, CUDA_ERROR_INVALID_HANDLE, NULL, 0);
		return;
	}
	r = library ? g->b->cuLibraryUnload(h->ptr) :
		      g->b->cuModuleUnload(h->ptr);
	free(h->ptr2);
	drop_children(g, a.handle);
	handles_del(&g->h, a.handle);
	reply(g, m, r, NULL, 0);
}

static void op_module_unload(struct gpud *g, const struct mig_msg_hdr *m,
			     const uint8_t *body, uint32_t len)
{
	op_image_unload(g, m, body, len, false);
}

static void op_library_unload(struct gpud *g, const struct mig_msg_hdr *m,
			      const uint8_t *body, uint32_t len)
{
	op_image_unload(g, m, body, len, true);
}

/* The symbol name following the args, checked to be terminated. */
static const char *symbol_name(const struct mig_get_symbol *a,
			       const uint8_t *body, uint32_t len)
{
	const char *name = (const char *)body + sizeof(*a);

	if (a->name_len == 0 || a->name_len > len - sizeof(*a) ||
	    name[a->name_len - 1] != 0)
		return NULL;
	return name;
}

/* Describe @f once: attributes and parameter layout, for the client. */
static CUresult describe_function(struct gpud *g, CUfunction f, uint64_t id,
				  uint8_t *out, uint32_t *outlen)
{
	struct mig_func_info *fi = (struct mig_func_info *)out;
	uint32_t i, max = (MIG_REPLY_DATA - sizeof(*fi)) / sizeof(fi->param[0]);
	CUresult r;

	memset(fi, 0, sizeof(*fi));
	fi->handle = id;
	for (i = 0; i < MIG_FUNC_ATTR_COUNT; i++) {
		int v = 0;

		if (g->b->cuFuncGetAttribute(&v, (CUfunction_attribute)i, f) ==
		    CUDA_SUCCESS)
			fi->attr[i] = v;
	}
	for (i = 0; i < MIG_MAX_PARAMS && i < max; i++) {
		size_t off = 0, sz = 0;

		r = g->b->cuFuncGetParamInfo(f, i, &off, &sz);
		if (r != CUDA_SUCCESS)
			break;
		if (off + sz > MIG_MAX_PARAM_BYTES)
			return CUDA_ERROR_NOT_SUPPORTED;
		fi->param[i].offset = (uint16_t)off;
		fi->param[i].size = (uint16_t)sz;
		if (off + sz > fi->param_bytes)
			fi->param_bytes = (uint32_t)(off + sz);
	}
	fi->nparams = i;
	*outlen = sizeof(*fi) + i * sizeof(fi->param[0]);
	return CUDA_SUCCESS;
}

static void op_get_function(struct gpud *g, const struct mig_msg_hdr *m,
			    const uint8_t *body, uint32_t len, bool library)
{
	ARGS(struct mig_get_symbol, a);
	struct mig_reply_slot *s = &g->slots[m->slot];
	const char *name = symbol_name(&a, body, len);
	struct gpud_handle *owner, *h;
	CUfunction f = NULL;
	CUkernel k = NULL;
	uint32_t outlen = 0;
	uint64_t id;
	CUresult r;

	owner = handles_get(&g->h, a.owner, library ? H_LIBRARY : H_MODULE);
	if (!name || !owner || !(m->flags & MIG_MSGF_REPLY)) {
		reply(g, m, name ? CUDA_ERROR_INVALID_HANDLE :
				   CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	if (library) {
		r = g->b->cuLibraryGetKernel(&k, owner->ptr, name);
		if (r == CUDA_SUCCESS)
			r = g->b->cuKernelGetFunction(&f, k);
	} else {
		r = g->b->cuModuleGetFunction(&f, owner->ptr, name);
	}
	if (r != CUDA_SUCCESS) {
		reply(g, m, r, NULL, 0);
		return;
	}
	modcache_note_name(&g->mc, owner->flags, name);
	id = handles_add(&g->h, library ? H_KERNEL : H_FUNC,
			 library ? (void *)k : (void *)f);
	if (!id) {
		reply(g, m, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
		return;
	}
	h = handles_get(&g->h, id, library ? H_KERNEL : H_FUNC);
	h->ptr2 = f;
	h->owner = a.owner;
	r = describe_function(g, f, id, s->data, &outlen);
	if (r != CUDA_SUCCESS) {
		handles_del(&g->h, id);
		outlen = 0;
	}
	s->result = r;
	s->len = outlen;
	mig_seqword_publish(&s->seq, m->seq);
}

static void op_module_get_function(struct gpud *g, const struct mig_msg_hdr *m,
				   const uint8_t *body, uint32_t len)
{
	op_get_function(g, m, body, len, false);
}

static void op_library_get_kernel(struct gpud *g, const struct mig_msg_hdr *m,
				  const uint8_t *body, uint32_t len)
{
	op_get_function(g, m, body, len, true);
}

static void op_get_global(struct gpud *g, const struct mig_msg_hdr *m,
			  const uint8_t *body, uint32_t len, bool library)
{
	ARGS(struct mig_get_symbol, a);
	const char *name = symbol_name(&a, body, len);
	struct gpud_handle *owner;
	struct mig_global_info gi = { 0 };
	CUdeviceptr p = 0;
	size_t sz = 0;
	CUresult r;

	owner = handles_get(&g->h, a.owner, library ? H_LIBRARY : H_MODULE);
	if (!name || !owner) {
		reply(g, m, name ? CUDA_ERROR_INVALID_HANDLE :
				   CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	r = library ? g->b->cuLibraryGetGlobal(&p, &sz, owner->ptr, name) :
		      g->b->cuModuleGetGlobal(&p, &sz, owner->ptr, name);
	gi.dptr = p;
	gi.size = sz;
	reply(g, m, r, &gi, r == CUDA_SUCCESS ? sizeof(gi) : 0);
}

static void op_module_get_global(struct gpud *g, const struct mig_msg_hdr *m,
				 const uint8_t *body, uint32_t len)
{
	op_get_global(g, m, body, len, false);
}

static void op_library_get_global(struct gpud *g, const struct mig_msg_hdr *m,
				  const uint8_t *body, uint32_t len)
{
	op_get_global(g, m, body, len, true);
}

/* The CUfunction behind a function or kernel id. */
static CUfunction lookup_function(struct gpud *g, uint64_t id)
{
	struct gpud_handle *h = handles_get(&g->h, id, H_FUNC);

	if (!h)
		h = handles_get(&g->h, id, H_KERNEL);
	return h ? h->ptr2 : NULL;
}

static void op_func_set_attr(struct gpud *g, const struct mig_msg_hdr *m,
			     const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_func_set_attr, a);
	CUfunction f = lookup_function(g, a.func);

	(void)len;
	reply(g, m,
	      f ? g->b->cuFuncSetAttribute(f, (CUfunction_attribute)a.attr,
					   a.value) :
		  CUDA_ERROR_INVALID_HANDLE,
	      NULL, 0);
}

static void op_func_occupancy(struct gpud *g, const struct mig_msg_hdr *m,
			      const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_func_occupancy, a);
	CUfunction f = lookup_function(g, a.func);
	int32_t n = 0;
	int v = 0;
	CUresult r = CUDA_ERROR_INVALID_HANDLE;

	(void)len;
	if (f)
		r = g->b->cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
			&v, f, a.block_size, (size_t)a.dyn_smem, a.flags);
	n = v;
	reply(g, m, r, &n, r == CUDA_SUCCESS ? sizeof(n) : 0);
}

/*
 * Fill @cfg from a launch geometry and @n attributes copied from @src into
 * @attrs (a private copy), refusing attributes that carry handles.
 */
static CUresult launch_config(CUlaunchConfig *cfg, CUlaunchAttribute *attrs,
			      const void *src, uint32_t n,
			      const uint32_t grid[3], const uint32_t block[3],
			      uint32_t shared_mem)
{
	uint32_t i;

	memcpy(attrs, src, n * sizeof(CUlaunchAttribute));
	for (i = 0; i < n; i++)
		if (!mig_launch_attr_allowed(attrs[i].id))
			return CUDA_ERROR_NOT_SUPPORTED;
	memset(cfg, 0, sizeof(*cfg));
	cfg->gridDimX = grid[0];
	cfg->gridDimY = grid[1];
	cfg->gridDimZ = grid[2];
	cfg->blockDimX = block[0];
	cfg->blockDimY = block[1];
	cfg->blockDimZ = block[2];
	cfg->sharedMemBytes = shared_mem;
	cfg->attrs = attrs;
	cfg->numAttrs = n;
	return CUDA_SUCCESS;
}

static void op_func_clusters(struct gpud *g, const struct mig_msg_hdr *m,
			     const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_func_clusters, a);
	CUlaunchAttribute attrs[MAX_LAUNCH_ATTRS];
	CUlaunchConfig cfg = { 0 };
	CUfunction f = lookup_function(g, a.func);
	int v = 0;
	int32_t out;
	CUresult r = CUDA_ERROR_INVALID_HANDLE;

	if (f && (a.nattrs > MAX_LAUNCH_ATTRS || a.query > 1 ||
		  a.nattrs * sizeof(CUlaunchAttribute) > len - sizeof(a)))
		r = CUDA_ERROR_INVALID_VALUE;
	else if (f)
		r = CUDA_SUCCESS;
	if (r != CUDA_SUCCESS)
		goto out;
	r = launch_config(&cfg, attrs, body + sizeof(a), a.nattrs, a.grid,
			  a.block, a.shared_mem);
	if (r != CUDA_SUCCESS)
		goto out;
	r = a.query ? g->b->cuOccupancyMaxPotentialClusterSize(&v, f, &cfg) :
		      g->b->cuOccupancyMaxActiveClusters(&v, f, &cfg);
out:
	out = v;
	reply(g, m, r, &out, r == CUDA_SUCCESS ? sizeof(out) : 0);
}

static void op_tensor_map(struct gpud *g, const struct mig_msg_hdr *m,
			  const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_tensor_map, a);
	CUtensorMap map;
	void *addr = (void *)(uintptr_t)a.global_address;
	CUresult r;

	(void)len;
	if (a.rank == 0 || a.rank > 5) {
		reply(g, m, CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	switch (a.kind) {
	case 0:
		r = g->b->cuTensorMapEncodeTiled(
			&map, a.data_type, a.rank, addr, a.global_dim,
			a.global_strides, a.box_dim, a.element_strides,
			a.interleave, a.swizzle, a.l2_promotion, a.oob_fill);
		break;
	case 1:
		r = g->b->cuTensorMapEncodeIm2col(
			&map, a.data_type, a.rank, addr, a.global_dim,
			a.global_strides, a.lower_corner, a.upper_corner,
			a.channels_per_pixel, a.pixels_per_column,
			a.element_strides, a.interleave, a.swizzle,
			a.l2_promotion, a.oob_fill);
		break;
	case 2:
		memcpy(&map, a.map, sizeof(map));
		r = g->b->cuTensorMapReplaceAddress(&map, addr);
		break;
	default:
		r = CUDA_ERROR_INVALID_VALUE;
	}
	reply(g, m, r, &map, r == CUDA_SUCCESS ? sizeof(map) : 0);
}

static void op_launch(struct gpud *g, const struct mig_msg_hdr *m,
		      const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_launch, a);
	CUlaunchAttribute attrs[MAX_LAUNCH_ATTRS];
	CUfunction f = lookup_function(g, a.func);
	const uint8_t *params = body + sizeof(a);
	size_t psize = a.param_bytes;
	void *extra[5];
	CUstream s = NULL;
	CUresult r;

	if (!f) {
		r = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	if (a.param_bytes > MIG_MAX_PARAM_BYTES || a.nattrs > MAX_LAUNCH_ATTRS ||
	    (uint64_t)a.param_bytes + a.nattrs * sizeof(CUlaunchAttribute) >
		    len - sizeof(a)) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	r = resolve_stream(g, m, a.stream, &s);
	if (r != CUDA_SUCCESS)
		goto out;
	/* The parameter buffer is already laid out as the kernel expects. */
	extra[0] = CU_LAUNCH_PARAM_BUFFER_POINTER;
	extra[1] = (void *)params;
	extra[2] = CU_LAUNCH_PARAM_BUFFER_SIZE;
	extra[3] = &psize;
	extra[4] = CU_LAUNCH_PARAM_END;
	g->stats.launches++;
	if (a.nattrs == 0) {
		r = g->b->cuLaunchKernel(f, a.grid[0], a.grid[1], a.grid[2],
					 a.block[0], a.block[1], a.block[2],
					 a.shared_mem, s, NULL,
					 psize ? extra : NULL);
	} else {
		CUlaunchConfig cfg = { 0 };

		r = launch_config(&cfg, attrs, params + a.param_bytes, a.nattrs,
				  a.grid, a.block, a.shared_mem);
		if (r != CUDA_SUCCESS)
			goto out;
		cfg.hStream = s;
		r = g->b->cuLaunchKernelEx(&cfg, f, NULL, psize ? extra : NULL);
	}
out:
	finish_issue(g, m, s, r, 0);
}

static void op_stream_create(struct gpud *g, const struct mig_msg_hdr *m,
			     const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_stream_create, a);
	CUstream s = NULL;
	uint64_t id;
	CUresult r;

	(void)len;
	r = g->b->cuStreamCreateWithPriority(&s, a.flags, a.priority);
	if (r != CUDA_SUCCESS) {
		reply(g, m, r, NULL, 0);
		return;
	}
	id = handles_add(&g->h, H_STREAM, s);
	if (!id) {
		g->b->cuStreamDestroy(s);
		reply(g, m, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
		return;
	}
	handles_get(&g->h, id, H_STREAM)->flags = a.flags;
	reply(g, m, CUDA_SUCCESS, &id, sizeof(id));
}

static void op_stream_destroy(struct gpud *g, const struct mig_msg_hdr *m,
			      const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_handle_arg, a);
	struct gpud_handle *h = handles_get(&g->h, a.handle, H_STREAM);
	CUresult r = CUDA_ERROR_INVALID_HANDLE;

	(void)len;
	if (h) {
		r = g->b->cuStreamDestroy(h->ptr);
		handles_del(&g->h, a.handle);
	}
	reply(g, m, r, NULL, 0);
}

static void op_stream_query(struct gpud *g, const struct mig_msg_hdr *m,
			    const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_handle_arg, a);
	CUstream s = NULL;
	CUresult r = resolve_stream(g, m, a.handle, &s);

	(void)len;
	if (r == CUDA_SUCCESS)
		r = g->b->cuStreamQuery(s);
	reply(g, m, r == CUDA_ERROR_NOT_READY ? r : take_deferred(g, r), NULL,
	      0);
}

static void op_stream_sync(struct gpud *g, const struct mig_msg_hdr *m,
			   const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_handle_arg, a);
	CUstream s = NULL;
	CUresult r = resolve_stream(g, m, a.handle, &s);

	(void)len;
	if (r == CUDA_SUCCESS)
		r = g->b->cuStreamQuery(s);
	if (r == CUDA_ERROR_NOT_READY) {
		((struct mig_msg_hdr *)m)->flags |= MIG_MSGF_COMPLETE;
		finish_issue(g, m, s, CUDA_SUCCESS, 0);
		return;
	}
	reply(g, m, take_deferred(g, r), NULL, 0);
}

static void op_stream_wait_event(struct gpud *g, const struct mig_msg_hdr *m,
				 const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_stream_wait_event, a);
	struct gpud_handle *e = handles_get(&g->h, a.event, H_EVENT);
	CUstream s = NULL;
	CUresult r = resolve_stream(g, m, a.stream, &s);

	(void)len;
	if (r == CUDA_SUCCESS)
		r = e ? g->b->cuStreamWaitEvent(s, e->ptr, a.flags) :
			CUDA_ERROR_INVALID_HANDLE;
	reply(g, m, r, NULL, 0);
}

static void op_event_create(struct gpud *g, const struct mig_msg_hdr *m,
			    const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_event_create, a);
	CUevent ev = NULL;
	uint64_t id;
	CUresult r;

	(void)len;
	/* Interprocess events would hand out a driver handle: not here. */
	if (a.flags & CU_EVENT_INTERPROCESS) {
		reply(g, m, CUDA_ERROR_NOT_SUPPORTED, NULL, 0);
		return;
	}
	r = g->b->cuEventCreate(&ev, a.flags);
	if (r != CUDA_SUCCESS) {
		reply(g, m, r, NULL, 0);
		return;
	}
	id = handles_add(&g->h, H_EVENT, ev);
	if (!id) {
		g->b->cuEventDestroy(ev);
		reply(g, m, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
		return;
	}
	reply(g, m, CUDA_SUCCESS, &id, sizeof(id));
}

static void op_event_destroy(struct gpud *g, const struct mig_msg_hdr *m,
			     const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_handle_arg, a);
	struct gpud_handle *h = handles_get(&g->h, a.handle, H_EVENT);
	CUresult r = CUDA_ERROR_INVALID_HANDLE;

	(void)len;
	if (h) {
		r = g->b->cuEventDestroy(h->ptr);
		handles_del(&g->h, a.handle);
	}
	reply(g, m, r, NULL, 0);
}

static void op_event_record(struct gpud *g, const struct mig_msg_hdr *m,
			    const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_event_record, a);
	struct gpud_handle *e = handles_get(&g->h, a.event, H_EVENT);
	CUstream s = NULL;
	CUresult r = resolve_stream(g, m, a.stream, &s);

	(void)len;
	if (r == CUDA_SUCCESS)
		r = e ? g->b->cuEventRecordWithFlags(e->ptr, s, a.flags) :
			CUDA_ERROR_INVALID_HANDLE;
	reply(g, m, r, NULL, 0);
}

static void op_event_query(struct gpud *g, const struct mig_msg_hdr *m,
			   const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_handle_arg, a);
	struct gpud_handle *e = handles_get(&g->h, a.handle, H_EVENT);
	CUresult r = e ? g->b->cuEventQuery(e->ptr) : CUDA_ERROR_INVALID_HANDLE;

	(void)len;
	reply(g, m, r == CUDA_ERROR_NOT_READY ? r : take_deferred(g, r), NULL,
	      0);
}

static void op_event_sync(struct gpud *g, const struct mig_msg_hdr *m,
			  const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_handle_arg, a);
	struct gpud_handle *e = handles_get(&g->h, a.handle, H_EVENT);
	struct gpud_pending *p;
	CUresult r;

	(void)len;
	if (!e) {
		reply(g, m, CUDA_ERROR_INVALID_HANDLE, NULL, 0);
		return;
	}
	r = g->b->cuEventQuery(e->ptr);
	if (r != CUDA_ERROR_NOT_READY) {
		reply(g, m, take_deferred(g, r), NULL, 0);
		return;
	}
	/* Poll the user's event by id: it may be destroyed meanwhile. */
	p = pending_new(g, m, ACT_REPLY);
	if (!p) {
		reply(g, m, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
		return;
	}
	p->user_event = a.handle;
	p->sync_point = 1;
}

static void op_event_elapsed(struct gpud *g, const struct mig_msg_hdr *m,
			     const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_event_elapsed, a);
	struct gpud_handle *e0 = handles_get(&g->h, a.start, H_EVENT);
	struct gpud_handle *e1 = handles_get(&g->h, a.end, H_EVENT);
	float ms = 0;
	CUresult r = CUDA_ERROR_INVALID_HANDLE;

	(void)len;
	if (e0 && e1)
		r = g->b->cuEventElapsedTime(&ms, e0->ptr, e1->ptr);
	reply(g, m, r, &ms, r == CUDA_SUCCESS ? sizeof(ms) : 0);
}

/* --- virtual memory: the client's cuMemAddressReserve/Create/Map ------- */

/*
 * A client reservation is carved out of our own reserved range (the
 * driver never sees it); its mappings are driver cuMemMap calls into our
 * range, allowed only inside a client reservation, on granularity
 * boundaries, and never over another mapping.  Physical allocations are
 * handle ids (H_MEM).  Like the driver, these calls do not report a
 * sticky context error.
 */

static bool gran_aligned(const struct gpud *g, uint64_t v)
{
	return (v & (g->granularity - 1)) == 0;
}

static void op_mem_reserve(struct gpud *g, const struct mig_msg_hdr *m,
			   const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_mem_reserve, a);
	struct gpud_alloc rv = { 0 };
	uint64_t align = a.align;

	(void)len;
	if (a.flags || !a.size || !gran_aligned(g, a.size) ||
	    (align & (align - 1))) {
		reply(g, m, CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	if (align < g->granularity)
		align = g->granularity;
	if (a.size > g->vs.size || align > g->vs.size) {
		reply(g, m, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
		return;
	}
	/* The hint is honoured when it is aligned and free, as a hint. */
	if (a.addr && !(a.addr & (align - 1)) &&
	    vaspace_is_free(&g->vs, a.addr, a.size))
		rv.addr = a.addr;
	else
		rv.addr = vaspace_find(&g->vs, a.size, align);
	if (!rv.addr) {
		reply(g, m, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
		return;
	}
	rv.size = a.size;
	rv.kind = VA_RESERVED;
	if (vaspace_insert(&g->vs, &rv) < 0) {
		reply(g, m, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
		return;
	}
	reply(g, m, CUDA_SUCCESS, &rv.addr, sizeof(rv.addr));
}

/*
 * The whole reservation, exactly as reserved.  The driver leaves the
 * case of mappings still inside undefined; we refuse it
 * (CUDA_ERROR_INVALID_VALUE) so that no mapping is ever left without a
 * reservation around it.
 */
static void op_mem_address_free(struct gpud *g, const struct mig_msg_hdr *m,
				const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_mem_range, a);
	int idx;

	(void)len;
	idx = vaspace_lookup(&g->vs, a.ptr);
	if (idx < 0 || g->vs.v[idx].kind != VA_RESERVED ||
	    g->vs.v[idx].size != a.size || g->vs.v[idx].nmaps) {
		reply(g, m, CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	vaspace_remove(&g->vs, idx);
	reply(g, m, CUDA_SUCCESS, NULL, 0);
}

/*
 * Device memory on our device only, no shareable handles: a POSIX file
 * descriptor is accepted as a request (PyTorch asks for one by default)
 * but the memory is created without it, so exporting stays impossible.
 * The backend's cuMemCreate counts it against the partition, as it does
 * for cuMemAlloc, and reports CUDA_ERROR_OUT_OF_MEMORY the same way.
 */
static void op_mem_create(struct gpud *g, const struct mig_msg_hdr *m,
			  const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_mem_create, a);
	CUmemAllocationProp prop = { 0 };
	CUmemGenericAllocationHandle mem;
	struct gpud_handle *h;
	uint64_t id;
	CUresult r;

	(void)len;
	if (a.flags || !a.size || !gran_aligned(g, a.size)) {
		reply(g, m, CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	if (a.type != CU_MEM_ALLOCATION_TYPE_PINNED ||
	    a.location_type != CU_MEM_LOCATION_TYPE_DEVICE ||
	    (a.handle_types != CU_MEM_HANDLE_TYPE_NONE &&
	     a.handle_types != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) ||
	    a.compression != CU_MEM_ALLOCATION_COMP_NONE || a.usage) {
		reply(g, m, CUDA_ERROR_NOT_SUPPORTED, NULL, 0);
		return;
	}
	if (a.location_id != 0) {
		reply(g, m, CUDA_ERROR_INVALID_DEVICE, NULL, 0);
		return;
	}
	if (a.size > g->vs.size || !within_limit(g, a.size)) {
		reply(g, m, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
		return;
	}
	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = g->dev;
	r = g->b->cuMemCreate(&mem, a.size, &prop, 0);
	if (r != CUDA_SUCCESS) {
		reply(g, m, r, NULL, 0);
		return;
	}
	id = handles_add(&g->h, H_MEM, (void *)(uintptr_t)mem);
	if (!id) {
		g->b->cuMemRelease(mem);
		reply(g, m, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
		return;
	}
	h = handles_get(&g->h, id, H_MEM);
	h->owner = a.size;
	h->flags = a.handle_types;
	g->mem_handle_bytes += a.size;
	reply(g, m, CUDA_SUCCESS, &id, sizeof(id));
}

/* The driver frees the memory when its last mapping goes, too. */
static void op_mem_release(struct gpud *g, const struct mig_msg_hdr *m,
			   const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_handle_arg, a);
	struct gpud_handle *h = handles_get(&g->h, a.handle, H_MEM);
	CUresult r;

	(void)len;
	if (!h) {
		reply(g, m, CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	r = g->b->cuMemRelease((CUmemGenericAllocationHandle)(uintptr_t)h->ptr);
	g->mem_handle_bytes -= h->owner;
	handles_del(&g->h, a.handle);
	reply(g, m, r, NULL, 0);
}

static void op_mem_get_props(struct gpud *g, const struct mig_msg_hdr *m,
			     const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_handle_arg, a);
	struct gpud_handle *h = handles_get(&g->h, a.handle, H_MEM);
	struct mig_mem_props p = { 0 };

	(void)len;
	if (!h) {
		reply(g, m, CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	p.size = h->owner;
	p.handle_types = h->flags;
	reply(g, m, CUDA_SUCCESS, &p, sizeof(p));
}

static void op_mem_map(struct gpud *g, const struct mig_msg_hdr *m,
		       const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_mem_map, a);
	struct gpud_handle *h = handles_get(&g->h, a.handle, H_MEM);
	struct gpud_map map = { 0 };
	uint32_t i;
	CUresult r;
	int rv;

	(void)len;
	if (!h || a.flags || !a.size || !gran_aligned(g, a.ptr) ||
	    !gran_aligned(g, a.size) || !gran_aligned(g, a.offset) ||
	    a.offset > h->owner || a.size > h->owner - a.offset) {
		reply(g, m, CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	rv = vaspace_containing(&g->vs, a.ptr, a.size);
	i = vaspace_map_after(&g->vs, a.ptr);
	if (rv < 0 || g->vs.v[rv].kind != VA_RESERVED ||
	    (i < g->vs.nmaps && g->vs.maps[i].addr < a.ptr + a.size)) {
		reply(g, m, CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	map.addr = a.ptr;
	map.size = a.size;
	map.offset = a.offset;
	map.mem = (CUmemGenericAllocationHandle)(uintptr_t)h->ptr;
	map.handle = a.handle;
	map.access = CU_MEM_ACCESS_FLAGS_PROT_NONE;
	r = g->b->cuMemMap(map.addr, map.size, map.offset, map.mem, 0);
	if (r != CUDA_SUCCESS) {
		reply(g, m, r, NULL, 0);
		return;
	}
	if (vaspace_map_insert(&g->vs, &map) < 0) {
		g->b->cuMemUnmap(map.addr, map.size);
		reply(g, m, CUDA_ERROR_OUT_OF_MEMORY, NULL, 0);
		return;
	}
	g->vs.v[rv].nmaps++;
	reply(g, m, CUDA_SUCCESS, NULL, 0);
}

/* Drop mapping @i: the driver's unmap, then our records. */
static CUresult unmap_one(struct gpud *g, uint32_t i)
{
	struct gpud_map mp = g->vs.maps[i];
	CUresult r = g->b->cuMemUnmap(mp.addr, mp.size);
	int rv;

	if (r != CUDA_SUCCESS)
		return r;
	vaspace_map_remove(&g->vs, i);
	rv = vaspace_containing(&g->vs, mp.addr, mp.size);
	if (rv >= 0 && g->vs.v[rv].nmaps)
		g->vs.v[rv].nmaps--;
	return CUDA_SUCCESS;
}

/* Whole mappings only: one, or several back to back. */
static void op_mem_unmap(struct gpud *g, const struct mig_msg_hdr *m,
			 const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_mem_range, a);
	uint32_t first = 0, n = vaspace_map_tiling(&g->vs, a.ptr, a.size, &first);
	CUresult r = CUDA_SUCCESS;

	(void)len;
	if (!n) {
		reply(g, m, CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	while (n-- && r == CUDA_SUCCESS)
		r = unmap_one(g, first);
	reply(g, m, r, NULL, 0);
}

/*
 * Access on whole mappings (one or several back to back), for our one
 * device: the client's ordinal 0 is our g->dev.
 */
static void op_mem_set_access(struct gpud *g, const struct mig_msg_hdr *m,
			      const uint8_t *body, uint32_t len)
{
	ARGS(struct mig_mem_set_access, a);
	CUmemAccessDesc desc[MIG_MEM_ACCESS_MAX];
	uint32_t first = 0, n, i, access = CU_MEM_ACCESS_FLAGS_PROT_NONE;
	CUresult r;

	if (!a.count || a.count > MIG_MEM_ACCESS_MAX ||
	    len - sizeof(a) < a.count * sizeof(struct mig_mem_access)) {
		reply(g, m, CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	n = vaspace_map_tiling(&g->vs, a.ptr, a.size, &first);
	if (!n) {
		reply(g, m, CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return;
	}
	for (i = 0; i < a.count; i++) {
		struct mig_mem_access d;

		memcpy(&d, body + sizeof(a) + i * sizeof(d), sizeof(d));
		if (d.location_type != CU_MEM_LOCATION_TYPE_DEVICE ||
		    d.location_id != 0) {
			reply(g, m, CUDA_ERROR_INVALID_DEVICE, NULL, 0);
			return;
		}
		if (d.flags != CU_MEM_ACCESS_FLAGS_PROT_NONE &&
		    d.flags != CU_MEM_ACCESS_FLAGS_PROT_READ &&
		    d.flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE) {
			reply(g, m, CUDA_ERROR_INVALID_VALUE, NULL, 0);
			return;
		}
		memset(&desc[i], 0, sizeof(desc[i]));
		desc[i].location.type = CU_MEM_LOCATION_TYPE_DEVICE;
		desc[i].location.id = g->dev;
		desc[i].flags = (CUmemAccess_flags)d.flags;
		access = d.flags;
	}
	r = g->b->cuMemSetAccess(a.ptr, a.size, desc, a.count);
	if (r == CUDA_SUCCESS)
		for (i = 0; i < n; i++)
			g->vs.maps[first + i].access = access;
	reply(g, m, r, NULL, 0);
}

static void op_stats(struct gpud *g, const struct mig_msg_hdr *m,
		     const uint8_t *body, uint32_t len)
{
	(void)body;
	(void)len;
	reply(g, m, CUDA_SUCCESS, &g->stats, sizeof(g->stats));
}

static const struct {
	handler_fn fn;
	uint32_t args;
	bool needs_reply; /* meaningless without an answer */
} ops[MIG_OP_COUNT] = {
#define OP(code, f, type, r) [code] = { f, sizeof(type), r }
	OP(MIG_OP_HELLO, op_hello, struct mig_hello, true),
	OP(MIG_OP_CTX_SYNC, op_ctx_sync, struct mig_ctx_sync, true),
	OP(MIG_OP_CTX_GET_LIMIT, op_ctx_get_limit, struct mig_ctx_limit, true),
	OP(MIG_OP_CTX_SET_LIMIT, op_ctx_set_limit, struct mig_ctx_limit, false),
	OP(MIG_OP_MEM_GET_INFO, op_mem_get_info, struct mig_ctx_sync, true),
	OP(MIG_OP_MEM_ALLOC, op_mem_alloc, struct mig_mem_alloc, true),
	OP(MIG_OP_MEM_FREE, op_mem_free, struct mig_mem_free, false),
	OP(MIG_OP_HOST_PIN, op_host_pin, struct mig_host_pin, true),
	OP(MIG_OP_MEMCPY_HTOD, op_memcpy_htod, struct mig_memcpy_htod, false),
	OP(MIG_OP_MEMCPY_DTOH, op_memcpy_dtoh, struct mig_memcpy_dtoh, false),
	OP(MIG_OP_MEMCPY_DTOD, op_memcpy_dtod, struct mig_memcpy_dtod, false),
	OP(MIG_OP_MEMCPY_STAGED_HTOD, op_staged_htod, struct mig_memcpy_staged,
	   false),
	OP(MIG_OP_MEMCPY_STAGED_DTOH, op_staged_dtoh, struct mig_memcpy_staged,
	   false),
	OP(MIG_OP_MEMCPY_2D, op_memcpy_2d, struct mig_memcpy_2d, false),
	OP(MIG_OP_MEMSET, op_memset, struct mig_memset, false),
	OP(MIG_OP_MODULE_LOAD, op_module_load, struct mig_image_load, true),
	OP(MIG_OP_MODULE_UNLOAD, op_module_unload, struct mig_handle_arg, false),
	OP(MIG_OP_MODULE_GET_FUNCTION, op_module_get_function,
	   struct mig_get_symbol, true),
	OP(MIG_OP_MODULE_GET_GLOBAL, op_module_get_global,
	   struct mig_get_symbol, true),
	OP(MIG_OP_LIBRARY_LOAD, op_library_load, struct mig_image_load, true),
	OP(MIG_OP_LIBRARY_UNLOAD, op_library_unload, struct mig_handle_arg,
	   false),
	OP(MIG_OP_LIBRARY_GET_KERNEL, op_library_get_kernel,
	   struct mig_get_symbol, true),
	OP(MIG_OP_LIBRARY_GET_GLOBAL, op_library_get_global,
	   struct mig_get_symbol, true),
	OP(MIG_OP_FUNC_SET_ATTR, op_func_set_attr, struct mig_func_set_attr,
	   false),
	OP(MIG_OP_FUNC_OCCUPANCY, op_func_occupancy, struct mig_func_occupancy,
	   true),
	OP(MIG_OP_LAUNCH, op_launch, struct mig_launch, false),
	OP(MIG_OP_STREAM_CREATE, op_stream_create, struct mig_stream_create,
	   true),
	OP(MIG_OP_STREAM_DESTROY, op_stream_destroy, struct mig_handle_arg,
	   false),
	OP(MIG_OP_STREAM_QUERY, op_stream_query, struct mig_handle_arg, true),
	OP(MIG_OP_STREAM_SYNC, op_stream_sync, struct mig_handle_arg, true),
	OP(MIG_OP_STREAM_WAIT_EVENT, op_stream_wait_event,
	   struct mig_stream_wait_event, false),
	OP(MIG_OP_EVENT_CREATE, op_event_create, struct mig_event_create, true),
	OP(MIG_OP_EVENT_DESTROY, op_event_destroy, struct mig_handle_arg, false),
	OP(MIG_OP_EVENT_RECORD, op_event_record, struct mig_event_record, false),
	OP(MIG_OP_EVENT_QUERY, op_event_query, struct mig_handle_arg, true),
	OP(MIG_OP_EVENT_SYNC, op_event_sync, struct mig_handle_arg, true),
	OP(MIG_OP_EVENT_ELAPSED, op_event_elapsed, struct mig_event_elapsed,
	   true),
	OP(MIG_OP_STATS, op_stats, struct mig_ctx_sync, true),
	OP(MIG_OP_FUNC_CLUSTERS, op_func_clusters, struct mig_func_clusters,
	   true),
	OP(MIG_OP_TENSOR_MAP, op_tensor_map, struct mig_tensor_map, true),
	OP(MIG_OP_MEM_ADDRESS_RESERVE, op_mem_reserve, struct mig_mem_reserve,
	   true),
	OP(MIG_OP_MEM_ADDRESS_FREE, op_mem_address_free, struct mig_mem_range,
	   true),
	OP(MIG_OP_MEM_CREATE, op_mem_create, struct mig_mem_create, true),
	OP(MIG_OP_MEM_RELEASE, op_mem_release, struct mig_handle_arg, true),
	OP(MIG_OP_MEM_MAP, op_mem_map, struct mig_mem_map, true),
	OP(MIG_OP_MEM_UNMAP, op_mem_unmap, struct mig_mem_range, true),
	OP(MIG_OP_MEM_SET_ACCESS, op_mem_set_access, struct mig_mem_set_access,
	   true),
	OP(MIG_OP_MEM_GET_PROPS, op_mem_get_props, struct mig_handle_arg, true),
#undef OP
};

/*
 * Decode one message.  @hdr is our private copy; @body points into the
 * ring and is @len bytes.  Returns false when the message breaks the
 * protocol badly enough to end the session.
 */
bool gpud_dispatch(struct gpud *g, struct mig_msg_hdr *hdr,
		   const uint8_t *body, uint32_t len)
{
	if (hdr->op == MIG_OP_PAD)
		return true;
	if (hdr->op >= MIG_OP_COUNT || !ops[hdr->op].fn ||
	    hdr->slot >= MIG_REPLY_SLOTS)
		return false;
	if (hdr->flags & MIG_MSGF_REPLY)
		g->stats.calls_sync++;
	else
		g->stats.calls_async++;
	if (len < ops[hdr->op].args ||
	    (ops[hdr->op].needs_reply && !(hdr->flags & MIG_MSGF_REPLY))) {
		reply(g, hdr, CUDA_ERROR_INVALID_VALUE, NULL, 0);
		return true;
	}
	/*
	 * Work on a private copy of the body, so that a racing client cannot
	 * change a length, name or handle between our check and its use.
	 * Inline copy data is the exception: it is copied once, to the
	 * bounce buffer, after its length was checked on the private args.
	 */
	if (hdr->op != MIG_OP_MEMCPY_HTOD && len <= sizeof(g->msgbuf)) {
		memcpy(g->msgbuf, body, len);
		body = g->msgbuf;
	}
	if (g->profile) {
		uint64_t t0 = mig_now_ns();

		ops[hdr->op].fn(g, hdr, body, len);
		g->prof_op[hdr->op].n++;
		g->prof_op[hdr->op].ns += mig_now_ns() - t0;
		return true;
	}
	ops[hdr->op].fn(g, hdr, body, len);
	return true;
}

/* One line of the profile (the test hook's pause after it). */
static void __attribute__((format(printf, 3, 4)))
pline(const struct gpud *g, FILE *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	if (g->profile_line_delay_us)
		usleep(g->profile_line_delay_us);
}

static void profile_write(const struct gpud *g, FILE *f)
{
	pline(g, f, "mig-gpud %s: profile: call, calls, total us, us per call\n",
		g->instance);
	for (int i = 0; i < MIG_OP_COUNT; i++)
		if (g->prof_op[i].n)
			pline(g, f, "  call %-20s %10llu %12.1f %8.2f\n", mig_op_name(i),
				(unsigned long long)g->prof_op[i].n,
				g->prof_op[i].ns / 1e3,
				g->prof_op[i].ns / 1e3 / (double)g->prof_op[i].n);
	pline(g, f, "  doorbell sleeps %llu (%.1f ms), hand-offs to the waiter %llu\n",
		(unsigned long long)g->prof_sleeps, g->prof_sleep_ns / 1e6,
		(unsigned long long)g->prof_handoffs);
	pline(g, f, "  woken in its client's GPU phase (a call after queued GPU work, spinning %llu us first): %llu, %.1f ms asleep\n",
		(unsigned long long)(g->phase_spin_ns > SPIN_IDLE_NS ? g->phase_spin_ns : SPIN_IDLE_NS) / 1000,
		(unsigned long long)g->prof_phase_wakes, g->prof_phase_wake_ns / 1e6);
	pline(g, f, "  images received %llu (%.1f MiB); module cache: %u loaded ahead, %u used, %u misses\n",
		(unsigned long long)g->prof_images, g->prof_image_bytes / 1048576.0,
		g->mc.preloaded, g->mc.hits, g->mc.misses);
	pline(g, f, "  small host-to-device copies sent to a copy engine as two rows: %llu\n",
		(unsigned long long)g->htod_rows);
	if (!g->arb)
		return;
	pline(g, f, "  arbiter (%s): %llu turns taken (%llu resumed next after a cut), %.1f ms waited for them\n",
		mig_sharing_name((int)g->arb->model),
		(unsigned long long)g->arb_grants,
		(unsigned long long)g->arb_resumes, g->arb_wait_ns / 1e6);
	pline(g, f, "  turns passed to it by another's release while it waited: %llu, noticed %.1f ms after their releases in all\n",
		(unsigned long long)g->prof_handovers, g->prof_handover_ns / 1e6);
	pline(g, f, "  releases announced to the next waiter: %llu; spun %.3f ms for announced releases while it waited\n",
		(unsigned long long)g->arb_announcements, g->arb_release_spin_ns / 1e6);
	pline(g, f, "  compute-engine copies that waited out another's turn: %llu, %.1f ms\n",
		(unsigned long long)g->arb_copy_waited, g->arb_copy_wait_ns / 1e6);
	pline(g, f, "  kept, GPU idle, through its client's gaps while others waited: %llu gaps, %.1f ms\n",
		(unsigned long long)g->prof_gaps, g->prof_gap_ns / 1e6);
	pline(g, f, "  in its turns: %.1f ms held, %llu calls issued in %.1f ms of it\n",
		g->prof_held_ns / 1e6, (unsigned long long)g->prof_held_calls,
		g->prof_held_call_ns / 1e6);
	pline(g, f, "  turns given back, by length (rows) and how soon asked for again: <100us <250us <1ms later\n");
	for (int i = 0; i < 3; i++)
		pline(g, f, "    %-7s %6llu %6llu %6llu %6llu\n",
			(const char *[]){"<0.5ms", "<2ms", "longer"}[i],
			(unsigned long long)g->prof_turn_back[i][0],
			(unsigned long long)g->prof_turn_back[i][1],
			(unsigned long long)g->prof_turn_back[i][2],
			(unsigned long long)g->prof_turn_back[i][3] +
				(g->prof_turn_back_len == i));
}

/*
 * The profile goes out in one write(2): the servers of a node share the
 * daemon's log, and several that exit together (a daemon stopping) would
 * otherwise interleave their lines, each then read as another's.
 */
void gpud_profile_report(const struct gpud *g)
{
	char *buf = NULL;
	size_t len = 0, off = 0;
	FILE *f;

	if (!g->profile)
		return;
	f = open_memstream(&buf, &len);
	if (!f) {
		profile_write(g, stderr); /* no memory: in pieces, rather than not at all */
		return;
	}
	profile_write(g, f);
	if (fclose(f)) {
		free(buf);
		return;
	}
	while (off < len) {
		ssize_t n = write(STDERR_FILENO, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	free(buf);
}

/* --- the arbiter: exclusive classes of calls ------------------------------ */

/*
 * Grant policy.  The holder keeps the GPU through its GPU phase and gives
 * it back when the phase has ended: all its streams are idle and its
 * client has been quiet long enough to be at CPU work.  How long depends
 * on its last call.  After one that queued GPU work without waiting for it
 * (a launch, an async copy) the client is most likely still launching, and
 * a framework whose CPU falls behind the GPU (Python, a slower CPU) leaves
 * gaps of hundreds of microseconds there: the turn stays for
 * ARB_LAUNCH_GRACE_NS of quiet.  Given away in such a gap, it cost the
 * holder a whole turn of each waiter in the middle of its phase, and so
 * the client with the slower CPU much of its share (BERT on the H200, 2
 * clients: 4.4-6.3 turns per request, the clients' throughputs up to 1.48
 * apart; with 250 us, 1.1-1.6 turns, 1.01-1.02 apart, throughput 0.98x
 * time-sharing's as before; with 1 ms, 0.91x: the GPU idles in the gaps
 * the turn is kept through).  After any other call (a synchronize, a
 * blocking copy, a free, a query) the phase is over if nothing follows
 * within SPIN_IDLE_NS.  A holder whose client went quiet while its GPU
 * work still runs looks at its streams every SLEEP_POLL_NS while others
 * wait (and for waiters every ARB_LOOK_NS), so the turn passes when that
 * work ends, not at the client's next call.  A holder that never goes idle
 * is made to yield after ARB_MAX_HOLD_NS while others wait: its next
 * exclusive call is held back until its work drained, then it queues again
 * behind them.
 *
 * A turn that ends young (within ARB_YOUNG_NS) while others wait was most
 * likely cut by a synchronize early in the phase: a framework checks a
 * value on the CPU and goes on (BERT on the H200: 169 of 200 turns shorter
 * than 0.5 ms were asked for again within 100 us).  Kept through such a
 * gap, the turn would idle the GPU (a minimum hold of 250 us cost BERT 10 %
 * of its throughput); given away, the holder waited behind every waiter,
 * and with four clients the number of cuts a client drew decided its
 * share.  So the turn goes, and if the holder asks again while the turn
 * it gave way to is still on, it takes a resume ticket (ipc/arbiter.h):
 * it goes next, after that one turn.  A resumed turn cut young gives no
 * second resume: each turn in order adds at most one.
 */
#define ARB_MAX_HOLD_NS 200000000ull  /* yield to waiters after this */
#define ARB_LOOK_NS 1000000ull        /* a busy holder looks for waiters */
#define ARB_LAUNCH_GRACE_NS 250000ull /* quiet after queued GPU work: kept */
#define ARB_YOUNG_NS 1000000ull       /* a turn given back sooner: cut */
#define ARB_COPY_WAIT_NS 5000000ull   /* a compute-engine copy waits, at most */
#define ARB_ANNOUNCE_AFTER_NS 20000ull /* quiet this long after a blocking
					 call: announce the release */
#define ARB_ANNOUNCE_AFTER_QUEUED_NS 100000ull /* ... after queued work */
#define ARB_ANNOUNCE_SLACK_NS 50000ull /* the loop's lateness, announced too */

int gpud_arbiter_attach(struct gpud *g, int fd, uint32_t id, char *err,
			size_t errlen)
{
	struct mig_arbiter *a;

	a = mmap(NULL, sizeof(*a), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (a == MAP_FAILED) {
		snprintf(err, errlen, "cannot map the arbiter page: %s",
			 strerror(errno));
		return -1;
	}
	if (a->magic != MIG_ARB_MAGIC || a->version != MIG_ARB_VERSION || !id) {
		munmap(a, sizeof(*a));
		snprintf(err, errlen, "the arbiter page is not one (or id 0)");
		return -1;
	}
	g->arb = a;
	g->arb_id = id;
	g->arb_excl = mig_sharing_exclusive((int)a->model);
	return 0;
}

static unsigned int op_class(uint16_t op)
{
	switch (op) {
	case MIG_OP_LAUNCH:
		return MIG_CLASS_COMPUTE;
	case MIG_OP_MEMCPY_HTOD:
	case MIG_OP_MEMCPY_DTOH:
	case MIG_OP_MEMCPY_DTOD:
	case MIG_OP_MEMCPY_STAGED_HTOD:
	case MIG_OP_MEMCPY_STAGED_DTOH:
	case MIG_OP_MEMCPY_2D:
	case MIG_OP_MEMSET:
		return MIG_CLASS_COPY;
	default:
		return MIG_CLASS_CONTROL;
	}
}

/*
 * The class of call @h (@body, @len: its arguments, as yet unchecked) for
 * the arbiter: its op's class, and for the copies the GPU runs on its
 * compute engine MIG_CLASS_ON_COMPUTE_ENGINE besides.  Without MPS,
 * contexts share that engine by time-slicing: such a copy cannot overlap
 * another context's kernels; it waits for a time slice (2.4 ms measured)
 * and then preempts them.  On the H200 (driver 580,
 * bench/sharing/interference) each one cost the kernels running in
 * another context about 300 us, whatever its size: memsets (2D ones too),
 * device-to-device copies (2D ones too, of one row or pitched), and
 * host-to-device copies under 32 KiB from pinned memory (the driver
 * writes those into its command stream; from pageable memory up to
 * 64 KiB; ours are all from pinned memory) unless they are 2D copies of
 * more than one row.  We issue an even-sized one as two rows
 * (htod_async()): only an odd-sized one stays on the compute engine.
 * Copies to the host, larger copies from it and 2D copies of two rows or
 * more from it run on a copy engine and cost another context's kernels
 * nothing (a client's own 2D copy of one small row from the host stays on
 * the compute engine: rare, issued as it comes).
 *
 * The client writes @body: it may change a size between our look here and
 * the dispatch.  All it gains is what every copy had before this rule:
 * running beside another's kernels.  So does a copy from the client's
 * segment whose pinned pieces (pinned_piece()) come out odd-sized: an
 * even one that starts at an odd address and crosses a granule.
 */
#define ON_ENGINE (MIG_CLASS_COPY | MIG_CLASS_ON_COMPUTE_ENGINE)

static unsigned int call_class(const struct mig_msg_hdr *h, const uint8_t *body, uint32_t len)
{
	struct mig_memcpy_htod htod;
	struct mig_memcpy_staged staged;
	struct mig_memcpy_2d c2d;

	switch (h->op) {
	case MIG_OP_MEMCPY_DTOD:
	case MIG_OP_MEMSET:
		return ON_ENGINE;
	case MIG_OP_MEMCPY_HTOD:
		if (len < sizeof(htod))
			break; /* refused when dispatched */
		memcpy(&htod, body, sizeof(htod));
		return htod_on_compute_engine(htod.size) ? ON_ENGINE : MIG_CLASS_COPY;
	case MIG_OP_MEMCPY_STAGED_HTOD:
		if (len < sizeof(staged))
			break;
		memcpy(&staged, body, sizeof(staged));
		return htod_on_compute_engine(staged.size) ? ON_ENGINE : MIG_CLASS_COPY;
	case MIG_OP_MEMCPY_2D:
		if (len < sizeof(c2d))
			break;
		memcpy(&c2d, body, sizeof(c2d));
		if (c2d.dst_is_host)
			return MIG_CLASS_COPY;
		if (c2d.src_is_host)
			return c2d.height == 1 && c2d.width < H2D_ON_COMPUTE_BELOW ? ON_ENGINE :
										      MIG_CLASS_COPY;
		return ON_ENGINE;
	}
	return op_class(h->op);
}

/* All GPU work we issued has completed. */
bool gpud_streams_idle(struct gpud *g)
{
	uint32_t i;

	if (g->b->cuStreamQuery(NULL) != CUDA_SUCCESS)
		return false;
	for (i = 0; i < MIG_REPLY_SLOTS; i++)
		if (g->ptds[i] && g->b->cuStreamQuery(g->ptds[i]) != CUDA_SUCCESS)
			return false;
	for (i = 0; i < g->h.n; i++)
		if (g->h.v[i].type == H_STREAM &&
		    g->b->cuStreamQuery(g->h.v[i].ptr) != CUDA_SUCCESS)
			return false;
	return true;
}

/*
 * Tell the client whether we hold its calls back for the GPU turn
 * (hdr->turn_wait): its threads then sleep for their answers at once
 * instead of spinning, since none can come before the turn.  When the
 * turn comes, the sleepers are woken to spin again for what is now near.
 * The slots' waiter counts are the client's to write: at worst a hostile
 * one makes us issue wake-ups nobody needs.
 */
static void arb_tell_waiting(struct gpud *g, bool waiting)
{
	uint32_t i;

	if (g->arb_told_waiting == waiting)
		return;
	g->arb_told_waiting = waiting;
	mig_store_release(&g->hdr->turn_wait.value, (uint32_t)waiting);
	if (waiting)
		return;
	/* Pairs with the fence between a client thread's raising of its
	 * slot's waiters and its re-check of turn_wait. */
	mig_smp_mb();
	for (i = 0; i < MIG_REPLY_SLOTS; i++)
		if (mig_load_relaxed(&g->slots[i].seq.waiters))
			mig_futex_wake(&g->slots[i].seq.value, 0x7fffffff);
	for (i = 0; i < MIG_STAGING_CHUNKS; i++)
		if (mig_load_relaxed(&g->hdr->staging_done[i].waiters))
			mig_futex_wake(&g->hdr->staging_done[i].value, 0x7fffffff);
	if (mig_load_relaxed(&g->hdr->req_head.waiters))
		mig_futex_wake(&g->hdr->req_head.value, 0x7fffffff);
}

/* Profile: a turn given back (@asked false) or the next one asked for. */
static void prof_turn_back(struct gpud *g, uint64_t now, bool asked)
{
	uint64_t d;

	if (asked) {
		d = now - g->prof_turn_back_ns; /* given back this long ago */
		if (g->prof_turn_back_len >= 0)
			g->prof_turn_back[g->prof_turn_back_len][d < 100000 ? 0 :
				d < 250000 ? 1 : d < 1000000 ? 2 : 3]++;
		g->prof_turn_back_len = -1;
		return;
	}
	d = now - g->arb_held_since; /* the turn's length */
	g->prof_turn_back_len = d < 500000 ? 0 : d < 2000000 ? 1 : 2;
	g->prof_turn_back_ns = now;
}

/* Profile: a gap the turn was kept through ends: the client's next call
 * or the turn's end.  One begins when the holder's client goes quiet with
 * the GPU idle and others waiting (gpud_serve), or when the GPU becomes
 * idle in such a quiet spell (arb_sleep_slice). */
static void prof_gap_end(struct gpud *g, uint64_t now)
{
	if (!g->prof_gap_since)
		return;
	g->prof_gaps++;
	g->prof_gap_ns += now - g->prof_gap_since;
	g->prof_gap_since = 0;
}

static void arb_release(struct gpud *g)
{
	uint64_t now = mig_now_ns();
	/* Young, not itself resumed, and given to a waiter: a cut (asked
	 * for again during the turn it went to, it resumes). */
	bool may_resume = g->arb_held && !g->arb_resumed && !g->arb_no_resume &&
			  now - g->arb_held_since < ARB_YOUNG_NS;

	if (g->profile && g->arb_held) {
		prof_turn_back(g, now, false);
		prof_gap_end(g, now);
		g->prof_held_ns += now - g->arb_held_since;
	}
	g->arb_cut = mig_arb_release(g->arb, g->arb_ticket, &g->arb_gave_way) &&
		     may_resume;
	g->arb_held = g->arb_ticket_taken = g->arb_announced = false;
}

/* We hold the turn with nothing of ours queued or running, and others
 * wait for it. */
static bool arb_idle_while_others_wait(struct gpud *g)
{
	return g->arb_held && !g->npend && g->bq_head == g->bq_tail &&
	       mig_arb_waiting(g->arb) && gpud_streams_idle(g);
}

/*
 * The holder's client has been quiet for a while.  If the GPU is idle too
 * and others wait, the turn passes at the end of the grace
 * (arb_sleep_slice()) unless the client calls again: announce it, so that
 * the waiter next in line is back on a CPU by then rather than woken by
 * the release (ipc/arbiter.h).  The client's next call withdraws it
 * (arb_withdraw()).  How long "a while" is (arb_announce_after()) weighs
 * the waiter's wake-up (40-60 us at the median on the H200's virtual
 * machine, 200 us at p90) against the spins of announcements withdrawn.
 * Only where servers spin through their clients' GPU phases
 * (MIG_GPUD_PHASE_SPIN_US at least the grace, the default): a node set to
 * spare its CPUs spares the waiter's spin too.  An announcement wakes
 * every waiting server of the partition (each looks whether it is next);
 * a client that alternated short quiet spells and calls could make its
 * server wake the others thousands of times a second, so the page takes
 * at most MIG_ARB_ANNOUNCE_PER_TURN a turn (BERT on the H200: 2.5 a
 * turn); once refused, the server stops looking until its next turn.
 */
static void arb_announce_release(struct gpud *g, uint64_t now)
{
	uint64_t quiet = now - g->last_call_ns;
	uint64_t grace = g->last_call_queued ? ARB_LAUNCH_GRACE_NS : SPIN_IDLE_NS;

	if (g->phase_spin_ns < ARB_LAUNCH_GRACE_NS || g->arb_announced ||
	    g->arb_announce_refused || !arb_idle_while_others_wait(g))
		return;
	if (!mig_arb_announce(g->arb, g->arb_ticket,
			      (grace > quiet ? grace - quiet : 0) + ARB_ANNOUNCE_SLACK_NS)) {
		g->arb_announce_refused = true;
		return;
	}
	g->arb_announced = true;
	g->arb_announcements++;
}

/*
 * After a blocking call (a synchronize, a copy to the host) the turn
 * passes SPIN_IDLE_NS after it: announced after ARB_ANNOUNCE_AFTER_NS, it
 * leaves the waiter little time, but some (ResNet-50 and VGG19 on the
 * H200: the hand-over noticed 11-21 us after the release, against 44-103
 * us without announcements, in the same rounds).  After
 * queued work the grace is ARB_LAUNCH_GRACE_NS, and most quiet spells are
 * a launch-bound client's gaps, tens of microseconds: announced after
 * 20 us, BERT's holders announced 6 times a turn, and the waiters spun
 * 0.4 ms a request for the ones withdrawn; hence ARB_ANNOUNCE_AFTER_QUEUED_NS.
 */
static uint64_t arb_announce_after(const struct gpud *g)
{
	return g->last_call_queued ? ARB_ANNOUNCE_AFTER_QUEUED_NS : ARB_ANNOUNCE_AFTER_NS;
}

/* The client called again: the turn stays; the waiter spins no longer. */
static void arb_withdraw(struct gpud *g)
{
	if (!g->arb_announced)
		return;
	mig_arb_announce(g->arb, g->arb_ticket, 0);
	g->arb_announced = false;
}

/*
 * A copy for the compute engine (call_class()), where copies are not
 * exclusive and the turn is not ours: may it go now?  Not while another
 * holds the turn: it would preempt that one's kernels.  It waits that turn
 * out, without a ticket (a ticket would make it wait behind every waiter
 * and give the client's GPU phase one more turn, cut at the synchronize
 * that follows such a copy: BERT on the H200 took 3-4 turns per request
 * so, against 1.1-1.4, and 1.2-1.4x the time), but no longer than
 * ARB_COPY_WAIT_NS: then it runs beside the turn's kernels, as before.
 * Time-slicing had it wait about 1.5 ms anyway.
 */
static bool arb_copy_may_go(struct gpud *g)
{
	uint32_t serving = mig_load_acquire(&g->arb->serving);
	uint64_t now = mig_now_ns();

	if (serving != mig_load_acquire(&g->arb->next)) { /* a turn is on */
		if (!g->arb_copy_waits) {
			g->arb_copy_waits = true;
			g->arb_copy_behind = serving;
			g->arb_copy_since = now;
			arb_tell_waiting(g, true);
			return false;
		}
		if (serving == g->arb_copy_behind && now - g->arb_copy_since < ARB_COPY_WAIT_NS)
			return false;
	}
	if (g->arb_copy_waits) {
		g->arb_copy_waits = false;
		g->arb_copy_waited++;
		g->arb_copy_wait_ns += now - g->arb_copy_since;
		arb_tell_waiting(g, false);
	}
	return true;
}

/* A copy waits out another's turn: sleep until that turn ends, the wait's
 * limit, or (with work of ours on the GPU to finish) SLEEP_POLL_NS. */
static void arb_copy_wait(struct gpud *g)
{
	uint64_t now = mig_now_ns(), left, ns;
	struct timespec ts;

	left = g->arb_copy_since + ARB_COPY_WAIT_NS > now ? g->arb_copy_since + ARB_COPY_WAIT_NS - now : 0;
	ns = g->npend || g->bq_head != g->bq_tail ? SLEEP_POLL_NS : left;
	if (ns > left)
		ns = left;
	if (!ns)
		return;
	ts.tv_sec = (time_t)(ns / 1000000000ull);
	ts.tv_nsec = (long)(ns % 1000000000ull);
	mig_futex_wait(&g->arb->serving, g->arb_copy_behind, &ts);
}

/*
 * May a call of class @cls run now?  Takes a ticket when it needs one; false
 * means hold the call (and everything behind it) back.
 */
static bool arb_may_issue(struct gpud *g, unsigned int cls)
{
	uint64_t now;

	if (!(cls & g->arb_excl))
		return !(cls & MIG_CLASS_ON_COMPUTE_ENGINE) || g->arb_held ||
		       !(g->arb_excl & MIG_CLASS_COMPUTE) || arb_copy_may_go(g);
	if (g->arb_held) {
		/* Held long enough while others wait: drain, then requeue. */
		if (mig_arb_waiting(g->arb) &&
		    mig_now_ns() - g->arb_held_since >= ARB_MAX_HOLD_NS) {
			arb_tell_waiting(g, true);
			return false;
		}
		return true;
	}
	if (!g->arb_ticket_taken) {
		g->arb_ticket = mig_arb_take(g->arb, g->arb_id,
					     g->arb_cut ? &g->arb_gave_way : NULL,
					     &g->arb_resumed);
		g->arb_cut = false;
		if (g->arb_ticket == ~0u)
			return true; /* cannot happen with < 1024 servers */
		g->arb_ticket_taken = true;
		if (g->profile) /* for the hand-over figure only */
			g->arb_ticket_ns = mig_now_ns();
		g->arb_waits++;
		g->arb_resumes += g->arb_resumed;
		if (g->profile)
			prof_turn_back(g, mig_now_ns(), true);
	}
	if (!mig_arb_granted(g->arb, g->arb_ticket, g->arb_id)) {
		arb_tell_waiting(g, true);
		return false;
	}
	arb_tell_waiting(g, false);
	now = mig_now_ns();
	g->arb_held = true;
	g->arb_held_since = now;
	g->arb_announce_refused = false;
	g->arb_grants++;
	if (g->profile) {
		uint64_t passed = __atomic_load_n(&g->arb->passed_ns, __ATOMIC_RELAXED);

		/* Passed on by a release after we asked, not free when we
		 * asked: we noticed it now. */
		if (passed > g->arb_ticket_ns && passed <= now) {
			g->prof_handovers++;
			g->prof_handover_ns += now - passed;
		}
	}
	return true;
}

/*
 * The loop found nothing to do and is about to sleep: give the GPU back
 * if all our work has completed.  Returns how long the sleep may last:
 * while we keep the turn with work on the GPU, briefly, so that the turn
 * passes soon after that work ends (SLEEP_POLL_NS while others wait,
 * ARB_LOOK_NS until one comes).
 */
static uint64_t arb_sleep_slice(struct gpud *g)
{
	uint64_t now, quiet;

	if (!g->arb_held || g->npend || g->bq_head != g->bq_tail)
		return SLEEP_IDLE_NS;
	if (!gpud_streams_idle(g))
		return mig_arb_waiting(g->arb) ? SLEEP_POLL_NS : ARB_LOOK_NS;
	now = mig_now_ns();
	quiet = now - g->last_call_ns;
	if (g->last_call_queued && quiet < ARB_LAUNCH_GRACE_NS) {
		if (g->profile && !g->prof_gap_since && mig_arb_waiting(g->arb))
			g->prof_gap_since = now;
		arb_announce_release(g, now);
		return ARB_LAUNCH_GRACE_NS - quiet; /* or the client's next call */
	}
	arb_release(g);
	return SLEEP_IDLE_NS;
}

/* Whether call @h (as dispatched) queued GPU work without waiting for it
 * (a launch, an async copy or memset): its client is most likely in the
 * middle of its GPU phase. */
static bool call_queued_gpu_work(const struct mig_msg_hdr *h)
{
	return op_class(h->op) != MIG_CLASS_CONTROL &&
	       !(h->flags & MIG_MSGF_COMPLETE);
}

/* Wait for our ticket (at most @ns); true once granted. */
static bool arb_wait(struct gpud *g, uint64_t ns)
{
	uint64_t t0 = mig_now_ns();
	bool ok = mig_arb_wait_spin(g->arb, g->arb_ticket, g->arb_id, ns,
				    &g->arb_release_spin_ns);

	g->arb_wait_ns += mig_now_ns() - t0;
	return ok;
}

/*
 * Block until this server may issue calls of class @cls (at once when the
 * model does not make @cls exclusive, or the turn is ours).  For the work
 * the server does for the client on its own, like a swap-in's copies; the
 * turn is then given back by the loop's usual policy.
 */
void gpud_arbiter_hold(struct gpud *g, unsigned int cls)
{
	if (!(cls & g->arb_excl) || g->arb_held)
		return;
	while (!arb_may_issue(g, cls))
		arb_wait(g, 10000000ull);
}

/* --- the loop ------------------------------------------------------------ */

bool gpud_drain(struct gpud *g)
{
	uint32_t tail = mig_load_acquire(&g->hdr->req_tail.value);
	uint32_t head = (uint32_t)g->head;
	uint32_t avail = tail - head;
	bool progress = false;

	if (avail > g->ring_mask + 1) {
		gpud_log(g, 0, "request ring tail out of range: client broken");
		g->broken = 1;
		return false;
	}
	while (avail >= sizeof(struct mig_msg_hdr)) {
		uint32_t off = head & g->ring_mask;
		struct mig_msg_hdr h;
		uint64_t t0;

		memcpy(&h, g->ring + off, sizeof(h));
		if (h.size < sizeof(h) || h.size % MIG_MSG_ALIGN ||
		    h.size > avail || h.size > MIG_MSG_MAX ||
		    off + h.size > g->ring_mask + 1) {
			gpud_log(g, 0, "malformed message (size %u): client broken",
				 h.size);
			g->broken = 1;
			return progress;
		}
		/* Swapped out: the client's memory comes back first. */
		if (g->swap.out && g->sticky_error == CUDA_SUCCESS) {
			struct mig_swap_report rep;

			if (gpud_swap_in(g, &rep) != CUDA_SUCCESS)
				gpud_log(g, 0, "a call found the instance swapped out and its memory could not come back");
		}
		/* Not ours to issue yet: hold it and all behind it back. */
		if (g->arb_excl &&
		    !arb_may_issue(g, call_class(&h, g->ring + off + sizeof(h),
						 h.size - (uint32_t)sizeof(h))))
			break;
		t0 = g->profile && g->arb_held ? mig_now_ns() : 0;
		if (!gpud_dispatch(g, &h, g->ring + off + sizeof(h),
				   h.size - (uint32_t)sizeof(h))) {
			gpud_log(g, 0, "invalid message (op %u, slot %u): client broken",
				 h.op, h.slot);
			g->broken = 1;
			return progress;
		}
		if (t0) {
			g->prof_held_calls++;
			g->prof_held_call_ns += mig_now_ns() - t0;
		}
		g->last_call_queued = call_queued_gpu_work(&h);
		head += h.size;
		avail -= h.size;
		g->head = head;
		mig_seqword_publish(&g->hdr->req_head, head);
		progress = true;
	}
	if (progress) {
		g->last_call_ns = mig_now_ns();
		arb_withdraw(g);
		if (g->profile && g->arb_held)
			prof_gap_end(g, g->last_call_ns);
	}
	return progress;
}

void *gpud_waiter_main(void *arg)
{
	struct gpud *g = arg;

	g->b->cuCtxSetCurrent(g->ctx);
	pthread_mutex_lock(&g->wlock);
	while (!g->stopping) {
		CUevent ev = g->wait_ev;

		if (!ev || g->wait_done) {
			pthread_cond_wait(&g->wcond, &g->wlock);
			continue;
		}
		pthread_mutex_unlock(&g->wlock);
		g->b->cuEventSynchronize(ev);
		pthread_mutex_lock(&g->wlock);
		g->wait_done = 1;
		__atomic_fetch_add(&g->hdr->doorbell.value, 1, __ATOMIC_RELEASE);
		mig_futex_wake(&g->hdr->doorbell.value, 1);
	}
	pthread_mutex_unlock(&g->wlock);
	return NULL;
}

/* Before sleeping: let the waiter block on the oldest pending event. */
static bool handoff(struct gpud *g)
{
	CUevent ev = NULL, old = NULL;
	uint32_t i;
	bool ok = false;

	for (i = 0; i < g->npend && !ev; i++)
		if (g->pend[i].nev)
			ev = g->pend[i].ev[g->pend[i].nev - 1];
	if (!ev && g->bq_head != g->bq_tail)
		ev = g->bounce_q[g->bq_head % 1024].ev;
	if (!ev)
		return false;
	pthread_mutex_lock(&g->wlock);
	if (g->wait_ev == NULL || g->wait_done) {
		old = g->wait_done ? g->wait_ev : NULL;
		g->wait_ev = ev;
		g->wait_done = 0;
		pthread_cond_signal(&g->wcond);
		ok = true;
	} else if (g->wait_ev == ev) {
		ok = true;
	}
	pthread_mutex_unlock(&g->wlock);
	(void)old;
	return ok;
}

void gpud_poll(struct gpud *g)
{
	if (g->npend)
		poll_pending(g);
	if (g->bq_head != g->bq_tail)
		poll_bounce(g);
}

static bool client_alive(struct gpud *g)
{
	struct pollfd pfd = { .fd = g->client_lifeline, .events = POLLIN };

	if (g->client_lifeline < 0)
		return true;
	if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLIN | POLLERR)))
		return false;
	return true;
}

static void sleep_on_doorbell(struct gpud *g, uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
			       .tv_nsec = (long)(ns % 1000000000ull) };
	uint32_t v = mig_load_acquire(&g->hdr->doorbell.value);

	uint64_t t0 = g->profile ? mig_now_ns() : 0, slept;

	__atomic_store_n(&g->hdr->doorbell.waiters, 1, __ATOMIC_RELAXED);
	mig_smp_mb();
	if (mig_load_acquire(&g->hdr->req_tail.value) == (uint32_t)g->head)
		mig_futex_wait(&g->hdr->doorbell.value, v, &ts);
	__atomic_store_n(&g->hdr->doorbell.waiters, 0, __ATOMIC_RELAXED);
	if (g->profile) {
		slept = mig_now_ns() - t0;
		g->prof_sleeps++;
		g->prof_sleep_ns += slept;
		if (g->last_call_queued &&
		    mig_load_acquire(&g->hdr->req_tail.value) != (uint32_t)g->head) {
			g->prof_phase_wakes++;
			g->prof_phase_wake_ns += slept;
		}
	}
}

/* By default a holder's turn passes at the spin's end, without a sleep. */
_Static_assert(MIG_PHASE_SPIN_DEFAULT_US * 1000ull == ARB_LAUNCH_GRACE_NS,
	       "the phase spin's default is the launch grace");

/*
 * Whether the loop, idle since @idle_since, spins on (polls the ring)
 * rather than sleeping.  A sleeping server costs its client's next call a
 * wake-up: the client's futex call, then the server's way back onto a CPU
 * (tens of microseconds on a busy or virtual machine), the GPU idle all
 * along when the client is launch-bound.  So the loop spins longer after
 * a call that queued GPU work (g->phase_spin_ns, ARB_LAUNCH_GRACE_NS by
 * default: the client is most likely in its GPU phase, between two
 * launches) than after others (SPIN_IDLE_NS), and SPIN_PENDING_NS while
 * a client thread waits for work on the GPU.  BERT on the H200, twelve
 * rounds of two and four clients: 16058 wake-ups in its GPU phases (about
 * 18 a request) with 50 us, 73 with 250 us, for up to 5 % more CPU.
 */
static bool spin_on(const struct gpud *g, uint64_t idle_since, uint64_t now)
{
	if (g->npend)
		return now - idle_since < SPIN_PENDING_NS;
	return now - idle_since < SPIN_IDLE_NS ||
	       (g->last_call_queued && now - g->last_call_ns < g->phase_spin_ns);
}

int gpud_serve(struct gpud *g)
{
	uint64_t idle_since = 0, now, next_look = 0; /* for a release to announce */

	while (!g->broken && !gpud_stop_requested) {
		bool progress = gpud_drain(g), holding;
		uint64_t slice;

		if (g->npend)
			progress |= poll_pending(g);
		if (g->bq_head != g->bq_tail)
			progress |= poll_bounce(g);
		if (progress) {
			idle_since = 0;
			continue;
		}
		if (!idle_since) {
			idle_since = mig_now_ns();
			next_look = idle_since + arb_announce_after(g);
			if (g->profile && !g->prof_gap_since && arb_idle_while_others_wait(g))
				g->prof_gap_since = idle_since; /* (prof_gap_end) */
			continue;
		}
		/* Waiting for the GPU: on the arbiter, not the doorbell (the
		 * ring holds the call that waits). */
		if (g->arb_copy_waits) {
			arb_copy_wait(g);
			if (!client_alive(g)) {
				gpud_log(g, 1, "client gone");
				break;
			}
			idle_since = 0;
			continue;
		}
		if (g->arb_ticket_taken && !g->arb_held) {
			if (!arb_wait(g, g->npend || g->bq_head != g->bq_tail ?
					      SLEEP_POLL_NS : SLEEP_IDLE_NS) &&
			    !client_alive(g)) {
				gpud_log(g, 1, "client gone");
				break;
			}
			idle_since = 0;
			continue;
		}
		now = mig_now_ns();
		if (spin_on(g, idle_since, now)) {
			if (g->arb_held && !g->arb_announced &&
			    now >= next_look) {
				next_look = now + ARB_ANNOUNCE_AFTER_NS;
				arb_announce_release(g, now);
			}
			mig_cpu_relax();
			continue;
		}
		slice = arb_sleep_slice(g);
		holding = slice != SLEEP_IDLE_NS; /* the turn, work on the GPU */
		/* Idle past the spin: the daemon's news, then one image of
		 * the module cache loaded ahead instead of a sleep. */
		if (!g->npend && g->bq_head == g->bq_tail) {
			gpud_control_poll(g);
			if (modcache_idle(g)) {
				idle_since = 0;
				continue;
			}
		}
		if (g->npend || g->bq_head != g->bq_tail) {
			g->prof_handoffs += g->profile;
			sleep_on_doorbell(g, handoff(g) ? SLEEP_IDLE_NS :
							  SLEEP_POLL_NS);
		} else {
			sleep_on_doorbell(g, slice);
		}
		if (!client_alive(g)) {
			gpud_log(g, 1, "client gone");
			break;
		}
		/* Still quiet after a look at the streams: look again at once,
		 * without the spin (the client's call would have ended it). */
		idle_since = mig_now_ns() -
			     (holding && mig_load_acquire(&g->hdr->req_tail.value) ==
						 (uint32_t)g->head ? SPIN_IDLE_NS : 0);
	}
	return g->broken ? 1 : 0;
}
