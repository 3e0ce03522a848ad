/*
 * context.c - contexts, as the program sees them.
 *
 * The server owns one context: the primary context of its partition.  The
 * shim keeps the per-thread current-context stack and the primary
 * context's reference count itself, so cuCtxGetCurrent/cuCtxGetDevice and
 * cuDevicePrimaryCtxGetState (asked 100 000+ times per PyTorch inference)
 * cost nothing.  cuCtxCreate gives another handle on the same server
 * context: allocations and modules are shared between them, which no
 * single-tenant program can observe except through cuCtxGetId.
 */
#include <stdlib.h>
#include <string.h>

#include "shim.h"

#define CTX_MAGIC 0x43545821u
#define CTX_STACK 16

struct shim_ctx {
	uint32_t magic;
	uint32_t flags;
	unsigned long long id;
	int primary;
};

/* Context-local storage lives in export_table.c. */
void shim_cls_context_destroyed(CUcontext ctx);

static struct shim_ctx primary_ctx = { CTX_MAGIC, 0, 1, 1 };
static int primary_refs;
static unsigned int primary_flags;
static unsigned long long next_ctx_id = 2;
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;

static __thread struct shim_ctx *ctx_stack[CTX_STACK];
static __thread int ctx_depth; /* entries in ctx_stack; top is current */

static struct shim_ctx *current(void)
{
	return ctx_depth ? ctx_stack[ctx_depth - 1] : NULL;
}

static int valid(CUcontext c)
{
	return c && ((struct shim_ctx *)c)->magic == CTX_MAGIC;
}

CUresult shim_check_ctx(void)
{
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	return current() ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}

SHIM_API CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (!pctx)
		return CUDA_ERROR_INVALID_VALUE;
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	pthread_mutex_lock(&ctx_lock);
	primary_refs++;
	pthread_mutex_unlock(&ctx_lock);
	*pctx = (CUcontext)&primary_ctx;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	pthread_mutex_lock(&ctx_lock);
	if (primary_refs > 0)
		primary_refs--;
	else
		r = CUDA_ERROR_INVALID_CONTEXT;
	pthread_mutex_unlock(&ctx_lock);
	/* For the program the context is gone: its local storage goes too. */
	if (r == CUDA_SUCCESS && primary_refs == 0)
		shim_cls_context_destroyed((CUcontext)&primary_ctx);
	/* The server keeps the context until the instance ends: releasing
	 * the last reference does not lose allocations a later retain would
	 * expect to be gone, which only cuDevicePrimaryCtxReset promises. */
	return r;
}

SHIM_API CUresult cuDevicePrimaryCtxRelease(CUdevice dev)
{
	return cuDevicePrimaryCtxRelease_v2(dev);
}

SHIM_API CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags,
					     int *active)
{
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	if (!flags || !active)
		return CUDA_ERROR_INVALID_VALUE;
	*flags = primary_flags;
	*active = primary_refs > 0;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags)
{
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	/* Scheduling flags only change how a host thread waits; ours
	 * always spin briefly, then sleep. */
	primary_flags = flags;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags)
{
	return cuDevicePrimaryCtxSetFlags_v2(dev, flags);
}

SHIM_API CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev)
{
	(void)dev;
	return shim_unsupported("cuDevicePrimaryCtxReset");
}

SHIM_API CUresult cuDevicePrimaryCtxReset(CUdevice dev)
{
	return cuDevicePrimaryCtxReset_v2(dev);
}

SHIM_API CUresult cuCtxGetCurrent(CUcontext *pctx)
{
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (!pctx)
		return CUDA_ERROR_INVALID_VALUE;
	*pctx = (CUcontext)current();
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuCtxSetCurrent(CUcontext ctx)
{
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (ctx && !valid(ctx))
		return CUDA_ERROR_INVALID_CONTEXT;
	if (!ctx) {
		if (ctx_depth)
			ctx_depth--;
		return CUDA_SUCCESS;
	}
	if (ctx_depth == 0)
		ctx_depth = 1;
	ctx_stack[ctx_depth - 1] = (struct shim_ctx *)ctx;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuCtxPushCurrent_v2(CUcontext ctx)
{
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (!valid(ctx))
		return CUDA_ERROR_INVALID_CONTEXT;
	if (ctx_depth == CTX_STACK)
		return CUDA_ERROR_OUT_OF_MEMORY;
	ctx_stack[ctx_depth++] = (struct shim_ctx *)ctx;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuCtxPopCurrent_v2(CUcontext *pctx)
{
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (!ctx_depth)
		return CUDA_ERROR_INVALID_CONTEXT;
	ctx_depth--;
	if (pctx)
		*pctx = (CUcontext)ctx_stack[ctx_depth];
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuCtxGetDevice(CUdevice *dev)
{
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!dev)
		return CUDA_ERROR_INVALID_VALUE;
	*dev = 0;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuCtxGetDevice_v2(CUdevice *dev, CUcontext ctx)
{
	if (!ctx)
		return cuCtxGetDevice(dev);
	if (!valid(ctx))
		return CUDA_ERROR_INVALID_CONTEXT;
	if (!dev)
		return CUDA_ERROR_INVALID_VALUE;
	*dev = 0;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuCtxGetFlags(unsigned int *flags)
{
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!flags)
		return CUDA_ERROR_INVALID_VALUE;
	*flags = current()->primary ? primary_flags : current()->flags;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuCtxSetFlags(unsigned int flags)
{
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (current()->primary)
		primary_flags = flags;
	else
		current()->flags = flags;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuCtxGetId(CUcontext ctx, unsigned long long *id)
{
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (!ctx)
		ctx = (CUcontext)current();
	if (!valid(ctx))
		return CUDA_ERROR_INVALID_CONTEXT;
	if (!id)
		return CUDA_ERROR_INVALID_VALUE;
	*id = ((struct shim_ctx *)ctx)->id;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuCtxGetApiVersion(CUcontext ctx, unsigned int *version)
{
	(void)ctx;
	if (!version)
		return CUDA_ERROR_INVALID_VALUE;
	*version = 3020; /* what the driver reports for every v2+ context */
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params,
				 unsigned int flags, CUdevice dev)
{
	struct shim_ctx *c;
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (!pctx)
		return CUDA_ERROR_INVALID_VALUE;
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	if (params && (params->execAffinityParams || params->cigParams))
		return shim_unsupported("cuCtxCreate with affinity or CIG parameters");
	c = calloc(1, sizeof(*c));
	if (!c)
		return CUDA_ERROR_OUT_OF_MEMORY;
	c->magic = CTX_MAGIC;
	c->flags = flags;
	pthread_mutex_lock(&ctx_lock);
	c->id = next_ctx_id++;
	pthread_mutex_unlock(&ctx_lock);
	*pctx = (CUcontext)c;
	return cuCtxPushCurrent_v2(*pctx);
}

SHIM_API CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags,
				 CUdevice dev)
{
	return cuCtxCreate_v4(pctx, NULL, flags, dev);
}

SHIM_API CUresult cuCtxDestroy_v2(CUcontext ctx)
{
	struct shim_ctx *c = (struct shim_ctx *)ctx;
	int i;

	if (!valid(ctx) || c->primary)
		return CUDA_ERROR_INVALID_CONTEXT;
	for (i = 0; i < ctx_depth; i++)
		if (ctx_stack[i] == c)
			ctx_stack[i] = &primary_ctx;
	if (current() == c)
		ctx_depth--;
	shim_cls_context_destroyed(ctx);
	c->magic = 0;
	free(c);
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuCtxSynchronize(void)
{
	struct mig_ctx_sync a = { 0 };
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	return shim_call(MIG_OP_CTX_SYNC, &a, sizeof(a), MIG_MSGF_REPLY, NULL, 0);
}

SHIM_API CUresult cuCtxSynchronize_v2(CUcontext ctx)
{
	if (ctx && !valid(ctx))
		return CUDA_ERROR_INVALID_CONTEXT;
	return cuCtxSynchronize();
}

SHIM_API CUresult cuCtxGetLimit(size_t *value, CUlimit limit)
{
	struct mig_ctx_limit a = { .limit = (uint32_t)limit };
	uint64_t v = 0;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!value)
		return CUDA_ERROR_INVALID_VALUE;
	r = shim_call(MIG_OP_CTX_GET_LIMIT, &a, sizeof(a), MIG_MSGF_REPLY, &v,
		      sizeof(v));
	if (r == CUDA_SUCCESS)
		*value = (size_t)v;
	return r;
}

SHIM_API CUresult cuCtxSetLimit(CUlimit limit, size_t value)
{
	struct mig_ctx_limit a = { .limit = (uint32_t)limit, .value = value };
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	return shim_call(MIG_OP_CTX_SET_LIMIT, &a, sizeof(a), MIG_MSGF_REPLY,
			 NULL, 0);
}

SHIM_API CUresult cuCtxGetCacheConfig(CUfunc_cache *config)
{
	if (!config)
		return CUDA_ERROR_INVALID_VALUE;
	*config = CU_FUNC_CACHE_PREFER_NONE;
	return shim_check_ctx();
}

SHIM_API CUresult cuCtxSetCacheConfig(CUfunc_cache config)
{
	/* A preference the driver may ignore; so do we. */
	(void)config;
	return shim_check_ctx();
}

SHIM_API CUresult cuCtxGetStreamPriorityRange(int *least, int *greatest)
{
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (least)
		*least = shim.dev.prio_least;
	if (greatest)
		*greatest = shim.dev.prio_greatest;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuCtxResetPersistingL2Cache(void)
{
	return shim_unsupported("cuCtxResetPersistingL2Cache");
}
