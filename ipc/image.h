/*
 * image.h - sizes and sanity of GPU code images (cubin, fatbin, PTX).
 *
 * cuModuleLoadData takes an image without a length: the driver reads as far
 * as the image's own headers say.  The shim therefore works out the length
 * from the headers before copying an image into the segment, and the server
 * checks that everything those headers describe lies inside the bytes it
 * received before the driver sees them: a lying header must not send the
 * driver's parser past the end of our copy.
 */
#ifndef MIG_IPC_IMAGE_H
#define MIG_IPC_IMAGE_H

#include <elf.h>
#include <stdint.h>
#include <string.h>

#define MIG_FATBIN_MAGIC 0xba55ed50u
#define MIG_FATBIN_WRAPPER_MAGIC 0x466243b1u

struct mig_fatbin_header {
	uint32_t magic;
	uint16_t version;
	uint16_t header_size;
	uint64_t fat_size;
};

/* One entry (cubin, PTX, ...) inside a fatbin. */
struct mig_fatbin_entry {
	uint16_t kind;
	uint16_t version;
	uint32_t header_size;
	uint64_t payload_size;
};

enum mig_image_kind { MIG_IMAGE_BAD, MIG_IMAGE_FATBIN, MIG_IMAGE_ELF, MIG_IMAGE_PTX };

/*
 * Check the image in @img[0..len): every structure its headers describe
 * must lie inside.  Returns its kind, or MIG_IMAGE_BAD.  For PTX the
 * caller must make sure a NUL follows within len.
 */
static inline enum mig_image_kind mig_image_check(const uint8_t *img, uint64_t len)
{
	uint32_t magic;

	if (len < 4)
		return MIG_IMAGE_BAD;
	memcpy(&magic, img, 4);
	if (magic == MIG_FATBIN_MAGIC) {
		struct mig_fatbin_header h;
		uint64_t off, end;

		if (len < sizeof(h))
			return MIG_IMAGE_BAD;
		memcpy(&h, img, sizeof(h));
		if (h.header_size < sizeof(h) || h.fat_size > len ||
		    h.header_size > len - h.fat_size)
			return MIG_IMAGE_BAD;
		end = h.header_size + h.fat_size;
		for (off = h.header_size; off < end;) {
			struct mig_fatbin_entry e;

			if (end - off < sizeof(e))
				return MIG_IMAGE_BAD;
			memcpy(&e, img + off, sizeof(e));
			if (e.header_size < sizeof(e) ||
			    e.header_size > end - off ||
			    e.payload_size > end - off - e.header_size)
				return MIG_IMAGE_BAD;
			off += e.header_size + e.payload_size;
		}
		return MIG_IMAGE_FATBIN;
	}
	if (!memcmp(img, ELFMAG, SELFMAG)) {
		Elf64_Ehdr e;
		uint64_t i;

		if (len < sizeof(e))
			return MIG_IMAGE_BAD;
		memcpy(&e, img, sizeof(e));
		if (e.e_ident[EI_CLASS] != ELFCLASS64 ||
		    (e.e_shnum && e.e_shentsize != sizeof(Elf64_Shdr)) ||
		    (e.e_phnum && e.e_phentsize != sizeof(Elf64_Phdr)) ||
		    e.e_shoff > len || e.e_phoff > len ||
		    (uint64_t)e.e_shnum * sizeof(Elf64_Shdr) > len - e.e_shoff ||
		    (uint64_t)e.e_phnum * sizeof(Elf64_Phdr) > len - e.e_phoff ||
		    (e.e_shnum && e.e_shstrndx >= e.e_shnum))
			return MIG_IMAGE_BAD;
		for (i = 0; i < e.e_shnum; i++) {
			Elf64_Shdr s;

			memcpy(&s, img + e.e_shoff + i * sizeof(s), sizeof(s));
			if (s.sh_type != SHT_NOBITS &&
			    (s.sh_offset > len || s.sh_size > len - s.sh_offset))
				return MIG_IMAGE_BAD;
		}
		for (i = 0; i < e.e_phnum; i++) {
			Elf64_Phdr p;

			memcpy(&p, img + e.e_phoff + i * sizeof(p), sizeof(p));
			if (p.p_offset > len || p.p_filesz > len - p.p_offset)
				return MIG_IMAGE_BAD;
		}
		return MIG_IMAGE_ELF;
	}
	if (magic == MIG_FATBIN_WRAPPER_MAGIC)
		return MIG_IMAGE_BAD; /* holds a pointer: the client unwraps */
	return memchr(img, 0, len) ? MIG_IMAGE_PTX : MIG_IMAGE_BAD;
}

/*
 * The entries of fatbin @img[0..len) that a device of compute capability
 * @cc (10 * major + minor) could use, as a fatbin of their own written to
 * @out (NULL: only measure).  Returns its size: never more than @len; 0
 * when @img is not a valid fatbin or no entry fits (the caller then hands
 * the driver the whole image, and gets the driver's own answer).  image.c.
 */
uint64_t mig_fatbin_select(const uint8_t *img, uint64_t len, unsigned int cc,
			   uint8_t *out);

#endif /* MIG_IPC_IMAGE_H */
