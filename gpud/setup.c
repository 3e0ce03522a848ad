/*
 * setup.c - bringing a GPU server up on its partition and tearing it down.
 *
 * Order matters: bind to the device (by UUID, through CUDA_VISIBLE_DEVICES
 * so that a MIG instance becomes device 0), create the context, reserve
 * the device address range, lay out and pin the segment, snapshot the
 * device for the client, and only then say READY.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arbiter.h"
#include "gpud.h"
#include "segment.h"
#include "seqword.h"

#define BOUNCE_BYTES (16u << 20)

static void uuid_format(const unsigned char *u, char *out, size_t n)
{
	snprintf(out, n,
		 "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
		 u[10], u[11], u[12], u[13], u[14], u[15]);
}

static int fail(char *err, size_t errlen, const struct gpud *g, CUresult r,
		const char *what)
{
	snprintf(err, errlen, "%s failed on the %s backend (CUresult %d)", what,
		 g->b->name, (int)r);
	return -1;
}

int gpud_setup(struct gpud *g, int seg_fd, uint64_t seg_base,
	       uint64_t dev_va_base, uint64_t dev_va_size, const char *uuid,
	       char *err, size_t errlen)
{
	CUmemAllocationProp prop = { 0 };
	struct mig_seg_header *hdr;
	struct mig_device_info *di;
	CUdeviceptr va = 0;
	size_t gran = 0;
	CUresult r;
	uint64_t size;
	int i, e;

	g->client_lifeline = g->client_lifeline ? g->client_lifeline : -1;
	pthread_mutex_init(&g->wlock, NULL);
	pthread_cond_init(&g->wcond, NULL);

	e = mig_segment_check(seg_fd, &size);
	if (e) {
		snprintf(err, errlen,
			 "the shared segment (fd %d) is not a sealed memfd: %s",
			 seg_fd, strerror(-e));
		return -1;
	}
	g->seg = mig_segment_map_at(seg_fd, seg_base, size);
	if (!g->seg) {
		snprintf(err, errlen,
			 "cannot map the shared segment at 0x%llx: %s; choose another --segment-base",
			 (unsigned long long)seg_base, strerror(errno));
		return -1;
	}
	g->seg_size = size;
	/* Large pages, where the kernel offers them for shared memory, mean
	 * fewer pages to pin and to walk per DMA.  Advice only. */
	madvise(g->seg, size, MADV_HUGEPAGE);
	hdr = g->hdr = (struct mig_seg_header *)g->seg;
	memset(hdr, 0, sizeof(*hdr));
	mig_segment_layout(hdr, size);
	hdr->base = seg_base;
	hdr->server_pid = (uint32_t)getpid();
	/* Our private copy of the layout. */
	g->ring = g->seg + hdr->req_off;
	g->ring_mask = (uint32_t)hdr->req_size - 1;
	g->slots = (struct mig_reply_slot *)(g->seg + hdr->reply_off);
	g->staging = g->seg + hdr->staging_off;
	g->heap_off = hdr->heap_off;
	g->heap_size = hdr->heap_size;
	g->pinned_fixed = hdr->pinned_size;

	if (uuid && *uuid && !strcmp(g->b->name, "cuda"))
		setenv("CUDA_VISIBLE_DEVICES", uuid, 1);
	r = g->b->cuInit(0);
	if (r != CUDA_SUCCESS)
		return fail(err, errlen, g, r, "cuInit");
	r = g->b->cuDeviceGet(&g->dev, 0);
	if (r != CUDA_SUCCESS) {
		snprintf(err, errlen, "no device %s visible to the %s backend",
			 uuid && *uuid ? uuid : "0", g->b->name);
		return -1;
	}
	r = g->b->cuDevicePrimaryCtxRetain(&g->ctx, g->dev);
	if (r != CUDA_SUCCESS)
		return fail(err, errlen, g, r, "creating the context");
	r = g->b->cuCtxSetCurrent(g->ctx);
	if (r != CUDA_SUCCESS)
		return fail(err, errlen, g, r, "cuCtxSetCurrent");

	/* Device snapshot: the client answers queries from it. */
	di = &hdr->dev;
	g->b->cuDeviceGetName(di->name, sizeof(di->name) - 1, g->dev);
	g->b->cuDeviceGetUuid((CUuuid *)di->uuid, g->dev);
	if (uuid && *uuid && !strncmp(uuid, "GPU-", 4)) {
		char have[64];

		uuid_format(di->uuid, have, sizeof(have));
		if (strcasecmp(have, uuid) && strcmp(g->b->name, "host")) {
			snprintf(err, errlen, "device %s not found (device 0 is %s)",
				 uuid, have);
			return -1;
		}
	}
	{
		size_t tm = 0;

		g->b->cuDeviceTotalMem(&tm, g->dev);
		di->total_mem = tm;
	}
	g->b->cuDriverGetVersion(&di->driver_version);
	g->b->cuCtxGetStreamPriorityRange(&di->prio_least, &di->prio_greatest);
	for (i = 1; i < MIG_DEV_ATTR_COUNT; i++) {
		int v = 0;

		if (g->b->cuDeviceGetAttribute(&v, (CUdevice_attribute)i,
					       g->dev) == CUDA_SUCCESS)
			di->attr[i] = v;
	}

	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = g->dev;
	r = g->b->cuMemGetAllocationGranularity(&gran, &prop,
						CU_MEM_ALLOC_GRANULARITY_MINIMUM);
	if (r != CUDA_SUCCESS || gran == 0)
		return fail(err, errlen, g, r, "cuMemGetAllocationGranularity");
	g->granularity = gran;
	di->vmm_granularity = gran;
	/*
	 * Address space is cheap and the client's own reservations come out
	 * of this range too: PyTorch's expandable segments reserve 1.125 times
	 * the device's memory per stream, next to the cuMemAlloc allocations.
	 */
	if (!dev_va_size)
		dev_va_size = di->total_mem * 8;
	dev_va_size = (dev_va_size + gran - 1) & ~(uint64_t)(gran - 1);
	r = g->b->cuMemAddressReserve(&va, dev_va_size, 0, dev_va_base, 0);
	if (r != CUDA_SUCCESS)
		return fail(err, errlen, g, r, "reserving the device address range");
	g->vs.base = va;
	g->vs.size = dev_va_size;
	hdr->dev_va_base = va;
	hdr->dev_va_size = dev_va_size;

	/* Pin the fixed regions (ring, replies, staging) once. */
	r = g->b->cuMemHostRegister(g->seg, g->pinned_fixed,
				    CU_MEMHOSTREGISTER_PORTABLE |
					    CU_MEMHOSTREGISTER_DEVICEMAP);
	if (r != CUDA_SUCCESS)
		return fail(err, errlen, g, r, "pinning the shared segment");
	r = g->b->cuMemHostAlloc((void **)&g->bounce, BOUNCE_BYTES, 0);
	if (r != CUDA_SUCCESS)
		return fail(err, errlen, g, r, "allocating the bounce buffer");
	g->bounce_size = BOUNCE_BYTES;

	if (pthread_create(&g->waiter, NULL, gpud_waiter_main, g)) {
		snprintf(err, errlen, "cannot start the waiter thread");
		return -1;
	}
	g->waiter_started = 1;
	pthread_setname_np(g->waiter, "mig-gpud-wait");
	if (gpud_control_watch(g))
		gpud_log(g, 0, "cannot watch the control socket: the daemon's requests wait for the next wake-up");
	mig_seqword_publish(&hdr->server_state, MIG_SERVER_READY);
	return 0;
}

void gpud_teardown(struct gpud *g)
{
	uint32_t i;

	if (g->hdr)
		mig_seqword_publish(&g->hdr->server_state, MIG_SERVER_GONE);
	/* Whatever we held or waited for goes to the next in line. */
	if (g->arb && g->arb_ticket_taken)
		mig_arb_release(g->arb, g->arb_ticket, NULL);
	gpud_control_unwatch(g); /* it rings a doorbell in the segment */
	if (g->waiter_started) {
		pthread_mutex_lock(&g->wlock);
		g->stopping = 1;
		pthread_cond_signal(&g->wcond);
		pthread_mutex_unlock(&g->wlock);
		pthread_join(g->waiter, NULL);
	}
	if (!g->ctx)
		goto unmap;
	/* Release what the client left behind, in dependency order. */
	for (i = 0; i < g->h.n; i++) {
		struct gpud_handle *h = &g->h.v[i];

		switch (h->type) {
		case H_STREAM:
			g->b->cuStreamDestroy(h->ptr);
			break;
		case H_EVENT:
			g->b->cuEventDestroy(h->ptr);
			break;
		default:
			break;
		}
	}
	for (i = 0; i < MIG_REPLY_SLOTS; i++)
		if (g->ptds[i])
			g->b->cuStreamDestroy(g->ptds[i]);
	modcache_close(g);
	gpud_swap_free(g);
	for (i = 0; i < g->h.n; i++) {
		struct gpud_handle *h = &g->h.v[i];

		if (h->type == H_MODULE)
			g->b->cuModuleUnload(h->ptr);
		else if (h->type == H_LIBRARY)
			g->b->cuLibraryUnload(h->ptr);
		if (h->type == H_MODULE || h->type == H_LIBRARY)
			free(h->ptr2);
	}
	/* The client's VMM mappings, then its physical allocations (the
	 * driver frees each when both its handle and its mappings are gone),
	 * then the allocations of cuMemAlloc.  Client reservations are only
	 * entries of our own range, which goes last. */
	for (i = 0; i < g->vs.nmaps; i++)
		g->b->cuMemUnmap(g->vs.maps[i].addr, g->vs.maps[i].size);
	free(g->vs.maps);
	for (i = 0; i < g->h.n; i++)
		if (g->h.v[i].type == H_MEM && g->h.v[i].ptr) /* (NULL: swapped out) */
			g->b->cuMemRelease((CUmemGenericAllocationHandle)(
				uintptr_t)g->h.v[i].ptr);
	handles_free_all(&g->h);
	g->mem_handle_bytes = 0;
	free(g->map_mems);
	g->map_mems = NULL;
	g->cap_map_mems = 0;
	for (i = 0; i < g->vs.n; i++) {
		if (g->vs.v[i].kind != VA_ALLOC || !g->vs.v[i].mem)
			continue; /* a reservation, or swapped out */
		g->b->cuMemUnmap(g->vs.v[i].addr, g->vs.v[i].size);
		g->b->cuMemRelease(g->vs.v[i].mem);
	}
	free(g->vs.v);
	if (g->vs.base)
		g->b->cuMemAddressFree(g->vs.base, g->vs.size);
	for (i = 0; i < g->nevpool; i++)
		g->b->cuEventDestroy(g->evpool[i]);
	free(g->evpool);
	free(g->pend);
	if (g->bounce)
		g->b->cuMemFreeHost(g->bounce);
	for (i = 0; i < sizeof(g->pinned_granule); i++)
		if (g->pinned_granule[i])
			g->b->cuMemHostUnregister(g->seg + g->heap_off +
						  (uint64_t)i * MIG_PIN_GRANULE);
	if (g->seg)
		g->b->cuMemHostUnregister(g->seg);
	g->b->cuDevicePrimaryCtxRelease(g->dev);
unmap:
	if (g->seg)
		munmap(g->seg, g->seg_size);
}
