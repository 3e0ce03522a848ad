/*
 * mignificent.h - the public C API of a mignificent function.
 *
 * A function process links against the shim (libcuda.so.1).  Host memory
 * obtained here lives in the instance's shared segment, which the GPU server
 * has registered as pinned memory: a copy from or to any address inside such
 * a buffer is a zero-copy DMA at full bandwidth, with no staging.
 */
#ifndef MIGNIFICENT_H
#define MIGNIFICENT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * mignificent_malloc - allocate @size bytes of pinned host memory in the
 * instance's shared segment.  Returns NULL (errno = ENOMEM) when the segment
 * is full, or (errno = ENODEV) outside a mignificent instance.  The memory is
 * 256-byte aligned and valid until mignificent_free() or process exit.
 */
void *mignificent_malloc(size_t size);

/* mignificent_free - release memory from mignificent_malloc(); NULL is a no-op. */
void mignificent_free(void *ptr);

/*
 * mignificent_gpu_oom_count - how many calls of this process the GPU server
 * refused for lack of GPU memory so far.  The executor compares it before
 * and after a failed invocation to tell "out of GPU memory" from other
 * errors.
 */
unsigned long mignificent_gpu_oom_count(void);

/*
 * mignificent_gpu_memory_used - bytes of device memory this instance holds
 * (cuMemAlloc and mapped cuMemCreate memory, not the driver's own).  0 and
 * *bytes set, or a CUresult.  Our libnvidia-ml.so.1 reports it as the
 * process's usedGpuMemory.
 */
int mignificent_gpu_memory_used(unsigned long long *bytes);

/*
 * Functions.  A C function is a shared object exporting a handler:
 *
 *   int my_handler(const struct mig_payload *in, struct mig_payload *out);
 *
 * @in holds the invocation's request body.  The handler sets out->data to
 * memory from malloc() (the executor frees it) and out->len, and may set
 * out->content_type.  It returns 0 on success; any other value is the
 * function's error code, reported to the caller with out->data (if any) as
 * the message.  The shared object may also export
 *
 *   int mignificent_init(void);
 *
 * run once when an instance starts (build models, load data); nonzero fails
 * the instance's start.  The same code runs for warm and cold invocations.
 */
struct mig_payload {
	void *data;
	size_t len;
	char content_type[64];
};

typedef int (*mig_handler_fn)(const struct mig_payload *in,
			      struct mig_payload *out);
typedef int (*mig_init_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* MIGNIFICENT_H */
