/*
 * backend_host.c - the `host` backend of mig-gpud: a TEST DOUBLE.
 *
 * THIS IS NOT A DRIVER AND PROVES NOTHING ABOUT ONE.  It exists so that CI
 * machines without a GPU can run real nvcc-built CUDA programs through the
 * whole remoting path (shim -> ring -> server -> backend) and observe the
 * behaviour the server must cope with: asynchrony, bad device pointers,
 * sticky errors.  Every entry point of struct gpud_backend is implemented
 * here on the host, modelling one H100/H200-like device with one primary
 * context:
 *
 *   memory    the VMM calls are emulated with mmap in the server process:
 *             a reservation is a PROT_NONE mapping, a physical allocation
 *             is a memfd, cuMemMap maps the memfd MAP_SHARED|MAP_FIXED
 *             over the reservation and cuMemSetAccess mprotects it.  A
 *             table of mapped ranges and their protection is the single
 *             authority on which device addresses copies may touch, so a
 *             bad device pointer from a client becomes an error code and
 *             never a fault in the server.
 *   time      work is done at once, but every stream has a "busy until"
 *             time; a kernel whose registry entry has busy_us keeps its
 *             stream busy that long, so queries, events and elapsed times
 *             behave asynchronously, including the legacy stream's
 *             implicit synchronization with blocking streams.
 *   kernels   host functions from the libraries named by MIG_HOST_KERNELS
 *             (see host_kernels.h and tests/host_kernels/README.md), bound
 *             to modules by searching module images for their names.
 *   errors    a kernel that returns nonzero (or faults: SIGSEGV/SIGBUS
 *             inside it become CUDA_ERROR_ILLEGAL_ADDRESS) poisons the
 *             context: from then on every call that uses the context
 *             returns that error, as the real driver does.
 *
 * One mutex serializes everything; the only call that blocks,
 * cuEventSynchronize, sleeps without it.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "host_kernels.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/* --- the modelled device ------------------------------------------------ */

#define HB_DRIVER_VERSION 13000
#define HB_DEVICE_NAME "mignificent host test double"
#define HB_UUID "mignificenthost!" /* exactly 16 bytes */
#define HB_DEFAULT_MEM_MIB 16384ull
#define HB_GRAN (2ull << 20)               /* VMM granularity */
#define HB_SMEM_BLOCK 49152                /* default smem per block */
#define HB_SMEM_OPTIN 232448               /* 227 KiB opt-in per block */
#define HB_SMEM_SM 233472                  /* 228 KiB per SM */
#define HB_SMEM_RESERVED 1024              /* driver reserve per block */
#define HB_L2_PERSIST_MAX 39321600         /* 75% of the 50 MiB L2 */
#define HB_MAX_PARAM_BYTES 32764           /* CUDA >= 12.1 */
#define HB_MAX_IMAGE (1ull << 30)          /* largest module image */
#define HB_PRIO_GREATEST (-5)
#define HB_PRIO_LEAST 0

/*
 * Device attributes.  Values are those of an H100/H200 SXM where the
 * attribute describes hardware, and 0 where it describes a feature this
 * double cannot pretend to have (IPC, multicast, NUMA, CIG, ...).  The
 * `set` flag exists because 0 is a legitimate value: an attribute of
 * cuda.h missing from this table is a bug and answers INVALID_VALUE.
 */
struct hb_attr {
	int set;
	int val;
};

#define A(name, v) [CU_DEVICE_ATTRIBUTE_##name] = { 1, (v) }
static const struct hb_attr dev_attr[CU_DEVICE_ATTRIBUTE_MAX] = {
	A(MAX_THREADS_PER_BLOCK, 1024),
	A(MAX_BLOCK_DIM_X, 1024),
	A(MAX_BLOCK_DIM_Y, 1024),
	A(MAX_BLOCK_DIM_Z, 64),
	A(MAX_GRID_DIM_X, 2147483647),
	A(MAX_GRID_DIM_Y, 65535),
	A(MAX_GRID_DIM_Z, 65535),
	A(MAX_SHARED_MEMORY_PER_BLOCK, HB_SMEM_BLOCK),
	A(TOTAL_CONSTANT_MEMORY, 65536),
	A(WARP_SIZE, 32),
	A(MAX_PITCH, 2147483647),
	A(MAX_REGISTERS_PER_BLOCK, 65536),
	A(CLOCK_RATE, 1980000),
	A(TEXTURE_ALIGNMENT, 512),
	A(GPU_OVERLAP, 1),
	A(MULTIPROCESSOR_COUNT, 132),
	A(KERNEL_EXEC_TIMEOUT, 0),
	A(INTEGRATED, 0),
	A(CAN_MAP_HOST_MEMORY, 1),
	A(COMPUTE_MODE, CU_COMPUTEMODE_DEFAULT),
	A(MAXIMUM_TEXTURE1D_WIDTH, 131072),
	A(MAXIMUM_TEXTURE2D_WIDTH, 131072),
	A(MAXIMUM_TEXTURE2D_HEIGHT, 65536),
	A(MAXIMUM_TEXTURE3D_WIDTH, 16384),
	A(MAXIMUM_TEXTURE3D_HEIGHT, 16384),
	A(MAXIMUM_TEXTURE3D_DEPTH, 16384),
	A(MAXIMUM_TEXTURE2D_LAYERED_WIDTH, 32768),
	A(MAXIMUM_TEXTURE2D_LAYERED_HEIGHT, 32768),
	A(MAXIMUM_TEXTURE2D_LAYERED_LAYERS, 2048),
	A(SURFACE_ALIGNMENT, 512),
	A(CONCURRENT_KERNELS, 1),
	A(ECC_ENABLED, 1),
	A(PCI_BUS_ID, 0x18),
	A(PCI_DEVICE_ID, 0),
	A(TCC_DRIVER, 0),
	A(MEMORY_CLOCK_RATE, 2619000),
	A(GLOBAL_MEMORY_BUS_WIDTH, 5120),
	A(L2_CACHE_SIZE, 50 << 20),
	A(MAX_THREADS_PER_MULTIPROCESSOR, 2048),
	A(ASYNC_ENGINE_COUNT, 2),
	A(UNIFIED_ADDRESSING, 1),
	A(MAXIMUM_TEXTURE1D_LAYERED_WIDTH, 32768),
	A(MAXIMUM_TEXTURE1D_LAYERED_LAYERS, 2048),
	A(CAN_TEX2D_GATHER, 1),
	A(MAXIMUM_TEXTURE2D_GATHER_WIDTH, 32768),
	A(MAXIMUM_TEXTURE2D_GATHER_HEIGHT, 32768),
	A(MAXIMUM_TEXTURE3D_WIDTH_ALTERNATE, 8192),
	A(MAXIMUM_TEXTURE3D_HEIGHT_ALTERNATE, 8192),
	A(MAXIMUM_TEXTURE3D_DEPTH_ALTERNATE, 32768),
	A(PCI_DOMAIN_ID, 0),
	A(TEXTURE_PITCH_ALIGNMENT, 32),
	A(MAXIMUM_TEXTURECUBEMAP_WIDTH, 32768),
	A(MAXIMUM_TEXTURECUBEMAP_LAYERED_WIDTH, 32768),
	A(MAXIMUM_TEXTURECUBEMAP_LAYERED_LAYERS, 2046),
	A(MAXIMUM_SURFACE1D_WIDTH, 32768),
	A(MAXIMUM_SURFACE2D_WIDTH, 131072),
	A(MAXIMUM_SURFACE2D_HEIGHT, 65536),
	A(MAXIMUM_SURFACE3D_WIDTH, 16384),
	A(MAXIMUM_SURFACE3D_HEIGHT, 16384),
	A(MAXIMUM_SURFACE3D_DEPTH, 16384),
	A(MAXIMUM_SURFACE1D_LAYERED_WIDTH, 32768),
	A(MAXIMUM_SURFACE1D_LAYERED_LAYERS, 2048),
	A(MAXIMUM_SURFACE2D_LAYERED_WIDTH, 32768),
	A(MAXIMUM_SURFACE2D_LAYERED_HEIGHT, 32768),
	A(MAXIMUM_SURFACE2D_LAYERED_LAYERS, 2048),
	A(MAXIMUM_SURFACECUBEMAP_WIDTH, 32768),
	A(MAXIMUM_SURFACECUBEMAP_LAYERED_WIDTH, 32768),
	A(MAXIMUM_SURFACECUBEMAP_LAYERED_LAYERS, 2046),
	A(MAXIMUM_TEXTURE1D_LINEAR_WIDTH, 268435456),
	A(MAXIMUM_TEXTURE2D_LINEAR_WIDTH, 131072),
	A(MAXIMUM_TEXTURE2D_LINEAR_HEIGHT, 65000),
	A(MAXIMUM_TEXTURE2D_LINEAR_PITCH, 2097120),
	A(MAXIMUM_TEXTURE2D_MIPMAPPED_WIDTH, 32768),
	A(MAXIMUM_TEXTURE2D_MIPMAPPED_HEIGHT, 32768),
	A(COMPUTE_CAPABILITY_MAJOR, 9),
	A(COMPUTE_CAPABILITY_MINOR, 0),
	A(MAXIMUM_TEXTURE1D_MIPMAPPED_WIDTH, 32768),
	A(STREAM_PRIORITIES_SUPPORTED, 1),
	A(GLOBAL_L1_CACHE_SUPPORTED, 1),
	A(LOCAL_L1_CACHE_SUPPORTED, 1),
	A(MAX_SHARED_MEMORY_PER_MULTIPROCESSOR, HB_SMEM_SM),
	A(MAX_REGISTERS_PER_MULTIPROCESSOR, 65536),
	A(MANAGED_MEMORY, 1),
	A(MULTI_GPU_BOARD, 0),
	A(MULTI_GPU_BOARD_GROUP_ID, 0),
	A(HOST_NATIVE_ATOMIC_SUPPORTED, 0),
	A(SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO, 2),
	A(PAGEABLE_MEMORY_ACCESS, 0),
	A(CONCURRENT_MANAGED_ACCESS, 1),
	A(COMPUTE_PREEMPTION_SUPPORTED, 1),
	A(CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM, 1),
	A(CAN_USE_STREAM_MEM_OPS_V1, 0),
	A(CAN_USE_64_BIT_STREAM_MEM_OPS_V1, 0),
	A(CAN_USE_STREAM_WAIT_VALUE_NOR_V1, 0),
	A(COOPERATIVE_LAUNCH, 1),
	A(COOPERATIVE_MULTI_DEVICE_LAUNCH, 0),
	A(MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, HB_SMEM_OPTIN),
	A(CAN_FLUSH_REMOTE_WRITES, 0),
	A(HOST_REGISTER_SUPPORTED, 1),
	A(PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES, 0),
	A(DIRECT_MANAGED_MEM_ACCESS_FROM_HOST, 0),
	A(VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, 1),
	A(HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED, 1),
	A(HANDLE_TYPE_WIN32_HANDLE_SUPPORTED, 0),
	A(HANDLE_TYPE_WIN32_KMT_HANDLE_SUPPORTED, 0),
	A(MAX_BLOCKS_PER_MULTIPROCESSOR, 32),
	A(GENERIC_COMPRESSION_SUPPORTED, 0),
	A(MAX_PERSISTING_L2_CACHE_SIZE, HB_L2_PERSIST_MAX),
	A(MAX_ACCESS_POLICY_WINDOW_SIZE, 134213632),
	A(GPU_DIRECT_RDMA_WITH_CUDA_VMM_SUPPORTED, 0),
	A(RESERVED_SHARED_MEMORY_PER_BLOCK, HB_SMEM_RESERVED),
	A(SPARSE_CUDA_ARRAY_SUPPORTED, 1),
	A(READ_ONLY_HOST_REGISTER_SUPPORTED, 1),
	A(TIMELINE_SEMAPHORE_INTEROP_SUPPORTED, 0),
	A(MEMORY_POOLS_SUPPORTED, 1),
	A(GPU_DIRECT_RDMA_SUPPORTED, 0),
	A(GPU_DIRECT_RDMA_FLUSH_WRITES_OPTIONS, 0),
	A(GPU_DIRECT_RDMA_WRITES_ORDERING, 0),
	A(MEMPOOL_SUPPORTED_HANDLE_TYPES, 0),
	A(CLUSTER_LAUNCH, 1),
	A(DEFERRED_MAPPING_CUDA_ARRAY_SUPPORTED, 1),
	A(CAN_USE_64_BIT_STREAM_MEM_OPS, 1),
	A(CAN_USE_STREAM_WAIT_VALUE_NOR, 1),
	A(DMA_BUF_SUPPORTED, 0),
	A(IPC_EVENT_SUPPORTED, 0),
	A(MEM_SYNC_DOMAIN_COUNT, 4),
	A(TENSOR_MAP_ACCESS_SUPPORTED, 1),
	A(HANDLE_TYPE_FABRIC_SUPPORTED, 0),
	A(UNIFIED_FUNCTION_POINTERS, 0),
	A(NUMA_CONFIG, CU_DEVICE_NUMA_CONFIG_NONE),
	A(NUMA_ID, -1),
	A(MULTICAST_SUPPORTED, 0),
	A(MPS_ENABLED, 0),
	A(HOST_NUMA_ID, -1),
	A(D3D12_CIG_SUPPORTED, 0),
	A(MEM_DECOMPRESS_ALGORITHM_MASK, 0),
	A(MEM_DECOMPRESS_MAXIMUM_LENGTH, 0),
	A(VULKAN_CIG_SUPPORTED, 0),
	A(GPU_PCI_DEVICE_ID, (int)(0x2335u << 16 | 0x10deu)),
	A(GPU_PCI_SUBSYSTEM_ID, (int)(0x18bfu << 16 | 0x10deu)),
	A(HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, 0),
	A(HOST_NUMA_MEMORY_POOLS_SUPPORTED, 0),
	A(HOST_NUMA_MULTINODE_IPC_SUPPORTED, 0),
	A(HOST_MEMORY_POOLS_SUPPORTED, 0),
	A(HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, 0),
	A(HOST_ALLOC_DMA_BUF_SUPPORTED, 0),
	A(ONLY_PARTIAL_HOST_NATIVE_ATOMIC_SUPPORTED, 0),
};
#undef A

static const size_t limit_default[CU_LIMIT_MAX] = {
	[CU_LIMIT_STACK_SIZE] = 1024,
	[CU_LIMIT_PRINTF_FIFO_SIZE] = 1 << 20,
	[CU_LIMIT_MALLOC_HEAP_SIZE] = 8 << 20,
	[CU_LIMIT_DEV_RUNTIME_SYNC_DEPTH] = 2,
	[CU_LIMIT_DEV_RUNTIME_PENDING_LAUNCH_COUNT] = 2048,
	[CU_LIMIT_MAX_L2_FETCH_GRANULARITY] = 64,
	[CU_LIMIT_PERSISTING_L2_CACHE_SIZE] = 0,
};

/* --- objects ------------------------------------------------------------ */

/*
 * Every handle we return is a pointer to one of these, allocated here and
 * entered in a pointer set.  A handle is looked up in the set before it is
 * dereferenced, so a stale or forged handle is an INVALID_HANDLE error and
 * not a use-after-free, whatever the server's own checks do.
 */
enum hb_type {
	T_CTX = 1,
	T_STREAM,
	T_EVENT,
	T_MODULE,
	T_LIBRARY,
	T_FUNC,
};

struct hb_hdr {
	uint32_t type;
};

struct hb_stream {
	struct hb_hdr h;
	unsigned int flags;
	int prio;
	uint64_t busy_until; /* CLOCK_MONOTONIC ns */
};

struct hb_event {
	struct hb_hdr h;
	unsigned int flags;
	int recorded;
	uint64_t t; /* completes at this time */
};

/* A registry kernel with its parameter layout worked out once. */
struct hb_kdesc {
	const struct mig_host_kernel *k;
	uint32_t off[32];
	uint32_t bytes;
};

struct hb_global {
	char *name;
	uint64_t addr, size, maplen;
};

struct hb_module {
	struct hb_hdr h; /* T_MODULE or T_LIBRARY */
	uint8_t *img;    /* private copy of the image */
	size_t len;
	unsigned int nfuncs;
	struct hb_func **funcs;
	unsigned int nglobals;
	struct hb_global *globals;
};

struct hb_func {
	struct hb_hdr h;
	struct hb_module *mod;
	const struct hb_kdesc *kd;
	int max_dyn_smem;
	int carveout;
	int cluster[3];
	int nonportable;
	int sched;
};

/*
 * A physical allocation (cuMemCreate).  Its handle is 1 + its slot: like
 * the driver's (addresses of its heap objects), a handle's value comes
 * back for a later allocation once its allocation is gone, the slot freed
 * last first.
 */
struct hb_mem {
	int fd;          /* -1: slot free */
	uint64_t freed;  /* when the slot was freed (hb.mem_frees) */
	uint64_t size;
	uint32_t refs;   /* 1 until released, +1 per mapping */
	int released;
};

/* A mapped device range: a cuMemMap, or a module global (mem == NONE). */
#define HB_NO_MEM UINT32_MAX
struct hb_map {
	uint64_t addr, size;
	uint32_t mem;
	int prot;
};

struct hb_range {
	uint64_t addr, size;
};

/* A host range: registered (cuMemHostRegister) or ours (cuMemHostAlloc). */
struct hb_hostrange {
	uint64_t addr, size;
	int alloc;
};

static struct hb {
	pthread_mutex_t lock;
	int opened;
	int inited;
	int ctx_refs;
	CUresult sticky;
	size_t limit[CU_LIMIT_MAX];
	uint64_t total_mem, phys_used;

	struct hb_kdesc *reg;
	unsigned int nreg;

	/* Pointer set of live handles: open addressing, power-of-2 size. */
	void **set;
	size_t set_cap, set_used, set_tomb;

	struct hb_hdr ctx;
	struct hb_stream legacy, ptds;
	struct hb_stream **streams;
	unsigned int nstreams, cap_streams;
	uint64_t dead_blocking_until;

	struct hb_range *resv;
	unsigned int nresv, cap_resv;
	struct hb_map *maps; /* sorted by addr, never overlapping */
	unsigned int nmaps, cap_maps;
	struct hb_mem *mems;
	unsigned int nmems, cap_mems;
	uint64_t mem_frees;     /* slots freed so far (hb_mem.freed) */
	uint64_t creates_left;  /* cuMemCreate calls that may succeed
				   (MIG_HOST_MEM_CREATES; test faults) */
	struct hb_hostrange *host;
	unsigned int nhost, cap_host;

	int no_vm_readv;
} hb = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static void hb_lock(void)
{
	pthread_mutex_lock(&hb.lock);
}

static void hb_unlock(void)
{
	pthread_mutex_unlock(&hb.lock);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* Make room for one more element in a growable array. */
static int grow(void *pv, unsigned int *cap, unsigned int n, size_t esz)
{
	void **v = pv;
	unsigned int c;
	void *nv;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 16;
	nv = realloc(*v, (size_t)c * esz);
	if (!nv)
		return -1;
	*v = nv;
	*cap = c;
	return 0;
}

/* --- the handle set ----------------------------------------------------- */

#define SET_TOMB ((void *)1)

static size_t set_hash(const void *p)
{
	uint64_t x = (uint64_t)(uintptr_t)p;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (size_t)x;
}

static int set_rehash(size_t cap)
{
	void **old = hb.set, **nv;
	size_t ocap = hb.set_cap, i;

	nv = calloc(cap, sizeof(*nv));
	if (!nv)
		return -1;
	hb.set = nv;
	hb.set_cap = cap;
	hb.set_used = 0;
	hb.set_tomb = 0;
	for (i = 0; i < ocap; i++) {
		size_t j;

		if (!old[i] || old[i] == SET_TOMB)
			continue;
		for (j = set_hash(old[i]) & (cap - 1); nv[j];
		     j = (j + 1) & (cap - 1))
			;
		nv[j] = old[i];
		hb.set_used++;
	}
	free(old);
	return 0;
}

static int set_add(void *p)
{
	size_t j;

	if ((hb.set_used + hb.set_tomb + 1) * 2 > hb.set_cap &&
	    set_rehash(hb.set_cap ? hb.set_cap * 2 : 256))
		return -1;
	for (j = set_hash(p) & (hb.set_cap - 1);
	     hb.set[j] && hb.set[j] != SET_TOMB;
	     j = (j + 1) & (hb.set_cap - 1))
		;
	if (hb.set[j] == SET_TOMB)
		hb.set_tomb--;
	hb.set[j] = p;
	hb.set_used++;
	return 0;
}

static void **set_slot(const void *p)
{
	size_t j;

	if (!hb.set_cap || !p || p == SET_TOMB)
		return NULL;
	for (j = set_hash(p) & (hb.set_cap - 1); hb.set[j];
	     j = (j + 1) & (hb.set_cap - 1))
		if (hb.set[j] == p)
			return &hb.set[j];
	return NULL;
}

static void set_del(void *p)
{
	void **s = set_slot(p);

	if (s) {
		*s = SET_TOMB;
		hb.set_used--;
		hb.set_tomb++;
	}
}

static void *obj_get(const void *p, uint32_t type)
{
	if (!set_slot(p))
		return NULL;
	if (((const struct hb_hdr *)p)->type != type)
		return NULL;
	return (void *)p;
}

/*
 * The gate of every call that uses the context.  A poisoned context
 * answers its sticky error before anything else, as the real driver does.
 */
static CUresult ctx_check(void)
{
	if (!hb.inited)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (!hb.ctx_refs)
		return CUDA_ERROR_INVALID_CONTEXT;
	return hb.sticky;
}

/* --- streams and time --------------------------------------------------- */

static struct hb_stream *stream_get(CUstream s)
{
	uintptr_t v = (uintptr_t)s;

	if (v == 0 || v == 1)
		return &hb.legacy;
	if (v == 2)
		return &hb.ptds;
	return obj_get(s, T_STREAM);
}

static int stream_blocking(const struct hb_stream *s)
{
	return !(s->flags & CU_STREAM_NON_BLOCKING);
}

/*
 * When may new work on @s start?  After the stream's own work, and: for the
 * legacy stream, after all work in every blocking stream (including the
 * per-thread stream, and blocking streams destroyed with work pending); for
 * a blocking stream, after the legacy stream's work.  That is the legacy
 * stream's two-way implicit synchronization.
 */
static uint64_t stream_dep(const struct hb_stream *s)
{
	uint64_t t = s->busy_until;
	unsigned int i;

	if (s == &hb.legacy) {
		t = max64(t, hb.dead_blocking_until);
		t = max64(t, hb.ptds.busy_until);
		for (i = 0; i < hb.nstreams; i++)
			if (stream_blocking(hb.streams[i]))
				t = max64(t, hb.streams[i]->busy_until);
	} else if (stream_blocking(s)) {
		t = max64(t, hb.legacy.busy_until);
	}
	return t;
}

/*
 * Enqueue work lasting @dur ns on @s.  Its effects have already happened;
 * only the stream's notion of when it will be idle moves.
 */
static void stream_submit(struct hb_stream *s, uint64_t dur)
{
	uint64_t start = stream_dep(s);

	if (dur)
		s->busy_until = max64(start, now_ns()) + dur;
	else
		s->busy_until = start;
}

/* --- device address checks ---------------------------------------------- */

/* Index of the last map starting at or below @p, or -1. */
static int map_floor(uint64_t p)
{
	unsigned int lo = 0, hi = hb.nmaps;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (hb.maps[mid].addr <= p)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (int)lo - 1;
}

/*
 * Is [p, p + n) device memory accessible with @prot?  It may span
 * back-to-back mappings, as it may on a GPU.  This is what stands between a
 * client's device pointer and a fault in the server.
 */
static int dev_ok(uint64_t p, uint64_t n, int prot)
{
	uint64_t end;
	int i;

	if (!n)
		return 1;
	if (__builtin_add_overflow(p, n, &end))
		return 0;
	i = map_floor(p);
	if (i < 0)
		return 0;
	for (; (unsigned int)i < hb.nmaps; i++) {
		const struct hb_map *m = &hb.maps[i];

		if (p < m->addr || p >= m->addr + m->size)
			return 0;
		if ((m->prot & prot) != prot)
			return 0;
		if (end <= m->addr + m->size)
			return 1;
		p = m->addr + m->size;
	}
	return 0;
}

/* Is [p, p + n) inside registered or allocated host memory? */
static int host_ok(uint64_t p, uint64_t n)
{
	unsigned int i;
	uint64_t end;

	if (__builtin_add_overflow(p, n, &end))
		return 0;
	for (i = 0; i < hb.nhost; i++)
		if (p >= hb.host[i].addr &&
		    end <= hb.host[i].addr + hb.host[i].size)
			return 1;
	return 0;
}

static int map_insert(const struct hb_map *m)
{
	int i;

	if (grow(&hb.maps, &hb.cap_maps, hb.nmaps, sizeof(*m)))
		return -1;
	i = map_floor(m->addr) + 1;
	memmove(&hb.maps[i + 1], &hb.maps[i],
		(hb.nmaps - (unsigned int)i) * sizeof(*m));
	hb.maps[i] = *m;
	hb.nmaps++;
	return 0;
}

static void map_remove(int i)
{
	memmove(&hb.maps[i], &hb.maps[i + 1],
		(hb.nmaps - (unsigned int)i - 1) * sizeof(hb.maps[0]));
	hb.nmaps--;
}

/* Does [p, p + n) overlap any map? */
static int map_overlaps(uint64_t p, uint64_t n)
{
	int i = map_floor(p + n - 1);

	return i >= 0 && hb.maps[i].addr + hb.maps[i].size > p;
}

/* --- physical allocations ----------------------------------------------- */

static struct hb_mem *mem_get(CUmemGenericAllocationHandle h)
{
	uint64_t idx = h;
	struct hb_mem *m;

	if (!idx || idx > hb.nmems)
		return NULL;
	m = &hb.mems[idx - 1];
	if (m->fd < 0)
		return NULL;
	return m;
}

static void mem_unref(struct hb_mem *m)
{
	if (--m->refs)
		return;
	close(m->fd);
	m->fd = -1;
	m->freed = ++hb.mem_frees;
	hb.phys_used -= m->size;
}

/* Put a PROT_NONE reservation back over [p, p + n). */
static void reserve_again(uint64_t p, uint64_t n)
{
	mmap((void *)(uintptr_t)p, n, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
}

/* Tear down map @i: the range goes back to being reserved or unmapped. */
static void map_drop(int i)
{
	struct hb_map m = hb.maps[i];

	map_remove(i);
	if (m.mem == HB_NO_MEM) {
		munmap((void *)(uintptr_t)m.addr, m.size);
		return;
	}
	reserve_again(m.addr, m.size);
	mem_unref(&hb.mems[m.mem]);
}

/* --- safe reading of images --------------------------------------------- */

/*
 * Copy up to @n bytes at @src, stopping at the first unreadable page.
 * Module images are found by pointer alone, and their headers say how long
 * they are; reading through process_vm_readv turns a lie about either into
 * a short read instead of a SIGSEGV.  Where the syscall is not allowed we
 * fall back to trusting the pointer.
 */
static size_t safe_read(void *dst, const void *src, size_t n)
{
	size_t done = 0;

	while (done < n) {
		uintptr_t a = (uintptr_t)src + done;
		size_t chunk = 4096 - (a & 4095);
		struct iovec l, r;
		ssize_t got;

		if (chunk > n - done)
			chunk = n - done;
		if (hb.no_vm_readv) {
			memcpy((uint8_t *)dst + done, (const void *)a,
			       n - done);
			return n;
		}
		l.iov_base = (uint8_t *)dst + done;
		l.iov_len = n - done;
		r.iov_base = (void *)a;
		r.iov_len = n - done;
		got = process_vm_readv(getpid(), &l, 1, &r, 1, 0);
		if (got < 0 && (errno == ENOSYS || errno == EPERM)) {
			hb.no_vm_readv = 1;
			continue;
		}
		if (got <= 0) {
			/* Retry a page at a time to find the exact end. */
			l.iov_len = r.iov_len = chunk;
			got = process_vm_readv(getpid(), &l, 1, &r, 1, 0);
			if (got <= 0)
				break;
		}
		done += (size_t)got;
	}
	return done;
}

/* --- module images ------------------------------------------------------ */

#define FATBIN_MAGIC 0xba55ed50u
#define FATBIN_WRAPPER_MAGIC 0x466243b1u
#define FATBIN_KIND_PTX 1
#define FATBIN_KIND_ELF 2
/*
 * Entry flags seen in nvcc 13.0 output: 0x2000 marks an LZ4-compressed
 * payload (--compress-mode=speed), 0x8000 a ZSTD-compressed one (the
 * default for PTX, and for SASS with --compress-mode=size).  A compressed
 * entry also has its uncompressed size at offset 56 of its header.
 */
#define FATBIN_FLAGS_COMPRESSED 0xa000u

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* Length of the ELF image at @src from its headers, or 0. */
static size_t elf_len(const void *src)
{
	Elf64_Ehdr eh;
	size_t len, i, shbytes;
	Elf64_Shdr *sh;

	if (safe_read(&eh, src, sizeof(eh)) != sizeof(eh) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64)
		return 0;
	len = sizeof(eh);
	if (eh.e_phnum && eh.e_phentsize == sizeof(Elf64_Phdr))
		len = max64(len, eh.e_phoff + (uint64_t)eh.e_phnum *
					    sizeof(Elf64_Phdr));
	if (!eh.e_shnum || eh.e_shentsize != sizeof(Elf64_Shdr) ||
	    eh.e_shoff > HB_MAX_IMAGE)
		return len <= HB_MAX_IMAGE ? len : 0;
	shbytes = (size_t)eh.e_shnum * sizeof(*sh);
	len = max64(len, eh.e_shoff + shbytes);
	sh = malloc(shbytes);
	if (!sh)
		return 0;
	if (safe_read(sh, (const uint8_t *)src + eh.e_shoff, shbytes) !=
	    shbytes) {
		free(sh);
		return 0;
	}
	for (i = 0; i < eh.e_shnum; i++) {
		if (sh[i].sh_type == SHT_NOBITS ||
		    sh[i].sh_offset > HB_MAX_IMAGE ||
		    sh[i].sh_size > HB_MAX_IMAGE)
			continue;
		len = max64(len, sh[i].sh_offset + sh[i].sh_size);
	}
	free(sh);
	return len <= HB_MAX_IMAGE ? len : 0;
}

/* Length of NUL-terminated text at @src, counting the NUL, or 0. */
static size_t text_len(const void *src)
{
	uint8_t buf[4096];
	size_t total = 0;

	while (total < HB_MAX_IMAGE) {
		const uint8_t *p = (const uint8_t *)src + total;
		size_t want = 4096 - ((uintptr_t)p & 4095);
		size_t got = safe_read(buf, p, want);
		uint8_t *nul = memchr(buf, 0, got);

		if (nul)
			return total + (size_t)(nul - buf) + 1;
		if (got < want)
			return 0;
		total += got;
	}
	return 0;
}

/*
 * Find the image at @image and copy it.  Accepted: a cubin (ELF), a fatbin,
 * a fatbin wrapper (the struct nvcc emits around a fatbin: magic, version,
 * pointer to the fatbin), and PTX text.
 */
static CUresult image_copy(const void *image, uint8_t **out, size_t *outlen)
{
	uint8_t head[24];
	size_t got, len;
	uint8_t *img;

	if (!image)
		return CUDA_ERROR_INVALID_VALUE;
	got = safe_read(head, image, sizeof(head));
	if (got >= 16 && rd32(head) == FATBIN_WRAPPER_MAGIC) {
		image = (const void *)(uintptr_t)rd64(head + 8);
		got = image ? safe_read(head, image, 16) : 0;
		if (got < 16 || rd32(head) != FATBIN_MAGIC)
			return CUDA_ERROR_INVALID_IMAGE;
	}
	if (got >= 16 && rd32(head) == FATBIN_MAGIC) {
		uint16_t hs;

		memcpy(&hs, head + 6, 2);
		len = (size_t)hs + rd64(head + 8);
		if (hs < 16 || rd64(head + 8) > HB_MAX_IMAGE)
			return CUDA_ERROR_INVALID_IMAGE;
	} else if (got >= 4 && !memcmp(head, ELFMAG, SELFMAG)) {
		len = elf_len(image);
	} else if (got >= 1) {
		len = text_len(image);
	} else {
		return CUDA_ERROR_INVALID_IMAGE;
	}
	/* Nothing valid is shorter: the checks below read 16 bytes. */
	if (len < 16)
		return CUDA_ERROR_INVALID_IMAGE;
	img = malloc(len);
	if (!img)
		return CUDA_ERROR_OUT_OF_MEMORY;
	if (safe_read(img, image, len) != len) {
		free(img);
		return CUDA_ERROR_INVALID_IMAGE;
	}
	if (rd32(img) != FATBIN_MAGIC && memcmp(img, ELFMAG, SELFMAG) &&
	    (!memmem(img, len, ".version", 8) ||
	     !memmem(img, len, ".target", 7))) {
		/* Not PTX either: every PTX file has both directives. */
		free(img);
		return CUDA_ERROR_INVALID_IMAGE;
	}
	*out = img;
	*outlen = len;
	return CUDA_SUCCESS;
}

/*
 * Walk the entries of a fatbin.  Returns the number of entries whose
 * payload is readable as is, and in @elf and @elflen the first
 * uncompressed cubin (if any).
 */
static unsigned int fatbin_scan(const uint8_t *img, size_t len,
				const uint8_t **elf, size_t *elflen)
{
	uint16_t hs;
	size_t off, end;
	unsigned int plain = 0;

	*elf = NULL;
	*elflen = 0;
	memcpy(&hs, img + 6, 2);
	end = (size_t)hs + rd64(img + 8);
	if (end > len)
		end = len;
	for (off = hs; off + 16 <= end;) {
		uint16_t kind;
		uint32_t ehs = rd32(img + off + 4), flags = 0;
		uint64_t size = rd64(img + off + 8), unc = 0;
		int compressed;

		memcpy(&kind, img + off, 2);
		if (ehs < 16 || size > end || off + ehs > end - size)
			break;
		if (ehs >= 48)
			flags = rd32(img + off + 40);
		if (ehs >= 64)
			unc = rd64(img + off + 56);
		compressed = (flags & FATBIN_FLAGS_COMPRESSED) || unc;
		if (!compressed &&
		    (kind == FATBIN_KIND_PTX || kind == FATBIN_KIND_ELF)) {
			plain++;
			if (kind == FATBIN_KIND_ELF && !*elf && size >= 4 &&
			    !memcmp(img + off + ehs, ELFMAG, SELFMAG)) {
				*elf = img + off + ehs;
				*elflen = size;
			}
		}
		off += ehs + size;
	}
	return plain;
}

static int ident_char(uint8_t c)
{
	return isalnum(c) || c == '_' || c == '$';
}

/*
 * Does @name occur in the image as a whole word?  That covers a cubin's
 * string table (NUL-terminated, or after ".text." in a section name) and
 * PTX text (".entry name(").
 */
static int name_in(const uint8_t *b, size_t n, const char *name)
{
	size_t l = strlen(name);
	const uint8_t *p = b, *end = b + n;

	if (!l)
		return 0;
	while (p < end && (p = memmem(p, (size_t)(end - p), name, l))) {
		if ((p == b || !ident_char(p[-1])) &&
		    (p + l == end || !ident_char(p[l])))
			return 1;
		p++;
	}
	return 0;
}

/* The cubin inside a module, for symbol lookups; NULL if none is plain. */
static const uint8_t *module_elf(const struct hb_module *m, size_t *len)
{
	const uint8_t *elf;

	if (!memcmp(m->img, ELFMAG, SELFMAG)) {
		*len = m->len;
		return m->img;
	}
	if (rd32(m->img) == FATBIN_MAGIC) {
		fatbin_scan(m->img, m->len, &elf, len);
		return elf;
	}
	return NULL;
}

/*
 * Find data object @name in a cubin: its size and, when its section has
 * contents (a __constant__ or initialized __device__ variable), its
 * initial bytes.  Every offset is checked against @len: the image came
 * from a client.
 */
static int elf_object(const uint8_t *e, size_t len, const char *name,
		      uint64_t *size, const uint8_t **init)
{
	Elf64_Ehdr eh;
	Elf64_Shdr sh, st, ss;
	size_t i, j, nl = strlen(name);

	if (len < sizeof(eh))
		return -1;
	memcpy(&eh, e, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_shentsize != sizeof(sh) || eh.e_shoff > len ||
	    (uint64_t)eh.e_shnum * sizeof(sh) > len - eh.e_shoff)
		return -1;
	for (i = 0; i < eh.e_shnum; i++) {
		memcpy(&sh, e + eh.e_shoff + i * sizeof(sh), sizeof(sh));
		if (sh.sh_type != SHT_SYMTAB || sh.sh_link >= eh.e_shnum ||
		    sh.sh_entsize != sizeof(Elf64_Sym) || sh.sh_offset > len ||
		    sh.sh_size > len - sh.sh_offset)
			continue;
		memcpy(&ss, e + eh.e_shoff + sh.sh_link * sizeof(ss),
		       sizeof(ss));
		if (ss.sh_offset > len || ss.sh_size > len - ss.sh_offset)
			continue;
		for (j = 0; j < sh.sh_size / sizeof(Elf64_Sym); j++) {
			Elf64_Sym sym;

			memcpy(&sym, e + sh.sh_offset + j * sizeof(sym),
			       sizeof(sym));
			if (ELF64_ST_TYPE(sym.st_info) != STT_OBJECT ||
			    sym.st_name >= ss.sh_size ||
			    ss.sh_size - sym.st_name <= nl ||
			    memcmp(e + ss.sh_offset + sym.st_name, name,
				   nl + 1))
				continue;
			if (sym.st_shndx == SHN_UNDEF ||
			    sym.st_shndx >= eh.e_shnum)
				return -1;
			memcpy(&st, e + eh.e_shoff + sym.st_shndx * sizeof(st),
			       sizeof(st));
			*size = sym.st_size;
			*init = NULL;
			if (st.sh_type != SHT_NOBITS && st.sh_offset <= len &&
			    st.sh_size <= len - st.sh_offset &&
			    sym.st_value <= st.sh_size &&
			    sym.st_size <= st.sh_size - sym.st_value)
				*init = e + st.sh_offset + sym.st_value;
			return 0;
		}
	}
	return -1;
}

static void module_free(struct hb_module *m)
{
	unsigned int i;

	for (i = 0; i < m->nfuncs; i++) {
		set_del(m->funcs[i]);
		free(m->funcs[i]);
	}
	for (i = 0; i < m->nglobals; i++) {
		int k = map_floor(m->globals[i].addr);

		if (k >= 0 && hb.maps[k].addr == m->globals[i].addr)
			map_drop(k);
		free(m->globals[i].name);
	}
	set_del(m);
	free(m->funcs);
	free(m->globals);
	free(m->img);
	free(m);
}

/*
 * Load an image as a module or library.  A module knows a registry kernel
 * when the kernel's name is in the image.  nvcc 13.0 compresses a fatbin's
 * PTX by default (and its cubins too with --compress-mode=size); a fatbin
 * with no uncompressed entry cannot be searched without a decompressor,
 * so such a module knows every registry kernel.
 */
static CUresult module_load(const void *image, uint32_t type,
			    struct hb_module **out)
{
	struct hb_module *m;
	int know_all = 0;
	unsigned int i;
	CUresult r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return CUDA_ERROR_OUT_OF_MEMORY;
	m->h.type = type;
	r = image_copy(image, &m->img, &m->len);
	if (r) {
		free(m);
		return r;
	}
	if (rd32(m->img) == FATBIN_MAGIC) {
		const uint8_t *elf;
		size_t elflen;

		know_all = !fatbin_scan(m->img, m->len, &elf, &elflen);
	}
	m->funcs = calloc(hb.nreg ? hb.nreg : 1, sizeof(*m->funcs));
	if (!m->funcs || set_add(m))
		goto oom;
	for (i = 0; i < hb.nreg; i++) {
		struct hb_func *f;

		if (!know_all && !name_in(m->img, m->len, hb.reg[i].k->name))
			continue;
		f = calloc(1, sizeof(*f));
		if (!f)
			goto oom;
		f->h.type = T_FUNC;
		f->mod = m;
		f->kd = &hb.reg[i];
		f->max_dyn_smem = HB_SMEM_BLOCK;
		f->carveout = -1;
		if (set_add(f)) {
			free(f);
			goto oom;
		}
		m->funcs[m->nfuncs++] = f;
	}
	*out = m;
	return CUDA_SUCCESS;
oom:
	module_free(m);
	return CUDA_ERROR_OUT_OF_MEMORY;
}

static CUresult module_function(struct hb_module *m, const char *name,
				struct hb_func **out)
{
	unsigned int i;

	if (!name)
		return CUDA_ERROR_INVALID_VALUE;
	for (i = 0; i < m->nfuncs; i++) {
		if (!strcmp(m->funcs[i]->kd->k->name, name)) {
			*out = m->funcs[i];
			return CUDA_SUCCESS;
		}
	}
	return CUDA_ERROR_NOT_FOUND;
}

/*
 * A module global, found in the module's cubin symbol table and backed on
 * first use by an anonymous mapping of its own (outside any reservation:
 * the server's VA range is the server's to place).  PTX-only and
 * compressed images have no readable symbol table: NOT_FOUND.
 */
static CUresult module_global(struct hb_module *m, const char *name,
			      CUdeviceptr *dptr, size_t *bytes)
{
	const uint8_t *elf, *init;
	struct hb_global *g;
	struct hb_map map;
	uint64_t size;
	size_t elflen, maplen;
	unsigned int i;
	void *p;

	if (!name)
		return CUDA_ERROR_INVALID_VALUE;
	for (i = 0; i < m->nglobals; i++) {
		if (!strcmp(m->globals[i].name, name)) {
			g = &m->globals[i];
			goto found;
		}
	}
	elf = module_elf(m, &elflen);
	if (!elf || elf_object(elf, elflen, name, &size, &init))
		return CUDA_ERROR_NOT_FOUND;
	if (size > HB_MAX_IMAGE)
		return CUDA_ERROR_INVALID_IMAGE;
	maplen = (size + 4095) & ~(size_t)4095;
	if (!maplen)
		maplen = 4096;
	g = realloc(m->globals, (m->nglobals + 1) * sizeof(*g));
	if (!g)
		return CUDA_ERROR_OUT_OF_MEMORY;
	m->globals = g;
	g = &m->globals[m->nglobals];
	g->name = strdup(name);
	if (!g->name)
		return CUDA_ERROR_OUT_OF_MEMORY;
	p = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		free(g->name);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (init)
		memcpy(p, init, size);
	map.addr = (uintptr_t)p;
	map.size = maplen;
	map.mem = HB_NO_MEM;
	map.prot = PROT_READ | PROT_WRITE;
	if (map_insert(&map)) {
		munmap(p, maplen);
		free(g->name);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	g->addr = (uintptr_t)p;
	g->size = size;
	g->maplen = maplen;
	m->nglobals++;
found:
	if (dptr)
		*dptr = g->addr;
	if (bytes)
		*bytes = g->size;
	return CUDA_SUCCESS;
}

/* --- kernel launch ------------------------------------------------------ */

static __thread sigjmp_buf *kern_jmp;
static struct sigaction old_segv, old_bus;

/*
 * A fault while a host kernel runs is the kernel touching memory that is
 * not device memory, which a GPU reports as an illegal address.  A fault
 * anywhere else is not ours: put the previous action back and let the
 * faulting instruction run again into it.
 */
static void kern_fault(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	if (kern_jmp)
		siglongjmp(*kern_jmp, sig);
	sigaction(sig, sig == SIGSEGV ? &old_segv : &old_bus, NULL);
}

static int run_guarded(const struct mig_host_kernel *k,
		       const struct mig_host_launch *l, void **argv)
{
	struct sigaction sa;
	sigjmp_buf jb;
	volatile int ret = CUDA_ERROR_ILLEGAL_ADDRESS;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = kern_fault;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	/* Launches are serialized by hb.lock, so one save slot suffices. */
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
	if (!sigsetjmp(jb, 1)) {
		kern_jmp = &jb;
		ret = k->run(l, argv);
	}
	kern_jmp = NULL;
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	return ret;
}

static CUresult launch(struct hb_func *f, const unsigned int grid[3],
		       const unsigned int block[3], unsigned int smem,
		       CUstream hs, void **params, void **extra)
{
	_Alignas(16) uint8_t buf[HB_MAX_PARAM_BYTES + 4];
	const struct hb_kdesc *kd = f->kd;
	const struct mig_host_kernel *k = kd->k;
	struct mig_host_launch l;
	void *argv[32];
	struct hb_stream *s;
	unsigned int i;
	int ret;

	s = stream_get(hs);
	if (!s)
		return CUDA_ERROR_INVALID_HANDLE;
	if (!grid[0] || !grid[1] || !grid[2] || grid[0] > INT_MAX ||
	    grid[1] > 65535 || grid[2] > 65535)
		return CUDA_ERROR_INVALID_VALUE;
	if (!block[0] || !block[1] || !block[2] || block[0] > 1024 ||
	    block[1] > 1024 || block[2] > 64 ||
	    (uint64_t)block[0] * block[1] * block[2] > 1024)
		return CUDA_ERROR_INVALID_VALUE;
	if (smem > (unsigned int)f->max_dyn_smem)
		return CUDA_ERROR_INVALID_VALUE;
	if (params && extra)
		return CUDA_ERROR_INVALID_VALUE;

	memset(buf, 0, kd->bytes);
	if (extra) {
		const void *pb = NULL;
		size_t psize = 0;

		for (i = 0; i < 64 && extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
			if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER)
				pb = extra[i + 1];
			else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE &&
				 extra[i + 1])
				psize = *(const size_t *)extra[i + 1];
			else
				return CUDA_ERROR_INVALID_VALUE;
		}
		if (i >= 64 || (kd->bytes && (!pb || psize < kd->bytes)))
			return CUDA_ERROR_INVALID_VALUE;
		if (kd->bytes)
			memcpy(buf, pb, kd->bytes);
	} else if (k->nparams) {
		if (!params)
			return CUDA_ERROR_INVALID_VALUE;
		for (i = 0; i < k->nparams; i++) {
			if (!params[i])
				return CUDA_ERROR_INVALID_VALUE;
			memcpy(buf + kd->off[i], params[i], k->param_size[i]);
		}
	}
	for (i = 0; i < k->nparams; i++)
		argv[i] = buf + kd->off[i];

	memcpy(l.grid, grid, sizeof(l.grid));
	memcpy(l.block, block, sizeof(l.block));
	l.shared_mem = smem;
	ret = run_guarded(k, &l, argv);
	if (ret) {
		/*
		 * As on a GPU, the launch itself succeeded; the fault shows
		 * up in whatever uses the context next, and stays.
		 */
		hb.sticky = (CUresult)ret;
		stream_submit(s, 0);
		return CUDA_SUCCESS;
	}
	stream_submit(s, (uint64_t)k->busy_us * 1000);
	return CUDA_SUCCESS;
}

/* --- copies and memsets ------------------------------------------------- */

/* Resolve one side of a 2D copy to a host address we may touch. */
static CUresult cp2d_side(CUmemorytype type, const void *host, CUdeviceptr dev,
			  size_t x, size_t y, size_t pitch, size_t w, size_t h,
			  int prot, uint8_t **out)
{
	size_t off, ext;

	if (h > 1 && pitch < w)
		return CUDA_ERROR_INVALID_VALUE;
	if (pitch > (size_t)dev_attr[CU_DEVICE_ATTRIBUTE_MAX_PITCH].val)
		return CUDA_ERROR_INVALID_VALUE;
	if (__builtin_mul_overflow(y, pitch, &off) ||
	    __builtin_add_overflow(off, x, &off) ||
	    __builtin_mul_overflow(h - 1, pitch, &ext) ||
	    __builtin_add_overflow(ext, w, &ext))
		return CUDA_ERROR_INVALID_VALUE;
	switch (type) {
	case CU_MEMORYTYPE_HOST:
		/* Host operands come from the server, which checked them. */
		if (!host)
			return CUDA_ERROR_INVALID_VALUE;
		*out = (uint8_t *)host + off;
		return CUDA_SUCCESS;
	case CU_MEMORYTYPE_DEVICE:
	case CU_MEMORYTYPE_UNIFIED:
		if (__builtin_add_overflow(dev, off, &dev))
			return CUDA_ERROR_INVALID_VALUE;
		/*
		 * A unified address that is not device memory is trusted
		 * only inside host memory the driver was told about.
		 */
		if (!dev_ok(dev, ext, prot) &&
		    (type != CU_MEMORYTYPE_UNIFIED || !host_ok(dev, ext)))
			return CUDA_ERROR_INVALID_VALUE;
		*out = (uint8_t *)(uintptr_t)dev;
		return CUDA_SUCCESS;
	default:
		/* No CUDA arrays in the double. */
		return CUDA_ERROR_INVALID_VALUE;
	}
}

static CUresult memset2d(CUdeviceptr dst, size_t pitch, uint32_t val,
			 unsigned int esz, size_t w, size_t h, CUstream hs)
{
	struct hb_stream *s = stream_get(hs);
	size_t wb, ext, r, c;
	uint8_t pat[4];
	CUresult ret;

	ret = ctx_check();
	if (ret)
		return ret;
	if (!s)
		return CUDA_ERROR_INVALID_HANDLE;
	if (!w || !h)
		goto out;
	if (dst % esz || __builtin_mul_overflow(w, esz, &wb) ||
	    (h > 1 && pitch < wb) ||
	    __builtin_mul_overflow(h - 1, pitch, &ext) ||
	    __builtin_add_overflow(ext, wb, &ext) ||
	    !dev_ok(dst, ext, PROT_READ | PROT_WRITE))
		return CUDA_ERROR_INVALID_VALUE;
	memcpy(pat, &val, 4); /* little-endian: the low bytes come first */
	for (r = 0; r < h; r++) {
		uint8_t *row = (uint8_t *)(uintptr_t)(dst + r * pitch);

		if (esz == 1 || (esz == 2 && pat[0] == pat[1]) ||
		    (esz == 4 && !memcmp(pat, pat + 1, 3))) {
			memset(row, pat[0], wb);
			continue;
		}
		for (c = 0; c < w; c++)
			memcpy(row + c * esz, pat, esz);
	}
out:
	stream_submit(s, 0);
	return CUDA_SUCCESS;
}

/* --- the driver calls --------------------------------------------------- */

static CUresult CUDAAPI h_cuInit(unsigned int flags)
{
	if (flags)
		return CUDA_ERROR_INVALID_VALUE;
	__atomic_store_n(&hb.inited, 1, __ATOMIC_RELEASE);
	return CUDA_SUCCESS;
}

static CUresult CUDAAPI h_cuDriverGetVersion(int *v)
{
	if (!v)
		return CUDA_ERROR_INVALID_VALUE;
	*v = HB_DRIVER_VERSION;
	return CUDA_SUCCESS;
}

/* cuInit happened?  Device queries ask without taking the lock. */
static int inited(void)
{
	return __atomic_load_n(&hb.inited, __ATOMIC_ACQUIRE);
}

/* Device calls: initialized driver, device 0. */
static CUresult dev_check(CUdevice dev)
{
	if (!inited())
		return CUDA_ERROR_NOT_INITIALIZED;
	return dev ? CUDA_ERROR_INVALID_DEVICE : CUDA_SUCCESS;
}

static CUresult CUDAAPI h_cuDeviceGet(CUdevice *dev, int ordinal)
{
	if (!inited())
		return CUDA_ERROR_NOT_INITIALIZED;
	if (!dev)
		return CUDA_ERROR_INVALID_VALUE;
	if (ordinal)
		return CUDA_ERROR_INVALID_DEVICE;
	*dev = 0;
	return CUDA_SUCCESS;
}

static CUresult CUDAAPI h_cuDeviceGetCount(int *count)
{
	if (!inited())
		return CUDA_ERROR_NOT_INITIALIZED;
	if (!count)
		return CUDA_ERROR_INVALID_VALUE;
	*count = 1;
	return CUDA_SUCCESS;
}

static CUresult CUDAAPI h_cuDeviceGetName(char *name, int len, CUdevice dev)
{
	CUresult r = dev_check(dev);

	if (r)
		return r;
	if (!name || len <= 0)
		return CUDA_ERROR_INVALID_VALUE;
	snprintf(name, (size_t)len, "%s", HB_DEVICE_NAME);
	return CUDA_SUCCESS;
}

static CUresult CUDAAPI h_cuDeviceGetUuid(CUuuid *uuid, CUdevice dev)
{
	CUresult r = dev_check(dev);

	if (r)
		return r;
	if (!uuid)
		return CUDA_ERROR_INVALID_VALUE;
	memcpy(uuid->bytes, HB_UUID, sizeof(uuid->bytes));
	return CUDA_SUCCESS;
}

static CUresult CUDAAPI h_cuDeviceTotalMem(size_t *bytes, CUdevice dev)
{
	CUresult r = dev_check(dev);

	if (r)
		return r;
	if (!bytes)
		return CUDA_ERROR_INVALID_VALUE;
	*bytes = hb.total_mem;
	return CUDA_SUCCESS;
}

static CUresult CUDAAPI h_cuDeviceGetAttribute(int *pi, CUdevice_attribute a,
					       CUdevice dev)
{
	CUresult r = dev_check(dev);

	if (r)
		return r;
	if (!pi || (int)a <= 0 || a >= CU_DEVICE_ATTRIBUTE_MAX ||
	    !dev_attr[a].set)
		return CUDA_ERROR_INVALID_VALUE;
	*pi = dev_attr[a].val;
	return CUDA_SUCCESS;
}

static void ctx_reset(void)
{
	memcpy(hb.limit, limit_default, sizeof(hb.limit));
	hb.sticky = CUDA_SUCCESS;
}

static CUresult CUDAAPI h_cuDevicePrimaryCtxRetain(CUcontext *pctx,
						   CUdevice dev)
{
	CUresult r;

	hb_lock();
	r = dev_check(dev);
	if (!r && !pctx)
		r = CUDA_ERROR_INVALID_VALUE;
	if (!r) {
		if (!hb.ctx_refs++)
			ctx_reset();
		*pctx = (CUcontext)(void *)&hb.ctx;
	}
	hb_unlock();
	return r;
}

/*
 * Releasing the last reference destroys the primary context; the next
 * retain makes a fresh one, which is how a program recovers from a sticky
 * error.  Unlike the real driver, streams, events, modules and memory
 * survive: they belong to the server, which frees them itself.
 */
static CUresult CUDAAPI h_cuDevicePrimaryCtxRelease(CUdevice dev)
{
	CUresult r;

	hb_lock();
	r = dev_check(dev);
	if (!r && !hb.ctx_refs)
		r = CUDA_ERROR_INVALID_CONTEXT;
	if (!r && !--hb.ctx_refs)
		ctx_reset();
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuCtxSetCurrent(CUcontext ctx)
{
	CUresult r = CUDA_SUCCESS;

	hb_lock();
	if (!hb.inited)
		r = CUDA_ERROR_NOT_INITIALIZED;
	else if (ctx && (void *)ctx != (void *)&hb.ctx)
		r = CUDA_ERROR_INVALID_CONTEXT;
	else if (ctx && !hb.ctx_refs)
		r = CUDA_ERROR_CONTEXT_IS_DESTROYED;
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuCtxGetLimit(size_t *v, CUlimit limit)
{
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (!r && !v)
		r = CUDA_ERROR_INVALID_VALUE;
	if (!r && (unsigned int)limit >= CU_LIMIT_MAX)
		r = CUDA_ERROR_UNSUPPORTED_LIMIT;
	if (!r)
		*v = hb.limit[limit];
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuCtxSetLimit(CUlimit limit, size_t v)
{
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	switch (limit) {
	case CU_LIMIT_STACK_SIZE:
		v = (v + 15) & ~(size_t)15;
		break;
	case CU_LIMIT_MAX_L2_FETCH_GRANULARITY:
		v = v > 128 ? 128 : v;
		break;
	case CU_LIMIT_PERSISTING_L2_CACHE_SIZE:
		if (v > HB_L2_PERSIST_MAX)
			v = HB_L2_PERSIST_MAX;
		break;
	case CU_LIMIT_PRINTF_FIFO_SIZE:
	case CU_LIMIT_MALLOC_HEAP_SIZE:
	case CU_LIMIT_DEV_RUNTIME_SYNC_DEPTH:
	case CU_LIMIT_DEV_RUNTIME_PENDING_LAUNCH_COUNT:
		break;
	default:
		/* The shared-memory and CIG limits need a CIG context. */
		r = CUDA_ERROR_UNSUPPORTED_LIMIT;
		goto out;
	}
	hb.limit[limit] = v;
out:
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuCtxGetStreamPriorityRange(int *least,
						       int *greatest)
{
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (!r && least)
		*least = HB_PRIO_LEAST;
	if (!r && greatest)
		*greatest = HB_PRIO_GREATEST;
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuMemGetInfo(size_t *free_b, size_t *total)
{
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (!r && (!free_b || !total))
		r = CUDA_ERROR_INVALID_VALUE;
	if (!r) {
		*total = hb.total_mem;
		*free_b = hb.total_mem - hb.phys_used;
	}
	hb_unlock();
	return r;
}

/* --- virtual memory management ------------------------------------------ */

static CUresult CUDAAPI h_cuMemAddressReserve(CUdeviceptr *ptr, size_t size,
					      size_t align, CUdeviceptr addr,
					      unsigned long long flags)
{
	uint8_t *p = MAP_FAILED;
	struct hb_range rg;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	if (!ptr || !size || size % HB_GRAN || flags ||
	    (align & (align - 1)) || size > (1ull << 47)) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	if (align < HB_GRAN)
		align = HB_GRAN;
	if (align > (1ull << 40)) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	if (grow(&hb.resv, &hb.cap_resv, hb.nresv, sizeof(rg))) {
		r = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	/*
	 * The hint matters: the server reserves the range its clients keep
	 * free in their own address spaces.  MAP_FIXED_NOREPLACE takes it
	 * only if nothing is there; an old kernel treats the flag as a mere
	 * hint, hence the address check.
	 */
	if (addr && !(addr % align)) {
		p = mmap((void *)(uintptr_t)addr, size, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
				 MAP_FIXED_NOREPLACE,
			 -1, 0);
		if (p != MAP_FAILED && (uintptr_t)p != addr) {
			munmap(p, size);
			p = MAP_FAILED;
		}
	}
	if (p == MAP_FAILED) {
		uint8_t *q = mmap(NULL, size + align, PROT_NONE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				  -1, 0);
		size_t lead;

		if (q == MAP_FAILED) {
			r = CUDA_ERROR_OUT_OF_MEMORY;
			goto out;
		}
		lead = (align - ((uintptr_t)q & (align - 1))) & (align - 1);
		if (lead)
			munmap(q, lead);
		munmap(q + lead + size, align - lead);
		p = q + lead;
	}
	rg.addr = (uintptr_t)p;
	rg.size = size;
	hb.resv[hb.nresv++] = rg;
	*ptr = rg.addr;
out:
	hb_unlock();
	return r;
}

static int resv_find(uint64_t p, uint64_t n)
{
	unsigned int i;

	for (i = 0; i < hb.nresv; i++)
		if (p >= hb.resv[i].addr && n <= hb.resv[i].size &&
		    p - hb.resv[i].addr <= hb.resv[i].size - n)
			return (int)i;
	return -1;
}

/* Freeing a reservation that still has mappings drops them first. */
static CUresult CUDAAPI h_cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
	CUresult r = CUDA_SUCCESS;
	int i, k;

	hb_lock();
	i = resv_find(ptr, size);
	if (i < 0 || hb.resv[i].addr != ptr || hb.resv[i].size != size) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	while ((k = map_floor(ptr + size - 1)) >= 0 &&
	       hb.maps[k].addr >= ptr)
		map_drop(k);
	munmap((void *)(uintptr_t)ptr, size);
	hb.resv[i] = hb.resv[--hb.nresv];
out:
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuMemGetAllocationGranularity(
	size_t *gran, const CUmemAllocationProp *prop,
	CUmemAllocationGranularity_flags option)
{
	if (!inited())
		return CUDA_ERROR_NOT_INITIALIZED;
	if (!gran || !prop ||
	    (option != CU_MEM_ALLOC_GRANULARITY_MINIMUM &&
	     option != CU_MEM_ALLOC_GRANULARITY_RECOMMENDED))
		return CUDA_ERROR_INVALID_VALUE;
	*gran = HB_GRAN;
	return CUDA_SUCCESS;
}

/*
 * Physical memory is a memfd; the handle is slot + 1, and names the
 * slot's next tenant once this one is gone, as a driver's handle may
 * (struct hb_mem).
 */
static CUresult CUDAAPI h_cuMemCreate(CUmemGenericAllocationHandle *handle,
				      size_t size,
				      const CUmemAllocationProp *prop,
				      unsigned long long flags)
{
	struct hb_mem *m = NULL;
	unsigned int i, j;
	CUresult r;
	int fd;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	if (!handle || !prop || !size || size % HB_GRAN || flags ||
	    prop->type != CU_MEM_ALLOCATION_TYPE_PINNED ||
	    prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE ||
	    prop->location.id != 0 ||
	    (prop->requestedHandleTypes != CU_MEM_HANDLE_TYPE_NONE &&
	     prop->requestedHandleTypes !=
		     CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR)) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	if (size > hb.total_mem - hb.phys_used || !hb.creates_left) {
		r = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	for (i = hb.nmems, j = 0; j < hb.nmems; j++)
		if (hb.mems[j].fd < 0 &&
		    (i == hb.nmems || hb.mems[j].freed > hb.mems[i].freed))
			i = j;
	if (i == hb.nmems) {
		if (hb.nmems == UINT32_MAX - 1 ||
		    grow(&hb.mems, &hb.cap_mems, hb.nmems, sizeof(*m))) {
			r = CUDA_ERROR_OUT_OF_MEMORY;
			goto out;
		}
		hb.mems[hb.nmems].fd = -1;
		hb.nmems++;
	}
	fd = memfd_create("mig-host-devmem", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)size)) {
		if (fd >= 0)
			close(fd);
		r = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	m = &hb.mems[i];
	m->fd = fd;
	m->size = size;
	m->refs = 1;
	m->released = 0;
	hb.phys_used += size;
	hb.creates_left--;
	*handle = i + 1;
out:
	hb_unlock();
	return r;
}

/* The memory goes when the last mapping of it does, as in the driver. */
static CUresult CUDAAPI h_cuMemRelease(CUmemGenericAllocationHandle handle)
{
	struct hb_mem *m;
	CUresult r = CUDA_SUCCESS;

	hb_lock();
	m = mem_get(handle);
	if (!m || m->released) {
		r = CUDA_ERROR_INVALID_VALUE;
	} else {
		m->released = 1;
		mem_unref(m);
	}
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
				   CUmemGenericAllocationHandle handle,
				   unsigned long long flags)
{
	struct hb_map map;
	struct hb_mem *m;
	CUresult r;
	void *p;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	m = mem_get(handle);
	if (!m || m->released || flags || !size || ptr % HB_GRAN ||
	    size % HB_GRAN || size > m->size || offset > m->size - size ||
	    resv_find(ptr, size) < 0 ||
	    map_overlaps(ptr, size)) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	/* As the driver (580): a mapping covers its whole allocation from
	 * offset 0; a part of one is not supported. */
	if (offset || size != m->size) {
		r = CUDA_ERROR_NOT_SUPPORTED;
		goto out;
	}
	if (grow(&hb.maps, &hb.cap_maps, hb.nmaps, sizeof(map))) {
		r = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	/* Mapped but not accessible until cuMemSetAccess, as on a GPU. */
	p = mmap((void *)(uintptr_t)ptr, size, PROT_NONE,
		 MAP_SHARED | MAP_FIXED, m->fd, (off_t)offset);
	if (p == MAP_FAILED) {
		reserve_again(ptr, size);
		r = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	map.addr = ptr;
	map.size = size;
	map.mem = (uint32_t)(m - hb.mems);
	map.prot = PROT_NONE;
	map_insert(&map);
	m->refs++;
out:
	hb_unlock();
	return r;
}

/*
 * Find the maps that tile [ptr, ptr + size) exactly: first index in *first,
 * count returned, 0 if the range is not whole mappings back to back.
 */
static unsigned int maps_tiling(uint64_t ptr, uint64_t size, int *first)
{
	uint64_t at = ptr, end;
	unsigned int n = 0;
	int i;

	if (!size || __builtin_add_overflow(ptr, size, &end))
		return 0;
	i = map_floor(ptr);
	if (i < 0 || hb.maps[i].addr != ptr)
		return 0;
	*first = i;
	for (; (unsigned int)i < hb.nmaps && at < end; i++, n++) {
		if (hb.maps[i].addr != at || hb.maps[i].mem == HB_NO_MEM)
			return 0;
		at += hb.maps[i].size;
	}
	return at == end ? n : 0;
}

static CUresult CUDAAPI h_cuMemUnmap(CUdeviceptr ptr, size_t size)
{
	CUresult r = CUDA_SUCCESS;
	unsigned int n;
	int first;

	hb_lock();
	n = maps_tiling(ptr, size, &first);
	if (!n)
		r = CUDA_ERROR_INVALID_VALUE;
	while (n--)
		map_drop(first);
	hb_unlock();
	return r;
}

/*
 * Access is set on whole mappings (one or more back to back); a range that
 * cuts a mapping is refused rather than split.
 */
static CUresult CUDAAPI h_cuMemSetAccess(CUdeviceptr ptr, size_t size,
					 const CUmemAccessDesc *desc,
					 size_t count)
{
	unsigned int n, i;
	int first, prot = PROT_NONE;
	CUresult r;
	size_t k;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	n = maps_tiling(ptr, size, &first);
	if (!n || !desc || !count) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	for (k = 0; k < count; k++) {
		if (desc[k].location.type != CU_MEM_LOCATION_TYPE_DEVICE ||
		    desc[k].location.id != 0) {
			r = CUDA_ERROR_INVALID_DEVICE;
			goto out;
		}
		switch (desc[k].flags) {
		case CU_MEM_ACCESS_FLAGS_PROT_NONE:
			prot = PROT_NONE;
			break;
		case CU_MEM_ACCESS_FLAGS_PROT_READ:
			prot = PROT_READ;
			break;
		case CU_MEM_ACCESS_FLAGS_PROT_READWRITE:
			prot = PROT_READ | PROT_WRITE;
			break;
		default:
			r = CUDA_ERROR_INVALID_VALUE;
			goto out;
		}
	}
	if (mprotect((void *)(uintptr_t)ptr, size, prot)) {
		r = CUDA_ERROR_UNKNOWN;
		goto out;
	}
	for (i = 0; i < n; i++)
		hb.maps[first + (int)i].prot = prot;
out:
	hb_unlock();
	return r;
}

/* --- host memory -------------------------------------------------------- */

static int host_find(uint64_t p, int alloc)
{
	unsigned int i;

	for (i = 0; i < hb.nhost; i++)
		if (hb.host[i].addr == p && hb.host[i].alloc == alloc)
			return (int)i;
	return -1;
}

static CUresult host_add(uint64_t p, uint64_t n, int alloc)
{
	unsigned int i;

	for (i = 0; i < hb.nhost; i++)
		if (p < hb.host[i].addr + hb.host[i].size &&
		    hb.host[i].addr < p + n)
			return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
	if (grow(&hb.host, &hb.cap_host, hb.nhost, sizeof(hb.host[0])))
		return CUDA_ERROR_OUT_OF_MEMORY;
	hb.host[hb.nhost].addr = p;
	hb.host[hb.nhost].size = n;
	hb.host[hb.nhost].alloc = alloc;
	hb.nhost++;
	return CUDA_SUCCESS;
}

/* Host memory is already "pinned" here: registering only remembers it. */
static CUresult CUDAAPI h_cuMemHostRegister(void *p, size_t size,
					    unsigned int flags)
{
	CUresult r;
	uint64_t end;

	hb_lock();
	r = ctx_check();
	if (!r && (!p || !size || (flags & ~0xfu) ||
		   __builtin_add_overflow((uintptr_t)p, size, &end)))
		r = CUDA_ERROR_INVALID_VALUE;
	if (!r)
		r = host_add((uintptr_t)p, size, 0);
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuMemHostUnregister(void *p)
{
	CUresult r = CUDA_SUCCESS;
	int i;

	hb_lock();
	i = host_find((uintptr_t)p, 0);
	if (i < 0)
		r = CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
	else
		hb.host[i] = hb.host[--hb.nhost];
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuMemHostAlloc(void **pp, size_t size,
					 unsigned int flags)
{
	size_t len = (size + 4095) & ~(size_t)4095;
	CUresult r;
	void *p;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	if (!pp || !size || !len || (flags & ~0x7u)) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		r = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	r = host_add((uintptr_t)p, len, 1);
	if (r) {
		munmap(p, len);
		goto out;
	}
	*pp = p;
out:
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuMemFreeHost(void *p)
{
	CUresult r = CUDA_SUCCESS;
	int i;

	hb_lock();
	i = host_find((uintptr_t)p, 1);
	if (i < 0) {
		r = CUDA_ERROR_INVALID_VALUE;
	} else {
		munmap(p, hb.host[i].size);
		hb.host[i] = hb.host[--hb.nhost];
	}
	hb_unlock();
	return r;
}

/* --- copies ------------------------------------------------------------- */

static CUresult CUDAAPI h_cuMemcpyHtoDAsync(CUdeviceptr dst, const void *src,
					    size_t n, CUstream hs)
{
	struct hb_stream *s;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	s = stream_get(hs);
	if (!s) {
		r = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	if (n && (!src || !dev_ok(dst, n, PROT_READ | PROT_WRITE))) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	if (n)
		memcpy((void *)(uintptr_t)dst, src, n);
	stream_submit(s, 0);
out:
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuMemcpyDtoHAsync(void *dst, CUdeviceptr src,
					    size_t n, CUstream hs)
{
	struct hb_stream *s;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	s = stream_get(hs);
	if (!s) {
		r = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	if (n && (!dst || !dev_ok(src, n, PROT_READ))) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	if (n)
		memcpy(dst, (const void *)(uintptr_t)src, n);
	stream_submit(s, 0);
out:
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuMemcpyDtoDAsync(CUdeviceptr dst, CUdeviceptr src,
					    size_t n, CUstream hs)
{
	struct hb_stream *s;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	s = stream_get(hs);
	if (!s) {
		r = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	if (n && (!dev_ok(src, n, PROT_READ) ||
		  !dev_ok(dst, n, PROT_READ | PROT_WRITE))) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	if (n)
		memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src,
			n);
	stream_submit(s, 0);
out:
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuMemcpy2DAsync(const CUDA_MEMCPY2D *c, CUstream hs)
{
	struct hb_stream *s;
	uint8_t *src, *dst;
	CUresult r;
	size_t y;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	s = stream_get(hs);
	if (!s) {
		r = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	if (!c) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	if (c->WidthInBytes && c->Height) {
		r = cp2d_side(c->srcMemoryType, c->srcHost, c->srcDevice,
			      c->srcXInBytes, c->srcY, c->srcPitch,
			      c->WidthInBytes, c->Height, PROT_READ, &src);
		if (!r)
			r = cp2d_side(c->dstMemoryType, c->dstHost,
				      c->dstDevice, c->dstXInBytes, c->dstY,
				      c->dstPitch, c->WidthInBytes, c->Height,
				      PROT_READ | PROT_WRITE, &dst);
		if (r)
			goto out;
		for (y = 0; y < c->Height; y++)
			memmove(dst + y * c->dstPitch, src + y * c->srcPitch,
				c->WidthInBytes);
	}
	stream_submit(s, 0);
out:
	hb_unlock();
	return r;
}

#define MEMSET_CALL(name, type, esz)                                          \
	static CUresult CUDAAPI h_##name(CUdeviceptr dst, type v, size_t n,   \
					 CUstream hs)                         \
	{                                                                     \
		CUresult r;                                                   \
                                                                              \
		hb_lock();                                                    \
		r = memset2d(dst, n * (esz), v, (esz), n, 1, hs);             \
		hb_unlock();                                                  \
		return r;                                                     \
	}
MEMSET_CALL(cuMemsetD8Async, unsigned char, 1)
MEMSET_CALL(cuMemsetD16Async, unsigned short, 2)
MEMSET_CALL(cuMemsetD32Async, unsigned int, 4)
#undef MEMSET_CALL

#define MEMSET2D_CALL(name, type, esz)                                        \
	static CUresult CUDAAPI h_##name(CUdeviceptr dst, size_t pitch,       \
					 type v, size_t w, size_t h,          \
					 CUstream hs)                         \
	{                                                                     \
		CUresult r;                                                   \
                                                                              \
		hb_lock();                                                    \
		r = memset2d(dst, pitch, v, (esz), w, h, hs);                 \
		hb_unlock();                                                  \
		return r;                                                     \
	}
MEMSET2D_CALL(cuMemsetD2D8Async, unsigned char, 1)
MEMSET2D_CALL(cuMemsetD2D16Async, unsigned short, 2)
MEMSET2D_CALL(cuMemsetD2D32Async, unsigned int, 4)
#undef MEMSET2D_CALL

/* --- modules and libraries ---------------------------------------------- */

static CUresult CUDAAPI h_cuModuleLoadData(CUmodule *mod, const void *image)
{
	struct hb_module *m;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (!r && !mod)
		r = CUDA_ERROR_INVALID_VALUE;
	if (!r)
		r = module_load(image, T_MODULE, &m);
	if (!r)
		*mod = (CUmodule)(void *)m;
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuModuleUnload(CUmodule mod)
{
	struct hb_module *m;
	CUresult r = CUDA_SUCCESS;

	hb_lock();
	m = obj_get(mod, T_MODULE);
	if (m)
		module_free(m);
	else
		r = CUDA_ERROR_INVALID_HANDLE;
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuModuleGetFunction(CUfunction *fn, CUmodule mod,
					      const char *name)
{
	struct hb_module *m;
	struct hb_func *f;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	m = obj_get(mod, T_MODULE);
	if (!m) {
		r = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	if (!fn) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	r = module_function(m, name, &f);
	if (!r)
		*fn = (CUfunction)(void *)f;
out:
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuModuleGetGlobal(CUdeviceptr *dptr, size_t *bytes,
					    CUmodule mod, const char *name)
{
	struct hb_module *m;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	m = obj_get(mod, T_MODULE);
	r = m ? module_global(m, name, dptr, bytes) : CUDA_ERROR_INVALID_HANDLE;
out:
	hb_unlock();
	return r;
}

/* JIT and library options change nothing in the double. */
static CUresult CUDAAPI h_cuLibraryLoadData(CUlibrary *lib, const void *code,
					    CUjit_option *jo, void **jv,
					    unsigned int njo,
					    CUlibraryOption *lo, void **lv,
					    unsigned int nlo)
{
	struct hb_module *m;
	CUresult r;

	(void)jo;
	(void)jv;
	(void)lo;
	(void)lv;
	hb_lock();
	r = ctx_check();
	if (!r && (!lib || (njo && (!jo || !jv)) || (nlo && (!lo || !lv))))
		r = CUDA_ERROR_INVALID_VALUE;
	if (!r)
		r = module_load(code, T_LIBRARY, &m);
	if (!r)
		*lib = (CUlibrary)(void *)m;
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuLibraryUnload(CUlibrary lib)
{
	struct hb_module *m;
	CUresult r = CUDA_SUCCESS;

	hb_lock();
	m = obj_get(lib, T_LIBRARY);
	if (m)
		module_free(m);
	else
		r = CUDA_ERROR_INVALID_HANDLE;
	hb_unlock();
	return r;
}

/* A CUkernel is the same object as its CUfunction: both launch. */
static CUresult CUDAAPI h_cuLibraryGetKernel(CUkernel *k, CUlibrary lib,
					     const char *name)
{
	struct hb_module *m;
	struct hb_func *f;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	m = obj_get(lib, T_LIBRARY);
	if (!m) {
		r = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	if (!k) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	r = module_function(m, name, &f);
	if (!r)
		*k = (CUkernel)(void *)f;
out:
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuLibraryGetGlobal(CUdeviceptr *dptr, size_t *bytes,
					     CUlibrary lib, const char *name)
{
	struct hb_module *m;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	m = obj_get(lib, T_LIBRARY);
	r = m ? module_global(m, name, dptr, bytes) : CUDA_ERROR_INVALID_HANDLE;
out:
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuKernelGetFunction(CUfunction *fn, CUkernel k)
{
	struct hb_func *f;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	f = obj_get(k, T_FUNC);
	if (!f || f->mod->h.type != T_LIBRARY)
		r = CUDA_ERROR_INVALID_HANDLE;
	else if (!fn)
		r = CUDA_ERROR_INVALID_VALUE;
	else
		*fn = (CUfunction)(void *)f;
out:
	hb_unlock();
	return r;
}

/* --- functions ---------------------------------------------------------- */

static CUresult CUDAAPI h_cuFuncGetAttribute(int *pi, CUfunction_attribute a,
					     CUfunction fn)
{
	struct hb_func *f;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	f = obj_get(fn, T_FUNC);
	if (!f) {
		r = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	if (!pi) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	switch (a) {
	case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK:
		*pi = 1024;
		break;
	case CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES:
	case CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES:
	case CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES:
	case CU_FUNC_ATTRIBUTE_CACHE_MODE_CA:
	case CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET:
		*pi = 0;
		break;
	case CU_FUNC_ATTRIBUTE_NUM_REGS:
		*pi = 32;
		break;
	case CU_FUNC_ATTRIBUTE_PTX_VERSION:
	case CU_FUNC_ATTRIBUTE_BINARY_VERSION:
		*pi = 90;
		break;
	case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES:
		*pi = f->max_dyn_smem;
		break;
	case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT:
		*pi = f->carveout;
		break;
	case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH:
	case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT:
	case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH:
		*pi = f->cluster[a - CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH];
		break;
	case CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED:
		*pi = f->nonportable;
		break;
	case CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE:
		*pi = f->sched;
		break;
	default:
		r = CUDA_ERROR_INVALID_VALUE;
	}
out:
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuFuncSetAttribute(CUfunction fn,
					     CUfunction_attribute a, int v)
{
	struct hb_func *f;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	f = obj_get(fn, T_FUNC);
	if (!f) {
		r = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	r = CUDA_ERROR_INVALID_VALUE;
	switch (a) {
	case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES:
		if (v < 0 || v > HB_SMEM_OPTIN)
			goto out;
		f->max_dyn_smem = v;
		break;
	case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT:
		if (v < -1 || v > 100)
			goto out;
		f->carveout = v;
		break;
	case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH:
	case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT:
	case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH:
		if (v < 0 || v > 16)
			goto out;
		f->cluster[a - CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH] = v;
		break;
	case CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED:
		if (v != 0 && v != 1)
			goto out;
		f->nonportable = v;
		break;
	case CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE:
		if (v < CU_CLUSTER_SCHEDULING_POLICY_DEFAULT ||
		    v > CU_CLUSTER_SCHEDULING_POLICY_LOAD_BALANCING)
			goto out;
		f->sched = v;
		break;
	default:
		goto out;
	}
	r = CUDA_SUCCESS;
out:
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuFuncGetParamInfo(CUfunction fn, size_t idx,
					     size_t *off, size_t *size)
{
	struct hb_func *f;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	f = obj_get(fn, T_FUNC);
	if (!f)
		r = CUDA_ERROR_INVALID_HANDLE;
	else if (!off || idx >= f->kd->k->nparams)
		r = CUDA_ERROR_INVALID_VALUE;
	if (r)
		goto out;
	*off = f->kd->off[idx];
	if (size)
		*size = f->kd->k->param_size[idx];
out:
	hb_unlock();
	return r;
}

/*
 * Resident blocks per SM: the least of the thread, block, register (32
 * per thread, whole warps) and shared-memory (with the per-block driver
 * reserve) limits of the modelled SM.
 */
static CUresult CUDAAPI h_cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
	int *num, CUfunction fn, int bs, size_t smem, unsigned int flags)
{
	struct hb_func *f;
	int warps, n;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	f = obj_get(fn, T_FUNC);
	if (!f) {
		r = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	if (!num || bs <= 0 || (flags & ~1u)) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	if (bs > 1024 || smem > (size_t)f->max_dyn_smem) {
		*num = 0;
		goto out;
	}
	warps = (bs + 31) / 32;
	n = 2048 / (warps * 32);                          /* threads */
	if (n > 32)                                       /* blocks */
		n = 32;
	if (n > 65536 / (warps * 32 * 32))                /* registers */
		n = 65536 / (warps * 32 * 32);
	if (n > (int)(HB_SMEM_SM / (smem + HB_SMEM_RESERVED)))
		n = (int)(HB_SMEM_SM / (smem + HB_SMEM_RESERVED));
	*num = n;
out:
	hb_unlock();
	return r;
}

/*
 * Clusters on the modelled SM: blocks of one cluster must be co-resident on
 * one GPC of 16 SMs (H100/H200: up to 8 portable, 16 non-portable).
 */
static int cluster_blocks(const CUlaunchConfig *c)
{
	unsigned int i, n = 1;

	for (i = 0; c->attrs && i < c->numAttrs; i++)
		if (c->attrs[i].id == CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION)
			n = c->attrs[i].value.clusterDim.x *
			    c->attrs[i].value.clusterDim.y *
			    c->attrs[i].value.clusterDim.z;
	return (int)n;
}

static CUresult CUDAAPI h_cuOccupancyMaxActiveClusters(int *num, CUfunction fn,
						       const CUlaunchConfig *c)
{
	int per_sm = 0, bs, cb;
	CUresult r;

	if (!num || !c)
		return CUDA_ERROR_INVALID_VALUE;
	bs = (int)(c->blockDimX * c->blockDimY * c->blockDimZ);
	r = h_cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
		&per_sm, fn, bs, c->sharedMemBytes, 0);
	if (r)
		return r;
	cb = cluster_blocks(c);
	if (cb <= 0 || cb > 16)
		return CUDA_ERROR_INVALID_CLUSTER_SIZE;
	/* 132 SMs in GPCs of up to 16 (the real chip has some smaller). */
	*num = per_sm * 16 / cb * (132 / 16);
	return CUDA_SUCCESS;
}

static CUresult CUDAAPI h_cuOccupancyMaxPotentialClusterSize(
	int *size, CUfunction fn, const CUlaunchConfig *c)
{
	int per_sm = 0, bs;
	CUresult r;

	if (!size || !c)
		return CUDA_ERROR_INVALID_VALUE;
	bs = (int)(c->blockDimX * c->blockDimY * c->blockDimZ);
	r = h_cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
		&per_sm, fn, bs, c->sharedMemBytes, 0);
	if (r)
		return r;
	*size = per_sm > 0 ? 8 : 0; /* the portable maximum */
	return CUDA_SUCCESS;
}

/*
 * Tensor maps: the host double has no TMA; it stores the arguments it
 * was given in the descriptor, so a test can see them come back.
 */
static CUresult CUDAAPI h_cuTensorMapEncodeTiled(
	CUtensorMap *m, CUtensorMapDataType dt, cuuint32_t rank, void *addr,
	const cuuint64_t *dim, const cuuint64_t *strides, const cuuint32_t *box,
	const cuuint32_t *es, CUtensorMapInterleave il, CUtensorMapSwizzle sw,
	CUtensorMapL2promotion l2, CUtensorMapFloatOOBfill oob)
{
	(void)strides;
	(void)box;
	(void)es;
	(void)il;
	(void)sw;
	(void)l2;
	(void)oob;
	if (!m || !addr || !dim || rank == 0 || rank > 5 ||
	    ((uintptr_t)addr & 15))
		return CUDA_ERROR_INVALID_VALUE;
	memset(m, 0, sizeof(*m));
	memcpy(&m->opaque[0], &addr, sizeof(addr));
	m->opaque[1] = ((cuuint64_t)dt << 32) | rank;
	return CUDA_SUCCESS;
}

static CUresult CUDAAPI h_cuTensorMapEncodeIm2col(
	CUtensorMap *m, CUtensorMapDataType dt, cuuint32_t rank, void *addr,
	const cuuint64_t *dim, const cuuint64_t *strides, const int *lo,
	const int *hi, cuuint32_t cpp, cuuint32_t ppc, const cuuint32_t *es,
	CUtensorMapInterleave il, CUtensorMapSwizzle sw,
	CUtensorMapL2promotion l2, CUtensorMapFloatOOBfill oob)
{
	(void)lo;
	(void)hi;
	(void)cpp;
	(void)ppc;
	if (rank < 3)
		return CUDA_ERROR_INVALID_VALUE;
	return h_cuTensorMapEncodeTiled(m, dt, rank, addr, dim, strides, NULL,
					es, il, sw, l2, oob);
}

static CUresult CUDAAPI h_cuTensorMapReplaceAddress(CUtensorMap *m, void *addr)
{
	if (!m || !addr || ((uintptr_t)addr & 15))
		return CUDA_ERROR_INVALID_VALUE;
	memcpy(&m->opaque[0], &addr, sizeof(addr));
	return CUDA_SUCCESS;
}

static CUresult CUDAAPI h_cuLaunchKernel(CUfunction fn, unsigned int gx,
					 unsigned int gy, unsigned int gz,
					 unsigned int bx, unsigned int by,
					 unsigned int bz, unsigned int smem,
					 CUstream hs, void **params,
					 void **extra)
{
	unsigned int grid[3] = { gx, gy, gz }, block[3] = { bx, by, bz };
	struct hb_func *f;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	f = obj_get(fn, T_FUNC);
	r = f ? launch(f, grid, block, smem, hs, params, extra) :
		CUDA_ERROR_INVALID_HANDLE;
out:
	hb_unlock();
	return r;
}

/* Launch attributes (cluster shape, cooperative, priority...) are ignored. */
static CUresult CUDAAPI h_cuLaunchKernelEx(const CUlaunchConfig *cfg,
					   CUfunction fn, void **params,
					   void **extra)
{
	unsigned int grid[3], block[3];
	struct hb_func *f;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	f = obj_get(fn, T_FUNC);
	if (!f) {
		r = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	if (!cfg || (cfg->numAttrs && !cfg->attrs)) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	grid[0] = cfg->gridDimX;
	grid[1] = cfg->gridDimY;
	grid[2] = cfg->gridDimZ;
	block[0] = cfg->blockDimX;
	block[1] = cfg->blockDimY;
	block[2] = cfg->blockDimZ;
	r = launch(f, grid, block, cfg->sharedMemBytes, cfg->hStream, params,
		   extra);
out:
	hb_unlock();
	return r;
}

/* --- streams ------------------------------------------------------------ */

static CUresult CUDAAPI h_cuStreamCreateWithPriority(CUstream *ps,
						     unsigned int flags,
						     int prio)
{
	struct hb_stream *s;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	if (!ps || (flags & ~(unsigned int)CU_STREAM_NON_BLOCKING)) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	s = calloc(1, sizeof(*s));
	if (!s || grow(&hb.streams, &hb.cap_streams, hb.nstreams,
		       sizeof(s)) || set_add(s)) {
		free(s);
		r = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	s->h.type = T_STREAM;
	s->flags = flags;
	/* As the driver does: out-of-range priorities are clamped. */
	s->prio = prio < HB_PRIO_GREATEST ? HB_PRIO_GREATEST :
		  prio > HB_PRIO_LEAST	  ? HB_PRIO_LEAST :
					    prio;
	hb.streams[hb.nstreams++] = s;
	*ps = (CUstream)(void *)s;
out:
	hb_unlock();
	return r;
}

/*
 * Work pending in a destroyed stream still runs; if the stream was
 * blocking, the legacy stream must still wait for it.
 */
static CUresult CUDAAPI h_cuStreamDestroy(CUstream hs)
{
	struct hb_stream *s;
	CUresult r = CUDA_SUCCESS;
	unsigned int i;

	hb_lock();
	s = obj_get(hs, T_STREAM);
	if (!s) {
		r = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	if (stream_blocking(s))
		hb.dead_blocking_until =
			max64(hb.dead_blocking_until, s->busy_until);
	for (i = 0; i < hb.nstreams; i++)
		if (hb.streams[i] == s)
			hb.streams[i] = hb.streams[--hb.nstreams];
	set_del(s);
	free(s);
out:
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuStreamQuery(CUstream hs)
{
	struct hb_stream *s;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	s = stream_get(hs);
	if (!s)
		r = CUDA_ERROR_INVALID_HANDLE;
	else if (s->busy_until > now_ns())
		r = CUDA_ERROR_NOT_READY;
out:
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuStreamWaitEvent(CUstream hs, CUevent ev,
					    unsigned int flags)
{
	struct hb_stream *s;
	struct hb_event *e;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	s = stream_get(hs);
	e = obj_get(ev, T_EVENT);
	if (!s || !e) {
		r = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	if (flags & ~(unsigned int)CU_EVENT_WAIT_EXTERNAL) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	stream_submit(s, 0);
	/* Waiting for a never-recorded event is a no-op, as in the driver. */
	if (e->recorded)
		s->busy_until = max64(s->busy_until, e->t);
out:
	hb_unlock();
	return r;
}

/* --- events ------------------------------------------------------------- */

static CUresult CUDAAPI h_cuEventCreate(CUevent *pe, unsigned int flags)
{
	struct hb_event *e;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	if (!pe || (flags & ~0x7u) ||
	    ((flags & CU_EVENT_INTERPROCESS) &&
	     !(flags & CU_EVENT_DISABLE_TIMING))) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	e = calloc(1, sizeof(*e));
	if (!e || set_add(e)) {
		free(e);
		r = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	e->h.type = T_EVENT;
	e->flags = flags;
	*pe = (CUevent)(void *)e;
out:
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuEventDestroy(CUevent ev)
{
	struct hb_event *e;
	CUresult r = CUDA_SUCCESS;

	hb_lock();
	e = obj_get(ev, T_EVENT);
	if (e) {
		set_del(e);
		free(e);
	} else {
		r = CUDA_ERROR_INVALID_HANDLE;
	}
	hb_unlock();
	return r;
}

/* The event completes when the work before it in the stream does. */
static CUresult CUDAAPI h_cuEventRecordWithFlags(CUevent ev, CUstream hs,
						 unsigned int flags)
{
	struct hb_stream *s;
	struct hb_event *e;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	s = stream_get(hs);
	e = obj_get(ev, T_EVENT);
	if (!s || !e) {
		r = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	if (flags & ~(unsigned int)CU_EVENT_RECORD_EXTERNAL) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	stream_submit(s, 0);
	e->t = max64(s->busy_until, now_ns());
	e->recorded = 1;
out:
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuEventQuery(CUevent ev)
{
	struct hb_event *e;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	e = obj_get(ev, T_EVENT);
	if (!e)
		r = CUDA_ERROR_INVALID_HANDLE;
	else if (e->recorded && e->t > now_ns())
		r = CUDA_ERROR_NOT_READY;
out:
	hb_unlock();
	return r;
}

/*
 * Sleep, without the lock, until the event's most recent record (as of
 * the call) completes.  An event destroyed meanwhile ends the wait.
 */
static CUresult CUDAAPI h_cuEventSynchronize(CUevent ev)
{
	struct hb_event *e;
	struct timespec ts;
	uint64_t t = 0;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (!r) {
		e = obj_get(ev, T_EVENT);
		if (!e)
			r = CUDA_ERROR_INVALID_HANDLE;
		else if (e->recorded)
			t = e->t;
	}
	hb_unlock();
	if (r)
		return r;
	ts.tv_sec = (time_t)(t / 1000000000ull);
	ts.tv_nsec = (long)(t % 1000000000ull);
	while (now_ns() < t &&
	       clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
		       EINTR)
		;
	hb_lock();
	r = ctx_check();
	hb_unlock();
	return r;
}

static CUresult CUDAAPI h_cuEventElapsedTime(float *ms, CUevent start,
					     CUevent end)
{
	struct hb_event *a, *b;
	uint64_t now;
	CUresult r;

	hb_lock();
	r = ctx_check();
	if (r)
		goto out;
	if (!ms) {
		r = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	a = obj_get(start, T_EVENT);
	b = obj_get(end, T_EVENT);
	/* cuda.h: unrecorded or timing-disabled events are invalid handles. */
	if (!a || !b || !a->recorded || !b->recorded ||
	    ((a->flags | b->flags) & CU_EVENT_DISABLE_TIMING)) {
		r = CUDA_ERROR_INVALID_HANDLE;
		goto out;
	}
	now = now_ns();
	if (a->t > now || b->t > now) {
		r = CUDA_ERROR_NOT_READY;
		goto out;
	}
	*ms = (float)((double)((int64_t)(b->t - a->t)) / 1e6);
out:
	hb_unlock();
	return r;
}

/* --- opening the backend ------------------------------------------------ */

static uint32_t pow2_ceil(uint32_t v)
{
	uint32_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

/*
 * Lay out one registry kernel's parameters: each at the next multiple of
 * min(its size rounded up to a power of two, 8).
 */
static int kdesc_init(struct hb_kdesc *kd, const struct mig_host_kernel *k)
{
	uint32_t at = 0, i;

	if (!k->run || k->nparams > 32)
		return -1;
	kd->k = k;
	for (i = 0; i < k->nparams; i++) {
		uint32_t sz = k->param_size[i], al = pow2_ceil(sz);

		if (!sz)
			return -1;
		if (al > 8)
			al = 8;
		at = (at + al - 1) & ~(al - 1);
		kd->off[i] = at;
		at += sz;
	}
	kd->bytes = at;
	return at <= HB_MAX_PARAM_BYTES ? 0 : -1;
}

static int reg_has(const char *name)
{
	unsigned int i;

	for (i = 0; i < hb.nreg; i++)
		if (!strcmp(hb.reg[i].k->name, name))
			return 1;
	return 0;
}

/*
 * dlopen every library in MIG_HOST_KERNELS and collect its kernels.  When
 * two libraries define the same name, the first one listed wins.  The
 * libraries stay loaded for the life of the process.
 */
static int registry_load(char *err, size_t errlen)
{
	const char *env = getenv("MIG_HOST_KERNELS");
	char *list, *path, *save = NULL;
	unsigned int cap = 0;

	if (!env || !*env)
		return 0;
	list = strdup(env);
	if (!list) {
		snprintf(err, errlen, "host backend: out of memory");
		return -1;
	}
	for (path = strtok_r(list, ":", &save); path;
	     path = strtok_r(NULL, ":", &save)) {
		const struct mig_host_kernel *tab;
		void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		unsigned int i;

		if (!dl) {
			snprintf(err, errlen,
				 "host backend: cannot load kernel library %s: %s",
				 path, dlerror());
			goto fail;
		}
		tab = dlsym(dl, "mig_host_kernels");
		if (!tab) {
			snprintf(err, errlen,
				 "host backend: kernel library %s exports no mig_host_kernels",
				 path);
			dlclose(dl);
			goto fail;
		}
		for (i = 0; tab[i].name; i++) {
			if (reg_has(tab[i].name))
				continue;
			if (grow(&hb.reg, &cap, hb.nreg, sizeof(*hb.reg))) {
				snprintf(err, errlen,
					 "host backend: out of memory");
				goto fail;
			}
			if (kdesc_init(&hb.reg[hb.nreg], &tab[i])) {
				snprintf(err, errlen,
					 "host backend: kernel %s in %s: needs run() and at most 32 parameters, each nonzero in size, %d bytes in all",
					 tab[i].name, path,
					 HB_MAX_PARAM_BYTES);
				goto fail;
			}
			hb.nreg++;
		}
	}
	free(list);
	return 0;
fail:
	free(list);
	free(hb.reg);
	hb.reg = NULL;
	hb.nreg = 0;
	return -1;
}

/*
 * MIG_HOST_MEM_MIB: the device's memory.  MIG_HOST_MEM_CREATES=N (a fault
 * for tests): cuMemCreate succeeds N times, then answers out of memory, as
 * when memory the server gave back was taken before it could come back.
 */
int gpud_backend_host_open(struct gpud_backend *b, char *err, size_t errlen)
{
	const char *mib = getenv("MIG_HOST_MEM_MIB");
	const char *creates = getenv("MIG_HOST_MEM_CREATES");
	uint64_t mem = HB_DEFAULT_MEM_MIB, ncreates = UINT64_MAX;
	int ret = 0;

	if (mib && *mib) {
		char *end;

		errno = 0;
		mem = strtoull(mib, &end, 10);
		if (errno || *end || !mem || mem > (1ull << 30)) {
			snprintf(err, errlen,
				 "host backend: MIG_HOST_MEM_MIB=%s is not a size in MiB",
				 mib);
			return -1;
		}
	}
	if (creates && *creates) {
		char *end;

		errno = 0;
		ncreates = strtoull(creates, &end, 10);
		if (errno || *end || *creates == '-') {
			snprintf(err, errlen,
				 "host backend: MIG_HOST_MEM_CREATES=%s is not a count",
				 creates);
			return -1;
		}
	}
	hb_lock();
	/* One device per process: a second open shares the first's state. */
	if (!hb.opened) {
		if (registry_load(err, errlen)) {
			ret = -1;
			goto out;
		}
		hb.total_mem = mem << 20;
		hb.creates_left = ncreates;
		hb.ctx.type = T_CTX;
		hb.legacy.h.type = T_STREAM;
		hb.ptds.h.type = T_STREAM;
		ctx_reset();
		hb.opened = 1;
	}
	memset(b, 0, sizeof(*b));
	b->name = "host";
#define BACKEND_CALL(fn, ver) b->fn = h_##fn;
#include "backend_calls.def"
#undef BACKEND_CALL
out:
	hb_unlock();
	return ret;
}
