/*
 * nvml_abi_layout.c - sizes, offsets and codes of the NVML ABI we declare
 * (nvml/nvml_abi.h), printed; built once against NVIDIA's nvml.h (-DREAL)
 * and once against ours, the outputs must be equal
 * (tests/gpu/test_third_party.py).
 */
#include <stddef.h>
#include <stdio.h>

#ifdef REAL
#define NVML_NO_UNVERSIONED_FUNC_DEFS
#include <nvml.h>
#define PROC_V1 nvmlProcessInfo_v1_t
#define PCI_V3 nvmlPciInfo_t
#ifndef NVML_VALUE_NOT_AVAILABLE_UINT /* ours names the instance ids' one */
#define NVML_VALUE_NOT_AVAILABLE_UINT (~0u)
#endif
/* The bus id texts: compared only where this nvml.h has them. */
#ifndef NVML_DEVICE_PCI_BUS_ID_FMT
#define NVML_DEVICE_PCI_BUS_ID_FMT "(not in this nvml.h)"
#endif
#ifndef NVML_DEVICE_PCI_BUS_ID_LEGACY_FMT
#define NVML_DEVICE_PCI_BUS_ID_LEGACY_FMT "(not in this nvml.h)"
#endif
#else
#include "nvml_abi.h"
#define PROC_V1 nvmlProcessInfo_v1_t
#define PCI_V3 nvmlPciInfo_t
#endif

#define F(t, f) printf("%s.%s %zu %zu\n", #t, #f, offsetof(t, f), sizeof(((t *)0)->f))

int main(void)
{
	printf("nvmlMemory_t %zu\n", sizeof(nvmlMemory_t));
	F(nvmlMemory_t, total);
	F(nvmlMemory_t, free);
	F(nvmlMemory_t, used);
	printf("nvmlMemory_v2_t %zu %u\n", sizeof(nvmlMemory_v2_t), (unsigned)nvmlMemory_v2);
	F(nvmlMemory_v2_t, version);
	F(nvmlMemory_v2_t, total);
	F(nvmlMemory_v2_t, reserved);
	F(nvmlMemory_v2_t, free);
	F(nvmlMemory_v2_t, used);
	printf("pci %zu\n", sizeof(PCI_V3));
	F(PCI_V3, busIdLegacy);
	F(PCI_V3, domain);
	F(PCI_V3, bus);
	F(PCI_V3, device);
	F(PCI_V3, pciDeviceId);
	F(PCI_V3, pciSubSystemId);
	F(PCI_V3, busId);
	printf("proc1 %zu\n", sizeof(PROC_V1));
	F(PROC_V1, pid);
	F(PROC_V1, usedGpuMemory);
	printf("proc %zu\n", sizeof(nvmlProcessInfo_t));
	F(nvmlProcessInfo_t, pid);
	F(nvmlProcessInfo_t, usedGpuMemory);
	F(nvmlProcessInfo_t, gpuInstanceId);
	F(nvmlProcessInfo_t, computeInstanceId);
	printf("codes %d %d %d %d %d %d %d %d %d %d %d %d\n", NVML_SUCCESS,
	       NVML_ERROR_UNINITIALIZED, NVML_ERROR_INVALID_ARGUMENT,
	       NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_NO_PERMISSION,
	       NVML_ERROR_NOT_FOUND, NVML_ERROR_INSUFFICIENT_SIZE,
	       NVML_ERROR_DRIVER_NOT_LOADED, NVML_ERROR_LIBRARY_NOT_FOUND,
	       NVML_ERROR_FUNCTION_NOT_FOUND, NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
	       NVML_ERROR_UNKNOWN);
	printf("sizes %d %d %d %d\n", NVML_DEVICE_NAME_V2_BUFFER_SIZE,
	       NVML_DEVICE_UUID_V2_BUFFER_SIZE, NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE,
	       NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE);
	printf("na %llu %u\n", (unsigned long long)NVML_VALUE_NOT_AVAILABLE,
	       (unsigned)NVML_VALUE_NOT_AVAILABLE_UINT);
	printf("fmt busId %s\n", NVML_DEVICE_PCI_BUS_ID_FMT);
	printf("fmt busIdLegacy %s\n", NVML_DEVICE_PCI_BUS_ID_LEGACY_FMT);
	return 0;
}
