/*
 * cpulist.h - CPU lists as Linux writes them ("0-3,8,10-11"): parsed and
 * written back by the daemon (its CPU pool, an instance's CPUs), mig-sandbox
 * (--cpus) and cgroup cpuset files; and the choice of an instance's CPUs.
 */
#ifndef MIG_IPC_CPULIST_H
#define MIG_IPC_CPULIST_H

#include <sched.h>   /* cpu_set_t: build with _GNU_SOURCE */
#include <stddef.h>

/* The CPUs of @s into @set: numbers and ranges a-b (a <= b) joined by
 * commas, each below CPU_SETSIZE; surrounding spaces and one trailing
 * newline (as /sys writes it) are allowed, an empty list is not.  0, or -1
 * when @s is not such a list. */
int mig_cpulist_parse(const char *s, cpu_set_t *set);

/* @set as a list with ranges into @buf ("" for an empty set).  The length
 * it needed (like snprintf): the list is whole only when that is < @n. */
size_t mig_cpulist_format(const cpu_set_t *set, char *buf, size_t n);

/* @out = the CPUs of @a that are not in @b (any of the three may be the
 * same set). */
void mig_cpulist_minus(cpu_set_t *out, const cpu_set_t *a, const cpu_set_t *b);

/* Choose @want CPUs of @free into @out: the first run of @want adjacent
 * free CPUs if there is one (an instance's threads then share the caches
 * of neighbouring cores), else the lowest-numbered free ones.  0, or -1
 * (and @out empty) when @free has fewer than @want, or @want < 1. */
int mig_cpulist_pick(const cpu_set_t *free, int want, cpu_set_t *out);

#endif /* MIG_IPC_CPULIST_H */
