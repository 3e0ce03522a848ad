/*
 * export_table.c - cuGetExportTable(), the driver's private tables.
 *
 * The CUDA runtime (libcudart_static.a, which nvcc links by default,
 * libcudart.so.13, and the private copies of the runtime inside cuBLAS,
 * cuDNN, cuSPARSE, NCCL, PyTorch ...) does not live on the public driver
 * API alone.  Early in its initialisation it asks the driver for a handful
 * of undocumented function tables, each named by a 16-byte UUID, through
 * the one public entry point cuGetExportTable().  Without them the runtime
 * refuses to start: cudaGetDeviceCount() already fails.
 *
 * Each table is an array of pointer-sized slots.  In most of them slot 0
 * holds the size of the table in bytes, and the other slots are functions.
 * NVIDIA documents none of this; what we know comes from public
 * reverse-engineering notes (ZLUDA has the most complete ones), from
 * watching what the CUDA 13.0 runtime asks a fake driver for, and from
 * calling the slots of the real driver (580.159) directly.
 * docs/dark-api.md records the tables, the slots, and how each fact was
 * checked.  Where the real table is larger than the part the runtime
 * uses, ours gives only that part and says so in its size slot.
 *
 * The tables the CUDA 13 runtime asks for, in the order it asks:
 *
 *   f8cff951-...   unknown, a chain of small tables; asked for before
 *                  cuInit.  Refused: the runtime then carries on without.
 *   6bd5fb6c-...   runtime interface: primary context, fatbin loading.
 *   a094798c-...   tools runtime callback hooks (profiler buffers).
 *   42d85a81-...   tools thread-local storage.
 *   c693336e-...   context-local storage.
 *   263e8860-...   context checks.
 *   d4082055-...   integrity check: the runtime verifies that it talks to
 *                  a genuine driver by a keyed hash over values it can
 *                  check itself.
 *
 * And one that cuBLAS asks for before its first GEMM:
 *
 *   21318c60-...   context extension: a context's device and number.
 *
 * Everything a slot needs from the GPU is done through the public driver
 * API (cuDevicePrimaryCtxRetain(), cuModuleLoadData() ...), which the rest
 * of the shim forwards to the GPU server.  Context-local storage lives
 * entirely in this process.
 *
 * Logging: with MIG_SHIM_LOG set in the environment every table lookup and
 * every slot call is written to stderr, so that a new CUDA release that
 * asks for a new table or calls a new slot shows up at once.
 */
#include <cuda.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void shim_log_unknown_export_table(const CUuuid *id);
void shim_cls_context_destroyed(CUcontext ctx);

/*
 * Optional: the context code of the shim may provide this to hand out the
 * primary context handle of a device without activating it (see
 * cudart_primary_ctx()).  Weak, so this file links without it.
 */
CUresult shim_primary_ctx_peek(CUcontext *pctx, CUdevice dev)
	__attribute__((weak));

/*
 * <cuda.h> maps cuDeviceGetUuid to cuDeviceGetUuid_v2.  The integrity
 * hash needs the original entry point; see integrity_hash_device().
 */
#undef cuDeviceGetUuid
CUresult CUDAAPI cuDeviceGetUuid(CUuuid *uuid, CUdevice dev);
__attribute__((visibility("default"))) CUresult CUDAAPI cuGetExportTable(const void **ppExportTable,
				  const CUuuid *pExportTableId);

/*
 * Slot values are stored as "const void *": a function pointer or, in
 * slot 0, a byte count.  SLOT_FN and SLOT_SIZE make the intent visible.
 */
#define SLOT_FN(f)	((const void *)(f))
#define SLOT_SIZE(n)	((const void *)(uintptr_t)((n) * sizeof(void *)))

/* ------------------------------------------------------------------ */
/* Logging                                                              */
/* ------------------------------------------------------------------ */

/* -1: not looked at yet, 0: quiet, 1: MIG_SHIM_LOG is set. */
static int dark_log_state = -1;

static int dark_log_on(void)
{
	int s = __atomic_load_n(&dark_log_state, __ATOMIC_RELAXED);

	if (s < 0) {
		s = getenv("MIG_SHIM_LOG") != NULL;
		__atomic_store_n(&dark_log_state, s, __ATOMIC_RELAXED);
	}
	return s;
}

__attribute__((format(printf, 1, 2)))
static void dark_log(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	if (!dark_log_on())
		return;
	n = snprintf(line, sizeof(line), "mig-shim: dark-api: ");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	/* One write() per line, so lines from several threads do not mix. */
	n = strlen(line);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

static void uuid_format(char buf[37], const CUuuid *id)
{
	const unsigned char *b = (const unsigned char *)id->bytes;

	snprintf(buf, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
		 b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/*
 * The project-wide logger for unknown tables lives elsewhere in the shim.
 * This weak copy is what a build without it (or a test that links this
 * file alone) gets.
 */
__attribute__((weak)) void shim_log_unknown_export_table(const CUuuid *id)
{
	char s[37];

	if (!getenv("MIG_SHIM_LOG"))
		return;
	uuid_format(s, id);
	fprintf(stderr, "mig-shim: cuGetExportTable: unknown table %s\n", s);
}

/*
 * A slot whose meaning nobody has worked out.  If the runtime ever calls
 * one, say so (once per slot) and fail the call.  Returning an error code
 * is harmless even if the real slot returns nothing.  These stubs are
 * better than NULL: a call through NULL kills the process without a word.
 */
static CUresult dark_unknown_slot(const char *table, int slot, int *seen)
{
	if (!__atomic_exchange_n(seen, 1, __ATOMIC_RELAXED) || dark_log_on())
		fprintf(stderr,
			"mig-shim: dark-api: unimplemented slot %s[%d] called\n",
			table, slot);
	return CUDA_ERROR_NOT_SUPPORTED;
}

#define UNKNOWN_SLOT(tbl, n)						\
	static CUresult tbl##_slot##n(void)				\
	{								\
		static int seen;					\
									\
		return dark_unknown_slot(#tbl, n, &seen);		\
	}

/* ------------------------------------------------------------------ */
/* 6bd5fb6c-5bf4-e74a-8987-d93912fd9df9: runtime interface             */
/* ------------------------------------------------------------------ */

/*
 * Module loading.  The CUDA 13 runtime does not use these slots for the
 * device code of a program: it passes nvcc's fatbin wrapper straight to
 * cuLibraryLoadData() and launches the CUkernel it gets from
 * cuLibraryGetKernel().  The slots stay for other callers.
 *
 * The runtime registers the device code of each translation unit with
 * __cudaRegisterFatBinary(), passing a "fatbin wrapper" that nvcc emits:
 *
 *	struct { u32 magic; u32 version; const void *fatbin; void *extra; }
 *
 * The fatbin itself starts with its own header (magic 0xba55ed50, u16
 * version, u16 header size, u64 size of what follows).  Slots 1 and 6 take
 * the wrapper, slot 8 takes the fatbin directly; both forms are accepted
 * by all three here, told apart by their magic.
 */
#define FATBINC_MAGIC	0x466243b1u
#define FATBIN_MAGIC	0xba55ed50u

struct fatbinc_wrapper {
	uint32_t magic;
	uint32_t version;
	const void *fatbin;
	const void *extra;
};

static const void *fatbin_image(const void *p)
{
	const struct fatbinc_wrapper *w = p;

	if (!p)
		return NULL;
	if (w->magic == FATBINC_MAGIC)
		return w->fatbin;
	return p;
}

/*
 * Slot 1: load the fatbin behind @wrapper as a module in the current
 * context.  cuModuleLoadData() takes fatbins as well as cubins and PTX.
 */
static CUresult cudart_module_from_fatbin(CUmodule *mod, const void *wrapper)
{
	const void *image = fatbin_image(wrapper);

	dark_log("cudart[1](mod=%p, wrapper=%p)", (void *)mod, wrapper);
	if (!mod || !image)
		return CUDA_ERROR_INVALID_VALUE;
	return cuModuleLoadData(mod, image);
}

/*
 * Slot 2: the primary context of @dev, without activating it.  The
 * runtime asks for the handle while it enumerates devices, once per device.
 * On first real use it calls cuCtxSetCurrent() with that handle while the
 * context is still inactive, and only then cuDevicePrimaryCtxRetain(),
 * which must return the same handle.  The real driver behaves so (checked
 * on a 580 driver): the context stays inactive after this slot, and
 * cuCtxSetCurrent() on the inactive primary context succeeds.
 *
 * The public API has no "peek".  Unless the shim provides one, retain and
 * at once release: the reference count ends as it was and the handle is
 * the one a later retain returns.  It costs a context creation and
 * destruction on the server when the context was inactive.
 */
static CUresult cudart_primary_ctx(CUcontext *pctx, CUdevice dev)
{
	CUresult rc;

	dark_log("cudart[2](pctx=%p, dev=%d)", (void *)pctx, dev);
	if (!pctx)
		return CUDA_ERROR_INVALID_VALUE;
	if (shim_primary_ctx_peek)
		return shim_primary_ctx_peek(pctx, dev);
	rc = cuDevicePrimaryCtxRetain(pctx, dev);
	if (rc != CUDA_SUCCESS)
		return rc;
	return cuDevicePrimaryCtxRelease(dev);
}

/*
 * Slots 6 and 8: the same load with three more arguments (two pointers and
 * an unsigned).  Their meaning is unknown and no caller was seen, so a
 * call with anything but zeros there is refused rather than half done.
 * Slot 8 takes the fatbin first and the module second.
 */
static CUresult cudart_module_from_fatbin_ext(CUmodule *mod,
					      const void *wrapper, void *a3,
					      void *a4, unsigned int a5)
{
	const void *image = fatbin_image(wrapper);

	dark_log("cudart[6](mod=%p, wrapper=%p, %p, %p, %u)",
		 (void *)mod, wrapper, a3, a4, a5);
	if (a3 || a4 || a5)
		return CUDA_ERROR_NOT_SUPPORTED;
	if (!mod || !image)
		return CUDA_ERROR_INVALID_VALUE;
	return cuModuleLoadData(mod, image);
}

static CUresult cudart_module_from_fatbin_ext2(const void *fatbin,
					       CUmodule *mod, void *a3,
					       void *a4, unsigned int a5)
{
	const void *image = fatbin_image(fatbin);

	dark_log("cudart[8](fatbin=%p, mod=%p, %p, %p, %u)",
		 fatbin, (void *)mod, a3, a4, a5);
	if (a3 || a4 || a5)
		return CUDA_ERROR_NOT_SUPPORTED;
	if (!mod || !image)
		return CUDA_ERROR_INVALID_VALUE;
	return cuModuleLoadData(mod, image);
}

/* Slot 7: takes one word and returns nothing; nothing to do. */
static void cudart_slot7_noop(uintptr_t arg)
{
	dark_log("cudart[7](%#lx)", (unsigned long)arg);
}

/*
 * Slot 12 (new in CUDA 13): per ZLUDA's notes the real driver loads the
 * PTX compiler and friends here.  The client compiles nothing; the
 * server has them.  Not called by the runtime in our traces.
 */
static CUresult cudart_load_compilers(void)
{
	dark_log("cudart[12]()");
	return CUDA_SUCCESS;
}

UNKNOWN_SLOT(cudart, 3)
UNKNOWN_SLOT(cudart, 4)
UNKNOWN_SLOT(cudart, 5)
UNKNOWN_SLOT(cudart, 9)
UNKNOWN_SLOT(cudart, 11)

/* 13 slots, as in the real driver, which leaves slot 10 empty too. */
#define CUDART_SLOTS 13

static const void *const cudart_table[CUDART_SLOTS] = {
	SLOT_SIZE(CUDART_SLOTS),
	SLOT_FN(cudart_module_from_fatbin),
	SLOT_FN(cudart_primary_ctx),
	SLOT_FN(cudart_slot3),
	SLOT_FN(cudart_slot4),
	SLOT_FN(cudart_slot5),
	SLOT_FN(cudart_module_from_fatbin_ext),
	SLOT_FN(cudart_slot7_noop),
	SLOT_FN(cudart_module_from_fatbin_ext2),
	SLOT_FN(cudart_slot9),
	NULL,
	SLOT_FN(cudart_slot11),
	SLOT_FN(cudart_load_compilers),
};

/* ------------------------------------------------------------------ */
/* a094798c-2e74-2e74-93f2-0800200c0a66: tools runtime callback hooks  */
/* ------------------------------------------------------------------ */

/*
 * Profilers (CUPTI) hook the runtime through two arrays the driver owns;
 * the runtime fetches them once at start-up from slots 2 and 6 as
 * (pointer, count), presumably to look for installed callbacks.  The
 * real driver reports counts of 1024 and 14; the unit is not known, so
 * ours are sized for 8-byte entries.  They stay zero: no tool attached.
 */
#define HOOKS_BUF2_COUNT 1024
#define HOOKS_BUF6_COUNT 14

static uint64_t hooks_buf2[HOOKS_BUF2_COUNT];
static uint64_t hooks_buf6[HOOKS_BUF6_COUNT];

static void hooks_get_buf2(void **ptr, size_t *count)
{
	dark_log("hooks[2](%p, %p)", (void *)ptr, (void *)count);
	if (ptr)
		*ptr = hooks_buf2;
	if (count)
		*count = HOOKS_BUF2_COUNT;
}

static void hooks_get_buf6(void **ptr, size_t *count)
{
	dark_log("hooks[6](%p, %p)", (void *)ptr, (void *)count);
	if (ptr)
		*ptr = hooks_buf6;
	if (count)
		*count = HOOKS_BUF6_COUNT;
}

UNKNOWN_SLOT(hooks, 1)
UNKNOWN_SLOT(hooks, 3)
UNKNOWN_SLOT(hooks, 4)
UNKNOWN_SLOT(hooks, 5)

#define HOOKS_SLOTS 7

static const void *const hooks_table[HOOKS_SLOTS] = {
	SLOT_SIZE(HOOKS_SLOTS),
	SLOT_FN(hooks_slot1),
	SLOT_FN(hooks_get_buf2),
	SLOT_FN(hooks_slot3),
	SLOT_FN(hooks_slot4),
	SLOT_FN(hooks_slot5),
	SLOT_FN(hooks_get_buf6),
};

/* ------------------------------------------------------------------ */
/* 42d85a81-23f6-cb47-8298-f6e78a3aecdc: tools thread-local storage    */
/* ------------------------------------------------------------------ */

/*
 * The runtime asks for this table but calls no slot in it, on our fake
 * driver or on the real one.  The real table has three slots.  Slot 2
 * of the real driver stores the calling thread's current context through
 * its one pointer argument; cuBLASLt is said to use it, so ours does the
 * same.  Slot 1 returns success and writes nothing we could see; what it
 * is for is unknown.
 */
static CUresult tools_tls_current_ctx(CUcontext *pctx)
{
	dark_log("tools_tls[2](%p)", (void *)pctx);
	if (!pctx)
		return CUDA_ERROR_INVALID_VALUE;
	return cuCtxGetCurrent(pctx);
}

UNKNOWN_SLOT(tools_tls, 1)

#define TOOLS_TLS_SLOTS 3

static const void *const tools_tls_table[TOOLS_TLS_SLOTS] = {
	SLOT_SIZE(TOOLS_TLS_SLOTS),
	SLOT_FN(tools_tls_slot1),
	SLOT_FN(tools_tls_current_ctx),
};

/* ------------------------------------------------------------------ */
/* c693336e-1121-df11-a8c3-68f355d89593: context-local storage         */
/* ------------------------------------------------------------------ */

/*
 * The runtime keeps its per-context state as values the driver stores
 * for it, keyed by (context, key).  A value may come with a destructor, which the driver
 * calls as dtor(ctx, key, value) when the context goes away.
 *
 * This table has no size slot: slot 0 is already a function.  The real
 * one has three slots followed by a NULL; so has ours.
 *
 * The rules below are those of the real driver, checked by calling its
 * slots: a key can be stored once (storing it again fails and keeps the
 * old value), deleting or fetching a missing key fails with
 * CUDA_ERROR_INVALID_HANDLE, delete does not call the destructor, and the
 * destructors run when the context is destroyed (its last
 * cuDevicePrimaryCtxRelease(), cuDevicePrimaryCtxReset(), cuCtxDestroy()).
 *
 * The store is a small hash table of chained entries behind one mutex.
 * The runtime touches it on every runtime call that needs a context, so
 * lookups must be cheap, but there are only a few entries per context.
 * A NULL context means the calling thread's current context.
 */
typedef void (*cls_dtor_fn)(CUcontext ctx, void *key, void *value);

struct cls_entry {
	struct cls_entry *next;
	CUcontext ctx;
	void *key;
	void *value;
	cls_dtor_fn dtor;
};

#define CLS_BUCKETS 64

static struct cls_entry *cls_bucket[CLS_BUCKETS];
static pthread_mutex_t cls_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned int cls_hash(CUcontext ctx, void *key)
{
	uint64_t h = (uintptr_t)ctx * 0x9e3779b97f4a7c15ull;

	h ^= (uintptr_t)key * 0xc2b2ae3d27d4eb4full;
	return (unsigned int)(h >> 58) % CLS_BUCKETS;
}

/* Caller holds cls_lock.  Returns the link that points at the entry. */
static struct cls_entry **cls_find(CUcontext ctx, void *key)
{
	struct cls_entry **pp = &cls_bucket[cls_hash(ctx, key)];

	while (*pp && ((*pp)->ctx != ctx || (*pp)->key != key))
		pp = &(*pp)->next;
	return pp;
}

static CUresult cls_resolve_ctx(CUcontext *ctx)
{
	CUresult rc;

	if (*ctx)
		return CUDA_SUCCESS;
	rc = cuCtxGetCurrent(ctx);
	if (rc != CUDA_SUCCESS)
		return rc;
	return *ctx ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}

/* Slot 0: store @value under (@ctx, @key), unless the key is taken. */
static CUresult cls_put(CUcontext ctx, void *key, void *value,
			cls_dtor_fn dtor)
{
	struct cls_entry **pp, *e;
	CUresult rc;

	dark_log("cls[0](ctx=%p, key=%p, value=%p, dtor=%p)",
		 (void *)ctx, key, value, (void *)dtor);
	rc = cls_resolve_ctx(&ctx);
	if (rc != CUDA_SUCCESS)
		return rc;
	pthread_mutex_lock(&cls_lock);
	pp = cls_find(ctx, key);
	if (*pp) {
		pthread_mutex_unlock(&cls_lock);
		return CUDA_ERROR_INVALID_HANDLE;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		pthread_mutex_unlock(&cls_lock);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	e->ctx = ctx;
	e->key = key;
	e->value = value;
	e->dtor = dtor;
	*pp = e;
	pthread_mutex_unlock(&cls_lock);
	return CUDA_SUCCESS;
}

/*
 * Slot 1: forget (@ctx, @key).  The destructor is not called: the caller
 * is the owner and is cleaning up itself.
 */
static CUresult cls_delete(CUcontext ctx, void *key)
{
	struct cls_entry **pp, *e;
	CUresult rc;

	dark_log("cls[1](ctx=%p, key=%p)", (void *)ctx, key);
	rc = cls_resolve_ctx(&ctx);
	if (rc != CUDA_SUCCESS)
		return rc;
	pthread_mutex_lock(&cls_lock);
	pp = cls_find(ctx, key);
	e = *pp;
	if (e)
		*pp = e->next;
	pthread_mutex_unlock(&cls_lock);
	if (!e)
		return CUDA_ERROR_INVALID_HANDLE;
	free(e);
	return CUDA_SUCCESS;
}

/*
 * Slot 2: fetch the value under (@ctx, @key); note the value pointer comes
 * first here.  A missing entry is CUDA_ERROR_INVALID_HANDLE: the runtime
 * takes that as "first use of this context" and sets its state up.
 */
static CUresult cls_get(void **value, CUcontext ctx, void *key)
{
	struct cls_entry *e;
	CUresult rc;

	rc = cls_resolve_ctx(&ctx);
	if (rc != CUDA_SUCCESS) {
		dark_log("cls[2](ctx=NULL, key=%p) -> no context", key);
		return rc;
	}
	if (!value)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&cls_lock);
	e = *cls_find(ctx, key);
	if (e)
		*value = e->value;
	pthread_mutex_unlock(&cls_lock);
	dark_log("cls[2](ctx=%p, key=%p) -> %s", (void *)ctx, key,
		 e ? "found" : "missing");
	return e ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

static const void *const cls_table[4] = {
	SLOT_FN(cls_put),
	SLOT_FN(cls_delete),
	SLOT_FN(cls_get),
	NULL,
};

/*
 * shim_cls_context_destroyed - run and drop every value stored for @ctx.
 *
 * The context code of the shim calls this when a context ends: on
 * cuCtxDestroy(), and on cuDevicePrimaryCtxReset() or the last
 * cuDevicePrimaryCtxRelease() of a primary context.  The entries are
 * unlinked under the lock and the destructors run outside it, because a
 * destructor is runtime code that may well call back into this table.
 */
void shim_cls_context_destroyed(CUcontext ctx)
{
	struct cls_entry *doomed = NULL, **pp, *e;
	int i;

	pthread_mutex_lock(&cls_lock);
	for (i = 0; i < CLS_BUCKETS; i++) {
		pp = &cls_bucket[i];
		while ((e = *pp)) {
			if (e->ctx == ctx) {
				*pp = e->next;
				e->next = doomed;
				doomed = e;
			} else {
				pp = &e->next;
			}
		}
	}
	pthread_mutex_unlock(&cls_lock);

	while ((e = doomed)) {
		doomed = e->next;
		dark_log("cls: ctx %p gone, dtor(key=%p, value=%p)",
			 (void *)ctx, e->key, e->value);
		if (e->dtor)
			e->dtor(e->ctx, e->key, e->value);
		free(e);
	}
}

/* ------------------------------------------------------------------ */
/* 263e8860-7cd2-6143-92f6-bbd5006dfa7e: context checks                */
/* ------------------------------------------------------------------ */

/*
 * The runtime calls slot 3 once at start-up and slot 2 whenever it takes
 * a context into use.  Slot 2 reports flags about a context that are
 * never seen set on an ordinary context: the real driver writes 0 to
 * *flags and leaves *detail alone, and so do we.  Slot 3 takes no
 * arguments and returns 0 on the real driver.
 *
 * The real table has 15 slots; ours stops after the two the runtime uses.
 */
static CUresult ctxcheck_context(CUcontext ctx, uint32_t *flags,
				 const void **detail)
{
	dark_log("ctxcheck[2](ctx=%p, %p, %p)", (void *)ctx, (void *)flags,
		 (void *)detail);
	if (flags)
		*flags = 0;
	return CUDA_SUCCESS;
}

static uint32_t ctxcheck_global(void)
{
	dark_log("ctxcheck[3]()");
	return 0;
}

UNKNOWN_SLOT(ctxcheck, 1)

#define CTXCHECK_SLOTS 4

static const void *const ctxcheck_table[CTXCHECK_SLOTS] = {
	SLOT_SIZE(CTXCHECK_SLOTS),
	SLOT_FN(ctxcheck_slot1),
	SLOT_FN(ctxcheck_context),
	SLOT_FN(ctxcheck_global),
};

/* ------------------------------------------------------------------ */
/* d4082055-bde6-704b-8d34-ba123c66e1f2: integrity check               */
/* ------------------------------------------------------------------ */

/*
 * Slot 1, check(version, unix_seconds, out[2]), proves to the runtime
 * that it talks to NVIDIA's driver.  The runtime calls it three times,
 * with version = V*10 + 0, +1 and +2 (V its CUDA version, 1300 for 13.0),
 * and compares the answers with what it computes itself:
 *
 *   version % 10 == 0, 1: two fixed 16-byte constants;
 *   otherwise: HMAC-MD2 with a fixed 16-byte key over
 *
 *	u32 driver version (cuDriverGetVersion())
 *	u32 version        (the argument)
 *	u32 process id
 *	u32 thread id      (low 32 bits of pthread_self())
 *	ptr address of the runtime interface table (6bd5fb6c)
 *	ptr address of this table
 *	ptr address of this function (slot 1 of this table)
 *	u64 unix_seconds   (the argument)
 *
 *   followed, for each device, by its 16-byte UUID (cuDeviceGetUuid())
 *   and its PCI domain, bus and device numbers as three s32.
 *
 * The 16-byte digest is stored as two native-endian u64.  A wrong answer
 * makes every runtime call fail with error 103, "integrity checks failed"
 * (cudaErrorSoftwareValidityNotEstablished).  This code gives the same
 * digests as the real driver for the same inputs, and the real runtime on
 * a real GPU accepts them (docs/dark-api.md).
 *
 * MD2 is RFC 1319; HMAC is RFC 2104 with MD2's 16-byte block.
 */

/* MD2's substitution table, built from the digits of pi (RFC 1319). */
static const uint8_t md2_s[256] = {
	0x29, 0x2e, 0x43, 0xc9, 0xa2, 0xd8, 0x7c, 0x01,
	0x3d, 0x36, 0x54, 0xa1, 0xec, 0xf0, 0x06, 0x13,
	0x62, 0xa7, 0x05, 0xf3, 0xc0, 0xc7, 0x73, 0x8c,
	0x98, 0x93, 0x2b, 0xd9, 0xbc, 0x4c, 0x82, 0xca,
	0x1e, 0x9b, 0x57, 0x3c, 0xfd, 0xd4, 0xe0, 0x16,
	0x67, 0x42, 0x6f, 0x18, 0x8a, 0x17, 0xe5, 0x12,
	0xbe, 0x4e, 0xc4, 0xd6, 0xda, 0x9e, 0xde, 0x49,
	0xa0, 0xfb, 0xf5, 0x8e, 0xbb, 0x2f, 0xee, 0x7a,
	0xa9, 0x68, 0x79, 0x91, 0x15, 0xb2, 0x07, 0x3f,
	0x94, 0xc2, 0x10, 0x89, 0x0b, 0x22, 0x5f, 0x21,
	0x80, 0x7f, 0x5d, 0x9a, 0x5a, 0x90, 0x32, 0x27,
	0x35, 0x3e, 0xcc, 0xe7, 0xbf, 0xf7, 0x97, 0x03,
	0xff, 0x19, 0x30, 0xb3, 0x48, 0xa5, 0xb5, 0xd1,
	0xd7, 0x5e, 0x92, 0x2a, 0xac, 0x56, 0xaa, 0xc6,
	0x4f, 0xb8, 0x38, 0xd2, 0x96, 0xa4, 0x7d, 0xb6,
	0x76, 0xfc, 0x6b, 0xe2, 0x9c, 0x74, 0x04, 0xf1,
	0x45, 0x9d, 0x70, 0x59, 0x64, 0x71, 0x87, 0x20,
	0x86, 0x5b, 0xcf, 0x65, 0xe6, 0x2d, 0xa8, 0x02,
	0x1b, 0x60, 0x25, 0xad, 0xae, 0xb0, 0xb9, 0xf6,
	0x1c, 0x46, 0x61, 0x69, 0x34, 0x40, 0x7e, 0x0f,
	0x55, 0x47, 0xa3, 0x23, 0xdd, 0x51, 0xaf, 0x3a,
	0xc3, 0x5c, 0xf9, 0xce, 0xba, 0xc5, 0xea, 0x26,
	0x2c, 0x53, 0x0d, 0x6e, 0x85, 0x28, 0x84, 0x09,
	0xd3, 0xdf, 0xcd, 0xf4, 0x41, 0x81, 0x4d, 0x52,
	0x6a, 0xdc, 0x37, 0xc8, 0x6c, 0xc1, 0xab, 0xfa,
	0x24, 0xe1, 0x7b, 0x08, 0x0c, 0xbd, 0xb1, 0x4a,
	0x78, 0x88, 0x95, 0x8b, 0xe3, 0x63, 0xe8, 0x6d,
	0xe9, 0xcb, 0xd5, 0xfe, 0x3b, 0x00, 0x1d, 0x39,
	0xf2, 0xef, 0xb7, 0x0e, 0x66, 0x58, 0xd0, 0xe4,
	0xa6, 0x77, 0x72, 0xf8, 0xeb, 0x75, 0x4b, 0x0a,
	0x31, 0x44, 0x50, 0xb4, 0x8f, 0xed, 0x1f, 0x1a,
	0xdb, 0x99, 0x8d, 0x33, 0x9f, 0x11, 0x83, 0x14,
};

struct md2 {
	uint8_t x[48];		/* state, block, state ^ block */
	uint8_t c[16];		/* running checksum */
	uint8_t l;		/* last checksum byte */
	uint8_t n;		/* bytes waiting in x[16..31] */
};

static void md2_init(struct md2 *m)
{
	memset(m, 0, sizeof(*m));
}

/* Feed one byte; compress when a 16-byte block is complete. */
static void md2_byte(struct md2 *m, uint8_t b)
{
	unsigned int j, k, t;

	m->x[16 + m->n] = b;
	m->x[32 + m->n] = m->x[m->n] ^ b;
	m->c[m->n] ^= md2_s[b ^ m->l];
	m->l = m->c[m->n];
	if (++m->n < 16)
		return;
	m->n = 0;
	t = 0;
	for (j = 0; j < 18; j++) {
		for (k = 0; k < 48; k++) {
			m->x[k] ^= md2_s[t];
			t = m->x[k];
		}
		t = (t + j) & 0xff;
	}
}

static void md2_update(struct md2 *m, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len--)
		md2_byte(m, *p++);
}

static void md2_final(struct md2 *m, uint8_t out[16])
{
	uint8_t pad = 16 - m->n, c[16];
	unsigned int i;

	for (i = 0; i < pad; i++)
		md2_byte(m, pad);
	memcpy(c, m->c, 16);
	md2_update(m, c, 16);
	memcpy(out, m->x, 16);
}

static const uint8_t integrity_key[16] = {
	0x14, 0x6a, 0xdd, 0xae, 0x53, 0xa9, 0xa7, 0x52,
	0xaa, 0x08, 0x41, 0x36, 0x0b, 0xf5, 0x5a, 0x9f,
};

/* Start an HMAC pass: hash the key xor'd with @pad as the first block. */
static void hmac_md2_begin(struct md2 *m, uint8_t pad)
{
	unsigned int i;

	md2_init(m);
	for (i = 0; i < 16; i++)
		md2_byte(m, integrity_key[i] ^ pad);
}

struct integrity_head {
	uint32_t driver_version;
	uint32_t version;
	uint32_t pid;
	uint32_t tid;
	const void *cudart_table;
	const void *integrity_table;
	const void *check_fn;
	uint64_t unix_seconds;
};

struct integrity_dev {
	CUuuid uuid;
	int32_t pci_domain;
	int32_t pci_bus;
	int32_t pci_device;
};

_Static_assert(sizeof(struct integrity_head) == 48, "hash input layout");
_Static_assert(sizeof(struct integrity_dev) == 28, "hash input layout");

static CUresult integrity_check(uint32_t version, uint64_t unix_seconds,
				uint64_t out[2]);

#define INTEGRITY_SLOTS 3

UNKNOWN_SLOT(integrity, 2)

static const void *const integrity_table[INTEGRITY_SLOTS] = {
	SLOT_SIZE(INTEGRITY_SLOTS),
	SLOT_FN(integrity_check),
	SLOT_FN(integrity_slot2),
};

/*
 * The runtime hashes the UUID it got at start-up from the entry point it
 * resolved as cuGetProcAddress("cuDeviceGetUuid", 9020), that is the
 * original cuDeviceGetUuid, not _v2 (which differs on a MIG instance).
 * Use the same one, or the hashes differ.
 */
static CUresult integrity_hash_device(struct md2 *m, int ordinal)
{
	struct integrity_dev d;
	CUdevice dev;
	CUresult rc;

	memset(&d, 0, sizeof(d));
	rc = cuDeviceGet(&dev, ordinal);
	if (rc == CUDA_SUCCESS)
		rc = cuDeviceGetUuid(&d.uuid, dev);
	if (rc == CUDA_SUCCESS)
		rc = cuDeviceGetAttribute(&d.pci_domain,
					  CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID,
					  dev);
	if (rc == CUDA_SUCCESS)
		rc = cuDeviceGetAttribute(&d.pci_bus,
					  CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, dev);
	if (rc == CUDA_SUCCESS)
		rc = cuDeviceGetAttribute(&d.pci_device,
					  CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID,
					  dev);
	if (rc == CUDA_SUCCESS)
		md2_update(m, &d, sizeof(d));
	return rc;
}

static CUresult integrity_check(uint32_t version, uint64_t unix_seconds,
				uint64_t out[2])
{
	static const uint64_t fixed[2][2] = {
		{ 0x3341181c03cb675cull, 0x8ed383aa1f4cd1e8ull },
		{ 0x1841181c03cb675cull, 0x8ed383aa1f4cd1e8ull },
	};
	struct integrity_head head;
	uint8_t inner[16], digest[16];
	int drv = 0, count = 0, i;
	struct md2 m;
	CUresult rc;

	dark_log("integrity[1](version=%u, t=%llu, out=%p)", version,
		 (unsigned long long)unix_seconds, (void *)out);
	if (!out)
		return CUDA_ERROR_INVALID_VALUE;
	if (version % 10 < 2) {
		out[0] = fixed[version % 10][0];
		out[1] = fixed[version % 10][1];
		return CUDA_SUCCESS;
	}

	rc = cuDriverGetVersion(&drv);
	if (rc == CUDA_SUCCESS)
		rc = cuDeviceGetCount(&count);
	if (rc != CUDA_SUCCESS)
		return rc;

	memset(&head, 0, sizeof(head));
	head.driver_version = (uint32_t)drv;
	head.version = version;
	head.pid = (uint32_t)getpid();
	head.tid = (uint32_t)(uintptr_t)pthread_self();
	head.cudart_table = cudart_table;
	head.integrity_table = integrity_table;
	head.check_fn = integrity_table[1];
	head.unix_seconds = unix_seconds;

	hmac_md2_begin(&m, 0x36);
	md2_update(&m, &head, sizeof(head));
	for (i = 0; i < count; i++) {
		rc = integrity_hash_device(&m, i);
		if (rc != CUDA_SUCCESS)
			return rc;
	}
	md2_final(&m, inner);

	hmac_md2_begin(&m, 0x5c);
	md2_update(&m, inner, sizeof(inner));
	md2_final(&m, digest);
	memcpy(out, digest, sizeof(digest));
	return CUDA_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* 21318c60-9714-3248-8ca6-41ff7324c8f2: context extension             */
/* ------------------------------------------------------------------ */

/*
 * Asked for by cuBLAS (and cuBLASLt, cuFFT) when it first runs a kernel;
 * without it a GEMM answers CUBLAS_STATUS_NOT_SUPPORTED.  Driver 580.159
 * gives 93 slots (a size and 92 functions).  What we checked by calling
 * the real driver's slots directly (docs/dark-api.md):
 *   slot 3, (ctx, int *device): the context's device; a NULL context is
 *           CUDA_ERROR_INVALID_CONTEXT.
 *   slot 4, (ctx, unsigned long long *number): the context's number,
 *           1 for the first context of the process, 2 for the next ...
 *           (what cuCtxGetId answers); a NULL context gives 0, success.
 *           cuBLAS calls it with a third argument (a pointer) that the
 *           driver leaves alone.
 * Slots we do not implement log their index and arguments once and answer
 * CUDA_ERROR_NOT_SUPPORTED, so that what a library calls shows up.
 */
#define CTXEXT_SLOTS 93

static CUresult ctxext_device(CUcontext ctx, int *device)
{
	CUdevice dev;
	CUresult rc;

	dark_log("21318c60 slot 3: context %p's device", (void *)ctx);
	if (!ctx)
		return CUDA_ERROR_INVALID_CONTEXT;
	if (!device)
		return CUDA_ERROR_INVALID_VALUE;
	rc = cuCtxGetDevice_v2(&dev, ctx);
	if (rc == CUDA_SUCCESS)
		*device = dev;
	return rc;
}

static CUresult ctxext_number(CUcontext ctx, unsigned long long *number)
{
	dark_log("21318c60 slot 4: context %p's number", (void *)ctx);
	if (!number)
		return CUDA_ERROR_INVALID_VALUE;
	if (!ctx) {
		*number = 0;
		return CUDA_SUCCESS;
	}
	return cuCtxGetId(ctx, number);
}

static void ctxext_unimplemented(int slot, uint64_t a0, uint64_t a1,
				 uint64_t a2, uint64_t a3)
{
	static unsigned char seen[CTXEXT_SLOTS];
	char line[200];
	int n;

	if (__atomic_exchange_n(&seen[slot], 1, __ATOMIC_RELAXED))
		return;
	n = snprintf(line, sizeof(line),
		     "mig-shim: dark-api: 21318c60 slot %d is not implemented "
		     "(args %#llx %#llx %#llx %#llx)\n", slot,
		     (unsigned long long)a0, (unsigned long long)a1,
		     (unsigned long long)a2, (unsigned long long)a3);
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

#define CTXEXT_STUB(n)                                                        \
	static CUresult ctxext_stub_##n(uint64_t a0, uint64_t a1, uint64_t a2, \
					uint64_t a3)                          \
	{                                                                     \
		ctxext_unimplemented(n, a0, a1, a2, a3);                      \
		return CUDA_ERROR_NOT_SUPPORTED;                              \
	}
#define CTXEXT_STUB10(t)                                                      \
	CTXEXT_STUB(t##0) CTXEXT_STUB(t##1) CTXEXT_STUB(t##2) CTXEXT_STUB(t##3) \
	CTXEXT_STUB(t##4) CTXEXT_STUB(t##5) CTXEXT_STUB(t##6) CTXEXT_STUB(t##7) \
	CTXEXT_STUB(t##8) CTXEXT_STUB(t##9)
CTXEXT_STUB(1) CTXEXT_STUB(2) CTXEXT_STUB(5)
CTXEXT_STUB(6) CTXEXT_STUB(7) CTXEXT_STUB(8) CTXEXT_STUB(9)
CTXEXT_STUB10(1) CTXEXT_STUB10(2) CTXEXT_STUB10(3) CTXEXT_STUB10(4)
CTXEXT_STUB10(5) CTXEXT_STUB10(6) CTXEXT_STUB10(7) CTXEXT_STUB10(8)
CTXEXT_STUB(90) CTXEXT_STUB(91) CTXEXT_STUB(92)

#define S(n) SLOT_FN(ctxext_stub_##n)
#define S10(t) S(t##0), S(t##1), S(t##2), S(t##3), S(t##4), S(t##5), S(t##6), \
	S(t##7), S(t##8), S(t##9)
static const void *const ctxext_table[CTXEXT_SLOTS] = {
	SLOT_SIZE(CTXEXT_SLOTS), S(1), S(2), SLOT_FN(ctxext_device),
	SLOT_FN(ctxext_number), S(5), S(6), S(7), S(8), S(9), S10(1), S10(2),
	S10(3), S10(4), S10(5), S10(6), S10(7), S10(8), S(90), S(91), S(92),
};
#undef S
#undef S10

/* ------------------------------------------------------------------ */
/* The lookup                                                           */
/* ------------------------------------------------------------------ */

struct export_table {
	const char *name;
	unsigned char uuid[16];
	const void *const *table;
};

static const struct export_table export_tables[] = {
	{ "cudart-interface",
	  { 0x6b, 0xd5, 0xfb, 0x6c, 0x5b, 0xf4, 0xe7, 0x4a,
	    0x89, 0x87, 0xd9, 0x39, 0x12, 0xfd, 0x9d, 0xf9 },
	  cudart_table },
	{ "tools-runtime-hooks",
	  { 0xa0, 0x94, 0x79, 0x8c, 0x2e, 0x74, 0x2e, 0x74,
	    0x93, 0xf2, 0x08, 0x00, 0x20, 0x0c, 0x0a, 0x66 },
	  hooks_table },
	{ "tools-tls",
	  { 0x42, 0xd8, 0x5a, 0x81, 0x23, 0xf6, 0xcb, 0x47,
	    0x82, 0x98, 0xf6, 0xe7, 0x8a, 0x3a, 0xec, 0xdc },
	  tools_tls_table },
	{ "context-local-storage",
	  { 0xc6, 0x93, 0x33, 0x6e, 0x11, 0x21, 0xdf, 0x11,
	    0xa8, 0xc3, 0x68, 0xf3, 0x55, 0xd8, 0x95, 0x93 },
	  cls_table },
	{ "context-checks",
	  { 0x26, 0x3e, 0x88, 0x60, 0x7c, 0xd2, 0x61, 0x43,
	    0x92, 0xf6, 0xbb, 0xd5, 0x00, 0x6d, 0xfa, 0x7e },
	  ctxcheck_table },
	{ "integrity-check",
	  { 0xd4, 0x08, 0x20, 0x55, 0xbd, 0xe6, 0x70, 0x4b,
	    0x8d, 0x34, 0xba, 0x12, 0x3c, 0x66, 0xe1, 0xf2 },
	  integrity_table },
	{ "context-extension",
	  { 0x21, 0x31, 0x8c, 0x60, 0x97, 0x14, 0x32, 0x48,
	    0x8c, 0xa6, 0x41, 0xff, 0x73, 0x24, 0xc8, 0xf2 },
	  ctxext_table },
};

/*
 * Remember which unknown UUIDs were reported, so each is logged once.
 * Programs ask for few tables; past the limit we simply stop remembering.
 */
#define UNKNOWN_MAX 32

static CUuuid unknown_seen[UNKNOWN_MAX];
static int unknown_count;
static pthread_mutex_t unknown_lock = PTHREAD_MUTEX_INITIALIZER;

static void note_unknown(const CUuuid *id)
{
	int i, fresh = 1;

	pthread_mutex_lock(&unknown_lock);
	for (i = 0; i < unknown_count; i++) {
		if (!memcmp(&unknown_seen[i], id, sizeof(*id))) {
			fresh = 0;
			break;
		}
	}
	if (fresh && unknown_count < UNKNOWN_MAX)
		unknown_seen[unknown_count++] = *id;
	pthread_mutex_unlock(&unknown_lock);
	if (fresh)
		shim_log_unknown_export_table(id);
}

/*
 * cuGetExportTable - look up a private table by UUID.
 *
 * Unknown UUIDs get CUDA_ERROR_INVALID_VALUE with *ppExportTable set to
 * NULL, as the real driver does.  Callers probe for optional tables
 * (f8cff951-... is one) and take the error as "absent".
 */
CUresult CUDAAPI cuGetExportTable(const void **ppExportTable,
				  const CUuuid *pExportTableId)
{
	char s[37];
	size_t i;

	if (!ppExportTable || !pExportTableId)
		return CUDA_ERROR_INVALID_VALUE;
	for (i = 0; i < sizeof(export_tables) / sizeof(export_tables[0]); i++) {
		if (!memcmp(export_tables[i].uuid, pExportTableId->bytes, 16)) {
			*ppExportTable = export_tables[i].table;
			if (dark_log_on()) {
				uuid_format(s, pExportTableId);
				dark_log("cuGetExportTable(%s) -> %s", s,
					 export_tables[i].name);
			}
			return CUDA_SUCCESS;
		}
	}
	*ppExportTable = NULL;
	if (dark_log_on()) {
		uuid_format(s, pExportTableId);
		dark_log("cuGetExportTable(%s) -> not found", s);
	}
	note_unknown(pExportTableId);
	return CUDA_ERROR_INVALID_VALUE;
}
