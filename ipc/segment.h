/*
 * segment.h - creating and mapping an instance's shared segment.
 *
 * The creator (the daemon, or `mig run`) makes a sealed memfd; the GPU
 * server lays it out (mig_segment_layout) and maps it at a fixed address;
 * the client maps it at the same address.  Seals stop the client from
 * shrinking the file under the server (which would turn the server's next
 * access into SIGBUS).
 */
#ifndef MIG_IPC_SEGMENT_H
#define MIG_IPC_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* Default addresses, far from where the kernel places mappings. */
#define MIG_SEGMENT_BASE_DEFAULT 0x200000000000ull
#define MIG_DEV_VA_BASE_DEFAULT 0x300000000000ull

#define MIG_SEGMENT_SIZE_DEFAULT (2ull << 30)
#define MIG_SEGMENT_SIZE_MIN (64ull << 20)
#define MIG_PIN_GRANULE (64ull << 20) /* heap is pinned in these steps */

/* Create a sealed memfd of @size bytes.  Returns the fd or -errno. */
int mig_segment_create(uint64_t size);

/*
 * Check @fd is a memfd sealed against shrinking and return its size in
 * *@size.  Returns 0 or -errno.
 */
int mig_segment_check(int fd, uint64_t *size);

/*
 * Map @fd (@size bytes) at exactly @base, failing rather than replacing an
 * existing mapping.  Returns the address or NULL with errno set.
 */
void *mig_segment_map_at(int fd, uint64_t base, uint64_t size);

/* Fill the layout fields of @hdr for a segment of @size bytes. */
void mig_segment_layout(struct mig_seg_header *hdr, uint64_t size);

#endif /* MIG_IPC_SEGMENT_H */
