/*
 * error_strings.c - cuGetErrorName and cuGetErrorString for every CUresult
 * of cuda.h (shim/generated/error_table.inc, made by
 * tools/gen_driver_table.py).  Answered locally: no channel, no cuInit.
 * An unknown code gives CUDA_ERROR_INVALID_VALUE and *pStr = NULL, as the
 * real driver does.
 */
#include <stddef.h>

#include "shim.h"

struct error_desc {
	const char *name;
	const char *str;
};

/* The case labels check each enumerator against cuda.h at compile time. */
static const struct error_desc *error_lookup(CUresult error)
{
	switch (error) {
#define ERR(name, value, desc)						\
	case name: {							\
		static const struct error_desc d = { #name, desc };	\
		_Static_assert(name == value, #name " changed value");	\
		return &d;						\
	}
#include "generated/error_table.inc"
#undef ERR
	default:
		return NULL;
	}
}

SHIM_API CUresult cuGetErrorName(CUresult error, const char **pStr)
{
	const struct error_desc *d;

	if (!pStr)
		return CUDA_ERROR_INVALID_VALUE;
	d = error_lookup(error);
	*pStr = d ? d->name : NULL;
	return d ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

SHIM_API CUresult cuGetErrorString(CUresult error, const char **pStr)
{
	const struct error_desc *d;

	if (!pStr)
		return CUDA_ERROR_INVALID_VALUE;
	d = error_lookup(error);
	*pStr = d ? d->str : NULL;
	return d ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
