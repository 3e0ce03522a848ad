/*
 * wire.h - the call channel between the shim (client) and mig-gpud (server).
 *
 * This header is the single definition of the channel's format; both sides
 * include it.  One shared segment per function instance holds, at fixed
 * offsets chosen by the server:
 *
 *   header     layout, device snapshot, peer state           (read-only to
 *                                                             the server
 *                                                             after setup)
 *   request    byte ring of messages, client -> server (SPSC, the client
 *              serializes its threads onto it)
 *   replies    one slot per client thread, server -> client
 *   staging    fixed chunks for pipelined pageable copies
 *   heap       pinned host memory handed out by mignificent_malloc and
 *              cuMemAllocHost/cuMemHostAlloc
 *
 * Both processes map the segment at the same virtual address (hdr->base),
 * so a host pointer inside it means the same thing on both sides and
 * unified-addressing rules hold.  The device virtual-address range the
 * server allocates from is reserved PROT_NONE in the client, so device
 * pointers never alias client host memory.
 *
 * Trust: the server treats every byte of the segment as hostile.  It keeps
 * its own copy of the layout, copies each message's fixed part before
 * decoding it, checks every length and offset, and resolves host pointers
 * only inside the segment.  The client trusts the server.
 */
#ifndef MIG_IPC_WIRE_H
#define MIG_IPC_WIRE_H

#include <stdint.h>

#define MIG_WIRE_MAGIC 0x4d494757u /* "MIGW" */
#define MIG_WIRE_VERSION 2u

#define MIG_CACHELINE 64

/* Sizes of the fixed regions (the heap takes the rest of the segment). */
#define MIG_REQ_RING_SIZE (4u << 20)      /* request ring bytes, power of 2 */
#define MIG_MSG_ALIGN 16u                 /* every message is padded to this */
#define MIG_MSG_MAX (1u << 20)            /* largest single message */
#define MIG_INLINE_MAX (64u << 10)        /* copies up to this go inline */
#define MIG_REPLY_SLOTS 64u               /* concurrent client threads */
#define MIG_REPLY_DATA (64u << 10)        /* reply payload bytes per slot */
#define MIG_STAGING_CHUNKS 32u            /* pageable-copy pipeline depth */
#define MIG_STAGING_CHUNK (1u << 20)      /* bytes per staging chunk */
#define MIG_MAX_PARAMS 1024u              /* kernel parameters we describe */
#define MIG_MAX_PARAM_BYTES 32768u        /* CUDA >= 12.1 limit is 32764 */

/*
 * A 32-bit word one side advances and the other waits on: spin on @value
 * for a while, then set @waiters and sleep on @value with FUTEX_WAIT.  The
 * side that advances @value wakes when @waiters is set.  See ipc/seqword.h.
 */
struct mig_seqword {
	uint32_t value;
	uint32_t waiters;
} __attribute__((aligned(MIG_CACHELINE)));

/* Device snapshot: what the shim answers locally without a round trip. */
#define MIG_DEV_ATTR_COUNT 160 /* > CU_DEVICE_ATTRIBUTE_MAX in CUDA 13.0 */
struct mig_device_info {
	char name[256];
	uint8_t uuid[16];
	uint64_t total_mem;     /* the partition's memory */
	int32_t driver_version; /* of the server's driver */
	int32_t attr[MIG_DEV_ATTR_COUNT];
	uint64_t vmm_granularity; /* allocation granularity on the server */
	int32_t prio_least, prio_greatest; /* stream priority range */
};

/* Server state, in hdr->server_state. */
enum mig_server_state {
	MIG_SERVER_STARTING = 0,
	MIG_SERVER_READY = 1,
	MIG_SERVER_GONE = 2,
};

struct mig_seg_header {
	uint32_t magic;
	uint32_t version;
	uint64_t size;      /* whole segment */
	uint64_t base;      /* address both sides map the segment at */
	uint64_t dev_va_base; /* device VA range the server allocates from */
	uint64_t dev_va_size;
	uint32_t server_pid;
	uint32_t client_pid;
	uint64_t req_off, req_size;
	uint64_t reply_off;        /* MIG_REPLY_SLOTS * sizeof(mig_reply_slot) */
	uint64_t staging_off;      /* MIG_STAGING_CHUNKS * MIG_STAGING_CHUNK */
	uint64_t heap_off, heap_size;
	uint64_t pinned_size;      /* bytes from the start the server pinned */
	struct mig_device_info dev;

	/* State words, each on its own cache line. */
	struct mig_seqword server_state; /* enum mig_server_state */
	struct mig_seqword req_tail;     /* client: bytes produced (free-running) */
	struct mig_seqword req_head;     /* server: bytes consumed (free-running) */
	struct mig_seqword doorbell;     /* client bumps to wake a sleeping server */
	struct mig_seqword turn_wait;    /* server: 1 while it holds calls back
					    for the partition's GPU turn */
	struct mig_seqword staging_done[MIG_STAGING_CHUNKS]; /* server: ticket */
	int32_t staging_result[MIG_STAGING_CHUNKS]; /* CUresult of that DMA */
};

/* One reply slot per client thread. */
struct mig_reply_slot {
	struct mig_seqword seq;    /* server stores the request's seq when done */
	int32_t result;            /* CUresult */
	uint32_t len;              /* bytes valid in data */
	uint8_t pad[MIG_CACHELINE - 8];
	uint8_t data[MIG_REPLY_DATA];
} __attribute__((aligned(MIG_CACHELINE)));

/*
 * Message header.  @size counts the header and the body, is a multiple of
 * MIG_MSG_ALIGN, and never crosses the end of the ring: a producer that
 * cannot fit a message before the end writes MIG_OP_PAD over the rest.
 * @slot is the sending thread's reply slot (also for fire-and-forget calls:
 * it names the thread's per-thread default stream).  A call with
 * MIG_MSGF_REPLY set is answered in that slot, echoing @seq into the
 * slot's seqword; others are fire-and-forget.
 */
struct mig_msg_hdr {
	uint32_t size;
	uint16_t op;
	uint16_t slot;
	uint32_t seq;
	uint32_t flags;
};

/*
 * Handles.  Streams, events, modules, libraries, functions and kernels are
 * ids the server issued: opaque to the client, checked (type and
 * generation) by the server on every use.  Three stream values are
 * special, as in the driver.
 */
#define MIG_STREAM_NULL 0ull       /* legacy default stream */
#define MIG_STREAM_LEGACY 1ull     /* CU_STREAM_LEGACY */
#define MIG_STREAM_PER_THREAD 2ull /* CU_STREAM_PER_THREAD */

/* Calls.  Each has an args struct below, named mig_<op in lower case>. */
enum mig_op {
	MIG_OP_PAD = 0, /* ring filler: skip @size bytes */
	MIG_OP_HELLO,   /* client attaches: pid; reply: nothing */
	MIG_OP_CTX_SYNC,
	MIG_OP_CTX_GET_LIMIT,
	MIG_OP_CTX_SET_LIMIT,
	MIG_OP_MEM_GET_INFO,
	MIG_OP_MEM_ALLOC,
	MIG_OP_MEM_FREE,
	MIG_OP_HOST_PIN,     /* pin a heap range of the segment */
	MIG_OP_MEMCPY_HTOD,  /* inline data or segment pointer */
	MIG_OP_MEMCPY_DTOH,  /* into reply slot, segment pointer or chunk */
	MIG_OP_MEMCPY_DTOD,
	MIG_OP_MEMCPY_STAGED_HTOD, /* from a staging chunk */
	MIG_OP_MEMCPY_STAGED_DTOH, /* into a staging chunk */
	MIG_OP_MEMCPY_2D,    /* device and/or segment operands only */
	MIG_OP_MEMSET,
	MIG_OP_MODULE_LOAD,
	MIG_OP_MODULE_UNLOAD,
	MIG_OP_MODULE_GET_FUNCTION,
	MIG_OP_MODULE_GET_GLOBAL,
	MIG_OP_LIBRARY_LOAD,
	MIG_OP_LIBRARY_UNLOAD,
	MIG_OP_LIBRARY_GET_KERNEL,
	MIG_OP_LIBRARY_GET_GLOBAL,
	MIG_OP_FUNC_SET_ATTR,
	MIG_OP_FUNC_OCCUPANCY,
	MIG_OP_LAUNCH,
	MIG_OP_STREAM_CREATE,
	MIG_OP_STREAM_DESTROY,
	MIG_OP_STREAM_QUERY,
	MIG_OP_STREAM_SYNC,
	MIG_OP_STREAM_WAIT_EVENT,
	MIG_OP_EVENT_CREATE,
	MIG_OP_EVENT_DESTROY,
	MIG_OP_EVENT_RECORD,
	MIG_OP_EVENT_QUERY,
	MIG_OP_EVENT_SYNC,
	MIG_OP_EVENT_ELAPSED,
	MIG_OP_STATS,
	MIG_OP_FUNC_CLUSTERS,
	MIG_OP_TENSOR_MAP,
	MIG_OP_MEM_ADDRESS_RESERVE, /* client VMM: see "Virtual memory" below */
	MIG_OP_MEM_ADDRESS_FREE,
	MIG_OP_MEM_CREATE,
	MIG_OP_MEM_RELEASE,
	MIG_OP_MEM_MAP,
	MIG_OP_MEM_UNMAP,
	MIG_OP_MEM_SET_ACCESS,
	MIG_OP_MEM_GET_PROPS,
	MIG_OP_COUNT
};

/* The call's name, as in the shim's summary and the server's profile
 * ("?" for none). */
const char *mig_op_name(unsigned int op);

/* Flags in mig_msg_hdr.flags. */
#define MIG_MSGF_PER_THREAD 0x1u /* stream 0 means this thread's default */
#define MIG_MSGF_REPLY 0x2u      /* synchronous: answer in the slot */
#define MIG_MSGF_COMPLETE 0x4u   /* answer only when the work completed */

struct mig_hello {
	uint32_t pid;
	uint32_t pad;
};

struct mig_ctx_sync {
	uint64_t unused;
};

struct mig_ctx_limit {
	uint32_t limit;
	uint32_t pad;
	uint64_t value; /* SET: the value; GET reply: uint64_t */
};

/* MEM_GET_INFO reply: struct mig_mem_info. */
struct mig_mem_info {
	uint64_t free, total;
	uint64_t client_used; /* device memory this client holds */
};

struct mig_mem_alloc {
	uint64_t size;
};
/* reply: uint64_t device address */

struct mig_mem_free {
	uint64_t dptr;
};

struct mig_host_pin {
	uint64_t offset, size; /* within the segment */
};

/*
 * HTOD: if @src is nonzero it is an address inside the segment; otherwise
 * @size bytes of data follow the args (size <= MIG_INLINE_MAX).
 */
struct mig_memcpy_htod {
	uint64_t dst;
	uint64_t src;
	uint64_t size;
	uint64_t stream;
};

/*
 * DTOH: if @dst is nonzero it is an address inside the segment; otherwise
 * the data comes back in the reply slot (size <= MIG_REPLY_DATA).
 * The reply is sent when the copy has completed.
 */
struct mig_memcpy_dtoh {
	uint64_t dst;
	uint64_t src;
	uint64_t size;
	uint64_t stream;
};

struct mig_memcpy_dtod {
	uint64_t dst, src, size, stream;
};

/* STAGED_*: one chunk of a pipelined pageable copy. */
struct mig_memcpy_staged {
	uint64_t dev;    /* device address */
	uint64_t size;   /* <= MIG_STAGING_CHUNK */
	uint64_t stream;
	uint32_t chunk;  /* < MIG_STAGING_CHUNKS */
	uint32_t ticket; /* stored in staging_done[chunk] when the DMA is done */
};

/*
 * 2D copy between device memory and/or the segment.  Host operands are
 * segment addresses; the client packs pageable memory first.
 */
struct mig_memcpy_2d {
	uint64_t src, src_pitch, dst, dst_pitch;
	uint64_t width, height;
	uint32_t src_is_host, dst_is_host;
	uint64_t stream;
};

struct mig_memset {
	uint64_t dst;
	uint64_t pitch;  /* 0 for 1D */
	uint64_t width;  /* elements per row (1D: count) */
	uint64_t height; /* 1 for 1D */
	uint32_t value;
	uint32_t elem;   /* 1, 2 or 4 bytes */
	uint64_t stream;
};

/* MODULE_LOAD / LIBRARY_LOAD: image in the segment (copied by the server). */
struct mig_image_load {
	uint64_t image; /* segment address */
	uint64_t size;
};
/* reply: uint64_t handle */

struct mig_handle_arg {
	uint64_t handle;
};

/* GET_FUNCTION / GET_KERNEL / GET_GLOBAL: NUL-terminated name follows. */
struct mig_get_symbol {
	uint64_t owner; /* module or library */
	uint32_t name_len; /* including the NUL */
	uint32_t pad;
};

/* MODULE_GET_GLOBAL / LIBRARY_GET_GLOBAL reply. */
struct mig_global_info {
	uint64_t dptr, size;
};

/* GET_FUNCTION / GET_KERNEL reply: the function described once. */
#define MIG_FUNC_ATTR_COUNT 16 /* > CU_FUNC_ATTRIBUTE_MAX in CUDA 13.0 */
struct mig_func_info {
	uint64_t handle;
	int32_t attr[MIG_FUNC_ATTR_COUNT];
	uint32_t nparams;
	uint32_t param_bytes; /* end of the last parameter */
	struct {
		uint16_t offset, size;
	} param[]; /* nparams entries */
};

struct mig_func_set_attr {
	uint64_t func;
	int32_t attr, value;
};

struct mig_func_occupancy {
	uint64_t func;
	int32_t block_size;
	uint32_t flags;
	uint64_t dyn_smem;
};
/* reply: int32_t blocks per SM */

/*
 * FUNC_CLUSTERS: cuOccupancyMaxActiveClusters (@query 0) or
 * cuOccupancyMaxPotentialClusterSize (@query 1) for a launch
 * configuration; @nattrs CUlaunchAttribute follow.  reply: int32_t.
 */
struct mig_func_clusters {
	uint64_t func;
	uint32_t grid[3];
	uint32_t block[3];
	uint32_t shared_mem;
	uint32_t nattrs;
	uint32_t query;
	uint32_t pad;
};

/*
 * LAUNCH: the parameter buffer (laid out by the server's parameter
 * description) follows, then @nattrs launch attributes (CUlaunchAttribute,
 * event handles translated by the server).
 */
struct mig_launch {
	uint64_t func;
	uint32_t grid[3];
	uint32_t block[3];
	uint32_t shared_mem;
	uint32_t param_bytes;
	uint32_t nattrs;
	uint32_t pad;
	uint64_t stream;
};

struct mig_stream_create {
	uint32_t flags;
	int32_t priority;
};
/* reply: uint64_t stream */

struct mig_stream_wait_event {
	uint64_t stream, event;
	uint32_t flags, pad;
};

struct mig_event_create {
	uint32_t flags, pad;
};

struct mig_event_record {
	uint64_t event, stream;
	uint32_t flags, pad;
};

struct mig_event_elapsed {
	uint64_t start, end;
};
/* reply: float ms */

/*
 * TENSOR_MAP: encode a TMA descriptor (the format is the driver's secret,
 * so the server's driver writes it).  @kind 0 tiled, 1 im2col, 2 replace
 * the address of @map.  reply: the 128-byte CUtensorMap.
 */
struct mig_tensor_map {
	uint32_t kind;
	uint32_t data_type;
	uint32_t rank;      /* 1..5 */
	uint32_t interleave, swizzle, l2_promotion, oob_fill;
	uint32_t channels_per_pixel, pixels_per_column;
	uint32_t pad;
	uint64_t global_address;
	uint64_t global_dim[5];
	uint64_t global_strides[4];
	uint32_t box_dim[5];
	uint32_t element_strides[5];
	int32_t lower_corner[3], upper_corner[3];
	uint8_t map[128];   /* kind 2: the descriptor to change */
};

/*
 * Virtual memory (cuMemAddressReserve, cuMemCreate, cuMemMap, ...).  A
 * client reservation is a piece of the server's device address range
 * (hdr->dev_va_base/size), so addresses mean the same on both sides; a
 * physical allocation is a server handle id, never a driver handle.
 * Sizes, addresses and offsets are multiples of dev.vmm_granularity.
 */

/* MEM_ADDRESS_RESERVE: @addr is a hint the server may ignore.
 * reply: uint64_t address. */
struct mig_mem_reserve {
	uint64_t size, align, addr, flags;
};

/* MEM_ADDRESS_FREE (a whole reservation) and MEM_UNMAP (whole mappings). */
struct mig_mem_range {
	uint64_t ptr, size;
};

/* MEM_CREATE: the CUmemAllocationProp fields the server looks at.
 * reply: uint64_t handle. */
struct mig_mem_create {
	uint64_t size, flags;
	uint32_t type;          /* CUmemAllocationType */
	uint32_t location_type; /* CUmemLocationType */
	int32_t location_id;    /* the client's device ordinal */
	uint32_t handle_types;  /* CUmemAllocationHandleType */
	uint32_t compression;   /* allocFlags.compressionType */
	uint32_t usage;         /* allocFlags.usage */
};

struct mig_mem_map {
	uint64_t ptr, size, offset, handle, flags;
};

/* MEM_SET_ACCESS: @count struct mig_mem_access follow. */
#define MIG_MEM_ACCESS_MAX 16u
struct mig_mem_set_access {
	uint64_t ptr, size;
	uint32_t count, pad;
};

struct mig_mem_access {
	uint32_t location_type;
	int32_t location_id;
	uint32_t flags; /* CUmemAccess_flags */
	uint32_t pad;
};

/* MEM_RELEASE and MEM_GET_PROPS take struct mig_handle_arg.
 * MEM_GET_PROPS reply: struct mig_mem_props. */
struct mig_mem_props {
	uint64_t size;
	uint32_t handle_types, pad;
};

/* STATS reply: what the server counted for this client. */
struct mig_stats {
	uint64_t calls_sync, calls_async;
	uint64_t bytes_htod, bytes_dtoh, bytes_dtod;
	uint64_t launches;
};

#endif /* MIG_IPC_WIRE_H */
