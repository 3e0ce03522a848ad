/*
 * log.c - the shim's logging: quiet by default, MIG_SHIM_LOG=1 or 2 for
 * more.  Entry points we do not implement are reported once each, by name,
 * even when quiet: a program that depends on one should say so plainly.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>

#include "shim.h"

int shim_log_level;

void shim_log(int level, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	if (level > shim_log_level)
		return;
	n = snprintf(line, sizeof(line), "mignificent shim[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	fputs(line, stderr);
}

#define MAX_REPORTED 256
static const char *reported[MAX_REPORTED];
static unsigned int nreported;
static pthread_mutex_t reported_lock = PTHREAD_MUTEX_INITIALIZER;

SHIM_API CUresult shim_unsupported(const char *name)
{
	unsigned int i;
	int seen = 0;

	pthread_mutex_lock(&reported_lock);
	for (i = 0; i < nreported; i++)
		if (reported[i] == name || !strcmp(reported[i], name))
			seen = 1;
	if (!seen && nreported < MAX_REPORTED)
		reported[nreported++] = name;
	pthread_mutex_unlock(&reported_lock);
	if (!seen)
		shim_log(0, "%s is not supported by mignificent; returning CUDA_ERROR_NOT_SUPPORTED",
			 name);
	return CUDA_ERROR_NOT_SUPPORTED;
}

/* Reported by cuGetExportTable for tables we do not provide. */
SHIM_API void shim_log_unknown_export_table(const CUuuid *id)
{
	const unsigned char *b = (const unsigned char *)id->bytes;

	shim_log(1, "export table %02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x requested, not provided",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
}
