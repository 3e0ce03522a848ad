/*
 * test_image.c - mig_fatbin_select(): which entries of a fatbin a device
 * keeps, and that malformed fatbins are refused, never read past.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "image.h"

#define FLAG_A 0x100000ull
#define FLAG_F 0x200000ull

struct fb {
	uint8_t b[4096];
	size_t n;
};

static void fb_begin(struct fb *f)
{
	struct mig_fatbin_header h = { MIG_FATBIN_MAGIC, 1, sizeof(h), 0 };

	memset(f, 0, sizeof(*f));
	memcpy(f->b, &h, sizeof(h));
	f->n = sizeof(h);
}

/* An entry of @kind for @arch with @flags; its payload's first byte is @tag. */
static void fb_add(struct fb *f, uint16_t kind, uint32_t arch, uint64_t flags,
		   uint8_t tag)
{
	struct mig_fatbin_entry e = { kind, 0x101, 64, 16 };
	struct mig_fatbin_header h;

	memcpy(f->b + f->n, &e, sizeof(e));
	memcpy(f->b + f->n + 28, &arch, sizeof(arch));
	memcpy(f->b + f->n + 40, &flags, sizeof(flags));
	f->b[f->n + 64] = tag;
	f->n += 64 + 16;
	memcpy(&h, f->b, sizeof(h));
	h.fat_size = f->n - sizeof(h);
	memcpy(f->b, &h, sizeof(h));
}

/* The tags of the entries in @out, in order, as a string. */
static void tags(const uint8_t *out, uint64_t n, char *s)
{
	uint64_t off = sizeof(struct mig_fatbin_header);

	while (off < n) {
		struct mig_fatbin_entry e;

		memcpy(&e, out + off, sizeof(e));
		*s++ = (char)out[off + e.header_size];
		off += e.header_size + e.payload_size;
	}
	*s = 0;
}

static void sample(struct fb *f)
{
	fb_begin(f);
	fb_add(f, 2, 80, 0x11, 'a');
	fb_add(f, 2, 86, 0x11, 'b');
	fb_add(f, 2, 90, 0x11, 'c');
	fb_add(f, 2, 90, 0x11 | FLAG_A, 'd');   /* sm_90a */
	fb_add(f, 2, 100, 0x11, 'e');
	fb_add(f, 1, 90, 0x8011, 'f');          /* compute_90 */
	fb_add(f, 1, 100, 0x8011, 'g');         /* compute_100 */
	fb_add(f, 1, 100, 0x8011 | FLAG_F, 'h'); /* compute_100f */
	fb_add(f, 2, 100, 0x11 | FLAG_F, 'i');  /* sm_100f */
	fb_add(f, 1, 80, 0x8011, 'j');          /* compute_80 */
	fb_add(f, 7, 0, 0, 'k');                /* a kind we do not know */
}

static void check_select(unsigned int cc, const char *want)
{
	struct fb f;
	uint8_t out[4096];
	char got[32];
	uint64_t n, m;

	sample(&f);
	n = mig_fatbin_select(f.b, f.n, cc, NULL);
	assert_true(n > 0 && n <= f.n);
	memset(out, 0xee, sizeof(out));
	m = mig_fatbin_select(f.b, f.n, cc, out);
	assert_int_equal(n, m);
	assert_int_equal(mig_image_check(out, n), MIG_IMAGE_FATBIN);
	tags(out, n, got);
	assert_string_equal(got, want);
}

static void test_hopper(void **state)
{
	(void)state;
	/* sm_90, sm_90a, PTX 90 and 80, the unknown kind. */
	check_select(90, "cdfjk");
}

static void test_ampere(void **state)
{
	(void)state;
	check_select(86, "abjk");
	check_select(80, "ajk");
}

static void test_blackwell(void **state)
{
	(void)state;
	/* PTX of any older architecture may be JIT-compiled; cubins only of
	 * major 10; family entries of major 10. */
	check_select(103, "efghijk");
}

static void test_nothing_fits(void **state)
{
	struct fb f;

	(void)state;
	fb_begin(&f);
	fb_add(&f, 2, 100, 0x11, 'x');
	fb_add(&f, 1, 100, 0x8011, 'y');
	assert_int_equal(mig_fatbin_select(f.b, f.n, 90, NULL), 0);
}

static void test_not_fatbins(void **state)
{
	static const uint8_t elf[64] = { 0x7f, 'E', 'L', 'F', 2 };
	static const char ptx[] = ".version 8.0\n.target sm_90\n";

	(void)state;
	assert_int_equal(mig_fatbin_select(elf, sizeof(elf), 90, NULL), 0);
	assert_int_equal(mig_fatbin_select((const uint8_t *)ptx, sizeof(ptx), 90,
					   NULL), 0);
	assert_int_equal(mig_fatbin_select(elf, 2, 90, NULL), 0);
}

/* Lying sizes: every truncation and every corrupted length is refused or
 * selected inside the buffer (ASan watches the reads). */
static void test_malformed(void **state)
{
	struct fb f;
	size_t cut, i;

	(void)state;
	sample(&f);
	for (cut = 0; cut < f.n; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1);

		memcpy(copy, f.b, cut);
		assert_int_equal(mig_fatbin_select(copy, cut, 90, NULL), 0);
		free(copy);
	}
	for (i = 0; i < f.n; i += 4) {
		struct fb g = f;
		uint8_t *copy = malloc(g.n);
		uint8_t *out = malloc(g.n);
		uint64_t n;

		memset(g.b + i, 0xff, 4);
		memcpy(copy, g.b, g.n);
		n = mig_fatbin_select(copy, g.n, 90, NULL);
		assert_true(n <= g.n);
		if (n)
			assert_int_equal(mig_fatbin_select(copy, g.n, 90, out), n);
		free(copy);
		free(out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hopper),
		cmocka_unit_test(test_ampere),
		cmocka_unit_test(test_blackwell),
		cmocka_unit_test(test_nothing_fits),
		cmocka_unit_test(test_not_fatbins),
		cmocka_unit_test(test_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
