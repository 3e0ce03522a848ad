/*
 * cpulist.c - see cpulist.h.
 */
#define _GNU_SOURCE
#include "cpulist.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A CPU number at *@p, advancing it; -1 if none or too large. */
static long cpu_number(const char **p)
{
	char *end;
	long v;

	if (!isdigit((unsigned char)**p))
		return -1;
	errno = 0;
	v = strtol(*p, &end, 10);
	if (errno || v >= CPU_SETSIZE)
		return -1;
	*p = end;
	return v;
}

int mig_cpulist_parse(const char *s, cpu_set_t *set)
{
	const char *p = s;
	int n = 0;

	CPU_ZERO(set);
	while (*p == ' ')
		p++;
	for (;;) {
		long a = cpu_number(&p), b;

		if (a < 0)
			goto bad;
		b = a;
		if (*p == '-') {
			p++;
			if ((b = cpu_number(&p)) < a)
				goto bad;
		}
		for (long c = a; c <= b; c++)
			CPU_SET((int)c, set);
		n++;
		if (*p != ',')
			break;
		p++;
	}
	while (*p == ' ')
		p++;
	if (*p == '\n')
		p++;
	if (*p || !n)
		goto bad;
	return 0;
bad:
	CPU_ZERO(set);
	return -1;
}

size_t mig_cpulist_format(const cpu_set_t *set, char *buf, size_t n)
{
	size_t len = 0;

	if (n)
		*buf = 0;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		int e = c;
		int w;

		if (!CPU_ISSET(c, set))
			continue;
		while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, set))
			e++;
		w = e == c ? snprintf(len < n ? buf + len : NULL, len < n ? n - len : 0,
				      "%s%d", len ? "," : "", c) :
			     snprintf(len < n ? buf + len : NULL, len < n ? n - len : 0,
				      "%s%d-%d", len ? "," : "", c, e);
		len += (size_t)w;
		c = e;
	}
	return len;
}

void mig_cpulist_minus(cpu_set_t *out, const cpu_set_t *a, const cpu_set_t *b)
{
	cpu_set_t both;

	CPU_AND(&both, a, b);
	CPU_XOR(out, a, &both);
}

int mig_cpulist_pick(const cpu_set_t *free, int want, cpu_set_t *out)
{
	int got = 0;

	CPU_ZERO(out);
	if (want < 1 || CPU_COUNT(free) < want)
		return -1;
	/* A run of @want adjacent free CPUs, the lowest such. */
	for (int c = 0, run = 0; c < CPU_SETSIZE; c++) {
		run = CPU_ISSET(c, free) ? run + 1 : 0;
		if (run == want) {
			for (int k = c - want + 1; k <= c; k++)
				CPU_SET(k, out);
			return 0;
		}
	}
	for (int c = 0; c < CPU_SETSIZE && got < want; c++)
		if (CPU_ISSET(c, free)) {
			CPU_SET(c, out);
			got++;
		}
	return 0;
}
