/*
 * launch.c - kernel launches and occupancy.
 *
 * A launch is one fire-and-forget message: the launch geometry followed by
 * the parameter buffer, laid out with the offsets and sizes the server
 * reported for the function (cuFuncGetParamInfo), so the server can hand
 * it to the driver as a CU_LAUNCH_PARAM_BUFFER_POINTER without knowing
 * anything about the kernel.  Errors of a launch surface at the next
 * synchronizing call, as with the driver.
 */
#include <string.h>

#include "launch_attrs.h"
#include "shim.h"

/*
 * The driver rejects an impossible launch at once, not at the next
 * synchronize; so do we, from the device snapshot and the function's
 * attributes, before anything is sent.
 */
static CUresult check_geometry(const struct shim_func *f,
			       const unsigned int grid[3],
			       const unsigned int block[3], unsigned int smem)
{
	const int32_t *a = shim.dev.attr;
	uint64_t threads = (uint64_t)block[0] * block[1] * block[2];
	int i;

	for (i = 0; i < 3; i++) {
		if (!grid[i] || !block[i])
			return CUDA_ERROR_INVALID_VALUE;
		if (grid[i] > (unsigned int)a[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X + i] ||
		    block[i] > (unsigned int)a[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X + i])
			return CUDA_ERROR_INVALID_VALUE;
	}
	if (threads > (uint64_t)a[CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK])
		return CUDA_ERROR_INVALID_VALUE;
	/* Fits the device, but not this kernel's registers. */
	if (f->attr[CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK] > 0 &&
	    threads > (uint64_t)f->attr[CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK])
		return CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
	if (smem > (unsigned int)a[CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK] &&
	    smem > (unsigned int)f->attr[CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES])
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_SUCCESS;
}

static CUresult launch(struct shim_func *f, const unsigned int grid[3],
		       const unsigned int block[3], unsigned int smem,
		       CUstream stream, void **params, void **extra,
		       const CUlaunchAttribute *attrs, unsigned int nattrs,
		       bool per_thread)
{
	struct mig_launch a;
	struct shim_tx tx;
	uint32_t flags = 0, i, pbytes;
	const void *ebuf = NULL;
	size_t esize = 0;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	if (params && extra)
		return CUDA_ERROR_INVALID_VALUE;
	r = check_geometry(f, grid, block, smem);
	if (r != CUDA_SUCCESS)
		return r;
	if (nattrs > 32)
		return CUDA_ERROR_INVALID_VALUE;
	for (i = 0; i < nattrs; i++)
		if (!mig_launch_attr_allowed(attrs[i].id))
			return shim_unsupported("cuLaunchKernelEx attribute with handles");
	if (extra) {
		for (i = 0; extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
			if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER)
				ebuf = extra[i + 1];
			else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE)
				esize = *(size_t *)extra[i + 1];
			else
				return CUDA_ERROR_INVALID_VALUE;
		}
		if (!ebuf && esize)
			return CUDA_ERROR_INVALID_VALUE;
	} else if (f->nparams && !params) {
		return CUDA_ERROR_INVALID_VALUE;
	}
	pbytes = f->param_bytes;
	if (extra && esize < pbytes)
		pbytes = (uint32_t)esize;
	r = shim_stream_id(stream, per_thread, &a.stream, &flags);
	if (r != CUDA_SUCCESS)
		return r;
	a.func = f->id;
	memcpy(a.grid, grid, sizeof(a.grid));
	memcpy(a.block, block, sizeof(a.block));
	a.shared_mem = smem;
	a.param_bytes = pbytes;
	a.nattrs = nattrs;
	a.pad = 0;
	r = shim_begin(&tx, MIG_OP_LAUNCH,
		       (uint32_t)(sizeof(a) + pbytes +
				  nattrs * sizeof(CUlaunchAttribute)),
		       flags);
	if (r != CUDA_SUCCESS)
		return r;
	memcpy(tx.body, &a, sizeof(a));
	if (extra) {
		memcpy(tx.body + sizeof(a), ebuf, pbytes);
	} else {
		uint8_t *p = tx.body + sizeof(a);

		/* Padding between parameters stays zero, deterministically. */
		memset(p, 0, pbytes);
		for (i = 0; i < f->nparams; i++)
			memcpy(p + f->param[i].offset, params[i], f->param[i].size);
	}
	if (nattrs)
		memcpy(tx.body + sizeof(a) + pbytes, attrs,
		       nattrs * sizeof(CUlaunchAttribute));
	return shim_commit(&tx);
}

#define LAUNCH_KERNEL(name, pt)                                                \
	SHIM_API CUresult name(CUfunction fn, unsigned int gx, unsigned int gy, \
			       unsigned int gz, unsigned int bx,               \
			       unsigned int by, unsigned int bz,               \
			       unsigned int smem, CUstream s, void **params,   \
			       void **extra)                                   \
	{                                                                      \
		const unsigned int g[3] = { gx, gy, gz }, b[3] = { bx, by, bz }; \
		return launch(shim_func_from(fn), g, b, smem, s, params, extra, \
			      NULL, 0, pt);                                    \
	}

LAUNCH_KERNEL(cuLaunchKernel, false)
LAUNCH_KERNEL(cuLaunchKernel_ptsz, true)

static CUresult launch_ex(const CUlaunchConfig *c, CUfunction fn,
			  void **params, void **extra, bool pt)
{
	unsigned int g[3], b[3];

	if (!c)
		return CUDA_ERROR_INVALID_VALUE;
	g[0] = c->gridDimX;
	g[1] = c->gridDimY;
	g[2] = c->gridDimZ;
	b[0] = c->blockDimX;
	b[1] = c->blockDimY;
	b[2] = c->blockDimZ;
	if (c->numAttrs && !c->attrs)
		return CUDA_ERROR_INVALID_VALUE;
	return launch(shim_func_from(fn), g, b, c->sharedMemBytes, c->hStream,
		      params, extra, c->attrs, c->numAttrs, pt);
}

SHIM_API CUresult cuLaunchKernelEx(const CUlaunchConfig *c, CUfunction fn,
				   void **params, void **extra)
{
	return launch_ex(c, fn, params, extra, false);
}

SHIM_API CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *c, CUfunction fn,
					void **params, void **extra)
{
	return launch_ex(c, fn, params, extra, true);
}

static CUresult launch_coop(CUfunction fn, unsigned int gx, unsigned int gy,
			    unsigned int gz, unsigned int bx, unsigned int by,
			    unsigned int bz, unsigned int smem, CUstream s,
			    void **params, bool pt)
{
	const unsigned int g[3] = { gx, gy, gz }, b[3] = { bx, by, bz };
	CUlaunchAttribute at;

	memset(&at, 0, sizeof(at));
	at.id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE;
	at.value.cooperative = 1;
	return launch(shim_func_from(fn), g, b, smem, s, params, NULL, &at, 1, pt);
}

SHIM_API CUresult cuLaunchCooperativeKernel(CUfunction fn, unsigned int gx,
					    unsigned int gy, unsigned int gz,
					    unsigned int bx, unsigned int by,
					    unsigned int bz, unsigned int smem,
					    CUstream s, void **params)
{
	return launch_coop(fn, gx, gy, gz, bx, by, bz, smem, s, params, false);
}

SHIM_API CUresult cuLaunchCooperativeKernel_ptsz(
	CUfunction fn, unsigned int gx, unsigned int gy, unsigned int gz,
	unsigned int bx, unsigned int by, unsigned int bz, unsigned int smem,
	CUstream s, void **params)
{
	return launch_coop(fn, gx, gy, gz, bx, by, bz, smem, s, params, true);
}

/* --- occupancy ----------------------------------------------------------- */

static CUresult occupancy(struct shim_func *f, int block, size_t smem,
			  unsigned int fl, int *out)
{
	struct mig_func_occupancy a;
	unsigned int i;
	int32_t n = 0;
	CUresult r;

	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	if (!out || block <= 0)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&f->occ_lock);
	for (i = 0; i < f->nocc; i++) {
		if (f->occ[i].block == block && f->occ[i].smem == smem &&
		    f->occ[i].flags == (int)fl) {
			*out = f->occ[i].result;
			pthread_mutex_unlock(&f->occ_lock);
			return CUDA_SUCCESS;
		}
	}
	pthread_mutex_unlock(&f->occ_lock);
	a.func = f->id;
	a.block_size = block;
	a.flags = fl;
	a.dyn_smem = smem;
	r = shim_call(MIG_OP_FUNC_OCCUPANCY, &a, sizeof(a), MIG_MSGF_REPLY, &n,
		      sizeof(n));
	if (r != CUDA_SUCCESS)
		return r;
	pthread_mutex_lock(&f->occ_lock);
	i = f->nocc < 16 ? f->nocc++ : (unsigned int)(block % 16);
	f->occ[i].block = block;
	f->occ[i].smem = smem;
	f->occ[i].flags = (int)fl;
	f->occ[i].result = n;
	pthread_mutex_unlock(&f->occ_lock);
	*out = n;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
	int *n, CUfunction fn, int block, size_t smem, unsigned int flags)
{
	return occupancy(shim_func_from(fn), block, smem, flags, n);
}

SHIM_API CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int *n,
							      CUfunction fn,
							      int block,
							      size_t smem)
{
	return occupancy(shim_func_from(fn), block, smem, 0, n);
}

/*
 * The block size with the highest occupancy, as the driver computes it:
 * try every multiple of the warp size up to the limit, asking for the
 * dynamic shared memory each size needs.
 */
SHIM_API CUresult cuOccupancyMaxPotentialBlockSizeWithFlags(
	int *min_grid, int *block_out, CUfunction fn,
	CUoccupancyB2DSize smem_of, size_t smem, int limit, unsigned int flags)
{
	struct shim_func *f = shim_func_from(fn);
	int warp = shim.dev.attr[CU_DEVICE_ATTRIBUTE_WARP_SIZE];
	int sms = shim.dev.attr[CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT];
	int maxb, b, best_b = 0, best_occ = -1;

	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	if (!min_grid || !block_out)
		return CUDA_ERROR_INVALID_VALUE;
	if (warp <= 0)
		warp = 32;
	maxb = f->attr[CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK];
	if (limit > 0 && limit < maxb)
		maxb = limit;
	for (b = maxb - maxb % warp; b > 0; b -= warp) {
		size_t s = smem_of ? smem_of(b) : smem;
		int n = 0;
		CUresult r = occupancy(f, b, s, flags, &n);

		if (r != CUDA_SUCCESS)
			return r;
		if (n * b > best_occ) {
			best_occ = n * b;
			best_b = b;
		}
	}
	if (best_b == 0)
		return CUDA_ERROR_INVALID_VALUE;
	*block_out = best_b;
	*min_grid = best_occ / best_b * sms;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuOccupancyMaxPotentialBlockSize(int *min_grid, int *block,
						   CUfunction fn,
						   CUoccupancyB2DSize smem_of,
						   size_t smem, int limit)
{
	return cuOccupancyMaxPotentialBlockSizeWithFlags(min_grid, block, fn,
							 smem_of, smem, limit, 0);
}

/* Shared memory left per block when @nblocks blocks share one SM. */
SHIM_API CUresult cuOccupancyAvailableDynamicSMemPerBlock(size_t *out,
							  CUfunction fn,
							  int nblocks,
							  int block)
{
	struct shim_func *f = shim_func_from(fn);
	const int *a = shim.dev.attr;
	size_t per_sm, optin, stat, avail;

	(void)block;
	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	if (!out || nblocks <= 0)
		return CUDA_ERROR_INVALID_VALUE;
	per_sm = (size_t)a[CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR];
	optin = (size_t)a[CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN];
	stat = (size_t)f->attr[CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES];
	/* The driver reserves 1 KiB of shared memory per block. */
	avail = per_sm / (size_t)nblocks;
	avail = avail > 1024 + stat ? avail - 1024 - stat : 0;
	if (optin > stat && avail > optin - stat)
		avail = optin - stat;
	*out = avail & ~(size_t)127;
	return CUDA_SUCCESS;
}

/* --- clusters ------------------------------------------------------------- */

static CUresult cluster_query(int *out, CUfunction fn, const CUlaunchConfig *c,
			      uint32_t query)
{
	struct shim_func *f = shim_func_from(fn);
	struct mig_func_clusters a = { 0 };
	struct shim_tx tx;
	unsigned int i;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	if (!out || !c || c->numAttrs > 32 || (c->numAttrs && !c->attrs))
		return CUDA_ERROR_INVALID_VALUE;
	for (i = 0; i < c->numAttrs; i++)
		if (!mig_launch_attr_allowed(c->attrs[i].id))
			return shim_unsupported("cluster occupancy attribute with handles");
	a.func = f->id;
	a.grid[0] = c->gridDimX;
	a.grid[1] = c->gridDimY;
	a.grid[2] = c->gridDimZ;
	a.block[0] = c->blockDimX;
	a.block[1] = c->blockDimY;
	a.block[2] = c->blockDimZ;
	a.shared_mem = c->sharedMemBytes;
	a.nattrs = c->numAttrs;
	a.query = query;
	r = shim_begin(&tx, MIG_OP_FUNC_CLUSTERS,
		       (uint32_t)(sizeof(a) + a.nattrs * sizeof(CUlaunchAttribute)),
		       MIG_MSGF_REPLY);
	if (r != CUDA_SUCCESS)
		return r;
	memcpy(tx.body, &a, sizeof(a));
	if (a.nattrs)
		memcpy(tx.body + sizeof(a), c->attrs,
		       a.nattrs * sizeof(CUlaunchAttribute));
	r = shim_commit(&tx);
	if (r == CUDA_SUCCESS) {
		int32_t v;

		memcpy(&v, shim.slots[tx.slot].data, sizeof(v));
		*out = v;
	}
	return r;
}

SHIM_API CUresult cuOccupancyMaxActiveClusters(int *n, CUfunction fn,
					       const CUlaunchConfig *c)
{
	return cluster_query(n, fn, c, 0);
}

SHIM_API CUresult cuOccupancyMaxPotentialClusterSize(int *n, CUfunction fn,
						     const CUlaunchConfig *c)
{
	return cluster_query(n, fn, c, 1);
}

/* --- tensor maps (TMA descriptors) ------------------------------------------ */

static CUresult tensor_map(struct mig_tensor_map *a, CUtensorMap *out)
{
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!out)
		return CUDA_ERROR_INVALID_VALUE;
	return shim_call(MIG_OP_TENSOR_MAP, a, sizeof(*a), MIG_MSGF_REPLY, out,
			 sizeof(*out));
}

static CUresult tensor_map_args(struct mig_tensor_map *a, CUtensorMapDataType dt,
				cuuint32_t rank, void *addr,
				const cuuint64_t *dim, const cuuint64_t *strides,
				const cuuint32_t *es, CUtensorMapInterleave il,
				CUtensorMapSwizzle sw, CUtensorMapL2promotion l2,
				CUtensorMapFloatOOBfill oob)
{
	memset(a, 0, sizeof(*a));
	if (rank == 0 || rank > 5 || !dim || !es || (rank > 1 && !strides))
		return CUDA_ERROR_INVALID_VALUE;
	a->data_type = dt;
	a->rank = rank;
	a->global_address = (uint64_t)(uintptr_t)addr;
	memcpy(a->global_dim, dim, rank * sizeof(*dim));
	if (rank > 1)
		memcpy(a->global_strides, strides, (rank - 1) * sizeof(*strides));
	memcpy(a->element_strides, es, rank * sizeof(*es));
	a->interleave = il;
	a->swizzle = sw;
	a->l2_promotion = l2;
	a->oob_fill = oob;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuTensorMapEncodeTiled(
	CUtensorMap *m, CUtensorMapDataType dt, cuuint32_t rank, void *addr,
	const cuuint64_t *dim, const cuuint64_t *strides, const cuuint32_t *box,
	const cuuint32_t *es, CUtensorMapInterleave il, CUtensorMapSwizzle sw,
	CUtensorMapL2promotion l2, CUtensorMapFloatOOBfill oob)
{
	struct mig_tensor_map a;
	CUresult r = tensor_map_args(&a, dt, rank, addr, dim, strides, es, il,
				     sw, l2, oob);

	if (r != CUDA_SUCCESS || !box)
		return r != CUDA_SUCCESS ? r : CUDA_ERROR_INVALID_VALUE;
	a.kind = 0;
	memcpy(a.box_dim, box, rank * sizeof(*box));
	return tensor_map(&a, m);
}

SHIM_API CUresult cuTensorMapEncodeIm2col(
	CUtensorMap *m, CUtensorMapDataType dt, cuuint32_t rank, void *addr,
	const cuuint64_t *dim, const cuuint64_t *strides, const int *lo,
	const int *hi, cuuint32_t cpp, cuuint32_t ppc, const cuuint32_t *es,
	CUtensorMapInterleave il, CUtensorMapSwizzle sw,
	CUtensorMapL2promotion l2, CUtensorMapFloatOOBfill oob)
{
	struct mig_tensor_map a;
	CUresult r = tensor_map_args(&a, dt, rank, addr, dim, strides, es, il,
				     sw, l2, oob);

	if (r != CUDA_SUCCESS)
		return r;
	if (rank < 3 || !lo || !hi)
		return CUDA_ERROR_INVALID_VALUE;
	a.kind = 1;
	memcpy(a.lower_corner, lo, (rank - 2) * sizeof(*lo));
	memcpy(a.upper_corner, hi, (rank - 2) * sizeof(*hi));
	a.channels_per_pixel = cpp;
	a.pixels_per_column = ppc;
	return tensor_map(&a, m);
}

SHIM_API CUresult cuTensorMapReplaceAddress(CUtensorMap *m, void *addr)
{
	struct mig_tensor_map a;

	if (!m)
		return CUDA_ERROR_INVALID_VALUE;
	memset(&a, 0, sizeof(a));
	a.kind = 2;
	a.rank = 1;
	a.global_address = (uint64_t)(uintptr_t)addr;
	memcpy(a.map, m, sizeof(a.map));
	return tensor_map(&a, m);
}
