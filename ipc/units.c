/*
 * units.c - see units.h.
 */
#include "units.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mig_parse_phase_spin(const char *s, uint64_t *ns, char *err, size_t errlen)
{
	unsigned long long v;
	char *end;

	*ns = MIG_PHASE_SPIN_DEFAULT_US * 1000ull;
	if (!s || !*s)
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || !isdigit((unsigned char)*s) || v > MIG_PHASE_SPIN_MAX_US) {
		snprintf(err, errlen, "MIG_GPUD_PHASE_SPIN_US=%s: want microseconds, 0 to %llu",
			 s, MIG_PHASE_SPIN_MAX_US);
		return -1;
	}
	*ns = v * 1000ull;
	return 0;
}

int mig_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	const char *u;
	double v, mul = 1;
	char *end;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !(v >= 0) || !isdigit((unsigned char)*s))
		return -1;
	while (*end == ' ')
		end++;
	if (*end) {
		u = strchr(units, toupper((unsigned char)*end));
		if (!u || !*u)
			return -1;
		mul = (double)(1ull << (10 * (u - units + 1)));
		end++;
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'b' || *end == 'B')
			end++;
	}
	if (*end || v * mul >= 18446744073709551615.0)
		return -1;
	*out = (uint64_t)(v * mul);
	return 0;
}
