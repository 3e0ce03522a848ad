/*
 * backend.c - choosing the driver backend by name.
 */
#include <stdio.h>
#include <string.h>

#include "backend.h"

int gpud_backend_open(const char *name, struct gpud_backend *b, char *err,
		      size_t errlen)
{
	memset(b, 0, sizeof(*b));
	if (!strcmp(name, "cuda"))
		return gpud_backend_cuda_open(b, err, errlen);
	if (!strcmp(name, "host"))
		return gpud_backend_host_open(b, err, errlen);
	snprintf(err, errlen,
		 "unknown backend \"%s\": use \"cuda\" (the GPU) or \"host\" (the test double)",
		 name);
	return -1;
}
