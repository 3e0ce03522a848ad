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
 * PCIe and NvLink counters, P2P, MIG and fabric state, accounting, events,
 * any setter) is NVML_ERROR_NOT_SUPPORTED: on a shared GPU those are a side
 * channel onto the other tenants' work, and a function has no business
 * changing them.  An entry point a client insists on finding (PyTorch's
 * c10 asserts its list) is one more line in the NOT_SUPPORTED list below;
 * exports.map exports every nvml* function defined API here.
 *
 * The values come from the CUDA driver API of the libcuda.so.1 the process
 * loads, our shim, dlopen'ed at the first nvmlInit (never linked: loading
 * this library must not start the shim).  The NVML types we use are
 * declared in nvml_abi.h from NVML's public, stable ABI.
 *
 * Threads: nvmlInit and nvmlShutdown take @lock; the device is described
 * once, before the first successful nvmlInit publishes @refs (release), and
 * never written again, so the queries read it without the lock after an
 * acquire load of @refs.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
	CUresult (*attr)(int *, CUdevice_attribute, CUdevice);
	CUresult (*pci_bus_id)(char *, int, CUdevice);
	CUresult (*ctx_retain)(CUcontext *, CUdevice);
	CUresult (*ctx_release)(CUdevice);
	CUresult (*ctx_push)(CUcontext);
	CUresult (*ctx_pop)(CUcontext *);
	CUresult (*mem_info)(size_t *, size_t *);
	int (*client_used)(unsigned long long *); /* the shim's; optional */
} cu;

/* The one device, described at the first successful nvmlInit. */
struct nvml_device {
	char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
	char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
	unsigned int domain, bus, device;
	int cc_major, cc_minor;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned int refs;	/* nvmlInit minus nvmlShutdown; atomic */
static void *libcuda;		/* under @lock */
static bool described;		/* under @lock */
static int ndev;		/* 0 or 1; fixed once described */
static struct nvml_device dev0; /* fixed once described */
static int cuda_version;	/* fixed once described */

static int resolve(void)
{
#define SYM(field, name)                                                       \
	do {                                                                   \
		*(void **)&cu.field = dlsym(libcuda, name);                    \
		if (!cu.field)                                                 \
			return -1;                                             \
	} while (0)
	SYM(init, "cuInit");
	SYM(driver_version, "cuDriverGetVersion");
	SYM(count, "cuDeviceGetCount");
	SYM(get, "cuDeviceGet");
	SYM(name, "cuDeviceGetName");
	/* _v2: a MIG device's own UUID, not its GPU's. */
	SYM(uuid, "cuDeviceGetUuid_v2");
	SYM(attr, "cuDeviceGetAttribute");
	SYM(pci_bus_id, "cuDeviceGetPCIBusId");
	SYM(ctx_retain, "cuDevicePrimaryCtxRetain");
	SYM(ctx_release, "cuDevicePrimaryCtxRelease_v2");
	SYM(ctx_push, "cuCtxPushCurrent_v2");
	SYM(ctx_pop, "cuCtxPopCurrent_v2");
	SYM(mem_info, "cuMemGetInfo_v2");
#undef SYM
	*(void **)&cu.client_used =
		dlsym(libcuda, "mignificent_gpu_memory_used");
	return 0;
}

/* NVML's UUID text: "GPU-" (or "MIG-" for a MIG device) and 8-4-4-4-12. */
static void format_uuid(const CUuuid *u, bool mig, char *out, size_t n)
{
	const unsigned char *b = (const unsigned char *)u->bytes;

	snprintf(out, n,
		 "%s-%02x%02x%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x-%02x%02x%02x%02x%02x%02x",
		 mig ? "MIG" : "GPU", b[0], b[1], b[2], b[3], b[4], b[5], b[6],
		 b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* Device 0 of the driver API into dev0; under @lock, before publication. */
static nvmlReturn_t describe(void)
{
	char bus_id[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
	CUdevice d;
	CUuuid u;
	int n = 0;

	if (cu.init(0) != CUDA_SUCCESS)
		return NVML_ERROR_DRIVER_NOT_LOADED;
	if (cu.driver_version(&cuda_version) != CUDA_SUCCESS)
		cuda_version = 0;
	if (cu.count(&n) != CUDA_SUCCESS || n < 1) {
		ndev = 0;
		return NVML_SUCCESS;
	}
	if (cu.get(&d, 0) != CUDA_SUCCESS ||
	    cu.name(dev0.name, sizeof(dev0.name), d) != CUDA_SUCCESS ||
	    cu.uuid(&u, d) != CUDA_SUCCESS ||
	    cu.pci_bus_id(bus_id, sizeof(bus_id), d) != CUDA_SUCCESS ||
	    cu.attr(&dev0.cc_major,
		    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
		    d) != CUDA_SUCCESS ||
	    cu.attr(&dev0.cc_minor,
		    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
		    d) != CUDA_SUCCESS)
		return NVML_ERROR_UNKNOWN;
	/* CUDA names a MIG device "<GPU> MIG <profile>", e.g.
	 * "NVIDIA H200 MIG 1g.18gb"; NVML calls its UUID "MIG-...". */
	format_uuid(&u, strstr(dev0.name, " MIG ") != NULL, dev0.uuid,
		    sizeof(dev0.uuid));
	/* "domain:bus:device.function", hexadecimal */
	n = sscanf(bus_id, "%x:%x:%x", &dev0.domain, &dev0.bus, &dev0.device);
	if (n != 3)
		dev0.domain = dev0.bus = dev0.device = 0;
	ndev = 1;
	return NVML_SUCCESS;
}

static nvmlReturn_t init(void)
{
	nvmlReturn_t r = NVML_SUCCESS;
	unsigned int n;

	pthread_mutex_lock(&lock);
	n = __atomic_load_n(&refs, __ATOMIC_RELAXED);
	if (n) {
		__atomic_store_n(&refs, n + 1, __ATOMIC_RELAXED);
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
	if (!described) {
		r = describe();
		described = r == NVML_SUCCESS;
	}
	/* Publishes dev0 to the queries (their acquire load in ready()). */
	if (r == NVML_SUCCESS)
		__atomic_store_n(&refs, 1, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&lock);
	return r;
}

/**
 * nvmlInit_v2 - start using the library: load the shim, describe its
 * device.  Counted: each successful call needs one nvmlShutdown.
 *
 * Return: NVML_SUCCESS; NVML_ERROR_LIBRARY_NOT_FOUND when libcuda.so.1
 * cannot be loaded or lacks an entry point we use;
 * NVML_ERROR_DRIVER_NOT_LOADED when its cuInit fails; NVML_ERROR_UNKNOWN
 * when it cannot describe its device.
 */
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

/**
 * nvmlShutdown - one nvmlInit less.  The shim stays loaded (the process
 * uses it anyway) and the description stays valid for the next nvmlInit.
 *
 * Return: NVML_SUCCESS, or NVML_ERROR_UNINITIALIZED with no nvmlInit left.
 */
API nvmlReturn_t nvmlShutdown(void)
{
	nvmlReturn_t r = NVML_SUCCESS;
	unsigned int n;

	pthread_mutex_lock(&lock);
	n = __atomic_load_n(&refs, __ATOMIC_RELAXED);
	if (!n)
		r = NVML_ERROR_UNINITIALIZED;
	else
		__atomic_store_n(&refs, n - 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&lock);
	return r;
}

static bool ready(void)
{
	return __atomic_load_n(&refs, __ATOMIC_ACQUIRE) > 0;
}

/* Is @h a handle we gave out? */
static bool known(const struct nvml_device *h)
{
	return ndev && h == &dev0;
}

#define CHECK_READY()                                                          \
	do {                                                                   \
		if (!ready())                                                  \
			return NVML_ERROR_UNINITIALIZED;                       \
	} while (0)

#define CHECK_DEVICE(h)                                                        \
	do {                                                                   \
		CHECK_READY();                                                 \
		if (!known(h))                                                 \
			return NVML_ERROR_INVALID_ARGUMENT;                    \
	} while (0)

/* Copy @s into @buf of @len bytes, as NVML does. */
static nvmlReturn_t put_string(const char *s, char *buf, unsigned int len)
{
	size_t n = strlen(s) + 1;

	if (!buf)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (n > len)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	memcpy(buf, s, n);
	return NVML_SUCCESS;
}

/**
 * nvmlErrorString - the text of @r: every code this library returns has
 * its own; any other is "Unknown Error".
 */
API const char *nvmlErrorString(nvmlReturn_t r)
{
	/* clang-format off */
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
	case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument Version Mismatch";
	default: return "Unknown Error";
	}
	/* clang-format on */
}

/* --- system --------------------------------------------------------------- */

/* The CUDA version of the driver, as cuDriverGetVersion says (e.g. 13000). */
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

/* The kernel driver's version string is not known inside a function: the
 * driver API gives the CUDA version only, and we do not make one up. */
API nvmlReturn_t nvmlSystemGetDriverVersion(char *buf, unsigned int len)
{
	CHECK_READY();
	if (!buf)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (len)
		buf[0] = 0; /* for a caller that prints it anyway */
	return NVML_ERROR_NOT_SUPPORTED;
}

/* --- devices -------------------------------------------------------------- */

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

/* Our device by its UUID text (any case); another one is NOT_FOUND. */
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

/* Our device by "domain:bus:device[.function]" or "bus:device[.function]". */
API nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *id,
						  nvmlDevice_t *h)
{
	unsigned int dom = 0, bus, d;

	CHECK_READY();
	if (!id || !h)
		return NVML_ERROR_INVALID_ARGUMENT;
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
 * context pushed on this thread and popped again, so the caller's current
 * context is what it was. */
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

API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t h, nvmlMemory_t *m)
{
	unsigned long long t, f;
	nvmlReturn_t r;

	CHECK_DEVICE(h);
	if (!m)
		return NVML_ERROR_INVALID_ARGUMENT;
	r = partition_memory(&t, &f);
	if (r != NVML_SUCCESS)
		return r;
	m->total = t;
	m->free = f;
	m->used = t - f;
	return NVML_SUCCESS;
}

/* The versioned query: @m->version must be nvmlMemory_v2.  Nothing is
 * reserved from the function's view of the partition. */
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

/*
 * PCI information: the address from cuDeviceGetPCIBusId, written as NVML
 * writes it (NVML_DEVICE_PCI_BUS_ID_FMT: upper-case hexadecimal, an 8-digit
 * domain; 4 digits in the legacy field).  The PCI device and subsystem ids
 * are not known here: 0.
 */
API nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t h, nvmlPciInfo_t *p)
{
	CHECK_DEVICE(h);
	if (!p)
		return NVML_ERROR_INVALID_ARGUMENT;
	memset(p, 0, sizeof(*p));
	snprintf(p->busIdLegacy, sizeof(p->busIdLegacy),
		 NVML_DEVICE_PCI_BUS_ID_LEGACY_FMT, dev0.domain & 0xffff,
		 dev0.bus & 0xff, dev0.device & 0xff);
	snprintf(p->busId, sizeof(p->busId), NVML_DEVICE_PCI_BUS_ID_FMT,
		 dev0.domain, dev0.bus & 0xff, dev0.device & 0xff);
	p->domain = dev0.domain;
	p->bus = dev0.bus;
	p->device = dev0.device;
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
	snprintf(p->busId, sizeof(p->busId), NVML_DEVICE_PCI_BUS_ID_LEGACY_FMT,
		 dev0.domain & 0xffff, dev0.bus & 0xff, dev0.device & 0xff);
	p->domain = dev0.domain;
	p->bus = dev0.bus;
	p->device = dev0.device;
	return NVML_SUCCESS;
}

/*
 * Process lists: @needed entries at @out, entry i written by @fill;
 * NVML's convention: *count in = room, out = entries (or, with too little
 * room, the entries needed, and NVML_ERROR_INSUFFICIENT_SIZE).
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

/* What this process holds: the device memory of its instance as the GPU
 * server counts it (mignificent_gpu_memory_used); without that, what
 * cuMemGetInfo says is used.  PyTorch divides the value, so "not
 * available" only where neither answers. */
static unsigned long long self_used(void)
{
	unsigned long long b = 0, t, f;

	if (cu.client_used && cu.client_used(&b) == CUDA_SUCCESS)
		return b;
	if (partition_memory(&t, &f) == NVML_SUCCESS)
		return t - f;
	return NVML_VALUE_NOT_AVAILABLE;
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

/* The compute processes: this one, never another tenant's. */
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

#define EMPTY_LIST(name, type)                                                 \
	API nvmlReturn_t name(nvmlDevice_t h, unsigned int *count, type *p)    \
	{                                                                      \
		(void)p;                                                       \
		return list(h, count, NULL, 0, NULL);                          \
	}
EMPTY_LIST(nvmlDeviceGetGraphicsRunningProcesses, nvmlProcessInfo_v1_t)
EMPTY_LIST(nvmlDeviceGetGraphicsRunningProcesses_v2, nvmlProcessInfo_t)
EMPTY_LIST(nvmlDeviceGetGraphicsRunningProcesses_v3, nvmlProcessInfo_t)
EMPTY_LIST(nvmlDeviceGetMPSComputeRunningProcesses, nvmlProcessInfo_v1_t)
EMPTY_LIST(nvmlDeviceGetMPSComputeRunningProcesses_v2, nvmlProcessInfo_t)
EMPTY_LIST(nvmlDeviceGetMPSComputeRunningProcesses_v3, nvmlProcessInfo_t)

/* --- not supported -------------------------------------------------------- */

/*
 * Events: none are delivered (they would tell of the whole GPU's errors
 * and clock changes), so no event set is ever made.
 */
API nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set)
{
	CHECK_READY();
	if (!set)
		return NVML_ERROR_INVALID_ARGUMENT;
	return NVML_ERROR_NOT_SUPPORTED;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
API nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set)
{
	CHECK_READY();
	return NVML_ERROR_NOT_SUPPORTED;
}

API nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, void *data,
				     unsigned int timeout_ms)
{
	CHECK_READY();
	return NVML_ERROR_NOT_SUPPORTED;
}

API nvmlReturn_t nvmlEventSetWait(nvmlEventSet_t set, void *data,
				  unsigned int timeout_ms)
{
	CHECK_READY();
	return NVML_ERROR_NOT_SUPPORTED;
}

/* Other processes' names are not a function's to know. */
API nvmlReturn_t nvmlSystemGetProcessName(unsigned int pid, char *name,
					  unsigned int len)
{
	CHECK_READY();
	return NVML_ERROR_NOT_SUPPORTED;
}

/*
 * The state of the whole GPU (a side channel onto the other tenants: what
 * they run, how hard, when), its links, fabric and topology, its MIG
 * layout, accounting and every setter.  Each checks its device handle
 * first, as NVML does, then says NOT_SUPPORTED.  Enum arguments are int
 * (the size of an enum in nvml.h); opaque structures are void *.  A new
 * entry point is one more line.
 */
#define NOT_SUPPORTED(name, ...)                                               \
	API nvmlReturn_t name(nvmlDevice_t h, ##__VA_ARGS__)                   \
	{                                                                      \
		CHECK_DEVICE(h);                                               \
		return NVML_ERROR_NOT_SUPPORTED;                               \
	}
/* clang-format off */
/* activity */
NOT_SUPPORTED(nvmlDeviceGetUtilizationRates, void *u)
NOT_SUPPORTED(nvmlDeviceGetEncoderUtilization, unsigned int *u, unsigned int *period_us)
NOT_SUPPORTED(nvmlDeviceGetDecoderUtilization, unsigned int *u, unsigned int *period_us)
NOT_SUPPORTED(nvmlDeviceGetEncoderStats, unsigned int *sessions,
	unsigned int *fps, unsigned int *latency)
NOT_SUPPORTED(nvmlDeviceGetEncoderCapacity, int type, unsigned int *capacity)
NOT_SUPPORTED(nvmlDeviceGetSamples, int type, unsigned long long last_seen,
	int *value_type, unsigned int *count, void *samples)
NOT_SUPPORTED(nvmlDeviceGetProcessUtilization, void *u, unsigned int *count,
	unsigned long long last_seen)
NOT_SUPPORTED(nvmlDeviceGetRunningProcessDetailList, void *list)
NOT_SUPPORTED(nvmlDeviceGetFieldValues, int count, void *values)
NOT_SUPPORTED(nvmlDeviceGetViolationStatus, int policy, void *time)
NOT_SUPPORTED(nvmlDeviceGetPerformanceState, int *pstate)
NOT_SUPPORTED(nvmlDeviceGetPowerState, int *pstate)
NOT_SUPPORTED(nvmlDeviceGetCurrentClocksThrottleReasons, unsigned long long *reasons)
NOT_SUPPORTED(nvmlDeviceGetCurrentClocksEventReasons, unsigned long long *reasons)
NOT_SUPPORTED(nvmlDeviceGetSupportedClocksThrottleReasons, unsigned long long *reasons)
NOT_SUPPORTED(nvmlDeviceGetSupportedClocksEventReasons, unsigned long long *reasons)
/* temperature, power, fans */
NOT_SUPPORTED(nvmlDeviceGetTemperature, int sensor, unsigned int *t)
NOT_SUPPORTED(nvmlDeviceGetTemperatureThreshold, int threshold, unsigned int *t)
NOT_SUPPORTED(nvmlDeviceGetPowerUsage, unsigned int *mw)
NOT_SUPPORTED(nvmlDeviceGetTotalEnergyConsumption, unsigned long long *mj)
NOT_SUPPORTED(nvmlDeviceGetPowerManagementMode, int *mode)
NOT_SUPPORTED(nvmlDeviceGetPowerManagementLimit, unsigned int *mw)
NOT_SUPPORTED(nvmlDeviceGetPowerManagementLimitConstraints,
	unsigned int *min_mw, unsigned int *max_mw)
NOT_SUPPORTED(nvmlDeviceGetPowerManagementDefaultLimit, unsigned int *mw)
NOT_SUPPORTED(nvmlDeviceGetEnforcedPowerLimit, unsigned int *mw)
NOT_SUPPORTED(nvmlDeviceGetFanSpeed, unsigned int *speed)
NOT_SUPPORTED(nvmlDeviceGetFanSpeed_v2, unsigned int fan, unsigned int *speed)
NOT_SUPPORTED(nvmlDeviceGetNumFans, unsigned int *n)
/* clocks */
NOT_SUPPORTED(nvmlDeviceGetClockInfo, int type, unsigned int *mhz)
NOT_SUPPORTED(nvmlDeviceGetMaxClockInfo, int type, unsigned int *mhz)
NOT_SUPPORTED(nvmlDeviceGetClock, int type, int id, unsigned int *mhz)
NOT_SUPPORTED(nvmlDeviceGetApplicationsClock, int type, unsigned int *mhz)
NOT_SUPPORTED(nvmlDeviceGetDefaultApplicationsClock, int type, unsigned int *mhz)
NOT_SUPPORTED(nvmlDeviceGetMaxCustomerBoostClock, int type, unsigned int *mhz)
NOT_SUPPORTED(nvmlDeviceGetSupportedMemoryClocks, unsigned int *count, unsigned int *mhz)
NOT_SUPPORTED(nvmlDeviceGetSupportedGraphicsClocks, unsigned int mem_mhz,
	unsigned int *count, unsigned int *mhz)
NOT_SUPPORTED(nvmlDeviceGetAutoBoostedClocksEnabled, int *enabled, int *default_enabled)
/* memory errors */
NOT_SUPPORTED(nvmlDeviceGetEccMode, int *cur, int *pend)
NOT_SUPPORTED(nvmlDeviceGetTotalEccErrors, int type, int counter, unsigned long long *n)
NOT_SUPPORTED(nvmlDeviceGetDetailedEccErrors, int type, int counter, void *counts)
NOT_SUPPORTED(nvmlDeviceGetMemoryErrorCounter, int type, int counter,
	int location, unsigned long long *n)
NOT_SUPPORTED(nvmlDeviceGetRetiredPages, int cause, unsigned int *count,
	unsigned long long *addresses)
NOT_SUPPORTED(nvmlDeviceGetRetiredPages_v2, int cause, unsigned int *count,
	unsigned long long *addresses, unsigned long long *times)
NOT_SUPPORTED(nvmlDeviceGetRetiredPagesPendingStatus, int *pending)
NOT_SUPPORTED(nvmlDeviceGetRemappedRows, unsigned int *corr, unsigned int *unc,
	unsigned int *pending, unsigned int *failure)
/* PCIe, NvLink, P2P, fabric, topology */
NOT_SUPPORTED(nvmlDeviceGetPcieThroughput, int counter, unsigned int *kbps)
NOT_SUPPORTED(nvmlDeviceGetPcieReplayCounter, unsigned int *n)
NOT_SUPPORTED(nvmlDeviceGetCurrPcieLinkGeneration, unsigned int *gen)
NOT_SUPPORTED(nvmlDeviceGetCurrPcieLinkWidth, unsigned int *width)
NOT_SUPPORTED(nvmlDeviceGetMaxPcieLinkGeneration, unsigned int *gen)
NOT_SUPPORTED(nvmlDeviceGetMaxPcieLinkWidth, unsigned int *width)
NOT_SUPPORTED(nvmlDeviceGetPcieSpeed, unsigned int *mbps)
NOT_SUPPORTED(nvmlDeviceGetBAR1MemoryInfo, void *bar1)
NOT_SUPPORTED(nvmlDeviceGetNvLinkState, unsigned int link, int *active)
NOT_SUPPORTED(nvmlDeviceGetNvLinkVersion, unsigned int link, unsigned int *version)
NOT_SUPPORTED(nvmlDeviceGetNvLinkCapability, unsigned int link, int cap, unsigned int *result)
NOT_SUPPORTED(nvmlDeviceGetNvLinkErrorCounter, unsigned int link, int counter,
	unsigned long long *n)
NOT_SUPPORTED(nvmlDeviceGetNvLinkUtilizationCounter, unsigned int link,
	unsigned int counter, unsigned long long *rx, unsigned long long *tx)
NOT_SUPPORTED(nvmlDeviceGetNvLinkRemoteDeviceType, unsigned int link, int *type)
NOT_SUPPORTED(nvmlDeviceGetNvLinkRemotePciInfo, unsigned int link, nvmlPciInfo_t *p)
NOT_SUPPORTED(nvmlDeviceGetNvLinkRemotePciInfo_v2, unsigned int link, nvmlPciInfo_t *p)
NOT_SUPPORTED(nvmlDeviceGetP2PStatus, nvmlDevice_t peer, int index, int *status)
NOT_SUPPORTED(nvmlDeviceGetTopologyCommonAncestor, nvmlDevice_t peer, int *level)
NOT_SUPPORTED(nvmlDeviceGetTopologyNearestGpus, int level, unsigned int *count,
	nvmlDevice_t *devices)
NOT_SUPPORTED(nvmlDeviceGetGpuFabricInfo, void *info)
NOT_SUPPORTED(nvmlDeviceGetGpuFabricInfoV, void *info)
NOT_SUPPORTED(nvmlDeviceGetCpuAffinity, unsigned int n, unsigned long *set)
NOT_SUPPORTED(nvmlDeviceGetCpuAffinityWithinScope, unsigned int n,
	unsigned long *set, int scope)
NOT_SUPPORTED(nvmlDeviceGetMemoryAffinity, unsigned int n, unsigned long *set, int scope)
/* MIG: the partition is the device; the GPU's layout is not shown */
NOT_SUPPORTED(nvmlDeviceGetMigMode, unsigned int *cur, unsigned int *pend)
NOT_SUPPORTED(nvmlDeviceIsMigDeviceHandle, unsigned int *is_mig)
NOT_SUPPORTED(nvmlDeviceGetMaxMigDeviceCount, unsigned int *count)
NOT_SUPPORTED(nvmlDeviceGetMigDeviceHandleByIndex, unsigned int index, nvmlDevice_t *mig)
NOT_SUPPORTED(nvmlDeviceGetDeviceHandleFromMigDeviceHandle, nvmlDevice_t *gpu)
NOT_SUPPORTED(nvmlDeviceGetGpuInstanceId, unsigned int *id)
NOT_SUPPORTED(nvmlDeviceGetComputeInstanceId, unsigned int *id)
/* accounting, events */
NOT_SUPPORTED(nvmlDeviceGetAccountingMode, int *mode)
NOT_SUPPORTED(nvmlDeviceGetAccountingStats, unsigned int pid, void *stats)
NOT_SUPPORTED(nvmlDeviceGetAccountingPids, unsigned int *count, unsigned int *pids)
NOT_SUPPORTED(nvmlDeviceGetAccountingBufferSize, unsigned int *size)
NOT_SUPPORTED(nvmlDeviceGetSupportedEventTypes, unsigned long long *types)
NOT_SUPPORTED(nvmlDeviceRegisterEvents, unsigned long long types, nvmlEventSet_t set)
/* the board and its modes */
NOT_SUPPORTED(nvmlDeviceGetMinorNumber, unsigned int *minor)
NOT_SUPPORTED(nvmlDeviceGetSerial, char *buf, unsigned int len)
NOT_SUPPORTED(nvmlDeviceGetBoardId, unsigned int *id)
NOT_SUPPORTED(nvmlDeviceGetBoardPartNumber, char *buf, unsigned int len)
NOT_SUPPORTED(nvmlDeviceGetMultiGpuBoard, unsigned int *multi)
NOT_SUPPORTED(nvmlDeviceGetBrand, int *type)
NOT_SUPPORTED(nvmlDeviceGetArchitecture, unsigned int *arch)
NOT_SUPPORTED(nvmlDeviceGetVbiosVersion, char *buf, unsigned int len)
NOT_SUPPORTED(nvmlDeviceGetInforomVersion, int object, char *buf, unsigned int len)
NOT_SUPPORTED(nvmlDeviceGetInforomImageVersion, char *buf, unsigned int len)
NOT_SUPPORTED(nvmlDeviceGetPersistenceMode, int *mode)
NOT_SUPPORTED(nvmlDeviceGetComputeMode, int *mode)
NOT_SUPPORTED(nvmlDeviceGetDisplayMode, int *mode)
NOT_SUPPORTED(nvmlDeviceGetDisplayActive, int *active)
NOT_SUPPORTED(nvmlDeviceGetGpuOperationMode, int *cur, int *pend)
NOT_SUPPORTED(nvmlDeviceGetVirtualizationMode, int *mode)
/* setters: nothing of the GPU is a function's to change */
NOT_SUPPORTED(nvmlDeviceSetPersistenceMode, int mode)
NOT_SUPPORTED(nvmlDeviceSetComputeMode, int mode)
NOT_SUPPORTED(nvmlDeviceSetEccMode, int ecc)
NOT_SUPPORTED(nvmlDeviceClearEccErrorCounts, int counter)
NOT_SUPPORTED(nvmlDeviceSetApplicationsClocks, unsigned int mem_mhz, unsigned int gfx_mhz)
NOT_SUPPORTED(nvmlDeviceResetApplicationsClocks)
NOT_SUPPORTED(nvmlDeviceSetGpuLockedClocks, unsigned int min_mhz, unsigned int max_mhz)
NOT_SUPPORTED(nvmlDeviceResetGpuLockedClocks)
NOT_SUPPORTED(nvmlDeviceSetMemoryLockedClocks, unsigned int min_mhz, unsigned int max_mhz)
NOT_SUPPORTED(nvmlDeviceResetMemoryLockedClocks)
NOT_SUPPORTED(nvmlDeviceSetAutoBoostedClocksEnabled, int enabled)
NOT_SUPPORTED(nvmlDeviceSetPowerManagementLimit, unsigned int mw)
NOT_SUPPORTED(nvmlDeviceSetGpuOperationMode, int mode)
NOT_SUPPORTED(nvmlDeviceSetMigMode, unsigned int mode, nvmlReturn_t *activation)
NOT_SUPPORTED(nvmlDeviceSetAccountingMode, int mode)
NOT_SUPPORTED(nvmlDeviceClearAccountingPids)
/* clang-format on */
#pragma GCC diagnostic pop
