/*
 * op_names.c - the wire's calls by name (ipc/wire.h), for the shim's call
 * summary and the GPU server's profile.
 */
#include "wire.h"

static const char *const names[MIG_OP_COUNT] = {
	[MIG_OP_PAD] = "pad", [MIG_OP_HELLO] = "attach",
	[MIG_OP_CTX_SYNC] = "ctx-sync", [MIG_OP_CTX_GET_LIMIT] = "ctx-get-limit",
	[MIG_OP_CTX_SET_LIMIT] = "ctx-set-limit", [MIG_OP_MEM_GET_INFO] = "mem-info",
	[MIG_OP_MEM_ALLOC] = "mem-alloc", [MIG_OP_MEM_FREE] = "mem-free",
	[MIG_OP_HOST_PIN] = "host-pin", [MIG_OP_MEMCPY_HTOD] = "memcpy-htod",
	[MIG_OP_MEMCPY_DTOH] = "memcpy-dtoh", [MIG_OP_MEMCPY_DTOD] = "memcpy-dtod",
	[MIG_OP_MEMCPY_STAGED_HTOD] = "memcpy-htod-staged",
	[MIG_OP_MEMCPY_STAGED_DTOH] = "memcpy-dtoh-staged",
	[MIG_OP_MEMCPY_2D] = "memcpy-2d", [MIG_OP_MEMSET] = "memset",
	[MIG_OP_MODULE_LOAD] = "module-load", [MIG_OP_MODULE_UNLOAD] = "module-unload",
	[MIG_OP_MODULE_GET_FUNCTION] = "module-get-function",
	[MIG_OP_MODULE_GET_GLOBAL] = "module-get-global",
	[MIG_OP_LIBRARY_LOAD] = "library-load",
	[MIG_OP_LIBRARY_UNLOAD] = "library-unload",
	[MIG_OP_LIBRARY_GET_KERNEL] = "library-get-kernel",
	[MIG_OP_LIBRARY_GET_GLOBAL] = "library-get-global",
	[MIG_OP_FUNC_SET_ATTR] = "func-set-attr",
	[MIG_OP_FUNC_OCCUPANCY] = "occupancy", [MIG_OP_LAUNCH] = "launch",
	[MIG_OP_STREAM_CREATE] = "stream-create",
	[MIG_OP_STREAM_DESTROY] = "stream-destroy",
	[MIG_OP_STREAM_QUERY] = "stream-query", [MIG_OP_STREAM_SYNC] = "stream-sync",
	[MIG_OP_STREAM_WAIT_EVENT] = "stream-wait-event",
	[MIG_OP_EVENT_CREATE] = "event-create",
	[MIG_OP_EVENT_DESTROY] = "event-destroy",
	[MIG_OP_EVENT_RECORD] = "event-record", [MIG_OP_EVENT_QUERY] = "event-query",
	[MIG_OP_EVENT_SYNC] = "event-sync", [MIG_OP_EVENT_ELAPSED] = "event-elapsed",
	[MIG_OP_STATS] = "stats", [MIG_OP_FUNC_CLUSTERS] = "occupancy-clusters",
	[MIG_OP_TENSOR_MAP] = "tensor-map",
	[MIG_OP_MEM_ADDRESS_RESERVE] = "mem-address-reserve",
	[MIG_OP_MEM_ADDRESS_FREE] = "mem-address-free",
	[MIG_OP_MEM_CREATE] = "mem-create", [MIG_OP_MEM_RELEASE] = "mem-release",
	[MIG_OP_MEM_MAP] = "mem-map", [MIG_OP_MEM_UNMAP] = "mem-unmap",
	[MIG_OP_MEM_SET_ACCESS] = "mem-set-access",
	[MIG_OP_MEM_GET_PROPS] = "mem-get-props",
};

const char *mig_op_name(unsigned int op)
{
	return op < MIG_OP_COUNT && names[op] ? names[op] : "?";
}
