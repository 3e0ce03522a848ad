/*
 * shim.h - private interfaces of the shim (our libcuda.so.1).
 *
 * The shim answers what it can from its own state (device snapshot,
 * function attributes, contexts, pointer kinds) and forwards the rest over
 * the call channel (channel.c).  Handles it gives the program are pointers
 * to small client-side objects that carry the server's id and whatever
 * the shim caches about them; each starts with a magic word so a garbage
 * handle is an error, not a crash.
 */
#ifndef MIG_SHIM_H
#define MIG_SHIM_H

#include <cuda.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/*
 * cuda.h renames these to their _v2 forms.  The library also exports the
 * original names (same arguments, older ABI versions of the symbol), so
 * we define both and need the plain names free of the macros.
 */
#undef cuDevicePrimaryCtxRelease
#undef cuDevicePrimaryCtxReset
#undef cuDevicePrimaryCtxSetFlags
#undef cuDeviceGetUuid
#undef cuStreamDestroy
#undef cuEventDestroy
#undef cuEventElapsedTime
#undef cuMemHostRegister

#define SHIM_API __attribute__((visibility("default")))

/* --- logging (log.c) ----------------------------------------------------- */

extern int shim_log_level; /* MIG_SHIM_LOG: 0 quiet (default), 1 info, 2 debug */
void shim_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Log @name once and return CUDA_ERROR_NOT_SUPPORTED. */
CUresult shim_unsupported(const char *name);

/* --- the channel (channel.c) ------------------------------------------- */

struct shim_state {
	CUresult init_result;
	int forked;
	uint8_t *seg;
	uint64_t seg_size;
	struct mig_seg_header *hdr;
	uint8_t *ring;
	uint32_t ring_size;
	uint32_t tail; /* producer position, under ring_lock */
	struct mig_reply_slot *slots;
	uint8_t *staging;
	uint64_t heap_off, heap_size;
	struct mig_device_info dev; /* private copy of the snapshot */
	uint64_t dev_va_base, dev_va_size;
	int lifeline_fd;
	pthread_mutex_t ring_lock;
	pthread_mutex_t staging_lock;
	uint32_t staging_ticket[MIG_STAGING_CHUNKS];
};
extern struct shim_state shim;

/* Ensure the channel is up (cuInit does this); CUDA_SUCCESS or why not. */
CUresult shim_ensure_init(void);

/* A call being written into the ring. */
struct shim_tx {
	struct mig_msg_hdr *hdr;
	uint8_t *body;
	uint32_t slot;
	uint32_t flags;
	uint16_t op;
};

/*
 * Reserve a message of @body_len bytes for @op and lock the ring; write
 * the body, then shim_commit().  @flags: MIG_MSGF_*.
 */
CUresult shim_begin(struct shim_tx *tx, uint16_t op, uint32_t body_len,
		    uint32_t flags);
/*
 * Publish the message and unlock.  For MIG_MSGF_REPLY, wait for the
 * answer and return its result (the slot's data stays valid until this
 * thread's next call); otherwise return CUDA_SUCCESS.
 */
CUresult shim_commit(struct shim_tx *tx);
/* Wake the server if it sleeps (shim_commit() does, after publishing): a
 * call that has work to do before its request can wake it first, so that
 * the server's wake-up overlaps that work. */
void shim_ring_doorbell(void);
struct mig_reply_slot *shim_my_slot(void);
/* Wait until done(w->value, arg), the server's answer in @w: spin a while,
 * then sleep; at once while the server holds our calls back for the GPU
 * turn.  false once the server is gone. */
bool shim_wait_server(struct mig_seqword *w,
		      bool (*done)(uint32_t v, const void *arg), const void *arg);
/* done() for shim_wait_server(): the word equals *(uint32_t *)@arg. */
bool shim_word_is(uint32_t v, const void *arg);

/* One-shot call: args in, reply data (up to @out_len bytes) out. */
CUresult shim_call(uint16_t op, const void *args, uint32_t args_len,
		   uint32_t flags, void *out, uint32_t out_len);

/* Per-op statistics for the summary `mig run` prints. */
void shim_stats_bytes(int dir, uint64_t n); /* 0 htod, 1 dtoh, 2 dtod */
void shim_stats_count(const char *name);

/* --- pointers (memory.c) ------------------------------------------------ */

static inline bool shim_in_segment(const void *p, size_t n)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)shim.seg;

	return shim.seg && a >= b && n <= shim.seg_size &&
	       a - b <= shim.seg_size - n;
}

bool shim_is_device_ptr(CUdeviceptr p);
bool shim_device_range_ok(CUdeviceptr p, size_t n);
void shim_note_global(CUdeviceptr p, size_t size);
/* Virtual memory mappings the program made (vmm.c tells memory.c). */
void shim_note_vmm_map(CUdeviceptr p, size_t size);
void shim_forget_vmm_range(CUdeviceptr p, size_t size);

/* Segment heap (heap.c). */
void *shim_heap_alloc(size_t size);
void shim_heap_free(void *p);
size_t shim_heap_size_of(const void *p);

/* --- contexts (context.c) ------------------------------------------------ */

CUresult shim_check_ctx(void); /* a current context, or the error */

/* --- streams (stream.c) -------------------------------------------------- */

#define SHIM_STREAM_MAGIC 0x5354524du
#define SHIM_EVENT_MAGIC 0x4556544eu
#define SHIM_FUNC_MAGIC 0x46554e43u
#define SHIM_MODULE_MAGIC 0x4d4f4455u

struct shim_stream {
	uint32_t magic;
	uint32_t flags;
	int priority;
	uint64_t id;
};

struct shim_event {
	uint32_t magic;
	uint32_t flags;
	uint64_t id;
};

/*
 * Translate a program's stream to the wire value; *@flags gains
 * MIG_MSGF_PER_THREAD when @per_thread (a _ptsz/_ptds entry point).
 * Returns CUDA_ERROR_INVALID_HANDLE for a handle we never issued.
 */
CUresult shim_stream_id(CUstream s, bool per_thread, uint64_t *id,
			uint32_t *flags);

/* --- modules and functions (module.c) ----------------------------------- */

struct shim_module {
	uint32_t magic;
	uint32_t is_library;
	uint64_t id;
};

struct shim_func {
	uint32_t magic;
	uint32_t is_kernel;
	uint64_t id;
	struct shim_module *owner;
	char *name;
	int attr[MIG_FUNC_ATTR_COUNT];
	uint32_t nparams;
	uint32_t param_bytes;
	struct {
		uint16_t offset, size;
	} *param;
	/* Occupancy answers, keyed by their arguments (PyTorch asks often). */
	pthread_mutex_t occ_lock;
	struct {
		int block, flags, result;
		size_t smem;
	} occ[16];
	unsigned int nocc;
};

struct shim_func *shim_func_from(const void *handle);

#endif /* MIG_SHIM_H */
