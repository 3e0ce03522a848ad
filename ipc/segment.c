/*
 * segment.c - the instance's shared segment: creation, checks, mapping and
 * the layout of its fixed regions.  See wire.h for what lives where.
 */
#define _GNU_SOURCE
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

int mig_segment_create(uint64_t size)
{
	int fd, err;

	if (size < MIG_SEGMENT_SIZE_MIN)
		return -EINVAL;
	fd = memfd_create("mignificent-segment", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		goto fail;
	/* Neither side may change the size from now on. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto fail;
	return fd;
fail:
	err = errno;
	close(fd);
	return -err;
}

int mig_segment_check(int fd, uint64_t *size)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0)
		return -errno;
	if (!(seals & F_SEAL_SHRINK))
		return -EPERM;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < MIG_SEGMENT_SIZE_MIN)
		return -EINVAL;
	*size = (uint64_t)st.st_size;
	return 0;
}

void *mig_segment_map_at(int fd, uint64_t base, uint64_t size)
{
	void *p = mmap((void *)(uintptr_t)base, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);

	if (p == MAP_FAILED)
		return NULL;
	if ((uint64_t)(uintptr_t)p != base) {
		/* Old kernels ignore MAP_FIXED_NOREPLACE and treat it as a hint. */
		munmap(p, size);
		errno = EEXIST;
		return NULL;
	}
	return p;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

void mig_segment_layout(struct mig_seg_header *hdr, uint64_t size)
{
	uint64_t off = align_up(sizeof(*hdr), 4096);

	hdr->magic = MIG_WIRE_MAGIC;
	hdr->version = MIG_WIRE_VERSION;
	hdr->size = size;
	hdr->req_off = off;
	hdr->req_size = MIG_REQ_RING_SIZE;
	off += MIG_REQ_RING_SIZE;
	hdr->reply_off = off;
	off = align_up(off + MIG_REPLY_SLOTS * sizeof(struct mig_reply_slot), 4096);
	hdr->staging_off = off;
	off += (uint64_t)MIG_STAGING_CHUNKS * MIG_STAGING_CHUNK;
	/* The heap starts on a pin granule so granules never straddle. */
	off = align_up(off, MIG_PIN_GRANULE);
	hdr->pinned_size = off;
	hdr->heap_off = off;
	hdr->heap_size = size > off ? size - off : 0;
}
