/*
 * test_cpulist.c - CPU lists (ipc/cpulist.c): what parses and what does
 * not, lists written back, and the choice of an instance's CPUs.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cpulist.h"

static cpu_set_t set_of(const char *s)
{
	cpu_set_t set;

	assert_int_equal(mig_cpulist_parse(s, &set), 0);
	return set;
}

static void assert_list(const cpu_set_t *set, const char *want)
{
	char buf[256];

	assert_int_equal(mig_cpulist_format(set, buf, sizeof(buf)), strlen(want));
	assert_string_equal(buf, want);
}

static void test_parses_what_linux_writes(void **state)
{
	cpu_set_t s;

	(void)state;
	s = set_of("0-3,8,10-11\n");
	assert_int_equal(CPU_COUNT(&s), 7);
	assert_true(CPU_ISSET(3, &s) && CPU_ISSET(8, &s) && CPU_ISSET(11, &s));
	assert_false(CPU_ISSET(4, &s) || CPU_ISSET(9, &s));
	s = set_of(" 5 ");
	assert_int_equal(CPU_COUNT(&s), 1);
	s = set_of("2-2,2");
	assert_int_equal(CPU_COUNT(&s), 1);
	s = set_of("1023");
	assert_true(CPU_ISSET(1023, &s));
}

static void test_refuses_what_is_not_a_list(void **state)
{
	static const char *const bad[] = {
		"", " ", "\n", "-1", "3-1", "1,", ",1", "1,,2", "a", "1-", "-",
		"1 2", "1;2", "0x3", "+1", "1-3-5", "1024", "99999999999999999999",
		"1\n\n", "1-1024",
	};
	cpu_set_t s;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		CPU_ZERO(&s);
		CPU_SET(7, &s);
		assert_int_equal(mig_cpulist_parse(bad[i], &s), -1);
		/* Never half a set. */
		assert_int_equal(CPU_COUNT(&s), 0);
	}
}

static void test_written_back_with_ranges(void **state)
{
	cpu_set_t s;
	char small[6];

	(void)state;
	CPU_ZERO(&s);
	assert_list(&s, "");
	s = set_of("0,1,2,3,5,7-9,1023");
	assert_list(&s, "0-3,5,7-9,1023");
	/* Too small a buffer: the length it needed, a terminated prefix. */
	assert_int_equal(mig_cpulist_format(&s, small, sizeof(small)), 14);
	assert_int_equal(strlen(small), 5);
	assert_int_equal(mig_cpulist_format(&s, NULL, 0), 14);
}

static void test_minus(void **state)
{
	cpu_set_t a, b;

	(void)state;
	a = set_of("0-7");
	b = set_of("2-3,6,9");
	mig_cpulist_minus(&a, &a, &b);
	assert_list(&a, "0-1,4-5,7");
	mig_cpulist_minus(&a, &a, &a);
	assert_int_equal(CPU_COUNT(&a), 0);
}

static void test_pick_prefers_adjacent_cpus(void **state)
{
	cpu_set_t free, out;

	(void)state;
	free = set_of("0,2-3,5-8");
	assert_int_equal(mig_cpulist_pick(&free, 2, &out), 0);
	assert_list(&out, "2-3");
	assert_int_equal(mig_cpulist_pick(&free, 4, &out), 0);
	assert_list(&out, "5-8");
	/* No run of 5: the lowest five. */
	assert_int_equal(mig_cpulist_pick(&free, 5, &out), 0);
	assert_list(&out, "0,2-3,5-6");
	assert_int_equal(mig_cpulist_pick(&free, 7, &out), 0);
	assert_list(&out, "0,2-3,5-8");
}

static void test_pick_refuses_more_than_free(void **state)
{
	cpu_set_t free, out;

	(void)state;
	free = set_of("4-5");
	assert_int_equal(mig_cpulist_pick(&free, 3, &out), -1);
	assert_int_equal(CPU_COUNT(&out), 0);
	assert_int_equal(mig_cpulist_pick(&free, 0, &out), -1);
	CPU_ZERO(&free);
	assert_int_equal(mig_cpulist_pick(&free, 1, &out), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parses_what_linux_writes),
		cmocka_unit_test(test_refuses_what_is_not_a_list),
		cmocka_unit_test(test_written_back_with_ranges),
		cmocka_unit_test(test_minus),
		cmocka_unit_test(test_pick_prefers_adjacent_cpus),
		cmocka_unit_test(test_pick_refuses_more_than_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
