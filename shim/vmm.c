/*
 * vmm.c - the virtual memory management API (cuMemAddressReserve,
 * cuMemCreate, cuMemMap, cuMemSetAccess, ...), as PyTorch's expandable
 * segments use it.
 *
 * A reservation is a piece of the server's device address range, which
 * this process keeps reserved PROT_NONE, so the addresses the program sees
 * are the server's and pointer kinds still follow from addresses.  A
 * physical allocation is the server's handle id.  The server checks
 * everything; the shim checks only what it can answer without a round
 * trip, answers the granularity from the device snapshot, and remembers
 * mappings so that copies and memsets into them pass its pointer checks.
 */
#include <string.h>

#include "shim.h"

/* Fields of @prop the server supports; the rest is refused here. */
static CUresult check_prop(const CUmemAllocationProp *prop)
{
	if (!prop)
		return CUDA_ERROR_INVALID_VALUE;
	if (prop->type != CU_MEM_ALLOCATION_TYPE_PINNED ||
	    prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
		return shim_unsupported("virtual memory other than pinned device memory");
	if (prop->location.id != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuMemGetAllocationGranularity(
	size_t *granularity, const CUmemAllocationProp *prop,
	CUmemAllocationGranularity_flags option)
{
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (!granularity ||
	    (option != CU_MEM_ALLOC_GRANULARITY_MINIMUM &&
	     option != CU_MEM_ALLOC_GRANULARITY_RECOMMENDED))
		return CUDA_ERROR_INVALID_VALUE;
	r = check_prop(prop);
	if (r != CUDA_SUCCESS)
		return r;
	*granularity = shim.dev.vmm_granularity;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size,
				      size_t alignment, CUdeviceptr addr,
				      unsigned long long flags)
{
	struct mig_mem_reserve a = {
		.size = size, .align = alignment, .addr = addr, .flags = flags,
	};
	uint64_t got = 0;
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (!ptr)
		return CUDA_ERROR_INVALID_VALUE;
	r = shim_call(MIG_OP_MEM_ADDRESS_RESERVE, &a, sizeof(a), MIG_MSGF_REPLY,
		      &got, sizeof(got));
	if (r == CUDA_SUCCESS)
		*ptr = got;
	return r;
}

SHIM_API CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
	struct mig_mem_range a = { .ptr = ptr, .size = size };
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	return shim_call(MIG_OP_MEM_ADDRESS_FREE, &a, sizeof(a), MIG_MSGF_REPLY,
			 NULL, 0);
}

SHIM_API CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
			      const CUmemAllocationProp *prop,
			      unsigned long long flags)
{
	struct mig_mem_create a = { .size = size, .flags = flags };
	uint64_t id = 0;
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (!handle)
		return CUDA_ERROR_INVALID_VALUE;
	r = check_prop(prop);
	if (r != CUDA_SUCCESS)
		return r;
	a.type = prop->type;
	a.location_type = prop->location.type;
	a.location_id = prop->location.id;
	a.handle_types = prop->requestedHandleTypes;
	a.compression = prop->allocFlags.compressionType;
	a.usage = prop->allocFlags.usage;
	/* gpuDirectRDMACapable: a hint with no meaning here; not forwarded. */
	r = shim_call(MIG_OP_MEM_CREATE, &a, sizeof(a), MIG_MSGF_REPLY, &id,
		      sizeof(id));
	if (r == CUDA_SUCCESS)
		*handle = id;
	return r;
}

SHIM_API CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
	struct mig_handle_arg a = { .handle = handle };
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	return shim_call(MIG_OP_MEM_RELEASE, &a, sizeof(a), MIG_MSGF_REPLY,
			 NULL, 0);
}

SHIM_API CUresult cuMemGetAllocationPropertiesFromHandle(
	CUmemAllocationProp *prop, CUmemGenericAllocationHandle handle)
{
	struct mig_handle_arg a = { .handle = handle };
	struct mig_mem_props p;
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (!prop)
		return CUDA_ERROR_INVALID_VALUE;
	r = shim_call(MIG_OP_MEM_GET_PROPS, &a, sizeof(a), MIG_MSGF_REPLY, &p,
		      sizeof(p));
	if (r != CUDA_SUCCESS)
		return r;
	memset(prop, 0, sizeof(*prop));
	prop->type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop->location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop->location.id = 0;
	prop->requestedHandleTypes = (CUmemAllocationHandleType)p.handle_types;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
			   CUmemGenericAllocationHandle handle,
			   unsigned long long flags)
{
	struct mig_mem_map a = {
		.ptr = ptr, .size = size, .offset = offset, .handle = handle,
		.flags = flags,
	};
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	r = shim_call(MIG_OP_MEM_MAP, &a, sizeof(a), MIG_MSGF_REPLY, NULL, 0);
	if (r == CUDA_SUCCESS)
		shim_note_vmm_map(ptr, size);
	return r;
}

SHIM_API CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
	struct mig_mem_range a = { .ptr = ptr, .size = size };
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	r = shim_call(MIG_OP_MEM_UNMAP, &a, sizeof(a), MIG_MSGF_REPLY, NULL, 0);
	if (r == CUDA_SUCCESS)
		shim_forget_vmm_range(ptr, size);
	return r;
}

SHIM_API CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size,
				 const CUmemAccessDesc *desc, size_t count)
{
	struct mig_mem_set_access a = { .ptr = ptr, .size = size };
	struct shim_tx tx;
	size_t i;
	CUresult r = shim_ensure_init();

	if (r != CUDA_SUCCESS)
		return r;
	if (!desc || !count || count > MIG_MEM_ACCESS_MAX)
		return CUDA_ERROR_INVALID_VALUE;
	a.count = (uint32_t)count;
	r = shim_begin(&tx, MIG_OP_MEM_SET_ACCESS,
		       sizeof(a) + a.count * sizeof(struct mig_mem_access),
		       MIG_MSGF_REPLY);
	if (r != CUDA_SUCCESS)
		return r;
	memcpy(tx.body, &a, sizeof(a));
	for (i = 0; i < count; i++) {
		struct mig_mem_access d = {
			.location_type = desc[i].location.type,
			.location_id = desc[i].location.id,
			.flags = desc[i].flags,
		};

		memcpy(tx.body + sizeof(a) + i * sizeof(d), &d, sizeof(d));
	}
	return shim_commit(&tx);
}
