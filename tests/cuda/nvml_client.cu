// nvml_client.cu - NVML as a function sees it (nvml/nvml.c).
//
// dlopens libnvidia-ml.so.1 the way PyTorch and pynvml do and checks its
// answers against the CUDA driver API's.  Under mignificent it must be our
// library: one device, the partition's, the process list holding only
// this process, NOT_SUPPORTED for the GPU-wide state, NVML's error
// conventions (uninitialized, NULL pointers, short buffers, init counting),
// from several threads at once.  Natively (the real NVML, on a GPU) only
// the agreement with the driver API is checked.  No NVML at all (a machine
// without the driver, natively): nothing to check.
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>

#include "test_common.h"

typedef int ret_t;
struct mem { unsigned long long total, free, used; };
struct mem2 { unsigned int version; unsigned long long total, reserved, free, used; };
struct pci { char legacy[16]; unsigned int domain, bus, device, dev_id, subsys; char bus_id[32]; };
struct proc1 { unsigned int pid; unsigned long long used; };
struct proc2 { unsigned int pid; unsigned long long used; unsigned int gi, ci; };

enum { SUCCESS = 0, UNINITIALIZED = 1, INVALID_ARGUMENT = 2, NOT_SUPPORTED = 3,
       NOT_FOUND = 6, INSUFFICIENT_SIZE = 7, DRIVER_NOT_LOADED = 9,
       LIBRARY_NOT_FOUND = 12, VERSION_MISMATCH = 25 };

static void *nv;

template <typename F> static F sym(const char *name)
{
	void *p = dlsym(nv, name);
	REQUIRE(p, "%s is not exported", name);
	return (F)p;
}

#define NV(name, ...) sym<ret_t (*)(__VA_ARGS__)>(#name)

// What the threads below call.
static ret_t (*t_init)(void), (*t_shutdown)(void), (*t_count)(unsigned int *);
static ret_t (*t_by_index)(unsigned int, void **), (*t_name)(void *, char *, unsigned int);
static ret_t (*t_meminfo)(void *, mem *), (*t_procs)(void *, unsigned int *, proc2 *);
static char t_want_name[96];
static unsigned long long t_want_total;

static void *hammer(void *)
{
	for (int i = 0; i < 200; i++) {
		unsigned int n = 0, np = 2;
		void *h = nullptr;
		char name[96];
		mem m;
		proc2 pr[2];

		REQUIRE(t_init() == SUCCESS, "thread: init");
		REQUIRE(t_count(&n) == SUCCESS && n == 1, "thread: count %u", n);
		REQUIRE(t_by_index(0, &h) == SUCCESS, "thread: handle");
		REQUIRE(t_name(h, name, sizeof(name)) == SUCCESS && !strcmp(name, t_want_name),
			"thread: name %s", name);
		REQUIRE(t_meminfo(h, &m) == SUCCESS && m.total == t_want_total,
			"thread: memory total %llu", m.total);
		REQUIRE(t_procs(h, &np, pr) == SUCCESS && np == 1 && pr[0].pid == (unsigned)getpid(),
			"thread: process list");
		REQUIRE(t_shutdown() == SUCCESS, "thread: shutdown");
	}
	return nullptr;
}

int main()
{
	nv = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!nv) {
		REQUIRE(!under_mig(), "no libnvidia-ml.so.1 under mignificent: %s", dlerror());
		printf("no NVML here: nothing to check\nOK\n");
		return 0;
	}
	// What PyTorch's c10 looks up (it asserts every one is there), and
	// what pynvml's common calls need.
	for (const char *s : {"nvmlInit_v2", "nvmlInit", "nvmlInitWithFlags", "nvmlShutdown",
			      "nvmlErrorString", "nvmlDeviceGetCount_v2",
			      "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByUUID",
			      "nvmlDeviceGetHandleByPciBusId_v2", "nvmlDeviceGetIndex",
			      "nvmlDeviceGetName", "nvmlDeviceGetUUID", "nvmlDeviceGetMemoryInfo",
			      "nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetPciInfo",
			      "nvmlDeviceGetPciInfo_v2", "nvmlDeviceGetPciInfo_v3",
			      "nvmlDeviceGetComputeRunningProcesses",
			      "nvmlDeviceGetComputeRunningProcesses_v2",
			      "nvmlDeviceGetComputeRunningProcesses_v3",
			      "nvmlDeviceGetNvLinkRemoteDeviceType",
			      "nvmlDeviceGetNvLinkRemotePciInfo_v2", "nvmlDeviceGetP2PStatus",
			      "nvmlDeviceGetGpuFabricInfoV", "nvmlSystemGetCudaDriverVersion",
			      "nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetDriverVersion",
			      "nvmlSystemGetNVMLVersion"})
		REQUIRE(dlsym(nv, s), "%s is not exported", s);

	auto init = NV(nvmlInit_v2, void);
	auto init_flags = NV(nvmlInitWithFlags, unsigned int);
	auto shutdown = NV(nvmlShutdown, void);
	auto count = NV(nvmlDeviceGetCount_v2, unsigned int *);
	auto by_index = NV(nvmlDeviceGetHandleByIndex_v2, unsigned int, void **);
	auto by_uuid = NV(nvmlDeviceGetHandleByUUID, const char *, void **);
	auto by_pci = NV(nvmlDeviceGetHandleByPciBusId_v2, const char *, void **);
	auto get_index = NV(nvmlDeviceGetIndex, void *, unsigned int *);
	auto name = NV(nvmlDeviceGetName, void *, char *, unsigned int);
	auto uuid = NV(nvmlDeviceGetUUID, void *, char *, unsigned int);
	auto meminfo = NV(nvmlDeviceGetMemoryInfo, void *, mem *);
	auto meminfo2 = NV(nvmlDeviceGetMemoryInfo_v2, void *, mem2 *);
	auto pciinfo = NV(nvmlDeviceGetPciInfo_v3, void *, pci *);
	auto cc = NV(nvmlDeviceGetCudaComputeCapability, void *, int *, int *);
	auto cudaver = NV(nvmlSystemGetCudaDriverVersion_v2, int *);
	auto drvver = NV(nvmlSystemGetDriverVersion, char *, unsigned int);
	auto procs = NV(nvmlDeviceGetComputeRunningProcesses_v3, void *, unsigned int *, proc2 *);
	auto procs1 = NV(nvmlDeviceGetComputeRunningProcesses, void *, unsigned int *, proc1 *);
	auto gprocs = NV(nvmlDeviceGetGraphicsRunningProcesses_v3, void *, unsigned int *, proc2 *);
	auto mprocs = NV(nvmlDeviceGetMPSComputeRunningProcesses_v3, void *, unsigned int *, proc2 *);
	auto version = NV(nvmlSystemGetNVMLVersion, char *, unsigned int);
	auto util = NV(nvmlDeviceGetUtilizationRates, void *, unsigned int *);
	auto errstr = sym<const char *(*)(ret_t)>("nvmlErrorString");
	unsigned int n = 7;
	void *h = nullptr;

	REQUIRE(count(&n) == UNINITIALIZED, "count before init: want UNINITIALIZED");
	REQUIRE(by_index(0, &h) == UNINITIALIZED, "handle before init: want UNINITIALIZED");
	REQUIRE(init() == SUCCESS, "nvmlInit_v2");
	REQUIRE(init() == SUCCESS, "nvmlInit_v2, twice");
	char ver[96] = "";
	REQUIRE(version(ver, sizeof(ver)) == SUCCESS, "NVML version");
	bool ours = !strcmp(ver, "mignificent");
	REQUIRE(ours == under_mig(), "NVML version \"%s\" (under mignificent: %d)", ver,
		(int)under_mig());

	CU(cuInit(0));
	CUdevice dev;
	CU(cuDeviceGet(&dev, 0));
	int cudevs = 0;
	CU(cuDeviceGetCount(&cudevs));
	REQUIRE(count(&n) == SUCCESS, "count");
	if (ours)
		REQUIRE(n == 1 && cudevs == 1, "%u devices, CUDA says %d", n, cudevs);
	REQUIRE(by_index(n, &h) == INVALID_ARGUMENT, "index past the end: want INVALID_ARGUMENT");
	REQUIRE(by_index(0, nullptr) == INVALID_ARGUMENT, "NULL handle: want INVALID_ARGUMENT");
	// Natively NVML's index 0 need not be CUDA's device 0; find it by PCI id.
	char bus[64];
	CU(cuDeviceGetPCIBusId(bus, sizeof(bus), dev));
	REQUIRE(by_pci(bus, &h) == SUCCESS, "by PCI bus id %s", bus);
	if (ours) {
		void *h0 = nullptr;
		unsigned int i = 9;
		REQUIRE(by_index(0, &h0) == SUCCESS && h0 == h, "index 0 is not the PCI device");
		REQUIRE(get_index(h, &i) == SUCCESS && i == 0, "index %u", i);
		REQUIRE(by_pci(strchr(bus, ':') + 1, &h0) == SUCCESS && h0 == h,
			"by PCI bus id without the domain (%s)", strchr(bus, ':') + 1);
		REQUIRE(by_pci("0000:ff:1f.0", &h0) == NOT_FOUND, "another PCI id: want NOT_FOUND");
		REQUIRE(by_pci("nonsense", &h0) == INVALID_ARGUMENT, "a bad PCI id");
	}

	char cuname[256], nvname[96];
	CU(cuDeviceGetName(cuname, sizeof(cuname), dev));
	REQUIRE(name(h, nvname, sizeof(nvname)) == SUCCESS, "name");
	REQUIRE(!strcmp(cuname, nvname), "name \"%s\", CUDA says \"%s\"", nvname, cuname);
	REQUIRE(name(h, nvname, 4) == INSUFFICIENT_SIZE, "short buffer: want INSUFFICIENT_SIZE");

	CUuuid cu_u;
	CU(cuDeviceGetUuid(&cu_u, dev));
	char want[96], got[96];
	const unsigned char *b = (const unsigned char *)cu_u.bytes;
	snprintf(want, sizeof(want),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		 b[12], b[13], b[14], b[15]);
	REQUIRE(uuid(h, got, sizeof(got)) == SUCCESS, "uuid");
	bool mig = strstr(cuname, " MIG ") != nullptr;
	REQUIRE(!strncmp(got, mig ? "MIG-" : "GPU-", 4) && !strcmp(got + 4, want),
		"uuid %s, CUDA says %s (%s)", got, want, mig ? "a MIG device" : "a GPU");
	REQUIRE(uuid(h, got, 10) == INSUFFICIENT_SIZE, "short UUID buffer: want INSUFFICIENT_SIZE");
	REQUIRE(uuid(h, got, sizeof(got)) == SUCCESS, "uuid again");
	void *h2 = nullptr;
	REQUIRE(by_uuid(got, &h2) == SUCCESS && h2 == h, "by UUID");
	REQUIRE(by_uuid("GPU-00000000-0000-0000-0000-000000000000", &h2) == NOT_FOUND,
		"unknown UUID: want NOT_FOUND");

	int ma, mi, cma, cmi;
	CU(cuDeviceGetAttribute(&cma, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev));
	CU(cuDeviceGetAttribute(&cmi, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev));
	REQUIRE(cc(h, &ma, &mi) == SUCCESS && ma == cma && mi == cmi,
		"compute capability %d.%d", ma, mi);
	int v = 0, cv = 0;
	CU(cuDriverGetVersion(&cv));
	REQUIRE(cudaver(&v) == SUCCESS && v == cv, "CUDA driver version %d, CUDA says %d", v, cv);

	pci p;
	REQUIRE(pciinfo(h, &p) == SUCCESS, "PCI info");
	int dom, pbus, pdev;
	CU(cuDeviceGetAttribute(&dom, CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, dev));
	CU(cuDeviceGetAttribute(&pbus, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, dev));
	CU(cuDeviceGetAttribute(&pdev, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, dev));
	REQUIRE(p.domain == (unsigned)dom && p.bus == (unsigned)pbus && p.device == (unsigned)pdev,
		"PCI %x:%x:%x, CUDA says %x:%x:%x", p.domain, p.bus, p.device, dom, pbus, pdev);
	// NVML writes the domain with 8 digits in busId, 4 in busIdLegacy.
	unsigned int nd, nb, ndv, ld, lb, ldv, cd, cb, cdv;
	REQUIRE(sscanf(bus, "%x:%x:%x", &cd, &cb, &cdv) == 3, "CUDA's PCI bus id %s", bus);
	REQUIRE(strlen(p.bus_id) == 16 && p.bus_id[8] == ':' &&
			sscanf(p.bus_id, "%x:%x:%x", &nd, &nb, &ndv) == 3 && nd == cd &&
			nb == cb && ndv == cdv,
		"PCI busId %s, CUDA says %s", p.bus_id, bus);
	REQUIRE(strlen(p.legacy) == 12 && p.legacy[4] == ':' &&
			sscanf(p.legacy, "%x:%x:%x", &ld, &lb, &ldv) == 3 && ld == cd &&
			lb == cb && ldv == cdv,
		"PCI busIdLegacy %s, CUDA says %s", p.legacy, bus);

	// Memory: NVML's total is the device's (or the partition's) memory.
	CUcontext ctx;
	CU(cuDevicePrimaryCtxRetain(&ctx, dev));
	CU(cuCtxSetCurrent(ctx));
	size_t cfree, ctotal;
	CU(cuMemGetInfo(&cfree, &ctotal));
	mem m;
	REQUIRE(meminfo(h, &m) == SUCCESS, "memory info");
	// The real NVML counts memory the driver reserves, which CUDA does not.
	if (ours)
		REQUIRE(m.total == ctotal && m.used + m.free == m.total,
			"memory %llu/%llu/%llu, CUDA total %zu", m.total, m.free, m.used, ctotal);
	else
		REQUIRE(m.total >= ctotal && m.total - ctotal < m.total / 10,
			"memory total %llu, CUDA says %zu", m.total, ctotal);
	mem2 m2 = {};
	if (ours) // ours refuses a wrong version (what NVML does is its own)
		REQUIRE(meminfo2(h, &m2) == VERSION_MISMATCH,
			"v2 memory info without a version: want ARGUMENT_VERSION_MISMATCH");
	m2.version = (unsigned)sizeof(m2) | (2u << 24);
	REQUIRE(meminfo2(h, &m2) == SUCCESS && m2.total >= ctotal, "v2 memory info");
	if (ours)
		REQUIRE(m2.total == ctotal && m2.used + m2.free == m2.total && m2.reserved == 0,
			"v2 memory %llu/%llu/%llu", m2.total, m2.free, m2.used);
	CUcontext cur = nullptr;
	CU(cuCtxGetCurrent(&cur));
	REQUIRE(cur == ctx, "NVML changed the current context");
	// With no current context at all, it stays so.
	CU(cuCtxSetCurrent(nullptr));
	REQUIRE(meminfo(h, &m) == SUCCESS, "memory info without a current context");
	CU(cuCtxGetCurrent(&cur));
	REQUIRE(cur == nullptr, "NVML left a context current");
	CU(cuCtxSetCurrent(ctx));

	if (ours) {
		// Only this process, never another tenant's.
		proc2 pr[4];
		unsigned int np = 0;
		REQUIRE(procs(h, &np, pr) == INSUFFICIENT_SIZE && np == 1,
			"room for 0: want INSUFFICIENT_SIZE, 1");
		np = 0;
		REQUIRE(procs(h, &np, nullptr) == INSUFFICIENT_SIZE && np == 1,
			"how many (NULL, 0): want INSUFFICIENT_SIZE, 1");
		np = 4;
		CUdeviceptr buf;
		CU(cuMemAlloc(&buf, 3 << 20));
		REQUIRE(procs(h, &np, pr) == SUCCESS && np == 1 && pr[0].pid == (unsigned)getpid(),
			"process list: %u entries, pid %u", np, np ? pr[0].pid : 0);
		REQUIRE(pr[0].used >= (3u << 20) && pr[0].used < m.total,
			"this process holds %llu bytes", pr[0].used);
		CU(cuMemFree(buf));
		proc1 p1[2];
		np = 2;
		REQUIRE(procs1(h, &np, p1) == SUCCESS && np == 1 && p1[0].pid == (unsigned)getpid(),
			"v1 process list");
		np = 4;
		REQUIRE(gprocs(h, &np, pr) == SUCCESS && np == 0, "graphics processes: %u", np);
		np = 0;
		REQUIRE(mprocs(h, &np, nullptr) == SUCCESS && np == 0, "MPS processes: %u", np);

		// GPU-wide state: NOT_SUPPORTED (after the handle is checked).
		unsigned int u[2];
		unsigned long long ull;
		int i1, i2;
		void *set;
		REQUIRE(util(h, u) == NOT_SUPPORTED, "utilization: want NOT_SUPPORTED");
		REQUIRE(util(nullptr, u) == INVALID_ARGUMENT,
			"utilization of no device: want INVALID_ARGUMENT");
		REQUIRE(NV(nvmlDeviceGetTemperature, void *, int, unsigned int *)(h, 0, u) ==
				NOT_SUPPORTED, "temperature");
		REQUIRE(NV(nvmlDeviceGetPowerUsage, void *, unsigned int *)(h, u) == NOT_SUPPORTED,
			"power");
		REQUIRE(NV(nvmlDeviceGetClockInfo, void *, int, unsigned int *)(h, 0, u) ==
				NOT_SUPPORTED, "clocks");
		REQUIRE(NV(nvmlDeviceGetFanSpeed, void *, unsigned int *)(h, u) == NOT_SUPPORTED,
			"fan");
		REQUIRE(NV(nvmlDeviceGetTotalEccErrors, void *, int, int, unsigned long long *)(
				h, 0, 0, &ull) == NOT_SUPPORTED, "ECC errors");
		REQUIRE(NV(nvmlDeviceGetNvLinkRemoteDeviceType, void *, unsigned int, int *)(
				h, 0, &i1) == NOT_SUPPORTED, "NvLink");
		REQUIRE(NV(nvmlDeviceGetMigMode, void *, unsigned int *, unsigned int *)(
				h, &u[0], &u[1]) == NOT_SUPPORTED, "MIG mode");
		REQUIRE(NV(nvmlDeviceGetAccountingMode, void *, int *)(h, &i2) == NOT_SUPPORTED,
			"accounting");
		REQUIRE(NV(nvmlEventSetCreate, void **)(&set) == NOT_SUPPORTED, "events");
		REQUIRE(NV(nvmlDeviceSetPersistenceMode, void *, int)(h, 1) == NOT_SUPPORTED,
			"a setter");
		REQUIRE(drvver(ver, sizeof(ver)) == NOT_SUPPORTED,
			"driver version: want NOT_SUPPORTED");

		// NULL pointers and foreign handles.
		mem *no_mem = nullptr;
		int junk[4] = {};
		REQUIRE(count(nullptr) == INVALID_ARGUMENT, "count(NULL)");
		REQUIRE(by_uuid(nullptr, &h2) == INVALID_ARGUMENT && by_uuid(got, nullptr) ==
				INVALID_ARGUMENT, "by UUID with NULL");
		REQUIRE(by_pci(nullptr, &h2) == INVALID_ARGUMENT && by_pci(bus, nullptr) ==
				INVALID_ARGUMENT, "by PCI with NULL");
		REQUIRE(name(h, nullptr, 96) == INVALID_ARGUMENT, "name(NULL)");
		REQUIRE(uuid(h, nullptr, 96) == INVALID_ARGUMENT, "uuid(NULL)");
		REQUIRE(get_index(h, nullptr) == INVALID_ARGUMENT, "index(NULL)");
		REQUIRE(meminfo(h, no_mem) == INVALID_ARGUMENT, "meminfo(NULL)");
		REQUIRE(meminfo2(h, nullptr) == INVALID_ARGUMENT, "meminfo_v2(NULL)");
		REQUIRE(pciinfo(h, nullptr) == INVALID_ARGUMENT, "pciinfo(NULL)");
		REQUIRE(cc(h, &ma, nullptr) == INVALID_ARGUMENT, "cc(NULL)");
		REQUIRE(cudaver(nullptr) == INVALID_ARGUMENT, "CUDA version(NULL)");
		REQUIRE(version(nullptr, 96) == INVALID_ARGUMENT, "NVML version(NULL)");
		REQUIRE(version(ver, 4) == INSUFFICIENT_SIZE, "NVML version, short");
		REQUIRE(procs(h, nullptr, pr) == INVALID_ARGUMENT, "process count NULL");
		np = 4;
		REQUIRE(procs(h, &np, nullptr) == INVALID_ARGUMENT, "process room 4, no array");
		REQUIRE(name(junk, nvname, sizeof(nvname)) == INVALID_ARGUMENT,
			"a foreign handle: want INVALID_ARGUMENT");
		REQUIRE(meminfo(junk, &m) == INVALID_ARGUMENT, "memory of a foreign handle");

		// Every code we return has its own text.
		for (ret_t c : {SUCCESS, UNINITIALIZED, INVALID_ARGUMENT, NOT_SUPPORTED, NOT_FOUND,
				INSUFFICIENT_SIZE, DRIVER_NOT_LOADED, LIBRARY_NOT_FOUND,
				VERSION_MISMATCH})
			REQUIRE(errstr(c) && strcmp(errstr(c), "Unknown Error"),
				"nvmlErrorString(%d) = %s", c, errstr(c) ? errstr(c) : "NULL");
		REQUIRE(!strcmp(errstr(NOT_SUPPORTED), "Not Supported"), "error string %s",
			errstr(NOT_SUPPORTED));
		REQUIRE(!strcmp(errstr(12345), "Unknown Error"), "an unknown code");

		// Several threads, each with its own init and shutdown.
		t_init = init;
		t_shutdown = shutdown;
		t_count = count;
		t_by_index = by_index;
		t_name = name;
		t_meminfo = meminfo;
		t_procs = procs;
		snprintf(t_want_name, sizeof(t_want_name), "%s", nvname);
		t_want_total = m.total;
		pthread_t th[8];
		for (auto &t : th)
			REQUIRE(!pthread_create(&t, nullptr, hammer, nullptr), "pthread_create");
		for (auto &t : th)
			pthread_join(t, nullptr);
	}
	REQUIRE(shutdown() == SUCCESS && shutdown() == SUCCESS, "two shutdowns for two inits");
	if (ours) {
		REQUIRE(shutdown() == UNINITIALIZED, "a third shutdown: want UNINITIALIZED");
		REQUIRE(name(h, nvname, sizeof(nvname)) == UNINITIALIZED,
			"name after shutdown: want UNINITIALIZED");
		REQUIRE(meminfo(h, &m) == UNINITIALIZED, "memory after shutdown");
		// Again, and the same device.
		void *h3 = nullptr;
		REQUIRE(init_flags(0) == SUCCESS, "nvmlInitWithFlags after shutdown");
		REQUIRE(by_index(0, &h3) == SUCCESS && h3 == h, "the device after a new init");
		REQUIRE(shutdown() == SUCCESS && shutdown() == UNINITIALIZED, "shutdown again");
	}
	printf("OK\n");
	return 0;
}
