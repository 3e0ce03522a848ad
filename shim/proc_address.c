/*
 * proc_address.c - cuGetProcAddress (CUDA 11.3, four arguments) and
 * cuGetProcAddress_v2 (CUDA 12.0, with symbolStatus): how the runtime,
 * cuBLAS, cuDNN, PyTorch and CuPy find nearly every driver entry point.
 *
 * The answer comes from the generated table (proc_table.c): for a base
 * name such as "cuMemAlloc" the newest variant whose version is not above
 * cudaVersion (cuMemAlloc_v2 from 3020), and with
 * CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM its _ptds/_ptsz variant
 * where one exists (else the plain one, as cuda.h documents).
 * CU_GET_PROC_ADDRESS_DEFAULT means legacy here: a program built for
 * per-thread streams gets the flag added by cuda.h's inline wrapper.
 *
 * As cuda.h documents, a name we do not know, or know only from a newer
 * version than asked for, is not an error: CUDA_SUCCESS with *pfn NULL
 * and symbolStatus saying which.  Deliberately lenient where the real
 * driver may not be: a cudaVersion newer than ours still resolves (asking
 * the server for its version here would start the channel before cuInit),
 * and flag bits we do not know are ignored.
 */
#include <stddef.h>

#include "shim.h"

/* cuda.h renames cuGetProcAddress to cuGetProcAddress_v2; we export both. */
#undef cuGetProcAddress

SHIM_API CUresult cuGetProcAddress(const char *symbol, void **pfn,
				   int cudaVersion, cuuint64_t flags);

/* In proc_table.c (which cannot include cuda.h); keep in step. */
#define SHIM_PROC_FOUND 0
#define SHIM_PROC_UNKNOWN 1
#define SHIM_PROC_TOO_OLD 2
int shim_proc_lookup(const char *name, int version, int per_thread,
		     void **fn);

SHIM_API CUresult
cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
		    cuuint64_t flags, CUdriverProcAddressQueryResult *symbolStatus)
{
	CUdriverProcAddressQueryResult st;
	int per_thread;
	void *fn = NULL;

	if (pfn)
		*pfn = NULL;
	if (!symbol || !pfn)
		return CUDA_ERROR_INVALID_VALUE;

	per_thread = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) &&
		     !(flags & CU_GET_PROC_ADDRESS_LEGACY_STREAM);
	switch (shim_proc_lookup(symbol, cudaVersion, per_thread, &fn)) {
	case SHIM_PROC_FOUND:
		*pfn = fn;
		st = CU_GET_PROC_ADDRESS_SUCCESS;
		break;
	case SHIM_PROC_TOO_OLD:
		shim_log(2, "cuGetProcAddress(%s, %d): needs a newer version",
			 symbol, cudaVersion);
		st = CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT;
		break;
	default:
		shim_log(2, "cuGetProcAddress(%s, %d): no such entry point",
			 symbol, cudaVersion);
		st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
		break;
	}
	if (symbolStatus)
		*symbolStatus = st;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuGetProcAddress(const char *symbol, void **pfn,
				   int cudaVersion, cuuint64_t flags)
{
	return cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, NULL);
}
