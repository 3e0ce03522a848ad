/*
 * backend.h - how mig-gpud reaches a driver.
 *
 * The server is written once against the CUDA driver API and calls it
 * through a table of function pointers with the driver's own prototypes:
 *
 *   cuda  the real libcuda.so.1 of the node (the product);
 *   host  a TEST DOUBLE for machines without a GPU: device memory is host
 *         memory of the server process, kernels are host functions looked
 *         up by name in libraries the test suite supplies.  It exists so
 *         that CI can run the whole remoting path; it proves nothing about
 *         the real driver.
 */
#ifndef MIG_GPUD_BACKEND_H
#define MIG_GPUD_BACKEND_H

#include <cuda.h>
#include <cudaTypedefs.h>

struct gpud_backend {
	const char *name;
#define BACKEND_CALL(fn, ver) PFN_##fn##_v##ver fn;
#include "backend_calls.def"
#undef BACKEND_CALL
};

/*
 * Fill @b for the backend called @name ("cuda" or "host").  Returns 0, or
 * -1 with a message in @err (size @errlen) naming the cause.
 */
int gpud_backend_open(const char *name, struct gpud_backend *b, char *err,
		      size_t errlen);

/* The host test double's own constructor (gpud/backend_host.c). */
int gpud_backend_host_open(struct gpud_backend *b, char *err, size_t errlen);

/* The real driver (gpud/backend_cuda.c). */
int gpud_backend_cuda_open(struct gpud_backend *b, char *err, size_t errlen);

#endif /* MIG_GPUD_BACKEND_H */
