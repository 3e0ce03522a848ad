/*
 * test_units.c - values as people write them (ipc/units.c): sizes, and
 * the GPU servers' spin setting that the daemon and mig-gpud both read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "units.h"

static void test_sizes(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(mig_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(mig_parse_size("512MiB", &v), 0);
	assert_int_equal(v, 512ull << 20);
	assert_int_equal(mig_parse_size("1.5G", &v), 0);
	assert_int_equal(v, 3ull << 29);
	assert_int_equal(mig_parse_size("-1", &v), -1);
	assert_int_equal(mig_parse_size("lots", &v), -1);
	assert_int_equal(mig_parse_size("5X", &v), -1);
}

static void test_phase_spin(void **state)
{
	char err[128];
	uint64_t ns = 1;

	(void)state;
	assert_int_equal(mig_parse_phase_spin(NULL, &ns, err, sizeof(err)), 0);
	assert_int_equal(ns, MIG_PHASE_SPIN_DEFAULT_US * 1000);
	assert_int_equal(mig_parse_phase_spin("", &ns, err, sizeof(err)), 0);
	assert_int_equal(ns, MIG_PHASE_SPIN_DEFAULT_US * 1000);
	assert_int_equal(mig_parse_phase_spin("0", &ns, err, sizeof(err)), 0);
	assert_int_equal(ns, 0);
	assert_int_equal(mig_parse_phase_spin("100000", &ns, err, sizeof(err)), 0);
	assert_int_equal(ns, 100000000ull);
	for (const char **s = (const char *[]){ "100001", "-1", " 5", "5us", "+5", "0x10",
						"99999999999999999999999", NULL };
	     *s; s++) {
		err[0] = 0;
		assert_int_equal(mig_parse_phase_spin(*s, &ns, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "want microseconds, 0 to 100000"));
		assert_non_null(strstr(err, *s));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_phase_spin),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
