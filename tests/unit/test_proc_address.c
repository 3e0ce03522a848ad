/*
 * test_proc_address.c - unit test of cuGetProcAddress, the generated
 * entry-point table, the weak "not supported" stubs and
 * cuGetErrorName/cuGetErrorString.  No GPU, no server.
 *
 * Standalone build, from the repository root:
 *
 *	gcc -std=gnu11 -Wall -Wextra -Werror -fPIC \
 *	    -I/usr/local/cuda/include -Iinclude -Iipc -Ishim \
 *	    tests/unit/test_proc_address.c shim/proc_address.c \
 *	    shim/proc_table.c shim/generated/unsupported_stubs.c \
 *	    shim/error_strings.c -lcmocka -o test_proc_address
 *	./test_proc_address
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "shim.h"

/*
 * The symbols compared against.  cuda.h declares some under other names
 * (cuMemAlloc is a macro for cuMemAlloc_v2) and others not at all; the
 * ones it does not declare are declared here, their type is irrelevant:
 * only the address is used.
 */
#undef cuMemAlloc
#undef cuGetProcAddress
#undef cuMemcpyHtoD
#undef cuCtxCreate
#undef cuMemPrefetchAsync
CUresult cuMemAlloc(void);
CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
			  cuuint64_t flags);
CUresult cuMemcpyHtoD(void);
CUresult cuMemcpyHtoD_v2_ptds(void);
CUresult cuLaunchKernel_ptsz(void);
CUresult cuCtxCreate(void);
CUresult cuCtxCreate_v3(void);
CUresult cuMemPrefetchAsync(void);
CUresult cuMemPrefetchAsync_ptsz(void);
CUresult cuMemPrefetchAsync_v2_ptsz(void);
CUresult cuStreamGetCaptureInfo_v3_ptsz(void);
CUresult cuStreamGetCtx_v2_ptsz(void);
CUresult cuGraphInstantiate_v2(void);
CUresult cuProfilerStart(void);

/* From proc_table.c. */
int shim_proc_table_check(void);

/* --- what the rest of the shim would provide ------------------------- */

int shim_log_level;
static const char *last_unsupported;

void shim_log(int level, const char *fmt, ...)
{
	(void)level;
	(void)fmt;
}

CUresult shim_unsupported(const char *name)
{
	last_unsupported = name;
	return CUDA_ERROR_NOT_SUPPORTED;
}

/* --- helpers ---------------------------------------------------------- */

#define ADDR(sym) ((void *)(sym))
#define STATUS_UNSET ((CUdriverProcAddressQueryResult)0x7777)

/* Look up and expect success at @want. */
static void expect_fn(const char *name, int version, cuuint64_t flags,
		      void *want)
{
	CUdriverProcAddressQueryResult st = STATUS_UNSET;
	void *fn = (void *)&st;

	assert_int_equal(cuGetProcAddress_v2(name, &fn, version, flags, &st),
			 CUDA_SUCCESS);
	assert_int_equal(st, CU_GET_PROC_ADDRESS_SUCCESS);
	assert_non_null(fn);
	assert_ptr_equal(fn, want);
}

/* Look up and expect a NULL pfn with @status (and CUDA_SUCCESS). */
static void expect_none(const char *name, int version, cuuint64_t flags,
			CUdriverProcAddressQueryResult status)
{
	CUdriverProcAddressQueryResult st = STATUS_UNSET;
	void *fn = (void *)&st;

	assert_int_equal(cuGetProcAddress_v2(name, &fn, version, flags, &st),
			 CUDA_SUCCESS);
	assert_int_equal(st, status);
	assert_null(fn);
}

/* --- tests ------------------------------------------------------------ */

static void test_table_sorted(void **state)
{
	(void)state;
	/* One entry per exported symbol of the CUDA 13.0 driver at least. */
	assert_true(shim_proc_table_check() >= 600);
}

static void test_versions(void **state)
{
	(void)state;
	expect_fn("cuMemAlloc", 3020, 0, ADDR(cuMemAlloc_v2));
	expect_fn("cuMemAlloc", 2000, 0, ADDR(cuMemAlloc));
	expect_fn("cuMemAlloc", 3019, 0, ADDR(cuMemAlloc));
	expect_fn("cuMemAlloc", 12000, 0, ADDR(cuMemAlloc_v2));
	expect_fn("cuMemAlloc", 13000, 0, ADDR(cuMemAlloc_v2));
	expect_fn("cuMemAlloc", 13010, 0, ADDR(cuMemAlloc_v2));
	expect_fn("cuCtxCreate", 2000, 0, ADDR(cuCtxCreate));
	expect_fn("cuCtxCreate", 11040, 0, ADDR(cuCtxCreate_v3));
	expect_fn("cuCtxCreate", 13000, 0, ADDR(cuCtxCreate_v4));
	expect_fn("cuMemPrefetchAsync", 12010, 0, ADDR(cuMemPrefetchAsync));
	expect_fn("cuMemPrefetchAsync", 12020, 0, ADDR(cuMemPrefetchAsync_v2));
	expect_fn("cuStreamGetCtx", 12000, 0, ADDR(cuStreamGetCtx));
	expect_fn("cuStreamGetCtx", 12050, 0, ADDR(cuStreamGetCtx_v2));
	expect_fn("cuGraphInstantiate", 12000, 0, ADDR(cuGraphInstantiate_v2));
	expect_fn("cuInit", 2000, 0, ADDR(cuInit));
	expect_fn("cuDriverGetVersion", 12000, 0, ADDR(cuDriverGetVersion));
	expect_fn("cuProfilerStart", 4000, 0, ADDR(cuProfilerStart));
	/* First and last base names in the table. */
	expect_fn("cuArray3DCreate", 3020, 0, ADDR(cuArray3DCreate_v2));
	expect_fn("cuWaitExternalSemaphoresAsync", 10000, 0,
		  ADDR(cuWaitExternalSemaphoresAsync));
}

static void test_per_thread(void **state)
{
	const cuuint64_t ptds = CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
	const cuuint64_t legacy = CU_GET_PROC_ADDRESS_LEGACY_STREAM;

	(void)state;
	expect_fn("cuMemcpyHtoD", 7000, ptds, ADDR(cuMemcpyHtoD_v2_ptds));
	expect_fn("cuMemcpyHtoD", 13000, ptds, ADDR(cuMemcpyHtoD_v2_ptds));
	expect_fn("cuMemcpyHtoD", 7000, legacy, ADDR(cuMemcpyHtoD_v2));
	expect_fn("cuMemcpyHtoD", 7000, 0, ADDR(cuMemcpyHtoD_v2));
	/* Both bits: not a per-thread request. */
	expect_fn("cuMemcpyHtoD", 7000, ptds | legacy, ADDR(cuMemcpyHtoD_v2));
	/* No per-thread variant yet at 3020: the legacy one. */
	expect_fn("cuMemcpyHtoD", 3020, ptds, ADDR(cuMemcpyHtoD_v2));
	expect_fn("cuMemcpyHtoD", 2000, ptds, ADDR(cuMemcpyHtoD));
	expect_fn("cuLaunchKernel", 4000, ptds, ADDR(cuLaunchKernel));
	expect_fn("cuLaunchKernel", 7000, ptds, ADDR(cuLaunchKernel_ptsz));
	expect_fn("cuLaunchKernel", 12000, legacy, ADDR(cuLaunchKernel));
	expect_fn("cuMemPrefetchAsync", 8000, ptds,
		  ADDR(cuMemPrefetchAsync_ptsz));
	expect_fn("cuMemPrefetchAsync", 12020, ptds,
		  ADDR(cuMemPrefetchAsync_v2_ptsz));
	expect_fn("cuStreamGetCaptureInfo", 12030, ptds,
		  ADDR(cuStreamGetCaptureInfo_v3_ptsz));
	expect_fn("cuStreamGetCtx", 12050, ptds, ADDR(cuStreamGetCtx_v2_ptsz));
	/* No per-thread variant at all: the plain one. */
	expect_fn("cuMemAlloc", 12000, ptds, ADDR(cuMemAlloc_v2));
	/* Unknown flag bits are ignored. */
	expect_fn("cuMemcpyHtoD", 7000, ptds | 0x100,
		  ADDR(cuMemcpyHtoD_v2_ptds));
}

static void test_not_found(void **state)
{
	(void)state;
	expect_none("cuNoSuchFunction", 13000, 0,
		    CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
	/* Exported names are not base names. */
	expect_none("cuMemAlloc_v2", 13000, 0,
		    CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
	expect_none("", 13000, 0, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
	expect_none("a", 13000, 0, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
	expect_none("zzz", 13000, 0, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
	expect_none("cuMemAllo", 13000, 0,
		    CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
	expect_none("cuMemAllocc", 13000, 0,
		    CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
	expect_none("cudaMalloc", 13000,
		    CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM,
		    CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
}

static void test_version_not_sufficient(void **state)
{
	(void)state;
	expect_none("cuMemAlloc", 1000, 0,
		    CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
	expect_none("cuMemAlloc", 0, 0,
		    CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
	expect_none("cuMemAlloc", -1, 0,
		    CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
	expect_none("cuLaunchKernelEx", 11050,
		    CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM,
		    CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
	expect_none("cuCtxCreate", 1999, 0,
		    CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
	expect_none("cuDeviceGetExecAffinitySupport", 11030, 0,
		    CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
}

static void test_arguments(void **state)
{
	CUdriverProcAddressQueryResult st;
	void *fn = (void *)&st;

	(void)state;
	assert_int_equal(cuGetProcAddress_v2(NULL, &fn, 12000, 0, &st),
			 CUDA_ERROR_INVALID_VALUE);
	assert_null(fn);
	assert_int_equal(cuGetProcAddress_v2("cuInit", NULL, 12000, 0, &st),
			 CUDA_ERROR_INVALID_VALUE);
	/* symbolStatus is optional. */
	fn = NULL;
	assert_int_equal(cuGetProcAddress_v2("cuInit", &fn, 12000, 0, NULL),
			 CUDA_SUCCESS);
	assert_ptr_equal(fn, ADDR(cuInit));
	fn = (void *)&st;
	assert_int_equal(cuGetProcAddress_v2("cuNope", &fn, 12000, 0, NULL),
			 CUDA_SUCCESS);
	assert_null(fn);
	assert_int_equal(cuGetProcAddress_v2("cuInit", &fn, 1000, 0, NULL),
			 CUDA_SUCCESS);
	assert_null(fn);
}

static void test_self(void **state)
{
	void *fn = NULL;

	(void)state;
	expect_fn("cuGetProcAddress", 12000, 0, ADDR(cuGetProcAddress_v2));
	expect_fn("cuGetProcAddress", 13000,
		  CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM,
		  ADDR(cuGetProcAddress_v2));
	expect_fn("cuGetProcAddress", 11030, 0, ADDR(cuGetProcAddress));
	expect_none("cuGetProcAddress", 11020, 0,
		    CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);

	/* The CUDA 11.3 entry point, found through itself. */
	assert_int_equal(cuGetProcAddress("cuGetProcAddress", &fn, 12000, 0),
			 CUDA_SUCCESS);
	assert_ptr_equal(fn, ADDR(cuGetProcAddress_v2));
	assert_int_equal(cuGetProcAddress("cuMemAlloc", &fn, 3020, 0),
			 CUDA_SUCCESS);
	assert_ptr_equal(fn, ADDR(cuMemAlloc_v2));
	assert_int_equal(cuGetProcAddress("cuNope", &fn, 3020, 0),
			 CUDA_SUCCESS);
	assert_null(fn);
	assert_int_equal(cuGetProcAddress(NULL, &fn, 3020, 0),
			 CUDA_ERROR_INVALID_VALUE);
	expect_fn("cuGetErrorName", 6000, 0, ADDR(cuGetErrorName));
}

static void test_weak_stub(void **state)
{
	CUresult (*fn)(void) = NULL;

	(void)state;
	/* Not defined strongly in this test: the generated stub answers. */
	assert_int_equal(cuGetProcAddress_v2("cuMemAlloc", (void **)&fn, 3020,
					     0, NULL), CUDA_SUCCESS);
	assert_non_null(fn);
	last_unsupported = NULL;
	assert_int_equal(fn(), CUDA_ERROR_NOT_SUPPORTED);
	assert_string_equal(last_unsupported, "cuMemAlloc_v2");
	assert_int_equal(cuLaunchKernel_ptsz(), CUDA_ERROR_NOT_SUPPORTED);
	assert_string_equal(last_unsupported, "cuLaunchKernel_ptsz");
}

static void test_error_strings(void **state)
{
	const char *s;
	int code, n = 0;

	(void)state;
	assert_int_equal(cuGetErrorName(CUDA_SUCCESS, &s), CUDA_SUCCESS);
	assert_string_equal(s, "CUDA_SUCCESS");
	assert_int_equal(cuGetErrorString(CUDA_SUCCESS, &s), CUDA_SUCCESS);
	assert_string_equal(s, "no error");
	assert_int_equal(cuGetErrorName(CUDA_ERROR_OUT_OF_MEMORY, &s),
			 CUDA_SUCCESS);
	assert_string_equal(s, "CUDA_ERROR_OUT_OF_MEMORY");
	assert_int_equal(cuGetErrorString(CUDA_ERROR_OUT_OF_MEMORY, &s),
			 CUDA_SUCCESS);
	assert_string_equal(s, "out of memory");
	assert_int_equal(cuGetErrorName(CUDA_ERROR_NOT_SUPPORTED, &s),
			 CUDA_SUCCESS);
	assert_string_equal(s, "CUDA_ERROR_NOT_SUPPORTED");
	assert_int_equal(cuGetErrorName(CUDA_ERROR_KEY_ROTATION, &s),
			 CUDA_SUCCESS);
	assert_string_equal(s, "CUDA_ERROR_KEY_ROTATION");
	assert_int_equal(cuGetErrorName(CUDA_ERROR_UNKNOWN, &s), CUDA_SUCCESS);
	assert_string_equal(s, "CUDA_ERROR_UNKNOWN");

	/* Unknown codes: CUDA_ERROR_INVALID_VALUE and NULL. */
	s = "x";
	assert_int_equal(cuGetErrorName((CUresult)37, &s),
			 CUDA_ERROR_INVALID_VALUE);
	assert_null(s);
	s = "x";
	assert_int_equal(cuGetErrorString((CUresult)12345, &s),
			 CUDA_ERROR_INVALID_VALUE);
	assert_null(s);
	s = "x";
	assert_int_equal(cuGetErrorString((CUresult)-1, &s),
			 CUDA_ERROR_INVALID_VALUE);
	assert_null(s);
	assert_int_equal(cuGetErrorName(CUDA_SUCCESS, NULL),
			 CUDA_ERROR_INVALID_VALUE);
	assert_int_equal(cuGetErrorString(CUDA_SUCCESS, NULL),
			 CUDA_ERROR_INVALID_VALUE);

	/* Every known code has both, and they agree on being known. */
	for (code = 0; code < 1100; code++) {
		const char *name = NULL, *str = NULL;
		CUresult a = cuGetErrorName((CUresult)code, &name);
		CUresult b = cuGetErrorString((CUresult)code, &str);

		assert_int_equal(a, b);
		if (a != CUDA_SUCCESS)
			continue;
		assert_non_null(name);
		assert_non_null(str);
		assert_true(strncmp(name, "CUDA_", 5) == 0);
		assert_true(str[0] != '\0');
		n++;
	}
	assert_int_equal(n, 101);	/* cuda.h 13.0 */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_sorted),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_per_thread),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_version_not_sufficient),
		cmocka_unit_test(test_arguments),
		cmocka_unit_test(test_self),
		cmocka_unit_test(test_weak_stub),
		cmocka_unit_test(test_error_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
