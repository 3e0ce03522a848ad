/*
 * backend_cuda.c - the real driver: libcuda.so.1 of the node.
 *
 * Every entry point is resolved through the driver's own cuGetProcAddress
 * at the version backend_calls.def names, so we get exactly the variant
 * whose prototype we compile against (e.g. cuMemAlloc_v2, not cuMemAlloc).
 * MIG_REAL_LIBCUDA overrides the library path, for nodes where the driver
 * lives outside the loader's search path.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"

int gpud_backend_cuda_open(struct gpud_backend *b, char *err, size_t errlen)
{
	const char *path = getenv("MIG_REAL_LIBCUDA");
	PFN_cuGetProcAddress_v12000 gpa;
	CUdriverProcAddressQueryResult st;
	void *lib;

	if (!path || !*path)
		path = "libcuda.so.1";
	lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(err, errlen,
			 "cannot load the NVIDIA driver library (%s): %s; is the driver installed?",
			 path, dlerror());
		return -1;
	}
	gpa = (PFN_cuGetProcAddress_v12000)dlsym(lib, "cuGetProcAddress_v2");
	if (!gpa) {
		snprintf(err, errlen,
			 "%s has no cuGetProcAddress_v2: the driver is older than CUDA 12.0",
			 path);
		return -1;
	}
	b->name = "cuda";
#define BACKEND_CALL(fn, ver)                                                  \
	if (gpa(#fn, (void **)&b->fn, ver, CU_GET_PROC_ADDRESS_DEFAULT, &st) !=  \
		    CUDA_SUCCESS ||                                            \
	    !b->fn) {                                                          \
		snprintf(err, errlen,                                          \
			 "the driver (%s) lacks %s at CUDA version %d: update the driver", \
			 path, #fn, ver);                                      \
		return -1;                                                     \
	}
#include "backend_calls.def"
#undef BACKEND_CALL
	return 0;
}
