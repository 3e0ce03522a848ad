/*
 * memory.c - device and host memory, pointer attributes, memset.
 *
 * Device memory is allocated by the server inside the device address range
 * this process reserved at init, so the kind of any pointer follows from
 * its address alone: inside that range (or a module global) it is device
 * memory, inside the segment it is pinned host memory, anything else is
 * pageable host memory.  The shim keeps the list of its allocations to
 * answer cuMemGetAddressRange and pointer attributes without a round trip.
 */
#include <stdlib.h>
#include <string.h>

#include "shim.h"

struct range {
	uint64_t base, size;
	bool vmm; /* a cuMemMap: adjacent ones form one device range */
};

static pthread_rwlock_t ranges_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct range *ranges; /* sorted by base */
static uint32_t nranges, cap_ranges;
static unsigned long long next_buffer_id = 1;

/* Host ranges the program registered with cuMemHostRegister. */
static struct range registered[64];
static uint32_t nregistered;

static int range_insert(uint64_t base, uint64_t size, bool vmm)
{
	uint32_t i;

	pthread_rwlock_wrlock(&ranges_lock);
	if (nranges == cap_ranges) {
		uint32_t c = cap_ranges ? cap_ranges * 2 : 64;
		struct range *v = realloc(ranges, c * sizeof(*v));

		if (!v) {
			pthread_rwlock_unlock(&ranges_lock);
			return -1;
		}
		ranges = v;
		cap_ranges = c;
	}
	for (i = 0; i < nranges && ranges[i].base < base; i++)
		;
	memmove(&ranges[i + 1], &ranges[i], (nranges - i) * sizeof(*ranges));
	ranges[i].base = base;
	ranges[i].size = size;
	ranges[i].vmm = vmm;
	nranges++;
	pthread_rwlock_unlock(&ranges_lock);
	return 0;
}

static void range_remove(uint64_t base)
{
	uint32_t i;

	pthread_rwlock_wrlock(&ranges_lock);
	for (i = 0; i < nranges; i++) {
		if (ranges[i].base == base) {
			memmove(&ranges[i], &ranges[i + 1],
				(nranges - i - 1) * sizeof(*ranges));
			nranges--;
			break;
		}
	}
	pthread_rwlock_unlock(&ranges_lock);
}

/* Index + 1 of the range containing @p, 0 if none (under ranges_lock). */
static uint32_t range_index(uint64_t p)
{
	uint32_t lo = 0, hi = nranges;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;

		if (ranges[mid].base <= p)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0 && p - ranges[lo - 1].base < ranges[lo - 1].size)
		return lo;
	return 0;
}

/* The allocation containing @p, if any. */
static int range_find(uint64_t p, struct range *out)
{
	uint32_t i;

	pthread_rwlock_rdlock(&ranges_lock);
	i = range_index(p);
	if (i)
		*out = ranges[i - 1];
	pthread_rwlock_unlock(&ranges_lock);
	return i != 0;
}

/*
 * Is [p, p + n) device memory we know?  Inside one range, or, for virtual
 * memory mappings, a run of mappings back to back (a tensor of PyTorch's
 * expandable segments may span several).
 */
static bool range_covers(uint64_t p, uint64_t n)
{
	uint64_t end;
	uint32_t i;
	bool ok = false;

	if (__builtin_add_overflow(p, n, &end))
		return false;
	pthread_rwlock_rdlock(&ranges_lock);
	i = range_index(p);
	while (i) {
		const struct range *r = &ranges[i - 1];

		if (end - r->base <= r->size) {
			ok = true;
			break;
		}
		if (!r->vmm || i == nranges || !ranges[i].vmm ||
		    ranges[i].base != r->base + r->size)
			break;
		i++;
	}
	pthread_rwlock_unlock(&ranges_lock);
	return ok;
}

void shim_note_vmm_map(CUdeviceptr p, size_t size)
{
	range_insert(p, size, true);
}

/* Forget the mappings inside [p, p + size) (after a cuMemUnmap). */
void shim_forget_vmm_range(CUdeviceptr p, size_t size)
{
	uint32_t i = 0;

	pthread_rwlock_wrlock(&ranges_lock);
	while (i < nranges) {
		if (ranges[i].vmm && ranges[i].base >= p &&
		    ranges[i].base - p < size) {
			memmove(&ranges[i], &ranges[i + 1],
				(nranges - i - 1) * sizeof(*ranges));
			nranges--;
			continue;
		}
		i++;
	}
	pthread_rwlock_unlock(&ranges_lock);
}

bool shim_is_device_ptr(CUdeviceptr p)
{
	struct range r;

	if (p >= shim.dev_va_base && p - shim.dev_va_base < shim.dev_va_size)
		return true;
	return range_find(p, &r) != 0;
}

/*
 * Is [p, p + n) memory the device can address: inside one allocation or
 * global we know, or inside the (mapped, pinned) segment?  The driver
 * rejects other addresses at once, even for asynchronous calls; checking
 * here lets fire-and-forget calls do the same.
 */
bool shim_device_range_ok(CUdeviceptr p, size_t n)
{
	if (n == 0)
		n = 1;
	if (shim_in_segment((const void *)(uintptr_t)p, n))
		return true;
	return range_covers(p, n);
}

void shim_note_global(CUdeviceptr p, size_t size)
{
	struct range r;

	if (size && !range_find(p, &r))
		range_insert(p, size, false);
}

/* --- device memory ----------------------------------------------------- */

SHIM_API CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t size)
{
	struct mig_mem_alloc a = { .size = size };
	uint64_t addr = 0;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!dptr || size == 0)
		return CUDA_ERROR_INVALID_VALUE;
	r = shim_call(MIG_OP_MEM_ALLOC, &a, sizeof(a), MIG_MSGF_REPLY, &addr,
		      sizeof(addr));
	if (r != CUDA_SUCCESS)
		return r;
	if (range_insert(addr, size, false) < 0) {
		struct mig_mem_free f = { .dptr = addr };

		shim_call(MIG_OP_MEM_FREE, &f, sizeof(f), MIG_MSGF_REPLY, NULL, 0);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	*dptr = addr;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch,
				     size_t width, size_t height,
				     unsigned int elem)
{
	size_t p;
	CUresult r;

	if (!pitch || (elem != 4 && elem != 8 && elem != 16) || !width ||
	    !height)
		return CUDA_ERROR_INVALID_VALUE;
	/* The driver aligns pitch to the texture pitch alignment. */
	p = (width + 511) & ~(size_t)511;
	r = cuMemAlloc_v2(dptr, p * height);
	if (r == CUDA_SUCCESS)
		*pitch = p;
	return r;
}

SHIM_API CUresult cuMemFree_v2(CUdeviceptr dptr)
{
	struct mig_mem_free a = { .dptr = dptr };
	struct range rg;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (dptr == 0)
		return CUDA_SUCCESS;
	if (!range_find(dptr, &rg) || rg.base != dptr || rg.vmm ||
	    dptr < shim.dev_va_base || dptr - shim.dev_va_base >= shim.dev_va_size)
		return CUDA_ERROR_INVALID_VALUE;
	r = shim_call(MIG_OP_MEM_FREE, &a, sizeof(a), MIG_MSGF_REPLY, NULL, 0);
	if (r == CUDA_SUCCESS)
		range_remove(dptr);
	return r;
}

/* Stream-ordered allocation, served synchronously: the memory is valid at
 * once, and a free waits for the work in flight.  Correct, not faster. */
SHIM_API CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t size,
				  CUstream stream)
{
	(void)stream;
	return cuMemAlloc_v2(dptr, size);
}

SHIM_API CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream stream)
{
	(void)stream;
	return cuMemFree_v2(dptr);
}

SHIM_API CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t size,
				       CUstream stream)
{
	return cuMemAllocAsync(dptr, size, stream);
}

SHIM_API CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream stream)
{
	return cuMemFreeAsync(dptr, stream);
}

SHIM_API int mignificent_gpu_memory_used(unsigned long long *bytes)
{
	struct mig_ctx_sync a = { 0 };
	struct mig_mem_info mi;
	CUresult r = shim_ensure_init();

	if (!bytes)
		return CUDA_ERROR_INVALID_VALUE;
	if (r == CUDA_SUCCESS)
		r = shim_call(MIG_OP_MEM_GET_INFO, &a, sizeof(a), MIG_MSGF_REPLY,
			      &mi, sizeof(mi));
	if (r == CUDA_SUCCESS)
		*bytes = mi.client_used;
	return r;
}

SHIM_API CUresult cuMemGetInfo_v2(size_t *free_, size_t *total)
{
	struct mig_ctx_sync a = { 0 };
	struct mig_mem_info mi;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!free_ || !total)
		return CUDA_ERROR_INVALID_VALUE;
	r = shim_call(MIG_OP_MEM_GET_INFO, &a, sizeof(a), MIG_MSGF_REPLY, &mi,
		      sizeof(mi));
	if (r == CUDA_SUCCESS) {
		*free_ = mi.free;
		*total = mi.total;
	}
	return r;
}

SHIM_API CUresult cuMemGetAddressRange_v2(CUdeviceptr *base, size_t *size,
					  CUdeviceptr dptr)
{
	struct range rg;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!range_find(dptr, &rg))
		return CUDA_ERROR_NOT_FOUND;
	if (base)
		*base = rg.base;
	if (size)
		*size = rg.size;
	return CUDA_SUCCESS;
}

/* --- host memory ---------------------------------------------------------- */

SHIM_API CUresult cuMemHostAlloc(void **pp, size_t size, unsigned int flags)
{
	CUresult r = shim_check_ctx();

	(void)flags; /* portable, mapped, write-combined: all hold for the segment */
	if (r != CUDA_SUCCESS)
		return r;
	if (!pp)
		return CUDA_ERROR_INVALID_VALUE;
	*pp = shim_heap_alloc(size);
	return *pp ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

SHIM_API CUresult cuMemAllocHost_v2(void **pp, size_t size)
{
	return cuMemHostAlloc(pp, size, 0);
}

SHIM_API CUresult cuMemFreeHost(void *p)
{
	if (!shim_heap_size_of(p))
		return CUDA_ERROR_INVALID_VALUE;
	shim_heap_free(p);
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *pdptr, void *p,
					       unsigned int flags)
{
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!pdptr || flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	/* Unified addressing: the segment is mapped at the same address in
	 * the server, so its device pointer is the host pointer. */
	if (!shim_in_segment(p, 1))
		return CUDA_ERROR_INVALID_VALUE;
	*pdptr = (CUdeviceptr)(uintptr_t)p;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuMemHostGetFlags(unsigned int *flags, void *p)
{
	if (!flags || !shim_in_segment(p, 1))
		return CUDA_ERROR_INVALID_VALUE;
	*flags = CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP;
	return CUDA_SUCCESS;
}

/*
 * Registering arbitrary host memory would need the server to see it; it
 * cannot.  We accept the registration (copies from it stay correct, going
 * through staging) but refuse the mapped forms a kernel would dereference.
 */
SHIM_API CUresult cuMemHostRegister_v2(void *p, size_t size, unsigned int flags)
{
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!p || !size)
		return CUDA_ERROR_INVALID_VALUE;
	if (flags & (CU_MEMHOSTREGISTER_DEVICEMAP | CU_MEMHOSTREGISTER_IOMEMORY))
		return shim_unsupported("cuMemHostRegister (mapped host memory outside mignificent_malloc)");
	pthread_rwlock_wrlock(&ranges_lock);
	if (nregistered < 64) {
		registered[nregistered].base = (uint64_t)(uintptr_t)p;
		registered[nregistered].size = size;
		nregistered++;
	}
	pthread_rwlock_unlock(&ranges_lock);
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuMemHostRegister(void *p, size_t size, unsigned int flags)
{
	return cuMemHostRegister_v2(p, size, flags);
}

SHIM_API CUresult cuMemHostUnregister(void *p)
{
	uint32_t i;
	CUresult r = CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;

	pthread_rwlock_wrlock(&ranges_lock);
	for (i = 0; i < nregistered; i++) {
		if (registered[i].base == (uint64_t)(uintptr_t)p) {
			registered[i] = registered[--nregistered];
			r = CUDA_SUCCESS;
			break;
		}
	}
	pthread_rwlock_unlock(&ranges_lock);
	return r;
}

/* --- pointer attributes --------------------------------------------------- */

static CUresult pointer_attr(void *data, CUpointer_attribute attr,
			     CUdeviceptr ptr, bool lenient)
{
	struct range rg;
	bool dev = range_find(ptr, &rg) != 0;
	bool pinned = !dev && shim_in_segment((void *)(uintptr_t)ptr, 1);

	if (!dev && pinned) {
		rg.base = shim.heap_off + (uint64_t)(uintptr_t)shim.seg;
		rg.size = shim.heap_size;
	}
	if (!dev && !pinned && !lenient)
		return CUDA_ERROR_INVALID_VALUE;

	switch (attr) {
	case CU_POINTER_ATTRIBUTE_CONTEXT: {
		CUcontext c = NULL;

		if (dev || pinned)
			cuCtxGetCurrent(&c);
		*(CUcontext *)data = c;
		break;
	}
	case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
		*(unsigned int *)data = dev ? CU_MEMORYTYPE_DEVICE :
				      pinned ? CU_MEMORYTYPE_HOST : 0;
		break;
	case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
		*(CUdeviceptr *)data = (dev || pinned) ? ptr : 0;
		break;
	case CU_POINTER_ATTRIBUTE_HOST_POINTER:
		*(void **)data = pinned ? (void *)(uintptr_t)ptr : NULL;
		break;
	case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS:
		*(int *)data = 1;
		break;
	case CU_POINTER_ATTRIBUTE_BUFFER_ID:
		*(unsigned long long *)data = (dev || pinned) ? next_buffer_id : 0;
		break;
	case CU_POINTER_ATTRIBUTE_IS_MANAGED:
		*(int *)data = 0;
		break;
	case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
		*(int *)data = (dev || pinned) ? 0 : -2;
		break;
	case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE:
		*(int *)data = 0;
		break;
	case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
		*(void **)data = (dev || pinned) ? (void *)(uintptr_t)rg.base : NULL;
		break;
	case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
		*(size_t *)data = (dev || pinned) ? rg.size : 0;
		break;
	case CU_POINTER_ATTRIBUTE_MAPPED:
		*(int *)data = dev || pinned;
		break;
	case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES:
		*(unsigned long long *)data = 0;
		break;
	case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE:
		*(int *)data = 0;
		break;
	case CU_POINTER_ATTRIBUTE_ACCESS_FLAGS:
		*(int *)data = (dev || pinned) ? CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE : 0;
		break;
	case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE:
		*(void **)data = NULL;
		break;
	case CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID:
		*(unsigned long long *)data = (dev || pinned) ? rg.base : 0;
		break;
	case CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE:
		*(int *)data = 0;
		break;
	default:
		return CUDA_ERROR_INVALID_VALUE;
	}
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuPointerGetAttribute(void *data, CUpointer_attribute attr,
				       CUdeviceptr ptr)
{
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (!data)
		return CUDA_ERROR_INVALID_VALUE;
	return pointer_attr(data, attr, ptr, false);
}

/* Unlike cuPointerGetAttribute, this one succeeds for unknown memory. */
SHIM_API CUresult cuPointerGetAttributes(unsigned int n,
					 CUpointer_attribute *attrs,
					 void **data, CUdeviceptr ptr)
{
	unsigned int i;
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (!attrs || !data)
		return CUDA_ERROR_INVALID_VALUE;
	for (i = 0; i < n; i++) {
		if (!data[i])
			continue;
		r = pointer_attr(data[i], attrs[i], ptr, true);
		if (r != CUDA_SUCCESS)
			return r;
	}
	return CUDA_SUCCESS;
}

/* --- memset -------------------------------------------------------------- */

static CUresult memset_common(CUdeviceptr dst, size_t pitch, uint32_t value,
			      uint32_t elem, size_t width, size_t height,
			      CUstream stream, bool async, bool per_thread)
{
	struct mig_memset a = {
		.dst = dst, .pitch = pitch, .width = width, .height = height,
		.value = value, .elem = elem,
	};
	uint32_t flags = 0;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (width == 0 || height == 0)
		return CUDA_SUCCESS;
	if (!shim_device_range_ok(dst, (height - 1) * pitch + width * elem))
		return CUDA_ERROR_INVALID_VALUE;
	r = shim_stream_id(stream, per_thread, &a.stream, &flags);
	if (r != CUDA_SUCCESS)
		return r;
	if (!async)
		flags |= MIG_MSGF_REPLY;
	return shim_call(MIG_OP_MEMSET, &a, sizeof(a), flags, NULL, 0);
}

#define MEMSET_1D(name, type, elem, async, pt)                                 \
	SHIM_API CUresult name(CUdeviceptr d, type v, size_t n)                \
	{                                                                      \
		return memset_common(d, 0, v, elem, n, 1, NULL, async, pt);    \
	}
#define MEMSET_1D_ASYNC(name, type, elem, pt)                                  \
	SHIM_API CUresult name(CUdeviceptr d, type v, size_t n, CUstream s)    \
	{                                                                      \
		return memset_common(d, 0, v, elem, n, 1, s, true, pt);        \
	}
#define MEMSET_2D(name, type, elem, pt)                                        \
	SHIM_API CUresult name(CUdeviceptr d, size_t p, type v, size_t w,      \
			       size_t h)                                       \
	{                                                                      \
		return memset_common(d, p, v, elem, w, h, NULL, false, pt);    \
	}
#define MEMSET_2D_ASYNC(name, type, elem, pt)                                  \
	SHIM_API CUresult name(CUdeviceptr d, size_t p, type v, size_t w,      \
			       size_t h, CUstream s)                           \
	{                                                                      \
		return memset_common(d, p, v, elem, w, h, s, true, pt);        \
	}

MEMSET_1D(cuMemsetD8_v2, unsigned char, 1, false, false)
MEMSET_1D(cuMemsetD16_v2, unsigned short, 2, false, false)
MEMSET_1D(cuMemsetD32_v2, unsigned int, 4, false, false)
MEMSET_1D(cuMemsetD8_v2_ptds, unsigned char, 1, false, true)
MEMSET_1D(cuMemsetD16_v2_ptds, unsigned short, 2, false, true)
MEMSET_1D(cuMemsetD32_v2_ptds, unsigned int, 4, false, true)
MEMSET_1D_ASYNC(cuMemsetD8Async, unsigned char, 1, false)
MEMSET_1D_ASYNC(cuMemsetD16Async, unsigned short, 2, false)
MEMSET_1D_ASYNC(cuMemsetD32Async, unsigned int, 4, false)
MEMSET_1D_ASYNC(cuMemsetD8Async_ptsz, unsigned char, 1, true)
MEMSET_1D_ASYNC(cuMemsetD16Async_ptsz, unsigned short, 2, true)
MEMSET_1D_ASYNC(cuMemsetD32Async_ptsz, unsigned int, 4, true)
MEMSET_2D(cuMemsetD2D8_v2, unsigned char, 1, false)
MEMSET_2D(cuMemsetD2D16_v2, unsigned short, 2, false)
MEMSET_2D(cuMemsetD2D32_v2, unsigned int, 4, false)
MEMSET_2D(cuMemsetD2D8_v2_ptds, unsigned char, 1, true)
MEMSET_2D(cuMemsetD2D16_v2_ptds, unsigned short, 2, true)
MEMSET_2D(cuMemsetD2D32_v2_ptds, unsigned int, 4, true)
MEMSET_2D_ASYNC(cuMemsetD2D8Async, unsigned char, 1, false)
MEMSET_2D_ASYNC(cuMemsetD2D16Async, unsigned short, 2, false)
MEMSET_2D_ASYNC(cuMemsetD2D32Async, unsigned int, 4, false)
MEMSET_2D_ASYNC(cuMemsetD2D8Async_ptsz, unsigned char, 1, true)
MEMSET_2D_ASYNC(cuMemsetD2D16Async_ptsz, unsigned short, 2, true)
MEMSET_2D_ASYNC(cuMemsetD2D32Async_ptsz, unsigned int, 4, true)
