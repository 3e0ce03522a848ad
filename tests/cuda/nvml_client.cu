// nvml_client.cu - NVML as a function sees it (nvml/nvml.c).
//
// dlopens libnvidia-ml.so.1 the way PyTorch and pynvml do and checks its
// answers against the CUDA driver API's.  Under mignificent it must be our
// library: one device, the partition's, the process list holding only
// this process, NOT_SUPPORTED for the GPU-wide state, NVML's error
// conventions.  Natively (the real NVML, on a GPU) only the agreement with
// the driver API is checked.  No NVML at all (a machine without the
// driver, natively): nothing to check.
#include <dlfcn.h>
#include <unistd.h>

#include "test_common.h"

typedef int ret_t;
struct mem { unsigned long long total, free, used; };
struct mem2 { unsigned int version; unsigned long long total, reserved, free, used; };
struct pci { char legacy[16]; unsigned int domain, bus, device, dev_id, subsys; char bus_id[32]; };
struct proc1 { unsigned int pid; unsigned long long used; };
struct proc2 { unsigned int pid; unsigned long long used; unsigned int gi, ci; };

static void *nv;

template <typename F> static F sym(const char *name)
{
	void *p = dlsym(nv, name);
	REQUIRE(p, "%s is not exported", name);
	return (F)p;
}

#define NV(name, ...) sym<ret_t (*)(__VA_ARGS__)>(#name)

int main()
{
	nv = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!nv) {
		REQUIRE(!under_mig(), "no libnvidia-ml.so.1 under mignificent: %s", dlerror());
		printf("no NVML here: nothing to check\nOK\n");
		return 0;
	}
	// What PyTorch's c10 looks up (it asserts every one is there).
	for (const char *s : {"nvmlInit_v2", "nvmlShutdown", "nvmlErrorString",
			      "nvmlDeviceGetCount_v2", "nvmlDeviceGetHandleByIndex_v2",
			      "nvmlDeviceGetHandleByUUID", "nvmlDeviceGetHandleByPciBusId_v2",
			      "nvmlDeviceGetUUID", "nvmlDeviceGetComputeRunningProcesses",
			      "nvmlDeviceGetNvLinkRemoteDeviceType",
			      "nvmlDeviceGetNvLinkRemotePciInfo_v2", "nvmlDeviceGetP2PStatus",
			      "nvmlDeviceGetGpuFabricInfoV", "nvmlSystemGetCudaDriverVersion_v2"})
		REQUIRE(dlsym(nv, s), "%s is not exported", s);

	auto init = NV(nvmlInit_v2, void);
	auto shutdown = NV(nvmlShutdown, void);
	auto count = NV(nvmlDeviceGetCount_v2, unsigned int *);
	auto by_index = NV(nvmlDeviceGetHandleByIndex_v2, unsigned int, void **);
	auto by_uuid = NV(nvmlDeviceGetHandleByUUID, const char *, void **);
	auto by_pci = NV(nvmlDeviceGetHandleByPciBusId_v2, const char *, void **);
	auto name = NV(nvmlDeviceGetName, void *, char *, unsigned int);
	auto uuid = NV(nvmlDeviceGetUUID, void *, char *, unsigned int);
	auto meminfo = NV(nvmlDeviceGetMemoryInfo, void *, mem *);
	auto meminfo2 = NV(nvmlDeviceGetMemoryInfo_v2, void *, mem2 *);
	auto pciinfo = NV(nvmlDeviceGetPciInfo_v3, void *, pci *);
	auto cc = NV(nvmlDeviceGetCudaComputeCapability, void *, int *, int *);
	auto cudaver = NV(nvmlSystemGetCudaDriverVersion_v2, int *);
	auto procs = NV(nvmlDeviceGetComputeRunningProcesses_v3, void *, unsigned int *, proc2 *);
	auto procs1 = NV(nvmlDeviceGetComputeRunningProcesses, void *, unsigned int *, proc1 *);
	auto version = NV(nvmlSystemGetNVMLVersion, char *, unsigned int);
	auto util = NV(nvmlDeviceGetUtilizationRates, void *, unsigned int *);
	auto errstr = sym<const char *(*)(ret_t)>("nvmlErrorString");
	unsigned int n = 7;
	void *h = nullptr;

	REQUIRE(count(&n) == 1, "count before init: want UNINITIALIZED");
	REQUIRE(init() == 0, "nvmlInit_v2");
	REQUIRE(init() == 0, "nvmlInit_v2, twice");
	char ver[96] = "";
	REQUIRE(version(ver, sizeof(ver)) == 0, "NVML version");
	bool ours = !strcmp(ver, "mignificent");
	REQUIRE(ours == under_mig(), "NVML version \"%s\" (under mignificent: %d)", ver,
		(int)under_mig());

	CU(cuInit(0));
	CUdevice dev;
	CU(cuDeviceGet(&dev, 0));
	int cudevs = 0;
	CU(cuDeviceGetCount(&cudevs));
	REQUIRE(count(&n) == 0, "count");
	if (ours)
		REQUIRE(n == 1 && cudevs == 1, "%u devices, CUDA says %d", n, cudevs);
	REQUIRE(by_index(n, &h) == 2, "index past the end: want INVALID_ARGUMENT");
	REQUIRE(by_index(0, nullptr) == 2, "NULL handle: want INVALID_ARGUMENT");
	// Natively NVML's index 0 need not be CUDA's device 0; find it by PCI id.
	char bus[64];
	CU(cuDeviceGetPCIBusId(bus, sizeof(bus), dev));
	REQUIRE(by_pci(bus, &h) == 0, "by PCI bus id %s", bus);

	char cuname[256], nvname[96];
	CU(cuDeviceGetName(cuname, sizeof(cuname), dev));
	REQUIRE(name(h, nvname, sizeof(nvname)) == 0, "name");
	REQUIRE(!strcmp(cuname, nvname), "name \"%s\", CUDA says \"%s\"", nvname, cuname);
	REQUIRE(name(h, nvname, 4) == 7, "short buffer: want INSUFFICIENT_SIZE");

	CUuuid cu_u;
	CU(cuDeviceGetUuid(&cu_u, dev));
	char want[96], got[96];
	const unsigned char *b = (const unsigned char *)cu_u.bytes;
	snprintf(want, sizeof(want),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		 b[12], b[13], b[14], b[15]);
	REQUIRE(uuid(h, got, sizeof(got)) == 0, "uuid");
	REQUIRE(!strcmp(got + 4, want), "uuid %s, CUDA says %s", got, want);
	void *h2 = nullptr;
	REQUIRE(by_uuid(got, &h2) == 0 && h2 == h, "by UUID");
	REQUIRE(by_uuid("GPU-00000000-0000-0000-0000-000000000000", &h2) == 6,
		"unknown UUID: want NOT_FOUND");

	int ma, mi, cma, cmi;
	CU(cuDeviceGetAttribute(&cma, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev));
	CU(cuDeviceGetAttribute(&cmi, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev));
	REQUIRE(cc(h, &ma, &mi) == 0 && ma == cma && mi == cmi, "compute capability %d.%d", ma, mi);
	int v = 0, cv = 0;
	CU(cuDriverGetVersion(&cv));
	REQUIRE(cudaver(&v) == 0 && v == cv, "CUDA driver version %d, CUDA says %d", v, cv);

	pci p;
	REQUIRE(pciinfo(h, &p) == 0, "PCI info");
	int dom, pbus, pdev;
	CU(cuDeviceGetAttribute(&dom, CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, dev));
	CU(cuDeviceGetAttribute(&pbus, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, dev));
	CU(cuDeviceGetAttribute(&pdev, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, dev));
	REQUIRE(p.domain == (unsigned)dom && p.bus == (unsigned)pbus && p.device == (unsigned)pdev,
		"PCI %x:%x:%x, CUDA says %x:%x:%x", p.domain, p.bus, p.device, dom, pbus, pdev);

	// Memory: NVML's total is the device's (or the partition's) memory.
	CUcontext ctx;
	CU(cuDevicePrimaryCtxRetain(&ctx, dev));
	CU(cuCtxSetCurrent(ctx));
	size_t cfree, ctotal;
	CU(cuMemGetInfo(&cfree, &ctotal));
	mem m;
	REQUIRE(meminfo(h, &m) == 0, "memory info");
	// The real NVML counts memory the driver reserves, which CUDA does not.
	if (ours)
		REQUIRE(m.total == ctotal && m.used + m.free == m.total,
			"memory %llu/%llu/%llu, CUDA total %zu", m.total, m.free, m.used, ctotal);
	else
		REQUIRE(m.total >= ctotal && m.total - ctotal < m.total / 10,
			"memory total %llu, CUDA says %zu", m.total, ctotal);
	mem2 m2 = {};
	if (ours) // ours refuses a wrong version (what NVML does is its own)
		REQUIRE(meminfo2(h, &m2) == 25,
			"v2 memory info without a version: want ARGUMENT_VERSION_MISMATCH");
	m2.version = (unsigned)sizeof(m2) | (2u << 24);
	REQUIRE(meminfo2(h, &m2) == 0 && m2.total >= ctotal, "v2 memory info");
	CUcontext cur = nullptr;
	CU(cuCtxGetCurrent(&cur));
	REQUIRE(cur == ctx, "NVML changed the current context");

	if (ours) {
		// Only this process, never another tenant's.
		proc2 pr[4];
		unsigned int np = 0;
		REQUIRE(procs(h, &np, pr) == 7 && np == 1, "room for 0: want INSUFFICIENT_SIZE, 1");
		np = 4;
		CUdeviceptr buf;
		CU(cuMemAlloc(&buf, 3 << 20));
		REQUIRE(procs(h, &np, pr) == 0 && np == 1 && pr[0].pid == (unsigned)getpid(),
			"process list: %u entries, pid %u", np, np ? pr[0].pid : 0);
		REQUIRE(pr[0].used >= (3u << 20) && pr[0].used < m.total,
			"this process holds %llu bytes", pr[0].used);
		CU(cuMemFree(buf));
		proc1 p1[2];
		np = 2;
		REQUIRE(procs1(h, &np, p1) == 0 && np == 1 && p1[0].pid == (unsigned)getpid(),
			"v1 process list");
		unsigned int u[2];
		REQUIRE(util(h, u) == 3, "utilization: want NOT_SUPPORTED");
		REQUIRE(util(nullptr, u) == 2, "utilization of no device: want INVALID_ARGUMENT");
		REQUIRE(!strcmp(errstr(3), "Not Supported"), "error string %s", errstr(3));
	}
	REQUIRE(shutdown() == 0 && shutdown() == 0, "two shutdowns for two inits");
	if (ours)
		REQUIRE(shutdown() == 1, "a third shutdown: want UNINITIALIZED");
	printf("OK\n");
	return 0;
}
