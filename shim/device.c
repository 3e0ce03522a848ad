/*
 * device.c - init, driver version and device queries.
 *
 * The program sees exactly one device: its partition (a whole GPU or a
 * MIG slice).  Every answer comes from the snapshot the server took at
 * start, so these hot calls (PyTorch asks for attributes thousands of
 * times) never leave the process.
 */
#include <stdio.h>
#include <string.h>

#include "shim.h"

#define CHECK_INIT()                                   \
	do {                                           \
		CUresult _r = shim_ensure_init();      \
		if (_r != CUDA_SUCCESS)                \
			return _r;                     \
	} while (0)

#define CHECK_DEV(d)                                   \
	do {                                           \
		if ((d) != 0)                          \
			return CUDA_ERROR_INVALID_DEVICE; \
	} while (0)

SHIM_API CUresult cuInit(unsigned int flags)
{
	if (flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	return shim_ensure_init();
}

SHIM_API CUresult cuDriverGetVersion(int *version)
{
	if (!version)
		return CUDA_ERROR_INVALID_VALUE;
	/* The server's driver, capped at what this shim was built against:
	 * we implement the API of CUDA_VERSION, not of a newer driver. */
	*version = CUDA_VERSION;
	if (shim_ensure_init() == CUDA_SUCCESS && shim.dev.driver_version &&
	    shim.dev.driver_version < CUDA_VERSION)
		*version = shim.dev.driver_version;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuDeviceGet(CUdevice *dev, int ordinal)
{
	CHECK_INIT();
	if (!dev)
		return CUDA_ERROR_INVALID_VALUE;
	if (ordinal != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	*dev = 0;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuDeviceGetCount(int *count)
{
	CHECK_INIT();
	if (!count)
		return CUDA_ERROR_INVALID_VALUE;
	*count = 1;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
{
	CHECK_INIT();
	CHECK_DEV(dev);
	if (!name || len <= 0)
		return CUDA_ERROR_INVALID_VALUE;
	snprintf(name, (size_t)len, "%s", shim.dev.name);
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice dev)
{
	CHECK_INIT();
	CHECK_DEV(dev);
	if (!uuid)
		return CUDA_ERROR_INVALID_VALUE;
	memcpy(uuid->bytes, shim.dev.uuid, sizeof(uuid->bytes));
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev)
{
	return cuDeviceGetUuid(uuid, dev);
}

SHIM_API CUresult cuDeviceGetLuid(char *luid, unsigned int *mask, CUdevice dev)
{
	(void)luid;
	(void)mask;
	(void)dev;
	return CUDA_ERROR_NOT_SUPPORTED; /* Windows only, like the driver */
}

/*
 * The device's memory is the instance's: where the daemon gave it a limit,
 * that (the server's answer, as for cuMemGetInfo; one round trip, and
 * frameworks ask once), else the partition's.
 */
SHIM_API CUresult cuDeviceTotalMem(size_t *bytes, CUdevice dev)
{
	struct mig_ctx_sync a = { 0 };
	struct mig_mem_info mi;

	CHECK_INIT();
	CHECK_DEV(dev);
	if (!bytes)
		return CUDA_ERROR_INVALID_VALUE;
	*bytes = shim.dev.total_mem;
	if (shim_call(MIG_OP_MEM_GET_INFO, &a, sizeof(a), MIG_MSGF_REPLY, &mi,
		      sizeof(mi)) == CUDA_SUCCESS && mi.total < *bytes)
		*bytes = mi.total;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib,
				       CUdevice dev)
{
	CHECK_INIT();
	CHECK_DEV(dev);
	if (!pi || attrib <= 0 || attrib >= CU_DEVICE_ATTRIBUTE_MAX ||
	    attrib >= MIG_DEV_ATTR_COUNT)
		return CUDA_ERROR_INVALID_VALUE;
	*pi = shim.dev.attr[attrib];
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuDeviceComputeCapability(int *major, int *minor,
					    CUdevice dev)
{
	CHECK_INIT();
	CHECK_DEV(dev);
	if (!major || !minor)
		return CUDA_ERROR_INVALID_VALUE;
	*major = shim.dev.attr[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR];
	*minor = shim.dev.attr[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR];
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuDeviceGetProperties(CUdevprop *p, CUdevice dev)
{
	const int *a = shim.dev.attr;

	CHECK_INIT();
	CHECK_DEV(dev);
	if (!p)
		return CUDA_ERROR_INVALID_VALUE;
	memset(p, 0, sizeof(*p));
	p->maxThreadsPerBlock = a[CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK];
	p->maxThreadsDim[0] = a[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X];
	p->maxThreadsDim[1] = a[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y];
	p->maxThreadsDim[2] = a[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z];
	p->maxGridSize[0] = a[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X];
	p->maxGridSize[1] = a[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y];
	p->maxGridSize[2] = a[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z];
	p->sharedMemPerBlock = a[CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK];
	p->totalConstantMemory = a[CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY];
	p->SIMDWidth = a[CU_DEVICE_ATTRIBUTE_WARP_SIZE];
	p->memPitch = a[CU_DEVICE_ATTRIBUTE_MAX_PITCH];
	p->regsPerBlock = a[CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK];
	p->clockRate = a[CU_DEVICE_ATTRIBUTE_CLOCK_RATE];
	p->textureAlign = a[CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT];
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuDeviceGetPCIBusId(char *id, int len, CUdevice dev)
{
	CHECK_INIT();
	CHECK_DEV(dev);
	if (!id || len <= 0)
		return CUDA_ERROR_INVALID_VALUE;
	snprintf(id, (size_t)len, "%08x:%02x:%02x.0",
		 shim.dev.attr[CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID],
		 shim.dev.attr[CU_DEVICE_ATTRIBUTE_PCI_BUS_ID],
		 shim.dev.attr[CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID]);
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuDeviceGetByPCIBusId(CUdevice *dev, const char *id)
{
	char mine[32];

	CHECK_INIT();
	if (!dev || !id)
		return CUDA_ERROR_INVALID_VALUE;
	cuDeviceGetPCIBusId(mine, sizeof(mine), 0);
	/* Accept the short form "bus:dev.fn" too. */
	if (strcasecmp(id, mine) && strcasecmp(id, mine + 4))
		return CUDA_ERROR_INVALID_DEVICE;
	*dev = 0;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuDeviceCanAccessPeer(int *can, CUdevice dev, CUdevice peer)
{
	CHECK_INIT();
	CHECK_DEV(dev);
	CHECK_DEV(peer);
	if (!can)
		return CUDA_ERROR_INVALID_VALUE;
	*can = 0;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuDeviceGetExecAffinitySupport(int *pi, CUexecAffinityType t,
						 CUdevice dev)
{
	(void)t;
	CHECK_INIT();
	CHECK_DEV(dev);
	if (!pi)
		return CUDA_ERROR_INVALID_VALUE;
	*pi = 0;
	return CUDA_SUCCESS;
}
