/*
 * nvml.c - libnvidia-ml.so.1 for a function's container: NVML answered for
 * the function's partition, from the shim's CUDA driver API.
 *
 * Inside a function the host's NVML is hidden (daemon/isolation.c): it
 * would show the whole GPU, every tenant's processes and their activity.
 * But programs ask NVML things: PyTorch's c10 dlopens libnvidia-ml.so.1
 * and, if that works, insists on finding a list of entry points; pynvml
 * users ask for names, memory and processes.  This library stands where the
 * real one would (beside the shim, first on the library path) and answers
 * what a function may know about its own partition:
 *
 *   - one device: its name, UUID, PCI address, compute capability, memory
 *     (as cuMemGetInfo tells the function: no more);
 *   - the CUDA driver version; the process list holds the calling process
 *     only, with the device memory the instance holds as the GPU server
 *     counts it; the graphics and MPS lists are empty.
 *
 * Everything else (utilization, clocks, power, temperature, fans, ECC,
 * NvLink, P2P, MIG and fabric state, accounting, events, any setter) is
 * NVML_ERROR_NOT_SUPPORTED: on a shared GPU those are a side channel onto
 * the other tenants' work, and a function has no business changing them.
 *
 * The values come from the CUDA driver API of the libcuda.so.1 the process
 * loads, our shim, dlopen'ed at the first nvmlInit (never linked: loading
 * this library must not start the shim).  The NVML types we use are
 * declared in nvml_abi.h from NVML's public, stable ABI.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda.h>

#include "nvml_abi.h"

#define API __attribute__((visibility("default")))

/* The driver entry points we use, from the shim. */
static struct {
	CUresult (*init)(unsigned int);
	CUresult (*driver_version)(int *);
	CUresult (*count)(int *);
	CUresult (*get)(CUdevice *, int);
	CUresult (*name)(char *, int, CUdevice);
	CUresult (*uuid)(CUuuid *, CUdevice);
	CUresult (*total_mem)(size_t *, CUdevice);
	CUresult (*attr)(int *, CUdevice_attribute, CUdevice);
	CUresult (*pci_bus_id)(char *, int, CUdevice);
	CUresult (*ctx_retain)(CUcontext *, CUdevice);
	CUresult (*ctx_release)(CUdevice);
	CUresult (*ctx_push)(CUcontext);
	CUresult (*ctx_pop)(CUcontext *);
	CUresult (*mem_info)(size_t *, size_t *);
	int (*client_used)(unsigned long long *); /* the shim's; optional */
} cu;

/* The one device, described at the first nvmlInit. */
struct nvml_device {
	char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
	char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
	char bus_id[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
	unsigned int domain, bus, device;
	int cc_major, cc_minor;
	unsigned long long total;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned int refs;       /* nvmlInit minus nvmlShutdown */
static void *libcuda;
static int ndev;                /* 0 or 1 */
static struct nvml_device dev0;
static int cuda_version;

static int resolve(void)
{
#define SYM(field, name)                                                  \
	do {                                                              \
		*(void **)&cu.field = dlsym(libcuda, name);               \
		if (!cu.field)                                            \
			return -1;                                        \
	} while (0)
	SYM(init, "cuInit");
	SYM(driver_version, "cuDriverGetVersion");
	SYM(count, "cuDeviceGetCount");
	SYM(get, "cuDeviceGet");
	SYM(name, "cuDeviceGetName");
	SYM(uuid, "cuDeviceGetUuid");
	SYM(total_mem, "cuDeviceTotalMem_v2");
	SYM(attr, "cuDeviceGetAttribute");
	SYM(pci_bus_id, "cuDeviceGetPCIBusId");
	SYM(ctx_retain, "cuDevicePrimaryCtxRetain");
	SYM(ctx_release, "cuDevicePrimaryCtxRelease_v2");
	SYM(ctx_push, "cuCtxPushCurrent_v2");
	SYM(ctx_pop, "cuCtxPopCurrent_v2");
	SYM(mem_info, "cuMemGetInfo_v2");
#undef SYM
	*(void **)&cu.client_used = dlsym(libcuda, "mignificent_gpu_memory_used");
	return 0;
}

/* NVML's UUID text: "GPU-" (or "MIG-" for a MIG device) and 8-4-4-4-12. */
static void format_uuid(const CUuuid *u, bool mig, char *out, size_t n)
{
	const unsigned char *b = (const unsigned char *)u->bytes;

	snprintf(out, n,
		 "%s-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 mig ? "MIG" : "GPU", b[0], b[1], b[2], b[3], b[4], b[5], b[6],
		 b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static nvmlReturn_t describe(void)
{
	CUdevice d;
	CUuuid u;
	size_t total = 0;
	int n = 0;

	if (cu.init(0) != CUDA_SUCCESS)
		return NVML_ERROR_DRIVER_NOT_LOADED;
	cu.driver_version(&cuda_version);
	if (cu.count(&n) != CUDA_SUCCESS || n < 1) {
		ndev = 0;
		return NVML_SUCCESS;
	}
	if (cu.get(&d, 0) != CUDA_SUCCESS ||
	    cu.name(dev0.name, sizeof(dev0.name), d) != CUDA_SUCCESS ||
	    cu.uuid(&u, d) != CUDA_SUCCESS ||
	    cu.total_mem(&total, d) != CUDA_SUCCESS ||
	    cu.pci_bus_id(dev0.bus_id, sizeof(dev0.bus_id), d) != CUDA_SUCCESS ||
	    cu.attr(&dev0.cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
		    d) != CUDA_SUCCESS ||
	    cu.attr(&dev0.cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
		    d) != CUDA_SUCCESS)
		return NVML_ERROR_UNKNOWN;
	/* CUDA names a MIG device "<GPU> MIG <profile>". */
	format_uuid(&u, strstr(dev0.name, " MIG ") != NULL, dev0.uuid,
		    sizeof(dev0.uuid));
	if (sscanf(dev0.bus_id, "%x:%x:%x", &dev0.domain, &dev0.bus,
		   &dev0.device) != 3)
		dev0.domain = dev0.bus = dev0.device = 0;
	dev0.total = total;
	ndev = 1;
	return NVML_SUCCESS;
}

static nvmlReturn_t init(void)
{
	nvmlReturn_t r = NVML_SUCCESS;

	pthread_mutex_lock(&lock);
	if (refs) {
		refs++;
		goto out;
	}
	if (!libcuda) {
		libcuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
		if (!libcuda || resolve() < 0) {
			if (libcuda)
				dlclose(libcuda);
			libcuda = NULL;
			r = NVML_ERROR_LIBRARY_NOT_FOUND;
			goto out;
		}
	}
	r = describe();
	if (r == NVML_SUCCESS)
		refs = 1;
out:
	pthread_mutex_unlock(&lock);
	return r;
}

API nvmlReturn_t nvmlInit_v2(void)
{
	return init();
}

API nvmlReturn_t nvmlInit(void)
{
	return init();
}

API nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
	(void)flags; /* "no GPUs" and "no attach" change nothing here */
	return init();
}

API nvmlReturn_t nvmlShutdown(void)
{
	nvmlReturn_t r = NVML_SUCCESS;

	pthread_mutex_lock(&lock);
	if (!refs)
		r = NVML_ERROR_UNINITIALIZED;
	else
		refs--;
	pthread_mutex_unlock(&lock);
	return r;
}

static bool ready(void)
{
	return __atomic_load_n(&refs, __ATOMIC_ACQUIRE) > 0;
}

/* The device behind @h, or NULL. */
static const struct nvml_device *device_of(nvmlDevice_t h)
{
	return ndev && h == (nvmlDevice_t)&dev0 ? &dev0 : NULL;
}

#define CHECK_READY()                                                     \
	do {                                                              \
		if (!ready())                                             \
			return NVML_ERROR_UNINITIALIZED;                  \
	} while (0)

#define CHECK_DEVICE(h)                                                   \
	do {                                                              \
		CHECK_READY();                                            \
		if (!device_of(h))                                        \
			return NVML_ERROR_INVALID_ARGUMENT;               \
	} while (0)

/* Copy @s into @buf of @len bytes, as NVML does. */
static nvmlReturn_t put_string(const char *s, char *buf, unsigned int len)
{
	if (!buf)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (strlen(s) + 1 > len)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	memcpy(buf, s, strlen(s) + 1);
	return NVML_SUCCESS;
}

API const char *nvmlErrorString(nvmlReturn_t r)
{
	switch (r) {
	case NVML_SUCCESS: return "Success";
	case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
	case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
	case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
	case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
	case NVML_ERROR_NOT_FOUND: return "Not Found";
	case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
	case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
	case NVML_ERROR_LIBRARY_NOT_FOUND: return "NVML Shared Library Not Found";
	case NVML_ERROR_FUNCTION_NOT_FOUND: return "Function Not Found";
	case NVML_ERROR_UNKNOWN: return "Unknown Error";
	default: return "Unknown Error";
	}
}

/* --- system ---------------------------------------------------------------- */

API nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v)
{
	CHECK_READY();
	if (!v)
		return NVML_ERROR_INVALID_ARGUMENT;
	*v = cuda_version;
	return NVML_SUCCESS;
}

API nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v)
{
	return nvmlSystemGetCudaDriverVersion(v);
}

/* This library's own version: not NVIDIA's, and says so. */
API nvmlReturn_t nvmlSystemGetNVMLVersion(char *buf, unsigned int len)
{
	CHECK_READY();
	return put_string("mignificent", buf, len);
}

/* The kernel driver's version string is not known inside a function. */
API nvmlReturn_t nvmlSystemGetDriverVersion(char *buf, unsigned int len)
{
	CHECK_READY();
	if (!buf)
		return NVML_ERROR_INVALID_ARGUMENT;
	(void)len;
	return NVML_ERROR_NOT_SUPPORTED;
}

/* --- devices --------------------------------------------------------------- */

API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *n)
{
	CHECK_READY();
	if (!n)
		return NVML_ERROR_INVALID_ARGUMENT;
	*n = (unsigned int)ndev;
	return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetCount(unsigned int *n)
{
	return nvmlDeviceGetCount_v2(n);
}

API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *h)
{
	CHECK_READY();
	if (!h || i >= (unsigned int)ndev)
		return NVML_ERROR_INVALID_ARGUMENT;
	*h = (nvmlDevice_t)&dev0;
	return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int i, nvmlDevice_t *h)
{
	return nvmlDeviceGetHandleByIndex_v2(i, h);
}

API nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *h)
{
	CHECK_READY();
	if (!uuid || !h)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (!ndev || strcasecmp(uuid, dev0.uuid))
		return NVML_ERROR_NOT_FOUND;
	*h = (nvmlDevice_t)&dev0;
	return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *id, nvmlDevice_t *h)
{
	unsigned int dom = 0, bus, d;

	CHECK_READY();
	if (!id || !h)
		return NVML_ERROR_INVALID_ARGUMENT;
	/* "domain:bus:device.function" or "bus:device.function". */
	if (sscanf(id, "%x:%x:%x", &dom, &bus, &d) != 3) {
		dom = 0;
		if (sscanf(id, "%x:%x", &bus, &d) != 2)
			return NVML_ERROR_INVALID_ARGUMENT;
	}
	if (!ndev || dom != dev0.domain || bus != dev0.bus || d != dev0.device)
		return NVML_ERROR_NOT_FOUND;
	*h = (nvmlDevice_t)&dev0;
	return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetHandleByPciBusId(const char *id, nvmlDevice_t *h)
{
	return nvmlDeviceGetHandleByPciBusId_v2(id, h);
}

API nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t h, unsigned int *i)
{
	CHECK_DEVICE(h);
	if (!i)
		return NVML_ERROR_INVALID_ARGUMENT;
	*i = 0;
	return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t h, char *buf, unsigned int len)
{
	CHECK_DEVICE(h);
	return put_string(dev0.name, buf, len);
}

API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t h, char *buf, unsigned int len)
{
	CHECK_DEVICE(h);
	return put_string(dev0.uuid, buf, len);
}

API nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t h, int *major,
						    int *minor)
{
	CHECK_DEVICE(h);
	if (!major || !minor)
		return NVML_ERROR_INVALID_ARGUMENT;
	*major = dev0.cc_major;
	*minor = dev0.cc_minor;
	return NVML_SUCCESS;
}

/* Total and free as cuMemGetInfo tells the function, asked in the primary
 * context without disturbing the caller's current one. */
static nvmlReturn_t partition_memory(unsigned long long *total,
				     unsigned long long *free_)
{
	CUcontext ctx, popped;
	size_t f = 0, t = 0;
	CUresult r;

	if (cu.ctx_retain(&ctx, 0) != CUDA_SUCCESS)
		return NVML_ERROR_UNKNOWN;
	r = cu.ctx_push(ctx);
	if (r == CUDA_SUCCESS) {
		r = cu.mem_info(&f, &t);
		cu.ctx_pop(&popped);
	}
	cu.ctx_release(0);
	if (r != CUDA_SUCCESS)
		return NVML_ERROR_UNKNOWN;
	*total = t;
	*free_ = f < t ? f : t;
	return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t h, nvmlMemory_v2_t *m);

API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t h, nvmlMemory_t *m)
{
	nvmlMemory_v2_t m2 = { .version = nvmlMemory_v2 };
	nvmlReturn_t r;

	if (!m && ready() && device_of(h))
		return NVML_ERROR_INVALID_ARGUMENT;
	r = nvmlDeviceGetMemoryInfo_v2(h, &m2);
	if (r == NVML_SUCCESS) {
		m->total = m2.total;
		m->free = m2.free;
		m->used = m2.used;
	}
	return r;
}

API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t h, nvmlMemory_v2_t *m)
{
	unsigned long long t, f;
	nvmlReturn_t r;

	CHECK_DEVICE(h);
	if (!m)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (m->version != nvmlMemory_v2)
		return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
	r = partition_memory(&t, &f);
	if (r != NVML_SUCCESS)
		return r;
	m->total = t;
	m->reserved = 0;
	m->free = f;
	m->used = t - f;
	return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t h, nvmlPciInfo_t *p)
{
	CHECK_DEVICE(h);
	if (!p)
		return NVML_ERROR_INVALID_ARGUMENT;
	memset(p, 0, sizeof(*p));
	snprintf(p->busIdLegacy, sizeof(p->busIdLegacy), "%04x:%02x:%02x.0",
		 dev0.domain, dev0.bus, dev0.device);
	snprintf(p->busId, sizeof(p->busId), "%08x:%02x:%02x.0", dev0.domain,
		 dev0.bus, dev0.device);
	p->domain = dev0.domain;
	p->bus = dev0.bus;
	p->device = dev0.device;
	/* The PCI device and subsystem ids are not known here: 0. */
	return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t h, nvmlPciInfo_t *p)
{
	return nvmlDeviceGetPciInfo_v3(h, p);
}

API nvmlReturn_t nvmlDeviceGetPciInfo(nvmlDevice_t h, nvmlPciInfo_v1_t *p)
{
	CHECK_DEVICE(h);
	if (!p)
		return NVML_ERROR_INVALID_ARGUMENT;
	memset(p, 0, sizeof(*p));
	snprintf(p->busId, sizeof(p->busId), "%04x:%02x:%02x.0", dev0.domain,
		 dev0.bus, dev0.device);
	p->domain = dev0.domain;
	p->bus = dev0.bus;
	p->device = dev0.device;
	return NVML_SUCCESS;
}

/*
 * Process lists: @n entries of @size bytes at @out, filled by @fill for
 * entry i; NVML's convention: *count in = room, out = needed.
 */
static nvmlReturn_t list(nvmlDevice_t h, unsigned int *count, void *out,
			 unsigned int needed,
			 void (*fill)(void *out, unsigned int i))
{
	CHECK_DEVICE(h);
	if (!count)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (*count < needed) {
		*count = needed;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	if (needed && !out)
		return NVML_ERROR_INVALID_ARGUMENT;
	for (unsigned int i = 0; i < needed; i++)
		fill(out, i);
	*count = needed;
	return NVML_SUCCESS;
}

/* What this process holds, as the GPU server counts it (PyTorch divides
 * the value, so "not available" only where it truly is). */
static unsigned long long self_used(void)
{
	unsigned long long b = 0;

	if (!cu.client_used || cu.client_used(&b) != CUDA_SUCCESS)
		return NVML_VALUE_NOT_AVAILABLE;
	return b;
}

static void self_v1(void *out, unsigned int i)
{
	nvmlProcessInfo_v1_t *p = (nvmlProcessInfo_v1_t *)out + i;

	p->pid = (unsigned int)getpid();
	p->usedGpuMemory = self_used();
}

static void self_v2(void *out, unsigned int i)
{
	nvmlProcessInfo_t *p = (nvmlProcessInfo_t *)out + i;

	p->pid = (unsigned int)getpid();
	p->usedGpuMemory = self_used();
	p->gpuInstanceId = NVML_VALUE_NOT_AVAILABLE_UINT;
	p->computeInstanceId = NVML_VALUE_NOT_AVAILABLE_UINT;
}

API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t h,
						      unsigned int *count,
						      nvmlProcessInfo_v1_t *p)
{
	return list(h, count, p, 1, self_v1);
}

API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t h,
							 unsigned int *count,
							 nvmlProcessInfo_t *p)
{
	return list(h, count, p, 1, self_v2);
}

API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t h,
							 unsigned int *count,
							 nvmlProcessInfo_t *p)
{
	return list(h, count, p, 1, self_v2);
}

#define EMPTY_LIST(name, type)                                            \
	API nvmlReturn_t name(nvmlDevice_t h, unsigned int *count, type *p) \
	{                                                                 \
		(void)p;                                                  \
		return list(h, count, NULL, 0, NULL);                     \
	}
EMPTY_LIST(nvmlDeviceGetGraphicsRunningProcesses, nvmlProcessInfo_v1_t)
EMPTY_LIST(nvmlDeviceGetGraphicsRunningProcesses_v2, nvmlProcessInfo_t)
EMPTY_LIST(nvmlDeviceGetGraphicsRunningProcesses_v3, nvmlProcessInfo_t)
EMPTY_LIST(nvmlDeviceGetMPSComputeRunningProcesses, nvmlProcessInfo_v1_t)
EMPTY_LIST(nvmlDeviceGetMPSComputeRunningProcesses_v2, nvmlProcessInfo_t)
EMPTY_LIST(nvmlDeviceGetMPSComputeRunningProcesses_v3, nvmlProcessInfo_t)

/*
 * Not supported: state of the whole GPU (a side channel onto the other
 * tenants), its links and fabric, and every setter.  Each checks its
 * device handle first, as NVML does, then says NOT_SUPPORTED.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#define NOT_SUPPORTED(name, ...)                                          \
	API nvmlReturn_t name(nvmlDevice_t h, __VA_ARGS__)                \
	{                                                                 \
		CHECK_DEVICE(h);                                          \
		return NVML_ERROR_NOT_SUPPORTED;                          \
	}
NOT_SUPPORTED(nvmlDeviceGetUtilizationRates, void *u)
NOT_SUPPORTED(nvmlDeviceGetTemperature, int sensor, unsigned int *t)
NOT_SUPPORTED(nvmlDeviceGetPowerUsage, unsigned int *mw)
NOT_SUPPORTED(nvmlDeviceGetClockInfo, int type, unsigned int *mhz)
NOT_SUPPORTED(nvmlDeviceGetMaxClockInfo, int type, unsigned int *mhz)
NOT_SUPPORTED(nvmlDeviceGetFanSpeed, unsigned int *speed)
NOT_SUPPORTED(nvmlDeviceGetMigMode, unsigned int *cur, unsigned int *pend)
NOT_SUPPORTED(nvmlDeviceGetNvLinkState, unsigned int link, int *active)
NOT_SUPPORTED(nvmlDeviceGetNvLinkRemoteDeviceType, unsigned int link, int *type)
NOT_SUPPORTED(nvmlDeviceGetNvLinkRemotePciInfo_v2, unsigned int link, nvmlPciInfo_t *p)
NOT_SUPPORTED(nvmlDeviceGetP2PStatus, nvmlDevice_t peer, int index, int *status)
NOT_SUPPORTED(nvmlDeviceGetGpuFabricInfoV, void *info)
NOT_SUPPORTED(nvmlDeviceGetCpuAffinity, unsigned int n, unsigned long *set)
NOT_SUPPORTED(nvmlDeviceGetMinorNumber, unsigned int *minor)
NOT_SUPPORTED(nvmlDeviceGetPersistenceMode, int *mode)
NOT_SUPPORTED(nvmlDeviceGetComputeMode, int *mode)
NOT_SUPPORTED(nvmlDeviceGetEccMode, int *cur, int *pend)
NOT_SUPPORTED(nvmlDeviceGetPerformanceState, int *pstate)
NOT_SUPPORTED(nvmlDeviceGetPowerManagementLimit, unsigned int *mw)
NOT_SUPPORTED(nvmlDeviceGetTotalEnergyConsumption, unsigned long long *mj)
NOT_SUPPORTED(nvmlDeviceGetBAR1MemoryInfo, void *bar1)
NOT_SUPPORTED(nvmlDeviceGetBrand, int *type)
NOT_SUPPORTED(nvmlDeviceGetSerial, char *buf, unsigned int len)
#pragma GCC diagnostic pop
