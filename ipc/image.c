/*
 * image.c - choosing the parts of a fatbin a device can use.
 *
 * A fatbin carries one entry per target: cubins (ELF) for several
 * architectures and PTX for some.  Libraries built for every GPU (PyTorch,
 * cuBLAS, cuDNN) carry five or six architectures of which one device uses
 * one: on the H200, 48 of PyTorch's 284 MiB.  The driver picks, for a
 * device of compute capability M.m, a cubin of the same major and a minor
 * no greater (an arch-specific "a" cubin only for exactly M.m), and JIT-
 * compiles PTX of an architecture no greater than M.m only where no cubin
 * fits.  Keeping every entry that rule could pick, and nothing else, gives
 * the driver the same choice with a fraction of the bytes to copy.
 *
 * Entry header fields beyond struct mig_fatbin_entry, as the CUDA 13
 * toolchain writes them: the target architecture (10 * major + minor) at
 * byte 28 and 64 bits of flags at byte 40, where 0x100000 marks an
 * arch-specific ("sm_90a") entry and 0x200000 a family-specific
 * ("sm_100f") one.  Entries of any other kind, and any entry whose header
 * is too short to say, are kept.
 */
#include <string.h>

#include "image.h"

#define ENTRY_ARCH_OFF 28
#define ENTRY_FLAGS_OFF 40
#define ENTRY_FLAG_ARCH_SPECIFIC 0x100000ull
#define ENTRY_FLAG_FAMILY 0x200000ull

enum { ENTRY_PTX = 1, ENTRY_ELF = 2 };

/* Whether the driver could choose entry @e (header at @p) for @cc. */
static int entry_usable(const uint8_t *p, const struct mig_fatbin_entry *e,
			unsigned int cc)
{
	uint32_t arch;
	uint64_t flags;

	if ((e->kind != ENTRY_PTX && e->kind != ENTRY_ELF) ||
	    e->header_size < ENTRY_FLAGS_OFF + sizeof(flags))
		return 1;
	memcpy(&arch, p + ENTRY_ARCH_OFF, sizeof(arch));
	memcpy(&flags, p + ENTRY_FLAGS_OFF, sizeof(flags));
	if (flags & ENTRY_FLAG_ARCH_SPECIFIC)
		return arch == cc;
	if (arch > cc)
		return 0;
	/* A cubin runs only within its major version (family ones too). */
	if (e->kind == ENTRY_ELF || (flags & ENTRY_FLAG_FAMILY))
		return arch / 10 == cc / 10;
	return 1;
}

uint64_t mig_fatbin_select(const uint8_t *img, uint64_t len, unsigned int cc,
			   uint8_t *out)
{
	struct mig_fatbin_header h;
	uint64_t off, end, n = sizeof(h), kept = 0;

	if (mig_image_check(img, len) != MIG_IMAGE_FATBIN)
		return 0;
	memcpy(&h, img, sizeof(h));
	end = h.header_size + h.fat_size;
	for (off = h.header_size; off < end;) {
		struct mig_fatbin_entry e;
		uint64_t size;

		memcpy(&e, img + off, sizeof(e));
		size = e.header_size + e.payload_size;
		if (entry_usable(img + off, &e, cc)) {
			if (out)
				memcpy(out + n, img + off, size);
			n += size;
			kept++;
		}
		off += size;
	}
	if (!kept)
		return 0;
	if (out) {
		h.header_size = sizeof(h);
		h.fat_size = n - sizeof(h);
		memcpy(out, &h, sizeof(h));
	}
	return n;
}
