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

#ifdef __cplusplus
}
#endif

#endif /* MIGNIFICENT_H */
