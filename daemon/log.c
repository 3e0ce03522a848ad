/*
 * log.c - mignificentd's log: one line per message on standard error, with
 * a UTC timestamp, so that journald, a terminal and a test harness all get
 * something they can read.
 *
 * Level 0 is always written (start, stop, failures an operator must see),
 * 1 with -v (deploys, instance life cycle), 2 with -vv (every request).
 * Each line is formatted into one buffer and written with a single write(),
 * so lines of concurrent threads never interleave.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"

#define LINE_MAX_BYTES 4096

static int log_verbose;

void daemon_log_level(int verbose)
{
	__atomic_store_n(&log_verbose, verbose, __ATOMIC_RELAXED);
}

/* Keep what a child or a terminal cannot show out of the log line. */
static void scrub(char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
			s[i] = ' ';
}

void daemon_log(int level, const char *fmt, ...)
{
	char line[LINE_MAX_BYTES];
	struct timespec ts;
	struct tm tm;
	size_t n, room;
	va_list ap;
	int k;

	if (level > __atomic_load_n(&log_verbose, __ATOMIC_RELAXED))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	k = snprintf(line + n, sizeof(line) - n, ".%03ldZ mignificentd: ",
		     ts.tv_nsec / 1000000);
	n += k > 0 ? (size_t)k : 0;
	room = sizeof(line) - n - 1; /* keep one byte for the newline */
	va_start(ap, fmt);
	k = vsnprintf(line + n, room + 1, fmt, ap);
	va_end(ap);
	if (k < 0)
		k = 0;
	if ((size_t)k > room)
		k = (int)room; /* truncated: still one whole line */
	scrub(line + n, (size_t)k);
	n += (size_t)k;
	line[n++] = '\n';
	/* One write: concurrent lines stay whole.  Nothing to do on error. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}
